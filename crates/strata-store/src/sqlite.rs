//! The SQLite backend (`sqlite:PATH`): the embedded default. One file in WAL mode with
//! the revisioned layout of module `sql`, whose statements this module binds and
//! runs; the semantics come from `strata_core::engine`. What is SQLite's own is here:
//! opening the file (busy timeout, WAL, `synchronous=FULL`), transactions, the
//! per-key batch upsert, and the polling watch.
//!
//! Every write runs in one `BEGIN IMMEDIATE` transaction, so writers in several
//! processes are serialised by SQLite's lock and revisions are gap-free. A watch polls
//! the log from its own connection, so it sees writes made by other processes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use strata_core::engine::{self, run_ready, RevisionedState};
use strata_core::{
    Capabilities, Error, Event, KeySpan, KeyValue, RangeRequest, RangeResponse, Result, Store,
    StoreStatus, Txn, TxnResponse, WatchRequest, Watcher,
};
use tokio::sync::mpsc;

use crate::sql::{self, Dialect, Sql, SqlRow, LAYOUT_VERSION};

const BACKEND: &str = "sqlite";
/// How often an idle watch looks for new revisions.
const WATCH_POLL: Duration = Duration::from_millis(10);

/// The layout's statements in SQLite's dialect.
static SQL: LazyLock<Sql> = LazyLock::new(|| Sql::new(Dialect::Sqlite, None));

/// SQLite's batch put: an upsert that derives `version` and `create_revision` from the
/// row it replaces and returns them, run once per key. `?1` key, `?2` value, `?3` the
/// revision.
const PUT_RETURNING: &str =
    "INSERT INTO strata_kv (key, value, create_revision, mod_revision, version) \
     VALUES (?1, ?2, ?3, ?3, 1) ON CONFLICT (key) DO UPDATE SET \
     value = excluded.value, mod_revision = excluded.mod_revision, version = version + 1 \
     RETURNING create_revision, version";

fn sql_err(operation: &str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |e| Error::backend(BACKEND, operation, e)
}

/// A store in one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

/// Opens the file; with `create` false a missing file is an error and nothing is made.
fn open_connection(path: &Path, create: bool) -> Result<Connection> {
    let what = || format!("open {}", path.display());
    let conn = if create {
        Connection::open(path)
    } else {
        if !path.exists() {
            return Err(Error::backend(BACKEND, what(), MISSING));
        }
        // No CREATE flag: a file removed since the check is not made again.
        use rusqlite::OpenFlags as F;
        Connection::open_with_flags(
            path,
            F::SQLITE_OPEN_READ_WRITE | F::SQLITE_OPEN_URI | F::SQLITE_OPEN_NO_MUTEX,
        )
    }
    .map_err(|e| Error::backend(BACKEND, what(), e))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(sql_err("set busy timeout"))?;
    // WAL: readers (watches, other processes) never block the writer. FULL: a commit
    // is on disk before it is acknowledged, as etcd does.
    enable_wal(&conn)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql_err("set synchronous"))?;
    Ok(conn)
}

/// Turns on WAL, which is kept in the file. Switching a file to WAL needs a lock that
/// SQLite does not wait for (the busy timeout does not apply), so when another process
/// opens the same new file at the same moment the switch is retried for up to the busy
/// timeout; a file already in WAL is left as it is.
fn enable_wal(conn: &Connection) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mode = conn
            .pragma_query_value(None, "journal_mode", |r| r.get::<_, String>(0))
            .and_then(|mode| {
                if mode.eq_ignore_ascii_case("wal") {
                    Ok(mode)
                } else {
                    conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
                }
            });
        match mode {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(Error::backend(
                    BACKEND,
                    "enable WAL",
                    format!("the file stays in journal mode {mode}; WAL needs a local file system"),
                ))
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(sql_err("enable WAL")(e)),
        }
    }
}

/// What opening a missing file without creating says (the CLI words its hint on it).
pub const MISSING: &str =
    "no such file, and a read creates none: check the path, or create the store with a write";

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, true)
    }

    /// Opens the store at `path`, which must exist: a missing file is an error naming
    /// it ([`MISSING`]) and no file is made. What readers use, so that a mistyped path
    /// is never a new, empty store.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, false)
    }

    fn open_with(path: impl AsRef<Path>, create: bool) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut conn = open_connection(&path, create)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err("create the layout"))?;
        tx.execute_batch(&SQL.layout)
            .map_err(sql_err("create the layout"))?;
        let layout: i64 = tx
            .query_row(&SQL.meta, ["layout_version"], |r| r.get(0))
            .map_err(sql_err("read the layout version"))?;
        if layout != LAYOUT_VERSION {
            return Err(Error::backend(
                BACKEND,
                format!("open {}", path.display()),
                format!("the file has layout version {layout}, this strata reads {LAYOUT_VERSION}; use a matching strata release"),
            ));
        }
        tx.commit().map_err(sql_err("create the layout"))?;
        Ok(SqliteStore {
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SQLite library's version (`sqlite_version()`).
    pub fn sqlite_version(&self) -> Result<String> {
        self.lock()
            .query_row("SELECT sqlite_version()", [], |r| r.get(0))
            .map_err(sql_err("read the SQLite version"))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The engine's view of one SQLite transaction.
struct SqlState<'a>(&'a rusqlite::Transaction<'a>);

fn meta(conn: &Connection, name: &str) -> Result<i64> {
    conn.prepare_cached(&SQL.meta)
        .and_then(|mut st| st.query_row([name], |r| r.get(0)))
        .map_err(sql_err("read the revision"))
}

impl SqlRow for rusqlite::Row<'_> {
    type Error = rusqlite::Error;

    fn bytes(&self, column: usize) -> rusqlite::Result<Option<Vec<u8>>> {
        self.get(column)
    }

    fn int(&self, column: usize) -> rusqlite::Result<i64> {
        self.get(column)
    }
}

impl RevisionedState for SqlState<'_> {
    async fn revision(&mut self) -> Result<i64> {
        meta(self.0, "revision")
    }

    async fn compact_revision(&mut self) -> Result<i64> {
        meta(self.0, "compact_revision")
    }

    async fn current(&mut self, key: &[u8]) -> Result<Option<KeyValue>> {
        self.0
            .prepare_cached(&SQL.current)
            .and_then(|mut st| st.query_row([key], |r| sql::kv(r)).optional())
            .map_err(sql_err("read a key"))
    }

    async fn range(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        revision: Option<i64>,
        limit: i64,
        keys_only: bool,
    ) -> Result<(Vec<KeyValue>, bool)> {
        let text = SQL.range(revision.is_some(), end.is_some(), keys_only);
        // -1: no limit.
        let fetch = if limit > 0 { limit + 1 } else { -1 };
        let kvs = self
            .0
            .prepare_cached(text)
            .and_then(|mut st| {
                st.query_map(params![start, end, revision, fetch], |r| sql::kv(r))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(sql_err("range read"))?;
        Ok(engine::cut_to_limit(kvs, limit))
    }

    async fn count(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        revision: Option<i64>,
    ) -> Result<i64> {
        self.0
            .prepare_cached(SQL.count(revision.is_some(), end.is_some()))
            .and_then(|mut st| st.query_row(params![start, end, revision], |r| r.get(0)))
            .map_err(sql_err("count keys"))
    }

    async fn write_put(&mut self, kv: &KeyValue, seq: i64) -> Result<()> {
        self.0
            .prepare_cached(&SQL.put)
            .and_then(|mut st| {
                st.execute(params![
                    kv.key,
                    kv.value,
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version
                ])
            })
            .map_err(sql_err("write a key"))?;
        self.0
            .prepare_cached(&SQL.log_put)
            .and_then(|mut st| {
                st.execute(params![
                    kv.mod_revision,
                    seq,
                    kv.key,
                    kv.value,
                    kv.create_revision,
                    kv.version
                ])
            })
            .map_err(sql_err("write the history"))?;
        Ok(())
    }

    async fn put_batch(
        &mut self,
        puts: &[(&[u8], &[u8])],
        revision: i64,
        first_seq: i64,
    ) -> Result<()> {
        // One upsert per key that derives version and create_revision from the row it
        // replaces (RETURNING), instead of a read and a write.
        let mut upsert = self
            .0
            .prepare_cached(PUT_RETURNING)
            .map_err(sql_err("write a key"))?;
        let mut log = self
            .0
            .prepare_cached(&SQL.log_put)
            .map_err(sql_err("write the history"))?;
        for (i, (key, value)) in puts.iter().enumerate() {
            let (create_revision, version): (i64, i64) = upsert
                .query_row(params![key, value, revision], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(sql_err("write a key"))?;
            log.execute(params![
                revision,
                first_seq + i as i64,
                key,
                value,
                create_revision,
                version
            ])
            .map_err(sql_err("write the history"))?;
        }
        Ok(())
    }

    async fn write_delete(&mut self, key: &[u8], revision: i64, seq: i64) -> Result<()> {
        self.0
            .prepare_cached(&SQL.delete)
            .and_then(|mut st| st.execute([key]))
            .map_err(sql_err("delete a key"))?;
        self.0
            .prepare_cached(&SQL.log_delete)
            .and_then(|mut st| st.execute(params![revision, seq, key]))
            .map_err(sql_err("write the history"))?;
        Ok(())
    }

    async fn set_revision(&mut self, revision: i64) -> Result<()> {
        self.0
            .prepare_cached(&SQL.set_revision)
            .and_then(|mut st| st.execute([revision]))
            .map_err(sql_err("advance the revision"))?;
        Ok(())
    }
}

impl SqliteStore {
    /// Runs `f` in one SQLite transaction; commits on `Ok`, rolls back on `Err`.
    ///
    /// SQLite calls block (on the disk, and up to the busy timeout on another
    /// process's write lock), so on a multi-threaded runtime they run where blocking is
    /// allowed (`block_in_place`): the worker's other tasks (a watch, signal handling)
    /// move to another worker meanwhile. A single-threaded runtime has no other worker
    /// to move them to, and runs the call in place.
    fn with_tx<T>(
        &self,
        behavior: TransactionBehavior,
        f: impl FnOnce(&mut SqlState<'_>) -> Result<T>,
    ) -> Result<T> {
        let multi_threaded = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_threaded {
            tokio::task::block_in_place(|| self.with_tx_blocking(behavior, f))
        } else {
            self.with_tx_blocking(behavior, f)
        }
    }

    fn with_tx_blocking<T>(
        &self,
        behavior: TransactionBehavior,
        f: impl FnOnce(&mut SqlState<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(behavior)
            .map_err(sql_err("begin a transaction"))?;
        let out = f(&mut SqlState(&tx))?;
        tx.commit().map_err(sql_err("commit"))?;
        Ok(out)
    }
}

impl Store for SqliteStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            backend: BACKEND,
            max_txn_ops: 10_000,
            max_value_bytes: 16 << 20,
            max_request_bytes: 256 << 20,
            range_page_size: 10_000,
            // One writer at a time: SQLite serialises writers anyway.
            max_in_flight: 1,
            leases: false,
        }
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        // A deferred transaction gives the revision and the rows from one snapshot.
        self.with_tx(TransactionBehavior::Deferred, |state| {
            run_ready(engine::range(state, &req))
        })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let caps = self.capabilities();
        // Validate before taking the write lock: a refused transaction costs nothing.
        txn.validate(&caps)?;
        self.with_tx(TransactionBehavior::Immediate, |state| {
            run_ready(engine::txn(state, &txn, &caps))
        })
    }

    async fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        let start = self.with_tx(TransactionBehavior::Deferred, |state| {
            run_ready(engine::resolve_watch_start(state, req.start_revision))
        })?;
        let conn = open_connection(&self.path, false)?;
        let (tx, rx) = mpsc::channel(256);
        let span = req.span;
        std::thread::Builder::new()
            .name("strata-sqlite-watch".into())
            .spawn(move || watch_loop(conn, span, start, tx))
            .map_err(|e| Error::backend(BACKEND, "start a watch", e))?;
        Ok(Watcher::new(rx, BACKEND, start))
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.with_tx(TransactionBehavior::Immediate, |state| {
            let revision = run_ready(engine::check_compact(state, revision))?;
            state
                .0
                .execute(&SQL.compact, [revision])
                .map_err(sql_err("compact"))?;
            state
                .0
                .execute(&SQL.set_compact_revision, [revision])
                .map_err(sql_err("compact"))?;
            Ok(())
        })
    }

    async fn history(&self, key: &[u8]) -> Result<Vec<Event>> {
        self.with_tx(TransactionBehavior::Deferred, |state| {
            state
                .0
                .prepare_cached(&SQL.history)
                .and_then(|mut st| st.query_map([key], |r| sql::event(r))?.collect())
                .map_err(sql_err("read history"))
        })
    }

    async fn status(&self) -> Result<StoreStatus> {
        self.with_tx(TransactionBehavior::Deferred, |state| {
            Ok(StoreStatus {
                revision: run_ready(state.revision())?,
                compact_revision: run_ready(state.compact_revision())?,
            })
        })
    }
}

/// Polls the log for revisions at or after `next` and sends them, one batch per
/// revision, until the watcher is dropped.
fn watch_loop(
    mut conn: Connection,
    span: KeySpan,
    mut next: i64,
    tx: mpsc::Sender<Result<Vec<Event>>>,
) {
    let (start, end) = span.bounds();
    let text = SQL.watch(end.is_some());
    while !tx.is_closed() {
        let read = (|| -> Result<Option<(i64, Vec<Event>)>> {
            let db = conn.transaction().map_err(sql_err("watch"))?;
            let Some(upto) = run_ready(sql::catch_up_until(&mut SqlState(&db), next))? else {
                return Ok(None);
            };
            let events = db
                .prepare_cached(text)
                .and_then(|mut st| {
                    st.query_map(params![next, upto, start, end], |r| sql::event(r))?
                        .collect()
                })
                .map_err(sql_err("watch"))?;
            Ok(Some((upto, events)))
        })();
        match read {
            Ok(None) => std::thread::sleep(WATCH_POLL),
            Ok(Some((upto, events))) => {
                for batch in events.chunk_by(|a, b| a.revision() == b.revision()) {
                    if tx.blocking_send(Ok(batch.to_vec())).is_err() {
                        return;
                    }
                }
                next = upto + 1;
            }
            Err(err) => {
                let _ = tx.blocking_send(Err(err));
                return;
            }
        }
    }
}
