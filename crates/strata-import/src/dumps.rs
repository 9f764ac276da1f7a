//! Dumps whose keys are kept as they are: etcd v2 (`GET /v2/keys/?recursive=true`),
//! etcdctl (`etcdctl get --prefix / -w json`), Consul (`consul kv export`), and the
//! flat snapshot. Each becomes sorted `key → value` entries, or an error that names the
//! file and the line or the entry at fault.

use std::path::Path;

use serde_json::Value;

use crate::base64;

/// Which dump a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpFormat {
    /// `GET /v2/keys/?recursive=true`: nested `node` / `nodes`, `dir`, `key`, `value`.
    EtcdV2,
    /// `etcdctl get --prefix / -w json`: `kvs` with base64 keys and values.
    EtcdctlJson,
    /// `consul kv export`: a JSON array of `{key, flags, value}`, values in base64.
    Consul,
    /// Strata's flat snapshot `{key: value}`.
    Snapshot,
}

impl DumpFormat {
    pub fn parse(name: &str) -> Result<Self, ImportError> {
        match name {
            "etcd-v2" => Ok(DumpFormat::EtcdV2),
            "etcdctl-json" => Ok(DumpFormat::EtcdctlJson),
            "consul" => Ok(DumpFormat::Consul),
            "snapshot" => Ok(DumpFormat::Snapshot),
            other => Err(ImportError::Format(other.to_owned())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("{file}: {reason}")]
    Source { file: String, reason: String },
    #[error("unknown format {0:?}; use etcd-v2, etcdctl-json, consul or snapshot")]
    Format(String),
}

/// Sorted entries, keys and values as bytes.
pub type DumpEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads a dump file (`-` is standard input).
pub fn read_dump(path: &Path, format: DumpFormat) -> Result<DumpEntries, ImportError> {
    let name = path.display().to_string();
    let text = if name == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| ImportError::Source {
        file: name.clone(),
        reason: format!("cannot read it: {e}"),
    })?;
    parse_dump(&text, format, &name)
}

/// Parses a dump. `file` names the input in errors.
pub fn parse_dump(text: &str, format: DumpFormat, file: &str) -> Result<DumpEntries, ImportError> {
    let fail = |reason: String| ImportError::Source {
        file: file.to_owned(),
        reason,
    };
    // A UTF-8 byte order mark (left by some editors and Windows tools) is not JSON.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let json = || {
        serde_json::from_str::<Value>(text).map_err(|e| {
            fail(format!(
                "not valid JSON: {}",
                strata_ops::snapshot::json_error(&e)
            ))
        })
    };
    let mut entries = match format {
        DumpFormat::Snapshot => {
            let entries =
                strata_ops::snapshot::parse_snapshot(text, file).map_err(|e| match e {
                    // Already a message about this file: no second "file: " before it.
                    strata_ops::Error::File { reason, .. } => fail(reason),
                    other => fail(other.to_string()),
                })?;
            return Ok(entries
                .into_iter()
                .map(|(k, v)| (k.into_bytes(), v.into_bytes()))
                .collect());
        }
        DumpFormat::EtcdV2 => etcd_v2(text),
        DumpFormat::EtcdctlJson => etcdctl_json(&json()?),
        DumpFormat::Consul => consul(&json()?),
    }
    .map_err(fail)?;
    entries.sort();
    if let Some(pair) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(fail(format!(
            "key {} appears twice; a dump holds each key once",
            strata_core::key::display_key(&pair[0].0)
        )));
    }
    Ok(entries)
}

/// The leaves of an etcd v2 answer (`{"node": {"dir": true, "nodes": [...]}}`), read
/// from the event stream with a stack on the heap: etcd holds directories of any
/// depth, and so does this reader. Directories carry no value; an empty one yields
/// nothing.
fn etcd_v2(text: &str) -> Result<DumpEntries, String> {
    use crate::json_events::{Event, Parser};
    #[derive(Default)]
    struct Node {
        key: Option<String>,
        value: Option<Result<String, String>>,
        dir: bool,
        has_nodes: bool,
        member: String,
    }
    enum Ctx {
        Doc { member: String, node: bool },
        Node(Node),
        Nodes,
        Skip,
    }
    let mut parser = Parser::new(text);
    let mut stack: Vec<Ctx> = Vec::new();
    let mut out = Vec::new();
    let no_node =
        "an etcd v2 dump has a top-level \"node\" object (the answer of GET /v2/keys/?recursive=true)";
    let syntax = |e: String| format!("not valid JSON: {e}");
    while let Some(event) = parser.next().map_err(syntax)? {
        let member: Option<String> = match stack.last() {
            Some(Ctx::Doc { member, .. }) => Some(member.clone()),
            Some(Ctx::Node(n)) => Some(n.member.clone()),
            _ => None,
        };
        let member = member.as_deref();
        match event {
            Event::StartObject => {
                let ctx = match (stack.last(), member) {
                    (None, _) => Ctx::Doc {
                        member: String::new(),
                        node: false,
                    },
                    (Some(Ctx::Doc { .. }), Some("node")) | (Some(Ctx::Nodes), _) => {
                        Ctx::Node(Node::default())
                    }
                    _ => Ctx::Skip,
                };
                if let (Some(Ctx::Doc { node, .. }), Ctx::Node(_)) = (stack.last_mut(), &ctx) {
                    *node = true;
                }
                stack.push(ctx);
            }
            Event::StartArray => {
                let ctx = match (stack.last_mut(), member) {
                    (None, _) => return Err(no_node.into()),
                    (Some(Ctx::Node(n)), Some("nodes")) => {
                        n.has_nodes = true;
                        Ctx::Nodes
                    }
                    _ => Ctx::Skip,
                };
                stack.push(ctx);
            }
            Event::Name(name) => match stack.last_mut() {
                Some(Ctx::Doc { member, .. }) => *member = name,
                Some(Ctx::Node(n)) => n.member = name,
                _ => {}
            },
            Event::EndArray => {
                stack.pop();
            }
            Event::EndObject => match stack.pop() {
                Some(Ctx::Doc { node: false, .. }) => return Err(no_node.into()),
                Some(Ctx::Node(n)) => {
                    let key = n.key.as_deref();
                    if n.dir {
                        continue;
                    }
                    let key = key.ok_or_else(|| "a leaf node has no \"key\"".to_owned())?;
                    if n.has_nodes {
                        return Err(format!("key {key} has \"nodes\" but is not a directory"));
                    }
                    match n.value {
                        Some(Ok(value)) => out.push((key.as_bytes().to_vec(), value.into_bytes())),
                        Some(Err(kind)) => {
                            return Err(format!("key {key}: \"value\" is {kind}, not a string"))
                        }
                        None => {
                            return Err(format!(
                                "key {key} is neither a directory nor has a \"value\""
                            ))
                        }
                    }
                }
                _ => {}
            },
            scalar => {
                let Some(Ctx::Node(n)) = stack.last_mut() else {
                    if let (Some(Ctx::Doc { .. }), Some("node")) = (stack.last(), member) {
                        return Err(no_node.into());
                    }
                    continue;
                };
                match (n.member.as_str(), scalar) {
                    ("key", Event::Str(k)) => n.key = Some(k),
                    ("value", Event::Str(v)) => n.value = Some(Ok(v)),
                    ("value", other) => {
                        let kind = match other {
                            Event::Number(_) => "a number",
                            Event::Bool(_) => "a boolean",
                            _ => "null",
                        };
                        n.value = Some(Err(kind.to_owned()));
                    }
                    ("dir", Event::Bool(d)) => n.dir = d,
                    ("nodes", _) => {
                        return Err(format!(
                            "directory {} has \"nodes\" that is not an array",
                            n.key.as_deref().unwrap_or("/")
                        ))
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

fn etcdctl_json(doc: &Value) -> Result<DumpEntries, String> {
    match doc.get("kvs") {
        // etcdctl leaves "kvs" out of an empty answer, but always writes "header".
        None | Some(Value::Null) if doc.get("header").is_none() => Err(
            "this is not `etcdctl get -w json` output (it has neither \"header\" nor \"kvs\"): \
             is it another format?"
                .into(),
        ),
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(kvs)) => kvs
            .iter()
            .enumerate()
            .map(|(i, kv)| {
                let value = match kv.get("value") {
                    // etcdctl leaves out an empty value.
                    None | Some(Value::Null) => Vec::new(),
                    Some(_) => b64_field(kv, "value", i)?,
                };
                Ok((b64_field(kv, "key", i)?, value))
            })
            .collect(),
        Some(_) => Err("\"kvs\" is not an array (expected `etcdctl get -w json` output)".into()),
    }
}

fn consul(doc: &Value) -> Result<DumpEntries, String> {
    let Value::Array(items) = doc else {
        return Err("a Consul export is a JSON array of {\"key\", \"flags\", \"value\"}".into());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let key = item
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("entry #{} has no \"key\" string", i + 1))?;
            let value = match item.get("value") {
                None | Some(Value::Null) => Vec::new(),
                Some(_) => b64_field(item, "value", i)?,
            };
            Ok((key.as_bytes().to_vec(), value))
        })
        .collect()
}

fn b64_field(kv: &Value, field: &str, index: usize) -> Result<Vec<u8>, String> {
    let text = kv
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("entry #{} has no \"{field}\" string", index + 1))?;
    base64::decode(text).ok_or_else(|| {
        // Not the text: a value may be a secret.
        format!(
            "entry #{}: \"{field}\" is not base64 ({} characters)",
            index + 1,
            text.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_dump_keeps_leaves_only() {
        let text = r#"{"action":"get","node":{"dir":true,"nodes":[
            {"key":"/a","dir":true,"nodes":[{"key":"/a/b","value":"1","modifiedIndex":3}]},
            {"key":"/empty","dir":true},
            {"key":"/c","value":"{\"x\": 1}"}]}}"#;
        let entries = parse_dump(text, DumpFormat::EtcdV2, "d.json").unwrap();
        assert_eq!(
            entries,
            vec![
                (b"/a/b".to_vec(), b"1".to_vec()),
                (b"/c".to_vec(), b"{\"x\": 1}".to_vec())
            ]
        );
    }

    /// Regression (adversarial trials): a dump deeper than 61 directories failed with
    /// serde_json's "recursion limit exceeded"; etcd holds any depth.
    #[test]
    fn a_v2_dump_of_any_depth_is_read() {
        // Keys are whole paths, so the text grows with the square of the depth.
        let depth = 1_000;
        let mut text = String::from("{\"action\":\"get\",\"node\":{\"dir\":true,\"nodes\":[");
        let mut key = String::new();
        for i in 0..depth {
            key.push_str(&format!("/{}", i % 10));
            text.push_str(&format!("{{\"key\":\"{key}\",\"dir\":true,\"nodes\":["));
        }
        text.push_str(&format!("{{\"key\":\"{key}/leaf\",\"value\":\"v\"}}"));
        text.push_str(&"]}".repeat(depth));
        text.push_str("]}}");
        let entries = parse_dump(&text, DumpFormat::EtcdV2, "deep.json").unwrap();
        assert_eq!(
            entries,
            vec![(format!("{key}/leaf").into_bytes(), b"v".to_vec())]
        );
        // A byte order mark is skipped.
        let bom = "\u{feff}{\"node\":{\"dir\":true,\"nodes\":[{\"key\":\"/a\",\"value\":\"1\"}]}}";
        assert_eq!(parse_dump(bom, DumpFormat::EtcdV2, "b").unwrap().len(), 1);
        let err = parse_dump(
            "{\"node\":{\"key\":\"/a\",\"value\":\"\\ud800\"}}",
            DumpFormat::EtcdV2,
            "s.json",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("lone UTF-16 high surrogate"), "{err}");
    }

    #[test]
    fn errors_name_the_file_and_what_is_wrong() {
        let err = parse_dump(
            "{\"node\": {\"dir\": true, \"nodes\": [{\"key\": \"/x\"}]}}",
            DumpFormat::EtcdV2,
            "d.json",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "d.json: key /x is neither a directory nor has a \"value\""
        );
        let err = parse_dump("{\n\"node\": [", DumpFormat::EtcdV2, "d.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("d.json: not valid JSON") && err.contains("line 2"),
            "{err}"
        );
        let err = parse_dump(
            r#"{"kvs":[{"key":"!!","value":"AA=="}]}"#,
            DumpFormat::EtcdctlJson,
            "e.json",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("entry #1: \"key\" is not base64"), "{err}");
        let err = parse_dump(r#"{"kvs": 1}"#, DumpFormat::EtcdctlJson, "e.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an array"), "{err}");
        assert!(DumpFormat::parse("zookeeper").is_err());
    }

    #[test]
    fn consul_and_etcdctl_decode_base64() {
        let consul = r#"[{"key":"service/f1/state","flags":0,"value":"cnVubmluZw=="},{"key":"empty","flags":0,"value":null}]"#;
        let entries = parse_dump(consul, DumpFormat::Consul, "c.json").unwrap();
        assert_eq!(
            entries[1],
            (b"service/f1/state".to_vec(), b"running".to_vec())
        );
        assert_eq!(entries[0], (b"empty".to_vec(), Vec::new()));
        let etcdctl = r#"{"header":{"revision":5},"kvs":[{"key":"L2E=","create_revision":2,"value":"MQ=="}],"count":1}"#;
        assert_eq!(
            parse_dump(etcdctl, DumpFormat::EtcdctlJson, "e").unwrap(),
            vec![(b"/a".to_vec(), b"1".to_vec())]
        );
    }
}
