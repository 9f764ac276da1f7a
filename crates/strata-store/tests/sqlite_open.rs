//! Regression: several processes opening one new SQLite store at the same moment (a
//! `strata mirror` starting while `strata diff` polls its target) all succeed. Turning
//! on WAL needs a lock that SQLite does not wait for, so a second opener used to fail
//! with "database is locked".

use std::sync::{Arc, Barrier};

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
