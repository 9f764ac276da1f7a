//! `strata migrate …`: status, plan, up, verify, new.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use strata_migrate::{Areas, Counts, PlanValue, RunEvent, StepStats, UpOptions};
use strata_store::AnyStore;

use crate::cli::{Format, MigrateCommand, MigrateSelect};
use crate::output::{is_quiet, note, plural, print_json, show, stdout, summary};
use crate::Outcome;

pub fn new(dir: &Path, area: &str, name: &str, format: Format) -> anyhow::Result<Outcome> {
    let path = strata_migrate::new_file(dir, area, name)?;
    if format == Format::Json {
        print_json(&json!({"area": area, "file": path.display().to_string()}))?;
        return Ok(Outcome::Ok);
    }
    println!("{}", path.display());
    let dir_arg = match dir.to_str() {
        Some("migrations" | "./migrations") => String::new(),
        _ => format!(" --dir {}", dir.display()),
    };
    note!("edit its steps, then preview with `strata migrate plan{dir_arg} --area {area}`");
    Ok(Outcome::Ok)
}

fn load(dir: &Path) -> anyhow::Result<Areas> {
    Ok(strata_migrate::load_dir(dir)?)
}

fn options(select: &MigrateSelect) -> UpOptions {
    UpOptions {
        area: select.area.clone(),
        to: select.to,
        ..UpOptions::default()
    }
}

pub async fn run(store: &AnyStore, command: MigrateCommand) -> anyhow::Result<Outcome> {
    match command {
        MigrateCommand::New {
            area,
            name,
            dir,
            format,
        } => new(&dir.dir, &area, &name, format),
        MigrateCommand::Status { dir, format } => {
            let mut statuses = Vec::new();
            for (store, areas) in by_store(store, load(&dir.dir)?)? {
                statuses.extend(strata_migrate::status(&store, &areas).await?);
            }
            status(statuses, format)
        }
        MigrateCommand::Verify { dir, format } => {
            let mut statuses = Vec::new();
            for (store, areas) in by_store(store, load(&dir.dir)?)? {
                statuses.extend(strata_migrate::verify(&store, &areas).await?);
            }
            let applied: usize = statuses.iter().map(|s| s.applied.len()).sum();
            if format == Format::Json {
                let areas: Vec<_> = statuses
                    .iter()
                    .map(|s| json!({"area": s.area, "current": s.current, "applied": s.applied}))
                    .collect();
                print_json(&json!({"ok": true, "applied": applied, "areas": areas}))?;
                return Ok(Outcome::Ok);
            }
            summary!(
                "ok: {} in {} match their files",
                plural(applied, "applied migration"),
                plural(statuses.len(), "area")
            );
            Ok(Outcome::Ok)
        }
        MigrateCommand::Plan {
            select,
            summary,
            schema,
            format,
        } => {
            let schema = schema
                .map(|path| strata_schema::Schema::load(&path))
                .transpose()?;
            let mut plans = Vec::new();
            for (store, areas) in by_store(store, load(&select.dir.dir)?)? {
                let opts = options(&select);
                plans.extend(strata_migrate::plan(&store, &areas, &opts, schema.as_ref()).await?);
            }
            print_plan(&plans, summary, format)?;
            Ok(Outcome::Ok)
        }
        MigrateCommand::Up {
            select,
            yes,
            wait,
            lock_ttl,
            page,
            format,
        } => {
            let opts = UpOptions {
                wait: Duration::from_secs(wait),
                lock_ttl: Duration::from_secs(lock_ttl.max(1)),
                page_keys: page.max(1),
                ..options(&select)
            };
            let groups = by_store(store, load(&select.dir.dir)?)?;
            if !yes {
                for (store, areas) in &groups {
                    confirm(store, areas, &opts).await?;
                }
            }
            let mut applied = Vec::new();
            for (store, areas) in &groups {
                applied.extend(up(store, areas, &opts, format).await?);
            }
            match format {
                Format::Json => print_json(&json!({"applied": applied}))?,
                Format::Text if applied.is_empty() => {
                    summary!("nothing to apply: every area is up to date")
                }
                Format::Text => {}
            }
            Ok(Outcome::Ok)
        }
    }
}

/// The stores to run on, each with its areas: the store itself, or for a layered
/// keyspace each layer's store with the areas whose keys it holds (their records and
/// locks live there; `strata_migrate::split_areas` refuses an area across stores).
fn by_store(store: &AnyStore, areas: Areas) -> anyhow::Result<Vec<(AnyStore, Areas)>> {
    let AnyStore::Layered(layers) = store else {
        return Ok(vec![(store.clone(), areas)]);
    };
    let stores = layers.stores_of(&strata_core::KeySpan::all());
    let first = stores
        .first()
        .map_or(String::new(), |(name, _)| (*name).to_owned());
    let mut split = strata_migrate::split_areas(
        &areas,
        |prefix| {
            layers
                .stores_of(&strata_core::KeySpan::prefix(prefix))
                .into_iter()
                .map(|(name, _)| name.to_owned())
                .collect()
        },
        first,
    )?;
    let mut out = Vec::new();
    for (name, part) in stores {
        out.push((part?.clone(), split.remove(name).unwrap_or_default()));
    }
    Ok(out)
}

fn status(statuses: Vec<strata_migrate::AreaStatus>, format: Format) -> anyhow::Result<Outcome> {
    if format == Format::Json {
        let items: Vec<_> = statuses
            .iter()
            .map(|s| {
                json!({
                    "area": s.area, "current": s.current, "local": s.local,
                    "applied": s.applied, "pending": s.pending,
                    "in_progress": s.in_progress, "lock": s.lock, "problems": s.problems,
                    "drafts": s.drafts,
                })
            })
            .collect();
        print_json(&json!(items))?;
        return Ok(with_problems(&statuses));
    }
    let mut out = stdout();
    if statuses.is_empty() {
        writeln!(
            out,
            "no areas: create one with `strata migrate new AREA NAME`"
        )?;
    } else {
        writeln!(
            out,
            "{:<16} {:>7} {:>7}  STATE",
            "AREA", "CURRENT", "PENDING"
        )?;
    }
    for s in &statuses {
        let state = if let Some(p) = &s.in_progress {
            format!(
                "in progress: {:04}_{} step {}, after {} (started {} by {}); `migrate up` finishes it",
                p.version,
                p.name,
                p.step + 1,
                p.cursor.as_deref().unwrap_or("the start"),
                p.started_at,
                p.by
            )
        } else if s.pending.is_empty() {
            "up to date".to_owned()
        } else {
            format!("pending: {}", s.pending.join(", "))
        };
        writeln!(
            out,
            "{:<16} {:>7} {:>7}  {state}",
            s.area,
            s.current,
            s.pending.len()
        )?;
        if let Some(lock) = &s.lock {
            writeln!(out, "{:<16} locked by {}", "", lock.describe())?;
        }
        for problem in &s.problems {
            writeln!(out, "{:<16} ! {problem}", "")?;
        }
        for draft in &s.drafts {
            writeln!(out, "{:<16} draft: {draft}", "")?;
        }
    }
    out.flush()?;
    Ok(with_problems(&statuses))
}

/// Exit 3 when the files and the store disagree (an edited applied migration, a
/// missing file), as `diff` does when it finds differences: a script must not read
/// such a status as fine.
fn with_problems(statuses: &[strata_migrate::AreaStatus]) -> Outcome {
    let problems: usize = statuses.iter().map(|s| s.problems.len()).sum();
    if problems == 0 {
        return Outcome::Ok;
    }
    eprintln!(
        "{}: the migrations and what the store records disagree (see above)",
        plural(problems, "problem")
    );
    Outcome::Mismatch
}

fn counts_text(c: &Counts) -> String {
    let mut text = format!(
        "{} ({} written, {} deleted)",
        plural(c.objects, "object rewrite"),
        plural(c.puts, "key"),
        c.deletes
    );
    if c.retries > 0 {
        text.push_str(&format!("; {} redone after a concurrent write", c.retries));
    }
    text
}

fn counts_json(c: &Counts) -> serde_json::Value {
    json!({"objects": c.objects, "puts": c.puts, "deletes": c.deletes, "retries": c.retries})
}

fn step_json(s: &StepStats) -> serde_json::Value {
    json!({"step": s.label, "objects_read": s.objects_seen, "objects": s.counts.objects,
           "puts": s.counts.puts, "deletes": s.counts.deletes})
}

/// What a hidden value reads as.
const HIDDEN: &str = "<secret>";

fn print_plan(
    plans: &[strata_migrate::PlannedMigration],
    summary: bool,
    format: Format,
) -> anyhow::Result<()> {
    // The library has hidden every secret already (given a schema).
    let text = |v: &Option<PlanValue>| {
        v.as_ref().map(|v| match v {
            PlanValue::Value(v) => String::from_utf8_lossy(v).into_owned(),
            PlanValue::Secret => HIDDEN.to_owned(),
        })
    };
    if format == Format::Json {
        let items: Vec<_> = plans
            .iter()
            .map(|p| {
                let changes: Vec<_> = p
                    .changes
                    .iter()
                    .map(|c| json!({"key": String::from_utf8_lossy(&c.key), "before": text(&c.before), "after": text(&c.after)}))
                    .collect();
                let entities: Vec<_> = p
                    .entities
                    .iter()
                    .map(|e| json!({"entity": e.entity, "objects": e.objects, "added": e.added,
                                    "changed": e.changed, "removed": e.removed}))
                    .collect();
                json!({"area": p.area, "migration": p.label, "description": p.description,
                       "resumes": p.resumes, "steps": p.steps.iter().map(step_json).collect::<Vec<_>>(),
                       "entities": entities, "changes": changes})
            })
            .collect();
        print_json(&json!(items))?;
        return Ok(());
    }
    let mut out = stdout();
    if plans.is_empty() {
        writeln!(out, "nothing to apply: every area is up to date")?;
    }
    for p in plans {
        let resumes = if p.resumes {
            " (finishes an interrupted run)"
        } else {
            ""
        };
        writeln!(out, "{} {}{resumes}: {}", p.area, p.label, p.description)?;
        for (i, s) in p.steps.iter().enumerate() {
            writeln!(
                out,
                "  step {} {}: {} of {} read",
                i + 1,
                s.label,
                counts_text(&s.counts),
                plural(s.objects_seen, "object")
            )?;
        }
        let added = p.changes.iter().filter(|c| c.before.is_none()).count();
        let removed = p.changes.iter().filter(|c| c.after.is_none()).count();
        let changed = p.changes.len() - added - removed;
        writeln!(
            out,
            "  keys: {added} added, {changed} changed, {removed} removed"
        )?;
        for e in &p.entities {
            writeln!(
                out,
                "    {}: {} ({} added, {} changed, {} removed)",
                e.entity,
                plural(e.objects as u64, "object"),
                plural(e.added as u64, "key"),
                e.changed,
                e.removed
            )?;
        }
        if summary {
            continue;
        }
        for c in &p.changes {
            let key = show(&c.key);
            let show = |v: &PlanValue| match v {
                PlanValue::Value(v) => show(v),
                PlanValue::Secret => HIDDEN.to_owned(),
            };
            match (&c.before, &c.after) {
                (None, Some(a)) => writeln!(out, "  + {key} = {}", show(a))?,
                (Some(b), None) => writeln!(out, "  - {key} (was {})", show(b))?,
                (Some(b), Some(a)) => writeln!(out, "  ~ {key}: {} -> {}", show(b), show(a))?,
                (None, None) => {}
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// Without --yes: show the plan's counts and ask, on a terminal only.
async fn confirm(store: &AnyStore, areas: &Areas, opts: &UpOptions) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "standard input is not a terminal, so there is no one to confirm: \
             review `strata migrate plan` and run `strata migrate up --yes`"
        );
    }
    let plans = strata_migrate::plan(store, areas, opts, None).await?;
    if plans.is_empty() {
        return Ok(());
    }
    print_plan(&plans, true, Format::Text)?;
    crate::output::confirm(
        "apply these migrations?",
        "standard input is not a terminal, so there is no one to confirm: \
         review `strata migrate plan` and run `strata migrate up --yes`",
        "nothing applied",
    )
}

/// Applies one store's areas, with progress; returns what was applied, as JSON.
async fn up(
    store: &AnyStore,
    areas: &Areas,
    opts: &UpOptions,
    format: Format,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let terminal = std::io::stderr().is_terminal() && !is_quiet();
    let mut applied = Vec::new();
    let mut bar: Option<ProgressBar> = None;
    let mut current = String::new();
    // Without a terminal (a CI log), a line every few seconds instead of a spinner.
    let mut last_line = std::time::Instant::now();
    let mut step = String::new();
    let mut on = |event: &RunEvent| match event {
        RunEvent::Started {
            area,
            label,
            resumed,
        } => {
            current = format!("{area} {label}");
            let verb = if *resumed { "resuming" } else { "applying" };
            if terminal {
                let b = ProgressBar::new_spinner();
                b.set_style(
                    ProgressStyle::with_template("{spinner} {msg}: {pos} objects, {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b.enable_steady_tick(Duration::from_millis(120));
                b.set_message(format!("{verb} {current}"));
                bar = Some(b);
            } else {
                note!("{verb} {current}");
            }
        }
        RunEvent::Step { index, of, label } => {
            step = format!("{current} step {}/{of} {label}", index + 1);
            if let Some(b) = &bar {
                b.set_message(step.clone());
            }
        }
        RunEvent::Objects { seen } => {
            if let Some(b) = &bar {
                b.set_position(*seen);
            } else if last_line.elapsed() >= Duration::from_secs(5) {
                last_line = std::time::Instant::now();
                note!("{step}: {} done", plural(*seen, "object"));
            }
        }
        RunEvent::Done(report) => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            applied.push(json!({
                "area": report.area, "migration": report.label,
                "counts": counts_json(&report.total),
            }));
            if format == Format::Text {
                summary!(
                    "applied {} {}: {}",
                    report.area,
                    report.label,
                    counts_text(&report.total)
                );
            }
        }
    };
    // The first SIGINT/SIGTERM stops the run at the next batch boundary (progress
    // recorded, lock released); a second one exits at once.
    let stop = opts.stop.clone();
    let signals = tokio::spawn(async move {
        super::transfer::shutdown().await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        eprintln!("stopping after the current batch (signal again to stop at once)");
        super::transfer::shutdown().await;
        std::process::exit(130);
    });
    let reports = strata_migrate::up(store, areas, opts, &mut on).await;
    signals.abort();
    if let Some(b) = bar.take() {
        b.abandon();
    }
    reports?;
    Ok(applied)
}
