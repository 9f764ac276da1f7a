//! The replica on the reference backend: reads, read-your-writes, a watch cut and
//! resumed, a compaction while the watch is down, whole transactions, and the task
//! stopping with its handle.

use super::*;
use crate::mem::MemStore;
use crate::model::*;

const WAIT: Duration = Duration::from_secs(10);

fn quick() -> ReplicaOptions {
    ReplicaOptions {
        check_every: Duration::from_millis(20),
    }
}

/// The reference store behind the fault switch (the test writes to `inner`).
type Cuttable = crate::fault::Cuttable<MemStore>;

fn cuttable() -> Cuttable {
    Cuttable::new(MemStore::new())
}

/// The replica holds exactly what a consistent read of the store gives at the
/// replica's revision, metadata included.
async fn assert_same<S: Store>(replica: &Replica, store: &S) {
    let held = replica.list(replica.prefix());
    let mut want = Vec::new();
    let span = KeySpan::prefix(replica.prefix().to_vec());
    scan(store, span, held.revision, |page| {
        want.extend(page);
        Ok(())
    })
    .await
    .unwrap();
    let got: Vec<KeyValue> = held.value.iter().map(|kv| KeyValue::clone(kv)).collect();
    assert_eq!(got, want, "at revision {}", held.revision);
}

/// How many changes under `prefix` the store made after `after`, up to `to`.
async fn changes_between<S: Store>(store: &S, prefix: &str, after: i64, to: i64) -> u64 {
    let mut watcher = store
        .watch(WatchRequest {
            span: KeySpan::prefix(prefix),
            start_revision: after + 1,
        })
        .await
        .unwrap();
    let mut count = 0;
    let mut at = after;
    while at < to {
        let batch = tokio::time::timeout(WAIT, watcher.next()).await.unwrap();
        let batch = batch.unwrap().unwrap();
        at = batch.last().map_or(at, Event::revision);
        count += batch.iter().filter(|e| e.revision() <= to).count() as u64;
    }
    count
}

async fn eventually(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < deadline, "not within {WAIT:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn reads_follow_changes_and_say_their_revision() {
    let store = MemStore::new();
    store.put(b"/r/a", b"1").await.unwrap();
    store.put(b"/other", b"x").await.unwrap();
    let replica = Replica::start(store.clone(), "/r/").await.unwrap();
    let at = replica.get(b"/r/a");
    assert_eq!((at.revision, &at.value.unwrap().value[..]), (3, &b"1"[..]));
    assert_eq!(replica.get(b"/other").value, None, "outside the prefix");

    let (rev, _) = store.put(b"/r/b", b"2").await.unwrap();
    assert_eq!(replica.wait_for(rev, WAIT).await.unwrap(), rev);
    let listed = replica.list(b"/r/");
    let keys: Vec<&[u8]> = listed.value.iter().map(|kv| &kv.key[..]).collect();
    assert_eq!((listed.revision, keys), (rev, vec![&b"/r/a"[..], b"/r/b"]));

    let txn = Txn::new().and_then([Op::put("/r/a", "3"), Op::delete(KeySpan::key("/r/b"))]);
    let rev = store.txn(txn).await.unwrap().revision;
    replica.wait_for(rev, WAIT).await.unwrap();
    let a = replica.get(b"/r/a").value.unwrap();
    assert_eq!(
        (&a.value[..], a.version, a.mod_revision),
        (&b"3"[..], 2, rev)
    );
    assert_eq!(replica.get(b"/r/b").value, None);
    assert_same(&replica, &store).await;
    let status = replica.status();
    assert_eq!((status.revision, status.keys), (rev, 1));
    assert_eq!((status.reads, status.changes, status.errors), (1, 3, 0));
    assert!(
        status.connected && status.last_error.is_none(),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_revision_no_change_brings_is_reached_by_checking_the_keys() {
    let store = MemStore::new();
    store.put(b"/r/a", b"1").await.unwrap();
    let replica = Replica::start(store.clone(), "/r/").await.unwrap();
    let (rev, _) = store.put(b"/elsewhere", b"x").await.unwrap();
    assert_eq!(replica.wait_for(rev, WAIT).await.unwrap(), rev);
    assert_eq!(replica.get(b"/r/a").revision, rev);
    // A revision the store has not reached: the error says where the replica stands.
    let err = replica
        .wait_for(rev + 10, Duration::from_millis(300))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "waiting for revision {} in the replica of /r/",
            rev + 10
        )) && err.contains(&format!("reached revision {rev}")),
        "{err}"
    );
    assert_same(&replica, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_watch_resumes_without_a_gap_or_a_repeat() {
    let store = cuttable();
    for i in 0..5 {
        store
            .inner
            .put(format!("/r/{i}").as_bytes(), b"0")
            .await
            .unwrap();
    }
    let replica = Replica::start_with(store.clone(), "/r/", quick())
        .await
        .unwrap();
    let first = replica.revision();
    let write = |round: usize, i: usize| {
        let store = store.inner.clone();
        async move {
            let key = format!("/r/{}", (round * 10 + i) % 7);
            store
                .put(key.as_bytes(), round.to_string().as_bytes())
                .await
                .unwrap();
            if i.is_multiple_of(4) {
                store.delete(KeySpan::key(key)).await.unwrap();
            }
            tokio::task::yield_now().await;
        }
    };
    for round in 0..6 {
        eventually("the watch is open", || replica.status().connected).await;
        for i in 0..10 {
            write(round, i).await;
        }
        let errors = replica.status().errors;
        store.cut();
        // Down on even rounds: the watch cannot be opened again until it is back.
        store.set_down(round.is_multiple_of(2));
        let failures = if round.is_multiple_of(2) { 2 } else { 1 };
        for i in 10..20 {
            write(round, i).await;
        }
        eventually("the loss is noticed", || {
            replica.status().errors >= errors + failures
        })
        .await;
        store.set_down(false);
    }
    let (last, _) = store.inner.put(b"/r/last", b"x").await.unwrap();
    replica.wait_for(last, WAIT).await.unwrap();
    assert_same(&replica, &store.inner).await;
    let status = replica.status();
    assert_eq!(status.reads, 1, "resumed each time, never read again");
    let expected = changes_between(&store.inner, "/r/", first, last).await;
    assert_eq!(status.changes, expected, "every change applied once");
    assert!(
        status.errors >= 6 && status.last_error.is_some(),
        "{status:?}"
    );
    eventually("connected again", || replica.status().connected).await;
}

#[tokio::test]
async fn a_compaction_while_the_watch_is_down_makes_a_fresh_read() {
    let store = cuttable();
    store.inner.put(b"/r/old", b"1").await.unwrap();
    store.inner.put(b"/r/kept", b"1").await.unwrap();
    let replica = Replica::start_with(store.clone(), "/r/", quick())
        .await
        .unwrap();
    store.set_down(true);
    store.cut();
    eventually("the watch is down", || !replica.status().connected).await;
    store.inner.put(b"/r/new", b"2").await.unwrap();
    store.inner.delete(KeySpan::key("/r/old")).await.unwrap();
    let (rev, _) = store.inner.put(b"/r/kept", b"2").await.unwrap();
    store.inner.compact(rev).await.unwrap();
    assert!(
        replica.get(b"/r/old").value.is_some(),
        "unchanged while down"
    );
    store.set_down(false);
    replica.wait_for(rev, WAIT).await.unwrap();
    assert_same(&replica, &store.inner).await;
    let status = replica.status();
    assert_eq!((status.reads, status.keys), (2, 2), "{status:?}");
    assert!(replica.get(b"/r/old").value.is_none());
    // And it follows the store again from the fresh read.
    let (rev, _) = store.inner.put(b"/r/after", b"3").await.unwrap();
    replica.wait_for(rev, WAIT).await.unwrap();
    assert_same(&replica, &store.inner).await;
}

/// Two keys always written together with one value: a listing never shows them apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_is_seen_whole() {
    let store = MemStore::new();
    let pair = |n: u32| {
        Txn::new().and_then([
            Op::put("/r/x", n.to_string()),
            Op::put("/r/y", n.to_string()),
        ])
    };
    store.txn(pair(0)).await.unwrap();
    let replica = Arc::new(Replica::start(store.clone(), "/r/").await.unwrap());
    let (started, reading) = tokio::sync::oneshot::channel();
    let reader = {
        let replica = replica.clone();
        std::thread::spawn(move || {
            let mut started = Some(started);
            while replica.get(b"/r/x").value.unwrap().value != b"500" {
                let listed = replica.list(b"/r/");
                assert_eq!(listed.value.len(), 2);
                assert_eq!(listed.value[0].value, listed.value[1].value, "torn read");
                if let Some(started) = started.take() {
                    let _ = started.send(());
                }
            }
        })
    };
    // The writes start once the reader reads.
    reading.await.unwrap();
    let mut rev = 0;
    for n in 1..=500 {
        rev = store.txn(pair(n)).await.unwrap().revision;
        tokio::task::yield_now().await;
    }
    replica.wait_for(rev, WAIT).await.unwrap();
    reader.join().unwrap();
}

#[tokio::test]
async fn dropping_the_replica_stops_its_task() {
    let store = cuttable();
    let replica = Replica::start(store.clone(), "/r/").await.unwrap();
    assert!(store.holders() > 1, "the task holds the store");
    drop(replica);
    eventually("the task let go of the store", || store.holders() == 1).await;
}
