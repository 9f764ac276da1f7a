//! `schema check`: the live store against the schema, streamed page by page at one
//! revision. Memory grows with the number of objects (to check required fields and
//! references), not with the number of keys.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use strata_core::key::decode_segment;
use strata_core::{scan, KeySpan, Result, Store};

use crate::schema::{Entity, Field, FieldType, Schema};

/// The kinds of violation, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViolationKind {
    /// The key matches no pattern of the schema.
    UnknownKey,
    /// An object lacks a required field.
    MissingField,
    /// A value is not of its field's type (or not one of its enum values).
    WrongType,
    /// A reference names an object that does not exist.
    DanglingRef,
    /// An object holds a field that the schema puts in another layer.
    OtherLayer,
}

impl ViolationKind {
    pub fn name(self) -> &'static str {
        match self {
            ViolationKind::UnknownKey => "unknown-key",
            ViolationKind::MissingField => "missing-field",
            ViolationKind::WrongType => "wrong-type",
            ViolationKind::DanglingRef => "dangling-ref",
            ViolationKind::OtherLayer => "other-layer",
        }
    }
}

/// One finding, with the key it is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub kind: ViolationKind,
    pub key: String,
    pub detail: String,
}

/// The id other entities refer to an object by: its last variable.
fn id_of(vars: &[(String, String)]) -> Option<String> {
    vars.last().map(|(_, v)| v.clone())
}

/// Checks every key under `prefix` against `schema`; returns the violations sorted by
/// kind, then key.
pub async fn check<S: Store>(store: &S, schema: &Schema, prefix: &[u8]) -> Result<Vec<Violation>> {
    let mut found = Vec::new();
    // Object path → (entity index, fields present).
    let mut objects: BTreeMap<String, (usize, BTreeSet<String>)> = BTreeMap::new();
    // Entity name → ids present.
    let mut ids: HashMap<&str, BTreeSet<String>> = HashMap::new();
    // (key, target entity, id referred to).
    let mut refs: Vec<(String, String, String)> = Vec::new();
    let fields_by_name: HashMap<&str, Vec<&Entity>> =
        schema.entities.iter().fold(HashMap::new(), |mut m, e| {
            for f in e.fields.keys() {
                m.entry(f.as_str()).or_insert_with(Vec::new).push(e);
            }
            m
        });
    scan(store, KeySpan::prefix(prefix.to_vec()), 0, |page| {
        for kv in page {
            // Strata's own state (mirror checkpoints, chunked-write markers).
            if kv
                .key
                .starts_with(strata_core::key::RESERVED_PREFIX.as_bytes())
            {
                continue;
            }
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            let value = String::from_utf8_lossy(&kv.value).into_owned();
            let segments: Vec<&str> = key.strip_prefix('/').unwrap_or(&key).split('/').collect();
            // A single value at the key itself?
            let single = schema.entities.iter().enumerate().find_map(|(i, e)| {
                e.value
                    .as_ref()
                    .and_then(|f| e.match_path(&segments).map(|vars| (i, f, vars)))
            });
            if let Some((i, field, vars)) = single {
                let entity = &schema.entities[i];
                if let Some(id) = id_of(&vars) {
                    ids.entry(entity.name.as_str()).or_default().insert(id);
                }
                check_value(&key, &value, field, &mut found, &mut refs);
                continue;
            }
            // A field of an object?
            let (path, field) = segments.split_at(segments.len().saturating_sub(1));
            let object = schema
                .entities
                .iter()
                .enumerate()
                .filter(|(_, e)| e.value.is_none())
                .find_map(|(i, e)| e.match_path(path).map(|vars| (i, vars)));
            let Some((i, vars)) = object else {
                found.push(Violation {
                    kind: ViolationKind::UnknownKey,
                    key,
                    detail: "matches no pattern of the schema".into(),
                });
                continue;
            };
            let entity = &schema.entities[i];
            let field = decode_segment(field.first().copied().unwrap_or_default());
            let object_path = format!("/{}", path.join("/"));
            if let Some(id) = id_of(&vars) {
                ids.entry(entity.name.as_str()).or_default().insert(id);
            }
            match entity.fields.get(&field) {
                Some(spec) => {
                    objects
                        .entry(object_path)
                        .or_insert((i, BTreeSet::new()))
                        .1
                        .insert(field.clone());
                    check_value(&key, &value, spec, &mut found, &mut refs);
                }
                None => {
                    objects.entry(object_path).or_insert((i, BTreeSet::new()));
                    let elsewhere = fields_by_name.get(field.as_str()).and_then(|es| {
                        es.iter()
                            .find(|o| o.namespace.is_some() && o.namespace != entity.namespace)
                    });
                    found.push(match elsewhere {
                        Some(other) => Violation {
                            kind: ViolationKind::OtherLayer,
                            key,
                            detail: format!(
                                "field {field} belongs to the {} layer (entity {}), not to {}",
                                other.namespace.as_deref().unwrap_or("?"),
                                other.name,
                                entity.name
                            ),
                        },
                        None => Violation {
                            kind: ViolationKind::UnknownKey,
                            key,
                            detail: format!("field {field} is not part of entity {}", entity.name),
                        },
                    });
                }
            }
        }
        Ok(())
    })
    .await?;
    for (path, (i, present)) in &objects {
        let entity = &schema.entities[*i];
        for (name, spec) in &entity.fields {
            if spec.required && !present.contains(name) {
                found.push(Violation {
                    kind: ViolationKind::MissingField,
                    key: format!("{path}/{name}"),
                    detail: format!("required field {name} of {} {path} is missing", entity.name),
                });
            }
        }
    }
    for (key, target, id) in refs {
        if !ids.get(target.as_str()).is_some_and(|s| s.contains(&id)) {
            found.push(Violation {
                kind: ViolationKind::DanglingRef,
                key,
                detail: format!("refers to {target} {id:?}, which does not exist"),
            });
        }
    }
    found.sort();
    Ok(found)
}

fn check_value(
    key: &str,
    value: &str,
    field: &Field,
    found: &mut Vec<Violation>,
    refs: &mut Vec<(String, String, String)>,
) {
    if let FieldType::Ref(target) = &field.ty {
        refs.push((key.to_owned(), target.clone(), value.to_owned()));
    } else if let Some(problem) = field.violation(value) {
        found.push(Violation {
            kind: ViolationKind::WrongType,
            key: key.to_owned(),
            detail: problem,
        });
    }
}
