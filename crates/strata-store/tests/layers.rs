//! The layered keyspace's reads across stores, on `mem:` stores: a paged read at a
//! snapshot token sees each store as of its first page (nothing written later, in
//! either store), counts add up, writers learn each key's store, and a transaction
//! across stores is refused.

use strata_core::{KeySpan, Op, RangeRequest, Store, Txn};
use strata_store::{AnyStore, ConnectOptions};

async fn two_layers() -> (AnyStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strata.toml");
    std::fs::write(
        &config,
        "[stores.x]\nurl = \"mem:\"\n[stores.y]\nurl = \"mem:\"\n[layers]\n\"/a/\" = \"x\"\n\"/\" = \"y\"\n",
    )
    .unwrap();
    let url = format!("layers:{}", config.display());
    let store = strata_store::open_with(&url, &ConnectOptions::default())
        .await
        .unwrap();
    (store, dir)
}

#[tokio::test]
async fn a_paged_read_across_stores_is_one_snapshot() {
    let (store, _dir) = two_layers().await;
    for key in ["/a/1", "/a/2", "/b/1", "/b/2"] {
        store.put(key.as_bytes(), b"v").await.unwrap();
    }
    let first = store
        .range(RangeRequest::new(KeySpan::prefix("/")).with_limit(2))
        .await
        .unwrap();
    let keys = |r: &strata_core::RangeResponse| -> Vec<String> {
        r.kvs
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect()
    };
    assert_eq!(keys(&first), ["/a/1", "/a/2"]);
    assert!(first.more);
    assert_eq!(first.count, 4);
    assert!(first.revision >= strata_store::layers::TOKEN_BASE);
    // Written after the first page, in both stores: not in the snapshot.
    store.put(b"/a/3", b"late").await.unwrap();
    store.put(b"/b/0", b"late").await.unwrap();
    let rest = store
        .range(
            RangeRequest::new(KeySpan::Range {
                start: b"/a/2\0".to_vec(),
                end: None,
            })
            .at_revision(first.revision),
        )
        .await
        .unwrap();
    assert_eq!(keys(&rest), ["/b/1", "/b/2"]);
    assert_eq!(rest.revision, first.revision);
    // The latest read sees them.
    let now = store
        .range(RangeRequest::new(KeySpan::prefix("/")).count_only())
        .await
        .unwrap();
    assert_eq!(now.count, 6);
    let AnyStore::Layered(layered) = &store else {
        panic!("not layered")
    };
    let shown = layered.describe_revision(first.revision).unwrap();
    assert!(shown.contains("x@") && shown.contains("y@"), "{shown}");
}

#[tokio::test]
async fn writers_learn_each_keys_store_and_cross_store_transactions_are_refused() {
    let (store, _dir) = two_layers().await;
    assert_eq!(store.partition(b"/a/1"), store.partition(b"/a/9"));
    assert_ne!(store.partition(b"/a/1"), store.partition(b"/b/1"));
    assert_eq!(store.partition(b"relative"), usize::MAX);
    // A load across both stores is cut into per-store batches.
    let entries: Vec<(Vec<u8>, Vec<u8>)> = ["/a/1", "/a/2", "/b/1"]
        .iter()
        .map(|k| (k.as_bytes().to_vec(), b"v".to_vec()))
        .collect();
    let report = strata_ops::load::load(&store, entries, None, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((report.changed, report.txns), (3, 2));
    let across = Txn::new().and_then([
        Op::put(b"/a/x".to_vec(), b"1".to_vec()),
        Op::put(b"/b/x".to_vec(), b"1".to_vec()),
    ]);
    let err = store.txn(across).await.unwrap_err().to_string();
    assert!(err.contains("several layers"), "{err}");
    assert!(
        store.get(b"/a/x").await.unwrap().is_none() && store.get(b"/b/x").await.unwrap().is_none()
    );
    let outside = Txn::new().and_then([Op::put(b"relative".to_vec(), b"1".to_vec())]);
    let err = store.txn(outside).await.unwrap_err().to_string();
    assert!(err.contains("outside every layer"), "{err}");
}
