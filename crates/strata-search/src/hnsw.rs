//! The approximate nearest-neighbour index of a large set of vectors: a hierarchical
//! navigable small world graph (HNSW, Malkov and Yashunin), used when an index holds
//! more than [`EXACT_UP_TO`] vectors, where comparing every vector gets slow. Each
//! vector is a node on a random number of levels (fewer higher up); a search walks
//! greedily down from the top level and keeps the `ef` best candidates on the lowest.
//! The graph is saved beside the vectors (`hnsw.bin`, `hnsw_file.rs`) with the
//! position in the vectors' change log it reflects, and brought up to date from that
//! log: a changed record's old node is marked gone and its new vector inserted. Owns
//! the graph and its search; which vectors exist is `vectors.rs`.

use std::collections::{BinaryHeap, HashMap, HashSet};

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

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub id: String,
    pub v: Vec<f32>,
    /// Neighbours on each level the node is on (level 0 first).
    pub links: Vec<Vec<u32>>,
    pub gone: bool,
}

/// A graph of vectors.
#[derive(Debug, Default)]
pub struct Hnsw {
    pub(crate) nodes: Vec<Node>,
    pub(crate) by_id: HashMap<String, u32>,
    pub(crate) entry: Option<u32>,
    /// The last change-log position applied.
    pub applied: i64,
    /// A deterministic random stream (levels), so the same inserts give the same graph.
    pub(crate) seed: u64,
}

/// What a search reads of a graph: in memory ([`Hnsw`]) or mapped from its file
/// (`hnsw_file::Mapped`, which reads only the nodes a search visits).
pub(crate) trait View {
    /// The entry node and its top level.
    fn top(&self) -> Option<(u32, usize)>;
    fn sim(&self, q: &[f32], n: u32) -> f32;
    fn links(&self, n: u32, level: usize) -> Vec<u32>;
    /// The node's id, `None` when it is gone.
    fn live_id(&self, n: u32) -> Option<String>;
}

impl View for Hnsw {
    fn top(&self) -> Option<(u32, usize)> {
        self.entry
            .map(|e| (e, self.nodes[e as usize].links.len() - 1))
    }
    fn sim(&self, q: &[f32], n: u32) -> f32 {
        dot(q, &self.nodes[n as usize].v)
    }
    fn links(&self, n: u32, level: usize) -> Vec<u32> {
        self.nodes[n as usize]
            .links
            .get(level)
            .cloned()
            .unwrap_or_default()
    }
    fn live_id(&self, n: u32) -> Option<String> {
        let node = &self.nodes[n as usize];
        (!node.gone).then(|| node.id.clone())
    }
}

/// The `ef` nodes nearest `q` on `level` of `g`, searching from `from`.
fn layer<V: View>(g: &V, q: &[f32], from: &[u32], ef: usize, level: usize) -> Vec<Cand> {
    let mut seen: HashSet<u32> = from.iter().copied().collect();
    let mut todo: BinaryHeap<Cand> = from.iter().map(|&n| Cand(g.sim(q, n), n)).collect();
    // The best found, worst on top.
    let mut best: BinaryHeap<std::cmp::Reverse<Cand>> =
        todo.iter().map(|c| std::cmp::Reverse(*c)).collect();
    while let Some(c) = todo.pop() {
        let worst = best.peek().map_or(f32::MIN, |w| w.0 .0);
        if c.0 < worst && best.len() >= ef {
            break;
        }
        for n in g.links(c.1, level) {
            if !seen.insert(n) {
                continue;
            }
            let s = g.sim(q, n);
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

/// About the `k` nodes of `g` nearest `q` that `keep` accepts, best first, looking at
/// `ef` candidates (more: better recall, slower).
pub(crate) fn search<V: View>(
    g: &V,
    q: &[f32],
    k: usize,
    ef: usize,
    keep: &dyn Fn(&str) -> bool,
) -> Vec<(String, f32)> {
    let Some((entry, top)) = g.top() else {
        return Vec::new();
    };
    let mut from = vec![entry];
    for l in (1..=top).rev() {
        from = vec![layer(g, q, &from, 1, l)[0].1];
    }
    layer(g, q, &from, ef.max(k), 0)
        .into_iter()
        .filter_map(|c| g.live_id(c.1).filter(|id| keep(id)).map(|id| (id, c.0)))
        .take(k)
        .collect()
}

/// A candidate: similarity and node, ordered by similarity.
#[derive(Clone, Copy, PartialEq)]
pub(crate) struct Cand(f32, u32);
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

    fn layer(&self, q: &[f32], from: &[u32], ef: usize, level: usize) -> Vec<Cand> {
        layer(self, q, from, ef, level)
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
                        .map(|&x| Cand(View::sim(self, &pv, x), x))
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
        search(self, q, k, ef, keep)
    }

    /// Live vectors.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
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
        crate::hnsw_file::save(&g, &dir.path().join("g.bin")).unwrap();
        let back = crate::hnsw_file::load(&dir.path().join("g.bin")).unwrap();
        assert_eq!((back.applied, back.len()), (42, 1999));
        assert_eq!(
            back.search(&unit(5, 32), 5, 64, &|_| true),
            g.search(&unit(5, 32), 5, 64, &|_| true)
        );
        assert!(crate::hnsw_file::load(&dir.path().join("missing")).is_none());
        // Mapped, it finds the same without reading the whole file.
        let mapped = crate::hnsw_file::Mapped::open(&dir.path().join("g.bin")).unwrap();
        assert_eq!(mapped.applied(), 42);
        assert_eq!(
            search(&mapped, &unit(5, 32), 5, 64, &|_| true),
            g.search(&unit(5, 32), 5, 64, &|_| true)
        );
    }
}
