//! A migration step as written in a file: `[[steps]]` with `op = "…"`.
//!
//! Owns the file form only (what serde reads and the checksum's canonical form
//! writes); [`crate::step`] turns it into a checked step.

use serde::{Deserialize, Serialize};

/// A step as written in the file (`[[steps]]` with `op = "…"`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepSpec {
    /// Renames or moves one field; `to` is a field path or an absolute key template.
    RenameField {
        object: String,
        from: String,
        to: String,
    },
    /// Re-keys every object of `from` to `to` (the same variables), fields and all.
    Move { from: String, to: String },
    /// Writes `value` into `field` of every object that lacks it.
    SetDefault {
        object: String,
        field: String,
        value: String,
    },
    /// Deletes one field of every object.
    DeleteField { object: String, field: String },
    /// Deletes every object of the pattern, subtree and all.
    Delete { object: String },
    /// Moves `fields` into the object `to` (a template): `{to}/{field}`.
    Split {
        object: String,
        fields: Vec<String>,
        to: String,
    },
    /// Turns a field holding a JSON object into one key per member.
    ExplodeJson { object: String, field: String },
    /// Turns the keys below a field back into one JSON object at the field.
    ImplodeJson { object: String, field: String },
    /// Rewrites each object with a jq filter (jaq): `.` is `{field: value}`, `$vars`
    /// the pattern's variables; the output is the new object, `null` deletes it.
    Jq { object: String, filter: String },
}
