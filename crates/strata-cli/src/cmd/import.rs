//! `strata import`: a dump into a snapshot file, a plan, or the store.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;

use strata_core::load::{delete_fields, load_objects, plan, stale_fields, Change};
use strata_core::snapshot::SnapshotWriter;
use strata_import::mapping::Mapping;
use strata_import::{read_dump, DumpFormat};

use super::snapshot::Progress;
use crate::cli::*;
use crate::output::{plural, stdout, OutputFile};
use crate::Outcome;

pub async fn import(opts: &StoreOpts, args: ImportArgs) -> anyhow::Result<Outcome> {
    if args.prune && args.mapping.is_none() {
        anyhow::bail!("--prune works on the objects of a mapping; give --mapping FILE (a dump has no objects)");
    }
    // With a mapping, keys belong to objects, and each object is written whole.
    type Entries = Vec<(Vec<u8>, Vec<u8>)>;
    // Per entity (emit pattern): objects and keys, for the summary at the end.
    let mut entities: BTreeMap<String, (BTreeSet<String>, u64)> = BTreeMap::new();
    let mut entity_of: Option<Vec<String>> = None;
    let (entries, objects): (Entries, Option<Vec<String>>) = match (&args.mapping, &args.format) {
        (Some(mapping), _) => {
            let mapped = Mapping::load(mapping)?.run_objects(&args.source)?;
            for m in &mapped {
                let slot = entities.entry(m.entity.clone()).or_default();
                slot.0.insert(m.object.clone());
                slot.1 += 1;
            }
            entity_of = Some(mapped.iter().map(|m| m.entity.clone()).collect::<Vec<_>>());
            let objects = mapped.iter().map(|m| m.object.clone()).collect();
            let entries = mapped
                .into_iter()
                .map(|m| (m.key.into_bytes(), m.value.into_bytes()))
                .collect();
            (entries, Some(objects))
        }
        (None, Some(format)) => (read_dump(&args.source, DumpFormat::parse(format)?)?, None),
        (None, None) => {
            anyhow::bail!("give --mapping FILE for a JSON file tree, or --format for a dump")
        }
    };
    if let Some(schema) = &args.schema {
        // Check the result as a store of its own before writing anything anywhere.
        let schema = strata_schema::Schema::load(schema)?;
        let scratch = strata_core::MemStore::new();
        strata_core::load::load(&scratch, entries.clone(), None, &mut |_| {}).await?;
        let found = strata_schema::check(&scratch, &schema, b"").await?;
        if !found.is_empty() {
            let lines: Vec<String> = found
                .iter()
                .map(|v| format!("  {} {}: {}", v.kind.name(), v.key, v.detail))
                .collect();
            anyhow::bail!(
                "the import violates the schema {} in {} place(s); nothing was written:\n{}",
                args.schema
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                found.len(),
                lines.join("\n")
            );
        }
    }
    if let Some(path) = &args.output {
        write_snapshot(path, &entries)?;
        eprintln!("wrote {} keys to {}", entries.len(), path.display());
        return Ok(Outcome::Ok);
    }
    let store = super::open(opts).await?;
    // Fields of imported objects that the input no longer has: removed with --prune.
    let stale = match &objects {
        Some(objects) => {
            let set: HashSet<String> = objects.iter().cloned().collect();
            let keep: HashSet<Vec<u8>> = entries.iter().map(|(k, _)| k.clone()).collect();
            stale_fields(&store, &set, &keep).await?
        }
        None => Vec::new(),
    };
    if args.dry_run {
        let changes = plan(&store, &entries).await?;
        // Per entity with a mapping; per first path segment for a dump, the closest
        // thing it has to an entity.
        let mut groups: BTreeMap<String, [u64; 4]> = BTreeMap::new();
        for (i, ((key, _), change)) in entries.iter().zip(&changes).enumerate() {
            let group = match &entity_of {
                Some(entity) => entity[i].clone(),
                None => {
                    let text = String::from_utf8_lossy(key);
                    format!(
                        "/{}/",
                        text.trim_start_matches('/')
                            .split('/')
                            .next()
                            .unwrap_or_default()
                    )
                }
            };
            let slot = match change {
                Change::Add => 0,
                Change::Update => 1,
                Change::Same => 2,
            };
            groups.entry(group).or_default()[slot] += 1;
        }
        if let (Some(entity), Some(objects)) = (&entity_of, &objects) {
            let entity_of_object: HashMap<&str, &str> = objects
                .iter()
                .zip(entity)
                .map(|(o, e)| (o.as_str(), e.as_str()))
                .collect();
            for (object, _) in &stale {
                if let Some(e) = entity_of_object.get(object.as_str()) {
                    groups.entry((*e).to_owned()).or_default()[3] += 1;
                }
            }
        }
        let mut out = stdout();
        let title = if entity_of.is_some() {
            "ENTITY"
        } else {
            "PREFIX"
        };
        writeln!(
            out,
            "{title:<48} {:>8} {:>8} {:>10} {:>8}",
            "ADD", "CHANGE", "UNCHANGED", "REMOVE"
        )?;
        for (group, [add, change, same, remove]) in &groups {
            writeln!(
                out,
                "{group:<48} {add:>8} {change:>8} {same:>10} {remove:>8}"
            )?;
        }
        if !stale.is_empty() && !args.prune {
            eprintln!("{} stale fields are removed only with --prune", stale.len());
        }
        out.flush()?;
        eprintln!("dry run: nothing was written");
        return Ok(Outcome::Ok);
    }
    let mut progress = Progress::new(entries.len() as u64);
    let report = load_objects(&store, entries, objects, args.batch, &mut |r| {
        progress.update(r)
    })
    .await;
    progress.finish();
    let report = report?;
    println!(
        "imported {}: {} changed, {} unchanged, in {}",
        plural(report.total, "key"),
        report.changed,
        report.unchanged,
        plural(report.txns, "transaction")
    );
    if args.prune {
        let deleted = delete_fields(&store, &stale).await?;
        println!("pruned {deleted} stale fields");
    } else if !stale.is_empty() {
        eprintln!(
            "{} fields of imported objects are not in the input; --prune removes them",
            stale.len()
        );
    }
    if !entities.is_empty() {
        let mut out = stdout();
        writeln!(out, "{:<48} {:>8} {:>8}", "ENTITY", "OBJECTS", "KEYS")?;
        for (entity, (objects, keys)) in &entities {
            writeln!(out, "{entity:<48} {:>8} {keys:>8}", objects.len())?;
        }
        out.flush()?;
    }
    Ok(Outcome::Ok)
}

/// Writes the snapshot whole or not at all.
fn write_snapshot(path: &std::path::Path, entries: &[(Vec<u8>, Vec<u8>)]) -> anyhow::Result<()> {
    let mut file = OutputFile::create(path)?;
    let mut writer = SnapshotWriter::new(file.writer());
    entries.iter().try_for_each(|(k, v)| writer.entry(k, v))?;
    writer.finish()?;
    file.commit()
}
