//! What shapes a backup: the options (repository, prefixes, secrets, identities,
//! remote), the progress callback, and the report of one run.
//!
//! Owns which keys a backup covers and the digest of the options that a commit
//! records; does no I/O.

use std::path::PathBuf;

use git2::Signature;
use sha2::{Digest as _, Sha256};
use strata_core::KeySpan;

use crate::repo::git_err;
use crate::secrets::Secrets;
use crate::Error;

/// A Git identity.
#[derive(Clone, Debug)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            name: "Strata Backup".into(),
            email: "strata@localhost".into(),
        }
    }
}

/// How a backup runs.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    pub repo: PathBuf,
    /// Key prefixes to back up (empty: every key). `/_strata/` is always left out.
    pub prefixes: Vec<Vec<u8>>,
    pub secrets: Secrets,
    /// Text that identifies the options shaping the files (prefixes, schema, secrets
    /// mode); a change forces a full backup.
    pub options_id: String,
    /// The store, as named in commit messages (without credentials).
    pub store_label: String,
    pub author: Identity,
    pub committer: Identity,
    /// A remote (name or URL) to push to after each commit.
    pub push: Option<String>,
    /// Told how a long (full) backup is going.
    pub progress: OnStage,
}

/// A callback for the progress of a full backup: keys read, then files written.
#[derive(Clone, Default)]
pub struct OnStage(Option<std::sync::Arc<dyn Fn(Stage) + Send + Sync>>);

impl OnStage {
    pub fn new(f: impl Fn(Stage) + Send + Sync + 'static) -> Self {
        OnStage(Some(std::sync::Arc::new(f)))
    }

    pub(crate) fn tell(&self, stage: Stage) {
        if let Some(f) = &self.0 {
            f(stage);
        }
    }
}

impl std::fmt::Debug for OnStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "OnStage(..)"
        } else {
            "OnStage(none)"
        })
    }
}

/// Where a full backup is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Keys read from the store so far.
    Reading { keys: u64 },
    /// Files compared (and written where they differ) so far, of `total`.
    Writing { files: u64, total: u64 },
}

/// What one backup did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// The commit made, `None` when nothing changed.
    pub commit: Option<String>,
    /// The store's revision the backup holds (0 for a layered keyspace: see
    /// `revisions`).
    pub revision: i64,
    /// Each part's revision (one entry, `""`, for a backup of one store).
    pub revisions: crate::Revisions,
    pub full: bool,
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
    /// Files (blobs) written: the changed objects.
    pub files_written: u64,
    /// Keys read from the store (all of them for a full backup, the changes otherwise).
    pub keys_read: u64,
}

const RESERVED: &[u8] = strata_core::key::RESERVED_PREFIX.as_bytes();

impl BackupOptions {
    /// True for a key the backup covers.
    pub(crate) fn selected(&self, key: &[u8]) -> bool {
        !key.starts_with(RESERVED)
            && (self.prefixes.is_empty() || self.prefixes.iter().any(|p| key.starts_with(p)))
            && !self.secrets.skipped(key)
    }

    pub(crate) fn spans(&self) -> Vec<KeySpan> {
        if self.prefixes.is_empty() {
            vec![KeySpan::all()]
        } else {
            self.prefixes
                .iter()
                .map(|p| KeySpan::prefix(p.clone()))
                .collect()
        }
    }

    /// A short digest of the options, kept in each commit.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.options_id.as_bytes());
        strata_core::hex::encode(&h.finalize()[..8])
    }

    pub(crate) fn signature(id: &Identity) -> Result<Signature<'static>, Error> {
        Signature::now(&id.name, &id.email).map_err(git_err("making the commit signature"))
    }
}
