//! `refs`: what an object references, and what references it ("what depends on this
//! node?"), from the schema's `ref` fields, read from the store.

use strata_core::key::encode_segment;
use strata_core::{scan, KeySpan, Result, Store};

use crate::schema::{Entity, FieldType, Schema, Segment};

/// The references of one object or single value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refs {
    /// The entity the key belongs to.
    pub entity: String,
    /// (the key holding the reference, the object it names).
    pub outgoing: Vec<(String, String)>,
    /// Keys that name this object.
    pub incoming: Vec<String>,
}

/// The path of `entity`'s object whose id (last variable) is `id`, when the pattern
/// has exactly one variable.
fn path_of(entity: &Entity, id: &str) -> Option<String> {
    let vars = entity
        .segments
        .iter()
        .filter(|s| matches!(s, Segment::Var(..)))
        .count();
    (vars == 1).then(|| {
        entity
            .segments
            .iter()
            .map(|s| match s {
                Segment::Lit(l) => format!("/{l}"),
                Segment::Var(..) => format!("/{}", encode_segment(id)),
            })
            .collect()
    })
}

/// Finds what `key` (an object path or a single-value key) references and what
/// references it. `None` when no entity matches.
pub async fn refs<S: Store>(store: &S, schema: &Schema, key: &str) -> Result<Option<Refs>> {
    let segments: Vec<&str> = key.strip_prefix('/').unwrap_or(key).split('/').collect();
    let Some((entity, vars)) = schema
        .entities
        .iter()
        .find_map(|e| e.match_path(&segments).map(|v| (e, v)))
    else {
        return Ok(None);
    };
    let id = vars.last().map(|(_, v)| v.clone()).unwrap_or_default();
    let mut out = Refs {
        entity: entity.name.clone(),
        ..Default::default()
    };
    // Outgoing: the ref fields of this object, or the value of a single-value ref.
    let mut holders: Vec<(String, &str)> = Vec::new();
    match &entity.value {
        Some(f) => {
            if let FieldType::Ref(t) = &f.ty {
                holders.push((key.to_owned(), t.as_str()));
            }
        }
        None => {
            for (name, f) in &entity.fields {
                if let FieldType::Ref(t) = &f.ty {
                    holders.push((format!("{key}/{}", encode_segment(name)), t.as_str()));
                }
            }
        }
    }
    for (holder, target) in holders {
        // A secret reference is not shown, not even which object it names.
        if schema.secrecy(holder.as_bytes()).is_secret() {
            continue;
        }
        if let Some(kv) = store.get(holder.as_bytes()).await? {
            let value = String::from_utf8_lossy(&kv.value).into_owned();
            let named = schema
                .entity(target)
                .and_then(|t| path_of(t, &value))
                .unwrap_or(value);
            out.outgoing.push((holder, named));
        }
    }
    // Incoming: every ref to this entity whose value is this object's id.
    for source in &schema.entities {
        let fields: Vec<Option<&str>> = match &source.value {
            Some(f) if matches!(&f.ty, FieldType::Ref(t) if *t == entity.name) => vec![None],
            Some(_) => continue,
            None => source
                .fields
                .iter()
                .filter(|(_, f)| matches!(&f.ty, FieldType::Ref(t) if *t == entity.name))
                .map(|(n, _)| Some(n.as_str()))
                .collect(),
        };
        if fields.is_empty() {
            continue;
        }
        scan(
            store,
            KeySpan::prefix(source.literal_prefix().into_bytes()),
            0,
            |page| {
                for kv in page {
                    let k = String::from_utf8_lossy(&kv.key).into_owned();
                    let segs: Vec<&str> = k.strip_prefix('/').unwrap_or(&k).split('/').collect();
                    let matches = fields.iter().any(|f| match f {
                        None => source.match_path(&segs).is_some(),
                        Some(name) => {
                            let (path, last) = segs.split_at(segs.len().saturating_sub(1));
                            last.first() == Some(name) && source.match_path(path).is_some()
                        }
                    });
                    if matches && kv.value == id.as_bytes() && !schema.secrecy(&kv.key).is_secret()
                    {
                        out.incoming.push(k);
                    }
                }
                Ok(())
            },
        )
        .await?;
    }
    Ok(Some(out))
}

/// The references around one key, `depth` hops out both ways (what it references and
/// what references it, transitively): every object reached, once, and every edge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    /// (object path or single-value key, its entity, hops from the start), in the
    /// order they were reached.
    pub nodes: Vec<(String, String, usize)>,
    /// (from, to, the key holding the reference): `from` references `to`.
    pub edges: Vec<(String, String, String)>,
}

impl Graph {
    /// The graph in Graphviz's dot language.
    pub fn dot(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut out = String::from("digraph refs {\n  rankdir=LR;\n  node [shape=box];\n");
        for (node, entity, hops) in &self.nodes {
            let style = if *hops == 0 { ", style=bold" } else { "" };
            out.push_str(&format!(
                "  {} [label={}{style}];\n",
                q(node),
                q(&format!("{node}\n({entity})"))
            ));
        }
        for (from, to, via) in &self.edges {
            let field = via.rsplit('/').next().unwrap_or(via);
            out.push_str(&format!(
                "  {} -> {} [label={}];\n",
                q(from),
                q(to),
                q(field)
            ));
        }
        out.push_str("}\n");
        out
    }
}

/// The object a holder key belongs to: itself for a single-value key, else its parent.
fn holder_object(schema: &Schema, holder: &str) -> String {
    let segments: Vec<&str> = holder
        .strip_prefix('/')
        .unwrap_or(holder)
        .split('/')
        .collect();
    let single = schema
        .entities
        .iter()
        .any(|e| e.value.is_some() && e.match_path(&segments).is_some());
    if single {
        holder.to_owned()
    } else {
        holder
            .rsplit_once('/')
            .map_or(holder, |(p, _)| p)
            .to_owned()
    }
}

/// Walks the references from `key` breadth first, `depth` hops out. `None` when no
/// entity matches `key`.
pub async fn graph<S: Store>(
    store: &S,
    schema: &Schema,
    key: &str,
    depth: usize,
) -> Result<Option<Graph>> {
    let mut g = Graph::default();
    let mut seen = std::collections::HashSet::new();
    let mut edges = std::collections::HashSet::new();
    let mut frontier = vec![key.to_owned()];
    seen.insert(key.to_owned());
    for hops in 0..=depth {
        let mut next = Vec::new();
        for node in std::mem::take(&mut frontier) {
            let Some(r) = refs(store, schema, &node).await? else {
                if hops == 0 {
                    return Ok(None);
                }
                g.nodes.push((node, String::new(), hops));
                continue;
            };
            g.nodes.push((node.clone(), r.entity.clone(), hops));
            if hops == depth {
                continue;
            }
            let out = r
                .outgoing
                .into_iter()
                .map(|(holder, target)| (node.clone(), target, holder));
            let inc = r
                .incoming
                .into_iter()
                .map(|holder| (holder_object(schema, &holder), node.clone(), holder));
            for (from, to, via) in out.chain(inc) {
                let other = if from == node { &to } else { &from };
                if seen.insert(other.clone()) {
                    next.push(other.clone());
                }
                if edges.insert((from.clone(), to.clone(), via.clone())) {
                    g.edges.push((from, to, via));
                }
            }
        }
        frontier = next;
    }
    Ok(Some(g))
}
