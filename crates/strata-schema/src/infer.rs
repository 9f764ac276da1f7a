//! `schema infer`: a draft schema from an existing keyspace.
//!
//! Keys are read page by page into a tree of segments. At each level, children that
//! look like ids (UUIDs, integers, IP addresses, emails, `host:port` names, or anything
//! with a digit) collapse into one variable segment, named for what they hold. Leaf
//! patterns ending in a literal under a variable become fields of an object entity;
//! the others become single-value entities. Values are typed from what they hold:
//! integers, booleans, timestamps, JSON documents, small closed sets (enums), strings.

use std::collections::BTreeMap;

use strata_core::key::decode_segment;
use strata_core::{scan, KeySpan, Result, Store};

use crate::schema::{FieldType, SegmentType};

#[derive(Debug, Default)]
struct Node {
    children: BTreeMap<String, Node>,
    values: Vec<String>,
}

fn looks_like_id(segment: &str) -> bool {
    segment.chars().any(|c| c.is_ascii_digit()) || segment.contains('@')
}

/// The type and name of a variable that stands for these segments.
fn variable_for(segments: &[&String]) -> (SegmentType, &'static str) {
    let all = |ty: SegmentType| segments.iter().all(|s| ty.accepts(&decode_segment(s)));
    if all(SegmentType::Uuid) {
        (SegmentType::Uuid, "uuid")
    } else if all(SegmentType::Int) {
        (SegmentType::Int, "id")
    } else if all(SegmentType::Ip) {
        (SegmentType::Ip, "ip")
    } else if all(SegmentType::Email) {
        (SegmentType::Email, "email")
    } else if segments.iter().any(|s| s.contains(':') || s.contains('.')) {
        (SegmentType::String, "name")
    } else {
        (SegmentType::String, "id")
    }
}

/// A pattern segment: literal, or a variable with its type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seg {
    Lit(String),
    Var(String, &'static str),
}

fn type_name(ty: &SegmentType) -> &'static str {
    match ty {
        SegmentType::Int => "int",
        SegmentType::Uuid => "uuid",
        SegmentType::Ip => "ip",
        SegmentType::Email => "email",
        SegmentType::Slug => "slug",
        SegmentType::String | SegmentType::Regex(_) => "string",
    }
}

/// Merges the subtrees of collapsed siblings.
fn merge(into: &mut Node, from: Node) {
    into.values.extend(from.values);
    for (k, child) in from.children {
        merge(into.children.entry(k).or_default(), child);
    }
}

/// Walks the tree, collapsing id-like levels, and collects leaf patterns with values.
fn patterns(node: Node, prefix: Vec<Seg>, out: &mut BTreeMap<Vec<Seg>, Vec<String>>) {
    if !node.values.is_empty() {
        out.entry(prefix.clone()).or_default().extend(node.values);
    }
    let ids: Vec<&String> = node.children.keys().filter(|k| looks_like_id(k)).collect();
    let collapse = node.children.len() >= 2 && ids.len() * 2 >= node.children.len();
    if collapse {
        let keys: Vec<String> = node.children.keys().cloned().collect();
        let refs: Vec<&String> = keys.iter().collect();
        let (ty, base) = variable_for(&refs);
        let used = prefix
            .iter()
            .filter(|s| matches!(s, Seg::Var(n, _) if n.starts_with(base)))
            .count();
        let name = if used == 0 {
            base.to_owned()
        } else {
            format!("{base}{}", used + 1)
        };
        let mut merged = Node::default();
        for (_, child) in node.children {
            merge(&mut merged, child);
        }
        let mut next = prefix;
        next.push(Seg::Var(name, type_name(&ty)));
        patterns(merged, next, out);
    } else {
        for (k, child) in node.children {
            let mut next = prefix.clone();
            next.push(Seg::Lit(k));
            patterns(child, next, out);
        }
    }
}

/// The type a set of values suggests.
fn value_type(values: &[String]) -> FieldType {
    let all = |f: &dyn Fn(&str) -> bool| !values.is_empty() && values.iter().all(|v| f(v));
    if all(&|v| FieldType::Int.violation(v).is_none()) {
        return FieldType::Int;
    }
    if all(&|v| FieldType::Bool.violation(v).is_none()) {
        return FieldType::Bool;
    }
    if all(&|v| FieldType::Timestamp.violation(v).is_none()) {
        return FieldType::Timestamp;
    }
    if all(&|v| v.starts_with('{') || v.starts_with('['))
        && all(&|v| FieldType::Json.violation(v).is_none())
    {
        return FieldType::Json;
    }
    let mut distinct: Vec<&String> = values.iter().collect();
    distinct.sort();
    distinct.dedup();
    if distinct.len() <= 5
        && values.len() >= 3 * distinct.len()
        && distinct.iter().all(|v| v.len() <= 32)
    {
        return FieldType::Enum(distinct.into_iter().cloned().collect());
    }
    FieldType::String
}

fn field_toml(ty: &FieldType) -> String {
    match ty {
        FieldType::String => "{ type = \"string\" }".into(),
        FieldType::Int => "{ type = \"int\" }".into(),
        FieldType::Bool => "{ type = \"bool\" }".into(),
        FieldType::Timestamp => "{ type = \"timestamp\" }".into(),
        FieldType::Json => "{ type = \"json\" }".into(),
        FieldType::Enum(values) => format!("{{ type = \"enum\", values = {values:?} }}"),
        FieldType::Ref(t) => format!("{{ type = \"ref\", ref = {t:?} }}"),
    }
}

fn render(segs: &[Seg]) -> String {
    segs.iter()
        .map(|s| match s {
            Seg::Lit(l) => format!("/{l}"),
            Seg::Var(n, _) => format!("/{{{n}}}"),
        })
        .collect()
}

fn entity_name(segs: &[Seg]) -> String {
    let words: Vec<String> = segs
        .iter()
        .filter_map(|s| match s {
            Seg::Lit(l) => Some(
                l.chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect(),
            ),
            Seg::Var(..) => None,
        })
        .collect();
    if words.is_empty() {
        "root".into()
    } else {
        words.join("_")
    }
}

/// Reads the keyspace under `prefix` and returns a draft schema (TOML) with the leaf
/// key patterns listed first.
pub async fn infer<S: Store>(store: &S, prefix: &[u8]) -> Result<String> {
    let mut root = Node::default();
    scan(store, KeySpan::prefix(prefix.to_vec()), 0, |page| {
        for kv in page {
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            let mut node = &mut root;
            for seg in key.strip_prefix('/').unwrap_or(&key).split('/') {
                node = node.children.entry(seg.to_owned()).or_default();
            }
            node.values
                .push(String::from_utf8_lossy(&kv.value).into_owned());
        }
        Ok(())
    })
    .await?;
    let mut leaves = BTreeMap::new();
    patterns(root, Vec::new(), &mut leaves);
    // Leaves ending in a literal under a variable are fields of the object above them.
    let mut objects: BTreeMap<Vec<Seg>, BTreeMap<String, FieldType>> = BTreeMap::new();
    let mut singles: BTreeMap<Vec<Seg>, FieldType> = BTreeMap::new();
    for (segs, values) in &leaves {
        let ty = value_type(values);
        match segs.split_last() {
            Some((Seg::Lit(field), parent)) if parent.iter().any(|s| matches!(s, Seg::Var(..))) => {
                objects
                    .entry(parent.to_vec())
                    .or_default()
                    .insert(field.clone(), ty);
            }
            _ => {
                singles.insert(segs.clone(), ty);
            }
        }
    }
    let mut out = String::from("# A draft schema inferred by `strata schema infer`: review the names and types.\n#\n# Key patterns found:\n");
    for segs in leaves.keys() {
        out.push_str(&format!("#   {}\n", render(segs)));
    }
    let vars_toml = |segs: &[Seg]| -> String {
        let vars: Vec<String> = segs
            .iter()
            .filter_map(|s| match s {
                Seg::Var(n, t) => Some(format!("{n} = \"{t}\"")),
                Seg::Lit(_) => None,
            })
            .collect();
        if vars.is_empty() {
            String::new()
        } else {
            format!("vars = {{ {} }}\n", vars.join(", "))
        }
    };
    for (segs, fields) in &objects {
        let name = entity_name(segs);
        out.push_str(&format!(
            "\n[entities.{name}]\nkey = \"{}\"\n{}",
            render(segs),
            vars_toml(segs)
        ));
        out.push_str(&format!("[entities.{name}.fields]\n"));
        for (field, ty) in fields {
            out.push_str(&format!("{field} = {}\n", field_toml(ty)));
        }
    }
    for (segs, ty) in &singles {
        let name = entity_name(segs);
        out.push_str(&format!(
            "\n[entities.{name}]\nkey = \"{}\"\n{}value = {}\n",
            render(segs),
            vars_toml(segs),
            field_toml(ty)
        ));
    }
    Ok(out)
}
