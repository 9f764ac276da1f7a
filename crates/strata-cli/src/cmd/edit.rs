//! `strata edit KEY`: the value in the user's editor, written back with a
//! compare-and-swap on the revision it was read at, so that a concurrent change is
//! reported and never overwritten (the edit is then kept in a file).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use strata_core::{Compare, CompareOp, KeySpan, Op, Store, Txn};
use strata_store::AnyStore;

use crate::cli::EditArgs;
use crate::output::{note, summary};
use crate::Outcome;

pub async fn edit(store: &AnyStore, args: EditArgs) -> anyhow::Result<Outcome> {
    let key = args.key.as_bytes();
    let read = store.get(key).await?;
    let before = read.as_ref().map(|kv| kv.value.clone()).unwrap_or_default();
    let file = scratch_file(&args.key, &before)?;
    let edited = run_editor(&file.0).and_then(|()| {
        std::fs::read(&file.0).with_context(|| format!("cannot read {}", file.0.display()))
    });
    let mut after = edited?;
    // Editors end the last line with a newline; a value that had none keeps none.
    if !before.ends_with(b"\n") && after.ends_with(b"\n") {
        after.pop();
    }
    if after == before && read.is_some() {
        note!("{}: no change, nothing written", args.key);
        return Ok(Outcome::Ok);
    }
    let compare = match &read {
        Some(kv) => Compare::mod_revision(key, CompareOp::Equal, kv.mod_revision),
        None => Compare::absent(key),
    };
    let txn = Txn::new()
        .when([compare])
        .and_then([Op::put(key, after)])
        .or_else([Op::get(KeySpan::key(key))]);
    let resp = store.txn(txn).await?;
    if resp.succeeded {
        summary!("OK (revision {})", resp.revision);
        return Ok(Outcome::Ok);
    }
    let kept = file.keep();
    let was = match &read {
        Some(kv) => format!("it was read at mod_revision {}", kv.mod_revision),
        None => "it was absent when read".to_owned(),
    };
    eprintln!(
        "{} changed while you edited it ({was}), so your edit was not written; it is kept \
         in {}: `strata edit {}` again, or `strata put {} - < {}` to write it over the \
         other change",
        args.key,
        kept.display(),
        args.key,
        args.key,
        kept.display()
    );
    Ok(Outcome::Mismatch)
}

/// The value in a new file that only the user can read, removed when dropped unless
/// kept.
struct Scratch(PathBuf, bool);

impl Scratch {
    fn keep(mut self) -> PathBuf {
        self.1 = true;
        self.0.clone()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.1 {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn scratch_file(key: &str, value: &[u8]) -> anyhow::Result<Scratch> {
    let last: String = key
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("value")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let path = std::env::temp_dir().join(format!(
        "strata-edit-{}-{nanos:x}-{last}",
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let scratch = Scratch(path, false);
    file.write_all(value)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", scratch.0.display()))?;
    Ok(scratch)
}

/// `$VISUAL`, else `$EDITOR`, else `vi`, run by the shell (so `EDITOR="code --wait"`
/// works) on the terminal.
fn run_editor(file: &Path) -> anyhow::Result<()> {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".to_owned());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$@\""))
        .arg("sh")
        .arg(file)
        .status()
        .with_context(|| format!("cannot start the editor {editor:?}"))?;
    if !status.success() {
        anyhow::bail!(
            "the editor {editor:?} exited with {status}; nothing written (set VISUAL or \
             EDITOR to the editor you use)"
        );
    }
    Ok(())
}
