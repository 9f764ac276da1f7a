//! The revision engine shared by the embedded backends (mem, SQLite): etcd's range,
//! transaction and revision arithmetic over any [`RevisionedState`].
//!
//! A backend that keeps its own rows (current table + history log, the way kine maps
//! etcd onto SQL) implements the small [`RevisionedState`] trait and gets the exact
//! semantics of the [`crate::Store`] contract from here, so they are written once. The
//! caller is responsible for running each call inside one atomic unit (a SQL
//! transaction, a mutex) and for rolling back when an error is returned.
//! Backends with their own engine (etcd) do not use this module.

use crate::error::{Error, Result};
use crate::model::*;

/// The storage a backend exposes to the engine.
pub trait RevisionedState {
    /// The current store revision (1 for an empty store).
    fn revision(&mut self) -> Result<i64>;
    /// The compaction point (0 if never compacted).
    fn compact_revision(&mut self) -> Result<i64>;
    /// The latest state of one key, reflecting writes already made by this transaction.
    fn current(&mut self, key: &[u8]) -> Result<Option<KeyValue>>;
    /// Up to `limit` (0 = all) live keys of `[start, end)` at `revision`, sorted, plus
    /// whether more exist. `revision = None` reads the latest state (including writes
    /// already made by this transaction).
    fn range(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        revision: Option<i64>,
        limit: i64,
        keys_only: bool,
    ) -> Result<(Vec<KeyValue>, bool)>;
    /// The number of live keys in `[start, end)` at `revision` (`None` = latest).
    fn count(&mut self, start: &[u8], end: Option<&[u8]>, revision: Option<i64>) -> Result<i64>;
    /// Records a put (current row and history) of `kv`, whose `mod_revision` is the new
    /// revision; `seq` orders the writes of one revision.
    fn write_put(&mut self, kv: &KeyValue, seq: i64) -> Result<()>;
    /// Records a put of `value` at `revision` when the caller does not need the previous
    /// value, deriving `create_revision` and `version` from the current row. Backends
    /// may override it to do this in one statement; the default reads, then writes.
    fn put_new(&mut self, key: &[u8], value: &[u8], revision: i64, seq: i64) -> Result<()> {
        let prev = self.current(key)?;
        self.write_put(&next_kv(key, value, revision, prev.as_ref()), seq)
    }
    /// Records the deletion of `key` at `revision`.
    fn write_delete(&mut self, key: &[u8], revision: i64, seq: i64) -> Result<()>;
    /// Stores the new current revision.
    fn set_revision(&mut self, revision: i64) -> Result<()>;
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
fn resolve_revision(state: &mut impl RevisionedState, requested: i64) -> Result<Option<i64>> {
    if requested <= 0 {
        return Ok(None);
    }
    let current = state.revision()?;
    if requested > current {
        return Err(Error::FutureRevision { requested, current });
    }
    let compacted = state.compact_revision()?;
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
pub fn range(state: &mut impl RevisionedState, req: &RangeRequest) -> Result<RangeResponse> {
    let at = resolve_revision(state, req.revision)?;
    let revision = match at {
        Some(rev) => rev,
        None => state.revision()?,
    };
    let (start, end) = req.span.bounds();
    if req.count_only {
        let count = state.count(&start, end.as_deref(), at)?;
        return Ok(RangeResponse {
            revision,
            kvs: Vec::new(),
            more: false,
            count,
        });
    }
    let (kvs, more) = state.range(&start, end.as_deref(), at, req.limit.max(0), req.keys_only)?;
    let count = kvs.len() as i64;
    Ok(RangeResponse {
        revision,
        kvs,
        more,
        count,
    })
}

/// Runs a validated transaction. The caller commits when `Ok` and rolls back on `Err`.
pub fn txn(
    state: &mut impl RevisionedState,
    txn: &Txn,
    caps: &Capabilities,
) -> Result<TxnResponse> {
    txn.validate(caps)?;
    let revision = state.revision()?;
    let mut succeeded = true;
    for compare in &txn.compares {
        let current = state.current(&compare.key)?;
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
    for op in ops {
        let response = match op {
            Op::Put {
                key,
                value,
                prev_kv,
            } => {
                let prev = state.current(key)?;
                let kv = KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: prev.as_ref().map_or(new_revision, |p| p.create_revision),
                    mod_revision: new_revision,
                    version: prev.as_ref().map_or(0, |p| p.version) + 1,
                };
                state.write_put(&kv, seq)?;
                seq += 1;
                OpResponse::Put {
                    prev_kv: if *prev_kv { prev } else { None },
                }
            }
            Op::Delete { span, prev_kv } => {
                let (start, end) = span.bounds();
                let (doomed, _) = state.range(&start, end.as_deref(), None, 0, !*prev_kv)?;
                for kv in &doomed {
                    state.write_delete(&kv.key, new_revision, seq)?;
                    seq += 1;
                }
                OpResponse::Delete {
                    deleted: doomed.len() as i64,
                    prev_kvs: if *prev_kv { doomed } else { Vec::new() },
                }
            }
            Op::Range(req) => OpResponse::Range(range(state, req)?),
        };
        responses.push(response);
    }
    let revision = if seq > 0 {
        state.set_revision(new_revision)?;
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
pub fn check_compact(state: &mut impl RevisionedState, revision: i64) -> Result<i64> {
    let current = state.revision()?;
    if revision > current {
        return Err(Error::FutureRevision {
            requested: revision,
            current,
        });
    }
    let compacted = state.compact_revision()?;
    if revision <= compacted {
        return Err(Error::Compacted {
            requested: revision,
            compacted,
        });
    }
    Ok(revision)
}

/// Checks a watch start against the compaction point and resolves 0 to "after now".
pub fn resolve_watch_start(state: &mut impl RevisionedState, start_revision: i64) -> Result<i64> {
    let current = state.revision()?;
    if start_revision <= 0 {
        return Ok(current + 1);
    }
    let compacted = state.compact_revision()?;
    if start_revision < compacted {
        return Err(Error::Compacted {
            requested: start_revision,
            compacted,
        });
    }
    Ok(start_revision)
}
