//! The batched loader: writes snapshot entries into a store in transactions of up to
//! the backend's `max_txn_ops` keys (and `max_request_bytes`), several in flight,
//! skipping keys whose value is already right.
//!
//! Idempotent (a second load of the same entries changes nothing and says so) and
//! resumable (each batch is one atomic transaction, so a load killed at any moment
//! leaves whole batches; running it again writes what is missing). A batch that fails
//! with a transient error (a lost connection, a leader election) is retried by
//! reading its keys again and writing only what is still missing or different, so a
//! transaction whose outcome was unknown is never blindly applied twice. Owns
//! batching, retries and change detection; parsing is [`crate::snapshot`].

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::error::{Error, Result};
use strata_core::key::display_key;
use strata_core::model::*;
use strata_core::store::{scan, Store};

/// What a load did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Entries in the input.
    pub total: u64,
    /// Keys written because they were missing or had another value.
    pub changed: u64,
    /// Keys that already had the value.
    pub unchanged: u64,
    /// Write transactions that committed.
    pub txns: u64,
    /// Batches retried after a transient error.
    pub retries: u64,
    /// The highest store revision written (0 when nothing was written).
    pub revision: i64,
}

/// Keys and values the loader accepts: text (`String`) or bytes (`Vec<u8>`).
pub trait Bytes: AsRef<[u8]> + Send + Sync + 'static {}
impl<T: AsRef<[u8]> + Send + Sync + 'static> Bytes for T {}

/// Called after each batch with the report so far.
pub type OnBatch<'a> = &'a mut (dyn FnMut(&LoadReport) + Send);

/// How long a batch keeps retrying transient errors before the load gives up.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// Splits entries into batches within the backend's op and byte limits, and within
/// one [`Store::partition`] (a layer's store). With `groups` (the object of each entry,
/// entries of one object adjacent), a batch never splits an object, and an object
/// that cannot fit in one transaction, or whose keys lie in two partitions, is an
/// error.
fn batches<T: Bytes>(
    entries: &[(T, T)],
    groups: Option<&[String]>,
    max_ops: usize,
    max_bytes: usize,
    backend: &str,
    partition: &dyn Fn(&[u8]) -> usize,
) -> Result<Vec<Range<usize>>> {
    // Group boundaries: every index where a new group starts.
    let starts: Vec<usize> = (0..entries.len())
        .filter(|&i| i == 0 || groups.is_none_or(|g| g[i] != g[i - 1]))
        .chain(std::iter::once(entries.len()))
        .collect();
    let size = |r: Range<usize>| -> usize {
        entries[r]
            .iter()
            .map(|(k, v)| k.as_ref().len() + v.as_ref().len())
            .sum()
    };
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    let mut part = entries.first().map(|(k, _)| partition(k.as_ref()));
    for pair in starts.windows(2) {
        let (g0, g1) = (pair[0], pair[1]);
        let group_bytes = size(g0..g1);
        let group_part = partition(entries[g0].0.as_ref());
        if let Some((k, _)) = entries[g0..g1]
            .iter()
            .find(|(k, _)| partition(k.as_ref()) != group_part)
        {
            let name = groups.map(|g| g[g0].clone()).unwrap_or_default();
            return Err(Error::Invalid(format!(
                "object {name} would span two layers: {} and {} are held by different \
                 stores; an object must lie in one layer (move the layer's prefix above the \
                 object, or map the object under one layer)",
                display_key(entries[g0].0.as_ref()),
                display_key(k.as_ref())
            )));
        }
        if g0 > start && part != Some(group_part) {
            out.push(start..g0);
            start = g0;
            bytes = 0;
        }
        part = Some(group_part);
        if groups.is_some() && g1 - g0 > max_ops {
            let name = groups.map(|g| g[g0].clone()).unwrap_or_default();
            return Err(strata_core::Error::TooManyOps {
                backend: format!("{backend} (object {name})"),
                ops: g1 - g0,
                limit: max_ops,
            }
            .into());
        }
        if g0 > start && (g1 - start > max_ops || bytes + group_bytes > max_bytes) {
            out.push(start..g0);
            start = g0;
            bytes = 0;
        }
        bytes += group_bytes;
    }
    if start < entries.len() {
        out.push(start..entries.len());
    }
    Ok(out)
}

/// Loads sorted `entries` into `store`. `batch` lowers the batch size (it is capped
/// at the backend's `max_txn_ops`).
///
/// `entries` are sorted by key, each key once, as [`crate::snapshot::parse_snapshot`]
/// gives them. Every entry is checked against the backend's key and value limits
/// before the first write, and such an error is returned as it is (a re-run would stop
/// at the same key); any other failure is [`Error::Interrupted`], saying how far the
/// load got. `progress` is called after each batch with the report so far.
///
/// First the store's current values over the entries' key span are read page by page
/// at one revision and compared (a few large reads instead of one per batch); only
/// the entries that differ are then written, in batches with several in flight. When
/// the span holds far more keys than the input (a small load into a big store), each
/// batch reads just its own keys instead.
pub async fn load<S: Store + Clone + 'static, T: Bytes>(
    store: &S,
    entries: Vec<(T, T)>,
    batch: Option<usize>,
    progress: OnBatch<'_>,
) -> Result<LoadReport> {
    load_objects(store, entries, None, batch, progress).await
}

/// [`load`], keeping objects whole: `objects` names the object of each entry, and all
/// the keys of one object that need writing go into one transaction, so a reader (or
/// a load killed at any moment) never sees half an object. An object with more keys
/// to write than one transaction holds is [`strata_core::Error::TooManyOps`], before
/// anything is written.
pub async fn load_objects<S: Store + Clone + 'static, T: Bytes>(
    store: &S,
    entries: Vec<(T, T)>,
    objects: Option<Vec<String>>,
    batch: Option<usize>,
    progress: OnBatch<'_>,
) -> Result<LoadReport> {
    let caps = store.capabilities();
    let max_ops = batch
        .unwrap_or(caps.max_txn_ops)
        .clamp(1, caps.max_txn_ops.max(1));
    let mut report = LoadReport {
        total: entries.len() as u64,
        ..Default::default()
    };
    // "Run again" only for what a re-run can finish; a limit stops every re-run at
    // the same key, so it is reported as it is.
    let interrupted = |report: &LoadReport, source: Error| {
        if source.is_permanent() {
            return source;
        }
        Error::Interrupted {
            operation: "load".into(),
            done: report.changed + report.unchanged,
            total: report.total,
            source: Box::new(source),
        }
    };
    // Every entry must fit the backend before the first write.
    for (k, v) in &entries {
        check_put(k.as_ref(), v.as_ref(), &caps)?;
    }
    // Which entries need writing (`known` = compared already, so a batch may be
    // written without reading it again first).
    let differs = match differing(store, &entries).await {
        Ok(d) => d,
        Err(e) => return Err(interrupted(&report, e)),
    };
    // The revision the entries were compared at: a batch's first write holds only if
    // none of its keys changed since.
    let known = differs.as_ref().map(|(_, revision)| *revision);
    let differs = differs.map(|(d, _)| d);
    let n = entries.len();
    let grouped = objects.is_some();
    let names: Vec<Option<String>> = match objects {
        Some(names) => names.into_iter().map(Some).collect(),
        None => vec![None; n],
    };
    let mut todo: Vec<((T, T), Option<String>)> = entries
        .into_iter()
        .zip(names)
        .zip(differs.unwrap_or_else(|| vec![true; n]))
        .filter(|(_, d)| *d)
        .map(|(e, _)| e)
        .collect();
    if grouped {
        // An object's keys side by side, so a batch can take it whole.
        todo.sort_by(|x, y| {
            x.1.cmp(&y.1)
                .then_with(|| x.0 .0.as_ref().cmp(y.0 .0.as_ref()))
        });
    }
    let groups: Option<Vec<String>> = grouped.then(|| {
        todo.iter()
            .map(|(_, o)| o.clone().unwrap_or_default())
            .collect()
    });
    let todo: Vec<(T, T)> = todo.into_iter().map(|(e, _)| e).collect();
    if known.is_some() {
        report.unchanged = report.total - todo.len() as u64;
        progress(&report);
    }
    let plan = match batches(
        &todo,
        groups.as_deref(),
        max_ops,
        caps.max_request_bytes,
        caps.backend,
        &|key| store.partition(key),
    ) {
        Ok(plan) => plan,
        Err(e) => return Err(interrupted(&report, e)),
    };
    let todo: Arc<[(T, T)]> = todo.into();
    let mut pending = plan.into_iter();
    let mut running = JoinSet::new();
    let mut failure: Option<Error> = None;
    loop {
        while failure.is_none() && running.len() < caps.max_in_flight.max(1) {
            let Some(range) = pending.next() else { break };
            let (store, todo) = (store.clone(), todo.clone());
            running.spawn(async move { load_batch(&store, &todo[range], known).await });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        match joined {
            Ok(Ok(done)) => {
                report.changed += done.changed;
                report.unchanged += done.unchanged;
                report.txns += done.txns;
                report.retries += done.retries;
                report.revision = report.revision.max(done.revision);
                progress(&report);
            }
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(join) => {
                failure.get_or_insert(
                    strata_core::Error::backend(caps.backend, "load a batch", join).into(),
                );
            }
        }
    }
    match failure {
        None => Ok(report),
        Some(source) => Err(interrupted(&report, source)),
    }
}

/// How many keys the span may hold per input entry before per-batch reads are cheaper
/// than one scan of the span.
const SCAN_RATIO: i64 = 4;

/// For each entry, whether its key is missing or holds another value, from one paged
/// scan of the entries' key span, and the revision of that scan; `None` when the span
/// is too crowded to scan.
async fn differing<S: Store, T: Bytes>(
    store: &S,
    entries: &[(T, T)],
) -> Result<Option<(Vec<bool>, i64)>> {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Ok(Some((Vec::new(), 0)));
    };
    let mut end = last.0.as_ref().to_vec();
    end.push(0);
    let span = KeySpan::Range {
        start: first.0.as_ref().to_vec(),
        end: Some(end),
    };
    let count = store
        .range(RangeRequest::new(span.clone()).count_only())
        .await?;
    if count.count > SCAN_RATIO * entries.len() as i64 + 1000 {
        return Ok(None);
    }
    // Every entry differs until the scan finds its key with the same value.
    let mut differs = vec![true; entries.len()];
    if count.count == 0 {
        return Ok(Some((differs, count.revision)));
    }
    let mut next = 0;
    scan(store, span, count.revision, |page| {
        for kv in page {
            while next < entries.len() && entries[next].0.as_ref() < kv.key.as_slice() {
                next += 1;
            }
            if next < entries.len() && entries[next].0.as_ref() == kv.key.as_slice() {
                differs[next] = entries[next].1.as_ref() != kv.value.as_slice();
                next += 1;
            }
        }
        Ok(())
    })
    .await?;
    Ok(Some((differs, count.revision)))
}

/// What a load would do to one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The key is missing.
    Add,
    /// The key holds another value.
    Update,
    /// The key already holds the value.
    Same,
}

/// What loading `entries` would change, entry by entry, without writing: the plan
/// behind `--dry-run`. Reads the store one batch-sized range at a time.
pub async fn plan<S: Store, T: Bytes>(store: &S, entries: &[(T, T)]) -> Result<Vec<Change>> {
    let mut out = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(store.capabilities().max_txn_ops.max(1)) {
        let (existing, _) = current_values(store, chunk).await?;
        out.extend(chunk.iter().map(|(k, v)| match existing.get(k.as_ref()) {
            None => Change::Add,
            Some(now) if now.as_slice() == v.as_ref() => Change::Same,
            Some(_) => Change::Update,
        }));
    }
    Ok(out)
}

/// The current values of a chunk's keys, read in one transaction of gets (the keys
/// need not be contiguous: an object's fields are spread among other keys).
async fn current_values<S: Store, T: Bytes>(
    store: &S,
    chunk: &[(T, T)],
) -> Result<(HashMap<Vec<u8>, Vec<u8>>, i64)> {
    let gets = chunk.iter().map(|(k, _)| Op::get(KeySpan::key(k.as_ref())));
    let resp = store.txn(Txn::new().and_then(gets)).await?;
    let values = resp
        .responses
        .into_iter()
        .filter_map(|r| match r {
            OpResponse::Range(r) => r.kvs.into_iter().next(),
            _ => None,
        })
        .map(|kv| (kv.key, kv.value))
        .collect();
    Ok((values, resp.revision))
}

/// Writes one batch, retrying transient errors by re-reading and re-deciding. With
/// `known` (the revision the batch was compared at), its first attempt writes it
/// directly.
///
/// Exactly once: every write is conditioned on its keys not having changed since the
/// revision it decided at (`mod_revision` below the next one). So a write whose answer
/// was lost but which lands later (a stalled leader forwarding it after its
/// successor took over) finds the keys changed by the retry and does nothing, and a
/// retry finds what landed and writes only what is still missing.
async fn load_batch<S: Store, T: Bytes>(
    store: &S,
    chunk: &[(T, T)],
    known: Option<i64>,
) -> Result<LoadReport> {
    let started = tokio::time::Instant::now();
    let mut retries = 0;
    let mut backoff = Duration::from_millis(50);
    loop {
        let attempt = match known {
            Some(revision) if retries == 0 => write_all(store, chunk, revision).await,
            _ => write_missing(store, chunk).await,
        };
        match attempt {
            Ok(Some(mut done)) => {
                done.retries = retries;
                return Ok(done);
            }
            // A key changed since the decision: decide again from a fresh read.
            Ok(None) if started.elapsed() < RETRY_FOR => retries += 1,
            Ok(None) => {
                return Err(strata_core::Error::InvalidTxn(format!(
                    "the keys of a batch kept changing for {} s while it was written; load \
                     it again when the other writer is done",
                    RETRY_FOR.as_secs()
                ))
                .into())
            }
            Err(e) if e.is_transient() && started.elapsed() < RETRY_FOR => {
                retries += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Puts each entry, if none of the keys changed after `revision`. `None` when one did.
async fn put_unchanged_since<S: Store, T: Bytes>(
    store: &S,
    puts: &[&(T, T)],
    revision: i64,
) -> Result<Option<i64>> {
    let txn = Txn::new()
        .when(
            puts.iter()
                .map(|(k, _)| Compare::mod_revision(k.as_ref(), CompareOp::Less, revision + 1)),
        )
        .and_then(puts.iter().map(|(k, v)| Op::put(k.as_ref(), v.as_ref())));
    let resp = store.txn(txn).await?;
    Ok(resp.succeeded.then_some(resp.revision))
}

/// Writes every entry of the batch in one transaction, compared at `revision`.
async fn write_all<S: Store, T: Bytes>(
    store: &S,
    chunk: &[(T, T)],
    revision: i64,
) -> Result<Option<LoadReport>> {
    let puts: Vec<&(T, T)> = chunk.iter().collect();
    let Some(revision) = put_unchanged_since(store, &puts, revision).await? else {
        return Ok(None);
    };
    Ok(Some(LoadReport {
        total: chunk.len() as u64,
        changed: chunk.len() as u64,
        txns: 1,
        revision,
        ..Default::default()
    }))
}

/// Reads the batch's keys and writes, in one transaction, those missing or different
/// (if none of them changed since the read).
async fn write_missing<S: Store, T: Bytes>(
    store: &S,
    chunk: &[(T, T)],
) -> Result<Option<LoadReport>> {
    let (existing, read_at) = current_values(store, chunk).await?;
    let puts: Vec<&(T, T)> = chunk
        .iter()
        .filter(|(k, v)| existing.get(k.as_ref()).map(Vec::as_slice) != Some(v.as_ref()))
        .collect();
    let changed = puts.len() as u64;
    let mut done = LoadReport {
        total: chunk.len() as u64,
        changed,
        unchanged: chunk.len() as u64 - changed,
        ..Default::default()
    };
    if changed > 0 {
        let Some(revision) = put_unchanged_since(store, &puts, read_at).await? else {
            return Ok(None);
        };
        done.revision = revision;
        done.txns = 1;
    }
    Ok(Some(done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::MemStore;

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
            max_request_bytes: 1 << 20,
            range_page_size: 100,
            max_in_flight: 3,
            leases: false,
        });
        let data = entries(50);
        let first = load(&store, data.clone(), None, &mut |_| {}).await.unwrap();
        assert_eq!((first.changed, first.unchanged, first.txns), (50, 0, 8));
        let second = load(&store, data.clone(), None, &mut |_| {}).await.unwrap();
        assert_eq!((second.changed, second.unchanged, second.txns), (0, 50, 0));
        let mut changed = data.clone();
        changed[3].1 = "new".into();
        let third = load(&store, changed, None, &mut |_| {}).await.unwrap();
        assert_eq!((third.changed, third.txns), (1, 1));
    }

    #[tokio::test]
    async fn partial_data_is_completed_and_crowded_spans_read_per_batch() {
        let store = MemStore::new();
        let data = entries(100);
        // Half the keys present, one with another value.
        let half: Vec<_> = data.iter().step_by(2).cloned().collect();
        load(&store, half, None, &mut |_| {}).await.unwrap();
        store.put(b"/k/00002", b"stale").await.unwrap();
        let report = load(&store, data.clone(), None, &mut |_| {}).await.unwrap();
        assert_eq!((report.changed, report.unchanged), (51, 49));
        // A small load into a crowded span takes the per-batch path.
        let crowd: Vec<_> = (0..5000)
            .map(|i| (format!("/k/00050/{i:05}"), "x".to_owned()))
            .collect();
        load(&store, crowd, None, &mut |_| {}).await.unwrap();
        let few = vec![
            data[0].clone(),
            ("/k/00099".to_owned(), "changed".to_owned()),
        ];
        let report = load(&store, few, None, &mut |_| {}).await.unwrap();
        assert_eq!((report.changed, report.unchanged, report.txns), (1, 1, 1));
        assert_eq!(
            store.get(b"/k/00099").await.unwrap().unwrap().value,
            b"changed"
        );
    }

    #[test]
    fn batches_respect_ops_and_bytes() {
        let e: Vec<(String, String)> = (0..10).map(|i| (format!("k{i}"), "v".repeat(8))).collect();
        assert_eq!(
            batches(&e, None, 4, 1000, "t", &|_| 0).unwrap(),
            vec![0..4, 4..8, 8..10]
        );
        // Each entry is 10 bytes: at most 2 fit in 25 bytes.
        assert_eq!(batches(&e, None, 4, 25, "t", &|_| 0).unwrap().len(), 5);
        // An entry larger than the byte limit still gets a batch of its own (the
        // backend then names it in its error).
        assert_eq!(batches(&e, None, 4, 5, "t", &|_| 0).unwrap().len(), 10);
        // Objects are never split; one too large for a transaction is an error.
        let objects: Vec<String> = ["a", "a", "a", "b", "b", "c", "c", "c", "d", "d"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            batches(&e, Some(&objects), 4, 1000, "t", &|_| 0).unwrap(),
            vec![0..3, 3..5, 5..8, 8..10]
        );
        assert_eq!(
            batches(&e, Some(&objects), 6, 1000, "t", &|_| 0).unwrap(),
            vec![0..5, 5..10]
        );
        let err = batches(&e, Some(&objects), 2, 1000, "t", &|_| 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("object a") && err.contains("3 operations"),
            "{err}"
        );
    }
}
