//! Snapshot commands: export (store → flat JSON) and load (flat JSON → store), and
//! the progress bar that load, import and copy share.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use strata_ops::load::{load as load_entries, LoadReport};
use strata_ops::snapshot::{export as export_snapshot, read_snapshot};
use strata_ops::snapshot_stream::{check_file, read_chunks};
use strata_store::AnyStore;

use crate::cli::*;
use crate::output::{is_quiet, note, plural, print_json, summary, OutputFile};
use crate::Outcome;

pub async fn export(store: &AnyStore, args: ExportArgs) -> anyhow::Result<Outcome> {
    let prefix = args.prefix.as_bytes();
    let (format, path) = FormatOrPath::resolve(args.output.as_ref(), args.out.as_ref(), "export")?;
    let path = path.filter(|p| p.as_os_str() != "-");
    let Some(path) = path else {
        // The snapshot is standard output; the summary goes to stderr.
        let out = std::io::BufWriter::new(std::io::stdout());
        let report = export_snapshot(store, prefix, out).await?;
        match format {
            Format::Json => note!(
                "{}",
                json!({"keys": report.keys, "revision": report.revision, "file": null})
            ),
            Format::Text => note!(
                "exported {} at revision {}",
                plural(report.keys, "key"),
                store.describe_revision(report.revision)
            ),
        }
        return Ok(Outcome::Ok);
    };
    // Written beside the target and renamed: the file is whole or absent, never half.
    let mut file = OutputFile::create(&path)?;
    let report = export_snapshot(store, prefix, file.writer())
        .await
        .with_context(|| format!("cannot write {} (nothing was left there)", path.display()))?;
    file.commit()
        .with_context(|| format!("cannot write {} (nothing was left there)", path.display()))?;
    match format {
        Format::Json => print_json(&json!({
            "keys": report.keys, "revision": report.revision, "file": path.display().to_string(),
        }))?,
        Format::Text => summary!(
            "exported {} at revision {} to {}",
            plural(report.keys, "key"),
            store.describe_revision(report.revision),
            path.display()
        ),
    }
    Ok(Outcome::Ok)
}

pub async fn load(store: &AnyStore, args: LoadArgs) -> anyhow::Result<Outcome> {
    let report = if args.file.as_os_str() == "-" {
        load_whole(store, read_snapshot(&args.file)?, args.batch).await?
    } else {
        // Checked whole first, so that bad input writes nothing; then, in key order
        // (as export writes it), streamed in chunks.
        let checked = check_file(&args.file)?;
        if checked.in_order {
            load_streamed(store, &args.file, checked.entries, args.batch).await?
        } else {
            load_whole(store, read_snapshot(&args.file)?, args.batch).await?
        }
    };
    match args.format {
        Format::Json => print_json(&json!({
            "total": report.total, "changed": report.changed, "unchanged": report.unchanged,
            "transactions": report.txns, "revision": report.revision, "retries": report.retries,
        }))?,
        Format::Text => {
            if is_quiet() {
                return Ok(Outcome::Ok);
            }
            let mut out = std::io::stdout();
            if report.changed == 0 {
                writeln!(
                    out,
                    "loaded {}: 0 changes, the store already holds them",
                    plural(report.total, "key")
                )?;
            } else {
                writeln!(
                    out,
                    "loaded {}: {} changed, {} unchanged, in {} (revision {})",
                    plural(report.total, "key"),
                    report.changed,
                    report.unchanged,
                    plural(report.txns, "transaction"),
                    report.revision
                )?;
            }
            if report.retries > 0 {
                writeln!(
                    out,
                    "{} batches were retried after a lost connection or a leader change \
                     (each re-read its keys first, so none was applied twice)",
                    report.retries
                )?;
            }
        }
    }
    Ok(Outcome::Ok)
}

/// Loads entries held in memory.
async fn load_whole(
    store: &AnyStore,
    entries: Vec<(String, String)>,
    batch: Option<usize>,
) -> anyhow::Result<LoadReport> {
    let mut progress = LoadBar::new(entries.len() as u64);
    let report = load_entries(store, entries, batch, &mut |r| progress.update(r)).await;
    progress.finish();
    Ok(report?)
}

/// Entries of a snapshot file in key order, read on a thread of their own in chunks
/// of [`CHUNK`] (two in hand at most) and loaded chunk by chunk: memory stays bounded
/// whatever the file's size.
async fn load_streamed(
    store: &AnyStore,
    path: &std::path::Path,
    total: u64,
    batch: Option<usize>,
) -> anyhow::Result<LoadReport> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let path = path.to_owned();
    let reader = tokio::task::spawn_blocking(move || {
        read_chunks(&path, CHUNK, &mut |chunk| tx.blocking_send(chunk).is_ok())
    });
    let mut progress = LoadBar::new(total);
    let mut sum = LoadReport::default();
    while let Some(chunk) = rx.recv().await {
        let before = sum;
        let report = load_entries(store, chunk, batch, &mut |r| {
            progress.update(&add(&before, r, total));
        })
        .await;
        match report {
            Ok(r) => sum = add(&before, &r, total),
            Err(e) => {
                progress.finish();
                return Err(e.into());
            }
        }
    }
    progress.finish();
    reader.await??;
    Ok(sum)
}

/// Entries per chunk of a streamed load.
const CHUNK: usize = 100_000;

/// The report of the chunks before and the one in hand, as one load of `total`.
fn add(before: &LoadReport, now: &LoadReport, total: u64) -> LoadReport {
    LoadReport {
        total,
        changed: before.changed + now.changed,
        unchanged: before.unchanged + now.unchanged,
        txns: before.txns + now.txns,
        retries: before.retries + now.retries,
        revision: before.revision.max(now.revision),
    }
}

/// A progress bar with keys/s and ETA on a terminal; plain lines every few seconds
/// otherwise (logs, CI).
pub(super) struct LoadBar {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
    total: u64,
}

impl LoadBar {
    pub(super) fn new(total: u64) -> Self {
        let bar = (std::io::stderr().is_terminal() && !is_quiet()).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} keys  {per_sec}  ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        LoadBar {
            bar,
            started: Instant::now(),
            last_line: Instant::now(),
            total,
        }
    }

    pub(super) fn update(&mut self, report: &LoadReport) {
        let done = report.changed + report.unchanged;
        if report.total != self.total {
            // A copy learns its size only once it has read the source.
            self.total = report.total;
            if let Some(bar) = &self.bar {
                bar.set_length(report.total);
            }
        }
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None if is_quiet() => {}
            None if self.last_line.elapsed() > Duration::from_secs(2) && done < self.total => {
                self.last_line = Instant::now();
                let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
                eprintln!("loaded {done}/{} keys ({rate:.0} keys/s)", self.total);
            }
            None => {}
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
