//! The PostgreSQL backend (`postgres://user[:password]@host:port/db[?schema=NAME]`):
//! the revisioned layout of the SQLite backend in one schema, with the semantics from
//! `strata_core::engine`. This module maps the engine's calls onto SQL, keeps a small
//! connection pool, and runs watches on LISTEN/NOTIFY with catch-up by revision.
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
    Capabilities, Error, Event, EventKind, KeySpan, KeyValue, RangeRequest, RangeResponse, Result,
    Store, StoreStatus, Txn, TxnResponse, WatchRequest, Watcher,
};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{AsyncMessage, Client, IsolationLevel, NoTls, Row, Statement};

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
        } else {
            Error::backend(BACKEND, operation, e)
        }
    }
}

/// A parsed `postgres://` URL: the connection settings and the schema.
#[derive(Clone)]
pub struct PgOptions {
    pub config: tokio_postgres::Config,
    pub schema: String,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("hosts", &self.config.get_hosts())
            .field("user", &self.config.get_user())
            .field("schema", &self.schema)
            .finish()
    }
}

impl PgOptions {
    /// Parses a URL; `?schema=NAME` picks the schema (default `strata`).
    pub fn parse(url: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: crate::redact(url),
            reason,
        };
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = "strata".to_owned();
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", value)) => schema = value.to_owned(),
                _ => rest.push(pair),
            }
        }
        let valid = !schema.is_empty()
            && schema.len() <= 40
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !schema.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(invalid(format!(
                "schema {schema:?}: use lower-case letters, digits and _ (at most 40), not starting with a digit"
            )));
        }
        let base = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let config: tokio_postgres::Config = base.parse().map_err(|e| {
            invalid(format!(
                "{e}; write postgres://user[:password]@host:port/db"
            ))
        })?;
        Ok(PgOptions { config, schema })
    }
}

/// One pooled connection and its prepared statements.
struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
}

struct Pool {
    opts: PgOptions,
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

async fn connect(opts: &PgOptions) -> Result<Client> {
    let (client, connection) = opts
        .config
        .connect(NoTls)
        .await
        .map_err(pg_err("connect", false))?;
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
                client: connect(&self.opts).await?,
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
    /// at once: an advisory lock serialises the creation).
    pub async fn connect(opts: PgOptions) -> Result<Self> {
        let sql = Arc::new(Sql::new(&opts.schema));
        let pool = Arc::new(Pool {
            opts,
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

/// The engine's view of one PostgreSQL transaction.
struct PgState<'a> {
    tx: &'a tokio_postgres::Transaction<'a>,
    statements: &'a mut HashMap<String, Statement>,
    sql: &'a Sql,
    /// The revision read under the write lock.
    revision: Option<i64>,
}

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

impl PgState<'_> {
    async fn statement(&mut self, text: &str) -> Result<Statement> {
        if let Some(st) = self.statements.get(text) {
            return Ok(st.clone());
        }
        let st = self
            .tx
            .prepare(&self.sql.q(text))
            .await
            .map_err(pg_err("prepare a statement", false))?;
        self.statements.insert(text.to_owned(), st.clone());
        Ok(st)
    }

    async fn query(&mut self, text: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let st = self.statement(text).await?;
        self.tx
            .query(&st, params)
            .await
            .map_err(pg_err("query", false))
    }

    async fn query_one(&mut self, text: &str, params: &[Param<'_>]) -> Result<Row> {
        let st = self.statement(text).await?;
        self.tx
            .query_one(&st, params)
            .await
            .map_err(pg_err("query", false))
    }

    async fn execute(&mut self, text: &str, params: &[Param<'_>]) -> Result<u64> {
        let st = self.statement(text).await?;
        self.tx
            .execute(&st, params)
            .await
            .map_err(pg_err("write", true))
    }

    async fn meta(&mut self, name: &str) -> Result<i64> {
        Ok(self
            .query_one("SELECT value FROM S.strata_meta WHERE name = $1", &[&name])
            .await?
            .get(0))
    }
}

fn row_kv(row: &Row) -> KeyValue {
    KeyValue {
        key: row.get(0),
        value: row.get::<_, Option<Vec<u8>>>(1).unwrap_or_default(),
        create_revision: row.get(2),
        mod_revision: row.get(3),
        version: row.get(4),
    }
}

/// The SQL for a range: current rows or the log at a revision, bounded or not.
fn range_sql(at_revision: bool, bounded: bool, keys_only: bool, count: bool) -> String {
    let value = if keys_only { "NULL::bytea" } else { "value" };
    let upper = if bounded {
        "AND key < $2"
    } else {
        "AND $2::bytea IS NULL"
    };
    let body = if at_revision {
        format!(
            "SELECT key, {value}, create_revision, revision, version FROM S.strata_log l \
             WHERE key >= $1 {upper} AND value IS NOT NULL AND revision = \
             (SELECT max(revision) FROM S.strata_log m WHERE m.key = l.key AND m.revision <= $3)"
        )
    } else {
        format!(
            "SELECT key, {value}, create_revision, mod_revision, version FROM S.strata_kv \
             WHERE key >= $1 {upper} AND $3::bigint IS NULL"
        )
    };
    if count {
        format!("SELECT count(*) FROM ({body}) c")
    } else {
        format!("{body} ORDER BY key LIMIT $4")
    }
}

impl RevisionedState for PgState<'_> {
    async fn revision(&mut self) -> Result<i64> {
        match self.revision {
            Some(rev) => Ok(rev),
            None => self.meta("revision").await,
        }
    }

    async fn compact_revision(&mut self) -> Result<i64> {
        self.meta("compact_revision").await
    }

    async fn current(&mut self, key: &[u8]) -> Result<Option<KeyValue>> {
        let rows = self
            .query(
                "SELECT key, value, create_revision, mod_revision, version FROM S.strata_kv WHERE key = $1",
                &[&key],
            )
            .await?;
        Ok(rows.first().map(row_kv))
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
        let fetch: Option<i64> = (limit > 0).then_some(limit + 1);
        let rows = self.query(&sql, &[&start, &end, &revision, &fetch]).await?;
        let kvs: Vec<KeyValue> = rows.iter().map(row_kv).collect();
        Ok(engine::cut_to_limit(kvs, limit))
    }

    async fn count(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        revision: Option<i64>,
    ) -> Result<i64> {
        let sql = range_sql(revision.is_some(), end.is_some(), true, true);
        Ok(self
            .query_one(&sql, &[&start, &end, &revision])
            .await?
            .get(0))
    }

    async fn write_put(&mut self, kv: &KeyValue, seq: i64) -> Result<()> {
        self.execute(
            "INSERT INTO S.strata_kv (key, value, create_revision, mod_revision, version) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO UPDATE SET \
             value = excluded.value, mod_revision = excluded.mod_revision, version = excluded.version",
            &[&kv.key, &kv.value, &kv.create_revision, &kv.mod_revision, &kv.version],
        )
        .await?;
        self.execute(
            "INSERT INTO S.strata_log (revision, seq, key, value, create_revision, version) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &kv.mod_revision,
                &(seq as i32),
                &kv.key,
                &kv.value,
                &kv.create_revision,
                &kv.version,
            ],
        )
        .await?;
        Ok(())
    }

    async fn put_batch(
        &mut self,
        puts: &[(&[u8], &[u8])],
        revision: i64,
        first_seq: i64,
    ) -> Result<()> {
        // One statement for the whole run: upsert the current rows, deriving version
        // and create_revision from the rows they replace, and log what was written.
        let keys: Vec<&[u8]> = puts.iter().map(|(k, _)| *k).collect();
        let values: Vec<&[u8]> = puts.iter().map(|(_, v)| *v).collect();
        let seqs: Vec<i32> = (0..puts.len())
            .map(|i| (first_seq + i as i64) as i32)
            .collect();
        self.execute(
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
            &[&keys, &values, &seqs, &revision],
        )
        .await?;
        Ok(())
    }

    async fn write_delete(&mut self, key: &[u8], revision: i64, seq: i64) -> Result<()> {
        self.execute("DELETE FROM S.strata_kv WHERE key = $1", &[&key])
            .await?;
        self.execute(
            "INSERT INTO S.strata_log (revision, seq, key, value, create_revision, version) \
             VALUES ($1, $2, $3, NULL, 0, 0)",
            &[&revision, &(seq as i32), &key],
        )
        .await?;
        Ok(())
    }

    async fn set_revision(&mut self, revision: i64) -> Result<()> {
        self.execute(
            "UPDATE S.strata_meta SET value = $1 WHERE name = 'revision'",
            &[&revision],
        )
        .await?;
        // Delivered at commit, to every LISTENing watch of this schema.
        let channel = self.sql.channel.clone();
        self.execute(
            "SELECT pg_notify($1, $2)",
            &[&channel, &revision.to_string()],
        )
        .await?;
        self.revision = Some(revision);
        Ok(())
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
        tokio::spawn(watch_task(self.clone(), req.span, start, tx));
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

/// Reads the events of revisions `[next, next + window)` that are already committed;
/// returns the last revision covered and the events.
async fn catch_up(store: &PgStore, span: &KeySpan, next: i64) -> Result<Option<(i64, Vec<Event>)>> {
    let (start, end) = span.bounds();
    store
        .with_tx(false, async |state| {
            let current = state.revision().await?;
            if current < next {
                return Ok(None);
            }
            let compacted = state.compact_revision().await?;
            if next < compacted {
                return Err(Error::Compacted {
                    requested: next,
                    compacted,
                });
            }
            let upto = current.min(next + WATCH_WINDOW - 1);
            let upper = if end.is_some() {
                "AND key < $4"
            } else {
                "AND $4::bytea IS NULL"
            };
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM S.strata_log WHERE revision >= $1 AND revision <= $2 \
                 AND key >= $3 {upper} ORDER BY revision, seq"
            );
            let rows = state.query(&sql, &[&next, &upto, &start, &end]).await?;
            Ok(Some((upto, rows.iter().map(log_event).collect())))
        })
        .await
}

/// Follows changes from `next` on: LISTEN on the schema's channel, and after each
/// notification (or a fallback poll) read every committed revision after the last one
/// delivered. A lost connection is re-established and the catch-up resumes from the
/// same revision, so nothing is missed or repeated.
async fn watch_task(
    store: PgStore,
    span: KeySpan,
    mut next: i64,
    tx: mpsc::Sender<Result<Vec<Event>>>,
) {
    let mut backoff = Duration::from_millis(50);
    while !tx.is_closed() {
        let (client, mut connection) = match store.pool.opts.config.connect(NoTls).await {
            Ok(pair) => pair,
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let (notify_tx, mut notified) = mpsc::unbounded_channel::<()>();
        let driver = tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        let _ = notify_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        let listen = format!("LISTEN \"{}\"", store.sql.channel);
        if client.batch_execute(&listen).await.is_err() {
            driver.abort();
            continue;
        }
        backoff = Duration::from_millis(50);
        // Listening first, then catching up: a commit after the catch-up read is
        // always followed by a notification.
        loop {
            match catch_up(&store, &span, next).await {
                Ok(Some((upto, events))) => {
                    for batch in events.chunk_by(|a, b| a.revision() == b.revision()) {
                        if tx.send(Ok(batch.to_vec())).await.is_err() {
                            driver.abort();
                            return;
                        }
                    }
                    next = upto + 1;
                    continue;
                }
                Ok(None) => {}
                Err(err @ Error::Compacted { .. }) => {
                    let _ = tx.send(Err(err)).await;
                    driver.abort();
                    return;
                }
                Err(_) => break,
            }
            tokio::select! {
                n = notified.recv() => if n.is_none() { break },
                _ = tokio::time::sleep(WATCH_FALLBACK_POLL) => {}
                _ = tx.closed() => break,
            }
        }
        driver.abort();
        drop(client);
    }
}
