//! Guards for operations that destroy data: the plan shown before a prefix delete or
//! a compaction, the threshold above which a frontend must ask, and the delete that
//! removes only what the plan showed.
//!
//! Owns the decisions (how many keys are a "large" delete, when a prefix reaches past
//! a segment boundary, how many revisions a compaction drops) and the conditioned
//! delete; does not own the asking, which each frontend does its own way (the CLI on
//! a terminal, with `--yes` in scripts).

use strata_core::{
    Compare, CompareOp, Error as StoreError, KeySpan, Op, OpResponse, RangeRequest, Store, Txn,
};

use crate::{Error, Result};

/// A prefix delete of more keys than this must be confirmed (a question, or an
/// explicit yes in a script); up to this many go without one.
pub const CONFIRM_ABOVE: u64 = 10;

/// How many keys (and segments) a plan keeps to show.
pub const SAMPLE: usize = 10;

/// What a prefix delete would remove, read at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletePlan {
    /// The prefix, as given.
    pub prefix: Vec<u8>,
    /// The revision the keys were read at.
    pub revision: i64,
    /// How many keys the prefix matched at that revision.
    pub count: u64,
    /// The first [`SAMPLE`] keys, in key order.
    pub sample: Vec<Vec<u8>>,
    /// The prefix does not end at a segment boundary (no trailing `/`) and matches
    /// keys of more than one sibling segment: `/app` matching `/app/…` and `/app-old/…`.
    pub crosses_segment: bool,
    /// The first [`SAMPLE`] distinct segments the prefix reaches into (`/app`,
    /// `/app-old`), in key order: what [`DeletePlan::crosses_segment`] is about.
    pub segments: Vec<Vec<u8>>,
    /// How many distinct segments there are in all.
    pub segment_count: u64,
    /// Every key read, with its `mod_revision` then: the delete is conditioned on it.
    keys: Vec<(Vec<u8>, i64)>,
}

impl DeletePlan {
    /// Whether a frontend must have the delete confirmed: more than [`CONFIRM_ABOVE`]
    /// keys.
    pub fn needs_confirmation(&self) -> bool {
        self.count > CONFIRM_ABOVE
    }

    /// Every key that would be deleted, in key order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.keys.iter().map(|(k, _)| k.as_slice())
    }
}

/// The segment of `key` that the end of `prefix` falls in: `key` up to the first `/`
/// at or after the prefix's end (the whole key if there is none).
fn segment<'k>(prefix: &[u8], key: &'k [u8]) -> &'k [u8] {
    let from = prefix.len().min(key.len());
    match key[from..].iter().position(|&b| b == b'/') {
        Some(at) => &key[..from + at],
        None => key,
    }
}

/// Reads every key under `prefix` (keys only, paged, all pages at the revision of the
/// first) and returns what deleting them would do. Writes nothing.
pub async fn delete_prefix_plan<S: Store>(store: &S, prefix: &[u8]) -> Result<DeletePlan> {
    let page = store.capabilities().range_page_size.max(1);
    let (mut start, end) = KeySpan::prefix(prefix).bounds();
    let mut revision = 0;
    let mut keys = Vec::new();
    let mut segments: Vec<Vec<u8>> = Vec::new();
    let mut distinct = 0usize;
    let mut last_segment: Option<Vec<u8>> = None;
    loop {
        let req = RangeRequest::new(KeySpan::Range {
            start: start.clone(),
            end: end.clone(),
        })
        .at_revision(revision)
        .with_limit(page)
        .keys_only();
        let resp = store.range(req).await?;
        // Every later page at the revision of the first: one consistent read.
        revision = resp.revision;
        for kv in resp.kvs {
            // Keys come in order, so one segment's keys are adjacent.
            let seg = segment(prefix, &kv.key);
            if last_segment.as_deref() != Some(seg) {
                distinct += 1;
                if segments.len() < SAMPLE {
                    segments.push(seg.to_vec());
                }
                last_segment = Some(seg.to_vec());
            }
            keys.push((kv.key, kv.mod_revision));
        }
        match keys.last() {
            Some((last, _)) if resp.more => {
                start = last.clone();
                start.push(0);
            }
            _ => break,
        }
    }
    Ok(DeletePlan {
        prefix: prefix.to_vec(),
        revision,
        count: keys.len() as u64,
        sample: keys.iter().take(SAMPLE).map(|(k, _)| k.clone()).collect(),
        crosses_segment: !prefix.ends_with(b"/") && distinct > 1,
        segments,
        segment_count: distinct as u64,
        keys,
    })
}

/// What [`delete_planned`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteReport {
    /// Keys deleted by this run.
    pub deleted: u64,
    /// Keys of the plan that someone else deleted meanwhile.
    pub already_gone: u64,
    /// Keys of the plan written again since it was read: left as they are.
    pub changed: Vec<Vec<u8>>,
    /// The store revision after the last delete (the plan's revision if none ran).
    pub revision: i64,
}

/// Deletes the keys of `plan`, each only if it is unchanged since the plan read it
/// (its `mod_revision` compared): a key written after the read, new or rewritten, is
/// never deleted. The keys go in transactions of the backend's op limit, so a plan that
/// fits in one is deleted atomically; a batch one of whose keys changed is redone key by
/// key, leaving the changed ones. A store error part-way is [`Error::Interrupted`] with
/// the count deleted: planning and deleting again finishes the job.
pub async fn delete_planned<S: Store>(store: &S, plan: &DeletePlan) -> Result<DeleteReport> {
    let limit = store.capabilities().max_txn_ops.max(1);
    let mut report = DeleteReport {
        revision: plan.revision,
        ..DeleteReport::default()
    };
    let interrupted = |done: u64, e: StoreError| Error::Interrupted {
        operation: "delete".into(),
        done,
        total: plan.count,
        source: Box::new(Error::Store(e)),
    };
    // One transaction per op limit and per partition (a layer's store).
    let batches = plan
        .keys
        .chunk_by(|a, b| store.partition(&a.0) == store.partition(&b.0))
        .flat_map(|run| run.chunks(limit));
    for batch in batches {
        let txn = Txn::new()
            .when(
                batch
                    .iter()
                    .map(|(k, rev)| Compare::mod_revision(k.clone(), CompareOp::Equal, *rev)),
            )
            .and_then(
                batch
                    .iter()
                    .map(|(k, _)| Op::delete(KeySpan::key(k.clone()))),
            );
        let resp = store
            .txn(txn)
            .await
            .map_err(|e| interrupted(report.deleted, e))?;
        if resp.succeeded {
            report.deleted += batch.len() as u64;
            report.revision = resp.revision;
            continue;
        }
        for (key, rev) in batch {
            let txn = Txn::new()
                .when([Compare::mod_revision(key.clone(), CompareOp::Equal, *rev)])
                .and_then([Op::delete(KeySpan::key(key.clone()))])
                .or_else([Op::get(KeySpan::key(key.clone()))]);
            let resp = store
                .txn(txn)
                .await
                .map_err(|e| interrupted(report.deleted, e))?;
            if resp.succeeded {
                report.deleted += 1;
                report.revision = resp.revision;
                continue;
            }
            let exists = matches!(resp.responses.first(),
                Some(OpResponse::Range(r)) if !r.kvs.is_empty());
            if exists {
                report.changed.push(key.clone());
            } else {
                report.already_gone += 1;
            }
        }
    }
    Ok(report)
}

/// What compacting at a revision would drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactPlan {
    /// The revision compacted at: reads and watches before it will fail.
    pub revision: i64,
    /// The store's current revision.
    pub current_revision: i64,
    /// The compaction point now (0 if never compacted).
    pub compact_revision: i64,
    /// How many revisions of history stop being readable: those from the oldest
    /// readable one now up to `revision`, excluded.
    pub dropped_revisions: i64,
}

impl CompactPlan {
    /// The store is compacted at `revision` or later already: nothing to do (a
    /// compaction run twice, or by a cron job and by hand, is not an error).
    pub fn is_done(&self) -> bool {
        self.revision <= self.compact_revision
    }
}

/// What compacting at `revision` would do, checked against the store's counters: a
/// revision at or below the compaction point is a plan that [`CompactPlan::is_done`]
/// (nothing drops), one above the current revision
/// [`strata_core::Error::FutureRevision`], as the compaction itself would fail.
/// Writes nothing.
pub async fn compact_plan<S: Store>(store: &S, revision: i64) -> Result<CompactPlan> {
    let status = store.status().await?;
    if revision > status.revision {
        return Err(StoreError::FutureRevision {
            requested: revision,
            current: status.revision,
        }
        .into());
    }
    Ok(CompactPlan {
        revision,
        current_revision: status.revision,
        compact_revision: status.compact_revision,
        dropped_revisions: if revision <= status.compact_revision {
            0
        } else {
            (revision - status.compact_revision.max(1)).max(0)
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_is_where_the_prefix_ends() {
        assert_eq!(segment(b"/sig", b"/sigilgate/a"), b"/sigilgate");
        assert_eq!(segment(b"/sig", b"/sig-old"), b"/sig-old");
        assert_eq!(segment(b"/a/", b"/a/b/c"), b"/a/b");
        assert_eq!(segment(b"", b"/a/b"), b"");
        assert_eq!(segment(b"/a/bc", b"/a/b"), b"/a/b");
    }
}
