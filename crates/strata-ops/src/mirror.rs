//! `mirror`: a copy, then every later change of the source applied to the target in
//! order, until stopped.
//!
//! The mirror keeps its checkpoint — the last source revision applied — in the target
//! itself, at `/_strata/mirror/<name>`, written in the same transaction as the changes
//! of that revision and guarded by a compare on its previous value. So a restart of
//! either side, or of the mirror, resumes from the checkpoint with no gap, and a batch
//! whose answer was lost is decided by re-reading the checkpoint, never applied twice.
//! If the source compacted past the checkpoint, the mirror copies again.
//!
//! Owns the apply loop and the checkpoint. What the status says (the lag, every
//! failure the loop retries, whether the source answers: it is asked for its revision
//! at each report, so an unreachable source shows even while the watch quietly
//! reconnects) is the `status` module; the first copy is [`crate::transfer::copy`];
//! a source of several stores (a layered keyspace) is mirrored per store by `parts`.

mod parts;
mod status;

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::transfer::{copy, CopyOptions, Selection};
use strata_core::model::*;
use strata_core::store::{Store, Watcher};

pub use parts::{mirror_parts, SourcePart};
pub use status::MirrorStatus;
use status::{Step, Tracker};

/// Mirror settings.
#[derive(Clone, Debug)]
pub struct MirrorOptions {
    /// Names the checkpoint, so several mirrors can share a target.
    pub name: String,
    /// How often `report` is called (and the source asked for its revision).
    pub report_every: Duration,
}

/// The checkpoint keys, one per partition of the target (see
/// `Store::own_key`): `/_strata/mirror/NAME` on one store; on a layered keyspace one
/// in each store, so that a batch's writes and the checkpoint that guards them are in
/// one transaction of one store.
fn checkpoint_keys<B: Store>(to: &B, name: &str) -> Vec<Vec<u8>> {
    (0..to.partitions().max(1))
        .map(|p| to.own_key(p, &format!("mirror/{name}")))
        .collect()
}

/// Each partition's checkpoint, `None` where it has none.
async fn read_each<B: Store>(to: &B, keys: &[Vec<u8>]) -> Result<Vec<Option<i64>>> {
    let mut out = Vec::new();
    for key in keys {
        out.push(read_checkpoint(to, key).await?);
    }
    Ok(out)
}

/// Every partition's checkpoint; `None` unless all are there (a copy is due).
async fn read_checkpoints<B: Store>(to: &B, keys: &[Vec<u8>]) -> Result<Option<Vec<i64>>> {
    Ok(read_each(to, keys).await?.into_iter().collect())
}

/// Applies one source revision's `ops` and moves each partition's checkpoint that
/// has writes from `prev` to `revision`; `ops` outside every partition are refused
/// by the store, whole. Returns the partitions moved.
async fn apply_by_partition<B: Store>(
    to: &B,
    keys: &[Vec<u8>],
    prev: &[i64],
    revision: i64,
    ops: &[(usize, Op)],
) -> Result<Vec<usize>> {
    let mut moved = Vec::new();
    for p in 0..keys.len() {
        let mine: Vec<Op> = ops
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, op)| op.clone())
            .collect();
        if mine.is_empty() || prev[p] >= revision {
            continue;
        }
        set_checkpoint(to, &keys[p], Some(prev[p]), revision, mine).await?;
        moved.push(p);
    }
    let outside: Vec<Op> = ops
        .iter()
        .filter(|(q, _)| *q >= keys.len())
        .map(|(_, op)| op.clone())
        .collect();
    if !outside.is_empty() {
        // The store says why (a key outside every layer), and writes nothing.
        to.txn(Txn::new().and_then(outside)).await?;
    }
    Ok(moved)
}

async fn read_checkpoint<B: Store>(to: &B, key: &[u8]) -> Result<Option<i64>> {
    match to.get(key).await? {
        None => Ok(None),
        Some(kv) => String::from_utf8_lossy(&kv.value)
            .parse()
            .map(Some)
            .map_err(|_| {
                Error::Invalid(format!(
                    "the mirror checkpoint {} does not hold a revision; delete it to copy again",
                    String::from_utf8_lossy(key)
                ))
            }),
    }
}

/// Runs the mirror until `stop` completes, then returns its final status. `report` is
/// called when the watch (re)starts (so right after the initial copy), every
/// `report_every`, and after each failed request; failures of either store are
/// retried (for up to five minutes each) and show in the status meanwhile.
pub async fn mirror<A, B>(
    from: &A,
    to: &B,
    selection: &Selection,
    opts: &MirrorOptions,
    report: &mut (dyn FnMut(&MirrorStatus) + Send),
    stop: impl Future<Output = ()>,
) -> Result<MirrorStatus>
where
    A: Store,
    B: Store + Clone + 'static,
{
    let mut stop = std::pin::pin!(stop);
    let keys = checkpoint_keys(to, &opts.name);
    let mut t = Tracker {
        from,
        status: MirrorStatus::default(),
        behind_since: None,
        report,
    };
    let Some(mut parts) = t
        .retrying("read the checkpoint", Step::Target, stop.as_mut(), || {
            read_checkpoints(to, &keys)
        })
        .await?
    else {
        return Ok(t.finish());
    };
    // Every change up to here is in the target: the watch resumes after the oldest
    // partition's checkpoint, and each partition skips what it holds already.
    let mut applied = parts.as_ref().and_then(|p| p.iter().min().copied());
    // Resuming: the target holds the source up to the checkpoint already, and a stop
    // before the first report says so (it said revision 0).
    if let Some(at) = applied {
        t.status.applied_revision = at;
        t.status.source_revision = t.status.source_revision.max(at);
    }
    let span = match selection.source_prefixes().as_slice() {
        [one] => KeySpan::prefix(one.clone()),
        _ => KeySpan::all(),
    };
    let mut ticker = tokio::time::interval(opts.report_every);
    ticker.tick().await;
    let mut backoff = Duration::from_millis(500);
    // Set when the source can no longer replay from the checkpoint: the copy then also
    // deletes what the source no longer holds, so that nothing it missed stays.
    let mut recopy = false;
    loop {
        // Start (or resume) the watch; copy first when there is nothing to resume from.
        let watcher = match applied {
            Some(rev) => match from
                .watch(WatchRequest {
                    span: span.clone(),
                    start_revision: rev + 1,
                })
                .await
            {
                Ok(w) => Some(w),
                Err(strata_core::Error::Compacted { .. }) => {
                    recopy = true;
                    None
                }
                Err(e) if e.is_transient() => {
                    t.source_failed(&e);
                    t.report();
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.as_mut() => return Ok(t.finish()),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let mut watcher: Watcher = match watcher {
            Some(w) => w,
            None => {
                let copy_opts = CopyOptions {
                    // Extras are only known without rewrites or a bound to some spans.
                    delete_extra: recopy
                        && (selection.rewrites.is_empty() || selection.within.is_empty()),
                    ..CopyOptions::default()
                };
                let Some(done) = t
                    .retrying("copy", Step::Copy, stop.as_mut(), || async {
                        copy(from, to, selection, &copy_opts, &mut |_| {}).await
                    })
                    .await?
                else {
                    return Ok(t.finish());
                };
                t.status.copied += done.load.changed + done.deleted_extra;
                if recopy {
                    t.status.recopies += 1;
                    recopy = false;
                }
                let before: Vec<Option<i64>> = match &parts {
                    Some(p) => p.iter().copied().map(Some).collect(),
                    None => read_each(to, &keys).await?,
                };
                for (key, prev) in keys.iter().zip(before) {
                    let written = t
                        .retrying("write the checkpoint", Step::Target, stop.as_mut(), || {
                            set_checkpoint(to, key, prev, done.source_revision, Vec::new())
                        })
                        .await?;
                    if written.is_none() {
                        return Ok(t.finish());
                    }
                }
                parts = Some(vec![done.source_revision; keys.len()]);
                applied = Some(done.source_revision);
                t.applied(done.source_revision);
                // Reported once the watch starts, right after.
                continue;
            }
        };
        // The watch is set up: say so, with whether the source answers.
        t.status.applied_revision = applied.unwrap_or(0);
        if t.probe_source().await {
            backoff = Duration::from_millis(500);
        }
        t.report();
        loop {
            let batch = tokio::select! {
                _ = stop.as_mut() => return Ok(t.finish()),
                _ = ticker.tick() => {
                    t.probe_source().await;
                    t.report();
                    continue;
                }
                batch = watcher.next() => batch,
            };
            let events = match batch {
                Some(Ok(events)) => events,
                Some(Err(strata_core::Error::Compacted { .. })) => {
                    applied = None;
                    recopy = true;
                    break;
                }
                // The watch ended (the source went away): resume from the checkpoint.
                Some(Err(e)) => {
                    t.source_failed(&e);
                    t.report();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
                None => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
            };
            let Some(revision) = events.last().map(Event::revision) else {
                continue;
            };
            // Events arrive: the source is reachable, and the target is behind.
            t.status.source_error = None;
            t.status.source_revision = t.status.source_revision.max(revision);
            t.update_lag();
            // A put of a key that expires by itself in the source gets a lease of the
            // time it has left.
            let expiring: Vec<Option<u64>> = events
                .iter()
                .map(|e| match e.kind {
                    EventKind::Put if selection.includes(&e.kv.key) => {
                        from.expiry(&e.kv).map(crate::leases::ttl_secs)
                    }
                    _ => None,
                })
                .collect();
            let secs: Vec<u64> = expiring.iter().flatten().copied().collect();
            let leases = if secs.is_empty() {
                Default::default()
            } else {
                let got = t
                    .retrying("grant a lease", Step::Target, stop.as_mut(), || {
                        crate::leases::grant(to, secs.clone())
                    })
                    .await?;
                let Some(got) = got else {
                    return Ok(t.finish());
                };
                got
            };
            let ops: Vec<(usize, Op)> = events
                .iter()
                .zip(&expiring)
                .filter(|(e, _)| selection.includes(&e.kv.key))
                .map(|(e, ttl)| {
                    let key = selection.rewrite(&e.kv.key);
                    let part = to.partition(&key);
                    let lease = ttl.map_or(0, |s| leases[&s]);
                    let op = match e.kind {
                        EventKind::Put => Op::put_with_lease(key, e.kv.value.clone(), lease),
                        EventKind::Delete => Op::delete(KeySpan::key(key)),
                    };
                    (part, op)
                })
                .collect();
            let count = ops.len() as u64;
            if count > 0 {
                let prev = parts.clone().unwrap_or_else(|| vec![0; keys.len()]);
                let written = t
                    .retrying("apply changes", Step::Target, stop.as_mut(), || {
                        apply_by_partition(to, &keys, &prev, revision, &ops)
                    })
                    .await?;
                let Some(moved) = written else {
                    return Ok(t.finish());
                };
                if let Some(p) = parts.as_mut() {
                    for i in moved {
                        p[i] = revision;
                    }
                }
                t.status.changes_applied += count;
            }
            applied = Some(revision);
            t.applied(revision);
        }
    }
}

/// Applies `ops` and moves the checkpoint from `prev` to `revision`, in transactions
/// guarded by the checkpoint's value. Returns once the target holds them; a batch
/// already applied (its answer lost) is recognised by the checkpoint and not redone.
async fn set_checkpoint<B: Store>(
    to: &B,
    key: &[u8],
    prev: Option<i64>,
    revision: i64,
    ops: Vec<Op>,
) -> Result<()> {
    let guard = match prev {
        Some(p) => Compare::value(key.to_vec(), CompareOp::Equal, p.to_string()),
        None => Compare::absent(key.to_vec()),
    };
    let room = to.capabilities().max_txn_ops.saturating_sub(1).max(1);
    let mut chunks: Vec<Vec<Op>> = ops.chunks(room).map(<[Op]>::to_vec).collect();
    let last = chunks.pop().unwrap_or_default();
    // Large revisions are split; only the last part moves the checkpoint, so a crash
    // in between re-applies the earlier parts (puts and deletes are idempotent).
    for chunk in chunks {
        let resp = to
            .txn(Txn::new().when([guard.clone()]).and_then(chunk))
            .await?;
        if !resp.succeeded {
            return decide(to, key, revision).await;
        }
    }
    let mut final_ops = last;
    final_ops.push(Op::put(key.to_vec(), revision.to_string()));
    match to.txn(Txn::new().when([guard]).and_then(final_ops)).await {
        Ok(resp) if resp.succeeded => Ok(()),
        Ok(_) => decide(to, key, revision).await,
        Err(e)
            if matches!(
                e,
                strata_core::Error::Unavailable {
                    outcome_unknown: true,
                    ..
                }
            ) =>
        {
            // The answer was lost: read the checkpoint to learn whether it landed.
            match read_checkpoint(to, key).await {
                Ok(Some(at)) if at >= revision => Ok(()),
                _ => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// A guarded write failed: fine if the checkpoint already shows this revision (an
/// earlier attempt landed), an error if something else moved it.
async fn decide<B: Store>(to: &B, key: &[u8], revision: i64) -> Result<()> {
    match read_checkpoint(to, key).await? {
        Some(at) if at >= revision => Ok(()),
        other => Err(Error::Invalid(format!(
            "the mirror checkpoint {} holds {:?}, not what this mirror wrote: is another mirror \
             of the same name running? Stop it, or give this one another name",
            String::from_utf8_lossy(key),
            other
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    use crate::transfer::{diff, Rewrite};
    use strata_core::MemStore;

    #[tokio::test]
    async fn mirrors_copy_then_changes_and_resumes_from_the_checkpoint() {
        let (a, b) = (MemStore::new(), MemStore::new());
        a.put(b"/m/1", b"one").await.unwrap();
        let sel = Selection {
            prefixes: vec![b"/m/".to_vec()],
            rewrites: vec![Rewrite::parse("/m/=/copy/").unwrap()],
            ..Selection::default()
        };
        let opts = MirrorOptions {
            name: "t".into(),
            report_every: Duration::from_millis(50),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let writer = {
            let a = a.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    a.put(
                        format!("/m/{}", i % 10).as_bytes(),
                        i.to_string().as_bytes(),
                    )
                    .await
                    .unwrap();
                    if i % 7 == 0 {
                        a.delete(KeySpan::key(format!("/m/{}", i % 10)))
                            .await
                            .unwrap();
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = stop_tx.send(());
            })
        };
        let status = mirror(&a, &b, &sel, &opts, &mut |_| {}, async {
            let _ = stop_rx.await;
        })
        .await
        .unwrap();
        writer.await.unwrap();
        assert_eq!(status.applied_revision, a.status().await.unwrap().revision);
        let d = diff(&a, &b, &[]).await.unwrap();
        assert!(d.only_in_to.iter().all(|k| k.starts_with(b"/copy/")));
        // Resume: changes made while the mirror was down arrive after a restart.
        a.put(b"/m/late", b"x").await.unwrap();
        let resumed = mirror(
            &a,
            &b,
            &sel,
            &opts,
            &mut |_| {},
            tokio::time::sleep(Duration::from_millis(300)),
        )
        .await
        .unwrap();
        assert_eq!(
            resumed.copied, 0,
            "resumed from the checkpoint, no second copy"
        );
        assert_eq!(b.get(b"/copy/late").await.unwrap().unwrap().value, b"x");
        let checkpoint = b.get(b"/_strata/mirror/t").await.unwrap().unwrap();
        assert_eq!(
            checkpoint.value,
            a.status().await.unwrap().revision.to_string().into_bytes()
        );
        // Regression: a mirror stopped at once after resuming said "stopped at source
        // revision 0"; it stands at its checkpoint.
        let at = a.status().await.unwrap().revision;
        let stopped = mirror(&a, &b, &sel, &opts, &mut |_| {}, async {})
            .await
            .unwrap();
        assert_eq!(stopped.applied_revision, at);
    }

    /// Answers like `MemStore` until switched off, then fails every request as
    /// unavailable (a watch already open keeps running, as etcd's would while it
    /// reconnects).
    type Switchable = strata_core::fault::Cuttable<MemStore>;

    /// Waits (up to 10 s) for a reported status that passes `ok`.
    async fn reported(
        seen: &std::sync::Mutex<Vec<MirrorStatus>>,
        what: &str,
        ok: impl Fn(&MirrorStatus) -> bool,
    ) -> MirrorStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = seen.lock().unwrap().iter().rev().find(|s| ok(s)) {
                return s.clone();
            }
            assert!(Instant::now() < deadline, "no status where {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn failures_of_either_store_show_in_the_status_and_clear_on_recovery() {
        let (a, b) = (
            Switchable::new(MemStore::new()),
            Switchable::new(MemStore::new()),
        );
        a.inner.put(b"/k", b"0").await.unwrap();
        let opts = MirrorOptions {
            name: "t".into(),
            report_every: Duration::from_millis(20),
        };
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<MirrorStatus>::new()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let log = seen.clone();
        let mut report = move |s: &MirrorStatus| log.lock().unwrap().push(s.clone());
        let everything = Selection::default();
        let run = mirror(&a, &b, &everything, &opts, &mut report, async {
            let _ = stop_rx.await;
        });
        let drive = async {
            let caught_up = |s: &MirrorStatus| s.is_healthy() && s.applied_revision == 2;
            reported(&seen, "the copy is applied", caught_up).await;
            // The source stops answering: the status says so, and counts the errors.
            a.set_down(true);
            let down = reported(&seen, "the source fails", |s| s.source_error.is_some()).await;
            assert!(down.errors >= 1 && !down.is_healthy());
            a.set_down(false);
            reported(&seen, "the source answers again", |s| s.is_healthy()).await;
            // The target fails while the source changes: the lag grows.
            b.set_down(true);
            for i in 1..=3 {
                a.inner.put(b"/k", i.to_string().as_bytes()).await.unwrap();
            }
            let behind = reported(&seen, "the target fails, behind", |s| {
                s.target_error.is_some() && s.lag_revisions == 3
            })
            .await;
            assert_eq!(behind.source_revision, 5);
            reported(&seen, "the lag has a duration", |s| {
                s.target_error.is_some() && s.lag_seconds > 0.0
            })
            .await;
            b.set_down(false);
            reported(&seen, "caught up again", |s| {
                s.is_healthy() && s.applied_revision == 5 && s.lag_revisions == 0
            })
            .await;
            let _ = stop_tx.send(());
        };
        let (status, ()) = tokio::join!(run, drive);
        let status = status.unwrap();
        assert_eq!(status.lag_seconds, 0.0);
        assert_eq!(b.inner.get(b"/k").await.unwrap().unwrap().value, b"3");
    }
}
