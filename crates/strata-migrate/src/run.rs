//! What a run of `migrate up` (or `plan`) is told and tells: its options, its
//! per-step and per-migration reports and the events a progress bar follows, and the
//! helpers the run loop and the step scan share.
//!
//! Owns these types so that the run loop ([`crate::runner`]) and the scan of one step
//! (the crate's `scan` module) both depend on it and not on each other.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use strata_core::Op;

use crate::file::Migration;
use crate::state::{progress_key, Counts, InProgress};
use crate::Error;

/// How `up` (and `plan`) run.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Only this area (all when `None`).
    pub area: Option<String>,
    /// Stop after this version (inclusive).
    pub to: Option<u64>,
    /// How long to wait for another runner's lock before giving up.
    pub wait: Duration,
    /// How long a lock lasts without renewal (a killed runner's lock expires).
    pub lock_ttl: Duration,
    /// Keys read per page of a step's scan.
    pub page_keys: i64,
    /// Set (by a signal handler) to stop at the next batch boundary: the run records
    /// its progress, releases the lock and fails with [`Error::Interrupted`].
    pub stop: Arc<AtomicBool>,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            area: None,
            to: None,
            wait: Duration::ZERO,
            lock_ttl: Duration::from_secs(30),
            page_keys: 1000,
            stop: Arc::default(),
        }
    }
}

/// What one step did in this run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepStats {
    pub label: String,
    /// Objects read and handed to the step.
    pub objects_seen: u64,
    pub counts: Counts,
}

/// One migration applied (or finished) by this run.
#[derive(Clone, Debug)]
pub struct MigrationReport {
    pub area: String,
    pub label: String,
    pub description: String,
    /// True when an interrupted run of it was finished.
    pub resumed: bool,
    /// This run's work, per step (steps done before a resume show zero).
    pub steps: Vec<StepStats>,
    /// Everything the migration did, across interruptions.
    pub total: Counts,
}

/// Progress of a run, for a progress bar.
#[derive(Clone, Debug)]
pub enum RunEvent {
    Started {
        area: String,
        label: String,
        resumed: bool,
    },
    Step {
        index: usize,
        of: usize,
        label: String,
    },
    Objects {
        seen: u64,
    },
    Done(MigrationReport),
}

/// A store error while applying `m`, with what was being done.
pub(crate) fn store_err(m: &Migration, e: strata_core::Error) -> Error {
    Error::store(format!("applying {} {}", m.area, m.label()), e)
}

/// The write that records a migration's progress.
pub(crate) fn progress_op(area: &str, p: &InProgress) -> Op {
    Op::put(
        progress_key(area).into_bytes(),
        serde_json::to_vec(p).expect("records serialize"),
    )
}
