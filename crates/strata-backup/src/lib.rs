//! Git backup of a store: readable files, incremental commits, single-record history
//! and restore, verification, secrets never in the clear.
//!
//! The store is written into a Git repository through libgit2 ([`repo`]): one JSON
//! file per group of sibling keys ([`layout`]), secrets fingerprinted or encrypted
//! ([`secrets`]). A backup after a previous one replays only the changes since the
//! recorded revision and edits only the affected trees ([`backup`]); `watch` does so
//! continuously. [`mod@restore`] reads any commit back: one key, one object, a prefix, or a
//! whole store; `log`, `diff` and `verify` read history.

pub mod backup;
mod commit;
pub mod history;
pub mod layout;
pub mod options;
pub mod pack;
mod packfile;
pub mod repo;
pub mod request;
pub mod restore;
pub mod secrets;
pub mod source;
mod space;
pub mod verify;
pub mod watch;

use std::path::PathBuf;

pub use backup::{run, run_parts};
pub use history::{diff, last, log, KeyChange, LogEntry};
pub use options::{BackupOptions, BackupReport, Identity, OnStage, Stage};
pub use request::{BackupRequest, Writer};
pub use restore::{
    apply_restore, plan_restore, restore, restore_all, PlannedWrite, RestoreHow, RestorePlan,
    RestoreReport,
};
pub use source::{single, Part, Revisions};
pub use verify::{verify, verify_parts, VerifyReport};
pub use watch::{watch, watch_parts, CommitPoint, WatchOptions, WatchStatus, WatchUpdate};

/// The version of the file layout a commit records in its options (a change of
/// layout forces a full backup).
pub const LAYOUT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("git: {what}: {source}")]
    Git {
        what: String,
        #[source]
        source: git2::Error,
    },

    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{context}: {source}")]
    Store {
        context: String,
        #[source]
        source: strata_core::Error,
    },

    #[error("{context}: {source}")]
    Op {
        context: String,
        #[source]
        source: strata_ops::Error,
    },

    #[error("another strata backup is writing to {repo}; wait for it to finish (only one writer at a time)")]
    Busy { repo: String },

    #[error("key file {path}: {reason}")]
    Key { path: String, reason: String },

    #[error("{key} is stored encrypted; give the key the backup was made with")]
    NeedKey { key: String },

    #[error("the backup of {key} is malformed ({reason}); was the file edited by hand?")]
    Format { key: String, reason: String },

    #[error("{0}")]
    NotFound(String),

    #[error("{} keys changed in the store since they were read: {}{}; {}. Run again to restore over the new values, or force the restore to overwrite whatever is there",
        keys.len(), keys.iter().take(5).cloned().collect::<Vec<_>>().join(", "), if keys.len() > 5 { ", …" } else { "" },
        if *restored == 0 { "nothing was restored".to_owned() } else { format!("{restored} of {total} writes were done in earlier batches") })]
    Conflict {
        keys: Vec<String>,
        /// Writes done by earlier batches (`--in-batches`), of `total`.
        restored: usize,
        total: usize,
    },

    #[error("{0}")]
    Refused(String),
}

impl Error {
    pub(crate) fn store(context: impl Into<String>, source: strata_core::Error) -> Self {
        Error::Store {
            context: context.into(),
            source,
        }
    }

    /// An operation's error (a load, a copy), with what was being done.
    pub(crate) fn op(context: impl Into<String>, source: strata_ops::Error) -> Self {
        match source {
            // A store's own error stays one: callers match on it.
            strata_ops::Error::Store(source) => Error::store(context, source),
            source => Error::Op {
                context: context.into(),
                source,
            },
        }
    }
}

/// Where the fingerprint key lives by default: inside the repository's Git folder,
/// which is never part of a commit or a push.
pub fn default_fingerprint_key(repo: &std::path::Path) -> PathBuf {
    match git2::Repository::open(repo) {
        Ok(r) => r.path().join("strata/fingerprint.key"),
        Err(_) => repo.join("strata/fingerprint.key"),
    }
}
