//! `strata_import::run` as a library call, on the in-memory store: the import's rules
//! (schema first, objects whole, stale fields found and pruned only when asked, the
//! plan per entity) without a process. The CLI tests check the words around it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strata_core::{KeySpan, MemStore, RangeRequest, Store};
use strata_import::{run, DumpFormat, ImportRequest, RunError, Source};

fn examples() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples")).to_owned()
}

fn sigilgate() -> ImportRequest {
    ImportRequest {
        source: Source::Tree {
            root: examples().join("sigilgate/legacy"),
            mapping: examples().join("sigilgate/mapping.toml"),
        },
        schema: Some(examples().join("sigilgate/schema.toml")),
        batch: None,
        prune: false,
    }
}

async fn dump(store: &MemStore) -> BTreeMap<String, String> {
    let resp = store
        .range(RangeRequest::new(KeySpan::all()))
        .await
        .unwrap();
    resp.kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8(kv.key).unwrap(),
                String::from_utf8(kv.value).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn prepare_plan_write_and_prune_on_the_sigilgate_example() {
    let req = sigilgate();
    let prepared = run::prepare(&req).await.unwrap();
    let expected: BTreeMap<String, String> = serde_json::from_str(
        &std::fs::read_to_string(examples().join("sigilgate/expected.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(prepared.keys(), expected.len());
    assert!(prepared.entities.contains_key("/sigilgate/users/{id}"));

    let store = MemStore::new();
    let plan = run::plan(&store, &prepared).await.unwrap();
    assert!(plan.by_entity);
    let adds: u64 = plan.groups.values().map(|g| g.add).sum();
    assert_eq!(adds as usize, expected.len(), "everything is new");
    assert!(dump(&store).await.is_empty(), "a plan writes nothing");

    let report = run::write(&store, prepared.clone(), &req, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(report.load.changed as usize, expected.len());
    assert_eq!(dump(&store).await, expected);

    // A field the input no longer has is found, kept, and removed only with prune.
    store
        .put(b"/sigilgate/users/94/telegram_id", b"12345")
        .await
        .unwrap();
    let plan = run::plan(&store, &prepared).await.unwrap();
    assert_eq!(plan.stale, 1);
    assert_eq!(plan.groups["/sigilgate/users/{id}"].remove, 1);
    let report = run::write(&store, prepared.clone(), &req, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        (report.load.changed, report.stale, report.pruned),
        (0, 1, 0)
    );
    let pruning = ImportRequest {
        prune: true,
        ..sigilgate()
    };
    let report = run::write(&store, prepared, &pruning, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((report.stale, report.pruned), (0, 1));
    assert_eq!(dump(&store).await, expected);
}

#[tokio::test]
async fn the_schema_is_checked_before_anything_is_written_and_a_dump_has_no_objects() {
    let broken = ImportRequest {
        source: Source::Tree {
            root: examples().join("sigilgate-broken/legacy"),
            mapping: examples().join("sigilgate/mapping.toml"),
        },
        ..sigilgate()
    };
    assert!(run::prepare(&broken).await.is_err());
    let dump = ImportRequest {
        source: Source::Dump {
            file: examples().join("etcd-v2-broker/etcd-v2-dump.json"),
            format: DumpFormat::EtcdV2,
        },
        schema: None,
        batch: None,
        prune: true,
    };
    assert!(matches!(
        run::prepare(&dump).await,
        Err(RunError::PruneWithoutObjects)
    ));
}
