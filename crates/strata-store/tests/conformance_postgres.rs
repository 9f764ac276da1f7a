//! The PostgreSQL backend against the conformance suite, on a real PostgreSQL started
//! by the test harness. Every test gets its own schema, which is a whole store of its
//! own (revision counter included), so shared and isolated cases are alike.

use std::sync::atomic::{AtomicUsize, Ordering};

use strata_core::conformance::TestStore;
use strata_store::{PgOptions, PgStore};
use strata_testkit::postgres;

async fn pg_store(name: &str) -> TestStore<PgStore> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let schema = format!(
        "t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let url = postgres::shared().url(&schema);
    let store = PgStore::connect(PgOptions::parse(&url).unwrap())
        .await
        .expect("connect to the test PostgreSQL");
    TestStore::new(store, format!("/conformance/{name}/"), ())
}

strata_core::conformance_suite!(pg_store);
