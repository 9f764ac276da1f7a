//! The index over the in-memory store: built, queried, kept current from the watch,
//! rebuilt when it cannot be trusted, refused where it is not ours.

use std::path::Path;

use strata_core::mem::MemStore;
use strata_core::store::Store;
use strata_schema::Schema;
use strata_search::{run, CatchUp, Feed, Identity, Opened, SearchRequest};

fn sigilgate() -> (String, Schema) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sigilgate/schema.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let schema = Schema::parse(&text, "schema.toml").unwrap();
    (text, schema)
}

async fn fill(store: &MemStore) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sigilgate/expected.json");
    let all: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (k, v) in all {
        store
            .put(k.as_bytes(), v.as_str().unwrap().as_bytes())
            .await
            .unwrap();
    }
}

fn req(query: &str) -> SearchRequest {
    SearchRequest {
        query: query.into(),
        prefixes: Vec::new(),
        limit: 10,
        ..SearchRequest::default()
    }
}

#[tokio::test]
async fn found_by_words_typos_fields_and_kept_current() {
    let store = MemStore::new();
    fill(&store).await;
    let dir = tempfile::tempdir().unwrap();
    let (text, schema) = sigilgate();
    let id = Identity::new("mem:", Some(&text));
    let search = |q: &str| {
        let (store, dir, id, schema) = (
            store.clone(),
            dir.path().to_owned(),
            id.clone(),
            schema.clone(),
        );
        let q = req(q);
        async move {
            run(
                &store,
                &[Feed::whole(&store)],
                &dir,
                &id,
                Some(schema),
                None,
                &q,
            )
            .await
            .unwrap()
        }
    };
    let first = search("grace hopper").await;
    assert_eq!(first.opened, Opened::New);
    assert!(matches!(
        first.catch_up,
        Some(CatchUp::Rebuilt { why: None, .. })
    ));
    let top = &first.hits[0];
    assert_eq!(top.key, "/public/contacts/heidi@example.org/display_name");
    assert_eq!(top.entity.as_deref(), Some("contact"));
    assert_eq!(top.marked(), "[Grace] [Hopper]");

    // A typo, a part of an email, a node by address, a field filter.
    assert_eq!(
        search("Hoppre").await.hits[0].id,
        "/public/contacts/heidi@example.org"
    );
    let ids = |r: strata_search::SearchReport| r.hits.into_iter().map(|h| h.id).collect::<Vec<_>>();
    assert!(ids(search("erin").await).contains(&"/public/contacts/erin+vpn@example.org".to_owned()));
    assert_eq!(
        ids(search("2a01:4f8:c0c:1::78 entity:node").await),
        ["/sigilgate/nodes/2a01:4f8:c0c:1::78"]
    );
    let blocked = search("status:blocked").await;
    assert!(
        !blocked.hits.is_empty()
            && blocked
                .hits
                .iter()
                .all(|h| h.entity.as_deref() == Some("user"))
    );

    // Written after the build: found by the next query; a deleted key is gone.
    store
        .put(
            b"/public/contacts/new@example.org/display_name",
            b"Ada Lovelace",
        )
        .await
        .unwrap();
    let ada = search("lovelace").await;
    assert!(
        matches!(
            ada.catch_up,
            Some(CatchUp::Applied {
                changes: 1,
                docs: 1
            })
        ),
        "{:?}",
        ada.catch_up
    );
    assert_eq!(ada.hits[0].id, "/public/contacts/new@example.org");
    store
        .delete(strata_core::model::KeySpan::prefix(
            &b"/public/contacts/new@example.org/"[..],
        ))
        .await
        .unwrap();
    assert!(search("lovelace").await.hits.is_empty());

    // Another schema: the index is not trusted, it is made anew.
    let other = Identity::new("mem:", Some("# another\n"));
    let r = run(
        &store,
        &[Feed::whole(&store)],
        dir.path(),
        &other,
        None,
        None,
        &req("hopper"),
    )
    .await
    .unwrap();
    assert!(
        matches!(r.opened, Opened::Discarded(ref why) if why.contains("another schema")),
        "{:?}",
        r.opened
    );
}

#[tokio::test]
async fn a_folder_that_is_not_an_index_is_refused_and_left_alone() {
    let store = MemStore::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let err = run(
        &store,
        &[Feed::whole(&store)],
        dir.path(),
        &Identity::new("mem:", None),
        None,
        None,
        &req("x"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("not a Strata search index"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "mine"
    );
}

/// History compacted past the index's revision: the changes cannot be replayed, so the
/// index is rebuilt from a full read, saying why, and finds the later writes.
#[tokio::test]
async fn a_compacted_history_rebuilds_the_index() {
    let store = MemStore::new();
    store.put(b"/notes/a", b"first words").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::new("mem:", None);
    let feeds = [Feed::whole(&store)];
    run(&store, &feeds, dir.path(), &id, None, None, &req("first"))
        .await
        .unwrap();
    store.put(b"/notes/b", b"second words").await.unwrap();
    store.put(b"/notes/c", b"third words").await.unwrap();
    let now = store.status().await.unwrap().revision;
    store.compact(now).await.unwrap();
    let r = run(&store, &feeds, dir.path(), &id, None, None, &req("third"))
        .await
        .unwrap();
    match &r.catch_up {
        Some(CatchUp::Rebuilt { why: Some(why), .. }) => {
            assert!(why.contains("no longer holds"), "{why}")
        }
        other => panic!("not rebuilt: {other:?}"),
    }
    assert_eq!(r.hits[0].id, "/notes/c");
}
