//! Strata's backends and the store URL that picks one.
//!
//! Each backend is one module and a thin adapter onto the `strata_core::Store`
//! contract. [`AnyStore`] dispatches over them at the edge (native async traits are
//! not object-safe), and [`open`] turns a URL into one:
//!
//! | URL | backend |
//! |---|---|
//! | `sqlite:PATH` (default `sqlite:./strata.db`) | [`sqlite::SqliteStore`] |
//! | `mem:` | [`strata_core::MemStore`] (tests, dry runs) |

pub mod sqlite;

use strata_core::{
    Capabilities, Error, Event, MemStore, RangeRequest, RangeResponse, Result, Store, StoreStatus,
    Txn, TxnResponse, WatchRequest, Watcher,
};

pub use sqlite::SqliteStore;

/// The store URL used when neither `--store` nor `STRATA_STORE` is given.
pub const DEFAULT_STORE_URL: &str = "sqlite:./strata.db";

/// A parsed store URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(std::path::PathBuf),
    Mem,
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if url == "mem:" || url == "mem://" {
            return Ok(StoreUrl::Mem);
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(invalid("give a file path, e.g. sqlite:./strata.db"));
            }
            return Ok(StoreUrl::Sqlite(path.into()));
        }
        let scheme = url.split(':').next().unwrap_or_default();
        Err(invalid(&format!(
            "unknown scheme {scheme:?}; use sqlite:PATH or mem: (etcd:// and postgres:// are coming)"
        )))
    }

    /// The URL for messages and backup commits: no credentials.
    pub fn redacted(&self) -> String {
        match self {
            StoreUrl::Sqlite(path) => format!("sqlite:{}", path.display()),
            StoreUrl::Mem => "mem:".into(),
        }
    }
}

/// Opens the store a URL names.
pub async fn open(url: &str) -> Result<AnyStore> {
    match StoreUrl::parse(url)? {
        StoreUrl::Sqlite(path) => Ok(AnyStore::Sqlite(SqliteStore::open(path)?)),
        StoreUrl::Mem => Ok(AnyStore::Mem(MemStore::new())),
    }
}

/// Any backend, chosen at run time.
#[derive(Clone, Debug)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Mem(MemStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $body:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $body,
            AnyStore::Mem($s) => $body,
        }
    };
}

impl Store for AnyStore {
    fn capabilities(&self) -> Capabilities {
        dispatch!(self, s => s.capabilities())
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        dispatch!(self, s => s.range(req).await)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        dispatch!(self, s => s.txn(txn).await)
    }

    async fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        dispatch!(self, s => s.watch(req).await)
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        dispatch!(self, s => s.compact(revision).await)
    }

    async fn history(&self, key: &[u8]) -> Result<Vec<Event>> {
        dispatch!(self, s => s.history(key).await)
    }

    async fn status(&self) -> Result<StoreStatus> {
        dispatch!(self, s => s.status().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            StoreUrl::parse("sqlite:./x.db").unwrap(),
            StoreUrl::Sqlite("./x.db".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///tmp/x.db").unwrap(),
            StoreUrl::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(StoreUrl::parse("mem:").unwrap(), StoreUrl::Mem);
        let err = StoreUrl::parse("redis://x").unwrap_err().to_string();
        assert!(err.contains("unknown scheme \"redis\""), "{err}");
        assert!(StoreUrl::parse("sqlite:").is_err());
    }
}
