//! The `Store` trait: the contract every backend implements, with etcd v3 semantics.
//!
//! Owns the contract and the convenience calls built on it (get, put, delete, paged
//! scans); does not own any storage. The in-memory reference model is [`crate::mem`];
//! the conformance suite ([`crate::conformance`]) checks a backend against it.

use std::future::Future;

use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::model::*;

/// A key-value store with etcd v3 semantics.
///
/// Contract, for every implementer:
/// - **One revision counter** for the whole store. An empty store is at revision 1
///   (as etcd). Every transaction that writes at least one key advances it by exactly
///   one, and all its writes carry that revision as `mod_revision`; a transaction
///   that writes nothing (only reads, deletes of missing keys, or a failed compare
///   with no failure ops) leaves it unchanged.
/// - **Per key**: `create_revision` is kept across puts, `version` counts puts since
///   creation; a delete ends the key, a later put starts at version 1 with a new
///   `create_revision`.
/// - **Ranges** are sorted bytewise by key; a missing key is an empty answer, never
///   an error. Reading at a revision below the compaction point fails with
///   [`Error::Compacted`]; above the current revision with [`Error::FutureRevision`].
/// - **Transactions** are atomic and isolated; ops run in order and a range op sees the
///   writes of earlier ops in the same transaction. [`Txn::validate`] is checked first.
/// - **Watch** delivers every change in the span with `mod_revision >= start_revision`,
///   in revision order, each exactly once, deletes included, then follows live
///   changes. A start below the compaction point fails with [`Error::Compacted`].
/// - **Compaction** at `rev` keeps every key's state as of `rev` readable and drops
///   older history. Compacting at or below the current compaction point is an error.
pub trait Store: Send + Sync {
    /// What this backend supports (op limit, value size, page size).
    fn capabilities(&self) -> Capabilities;

    /// A range read (see [`RangeRequest`]).
    fn range(&self, req: RangeRequest) -> impl Future<Output = Result<RangeResponse>> + Send;

    /// An atomic transaction (see [`Txn`]).
    fn txn(&self, txn: Txn) -> impl Future<Output = Result<TxnResponse>> + Send;

    /// Every change in a span from a revision on (see the trait docs).
    fn watch(&self, req: WatchRequest) -> impl Future<Output = Result<Watcher>> + Send;

    /// Drops history older than `revision`.
    fn compact(&self, revision: i64) -> impl Future<Output = Result<()>> + Send;

    /// Every change of one key still held, oldest first: after compaction at `C`, the
    /// key's state as of `C` (if it existed then) followed by every later change.
    fn history(&self, key: &[u8]) -> impl Future<Output = Result<Vec<Event>>> + Send;

    /// The current revision and compaction point.
    fn status(&self) -> impl Future<Output = Result<StoreStatus>> + Send;

    /// Grants a lease of `ttl` (whole seconds, at least 1) that keys can be attached to
    /// with [`Op::put_with_lease`]: the server deletes them when the lease expires, that
    /// is when nobody has kept it alive for `ttl`. `None` on a backend without leases
    /// ([`Capabilities::leases`] false), which is the default.
    fn lease_grant(
        &self,
        ttl: std::time::Duration,
    ) -> impl Future<Output = Result<Option<i64>>> + Send {
        let _ = ttl;
        async { Ok(None) }
    }

    /// Renews a lease for another full TTL; `false` if it has already expired (its
    /// keys are gone).
    fn lease_keep_alive(&self, lease: i64) -> impl Future<Output = Result<bool>> + Send {
        let _ = lease;
        async { Ok(false) }
    }

    /// Ends a lease at once, deleting its keys.
    fn lease_revoke(&self, lease: i64) -> impl Future<Output = Result<()>> + Send {
        let _ = lease;
        async { Ok(()) }
    }

    /// Reads one key at the latest revision.
    fn get(&self, key: &[u8]) -> impl Future<Output = Result<Option<KeyValue>>> + Send {
        let req = RangeRequest::new(KeySpan::key(key));
        async move { Ok(self.range(req).await?.kvs.into_iter().next()) }
    }

    /// Writes one key; returns the new revision and the previous value.
    fn put(
        &self,
        key: &[u8],
        value: &[u8],
    ) -> impl Future<Output = Result<(i64, Option<KeyValue>)>> + Send {
        let txn = Txn::new().and_then([Op::Put {
            key: key.to_vec(),
            value: value.to_vec(),
            prev_kv: true,
            lease: 0,
        }]);
        async move {
            let resp = self.txn(txn).await?;
            let prev = match resp.responses.into_iter().next() {
                Some(OpResponse::Put { prev_kv }) => prev_kv,
                _ => None,
            };
            Ok((resp.revision, prev))
        }
    }

    /// Deletes every key in a span; returns the revision after and the number deleted.
    fn delete(&self, span: KeySpan) -> impl Future<Output = Result<(i64, i64)>> + Send {
        let txn = Txn::new().and_then([Op::delete(span)]);
        async move {
            let resp = self.txn(txn).await?;
            let deleted = match resp.responses.first() {
                Some(OpResponse::Delete { deleted, .. }) => *deleted,
                _ => 0,
            };
            Ok((resp.revision, deleted))
        }
    }
}

/// The store's revision counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StoreStatus {
    pub revision: i64,
    /// The compaction point; 0 when never compacted.
    pub compact_revision: i64,
}

/// A stream of watch events. Batches are in revision order; a revision is never split
/// across batches. The stream ends with an error if the backend closes it; resume with
/// a new watch from [`Watcher::resume_revision`].
#[derive(Debug)]
pub struct Watcher {
    /// Batches handed over whole before the channel is read (a backend's replay of
    /// history, which may be longer than any channel buffer).
    replay: std::collections::VecDeque<Vec<Event>>,
    rx: mpsc::Receiver<Result<Vec<Event>>>,
    backend: &'static str,
    next_revision: i64,
    finished: bool,
}

impl Watcher {
    /// Creates a watcher fed by a backend through `rx`. `start_revision` is where the
    /// watch starts (used for [`Watcher::resume_revision`] before the first event).
    pub fn new(
        rx: mpsc::Receiver<Result<Vec<Event>>>,
        backend: &'static str,
        start_revision: i64,
    ) -> Self {
        Watcher {
            replay: Default::default(),
            rx,
            backend,
            next_revision: start_revision,
            finished: false,
        }
    }

    /// A watcher that first delivers `replay` (batches in revision order, every one
    /// kept however many there are), then what arrives through `rx`.
    pub fn with_replay(
        replay: Vec<Vec<Event>>,
        rx: mpsc::Receiver<Result<Vec<Event>>>,
        backend: &'static str,
        start_revision: i64,
    ) -> Self {
        Watcher {
            replay: replay.into(),
            ..Watcher::new(rx, backend, start_revision)
        }
    }

    /// The next batch of events, `None` after the stream has ended.
    pub async fn next(&mut self) -> Option<Result<Vec<Event>>> {
        if self.finished {
            return None;
        }
        if let Some(events) = self.replay.pop_front() {
            if let Some(last) = events.last() {
                self.next_revision = last.revision() + 1;
            }
            return Some(Ok(events));
        }
        match self.rx.recv().await {
            Some(Ok(events)) => {
                if let Some(last) = events.last() {
                    self.next_revision = last.revision() + 1;
                }
                Some(Ok(events))
            }
            Some(Err(err)) => {
                self.finished = true;
                Some(Err(err))
            }
            None => {
                self.finished = true;
                Some(Err(Error::WatchClosed {
                    backend: self.backend.to_owned(),
                    reason: format!(
                        "the stream ended; watch again from revision {}",
                        self.next_revision
                    ),
                }))
            }
        }
    }

    /// The revision to restart from so that no event is missed or repeated.
    pub fn resume_revision(&self) -> i64 {
        self.next_revision
    }
}

/// About how many bytes one page of [`scan`] should carry.
const PAGE_BYTES: usize = 8 << 20;

/// Reads a whole span at one revision, page by page, calling `each` per page. Returns
/// the revision read. Memory stays bounded by the page size.
///
/// Pages adapt to the data: the first is small, later ones hold about
/// [`PAGE_BYTES`] (at most the backend's `range_page_size` keys). Few, large pages
/// matter on etcd 3.4, which counts the rest of the range on every request.
pub async fn scan<S: Store, F>(store: &S, span: KeySpan, revision: i64, mut each: F) -> Result<i64>
where
    F: FnMut(Vec<KeyValue>) -> Result<()>,
{
    let max_page = store.capabilities().range_page_size.max(1);
    let mut limit = max_page.min(1_000);
    let (mut start, end) = span.bounds();
    let mut revision = revision;
    loop {
        let req = RangeRequest::new(KeySpan::Range {
            start: start.clone(),
            end: end.clone(),
        })
        .at_revision(revision)
        .with_limit(limit);
        let resp = store.range(req).await?;
        // Pin every later page to the revision of the first one: one consistent read.
        revision = resp.revision;
        let more = resp.more;
        if let Some(last) = resp.kvs.last() {
            start = last.key.clone();
            start.push(0);
            let bytes: usize = resp
                .kvs
                .iter()
                .map(|kv| kv.key.len() + kv.value.len())
                .sum();
            let per_key = (bytes / resp.kvs.len()).max(1);
            limit = ((PAGE_BYTES / per_key) as i64).clamp(1, max_page);
        }
        each(resp.kvs)?;
        if !more {
            return Ok(revision);
        }
    }
}
