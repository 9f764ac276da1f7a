//! The layered keyspace (`layers:strata.toml`): one keyspace over the stores of a
//! config file's `[layers]`, each key served by the store of its longest layer
//! prefix.
//!
//! Owns the routing: the layers cut the keyspace into disjoint, ordered segments,
//! each owned by one store (a nested layer takes its range out of the outer one), so a
//! read across layers is the concatenation of one read per segment, in key order, and
//! never sees a stray key that a store holds outside its own segments. Each store keeps
//! its own revision: a read that spans several stores answers with a *snapshot token*
//! (a number far above any real revision) that stands for the revision read in each,
//! so paging at "the same revision" stays consistent; a real revision is only taken by
//! a read that stays in one store. Transactions run in one store or are refused. The
//! `Store` implementation is in `store.rs`.

mod store;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use strata_core::key::display_key;
use strata_core::{prefix_end, Error, KeySpan, Result};

use crate::config::Config;
use crate::{AnyStore, ConnectOptions};

/// Snapshot tokens start here (even numbers; `token + 1` means "after the token",
/// as `revision + 1` does for a watch that follows a read).
pub const TOKEN_BASE: i64 = 1 << 60;

/// One store of the layered keyspace.
#[derive(Debug)]
pub(crate) struct Part {
    /// Its name in the config file.
    name: String,
    /// Its URL without credentials, for messages.
    url: String,
    /// The store, or why it could not be opened: a store that is down fails only the
    /// requests that need it, so the other layers keep working.
    store: std::result::Result<AnyStore, String>,
}

/// A range of keys `[start, end)` held by one part (`end = None`: no upper bound).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    part: usize,
    /// The layer's prefix, for messages.
    layer: String,
}

/// The layered keyspace of a config file.
#[derive(Debug)]
pub struct LayeredStore {
    file: String,
    parts: Vec<Part>,
    segments: Vec<Segment>,
    /// Snapshot token → the revision read in each part (0: not read yet).
    tokens: Mutex<HashMap<i64, Vec<i64>>>,
    next_token: AtomicI64,
}

impl LayeredStore {
    /// Opens every store that holds a layer of the config file at `path`.
    pub async fn open(path: &Path, opts: &ConnectOptions) -> Result<Self> {
        let config = Config::load(path).map_err(|e| Error::InvalidUrl {
            url: format!("layers:{}", path.display()),
            reason: e.to_string(),
        })?;
        if config.layers.is_empty() {
            return Err(Error::InvalidUrl {
                url: format!("layers:{}", path.display()),
                reason: "the file has no [layers]; add \"/prefix/\" = \"store\" lines, or name \
                         one of its stores instead"
                    .into(),
            });
        }
        let mut names: Vec<String> = config.layers.iter().map(|l| l.store.clone()).collect();
        names.sort();
        names.dedup();
        let mut parts = Vec::new();
        for name in names {
            let named = config
                .store(&name)
                .expect("Config::load checks layer stores");
            let options = ConnectOptions {
                create: opts.create,
                ..named.options.clone()
            };
            // Boxed: opening a part goes through `open_with`, which opens this type.
            let store = Box::pin(crate::open_with(&named.url, &options))
                .await
                .map_err(|e| e.to_string());
            parts.push(Part {
                name,
                url: crate::redact(&named.url),
                store,
            });
        }
        let mut layers: Vec<(String, usize)> = config
            .layers
            .iter()
            .map(|l| {
                let part = parts.iter().position(|p| p.name == l.store).unwrap_or(0);
                (l.prefix.clone(), part)
            })
            .collect();
        // Each store's own corner of Strata's keys, for state kept beside that store's
        // keys (see `Store::own_key`): routed like a layer of its own.
        for (i, p) in parts.iter().enumerate() {
            layers.push((own_prefix(&p.name), i));
        }
        Ok(LayeredStore {
            file: path.display().to_string(),
            segments: segments(&layers),
            parts,
            tokens: Mutex::new(HashMap::new()),
            next_token: AtomicI64::new(TOKEN_BASE),
        })
    }

    /// The config file, for messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Part `part`'s store, or the error of a store that could not be opened.
    fn store(&self, part: usize) -> Result<&AnyStore> {
        let p = &self.parts[part];
        p.store.as_ref().map_err(|why| {
            Error::backend(
                "layers",
                format!("the store {} ({})", p.name, p.url),
                why.clone(),
            )
        })
    }

    /// The names of the stores, in part order.
    pub fn store_names(&self) -> Vec<&str> {
        self.parts.iter().map(|p| p.name.as_str()).collect()
    }

    /// The stores that hold keys of `span`, by name, in part order: what a frontend
    /// runs a per-store job on (migrations of an area live in its layer's store).
    /// A store that could not be opened is its error.
    pub fn stores_of(&self, span: &KeySpan) -> Vec<(&str, Result<&AnyStore>)> {
        self.parts_of(span)
            .into_iter()
            .map(|p| (self.parts[p].name.as_str(), self.store(p)))
            .collect()
    }

    /// Every store with the key ranges it holds, in part order (for jobs that read
    /// each store on its own, at its own revision: a backup). A store that could not
    /// be opened is its error.
    pub fn parts(&self) -> Vec<(&str, Result<&AnyStore>, Vec<KeySpan>)> {
        (0..self.parts.len())
            .map(|p| {
                let spans = self
                    .segments
                    .iter()
                    .filter(|s| s.part == p)
                    .map(|s| KeySpan::Range {
                        start: s.start.clone(),
                        end: s.end.clone(),
                    })
                    .collect();
                (self.parts[p].name.as_str(), self.store(p), spans)
            })
            .collect()
    }

    /// The store (its name) and layer prefix that hold `key`; `None` outside every
    /// layer.
    pub fn layer_of(&self, key: &[u8]) -> Option<(&str, &str)> {
        self.segment_of(key)
            .map(|s| (self.parts[s.part].name.as_str(), s.layer.as_str()))
    }

    /// Each store's revision that a snapshot token stands for, as `ops@12, comms@5`
    /// (stores the token has not read are left out); `None` for a real revision.
    pub fn describe_revision(&self, revision: i64) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let revs = tokens.get(&(revision & !1))?;
        let named: Vec<String> = revs
            .iter()
            .zip(&self.parts)
            .filter(|(r, _)| **r > 0)
            .map(|(r, p)| format!("{}@{r}", p.name))
            .collect();
        Some(named.join(", "))
    }

    fn segment_of(&self, key: &[u8]) -> Option<&Segment> {
        self.segments
            .iter()
            .find(|s| key >= s.start.as_slice() && s.end.as_deref().is_none_or(|e| key < e))
    }

    /// The segments that meet `span`, each cut to it, in key order.
    fn cut(&self, span: &KeySpan) -> Vec<(KeySpan, usize)> {
        let (start, end) = span.bounds();
        self.segments
            .iter()
            .filter_map(|s| {
                let lo = start.clone().max(s.start.clone());
                let hi = match (&end, &s.end) {
                    (None, None) => None,
                    (Some(a), None) | (None, Some(a)) => Some(a.clone()),
                    (Some(a), Some(b)) => Some(a.clone().min(b.clone())),
                };
                if hi.as_ref().is_some_and(|h| *h <= lo) {
                    return None;
                }
                Some((KeySpan::Range { start: lo, end: hi }, s.part))
            })
            .collect()
    }

    /// The parts a span touches.
    fn parts_of(&self, span: &KeySpan) -> Vec<usize> {
        let mut parts: Vec<usize> = self.cut(span).into_iter().map(|(_, p)| p).collect();
        parts.sort_unstable();
        parts.dedup();
        parts
    }

    /// A new snapshot token standing for `revs` (one per part, 0: not read).
    fn token(&self, revs: Vec<i64>) -> i64 {
        let token = self.next_token.fetch_add(2, Ordering::Relaxed);
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token, revs);
        token
    }

    /// The revision to read part `part` at for a request at `revision`: a real one
    /// as is, a token's (pinning the part's current revision into it when the token
    /// has not read that part yet; `pin` reads it).
    fn pinned(&self, revision: i64, part: usize) -> Option<i64> {
        if revision < TOKEN_BASE {
            return Some(revision);
        }
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let revs = tokens.get(&(revision & !1))?;
        Some(revs[part] + (revision & 1))
    }

    fn record(&self, token: i64, part: usize, revision: i64) {
        if let Some(revs) = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&(token & !1))
        {
            if revs[part] == 0 {
                revs[part] = revision;
            }
        }
    }

    /// The error for a real revision given to a read that spans several stores.
    fn ambiguous(&self, revision: i64, parts: &[usize]) -> Error {
        let names: Vec<&str> = parts.iter().map(|p| self.parts[*p].name.as_str()).collect();
        Error::InvalidTxn(format!(
            "revision {revision} is ambiguous here: the keys read are in the layers of {}, each \
             with its own revision; read within one layer's prefix, or leave out the revision",
            names.join(", ")
        ))
    }

    /// The error for keys outside every layer.
    fn outside(&self, key: &[u8]) -> Error {
        let layers: Vec<String> = self
            .segments
            .iter()
            .filter(|s| !s.layer.starts_with(strata_core::key::RESERVED_PREFIX))
            .map(|s| format!("{} ({})", s.layer, self.parts[s.part].name))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        Error::InvalidTxn(format!(
            "{} is outside every layer of {} ({}); add a layer for it, or \"/\" for every \
             other key",
            display_key(key),
            self.file,
            layers.join(", ")
        ))
    }
}

/// Where a store's own keys of Strata live: `/_strata/parts/<store>/`.
fn own_prefix(store: &str) -> String {
    format!("{}parts/{store}/", strata_core::key::RESERVED_PREFIX)
}

/// An error of one part's store, naming the layer's store and its URL.
fn in_layer(name: &str, url: &str, e: Error) -> Error {
    Error::backend("layers", format!("the store {name} ({url})"), e)
}

/// Cuts the keyspace by the layers (prefix, part): ordered, disjoint segments, each
/// owned by the part of the longest layer prefix its keys start with. Keys under no
/// layer are in no segment.
fn segments(layers: &[(String, usize)]) -> Vec<Segment> {
    let mut bounds: Vec<Vec<u8>> = Vec::new();
    for (prefix, _) in layers {
        bounds.push(prefix.as_bytes().to_vec());
        if let Some(end) = prefix_end(prefix.as_bytes()) {
            bounds.push(end);
        }
    }
    bounds.sort();
    bounds.dedup();
    let owner = |key: &[u8]| {
        layers
            .iter()
            .filter(|(p, _)| key.starts_with(p.as_bytes()))
            .max_by_key(|(p, _)| p.len())
    };
    let mut out: Vec<Segment> = Vec::new();
    for (i, start) in bounds.iter().enumerate() {
        let end = bounds.get(i + 1).cloned();
        let Some((prefix, part)) = owner(start) else {
            continue;
        };
        match out.last_mut() {
            Some(last)
                if last.part == *part
                    && last.layer == *prefix
                    && last.end.as_ref() == Some(start) =>
            {
                last.end = end;
            }
            _ => out.push(Segment {
                start: start.clone(),
                end,
                part: *part,
                layer: prefix.clone(),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: &str, end: Option<&str>, part: usize, layer: &str) -> Segment {
        Segment {
            start: start.as_bytes().to_vec(),
            end: end.map(|e| e.as_bytes().to_vec()),
            part,
            layer: layer.into(),
        }
    }

    #[test]
    fn nested_layers_cut_the_outer_one() {
        let layers = vec![
            ("/sigilgate/".to_owned(), 1),
            ("/public/".to_owned(), 2),
            ("/".to_owned(), 0),
        ];
        assert_eq!(
            segments(&layers),
            vec![
                seg("/", Some("/public/"), 0, "/"),
                seg("/public/", Some("/public0"), 2, "/public/"),
                seg("/public0", Some("/sigilgate/"), 0, "/"),
                seg("/sigilgate/", Some("/sigilgate0"), 1, "/sigilgate/"),
                seg("/sigilgate0", Some("0"), 0, "/"),
            ]
        );
        // Without "/", only the layers' own keys are anywhere.
        assert_eq!(
            segments(&layers[..2]),
            vec![
                seg("/public/", Some("/public0"), 2, "/public/"),
                seg("/sigilgate/", Some("/sigilgate0"), 1, "/sigilgate/"),
            ]
        );
        // A layer inside a layer inside a layer.
        let deep = vec![
            ("/a/".to_owned(), 0),
            ("/a/b/".to_owned(), 1),
            ("/a/b/c/".to_owned(), 0),
        ];
        assert_eq!(
            segments(&deep),
            vec![
                seg("/a/", Some("/a/b/"), 0, "/a/"),
                seg("/a/b/", Some("/a/b/c/"), 1, "/a/b/"),
                seg("/a/b/c/", Some("/a/b/c0"), 0, "/a/b/c/"),
                seg("/a/b/c0", Some("/a/b0"), 1, "/a/b/"),
                seg("/a/b0", Some("/a0"), 0, "/a/"),
            ]
        );
    }
}
