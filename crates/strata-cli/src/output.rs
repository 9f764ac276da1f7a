//! Printing helpers: a buffered stdout whose errors (a closed pipe) propagate instead
//! of panicking, and the text rendering of keys and values.

use std::io::{self, BufWriter, Stdout, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use serde_json::Value;

/// Buffered standard output. Always `flush` before returning so errors surface.
/// `1 key`, `2 keys`: a count with its noun in the right number.
pub fn plural<N: TryInto<u64>>(n: N, word: &str) -> String {
    let n = n.try_into().unwrap_or(u64::MAX);
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

pub fn stdout() -> BufWriter<Stdout> {
    BufWriter::new(io::stdout())
}

/// Prints a JSON document, pretty-printed.
pub fn print_json(value: &Value) -> anyhow::Result<()> {
    let mut out = stdout();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Bytes for a text line: UTF-8 as is with control characters escaped, other bytes
/// as `\xNN`, so one value is always one line.
pub fn show(bytes: &[u8]) -> String {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return strata_core::key::display_key(bytes);
    };
    let mut out = String::with_capacity(bytes.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `show`, cut to `width` characters (0 = no cut).
pub fn show_cut(bytes: &[u8], width: usize) -> String {
    let text = show(bytes);
    if width == 0 || text.chars().count() <= width {
        return text;
    }
    let cut: String = text.chars().take(width).collect();
    format!("{cut}… ({} bytes)", bytes.len())
}

/// A file written beside its final path and renamed into place by [`AtomicFile::commit`]:
/// readers see the whole file or none. Dropped without a commit, it removes itself.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: PathBuf,
    path: PathBuf,
    out: Option<BufWriter<std::fs::File>>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let name = path
            .file_name()
            .context("the output path has no file name")?;
        let tmp = path.with_file_name(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(AtomicFile {
            tmp,
            path: path.to_owned(),
            out: Some(BufWriter::new(file)),
        })
    }

    pub fn writer(&mut self) -> &mut BufWriter<std::fs::File> {
        self.out.as_mut().expect("an uncommitted file has a writer")
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> anyhow::Result<()> {
        let out = self.out.take().expect("commit once");
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
            .with_context(|| format!("cannot write {}", self.tmp.display()))?;
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
