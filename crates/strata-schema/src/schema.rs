//! The schema file (TOML) and the types it declares.
//!
//! ```toml
//! [namespaces.sigilgate]
//! prefix = "/sigilgate/"
//! description = "operational layer: no contact data"
//!
//! [entities.user]
//! key = "/sigilgate/users/{id}"          # an object: one key per field below it
//! vars = { id = "int" }                  # int, uuid, ip, email, slug, string
//! [entities.user.fields]
//! username = { type = "string", required = true }
//! status = { type = "enum", values = ["active", "blocked", "pending"], required = true }
//! max_devices = { type = "int" }
//! plan = { type = "string", default = "free" }
//! token = { type = "string", secret = true }
//!
//! [entities.route]
//! key = "/sigilgate/routes/{device}"     # a single-value entity: the key itself
//! vars = { device = "uuid" }
//! value = { type = "ref", ref = "node" } # must name an existing node
//! backup = false                         # ephemeral data, skipped by backups
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;
use strata_core::key::decode_segment;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    #[error("{file}: {problem}")]
    Invalid { file: String, problem: String },
}

/// What a variable segment of a key pattern may hold.
#[derive(Clone, Debug)]
pub enum SegmentType {
    Int,
    Uuid,
    Ip,
    Email,
    Slug,
    String,
    /// `regex:PATTERN`: the whole (decoded) segment must match.
    Regex(regex::Regex),
}

impl PartialEq for SegmentType {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SegmentType::Regex(a), SegmentType::Regex(b)) => a.as_str() == b.as_str(),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

impl Eq for SegmentType {}

impl SegmentType {
    fn parse(name: &str) -> Option<Result<Self, String>> {
        if let Some(pattern) = name.strip_prefix("regex:") {
            return Some(
                regex::Regex::new(&format!("^(?:{pattern})$"))
                    .map(SegmentType::Regex)
                    .map_err(|e| format!("bad regex {pattern:?}: {e}")),
            );
        }
        Some(Ok(match name {
            "int" => SegmentType::Int,
            "uuid" => SegmentType::Uuid,
            "ip" => SegmentType::Ip,
            "email" => SegmentType::Email,
            "slug" => SegmentType::Slug,
            "string" => SegmentType::String,
            _ => return None,
        }))
    }

    /// Whether a (decoded) segment is of this type.
    pub fn accepts(&self, text: &str) -> bool {
        match self {
            SegmentType::Int => !text.is_empty() && text.parse::<i64>().is_ok(),
            SegmentType::Uuid => is_uuid(text),
            SegmentType::Ip => text.parse::<IpAddr>().is_ok(),
            SegmentType::Email => text
                .split_once('@')
                .is_some_and(|(u, d)| !u.is_empty() && d.contains('.')),
            SegmentType::Slug => {
                !text.is_empty()
                    && text
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            }
            SegmentType::String => !text.is_empty(),
            SegmentType::Regex(re) => re.is_match(text),
        }
    }
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// What a field's value may hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldType {
    String,
    Int,
    Bool,
    Enum(Vec<String>),
    /// RFC 3339, e.g. `2024-06-21T08:00:00Z`.
    Timestamp,
    /// A JSON document.
    Json,
    /// The id (the only variable) of an existing object of the named entity.
    Ref(String),
}

impl FieldType {
    /// Why `value` is not of this type, or `None` when it is.
    pub fn violation(&self, value: &str) -> Option<String> {
        let ok = match self {
            FieldType::String | FieldType::Ref(_) => true,
            FieldType::Int => value.parse::<i64>().is_ok(),
            FieldType::Bool => value == "true" || value == "false",
            FieldType::Enum(values) => values.iter().any(|v| v == value),
            FieldType::Timestamp => is_timestamp(value),
            FieldType::Json => serde_json::from_str::<serde_json::Value>(value).is_ok(),
        };
        // An excerpt of the value: an error never quotes a whole document.
        let shown = if value.chars().count() <= 60 {
            format!("{value:?}")
        } else {
            format!(
                "{:?}… ({} bytes)",
                value.chars().take(40).collect::<String>(),
                value.len()
            )
        };
        (!ok).then(|| self.wrong(&shown))
    }

    /// `WHAT is not …`: the message of a violation, with the value as shown.
    fn wrong(&self, shown: &str) -> String {
        match self {
            FieldType::Enum(values) => format!("{shown} is not one of {values:?}"),
            other => format!("{shown} is not {}", other.describe()),
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            FieldType::String => "a string",
            FieldType::Int => "an integer",
            FieldType::Bool => "true or false",
            FieldType::Enum(_) => "an allowed value",
            FieldType::Timestamp => "an RFC 3339 timestamp",
            FieldType::Json => "a JSON document",
            FieldType::Ref(_) => "a reference",
        }
    }
}

fn is_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (b[10] == b'T' || b[10] == b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && {
            let rest = &text[19..];
            let rest = rest
                .strip_prefix('.')
                .map_or(rest, |r| r.trim_start_matches(|c: char| c.is_ascii_digit()));
            rest == "Z"
                || (rest.len() == 6
                    && (rest.starts_with('+') || rest.starts_with('-'))
                    && rest.as_bytes()[3] == b':')
        }
}

/// One field of an object entity, or the value of a single-value entity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub ty: FieldType,
    pub required: bool,
    pub default: Option<String>,
    pub secret: bool,
    /// For a JSON value: the paths of the members that are secret
    /// (`admin_credentials.password`), when not the whole value is.
    pub secret_paths: Vec<String>,
    pub description: Option<String>,
}

impl Field {
    /// Why `value` does not fit this field, or `None`; a secret field's value (or a
    /// JSON value with secret members) is never quoted.
    pub fn violation(&self, value: &str) -> Option<String> {
        let problem = self.ty.violation(value)?;
        if self.secret || !self.secret_paths.is_empty() {
            return Some(self.ty.wrong("the value (secret, not shown)"));
        }
        Some(problem)
    }
}

/// One part of a key pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Lit(String),
    Var(String, SegmentType),
}

/// An entity: objects (or single values) at a key pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entity {
    pub name: String,
    pub pattern: String,
    pub segments: Vec<Segment>,
    pub namespace: Option<String>,
    pub fields: BTreeMap<String, Field>,
    /// For a single-value entity: the type of the value at the key itself.
    pub value: Option<Field>,
    pub backup: bool,
    pub description: Option<String>,
}

impl Entity {
    /// The fixed part of the pattern, up to its first variable (`/app/users/` for
    /// `/app/users/{id}`): every key of the entity lies under it.
    pub fn literal_prefix(&self) -> String {
        let mut out = String::from("/");
        for s in &self.segments {
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

    /// Matches a key's path (without a field) against the pattern; returns the vars.
    pub fn match_path(&self, segments: &[&str]) -> Option<Vec<(String, String)>> {
        if segments.len() != self.segments.len() {
            return None;
        }
        let mut vars = Vec::new();
        for (seg, text) in self.segments.iter().zip(segments) {
            match seg {
                Segment::Lit(l) if l == text => {}
                Segment::Lit(_) => return None,
                Segment::Var(name, ty) => {
                    let decoded = decode_segment(text);
                    if !ty.accepts(&decoded) {
                        return None;
                    }
                    vars.push((name.clone(), decoded));
                }
            }
        }
        Some(vars)
    }
}

/// A parsed schema.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schema {
    /// Namespace name → prefix.
    pub namespaces: BTreeMap<String, String>,
    pub entities: Vec<Entity>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    #[serde(default)]
    namespaces: BTreeMap<String, NamespaceSpec>,
    #[serde(default)]
    entities: BTreeMap<String, EntitySpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceSpec {
    prefix: String,
    #[allow(dead_code)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntitySpec {
    key: String,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    fields: BTreeMap<String, FieldSpec>,
    value: Option<FieldSpec>,
    #[serde(default = "yes")]
    backup: bool,
    description: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldSpec {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    values: Vec<String>,
    #[serde(rename = "ref")]
    target: Option<String>,
    #[serde(default)]
    required: bool,
    default: Option<String>,
    #[serde(default)]
    secret: bool,
    #[serde(default)]
    secret_paths: Vec<String>,
    description: Option<String>,
}

impl Schema {
    pub fn load(path: &std::path::Path) -> Result<Schema, SchemaError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SchemaError::Invalid {
            file: file.clone(),
            problem: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text, &file)
    }

    /// Parses a schema; errors name the file, and the line or the entity and field.
    pub fn parse(text: &str, file: &str) -> Result<Schema, SchemaError> {
        let bad = |problem: String| SchemaError::Invalid {
            file: file.to_owned(),
            problem,
        };
        let spec: SchemaFile =
            toml::from_str(text).map_err(|e| bad(format!("not a schema: {e}")))?;
        let namespaces: BTreeMap<String, String> = spec
            .namespaces
            .into_iter()
            .map(|(name, ns)| (name, ns.prefix))
            .collect();
        let mut entities = Vec::new();
        for (name, e) in &spec.entities {
            let at = |what: String| bad(format!("entity {name}: {what}"));
            let Some(path) = e.key.strip_prefix('/') else {
                return Err(at(format!("key {:?} must start with /", e.key)));
            };
            let mut segments = Vec::new();
            for seg in path.split('/') {
                match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(var) => {
                        let ty = e.vars.get(var).map(String::as_str).unwrap_or("string");
                        let ty = SegmentType::parse(ty)
                            .ok_or_else(|| {
                                at(format!(
                                    "variable {var}: unknown type {ty:?}; use int, uuid, ip, email, slug, string or regex:PATTERN"
                                ))
                            })?
                            .map_err(|e| at(format!("variable {var}: {e}")))?;
                        segments.push(Segment::Var(var.to_owned(), ty));
                    }
                    None => segments.push(Segment::Lit(seg.to_owned())),
                }
            }
            let field = |fname: &str, f: &FieldSpec| -> Result<Field, SchemaError> {
                let ty = match f.ty.as_str() {
                    "string" => FieldType::String,
                    "int" => FieldType::Int,
                    "bool" => FieldType::Bool,
                    "timestamp" => FieldType::Timestamp,
                    "json" => FieldType::Json,
                    "enum" if !f.values.is_empty() => FieldType::Enum(f.values.clone()),
                    "enum" => return Err(at(format!("field {fname}: an enum needs `values`"))),
                    "ref" => match &f.target {
                        Some(t) if spec.entities.contains_key(t) => FieldType::Ref(t.clone()),
                        Some(t) => return Err(at(format!("field {fname}: ref names {t:?}, which is not an entity"))),
                        None => return Err(at(format!("field {fname}: a ref needs `ref = \"entity\"`"))),
                    },
                    other => {
                        return Err(at(format!(
                            "field {fname}: unknown type {other:?}; use string, int, bool, enum, timestamp, json or ref"
                        )))
                    }
                };
                if !f.secret_paths.is_empty() && ty != FieldType::Json {
                    return Err(at(format!(
                        "field {fname}: secret_paths apply to json fields only"
                    )));
                }
                Ok(Field {
                    ty,
                    required: f.required,
                    default: f.default.clone(),
                    secret: f.secret,
                    secret_paths: f.secret_paths.clone(),
                    description: f.description.clone(),
                })
            };
            let fields = e
                .fields
                .iter()
                .map(|(n, f)| field(n, f).map(|f| (n.clone(), f)))
                .collect::<Result<BTreeMap<_, _>, _>>()?;
            let value = e.value.as_ref().map(|f| field("value", f)).transpose()?;
            if value.is_some() && !fields.is_empty() {
                return Err(at(
                    "give `fields` (an object) or `value` (a single value), not both".into(),
                ));
            }
            let namespace = namespaces
                .iter()
                .find(|(_, p)| e.key.starts_with(p.as_str()))
                .map(|(n, _)| n.clone());
            entities.push(Entity {
                name: name.clone(),
                pattern: e.key.clone(),
                segments,
                namespace,
                fields,
                value,
                backup: e.backup,
                description: e.description.clone(),
            });
        }
        Ok(Schema {
            namespaces,
            entities,
        })
    }

    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name == name)
    }

    /// The entity `key` belongs to and the field it holds: a single value's own, or
    /// an object's field by its name (`None` when the entity has no such field);
    /// `None` when no entity matches the key.
    pub fn key_field<'s>(&'s self, key: &[u8]) -> Option<(&'s Entity, Option<&'s Field>)> {
        let key = std::str::from_utf8(key).ok()?;
        let segments: Vec<&str> = key.strip_prefix('/').unwrap_or(key).split('/').collect();
        if let Some(e) = self
            .entities
            .iter()
            .find(|e| e.value.is_some() && e.match_path(&segments).is_some())
        {
            return Some((e, e.value.as_ref()));
        }
        let (path, field) = segments.split_at(segments.len().saturating_sub(1));
        let e = self
            .entities
            .iter()
            .find(|e| e.value.is_none() && e.match_path(path).is_some())?;
        let name = decode_segment(field.first().copied().unwrap_or_default());
        Some((e, e.fields.get(&name)))
    }

    /// Whether (and where) one key's value is secret, whatever its entity's `backup`
    /// setting: what a page, a log or a search index must never show. Never
    /// [`KeyClass::NoBackup`].
    pub fn secrecy<'s>(&'s self, key: &[u8]) -> KeyClass<'s> {
        secrecy_of(self.key_field(key).and_then(|(_, f)| f))
    }

    /// What the schema says of one key's value: secret, secret in parts, left out of
    /// backups, or plain (also for keys no entity matches).
    pub fn classify<'s>(&'s self, key: &[u8]) -> KeyClass<'s> {
        match self.key_field(key) {
            Some((e, _)) if !e.backup => KeyClass::NoBackup,
            found => secrecy_of(found.and_then(|(_, f)| f)),
        }
    }
}

/// A field's secrecy: the whole value, some of its members, or none.
fn secrecy_of(field: Option<&Field>) -> KeyClass<'_> {
    match field {
        Some(f) if f.secret => KeyClass::Secret,
        Some(f) if !f.secret_paths.is_empty() => KeyClass::SecretPaths(&f.secret_paths),
        _ => KeyClass::Plain,
    }
}

/// What a schema says of one key (see [`Schema::classify`]).
#[derive(Debug, PartialEq, Eq)]
pub enum KeyClass<'a> {
    Plain,
    /// Its entity is marked `backup = false`.
    NoBackup,
    /// A `secret` field or value.
    Secret,
    /// A JSON value whose members at these paths are secret.
    SecretPaths(&'a [String]),
}

impl KeyClass<'_> {
    /// Whether any part of the value is secret.
    pub fn is_secret(&self) -> bool {
        matches!(self, KeyClass::Secret | KeyClass::SecretPaths(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a wrong value of a secret field was quoted in check and put errors.
    #[test]
    fn a_violation_never_quotes_a_secret_or_a_whole_document() {
        let field = Field {
            ty: FieldType::Int,
            required: false,
            default: None,
            secret: true,
            secret_paths: Vec::new(),
            description: None,
        };
        let problem = field.violation("hunter2").unwrap();
        assert!(!problem.contains("hunter2"), "{problem}");
        assert!(problem.contains("secret, not shown"), "{problem}");
        let long = "x".repeat(10_000);
        let problem = FieldType::Int.violation(&long).unwrap();
        assert!(
            problem.len() < 120 && problem.contains("10000 bytes"),
            "{problem}"
        );
    }

    #[test]
    fn segment_and_field_types() {
        assert!(SegmentType::Uuid.accepts("0c5cd43b-f53e-4c38-be5c-39319d892098"));
        assert!(!SegmentType::Uuid.accepts("0c5cd43b"));
        assert!(
            SegmentType::Ip.accepts("2a01:4f8:c0c:1::78") && SegmentType::Ip.accepts("10.20.0.20")
        );
        assert!(SegmentType::Email.accepts("erin+vpn@example.org"));
        assert!(SegmentType::Int.accepts("42") && !SegmentType::Int.accepts("4x"));
        let re = SegmentType::parse("regex:f[0-9]+").unwrap().unwrap();
        assert!(re.accepts("f12") && !re.accepts("xf12") && !re.accepts("f12x"));
        assert!(SegmentType::parse("regex:(").unwrap().is_err());
        assert_eq!(FieldType::Timestamp.violation("2024-06-21T08:00:00Z"), None);
        assert_eq!(
            FieldType::Timestamp.violation("2024-06-21T08:00:00.5+02:00"),
            None
        );
        assert!(FieldType::Timestamp.violation("yesterday").is_some());
        assert!(FieldType::Enum(vec!["a".into()])
            .violation("b")
            .unwrap()
            .contains("not one of"));
    }

    #[test]
    fn errors_name_the_file_entity_and_field() {
        let err = Schema::parse(
            "[entities.u]\nkey = \"/u/{id}\"\nvars = { id = \"number\" }",
            "s.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("s.toml: entity u: variable id: unknown type \"number\""),
            "{err}"
        );
        let err = Schema::parse("[entities.u]\nkey = \"/u/{id}\"\n[entities.u.fields]\nx = { type = \"ref\", ref = \"nope\" }", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("field x: ref names \"nope\""), "{err}");
        let err = Schema::parse("[entities.u]\nkey = 3", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.toml: not a schema") && err.contains("line 2"),
            "{err}"
        );
    }
}
