//! The engine's view of one PostgreSQL transaction: the `RevisionedState` calls bound
//! to the layout's statements (`crate::sql`) and PostgreSQL's own (the `unnest` batch
//! put, the commit notification), prepared once per connection and cached.

use std::collections::HashMap;

use strata_core::engine::{self, RevisionedState};
use strata_core::{KeyValue, Result};
use tokio_postgres::{Row, Statement};

use super::{pg_err, PgSql};
use crate::sql::{self, SqlRow};

/// The engine's view of one PostgreSQL transaction.
pub(super) struct PgState<'a> {
    pub(super) tx: &'a tokio_postgres::Transaction<'a>,
    /// Prepared statements by their text.
    pub(super) statements: &'a mut HashMap<String, Statement>,
    pub(super) sql: &'a PgSql,
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
            .prepare(text)
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
            .query_one(&self.sql.shared.meta, &[&name])
            .await?
            .get(0))
    }
}

impl SqlRow for Row {
    type Error = tokio_postgres::Error;

    fn bytes(&self, column: usize) -> std::result::Result<Option<Vec<u8>>, Self::Error> {
        self.try_get(column)
    }

    fn int(&self, column: usize) -> std::result::Result<i64, Self::Error> {
        self.try_get(column)
    }
}

/// Decodes `rows` with one of `crate::sql`'s decoders.
pub(super) fn decode<T>(
    rows: &[Row],
    decode: impl Fn(&Row) -> std::result::Result<T, tokio_postgres::Error>,
) -> Result<Vec<T>> {
    rows.iter()
        .map(decode)
        .collect::<std::result::Result<_, _>>()
        .map_err(pg_err("decode a row", false))
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
        let rows = self.query(&self.sql.shared.current, &[&key]).await?;
        Ok(decode(&rows, sql::kv)?.pop())
    }

    async fn range(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        revision: Option<i64>,
        limit: i64,
        keys_only: bool,
    ) -> Result<(Vec<KeyValue>, bool)> {
        let text = self
            .sql
            .shared
            .range(revision.is_some(), end.is_some(), keys_only);
        // NULL: no limit.
        let fetch: Option<i64> = (limit > 0).then_some(limit + 1);
        let rows = self.query(text, &[&start, &end, &revision, &fetch]).await?;
        Ok(engine::cut_to_limit(decode(&rows, sql::kv)?, limit))
    }

    async fn count(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        revision: Option<i64>,
    ) -> Result<i64> {
        let text = self.sql.shared.count(revision.is_some(), end.is_some());
        Ok(self
            .query_one(text, &[&start, &end, &revision])
            .await?
            .get(0))
    }

    async fn write_put(&mut self, kv: &KeyValue, seq: i64) -> Result<()> {
        let sql = self.sql;
        self.execute(
            &sql.shared.put,
            &[
                &kv.key,
                &kv.value,
                &kv.create_revision,
                &kv.mod_revision,
                &kv.version,
            ],
        )
        .await?;
        self.execute(
            &sql.shared.log_put,
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
        // One statement for the whole run.
        let keys: Vec<&[u8]> = puts.iter().map(|(k, _)| *k).collect();
        let values: Vec<&[u8]> = puts.iter().map(|(_, v)| *v).collect();
        let seqs: Vec<i32> = (0..puts.len())
            .map(|i| (first_seq + i as i64) as i32)
            .collect();
        self.execute(&self.sql.put_batch, &[&keys, &values, &seqs, &revision])
            .await?;
        Ok(())
    }

    async fn write_delete(&mut self, key: &[u8], revision: i64, seq: i64) -> Result<()> {
        let sql = self.sql;
        self.execute(&sql.shared.delete, &[&key]).await?;
        self.execute(&sql.shared.log_delete, &[&revision, &(seq as i32), &key])
            .await?;
        Ok(())
    }

    async fn set_revision(&mut self, revision: i64) -> Result<()> {
        let sql = self.sql;
        self.execute(&sql.shared.set_revision, &[&revision]).await?;
        // Delivered at commit, to every LISTENing watch of this schema.
        let channel = &sql.channel;
        self.execute(
            "SELECT pg_notify($1, $2)",
            &[channel, &revision.to_string()],
        )
        .await?;
        self.revision = Some(revision);
        Ok(())
    }
}
