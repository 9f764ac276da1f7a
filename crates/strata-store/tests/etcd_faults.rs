//! The etcd backend under faults: a watch that loses its server resumes without a gap
//! or a repeat, and a compare-and-swap whose answer is lost is decided by re-reading,
//! never blindly re-applied.

use std::time::Duration;

use strata_core::{Compare, CompareOp, Error, Event, KeySpan, Op, Store, Txn, WatchRequest};
use strata_store::{EtcdOptions, EtcdStore};
use strata_testkit::etcd::EtcdCluster;

async fn connect(cluster: &EtcdCluster) -> EtcdStore {
    let mut opts = EtcdOptions::new(cluster.endpoints());
    opts.request_timeout = Duration::from_secs(3);
    EtcdStore::connect(opts).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_the_server_restarts() {
    let mut cluster = EtcdCluster::start(1);
    let store = connect(&cluster).await;
    let mut watcher = store
        .watch(WatchRequest {
            span: KeySpan::prefix("/w/"),
            start_revision: 0,
        })
        .await
        .unwrap();
    let mut written = Vec::new();
    for i in 0..5 {
        written.push(
            store
                .put(format!("/w/{i}").as_bytes(), b"before")
                .await
                .unwrap()
                .0,
        );
    }
    let mut seen: Vec<Event> = Vec::new();
    while seen.len() < 5 {
        seen.extend(watcher.next().await.unwrap().unwrap());
    }
    // The server goes away under the open watch, and comes back.
    cluster.kill(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.restart(0);
    // Writes made while the watcher reconnects must still arrive, once each.
    for i in 0..20 {
        let rev = loop {
            match store
                .put(format!("/w/{}", i % 7).as_bytes(), b"after")
                .await
            {
                Ok((rev, _)) => break rev,
                Err(e) if e.is_transient() => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("{e}"),
            }
        };
        written.push(rev);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < written.len() {
        match tokio::time::timeout_at(deadline, watcher.next()).await {
            Ok(Some(Ok(batch))) => seen.extend(batch),
            other => panic!(
                "watch did not resume: {other:?} after {} of {} events",
                seen.len(),
                written.len()
            ),
        }
    }
    let revisions: Vec<i64> = seen.iter().map(Event::revision).collect();
    assert_eq!(revisions, written, "every change once, in order");
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(500), watcher.next()).await
    {
        panic!("a change was delivered twice: {extra:?}");
    }
}

/// Counter increments by compare-and-swap on `mod_revision`, each writing a unique
/// token, while the leader is killed. A transaction whose answer is lost is decided
/// by re-reading: if the token is there it counts, else it is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_cas_answers_are_decided_by_rereading() {
    let mut cluster = EtcdCluster::start(3);
    let store = connect(&cluster).await;
    let key = b"/counter".to_vec();
    store.put(&key, b"0:init").await.unwrap();
    let target = 150;
    let (mut successes, mut unknown, mut killed) = (0u32, 0u32, false);
    // The killed member and when to bring it back.
    let mut down: Option<(usize, tokio::time::Instant)> = None;
    let mut attempt = 0u32;
    while successes < target {
        if successes == 40 && !killed {
            let leader = cluster.leader().expect("a leader");
            cluster.kill(leader);
            down = Some((leader, tokio::time::Instant::now() + Duration::from_secs(2)));
            killed = true;
        }
        if let Some((member, at)) = down {
            if tokio::time::Instant::now() >= at {
                cluster.restart(member);
                down = None;
            }
        }
        attempt += 1;
        let token = format!("attempt-{attempt}");
        let current = match store.get(&key).await {
            Ok(kv) => kv.unwrap(),
            Err(e) if e.is_transient() => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        let n: u32 = String::from_utf8_lossy(&current.value)
            .split(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                current.mod_revision,
            )])
            .and_then([Op::put(key.clone(), format!("{}:{token}", n + 1))]);
        match store.txn(txn).await {
            Ok(resp) if resp.succeeded => successes += 1,
            Ok(_) => {}
            Err(Error::Unavailable {
                outcome_unknown: true,
                ..
            }) => {
                unknown += 1;
                // Re-read and decide: was our write applied?
                let after = loop {
                    match store.get(&key).await {
                        Ok(kv) => break kv.unwrap(),
                        Err(e) if e.is_transient() => {
                            tokio::time::sleep(Duration::from_millis(100)).await
                        }
                        Err(e) => panic!("{e}"),
                    }
                };
                if String::from_utf8_lossy(&after.value).ends_with(&format!(":{token}")) {
                    successes += 1;
                }
            }
            Err(e) if e.is_transient() => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    if let Some((member, _)) = down {
        cluster.restart(member);
    }
    let last = store.get(&key).await.unwrap().unwrap();
    let n: u32 = String::from_utf8_lossy(&last.value)
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Exactly one put per counted success: nothing applied twice, nothing lost.
    assert_eq!(n, target);
    assert_eq!(last.version, target as i64 + 1);
    eprintln!("{unknown} answers were lost and decided by re-reading");
}
