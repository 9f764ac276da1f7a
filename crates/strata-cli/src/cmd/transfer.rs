//! Two-store commands: copy, mirror, diff.

use std::io::Write;

use serde_json::json;
use strata_core::key::display_key;
use strata_core::mirror::{mirror as run_mirror, MirrorOptions, MirrorStatus};
use strata_core::transfer::{copy as run_copy, diff as run_diff, CopyOptions, Rewrite, Selection};

use super::open_url;
use crate::cli::*;
use crate::output::{plural, print_json, stdout};
use crate::Outcome;

fn selection(endpoints: &Endpoints, rewrites: &[String]) -> anyhow::Result<Selection> {
    Ok(Selection {
        prefixes: endpoints
            .prefixes
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect(),
        rewrites: rewrites
            .iter()
            .map(|r| Rewrite::parse(r))
            .collect::<Result<_, _>>()?,
    })
}

pub async fn copy(opts: &StoreOpts, args: CopyArgs) -> anyhow::Result<Outcome> {
    let sel = selection(&args.endpoints, &args.rewrites)?;
    let from = open_url(&args.endpoints.from, opts).await?;
    let to = open_url(&args.endpoints.to, opts).await?;
    let copy_opts = CopyOptions {
        dry_run: args.dry_run,
        delete_extra: args.delete_extra,
        batch: None,
    };
    let mut progress = super::snapshot::Progress::new(0);
    let report = run_copy(&from, &to, &sel, &copy_opts, &mut |r| progress.update(r)).await;
    progress.finish();
    let report = report?;
    let extra: Vec<String> = report.extra.iter().map(|k| display_key(k)).collect();
    if args.format == Format::Json {
        print_json(&json!({
            "source_revision": report.source_revision, "keys": report.keys,
            "to_write": report.to_write, "written": report.load.changed,
            "extra": extra, "deleted_extra": report.deleted_extra,
            "source_digest": report.source_digest, "target_digest": report.target_digest,
            "verified": report.verified, "dry_run": args.dry_run,
        }))?;
    } else {
        let mut out = stdout();
        if args.dry_run {
            writeln!(
                out,
                "would copy {} at source revision {}: {} to write, {} already in place",
                plural(report.keys, "key"),
                report.source_revision,
                report.to_write,
                report.keys - report.to_write
            )?;
        } else {
            writeln!(
                out,
                "copied {} at source revision {}: {} written, {} already in place",
                plural(report.keys, "key"),
                report.source_revision,
                report.load.changed,
                report.load.unchanged
            )?;
            writeln!(
                out,
                "verified: source digest {} {} target",
                report.source_digest,
                if report.verified {
                    "matches the"
                } else {
                    "DOES NOT match the"
                }
            )?;
        }
        if !extra.is_empty() {
            let verb = if report.deleted_extra > 0 {
                "deleted"
            } else {
                "found (keep them, or delete with --delete-extra)"
            };
            writeln!(
                out,
                "{} in the target that the source lacks, {verb}:",
                plural(extra.len(), "key")
            )?;
            for key in extra.iter().take(20) {
                writeln!(out, "  {key}")?;
            }
            if extra.len() > 20 {
                writeln!(out, "  … and {} more", extra.len() - 20)?;
            }
        }
        out.flush()?;
    }
    if !args.dry_run && !report.verified {
        anyhow::bail!(
            "the target does not match the source after the copy (another writer changed it?); run the copy again"
        );
    }
    Ok(Outcome::Ok)
}

pub async fn mirror(opts: &StoreOpts, args: MirrorArgs) -> anyhow::Result<Outcome> {
    let sel = selection(&args.endpoints, &args.rewrites)?;
    let from = open_url(&args.endpoints.from, opts).await?;
    let to = open_url(&args.endpoints.to, opts).await?;
    let mirror_opts = MirrorOptions {
        name: args.name.clone(),
        report_every: args.report_every,
    };
    let as_json = args.status;
    let mut report = move |s: &MirrorStatus| {
        eprintln!(
            "mirror: applied revision {} of {} (lag {} revisions, {:.1} s); {} changes applied, {} keys copied",
            s.applied_revision, s.source_revision, s.lag_revisions, s.lag_seconds, s.changes_applied, s.copied
        );
        if as_json {
            println!("{}", status_json(s));
        }
    };
    let status = run_mirror(&from, &to, &sel, &mirror_opts, &mut report, shutdown()).await?;
    eprintln!(
        "mirror stopped at source revision {}",
        status.applied_revision
    );
    if args.status {
        println!("{}", status_json(&status));
    }
    Ok(Outcome::Ok)
}

fn status_json(s: &MirrorStatus) -> serde_json::Value {
    json!({
        "applied_revision": s.applied_revision, "source_revision": s.source_revision,
        "lag_revisions": s.lag_revisions, "lag_seconds": s.lag_seconds,
        "changes_applied": s.changes_applied, "copied": s.copied,
    })
}

/// Completes on SIGINT or SIGTERM.
pub(super) async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

pub async fn diff(opts: &StoreOpts, args: DiffArgs) -> anyhow::Result<Outcome> {
    let from = open_url(&args.endpoints.from, opts).await?;
    let to = open_url(&args.endpoints.to, opts).await?;
    let prefixes: Vec<Vec<u8>> = args
        .endpoints
        .prefixes
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    let report = run_diff(&from, &to, &prefixes).await?;
    let keys = |list: &[Vec<u8>]| list.iter().map(|k| display_key(k)).collect::<Vec<_>>();
    if args.format == Format::Json {
        print_json(&json!({
            "only_in_from": keys(&report.only_in_from),
            "only_in_to": keys(&report.only_in_to),
            "different": keys(&report.different),
        }))?;
    } else {
        let mut out = stdout();
        let mut lines: Vec<(&Vec<u8>, char)> = report
            .only_in_from
            .iter()
            .map(|k| (k, '-'))
            .chain(report.only_in_to.iter().map(|k| (k, '+')))
            .chain(report.different.iter().map(|k| (k, '~')))
            .collect();
        lines.sort();
        for (key, mark) in lines {
            writeln!(out, "{mark} {}", display_key(key))?;
        }
        out.flush()?;
        eprintln!(
            "{} compared: {} only in --from, {} only in --to, {} different",
            plural(report.keys, "key"),
            report.only_in_from.len(),
            report.only_in_to.len(),
            report.different.len()
        );
    }
    Ok(if report.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Mismatch
    })
}
