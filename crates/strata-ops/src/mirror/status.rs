//! What a mirror reports, and the bookkeeping behind it: the status, the lag clock,
//! and the retry of a failed step, which counts and reports every failure and asks
//! the source for its revision meanwhile.
//!
//! Owns how failures and the lag show in [`MirrorStatus`]; the apply loop and the
//! checkpoint are the parent module's.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use strata_core::store::Store;

/// How a mirror is doing, as reported every few seconds, after each failure and at
/// the end.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MirrorStatus {
    /// The last source revision applied to the target.
    pub applied_revision: i64,
    /// The newest source revision known.
    pub source_revision: i64,
    /// `source_revision - applied_revision`.
    pub lag_revisions: i64,
    /// How long the target has been behind (0 when caught up).
    pub lag_seconds: f64,
    /// Changes (puts and deletes) applied since the mirror started.
    pub changes_applied: u64,
    /// Keys written by the initial copy (0 when resuming from a checkpoint).
    pub copied: u64,
    /// How many times the source could not replay from the checkpoint (compacted, or
    /// for an etcd v2 source its 1,000 events cleared) and the mirror copied the
    /// difference again: every key that changed written, every key gone deleted.
    pub recopies: u64,
    /// Failed requests since the mirror started; each was retried (or ended the
    /// mirror, which then returns the error).
    pub errors: u64,
    /// Why the last request to the source failed; `None` once one succeeds again
    /// (the source is reachable).
    pub source_error: Option<String>,
    /// Why the last write to the target (or the copy) failed; `None` once one
    /// succeeds again.
    pub target_error: Option<String>,
    /// For a source of several stores (a layered keyspace's), each store's own
    /// status by name; the fields above then sum (or, for the lag in seconds and the
    /// errors, take the worst of) them, and the revisions are 0.
    pub parts: Vec<(String, MirrorStatus)>,
}

impl MirrorStatus {
    /// True while nothing holds the mirror back: the source answers and the last
    /// write to the target succeeded.
    pub fn is_healthy(&self) -> bool {
        self.source_error.is_none() && self.target_error.is_none()
    }
}

/// How long transient failures of one step are retried before the mirror gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

/// Which store a retried step writes to: the target alone, or both (the copy).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Target,
    Copy,
}

/// The status, the lag clock and the report callback, shared by every step.
pub(super) struct Tracker<'a, A> {
    pub(super) from: &'a A,
    pub(super) status: MirrorStatus,
    pub(super) behind_since: Option<Instant>,
    pub(super) report: &'a mut (dyn FnMut(&MirrorStatus) + Send),
}

impl<A: Store> Tracker<'_, A> {
    pub(super) fn update_lag(&mut self) {
        let s = &mut self.status;
        s.lag_revisions = (s.source_revision - s.applied_revision).max(0);
        if s.lag_revisions == 0 {
            self.behind_since = None;
        } else {
            self.behind_since.get_or_insert_with(Instant::now);
        }
        s.lag_seconds = self.behind_since.map_or(0.0, |t| t.elapsed().as_secs_f64());
    }

    pub(super) fn report(&mut self) {
        self.update_lag();
        (self.report)(&self.status);
    }

    pub(super) fn applied(&mut self, revision: i64) {
        self.status.applied_revision = revision;
        self.status.source_revision = self.status.source_revision.max(revision);
        self.update_lag();
    }

    pub(super) fn source_failed(&mut self, e: &dyn std::fmt::Display) {
        self.status.errors += 1;
        self.status.source_error = Some(e.to_string());
    }

    pub(super) fn target_failed(&mut self, e: &dyn std::fmt::Display) {
        self.status.errors += 1;
        self.status.target_error = Some(e.to_string());
    }

    /// Asks the source for its revision: true if it answered.
    pub(super) async fn probe_source(&mut self) -> bool {
        match self.from.status().await {
            Ok(st) => {
                self.status.source_revision = self.status.source_revision.max(st.revision);
                self.status.source_error = None;
                true
            }
            Err(e) => {
                self.source_failed(&e);
                false
            }
        }
    }

    /// Runs `f` until it succeeds, retrying transient failures with backoff for up to
    /// [`GIVE_UP_AFTER`]; each failure is counted and reported, with the source's
    /// revision asked again so the lag keeps growing while the target is down.
    /// `Ok(None)` when `stop` completes first.
    pub(super) async fn retrying<T, F, Fut>(
        &mut self,
        what: &str,
        step: Step,
        mut stop: Pin<&mut impl Future<Output = ()>>,
        mut f: F,
    ) -> Result<Option<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            match f().await {
                Ok(v) => {
                    self.status.target_error = None;
                    if step == Step::Copy {
                        self.status.source_error = None;
                    }
                    return Ok(Some(v));
                }
                Err(e) if e.is_transient() && started.elapsed() < GIVE_UP_AFTER => {
                    // A copy that failed while the source does not answer is the
                    // source's failure (the probe records it); otherwise the target's.
                    if self.probe_source().await || step == Step::Target {
                        self.target_failed(&e);
                    }
                    self.report();
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.as_mut() => return Ok(None),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    self.target_failed(&e);
                    (self.report)(&self.status);
                    return Err(Error::Interrupted {
                        operation: format!("mirror ({what})"),
                        done: 0,
                        total: 0,
                        source: Box::new(e),
                    });
                }
            }
        }
    }

    /// The status to return when stopped.
    pub(super) fn finish(mut self) -> MirrorStatus {
        self.update_lag();
        self.status
    }
}
