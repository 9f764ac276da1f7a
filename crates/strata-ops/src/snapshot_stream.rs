//! A snapshot file read as a stream, so that `load` holds a bounded part of it at a
//! time: a first pass checks the whole file (one JSON object of string values, keys in
//! order and each once) without keeping it, so that bad input is refused before
//! anything is written; a second pass hands the entries over in chunks.
//!
//! Snapshots are written in key order (`export`, `import -o`); a file whose keys are
//! out of order (written by hand) cannot be checked for a key given twice without
//! holding its keys, and is read whole by [`crate::snapshot::read_snapshot`] instead:
//! [`check_file`] says which.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserializer as _;

use crate::error::{Error, Result};
use crate::snapshot::{each_entry, json_error, SnapshotEntries};

/// What the first pass found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Entries in the file.
    pub entries: u64,
    /// Whether every key is greater than the one before (so none is given twice).
    pub in_order: bool,
}

/// Opens the file, past a UTF-8 byte order mark.
fn open(path: &Path) -> Result<BufReader<std::fs::File>> {
    let fail = |e: std::io::Error| Error::File {
        path: path.display().to_string(),
        reason: format!("cannot read it: {e}"),
    };
    let file = std::fs::File::open(path).map_err(fail)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    if reader
        .fill_buf()
        .map_err(fail)?
        .starts_with(b"\xef\xbb\xbf")
    {
        reader.consume(3);
    }
    Ok(reader)
}

/// Reads every entry of the file in order, calling `each`; an error of `each` stops
/// the read and is returned as the file's.
fn read_each(
    path: &Path,
    each: &mut dyn FnMut(String, String) -> std::result::Result<(), String>,
) -> Result<()> {
    let source = path.display().to_string();
    let reader = open(path)?;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let read = de.deserialize_map(each_entry(each)).and_then(|()| de.end());
    read.map_err(|e| Error::File {
        path: source,
        reason: if e.classify() == serde_json::error::Category::Data {
            e.to_string()
        } else {
            format!("not valid JSON: {}", json_error(&e))
        },
    })
}

/// The first pass: the whole file checked, nothing kept but the last key.
pub fn check_file(path: &Path) -> Result<Checked> {
    let mut checked = Checked {
        entries: 0,
        in_order: true,
    };
    let mut last: Option<String> = None;
    read_each(path, &mut |key, _value| {
        checked.entries += 1;
        if let Some(prev) = &last {
            if key == *prev {
                return Err(format!(
                    "key {} appears twice; a snapshot holds each key once: remove one",
                    strata_core::model::key_excerpt(key.as_bytes())
                ));
            }
            checked.in_order &= key > *prev;
        }
        last = Some(key);
        Ok(())
    })?;
    Ok(checked)
}

/// The second pass: the entries in chunks of up to `chunk`, in file order, each
/// handed to `send` (which returns false to stop early).
pub fn read_chunks(
    path: &Path,
    chunk: usize,
    send: &mut dyn FnMut(SnapshotEntries) -> bool,
) -> Result<()> {
    let mut batch = Vec::with_capacity(chunk);
    let mut stopped = false;
    let read = read_each(path, &mut |key, value| {
        batch.push((key, value));
        if batch.len() >= chunk && !send(std::mem::replace(&mut batch, Vec::with_capacity(chunk))) {
            stopped = true;
            return Err("stopped".into());
        }
        Ok(())
    });
    if stopped {
        return Ok(());
    }
    read?;
    if !batch.is_empty() {
        send(batch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text).unwrap();
        f
    }

    #[test]
    fn checks_then_streams_in_chunks() {
        let f = file(b"\xef\xbb\xbf{\"/a\": \"1\", \"/b\": \"2\", \"/c\": \"3\"}\n");
        let checked = check_file(f.path()).unwrap();
        assert_eq!(
            checked,
            Checked {
                entries: 3,
                in_order: true
            }
        );
        let mut chunks = Vec::new();
        read_chunks(f.path(), 2, &mut |c| {
            chunks.push(c.len());
            true
        })
        .unwrap();
        assert_eq!(chunks, [2, 1]);
    }

    #[test]
    fn out_of_order_twice_and_broken_files_are_said() {
        let unsorted = file(br#"{"/b": "1", "/a": "2"}"#);
        assert!(!check_file(unsorted.path()).unwrap().in_order);
        let twice = file(br#"{"/a": "1", "/a": "2"}"#);
        let err = check_file(twice.path()).unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
        let broken = file(br#"{"/a": "1", "/b": 2}"#);
        let err = check_file(broken.path()).unwrap_err().to_string();
        assert!(err.contains("strings"), "{err}");
        let cut = file(br#"{"/a": "1", "/b"#);
        let err = check_file(cut.path()).unwrap_err().to_string();
        assert!(err.contains("not valid JSON"), "{err}");
    }
}
