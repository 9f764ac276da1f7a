//! The approximate nearest-neighbour index of a large set of vectors: a hierarchical
//! navigable small world graph (HNSW, Malkov and Yashunin), used when an index holds
//! more than [`EXACT_UP_TO`] vectors, where comparing every vector gets slow. Each
//! vector is a node on a random number of levels (fewer higher up); a search walks
//! greedily down from the top level and keeps the `ef` best candidates on the lowest.
//! The graph is saved beside the vectors (`hnsw.bin`) with the position in the
//! vectors' change log it reflects, and brought up to date from that log: a changed
//! record's old node is marked gone and its new vector inserted. Owns the graph, its
//! file and its search; which vectors exist is `vectors.rs`.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;

use crate::embed::dot;

/// Up to this many vectors, a search compares them all (exact).
pub const EXACT_UP_TO: u64 = 100_000;

/// [`EXACT_UP_TO`], or `STRATA_SEARCH_EXACT_UP_TO` when set to a number.
pub fn exact_up_to() -> u64 {
    std::env::var("STRATA_SEARCH_EXACT_UP_TO")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(EXACT_UP_TO)
}
/// Links per node and level (twice that on level 0).
const M: usize = 16;
/// Candidates kept while inserting.
const EF_BUILD: usize = 100;
const MAGIC: &[u8; 8] = b"STRHNSW1";

#[derive(Debug, Clone)]
struct Node {
    id: String,
    v: Vec<f32>,
    /// Neighbours on each level the node is on (level 0 first).
    links: Vec<Vec<u32>>,
    gone: bool,
}

/// A graph of vectors.
#[derive(Debug, Default)]
pub struct Hnsw {
    nodes: Vec<Node>,
    by_id: HashMap<String, u32>,
    entry: Option<u32>,
    /// The last change-log position applied.
    pub applied: i64,
    /// A deterministic random stream (levels), so the same inserts give the same graph.
    seed: u64,
}

/// A candidate: similarity and node, ordered by similarity.
#[derive(Clone, Copy, PartialEq)]
struct Cand(f32, u32);
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

impl Hnsw {
    fn random_level(&mut self) -> usize {
        // xorshift64*; P(level >= l) = (1/M)^l.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let u = (self.seed >> 11) as f64 / (1u64 << 53) as f64;
        (-(u.max(1e-12)).ln() / (M as f64).ln()) as usize
    }

    fn sim(&self, q: &[f32], n: u32) -> f32 {
        dot(q, &self.nodes[n as usize].v)
    }

    /// The `ef` nodes nearest `q` on `level`, searching from `from`.
    fn layer(&self, q: &[f32], from: &[u32], ef: usize, level: usize) -> Vec<Cand> {
        let mut seen: HashSet<u32> = from.iter().copied().collect();
        let mut todo: BinaryHeap<Cand> = from.iter().map(|&n| Cand(self.sim(q, n), n)).collect();
        // The best found, worst on top (similarities negated).
        let mut best: BinaryHeap<std::cmp::Reverse<Cand>> =
            todo.iter().map(|c| std::cmp::Reverse(*c)).collect();
        while let Some(c) = todo.pop() {
            let worst = best.peek().map_or(f32::MIN, |w| w.0 .0);
            if c.0 < worst && best.len() >= ef {
                break;
            }
            let node = &self.nodes[c.1 as usize];
            for &n in node.links.get(level).map(Vec::as_slice).unwrap_or(&[]) {
                if !seen.insert(n) {
                    continue;
                }
                let s = self.sim(q, n);
                let worst = best.peek().map_or(f32::MIN, |w| w.0 .0);
                if best.len() < ef || s > worst {
                    todo.push(Cand(s, n));
                    best.push(std::cmp::Reverse(Cand(s, n)));
                    if best.len() > ef {
                        best.pop();
                    }
                }
            }
        }
        let mut out: Vec<Cand> = best.into_iter().map(|r| r.0).collect();
        out.sort_by(|a, b| b.cmp(a));
        out
    }

    /// Picks at most `m` neighbours among `cands` (best first), preferring ones not
    /// already close to a picked one (the paper's heuristic), filling up with the rest.
    fn pick(&self, cands: &[Cand], m: usize) -> Vec<u32> {
        let mut picked: Vec<u32> = Vec::new();
        let mut skipped = Vec::new();
        for c in cands {
            if picked.len() >= m {
                break;
            }
            let v = &self.nodes[c.1 as usize].v;
            if picked
                .iter()
                .all(|&p| dot(v, &self.nodes[p as usize].v) < c.0)
            {
                picked.push(c.1);
            } else {
                skipped.push(c.1);
            }
        }
        picked.extend(skipped.into_iter().take(m.saturating_sub(picked.len())));
        picked
    }

    /// Adds (or replaces) the vector of `id`.
    pub fn insert(&mut self, id: &str, v: Vec<f32>) {
        self.remove(id);
        let level = self.random_level();
        let n = self.nodes.len() as u32;
        self.nodes.push(Node {
            id: id.to_owned(),
            v,
            links: vec![Vec::new(); level + 1],
            gone: false,
        });
        self.by_id.insert(id.to_owned(), n);
        let Some(entry) = self.entry else {
            self.entry = Some(n);
            return;
        };
        let q = self.nodes[n as usize].v.clone();
        let top = self.nodes[entry as usize].links.len() - 1;
        let mut from = vec![entry];
        for l in (level + 1..=top).rev() {
            from = vec![self.layer(&q, &from, 1, l)[0].1];
        }
        for l in (0..=level.min(top)).rev() {
            let cands = self.layer(&q, &from, EF_BUILD, l);
            let max = if l == 0 { 2 * M } else { M };
            let picked = self.pick(&cands, M);
            self.nodes[n as usize].links[l] = picked.clone();
            for p in picked {
                let links = &mut self.nodes[p as usize].links[l];
                links.push(n);
                if links.len() > max {
                    let pv = self.nodes[p as usize].v.clone();
                    let mut cs: Vec<Cand> = self.nodes[p as usize].links[l]
                        .iter()
                        .map(|&x| Cand(self.sim(&pv, x), x))
                        .collect();
                    cs.sort_by(|a, b| b.cmp(a));
                    self.nodes[p as usize].links[l] = self.pick(&cs, max);
                }
            }
            from = cands.iter().map(|c| c.1).collect();
        }
        if level > top {
            self.entry = Some(n);
        }
    }

    /// Marks the node of `id` gone (it stays as a waypoint, never a result).
    pub fn remove(&mut self, id: &str) {
        if let Some(n) = self.by_id.remove(id) {
            self.nodes[n as usize].gone = true;
        }
    }

    /// About the `k` nodes nearest `q` that `keep` accepts, best first, looking at `ef`
    /// candidates (more: better recall, slower).
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        ef: usize,
        keep: &dyn Fn(&str) -> bool,
    ) -> Vec<(String, f32)> {
        let Some(entry) = self.entry else {
            return Vec::new();
        };
        let top = self.nodes[entry as usize].links.len() - 1;
        let mut from = vec![entry];
        for l in (1..=top).rev() {
            from = vec![self.layer(q, &from, 1, l)[0].1];
        }
        self.layer(q, &from, ef.max(k), 0)
            .into_iter()
            .filter(|c| {
                let node = &self.nodes[c.1 as usize];
                !node.gone && keep(&node.id)
            })
            .take(k)
            .map(|c| (self.nodes[c.1 as usize].id.clone(), c.0))
            .collect()
    }

    /// Live vectors.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Writes the graph to `path` (through a temporary file, renamed).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        out.write_all(MAGIC)?;
        let w64 = |out: &mut dyn Write, x: u64| out.write_all(&x.to_le_bytes());
        w64(&mut out, self.applied as u64)?;
        w64(&mut out, self.seed)?;
        w64(&mut out, self.entry.map_or(u64::MAX, u64::from))?;
        w64(&mut out, self.nodes.len() as u64)?;
        for n in &self.nodes {
            w64(&mut out, n.id.len() as u64)?;
            out.write_all(n.id.as_bytes())?;
            out.write_all(&[u8::from(n.gone)])?;
            w64(&mut out, n.v.len() as u64)?;
            for x in &n.v {
                out.write_all(&x.to_le_bytes())?;
            }
            w64(&mut out, n.links.len() as u64)?;
            for l in &n.links {
                w64(&mut out, l.len() as u64)?;
                for x in l {
                    out.write_all(&x.to_le_bytes())?;
                }
            }
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(tmp, path)
    }

    /// Reads a graph written by [`Hnsw::save`]; `None` if it is not one.
    pub fn load(path: &Path) -> Option<Hnsw> {
        let mut r = std::io::BufReader::new(std::fs::File::open(path).ok()?);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).ok()?;
        if &magic != MAGIC {
            return None;
        }
        let mut r64 = || -> Option<u64> {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).ok()?;
            Some(u64::from_le_bytes(b))
        };
        let applied = r64()? as i64;
        let seed = r64()?;
        let entry = r64()?;
        let count = r64()?;
        let mut g = Hnsw {
            applied,
            seed,
            entry: (entry != u64::MAX).then_some(entry as u32),
            ..Hnsw::default()
        };
        let mut read = |len: usize| -> Option<Vec<u8>> {
            let mut b = vec![0u8; len];
            r.read_exact(&mut b).ok()?;
            Some(b)
        };
        let n64 = |b: Vec<u8>| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        for i in 0..count {
            let len = n64(read(8)?) as usize;
            let id = String::from_utf8(read(len)?).ok()?;
            let gone = read(1)?[0] == 1;
            let dims = n64(read(8)?) as usize;
            let v = read(dims * 4)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let levels = n64(read(8)?) as usize;
            let mut links = Vec::with_capacity(levels);
            for _ in 0..levels {
                let n = n64(read(8)?) as usize;
                links.push(
                    read(n * 4)?
                        .chunks_exact(4)
                        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                );
            }
            if !gone {
                g.by_id.insert(id.clone(), i as u32);
            }
            g.nodes.push(Node { id, v, links, gone });
        }
        Some(g)
    }

    /// A new, empty graph.
    pub fn new() -> Self {
        Hnsw {
            seed: 0x9e37_79b9_7f4a_7c15,
            ..Hnsw::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, dims: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let v: Vec<f32> = (0..dims)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let n = dot(&v, &v).sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    #[test]
    fn finds_what_an_exact_search_finds_and_survives_a_save() {
        let mut g = Hnsw::new();
        let all: Vec<(String, Vec<f32>)> = (0..2000)
            .map(|i| (format!("/k/{i}"), unit(i, 32)))
            .collect();
        for (id, v) in &all {
            g.insert(id, v.clone());
        }
        let mut hits = 0;
        for q in 0..50 {
            let qv = unit(10_000 + q, 32);
            let mut exact: Vec<(f32, &str)> = all
                .iter()
                .map(|(id, v)| (dot(&qv, v), id.as_str()))
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            let want: HashSet<&str> = exact.iter().take(10).map(|e| e.1).collect();
            let got = g.search(&qv, 10, 64, &|_| true);
            hits += got
                .iter()
                .filter(|(id, _)| want.contains(id.as_str()))
                .count();
        }
        assert!(hits >= 450, "recall@10 {hits}/500");
        // Replaced and removed vectors are never results.
        g.insert("/k/0", unit(77_777, 32));
        g.remove("/k/1");
        assert_eq!(g.len(), 1999);
        let got = g.search(&unit(1, 32), 5, 64, &|_| true);
        assert!(got.iter().all(|(id, _)| id != "/k/1"));
        let dir = tempfile::tempdir().unwrap();
        g.applied = 42;
        g.save(&dir.path().join("g.bin")).unwrap();
        let back = Hnsw::load(&dir.path().join("g.bin")).unwrap();
        assert_eq!((back.applied, back.len()), (42, 1999));
        assert_eq!(
            back.search(&unit(5, 32), 5, 64, &|_| true),
            g.search(&unit(5, 32), 5, 64, &|_| true)
        );
        assert!(Hnsw::load(&dir.path().join("missing")).is_none());
    }
}
