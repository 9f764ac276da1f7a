//! Search by meaning: with a model, every document also gets a vector (`embed.rs`) kept
//! in `vectors.db` beside the full-text index (`vectors.rs`) and maintained by the same
//! writes: a document added queues its text, one re-read or removed drops its old
//! vector, and each commit of the index embeds what is queued and records the model
//! and revision. Vectors of another model or revision (the index was built or caught
//! up without the model) are made anew from the index's documents. A semantic query is
//! the documents nearest the query's vector (all compared up to 100,000, else the
//! approximate graph of `hnsw.rs`); a hybrid one fuses that ranking with the
//! full-text one (reciprocal rank fusion). Owns keeping vectors in step and those two
//! rankings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::query::{AllQuery, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::Term;

use crate::doc::Doc;
use crate::embed::Embedder;
use crate::index::SearchIndex;
use crate::query::Parsed;
use crate::search::{cut, under, Hit, Stored};
use crate::vectors::Vectors;
use crate::{Error, Result};

/// Texts embedded per write of vectors.
const QUEUE: usize = 256;
/// Reciprocal rank fusion's constant (the usual 60).
const RRF_K: f32 = 60.0;

/// A model and the vectors of one index.
#[derive(Debug)]
pub struct Semantic {
    pub(crate) embedder: Arc<Embedder>,
    pub(crate) vectors: Vectors,
    queued: Mutex<Vec<(String, String)>>,
    /// The vectors are not all there yet: commits record no state until
    /// [`SearchIndex::revectorize`] has made them all.
    stale: std::sync::atomic::AtomicBool,
}

/// What a document's vector is made from: its values, in order.
fn text_of(lines: &[(String, String)]) -> String {
    lines
        .iter()
        .map(|(_, t)| t.as_str())
        .collect::<Vec<_>>()
        .join(". ")
}

impl SearchIndex {
    /// Adds a model: documents get vectors from now on. Returns whether the vectors
    /// already in the folder are this model's at the index's revision (if not, call
    /// [`SearchIndex::revectorize`] after catching up).
    pub fn with_model(&mut self, embedder: Arc<Embedder>) -> Result<bool> {
        let vectors = Vectors::open(&self.dir)?;
        let in_step =
            vectors.state()? == Some((embedder.digest.clone(), self.revision)) && self.revision > 0;
        if !in_step {
            vectors.write(&[], &[], None, true)?;
        }
        self.semantic = Some(Semantic {
            embedder,
            vectors,
            queued: Mutex::new(Vec::new()),
            stale: (!in_step).into(),
        });
        Ok(in_step)
    }

    /// Queues `d`'s text for a vector (a model is loaded).
    pub(crate) fn queue_vector(&self, d: &Doc) -> Result<()> {
        let Some(s) = &self.semantic else {
            return Ok(());
        };
        let full = {
            let mut q = s.queued.lock().unwrap_or_else(|e| e.into_inner());
            q.push((d.id.clone(), text_of(&d.lines)));
            q.len() >= QUEUE
        };
        if full {
            self.flush_vectors(None)?;
        }
        Ok(())
    }

    /// Drops the vectors of these documents (before they are re-read).
    pub(crate) fn drop_vectors(&self, ids: &[String]) -> Result<()> {
        match &self.semantic {
            Some(s) => s.vectors.write(&[], ids, None, false),
            None => Ok(()),
        }
    }

    /// Drops every vector (a rebuild).
    pub(crate) fn clear_vectors(&self) -> Result<()> {
        match &self.semantic {
            Some(s) => {
                s.queued.lock().unwrap_or_else(|e| e.into_inner()).clear();
                s.vectors.write(&[], &[], None, true)
            }
            None => Ok(()),
        }
    }

    /// Embeds what is queued and writes it, with the state when the index committed.
    pub(crate) fn flush_vectors(&self, committed: Option<i64>) -> Result<()> {
        let Some(s) = &self.semantic else {
            return Ok(());
        };
        let queued = std::mem::take(&mut *s.queued.lock().unwrap_or_else(|e| e.into_inner()));
        let texts: Vec<&str> = queued.iter().map(|(_, t)| t.as_str()).collect();
        let vectors = s.embedder.embed(&texts)?;
        let put: Vec<(String, Vec<f32>)> =
            queued.into_iter().map(|(id, _)| id).zip(vectors).collect();
        let stale = s.stale.load(std::sync::atomic::Ordering::Relaxed);
        let state = committed
            .filter(|_| !stale)
            .map(|r| (s.embedder.digest.as_str(), r));
        s.vectors.write(&put, &[], state, false)
    }

    /// Makes every document's vector anew from the index (the vectors were of another
    /// model or revision). Returns how many.
    pub fn revectorize(&mut self) -> Result<u64> {
        self.clear_vectors()?;
        let searcher = self.reader.searcher();
        let all = searcher
            .search(&AllQuery, &DocSetCollector)
            .map_err(|e| Error::Search(e.to_string()))?;
        let mut n = 0;
        for addr in all {
            let d = self.stored(&searcher, addr)?;
            self.queue_vector(&Doc {
                id: d.id,
                lines: d.lines,
                ..Doc::default()
            })?;
            n += 1;
        }
        if let Some(s) = &self.semantic {
            s.stale.store(false, std::sync::atomic::Ordering::Relaxed);
        }
        self.flush_vectors(Some(self.revision))?;
        Ok(n)
    }

    /// The hit of one document by id, `score` and no marks.
    fn hit_of(&self, id: &str, score: f32) -> Result<Option<Hit>> {
        let searcher = self.reader.searcher();
        let q = TermQuery::new(
            Term::from_field_text(self.fields.id, id),
            IndexRecordOption::Basic,
        );
        let top = searcher
            .search(&q, &TopDocs::with_limit(1).order_by_score())
            .map_err(|e| Error::Search(e.to_string()))?;
        let Some((_, addr)) = top.first() else {
            return Ok(None);
        };
        let Stored {
            entity,
            lines,
            shown,
            ..
        } = self.stored(&searcher, *addr)?;
        let (key, line) = match lines.first() {
            Some((field, line)) if !field.is_empty() => (format!("{id}/{field}"), line.clone()),
            Some((_, line)) => (id.to_owned(), line.clone()),
            None => (id.to_owned(), id.to_owned()),
        };
        let (snippet, marks) = cut(&line, Vec::new());
        Ok(Some(Hit {
            key,
            id: id.to_owned(),
            entity,
            shown,
            score,
            snippet,
            marks,
        }))
    }

    /// The `limit` documents nearest `text` in meaning, under one of `prefixes`.
    pub fn nearest(&self, text: &str, prefixes: &[String], limit: usize) -> Result<Vec<Hit>> {
        let Some(s) = &self.semantic else {
            return Err(Error::Search("a semantic search needs --model DIR".into()));
        };
        let q = s.embedder.embed(&[text])?.remove(0);
        let keep = |id: &str| under(id, prefixes);
        let found = if s.vectors.count()? > crate::hnsw::exact_up_to() {
            let graph = self.graph()?;
            // A prefix filter looks at more candidates (it drops some).
            // At least 200 candidates: recall@10 99.5% against exact in BENCHMARKS.md
            // (93.5% at 100).
            let ef = if prefixes.is_empty() {
                limit * 10
            } else {
                limit * 40
            }
            .max(200);
            crate::hnsw::search(&graph, &q, limit, ef, &keep)
        } else {
            s.vectors.nearest(&q, limit, &keep)?
        };
        let mut hits = Vec::new();
        for (id, score) in found {
            hits.extend(self.hit_of(&id, score)?);
        }
        Ok(hits)
    }

    /// The approximate graph of the vectors, brought up to date from the vectors'
    /// change log (loaded whole, changed and saved when there are changes; built from
    /// them all when there is none), then opened for a search that reads only the
    /// nodes it visits.
    fn graph(&self) -> Result<crate::hnsw_file::Mapped> {
        let s = self.semantic.as_ref().expect("checked by the caller");
        let path = s.vectors.graph_path();
        let failed = |e: std::io::Error| Error::Index {
            dir: self.dir.clone(),
            problem: format!("{}: {e}", path.display()),
        };
        let opened = crate::hnsw_file::Mapped::open(&path);
        let applied = opened.as_ref().map(|m| m.applied());
        let changes = s.vectors.changes_since(applied.unwrap_or(0))?;
        if let (Some(m), true) = (opened, changes.is_empty()) {
            return Ok(m);
        }
        let mut graph = match applied.and_then(|_| crate::hnsw_file::load(&path)) {
            Some(mut g) => {
                for (_, id) in &changes {
                    match s.vectors.get(id)? {
                        Some(v) => g.insert(id, v),
                        None => g.remove(id),
                    }
                }
                g
            }
            None => {
                let mut g = crate::hnsw::Hnsw::new();
                s.vectors.each(&mut |id, v| g.insert(&id, v))?;
                g
            }
        };
        graph.applied = changes.last().map_or(applied.unwrap_or(0), |c| c.0);
        crate::hnsw_file::save(&graph, &path).map_err(failed)?;
        s.vectors.forget_changes(graph.applied)?;
        crate::hnsw_file::Mapped::open(&path).ok_or_else(|| {
            failed(std::io::Error::other(
                "the graph just written does not read",
            ))
        })
    }

    /// Both rankings fused: each document scores the sum of 1 / (60 + its rank) in
    /// each; words it matched stay marked.
    pub fn hybrid(
        &self,
        parsed: &Parsed,
        text: &str,
        prefixes: &[String],
        limit: usize,
    ) -> Result<Vec<Hit>> {
        let deep = limit.saturating_mul(3).max(30);
        let lexical = self.query(parsed, prefixes, deep)?;
        let semantic = self.nearest(text, prefixes, deep)?;
        let mut fused: HashMap<String, (f32, Hit)> = HashMap::new();
        for list in [lexical, semantic] {
            for (rank, hit) in list.into_iter().enumerate() {
                let add = 1.0 / (RRF_K + rank as f32 + 1.0);
                fused
                    .entry(hit.id.clone())
                    .and_modify(|(s, _)| *s += add)
                    .or_insert((add, hit));
            }
        }
        let mut hits: Vec<Hit> = fused
            .into_values()
            .map(|(score, mut hit)| {
                hit.score = score;
                hit
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        hits.truncate(limit);
        Ok(hits)
    }
}
