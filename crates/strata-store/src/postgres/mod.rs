//! The PostgreSQL backend (`postgres://user[:password]@host:port/db[?schema=NAME&…]`):
//! the revisioned layout of the SQLite backend in one schema, with the semantics from
//! `strata_core::engine`. This module maps the engine's calls onto SQL and keeps a small
//! connection pool. The URL and its libpq parameters are `options`'s; opening a
//! connection, with TLS as libpq does it, is `connect`'s, `tls`'s and `tls_stream`'s;
//! watches (LISTEN/NOTIFY with catch-up by revision) are `watch`'s.
//!
//! Layout (layout version 1), in schema `NAME` (default `strata`):
//! - `strata_meta(name, value)`: `revision`, `compact_revision`, `layout_version`;
//! - `strata_kv(key bytea, value bytea, create_revision, mod_revision, version)`: current rows;
//! - `strata_log(revision, seq, key, value, create_revision, version)`: every change
//!   (`value` NULL for a delete), indexed by `(key, revision)`.
//!
//! Concurrency: every write transaction starts by locking the `revision` row of
//! `strata_meta` (`SELECT … FOR UPDATE`), in READ COMMITTED. Writers therefore run one
//! at a time; each sees every earlier commit once it holds the lock, evaluates its
//! compares against them, and takes the next revision. Revisions are gap-free and
//! commit in revision order, so a watcher that reads "everything after revision N"
//! can never miss a change that commits late. This is explicit locking rather than
//! SERIALIZABLE with retries: the store has one counter every writer must advance, so
//! writers would conflict anyway, and a lock makes them wait instead of fail. Reads
//! run in REPEATABLE READ snapshots and never wait for writers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_core::engine::{self, RevisionedState};
use strata_core::{
    Capabilities, Error, Event, EventKind, KeyValue, RangeRequest, RangeResponse, Result, Store,
    StoreStatus, Txn, TxnResponse, WatchRequest, Watcher,
};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, IsolationLevel, Row, Statement};

mod connect;
mod options;
mod state;
mod tls;
mod tls_stream;
mod watch;

pub use connect::ConnectError;
pub use options::{PgOptions, PgTls, SslMode, DEFAULT_CONNECT_TIMEOUT};
use state::PgState;
use tls::MakeRustls;

const BACKEND: &str = "postgres";
const LAYOUT_VERSION: i64 = 1;
/// Connections one store keeps at most.
const POOL_SIZE: usize = 8;
/// How often a watch looks for changes when no notification arrives (a safety net).
const WATCH_FALLBACK_POLL: Duration = Duration::from_secs(1);
const WATCH_WINDOW: i64 = 1024;

fn pg_err(operation: &str, write: bool) -> impl FnOnce(tokio_postgres::Error) -> Error + '_ {
    move |e| {
        let transient = e.is_closed()
            || e.code().is_some_and(|c| {
                let code = c.code();
                // connection exceptions, serialization failure, deadlock, shutdown
                code.starts_with("08")
                    || code == "40001"
                    || code == "40P01"
                    || code.starts_with("57P")
            })
            || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        if transient {
            Error::Unavailable {
                backend: BACKEND.into(),
                operation: operation.into(),
                outcome_unknown: write,
                source: Box::new(e),
            }
        } else if let Some(db) = e.as_db_error() {
            // tokio-postgres shows a server error as "db error": say what the server said.
            let mut text = if db.code().code() == "57014" {
                format!(
                    "{} (the statement ran longer than the command timeout, and nothing of it was applied)",
                    db.message()
                )
            } else {
                format!("{}: {}", db.severity(), db.message())
            };
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; {detail}"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!(" (hint: {hint})"));
            }
            Error::backend(BACKEND, operation, text)
        } else {
            Error::backend(BACKEND, operation, e)
        }
    }
}

/// One pooled connection and its prepared statements.
struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
}

struct Pool {
    opts: PgOptions,
    tls: MakeRustls,
    idle: Mutex<Vec<PgConn>>,
    permits: Arc<Semaphore>,
}

struct Pooled {
    conn: Option<PgConn>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !conn.client.is_closed() {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(conn);
            }
        }
    }
}

async fn connect(opts: &PgOptions, tls: &MakeRustls) -> Result<Client> {
    let (client, connection) = connect::open(opts, tls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

impl Pool {
    async fn get(self: &Arc<Self>) -> Result<Pooled> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::backend(BACKEND, "pool", e))?;
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => PgConn {
                client: connect(&self.opts, &self.tls).await?,
                statements: HashMap::new(),
            },
        };
        Ok(Pooled {
            conn: Some(conn),
            pool: self.clone(),
            _permit: permit,
        })
    }
}

/// The SQL of one schema, with names qualified.
#[derive(Debug)]
struct Sql {
    schema: String,
    channel: String,
}

impl Sql {
    fn new(schema: &str) -> Self {
        Sql {
            schema: schema.to_owned(),
            channel: format!("strata_{schema}"),
        }
    }

    fn q(&self, text: &str) -> String {
        text.replace("S.", &format!("\"{}\".", self.schema))
    }

    fn layout(&self) -> String {
        self.q(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
             CREATE TABLE IF NOT EXISTS S.strata_meta (name text PRIMARY KEY, value bigint NOT NULL);
             CREATE TABLE IF NOT EXISTS S.strata_kv (
                 key bytea PRIMARY KEY, value bytea NOT NULL,
                 create_revision bigint NOT NULL, mod_revision bigint NOT NULL, version bigint NOT NULL);
             CREATE TABLE IF NOT EXISTS S.strata_log (
                 revision bigint NOT NULL, seq integer NOT NULL, key bytea NOT NULL, value bytea,
                 create_revision bigint NOT NULL, version bigint NOT NULL,
                 PRIMARY KEY (revision, seq));
             CREATE INDEX IF NOT EXISTS strata_log_key ON S.strata_log (key, revision);
             INSERT INTO S.strata_meta (name, value) VALUES
                 ('layout_version', {LAYOUT_VERSION}), ('revision', 1), ('compact_revision', 0)
                 ON CONFLICT (name) DO NOTHING;",
            schema = self.schema
        ))
    }
}

/// A store in one PostgreSQL schema.
#[derive(Clone)]
pub struct PgStore {
    pool: Arc<Pool>,
    sql: Arc<Sql>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("opts", &self.pool.opts)
            .finish()
    }
}

impl PgStore {
    /// Connects and creates the layout on first use (safe when several processes start
    /// at once: an advisory lock serialises the creation). The TLS files are read here,
    /// once; an unreadable or malformed one fails with its name.
    pub async fn connect(opts: PgOptions) -> Result<Self> {
        let sql = Arc::new(Sql::new(&opts.schema));
        let tls = MakeRustls::new(&opts.tls).map_err(|e| Error::backend(BACKEND, "connect", e))?;
        let pool = Arc::new(Pool {
            opts,
            tls,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(POOL_SIZE)),
        });
        let store = PgStore { pool, sql };
        let mut conn = store.pool.get().await?;
        let c = conn.conn.as_mut().expect("a pooled connection");
        let tx = c
            .client
            .transaction()
            .await
            .map_err(pg_err("create the layout", false))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&format!("strata:{}", store.sql.schema)],
        )
        .await
        .map_err(pg_err("create the layout", false))?;
        tx.batch_execute(&store.sql.layout())
            .await
            .map_err(pg_err("create the layout", false))?;
        let layout: i64 = tx
            .query_one(
                &store
                    .sql
                    .q("SELECT value FROM S.strata_meta WHERE name = 'layout_version'"),
                &[],
            )
            .await
            .map_err(pg_err("read the layout version", false))?
            .get(0);
        if layout != LAYOUT_VERSION {
            return Err(Error::backend(
                BACKEND,
                "open",
                format!(
                    "schema {} has layout version {layout}, this strata reads {LAYOUT_VERSION}",
                    store.sql.schema
                ),
            ));
        }
        tx.commit()
            .await
            .map_err(pg_err("create the layout", false))?;
        drop(conn);
        Ok(store)
    }

    /// Runs `f` over one transaction: a locked write transaction, or a read-only
    /// snapshot. Commits on `Ok`; dropping the transaction rolls it back on `Err`.
    async fn with_tx<T>(
        &self,
        write: bool,
        f: impl AsyncFnOnce(&mut PgState<'_>) -> Result<T>,
    ) -> Result<T> {
        let operation = if write { "write transaction" } else { "read" };
        let mut pooled = self.pool.get().await?;
        let conn = pooled.conn.as_mut().expect("a pooled connection");
        let tx = if write {
            conn.client.transaction().await
        } else {
            conn.client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
        }
        .map_err(pg_err(operation, false))?;
        let mut state = PgState {
            tx: &tx,
            statements: &mut conn.statements,
            sql: &self.sql,
            revision: None,
        };
        if write {
            let row = state
                .query_one(
                    "SELECT value FROM S.strata_meta WHERE name = 'revision' FOR UPDATE",
                    &[],
                )
                .await?;
            state.revision = Some(row.get(0));
        }
        let out = f(&mut state).await?;
        tx.commit().await.map_err(pg_err("commit", write))?;
        Ok(out)
    }
}

fn log_event(row: &Row) -> Event {
    let value: Option<Vec<u8>> = row.get(3);
    Event {
        kind: if value.is_some() {
            EventKind::Put
        } else {
            EventKind::Delete
        },
        kv: KeyValue {
            key: row.get(2),
            value: value.unwrap_or_default(),
            create_revision: row.get(4),
            mod_revision: row.get(0),
            version: row.get(5),
        },
    }
}

const EVENT_COLUMNS: &str = "revision, seq, key, value, create_revision, version";

impl Store for PgStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            backend: BACKEND,
            max_txn_ops: 10_000,
            max_value_bytes: 64 << 20,
            max_request_bytes: 256 << 20,
            range_page_size: 50_000,
            // Writers serialise on the revision lock; a second batch in flight
            // overlaps its network round trips with the first one's commit.
            max_in_flight: 2,
            leases: false,
        }
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        self.with_tx(false, async |state| engine::range(state, &req).await)
            .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let caps = self.capabilities();
        txn.validate(&caps)?;
        self.with_tx(true, async |state| engine::txn(state, &txn, &caps).await)
            .await
    }

    async fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        let start = self
            .with_tx(false, async |state| {
                engine::resolve_watch_start(state, req.start_revision).await
            })
            .await?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(watch::watch_task(self.clone(), req.span, start, tx));
        Ok(Watcher::new(rx, BACKEND, start))
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.with_tx(true, async |state| {
            let revision = engine::check_compact(state, revision).await?;
            state
                .execute(
                    "DELETE FROM S.strata_log l WHERE l.revision < $1 AND (l.value IS NULL OR EXISTS \
                     (SELECT 1 FROM S.strata_log n WHERE n.key = l.key \
                      AND n.revision > l.revision AND n.revision <= $1))",
                    &[&revision],
                )
                .await?;
            state
                .execute("UPDATE S.strata_meta SET value = $1 WHERE name = 'compact_revision'", &[&revision])
                .await?;
            Ok(())
        })
        .await
    }

    async fn history(&self, key: &[u8]) -> Result<Vec<Event>> {
        self.with_tx(false, async |state| {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM S.strata_log WHERE key = $1 ORDER BY revision, seq"
            );
            Ok(state
                .query(&sql, &[&key])
                .await?
                .iter()
                .map(log_event)
                .collect())
        })
        .await
    }

    async fn status(&self) -> Result<StoreStatus> {
        self.with_tx(false, async |state| {
            Ok(StoreStatus {
                revision: state.revision().await?,
                compact_revision: state.compact_revision().await?,
            })
        })
        .await
    }
}
