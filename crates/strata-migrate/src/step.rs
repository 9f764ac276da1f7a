//! What one step does to one object: the pure part of a migration.
//!
//! Owns turning a step as written ([`StepSpec`]) into a checked [`Step`] and computing, for one
//! object read from the store, the keys to write and delete ([`Edits`]). It does no
//! I/O: the runner reads objects, applies these edits under compares, and records
//! progress.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;

use serde_json::{Map, Value};
use strata_core::key::{decode_segment, encode_segment};
use strata_jq::Jq;

use crate::pattern::{field_path as field, Pattern, Vars};
use crate::spec::StepSpec;

/// One object as read: its key, the pattern's variables and its fields (`""` is the
/// object key itself), each with the value and mod revision read.
#[derive(Clone, Debug, Default)]
pub struct Object {
    pub key: String,
    pub vars: Vars,
    pub fields: BTreeMap<String, (Vec<u8>, i64)>,
}

impl Object {
    /// The stored key of a field of this object.
    pub fn key_of(&self, field: &str) -> String {
        join(&self.key, field)
    }

    /// The field a key inside this object stands for (`""` for the object's own key).
    pub fn field_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.key.as_str())
            .filter(|r| r.is_empty() || r.starts_with('/'))
            .map(|r| r.strip_prefix('/').unwrap_or(r))
    }

    /// The mod revision this object was read with at `key` (0: absent, or outside it).
    pub fn revision_of(&self, key: &str) -> i64 {
        self.field_of(key)
            .and_then(|f| self.fields.get(f))
            .map_or(0, |(_, rev)| *rev)
    }

    /// The fields equal to `field` or below it, with the part below (`""` for itself).
    fn under<'a>(&'a self, field: &'a str) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.fields.iter().filter_map(move |(f, (v, _))| {
            // `""` is the object itself: every field is below it.
            let rest = if f == field {
                ""
            } else if field.is_empty() {
                f.as_str()
            } else {
                f.strip_prefix(field)?.strip_prefix('/')?
            };
            Some((rest, v.as_slice()))
        })
    }
}

fn join(base: &str, rest: &str) -> String {
    if rest.is_empty() {
        base.to_owned()
    } else if base.is_empty() {
        rest.to_owned()
    } else {
        format!("{base}/{rest}")
    }
}

/// Desired key states: `Some(value)` to put, `None` to delete.
pub type Edits = BTreeMap<String, Option<Vec<u8>>>;

/// Where a moved field goes.
#[derive(Clone, Debug)]
pub enum Target {
    /// A field of the same object.
    Field(String),
    /// An absolute key, filled in from the source's variables.
    Key(Pattern),
}

/// A checked step.
#[derive(Clone, Debug)]
pub enum Step {
    RenameField {
        object: Pattern,
        from: String,
        to: Target,
    },
    Move {
        from: Pattern,
        to: Pattern,
    },
    SetDefault {
        object: Pattern,
        field: String,
        value: Vec<u8>,
    },
    DeleteField {
        object: Pattern,
        field: String,
    },
    Delete {
        object: Pattern,
    },
    Split {
        object: Pattern,
        fields: Vec<String>,
        to: Pattern,
    },
    ExplodeJson {
        object: Pattern,
        field: String,
    },
    ImplodeJson {
        object: Pattern,
        field: String,
    },
    Jq {
        object: Pattern,
        filter: Rc<Jq>,
        vars: Vec<String>,
    },
}

impl Step {
    /// Checks a step as written: patterns, field paths, templates bound by the source's
    /// variables, the jq filter compiled.
    pub fn from_spec(spec: &StepSpec) -> Result<Step, String> {
        let target = |to: &str, object: &Pattern| -> Result<Target, String> {
            if to.starts_with('/') {
                let t = Pattern::parse(to)?;
                t.check_bound_by(object)?;
                Ok(Target::Key(t))
            } else {
                Ok(Target::Field(field(to)?))
            }
        };
        Ok(match spec {
            StepSpec::RenameField { object, from, to } => {
                let object = Pattern::parse(object)?;
                let to = target(to, &object)?;
                let from = field(from)?;
                if matches!(&to, Target::Field(t) if *t == from) {
                    return Err(format!(
                        "rename_field renames {from:?} onto itself; name another field in `to`"
                    ));
                }
                Step::RenameField { from, to, object }
            }
            StepSpec::Move { from, to } => {
                let (from, to) = (Pattern::parse(from)?, Pattern::parse(to)?);
                to.check_bound_by(&from)?;
                if to.scan_prefix().starts_with(&from.scan_prefix()) {
                    return Err(format!(
                        "moving {:?} to {:?} would move objects into the range still being read; \
                         move them out in one step and back in a second",
                        from.as_str(),
                        to.as_str()
                    ));
                }
                Step::Move { from, to }
            }
            StepSpec::SetDefault {
                object,
                field: f,
                value,
            } => Step::SetDefault {
                object: Pattern::parse(object)?,
                field: field(f)?,
                value: value.as_bytes().to_vec(),
            },
            StepSpec::DeleteField { object, field: f } => Step::DeleteField {
                object: Pattern::parse(object)?,
                field: field(f)?,
            },
            StepSpec::Delete { object } => Step::Delete {
                object: Pattern::parse(object)?,
            },
            StepSpec::Split { object, fields, to } => {
                let object = Pattern::parse(object)?;
                let to = Pattern::parse(to)?;
                to.check_bound_by(&object)?;
                if to.as_str() == object.as_str() {
                    return Err(format!(
                        "split moves fields of {:?} onto itself; name another pattern in `to`",
                        object.as_str()
                    ));
                }
                if fields.is_empty() {
                    return Err("split needs at least one field in `fields`".into());
                }
                let fields = fields.iter().map(|f| field(f)).collect::<Result<_, _>>()?;
                Step::Split { object, fields, to }
            }
            StepSpec::ExplodeJson { object, field: f } => Step::ExplodeJson {
                object: Pattern::parse(object)?,
                field: field(f)?,
            },
            StepSpec::ImplodeJson { object, field: f } => Step::ImplodeJson {
                object: Pattern::parse(object)?,
                field: field(f)?,
            },
            StepSpec::Jq { object, filter } => {
                let object = Pattern::parse(object)?;
                let vars = vec!["$vars".to_owned()];
                let jq = Jq::compile(filter, &vars)?;
                Step::Jq {
                    object,
                    filter: Rc::new(jq),
                    vars,
                }
            }
        })
    }

    /// The pattern whose objects the step visits.
    pub fn object(&self) -> &Pattern {
        match self {
            Step::Move { from, .. } => from,
            Step::RenameField { object, .. }
            | Step::SetDefault { object, .. }
            | Step::DeleteField { object, .. }
            | Step::Delete { object }
            | Step::Split { object, .. }
            | Step::ExplodeJson { object, .. }
            | Step::ImplodeJson { object, .. }
            | Step::Jq { object, .. } => object,
        }
    }

    /// `rename_field /sigilgate/users/{id}`: how reports name the step.
    pub fn label(&self) -> String {
        let op = match self {
            Step::RenameField { .. } => "rename_field",
            Step::Move { .. } => "move",
            Step::SetDefault { .. } => "set_default",
            Step::DeleteField { .. } => "delete_field",
            Step::Delete { .. } => "delete",
            Step::Split { .. } => "split",
            Step::ExplodeJson { .. } => "explode_json",
            Step::ImplodeJson { .. } => "implode_json",
            Step::Jq { .. } => "jq",
        };
        format!("{op} {}", self.object().as_str())
    }

    /// The patterns of the keys the step reads and writes: its objects, and where it
    /// moves or splits them to.
    pub fn patterns(&self) -> Vec<&Pattern> {
        let mut out = vec![self.object()];
        match self {
            Step::Move { to, .. } | Step::Split { to, .. } => out.push(to),
            Step::RenameField {
                to: Target::Key(to),
                ..
            } => out.push(to),
            _ => {}
        }
        out
    }

    /// Every key prefix the step may read or write (for `plan`'s copy of the data).
    pub fn prefixes(&self) -> Vec<String> {
        self.patterns().iter().map(|p| p.scan_prefix()).collect()
    }

    /// The edits this step makes to `obj`; empty when there is nothing to do. A jq
    /// step's evaluation is bounded (see `strata_jq`) and gives up when `stop`
    /// is raised.
    pub fn apply(&self, obj: &Object, stop: &AtomicBool) -> Result<Edits, String> {
        let mut edits = Edits::new();
        let relocate = |edits: &mut Edits, from_field: &str, to_base: &str| {
            for (rest, value) in obj.under(from_field) {
                edits.insert(join(to_base, rest), Some(value.to_vec()));
            }
            for (rest, _) in obj.under(from_field) {
                let old = obj.key_of(&join(from_field, rest));
                edits.entry(old).or_insert(None);
            }
        };
        match self {
            Step::RenameField { from, to, .. } => {
                let base = match to {
                    Target::Field(f) => obj.key_of(f),
                    Target::Key(t) => t.render(&obj.vars),
                };
                relocate(&mut edits, from, &base);
            }
            Step::Move { to, .. } => relocate(&mut edits, "", &to.render(&obj.vars)),
            Step::Split { fields, to, .. } => {
                let base = to.render(&obj.vars);
                for f in fields {
                    relocate(&mut edits, f, &join(&base, f));
                }
            }
            Step::SetDefault { field, value, .. } => {
                if obj.under(field).next().is_none() {
                    edits.insert(obj.key_of(field), Some(value.clone()));
                }
            }
            Step::DeleteField { field, .. } => {
                for (rest, _) in obj.under(field) {
                    edits.insert(obj.key_of(&join(field, rest)), None);
                }
            }
            Step::Delete { .. } => {
                for f in obj.fields.keys() {
                    edits.insert(obj.key_of(f), None);
                }
            }
            Step::ExplodeJson { field, .. } => explode(obj, field, &mut edits)?,
            Step::ImplodeJson { field, .. } => implode(obj, field, &mut edits)?,
            Step::Jq { filter, .. } => run_jq(obj, filter, stop, &mut edits)?,
        }
        // A relocation onto itself (or a put of the same value) is no edit.
        edits.retain(|key, want| {
            let have = obj
                .field_of(key)
                .and_then(|f| obj.fields.get(f))
                .map(|(v, _)| v);
            have != want.as_ref()
        });
        Ok(edits)
    }

    /// Whether this step must change `obj` (its op cannot leave such an object as it
    /// is): a move or delete of any object, a rename, split or delete of a field the
    /// object holds, an explode of a field present, an implode of members present.
    /// The runner refuses a step that leaves such an object unchanged: that is a bug
    /// in the step's edits, never a success to record.
    pub fn must_change(&self, obj: &Object) -> bool {
        let holds = |field: &str| obj.under(field).next().is_some();
        match self {
            Step::Move { .. } | Step::Delete { .. } => !obj.fields.is_empty(),
            Step::RenameField { from, .. } => holds(from),
            Step::Split { fields, .. } => fields.iter().any(|f| holds(f)),
            Step::DeleteField { field, .. } => holds(field),
            Step::ExplodeJson { field, .. } => obj.fields.contains_key(field.as_str()),
            Step::ImplodeJson { field, .. } => obj.under(field).any(|(rest, _)| !rest.is_empty()),
            Step::SetDefault { .. } | Step::Jq { .. } => false,
        }
    }

    /// Whether the step's edits of an object may depend on any of its fields (a jq
    /// filter sees them all). Every other step reads only keys it also writes, so
    /// comparing the written keys is enough to lose no concurrent update.
    pub fn reads_whole_object(&self) -> bool {
        matches!(self, Step::Jq { .. })
    }
}

/// A stored value as a JSON member: JSON objects, arrays, numbers, booleans and null
/// are taken as JSON; anything else is a string.
fn member_value(value: &[u8]) -> Value {
    let text = String::from_utf8_lossy(value);
    match serde_json::from_str::<Value>(&text) {
        Ok(v) if !v.is_string() => v,
        _ => Value::String(text.into_owned()),
    }
}

/// A JSON member as a stored value: strings as their text, the rest as compact JSON.
fn stored_value(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) => s.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

fn explode(obj: &Object, field: &str, edits: &mut Edits) -> Result<(), String> {
    let Some((value, _)) = obj.fields.get(field) else {
        return Ok(());
    };
    let key = obj.key_of(field);
    let members: Map<String, Value> = serde_json::from_slice(value).map_err(|_| {
        format!("key {key} does not hold a JSON object; fix or delete it, then run again")
    })?;
    edits.insert(key.clone(), None);
    for (name, member) in &members {
        edits.insert(
            format!("{key}/{}", encode_segment(name)),
            Some(stored_value(member)),
        );
    }
    Ok(())
}

fn implode(obj: &Object, field: &str, edits: &mut Edits) -> Result<(), String> {
    let mut members = Map::new();
    for (rest, value) in obj.under(field) {
        if rest.is_empty() {
            continue;
        }
        if rest.contains('/') {
            return Err(format!(
                "key {} is two levels below {}; implode_json joins one level, implode the deeper one first",
                obj.key_of(&join(field, rest)),
                obj.key_of(field)
            ));
        }
        members.insert(decode_segment(rest), member_value(value));
        edits.insert(obj.key_of(&join(field, rest)), None);
    }
    if members.is_empty() {
        return Ok(());
    }
    edits.insert(
        obj.key_of(field),
        Some(Value::Object(members).to_string().into_bytes()),
    );
    Ok(())
}

fn run_jq(obj: &Object, filter: &Jq, stop: &AtomicBool, edits: &mut Edits) -> Result<(), String> {
    let mut input = Map::new();
    for (f, (value, _)) in &obj.fields {
        let text = String::from_utf8(value.clone()).map_err(|_| {
            format!(
                "key {} is not UTF-8 text; a jq step reads text values only",
                obj.key_of(f)
            )
        })?;
        input.insert(f.clone(), Value::String(text));
    }
    let vars: Map<String, Value> = obj
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(decode_segment(v))))
        .collect();
    let mut out = filter
        .run_with(&Value::Object(input), vec![Value::Object(vars)], Some(stop))
        .map_err(|e| format!("on {}: {e}", obj.key))?;
    if out.len() != 1 {
        return Err(format!(
            "the jq filter gave {} outputs for {}; it must give exactly one object (or null to delete it)",
            out.len(),
            obj.key
        ));
    }
    let fields = match out.pop() {
        Some(Value::Object(fields)) => fields,
        Some(Value::Null) => Map::new(),
        Some(other) => {
            // The kind only: the value itself may be a secret field's.
            let kind = match other {
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                _ => "an array",
            };
            return Err(format!(
                "the jq filter turned {} into {kind}; it must give an object (or null to delete it)",
                obj.key
            ));
        }
        None => unreachable!("one output checked above"),
    };
    for f in obj.fields.keys() {
        if !fields.contains_key(f) {
            edits.insert(obj.key_of(f), None);
        }
    }
    for (f, value) in &fields {
        if !f.is_empty() {
            field(f).map_err(|e| format!("the jq filter's output for {}: {e}", obj.key))?;
        }
        edits.insert(obj.key_of(f), Some(stored_value(value)));
    }
    Ok(())
}

#[cfg(test)]
#[path = "step_tests.rs"]
mod tests;
