//! Key-value commands: get, put, del, cas, cad, txn, history, compact, and the
//! question a destructive one asks on a terminal (refused in a script without
//! `--yes`); what needs asking is decided in `strata_ops::guard`.

use std::io::Write;

use anyhow::Context;
use serde_json::json;
use strata_core::key::display_key;
use strata_core::{
    Compare, CompareOp, EventKind, KeySpan, KeyValue, Op, OpResponse, RangeRequest, Store, Txn,
};
use strata_ops::guard;
use strata_ops::txn_json::{event_json, kv_json, parse_txn, range_json, txn_response_json};
use strata_store::AnyStore;

use super::read_value;
use crate::cli::*;
use crate::output::{field, pair, plural, print_json, show, stdout, summary};
use crate::Outcome;

pub async fn get(store: &AnyStore, args: GetArgs) -> anyhow::Result<Outcome> {
    let span = if args.prefix {
        KeySpan::prefix(args.key.as_bytes())
    } else {
        KeySpan::key(args.key.as_bytes())
    };
    if args.prefix && args.limit == 0 && args.format == Format::Text {
        // Stream page by page at one revision: a million keys in bounded memory.
        let mut out = stdout();
        strata_core::scan(store, span, args.rev.unwrap_or(0), |page| {
            page.iter()
                .try_for_each(|kv| {
                    if args.keys_only {
                        writeln!(out, "{}", field(&kv.key, true))
                    } else {
                        writeln!(out, "{}", pair(&kv.key, &kv.value))
                    }
                })
                .map_err(|e| strata_core::Error::backend("stdout", "write", e))
        })
        .await?;
        out.flush()?;
        return Ok(Outcome::Ok);
    }
    let mut req = RangeRequest::new(span)
        .at_revision(args.rev.unwrap_or(0))
        .with_limit(args.limit);
    req.keys_only = args.keys_only;
    let resp = store.range(req).await?;
    if !args.prefix && resp.kvs.is_empty() {
        // Keys below it: the user most likely means the subtree.
        let below = format!("{}/", args.key.trim_end_matches('/'));
        let sub = RangeRequest::new(KeySpan::prefix(below.clone().into_bytes()))
            .at_revision(args.rev.unwrap_or(0))
            .with_limit(1)
            .count_only();
        let has_keys_below = store.range(sub).await.is_ok_and(|r| r.count > 0);
        if has_keys_below {
            eprintln!(
                "key {} not found, but keys below it exist: `strata get --prefix {below}` or `strata tree {below}` shows them",
                args.key
            );
        } else {
            eprintln!("key {} not found", args.key);
        }
        return Ok(Outcome::Mismatch);
    }
    if args.format == Format::Json {
        print_json(&range_json(&resp))?;
        return Ok(Outcome::Ok);
    }
    let mut out = stdout();
    for kv in &resp.kvs {
        if args.keys_only {
            writeln!(out, "{}", field(&kv.key, true))?;
        } else if args.prefix {
            writeln!(out, "{}", pair(&kv.key, &kv.value))?;
        } else {
            // A single value is printed as is, so `strata get K > file` keeps its bytes.
            out.write_all(&kv.value)?;
            if !kv.value.ends_with(b"\n") {
                writeln!(out)?;
            }
        }
    }
    if resp.more {
        writeln!(out, "… more keys (raise --limit)")?;
    }
    out.flush()?;
    Ok(Outcome::Ok)
}

pub async fn put(store: &AnyStore, args: PutArgs) -> anyhow::Result<Outcome> {
    let value = read_value(&args.value)?;
    let (revision, prev) = store.put(args.key.as_bytes(), &value).await?;
    match args.format {
        Format::Json => {
            print_json(&json!({"revision": revision, "prev_kv": prev.as_ref().map(kv_json)}))?
        }
        Format::Text => summary!("OK (revision {revision})"),
    }
    Ok(Outcome::Ok)
}

pub async fn del(store: &AnyStore, args: DelArgs) -> anyhow::Result<Outcome> {
    if args.prefix {
        return del_prefix(store, args).await;
    }
    let (revision, deleted) = store.delete(KeySpan::key(args.key.as_bytes())).await?;
    match args.format {
        Format::Json => print_json(&json!({"revision": revision, "deleted": deleted}))?,
        Format::Text => summary!("deleted {deleted} (revision {revision})"),
    }
    if deleted == 0 {
        eprintln!("key {} not found", args.key);
        return Ok(Outcome::Mismatch);
    }
    Ok(Outcome::Ok)
}

/// `del --prefix`: the library's plan (one read), the warning and the question, then
/// the delete of exactly the keys read.
async fn del_prefix(store: &AnyStore, args: DelArgs) -> anyhow::Result<Outcome> {
    let plan = guard::delete_prefix_plan(store, args.key.as_bytes()).await?;
    if plan.crosses_segment {
        let segments: Vec<String> = plan.segments.iter().map(|s| show(s)).collect();
        eprintln!(
            "warning: the prefix {:?} does not end with / and matches keys of several segments \
             ({}{}); end it with / to delete one subtree only",
            args.key,
            segments.join(", "),
            if plan.segment_count > plan.segments.len() as u64 {
                ", …"
            } else {
                ""
            }
        );
    }
    if args.dry_run {
        if args.format == Format::Json {
            let keys: Vec<String> = plan.keys().map(show).collect();
            print_json(
                &json!({"dry_run": true, "revision": plan.revision, "count": plan.count, "keys": keys}),
            )?;
        } else {
            let mut out = stdout();
            for key in plan.keys() {
                writeln!(out, "delete {}", show(key))?;
            }
            writeln!(
                out,
                "would delete {} (read at revision {}); nothing deleted",
                plural(plan.count, "key"),
                plan.revision
            )?;
            out.flush()?;
        }
        return Ok(Outcome::Ok);
    }
    if plan.needs_confirmation() && !args.yes {
        let mut shown = format!(
            "{} under the prefix {:?} (read at revision {}), among them:\n",
            plural(plan.count, "key"),
            args.key,
            plan.revision
        );
        for key in &plan.sample {
            shown.push_str(&format!("  {}\n", show(key)));
        }
        if plan.count > plan.sample.len() as u64 {
            shown.push_str(&format!(
                "  … and {} more (--dry-run lists them all)\n",
                plan.count - plan.sample.len() as u64
            ));
        }
        crate::output::confirm(
            &format!("{shown}delete these {} keys?", plan.count),
            &format!(
                "refusing to delete {} under {:?} without --yes: standard input is not a \
                 terminal, so there is no one to confirm (more than {} keys need it); \
                 review them with `strata del --prefix {:?} --dry-run`, then add --yes",
                plural(plan.count, "key"),
                args.key,
                guard::CONFIRM_ABOVE,
                args.key
            ),
            "nothing deleted",
        )?;
    }
    let report = guard::delete_planned(store, &plan).await?;
    let changed: Vec<String> = report.changed.iter().map(|k| show(k)).collect();
    match args.format {
        Format::Json => print_json(&json!({
            "revision": report.revision,
            "deleted": report.deleted,
            "already_gone": report.already_gone,
            "changed": changed,
        }))?,
        Format::Text => summary!("deleted {} (revision {})", report.deleted, report.revision),
    }
    if changed.is_empty() {
        return Ok(Outcome::Ok);
    }
    eprintln!(
        "{} changed after revision {} and were left: {}",
        plural(changed.len(), "key"),
        plan.revision,
        changed.join(", ")
    );
    Ok(Outcome::Mismatch)
}

fn expect_compare(key: &str, expect: &Expect) -> Compare {
    let key = key.as_bytes();
    if let Some(n) = expect.expect_version {
        Compare::version(key, CompareOp::Equal, n)
    } else if let Some(v) = &expect.expect_value {
        Compare::value(key, CompareOp::Equal, v.as_bytes())
    } else if let Some(rev) = expect.expect_mod_revision {
        Compare::mod_revision(key, CompareOp::Equal, rev)
    } else {
        Compare::absent(key)
    }
}

fn describe_expect(expect: &Expect) -> String {
    if let Some(n) = expect.expect_version {
        format!("version {n}")
    } else if let Some(v) = &expect.expect_value {
        format!("value {:?}", v)
    } else if let Some(rev) = expect.expect_mod_revision {
        format!("mod_revision {rev}")
    } else {
        "absent".into()
    }
}

fn describe_current(kv: Option<&KeyValue>) -> String {
    match kv {
        None => "absent".into(),
        Some(kv) => format!(
            "version {}, mod_revision {}, value {:?}",
            kv.version,
            kv.mod_revision,
            show(&kv.value)
        ),
    }
}

/// Runs a compare + op with a read of the key on failure, and reports.
async fn guarded(
    store: &AnyStore,
    key: &str,
    expect: &Expect,
    op: Op,
    format: Format,
    verb: &str,
) -> anyhow::Result<Outcome> {
    let txn = Txn::new()
        .when([expect_compare(key, expect)])
        .and_then([op])
        .or_else([Op::get(KeySpan::key(key.as_bytes()))]);
    let resp = store.txn(txn).await?;
    let current = match resp.responses.first() {
        Some(OpResponse::Range(r)) if !resp.succeeded => r.kvs.first().cloned(),
        _ => None,
    };
    if format == Format::Json {
        print_json(&json!({
            "succeeded": resp.succeeded,
            "revision": resp.revision,
            "current": current.as_ref().map(kv_json),
        }))?;
    }
    if resp.succeeded {
        if format == Format::Text {
            summary!("OK (revision {})", resp.revision);
        }
        return Ok(Outcome::Ok);
    }
    eprintln!(
        "compare failed: {verb} of {key} expected {}, but the key is {}",
        describe_expect(expect),
        describe_current(current.as_ref())
    );
    Ok(Outcome::Mismatch)
}

pub async fn cas(store: &AnyStore, args: CasArgs) -> anyhow::Result<Outcome> {
    let value = read_value(&args.value)?;
    let op = Op::put(args.key.as_bytes(), value);
    guarded(store, &args.key, &args.expect, op, args.format, "cas").await
}

pub async fn cad(store: &AnyStore, args: CadArgs) -> anyhow::Result<Outcome> {
    if args.expect.expect_absent || args.expect.expect_version == Some(0) {
        anyhow::bail!(
            "cad of {} expecting it absent would delete nothing; expect a version or value",
            args.key
        );
    }
    let op = Op::delete(KeySpan::key(args.key.as_bytes()));
    guarded(store, &args.key, &args.expect, op, args.format, "cad").await
}

pub async fn txn(store: &AnyStore, args: TxnArgs) -> anyhow::Result<Outcome> {
    let name = args.file.display().to_string();
    let shown = if name == "-" {
        "standard input".to_owned()
    } else {
        name.clone()
    };
    let bytes = if name == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map(|_| buf)
    } else {
        std::fs::read(&args.file)
    }
    .with_context(|| format!("cannot read {shown}"))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{shown} is not UTF-8 text (byte {} is invalid): a transaction is JSON text",
            e.utf8_error().valid_up_to() + 1
        )
    })?;
    let txn = parse_txn(&text, &name)?;
    let resp = store.txn(txn).await?;
    if args.format == Format::Json {
        print_json(&txn_response_json(&resp))?;
    } else {
        let mut out = stdout();
        let branch = if resp.succeeded { "SUCCESS" } else { "FAILURE" };
        writeln!(out, "{branch} (revision {})", resp.revision)?;
        for r in &resp.responses {
            match r {
                OpResponse::Put { .. } => writeln!(out, "put OK")?,
                OpResponse::Delete { deleted, .. } => writeln!(out, "deleted {deleted}")?,
                OpResponse::Range(range) => {
                    for kv in &range.kvs {
                        writeln!(out, "{}", pair(&kv.key, &kv.value))?;
                    }
                }
            }
        }
        out.flush()?;
    }
    Ok(if resp.succeeded {
        Outcome::Ok
    } else {
        Outcome::Mismatch
    })
}

pub async fn history(store: &AnyStore, args: HistoryArgs) -> anyhow::Result<Outcome> {
    let events = store.history(args.key.as_bytes()).await?;
    if args.format == Format::Json {
        print_json(&json!(events.iter().map(event_json).collect::<Vec<_>>()))?;
    } else {
        let mut out = stdout();
        if !events.is_empty() {
            writeln!(
                out,
                "{:>10}  {:<6}  {:>7}  VALUE",
                "REVISION", "CHANGE", "VERSION"
            )?;
        }
        for e in &events {
            match e.kind {
                EventKind::Put => writeln!(
                    out,
                    "{:>10}  {:<6}  {:>7}  {}",
                    e.revision(),
                    "put",
                    e.kv.version,
                    show(&e.kv.value)
                )?,
                EventKind::Delete => {
                    writeln!(out, "{:>10}  {:<6}  {:>7}", e.revision(), "delete", "-")?
                }
            }
        }
        out.flush()?;
    }
    if events.is_empty() {
        eprintln!(
            "no history for key {} (never written, or compacted away)",
            display_key(args.key.as_bytes())
        );
        return Ok(Outcome::Mismatch);
    }
    Ok(Outcome::Ok)
}

pub async fn compact(store: &AnyStore, args: CompactArgs) -> anyhow::Result<Outcome> {
    let plan = guard::compact_plan(store, args.revision).await?;
    if plan.is_done() {
        match args.format {
            Format::Json => print_json(&json!({
                "compacted": plan.compact_revision, "dropped_revisions": 0,
                "current_revision": plan.current_revision, "already": true,
            }))?,
            Format::Text => summary!(
                "nothing to do: the store is compacted at revision {} already, so history \
                 before {} is gone",
                plan.compact_revision,
                args.revision
            ),
        }
        return Ok(Outcome::Ok);
    }
    if !args.yes && plan.dropped_revisions > 0 {
        let oldest = plan.compact_revision.max(1);
        crate::output::confirm(
            &format!(
                "compacting at revision {} drops {} of history (revisions {oldest} to {}; the \
                 store is at {}): reads and watches before revision {} will fail. Compact?",
                plan.revision,
                plural(plan.dropped_revisions, "revision"),
                plan.revision - 1,
                plan.current_revision,
                plan.revision
            ),
            &format!(
                "refusing to compact without --yes: standard input is not a terminal, so there \
                 is no one to confirm that {} of history go (reads before revision {} will \
                 fail); add --yes",
                plural(plan.dropped_revisions, "revision"),
                plan.revision
            ),
            "nothing compacted",
        )?;
    }
    store.compact(args.revision).await?;
    match args.format {
        Format::Json => print_json(&json!({
            "compacted": args.revision, "dropped_revisions": plan.dropped_revisions,
            "current_revision": plan.current_revision, "already": false,
        }))?,
        Format::Text => summary!(
            "compacted: history before revision {} is gone ({} dropped)",
            args.revision,
            plural(plan.dropped_revisions, "revision")
        ),
    }
    Ok(Outcome::Ok)
}
