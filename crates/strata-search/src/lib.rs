//! Search over any store: `strata search QUERY` finds records by the words in their
//! values and keys, ranked (BM25), with phrases, prefixes, typos, field and entity
//! filters, in a full-text index kept beside the store and brought up to date from
//! the store's watch before every query.
//!
//! Owns the index and everything about it: how text becomes words ([`tokenize`]),
//! which keys make one document and what of them may be indexed ([`doc`]: never a
//! secret), the folder and its trust rules ([`index`]), the query language
//! ([`query`]) and running it ([`search`]). The engine is tantivy. The CLI's
//! `search` command is a frontend over [`run`] and [`follow`].

pub mod doc;
pub mod index;
pub mod query;
pub mod search;
pub mod tokenize;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use strata_core::model::{KeySpan, WatchRequest};
use strata_core::store::Store;
use strata_schema::Schema;

pub use index::{CatchUp, Identity, Opened, SearchIndex};
pub use search::Hit;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Query(#[from] query::QueryError),
    #[error("the search index in {dir}: {problem}")]
    Index { dir: PathBuf, problem: String },
    #[error("searching: {0}")]
    Search(String),
    #[error(transparent)]
    Store(#[from] strata_core::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A search.
#[derive(Clone, Debug, Default)]
pub struct SearchRequest {
    pub query: String,
    /// Only documents under one of these (every one when empty).
    pub prefixes: Vec<String>,
    pub limit: usize,
}

/// What a search found, and how the index was brought up to date first.
#[derive(Clone, Debug)]
pub struct SearchReport {
    pub hits: Vec<Hit>,
    /// The store revision the index reflected when queried.
    pub revision: i64,
    pub opened: Opened,
    /// `None` when another process (a `search --watch`) was keeping the index current.
    pub catch_up: Option<CatchUp>,
}

/// Where an index lives when `--index` is not given: beside a SQLite file
/// (`FILE.search/`), else in the user's cache folder, one per store URL; each schema
/// has its own index inside.
pub fn default_dir(store_url: &str, identity: &Identity) -> PathBuf {
    let base = match store_url.strip_prefix("sqlite:") {
        Some(path) => PathBuf::from(format!("{}.search", path.trim_start_matches("//"))),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir);
            cache
                .join("strata")
                .join("search")
                .join(index::digest(&identity.store))
        }
    };
    base.join(&identity.schema)
}

/// How long a query waits for a `search --watch` that holds the index to reach the
/// store's revision.
const WAIT_FOR_WATCH: Duration = Duration::from_secs(30);

/// Brings the index in `dir` up to date with `store` and runs the query.
pub async fn run<S: Store>(
    store: &S,
    dir: &Path,
    identity: &Identity,
    schema: Option<Schema>,
    req: &SearchRequest,
) -> Result<SearchReport> {
    let parsed = query::parse(&req.query)?;
    let (mut index, opened) = SearchIndex::open(dir, identity, schema)?;
    let catch_up = match index.writer().await? {
        Some(mut w) => Some(index.catch_up(store, &mut w).await?),
        None => {
            // Held by a `search --watch`: it commits every change; wait for it to
            // reach the store's revision as of now.
            let want = store.status().await?.revision;
            let started = Instant::now();
            loop {
                index.reload()?;
                if index.revision() >= want {
                    break;
                }
                if started.elapsed() > WAIT_FOR_WATCH {
                    return Err(Error::Index {
                        dir: dir.to_owned(),
                        problem: format!(
                            "another process (strata search --watch?) holds the index and has \
                             not reached revision {want} in {}s; is it stuck?",
                            WAIT_FOR_WATCH.as_secs()
                        ),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        }
    };
    let hits = index.query(&parsed, &req.prefixes, req.limit.max(1))?;
    Ok(SearchReport {
        hits,
        revision: index.revision(),
        opened,
        catch_up,
    })
}

/// Keeps the index in `dir` current until `stop` completes: a catch-up, then every
/// change as the store's watch delivers it, committed at once. `report` is called
/// after each commit with what was done and the revision reached.
pub async fn follow<S: Store>(
    store: &S,
    dir: &Path,
    identity: &Identity,
    schema: Option<Schema>,
    report: &mut (dyn FnMut(&CatchUp, i64) + Send),
    stop: impl Future<Output = ()>,
) -> Result<()> {
    let (mut index, _) = SearchIndex::open(dir, identity, schema)?;
    let Some(mut w) = index.writer().await? else {
        return Err(Error::Index {
            dir: dir.to_owned(),
            problem: "another process (strata search --watch?) already keeps it current".into(),
        });
    };
    let mut stop = std::pin::pin!(stop);
    loop {
        let done = index.catch_up(store, &mut w).await?;
        report(&done, index.revision());
        let mut watcher = store
            .watch(WatchRequest {
                span: KeySpan::all(),
                start_revision: index.revision() + 1,
            })
            .await?;
        loop {
            tokio::select! {
                _ = stop.as_mut() => return Ok(()),
                batch = watcher.next() => match batch {
                    Some(Ok(events)) => {
                        let done = index.apply(store, &mut w, &events).await?;
                        report(&done, index.revision());
                    }
                    // Compacted, closed, failed: catch up again from the index's revision.
                    Some(Err(_)) | None => break,
                },
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
