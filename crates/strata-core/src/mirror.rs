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
//! Owns the apply loop, the checkpoint and the lag; the first copy is
//! [`crate::transfer::copy`].

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::model::*;
use crate::store::{Store, Watcher};
use crate::transfer::{copy, CopyOptions, Selection, RESERVED_PREFIX};

/// How a mirror is doing, as reported every few seconds and at the end.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MirrorStatus {
    /// The last source revision applied to the target.
    pub applied_revision: i64,
    /// The newest source revision known.
    pub source_revision: i64,
    /// `source_revision - applied_revision`.
    pub lag_revisions: i64,
    /// How long the target has been behind (0 when caught up).
    pub lag_seconds: f64,
    /// Changes (puts and deletes) applied since the mirror started.
    pub changes_applied: u64,
    /// Keys written by the initial copy (0 when resuming from a checkpoint).
    pub copied: u64,
}

/// Mirror settings.
#[derive(Clone, Debug)]
pub struct MirrorOptions {
    /// Names the checkpoint, so several mirrors can share a target.
    pub name: String,
    /// How often `report` is called.
    pub report_every: Duration,
}

fn checkpoint_key(name: &str) -> Vec<u8> {
    let mut key = RESERVED_PREFIX.to_vec();
    key.extend_from_slice(b"mirror/");
    key.extend_from_slice(name.as_bytes());
    key
}

/// Retries a transient failure with backoff until `give_up` passes.
async fn retrying<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        match f().await {
            Err(e) if e.is_transient() && started.elapsed() < Duration::from_secs(300) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                return Err(Error::Interrupted {
                    operation: format!("mirror ({what})"),
                    done: 0,
                    total: 0,
                    source: Box::new(e),
                })
            }
            Ok(v) => return Ok(v),
        }
    }
}

async fn read_checkpoint<B: Store>(to: &B, key: &[u8]) -> Result<Option<i64>> {
    match to.get(key).await? {
        None => Ok(None),
        Some(kv) => String::from_utf8_lossy(&kv.value)
            .parse()
            .map(Some)
            .map_err(|_| {
                Error::InvalidTxn(format!(
                    "the mirror checkpoint {} does not hold a revision; delete it to copy again",
                    String::from_utf8_lossy(key)
                ))
            }),
    }
}

/// Runs the mirror until `stop` completes, then returns its final status. `report` is
/// called every `report_every` and after the initial copy.
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
    let key = checkpoint_key(&opts.name);
    let mut status = MirrorStatus::default();
    let mut behind_since: Option<Instant> = None;
    let mut applied = retrying("read the checkpoint", || read_checkpoint(to, &key)).await?;
    let span = match selection.source_prefixes().as_slice() {
        [one] => KeySpan::prefix(one.clone()),
        _ => KeySpan::all(),
    };
    let mut ticker = tokio::time::interval(opts.report_every);
    ticker.tick().await;
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
                Err(Error::Compacted { .. }) => None,
                Err(e) if e.is_transient() => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        let mut watcher: Watcher = match watcher {
            Some(w) => w,
            None => {
                let copy_opts = CopyOptions::default();
                let done = retrying("copy", || async {
                    copy(from, to, selection, &copy_opts, &mut |_| {}).await
                })
                .await?;
                status.copied += done.load.changed;
                let prev = applied;
                retrying("write the checkpoint", || {
                    set_checkpoint(to, &key, prev, done.source_revision, Vec::new())
                })
                .await?;
                applied = Some(done.source_revision);
                status.applied_revision = done.source_revision;
                status.source_revision = status.source_revision.max(done.source_revision);
                report(&status);
                continue;
            }
        };
        loop {
            let batch = tokio::select! {
                _ = &mut stop => {
                    status.lag_seconds = behind_since.map_or(0.0, |t| t.elapsed().as_secs_f64());
                    return Ok(status);
                }
                _ = ticker.tick() => {
                    if let Ok(st) = from.status().await {
                        status.source_revision = status.source_revision.max(st.revision);
                    }
                    status.applied_revision = applied.unwrap_or(0);
                    status.lag_revisions = (status.source_revision - status.applied_revision).max(0);
                    if status.lag_revisions == 0 {
                        behind_since = None;
                    } else {
                        behind_since.get_or_insert_with(Instant::now);
                    }
                    status.lag_seconds = behind_since.map_or(0.0, |t| t.elapsed().as_secs_f64());
                    report(&status);
                    continue;
                }
                batch = watcher.next() => batch,
            };
            let events = match batch {
                Some(Ok(events)) => events,
                Some(Err(Error::Compacted { .. })) => {
                    applied = None;
                    break;
                }
                // The watch ended (the source went away): resume from the checkpoint.
                Some(Err(_)) | None => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
            };
            let Some(revision) = events.last().map(Event::revision) else {
                continue;
            };
            status.source_revision = status.source_revision.max(revision);
            behind_since.get_or_insert_with(Instant::now);
            let ops: Vec<Op> = events
                .iter()
                .filter(|e| selection.includes(&e.kv.key))
                .map(|e| {
                    let key = selection.rewrite(&e.kv.key);
                    match e.kind {
                        EventKind::Put => Op::put(key, e.kv.value.clone()),
                        EventKind::Delete => Op::delete(KeySpan::key(key)),
                    }
                })
                .collect();
            let count = ops.len() as u64;
            if count > 0 {
                let prev = applied;
                retrying("apply changes", || {
                    set_checkpoint(to, &key, prev, revision, ops.clone())
                })
                .await?;
                status.changes_applied += count;
            }
            applied = Some(revision);
            status.applied_revision = revision;
            status.lag_revisions = (status.source_revision - revision).max(0);
            if status.lag_revisions == 0 {
                behind_since = None;
            }
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
                Error::Unavailable {
                    outcome_unknown: true,
                    ..
                }
            ) =>
        {
            // The answer was lost: read the checkpoint to learn whether it landed.
            match read_checkpoint(to, key).await {
                Ok(Some(at)) if at >= revision => Ok(()),
                _ => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// A guarded write failed: fine if the checkpoint already shows this revision (an
/// earlier attempt landed), an error if something else moved it.
async fn decide<B: Store>(to: &B, key: &[u8], revision: i64) -> Result<()> {
    match read_checkpoint(to, key).await? {
        Some(at) if at >= revision => Ok(()),
        other => Err(Error::InvalidTxn(format!(
            "the mirror checkpoint {} holds {:?}, not what this mirror wrote: is another mirror \
             with the same --name running? Stop it, or give this one another --name",
            String::from_utf8_lossy(key),
            other
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemStore;
    use crate::transfer::{diff, Rewrite};

    #[tokio::test]
    async fn mirrors_copy_then_changes_and_resumes_from_the_checkpoint() {
        let (a, b) = (MemStore::new(), MemStore::new());
        a.put(b"/m/1", b"one").await.unwrap();
        let sel = Selection {
            prefixes: vec![b"/m/".to_vec()],
            rewrites: vec![Rewrite::parse("/m/=/copy/").unwrap()],
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
    }
}
