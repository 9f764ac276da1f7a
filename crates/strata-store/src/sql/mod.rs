//! The SQL layout that the SQLite and PostgreSQL backends share, written once: the
//! tables and their layout version (`layout`), every statement the revision engine's
//! calls map onto (point reads, ranges at a revision, counts, puts, deletes, the
//! history log, compaction, a watch's catch-up read), the decoding of their rows
//! (`rows`), and the window a watch catches up by. A [`Dialect`] renders the text for
//! one backend: placeholders (`?1` or `$1`), the schema qualifier (none, or
//! `"NAME".`), column types, and the casts PostgreSQL needs for a parameter whose type
//! it cannot infer.
//!
//! It owns no connection, transaction, lock or parameter binding: those are each
//! backend's, as are the statements only one backend runs (SQLite's pragmas and its
//! per-key batch upsert; PostgreSQL's revision row lock, advisory lock, LISTEN/NOTIFY
//! and its one-statement `unnest` batch insert).
//!
//! Layout (layout version [`LAYOUT_VERSION`]):
//! - `strata_meta(name, value)`: `revision` (the store revision, 1 when empty),
//!   `compact_revision` (0 if never compacted), `layout_version`;
//! - `strata_kv(key, value, create_revision, mod_revision, version)`: the current rows,
//!   primary key `key`;
//! - `strata_log(revision, seq, key, value, create_revision, version)`: every change,
//!   `value` NULL for a delete, primary key `(revision, seq)`, indexed by
//!   `(key, revision)`; reads at old revisions, history and watch replay use it,
//!   compaction trims it.

use strata_core::engine::RevisionedState;
use strata_core::{Error, Result};

mod layout;
mod rows;

pub(crate) use rows::{event, kv, SqlRow};

/// The layout version both backends write and read; a store with another one is
/// refused at open.
pub(crate) const LAYOUT_VERSION: i64 = 1;
/// The most revisions a watch reads per catch-up query.
pub(crate) const WATCH_WINDOW: i64 = 1024;

/// The columns [`kv`] decodes, in its order.
const KV_COLUMNS: &str = "key, value, create_revision, mod_revision, version";
/// The columns [`event`] decodes, in its order.
const EVENT_COLUMNS: &str = "revision, seq, key, value, create_revision, version";

/// What differs between the two SQL backends' text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// The types of the layout's columns.
#[derive(Clone, Copy)]
enum Ty {
    Text,
    /// A 64-bit integer: revisions, versions, meta values.
    Int,
    /// `strata_log.seq`, 32 bits on PostgreSQL.
    Seq,
    Bytes,
}

impl Dialect {
    fn placeholder(self) -> char {
        match self {
            Dialect::Sqlite => '?',
            Dialect::Postgres => '$',
        }
    }

    fn column(self, ty: Ty) -> &'static str {
        match (self, ty) {
            (Dialect::Sqlite, Ty::Text) => "TEXT",
            (Dialect::Sqlite, Ty::Int | Ty::Seq) => "INTEGER",
            (Dialect::Sqlite, Ty::Bytes) => "BLOB",
            (Dialect::Postgres, Ty::Text) => "text",
            (Dialect::Postgres, Ty::Int) => "bigint",
            (Dialect::Postgres, Ty::Seq) => "integer",
            (Dialect::Postgres, Ty::Bytes) => "bytea",
        }
    }

    /// The suffix that types a parameter or a NULL: nothing on SQLite, whose values
    /// carry their own type; a cast on PostgreSQL, which types every parameter when it
    /// prepares a statement and cannot infer one that is only tested for NULL.
    fn typed(self, ty: Ty) -> String {
        match self {
            Dialect::Sqlite => String::new(),
            Dialect::Postgres => format!("::{}", self.column(ty)),
        }
    }
}

/// A dialect and the schema the tables are in: what turns a template into a statement.
#[derive(Debug)]
struct Renderer {
    dialect: Dialect,
    /// `"NAME".` for a PostgreSQL schema, empty on SQLite.
    qualifier: String,
}

impl Renderer {
    /// `template` in this dialect: each `$N` becomes this dialect's placeholder `N`,
    /// and each `S.` that starts a word becomes the schema qualifier. Templates are
    /// written so that `S.` only ever stands before a table name.
    fn render(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() + 2 * self.qualifier.len());
        let mut prev: Option<char> = None;
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            let word_start = !prev.is_some_and(|p| p.is_ascii_alphanumeric() || p == '_');
            match c {
                'S' if word_start && chars.peek() == Some(&'.') => {
                    chars.next();
                    out.push_str(&self.qualifier);
                    prev = Some('.');
                    continue;
                }
                '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                    out.push(self.dialect.placeholder())
                }
                c => out.push(c),
            }
            prev = Some(c);
        }
        out
    }

    /// `AND key < $n`, or (unbounded) a test that `$n` is NULL, so both forms take the
    /// same parameters.
    fn upper_bound(&self, n: usize, bounded: bool) -> String {
        if bounded {
            format!("AND key < ${n}")
        } else {
            format!("AND ${n}{} IS NULL", self.dialect.typed(Ty::Bytes))
        }
    }

    /// The live rows of `[$1, $2)`: current rows, or the log at revision `$3`; the
    /// latest state tests that `$3` is NULL, so both forms take the same parameters.
    fn range_body(&self, at_revision: bool, bounded: bool, keys_only: bool) -> String {
        let value = if keys_only {
            format!("NULL{}", self.dialect.typed(Ty::Bytes))
        } else {
            "value".to_owned()
        };
        let upper = self.upper_bound(2, bounded);
        self.render(&if at_revision {
            format!(
                "SELECT key, {value}, create_revision, revision, version FROM S.strata_log l \
                 WHERE key >= $1 {upper} AND value IS NOT NULL AND revision = \
                 (SELECT max(revision) FROM S.strata_log m WHERE m.key = l.key AND m.revision <= $3)"
            )
        } else {
            format!(
                "SELECT key, {value}, create_revision, mod_revision, version FROM S.strata_kv \
                 WHERE key >= $1 {upper} AND $3{} IS NULL",
                self.dialect.typed(Ty::Int)
            )
        })
    }
}

/// The statements of the layout, rendered once for one dialect and schema.
#[derive(Debug)]
pub(crate) struct Sql {
    renderer: Renderer,
    /// Creates what is missing of the layout; leaves an existing one as it is.
    pub(crate) layout: String,
    /// `$1` a name → that `strata_meta` value.
    pub(crate) meta: String,
    /// `$1` the new revision.
    pub(crate) set_revision: String,
    /// `$1` the new compaction point.
    pub(crate) set_compact_revision: String,
    /// `$1` a key → its current row, as [`kv`] decodes it.
    pub(crate) current: String,
    /// `$1..$5` key, value, create_revision, mod_revision, version: the current row.
    pub(crate) put: String,
    /// `$1..$6` revision, seq, key, value, create_revision, version: a put's log row.
    pub(crate) log_put: String,
    /// `$1` a key: drops its current row.
    pub(crate) delete: String,
    /// `$1..$3` revision, seq, key: a delete's log row.
    pub(crate) log_delete: String,
    /// `$1` the compaction point: drops every log row older than it that is a delete
    /// or is superseded by a later row at or below it. Rows at the point stay, so
    /// reads and watches at exactly that revision keep working.
    pub(crate) compact: String,
    /// `$1` a key → its log rows in order, as [`event`] decodes them.
    pub(crate) history: String,
    /// Indexed by [`Sql::range`]'s flags.
    ranges: Vec<String>,
    /// Indexed by [`Sql::count`]'s flags.
    counts: Vec<String>,
    /// Unbounded, bounded.
    watches: [String; 2],
}

impl Sql {
    /// The statements for `dialect`, with tables in `schema` (PostgreSQL only).
    pub(crate) fn new(dialect: Dialect, schema: Option<&str>) -> Self {
        let r = Renderer {
            dialect,
            qualifier: schema.map_or_else(String::new, |s| format!("\"{s}\".")),
        };
        let limit = format!("{}4", dialect.placeholder());
        Sql {
            layout: layout::create(&r, schema),
            meta: r.render("SELECT value FROM S.strata_meta WHERE name = $1"),
            set_revision: r.render("UPDATE S.strata_meta SET value = $1 WHERE name = 'revision'"),
            set_compact_revision: r
                .render("UPDATE S.strata_meta SET value = $1 WHERE name = 'compact_revision'"),
            current: r.render(&format!(
                "SELECT {KV_COLUMNS} FROM S.strata_kv WHERE key = $1"
            )),
            put: r.render(&format!(
                "INSERT INTO S.strata_kv ({KV_COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                 mod_revision = excluded.mod_revision, version = excluded.version"
            )),
            log_put: r.render(&format!(
                "INSERT INTO S.strata_log ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
            )),
            delete: r.render("DELETE FROM S.strata_kv WHERE key = $1"),
            log_delete: r.render(&format!(
                "INSERT INTO S.strata_log ({EVENT_COLUMNS}) VALUES ($1, $2, $3, NULL, 0, 0)"
            )),
            compact: r.render(
                "DELETE FROM S.strata_log AS l WHERE l.revision < $1 AND (l.value IS NULL OR EXISTS \
                 (SELECT 1 FROM S.strata_log n WHERE n.key = l.key \
                  AND n.revision > l.revision AND n.revision <= $1))",
            ),
            history: r.render(&format!(
                "SELECT {EVENT_COLUMNS} FROM S.strata_log WHERE key = $1 ORDER BY revision, seq"
            )),
            ranges: (0..8)
                .map(|flags| {
                    let body = r.range_body(flags & 4 != 0, flags & 2 != 0, flags & 1 != 0);
                    format!("{body} ORDER BY key LIMIT {limit}")
                })
                .collect(),
            counts: (0..4)
                .map(|flags| {
                    let body = r.range_body(flags & 2 != 0, flags & 1 != 0, true);
                    format!("SELECT count(*) FROM ({body}) c")
                })
                .collect(),
            watches: [false, true].map(|bounded| {
                r.render(&format!(
                    "SELECT {EVENT_COLUMNS} FROM S.strata_log \
                     WHERE revision >= $1 AND revision <= $2 AND key >= $3 {} \
                     ORDER BY revision, seq",
                    r.upper_bound(4, bounded)
                ))
            }),
            renderer: r,
        }
    }

    /// A statement of one backend's own over the layout, written as a template:
    /// `$N` placeholders and `S.` before each table name.
    pub(crate) fn render(&self, template: &str) -> String {
        self.renderer.render(template)
    }

    /// `$1` start, `$2` end (NULL when unbounded), `$3` revision (NULL for the latest
    /// state), `$4` how many rows at most → the live rows in key order, as [`kv`]
    /// decodes them (`value` NULL when `keys_only`). The "no limit" value of `$4` is
    /// the backend's: -1 on SQLite, NULL on PostgreSQL.
    pub(crate) fn range(&self, at_revision: bool, bounded: bool, keys_only: bool) -> &str {
        let flags = usize::from(at_revision) << 2 | usize::from(bounded) << 1;
        &self.ranges[flags | usize::from(keys_only)]
    }

    /// `$1..$3` as for [`Sql::range`] → how many live rows there are.
    pub(crate) fn count(&self, at_revision: bool, bounded: bool) -> &str {
        &self.counts[usize::from(at_revision) << 1 | usize::from(bounded)]
    }

    /// `$1..$2` the revisions, `$3` start, `$4` end (NULL when unbounded) → the log
    /// rows of those revisions in the span, in order, as [`event`] decodes them.
    pub(crate) fn watch(&self, bounded: bool) -> &str {
        &self.watches[usize::from(bounded)]
    }
}

/// The last revision a watch at `next` may read now, in one snapshot `state`: `None`
/// when nothing at or after `next` is committed yet, at most [`WATCH_WINDOW`]
/// revisions on, and [`Error::Compacted`] when `next` is already compacted away.
pub(crate) async fn catch_up_until(
    state: &mut impl RevisionedState,
    next: i64,
) -> Result<Option<i64>> {
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
    Ok(Some(current.min(next + WATCH_WINDOW - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_places_placeholders_and_the_qualifier() {
        let template = "SELECT 1 FROM S.strata_kv WHERE key = $1 AND IS.x = $12";
        assert_eq!(
            Sql::new(Dialect::Postgres, Some("st")).render(template),
            "SELECT 1 FROM \"st\".strata_kv WHERE key = $1 AND IS.x = $12"
        );
        assert_eq!(
            Sql::new(Dialect::Sqlite, None).render(template),
            "SELECT 1 FROM strata_kv WHERE key = ?1 AND IS.x = ?12"
        );
    }

    #[test]
    fn every_statement_is_fully_rendered() {
        for (sql, other_placeholder, table) in [
            (Sql::new(Dialect::Sqlite, None), '$', " strata_"),
            (
                Sql::new(Dialect::Postgres, Some("st")),
                '?',
                " \"st\".strata_",
            ),
        ] {
            let fixed = [
                &sql.layout,
                &sql.meta,
                &sql.set_revision,
                &sql.set_compact_revision,
                &sql.current,
                &sql.put,
                &sql.log_put,
                &sql.delete,
                &sql.log_delete,
                &sql.compact,
                &sql.history,
            ];
            let all = fixed.into_iter().chain(&sql.ranges).chain(&sql.counts);
            for text in all.chain(&sql.watches) {
                assert!(!text.contains("S."), "{text}");
                assert!(text.contains(table), "{text}");
                assert!(!text.contains(other_placeholder), "{text}");
            }
        }
    }

    #[test]
    fn postgres_types_the_parameters_it_only_tests_for_null() {
        let pg = Sql::new(Dialect::Postgres, Some("st"));
        assert!(pg
            .range(false, false, true)
            .contains("NULL::bytea, create_revision"));
        assert!(pg
            .range(false, false, false)
            .contains("AND $2::bytea IS NULL AND $3::bigint IS NULL"));
        assert!(pg.watch(false).contains("AND $4::bytea IS NULL"));
        assert!(pg.watch(true).contains("AND key < $4"));
        let lite = Sql::new(Dialect::Sqlite, None);
        assert!(lite
            .range(false, true, false)
            .contains("AND key < ?2 AND ?3 IS NULL"));
        assert!(lite
            .count(true, false)
            .starts_with("SELECT count(*) FROM (SELECT key, NULL, "));
    }
}
