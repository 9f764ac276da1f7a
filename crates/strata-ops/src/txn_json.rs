//! The documented JSON form of a transaction (what `strata txn FILE` reads) and of
//! key-values and transaction answers (what `-o json` prints).
//!
//! ```json
//! {
//!   "compare": [
//!     {"key": "/a", "version": 3},
//!     {"key": "/a", "mod_revision": 10, "op": "<"},
//!     {"key": "/a", "value": "x", "op": "!="},
//!     {"key": "/b", "absent": true}
//!   ],
//!   "success": [
//!     {"put": {"key": "/a", "value": "1"}},
//!     {"delete": {"key": "/b"}},
//!     {"delete": {"prefix": "/c/"}},
//!     {"get": {"prefix": "/c/"}}
//!   ],
//!   "failure": [{"get": {"key": "/a"}}]
//! }
//! ```
//!
//! `op` is one of `=` (default), `!=`, `>`, `<`. Keys and values are UTF-8 strings.
//! Owns the parsing and rendering only; running the transaction is the store's job.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use strata_core::model::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TxnJson {
    #[serde(default)]
    compare: Vec<CompareJson>,
    #[serde(default)]
    success: Vec<OpJson>,
    #[serde(default)]
    failure: Vec<OpJson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareJson {
    key: String,
    #[serde(default)]
    op: Option<String>,
    value: Option<String>,
    version: Option<i64>,
    create_revision: Option<i64>,
    mod_revision: Option<i64>,
    absent: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum OpJson {
    Put { key: String, value: String },
    Delete(SpanJson),
    Get(SpanJson),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpanJson {
    key: Option<String>,
    prefix: Option<String>,
}

fn span(s: SpanJson, what: &str) -> Result<KeySpan> {
    match (s.key, s.prefix) {
        (Some(k), None) => Ok(KeySpan::key(k)),
        (None, Some(p)) => Ok(KeySpan::prefix(p)),
        _ => Err(Error::Invalid(format!(
            "a {what} op takes exactly one of \"key\" or \"prefix\""
        ))),
    }
}

fn compare(c: CompareJson, index: usize) -> Result<Compare> {
    let bad =
        |msg: String| Error::Invalid(format!("compare #{} (key {}): {msg}", index + 1, c.key));
    let op = match c.op.as_deref().unwrap_or("=") {
        "=" | "==" => CompareOp::Equal,
        "!=" => CompareOp::NotEqual,
        ">" => CompareOp::Greater,
        "<" => CompareOp::Less,
        other => return Err(bad(format!("unknown op {other:?}; use =, !=, > or <"))),
    };
    let mut targets = Vec::new();
    if let Some(v) = &c.value {
        targets.push(CompareTarget::Value(v.clone().into_bytes()));
    }
    if let Some(n) = c.version {
        targets.push(CompareTarget::Version(n));
    }
    if let Some(n) = c.create_revision {
        targets.push(CompareTarget::CreateRevision(n));
    }
    if let Some(n) = c.mod_revision {
        targets.push(CompareTarget::ModRevision(n));
    }
    match c.absent {
        Some(true) => targets.push(CompareTarget::Version(0)),
        Some(false) => {
            return Err(bad(
                "\"absent\": false is not a compare; use \"version\": 0 with \"op\": \">\"".into(),
            ))
        }
        None => {}
    }
    if targets.len() != 1 {
        return Err(bad(
            "give exactly one of \"value\", \"version\", \"create_revision\", \"mod_revision\", \"absent\"".into(),
        ));
    }
    Ok(Compare::new(
        c.key.clone().into_bytes(),
        op,
        targets.remove(0),
    ))
}

fn op(o: OpJson) -> Result<Op> {
    Ok(match o {
        OpJson::Put { key, value } => Op::put(key, value),
        OpJson::Delete(s) => Op::delete(span(s, "delete")?),
        OpJson::Get(s) => Op::get(span(s, "get")?),
    })
}

/// Parses the JSON form of a transaction. `source` names the input in errors.
pub fn parse_txn(text: &str, source: &str) -> Result<Txn> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let parsed: TxnJson = serde_json::from_str(text).map_err(|e| Error::File {
        path: source.to_owned(),
        reason: format!(
            "not a transaction: {} (see `strata txn --help` for the form)",
            crate::snapshot::json_error(&e)
        ),
    })?;
    let compares = parsed
        .compare
        .into_iter()
        .enumerate()
        .map(|(i, c)| compare(c, i))
        .collect::<Result<Vec<_>>>()?;
    Ok(Txn {
        compares,
        success: parsed.success.into_iter().map(op).collect::<Result<_>>()?,
        failure: parsed.failure.into_iter().map(op).collect::<Result<_>>()?,
    })
}

/// A key-value as JSON: text fields when UTF-8, `*_base64`-free lossless hex otherwise.
pub fn kv_json(kv: &KeyValue) -> Value {
    let mut map = Map::new();
    put_bytes(&mut map, "key", &kv.key);
    put_bytes(&mut map, "value", &kv.value);
    map.insert("create_revision".into(), kv.create_revision.into());
    map.insert("mod_revision".into(), kv.mod_revision.into());
    map.insert("version".into(), kv.version.into());
    Value::Object(map)
}

/// Inserts `name` as a string when the bytes are UTF-8, else `name_hex` as hex.
fn put_bytes(map: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => map.insert(name.into(), text.into()),
        Err(_) => map.insert(
            format!("{name}_hex"),
            strata_core::hex::encode(bytes).into(),
        ),
    };
}

/// A range answer as JSON: `{"revision", "count", "more", "kvs"}`, each of `kvs` a
/// [`kv_json`].
pub fn range_json(resp: &RangeResponse) -> Value {
    json!({
        "revision": resp.revision,
        "count": resp.count,
        "more": resp.more,
        "kvs": resp.kvs.iter().map(kv_json).collect::<Vec<_>>(),
    })
}

/// A watch event as JSON: its [`kv_json`] with `"type": "put"` or `"delete"`.
pub fn event_json(event: &Event) -> Value {
    let mut value = kv_json(&event.kv);
    value["type"] = match event.kind {
        EventKind::Put => "put",
        EventKind::Delete => "delete",
    }
    .into();
    value
}

/// A transaction answer as JSON: `{"succeeded", "revision", "responses"}`, one
/// `{"put"|"delete"|"get": …}` per op of the branch that ran.
pub fn txn_response_json(resp: &TxnResponse) -> Value {
    let responses: Vec<Value> = resp
        .responses
        .iter()
        .map(|r| match r {
            OpResponse::Put { prev_kv } => {
                json!({"put": {"prev_kv": prev_kv.as_ref().map(kv_json)}})
            }
            OpResponse::Delete { deleted, .. } => json!({"delete": {"deleted": deleted}}),
            OpResponse::Range(range) => json!({"get": range_json(range)}),
        })
        .collect();
    json!({"succeeded": resp.succeeded, "revision": resp.revision, "responses": responses})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_form() {
        let text = r#"{
          "compare": [{"key": "/a", "version": 3}, {"key": "/b", "absent": true},
                      {"key": "/a", "mod_revision": 10, "op": "<"}],
          "success": [{"put": {"key": "/a", "value": "1"}}, {"delete": {"prefix": "/c/"}}],
          "failure": [{"get": {"key": "/a"}}]
        }"#;
        let txn = parse_txn(text, "t.json").unwrap();
        assert_eq!(txn.compares[1], Compare::absent("/b"));
        assert_eq!(
            txn.compares[2],
            Compare::mod_revision("/a", CompareOp::Less, 10)
        );
        assert_eq!(txn.success[1], Op::delete(KeySpan::prefix("/c/")));
        assert_eq!(txn.failure[0], Op::get(KeySpan::key("/a")));
    }

    #[test]
    fn errors_name_the_problem() {
        let err = parse_txn(r#"{"compare": [{"key": "/a"}]}"#, "t.json").unwrap_err();
        assert!(err.to_string().contains("compare #1 (key /a)"), "{err}");
        let err = parse_txn(r#"{"success": [{"put": {"key": "/a"}}]}"#, "t.json").unwrap_err();
        assert!(
            err.to_string().starts_with("t.json: not a transaction"),
            "{err}"
        );
        let err = parse_txn(r#"{"success": [{"get": {}}]}"#, "t.json").unwrap_err();
        assert!(err.to_string().contains("exactly one of"), "{err}");
    }
}
