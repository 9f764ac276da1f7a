//! The declarative mapping (TOML, expressions in jq) that turns a JSON file tree into
//! key-value objects, and the file-tree source it reads.
//!
//! ```toml
//! [collections.users]            # one file per record, captures from the path
//! path = "users/{id}.json"
//! key = "id"                     # primary key: path and body must agree
//!
//! [collections.devices]
//! path = "devices/{uuid}.json"
//! key = "uuid"
//! refs = { user_id = "users" }   # must name an existing user
//!
//! [[emit]]                       # one object per record, at a key pattern
//! from = "users"
//! at = "/sigilgate/users/{id}"
//! fields = '{username, plan: (.plan // "free")}'   # jq: the object's fields
//!
//! [[emit]]
//! from = "devices"
//! at = "/sigilgate/routes/{uuid}"
//! value = ".core_ip"             # jq: a single-value key
//! ```
//!
//! Each record is its file's JSON object with the path captures added. Every
//! collection with a `key` is also a jq variable (`$users`): an object from key to
//! record, for look-ups across collections. `where` (jq) filters records. Field values
//! are written as text (numbers in decimal, booleans as `true`/`false`, arrays and
//! objects as compact JSON); nulls are dropped. Path variables are escaped with the key
//! codec, so a value can never add a level. Every file must belong to a collection:
//! a folder that is dropped on purpose is declared and never emitted.
//!
//! Owns reading the tree, checking it, and running the mapping; writing is the loader's.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use strata_jq::{Engine, Jq, Limits};

mod emit;
mod tree;
use tree::{parse_template, Part};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    collections: BTreeMap<String, CollectionSpec>,
    #[serde(default)]
    emit: Vec<EmitSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectionSpec {
    path: String,
    key: Option<String>,
    #[serde(default)]
    refs: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitSpec {
    from: String,
    at: String,
    #[serde(rename = "where")]
    filter: Option<String>,
    fields: Option<String>,
    value: Option<String>,
}

#[derive(Debug)]
struct Collection {
    name: String,
    segments: Vec<Vec<Part>>,
    key: Option<String>,
    refs: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Emit {
    index: usize,
    /// The `at` pattern as written.
    pattern: String,
    from: String,
    at: Vec<Vec<Part>>,
    filter: Option<Jq>,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Fields(Jq),
    Value(Jq),
}

/// A parsed and compiled mapping.
#[derive(Debug)]
pub struct Mapping {
    collections: Vec<Collection>,
    emits: Vec<Emit>,
    /// The jq variables: `$name` of each collection with a key.
    vars: Vec<String>,
    /// Where every jq expression of the mapping runs, bounded (see `strata_jq`).
    engine: std::sync::Arc<Engine>,
    /// One run at a time: a run sets the engine's globals for its records.
    running: std::sync::Mutex<()>,
}

/// One defect in the input, with the file it is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defect {
    pub file: String,
    pub problem: String,
}

impl std::fmt::Display for Defect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.problem)
    }
}

/// Why a mapping run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    #[error("{file}: {problem}")]
    Mapping { file: String, problem: String },
    #[error("the input has {} defect(s); nothing was written:\n{}", .0.len(), .0.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n"))]
    Input(Vec<Defect>),
}

/// One key produced by a mapping, with the object it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedKey {
    pub key: String,
    pub value: String,
    /// The object's path: the key itself for a single-value emit.
    pub object: String,
    /// The key pattern of the emit that made it (`/sigilgate/users/{id}`): the
    /// entity, for summaries.
    pub entity: String,
}

/// A key being produced, and who produced it (for conflict messages).
#[derive(Debug)]
struct Slot {
    value: String,
    by: String,
    object: String,
    entity: String,
}

/// A record: one source file, as a JSON object with its path captures.
#[derive(Debug, Clone)]
struct Record {
    file: String,
    value: Value,
}

/// Text form of a scalar for keys and comparisons (strings as is, numbers decimal).
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What a field value is written as; `None` for null (dropped).
fn stored_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Array(_) | Value::Object(_) => Some(value.to_string()),
        other => text_of(other),
    }
}

impl Mapping {
    /// Parses and compiles a mapping file.
    pub fn load(path: &Path) -> Result<Mapping, MappingError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| MappingError::Mapping {
            file: file.clone(),
            problem: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text, &file)
    }

    pub fn parse(text: &str, file: &str) -> Result<Mapping, MappingError> {
        let bad = |problem: String| MappingError::Mapping {
            file: file.to_owned(),
            problem,
        };
        let spec: MappingFile =
            toml::from_str(text).map_err(|e| bad(format!("not a mapping: {e}")))?;
        let mut collections = Vec::new();
        for (name, c) in &spec.collections {
            let segments = c
                .path
                .split('/')
                .map(parse_template)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("collection {name}: path {e}")))?;
            for target in c.refs.values() {
                if spec.collections.get(target).is_none_or(|t| t.key.is_none()) {
                    return Err(bad(format!("collection {name}: refs name {target:?}, which is not a collection with a key")));
                }
            }
            collections.push(Collection {
                name: name.clone(),
                segments,
                key: c.key.clone(),
                refs: c.refs.clone(),
            });
        }
        let engine = Engine::new(Limits::default()).map_err(|e| bad(e.to_string()))?;
        let vars: Vec<String> = collections
            .iter()
            .filter(|c| c.key.is_some())
            .map(|c| format!("${}", c.name))
            .collect();
        let mut emits = Vec::new();
        for (index, e) in spec.emit.iter().enumerate() {
            let what = format!("emit #{} (from {})", index + 1, e.from);
            if !spec.collections.contains_key(&e.from) {
                return Err(bad(format!("{what}: there is no collection {:?}", e.from)));
            }
            if !e.at.starts_with('/') {
                return Err(bad(format!("{what}: `at` must start with /")));
            }
            let at = e.at[1..]
                .split('/')
                .map(parse_template)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| bad(format!("{what}: at {err}")))?;
            let compile = |code: &str| {
                engine
                    .compile(code, &vars)
                    .map_err(|err| bad(format!("{what}: {err}")))
            };
            let body = match (&e.fields, &e.value) {
                (Some(f), None) => Body::Fields(compile(f)?),
                (None, Some(v)) => Body::Value(compile(v)?),
                _ => {
                    return Err(bad(format!(
                        "{what}: give exactly one of `fields` or `value`"
                    )))
                }
            };
            let filter = e.filter.as_deref().map(compile).transpose()?;
            emits.push(Emit {
                index,
                pattern: e.at.clone(),
                from: e.from.clone(),
                at,
                filter,
                body,
            });
        }
        Ok(Mapping {
            collections,
            emits,
            vars,
            engine,
            running: std::sync::Mutex::new(()),
        })
    }

    /// Reads the tree under `root` and runs the mapping. Every defect of the input is
    /// found in one pass and reported together; the result is sorted `key → value`.
    pub fn run(&self, root: &Path) -> Result<Vec<(String, String)>, MappingError> {
        Ok(self
            .run_objects(root)?
            .into_iter()
            .map(|m| (m.key, m.value))
            .collect())
    }

    /// [`Mapping::run`], with the object each key belongs to: the path of an emitted
    /// object for its fields, the key itself for a single-value emit. Several emits
    /// may add fields to one object (a node's role and domain).
    pub fn run_objects(&self, root: &Path) -> Result<Vec<MappedKey>, MappingError> {
        let mut defects = Vec::new();
        let records = self.read_tree(root, &mut defects);
        // Keys per collection, for references and look-ups.
        let mut index: HashMap<&str, BTreeMap<String, &Record>> = HashMap::new();
        for c in &self.collections {
            let Some(key) = &c.key else { continue };
            let by_key = index.entry(c.name.as_str()).or_default();
            for r in records.get(&c.name).into_iter().flatten() {
                match r.value.get(key).and_then(text_of) {
                    Some(k) => {
                        if by_key.insert(k.clone(), r).is_some() {
                            defects.push(Defect {
                                file: r.file.clone(),
                                problem: format!("{} {k:?} appears in two files", c.name),
                            });
                        }
                    }
                    None => defects.push(Defect {
                        file: r.file.clone(),
                        problem: format!("has no primary key field {key:?}"),
                    }),
                }
            }
        }
        for c in &self.collections {
            for r in records.get(&c.name).into_iter().flatten() {
                for (field, target) in &c.refs {
                    let Some(value) = r.value.get(field).filter(|v| !v.is_null()) else {
                        continue;
                    };
                    let found = text_of(value).is_some_and(|k| {
                        index
                            .get(target.as_str())
                            .is_some_and(|m| m.contains_key(&k))
                    });
                    if !found {
                        defects.push(Defect {
                            file: r.file.clone(),
                            problem: format!("{field} {value} refers to a {target} record that does not exist (dangling reference)"),
                        });
                    }
                }
            }
        }
        if !defects.is_empty() {
            defects.sort_by(|a, b| a.file.cmp(&b.file));
            return Err(MappingError::Input(defects));
        }
        let globals = self
            .collections
            .iter()
            .filter(|c| c.key.is_some())
            .map(|c| {
                let object: serde_json::Map<String, Value> = index
                    .get(c.name.as_str())
                    .map(|m| {
                        m.iter()
                            .map(|(k, r)| (k.clone(), r.value.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                Value::Object(object)
            })
            .collect::<Vec<_>>();
        debug_assert_eq!(globals.len(), self.vars.len());
        let _one_run = self.running.lock().unwrap_or_else(|e| e.into_inner());
        self.engine
            .set_globals(globals)
            .map_err(|e| MappingError::Mapping {
                file: "mapping".into(),
                problem: e,
            })?;
        let mut out: BTreeMap<String, Slot> = BTreeMap::new();
        for emit in &self.emits {
            let from: &[Record] = records.get(&emit.from).map_or(&[], |r| r.as_slice());
            if let Err(stopped) = self.emit_all(emit, from, &mut out, &mut defects) {
                // A jq expression went past its limits: nothing more is evaluated.
                defects.push(stopped);
                break;
            }
        }
        if !defects.is_empty() {
            return Err(MappingError::Input(defects));
        }
        Ok(out
            .into_iter()
            .map(|(key, slot)| MappedKey {
                key,
                value: slot.value,
                object: slot.object,
                entity: slot.entity,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_errors_name_the_emit() {
        let err = Mapping::parse("[collections.a]\npath = \"a/{id}.json\"\n[[emit]]\nfrom = \"b\"\nat = \"/x\"\nvalue = \".\"", "m.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("m.toml: emit #1 (from b): there is no collection \"b\""),
            "{err}"
        );
        let err = Mapping::parse(
            "[collections.a]\npath = \"a/{id}.json\"\n[[emit]]\nfrom = \"a\"\nat = \"/x\"",
            "m.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("exactly one of `fields` or `value`"), "{err}");
        let err = Mapping::parse("[collections.a]\npath = 1", "m.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("m.toml: not a mapping"), "{err}");
    }
}
