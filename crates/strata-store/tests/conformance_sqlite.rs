//! The SQLite backend against the conformance suite: a fresh database file per test.

use strata_core::conformance::TestStore;
use strata_store::SqliteStore;

async fn sqlite_store(name: &str) -> TestStore<SqliteStore> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("strata.db")).expect("open sqlite store");
    TestStore::new(store, format!("/conformance/{name}/"), dir)
}

strata_core::conformance_suite!(sqlite_store);
