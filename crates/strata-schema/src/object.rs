//! The object codec: a typed JSON object ↔ the field keys under one path, and the
//! store operations on whole objects.
//!
//! - `create` writes all fields in one transaction that fails if any of the object's
//!   fields exists already, so an object is never half-created; an object needing more
//!   operations than the backend allows in one transaction is refused with its path,
//!   op count and limit.
//! - With `chunked`, an object larger than one transaction is written in several,
//!   behind a marker key `/_strata/pending<path>` (see [`create_chunked`]).
//! - `set` writes one field, type-checked; `get` is one range read, assembled; `delete`
//!   removes the object's own fields in one transaction (not objects nested below it).

use serde_json::{Map, Value};
use strata_core::key::encode_segment;
use strata_core::{Compare, Error, KeySpan, Op, OpResponse, Store, Txn};

use crate::schema::{Entity, FieldType, Schema};

/// Why an object operation was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    #[error("{path}: no entity of the schema has this key pattern")]
    NoEntity { path: String },
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: String },
    #[error(
        "{path} already exists (field {field} is set); delete it first or set fields one by one"
    )]
    Exists { path: String, field: String },
    #[error("{path} is being written in chunks (or a chunked write was interrupted); run the same `object create --chunked` again to roll it back and write it anew")]
    Pending { path: String },
    #[error(transparent)]
    Store(#[from] Error),
}

/// The marker key of a chunked write of `path`.
pub fn pending_key(path: &str) -> String {
    strata_core::key::reserved_key(&format!("pending{path}"))
}

/// The object entity whose pattern matches `path`, or the error that says none does.
fn object_entity<'s>(schema: &'s Schema, path: &str) -> Result<&'s Entity, ObjectError> {
    entity_for(schema, path).ok_or_else(|| ObjectError::NoEntity {
        path: path.to_owned(),
    })
}

/// Finds the object entity whose pattern matches `path`.
pub fn entity_for<'s>(schema: &'s Schema, path: &str) -> Option<&'s Entity> {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    schema
        .entities
        .iter()
        .find(|e| e.value.is_none() && e.match_path(&segments).is_some())
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

/// A stored field value as typed JSON.
pub fn typed(ty: &FieldType, stored: &str) -> Value {
    match ty {
        FieldType::Int => stored
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| stored.into()),
        FieldType::Bool => match stored {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => other.into(),
        },
        FieldType::Json => serde_json::from_str(stored).unwrap_or_else(|_| stored.into()),
        _ => stored.into(),
    }
}

/// Encodes an object into its field keys: defaults applied, types and required
/// fields checked, nulls dropped, unknown fields refused.
pub fn encode(
    entity: &Entity,
    path: &str,
    object: &Value,
) -> Result<Vec<(String, String)>, ObjectError> {
    let invalid = |problem: String| ObjectError::Invalid {
        path: path.to_owned(),
        problem,
    };
    let Value::Object(map) = object else {
        return Err(invalid("an object is a JSON object of its fields".into()));
    };
    if let Some(unknown) = map.keys().find(|k| !entity.fields.contains_key(*k)) {
        return Err(invalid(format!(
            "{unknown} is not a field of {}",
            entity.name
        )));
    }
    let mut out = Vec::new();
    for (name, field) in &entity.fields {
        let value = map
            .get(name)
            .and_then(text)
            .or_else(|| field.default.clone());
        match value {
            Some(v) => {
                if let Some(problem) = field.violation(&v) {
                    return Err(invalid(format!("field {name}: {problem}")));
                }
                out.push((format!("{path}/{}", encode_segment(name)), v));
            }
            None if field.required => {
                return Err(invalid(format!("required field {name} is missing")))
            }
            None => {}
        }
    }
    Ok(out)
}

/// Decodes field keys (as returned by a range read of `path/`) into a typed object.
pub fn decode(entity: &Entity, path: &str, kvs: &[(String, String)]) -> Value {
    let prefix = format!("{path}/");
    let mut map = Map::new();
    for (key, value) in kvs {
        let Some(field) = key.strip_prefix(&prefix) else {
            continue;
        };
        if let Some(spec) = entity.fields.get(field) {
            map.insert(field.to_owned(), typed(&spec.ty, value));
        }
    }
    Value::Object(map)
}

fn field_keys(entity: &Entity, path: &str) -> Vec<String> {
    entity
        .fields
        .keys()
        .map(|f| format!("{path}/{}", encode_segment(f)))
        .collect()
}

pub async fn get<S: Store>(
    store: &S,
    schema: &Schema,
    path: &str,
) -> Result<Option<Value>, ObjectError> {
    let entity = object_entity(schema, path)?;
    if store.get(pending_key(path).as_bytes()).await?.is_some() {
        return Err(ObjectError::Pending {
            path: path.to_owned(),
        });
    }
    // One range read of the object's subtree at one revision (paged), keeping its
    // own fields, not those of objects nested below it.
    let prefix = format!("{path}/");
    let mut kvs: Vec<(String, String)> = Vec::new();
    strata_core::scan(store, KeySpan::prefix(prefix.as_bytes()), 0, |page| {
        for kv in page {
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            if key[prefix.len()..].contains('/') {
                continue;
            }
            kvs.push((key, String::from_utf8_lossy(&kv.value).into_owned()));
        }
        Ok(())
    })
    .await?;
    Ok((!kvs.is_empty()).then(|| decode(entity, path, &kvs)))
}

pub async fn create<S: Store>(
    store: &S,
    schema: &Schema,
    path: &str,
    object: &Value,
) -> Result<i64, ObjectError> {
    let entity = object_entity(schema, path)?;
    let fields = encode(entity, path, object)?;
    let guards: Vec<Compare> = field_keys(entity, path)
        .into_iter()
        .map(Compare::absent)
        .collect();
    let limit = store.capabilities().max_txn_ops;
    let ops = guards.len().max(fields.len());
    if ops > limit {
        return Err(ObjectError::Invalid {
            path: path.to_owned(),
            problem: format!(
                "the object needs {ops} operations in one transaction but {} accepts at most {limit}",
                store.capabilities().backend
            ),
        });
    }
    let puts = fields.into_iter().map(|(k, v)| Op::put(k, v));
    let gets = field_keys(entity, path)
        .into_iter()
        .map(|k| Op::get(KeySpan::key(k)));
    let resp = store
        .txn(Txn::new().when(guards).and_then(puts).or_else(gets))
        .await?;
    if resp.succeeded {
        return Ok(resp.revision);
    }
    let field = resp
        .responses
        .iter()
        .find_map(|r| match r {
            OpResponse::Range(r) => r
                .kvs
                .first()
                .map(|kv| String::from_utf8_lossy(&kv.key).into_owned()),
            _ => None,
        })
        .unwrap_or_default();
    Err(ObjectError::Exists {
        path: path.to_owned(),
        field,
    })
}

/// Creates an object too large for one transaction, in several, so that readers
/// through Strata never see it half-built.
///
/// Protocol: (1) a marker `/_strata/pending<path>` holding a unique token is put in the
/// first transaction, guarded by "no marker and none of the first chunk's fields";
/// (2) each further chunk is guarded by "the marker holds our token and none of this
/// chunk's fields exists"; (3) the last transaction deletes the marker. While the
/// marker exists, `get` reports the object as being written. A run that finds a marker
/// left by an interrupted write rolls it back (deletes the object's fields, then the
/// marker) before writing anew.
pub async fn create_chunked<S: Store>(
    store: &S,
    schema: &Schema,
    path: &str,
    object: &Value,
) -> Result<i64, ObjectError> {
    let entity = object_entity(schema, path)?;
    let fields = encode(entity, path, object)?;
    let marker = pending_key(path);
    let room = store.capabilities().max_txn_ops.saturating_sub(1).max(1);
    if store.get(marker.as_bytes()).await?.is_some() {
        // Roll back the interrupted write: the fields, then the marker.
        let keys = field_keys(entity, path);
        for chunk in keys.chunks(room) {
            let ops = chunk.iter().map(|k| Op::delete(KeySpan::key(k.clone())));
            store.txn(Txn::new().and_then(ops)).await?;
        }
        store.delete(KeySpan::key(marker.clone())).await?;
    }
    let token = format!("pending:{}", store.status().await?.revision);
    let mut revision = 0;
    for (i, chunk) in fields.chunks(room).enumerate() {
        let mut guards: Vec<Compare> = chunk
            .iter()
            .map(|(k, _)| Compare::absent(k.clone()))
            .collect();
        guards.push(if i == 0 {
            Compare::absent(marker.clone())
        } else {
            Compare::value(marker.clone(), strata_core::CompareOp::Equal, token.clone())
        });
        let mut ops: Vec<Op> = chunk
            .iter()
            .map(|(k, v)| Op::put(k.clone(), v.clone()))
            .collect();
        if i == 0 {
            ops.push(Op::put(marker.clone(), token.clone()));
        }
        let resp = store.txn(Txn::new().when(guards).and_then(ops)).await?;
        if !resp.succeeded {
            return Err(ObjectError::Exists {
                path: path.to_owned(),
                field: chunk[0].0.clone(),
            });
        }
        revision = resp.revision;
    }
    let done = Txn::new()
        .when([Compare::value(
            marker.clone(),
            strata_core::CompareOp::Equal,
            token,
        )])
        .and_then([Op::delete(KeySpan::key(marker))]);
    let resp = store.txn(done).await?;
    Ok(resp.revision.max(revision))
}

pub async fn set<S: Store>(
    store: &S,
    schema: &Schema,
    path: &str,
    field: &str,
    value: &str,
) -> Result<i64, ObjectError> {
    let entity = object_entity(schema, path)?;
    let invalid = |problem: String| ObjectError::Invalid {
        path: path.to_owned(),
        problem,
    };
    let spec = entity
        .fields
        .get(field)
        .ok_or_else(|| invalid(format!("{field} is not a field of {}", entity.name)))?;
    if let Some(problem) = spec.violation(value) {
        return Err(invalid(format!("field {field}: {problem}")));
    }
    let (revision, _) = store
        .put(
            format!("{path}/{}", encode_segment(field)).as_bytes(),
            value.as_bytes(),
        )
        .await?;
    Ok(revision)
}

pub async fn delete<S: Store>(store: &S, schema: &Schema, path: &str) -> Result<i64, ObjectError> {
    let entity = object_entity(schema, path)?;
    let ops = field_keys(entity, path)
        .into_iter()
        .map(|k| Op::delete(KeySpan::key(k)));
    let resp = store.txn(Txn::new().and_then(ops)).await?;
    let deleted: i64 = resp
        .responses
        .iter()
        .map(|r| match r {
            OpResponse::Delete { deleted, .. } => *deleted,
            _ => 0,
        })
        .sum();
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::parse(
            r#"
[entities.user]
key = "/u/{id}"
vars = { id = "int" }
[entities.user.fields]
name = { type = "string", required = true }
age = { type = "int" }
admin = { type = "bool" }
tags = { type = "json" }
plan = { type = "enum", values = ["free", "pro"], default = "free" }
"#,
            "t.toml",
        )
        .unwrap()
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(name in "\\PC{1,12}", age in proptest::option::of(any::<i32>()),
                                          admin in proptest::option::of(any::<bool>()),
                                          tags in proptest::collection::vec("[a-z]{0,4}", 0..3)) {
            let schema = schema();
            let entity = schema.entity("user").unwrap();
            let mut object = json!({"name": name, "tags": tags, "plan": "pro"});
            if let Some(a) = age { object["age"] = json!(a); }
            if let Some(a) = admin { object["admin"] = json!(a); }
            let keys = encode(entity, "/u/7", &object).unwrap();
            prop_assert_eq!(decode(entity, "/u/7", &keys), object);
        }
    }

    #[test]
    fn encode_checks_types_required_and_unknown_fields() {
        let schema = schema();
        let e = schema.entity("user").unwrap();
        let keys = encode(e, "/u/1", &json!({"name": "a"})).unwrap();
        assert!(
            keys.contains(&("/u/1/plan".into(), "free".into())),
            "defaults apply"
        );
        let err = encode(e, "/u/1", &json!({"age": 3}))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "/u/1: required field name is missing");
        let err = encode(e, "/u/1", &json!({"name": "a", "plan": "gold"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("field plan: \"gold\" is not one of"), "{err}");
        let err = encode(e, "/u/1", &json!({"name": "a", "x": 1}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x is not a field of user"), "{err}");
    }

    #[tokio::test]
    async fn large_objects_need_chunks_and_interrupted_chunks_are_rolled_back() {
        let fields: String = (0..30)
            .map(|i| format!("f{i:02} = {{ type = \"int\", required = true }}\n"))
            .collect();
        let schema = Schema::parse(
            &format!("[entities.big]\nkey = \"/big/{{id}}\"\n[entities.big.fields]\n{fields}"),
            "t",
        )
        .unwrap();
        let store = strata_core::MemStore::with_capabilities(strata_core::Capabilities {
            backend: "mem",
            max_txn_ops: 8,
            max_value_bytes: 1024,
            max_request_bytes: 1 << 20,
            range_page_size: 100,
            max_in_flight: 1,
            leases: false,
        });
        let object: Value =
            Value::Object((0..30).map(|i| (format!("f{i:02}"), json!(i))).collect());
        let err = create(&store, &schema, "/big/1", &object)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("needs 30 operations") && err.contains("at most 8"),
            "{err}"
        );
        // An interrupted chunked write: a marker and some fields.
        store
            .put(pending_key("/big/1").as_bytes(), b"pending:0")
            .await
            .unwrap();
        store.put(b"/big/1/f00", b"0").await.unwrap();
        assert!(matches!(
            get(&store, &schema, "/big/1").await,
            Err(ObjectError::Pending { .. })
        ));
        create_chunked(&store, &schema, "/big/1", &object)
            .await
            .unwrap();
        assert_eq!(
            get(&store, &schema, "/big/1").await.unwrap().unwrap(),
            object
        );
        assert!(store
            .get(pending_key("/big/1").as_bytes())
            .await
            .unwrap()
            .is_none());
        assert!(
            create_chunked(&store, &schema, "/big/1", &object)
                .await
                .is_err(),
            "it exists now"
        );
    }

    #[tokio::test]
    async fn create_is_whole_and_once() {
        let schema = schema();
        let store = strata_core::MemStore::new();
        create(&store, &schema, "/u/1", &json!({"name": "ann", "age": 30}))
            .await
            .unwrap();
        let err = create(&store, &schema, "/u/1", &json!({"name": "bob"}))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/u/1 already exists"), "{err}");
        assert_eq!(
            get(&store, &schema, "/u/1").await.unwrap().unwrap(),
            json!({"name": "ann", "age": 30, "plan": "free"})
        );
        set(&store, &schema, "/u/1", "age", "31").await.unwrap();
        assert!(set(&store, &schema, "/u/1", "age", "old").await.is_err());
        assert_eq!(delete(&store, &schema, "/u/1").await.unwrap(), 3);
        assert_eq!(get(&store, &schema, "/u/1").await.unwrap(), None);
        assert!(matches!(
            get(&store, &schema, "/nope/1").await,
            Err(ObjectError::NoEntity { .. })
        ));
    }
}
