//! A mirror from a source of several stores (a layered keyspace's): one mirror per
//! store, each reading only the spans that store holds, each with its own checkpoint
//! in the target (`/_strata/mirror/NAME@STORE`) at that store's own revision, run
//! side by side and reported as one status with each store's inside.
//!
//! Owns the fan-out, the shared stop and the merged status; each store's mirror is
//! the parent module's [`mirror`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::Poll;

use super::{mirror, MirrorOptions, MirrorStatus};
use crate::error::Result;
use crate::transfer::Selection;
use strata_core::model::KeySpan;
use strata_core::store::Store;

/// One store of a mirror's source and the key spans it holds.
#[derive(Debug)]
pub struct SourcePart<'a, A> {
    /// Its name (the config file's); it names the checkpoint too.
    pub name: String,
    /// The store itself.
    pub store: &'a A,
    /// The keys this store holds; its mirror takes only these.
    pub spans: Vec<KeySpan>,
}

/// The mirror of each part of a source, side by side, until `stop` completes or one
/// of them fails (which ends them all with its error). `report` hears the merged
/// status whenever one of them reports.
pub async fn mirror_parts<A, B>(
    parts: &[SourcePart<'_, A>],
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
    let names: Vec<String> = parts.iter().map(|p| p.name.clone()).collect();
    let (stopped, stopping) = tokio::sync::watch::channel(false);
    let shared = Mutex::new((vec![MirrorStatus::default(); parts.len()], report));
    let runs: Vec<_> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let selection = Selection {
                within: part.spans.clone(),
                ..selection.clone()
            };
            let opts = MirrorOptions {
                name: format!("{}@{}", opts.name, part.name),
                ..opts.clone()
            };
            let mut stopping = stopping.clone();
            let (shared, names) = (&shared, &names);
            Box::pin(async move {
                let mut tell = |s: &MirrorStatus| {
                    let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
                    g.0[i] = s.clone();
                    let merged = merge(names, &g.0);
                    (g.1)(&merged);
                };
                let stop = async move {
                    let _ = stopping.wait_for(|s| *s).await;
                };
                mirror(part.store, to, &selection, &opts, &mut tell, stop).await
            }) as Pin<Box<dyn Future<Output = Result<MirrorStatus>> + Send + '_>>
        })
        .collect();
    let all = join_or_fail(runs);
    tokio::pin!(all);
    let finals = tokio::select! {
        done = &mut all => done?,
        _ = stop => {
            let _ = stopped.send(true);
            all.await?
        }
    };
    Ok(merge(&names, &finals))
}

/// Every future's output in order, or the first error (dropping the rest).
async fn join_or_fail<'a, T>(
    mut runs: Vec<Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>>,
) -> Result<Vec<T>> {
    let mut done: Vec<Option<T>> = runs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (run, slot) in runs.iter_mut().zip(done.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            match run.as_mut().poll(cx) {
                Poll::Ready(Ok(v)) => *slot = Some(v),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        if done.iter().all(Option::is_some) {
            Poll::Ready(Ok(done.iter_mut().filter_map(Option::take).collect()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// One status for all parts: counts and lags summed, the longest lag in seconds, the
/// first failure of each side named by its store, each part's own status inside.
fn merge(names: &[String], each: &[MirrorStatus]) -> MirrorStatus {
    let named = |name: &str, e: &Option<String>| e.as_ref().map(|e| format!("{name}: {e}"));
    let mut out = MirrorStatus::default();
    for (name, s) in names.iter().zip(each) {
        out.lag_revisions += s.lag_revisions;
        out.lag_seconds = out.lag_seconds.max(s.lag_seconds);
        out.changes_applied += s.changes_applied;
        out.copied += s.copied;
        out.recopies += s.recopies;
        out.errors += s.errors;
        out.source_error = out.source_error.or_else(|| named(name, &s.source_error));
        out.target_error = out.target_error.or_else(|| named(name, &s.target_error));
        out.parts.push((name.clone(), s.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use strata_core::mem::MemStore;

    #[tokio::test]
    async fn each_part_mirrors_its_own_spans_from_its_own_revision() {
        // Two stores that also hold keys outside their layers: those never move.
        let (a, b, target) = (MemStore::new(), MemStore::new(), MemStore::new());
        a.put(b"/ops/1", b"a").await.unwrap();
        a.put(b"/pub/stray", b"not a's").await.unwrap();
        b.put(b"/pub/1", b"b").await.unwrap();
        b.put(b"/ops/stray", b"not b's").await.unwrap();
        let parts = [
            SourcePart {
                name: "a".into(),
                store: &a,
                spans: vec![KeySpan::prefix("/ops/")],
            },
            SourcePart {
                name: "b".into(),
                store: &b,
                spans: vec![KeySpan::prefix("/pub/")],
            },
        ];
        let opts = MirrorOptions {
            name: "m".into(),
            report_every: Duration::from_millis(20),
        };
        let (a2, b2, t2) = (a.clone(), b.clone(), target.clone());
        let stop = async move {
            // Changes after the copy, in each store at its own pace.
            while t2.get(b"/pub/1").await.unwrap().is_none() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            for i in 2..6 {
                a2.put(format!("/ops/{i}").as_bytes(), b"a").await.unwrap();
            }
            b2.delete(KeySpan::key(b"/pub/1".to_vec())).await.unwrap();
            while t2.get(b"/ops/5").await.unwrap().is_none()
                || t2.get(b"/pub/1").await.unwrap().is_some()
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let mut seen = 0;
        let status = mirror_parts(
            &parts,
            &target,
            &Selection::default(),
            &opts,
            &mut |_| seen += 1,
            stop,
        )
        .await
        .unwrap();
        assert!(seen > 0);
        let mut keys = Vec::new();
        strata_core::store::scan(&target, KeySpan::all(), 0, |page| {
            keys.extend(
                page.into_iter()
                    .map(|kv| String::from_utf8(kv.key).unwrap()),
            );
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(
            keys,
            [
                "/_strata/mirror/m@a",
                "/_strata/mirror/m@b",
                "/ops/1",
                "/ops/2",
                "/ops/3",
                "/ops/4",
                "/ops/5"
            ]
        );
        assert_eq!(status.parts.len(), 2);
        assert_eq!(status.changes_applied, 5);
    }
}
