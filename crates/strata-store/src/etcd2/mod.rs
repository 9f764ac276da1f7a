//! The etcd v2 source (`etcd2://host:port[,host:port…]`): a running v2 keyspace read
//! over its HTTP API, so that `copy`, `mirror`, `diff`, `export` and the read commands
//! take it wherever they read a store. It is read-only: every write is refused,
//! naming the target to write to instead.
//!
//! Reading: v2 keeps no old versions, so a read is one recursive GET of the smallest
//! directory that holds the span: one consistent view at its `X-Etcd-Index`, which is
//! the read's revision. The leaves of that answer are kept (a few recent answers, by
//! index) so that the later pages of a paged read, and a re-read to verify a copy, are
//! served from the same view. v2 cannot read the past: a read at an older index is
//! refused as compacted, except one at the index `status` just answered (what a
//! reader that asks for the revision first, then reads, does), which is answered at
//! the newest index and says so in its revision. Keys with a TTL are
//! copied without it, with a note, left out, or given a lease (`ttl.rs`). Following changes
//! is `watch.rs`; the HTTP client is `http.rs`; the answers' shapes are `node.rs`.

mod http;
mod node;
mod spill;
mod ttl;
mod watch;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_core::model::*;
use strata_core::store::{Store, StoreStatus, Watcher};
use strata_core::{prefix_end, Error, Result};

use node::{ErrorAnswer, Leaf, KEY_NOT_FOUND};
use spill::Leaves;
use ttl::Ttls;
pub use ttl::V2Ttl;

pub(crate) const BACKEND: &str = "etcd2";

/// How to reach a v2 keyspace. `Debug` shows no password.
#[derive(Clone, Default)]
pub struct Etcd2Options {
    /// `host:port` of each member.
    pub endpoints: Vec<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// HTTPS (also implied by a CA file).
    pub tls: bool,
    pub ca_cert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub dial_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub ttl: V2Ttl,
}

impl std::fmt::Debug for Etcd2Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd2Options")
            .field("endpoints", &self.endpoints)
            .field("user", &self.user)
            .field("password", &crate::redacted(&self.password))
            .field("tls", &self.tls)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// The leaves of one recursive GET of `dir`, at `index`.
#[derive(Debug)]
struct View {
    /// The directory read, ending in `/` (`/` for the root); or a single key.
    covers: KeySpan,
    index: i64,
    kvs: Leaves,
}

/// How many recent views are kept for paged reads.
const VIEWS_KEPT: usize = 4;

#[derive(Debug)]
struct Inner {
    http: http::Http,
    label: String,
    ttls: Ttls,
    /// Whether the note on a spilled answer was given.
    spill_noted: std::sync::atomic::AtomicBool,
    views: Mutex<VecDeque<Arc<View>>>,
    /// The last indexes `status` answered.
    said: Mutex<VecDeque<i64>>,
}

/// A running etcd v2 keyspace, read-only. Clones share the connections.
#[derive(Clone, Debug)]
pub struct Etcd2Store {
    inner: Arc<Inner>,
}

impl Etcd2Store {
    /// Sets up the client; nothing is dialled until the first request.
    pub fn new(opts: Etcd2Options) -> Result<Self> {
        let label = format!("etcd2://{}", opts.endpoints.join(","));
        let tls = (opts.tls || opts.ca_cert.is_some()).then_some(http::TlsFiles {
            ca_cert: opts.ca_cert.as_deref(),
            cert: opts.cert.as_deref(),
            key: opts.key.as_deref(),
        });
        let user = opts
            .user
            .as_deref()
            .map(|u| (u, opts.password.as_deref().unwrap_or("")));
        let http = http::Http::new(
            opts.endpoints.clone(),
            tls,
            user,
            opts.dial_timeout.unwrap_or(Duration::from_secs(5)),
            opts.request_timeout.unwrap_or(Duration::from_secs(60)),
        )?;
        Ok(Etcd2Store {
            inner: Arc::new(Inner {
                http,
                label,
                ttls: Ttls::new(opts.ttl),
                spill_noted: Default::default(),
                views: Mutex::new(VecDeque::new()),
                said: Mutex::new(VecDeque::new()),
            }),
        })
    }

    fn read_only(&self) -> Error {
        Error::InvalidTxn(format!(
            "{} is an etcd v2 keyspace, which Strata reads as a source only: copy or mirror \
             it into a v3 store (`strata copy --from {0} --to etcd://…`) and write there",
            self.inner.label
        ))
    }

    /// A failed answer as an error, naming the request.
    fn answer_error(&self, what: &str, a: &http::Answer) -> Error {
        let detail = serde_json::from_slice::<ErrorAnswer>(&a.body)
            .map(|e| format!("{} ({}{})", e.message, e.code, cause(&e.cause)))
            .unwrap_or_else(|_| String::from_utf8_lossy(&a.body).trim().to_owned());
        let hint = match a.status {
            401 | 403 => "; give a v2 user with --user NAME[:PASSWORD] (the v2 API's own users)",
            404 => "; is the v2 API on (etcd 3.4 and older: --enable-v2)?",
            _ => "",
        };
        Error::Backend {
            backend: BACKEND.into(),
            operation: what.to_owned(),
            source: format!(
                "{} answered HTTP {}: {detail}{hint}",
                self.inner.label, a.status
            )
            .into(),
        }
    }

    /// The current index: from a GET of a key that cannot exist (hidden and
    /// Strata's), which answers "not found" with the index.
    async fn index(&self) -> Result<i64> {
        let a = self.inner.http.get("/v2/keys/_strata/index", false).await?;
        match (a.status, a.index) {
            (200 | 404, Some(index)) => Ok(index),
            _ => Err(self.answer_error("reading the index", &a)),
        }
    }

    /// A fresh view of what holds `span`: a GET of the key for a single key, else a
    /// recursive GET of the directory that holds the whole span.
    async fn read(&self, span: &KeySpan) -> Result<Arc<View>> {
        let (start, end) = span.bounds();
        let single = end
            .as_ref()
            .is_some_and(|e| *e == [start.as_slice(), &[0]].concat());
        let (path, covers) = if single {
            let key = String::from_utf8_lossy(&start).into_owned();
            (key.clone(), KeySpan::key(start.clone()))
        } else {
            let dir = holding_dir(&start, end.as_deref());
            // The root holds every key, not only those under `/`.
            let covers = if dir == "/" {
                KeySpan::all()
            } else {
                KeySpan::prefix(dir.clone().into_bytes())
            };
            (dir.trim_end_matches('/').to_owned(), covers)
        };
        let url = format!(
            "/v2/keys{}?recursive=true&sorted=true",
            node::escape_path(if path.is_empty() { "/" } else { &path })
        );
        let a = self
            .inner
            .http
            .get_spilling(&url, false, Some(spill::spill_bytes()))
            .await?;
        let what = format!("reading {}", display(&path));
        let (kvs, index) = match a.status {
            200 => (
                self.leaves_of(a.body, a.spilled, &what).await?,
                a.index.unwrap_or(0),
            ),
            404 => match serde_json::from_slice::<ErrorAnswer>(&a.body) {
                Ok(e) if e.code == KEY_NOT_FOUND => {
                    (Leaves::Mem(BTreeMap::new()), a.index.unwrap_or(e.index))
                }
                _ => return Err(self.answer_error(&what, &a)),
            },
            _ => return Err(self.answer_error(&what, &a)),
        };
        let view = Arc::new(View { kvs, covers, index });
        let mut views = self.inner.views.lock().unwrap_or_else(|e| e.into_inner());
        views.push_front(view.clone());
        views.truncate(VIEWS_KEPT);
        Ok(view)
    }

    /// A kept view read at `index` that holds `span`.
    fn kept_view(&self, span: &KeySpan, index: i64) -> Option<Arc<View>> {
        let views = self.inner.views.lock().unwrap_or_else(|e| e.into_inner());
        views
            .iter()
            .find(|v| v.index == index && covers(&v.covers, span))
            .cloned()
    }

    /// The leaves of a recursive GET answer, streamed from the body as parsed: into
    /// memory, or, for an answer spilled to a file, into a temporary table (parsed on
    /// a blocking thread). TTL keys are kept (noted once, their deadlines kept for
    /// `lease`) or left out.
    async fn leaves_of(
        &self,
        body: bytes::Bytes,
        spilled: Option<std::fs::File>,
        what: &str,
    ) -> Result<Leaves> {
        let not_json = |e: serde_json::Error| Error::Backend {
            backend: BACKEND.into(),
            operation: what.to_owned(),
            source: format!("the answer is not v2 JSON: {e}").into(),
        };
        let inner = self.inner.clone();
        let admit = move |l: &Leaf| {
            inner.ttls.seen(&l.key, l.modified, l.ttl);
            l.ttl.is_none() || inner.ttls.mode != V2Ttl::Skip
        };
        let (leaves, with_ttl) = match spilled {
            None => {
                let (mut map, mut ttl) = (BTreeMap::new(), 0);
                node::stream_leaves(&mut serde_json::Deserializer::from_slice(&body), &mut |l| {
                    ttl += usize::from(l.ttl.is_some());
                    if admit(&l) {
                        map.insert(l.key.clone().into_bytes(), to_kv(l));
                    }
                })
                .map_err(not_json)?;
                (Leaves::Mem(map), ttl)
            }
            Some(file) => {
                if !self
                    .inner
                    .spill_noted
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    eprintln!(
                        "strata: note: an answer of {} is larger than {} bytes: it is read from a \
                         temporary file and its keys kept in one (STRATA_V2_SPILL_BYTES)",
                        self.inner.label,
                        spill::spill_bytes()
                    );
                }
                let parsed = tokio::task::spawn_blocking(move || {
                    let disk = spill::DiskLeaves::create()?;
                    let mut ttl = 0;
                    let reader = std::io::BufReader::with_capacity(1 << 20, file);
                    let parsed = disk.fill(|put| {
                        node::stream_leaves(
                            &mut serde_json::Deserializer::from_reader(reader),
                            &mut |l| {
                                ttl += usize::from(l.ttl.is_some());
                                if admit(&l) {
                                    put(l);
                                }
                            },
                        )
                    })?;
                    Ok::<_, Error>(parsed.map(|()| (Leaves::Disk(disk), ttl)))
                })
                .await
                .map_err(|e| Error::Backend {
                    backend: BACKEND.into(),
                    operation: what.to_owned(),
                    source: e.to_string().into(),
                })??;
                parsed.map_err(not_json)?
            }
        };
        self.inner.ttls.note(with_ttl, &self.inner.label);
        Ok(leaves)
    }

    /// The view a read at `revision` is served from: a kept one at that index that
    /// covers the span, else a fresh one (refused if the index is in the future).
    async fn view_for(&self, span: &KeySpan, revision: i64) -> Result<Arc<View>> {
        if let Some(v) = (revision > 0)
            .then(|| self.kept_view(span, revision))
            .flatten()
        {
            return Ok(v);
        }
        let view = self.read(span).await?;
        if revision > view.index {
            return Err(Error::FutureRevision {
                requested: revision,
                current: view.index,
            });
        }
        // v2 cannot read the past. A read at an index that `status` just gave (the
        // newest then) is answered at the newest now, and its revision says so; any
        // other older index is gone.
        let just_said = self
            .inner
            .said
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&revision);
        if revision > 0 && revision < view.index && !just_said {
            return Err(Error::Compacted {
                requested: revision,
                compacted: view.index,
            });
        }
        Ok(view)
    }

    fn range_in(view: &View, req: &RangeRequest) -> Result<RangeResponse> {
        let (start, end) = req.span.bounds();
        let limit = match (req.count_only, req.limit) {
            (true, _) => 0,
            (false, l) if l > 0 => l as usize,
            _ => usize::MAX,
        };
        let (mut kvs, count) = view.kvs.range(&start, end.as_deref(), limit)?;
        if req.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        Ok(RangeResponse {
            revision: view.index,
            more: !req.count_only && count as usize > kvs.len(),
            count,
            kvs,
        })
    }
}

fn cause(c: &str) -> String {
    if c.is_empty() {
        String::new()
    } else {
        format!(", {c}")
    }
}

fn display(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

fn to_kv(l: Leaf) -> KeyValue {
    spill::kv_of(
        l.key.into_bytes(),
        l.value.into_bytes(),
        l.created,
        l.modified,
    )
}

/// The deepest directory (ending in `/`) that holds every key of `[start, end)`.
fn holding_dir(start: &[u8], end: Option<&[u8]>) -> String {
    let common: &[u8] = match end {
        // A prefix span: its end is the prefix's end.
        Some(e) if prefix_end(start).as_deref() == Some(e) => start,
        Some(e) => {
            let n = start.iter().zip(e).take_while(|(a, b)| a == b).count();
            &start[..n]
        }
        None => &[],
    };
    let cut = common.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1);
    let dir = String::from_utf8_lossy(&common[..cut]).into_owned();
    if dir.is_empty() {
        "/".into()
    } else {
        dir
    }
}

/// Whether every key of `inner` is in `outer`.
fn covers(outer: &KeySpan, inner: &KeySpan) -> bool {
    let ((o0, o1), (i0, i1)) = (outer.bounds(), inner.bounds());
    o0 <= i0
        && match (o1, i1) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(o), Some(i)) => i <= o,
        }
}

impl Store for Etcd2Store {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            backend: BACKEND,
            max_txn_ops: 128,
            max_value_bytes: 1 << 20,
            max_request_bytes: 1 << 20,
            range_page_size: 10_000,
            max_in_flight: 1,
            leases: false,
        }
    }

    fn expiry(&self, kv: &KeyValue) -> Option<Duration> {
        self.inner.ttls.expiry(kv)
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let view = self.view_for(&req.span, req.revision).await?;
        Self::range_in(&view, &req)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        // Reads only, with no compares: answered from one view of the root.
        let reads: Option<Vec<RangeRequest>> = txn
            .success
            .iter()
            .map(|op| match op {
                Op::Range(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        match reads {
            Some(reads) if txn.compares.is_empty() => {
                let view = self.read(&KeySpan::all()).await?;
                Ok(TxnResponse {
                    revision: view.index,
                    succeeded: true,
                    responses: reads
                        .iter()
                        .map(|r| Self::range_in(&view, r).map(OpResponse::Range))
                        .collect::<Result<_>>()?,
                })
            }
            _ => Err(self.read_only()),
        }
    }

    async fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        watch::start(self.clone(), req).await
    }

    async fn compact(&self, _revision: i64) -> Result<()> {
        Err(self.read_only())
    }

    async fn history(&self, key: &[u8]) -> Result<Vec<Event>> {
        // v2 keeps no versions: the history is the current one, if any.
        let view = self.read(&KeySpan::key(key.to_vec())).await?;
        Ok(view
            .kvs
            .get(key)?
            .map(|kv| Event {
                kind: EventKind::Put,
                kv,
            })
            .into_iter()
            .collect())
    }

    async fn status(&self) -> Result<StoreStatus> {
        let revision = self.index().await?;
        let mut said = self.inner.said.lock().unwrap_or_else(|e| e.into_inner());
        said.push_front(revision);
        said.truncate(8);
        Ok(StoreStatus {
            revision,
            compact_revision: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_that_holds_a_span() {
        assert_eq!(
            holding_dir(b"/a/b/", prefix_end(b"/a/b/").as_deref()),
            "/a/b/"
        );
        assert_eq!(holding_dir(b"/a/b/c", Some(b"/a/b/d")), "/a/b/");
        assert_eq!(holding_dir(b"/a/x", Some(b"/b")), "/");
        assert_eq!(holding_dir(b"", None), "/");
        assert!(covers(&KeySpan::prefix("/a/"), &KeySpan::prefix("/a/b/")));
        assert!(!covers(&KeySpan::prefix("/a/b/"), &KeySpan::prefix("/a/")));
        assert!(covers(&KeySpan::all(), &KeySpan::prefix("/a/")));
        assert_eq!(V2Ttl::parse("skip"), Ok(V2Ttl::Skip));
    }
}
