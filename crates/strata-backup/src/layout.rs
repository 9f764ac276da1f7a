//! How keys become files in the backup repository, exactly and reversibly.
//!
//! A key `/a/b/leaf` is member `leaf` of the file `a/b.json`: the sibling leaf keys
//! of one parent share one pretty-printed JSON file, members sorted, so a record reads
//! as one file and a one-field change is a one-line diff. Directories mirror the key's
//! segments. Escaping (documented in the README) keeps every key exact:
//!
//! - a path segment (directory or file name): bytes other than printable ASCII and
//!   non-ASCII UTF-8, and `%`, are written `%XX`; `.`-only names, names starting with
//!   `.git`, and names ending in `.json` get their first or last `.` escaped as `%2E`;
//!   an empty segment is `%e`.
//! - the file of keys directly under the root (`/leaf`) is `%root.json`; keys that do
//!   not start with `/` live in `%relative.json`, member = the whole key.
//! - a member name is the last segment, with `%` and non-UTF-8 bytes as `%XX`.
//! - a value that is UTF-8 is a JSON string; any other is `{"base64": "…"}`. Secrets
//!   are written as `{"secret": …}`, `{"redacted": …}` or `{"encrypted": …}` (see
//!   `secrets`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use strata_core::base64;

pub const SUFFIX: &str = ".json";
const ROOT_FILE: &str = "%root.json";
const RELATIVE_FILE: &str = "%relative.json";

fn hex_escape(out: &mut String, byte: u8) {
    out.push_str(&format!("%{byte:02X}"));
}

/// A key segment as a file or directory name.
pub fn escape_segment(seg: &[u8]) -> String {
    if seg.is_empty() {
        return "%e".to_owned();
    }
    let mut out = String::with_capacity(seg.len());
    let text = String::from_utf8_lossy(seg);
    let exact = text.as_bytes() == seg;
    if exact {
        for c in text.chars() {
            if c == '%' || c == '/' || c == '\\' || c.is_control() {
                let mut buf = [0u8; 4];
                for &b in c.encode_utf8(&mut buf).as_bytes() {
                    hex_escape(&mut out, b);
                }
            } else {
                out.push(c);
            }
        }
    } else {
        for &b in seg {
            if b.is_ascii_graphic() && b != b'%' && b != b'/' && b != b'\\' || b == b' ' {
                out.push(b as char);
            } else {
                hex_escape(&mut out, b);
            }
        }
    }
    if out.chars().all(|c| c == '.') || out.starts_with(".git") {
        out.replace_range(0..1, "%2E");
    }
    if out.ends_with(SUFFIX) {
        let at = out.len() - SUFFIX.len();
        out.replace_range(at..at + 1, "%2E");
    }
    out
}

/// The bytes of an escaped name.
pub fn unescape(name: &str) -> Option<Vec<u8>> {
    if name == "%e" {
        return Some(Vec::new());
    }
    strata_core::key::percent_decode(name)
}

/// A member name (the last segment of a key).
pub fn escape_member(leaf: &[u8]) -> String {
    let mut out = String::with_capacity(leaf.len());
    let text = String::from_utf8_lossy(leaf);
    if text.as_bytes() == leaf {
        for c in text.chars() {
            if c == '%' {
                out.push_str("%25");
            } else {
                out.push(c);
            }
        }
    } else {
        for &b in leaf {
            if b.is_ascii() && b != b'%' {
                out.push(b as char);
            } else {
                hex_escape(&mut out, b);
            }
        }
    }
    out
}

/// The file and member of a key.
pub fn locate(key: &[u8]) -> (String, String) {
    let Some(rest) = key.strip_prefix(b"/") else {
        return (RELATIVE_FILE.to_owned(), escape_member(key));
    };
    match rest.iter().rposition(|&b| b == b'/') {
        None => (ROOT_FILE.to_owned(), escape_member(rest)),
        Some(i) => {
            let dirs: Vec<String> = rest[..i]
                .split(|&b| b == b'/')
                .map(escape_segment)
                .collect();
            (
                format!("{}{SUFFIX}", dirs.join("/")),
                escape_member(&rest[i + 1..]),
            )
        }
    }
}

/// The key of a member of a file; `None` if the names are not ours.
pub fn key_of(file: &str, member: &str) -> Option<Vec<u8>> {
    let leaf = unescape(member)?;
    if file == RELATIVE_FILE {
        return Some(leaf);
    }
    let mut key = Vec::new();
    if file != ROOT_FILE {
        for dir in file.strip_suffix(SUFFIX)?.split('/') {
            key.push(b'/');
            key.extend(unescape(dir)?);
        }
    }
    key.push(b'/');
    key.extend(leaf);
    Some(key)
}

/// The folder that holds the files of every key under `prefix`: the keys are in files
/// below it or in its own file `<folder>.json` (`/a/b/` → `a/b`: files `a/b.json` and
/// `a/b/…`; `/a/b` → `a`: `a.json` member `b…` and `a/b/…`). Empty for the root.
pub fn file_prefix(prefix: &[u8]) -> String {
    let Some(rest) = prefix.strip_prefix(b"/") else {
        return String::new();
    };
    match rest.iter().rposition(|&b| b == b'/') {
        None => String::new(),
        Some(i) => rest[..i]
            .split(|&b| b == b'/')
            .map(escape_segment)
            .collect::<Vec<_>>()
            .join("/"),
    }
}

/// A plain value as JSON.
pub fn encode_value(value: &[u8]) -> Value {
    match std::str::from_utf8(value) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => {
            let mut m = Map::new();
            m.insert("base64".into(), Value::String(base64::encode(value)));
            Value::Object(m)
        }
    }
}

/// A file's bytes: members sorted, pretty-printed, one member per line.
pub fn render(members: &BTreeMap<String, Value>) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(members).expect("JSON values serialize");
    out.push(b'\n');
    out
}

/// A file's members.
pub fn parse(bytes: &[u8]) -> Option<BTreeMap<String, Value>> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_keys_round_trip() {
        let keys: Vec<&[u8]> = vec![
            b"/sigilgate/users/1/name",
            b"/top",
            b"relative key",
            b"/a//b",
            b"/a/../..",
            b"/.git/config",
            b"/x/y.json/z",
            b"/p/100%/50%",
            b"/ctl/\x01\n/v",
            b"/bin/\xff\xfe/\x80",
            b"/sp ace/\xe6\x9d\x8e/\\",
            b"/",
            b"//",
        ];
        for key in keys {
            let (file, member) = locate(key);
            assert!(
                !file
                    .split('/')
                    .any(|p| p == "." || p == ".." || p.is_empty() || p.starts_with(".git")),
                "{file}"
            );
            assert_eq!(
                key_of(&file, &member).as_deref(),
                Some(key),
                "{file} {member}"
            );
        }
        assert_eq!(
            locate(b"/sigilgate/users/1/name"),
            ("sigilgate/users/1.json".into(), "name".into())
        );
        assert_eq!(locate(b"/x/y.json/z").0, "x/y%2Ejson.json");
    }

    /// Regression (fuzz: crash-08accfb3): a member holding a float in exponent form
    /// parsed to a number that, written back, parsed to another one.
    #[test]
    fn a_float_in_a_member_round_trips() {
        let members = parse(b"{\n  \"nameed\": {\"a\": [4432e77]}\n}\n").unwrap();
        assert_eq!(parse(&render(&members)).unwrap(), members);
    }

    #[test]
    fn values_are_strings_or_base64() {
        assert_eq!(encode_value(b"up"), Value::String("up".into()));
        assert_eq!(encode_value(b"\xff")["base64"], "/w==");
    }
}
