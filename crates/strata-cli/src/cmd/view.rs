//! Browsing commands: ls (one level), tree (a subtree), watch (live changes).

use std::io::Write;

use serde_json::json;
use strata_core::{EventKind, KeySpan, Store, WatchRequest};
use strata_ops::listing::{dir_prefix, list_children, walk_tree};
use strata_ops::txn_json::event_json;
use strata_store::AnyStore;

use crate::cli::*;
use crate::output::{note, pad, plural, print_json, show, show_cut, stdout};
use crate::Outcome;

pub async fn ls(store: &AnyStore, args: LsArgs) -> anyhow::Result<Outcome> {
    let (revision, children) = list_children(store, &args.prefix).await?;
    if args.format == Format::Json {
        let items: Vec<_> = children
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "key": c.key,
                    "value": c.value.as_deref().map(|v| String::from_utf8_lossy(v).into_owned()),
                    "keys_below": c.descendants,
                })
            })
            .collect();
        print_json(
            &json!({"prefix": dir_prefix(&args.prefix), "revision": revision, "children": items}),
        )?;
        return Ok(Outcome::Ok);
    }
    let mut out = stdout();
    // Names are data: the column is at most 48 wide, longer names run past it.
    let width = children
        .iter()
        .map(|c| c.name.chars().count() + 1)
        .max()
        .unwrap_or(0)
        .min(48);
    for c in &children {
        if let Some(value) = &c.value {
            writeln!(out, "{}  = {}", pad(&c.name, width), show_cut(value, 60))?;
        }
        if c.descendants > 0 {
            let noun = if c.descendants == 1 { "key" } else { "keys" };
            writeln!(
                out,
                "{}  {} {noun}",
                pad(&format!("{}/", c.name), width),
                c.descendants
            )?;
        }
    }
    out.flush()?;
    if children.is_empty() {
        note!("{}", nothing_under(store, &args.prefix).await?);
    }
    Ok(Outcome::Ok)
}

/// What to say when a level is empty: that the path is a key (read it with `get`),
/// that keys start with `/` (the path has none), or that nothing is there.
async fn nothing_under(store: &AnyStore, prefix: &str) -> anyhow::Result<String> {
    let key = prefix.trim_end_matches('/');
    if !key.is_empty() && store.get(key.as_bytes()).await?.is_some() {
        return Ok(format!(
            "{key} is a key, not a level: `strata get {key}` reads it"
        ));
    }
    if !prefix.is_empty() && !prefix.starts_with('/') {
        let rooted = format!("/{prefix}");
        let (_, below) = list_children(store, &rooted).await?;
        if !below.is_empty()
            || store
                .get(rooted.trim_end_matches('/').as_bytes())
                .await?
                .is_some()
        {
            return Ok(format!(
                "nothing under {}; keys are paths from the root: did you mean `strata ls {rooted}`?",
                dir_prefix(prefix)
            ));
        }
    }
    Ok(format!("nothing under {}", dir_prefix(prefix)))
}

pub async fn tree(store: &AnyStore, args: TreeArgs) -> anyhow::Result<Outcome> {
    if args.format == Format::Json {
        return tree_json(store, &args.prefix).await;
    }
    let mut out = stdout();
    writeln!(out, "{}", dir_prefix(&args.prefix))?;
    let mut keys = 0u64;
    walk_tree(store, &args.prefix, |line| {
        let indent = "  ".repeat(line.depth + 1);
        let written = match &line.value {
            Some(value) => {
                keys += 1;
                writeln!(
                    out,
                    "{indent}{} = {}",
                    line.label,
                    show_cut(value, args.width)
                )
            }
            None => writeln!(out, "{indent}{}", line.label),
        };
        written.map_err(|e| strata_core::Error::backend("stdout", "write", e).into())
    })
    .await?;
    out.flush()?;
    note!("{}", plural(keys, "key"));
    Ok(Outcome::Ok)
}

/// `tree -o json`: `{"prefix", "revision", "tree"}` where the tree nests one object
/// per level; a key that is also a level keeps its value under `""`. Values are text
/// (non-UTF-8 bytes replaced).
async fn tree_json(store: &AnyStore, prefix: &str) -> anyhow::Result<Outcome> {
    use serde_json::{Map, Value};
    let base = dir_prefix(prefix);
    let mut root = Map::new();
    let revision = strata_core::scan(store, KeySpan::prefix(base.as_bytes()), 0, |page| {
        for kv in page {
            let rel = String::from_utf8_lossy(&kv.key[base.len()..]).into_owned();
            let value = Value::String(String::from_utf8_lossy(&kv.value).into_owned());
            let mut level = &mut root;
            let mut parts = rel.split('/').peekable();
            while let Some(part) = parts.next() {
                if parts.peek().is_none() {
                    match level.get_mut(part) {
                        Some(Value::Object(below)) => {
                            below.insert(String::new(), value);
                        }
                        _ => {
                            level.insert(part.to_owned(), value);
                        }
                    }
                    break;
                }
                let entry = level
                    .entry(part.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::String(_) = entry {
                    // The key seen first is also a level: keep its value under "".
                    let held = std::mem::replace(entry, Value::Object(Map::new()));
                    if let Value::Object(below) = entry {
                        below.insert(String::new(), held);
                    }
                }
                let Value::Object(below) = entry else {
                    unreachable!("made an object just above")
                };
                level = below;
            }
        }
        Ok(())
    })
    .await?;
    print_json(&json!({"prefix": base, "revision": revision, "tree": root}))?;
    Ok(Outcome::Ok)
}

pub async fn watch(store: &AnyStore, args: WatchArgs) -> anyhow::Result<Outcome> {
    let prefix = args.prefix || args.key.ends_with('/');
    if prefix && !args.prefix {
        // Before this release `watch P` always meant a prefix.
        eprintln!(
            "warning: watching {} as a prefix because it ends with /; say `strata watch \
             --prefix {}` (without --prefix, watch follows one key from the next release)",
            args.key, args.key
        );
    }
    let span = if prefix {
        KeySpan::prefix(args.key.as_bytes())
    } else {
        KeySpan::key(args.key.as_bytes())
    };
    if let Some(from) = args.from_rev {
        let current = current_revision(store).await?;
        if from > current + 1 {
            note!(
                "revision {from} is beyond the store's current revision {current}: nothing to \
                 replay; waiting for revision {from} and the changes after it"
            );
        }
    }
    let req = WatchRequest {
        span,
        start_revision: args.from_rev.unwrap_or(0),
    };
    let mut watcher = store.watch(req).await?;
    let mut seen = 0u64;
    if args.count == Some(0) {
        return Ok(Outcome::Ok);
    }
    loop {
        let batch = tokio::select! {
            batch = watcher.next() => batch,
            _ = tokio::signal::ctrl_c() => return Ok(Outcome::Ok),
        };
        let Some(batch) = batch else {
            return Ok(Outcome::Ok);
        };
        let mut out = stdout();
        for event in batch? {
            match args.format {
                Format::Json => writeln!(out, "{}", event_json(&event))?,
                Format::Text => match event.kind {
                    EventKind::Put => writeln!(
                        out,
                        "PUT {} = {} (revision {})",
                        show(&event.kv.key),
                        show(&event.kv.value),
                        event.revision()
                    )?,
                    EventKind::Delete => writeln!(
                        out,
                        "DELETE {} (revision {})",
                        show(&event.kv.key),
                        event.revision()
                    )?,
                },
            }
            seen += 1;
            if args.count.is_some_and(|n| seen >= n) {
                out.flush()?;
                return Ok(Outcome::Ok);
            }
        }
        // Flush per batch so a pipe reader sees changes as they happen.
        out.flush()?;
    }
}

/// The store's current revision (one count-only read).
pub(super) async fn current_revision(store: &AnyStore) -> anyhow::Result<i64> {
    let probe = strata_core::RangeRequest::new(KeySpan::key(b"/".to_vec())).count_only();
    Ok(store.range(probe).await?.revision)
}
