//! `strata import`: parse the arguments, call `strata_import::run`, print.

use std::io::Write;

use strata_import::{run, DumpFormat, ImportRequest, Source};
use strata_ops::snapshot::SnapshotWriter;

use super::snapshot::LoadBar;
use crate::cli::*;
use serde_json::json;

use crate::output::{is_quiet, note, pad, plural, print_json, stdout, summary, OutputFile};
use crate::Outcome;

pub async fn import(opts: &StoreOpts, args: ImportArgs) -> anyhow::Result<Outcome> {
    if args.prune && args.mapping.is_none() {
        anyhow::bail!("--prune works on the objects of a mapping; give --mapping FILE (a dump has no objects)");
    }
    let source = match (&args.mapping, &args.format) {
        (Some(mapping), _) => Source::Tree {
            root: args.source.clone(),
            mapping: mapping.clone(),
        },
        (None, Some(format)) => Source::Dump {
            file: args.source.clone(),
            format: DumpFormat::parse(format)?,
        },
        (None, None) => {
            // A usage error (exit 2), worded for what SOURCE is.
            let what = if args.source.is_dir() {
                format!(
                    "{} is a directory: give --mapping FILE to import a JSON file tree",
                    args.source.display()
                )
            } else {
                "give --format FORMAT for a dump (etcd-v2, etcdctl-json, consul, snapshot), \
                 or --mapping FILE for a JSON file tree"
                    .to_owned()
            };
            <Cli as clap::CommandFactory>::command()
                .error(clap::error::ErrorKind::MissingRequiredArgument, what)
                .exit()
        }
    };
    let (format, out_file) =
        FormatOrPath::resolve(args.output.as_ref(), args.out.as_ref(), "import")?;
    let req = ImportRequest {
        source,
        schema: args.schema.clone(),
        batch: args.batch,
        prune: args.prune,
    };
    let prepared = run::prepare(&req).await?;
    if let Some(path) = &out_file {
        write_snapshot(path, &prepared.entries)?;
        let to_stdout = path.as_os_str() == "-";
        match format {
            // The snapshot may be standard output: then the summary goes to stderr.
            Format::Json if to_stdout => {
                note!("{}", json!({"keys": prepared.keys(), "file": null}))
            }
            Format::Json => {
                print_json(&json!({"keys": prepared.keys(), "file": path.display().to_string()}))?
            }
            Format::Text if to_stdout => note!("wrote {} keys to standard output", prepared.keys()),
            Format::Text => summary!("wrote {} keys to {}", prepared.keys(), path.display()),
        }
        return Ok(Outcome::Ok);
    }
    let store = super::open(opts).await?;
    if args.dry_run {
        let plan = run::plan(&store, &prepared).await?;
        if format == Format::Json {
            let groups: serde_json::Map<String, serde_json::Value> = plan
                .groups
                .iter()
                .map(|(group, g)| {
                    let counts = json!({"add": g.add, "change": g.change, "unchanged": g.unchanged, "remove": g.remove});
                    (group.clone(), counts)
                })
                .collect();
            let by = if plan.by_entity { "entity" } else { "prefix" };
            print_json(&json!({"dry_run": true, "by": by, "groups": groups, "stale": plan.stale}))?;
            return Ok(Outcome::Ok);
        }
        let mut out = stdout();
        let title = if plan.by_entity { "ENTITY" } else { "PREFIX" };
        writeln!(
            out,
            "{} {:>8} {:>8} {:>10} {:>8}",
            pad(title, 48),
            "ADD",
            "CHANGE",
            "UNCHANGED",
            "REMOVE"
        )?;
        for (group, g) in &plan.groups {
            writeln!(
                out,
                "{} {:>8} {:>8} {:>10} {:>8}",
                pad(group, 48),
                g.add,
                g.change,
                g.unchanged,
                g.remove
            )?;
        }
        if plan.stale > 0 && !args.prune {
            note!("{} stale fields are removed only with --prune", plan.stale);
        }
        out.flush()?;
        note!("dry run: nothing was written");
        return Ok(Outcome::Ok);
    }
    let mut progress = LoadBar::new(prepared.keys() as u64);
    let report = run::write(&store, prepared, &req, &mut |r| progress.update(r)).await;
    progress.finish();
    let report = report?;
    if format == Format::Json {
        let entities: serde_json::Map<String, serde_json::Value> = report
            .entities
            .iter()
            .map(|(entity, (objects, keys))| {
                (entity.clone(), json!({"objects": objects, "keys": keys}))
            })
            .collect();
        let l = &report.load;
        print_json(&json!({
            "total": l.total, "changed": l.changed, "unchanged": l.unchanged,
            "transactions": l.txns, "revision": l.revision, "retries": l.retries,
            "pruned": report.pruned, "stale": report.stale, "entities": entities,
        }))?;
        return Ok(Outcome::Ok);
    }
    summary!(
        "imported {}: {} changed, {} unchanged, in {}",
        plural(report.load.total, "key"),
        report.load.changed,
        report.load.unchanged,
        plural(report.load.txns, "transaction")
    );
    if args.prune {
        summary!("pruned {} stale fields", report.pruned);
    } else if report.stale > 0 {
        note!(
            "{} fields of imported objects are not in the input; --prune removes them",
            report.stale
        );
    }
    if !report.entities.is_empty() && !is_quiet() {
        let mut out = stdout();
        writeln!(out, "{} {:>8} {:>8}", pad("ENTITY", 48), "OBJECTS", "KEYS")?;
        for (entity, (objects, keys)) in &report.entities {
            writeln!(out, "{} {objects:>8} {keys:>8}", pad(entity, 48))?;
        }
        out.flush()?;
    }
    Ok(Outcome::Ok)
}

/// Writes the snapshot whole or not at all (or into a device, FIFO or stdout as is).
fn write_snapshot(path: &std::path::Path, entries: &[(Vec<u8>, Vec<u8>)]) -> anyhow::Result<()> {
    let mut file = OutputFile::create(path)?;
    let mut writer = SnapshotWriter::new(file.writer());
    entries.iter().try_for_each(|(k, v)| writer.entry(k, v))?;
    writer.finish()?;
    file.commit()
}
