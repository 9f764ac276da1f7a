//! The reference backend runs the conformance suite too: it keeps the suite honest.

use strata_core::conformance::TestStore;
use strata_core::MemStore;

async fn mem_store(name: &str) -> TestStore<MemStore> {
    TestStore::new(MemStore::new(), format!("/conformance/{name}/"), ())
}

strata_core::conformance_suite!(mem_store);
