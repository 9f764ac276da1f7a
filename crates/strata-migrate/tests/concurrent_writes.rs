//! An application writing between a step's read and its write: whatever it wrote
//! survives, and the object is redone from a fresh read (the in-memory reference store,
//! wrapped so that the write lands at exactly that moment).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use strata_core::{
    Capabilities, Event, MemStore, RangeRequest, RangeResponse, Result, Store, StoreStatus, Txn,
    TxnResponse, WatchRequest, Watcher,
};
use strata_migrate::{load_dir, up, UpOptions};

/// A store that, once armed, writes `key = value` right after answering the next
/// paged read (a step's scan page).
#[derive(Clone)]
struct Application {
    inner: MemStore,
    armed: Arc<AtomicBool>,
    key: &'static str,
    value: &'static str,
}

impl Application {
    /// A store holding three users, armed to write `key = value` once.
    async fn with_users(key: &'static str, value: &'static str) -> Self {
        let store = Application {
            inner: MemStore::new(),
            armed: Arc::default(),
            key,
            value,
        };
        for i in 1..=3 {
            for (field, v) in [("plan", "free"), ("status", "active")] {
                store
                    .put(format!("/u/users/{i}/{field}").as_bytes(), v.as_bytes())
                    .await
                    .unwrap();
            }
        }
        store.armed.store(true, Ordering::SeqCst);
        store
    }
}

impl Store for Application {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let paged = req.limit > 0;
        let resp = self.inner.range(req).await?;
        if paged && self.armed.swap(false, Ordering::SeqCst) {
            self.inner
                .put(self.key.as_bytes(), self.value.as_bytes())
                .await?;
        }
        Ok(resp)
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.inner.txn(txn).await
    }
    async fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        self.inner.watch(req).await
    }
    async fn compact(&self, revision: i64) -> Result<()> {
        self.inner.compact(revision).await
    }
    async fn history(&self, key: &[u8]) -> Result<Vec<Event>> {
        self.inner.history(key).await
    }
    async fn status(&self) -> Result<StoreStatus> {
        self.inner.status().await
    }
}

fn migrations(steps: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("users")).unwrap();
    std::fs::write(dir.path().join("users/0001_step.toml"), steps).unwrap();
    dir
}

async fn value(store: &Application, key: &str) -> Option<String> {
    store
        .get(key.as_bytes())
        .await
        .unwrap()
        .map(|kv| String::from_utf8(kv.value).unwrap())
}

async fn run(store: &Application, dir: &tempfile::TempDir) -> u64 {
    let areas = load_dir(dir.path()).unwrap();
    let reports = up(store, &areas, &UpOptions::default(), &mut |_| {})
        .await
        .unwrap();
    reports.iter().map(|r| r.total.retries).sum()
}

/// A default is set only where the field is missing: a value the application sets
/// after the step read the object (so the step saw it missing) is kept.
#[tokio::test]
async fn a_default_does_not_overwrite_a_value_set_meanwhile() {
    let store = Application::with_users("/u/users/2/currency", "USD").await;
    let dir = migrations(
        "[[steps]]\nop = 'set_default'\nobject = '/u/users/{id}'\nfield = 'currency'\nvalue = 'EUR'\n",
    );
    let retries = run(&store, &dir).await;
    assert_eq!(
        value(&store, "/u/users/1/currency").await.as_deref(),
        Some("EUR")
    );
    assert_eq!(
        value(&store, "/u/users/2/currency").await.as_deref(),
        Some("USD"),
        "the application's value was overwritten by the default"
    );
    assert_eq!(
        value(&store, "/u/users/3/currency").await.as_deref(),
        Some("EUR")
    );
    assert_eq!(retries, 1, "user 2 is redone once");
}

/// A rename carries the application's new value of the renamed field, and an update
/// of another field meanwhile neither is lost nor makes the rename redo the object.
#[tokio::test]
async fn a_rename_carries_a_value_changed_meanwhile_and_ignores_other_fields() {
    let dir = migrations(
        "[[steps]]\nop = 'rename_field'\nobject = '/u/users/{id}'\nfrom = 'plan'\nto = 'billing/plan'\n",
    );
    let store = Application::with_users("/u/users/2/plan", "team").await;
    assert_eq!(run(&store, &dir).await, 1);
    assert_eq!(
        value(&store, "/u/users/2/billing/plan").await.as_deref(),
        Some("team")
    );
    assert_eq!(value(&store, "/u/users/2/plan").await, None);

    let other = Application::with_users("/u/users/2/status", "blocked").await;
    assert_eq!(
        run(&other, &dir).await,
        0,
        "another field's update costs no retry"
    );
    assert_eq!(
        value(&other, "/u/users/2/status").await.as_deref(),
        Some("blocked")
    );
    assert_eq!(
        value(&other, "/u/users/2/billing/plan").await.as_deref(),
        Some("free")
    );
}
