//! A layered keyspace of one SQLite store against the conformance suite: through the
//! layer routing (segments, boxed calls, error wrapping), a keyspace in one store
//! keeps every rule of the contract.

use strata_core::conformance::TestStore;
use strata_store::{AnyStore, ConnectOptions};

async fn layered_store(name: &str) -> TestStore<AnyStore> {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("strata.toml");
    std::fs::write(
        &config,
        "[stores.one]\nurl = \"sqlite:one.db\"\n[layers]\n\"/\" = \"one\"\n",
    )
    .expect("write the config file");
    let url = format!("layers:{}", config.display());
    let store = strata_store::open_with(&url, &ConnectOptions::default())
        .await
        .expect("open the layered keyspace");
    TestStore::new(store, format!("/conformance/{name}/"), dir)
}

strata_core::conformance_suite!(layered_store);
