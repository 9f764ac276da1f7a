//! `strata backup …`: run, watch, log, diff, restore, verify.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use strata_backup::{
    BackupOptions, BackupReport, BackupRequest, Identity, KeyChange, WatchUpdate, Writer,
};
use strata_core::clock::format_rfc3339;
use strata_store::AnyStore;

use super::{open, open_url};
use crate::cli::{BackupCommand, BackupShape, BackupWriteArgs, Format, StoreOpts};
use crate::log;
use crate::output::{is_quiet, note, plural, print_json, show, stdout, summary};
use crate::Outcome;

/// Resolves the arguments into options (the library creates the repository first
/// when writing).
fn options(
    url: &str,
    shape: &BackupShape,
    write: Option<&BackupWriteArgs>,
) -> anyhow::Result<BackupOptions> {
    let writer = match write {
        Some(w) => Some(Writer {
            author: Identity::parse(&w.author)?,
            committer: w.committer.as_deref().map(Identity::parse).transpose()?,
            push: w.push.clone(),
        }),
        None => None,
    };
    Ok(BackupRequest {
        repo: shape.repo.repo.clone(),
        prefixes: shape.prefixes.clone(),
        schema: shape.schema.clone(),
        encrypt_key: shape.encrypt_secrets.clone(),
        fingerprint_key: shape.fingerprint_key.clone(),
        store_url: url.to_owned(),
        writer,
        progress: progress(),
    }
    .resolve()?)
}

/// What a backup reads: the store, or each layer's store of a layered keyspace with
/// the keys it holds (each read at its own revision).
fn parts(store: &AnyStore) -> anyhow::Result<Vec<strata_backup::Part<'_, AnyStore>>> {
    let AnyStore::Layered(layers) = store else {
        return Ok(strata_backup::single(store));
    };
    let mut out = Vec::new();
    for (name, part, spans) in layers.parts() {
        out.push(strata_backup::Part {
            name: name.to_owned(),
            store: part?,
            spans,
        });
    }
    Ok(out)
}

/// Progress of a long full backup on stderr: a line every few seconds.
fn progress() -> strata_backup::OnStage {
    let last = std::sync::Mutex::new(std::time::Instant::now());
    strata_backup::OnStage::new(move |stage| {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < Duration::from_secs(2) {
            return;
        }
        *last = std::time::Instant::now();
        match stage {
            strata_backup::Stage::Reading { keys } => log::info(
                &format!("full backup: {keys} keys read"),
                json!({"keys_read": keys}),
            ),
            strata_backup::Stage::Writing { files, total } => log::info(
                &format!("full backup: {files}/{total} files written"),
                json!({"files_written": files, "files": total}),
            ),
        }
    })
}

fn report_line(r: &BackupReport) -> String {
    let revision = strata_backup::source::describe(&r.revisions);
    match &r.commit {
        Some(c) => format!(
            "committed {} at revision {revision}: {} added, {} changed, {} removed ({} written{})",
            &c[..12],
            r.added,
            r.changed,
            r.removed,
            plural(r.files_written, "file"),
            if r.full { ", full backup" } else { "" }
        ),
        None => format!("nothing changed up to revision {revision}: no commit"),
    }
}

pub async fn command(opts: &StoreOpts, command: BackupCommand) -> anyhow::Result<Outcome> {
    match command {
        BackupCommand::Log {
            target,
            repo,
            format,
        } => log(&repo.repo, &target, format),
        BackupCommand::Diff {
            from,
            to,
            repo,
            format,
        } => diff(&repo.repo, &from, &to, format),
        BackupCommand::Run { args, format } => {
            let store = open(opts).await?;
            let options = options(&opts.store, &args.shape, Some(&args))?;
            let report = strata_backup::run_parts(&parts(&store)?, &options).await?;
            match format {
                Format::Json => print_json(&report_json(&report))?,
                Format::Text => summary!("{}", report_line(&report)),
            }
            Ok(Outcome::Ok)
        }
        BackupCommand::Watch {
            args,
            debounce,
            check_every,
            metrics,
            format,
        } => watch(opts, &args, debounce, check_every, metrics, format).await,
        BackupCommand::Verify { shape, format } => {
            let store = open(opts).await?;
            let options = options(&opts.store, &shape, None)?;
            let v = strata_backup::verify_parts(&parts(&store)?, &options).await?;
            let describe = strata_backup::source::describe;
            let note = if v.compared == v.revisions {
                String::new()
            } else {
                format!(
                    "; the commit records revision {}, which the store has compacted, and no backed-up key changed since",
                    describe(&v.revisions)
                )
            };
            if format == Format::Json {
                print_json(&json!({
                    "ok": true, "commit": v.commit, "revision": v.revision,
                    "revisions": v.revisions, "compared_at": v.compared_at,
                    "compared": v.compared, "keys": v.keys, "digest": v.digest,
                }))?;
                return Ok(Outcome::Ok);
            }
            summary!(
                "ok: commit {} holds {}, the same as the store at revision {} (digest {}){note}",
                &v.commit[..12],
                plural(v.keys, "key"),
                describe(&v.compared),
                v.digest
            );
            Ok(Outcome::Ok)
        }
        BackupCommand::Restore {
            target,
            at,
            dry_run,
            yes,
            force,
            in_batches,
            all,
            to,
            shape,
            format,
        } => {
            let options = options(&opts.store, &shape, None)?;
            let report = if all {
                let url = to.context("--all needs --to URL")?;
                let target = open_url(&url, opts).await?;
                // A line every few seconds on a long rebuild.
                let mut last = std::time::Instant::now();
                let mut progress = |r: &strata_ops::load::LoadReport| {
                    if last.elapsed() >= Duration::from_secs(2) {
                        last = std::time::Instant::now();
                        note!(
                            "restore --all: {}/{} keys written",
                            r.changed + r.unchanged,
                            r.total
                        );
                    }
                };
                strata_backup::restore_all(&target, &options, &at, &mut progress).await?
            } else {
                let store = open(opts).await?;
                let target = target.context("name a key, an object or a prefix to restore")?;
                let how = strata_backup::RestoreHow {
                    dry_run,
                    force,
                    in_batches,
                };
                // The plan shown is the plan applied: each write is conditioned on the
                // revision its key had when the plan was read, so a change made while
                // the question was open is a conflict, not a different restore.
                let plan = strata_backup::plan_restore(&store, &options, &target, &at).await?;
                if dry_run {
                    plan.report
                } else {
                    if !yes {
                        confirm_restore(&target, &at, &plan.report)?;
                    }
                    strata_backup::apply_restore(&store, plan, how).await?
                }
            };
            if format == Format::Json {
                let keys = |keys: &[Vec<u8>]| keys.iter().map(|k| show(k)).collect::<Vec<_>>();
                print_json(&json!({
                    "dry_run": dry_run, "commit": report.commit, "revision": report.revision,
                    "revisions": report.revisions,
                    "put": keys(&report.put), "deleted": keys(&report.deleted),
                    "unchanged": report.unchanged, "secrets_kept": keys(&report.secrets_kept),
                    "store_revision": report.store_revision,
                }))?;
                return Ok(Outcome::Ok);
            }
            let mut out = stdout();
            if dry_run {
                for k in &report.put {
                    writeln!(out, "put {}", show(k))?;
                }
                for k in &report.deleted {
                    writeln!(out, "delete {}", show(k))?;
                }
            }
            if dry_run || !is_quiet() {
                writeln!(
                    out,
                    "{} {} and {} {} from commit {} (revision {}); {} already as backed up",
                    if dry_run { "would restore" } else { "restored" },
                    plural(report.put.len(), "key"),
                    if dry_run { "would delete" } else { "deleted" },
                    report.deleted.len(),
                    &report.commit[..12],
                    strata_backup::source::describe(&report.revisions),
                    report.unchanged
                )?;
            }
            out.flush()?;
            if !report.secrets_kept.is_empty() {
                eprintln!(
                    "{} secret keys are backed up as fingerprints and were left as they are (back up with --encrypt-secrets to restore them)",
                    report.secrets_kept.len()
                );
            }
            Ok(Outcome::Ok)
        }
    }
}

/// How many keys of a restore plan the question shows.
const SHOWN: usize = 20;

/// Without --yes: shows the restore's plan (a dry run) and asks, on a terminal only.
/// A plan that changes nothing needs no question.
fn confirm_restore(
    target: &str,
    at: &str,
    plan: &strata_backup::RestoreReport,
) -> anyhow::Result<()> {
    let changes = plan.put.len() + plan.deleted.len();
    if changes == 0 {
        return Ok(());
    }
    let mut shown = String::new();
    let lines = plan
        .put
        .iter()
        .map(|k| format!("  put {}\n", show(k)))
        .chain(
            plan.deleted
                .iter()
                .map(|k| format!("  delete {}\n", show(k))),
        );
    for line in lines.take(SHOWN) {
        shown.push_str(&line);
    }
    if changes > SHOWN {
        shown.push_str(&format!(
            "  … and {} more (--dry-run lists them all)\n",
            changes - SHOWN
        ));
    }
    let what = format!(
        "restoring {target} from commit {} (revision {}, --at {at}) writes {} and deletes {}",
        &plan.commit[..12],
        strata_backup::source::describe(&plan.revisions),
        plural(plan.put.len(), "key"),
        plural(plan.deleted.len(), "key"),
    );
    crate::output::confirm(
        &format!("{what}:\n{shown}restore?"),
        &format!(
            "refusing to restore without --yes: standard input is not a terminal, so there is \
             no one to confirm that {what}; review it with --dry-run, then add --yes"
        ),
        "nothing restored",
    )
}

/// `backup watch`: the library's loop, its commits printed as they come, its
/// failures and recoveries logged, its status fed to the metrics server.
async fn watch(
    opts: &StoreOpts,
    args: &BackupWriteArgs,
    debounce: f64,
    check_every: Duration,
    metrics: Option<std::net::SocketAddr>,
    format: Format,
) -> anyhow::Result<Outcome> {
    let store = open(opts).await?;
    let options = options(&opts.store, &args.shape, Some(args))?;
    let how = strata_backup::WatchOptions {
        debounce: Duration::from_secs_f64(debounce.max(0.0)),
        check_every,
    };
    let monitor = strata_http::Monitor::new();
    let feed = strata_http::BackupFeed::new(&monitor, &opts.store);
    let server = super::serve_metrics(metrics, monitor).await?;
    log::info(
        &format!(
            "backing up {} into {} continuously ({} s debounce); stop with Ctrl-C",
            options.store_label,
            options.repo.display(),
            how.debounce.as_secs_f64()
        ),
        json!({"store": options.store_label, "repo": options.repo.display().to_string()}),
    );
    let store_what = format!("backup: the store {}", options.store_label);
    let backup_what = format!("backup: backing up {}", options.store_label);
    let (mut store_error, mut backup_error) = (None, None);
    let mut on_update = |update: WatchUpdate<'_>| {
        feed.observe(update);
        let status = match update {
            WatchUpdate::Backup { report, status } => {
                if report.commit.is_some() {
                    match format {
                        Format::Json => println!("{}", report_json(report)),
                        Format::Text => summary!("{}", commit_line(report)),
                    }
                }
                status
            }
            WatchUpdate::Status(status) => status,
        };
        store_error = log::transition(&store_error, &status.store_error, &store_what, json!({}));
        backup_error =
            log::transition(&backup_error, &status.backup_error, &backup_what, json!({}));
    };
    let result = strata_backup::watch_parts(
        &parts(&store)?,
        &options,
        &how,
        &mut on_update,
        super::transfer::shutdown(),
    )
    .await;
    if let Some(server) = server {
        server.shutdown().await?;
    }
    result?;
    Ok(Outcome::Ok)
}

/// A commit of `backup watch`: its text line, or with `--log-format json` a log line
/// with the report's fields.
fn commit_line(r: &BackupReport) -> String {
    if !log::is_json() {
        return report_line(r);
    }
    log::line(log::Level::Info, &report_line(r), report_json(r))
}

/// A backup run's report as `-o json` prints it (and `--log-format json` logs it).
fn report_json(r: &BackupReport) -> Value {
    json!({
        "commit": r.commit, "revision": r.revision, "revisions": r.revisions, "full": r.full,
        "added": r.added,
        "changed": r.changed, "removed": r.removed, "files_written": r.files_written,
        "keys_read": r.keys_read,
    })
}

fn value_text(v: &Option<Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(Value::String(s)) => show(s.as_bytes()),
        Some(other) => other.to_string(),
    }
}

fn change_json(c: &KeyChange) -> Value {
    json!({"key": String::from_utf8_lossy(&c.key), "before": c.before, "after": c.after})
}

fn print_changes(out: &mut impl Write, changes: &[KeyChange], indent: &str) -> std::io::Result<()> {
    for c in changes {
        let key = show(&c.key);
        match (&c.before, &c.after) {
            (None, a) => writeln!(out, "{indent}+ {key} = {}", value_text(a))?,
            (b, None) => writeln!(out, "{indent}- {key} (was {})", value_text(b))?,
            (b, a) => writeln!(
                out,
                "{indent}~ {key}: {} -> {}",
                value_text(b),
                value_text(a)
            )?,
        }
    }
    Ok(())
}

fn log(repo: &Path, target: &str, format: Format) -> anyhow::Result<Outcome> {
    let entries = strata_backup::log(repo, target)?;
    if format == Format::Json {
        let items: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({"commit": e.commit, "time": format_rfc3339(e.time), "author": e.author, "revision": e.revision,
                            "changes": e.changes.iter().map(change_json).collect::<Vec<_>>()})
            })
            .collect();
        print_json(&json!(items))?;
        return Ok(Outcome::Ok);
    }
    let mut out = stdout();
    for e in &entries {
        writeln!(
            out,
            "{} {} revision {} by {}",
            &e.commit[..12],
            format_rfc3339(e.time),
            e.revision,
            e.author
        )?;
        print_changes(&mut out, &e.changes, "  ")?;
    }
    out.flush()?;
    if entries.is_empty() {
        eprintln!("{target} appears in no commit of {}", repo.display());
        return Ok(Outcome::Mismatch);
    }
    Ok(Outcome::Ok)
}

fn diff(repo: &Path, from: &str, to: &str, format: Format) -> anyhow::Result<Outcome> {
    let changes = strata_backup::diff(repo, from, to)?;
    if format == Format::Json {
        print_json(&json!(changes.iter().map(change_json).collect::<Vec<_>>()))?;
    } else {
        let mut out = stdout();
        print_changes(&mut out, &changes, "")?;
        out.flush()?;
    }
    Ok(if changes.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Mismatch
    })
}
