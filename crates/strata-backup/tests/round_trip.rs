//! Backup → restore into an empty store gives back every key and value exactly, on
//! SQLite and on a real etcd, for the sigilgate and broker data sets and hostile keys
//! and values; the same data gives the same tree; `git fsck --strict` (the real git)
//! accepts the repository. And a restore never overwrites a concurrent change.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use strata_backup::secrets::Secrets;
use strata_backup::{BackupOptions, Identity, RestoreHow};
use strata_core::{KeySpan, MemStore, Op, Store, Txn};
use strata_store::AnyStore;
use strata_testkit::etcd::EtcdCluster;
use strata_testkit::git;

type Data = BTreeMap<Vec<u8>, Vec<u8>>;

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// sigilgate + broker + keys and values chosen to break a naive layout.
fn data_set() -> Data {
    let mut data = Data::new();
    for file in ["sigilgate/expected.json", "etcd-v2-broker/expected.json"] {
        let text = std::fs::read_to_string(examples().join(file)).unwrap();
        let map: BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
        data.extend(
            map.into_iter()
                .map(|(k, v)| (k.into_bytes(), v.into_bytes())),
        );
    }
    let hostile: Vec<(&[u8], &[u8])> = vec![
        (b"/h/.git/config", b"[core]"),
        (b"/h/../../etc", b"up"),
        (b"/h/./x", b"dot"),
        (b"/h/file.json/leaf", b"suffix"),
        (b"/h/file", b"a key that is also a parent"),
        (b"/h/file/child", b"child"),
        (b"/h/100%/50%", b"percent"),
        (b"/h/%41", b"looks escaped"),
        (b"/h/ctl\x01\x1f/\n", b"control"),
        (b"/h/\xff\xfe/\x80", b"\x00\xff binary \xc3"),
        (b"/h//empty", b""),
        (
            b"/h/sp ace/\xe6\x9d\x8e \\ back",
            "Zoë \"quoted\"\n{json}".as_bytes(),
        ),
        (b"/h/JSON", br#"{"base64": "not really"}"#),
        (b"/top-level", b"root file"),
        (b"relative/key", b"no leading slash"),
        (b"/", b"the root key"),
    ];
    data.extend(hostile.into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())));
    data
}

async fn fill<S: Store>(store: &S, data: &Data) {
    for chunk in data.iter().collect::<Vec<_>>().chunks(100) {
        let ops = chunk.iter().map(|(k, v)| Op::put(k.to_vec(), v.to_vec()));
        store.txn(Txn::new().and_then(ops)).await.unwrap();
    }
}

async fn dump<S: Store>(store: &S) -> Data {
    let mut out = Data::new();
    strata_core::scan(store, KeySpan::all(), 0, |kvs| {
        out.extend(kvs.into_iter().map(|kv| (kv.key, kv.value)));
        Ok(())
    })
    .await
    .unwrap();
    out
}

fn options(repo: &Path) -> BackupOptions {
    BackupOptions {
        repo: repo.to_owned(),
        prefixes: Vec::new(),
        secrets: Secrets::new(None, vec![7; 32], None),
        options_id: "test".into(),
        store_label: "test".into(),
        author: Identity::default(),
        committer: Identity::default(),
        push: None,
        progress: Default::default(),
    }
}

async fn round_trip(source: &AnyStore, empty: &AnyStore, dir: &Path) {
    let data = data_set();
    fill(source, &data).await;
    let repo = dir.join("repo");
    let report = strata_backup::run(source, &options(&repo)).await.unwrap();
    assert_eq!(report.added as usize, data.len());
    git(&repo, &["fsck", "--strict"]);
    strata_backup::verify(source, &options(&repo))
        .await
        .unwrap();
    // An incremental backup of a few changes, read back from the store's history.
    source
        .put(b"/h/\xff\xfe/\x80", b"changed \x00")
        .await
        .unwrap();
    source.put(b"/h/new/key", b"new").await.unwrap();
    source.delete(KeySpan::key(&b"/h/./x"[..])).await.unwrap();
    let report = strata_backup::run(source, &options(&repo)).await.unwrap();
    assert!(!report.full, "{report:?}");
    assert_eq!((report.added, report.changed, report.removed), (1, 1, 1));
    strata_backup::verify(source, &options(&repo))
        .await
        .unwrap();
    let mut data = data;
    data.insert(b"/h/\xff\xfe/\x80".to_vec(), b"changed \x00".to_vec());
    data.insert(b"/h/new/key".to_vec(), b"new".to_vec());
    data.remove(&b"/h/./x"[..]);
    strata_backup::restore_all(empty, &options(&repo), "HEAD", &mut |_| {})
        .await
        .unwrap();
    assert_eq!(dump(empty).await, data);
    // The same data, backed up from the restored store, gives the same tree.
    let again = dir.join("again");
    strata_backup::run(empty, &options(&again)).await.unwrap();
    assert_eq!(
        git(&repo, &["rev-parse", "HEAD^{tree}"]),
        git(&again, &["rev-parse", "HEAD^{tree}"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let a = AnyStore::Sqlite(strata_store::SqliteStore::open(dir.path().join("a.db")).unwrap());
    let b = AnyStore::Sqlite(strata_store::SqliteStore::open(dir.path().join("b.db")).unwrap());
    round_trip(&a, &b, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_on_etcd() {
    let (one, two) = (EtcdCluster::start(1), EtcdCluster::start(1));
    let dir = tempfile::tempdir().unwrap();
    let a = strata_store::open(&one.url()).await.unwrap();
    let b = strata_store::open(&two.url()).await.unwrap();
    round_trip(&a, &b, dir.path()).await;
    restore_larger_than_one_transaction(&b, dir.path()).await;
}

/// On a real etcd (128 ops per transaction): a restore of 300 changed keys is refused
/// as one transaction, naming --in-batches, and restores them all with it.
async fn restore_larger_than_one_transaction(store: &AnyStore, dir: &Path) {
    let original: Data = (0..300)
        .map(|i| (format!("/big/{i:03}").into_bytes(), b"kept".to_vec()))
        .collect();
    fill(store, &original).await;
    let opts = options(&dir.join("big"));
    strata_backup::run(store, &opts).await.unwrap();
    let changed: Data = (0..300)
        .filter(|i| i % 3 != 0)
        .map(|i| (format!("/big/{i:03}").into_bytes(), b"changed".to_vec()))
        .chain([(b"/big/new".to_vec(), b"not in the backup".to_vec())])
        .collect();
    store.delete(KeySpan::prefix(&b"/big/"[..])).await.unwrap();
    fill(store, &changed).await;
    let big = |d: Data| -> Data {
        d.into_iter()
            .filter(|(k, _)| k.starts_with(b"/big/"))
            .collect()
    };
    let err = strata_backup::restore(store, &opts, "/big/", "HEAD", RestoreHow::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--in-batches"), "{err}");
    assert_eq!(
        big(dump(store).await),
        changed,
        "a refused restore writes nothing"
    );
    let how = RestoreHow {
        in_batches: true,
        ..RestoreHow::default()
    };
    let report = strata_backup::restore(store, &opts, "/big/", "HEAD", how)
        .await
        .unwrap();
    assert_eq!((report.put.len(), report.deleted.len()), (300, 1));
    assert_eq!(big(dump(store).await), original);
}

/// A real in-memory store that, once armed, changes `/app/users/7/status` right after
/// answering the next read: the moment between a restore's read and its write.
#[derive(Clone)]
struct Meddler {
    inner: MemStore,
    armed: std::sync::Arc<AtomicBool>,
}

impl Store for Meddler {
    fn capabilities(&self) -> strata_core::Capabilities {
        self.inner.capabilities()
    }
    async fn range(
        &self,
        req: strata_core::RangeRequest,
    ) -> strata_core::Result<strata_core::RangeResponse> {
        let resp = self.inner.range(req).await?;
        if self.armed.swap(false, Ordering::SeqCst) {
            self.inner
                .put(b"/app/users/7/status", b"blocked-by-someone-else")
                .await?;
        }
        Ok(resp)
    }
    async fn txn(&self, txn: Txn) -> strata_core::Result<strata_core::TxnResponse> {
        self.inner.txn(txn).await
    }
    async fn watch(
        &self,
        req: strata_core::WatchRequest,
    ) -> strata_core::Result<strata_core::Watcher> {
        self.inner.watch(req).await
    }
    async fn compact(&self, revision: i64) -> strata_core::Result<()> {
        self.inner.compact(revision).await
    }
    async fn history(&self, key: &[u8]) -> strata_core::Result<Vec<strata_core::Event>> {
        self.inner.history(key).await
    }
    async fn status(&self) -> strata_core::Result<strata_core::StoreStatus> {
        self.inner.status().await
    }
}

#[tokio::test]
async fn a_restore_reports_a_concurrent_change_instead_of_overwriting_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Meddler {
        inner: MemStore::new(),
        armed: Default::default(),
    };
    store.put(b"/app/users/7/status", b"active").await.unwrap();
    store.put(b"/app/users/7/name", b"Ada").await.unwrap();
    let opts = options(&dir.path().join("repo"));
    strata_backup::run(&store, &opts).await.unwrap();
    store.put(b"/app/users/7/status", b"deleted").await.unwrap();
    store.armed.store(true, Ordering::SeqCst);
    let err = strata_backup::restore(&store, &opts, "/app/users/7", "HEAD", RestoreHow::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/app/users/7/status"), "{err}");
    assert!(err.to_string().contains("force the restore"), "{err}");
    let now = store.get(b"/app/users/7/status").await.unwrap().unwrap();
    assert_eq!(
        now.value, b"blocked-by-someone-else",
        "the concurrent write was kept"
    );
    // Run again: it restores over the new value; --force does so even if it moves.
    store.armed.store(true, Ordering::SeqCst);
    strata_backup::restore(
        &store,
        &opts,
        "/app/users/7",
        "HEAD",
        RestoreHow {
            force: true,
            ..RestoreHow::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        store
            .get(b"/app/users/7/status")
            .await
            .unwrap()
            .unwrap()
            .value,
        b"active"
    );
}

/// In batches, a concurrent change stops the restore at the batch that holds it: the
/// error names the key and how far it got, the change is kept, and a second run
/// finishes the job.
#[tokio::test]
async fn a_restore_in_batches_stops_at_a_conflict_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let mut caps = MemStore::new().capabilities();
    caps.max_txn_ops = 4;
    let store = Meddler {
        inner: MemStore::with_capabilities(caps),
        armed: Default::default(),
    };
    let key = |i: usize| format!("/app/users/{i}/status").into_bytes();
    for i in 0..10 {
        store.put(&key(i), b"active").await.unwrap();
    }
    let opts = options(&dir.path().join("repo"));
    strata_backup::run(&store, &opts).await.unwrap();
    for i in 0..10 {
        store.put(&key(i), b"gone").await.unwrap();
    }
    let err = strata_backup::restore(&store, &opts, "/app/users/", "HEAD", RestoreHow::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pass --in-batches"), "{err}");
    let how = RestoreHow {
        in_batches: true,
        ..RestoreHow::default()
    };
    // Key 7 changes between the read and the second batch (keys 4 to 7).
    store.armed.store(true, Ordering::SeqCst);
    let err = strata_backup::restore(&store, &opts, "/app/users/", "HEAD", how)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("/app/users/7/status"), "{message}");
    assert!(message.contains("4 of 10 writes were done"), "{message}");
    let values: Vec<String> = dump(&store)
        .await
        .into_values()
        .map(|v| String::from_utf8(v).unwrap())
        .collect();
    assert_eq!(
        values,
        [
            "active",
            "active",
            "active",
            "active",
            "gone",
            "gone",
            "gone",
            "blocked-by-someone-else",
            "gone",
            "gone"
        ]
    );
    let report = strata_backup::restore(&store, &opts, "/app/users/", "HEAD", how)
        .await
        .unwrap();
    assert_eq!((report.put.len(), report.unchanged), (6, 4));
    assert!(dump(&store)
        .await
        .values()
        .all(|v| v.as_slice() == b"active"));
}

/// Regression: a prefix's direct children live in the file next to its folder
/// (`/a/x` is member `x` of `a.json`), which a restore of `/a/` must read too.
#[tokio::test]
async fn restoring_a_prefix_or_an_object_includes_its_direct_children() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::new();
    let keys: [&[u8]; 5] = [b"/a", b"/a/x", b"/a/b/c", b"/ab/y", b"/top"];
    for k in keys {
        store.put(k, b"v").await.unwrap();
    }
    let opts = options(&dir.path().join("repo"));
    strata_backup::run(&store, &opts).await.unwrap();
    store.delete(KeySpan::all()).await.unwrap();
    let report = strata_backup::restore(&store, &opts, "/a/", "HEAD", RestoreHow::default())
        .await
        .unwrap();
    assert_eq!(report.put, [b"/a/b/c".to_vec(), b"/a/x".to_vec()]);
    strata_backup::restore(&store, &opts, "/a", "HEAD", RestoreHow::default())
        .await
        .unwrap();
    let expected: Data = [&b"/a"[..], b"/a/b/c", b"/a/x"]
        .iter()
        .map(|k| (k.to_vec(), b"v".to_vec()))
        .collect();
    assert_eq!(dump(&store).await, expected);
}

/// Verify after the store compacted the revision the last commit records: with no
/// backed-up key changed since (so no new commit), the backup is still proven exact
/// against the store as it is now; after a change it is reported, naming the
/// compaction and what to do.
#[tokio::test]
async fn verify_after_compaction_compares_with_the_store_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::new();
    store.put(b"/app/a", b"1").await.unwrap();
    store.put(b"/app/b", b"2").await.unwrap();
    let opts = options(&dir.path().join("repo"));
    let first = strata_backup::run(&store, &opts).await.unwrap();
    // Only keys a backup never covers change; the next run commits nothing.
    store.put(b"/_strata/x", b"internal").await.unwrap();
    let again = strata_backup::run(&store, &opts).await.unwrap();
    assert!(again.commit.is_none(), "{again:?}");
    let now = store.status().await.unwrap().revision;
    store.compact(now).await.unwrap();
    let v = strata_backup::verify(&store, &opts).await.unwrap();
    assert_eq!((v.revision, v.compared_at), (first.revision, now));
    store.put(b"/app/b", b"changed").await.unwrap();
    store.compact(now + 1).await.unwrap();
    let err = strata_backup::verify(&store, &opts).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("does not match"), "{message}");
    assert!(message.contains("run `strata backup run`"), "{message}");
}

/// A run that finds nothing to commit (only keys outside the backup changed) notes the
/// revision it reached, so the next run replays from there: compacting the revision
/// the last commit records does not force a full read.
#[tokio::test]
async fn a_run_with_nothing_to_commit_moves_the_next_runs_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::new();
    store.put(b"/app/a", b"1").await.unwrap();
    let opts = options(&dir.path().join("repo"));
    let first = strata_backup::run(&store, &opts).await.unwrap();
    assert!(first.commit.is_some());
    for i in 0..5 {
        store.put(b"/_strata/busy", &[i]).await.unwrap();
    }
    let quiet = strata_backup::run(&store, &opts).await.unwrap();
    assert!(quiet.commit.is_none(), "{quiet:?}");
    assert_eq!(quiet.revision, store.status().await.unwrap().revision);
    store.compact(quiet.revision).await.unwrap();
    store.put(b"/app/b", b"2").await.unwrap();
    let next = strata_backup::run(&store, &opts).await.unwrap();
    assert!(next.commit.is_some());
    assert!(
        !next.full,
        "a full read although nothing backed up changed: {next:?}"
    );
    assert_eq!((next.added, next.changed, next.removed), (1, 0, 0));
    strata_backup::verify(&store, &opts).await.unwrap();
}
