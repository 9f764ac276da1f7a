//! The replica (`strata_core::replica`) on every real backend, opened by URL as
//! `AnyStore`: it follows puts, deletes and transactions and then equals a consistent
//! read of the store at its revision, with every change applied once; `wait_for` after
//! a put makes the value visible; a compaction past its revision while its watch is
//! down makes it read the prefix again. On a three-node etcd, the leader and then the
//! one member a replica is connected to are killed and restarted while writes go on.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strata_core::fault::Cuttable;
use strata_core::replica::{Replica, ReplicaOptions};
use strata_core::{scan, Event, KeySpan, KeyValue, Op, Result, Store, Txn, WatchRequest};
use strata_store::{open_with, AnyStore, ConnectOptions};
use strata_testkit::etcd::{self, EtcdCluster};
use strata_testkit::postgres;

const WAIT: Duration = Duration::from_secs(60);

fn quick() -> ReplicaOptions {
    ReplicaOptions {
        check_every: Duration::from_millis(200),
    }
}

async fn open(url: &str) -> AnyStore {
    let opts = ConnectOptions {
        request_timeout: Some(Duration::from_secs(3)),
        ..ConnectOptions::default()
    };
    open_with(url, &opts).await.unwrap()
}

async fn sqlite(dir: &tempfile::TempDir) -> AnyStore {
    open(&format!(
        "sqlite:{}",
        dir.path().join("replica.db").display()
    ))
    .await
}

async fn pg() -> AnyStore {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let schema = format!(
        "replica{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    open(&postgres::shared().url(&schema)).await
}

/// The replica holds exactly what a consistent read of the store gives at the
/// replica's revision, metadata included.
async fn assert_same<S: Store>(replica: &Replica, store: &S) {
    let held = replica.list(replica.prefix());
    let span = KeySpan::prefix(replica.prefix().to_vec());
    // A member just restarted may refuse a connection for a moment: retry those.
    let deadline = tokio::time::Instant::now() + WAIT;
    let want = loop {
        let mut want = Vec::new();
        let read = scan(store, span.clone(), held.revision, |page| {
            want.extend(page);
            Ok(())
        })
        .await;
        match read {
            Ok(_) => break want,
            Err(e) if e.is_transient() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("reading the store to compare: {e}"),
        }
    };
    let got: Vec<KeyValue> = held.value.iter().map(|kv| KeyValue::clone(kv)).collect();
    assert_eq!(got, want, "at revision {}", held.revision);
}

/// How many changes under `prefix` the store made after `after` up to `to` (the
/// revision of one of them), by a watch of its own.
async fn changes_between<S: Store>(store: &S, prefix: &str, after: i64, to: i64) -> u64 {
    let req = WatchRequest {
        span: KeySpan::prefix(prefix),
        start_revision: after + 1,
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut watcher = loop {
        match store.watch(req.clone()).await {
            Ok(w) => break w,
            Err(e) if e.is_transient() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("watching the store to count changes: {e}"),
        }
    };
    let (mut count, mut at) = (0, after);
    while at < to {
        let batch = tokio::time::timeout(WAIT, watcher.next()).await;
        let batch = batch
            .expect("the reference watch stalled")
            .unwrap()
            .unwrap();
        at = batch.last().map_or(at, Event::revision);
        count += batch.iter().filter(|e| e.revision() <= to).count() as u64;
    }
    count
}

async fn eventually(what: &str, ok: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {WAIT:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One write under `prefix` (or, every fifth, elsewhere) chosen by `n`; returns the
/// revision it produced.
async fn write<S: Store>(store: &S, prefix: &str, n: u64) -> Result<i64> {
    let key = |i: u64| format!("{prefix}k{:02}", i % 40);
    match n % 5 {
        0 | 1 => Ok(store.put(key(n).as_bytes(), &n.to_be_bytes()).await?.0),
        2 => Ok(store.delete(KeySpan::key(key(n + 7))).await?.0),
        3 => {
            let txn = Txn::new().and_then([Op::put(key(n), "a"), Op::put(key(n + 1), "b")]);
            Ok(store.txn(txn).await?.revision)
        }
        _ => Ok(store.put(b"/elsewhere/replica", b"x").await?.0),
    }
}

async fn follows_writes_and_reads_your_writes<S: Store + Clone + 'static>(store: S, prefix: &str) {
    for n in 0..30 {
        write(&store, prefix, n).await.unwrap();
    }
    let replica = Replica::start_with(store.clone(), prefix, quick())
        .await
        .unwrap();
    assert_same(&replica, &store).await;
    let first = replica.revision();
    let mut last = first;
    for n in 30..200 {
        last = last.max(write(&store, prefix, n).await.unwrap());
        if n % 25 == 0 {
            let key = format!("{prefix}mine");
            let (rev, _) = store.put(key.as_bytes(), &n.to_be_bytes()).await.unwrap();
            replica.wait_for(rev, WAIT).await.unwrap();
            let seen = replica.get(key.as_bytes());
            assert!(seen.revision >= rev);
            assert_eq!(
                seen.value.unwrap().value,
                n.to_be_bytes(),
                "read your write"
            );
            last = rev;
        }
    }
    // The last write may be outside the prefix: reached by checking the keys.
    replica.wait_for(last, WAIT).await.unwrap();
    assert_same(&replica, &store).await;
    // A last change under the prefix ends the count of changes.
    let (last, _) = store
        .put(format!("{prefix}last").as_bytes(), b"x")
        .await
        .unwrap();
    replica.wait_for(last, WAIT).await.unwrap();
    let status = replica.status();
    assert_eq!(status.reads, 1, "{status:?}");
    let expected = changes_between(&store, prefix, first, last).await;
    assert_eq!(status.changes, expected, "every change applied once");
}

async fn compaction_while_the_watch_is_down_reads_again<S: Store + Clone + 'static>(
    store: S,
    prefix: &str,
) {
    for n in 0..20 {
        write(&store, prefix, n).await.unwrap();
    }
    let cuttable = Cuttable::new(store.clone());
    let replica = Replica::start_with(cuttable.clone(), prefix, quick())
        .await
        .unwrap();
    let before = replica.list(prefix.as_bytes());
    eventually("the watch is open", || replica.status().connected).await;
    cuttable.set_down(true);
    cuttable.cut();
    eventually("the watch is down", || !replica.status().connected).await;
    for n in 20..60 {
        write(&store, prefix, n).await.unwrap();
    }
    let (last, _) = store
        .put(format!("{prefix}last").as_bytes(), b"x")
        .await
        .unwrap();
    store.compact(last).await.unwrap();
    assert_eq!(
        replica.list(prefix.as_bytes()),
        before,
        "unchanged while down"
    );
    cuttable.set_down(false);
    replica.wait_for(last, WAIT).await.unwrap();
    assert_same(&replica, &store).await;
    let status = replica.status();
    assert_eq!(
        status.reads, 2,
        "one fresh read after the compaction: {status:?}"
    );
    // It follows the store again from there.
    let (rev, _) = store
        .put(format!("{prefix}after").as_bytes(), b"y")
        .await
        .unwrap();
    replica.wait_for(rev, WAIT).await.unwrap();
    assert_same(&replica, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_follows_writes() {
    let dir = tempfile::tempdir().unwrap();
    follows_writes_and_reads_your_writes(sqlite(&dir).await, "/replica/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_compaction_while_down() {
    let dir = tempfile::tempdir().unwrap();
    compaction_while_the_watch_is_down_reads_again(sqlite(&dir).await, "/replica/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_follows_writes() {
    follows_writes_and_reads_your_writes(pg().await, "/replica/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_compaction_while_down() {
    compaction_while_the_watch_is_down_reads_again(pg().await, "/replica/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_follows_writes() {
    let store = open(&etcd::shared().url()).await;
    follows_writes_and_reads_your_writes(store, "/replica/follow/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_compaction_while_down() {
    let (cluster, _guard) = etcd::exclusive().await;
    let store = open(&cluster.url()).await;
    compaction_while_the_watch_is_down_reads_again(store, "/replica/compact/").await;
}

/// Runs blocking cluster control (kill waits for the process, restart for health) off
/// the runtime's workers, which the writer and the replicas need meanwhile.
async fn control(
    mut cluster: EtcdCluster,
    f: impl FnOnce(&mut EtcdCluster) + Send + 'static,
) -> EtcdCluster {
    tokio::task::spawn_blocking(move || {
        f(&mut cluster);
        cluster
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_replicas_survive_killing_the_leader_and_their_own_member() {
    const PREFIX: &str = "/replica/kill/";
    let mut cluster = EtcdCluster::start(3);
    let writer = open(&cluster.url()).await;
    for n in 0..40 {
        write(&writer, PREFIX, n).await.unwrap();
    }
    let leader = cluster.leader().expect("a leader");
    // One replica reaches the whole cluster; the other only one member (not the
    // leader), so its watch is on that member for sure.
    let lone = (leader + 1) % cluster.len();
    let all = Replica::start_with(open(&cluster.url()).await, PREFIX, quick());
    let all = all.await.unwrap();
    let one_url = format!("etcd://{}", cluster.endpoints()[lone]);
    let one = Replica::start_with(open(&one_url).await, PREFIX, quick());
    let one = one.await.unwrap();
    let firsts = (all.revision(), one.revision());

    let stop = Arc::new(AtomicBool::new(false));
    let writes = {
        let (writer, stop) = (writer.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut n, mut failed) = (40, 0);
            while !stop.load(Ordering::SeqCst) {
                match write(&writer, PREFIX, n).await {
                    Ok(_) => n += 1,
                    Err(e) if e.is_transient() => {
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("{e}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (n, failed)
        })
    };
    let pause = |ms| tokio::time::sleep(Duration::from_millis(ms));
    pause(500).await;
    cluster = control(cluster, move |c| c.kill(leader)).await;
    pause(2_000).await;
    cluster = control(cluster, move |c| c.restart(leader)).await;
    pause(500).await;
    cluster = control(cluster, move |c| c.kill(lone)).await;
    eventually("the lone replica shows it is cut off", || {
        !one.status().connected
    })
    .await;
    assert!(one.status().last_error.is_some());
    pause(1_000).await;
    cluster = control(cluster, move |c| c.restart(lone)).await;
    pause(500).await;
    stop.store(true, Ordering::SeqCst);
    let (written, failed) = writes.await.unwrap();
    eprintln!("{written} writes, {failed} failed attempts retried");

    let (last, _) = loop {
        match writer.put(format!("{PREFIX}last").as_bytes(), b"x").await {
            Ok(done) => break done,
            Err(e) if e.is_transient() => pause(100).await,
            Err(e) => panic!("{e}"),
        }
    };
    for (replica, first) in [(&all, firsts.0), (&one, firsts.1)] {
        replica.wait_for(last, WAIT).await.unwrap();
        assert_same(replica, &writer).await;
        let status = replica.status();
        assert_eq!(status.reads, 1, "resumed, never read again: {status:?}");
        let expected = changes_between(&writer, PREFIX, first, last).await;
        assert_eq!(status.changes, expected, "every change applied once");
        eventually("connected again", || replica.status().connected).await;
    }
    drop(cluster);
}
