//! The etcd backend against the conformance suite, on a real etcd started by the test
//! harness. Shared cases use one server with a key prefix each; cases that compact or
//! check exact revision arithmetic take a second server one at a time.

use strata_core::conformance::TestStore;
use strata_store::{EtcdOptions, EtcdStore};
use strata_testkit::etcd;

async fn connect(cluster: &etcd::EtcdCluster) -> EtcdStore {
    EtcdStore::connect(EtcdOptions::new(cluster.endpoints()))
        .await
        .expect("connect to the test etcd")
}

async fn shared(name: &str) -> TestStore<EtcdStore> {
    let store = connect(etcd::shared()).await;
    TestStore::new(store, format!("/conformance/{name}/"), ())
}

async fn isolated(name: &str) -> TestStore<EtcdStore> {
    let (cluster, guard) = etcd::exclusive().await;
    TestStore::new(connect(cluster).await, format!("/isolated/{name}/"), guard)
}

strata_core::conformance_suite!(shared: shared, isolated: isolated);
