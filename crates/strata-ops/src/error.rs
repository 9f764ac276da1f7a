//! The errors of operations: a store's own ([`strata_core::Error`]), or what an
//! operation adds to it.

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store refused or failed (a limit, a compare, a lost connection…).
    #[error(transparent)]
    Store(#[from] strata_core::Error),

    /// An input file (a snapshot, a transaction) that cannot be read as it is.
    #[error("{path}: {reason}")]
    File {
        /// The file (`-` for standard input), or the key or output being written.
        path: String,
        /// What is wrong, with the line or key where there is one.
        reason: String,
    },

    /// An argument of an operation that cannot be used as given (a rewrite, a mirror
    /// name that is another mirror's, a transaction form).
    #[error("{0}")]
    Invalid(String),

    /// A long operation stopped part-way by an error that a re-run can get past; what
    /// it did is kept (each batch is one transaction), and running it again finishes
    /// the rest without redoing it.
    #[error("{operation} stopped after {done} of {total} keys: {source}; run the same command again to finish (what is done is not redone)")]
    Interrupted {
        /// The operation (`load`, …).
        operation: String,
        /// Keys already in place when it stopped.
        done: u64,
        /// Keys the operation had to handle.
        total: u64,
        /// What stopped it.
        #[source]
        source: Box<Error>,
    },

    /// After a copy, the target's copies of the source's keys do not match the source
    /// at the revision copied: another writer changed the target meanwhile.
    #[error(
        "the target does not match the source after the copy (its digest {target_digest}, the source's \
         {source_digest} at revision {source_revision}): another writer changed it? Run the copy again"
    )]
    CopyNotVerified {
        /// The source revision that was copied.
        source_revision: i64,
        /// The digest of the source's selected keys at that revision.
        source_digest: String,
        /// The digest of the same keys in the target after the copy.
        target_digest: String,
    },
}

/// A result whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True for errors that a retry may cure (a lost connection, a leader election).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Store(e) => e.is_transient(),
            Error::Interrupted { source, .. } => source.is_transient(),
            _ => false,
        }
    }

    /// True for errors that running the same command again cannot cure.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Store(e) => e.is_permanent(),
            Error::Invalid(_) | Error::File { .. } => true,
            Error::Interrupted { source, .. } => source.is_permanent(),
            _ => false,
        }
    }

    /// The store's own error, if this is one.
    pub fn store(&self) -> Option<&strata_core::Error> {
        match self {
            Error::Store(e) => Some(e),
            Error::Interrupted { source, .. } => source.store(),
            _ => None,
        }
    }
}

/// [`strata_core::scan`] with a callback that fails with this crate's errors: the
/// first such error stops the scan and is returned as it is.
pub async fn scan<S: strata_core::Store, E: From<strata_core::Error>>(
    store: &S,
    span: strata_core::KeySpan,
    revision: i64,
    mut each: impl FnMut(Vec<strata_core::KeyValue>) -> std::result::Result<(), E>,
) -> std::result::Result<i64, E> {
    let mut failed: Option<E> = None;
    let scanned = strata_core::scan(store, span, revision, |page| match each(page) {
        Ok(()) => Ok(()),
        Err(e) => {
            failed = Some(e);
            // Any error stops the scan; the caller's is returned below.
            Err(strata_core::Error::InvalidTxn(
                "stopped by the caller".into(),
            ))
        }
    })
    .await;
    match (scanned, failed) {
        (_, Some(e)) => Err(e),
        (Ok(revision), None) => Ok(revision),
        (Err(e), None) => Err(e.into()),
    }
}
