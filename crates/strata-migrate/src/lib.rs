//! Versioned migrations of data already in a store, in the manner of Flyway and sqlx
//! but for a key-value keyspace.
//!
//! A migrations folder holds one folder per *area* (`users`, `nodes`), each with
//! `<version>_<name>.toml` files of declarative steps ([`mod@file`], [`step`]). Areas are
//! independent; within one, versions apply in order. The store records what was
//! applied, with checksums, under `/_strata/migrations/<area>/` ([`state`]); a per-area
//! lock ([`lock`]) makes concurrent runners take turns, and the runner ([`runner`])
//! rewrites each object exactly once under compare-and-swap, recording progress in the
//! same transactions so that a killed run resumes where it stopped. [`plan()`] shows the
//! exact key changes first, by running the same code on an in-memory copy.

pub mod file;
pub mod lock;
pub mod pattern;
pub mod plan;
pub mod run;
pub mod runner;
mod scan;
pub mod spec;
pub mod state;
pub mod step;

use std::collections::BTreeMap;

pub use file::{load_dir, new_file, Migration};
pub use plan::{plan, EntityChanges, PlanValue, PlannedChange, PlannedMigration};
pub use run::{MigrationReport, RunEvent, StepStats, UpOptions};
pub use runner::up;
pub use state::{Applied, Counts, InProgress};

use lock::LockRecord;
use state::AreaState;
use strata_core::Store;

/// Area name → its migrations in version order.
pub type Areas = BTreeMap<String, Vec<Migration>>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },

    #[error("{context}: {source}")]
    Store {
        context: String,
        #[source]
        source: strata_core::Error,
    },

    #[error("the migration state at {key} is unreadable ({reason}); it was not written by strata: inspect it with `strata get {key}`")]
    Corrupt { key: String, reason: String },

    #[error("area {area} is being migrated by {holder}; wait for it, or let the lock expire if that runner is dead")]
    Locked { area: String, holder: String },

    #[error("lost the migration lock of area {area}, now held by {holder} (a pause longer than the lock's expiry?); nothing more was written: run again to finish")]
    LockLost { area: String, holder: String },

    #[error("the migrations do not match what the store records:\n  {}", problems.join("\n  "))]
    Invalid { problems: Vec<String> },

    #[error("area {area} has no folder among the migrations (areas: {})", if known.is_empty() { "none".to_owned() } else { known.join(", ") })]
    UnknownArea { area: String, known: Vec<String> },

    #[error("{area} {migration}, step {step}: {reason}")]
    Step {
        area: String,
        migration: String,
        step: String,
        reason: String,
    },

    #[error("interrupted while applying {area} {migration}: the batches written so far and the progress are recorded and the lock is released; apply the migrations again to finish")]
    Interrupted { area: String, migration: String },

    #[error("stopped after applying {}: {source}", done.join(", "))]
    Stopped {
        done: Vec<String>,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    pub(crate) fn store(context: impl Into<String>, source: strata_core::Error) -> Self {
        Error::Store {
            context: context.into(),
            source,
        }
    }
}

/// What is wrong between an area's files and its recorded state (Flyway's validate):
/// an applied migration changed or missing, a new one below the current version, an
/// in-progress one changed. Empty when all is well.
pub fn validate(area: &str, migrations: &[Migration], state: &AreaState) -> Vec<String> {
    let mut problems = Vec::new();
    let local: BTreeMap<u64, &Migration> = migrations.iter().map(|m| (m.version, m)).collect();
    let short = |c: &str| c.chars().take(12).collect::<String>();
    for (version, applied) in &state.applied {
        match local.get(version) {
            None => problems.push(format!(
                "{area} {version:04}_{}: applied on {} by {}, but there is no such file in the area's folder; restore it",
                applied.name, applied.applied_at, applied.applied_by
            )),
            Some(m) if m.checksum != applied.checksum => problems.push(format!(
                "{area} {}: applied with checksum {}, but {} now has checksum {}; an applied migration must not change: \
                 restore the file and put the change in a new migration",
                m.label(),
                short(&applied.checksum),
                m.path.display(),
                short(&m.checksum)
            )),
            Some(_) => {}
        }
    }
    let current = state.current();
    for m in migrations {
        let running = state
            .progress
            .as_ref()
            .is_some_and(|p| p.version == m.version);
        if m.version < current && !state.applied.contains_key(&m.version) && !running {
            problems.push(format!(
                "{}: version {} is below the area's current version {current} and was never applied; \
                 give it a version above {current}",
                m.path.display(),
                m.version
            ));
        }
    }
    if let Some(p) = &state.progress {
        match local.get(&p.version) {
            None => problems.push(format!(
                "{area} {:04}_{}: in progress (started {} by {}), but its file is gone; restore it and run again",
                p.version, p.name, p.started_at, p.by
            )),
            Some(m) if m.checksum != p.checksum => problems.push(format!(
                "{area} {}: in progress with checksum {}, but {} now has checksum {}; restore the file to finish it",
                m.label(),
                short(&p.checksum),
                m.path.display(),
                short(&m.checksum)
            )),
            Some(_) => {}
        }
    }
    problems
}

/// One area's state, for `migrate status`.
#[derive(Clone, Debug)]
pub struct AreaStatus {
    pub area: String,
    /// Migration files in the folder (0 when the area exists only in the store).
    pub local: usize,
    pub current: u64,
    pub applied: Vec<Applied>,
    /// Labels of the migrations `up` would apply, in order.
    pub pending: Vec<String>,
    pub in_progress: Option<InProgress>,
    pub lock: Option<LockRecord>,
    pub problems: Vec<String>,
    /// Pending files without steps yet (`migrate new`'s template): what to do with
    /// each. Not a problem of the store, but `plan` and `up` refuse them.
    pub drafts: Vec<String>,
}

/// The state of every area, local or recorded.
pub async fn status<S: Store>(store: &S, areas: &Areas) -> Result<Vec<AreaStatus>, Error> {
    let mut names: Vec<String> = areas.keys().cloned().collect();
    names.extend(state::stored_areas(store).await?);
    names.sort();
    names.dedup();
    let none = Vec::new();
    let mut out = Vec::new();
    for area in names {
        let migrations = areas.get(&area).unwrap_or(&none);
        let recorded = state::read(store, &area).await?;
        let current = recorded.current();
        let pending = migrations
            .iter()
            .filter(|m| m.version > current)
            .map(Migration::label)
            .collect();
        let drafts = migrations
            .iter()
            .filter(|m| m.is_draft() && m.version > current)
            .map(|m| format!("{}: {}", m.path.display(), runner::DRAFT))
            .collect();
        out.push(AreaStatus {
            drafts,
            local: migrations.len(),
            current,
            applied: recorded.applied.values().cloned().collect(),
            pending,
            problems: validate(&area, migrations, &recorded),
            in_progress: recorded.progress,
            lock: recorded.lock,
            area,
        });
    }
    Ok(out)
}

/// Splits the areas by the store that holds their keys, for a keyspace whose prefixes
/// live in several stores (layers): `route` names the stores (any ids) that hold keys
/// under a prefix. An area's record and lock then live in its store, and areas of
/// different stores run independently. An area whose steps reach keys in two stores
/// (or in none) is refused, with its patterns named: its objects could not be
/// rewritten in one transaction each. An area of drafts only (no steps, so no keys
/// yet) goes with `drafts`, so that status lists it.
pub fn split_areas<K: Ord + Clone + std::fmt::Display>(
    areas: &Areas,
    route: impl Fn(&str) -> Vec<K>,
    drafts: K,
) -> Result<BTreeMap<K, Areas>, Error> {
    let mut out: BTreeMap<K, Areas> = BTreeMap::new();
    let mut problems = Vec::new();
    for (area, migrations) in areas {
        let mut stores: Vec<K> = Vec::new();
        let mut patterns: Vec<String> = Vec::new();
        for step in migrations.iter().flat_map(|m| &m.steps) {
            for pattern in step.patterns() {
                for store in route(&pattern.scan_prefix()) {
                    if !stores.contains(&store) {
                        stores.push(store.clone());
                    }
                    patterns.push(format!("{} ({store})", pattern.as_str()));
                }
            }
        }
        patterns.dedup();
        match stores.as_slice() {
            [one] => {
                out.entry(one.clone())
                    .or_default()
                    .insert(area.clone(), migrations.clone());
            }
            // Drafts have no steps yet: listed by status, refused by plan and up.
            [] if migrations.iter().all(Migration::is_draft) => {
                out.entry(drafts.clone())
                    .or_default()
                    .insert(area.clone(), migrations.clone());
            }
            [] => problems.push(format!(
                "area {area}: its patterns lie outside every layer; add a layer for them"
            )),
            _ => problems.push(format!(
                "area {area} reaches keys in several stores: {}; an area's migrations must \
                 stay within one layer's store (split the area by layer)",
                patterns.join(", ")
            )),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::Invalid { problems })
    }
}

/// `migrate verify`: every applied migration still matches its file.
pub async fn verify<S: Store>(store: &S, areas: &Areas) -> Result<Vec<AreaStatus>, Error> {
    let statuses = status(store, areas).await?;
    let problems: Vec<String> = statuses.iter().flat_map(|s| s.problems.clone()).collect();
    if problems.is_empty() {
        Ok(statuses)
    } else {
        Err(Error::Invalid { problems })
    }
}
