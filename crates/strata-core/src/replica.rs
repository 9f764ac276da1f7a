//! [`Replica`]: one prefix of a store in memory for lookups on a hot path (an entry node
//! resolving a device to its core node on every connection), kept current by a watch.
//!
//! A replica is filled by one consistent read of the prefix (paged at one revision, see
//! [`scan`]) and then follows a watch from that read's revision + 1, applying each batch
//! of changes whole under one write lock, so a reader never sees half a transaction.
//! Reads never touch the network and say which revision they reflect. A lost watch is
//! opened again from the last revision applied (nothing missed, nothing applied twice:
//! a change at or below that revision is skipped); when that revision has been
//! compacted, a fresh consistent read replaces the contents at once for readers.
//!
//! Owns the in-memory copy, the background task that feeds it (stopped when the
//! `Replica` is dropped), waiting for a revision and the status. Does not own the store,
//! nor the reconnects a backend makes inside its own watch (etcd's).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::model::{Event, EventKind, KeySpan, KeyValue, RangeRequest, WatchRequest};
use crate::store::{scan, Store};

/// A value read from a replica with the store revision it reflects: the replica held
/// exactly the prefix's contents as of `revision` when it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtRevision<T> {
    /// The store revision the replica's contents reflected at the read.
    pub revision: i64,
    /// What was read.
    pub value: T,
}

/// Replica settings.
#[derive(Clone, Debug)]
pub struct ReplicaOptions {
    /// How often the store is asked for its revision (one small read), so that a store
    /// that stops answering shows in [`ReplicaStatus::connected`] even while a backend
    /// quietly reconnects its watch.
    pub check_every: Duration,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        ReplicaOptions {
            check_every: Duration::from_secs(5),
        }
    }
}

/// What a replica reports about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The revision reads reflect.
    pub revision: i64,
    /// The keys held.
    pub keys: usize,
    /// A watch is open and the store answered the last request made to it.
    pub connected: bool,
    /// The last failure (kept after recovery; `connected` says how things are now).
    pub last_error: Option<String>,
    /// Failures so far, each retried.
    pub errors: u64,
    /// Full consistent reads: the first, then one each time the watch fell behind
    /// the store's compaction point.
    pub reads: u64,
    /// Changes (puts and deletes) applied from the watch.
    pub changes: u64,
}

/// One prefix of a store in memory, fed by a consistent read and then a watch. Reads
/// are lock-shared and never wait for the network; see the module docs.
pub struct Replica {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("prefix", &String::from_utf8_lossy(&self.shared.prefix))
            .field("status", &self.status())
            .finish()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Replica {
    /// Reads `prefix` of `store` at one revision, then follows it in a background task
    /// (on the current tokio runtime) until the replica is dropped. Fails if that first
    /// read fails; every later failure is retried and shows in [`Replica::status`].
    pub async fn start<S>(store: S, prefix: impl Into<Vec<u8>>) -> Result<Replica>
    where
        S: Store + Send + Sync + 'static,
    {
        Self::start_with(store, prefix, ReplicaOptions::default()).await
    }

    /// [`Replica::start`] with settings.
    pub async fn start_with<S>(
        store: S,
        prefix: impl Into<Vec<u8>>,
        opts: ReplicaOptions,
    ) -> Result<Replica>
    where
        S: Store + Send + Sync + 'static,
    {
        let prefix = prefix.into();
        let span = KeySpan::prefix(prefix.clone());
        let view = read_all(&store, &span).await?;
        let shared = Arc::new(Shared {
            prefix,
            backend: store.capabilities().backend,
            progress: watch::channel(view.revision).0,
            view: RwLock::new(view),
            health: Mutex::new(Health {
                store_answers: true,
                reads: 1,
                ..Health::default()
            }),
            wanted: AtomicI64::new(0),
            nudge: Notify::new(),
        });
        let task = tokio::spawn(follow(store, shared.clone(), span, opts));
        Ok(Replica { shared, task })
    }

    /// The prefix this replica holds.
    pub fn prefix(&self) -> &[u8] {
        &self.shared.prefix
    }

    /// One key. A key outside the prefix is never held: `None`.
    pub fn get(&self, key: &[u8]) -> AtRevision<Option<Arc<KeyValue>>> {
        let view = self.shared.read();
        AtRevision {
            revision: view.revision,
            value: view.kvs.get(key).cloned(),
        }
    }

    /// Every key held that starts with `prefix`, sorted bytewise, all as of one revision.
    pub fn list(&self, prefix: &[u8]) -> AtRevision<Vec<Arc<KeyValue>>> {
        let view = self.shared.read();
        let value = view
            .kvs
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect();
        AtRevision {
            revision: view.revision,
            value,
        }
    }

    /// The revision reads reflect now.
    pub fn revision(&self) -> i64 {
        self.shared.read().revision
    }

    /// Where the replica stands (see [`ReplicaStatus`]).
    pub fn status(&self) -> ReplicaStatus {
        let (revision, keys) = {
            let view = self.shared.read();
            (view.revision, view.kvs.len())
        };
        let health = self.shared.health();
        ReplicaStatus {
            revision,
            keys,
            connected: health.watching && health.store_answers,
            last_error: health.last_error.clone(),
            errors: health.errors,
            reads: health.reads,
            changes: health.changes,
        }
    }

    /// Waits until reads reflect `revision` or later (read your own writes: pass the
    /// revision a put returned) and returns the revision reached. The revision moves
    /// with each change under the prefix; one that no change under the prefix brings
    /// (a write elsewhere) is reached by checking, after a short wait, that the keys
    /// held are the store's at its current revision (one keys-only read). Fails with
    /// [`Error::Unavailable`] after `timeout`, saying where the replica stands.
    pub async fn wait_for(&self, revision: i64, timeout: Duration) -> Result<i64> {
        let deadline = Instant::now() + timeout;
        let mut progress = self.shared.progress.subscribe();
        let mut nudge_every = Duration::from_millis(50);
        let mut nudge_at = Instant::now() + nudge_every;
        loop {
            let reached = *progress.borrow_and_update();
            if reached >= revision {
                return Ok(reached);
            }
            if Instant::now() >= deadline {
                return Err(self.not_reached(revision, reached, timeout));
            }
            tokio::select! {
                // The sender lives as long as `self`: this never fails here.
                _ = progress.changed() => {}
                _ = tokio::time::sleep_until(nudge_at.min(deadline)) => {
                    if Instant::now() >= nudge_at {
                        self.shared.wanted.fetch_max(revision, Ordering::SeqCst);
                        self.shared.nudge.notify_one();
                        nudge_every = (nudge_every * 2).min(Duration::from_secs(1));
                        nudge_at = Instant::now() + nudge_every;
                    }
                }
            }
        }
    }

    fn not_reached(&self, revision: i64, reached: i64, timeout: Duration) -> Error {
        let status = self.status();
        let why = match (&status.last_error, status.connected) {
            (_, true) => "its watch is connected: has the store reached that revision?".into(),
            (Some(e), false) => format!("its watch is not connected; the last error: {e}"),
            (None, false) => "its watch is not connected".to_owned(),
        };
        Error::Unavailable {
            backend: self.shared.backend.to_owned(),
            operation: format!(
                "waiting for revision {revision} in the replica of {}",
                String::from_utf8_lossy(&self.shared.prefix)
            ),
            outcome_unknown: false,
            source: format!("it reached revision {reached} within {timeout:?}; {why}").into(),
        }
    }
}

/// What readers see: the contents and the revision they reflect, changed together.
#[derive(Default)]
struct View {
    revision: i64,
    kvs: BTreeMap<Vec<u8>, Arc<KeyValue>>,
}

#[derive(Default)]
struct Health {
    watching: bool,
    store_answers: bool,
    last_error: Option<String>,
    errors: u64,
    reads: u64,
    changes: u64,
}

/// The state the replica's handle and its task share.
struct Shared {
    prefix: Vec<u8>,
    backend: &'static str,
    view: RwLock<View>,
    /// The revision of `view`, for [`Replica::wait_for`].
    progress: watch::Sender<i64>,
    health: Mutex<Health>,
    /// The highest revision a waiter has asked the task to check for (see `check_keys`).
    wanted: AtomicI64,
    nudge: Notify,
}

impl Shared {
    // A panic while a lock was held cannot leave the view torn in a way a reader could
    // misuse (each batch is applied whole or the task is gone), so poison is ignored.
    fn read(&self) -> RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies one watch batch, skipping changes at or below `applied`; returns the new
    /// applied revision.
    fn apply(&self, applied: i64, events: Vec<Event>) -> i64 {
        let Some(last) = events.last().map(Event::revision).filter(|&r| r > applied) else {
            return applied;
        };
        let mut changes = 0;
        {
            let mut view = self.view.write().unwrap_or_else(PoisonError::into_inner);
            for event in events.into_iter().filter(|e| e.revision() > applied) {
                changes += 1;
                match event.kind {
                    EventKind::Put => {
                        view.kvs.insert(event.kv.key.clone(), Arc::new(event.kv));
                    }
                    EventKind::Delete => {
                        view.kvs.remove(&event.kv.key);
                    }
                }
            }
            view.revision = last;
        }
        {
            let mut health = self.health();
            health.changes += changes;
            health.store_answers = true;
        }
        self.progress.send_replace(last);
        last
    }

    /// Swaps in the contents of a fresh read; returns its revision.
    fn replace(&self, fresh: View) -> i64 {
        let revision = fresh.revision;
        *self.view.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        self.health().reads += 1;
        self.progress.send_replace(revision);
        revision
    }

    fn failed(&self, error: &Error) {
        let mut health = self.health();
        health.errors += 1;
        health.store_answers = false;
        health.last_error = Some(error.to_string());
    }
}

/// The whole prefix at one revision (read again from the latest if the pages' revision
/// is compacted part-way).
async fn read_all<S: Store>(store: &S, span: &KeySpan) -> Result<View> {
    let mut attempts = 0;
    loop {
        let mut kvs = BTreeMap::new();
        let read = scan(store, span.clone(), 0, |page| {
            kvs.extend(page.into_iter().map(|kv| (kv.key.clone(), Arc::new(kv))));
            Ok(())
        })
        .await;
        match read {
            Ok(revision) => return Ok(View { revision, kvs }),
            Err(Error::Compacted { .. }) if attempts < 3 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The store's current revision, by one small read (of the prefix's own key, which a
/// user allowed the prefix may read; no key is empty).
async fn store_revision<S: Store>(store: &S, span: &KeySpan) -> Result<i64> {
    let (mut start, _) = span.bounds();
    if start.is_empty() {
        start.push(0);
    }
    let req = RangeRequest::new(KeySpan::Key(start)).count_only();
    Ok(store.range(req).await?.revision)
}

/// Retry pacing: 200 ms, doubling up to 5 s, reset by a success.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);

    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
    }

    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}

/// The background task: watch from the last revision applied, forever.
async fn follow<S: Store>(store: S, shared: Arc<Shared>, span: KeySpan, opts: ReplicaOptions) {
    let mut applied = shared.read().revision;
    let mut backoff = Backoff(Backoff::FIRST);
    let mut checks = tokio::time::interval(opts.check_every.max(Duration::from_millis(10)));
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let req = WatchRequest {
            span: span.clone(),
            start_revision: applied + 1,
        };
        let lost = match store.watch(req).await {
            Ok(mut watcher) => {
                shared.health().watching = true;
                // Ask the store at once: an open watch alone does not prove it answers.
                checks.reset_immediately();
                loop {
                    tokio::select! {
                        batch = watcher.next() => match batch {
                            Some(Ok(events)) => {
                                backoff.reset();
                                applied = shared.apply(applied, events);
                            }
                            Some(Err(e)) => break e,
                            None => break Error::WatchClosed {
                                backend: shared.backend.to_owned(),
                                reason: "the stream ended".into(),
                            },
                        },
                        _ = checks.tick() => match store_revision(&store, &span).await {
                            Ok(_) => shared.health().store_answers = true,
                            Err(e) => shared.failed(&e),
                        },
                        _ = shared.nudge.notified() => {
                            applied = check_keys(&store, &shared, &span, applied).await;
                        }
                    }
                }
            }
            Err(e) => e,
        };
        shared.health().watching = false;
        match lost {
            Error::Compacted { .. } => {
                // The changes since `applied` are gone: read the prefix again.
                applied = loop {
                    match read_all(&store, &span).await {
                        Ok(fresh) => break shared.replace(fresh),
                        Err(e) => {
                            shared.failed(&e);
                            backoff.wait().await;
                        }
                    }
                };
                backoff.reset();
            }
            e => {
                shared.failed(&e);
                backoff.wait().await;
            }
        }
    }
}

/// When a waiter wants a revision beyond `applied` that no change has brought: reads
/// the keys (no values) at the store's current revision `now`. If every key held is
/// there with the same `mod_revision` and no other key is, nothing under the prefix
/// changed in between, so the contents are also the prefix as of `now`: the revision
/// moves there. Otherwise a change is on its way through the watch. Returns the new
/// applied revision.
async fn check_keys<S: Store>(store: &S, shared: &Shared, span: &KeySpan, applied: i64) -> i64 {
    if shared.wanted.load(Ordering::SeqCst) <= applied {
        return applied;
    }
    let checked = async {
        let now = store_revision(store, span).await?;
        if now <= applied {
            return Ok(applied);
        }
        let (mut start, end) = span.bounds();
        let page = store.capabilities().range_page_size.max(1);
        let mut seen = 0;
        loop {
            let req = RangeRequest::new(KeySpan::Range {
                start: start.clone(),
                end: end.clone(),
            })
            .at_revision(now)
            .with_limit(page)
            .keys_only();
            let resp = store.range(req).await?;
            // Only this task changes the view, so it holds still while being compared.
            let view = shared.read();
            for kv in &resp.kvs {
                match view.kvs.get(&kv.key) {
                    Some(held) if held.mod_revision == kv.mod_revision => seen += 1,
                    _ => return Ok(applied),
                }
            }
            match resp.kvs.last() {
                Some(last) if resp.more => {
                    start = last.key.clone();
                    start.push(0);
                }
                _ if seen == view.kvs.len() => break,
                _ => return Ok(applied),
            }
        }
        shared
            .view
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .revision = now;
        shared.progress.send_replace(now);
        Ok(now)
    };
    match checked.await {
        Ok(revision) => revision,
        Err(e) => {
            shared.failed(&e);
            applied
        }
    }
}

#[cfg(test)]
mod tests;
