//! The error type of the store model. Every backend reports through it, wrapping its
//! own dependency errors in [`Error::Backend`] with the operation and key it was doing.

/// A result whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed dependency error (rusqlite, tonic, tokio-postgres, io).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store call failed. Every message names the thing (key, revision, backend,
/// limit) and says what to do next. [`Error::is_permanent`] and
/// [`Error::is_transient`] sort the variants for callers that retry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A text is not a valid [`KeyPath`](crate::KeyPath).
    #[error("invalid key path {path:?}: {reason}")]
    InvalidKeyPath {
        /// The text given.
        path: String,
        /// What is wrong with it, and where.
        reason: String,
    },

    /// A read, watch or compaction at a revision whose history has been dropped.
    #[error(
        "revision {requested} has been compacted (the oldest revision still held is {compacted}); \
         read at revision {compacted} or later, or leave out the revision to read the latest"
    )]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The store's compaction point: the oldest revision still readable.
        compacted: i64,
    },

    /// A read or compaction at a revision the store has not reached.
    #[error("revision {requested} is in the future: the store is at revision {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: i64,
        /// The store's current revision.
        current: i64,
    },

    /// A transaction with more ops than the backend's `max_txn_ops` (see
    /// [`Txn::op_count`](crate::Txn::op_count)); nothing was written.
    #[error(
        "the transaction has {ops} operations but {backend} accepts at most {limit} per transaction; \
         split it into smaller transactions"
    )]
    TooManyOps {
        /// The backend (or what was being written, for a loader's object).
        backend: String,
        /// The transaction's op count.
        ops: usize,
        /// The backend's limit.
        limit: usize,
    },

    /// A value (or a put's key and value) over the backend's size limits; nothing was
    /// written.
    #[error(
        "the value of key {} is {size} bytes but {backend} accepts at most {limit} bytes per request; \
         nothing was written: keep large values out of the store, or raise the server's limit",
        crate::model::key_excerpt(key)
    )]
    ValueTooLarge {
        /// The backend.
        backend: String,
        /// The key of the value.
        key: Vec<u8>,
        /// The value's size in bytes.
        size: usize,
        /// The most the backend accepts for it.
        limit: usize,
    },

    /// A key that breaks the key rule ([`check_key`](crate::check_key)): empty, or
    /// longer than [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES).
    #[error("key {key} is not accepted: {reason}")]
    KeyNotAccepted {
        /// The key, cut if long.
        key: String,
        /// Which rule it breaks.
        reason: String,
    },

    /// A transaction that [`Txn::validate`](crate::Txn::validate) refuses (a key put
    /// twice, put and deleted, too many bytes, a lease the backend does not have).
    #[error("invalid transaction: {0}")]
    InvalidTxn(String),

    /// A store URL that cannot be used; the URL is shown without credentials.
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it, and what is expected.
        reason: String,
    },

    /// The backend failed at an operation (a SQL error, a file that cannot be opened,
    /// a request the server refused).
    #[error("{backend}: {operation} failed: {source}")]
    Backend {
        /// The backend.
        backend: String,
        /// What it was doing.
        operation: String,
        /// The dependency's error.
        #[source]
        source: BoxError,
    },

    /// The backend could not be reached or did not answer in time (a lost connection,
    /// a leader election, a timeout): a retry may succeed ([`Error::is_transient`]).
    #[error(
        "{backend}: {operation} did not complete: {source}; {}",
        if *outcome_unknown {
            "it may or may not have been applied: read the keys before writing again"
        } else {
            "check that the store is up, then run the command again"
        }
    )]
    Unavailable {
        /// The backend.
        backend: String,
        /// What it was doing.
        operation: String,
        /// A write whose result never arrived: it may have been applied.
        outcome_unknown: bool,
        /// The dependency's error.
        #[source]
        source: BoxError,
    },

    /// A watch stream ended; watch again from
    /// [`Watcher::resume_revision`](crate::Watcher::resume_revision).
    #[error("the watch on {backend} was closed: {reason}")]
    WatchClosed {
        /// The backend.
        backend: String,
        /// Why, and the revision to resume from.
        reason: String,
    },
}

impl Error {
    /// True for errors that running the same command again cannot cure: a key or
    /// value over a limit, a transaction too large, a malformed transaction.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Error::KeyNotAccepted { .. }
                | Error::ValueTooLarge { .. }
                | Error::TooManyOps { .. }
                | Error::InvalidTxn(_)
                | Error::InvalidKeyPath { .. }
        )
    }

    /// True for errors that a retry may cure (a lost connection, a leader election).
    /// A writer that retries must re-read first when the outcome is unknown.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// Wraps a dependency error with the backend and operation it happened in.
    pub fn backend(
        backend: impl Into<String>,
        operation: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Backend {
            backend: backend.into(),
            operation: operation.into(),
            source: source.into(),
        }
    }
}
