//! Where the leaves of one view live: in memory (a sorted map), or, for an answer
//! larger than the spill size (`STRATA_V2_SPILL_BYTES`, 64 MiB by default), in a
//! SQLite table in a temporary file, so that reading a large v2 keyspace holds a
//! bounded amount of memory whatever its size. The answer itself is then streamed to
//! a temporary file and parsed from there leaf by leaf (see `http.rs`, `node.rs`).
//! Both give the same sorted ranges; owns only storing and reading them back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use strata_core::model::KeyValue;
use strata_core::{Error, Result};

use super::node::Leaf;
use super::BACKEND;

/// The default spill size: answers larger than this are kept on disk.
pub(super) const DEFAULT_SPILL_BYTES: usize = 64 << 20;

/// The spill size: `STRATA_V2_SPILL_BYTES` if set to a number, else the default.
pub(super) fn spill_bytes() -> usize {
    std::env::var("STRATA_V2_SPILL_BYTES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_SPILL_BYTES)
}

/// The leaves of a view.
#[derive(Debug)]
pub(super) enum Leaves {
    Mem(BTreeMap<Vec<u8>, KeyValue>),
    Disk(DiskLeaves),
}

/// Leaves in a table of a temporary SQLite file (removed on drop).
#[derive(Debug)]
pub(super) struct DiskLeaves {
    db: Mutex<Connection>,
    _dir: tempfile::TempDir,
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend {
        backend: BACKEND.into(),
        operation: format!("{what} (a large answer is kept in a temporary file)"),
        source: e.to_string().into(),
    }
}

pub(super) fn kv_of(key: Vec<u8>, value: Vec<u8>, created: i64, modified: i64) -> KeyValue {
    KeyValue {
        key,
        value,
        create_revision: created,
        mod_revision: modified,
        // v2 counts no versions: 1 for a key never changed since it was made.
        version: if created == modified { 1 } else { 2 },
    }
}

impl DiskLeaves {
    /// An empty table in a new temporary directory.
    pub fn create() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("strata-etcd2-")
            .tempdir()
            .map_err(|e| failed("making a temporary directory", e))?;
        let db = Connection::open(dir.path().join("view.db"))
            .and_then(|c| {
                c.execute_batch(
                    "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
                     PRAGMA cache_size = -16384;
                     CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL,
                                      created INTEGER NOT NULL, modified INTEGER NOT NULL)
                     WITHOUT ROWID;",
                )?;
                Ok(c)
            })
            .map_err(|e| failed("making a temporary table", e))?;
        Ok(DiskLeaves {
            db: Mutex::new(db),
            _dir: dir,
        })
    }

    /// Runs `fill` with a function that stores one leaf, in one transaction.
    pub fn fill<E>(
        &self,
        fill: impl FnOnce(&mut dyn FnMut(Leaf)) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        let mut db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let tx = db.transaction().map_err(|e| failed("writing", e))?;
        let mut stored: rusqlite::Result<()> = Ok(());
        let parsed = {
            let mut insert = tx
                .prepare("INSERT OR REPLACE INTO kv VALUES (?1, ?2, ?3, ?4)")
                .map_err(|e| failed("writing", e))?;
            fill(&mut |l: Leaf| {
                if stored.is_ok() {
                    stored = insert
                        .execute(params![
                            l.key.as_bytes(),
                            l.value.as_bytes(),
                            l.created,
                            l.modified
                        ])
                        .map(|_| ());
                }
            })
        };
        stored.map_err(|e| failed("writing", e))?;
        tx.commit().map_err(|e| failed("writing", e))?;
        Ok(parsed)
    }
}

impl Leaves {
    /// The leaves in `[start, end)` in key order: at most `limit`, and how many
    /// there are in all.
    pub fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<KeyValue>, i64)> {
        match self {
            Leaves::Mem(map) => {
                let upper = match end {
                    Some(e) => std::ops::Bound::Excluded(e.to_vec()),
                    None => std::ops::Bound::Unbounded,
                };
                let mut count = 0;
                let mut out = Vec::new();
                for (_, kv) in map.range((std::ops::Bound::Included(start.to_vec()), upper)) {
                    count += 1;
                    if out.len() < limit {
                        out.push(kv.clone());
                    }
                }
                Ok((out, count))
            }
            Leaves::Disk(d) => {
                let db = d.db.lock().unwrap_or_else(|e| e.into_inner());
                let read = || -> rusqlite::Result<(Vec<KeyValue>, i64)> {
                    let count: i64 = db.query_row(
                        "SELECT count(*) FROM kv WHERE key >= ?1 AND (?2 IS NULL OR key < ?2)",
                        params![start, end],
                        |r| r.get(0),
                    )?;
                    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                    let mut q = db.prepare_cached(
                        "SELECT key, value, created, modified FROM kv
                         WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) ORDER BY key LIMIT ?3",
                    )?;
                    let rows = q
                        .query_map(params![start, end, limit], |r| {
                            Ok(kv_of(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    Ok((rows, count))
                };
                read().map_err(|e| failed("reading", e))
            }
        }
    }

    /// One leaf by key.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        match self {
            Leaves::Mem(map) => Ok(map.get(key).cloned()),
            Leaves::Disk(d) => {
                let db = d.db.lock().unwrap_or_else(|e| e.into_inner());
                db.query_row(
                    "SELECT key, value, created, modified FROM kv WHERE key = ?1",
                    [key],
                    |r| Ok(kv_of(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(|e| failed("reading", e))
            }
        }
    }

    /// Every key (a watch's start: the names a directory delete expands to).
    pub fn keys(&self) -> Result<BTreeSet<Vec<u8>>> {
        match self {
            Leaves::Mem(map) => Ok(map.keys().cloned().collect()),
            Leaves::Disk(d) => {
                let db = d.db.lock().unwrap_or_else(|e| e.into_inner());
                let mut q = db
                    .prepare("SELECT key FROM kv")
                    .map_err(|e| failed("reading", e))?;
                let keys = q
                    .query_map([], |r| r.get(0))
                    .and_then(|rows| rows.collect::<rusqlite::Result<BTreeSet<Vec<u8>>>>())
                    .map_err(|e| failed("reading", e))?;
                Ok(keys)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(key: &str, created: i64, modified: i64) -> Leaf {
        Leaf {
            key: key.into(),
            value: format!("v{modified}"),
            created,
            modified,
            ttl: None,
        }
    }

    #[test]
    fn on_disk_reads_like_in_memory() {
        let all = [
            leaf("/b/x", 4, 5),
            leaf("/a", 3, 3),
            leaf("/b-c", 6, 6),
            leaf("/c", 7, 9),
        ];
        let disk = DiskLeaves::create().unwrap();
        disk.fill(|put| {
            all.iter().cloned().for_each(&mut *put);
            Ok::<_, ()>(())
        })
        .unwrap()
        .unwrap();
        let disk = Leaves::Disk(disk);
        let mem = Leaves::Mem(
            all.iter()
                .map(|l| {
                    let kv = kv_of(
                        l.key.clone().into(),
                        l.value.clone().into(),
                        l.created,
                        l.modified,
                    );
                    (kv.key.clone(), kv)
                })
                .collect(),
        );
        for (start, end, limit) in [
            (&b""[..], None, usize::MAX),
            (b"/b", Some(&b"/c"[..]), 1),
            (b"/b", Some(b"/c"), 5),
            (b"/z", None, 5),
        ] {
            assert_eq!(
                disk.range(start, end, limit).unwrap(),
                mem.range(start, end, limit).unwrap()
            );
        }
        let (first, count) = disk.range(b"", None, 2).unwrap();
        assert_eq!(count, 4);
        let keys: Vec<_> = first.iter().map(|kv| kv.key.as_slice()).collect();
        assert_eq!(keys, [&b"/a"[..], b"/b-c"]);
        assert_eq!(disk.get(b"/c").unwrap().unwrap().version, 2);
        assert_eq!(disk.get(b"/nope").unwrap(), None);
        assert_eq!(disk.keys().unwrap(), mem.keys().unwrap());
    }
}
