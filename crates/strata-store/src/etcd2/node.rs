//! What the v2 API answers, read: the tree of a recursive GET as its leaves (the same
//! rule as the v2 dump import: directories carry no value, an empty one yields no
//! key; hidden `_` keys are never listed by the API), a watch answer as its action
//! and nodes, and an error answer as its code, message and index.

use serde::Deserialize;

/// A node of an answer: a leaf with a value, or a directory with nodes.
#[derive(Debug, Deserialize, Default)]
pub(super) struct Node {
    #[serde(default)]
    pub key: String,
    pub value: Option<String>,
    #[serde(default)]
    pub dir: bool,
    #[serde(default)]
    pub nodes: Vec<Node>,
    #[serde(rename = "modifiedIndex", default)]
    pub modified_index: i64,
    #[serde(rename = "createdIndex", default)]
    pub created_index: i64,
    /// Seconds left for a key with a TTL.
    pub ttl: Option<i64>,
}

/// A successful answer (`{"action": …, "node": …, "prevNode": …}`).
#[derive(Debug, Deserialize)]
pub(super) struct Answer {
    pub action: String,
    #[serde(default)]
    pub node: Node,
}

/// An error answer (`{"errorCode": 100, "message": "Key not found", "index": 7}`).
#[derive(Debug, Deserialize)]
pub(super) struct ErrorAnswer {
    #[serde(rename = "errorCode")]
    pub code: i64,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub cause: String,
    #[serde(default)]
    pub index: i64,
}

/// "Key not found".
pub(super) const KEY_NOT_FOUND: i64 = 100;
/// "The event in requested index is outdated and cleared": the watch fell more than
/// the 1,000 events v2 keeps behind.
pub(super) const INDEX_CLEARED: i64 = 401;

/// A leaf: key, value, created and modified index, and the seconds its TTL has left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Leaf {
    pub key: String,
    pub value: String,
    pub created: i64,
    pub modified: i64,
    pub ttl: Option<i64>,
}

/// Every leaf under `node` (itself, if it is one), in no particular order (the view
/// keeps them in a sorted map). Iterative: v2 directories may nest deeper than a
/// recursive walk should go.
pub(super) fn leaves(node: Node, out: &mut Vec<Leaf>) {
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        if n.dir {
            stack.extend(n.nodes);
            continue;
        }
        if let Some(value) = n.value {
            out.push(Leaf {
                key: n.key,
                value,
                created: n.created_index,
                modified: n.modified_index,
                ttl: n.ttl,
            });
        }
    }
}

/// A v2 key as a request path: each byte outside the unreserved set (and `/`)
/// percent-escaped.
pub(super) fn escape_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_of_a_tree_in_key_order_directories_left_out() {
        let answer: Answer = serde_json::from_str(
            r#"{"action":"get","node":{"dir":true,"nodes":[
                {"key":"/b","dir":true,"nodes":[{"key":"/b/x","value":"1","modifiedIndex":5,"createdIndex":4}]},
                {"key":"/a","value":"0","ttl":30,"modifiedIndex":3,"createdIndex":3},
                {"key":"/empty","dir":true}]}}"#,
        )
        .unwrap();
        let mut out = Vec::new();
        leaves(answer.node, &mut out);
        out.sort_by(|a, b| a.key.cmp(&b.key));
        let keys: Vec<_> = out.iter().map(|l| (l.key.as_str(), l.ttl)).collect();
        assert_eq!(keys, [("/a", Some(30)), ("/b/x", None)]);
        assert_eq!((out[1].created, out[1].modified), (4, 5));
        assert_eq!(escape_path("/a b/ü?#%"), "/a%20b/%C3%BC%3F%23%25");
    }
}
