//! The error type of the store model. Every backend reports through it, wrapping its
//! own dependency errors in [`Error::Backend`] with the operation and key it was doing.

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed dependency error (rusqlite, tonic, tokio-postgres, io).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid key path {path:?}: {reason}")]
    InvalidKeyPath { path: String, reason: String },

    #[error(
        "revision {requested} has been compacted (the oldest revision still held is {compacted}); \
         read at revision {compacted} or later, or leave out the revision to read the latest"
    )]
    Compacted { requested: i64, compacted: i64 },

    #[error("revision {requested} is in the future: the store is at revision {current}")]
    FutureRevision { requested: i64, current: i64 },

    #[error(
        "the transaction has {ops} operations but {backend} accepts at most {limit} per transaction; \
         split it into smaller transactions"
    )]
    TooManyOps {
        backend: String,
        ops: usize,
        limit: usize,
    },

    #[error(
        "the value of key {} is {size} bytes but {backend} accepts at most {limit} bytes per request; \
         nothing was written: keep large values out of the store, or raise the server's limit",
        crate::model::key_excerpt(key)
    )]
    ValueTooLarge {
        backend: String,
        key: Vec<u8>,
        size: usize,
        limit: usize,
    },

    #[error("key {key} is not accepted: {reason}")]
    KeyNotAccepted { key: String, reason: String },

    #[error("invalid transaction: {0}")]
    InvalidTxn(String),

    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    #[error("{backend}: {operation} failed: {source}")]
    Backend {
        backend: String,
        operation: String,
        #[source]
        source: BoxError,
    },

    #[error(
        "{backend}: {operation} did not complete: {source}; {}",
        if *outcome_unknown {
            "it may or may not have been applied: read the keys before writing again"
        } else {
            "check that the store is up, then run the command again"
        }
    )]
    Unavailable {
        backend: String,
        operation: String,
        /// A write whose result never arrived: it may have been applied.
        outcome_unknown: bool,
        #[source]
        source: BoxError,
    },

    #[error("the watch on {backend} was closed: {reason}")]
    WatchClosed { backend: String, reason: String },
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
