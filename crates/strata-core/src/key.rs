//! Key paths: the validated, escaped `/`-separated form of a key, and the byte-range
//! arithmetic (prefix end) that range reads need.
//!
//! Owns the escaping rule for path segments taken from data; does not own how keys are
//! stored (a backend sees plain bytes) nor how files in a backup are named.
//!
//! Escaping rule (stable, documented in the README):
//! - `%` becomes `%25`, `/` becomes `%2F`, ASCII control characters (0x00–0x1F, 0x7F)
//!   become `%XX` (upper-case hex);
//! - the empty segment is written as a lone `%` (a `%` not followed by two hex digits
//!   can appear nowhere else, so this is unambiguous and keeps `//` out of keys);
//! - every other character, including spaces, `@`, `:`, `+` and non-ASCII text, is kept
//!   as it is, so keys stay readable (`/public/contacts/bob@example.org/newsletter`,
//!   `/sigilgate/nodes/2a01:4f8:c0c:1::78/role`).
//!
//! A segment therefore can never add or remove a level, and `decode(encode(s)) == s`.

use std::fmt;

/// Keys Strata keeps for itself in a store: mirror checkpoints, migration state, the
/// marks of chunked writes and of rebuilds. Copy, diff, backup and schema checks leave
/// them out (an `export` whose prefix covers them includes them, as it is). Every such
/// key is made by [`reserved_key`].
pub const RESERVED_PREFIX: &str = "/_strata/";

/// `/_strata/REST`: a key of Strata's own.
pub fn reserved_key(rest: &str) -> String {
    format!("{RESERVED_PREFIX}{rest}")
}

use crate::error::{Error, Result};

/// A validated key path: starts with `/`, segments separated by `/`, every segment
/// a valid encoding (see the module docs). The root path is `/`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyPath(String);

impl KeyPath {
    /// The root path `/`.
    pub fn root() -> Self {
        KeyPath("/".to_owned())
    }

    /// Parses an already-encoded path such as `/sigilgate/users/1/username`. A path
    /// that does not start with `/`, has an empty segment (`//`, a trailing `/`) or a
    /// malformed escape is [`Error::InvalidKeyPath`], naming the segment and why.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidKeyPath {
            path: text.to_owned(),
            reason,
        };
        let Some(rest) = text.strip_prefix('/') else {
            return Err(invalid("a key path starts with `/`".into()));
        };
        if rest.is_empty() {
            return Ok(Self::root());
        }
        for (index, segment) in rest.split('/').enumerate() {
            validate_encoded_segment(segment).map_err(|reason| {
                invalid(format!("segment {} ({segment:?}): {reason}", index + 1))
            })?;
        }
        Ok(KeyPath(text.to_owned()))
    }

    /// Builds a path from raw (unescaped) segments.
    pub fn from_segments<I, S>(segments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut path = Self::root();
        for segment in segments {
            path = path.join(segment.as_ref());
        }
        path
    }

    /// Appends one raw segment, escaping it.
    pub fn join(&self, segment: &str) -> Self {
        let mut text = self.0.clone();
        if !self.is_root() {
            text.push('/');
        }
        text.push_str(&encode_segment(segment));
        KeyPath(text)
    }

    /// Whether this is the root path `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The encoded path, as stored in keys.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The encoded path as key bytes, for a [`Store`](crate::Store) call.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The decoded segments, in order. The root has none.
    pub fn segments(&self) -> Vec<String> {
        if self.is_root() {
            return Vec::new();
        }
        self.0[1..].split('/').map(decode_segment).collect()
    }

    /// The encoded segments, borrowed.
    pub fn encoded_segments(&self) -> impl Iterator<Item = &str> {
        let rest = if self.is_root() { "" } else { &self.0[1..] };
        rest.split('/').filter(move |_| !rest.is_empty())
    }

    /// The path one level up (`/a/b` → `/a`, `/a` → `/`); `None` for the root.
    pub fn parent(&self) -> Option<KeyPath> {
        if self.is_root() {
            return None;
        }
        let cut = self.0.rfind('/').unwrap_or(0);
        Some(if cut == 0 {
            Self::root()
        } else {
            KeyPath(self.0[..cut].to_owned())
        })
    }

    /// The byte prefix shared by every key strictly below this path: `self` + `/`
    /// (or `/` for the root). [`KeySpan::prefix`](crate::KeySpan::prefix) of it reads
    /// the subtree.
    pub fn subtree_prefix(&self) -> Vec<u8> {
        if self.is_root() {
            return b"/".to_vec();
        }
        let mut prefix = self.0.as_bytes().to_vec();
        prefix.push(b'/');
        prefix
    }

    /// True when `other` lies strictly below `self`.
    pub fn is_ancestor_of(&self, other: &KeyPath) -> bool {
        other.as_bytes().starts_with(&self.subtree_prefix()) && other != self
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPath({:?})", self.0)
    }
}

impl std::str::FromStr for KeyPath {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

fn needs_escape(c: char) -> bool {
    c == '%' || c == '/' || c.is_ascii_control()
}

/// Escapes one raw segment (see the module docs).
pub fn encode_segment(segment: &str) -> String {
    if segment.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(segment.len());
    for c in segment.chars() {
        if needs_escape(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes every `%XX` escape of `text` into its byte; `None` when an escape is not
/// two hex digits. (The strict decoder for escaped names and URL parameters; the key
/// codec's own [`decode_segment`] is lenient.)
pub fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Decodes one encoded segment. Callers pass segments that [`KeyPath::parse`]
/// validated, so malformed escapes cannot occur; they are kept verbatim if they do.
pub fn decode_segment(segment: &str) -> String {
    if segment == "%" {
        return String::new();
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(byte) = hex_pair(&bytes[i + 1..]) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn hex_pair(bytes: &[u8]) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16);
    match bytes {
        [a, b, ..] => Some((digit(*a)? * 16 + digit(*b)?) as u8),
        _ => None,
    }
}

fn validate_encoded_segment(segment: &str) -> std::result::Result<(), String> {
    if segment.is_empty() {
        return Err("empty segment (`//` or a trailing `/`); write an empty segment as `%`".into());
    }
    if segment == "%" {
        return Ok(());
    }
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let Some(byte) = hex_pair(&bytes[i + 1..]) else {
                    return Err(
                        "`%` must be followed by two hex digits; write a literal `%` as `%25`"
                            .into(),
                    );
                };
                if !needs_escape(byte as char) {
                    return Err(format!(
                        "`%{:02X}` escapes a character that is written as itself",
                        byte
                    ));
                }
                // One spelling per key: `%1a` and `%1A` would be two keys for one name.
                if bytes[i + 1..i + 3].iter().any(u8::is_ascii_lowercase) {
                    return Err(format!("write the escape in upper case, as `%{byte:02X}`"));
                }
                i += 3;
            }
            b if (b as char).is_ascii_control() => {
                return Err(format!(
                    "control character 0x{b:02X}; write it as `%{b:02X}`"
                ));
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// The smallest key greater than every key that starts with `prefix` (etcd's
/// `GetPrefixRangeEnd`). `None` means "no upper bound" (the prefix is empty or all
/// `0xFF` bytes).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Renders key bytes for people: UTF-8 as is, other bytes as `\xNN`.
pub fn display_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) => text.to_owned(),
        Err(_) => key
            .iter()
            .map(|&b| {
                if b.is_ascii() && !b.is_ascii_control() {
                    (b as char).to_string()
                } else {
                    format!("\\x{b:02x}")
                }
            })
            .collect(),
    }
}

/// `text` for a URL's path or query value: every byte outside the unreserved set
/// (letters, digits, `-._~`) and `/` percent-escaped.
pub fn url_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for b in text.bytes() {
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
    use proptest::prelude::*;

    #[test]
    fn escapes_only_what_would_change_levels() {
        let p = KeyPath::from_segments(["public", "contacts", "erin+vpn@example.org", "x"]);
        assert_eq!(p.as_str(), "/public/contacts/erin+vpn@example.org/x");
        let p = KeyPath::from_segments(["nodes", "2a01:4f8:c0c:1::78"]);
        assert_eq!(p.as_str(), "/nodes/2a01:4f8:c0c:1::78");
        let p = KeyPath::from_segments(["a", "b/c", "50%", "", "tab\there", "Zoë Å"]);
        assert_eq!(p.as_str(), "/a/b%2Fc/50%25/%/tab%09here/Zoë Å");
        assert_eq!(
            p.segments(),
            vec!["a", "b/c", "50%", "", "tab\there", "Zoë Å"]
        );
    }

    #[test]
    fn parse_rejects_bad_paths_with_a_reason() {
        for bad in ["", "a/b", "/a//b", "/a/", "/a/%zz", "/a/%41", "/a/\u{1}"] {
            let err = KeyPath::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(KeyPath::parse("/").unwrap().is_root());
        assert_eq!(
            KeyPath::parse("/a/b%2Fc").unwrap().segments(),
            vec!["a", "b/c"]
        );
    }

    #[test]
    fn lower_case_escapes_are_refused_so_a_name_has_one_key() {
        // Found by the key_path fuzz target: `/a%1a` parsed, and was another key than
        // the `/a%1A` its segments encode to.
        let err = KeyPath::parse("/a%1a").unwrap_err().to_string();
        assert!(err.contains("`%1A`"), "{err}");
        let path = KeyPath::parse("/a%1A").unwrap();
        assert_eq!(KeyPath::from_segments(path.segments()), path);
    }

    #[test]
    fn prefix_end_matches_etcd() {
        assert_eq!(prefix_end(b"/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn parent_and_ancestry() {
        let p = KeyPath::parse("/a/b/c").unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "/a/b");
        assert_eq!(
            KeyPath::parse("/a").unwrap().parent().unwrap(),
            KeyPath::root()
        );
        assert!(KeyPath::parse("/a").unwrap().is_ancestor_of(&p));
        assert!(!KeyPath::parse("/a/b/c").unwrap().is_ancestor_of(&p));
        assert!(KeyPath::parse("/a/b/").is_err());
        assert!(!KeyPath::parse("/a/bb")
            .unwrap()
            .is_ancestor_of(&KeyPath::parse("/a/b/c").unwrap()));
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9]{0,6}",
            "[ /%a:@.\\-+é李\u{0}\t]{0,6}",
            any::<String>().prop_map(|s| s.chars().take(8).collect()),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(segments in prop::collection::vec(segment(), 0..6)) {
            let path = KeyPath::from_segments(&segments);
            prop_assert_eq!(path.segments(), segments.clone());
            let reparsed = KeyPath::parse(path.as_str()).unwrap();
            prop_assert_eq!(&reparsed, &path);
            // One segment is one level, whatever it holds.
            prop_assert_eq!(path.encoded_segments().count(), segments.len());
        }

        #[test]
        fn prefix_is_subtree(a in prop::collection::vec(segment(), 1..4),
                             b in prop::collection::vec(segment(), 1..5)) {
            let pa = KeyPath::from_segments(&a);
            let pb = KeyPath::from_segments(&b);
            let start = pa.subtree_prefix();
            let end = prefix_end(&start).unwrap();
            let key = pb.as_bytes();
            let in_range = key >= start.as_slice() && key < end.as_slice();
            let descendant = b.len() > a.len() && b[..a.len()] == a[..];
            prop_assert_eq!(in_range, descendant);
            prop_assert_eq!(pa.is_ancestor_of(&pb), descendant);
        }

        #[test]
        fn ordering_of_siblings_follows_segment_bytes_when_unescaped(
            a in "[a-z0-9@.:]{1,6}", b in "[a-z0-9@.:]{1,6}") {
            // Readable segments keep their bytewise order, so listings are in the
            // order people expect.
            let pa = KeyPath::from_segments(["x", a.as_str()]);
            let pb = KeyPath::from_segments(["x", b.as_str()]);
            prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
        }
    }
}
