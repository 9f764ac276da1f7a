//! Regression: several processes opening one new SQLite store at the same moment (a
//! `strata mirror` starting while `strata diff` polls its target) all succeed. Turning
//! on WAL needs a lock that SQLite does not wait for, so a second opener used to fail
//! with "database is locked".

use std::sync::{Arc, Barrier};

use strata_core::Store;
use strata_store::SqliteStore;

#[test]
fn many_openers_of_a_new_file_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..30 {
        let path = dir.path().join(format!("race{round}.db"));
        let barrier = Arc::new(Barrier::new(8));
        let openers: Vec<_> = (0..8)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    SqliteStore::open(&path).map(|_| ())
                })
            })
            .collect();
        for opener in openers {
            if let Err(e) = opener.join().unwrap() {
                panic!("round {round}: {e}");
            }
        }
    }
}

/// Regression: SQLite calls ran on the async worker, so a write waiting on another
/// process's lock (up to the 30 s busy timeout) stalled every other task of the
/// process, watches and signal handling included. With one worker thread, a ticking
/// task keeps running while a write waits 2 s for the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_write_waiting_on_the_lock_does_not_stall_other_tasks() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let store = strata_store::SqliteStore::open(&path).unwrap();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_secs(2));
        conn.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let write = tokio::spawn(async move { store.put(b"/a", b"1").await.map(|_| ()) });
    write.await.unwrap().unwrap();
    let during = ticks.load(Ordering::SeqCst);
    ticker.abort();
    holder.join().unwrap();
    assert!(
        during >= 5,
        "other tasks stalled while the write waited: {during} ticks in 2 s"
    );
}
