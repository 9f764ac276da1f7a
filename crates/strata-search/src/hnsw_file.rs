//! The HNSW graph's file (`hnsw.bin`), written through a temporary file and renamed:
//! a header (format, the change-log position applied, the random state, the entry
//! node, the node count and dimensions), a table of each node's offset, then the
//! nodes (gone or not, levels, id, vector, links per level), little-endian. A search
//! reads only the nodes it visits, one positioned read each ([`Mapped`]), so a query
//! costs about the same whether the graph has 100,000 nodes or ten million; an update loads it whole
//! ([`load`]), applies the changes and writes it again ([`save`]).

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::embed::dot;

use crate::hnsw::{Hnsw, Node, View};

const MAGIC: &[u8; 8] = b"STRHNSW2";
const HEADER: usize = 8 + 6 * 8;

/// Writes `g` to `path`.
pub fn save(g: &Hnsw, path: &Path) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let dims = g.nodes.first().map_or(0, |n| n.v.len());
    out.write_all(MAGIC)?;
    for x in [
        g.applied as u64,
        g.seed,
        g.entry.map_or(u64::MAX, u64::from),
        g.nodes.len() as u64,
        dims as u64,
        0,
    ] {
        out.write_all(&x.to_le_bytes())?;
    }
    let size = |n: &Node| {
        2 + 4 + n.id.len() + 4 * n.v.len() + n.links.iter().map(|l| 4 + 4 * l.len()).sum::<usize>()
    };
    let mut at = (HEADER + 8 * g.nodes.len()) as u64;
    for n in &g.nodes {
        out.write_all(&at.to_le_bytes())?;
        at += size(n) as u64;
    }
    for n in &g.nodes {
        out.write_all(&[u8::from(n.gone), n.links.len() as u8])?;
        out.write_all(&(n.id.len() as u32).to_le_bytes())?;
        out.write_all(n.id.as_bytes())?;
        for x in &n.v {
            out.write_all(&x.to_le_bytes())?;
        }
        for l in &n.links {
            out.write_all(&(l.len() as u32).to_le_bytes())?;
            for x in l {
                out.write_all(&x.to_le_bytes())?;
            }
        }
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(tmp, path)
}

/// A graph file open for reading: a search reads (and keeps) only the nodes it
/// visits, each with one positioned read.
#[derive(Debug)]
pub struct Mapped {
    file: std::fs::File,
    len: u64,
    count: usize,
    dims: usize,
    entry: Option<u32>,
    applied: i64,
    seed: u64,
    nodes: std::cell::RefCell<std::collections::HashMap<u32, std::rc::Rc<Vec<u8>>>>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl Mapped {
    /// Opens `path`; `None` if it is missing or not a graph file of this format.
    pub fn open(path: &Path) -> Option<Mapped> {
        let file = std::fs::File::open(path).ok()?;
        let len = file.metadata().ok()?.len();
        let mut head = vec![0u8; HEADER];
        file.read_exact_at(&mut head, 0).ok()?;
        if head.get(..8)? != MAGIC {
            return None;
        }
        let h = |i: usize| u64_at(&head, 8 + 8 * i);
        let (applied, seed, entry) = (h(0)? as i64, h(1)?, h(2)?);
        let (count, dims) = (h(3)? as usize, h(4)? as usize);
        if len < (HEADER + 8 * count) as u64 {
            return None;
        }
        Some(Mapped {
            file,
            len,
            count,
            dims,
            entry: (entry != u64::MAX && (entry as usize) < count).then_some(entry as u32),
            applied,
            seed,
            nodes: Default::default(),
        })
    }

    /// The change-log position the file reflects.
    pub fn applied(&self) -> i64 {
        self.applied
    }

    /// About the `k` nodes nearest `q` that `keep` accepts (see [`Hnsw::search`]).
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        ef: usize,
        keep: &dyn Fn(&str) -> bool,
    ) -> Vec<(String, f32)> {
        crate::hnsw::search(self, q, k, ef, keep)
    }

    /// How many nodes the searches so far have read from the file.
    pub fn nodes_read(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// Node `n`'s record: gone, levels, id length, id, vector, links per level.
    fn record(&self, n: u32) -> Option<std::rc::Rc<Vec<u8>>> {
        if let Some(r) = self.nodes.borrow().get(&n) {
            return Some(r.clone());
        }
        if n as usize >= self.count {
            return None;
        }
        let mut offsets = [0u8; 16];
        let at = (HEADER + 8 * n as usize) as u64;
        let last = n as usize + 1 == self.count;
        self.file
            .read_exact_at(&mut offsets[..if last { 8 } else { 16 }], at)
            .ok()?;
        let start = u64_at(&offsets, 0)?;
        let end = if last { self.len } else { u64_at(&offsets, 8)? };
        let mut rec = vec![0u8; end.checked_sub(start)? as usize];
        self.file.read_exact_at(&mut rec, start).ok()?;
        let rec = std::rc::Rc::new(rec);
        self.nodes.borrow_mut().insert(n, rec.clone());
        Some(rec)
    }

    /// A record's id range, vector start and links start.
    fn layout(&self, r: &[u8]) -> Option<(std::ops::Range<usize>, usize, usize)> {
        let id_len = u32_at(r, 2)? as usize;
        let id = 6..6 + id_len;
        let v = id.end;
        Some((id, v, v + 4 * self.dims))
    }

    fn vector(&self, r: &[u8]) -> Vec<f32> {
        let Some((_, v, end)) = self.layout(r) else {
            return Vec::new();
        };
        r.get(v..end)
            .unwrap_or_default()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}

impl View for Mapped {
    fn top(&self) -> Option<(u32, usize)> {
        let e = self.entry?;
        Some((e, (*self.record(e)?.get(1)? as usize).saturating_sub(1)))
    }

    fn sim(&self, q: &[f32], n: u32) -> f32 {
        self.record(n)
            .map_or(f32::MIN, |r| dot(q, &self.vector(&r)))
    }

    fn links(&self, n: u32, level: usize) -> Vec<u32> {
        let Some(r) = self.record(n) else {
            return Vec::new();
        };
        let (Some(levels), Some((_, _, mut at))) = (r.get(1), self.layout(&r)) else {
            return Vec::new();
        };
        for l in 0..*levels as usize {
            let Some(len) = u32_at(&r, at) else {
                return Vec::new();
            };
            let len = len as usize;
            if l == level {
                return (0..len)
                    .filter_map(|i| u32_at(&r, at + 4 + 4 * i))
                    .filter(|&x| (x as usize) < self.count)
                    .collect();
            }
            at += 4 + 4 * len;
        }
        Vec::new()
    }

    fn live_id(&self, n: u32) -> Option<String> {
        let r = self.record(n)?;
        if *r.first()? == 1 {
            return None;
        }
        let (id, _, _) = self.layout(&r)?;
        String::from_utf8(r.get(id)?.to_vec()).ok()
    }
}

/// Reads a whole graph file, to change it; `None` if it is not one.
pub fn load(path: &Path) -> Option<Hnsw> {
    let m = Mapped::open(path)?;
    let mut g = Hnsw {
        applied: m.applied,
        seed: m.seed,
        entry: m.entry,
        ..Hnsw::default()
    };
    for n in 0..m.count as u32 {
        let r = m.record(n)?;
        let (idr, _, _) = m.layout(&r)?;
        let id = String::from_utf8(r.get(idr)?.to_vec()).ok()?;
        let gone = *r.first()? == 1;
        let levels = *r.get(1)? as usize;
        let v = m.vector(&r);
        let links = (0..levels).map(|l| m.links(n, l)).collect();
        // Loaded whole: no need to keep each record twice.
        m.nodes.borrow_mut().remove(&n);
        if !gone {
            g.by_id.insert(id.clone(), n);
        }
        g.nodes.push(Node { id, v, links, gone });
    }
    Some(g)
}
