//! The `Store` trait: the contract every backend implements, with etcd v3 semantics.
//!
//! Owns the contract and the convenience calls built on it (get, put, delete, paged
//! scans); does not own any storage. The in-memory reference model is [`crate::mem`];
//! the conformance suite (module `conformance`, feature `conformance`) checks a
//! backend against it.

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
    /// What this backend supports (op limit, value size, page size, leases). Answered
    /// without a request; writers size their batches from it.
    fn capabilities(&self) -> Capabilities;

    /// Which part of the store holds `key`, for writers that batch: the keys of one
    /// transaction must share it, so a batch is cut where it changes. One part (0) on
    /// every backend but a layered keyspace, where it is the layer's store
    /// (`usize::MAX` for a key outside every layer).
    fn partition(&self, key: &[u8]) -> usize {
        let _ = key;
        0
    }

    /// How many partitions there are (see [`Store::partition`]): 1 on every backend but
    /// a layered keyspace.
    fn partitions(&self) -> usize {
        1
    }

    /// A key of Strata's own, `/_strata/` followed by `name`, placed in partition
    /// `part`: where a job keeps state that must be written in the same transaction
    /// as that partition's keys (a mirror's checkpoint). A layered keyspace gives each
    /// store its own (`/_strata/parts/<store>/<name>`).
    fn own_key(&self, part: usize, name: &str) -> Vec<u8> {
        let _ = part;
        format!("{}{name}", crate::key::RESERVED_PREFIX).into_bytes()
    }

    /// A range read (see [`RangeRequest`]): keys sorted bytewise, at most `limit`, with
    /// `more` set when keys were left out. A missing key or an empty span is an empty
    /// `kvs`, never an error. [`RangeResponse::revision`] is the revision read: the
    /// requested one, or the current one for `revision = 0`. A revision below the
    /// compaction point is [`Error::Compacted`], above the current one
    /// [`Error::FutureRevision`].
    fn range(&self, req: RangeRequest) -> impl Future<Output = Result<RangeResponse>> + Send;

    /// Runs a transaction atomically (see [`Txn`]): [`Txn::validate`] against
    /// [`Store::capabilities`] first (a transaction over a limit is refused whole, with
    /// nothing written), then the compares against the latest state, then the ops of
    /// the branch they chose, in order. A failed compare is not an error: it is
    /// [`TxnResponse::succeeded`] false. The writes of one transaction share one new
    /// revision, [`TxnResponse::revision`]; one that writes nothing leaves the revision
    /// as it was. An [`Error::Unavailable`] with `outcome_unknown` may have been applied.
    fn txn(&self, txn: Txn) -> impl Future<Output = Result<TxnResponse>> + Send;

    /// Every change in a span from a revision on (see the trait docs):
    /// `start_revision = 0` means the changes after the current revision; a past
    /// revision replays the history held since then first, then follows live changes.
    /// Events come in batches of one revision each, in revision order. A start below the
    /// compaction point is [`Error::Compacted`].
    fn watch(&self, req: WatchRequest) -> impl Future<Output = Result<Watcher>> + Send;

    /// Drops history older than `revision`: afterwards reads and watches at or above
    /// `revision` still work, older ones are [`Error::Compacted`]. `revision` must be
    /// above the current compaction point ([`Error::Compacted`] otherwise) and at most
    /// the current revision ([`Error::FutureRevision`] otherwise).
    fn compact(&self, revision: i64) -> impl Future<Output = Result<()>> + Send;

    /// Every change of one key still held, oldest first: after compaction at `C`, the
    /// key's state as of `C` (if it existed then) followed by every later change. A key
    /// that never existed has an empty history.
    fn history(&self, key: &[u8]) -> impl Future<Output = Result<Vec<Event>>> + Send;

    /// The current revision (1 for an empty store) and the compaction point (0 if never
    /// compacted).
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
    /// keys are gone), and always `false` on a backend without leases.
    fn lease_keep_alive(&self, lease: i64) -> impl Future<Output = Result<bool>> + Send {
        let _ = lease;
        async { Ok(false) }
    }

    /// Ends a lease at once, deleting its keys. Does nothing on a backend without
    /// leases.
    fn lease_revoke(&self, lease: i64) -> impl Future<Output = Result<()>> + Send {
        let _ = lease;
        async { Ok(()) }
    }

    /// How long `kv`, as last read or watched from this store, has left before the
    /// source deletes it by itself, for a source whose keys expire without a lease a
    /// target could share (an etcd v2 key with a TTL, read with `--v2-ttl lease`): a
    /// writer copying it attaches it to a lease of that TTL. `None` for a key that
    /// lives until it is deleted, which is every key on every other backend.
    fn expiry(&self, kv: &KeyValue) -> Option<std::time::Duration> {
        let _ = kv;
        None
    }

    /// Reads one key at the latest revision; `None` when it does not exist.
    fn get(&self, key: &[u8]) -> impl Future<Output = Result<Option<KeyValue>>> + Send {
        let req = RangeRequest::new(KeySpan::key(key));
        async move { Ok(self.range(req).await?.kvs.into_iter().next()) }
    }

    /// Writes one key, unconditionally, in a transaction of its own; returns the new
    /// revision and the previous value (`None` if the key was missing).
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

    /// Deletes every key in a span in one transaction; returns the revision after and
    /// the number deleted. Deleting nothing is not an error (and keeps the revision).
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
    /// The current revision: 1 for an empty store, +1 per transaction that writes.
    pub revision: i64,
    /// The compaction point; 0 when never compacted.
    pub compact_revision: i64,
}

/// A stream of watch events, from [`Store::watch`]. Batches are in revision order; a
/// revision is never split across batches. The stream ends with an error if the
/// backend closes it (or drops a watcher that fell too far behind); resume with a new
/// watch from [`Watcher::resume_revision`]. Dropping the watcher ends the watch.
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
    /// Creates a watcher fed by a backend through `rx` (for implementers of
    /// [`Store::watch`]). `start_revision` is where the watch starts (used for
    /// [`Watcher::resume_revision`] before the first event); `backend` names the
    /// backend in the error that ends the stream when `rx` closes.
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

    /// The next batch of events (all of one revision), waiting for one if none is
    /// there yet. When the stream ends it yields one error ([`Error::WatchClosed`] if
    /// the backend simply closed it) and then `None`.
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

    /// The revision to restart from so that no event is missed or repeated: one after
    /// the last batch delivered, or the start revision before the first.
    pub fn resume_revision(&self) -> i64 {
        self.next_revision
    }
}

/// About how many bytes one page of [`scan`] should carry.
const PAGE_BYTES: usize = 8 << 20;

/// Reads a whole span at one revision, page by page, calling `each` per page (keys in
/// order; an empty span gives one empty page). `revision = 0` reads the latest;
/// every later page is pinned to the revision of the first, so the pages together are
/// one consistent read. Returns the revision read. Memory stays bounded by the page
/// size. An error from `each` stops the scan and is returned.
///
/// Pages adapt to the data: the first is small, later ones hold about 8 MiB (at most
/// the backend's `range_page_size` keys). Few, large pages matter on etcd 3.4, which
/// counts the rest of the range on every request.
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
