//! `import` as a library call: read a source (a JSON file tree through a mapping, or a
//! dump), check it against a schema, then plan or write it into a store.
//!
//! Owns the import's rules, so that every frontend (the CLI, the web console, a
//! service) applies the same ones: the result is checked against the schema as a store
//! of its own before anything is written anywhere; with a mapping, each object is
//! written whole and fields the input no longer has are found (and removed only when
//! asked); the plan is grouped per entity (per first path segment for a dump). Writing
//! a snapshot file and printing are the frontend's.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use strata_core::{MemStore, Store};
use strata_ops::load::{self, Change, LoadReport};

use crate::dumps::{read_dump, DumpFormat, ImportError};
use crate::mapping::{Mapping, MappingError};

/// Where an import reads from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A JSON file tree, reshaped by the mapping file.
    Tree { root: PathBuf, mapping: PathBuf },
    /// A dump whose keys are kept as they are (`-` is standard input).
    Dump { file: PathBuf, format: DumpFormat },
}

/// What to import, and how.
#[derive(Clone, Debug)]
pub struct ImportRequest {
    pub source: Source,
    /// A schema the result must satisfy before anything is written.
    pub schema: Option<PathBuf>,
    /// Keys per transaction (capped at the backend's limit).
    pub batch: Option<usize>,
    /// Delete fields of imported objects that the input no longer has.
    pub prune: bool,
}

/// Why an import failed; nothing was written unless the error says so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error(transparent)]
    Dump(#[from] ImportError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error("{0}")]
    Schema(String),
    #[error("pruning removes fields of a mapping's objects, and a dump has no objects")]
    PruneWithoutObjects,
    #[error(transparent)]
    Store(#[from] strata_core::Error),
    #[error(transparent)]
    Load(#[from] strata_ops::Error),
}

/// The source read, transformed and checked: what would be written.
#[derive(Clone, Debug, Default)]
pub struct Prepared {
    /// Sorted keys and values.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// With a mapping: the object of each entry, and its entity (the emit pattern).
    objects: Option<Vec<String>>,
    entity_of: Option<Vec<String>>,
    /// Per entity: the number of objects and of keys (empty for a dump).
    pub entities: BTreeMap<String, (usize, u64)>,
}

impl Prepared {
    pub fn keys(&self) -> usize {
        self.entries.len()
    }
}

/// One line of a plan: a group's keys to add, change, leave, and stale fields to remove.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanGroup {
    pub add: u64,
    pub change: u64,
    pub unchanged: u64,
    pub remove: u64,
}

/// What an import would do, per group.
#[derive(Clone, Debug, Default)]
pub struct ImportPlan {
    /// Per entity with a mapping; per first path segment (`/sigilgate/`) for a dump.
    pub groups: BTreeMap<String, PlanGroup>,
    /// Whether the groups are entities (else prefixes).
    pub by_entity: bool,
    /// Fields of imported objects that the input no longer has.
    pub stale: usize,
}

/// What an import did.
#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    pub load: LoadReport,
    /// Stale fields deleted (with `prune`).
    pub pruned: u64,
    /// Stale fields left in place (without `prune`).
    pub stale: usize,
    /// Per entity: objects and keys imported.
    pub entities: BTreeMap<String, (usize, u64)>,
}

/// Reads and transforms the source and checks the result against the schema; touches
/// no store.
pub async fn prepare(req: &ImportRequest) -> Result<Prepared, RunError> {
    if req.prune && matches!(req.source, Source::Dump { .. }) {
        return Err(RunError::PruneWithoutObjects);
    }
    let mut prepared = match &req.source {
        Source::Tree { root, mapping } => {
            let mapped = Mapping::load(mapping)?.run_objects(root)?;
            let mut entities: BTreeMap<String, (BTreeSet<String>, u64)> = BTreeMap::new();
            for m in &mapped {
                let slot = entities.entry(m.entity.clone()).or_default();
                slot.0.insert(m.object.clone());
                slot.1 += 1;
            }
            Prepared {
                entity_of: Some(mapped.iter().map(|m| m.entity.clone()).collect()),
                objects: Some(mapped.iter().map(|m| m.object.clone()).collect()),
                entries: mapped
                    .into_iter()
                    .map(|m| (m.key.into_bytes(), m.value.into_bytes()))
                    .collect(),
                entities: entities
                    .into_iter()
                    .map(|(e, (objects, keys))| (e, (objects.len(), keys)))
                    .collect(),
            }
        }
        Source::Dump { file, format } => Prepared {
            entries: read_dump(file, *format)?,
            ..Prepared::default()
        },
    };
    if let Some(path) = &req.schema {
        check_schema(path, &prepared.entries).await?;
    }
    prepared.entries.shrink_to_fit();
    Ok(prepared)
}

/// Checks the entries as a store of their own, before anything is written anywhere.
async fn check_schema(path: &Path, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<(), RunError> {
    let schema = strata_schema::Schema::load(path).map_err(|e| RunError::Schema(e.to_string()))?;
    let scratch = MemStore::new();
    load::load(&scratch, entries.to_vec(), None, &mut |_| {}).await?;
    let found = strata_schema::check(&scratch, &schema, b"").await?;
    if found.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = found
        .iter()
        .map(|v| format!("  {} {}: {}", v.kind.name(), v.key, v.detail))
        .collect();
    Err(RunError::Schema(format!(
        "the import violates the schema {} in {} place(s); nothing was written:\n{}",
        path.display(),
        found.len(),
        lines.join("\n")
    )))
}

/// Fields of the prepared objects that the store holds and the input no longer has.
async fn stale<S: Store>(
    store: &S,
    prepared: &Prepared,
) -> Result<Vec<(String, Vec<u8>)>, RunError> {
    let Some(objects) = &prepared.objects else {
        return Ok(Vec::new());
    };
    let set: HashSet<String> = objects.iter().cloned().collect();
    let keep: HashSet<Vec<u8>> = prepared.entries.iter().map(|(k, _)| k.clone()).collect();
    Ok(strata_ops::prune::stale_fields(store, &set, &keep).await?)
}

/// What writing `prepared` would change in `store`; writes nothing.
pub async fn plan<S: Store>(store: &S, prepared: &Prepared) -> Result<ImportPlan, RunError> {
    let stale = stale(store, prepared).await?;
    let changes = load::plan(store, &prepared.entries).await?;
    let mut groups: BTreeMap<String, PlanGroup> = BTreeMap::new();
    for (i, ((key, _), change)) in prepared.entries.iter().zip(&changes).enumerate() {
        let group = match &prepared.entity_of {
            Some(entity) => entity[i].clone(),
            // A dump has no entities: its first path segment is the closest thing.
            None => {
                let text = String::from_utf8_lossy(key);
                let first = text
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .unwrap_or_default();
                format!("/{first}/")
            }
        };
        let slot = groups.entry(group).or_default();
        match change {
            Change::Add => slot.add += 1,
            Change::Update => slot.change += 1,
            Change::Same => slot.unchanged += 1,
        }
    }
    if let (Some(entity), Some(objects)) = (&prepared.entity_of, &prepared.objects) {
        let entity_of_object: HashMap<&str, &str> = objects
            .iter()
            .zip(entity)
            .map(|(o, e)| (o.as_str(), e.as_str()))
            .collect();
        for (object, _) in &stale {
            if let Some(e) = entity_of_object.get(object.as_str()) {
                groups.entry((*e).to_owned()).or_default().remove += 1;
            }
        }
    }
    Ok(ImportPlan {
        groups,
        by_entity: prepared.entity_of.is_some(),
        stale: stale.len(),
    })
}

/// Writes `prepared` into `store`: with a mapping each object whole (one transaction),
/// only what differs; then, with `prune`, deletes the stale fields. `progress` is
/// called after each batch.
pub async fn write<S: Store + Clone + 'static>(
    store: &S,
    prepared: Prepared,
    req: &ImportRequest,
    progress: load::OnBatch<'_>,
) -> Result<ImportReport, RunError> {
    let stale = stale(store, &prepared).await?;
    let entities = prepared.entities.clone();
    let report = load::load_objects(
        store,
        prepared.entries,
        prepared.objects,
        req.batch,
        progress,
    )
    .await?;
    let (pruned, left) = if req.prune {
        (strata_ops::prune::delete_fields(store, &stale).await?, 0)
    } else {
        (0, stale.len())
    };
    Ok(ImportReport {
        load: report,
        pruned,
        stale: left,
        entities,
    })
}
