//! `infer` on the example data sets: the expected patterns, and a draft that parses
//! and accepts the data it came from.

use std::path::Path;

use strata_core::MemStore;
use strata_schema::{check, infer::infer, Schema};

async fn seeded(name: &str) -> MemStore {
    let store = MemStore::new();
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples")).join(name);
    let entries = strata_ops::snapshot::read_snapshot(&path).unwrap();
    strata_ops::load::load(&store, entries, None, &mut |_| {})
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn broker_patterns_are_found() {
    let store = seeded("etcd-v2-broker/expected.json").await;
    let draft = infer(&store, b"").await.unwrap();
    for pattern in [
        "/service/{id}/members/{uuid}",
        "/service/{id}/state",
        "/postgresql-brokerpatroni/{name}",
        "/routing/allocation/{id}",
        "/routing/nextport",
    ] {
        assert!(
            draft.contains(&format!("#   {pattern}\n")),
            "{pattern} missing from:\n{draft}"
        );
    }
    assert!(draft.contains("state = { type = \"json\" }"), "{draft}");
    let schema = Schema::parse(&draft, "draft").unwrap_or_else(|e| panic!("{e}\n{draft}"));
    let found = check(&store, &schema, b"").await.unwrap();
    assert!(found.is_empty(), "{found:#?}\n{draft}");
}

#[tokio::test]
async fn sigilgate_draft_accepts_its_data() {
    let store = seeded("sigilgate/expected.json").await;
    let draft = infer(&store, b"").await.unwrap();
    assert!(draft.contains("key = \"/sigilgate/users/{id}\""), "{draft}");
    assert!(
        draft.contains("key = \"/sigilgate/users/{id}/devices/{uuid}\""),
        "{draft}"
    );
    assert!(
        draft.contains("key = \"/public/contacts/{email}\""),
        "{draft}"
    );
    let schema = Schema::parse(&draft, "draft").unwrap_or_else(|e| panic!("{e}\n{draft}"));
    assert!(check(&store, &schema, b"").await.unwrap().is_empty());
}
