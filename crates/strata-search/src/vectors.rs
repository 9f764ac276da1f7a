//! The vectors of the documents, beside the full-text index (`vectors.db` in the index
//! folder, a SQLite file): one per document id, made by one model (its digest), at
//! the store revision of the full-text index's last commit. Nearest neighbours are
//! exact here: every vector is compared with the query's (a dot product of 384 numbers
//! per document); past 100,000 the approximate graph of `hnsw.rs` is used, which
//! follows the change log kept here. Owns storing vectors, their change log and the
//! exact ranking; making them is `embed.rs`.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::embed::dot;
use crate::{Error, Result};

/// The file of the approximate index (`hnsw.rs`).
const GRAPH: &str = "hnsw.bin";

/// The vectors of an index.
#[derive(Debug)]
pub struct Vectors {
    db: Mutex<Connection>,
    dir: std::path::PathBuf,
}

fn bytes_of(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn floats_of(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl Vectors {
    /// Opens (or makes) `vectors.db` in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let failed = |e: rusqlite::Error| Error::Index {
            dir: dir.to_owned(),
            problem: format!("vectors.db: {e}"),
        };
        let db = Connection::open(dir.join("vectors.db")).map_err(failed)?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS vec (id TEXT PRIMARY KEY, v BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS log (n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL);",
        )
        .map_err(failed)?;
        Ok(Vectors {
            db: Mutex::new(db),
            dir: dir.to_owned(),
        })
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        Error::Index {
            dir: self.dir.clone(),
            problem: format!("vectors.db: {e}"),
        }
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The model digest and revision the vectors are of (`None`: never written).
    pub fn state(&self) -> Result<Option<(String, i64)>> {
        let db = self.db();
        let get = |name: &str| -> rusqlite::Result<Option<String>> {
            db.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
        };
        let model = get("model").map_err(|e| self.err(e))?;
        let revision = get("revision").map_err(|e| self.err(e))?;
        Ok(match (model, revision) {
            (Some(m), Some(r)) => r.parse().ok().map(|r| (m, r)),
            _ => None,
        })
    }

    /// Writes these vectors and removals, and the state, in one transaction.
    pub fn write(
        &self,
        put: &[(String, Vec<f32>)],
        remove: &[String],
        state: Option<(&str, i64)>,
        clear: bool,
    ) -> Result<()> {
        // Changes are logged only for a graph to follow: without one (up to 100,000
        // vectors) the log would only grow.
        let logged = !clear && self.dir.join(GRAPH).exists();
        let mut db = self.db();
        let run = |db: &mut Connection| -> rusqlite::Result<()> {
            let tx = db.transaction()?;
            if clear {
                tx.execute("DELETE FROM vec", [])?;
                tx.execute("DELETE FROM meta", [])?;
                tx.execute("DELETE FROM log", [])?;
            }
            {
                // Every id written goes into the change log the graph follows.
                let mut log = tx.prepare_cached("INSERT INTO log (id) VALUES (?1)")?;
                let mut del = tx.prepare_cached("DELETE FROM vec WHERE id = ?1")?;
                for id in remove {
                    del.execute([id])?;
                    if logged {
                        log.execute([id])?;
                    }
                }
                let mut ins =
                    tx.prepare_cached("INSERT OR REPLACE INTO vec (id, v) VALUES (?1, ?2)")?;
                for (id, v) in put {
                    ins.execute(params![id, bytes_of(v)])?;
                    if logged {
                        log.execute([id])?;
                    }
                }
                if let Some((model, revision)) = state {
                    let mut meta = tx.prepare_cached(
                        "INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)",
                    )?;
                    meta.execute(params!["model", model])?;
                    meta.execute(params!["revision", revision.to_string()])?;
                }
            }
            tx.commit()
        };
        run(&mut db).map_err(|e| self.err(e))?;
        if clear {
            // The graph of the old vectors goes with them.
            let _ = std::fs::remove_file(self.dir.join(GRAPH));
        }
        Ok(())
    }

    /// The change log after position `after`: (position, id), in order.
    pub fn changes_since(&self, after: i64) -> Result<Vec<(i64, String)>> {
        let db = self.db();
        let mut q = db
            .prepare_cached("SELECT n, id FROM log WHERE n > ?1 ORDER BY n")
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map([after], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Drops the change log up to `upto` (a saved graph has applied it).
    pub fn forget_changes(&self, upto: i64) -> Result<()> {
        self.db()
            .execute("DELETE FROM log WHERE n <= ?1", [upto])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The vector of `id`.
    pub fn get(&self, id: &str) -> Result<Option<Vec<f32>>> {
        let db = self.db();
        db.query_row("SELECT v FROM vec WHERE id = ?1", [id], |r| {
            r.get::<_, Vec<u8>>(0)
        })
        .optional()
        .map(|v| v.map(|b| floats_of(&b)))
        .map_err(|e| self.err(e))
    }

    /// Calls `each` with every vector.
    pub fn each(&self, each: &mut dyn FnMut(String, Vec<f32>)) -> Result<()> {
        let db = self.db();
        let mut q = db
            .prepare_cached("SELECT id, v FROM vec")
            .map_err(|e| self.err(e))?;
        let mut rows = q.query([]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let id: String = row.get(0).map_err(|e| self.err(e))?;
            let v: Vec<u8> = row.get(1).map_err(|e| self.err(e))?;
            each(id, floats_of(&v));
        }
        Ok(())
    }

    /// The file of the approximate index beside the vectors.
    pub fn graph_path(&self) -> std::path::PathBuf {
        self.dir.join(GRAPH)
    }

    /// The `k` ids nearest `query` (highest dot product), with their similarity, among
    /// the ids `keep` accepts.
    pub fn nearest(
        &self,
        query: &[f32],
        k: usize,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<(String, f32)>> {
        let db = self.db();
        let mut q = db
            .prepare_cached("SELECT id, v FROM vec")
            .map_err(|e| self.err(e))?;
        let mut rows = q.query([]).map_err(|e| self.err(e))?;
        let mut best: Vec<(String, f32)> = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let id: String = row.get(0).map_err(|e| self.err(e))?;
            if !keep(&id) {
                continue;
            }
            let v: Vec<u8> = row.get(1).map_err(|e| self.err(e))?;
            let score = dot(query, &floats_of(&v));
            if best.len() < k || score > best.last().map_or(f32::MIN, |b| b.1) {
                let at = best.partition_point(|b| b.1 >= score);
                best.insert(at, (id, score));
                best.truncate(k);
            }
        }
        Ok(best)
    }

    /// How many vectors there are.
    pub fn count(&self) -> Result<u64> {
        self.db()
            .query_row("SELECT count(*) FROM vec", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_first_within_the_filter() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vectors::open(dir.path()).unwrap();
        assert_eq!(v.state().unwrap(), None);
        let put = vec![
            ("/a".to_owned(), vec![1.0, 0.0]),
            ("/b".to_owned(), vec![0.6, 0.8]),
            ("/c".to_owned(), vec![0.0, 1.0]),
        ];
        v.write(&put, &[], Some(("m1", 7)), false).unwrap();
        assert_eq!(v.state().unwrap(), Some(("m1".into(), 7)));
        let got = v.nearest(&[0.0, 1.0], 2, &|_| true).unwrap();
        assert_eq!(
            got.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            ["/c", "/b"]
        );
        let got = v.nearest(&[0.0, 1.0], 5, &|id| id != "/c").unwrap();
        assert_eq!(got[0].0, "/b");
        v.write(&[], &["/b".to_owned()], Some(("m1", 8)), false)
            .unwrap();
        assert_eq!(v.count().unwrap(), 2);
        v.write(&[], &[], None, true).unwrap();
        assert_eq!(v.count().unwrap(), 0);
    }
}
