//! The batched loader: writes snapshot entries into a store in transactions of up to
//! the backend's `max_txn_ops` keys, skipping keys whose value is already right.
//!
//! Idempotent (a second load of the same entries changes nothing and says so) and
//! resumable (each batch is one atomic transaction, so a load killed at any moment
//! leaves whole batches; running it again writes what is missing). Owns batching and
//! change detection; parsing is [`crate::snapshot`], storage is the backend's.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::model::*;
use crate::store::Store;

/// What a load did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Entries in the input.
    pub total: u64,
    /// Keys written because they were missing or had another value.
    pub changed: u64,
    /// Keys that already had the value.
    pub unchanged: u64,
    /// Write transactions sent.
    pub txns: u64,
    /// The store revision after the last write (0 when nothing was written).
    pub revision: i64,
}

/// Called after each batch with the report so far.
pub type Progress<'a> = &'a mut (dyn FnMut(&LoadReport) + Send);

/// Loads sorted `entries` into `store`. `batch` overrides the batch size (it is
/// capped at the backend's `max_txn_ops`).
pub async fn load<S: Store>(
    store: &S,
    entries: &[(String, String)],
    batch: Option<usize>,
    progress: Progress<'_>,
) -> Result<LoadReport> {
    let caps = store.capabilities();
    let batch = batch.unwrap_or(caps.max_txn_ops).clamp(1, caps.max_txn_ops);
    let mut report = LoadReport {
        total: entries.len() as u64,
        ..Default::default()
    };
    for chunk in entries.chunks(batch) {
        if let Err(source) = load_chunk(store, chunk, &mut report).await {
            return Err(Error::Interrupted {
                operation: "load".into(),
                done: report.changed + report.unchanged,
                total: report.total,
                source: Box::new(source),
            });
        }
        progress(&report);
    }
    Ok(report)
}

async fn load_chunk<S: Store>(
    store: &S,
    chunk: &[(String, String)],
    report: &mut LoadReport,
) -> Result<()> {
    let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
        return Ok(());
    };
    let mut end = last.0.as_bytes().to_vec();
    end.push(0);
    let span = KeySpan::Range {
        start: first.0.as_bytes().to_vec(),
        end: Some(end),
    };
    let current = store.range(RangeRequest::new(span)).await?;
    let existing: HashMap<&[u8], &[u8]> = current
        .kvs
        .iter()
        .map(|kv| (kv.key.as_slice(), kv.value.as_slice()))
        .collect();
    let puts: Vec<Op> = chunk
        .iter()
        .filter(|(k, v)| existing.get(k.as_bytes()) != Some(&v.as_bytes()))
        .map(|(k, v)| Op::put(k.as_str(), v.as_str()))
        .collect();
    let changed = puts.len() as u64;
    if changed > 0 {
        let resp = store.txn(Txn::new().and_then(puts)).await?;
        report.revision = resp.revision;
        report.txns += 1;
    }
    report.changed += changed;
    report.unchanged += chunk.len() as u64 - changed;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemStore;

    fn entries(n: usize) -> Vec<(String, String)> {
        let mut e: Vec<_> = (0..n)
            .map(|i| (format!("/k/{i:05}"), format!("v{i}")))
            .collect();
        e.sort();
        e
    }

    #[tokio::test]
    async fn second_load_changes_nothing() {
        let store = MemStore::with_capabilities(Capabilities {
            backend: "mem",
            max_txn_ops: 7,
            max_value_bytes: 1024,
            range_page_size: 100,
        });
        let data = entries(50);
        let first = load(&store, &data, None, &mut |_| {}).await.unwrap();
        assert_eq!((first.changed, first.unchanged, first.txns), (50, 0, 8));
        let second = load(&store, &data, None, &mut |_| {}).await.unwrap();
        assert_eq!((second.changed, second.unchanged, second.txns), (0, 50, 0));
        let mut changed = data.clone();
        changed[3].1 = "new".into();
        let third = load(&store, &changed, None, &mut |_| {}).await.unwrap();
        assert_eq!((third.changed, third.txns), (1, 1));
    }
}
