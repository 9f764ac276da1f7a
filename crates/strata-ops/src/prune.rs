//! Pruning an import: the fields of imported objects that the input no longer has
//! (stale fields), found in one paged scan and deleted one object per transaction.

use crate::error::Result;
use strata_core::model::*;
use strata_core::store::{scan, Store};

/// Keys in the store that are fields of the given objects (direct children of an
/// object's path) but not in `keep`: what a pruning import deletes. One paged scan of
/// the objects' top-level prefixes. Returns (object, key) pairs.
pub async fn stale_fields<S: Store>(
    store: &S,
    objects: &std::collections::HashSet<String>,
    keep: &std::collections::HashSet<Vec<u8>>,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut tops: Vec<String> = objects
        .iter()
        .map(|o| {
            let rest = o.trim_start_matches('/');
            format!("/{}/", rest.split('/').next().unwrap_or_default())
        })
        .collect();
    tops.sort();
    tops.dedup();
    let mut stale = Vec::new();
    for top in tops {
        scan(store, KeySpan::prefix(top.into_bytes()), 0, |page| {
            for kv in page {
                let key = String::from_utf8_lossy(&kv.key);
                let Some(cut) = key.rfind('/') else { continue };
                let parent = &key[..cut];
                if objects.contains(parent) && !keep.contains(&kv.key) {
                    stale.push((parent.to_owned(), kv.key.clone()));
                }
            }
            Ok(())
        })
        .await?;
    }
    // One object's fields together, so each object is pruned in one transaction.
    stale.sort();
    Ok(stale)
}

/// Deletes stale fields, one transaction per object (chunked at the op limit).
pub async fn delete_fields<S: Store>(store: &S, stale: &[(String, Vec<u8>)]) -> Result<u64> {
    let limit = store.capabilities().max_txn_ops.max(1);
    let mut deleted = 0;
    for object in stale.chunk_by(|a, b| a.0 == b.0) {
        for chunk in object.chunks(limit) {
            let ops = chunk
                .iter()
                .map(|(_, k)| Op::delete(KeySpan::key(k.clone())));
            let resp = store.txn(Txn::new().and_then(ops)).await?;
            deleted += resp
                .responses
                .iter()
                .map(|r| match r {
                    OpResponse::Delete { deleted, .. } => *deleted as u64,
                    _ => 0,
                })
                .sum::<u64>();
        }
    }
    Ok(deleted)
}
