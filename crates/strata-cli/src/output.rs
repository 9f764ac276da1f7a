//! Talking to the user: a buffered stdout whose errors (a closed pipe) propagate
//! instead of panicking, the text rendering of keys and values (never a format width
//! taken from data), the `-o FILE` writer (regular files whole, devices and FIFOs as
//! they are), the yes/no question of guarded commands, and `-q`: the notes and
//! summaries that `--quiet` silences (data, JSON and errors are never silenced).

use std::io::{self, BufWriter, IsTerminal, Stdout, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use serde_json::Value;

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `-q/--quiet`: set once, before any command runs.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

pub fn is_quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// A note on stderr for the person at the terminal (a count, what was done, a hint),
/// silenced by `-q`. Warnings and errors use `eprintln!`.
macro_rules! note {
    ($($arg:tt)*) => {
        if !$crate::output::is_quiet() {
            eprintln!($($arg)*);
        }
    };
}

/// The text summary of a writing command on stdout (`OK (revision 7)`), silenced by
/// `-q`; its `-o json` form is printed always.
macro_rules! summary {
    ($($arg:tt)*) => {
        if !$crate::output::is_quiet() {
            println!($($arg)*);
        }
    };
}

pub(crate) use {note, summary};

/// A key or value in a `key = value` line: as is when that reads back unambiguously
/// (UTF-8, no control character, no leading `"`, no leading or trailing space and,
/// for a key, no ` = `); otherwise quoted as a JSON string, with `\xNN` for bytes
/// that are not UTF-8. So the first ` = ` outside quotes always ends the key.
pub fn field(bytes: &[u8], is_key: bool) -> String {
    let plain = std::str::from_utf8(bytes).ok().filter(|text| {
        let ambiguous = text.starts_with(['"', ' '])
            || text.ends_with(' ')
            || text.chars().any(char::is_control)
            || (is_key && text.contains(" = "));
        !ambiguous
    });
    if let Some(text) = plain {
        return text.to_owned();
    }
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

/// One `key = value` line of `get --prefix`, `txn` and friends (see [`field`]).
pub fn pair(key: &[u8], value: &[u8]) -> String {
    format!("{} = {}", field(key, true), field(value, false))
}

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

/// `text` padded with spaces to `width` characters (never a format width taken from
/// data: `{:<w$}` panics past 65,535).
pub fn pad(text: &str, width: usize) -> String {
    let n = text.chars().count();
    let mut out = String::with_capacity(text.len() + width.saturating_sub(n));
    out.push_str(text);
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(n)));
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

/// Where an `-o FILE` goes. A regular file (or a new path) is written beside its final
/// path and renamed into place by [`OutputFile::commit`], so readers see the whole file
/// or none, and dropped without a commit it removes itself. Anything else that exists
/// (a character device such as `/dev/null`, a FIFO, a socket) is written into directly:
/// renaming over it would replace the device node. `-` is standard output.
#[derive(Debug)]
pub struct OutputFile {
    target: Target,
    out: Option<BufWriter<Sink>>,
}

#[derive(Debug)]
enum Target {
    Atomic { tmp: PathBuf, path: PathBuf },
    Direct(PathBuf),
    Stdout,
}

#[derive(Debug)]
enum Sink {
    File(std::fs::File),
    Stdout(Stdout),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File(f) => f.write(buf),
            Sink::Stdout(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f) => f.flush(),
            Sink::Stdout(s) => s.flush(),
        }
    }
}

impl OutputFile {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        if path.as_os_str() == "-" {
            return Ok(OutputFile {
                target: Target::Stdout,
                out: Some(BufWriter::new(Sink::Stdout(io::stdout()))),
            });
        }
        // A path that exists and is not a regular file (following symlinks: a link to
        // /dev/null is a device) is opened for writing as it is.
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.is_dir() {
                anyhow::bail!("{} is a directory; name a file to write", path.display());
            }
            if !meta.is_file() {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .with_context(|| format!("cannot open {} for writing", path.display()))?;
                return Ok(OutputFile {
                    target: Target::Direct(path.to_owned()),
                    out: Some(BufWriter::new(Sink::File(file))),
                });
            }
        }
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
        Ok(OutputFile {
            target: Target::Atomic {
                tmp,
                path: path.to_owned(),
            },
            out: Some(BufWriter::new(Sink::File(file))),
        })
    }

    pub fn writer(&mut self) -> &mut BufWriter<impl Write> {
        self.out.as_mut().expect("an uncommitted file has a writer")
    }

    /// Flushes; a regular file is synced and renamed into place.
    pub fn commit(mut self) -> anyhow::Result<()> {
        let out = self.out.take().expect("commit once");
        let name = match &self.target {
            Target::Atomic { tmp, .. } => tmp.display().to_string(),
            Target::Direct(path) => path.display().to_string(),
            Target::Stdout => "standard output".to_owned(),
        };
        let sink = out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {name}"))?;
        if let (Sink::File(file), Target::Atomic { tmp, path }) = (sink, &self.target) {
            file.sync_all()
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(tmp, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if let (Some(_), Target::Atomic { tmp, .. }) = (&self.out, &self.target) {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Asks `question` on the terminal; without one (a script) fails with `refusal`, and
/// with `declined` when the answer is not yes. `question` may span several lines.
pub fn confirm(question: &str, refusal: &str, declined: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("{refusal}");
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        anyhow::bail!("{declined}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `{:<width$}` with a width taken from data (a 65,535-character key
    /// segment) panicked in `strata ls`.
    #[test]
    fn pad_takes_any_width() {
        let long = "x".repeat(70_000);
        assert_eq!(pad(&long, 70_001).len(), 70_001);
        assert_eq!(pad("ab", 1), "ab");
        assert_eq!(pad("zoë", 5), "zoë  ");
    }

    /// `get --prefix` lines read back unambiguously: a key holding ` = `, a value with
    /// a newline, a value that looks quoted, bytes that are not UTF-8.
    #[test]
    fn pairs_are_unambiguous() {
        assert_eq!(pair(b"/a/b", b"x = y"), "/a/b = x = y");
        assert_eq!(pair(b"/a = b", b"c"), r#""/a = b" = c"#);
        assert_eq!(pair(b"/k", b"two\nlines"), r#"/k = "two\nlines""#);
        assert_eq!(pair(b"/k", b"\"q\""), r#"/k = "\"q\"""#);
        assert_eq!(pair(b"/k", b" pad"), r#"/k = " pad""#);
        assert_eq!(pair(b"/k", b"a\\b"), r#"/k = a\b"#);
        assert_eq!(pair(b"/k\xff", b"v"), r#""/k\xff" = v"#);
        assert_eq!(pair(b"/k", b"Zo\xc3\xab"), "/k = Zoë");
    }
}
