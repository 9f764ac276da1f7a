//! The engine's view of one PostgreSQL transaction: the `RevisionedState` calls as SQL
//! over prepared statements cached per connection.

use std::collections::HashMap;

use strata_core::engine::{self, RevisionedState};
use strata_core::{KeyValue, Result};
use tokio_postgres::{Row, Statement};

use super::{pg_err, Sql};

/// The engine's view of one PostgreSQL transaction.
pub(super) struct PgState<'a> {
    pub(super) tx: &'a tokio_postgres::Transaction<'a>,
    pub(super) statements: &'a mut HashMap<String, Statement>,
    pub(super) sql: &'a Sql,
    /// The revision read under the write lock.
    pub(super) revision: Option<i64>,
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

    pub(super) async fn query(&mut self, text: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let st = self.statement(text).await?;
        self.tx
            .query(&st, params)
            .await
            .map_err(pg_err("query", false))
    }

    pub(super) async fn query_one(&mut self, text: &str, params: &[Param<'_>]) -> Result<Row> {
        let st = self.statement(text).await?;
        self.tx
            .query_one(&st, params)
            .await
            .map_err(pg_err("query", false))
    }

    pub(super) async fn execute(&mut self, text: &str, params: &[Param<'_>]) -> Result<u64> {
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
