//! The revision engine shared by the backends that keep their own rows (mem, SQLite,
//! PostgreSQL): etcd's range, transaction and revision arithmetic over any
//! [`RevisionedState`].
//!
//! A backend that keeps its own rows (current table + history log, the way kine maps
//! etcd onto SQL) implements the small [`RevisionedState`] trait and gets the exact
//! semantics of the [`crate::Store`] contract from here, so they are written once. The
//! caller is responsible for running each call inside one atomic unit (a SQL
//! transaction, a mutex) and for rolling back when an error is returned.
//! Backends with their own engine (etcd) do not use this module.
//!
//! The engine is async so that a network database (PostgreSQL) can await each
//! statement; a synchronous state (mem, SQLite) drives it with [`run_ready`], since
//! its futures are always ready.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};
use crate::model::*;

/// Runs a future that never waits (one over a synchronous state) to completion.
pub fn run_ready<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => Err(Error::backend(
            "engine",
            "run a synchronous transaction",
            "the state waited, which a synchronous state must never do",
        )),
    }
}

/// The storage a backend exposes to the engine. Implementations may finish every
/// call at once (mem, SQLite) or await a server (PostgreSQL).
#[allow(async_fn_in_trait)]
pub trait RevisionedState {
    /// The current store revision (1 for an empty store).
    async fn revision(&mut self) -> Result<i64>;
    /// The compaction point (0 if never compacted).
    async fn compact_revision(&mut self) -> Result<i64>;
    /// The latest state of one key, reflecting writes already made by this transaction.
    async fn current(&mut self, key: &[u8]) -> Result<Option<KeyValue>>;
    /// Up to `limit` (0 = all) live keys of `[start, end)` at `revision`, sorted, plus
    /// whether more exist. `revision = None` reads the latest state (including writes
    /// already made by this transaction).
    async fn range(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        revision: Option<i64>,
        limit: i64,
        keys_only: bool,
    ) -> Result<(Vec<KeyValue>, bool)>;
    /// The number of live keys in `[start, end)` at `revision` (`None` = latest).
    async fn count(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        revision: Option<i64>,
    ) -> Result<i64>;
    /// Records a put (current row and history) of `kv`, whose `mod_revision` is the new
    /// revision; `seq` orders the writes of one revision.
    async fn write_put(&mut self, kv: &KeyValue, seq: i64) -> Result<()>;
    /// Records puts of distinct keys at `revision`, with `seq` numbers from `first_seq`,
    /// when the caller does not need the previous values: `create_revision` and
    /// `version` follow from each key's current row. Backends may override it to do
    /// this in one statement; the default reads, then writes, key by key.
    async fn put_batch(
        &mut self,
        puts: &[(&[u8], &[u8])],
        revision: i64,
        first_seq: i64,
    ) -> Result<()> {
        for (i, (key, value)) in puts.iter().enumerate() {
            let prev = self.current(key).await?;
            self.write_put(
                &next_kv(key, value, revision, prev.as_ref()),
                first_seq + i as i64,
            )
            .await?;
        }
        Ok(())
    }
    /// Records the deletion of `key` at `revision`.
    async fn write_delete(&mut self, key: &[u8], revision: i64, seq: i64) -> Result<()>;
    /// Stores the new current revision.
    async fn set_revision(&mut self, revision: i64) -> Result<()>;
}

/// Cuts rows fetched with `limit + 1` back to `limit` (0 = no limit) and says whether
/// more exist: how the SQL states learn `more` without counting the range.
pub fn cut_to_limit(mut kvs: Vec<KeyValue>, limit: i64) -> (Vec<KeyValue>, bool) {
    let more = limit > 0 && kvs.len() as i64 > limit;
    if more {
        kvs.truncate(limit as usize);
    }
    (kvs, more)
}

/// The state of `key` after a put at `revision` over `prev`.
pub fn next_kv(key: &[u8], value: &[u8], revision: i64, prev: Option<&KeyValue>) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        value: value.to_vec(),
        create_revision: prev.map_or(revision, |p| p.create_revision),
        mod_revision: revision,
        version: prev.map_or(0, |p| p.version) + 1,
    }
}

/// Resolves a requested revision (0 = latest) against the store's bounds; `None` means
/// "the latest state".
async fn resolve_revision(state: &mut impl RevisionedState, requested: i64) -> Result<Option<i64>> {
    if requested <= 0 {
        return Ok(None);
    }
    let current = state.revision().await?;
    if requested > current {
        return Err(Error::FutureRevision { requested, current });
    }
    let compacted = state.compact_revision().await?;
    if requested < compacted {
        return Err(Error::Compacted {
            requested,
            compacted,
        });
    }
    Ok(if requested == current {
        None
    } else {
        Some(requested)
    })
}

/// A range read with the contract's semantics.
pub async fn range(state: &mut impl RevisionedState, req: &RangeRequest) -> Result<RangeResponse> {
    let at = resolve_revision(state, req.revision).await?;
    let revision = match at {
        Some(rev) => rev,
        None => state.revision().await?,
    };
    let (start, end) = req.span.bounds();
    if req.count_only {
        let count = state.count(&start, end.as_deref(), at).await?;
        return Ok(RangeResponse {
            revision,
            kvs: Vec::new(),
            more: false,
            count,
        });
    }
    let (kvs, more) = state
        .range(&start, end.as_deref(), at, req.limit.max(0), req.keys_only)
        .await?;
    let count = kvs.len() as i64;
    Ok(RangeResponse {
        revision,
        kvs,
        more,
        count,
    })
}

/// Runs a validated transaction. The caller commits when `Ok` and rolls back on `Err`.
pub async fn txn(
    state: &mut impl RevisionedState,
    txn: &Txn,
    caps: &Capabilities,
) -> Result<TxnResponse> {
    txn.validate(caps)?;
    let revision = state.revision().await?;
    let mut succeeded = true;
    for compare in &txn.compares {
        let current = state.current(&compare.key).await?;
        if !compare.evaluate(current.as_ref()) {
            succeeded = false;
            break;
        }
    }
    let ops = if succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    let new_revision = revision + 1;
    let mut seq = 0i64;
    let mut responses = Vec::with_capacity(ops.len());
    let mut i = 0;
    while i < ops.len() {
        // A run of plain puts (the bulk of every load) goes to the state in one call.
        let run = ops[i..]
            .iter()
            .take_while(|op| matches!(op, Op::Put { prev_kv: false, .. }))
            .count();
        if run > 0 {
            let puts: Vec<(&[u8], &[u8])> = ops[i..i + run]
                .iter()
                .filter_map(|op| match op {
                    Op::Put { key, value, .. } => Some((key.as_slice(), value.as_slice())),
                    _ => None,
                })
                .collect();
            state.put_batch(&puts, new_revision, seq).await?;
            seq += run as i64;
            responses.extend((0..run).map(|_| OpResponse::Put { prev_kv: None }));
            i += run;
            continue;
        }
        let response = match &ops[i] {
            Op::Put { key, value, .. } => {
                let prev = state.current(key).await?;
                state
                    .write_put(&next_kv(key, value, new_revision, prev.as_ref()), seq)
                    .await?;
                seq += 1;
                OpResponse::Put { prev_kv: prev }
            }
            Op::Delete { span, prev_kv } => {
                let (start, end) = span.bounds();
                let (doomed, _) = state
                    .range(&start, end.as_deref(), None, 0, !*prev_kv)
                    .await?;
                for kv in &doomed {
                    state.write_delete(&kv.key, new_revision, seq).await?;
                    seq += 1;
                }
                OpResponse::Delete {
                    deleted: doomed.len() as i64,
                    prev_kvs: if *prev_kv { doomed } else { Vec::new() },
                }
            }
            Op::Range(req) => OpResponse::Range(Box::pin(range(state, req)).await?),
        };
        responses.push(response);
        i += 1;
    }
    let revision = if seq > 0 {
        state.set_revision(new_revision).await?;
        new_revision
    } else {
        revision
    };
    // Ranges inside a transaction report the transaction's revision, as etcd does.
    for (op, response) in ops.iter().zip(&mut responses) {
        if let (Op::Range(req), OpResponse::Range(r)) = (op, response) {
            if req.revision <= 0 {
                r.revision = revision;
            }
        }
    }
    Ok(TxnResponse {
        revision,
        succeeded,
        responses,
    })
}

/// Checks a compaction request against the store's bounds; returns the revision to
/// compact at.
pub async fn check_compact(state: &mut impl RevisionedState, revision: i64) -> Result<i64> {
    let current = state.revision().await?;
    if revision > current {
        return Err(Error::FutureRevision {
            requested: revision,
            current,
        });
    }
    let compacted = state.compact_revision().await?;
    if revision <= compacted {
        return Err(Error::Compacted {
            requested: revision,
            compacted,
        });
    }
    Ok(revision)
}

/// Checks a watch start against the compaction point and resolves 0 to "after now".
pub async fn resolve_watch_start(
    state: &mut impl RevisionedState,
    start_revision: i64,
) -> Result<i64> {
    let current = state.revision().await?;
    if start_revision <= 0 {
        return Ok(current + 1);
    }
    let compacted = state.compact_revision().await?;
    if start_revision < compacted {
        return Err(Error::Compacted {
            requested: start_revision,
            compacted,
        });
    }
    Ok(start_revision)
}
