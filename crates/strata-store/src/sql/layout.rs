//! The layout's tables, written once for both dialects: the DDL that creates what is
//! missing, and the tests that pin it to layout version 1 as it was first released, so
//! a store made then keeps opening.

use super::{Dialect, Renderer, Ty, LAYOUT_VERSION};

/// The layout's DDL: the schema (PostgreSQL), the three tables, the log's key index,
/// and the meta rows of an empty store. What exists is kept as it is.
pub(super) fn create(r: &Renderer, schema: Option<&str>) -> String {
    let d = r.dialect;
    let (text, int, seq, bytes) = (
        d.column(Ty::Text),
        d.column(Ty::Int),
        d.column(Ty::Seq),
        d.column(Ty::Bytes),
    );
    // SQLite keeps the rows in the primary key's b-tree.
    let options = match d {
        Dialect::Sqlite => " WITHOUT ROWID",
        Dialect::Postgres => "",
    };
    let create_schema = schema.map_or_else(String::new, |s| {
        format!("CREATE SCHEMA IF NOT EXISTS \"{s}\";\n")
    });
    create_schema
        + &r.render(&format!(
            "CREATE TABLE IF NOT EXISTS S.strata_meta (
    name {text} PRIMARY KEY,
    value {int} NOT NULL
){options};
CREATE TABLE IF NOT EXISTS S.strata_kv (
    key {bytes} PRIMARY KEY,
    value {bytes} NOT NULL,
    create_revision {int} NOT NULL,
    mod_revision {int} NOT NULL,
    version {int} NOT NULL
){options};
CREATE TABLE IF NOT EXISTS S.strata_log (
    revision {int} NOT NULL,
    seq {seq} NOT NULL,
    key {bytes} NOT NULL,
    value {bytes},
    create_revision {int} NOT NULL,
    version {int} NOT NULL,
    PRIMARY KEY (revision, seq)
){options};
CREATE INDEX IF NOT EXISTS strata_log_key ON S.strata_log (key, revision);
INSERT INTO S.strata_meta (name, value) VALUES
    ('layout_version', {LAYOUT_VERSION}), ('revision', 1), ('compact_revision', 0)
    ON CONFLICT (name) DO NOTHING;
"
        ))
}

#[cfg(test)]
mod tests {
    use super::super::{Dialect, Sql};

    /// Layout version 1 as SQLite first created it: a file made then opens unchanged.
    const SQLITE_LAYOUT_1: &str = "
        CREATE TABLE IF NOT EXISTS strata_meta (
            name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS strata_kv (
            key BLOB PRIMARY KEY, value BLOB NOT NULL, create_revision INTEGER NOT NULL,
            mod_revision INTEGER NOT NULL, version INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS strata_log (
            revision INTEGER NOT NULL, seq INTEGER NOT NULL, key BLOB NOT NULL, value BLOB,
            create_revision INTEGER NOT NULL, version INTEGER NOT NULL,
            PRIMARY KEY (revision, seq)) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS strata_log_key ON strata_log (key, revision);
        INSERT OR IGNORE INTO strata_meta (name, value) VALUES
            ('layout_version', 1), ('revision', 1), ('compact_revision', 0);";

    /// Layout version 1 as PostgreSQL first created it, in schema `st`.
    const POSTGRES_LAYOUT_1: &str = r#"
        CREATE SCHEMA IF NOT EXISTS "st";
        CREATE TABLE IF NOT EXISTS "st".strata_meta (name text PRIMARY KEY, value bigint NOT NULL);
        CREATE TABLE IF NOT EXISTS "st".strata_kv (
            key bytea PRIMARY KEY, value bytea NOT NULL,
            create_revision bigint NOT NULL, mod_revision bigint NOT NULL, version bigint NOT NULL);
        CREATE TABLE IF NOT EXISTS "st".strata_log (
            revision bigint NOT NULL, seq integer NOT NULL, key bytea NOT NULL, value bytea,
            create_revision bigint NOT NULL, version bigint NOT NULL,
            PRIMARY KEY (revision, seq));
        CREATE INDEX IF NOT EXISTS strata_log_key ON "st".strata_log (key, revision);
        INSERT INTO "st".strata_meta (name, value) VALUES
            ('layout_version', 1), ('revision', 1), ('compact_revision', 0)
            ON CONFLICT (name) DO NOTHING;"#;

    /// What SQLite made of a layout: tables (and whether they have a rowid), columns
    /// with type, NOT NULL and key position, the index's columns, and the meta rows.
    fn describe_sqlite(ddl: &str) -> Vec<String> {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(ddl).unwrap();
        let rows = |sql: &str| -> Vec<String> {
            let mut st = conn.prepare(sql).unwrap();
            let n = st.column_count();
            st.query_map([], |r| {
                (0..n)
                    .map(|i| {
                        r.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map(|v| v.join(" "))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
        };
        let mut out = rows("SELECT type, name, tbl_name FROM sqlite_master ORDER BY name");
        out.extend(rows(
            "SELECT name, wr FROM pragma_table_list WHERE schema = 'main' ORDER BY name",
        ));
        for table in ["strata_meta", "strata_kv", "strata_log"] {
            out.extend(rows(&format!(
                "SELECT '{table}', cid, name, type, \"notnull\", pk FROM pragma_table_info('{table}')"
            )));
        }
        out.extend(rows(
            "SELECT seqno, name FROM pragma_index_info('strata_log_key')",
        ));
        out.extend(rows("SELECT name, value FROM strata_meta ORDER BY name"));
        out
    }

    #[test]
    fn the_sqlite_layout_is_layout_version_1() {
        let sqlite = Sql::new(Dialect::Sqlite, None);
        let described = describe_sqlite(&sqlite.layout);
        assert!(described.len() > 20, "{described:?}");
        assert_eq!(described, describe_sqlite(SQLITE_LAYOUT_1));
    }

    #[test]
    fn a_sqlite_store_made_by_the_first_release_keeps_its_rows() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(SQLITE_LAYOUT_1).unwrap();
        conn.execute_batch("UPDATE strata_meta SET value = 7 WHERE name = 'revision'")
            .unwrap();
        let sql = Sql::new(Dialect::Sqlite, None);
        conn.execute_batch(&sql.layout).unwrap();
        let meta = |name: &str| -> i64 { conn.query_row(&sql.meta, [name], |r| r.get(0)).unwrap() };
        assert_eq!((meta("revision"), meta("layout_version")), (7, 1));
    }

    #[test]
    fn the_postgres_layout_is_layout_version_1() {
        // Up to white space, the text is the one first released.
        let normal = |ddl: &str| {
            ddl.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .replace("( ", "(")
                .replace(" )", ")")
        };
        let pg = Sql::new(Dialect::Postgres, Some("st"));
        assert_eq!(normal(&pg.layout), normal(POSTGRES_LAYOUT_1));
    }
}
