//! `migrate up`: apply an area's pending migrations, each object exactly once.
//!
//! Owns the run loop (lock → read state → refuse if invalid → resume what is in
//! progress → apply pending → unlock) and the records a migration writes as it goes
//! (progress, then the applied record); each step's scan is the crate's `scan`
//! module. Every write carries the lock's fence and its progress, so a crash leaves
//! either all of a batch or none of it, and progress always tells exactly which
//! objects are done.

use strata_core::clock::now_rfc3339;
use strata_core::{KeySpan, Op, Store, Txn};

use crate::file::Migration;
use crate::lock::{runner_name, Lock};
use crate::run::{progress_op, store_err, MigrationReport, RunEvent, StepStats, UpOptions};
use crate::scan::StepRun;
use crate::state::{self, applied_key, progress_key, Applied, Counts, InProgress};
use crate::{validate, Areas, Error};

/// The areas a run selects; an unknown `--area` is an error.
/// The areas `up` and `plan` work on. A selected migration without steps (the
/// template `migrate new` wrote, not yet edited) stops both before anything runs.
pub(crate) fn select<'a>(
    areas: &'a Areas,
    opts: &UpOptions,
) -> Result<Vec<(&'a String, &'a Vec<Migration>)>, Error> {
    let selected = match opts.area.as_deref() {
        None => areas.iter().collect(),
        Some(a) => areas
            .get_key_value(a)
            .map(|kv| vec![kv])
            .ok_or_else(|| Error::UnknownArea {
                area: a.to_owned(),
                known: areas.keys().cloned().collect(),
            })?,
    };
    let draft = selected
        .iter()
        .flat_map(|(_, migrations)| migrations.iter())
        .find(|m| m.is_draft() && opts.to.is_none_or(|to| m.version <= to));
    if let Some(m) = draft {
        return Err(Error::File {
            path: m.path.display().to_string(),
            reason: DRAFT.into(),
        });
    }
    Ok(selected)
}

/// What a migration without steps is told.
pub(crate) const DRAFT: &str = "it has no steps yet: uncomment one of the template's \
     [[steps]] blocks and fill it in, or delete the file";

/// Applies the pending migrations of every selected area.
pub async fn up<S: Store>(
    store: &S,
    areas: &Areas,
    opts: &UpOptions,
    on: &mut dyn FnMut(&RunEvent),
) -> Result<Vec<MigrationReport>, Error> {
    let owner = runner_name();
    let mut reports = Vec::new();
    for (area, migrations) in select(areas, opts)? {
        let result = async {
            let mut lock = Lock::acquire(store, area, &owner, opts.lock_ttl, opts.wait).await?;
            let result = up_area(store, &mut lock, area, migrations, opts, on, &mut reports).await;
            // Keep the lock if we lost it (it is someone else's now).
            if !matches!(result, Err(Error::LockLost { .. })) {
                lock.release(store).await?;
            }
            result
        }
        .await;
        if let Err(source) = result {
            return Err(if reports.is_empty() {
                source
            } else {
                Error::Stopped {
                    done: reports
                        .iter()
                        .map(|r| format!("{} {}", r.area, r.label))
                        .collect(),
                    source: Box::new(source),
                }
            });
        }
    }
    Ok(reports)
}

/// One area, lock held.
pub(crate) async fn up_area<S: Store>(
    store: &S,
    lock: &mut Lock,
    area: &str,
    migrations: &[Migration],
    opts: &UpOptions,
    on: &mut dyn FnMut(&RunEvent),
    reports: &mut Vec<MigrationReport>,
) -> Result<(), Error> {
    let state = state::read(store, area).await?;
    let problems = validate(area, migrations, &state);
    if !problems.is_empty() {
        return Err(Error::Invalid { problems });
    }
    let current = state.current();
    let mut todo: Vec<(&Migration, Option<InProgress>)> = Vec::new();
    if let Some(p) = state.progress {
        let m = migrations.iter().find(|m| m.version == p.version);
        todo.push((m.expect("validate checks that it exists"), Some(p)));
    }
    for m in migrations {
        let in_progress = todo.first().is_some_and(|(t, _)| t.version == m.version);
        if m.version > current && !in_progress && opts.to.is_none_or(|to| m.version <= to) {
            todo.push((m, None));
        }
    }
    for (m, progress) in todo {
        let report = run_migration(store, lock, m, progress, opts, on).await?;
        on(&RunEvent::Done(report.clone()));
        reports.push(report);
    }
    Ok(())
}

async fn run_migration<S: Store>(
    store: &S,
    lock: &mut Lock,
    m: &Migration,
    progress: Option<InProgress>,
    opts: &UpOptions,
    on: &mut dyn FnMut(&RunEvent),
) -> Result<MigrationReport, Error> {
    let resumed = progress.is_some();
    on(&RunEvent::Started {
        area: m.area.clone(),
        label: m.label(),
        resumed,
    });
    let mut p = match progress {
        Some(p) => p,
        None => {
            let p = InProgress {
                version: m.version,
                name: m.name.clone(),
                checksum: m.checksum.clone(),
                step: 0,
                cursor: None,
                started_at: now_rfc3339(),
                by: lock.owner().to_owned(),
                counts: Counts::default(),
            };
            write_progress(store, lock, m, &p).await?;
            p
        }
    };
    let mut steps: Vec<StepStats> = m
        .steps
        .iter()
        .map(|s| StepStats {
            label: s.label(),
            ..StepStats::default()
        })
        .collect();
    while p.step < m.steps.len() {
        let i = p.step;
        on(&RunEvent::Step {
            index: i,
            of: m.steps.len(),
            label: steps[i].label.clone(),
        });
        let mut run = StepRun {
            store,
            lock: &mut *lock,
            m,
            step: &m.steps[i],
            opts,
            stats: &mut steps[i],
        };
        run.run(&mut p, on).await?;
        if i + 1 < m.steps.len() {
            p.step = i + 1;
            p.cursor = None;
            write_progress(store, lock, m, &p).await?;
        } else {
            p.step = m.steps.len();
        }
    }
    let applied = Applied {
        version: m.version,
        name: m.name.clone(),
        checksum: m.checksum.clone(),
        applied_at: now_rfc3339(),
        applied_by: lock.owner().to_owned(),
        counts: p.counts,
    };
    let txn = Txn::new().when([lock.fence()]).and_then([
        Op::delete(KeySpan::key(progress_key(&m.area).into_bytes())),
        Op::put(
            applied_key(&m.area, m.version).into_bytes(),
            serde_json::to_vec(&applied).expect("records serialize"),
        ),
    ]);
    let resp = store.txn(txn).await.map_err(|e| store_err(m, e))?;
    if !resp.succeeded {
        return Err(lock.lost(store).await);
    }
    Ok(MigrationReport {
        area: m.area.clone(),
        label: m.label(),
        description: m.description.clone(),
        resumed,
        steps,
        total: p.counts,
    })
}

async fn write_progress<S: Store>(
    store: &S,
    lock: &Lock,
    m: &Migration,
    p: &InProgress,
) -> Result<(), Error> {
    let txn = Txn::new()
        .when([lock.fence()])
        .and_then([progress_op(&m.area, p)]);
    let resp = store.txn(txn).await.map_err(|e| store_err(m, e))?;
    if resp.succeeded {
        Ok(())
    } else {
        Err(lock.lost(store).await)
    }
}
