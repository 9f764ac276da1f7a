//! What the index holds for the keys of a store: one document per object of the
//! schema (its own field keys together: a hit in `/sigilgate/users/7/status` is user
//! 7), one per key of a value entity, and one per key the schema does not describe
//! (every key, without a schema). Secrets never enter a document: a `secret` field or
//! value is left out, a JSON value with `secret_paths` loses those members. Strata's
//! own keys (`/_strata/`) are not indexed. Owns the mapping from keys to documents;
//! storing them is `index.rs`.

use serde_json::{Map, Value};
use strata_schema::{KeyClass, Schema};

/// The document a key belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// An object: its path (the key of its fields' directory) and entity.
    Object { path: String, entity: String },
    /// A key of its own: a value entity's (named), or one no entity describes.
    Key { key: String, entity: Option<String> },
}

impl Owner {
    /// The document's id: the object's path, or the key.
    pub fn id(&self) -> &str {
        match self {
            Owner::Object { path, .. } => path,
            Owner::Key { key, .. } => key,
        }
    }

    pub fn entity(&self) -> Option<&str> {
        match self {
            Owner::Object { entity, .. } => Some(entity),
            Owner::Key { entity, .. } => entity.as_deref(),
        }
    }
}

/// The document `key` belongs to; `None` for Strata's own keys and keys that are not
/// text.
pub fn owner(schema: Option<&Schema>, key: &[u8]) -> Option<Owner> {
    let key = std::str::from_utf8(key).ok()?;
    if key.starts_with(strata_core::key::RESERVED_PREFIX) {
        return None;
    }
    let plain = || Owner::Key {
        key: key.to_owned(),
        entity: None,
    };
    let Some(schema) = schema else {
        return Some(plain());
    };
    match schema.key_field(key.as_bytes()) {
        Some((e, _)) if e.value.is_some() => Some(Owner::Key {
            key: key.to_owned(),
            entity: Some(e.name.clone()),
        }),
        Some((e, _)) => {
            let cut = key.rfind('/').unwrap_or(0);
            Some(Owner::Object {
                path: key[..cut].to_owned(),
                entity: e.name.clone(),
            })
        }
        None => Some(plain()),
    }
}

/// A document: what is indexed and shown for one owner.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Doc {
    pub id: String,
    pub entity: Option<String>,
    /// The searchable text: `(field, text)`, the field empty for a key's own value.
    pub lines: Vec<(String, String)>,
    /// An object's fields by name (as text), for `field:value` queries.
    pub attrs: Map<String, Value>,
    /// What a hit shows: the object (typed, secrets left out) or the value.
    pub shown: Value,
}

/// `value` with what the schema marks secret taken out: `None` when all of it is.
pub fn visible(schema: Option<&Schema>, key: &[u8], value: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(value).into_owned();
    let Some(schema) = schema else {
        return Some(text);
    };
    // Secrecy, not the backup class: a secret field of a `backup = false` entity is
    // as secret as any.
    match schema.secrecy(key) {
        KeyClass::Secret => None,
        KeyClass::SecretPaths(paths) => {
            // A document that does not parse is secret whole: its secrets cannot be found.
            let mut doc: Value = serde_json::from_str(&text).ok()?;
            strata_schema::secret_paths::remove(&mut doc, paths);
            Some(doc.to_string())
        }
        KeyClass::Plain | KeyClass::NoBackup => Some(text),
    }
}

/// The document of `owner` from its keys and values (`kvs`: the object's own field
/// keys, or the one key), secrets left out; `None` when nothing is left to index.
pub fn build(schema: Option<&Schema>, owner: &Owner, kvs: &[(Vec<u8>, Vec<u8>)]) -> Option<Doc> {
    let shown: Vec<(String, String)> = kvs
        .iter()
        .filter_map(|(k, v)| {
            let text = visible(schema, k, v)?;
            Some((String::from_utf8_lossy(k).into_owned(), text))
        })
        .collect();
    if kvs.is_empty() {
        return None;
    }
    let mut doc = Doc {
        id: owner.id().to_owned(),
        entity: owner.entity().map(str::to_owned),
        ..Doc::default()
    };
    match owner {
        Owner::Object { path, entity } => {
            let prefix = format!("{path}/");
            for (k, v) in &shown {
                let field = k.strip_prefix(&prefix).unwrap_or(k).to_owned();
                doc.attrs.insert(field.clone(), Value::String(v.clone()));
                doc.lines.push((field, v.clone()));
            }
            let entity = schema.and_then(|s| s.entity(entity));
            doc.shown = match entity {
                Some(e) => strata_schema::object::decode(e, path, &shown),
                None => Value::Object(doc.attrs.clone()),
            };
        }
        Owner::Key { .. } => {
            if let Some((_, v)) = shown.first() {
                doc.lines.push((String::new(), v.clone()));
                doc.shown = Value::String(v.clone());
            }
        }
    }
    Some(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker() -> Schema {
        Schema::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/broker/schema.toml"),
        )
        .unwrap()
    }

    /// A schema whose JSON field lists its members' passwords as secret.
    pub(crate) fn listed() -> Schema {
        Schema::parse(
            "[entities.team]\nkey = \"/teams/{id}\"\nvars = { id = \"string\" }\n\
             [entities.team.fields]\nstate = { type = \"json\", secret_paths = [\"members.password\"] }\n",
            "team.toml",
        )
        .unwrap()
    }

    #[test]
    fn secret_members_of_lists_are_left_out() {
        let schema = listed();
        let value = br#"{"members":[{"name":"ann","password":"pw-one"},{"name":"bo","password":"pw-two"}]}"#;
        let shown = visible(Some(&schema), b"/teams/a/state", value).unwrap();
        assert!(!shown.contains("pw-") && shown.contains("ann"), "{shown}");
    }

    #[test]
    fn keys_belong_to_objects_values_or_themselves() {
        let schema = Schema::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/sigilgate/schema.toml"),
        )
        .unwrap();
        let s = Some(&schema);
        assert_eq!(
            owner(s, b"/sigilgate/users/7/status"),
            Some(Owner::Object {
                path: "/sigilgate/users/7".into(),
                entity: "user".into()
            })
        );
        assert_eq!(
            owner(s, b"/sigilgate/routes/0c5cd43b-f53e-4c38-be5c-39319d892098")
                .unwrap()
                .entity(),
            Some("route")
        );
        assert_eq!(owner(s, b"/elsewhere/x").unwrap().id(), "/elsewhere/x");
        assert_eq!(owner(s, b"/_strata/mirror/default"), None);
        assert_eq!(
            owner(None, b"/sigilgate/users/7/status").unwrap().id(),
            "/sigilgate/users/7/status"
        );
    }

    #[test]
    fn secrets_never_reach_a_document() {
        let schema = broker();
        let state = br#"{"admin_credentials":{"username":"pgadmin","password":"52175b7a96b98b5f"},"allocated_port":33002}"#;
        let key = b"/service/f1/state".to_vec();
        let o = owner(Some(&schema), &key).unwrap();
        let doc = build(Some(&schema), &o, &[(key, state.to_vec())]).unwrap();
        let all = format!("{doc:?}");
        assert!(
            !all.contains("52175b7a96b98b5f") && all.contains("pgadmin"),
            "{all}"
        );
        let member = b"/service/f1/members/cc21ce88-d006-4cc5-8278-c2614e1bcb38".to_vec();
        let o = owner(Some(&schema), &member).unwrap();
        assert_eq!(
            build(
                Some(&schema),
                &o,
                &[(member, b"{\"conn_url\":\"postgres://u:pw@h\"}".to_vec())]
            )
            .map(|d| d.lines),
            Some(vec![])
        );
    }
}
