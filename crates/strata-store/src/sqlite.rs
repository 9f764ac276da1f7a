//! The SQLite backend (`sqlite:PATH`): the embedded default. One file in WAL mode with
//! the revisioned layout below; the semantics come from `strata_core::engine`, this
//! module only maps its calls onto SQL.
//!
//! Layout (layout version 1):
//! - `strata_meta(name, value)`: `revision` (the store revision, 1 when empty),
//!   `compact_revision`, `layout_version`;
//! - `strata_kv(key, value, create_revision, mod_revision, version)`: the current rows;
//! - `strata_log(revision, seq, key, value, create_revision, version)`: every change,
//!   `value` NULL for a delete; reads at old revisions, history and watch replay use it,
//!   compaction trims it.
//!
//! Every write runs in one `BEGIN IMMEDIATE` transaction, so writers in several
//! processes are serialised by SQLite's lock and revisions are gap-free. A watch polls
//! the log from its own connection, so it sees writes made by other processes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use strata_core::engine::{self, run_ready, RevisionedState};
use strata_core::{
    Capabilities, Error, Event, EventKind, KeySpan, KeyValue, RangeRequest, RangeResponse, Result,
    Store, StoreStatus, Txn, TxnResponse, WatchRequest, Watcher,
};
use tokio::sync::mpsc;

const BACKEND: &str = "sqlite";
const LAYOUT_VERSION: i64 = 1;
/// How often an idle watch looks for new revisions.
const WATCH_POLL: Duration = Duration::from_millis(10);
/// The most revisions a watch reads per query.
const WATCH_WINDOW: i64 = 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS strata_meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS strata_kv (
    key BLOB PRIMARY KEY,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS strata_log (
    revision INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    key BLOB NOT NULL,
    value BLOB,
    create_revision INTEGER NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (revision, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS strata_log_key ON strata_log (key, revision);
INSERT OR IGNORE INTO strata_meta (name, value) VALUES
    ('layout_version', 1), ('revision', 1), ('compact_revision', 0);
";

fn sql_err(operation: &str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |e| Error::backend(BACKEND, operation, e)
}

/// A store in one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)
        .map_err(|e| Error::backend(BACKEND, format!("open {}", path.display()), e))?;
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

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut conn = open_connection(&path)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err("create the layout"))?;
        tx.execute_batch(SCHEMA)
            .map_err(sql_err("create the layout"))?;
        let layout: i64 = tx
            .query_row(
                "SELECT value FROM strata_meta WHERE name = 'layout_version'",
                [],
                |r| r.get(0),
            )
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

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The engine's view of one SQLite transaction.
struct SqlState<'a>(&'a rusqlite::Transaction<'a>);

fn meta(conn: &Connection, name: &str) -> Result<i64> {
    conn.prepare_cached("SELECT value FROM strata_meta WHERE name = ?1")
        .and_then(|mut st| st.query_row([name], |r| r.get(0)))
        .map_err(sql_err("read the revision"))
}

fn row_kv(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: row.get(0)?,
        value: row.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default(),
        create_revision: row.get(2)?,
        mod_revision: row.get(3)?,
        version: row.get(4)?,
    })
}

/// The SQL for a range: current rows or the log at a revision, bounded or not.
fn range_sql(at_revision: bool, bounded: bool, keys_only: bool, count: bool) -> String {
    let value = if keys_only { "NULL" } else { "value" };
    let upper = if bounded { "AND key < ?2" } else { "" };
    let body = if at_revision {
        format!(
            "SELECT key, {value}, create_revision, revision, version FROM strata_log l \
             WHERE key >= ?1 {upper} AND value IS NOT NULL AND revision = \
             (SELECT MAX(revision) FROM strata_log m WHERE m.key = l.key AND m.revision <= ?3)"
        )
    } else {
        format!(
            "SELECT key, {value}, create_revision, mod_revision, version FROM strata_kv \
             WHERE key >= ?1 {upper} AND ?3 IS NULL"
        )
    };
    if count {
        format!("SELECT COUNT(*) FROM ({body})")
    } else {
        format!("{body} ORDER BY key LIMIT ?4")
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
            .prepare_cached(
                "SELECT key, value, create_revision, mod_revision, version FROM strata_kv WHERE key = ?1",
            )
            .and_then(|mut st| st.query_row([key], row_kv).optional())
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
        let sql = range_sql(revision.is_some(), end.is_some(), keys_only, false);
        let fetch = if limit > 0 { limit + 1 } else { -1 };
        let kvs = self
            .0
            .prepare_cached(&sql)
            .and_then(|mut st| {
                st.query_map(
                    params![start, end.unwrap_or_default(), revision, fetch],
                    row_kv,
                )?
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
        let sql = range_sql(revision.is_some(), end.is_some(), true, true);
        self.0
            .prepare_cached(&sql)
            .and_then(|mut st| {
                st.query_row(params![start, end.unwrap_or_default(), revision], |r| {
                    r.get(0)
                })
            })
            .map_err(sql_err("count keys"))
    }

    async fn write_put(&mut self, kv: &KeyValue, seq: i64) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO strata_kv (key, value, create_revision, mod_revision, version) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (key) DO UPDATE SET \
                 value = excluded.value, mod_revision = excluded.mod_revision, version = excluded.version",
            )
            .and_then(|mut st| {
                st.execute(params![kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version])
            })
            .map_err(sql_err("write a key"))?;
        self.0
            .prepare_cached(
                "INSERT INTO strata_log (revision, seq, key, value, create_revision, version) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
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
            .prepare_cached(
                "INSERT INTO strata_kv (key, value, create_revision, mod_revision, version) \
                 VALUES (?1, ?2, ?3, ?3, 1) ON CONFLICT (key) DO UPDATE SET \
                 value = excluded.value, mod_revision = excluded.mod_revision, version = version + 1 \
                 RETURNING create_revision, version",
            )
            .map_err(sql_err("write a key"))?;
        let mut log = self
            .0
            .prepare_cached(
                "INSERT INTO strata_log (revision, seq, key, value, create_revision, version) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
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
            .prepare_cached("DELETE FROM strata_kv WHERE key = ?1")
            .and_then(|mut st| st.execute([key]))
            .map_err(sql_err("delete a key"))?;
        self.0
            .prepare_cached(
                "INSERT INTO strata_log (revision, seq, key, value, create_revision, version) \
                 VALUES (?1, ?2, ?3, NULL, 0, 0)",
            )
            .and_then(|mut st| st.execute(params![revision, seq, key]))
            .map_err(sql_err("write the history"))?;
        Ok(())
    }

    async fn set_revision(&mut self, revision: i64) -> Result<()> {
        self.0
            .prepare_cached("UPDATE strata_meta SET value = ?1 WHERE name = 'revision'")
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

fn log_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let value: Option<Vec<u8>> = row.get(3)?;
    let revision: i64 = row.get(0)?;
    Ok(Event {
        kind: if value.is_some() {
            EventKind::Put
        } else {
            EventKind::Delete
        },
        kv: KeyValue {
            key: row.get(2)?,
            value: value.unwrap_or_default(),
            create_revision: row.get(4)?,
            mod_revision: revision,
            version: row.get(5)?,
        },
    })
}

const EVENT_COLUMNS: &str = "revision, seq, key, value, create_revision, version";

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
        let conn = open_connection(&self.path)?;
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
            // Drop every history row older than the compaction point that is a delete
            // or is superseded by a later row at or below it; rows at the point stay,
            // so reads and watches at exactly `revision` keep working.
            state
                .0
                .execute(
                    "DELETE FROM strata_log WHERE revision < ?1 AND (value IS NULL OR EXISTS \
                     (SELECT 1 FROM strata_log n WHERE n.key = strata_log.key \
                      AND n.revision > strata_log.revision AND n.revision <= ?1))",
                    [revision],
                )
                .map_err(sql_err("compact"))?;
            state
                .0
                .execute(
                    "UPDATE strata_meta SET value = ?1 WHERE name = 'compact_revision'",
                    [revision],
                )
                .map_err(sql_err("compact"))?;
            Ok(())
        })
    }

    async fn history(&self, key: &[u8]) -> Result<Vec<Event>> {
        self.with_tx(TransactionBehavior::Deferred, |state| {
            state
                .0
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM strata_log WHERE key = ?1 ORDER BY revision, seq"
                ))
                .and_then(|mut st| st.query_map([key], log_event)?.collect())
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
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM strata_log WHERE revision >= ?1 AND revision <= ?2 \
         AND key >= ?3 {} ORDER BY revision, seq",
        if end.is_some() {
            "AND key < ?4"
        } else {
            "AND ?4 IS NULL"
        }
    );
    while !tx.is_closed() {
        let read = (|| -> Result<Option<(i64, Vec<Event>)>> {
            let db = conn.transaction().map_err(sql_err("watch"))?;
            let current = meta(&db, "revision")?;
            if current < next {
                return Ok(None);
            }
            let compacted = meta(&db, "compact_revision")?;
            if next < compacted {
                return Err(Error::Compacted {
                    requested: next,
                    compacted,
                });
            }
            let upto = current.min(next + WATCH_WINDOW - 1);
            let events = db
                .prepare_cached(&sql)
                .and_then(|mut st| {
                    st.query_map(params![next, upto, start, end], log_event)?
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
