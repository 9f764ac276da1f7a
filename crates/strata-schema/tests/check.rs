//! `check` against the sigilgate data set: clean as shipped, and each kind of violation
//! reported once, with its key, when seeded.

use std::path::Path;

use strata_core::{MemStore, Store};
use strata_schema::{check, Schema, ViolationKind};

fn examples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"))
}

async fn seeded() -> MemStore {
    let store = MemStore::new();
    let entries =
        strata_ops::snapshot::read_snapshot(&examples().join("sigilgate/expected.json")).unwrap();
    strata_ops::load::load(&store, entries, None, &mut |_| {})
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn the_shipped_data_set_is_clean() {
    let schema = Schema::load(&examples().join("sigilgate/schema.toml")).unwrap();
    let found = check(&seeded().await, &schema, b"").await.unwrap();
    assert!(found.is_empty(), "{found:#?}");
}

#[tokio::test]
async fn each_kind_of_violation_is_reported_once_with_its_key() {
    let schema = Schema::load(&examples().join("sigilgate/schema.toml")).unwrap();
    let store = seeded().await;
    let seed: [(&str, &str); 5] = [
        ("/sigilgate/stray/key", "x"),             // unknown key
        ("/sigilgate/users/94/status", "deleted"), // enum violation
        (
            "/sigilgate/routes/0c5cd43b-f53e-4c38-be5c-39319d892098",
            "10.99.9.9",
        ), // dangling route
        ("/sigilgate/users/94/display_name", "Leaked"), // a field of another layer
        ("/sigilgate/users/95/username", "half"),  // user 95: no status etc.
    ];
    for (k, v) in seed {
        store.put(k.as_bytes(), v.as_bytes()).await.unwrap();
    }
    let found = check(&store, &schema, b"").await.unwrap();
    let kinds: Vec<(ViolationKind, &str)> =
        found.iter().map(|v| (v.kind, v.key.as_str())).collect();
    assert_eq!(
        kinds,
        vec![
            (ViolationKind::UnknownKey, "/sigilgate/stray/key"),
            (
                ViolationKind::MissingField,
                "/sigilgate/users/95/created_at"
            ),
            (
                ViolationKind::MissingField,
                "/sigilgate/users/95/max_devices"
            ),
            (ViolationKind::MissingField, "/sigilgate/users/95/plan"),
            (ViolationKind::MissingField, "/sigilgate/users/95/status"),
            (ViolationKind::WrongType, "/sigilgate/users/94/status"),
            (
                ViolationKind::DanglingRef,
                "/sigilgate/routes/0c5cd43b-f53e-4c38-be5c-39319d892098"
            ),
            (
                ViolationKind::OtherLayer,
                "/sigilgate/users/94/display_name"
            ),
        ],
        "{found:#?}"
    );
    assert!(found[5].detail.contains("\"deleted\" is not one of"));
}

#[tokio::test]
async fn the_broker_schema_accepts_the_broker_data_and_marks_its_secrets() {
    let schema = Schema::load(&examples().join("broker/schema.toml")).unwrap();
    let store = MemStore::new();
    let entries =
        strata_ops::snapshot::read_snapshot(&examples().join("etcd-v2-broker/expected.json"))
            .unwrap();
    strata_ops::load::load(&store, entries, None, &mut |_| {})
        .await
        .unwrap();
    let found = check(&store, &schema, b"").await.unwrap();
    assert!(found.is_empty(), "{found:#?}");
    let state = &schema.entity("service").unwrap().fields["state"];
    assert_eq!(
        state.secret_paths,
        vec!["admin_credentials.password", "app_credentials.password"]
    );
    assert!(
        schema
            .entity("member")
            .unwrap()
            .value
            .as_ref()
            .unwrap()
            .secret
    );
    assert!(!schema.entity("registration").unwrap().backup);
}

#[tokio::test]
async fn doc_renders_patterns_fields_counts_and_masks_secrets() {
    let schema = Schema::load(&examples().join("sigilgate/schema.toml")).unwrap();
    let store = seeded().await;
    let md = strata_schema::doc::doc(&schema, Some(&store))
        .await
        .unwrap();
    assert!(md.contains("### user — `/sigilgate/users/{id}`"), "{md}");
    assert!(md.contains("24 objects in the store."), "{md}");
    assert!(
        md.contains("| status | enum: active, blocked, pending | yes |"),
        "{md}"
    );
    assert!(
        md.contains(
            "| public_key | string | yes |  | yes | WireGuard public key | `••••••` (secret) |"
        ),
        "{md}"
    );
    assert!(md.contains("- route.(value) → node"), "{md}");
    assert!(
        !md.contains("noAEcTl31uGQ"),
        "a secret value leaked into the doc"
    );
    let plain = strata_schema::doc::doc::<MemStore>(&schema, None)
        .await
        .unwrap();
    assert!(!plain.contains("in the store"));
}

#[tokio::test]
async fn refs_of_a_node_and_of_a_route() {
    let schema = Schema::load(&examples().join("sigilgate/schema.toml")).unwrap();
    let store = seeded().await;
    let node = strata_schema::refs::refs(&store, &schema, "/sigilgate/nodes/2a01:4f8:c0c:1::78")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(node.entity, "node");
    // The routes that send devices to this core node depend on it.
    assert_eq!(node.incoming.len(), 3, "{node:?}");
    assert!(node
        .incoming
        .iter()
        .all(|k| k.starts_with("/sigilgate/routes/")));
    let route = strata_schema::refs::refs(
        &store,
        &schema,
        "/sigilgate/routes/245448c8-989b-49dc-b95f-e8a0060c8804",
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        route.outgoing,
        vec![(
            "/sigilgate/routes/245448c8-989b-49dc-b95f-e8a0060c8804".to_owned(),
            "/sigilgate/nodes/2a01:4f8:c0c:1::78".to_owned()
        )]
    );
    assert!(strata_schema::refs::refs(&store, &schema, "/nowhere")
        .await
        .unwrap()
        .is_none());
}
