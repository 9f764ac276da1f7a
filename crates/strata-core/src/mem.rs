//! The in-memory reference backend (`mem:`): the model every other backend is checked
//! against by the conformance suite. Plain data structures behind one mutex, the
//! semantics from [`crate::engine`]; nothing is persisted. For tests and dry runs.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::engine::{self, run_ready, RevisionedState};
use crate::error::Result;
use crate::model::*;
use crate::store::{Store, StoreStatus, Watcher};

/// One entry of a key's history: `None` is a delete.
#[derive(Clone, Debug)]
struct LogEntry {
    revision: i64,
    kv: Option<KeyValue>,
}

#[derive(Debug, Default)]
struct MemState {
    revision: i64,
    compacted: i64,
    current: BTreeMap<Vec<u8>, KeyValue>,
    log: BTreeMap<Vec<u8>, Vec<LogEntry>>,
    /// Changes in revision order, from the compaction point on; feeds watch replay.
    events: Vec<Event>,
    /// Writes of the transaction in progress: the key and its state before.
    undo: Vec<(Vec<u8>, Option<KeyValue>)>,
    pending: Vec<Event>,
    watchers: Vec<(KeySpan, mpsc::Sender<Result<Vec<Event>>>)>,
}

fn span_range<'a>(start: &'a [u8], end: Option<&'a [u8]>) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (
        Bound::Included(start),
        end.map_or(Bound::Unbounded, Bound::Excluded),
    )
}

impl MemState {
    fn new() -> Self {
        MemState {
            revision: 1,
            ..Default::default()
        }
    }

    fn at(&self, key: &[u8], revision: i64) -> Option<&KeyValue> {
        let entries = self.log.get(key)?;
        let entry = entries.iter().rev().find(|e| e.revision <= revision)?;
        entry.kv.as_ref()
    }

    fn record(&mut self, key: &[u8], revision: i64, kv: Option<KeyValue>) {
        let before = match &kv {
            Some(kv) => self.current.insert(key.to_vec(), kv.clone()),
            None => self.current.remove(key),
        };
        self.undo.push((key.to_vec(), before));
        self.log.entry(key.to_vec()).or_default().push(LogEntry {
            revision,
            kv: kv.clone(),
        });
        self.pending.push(match kv {
            Some(kv) => Event {
                kind: EventKind::Put,
                kv,
            },
            None => Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: key.to_vec(),
                    mod_revision: revision,
                    ..Default::default()
                },
            },
        });
    }

    fn rollback(&mut self) {
        for (key, before) in self.undo.drain(..).rev() {
            match before {
                Some(kv) => self.current.insert(key.clone(), kv),
                None => self.current.remove(&key),
            };
            if let Some(entries) = self.log.get_mut(&key) {
                entries.pop();
                if entries.is_empty() {
                    self.log.remove(&key);
                }
            }
        }
        self.pending.clear();
    }

    fn commit(&mut self) {
        self.undo.clear();
        if self.pending.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.pending);
        self.watchers.retain(|(span, tx)| {
            let batch: Vec<Event> = events
                .iter()
                .filter(|e| span.contains(&e.kv.key))
                .cloned()
                .collect();
            // A watcher that is gone or too far behind is dropped; it then ends with
            // an error that says where to resume.
            batch.is_empty() || tx.try_send(Ok(batch)).is_ok()
        });
        self.events.extend(events);
    }

    fn compact(&mut self, revision: i64) {
        for entries in self.log.values_mut() {
            // Keep the latest entry at or below `revision` (the state as of the
            // compaction point) unless it is a delete, and everything after.
            let keep_from = entries.iter().rposition(|e| e.revision <= revision);
            if let Some(i) = keep_from {
                let drop_through = if entries[i].kv.is_none() && entries[i].revision < revision {
                    i + 1
                } else {
                    i
                };
                entries.drain(..drop_through);
            }
        }
        self.log.retain(|_, entries| !entries.is_empty());
        self.events.retain(|e| e.revision() >= revision);
        self.compacted = revision;
    }
}

impl RevisionedState for MemState {
    async fn revision(&mut self) -> Result<i64> {
        Ok(self.revision)
    }

    async fn compact_revision(&mut self) -> Result<i64> {
        Ok(self.compacted)
    }

    async fn current(&mut self, key: &[u8]) -> Result<Option<KeyValue>> {
        Ok(self.current.get(key).cloned())
    }

    async fn range(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        revision: Option<i64>,
        limit: i64,
        keys_only: bool,
    ) -> Result<(Vec<KeyValue>, bool)> {
        if end.is_some_and(|e| e <= start) {
            return Ok((Vec::new(), false));
        }
        let limit = if limit <= 0 {
            usize::MAX
        } else {
            limit as usize
        };
        let bounds = span_range(start, end);
        let mut kvs: Vec<KeyValue> = match revision {
            None => self
                .current
                .range::<[u8], _>(bounds)
                .map(|(_, kv)| kv.clone())
                .take(limit.saturating_add(1))
                .collect(),
            Some(rev) => self
                .log
                .range::<[u8], _>(bounds)
                .filter_map(|(key, _)| self.at(key, rev).cloned())
                .take(limit.saturating_add(1))
                .collect(),
        };
        let more = kvs.len() > limit;
        kvs.truncate(limit);
        if keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        Ok((kvs, more))
    }

    async fn count(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        revision: Option<i64>,
    ) -> Result<i64> {
        Ok(self.range(start, end, revision, 0, true).await?.0.len() as i64)
    }

    async fn write_put(&mut self, kv: &KeyValue, _seq: i64) -> Result<()> {
        self.record(&kv.key, kv.mod_revision, Some(kv.clone()));
        Ok(())
    }

    async fn write_delete(&mut self, key: &[u8], revision: i64, _seq: i64) -> Result<()> {
        self.record(key, revision, None);
        Ok(())
    }

    async fn set_revision(&mut self, revision: i64) -> Result<()> {
        self.revision = revision;
        Ok(())
    }
}

/// The in-memory store: the reference model of the [`Store`] contract. Cloning shares
/// the same data; dropping the last clone drops it. No leases
/// ([`Capabilities::leases`] is false).
#[derive(Clone, Debug)]
pub struct MemStore {
    state: Arc<Mutex<MemState>>,
    caps: Capabilities,
}

impl Default for MemStore {
    fn default() -> Self {
        Self::new()
    }
}

/// How many undelivered batches a watcher may have before it is dropped.
const WATCH_BUFFER: usize = 2_048;

impl MemStore {
    /// An empty store at revision 1, with generous limits (10,000 ops per transaction,
    /// 64 MiB per value).
    pub fn new() -> Self {
        MemStore {
            state: Arc::new(Mutex::new(MemState::new())),
            caps: Capabilities {
                backend: "mem",
                max_txn_ops: 10_000,
                max_value_bytes: 64 << 20,
                max_request_bytes: 256 << 20,
                range_page_size: 10_000,
                max_in_flight: 1,
                leases: false,
            },
        }
    }

    /// An empty store with other limits, to exercise batching in tests. Transactions
    /// are validated against `caps`.
    pub fn with_capabilities(caps: Capabilities) -> Self {
        MemStore {
            caps,
            ..Self::new()
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        // A panic while holding the lock cannot leave half a transaction: the undo
        // journal is replayed by the next writer below.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !guard.undo.is_empty() {
            guard.rollback();
        }
        guard
    }
}

impl Store for MemStore {
    fn capabilities(&self) -> Capabilities {
        self.caps.clone()
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        run_ready(engine::range(&mut *self.lock(), &req))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let mut state = self.lock();
        match run_ready(engine::txn(&mut *state, &txn, &self.caps)) {
            Ok(resp) => {
                state.commit();
                Ok(resp)
            }
            Err(err) => {
                state.rollback();
                Err(err)
            }
        }
    }

    async fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        let mut state = self.lock();
        let start = run_ready(engine::resolve_watch_start(&mut *state, req.start_revision))?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        // Replay and registration happen under one lock: no gap, no duplicate. The
        // replay is handed to the watcher whole (never through the bounded channel,
        // which would drop what does not fit).
        let mut replay: Vec<Vec<Event>> = Vec::new();
        for event in state
            .events
            .iter()
            .filter(|e| e.revision() >= start && req.span.contains(&e.kv.key))
        {
            match replay.last_mut() {
                Some(batch)
                    if batch
                        .last()
                        .is_some_and(|l| l.revision() == event.revision()) =>
                {
                    batch.push(event.clone())
                }
                _ => replay.push(vec![event.clone()]),
            }
        }
        state.watchers.push((req.span, tx));
        Ok(Watcher::with_replay(replay, rx, "mem", start))
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        let mut state = self.lock();
        let revision = run_ready(engine::check_compact(&mut *state, revision))?;
        state.compact(revision);
        Ok(())
    }

    async fn history(&self, key: &[u8]) -> Result<Vec<Event>> {
        let state = self.lock();
        Ok(state
            .log
            .get(key)
            .map(|entries| entries.iter().map(|e| log_event(key, e)).collect())
            .unwrap_or_default())
    }

    async fn status(&self) -> Result<StoreStatus> {
        let state = self.lock();
        Ok(StoreStatus {
            revision: state.revision,
            compact_revision: state.compacted,
        })
    }
}

fn log_event(key: &[u8], entry: &LogEntry) -> Event {
    match &entry.kv {
        Some(kv) => Event {
            kind: EventKind::Put,
            kv: kv.clone(),
        },
        None => Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.to_vec(),
                mod_revision: entry.revision,
                ..Default::default()
            },
        },
    }
}
