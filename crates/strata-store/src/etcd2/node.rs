//! What the v2 API answers, read: the tree of a recursive GET as its leaves (the same
//! rule as the v2 dump import: directories carry no value, an empty one yields no
//! key; hidden `_` keys are never listed by the API), a watch answer as its action
//! and nodes, and an error answer as its code, message and index.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A node of an answer: a leaf with a value, or a directory with nodes.
#[derive(Debug, Deserialize, Default)]
pub(super) struct Node {
    #[serde(default)]
    pub key: String,
    pub value: Option<String>,
    #[serde(default)]
    pub dir: bool,
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

/// Streams every leaf of a recursive GET answer (`{"action": …, "node": {…}}`) into
/// `each` as the parser meets it, without building the tree, in no particular order
/// (a view keeps them sorted). The JSON parser's recursion limit bounds how deep
/// directories may nest (about 60 levels: two per directory).
pub(super) fn stream_leaves<'de, D: Deserializer<'de>>(
    answer: D,
    each: &mut dyn FnMut(Leaf),
) -> Result<(), D::Error> {
    answer.deserialize_map(AnswerSeed { each })
}

struct AnswerSeed<'a> {
    each: &'a mut dyn FnMut(Leaf),
}

impl<'de> Visitor<'de> for AnswerSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a v2 answer")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key::<String>()? {
            if name == "node" {
                map.next_value_seed(NodeSeed {
                    each: &mut *self.each,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct NodeSeed<'a> {
    each: &'a mut dyn FnMut(Leaf),
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a v2 node")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut leaf = Leaf {
            key: String::new(),
            value: String::new(),
            created: 0,
            modified: 0,
            ttl: None,
        };
        let (mut value, mut dir) = (None, false);
        while let Some(name) = map.next_key::<String>()? {
            match name.as_str() {
                "key" => leaf.key = map.next_value()?,
                "value" => value = map.next_value::<Option<String>>()?,
                "dir" => dir = map.next_value()?,
                "modifiedIndex" => leaf.modified = map.next_value()?,
                "createdIndex" => leaf.created = map.next_value()?,
                "ttl" => leaf.ttl = map.next_value()?,
                "nodes" => map.next_value_seed(NodesSeed {
                    each: &mut *self.each,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let (false, Some(v)) = (dir, value) {
            leaf.value = v;
            (self.each)(leaf);
        }
        Ok(())
    }
}

struct NodesSeed<'a> {
    each: &'a mut dyn FnMut(Leaf),
}

impl<'de> DeserializeSeed<'de> for NodesSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of v2 nodes")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(NodeSeed {
                each: &mut *self.each,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// A v2 key as a request path: each byte outside the unreserved set (and `/`)
/// percent-escaped.
pub(super) fn escape_path(key: &str) -> String {
    strata_core::key::url_escape(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_of_a_tree_in_key_order_directories_left_out() {
        let text = r#"{"action":"get","node":{"dir":true,"nodes":[
                {"key":"/b","dir":true,"nodes":[{"key":"/b/x","value":"1","modifiedIndex":5,"createdIndex":4}]},
                {"key":"/a","value":"0","ttl":30,"modifiedIndex":3,"createdIndex":3},
                {"key":"/empty","dir":true},{"key":"/null","dir":true,"nodes":null}]}}"#;
        let mut out = Vec::new();
        stream_leaves(&mut serde_json::Deserializer::from_str(text), &mut |l| {
            out.push(l)
        })
        .unwrap();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        let keys: Vec<_> = out.iter().map(|l| (l.key.as_str(), l.ttl)).collect();
        assert_eq!(keys, [("/a", Some(30)), ("/b/x", None)]);
        assert_eq!((out[1].created, out[1].modified), (4, 5));
        assert_eq!(escape_path("/a b/ü?#%"), "/a%20b/%C3%BC%3F%23%25");
    }
}
