//! The flat snapshot: one JSON object `{key: value}`, keys sorted bytewise, values
//! UTF-8 strings, two-space indentation, a final newline. `strata export` writes it,
//! `strata load` reads it; `import -o` produces it.
//!
//! Owns the format (reading with errors that name the line or key, streaming writing,
//! export from a store at one revision); reading a file as a stream is
//! [`crate::snapshot_stream`]; loading into a store is [`crate::load`].

use std::io::Write;

use serde::Deserializer as _;
use std::path::Path;

use crate::error::scan;
use crate::error::{Error, Result};
use strata_core::key::display_key;
use strata_core::model::KeySpan;
use strata_core::store::Store;

/// Snapshot entries, sorted by key bytewise.
pub type SnapshotEntries = Vec<(String, String)>;

/// Parses a snapshot from text, into entries sorted by key. `source` names the input
/// in errors. Text that is not one JSON object of string values, or that gives a key
/// twice, is [`Error::File`] naming the line or the key (never a value, which may be a
/// secret). A leading byte order mark is ignored.
pub fn parse_snapshot(text: &str, source: &str) -> Result<SnapshotEntries> {
    // A UTF-8 byte order mark (left by some editors and Windows tools) is not JSON.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let parsed: Result<SnapshotEntries, serde_json::Error> = (|| {
        let mut de = serde_json::Deserializer::from_str(text);
        let mut entries = Vec::new();
        de.deserialize_map(each_entry(&mut |key, value| {
            entries.push((key, value));
            Ok(())
        }))?;
        de.end()?;
        Ok(entries)
    })();
    let mut entries = parsed.map_err(|e| Error::File {
        path: source.to_owned(),
        reason: if e.classify() == serde_json::error::Category::Data {
            e.to_string()
        } else {
            format!("not valid JSON: {}", json_error(&e))
        },
    })?;
    // Snapshots are written sorted; sort anyway for hand-written ones. A key given
    // twice is an error: which of its values is meant cannot be known.
    if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(pair) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::File {
                path: source.to_owned(),
                reason: format!(
                    "key {} appears twice; a snapshot holds each key once: remove one",
                    strata_core::model::key_excerpt(pair[0].0.as_bytes())
                ),
            });
        }
    }
    Ok(entries)
}

/// A visitor of `{key: "value", …}` that hands each entry to `each` as it is read
/// (nothing else is kept), with the wording of every value that is not a string; an
/// error of `each` becomes the input's.
pub(crate) fn each_entry<'f>(
    each: &'f mut dyn FnMut(String, String) -> std::result::Result<(), String>,
) -> EachEntry<'f> {
    EachEntry(each)
}

pub(crate) struct EachEntry<'f>(
    &'f mut dyn FnMut(String, String) -> std::result::Result<(), String>,
);

impl<'de> serde::de::Visitor<'de> for EachEntry<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a snapshot: one JSON object {\"/key\": \"value\", …}")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match map.next_value::<serde_json::Value>()? {
                serde_json::Value::String(value) => {
                    (self.0)(key, value).map_err(serde::de::Error::custom)?
                }
                // Never the value itself when it is a document: it may hold secrets
                // (an etcd v2 dump given to `load` has every value under "node").
                other @ (serde_json::Value::Object(_) | serde_json::Value::Array(_)) => {
                    return Err(serde::de::Error::custom(format!(
                        "the value of key {} is {}, but snapshot values are strings: this is not a \
                         snapshot {{\"/key\": \"value\"}} (an etcd v2, etcdctl or Consul dump is read by \
                         `strata import FILE --format …`)",
                        strata_core::model::key_excerpt(key.as_bytes()),
                        kind(&other)
                    )))
                }
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "the value of key {} is {}, but snapshot values are strings; write it as \"{}\"",
                        strata_core::model::key_excerpt(key.as_bytes()),
                        kind(&other),
                        other
                    )))
                }
            }
        }
        Ok(())
    }
}

/// A JSON syntax error in words: serde_json's, except for escapes that are half a
/// UTF-16 surrogate pair, which it words as "unexpected end of hex escape".
pub fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.contains("hex escape") || text.contains("surrogate") {
        format!(
            "a \\u escape that is half of a UTF-16 surrogate pair (\\ud800 to \\udfff without its other half) \
             at line {} column {}: the text is not valid Unicode; fix or remove the escape",
            e.line(),
            e.column()
        )
    } else {
        text
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Reads a snapshot file (`-` is standard input) with [`parse_snapshot`]; a file that
/// cannot be read is [`Error::File`].
pub fn read_snapshot(path: &Path) -> Result<SnapshotEntries> {
    let name = path.display().to_string();
    let text = if name == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| Error::File {
        path: name.clone(),
        reason: format!("cannot read it: {e}"),
    })?;
    parse_snapshot(&text, &name)
}

/// Streams a snapshot: call [`SnapshotWriter::entry`] in key order (the writer does
/// not sort), then [`SnapshotWriter::finish`]. Nothing is buffered beyond `W`'s own
/// buffer; a snapshot left unfinished is not valid JSON.
#[derive(Debug)]
pub struct SnapshotWriter<W: Write> {
    out: W,
    count: u64,
}

impl<W: Write> SnapshotWriter<W> {
    /// A writer of one snapshot to `out`.
    pub fn new(out: W) -> Self {
        SnapshotWriter { out, count: 0 }
    }

    /// Writes one entry. A key or value that is not UTF-8 is [`Error::File`] (a
    /// snapshot holds text only), as is a failed write.
    pub fn entry(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let utf8 = |bytes: &[u8], what: &str| {
            std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| Error::File {
                    path: display_key(key),
                    reason: format!(
                        "the {what} is not UTF-8, and a snapshot holds text only; \
                     export a narrower --prefix or use a Git backup, which keeps bytes"
                    ),
                })
        };
        let key = serde_json::to_string(&utf8(key, "key")?).expect("strings serialise");
        let value = serde_json::to_string(&utf8(value, "value")?).expect("strings serialise");
        let sep = if self.count == 0 { "{\n" } else { ",\n" };
        write!(self.out, "{sep}  {key}: {value}").map_err(io_error)?;
        self.count += 1;
        Ok(())
    }

    /// Closes the object and flushes; returns the number of entries written.
    pub fn finish(mut self) -> Result<u64> {
        let tail = if self.count == 0 { "{}\n" } else { "\n}\n" };
        self.out.write_all(tail.as_bytes()).map_err(io_error)?;
        self.out.flush().map_err(io_error)?;
        Ok(self.count)
    }
}

fn io_error(e: std::io::Error) -> Error {
    Error::File {
        path: "output".into(),
        reason: format!("cannot write: {e}"),
    }
}

/// What an export wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportReport {
    /// Entries written.
    pub keys: u64,
    /// The store revision the snapshot reflects.
    pub revision: i64,
}

/// Writes every key under `prefix` (the empty prefix: every key) as a snapshot, read
/// page by page at the latest revision, so memory stays bounded. Keys under
/// [`strata_core::key::RESERVED_PREFIX`] are written too when `prefix` covers them
/// (copy and diff skip them).
pub async fn export<S: Store, W: Write>(store: &S, prefix: &[u8], out: W) -> Result<ExportReport> {
    let mut writer = SnapshotWriter::new(out);
    let revision = scan(store, KeySpan::prefix(prefix.to_vec()), 0, |page| {
        page.iter()
            .try_for_each(|kv| writer.entry(&kv.key, &kv.value))
    })
    .await?;
    let keys = writer.finish()?;
    Ok(ExportReport { keys, revision })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_same_bytes_it_reads() {
        let text = "{\n  \"/a\": \"1\",\n  \"/b/c\": \"Carol \\\"CJ\\\" Jones\",\n  \"/z\": \"Zoë 李\"\n}\n";
        let entries = parse_snapshot(text, "x.json").unwrap();
        let mut out = Vec::new();
        let mut w = SnapshotWriter::new(&mut out);
        for (k, v) in &entries {
            w.entry(k.as_bytes(), v.as_bytes()).unwrap();
        }
        assert_eq!(w.finish().unwrap(), 3);
        assert_eq!(String::from_utf8(out).unwrap(), text);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let err = parse_snapshot("{\n  \"/a\": \"1\",\n  \"/b\" 2\n}", "snap.json").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("snap.json: not valid JSON") && msg.contains("line 3"),
            "{msg}"
        );
        let err = parse_snapshot("{\"/n\": 42}", "snap.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key /n is a number") && err.contains("\"42\""),
            "{err}"
        );
        let mut w = SnapshotWriter::new(Vec::new());
        let err = w.entry(b"/bin", b"\xff").unwrap_err().to_string();
        assert!(err.starts_with("/bin: the value is not UTF-8"), "{err}");
    }

    /// Regressions (adversarial trials): a byte order mark read as "expected value at
    /// line 1 column 1"; a key given twice silently kept its last value; a lone
    /// surrogate escape read as "unexpected end of hex escape"; an etcd v2 dump given to
    /// `load` printed the whole dump, passwords included, in its error.
    #[test]
    fn bom_duplicates_surrogates_and_documents() {
        let entries = parse_snapshot("\u{feff}{\"/a\": \"1\"}", "bom.json").unwrap();
        assert_eq!(entries, vec![("/a".to_owned(), "1".to_owned())]);
        let err = parse_snapshot("{\"/b\": \"1\", \"/a\": \"x\", \"/b\": \"2\"}", "dup.json")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "dup.json: key /b appears twice; a snapshot holds each key once: remove one"
        );
        let err = parse_snapshot("{\"/a\": \"x\\ud800\"}", "s.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("half of a UTF-16 surrogate pair") && err.contains("line 1"),
            "{err}"
        );
        let dump = r#"{"action":"get","node":{"dir":true,"nodes":[{"key":"/u","value":"hunter2-secret"}]}}"#;
        let err = parse_snapshot(dump, "v2.json").unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "quotes the input: {err}");
        assert!(err.contains("--format"), "{err}");
        assert!(err.len() < 300, "{err}");
    }

    #[test]
    fn empty_snapshot() {
        let mut out = Vec::new();
        SnapshotWriter::new(&mut out).finish().unwrap();
        assert_eq!(out, b"{}\n");
        assert!(parse_snapshot("{}", "e").unwrap().is_empty());
    }
}
