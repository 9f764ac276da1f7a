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

/// The literal prefix of a pattern, up to its first variable.
fn literal_prefix(entity: &Entity) -> String {
    let mut out = String::from("/");
    for s in &entity.segments {
        match s {
            Segment::Lit(l) => {
                out.push_str(l);
                out.push('/');
            }
            Segment::Var(..) => break,
        }
    }
    out
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
            KeySpan::prefix(literal_prefix(source).into_bytes()),
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
                    if matches && kv.value == id.as_bytes() {
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
