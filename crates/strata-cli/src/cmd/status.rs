//! `strata status`: prints `strata_store::status_of`'s report with where the URL came
//! from; exit 1 when the store does not answer. The gathering is the library's.

use std::io::Write;

use serde_json::json;
use strata_store::StoreReport;

use crate::cli::{Format, StatusArgs, StoreOpts};
use crate::output::{pad, print_json, stdout};
use crate::Outcome;

pub async fn status(opts: &StoreOpts, args: StatusArgs) -> anyhow::Result<Outcome> {
    let report = strata_store::status_of(&opts.store, &opts.connect_options()).await?;
    let source = opts.source.name();
    if args.format == Format::Json {
        print_json(&to_json(&report, source))?;
    } else {
        print_text(&report, source)?;
    }
    if !report.reachable {
        let why = report.error.as_deref().unwrap_or("no answer");
        anyhow::bail!(
            "the store {} (from {source}) is not reachable: {why}",
            report.url
        );
    }
    Ok(Outcome::Ok)
}

fn to_json(r: &StoreReport, source: &str) -> serde_json::Value {
    let endpoints: Vec<_> = r
        .endpoints
        .iter()
        .map(|e| {
            json!({
                "endpoint": e.endpoint, "healthy": e.healthy, "leader": e.leader,
                "version": e.version, "member_id": e.member_id.map(|m| format!("{m:x}")),
                "revision": e.revision, "raft_term": e.raft_term, "db_size": e.db_size,
                "error": e.error,
            })
        })
        .collect();
    json!({
        "store": r.url, "source": source, "backend": r.backend, "reachable": r.reachable,
        "revision": r.revision, "revision_shown": r.revision_shown,
        "compact_revision": r.compact_revision, "keys": r.keys,
        "version": r.version, "error": r.error, "endpoints": endpoints,
    })
}

fn print_text(r: &StoreReport, source: &str) -> anyhow::Result<()> {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut out = stdout();
    writeln!(out, "store:     {} (from {source})", r.url)?;
    // Why not is on stderr, with the exit code.
    writeln!(out, "reachable: {}", if r.reachable { "yes" } else { "no" })?;
    if let Some(revision) = &r.revision_shown {
        let compacted = match r.compact_revision {
            Some(c) if c > 0 => format!(" (compacted up to {c})"),
            _ => String::new(),
        };
        writeln!(out, "revision:  {revision}{compacted}")?;
    }
    if let Some(keys) = r.keys {
        writeln!(out, "keys:      {keys}")?;
    }
    let version = r.version.as_deref().map(|v| format!("{} {v}", r.backend));
    writeln!(out, "version:   {}", or_dash(version))?;
    if r.reachable {
        if let Some(e) = &r.error {
            writeln!(out, "note:      {e}")?;
        }
    }
    if !r.endpoints.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{} {:<7} {:<6} {:<8} {:>9} {:>9} {:>10}  ERROR",
            pad("ENDPOINT", 24),
            "HEALTHY",
            "LEADER",
            "VERSION",
            "REVISION",
            "RAFT TERM",
            "DB SIZE"
        )?;
        for e in &r.endpoints {
            let yes = |b: bool| if b { "yes" } else { "no" };
            writeln!(
                out,
                "{} {:<7} {:<6} {:<8} {:>9} {:>9} {:>10}  {}",
                pad(&e.endpoint, 24),
                yes(e.healthy),
                yes(e.leader),
                or_dash(e.version.clone()),
                or_dash(e.revision.map(|v| v.to_string())),
                or_dash(e.raft_term.map(|v| v.to_string())),
                or_dash(e.db_size.map(|v| v.to_string())),
                e.error.as_deref().unwrap_or("")
            )?;
        }
    }
    out.flush()?;
    Ok(())
}
