//! The PostgreSQL backend (`postgres://user[:password]@host:port/db[?schema=NAME&…]`):
//! the revisioned layout of module `sql` (the SQLite backend's) in schema `NAME`
//! (default `strata`), with the semantics from `strata_core::engine`. This module keeps
//! a small connection pool, creates the layout and runs transactions under the
//! revision lock; binding the engine's calls to the layout's statements is `state`'s.
//! The URL and its libpq parameters are `options`'s; opening a connection, with TLS as
//! libpq does it, is `connect`'s, `tls`'s and `tls_stream`'s; watches (LISTEN/NOTIFY
//! with catch-up by revision) are `watch`'s.
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
    Capabilities, Error, Event, RangeRequest, RangeResponse, Result, Store, StoreStatus, Txn,
    TxnResponse, WatchRequest, Watcher,
};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, IsolationLevel, Statement};

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

use crate::sql::{self, Dialect, Sql, LAYOUT_VERSION};

const BACKEND: &str = "postgres";
/// Connections one store keeps at most.
const POOL_SIZE: usize = 8;
/// How often a watch looks for changes when no notification arrives (a safety net).
const WATCH_FALLBACK_POLL: Duration = Duration::from_secs(1);

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

/// The statements of one schema: the layout's, and PostgreSQL's own.
#[derive(Debug)]
struct PgSql {
    schema: String,
    /// The channel that commits notify and watches LISTEN on.
    channel: String,
    shared: Sql,
    /// Locks the `revision` row: how writers take turns (see the module doc).
    lock_revision: String,
    /// A run of puts in one statement: `$1..$3` arrays of keys, values and seqs, `$4`
    /// the revision. Upserts the current rows, deriving version and create_revision
    /// from the rows they replace, and logs what was written.
    put_batch: String,
}

impl PgSql {
    fn new(schema: &str) -> Self {
        let shared = Sql::new(Dialect::Postgres, Some(schema));
        PgSql {
            schema: schema.to_owned(),
            channel: format!("strata_{schema}"),
            lock_revision: shared
                .render("SELECT value FROM S.strata_meta WHERE name = 'revision' FOR UPDATE"),
            put_batch: shared.render(
                "WITH input AS (SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::int[]) AS t(key, value, seq)), \
                 upserted AS ( \
                     INSERT INTO S.strata_kv AS kv (key, value, create_revision, mod_revision, version) \
                     SELECT key, value, $4, $4, 1 FROM input \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                         mod_revision = excluded.mod_revision, version = kv.version + 1 \
                     RETURNING key, create_revision, version) \
                 INSERT INTO S.strata_log (revision, seq, key, value, create_revision, version) \
                 SELECT $4, i.seq, i.key, i.value, u.create_revision, u.version \
                 FROM input i JOIN upserted u ON u.key = i.key",
            ),
            shared,
        }
    }
}

/// A store in one PostgreSQL schema.
#[derive(Clone)]
pub struct PgStore {
    pool: Arc<Pool>,
    sql: Arc<PgSql>,
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
        let sql = Arc::new(PgSql::new(&opts.schema));
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
        tx.batch_execute(&store.sql.shared.layout)
            .await
            .map_err(pg_err("create the layout", false))?;
        let layout: i64 = tx
            .query_one(&store.sql.shared.meta, &[&"layout_version"])
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

    /// The server's version (`SHOW server_version`).
    pub async fn server_version(&self) -> Result<String> {
        let pooled = self.pool.get().await?;
        let conn = pooled.conn.as_ref().expect("a pooled connection");
        let row = conn
            .client
            .query_one("SHOW server_version", &[])
            .await
            .map_err(pg_err("read the server version", false))?;
        Ok(row.get(0))
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
            let row = state.query_one(&self.sql.lock_revision, &[]).await?;
            state.revision = Some(row.get(0));
        }
        let out = f(&mut state).await?;
        tx.commit().await.map_err(pg_err("commit", write))?;
        Ok(out)
    }
}

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
            let sql = &self.sql.shared;
            state.execute(&sql.compact, &[&revision]).await?;
            state
                .execute(&sql.set_compact_revision, &[&revision])
                .await?;
            Ok(())
        })
        .await
    }

    async fn history(&self, key: &[u8]) -> Result<Vec<Event>> {
        self.with_tx(false, async |state| {
            let rows = state.query(&self.sql.shared.history, &[&key]).await?;
            state::decode(&rows, sql::event)
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
