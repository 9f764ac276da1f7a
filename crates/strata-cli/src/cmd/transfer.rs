//! Two-store commands: copy, mirror, diff.

use std::io::Write;

use serde_json::json;
use strata_core::key::display_key;
use strata_ops::mirror::{
    mirror as run_mirror, mirror_parts, MirrorOptions, MirrorStatus, SourcePart,
};
use strata_ops::transfer::{copy as run_copy, diff as run_diff, CopyOptions, Rewrite, Selection};
use strata_store::AnyStore;

use super::open_named;
use crate::cli::*;
use crate::log;
use crate::output::{is_quiet, note, plural, print_json, stdout};
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
        within: Vec::new(),
    })
}

pub async fn copy(opts: &StoreOpts, args: CopyArgs) -> anyhow::Result<Outcome> {
    let sel = selection(&args.endpoints, &args.rewrites)?;
    let from = open_named(&args.endpoints.from, "--from", opts.create, opts).await?;
    let to = open_named(
        &args.endpoints.to,
        "--to",
        opts.create || !args.dry_run,
        opts,
    )
    .await?;
    let copy_opts = CopyOptions {
        dry_run: args.dry_run,
        delete_extra: args.delete_extra,
        batch: None,
    };
    let mut progress = super::snapshot::LoadBar::new(0);
    let report = run_copy(&from, &to, &sel, &copy_opts, &mut |r| progress.update(r)).await;
    progress.finish();
    let report = report?;
    let extra: Vec<String> = report.extra.iter().map(|k| display_key(k)).collect();
    if args.format == Format::Json {
        print_json(&json!({
            "source_revision": report.source_revision, "keys": report.keys,
            "to_write": report.to_write, "written": report.load.changed,
            "extra": extra, "deleted_extra": report.deleted_extra, "leased": report.leased,
            "source_digest": report.source_digest, "target_digest": report.target_digest,
            "verified": report.verified, "dry_run": args.dry_run,
        }))?;
    } else if !is_quiet() || args.dry_run {
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
            if report.leased > 0 {
                writeln!(
                    out,
                    "{} written with a lease of the TTL left in the source",
                    plural(report.leased, "key")
                )?;
            }
            // The library refuses an unverified copy: here the digests match.
            writeln!(
                out,
                "verified: source digest {} matches the target",
                report.source_digest
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
    Ok(Outcome::Ok)
}

pub async fn mirror(opts: &StoreOpts, args: MirrorArgs) -> anyhow::Result<Outcome> {
    let sel = selection(&args.endpoints, &args.rewrites)?;
    let from = open_named(&args.endpoints.from, "--from", opts.create, opts).await?;
    let to = open_named(&args.endpoints.to, "--to", true, opts).await?;
    let mirror_opts = MirrorOptions {
        name: args.name.clone(),
        report_every: args.report_every,
    };
    let monitor = strata_http::Monitor::new();
    let feed = strata_http::MirrorFeed::new(&monitor, &args.endpoints.from, &args.endpoints.to);
    let server = super::serve_metrics(args.metrics, monitor).await?;
    let source = format!(
        "mirror: the source store {}",
        strata_store::redact(&args.endpoints.from)
    );
    let target = format!(
        "mirror: writing to the target store {}",
        strata_store::redact(&args.endpoints.to)
    );
    let as_json = args.status;
    // A line per report, but during a run of retried failures (reported each time)
    // no more than one per half period, besides the warnings.
    let every = args.report_every / 2;
    let mut last_line: Option<std::time::Instant> = None;
    let (mut source_error, mut target_error) = (None, None);
    let mut report = move |s: &MirrorStatus| {
        feed.observe(s);
        source_error = log::transition(&source_error, &s.source_error, &source, json!({}));
        target_error = log::transition(&target_error, &s.target_error, &target, json!({}));
        if last_line.is_some_and(|t| t.elapsed() < every) && !s.is_healthy() {
            return;
        }
        last_line = Some(std::time::Instant::now());
        log::info(
            &format!(
                "mirror: applied revision {} (lag {} revisions, {:.1} s); {} changes applied, {} keys copied",
                applied(s), s.lag_revisions, s.lag_seconds, s.changes_applied, s.copied
            ),
            status_json(s),
        );
        if as_json {
            println!("{}", status_json(s));
        }
    };
    let status = match &from {
        // One mirror per store of the source, each from its own revision.
        AnyStore::Layered(layers) => {
            let mut parts = Vec::new();
            for (name, store, spans) in layers.parts() {
                parts.push(SourcePart {
                    name: name.to_owned(),
                    store: store?,
                    spans,
                });
            }
            mirror_parts(&parts, &to, &sel, &mirror_opts, &mut report, shutdown()).await
        }
        _ => run_mirror(&from, &to, &sel, &mirror_opts, &mut report, shutdown()).await,
    };
    if let Some(server) = server {
        server.shutdown().await?;
    }
    let status = status?;
    log::info(
        &format!("mirror stopped at source revision {}", applied(&status)),
        status_json(&status),
    );
    if args.status {
        println!("{}", status_json(&status));
    }
    Ok(Outcome::Ok)
}

/// Where a mirror is: `12 of 15`, or per store of a layered source
/// `comms@5 of 5, ops@12 of 15`.
fn applied(s: &MirrorStatus) -> String {
    let one = |s: &MirrorStatus| format!("{} of {}", s.applied_revision, s.source_revision);
    if s.parts.is_empty() {
        return one(s);
    }
    s.parts
        .iter()
        .map(|(name, p)| format!("{name}@{}", one(p)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn status_json(s: &MirrorStatus) -> serde_json::Value {
    let mut out = json!({
        "applied_revision": s.applied_revision, "source_revision": s.source_revision,
        "lag_revisions": s.lag_revisions, "lag_seconds": s.lag_seconds,
        "changes_applied": s.changes_applied, "copied": s.copied, "recopies": s.recopies,
        "errors": s.errors,
        "source_error": s.source_error, "target_error": s.target_error,
    });
    if !s.parts.is_empty() {
        out["parts"] = s
            .parts
            .iter()
            .map(|(name, p)| (name.clone(), status_json(p)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    out
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
    let from = open_named(&args.endpoints.from, "--from", opts.create, opts).await?;
    let to = open_named(&args.endpoints.to, "--to", opts.create, opts).await?;
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
        note!(
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
