//! `migrate plan`: the exact key changes `up` would make, with no write to the store.
//!
//! Owns the dry run: the keys the pending migrations can touch (and the area's
//! recorded state) are copied into an in-memory store, the very same runner applies
//! the migrations there one by one, and each one's before/after is diffed. So the plan
//! is what `up` does, not a second implementation of it. With a schema, the plan is
//! redacted before it is returned: no frontend can show a secret by forgetting to.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use strata_core::{KeySpan, MemStore, Store};

use crate::file::Migration;
use crate::lock::Lock;
use crate::pattern::Pattern;
use crate::run::{StepStats, UpOptions};
use crate::runner::{select, up_area};
use crate::state::{self, area_prefix, lock_key, state_prefix};
use crate::{validate, Areas, Error};

/// A value in a plan: as stored, or hidden because it is a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanValue {
    Value(Vec<u8>),
    /// A value the schema marks secret, or one seen under a secret key anywhere in the
    /// plan (a step that moves a secret writes it under a key the schema may not name).
    Secret,
}

/// One key's change in a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedChange {
    pub key: Vec<u8>,
    pub before: Option<PlanValue>,
    pub after: Option<PlanValue>,
}

/// The changes of one migration that fall on one entity (an object pattern its steps
/// read or write).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntityChanges {
    /// The pattern, e.g. `/sigilgate/users/{id}`; `(other keys)` for keys outside all.
    pub entity: String,
    /// Objects with at least one changed key.
    pub objects: usize,
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}

/// What one pending migration would do.
#[derive(Clone, Debug)]
pub struct PlannedMigration {
    pub area: String,
    pub label: String,
    pub description: String,
    pub resumes: bool,
    pub steps: Vec<StepStats>,
    pub changes: Vec<PlannedChange>,
    /// The changes counted per entity, in the order the steps name them.
    pub entities: Vec<EntityChanges>,
}

type Data = BTreeMap<Vec<u8>, Vec<u8>>;

async fn read_span<S: Store>(store: &S, prefix: &[u8], into: &mut Data) -> Result<(), Error> {
    strata_core::scan(store, KeySpan::prefix(prefix), 0, |kvs| {
        into.extend(kvs.into_iter().map(|kv| (kv.key, kv.value)));
        Ok(())
    })
    .await
    .map_err(|e| Error::store("reading the data a plan needs", e))?;
    Ok(())
}

/// Plans every pending migration of the selected areas (up to `opts.to`). With a
/// `schema`, every secret value in the plan is [`PlanValue::Secret`].
pub async fn plan<S: Store>(
    store: &S,
    areas: &Areas,
    opts: &UpOptions,
    schema: Option<&strata_schema::Schema>,
) -> Result<Vec<PlannedMigration>, Error> {
    let mut plans = plan_raw(store, areas, opts).await?;
    if let Some(schema) = schema {
        redact(&mut plans, |key| schema.classify(key).is_secret());
    }
    Ok(plans)
}

/// Hides every value under a key `secret` names, and every copy of such a value
/// anywhere in the plans.
fn redact(plans: &mut [PlannedMigration], secret: impl Fn(&[u8]) -> bool) {
    let value = |v: &Option<PlanValue>| match v {
        Some(PlanValue::Value(v)) => Some(v.clone()),
        _ => None,
    };
    let seen: std::collections::HashSet<Vec<u8>> = plans
        .iter()
        .flat_map(|p| &p.changes)
        .filter(|c| secret(&c.key))
        .flat_map(|c| [value(&c.before), value(&c.after)])
        .flatten()
        .collect();
    for c in plans.iter_mut().flat_map(|p| &mut p.changes) {
        let hide = secret(&c.key);
        for v in [&mut c.before, &mut c.after] {
            if let Some(PlanValue::Value(bytes)) = v {
                if hide || seen.contains(bytes.as_slice()) {
                    *v = Some(PlanValue::Secret);
                }
            }
        }
    }
}

async fn plan_raw<S: Store>(
    store: &S,
    areas: &Areas,
    opts: &UpOptions,
) -> Result<Vec<PlannedMigration>, Error> {
    let mut out = Vec::new();
    for (area, migrations) in select(areas, opts)? {
        let recorded = state::read(store, area).await?;
        let problems = validate(area, migrations, &recorded);
        if !problems.is_empty() {
            return Err(Error::Invalid { problems });
        }
        let pending: Vec<_> = migrations
            .iter()
            .filter(|m| {
                recorded
                    .progress
                    .as_ref()
                    .is_some_and(|p| p.version == m.version)
                    || (m.version > recorded.current() && opts.to.is_none_or(|to| m.version <= to))
            })
            .collect();
        if pending.is_empty() {
            continue;
        }
        let mut prefixes: Vec<String> = pending
            .iter()
            .flat_map(|m| m.steps.iter().flat_map(|s| s.prefixes()))
            .collect();
        prefixes.sort();
        prefixes.dedup();
        let mut data = Data::new();
        for prefix in &prefixes {
            read_span(store, prefix.as_bytes(), &mut data).await?;
        }
        let mut state_data = Data::new();
        read_span(store, area_prefix(area).as_bytes(), &mut state_data).await?;
        state_data.remove(lock_key(area).as_bytes());
        let mut copy = data.clone();
        copy.extend(state_data);
        let mem = MemStore::new();
        strata_ops::load::load(&mem, copy.into_iter().collect(), None, &mut |_| {})
            .await
            .map_err(|e| match e {
                strata_ops::Error::Store(e) => Error::store("copying into memory", e),
                other => Error::store(
                    "copying into memory",
                    strata_core::Error::backend("mem", "load", other),
                ),
            })?;
        let mut lock = Lock::acquire(
            &mem,
            area,
            "plan",
            Duration::from_secs(3600),
            Duration::ZERO,
        )
        .await?;
        let mut before = data;
        for m in pending {
            let mut reports = Vec::new();
            let step_opts = UpOptions {
                to: Some(m.version),
                ..opts.clone()
            };
            up_area(
                &mem,
                &mut lock,
                area,
                migrations,
                &step_opts,
                &mut |_| {},
                &mut reports,
            )
            .await?;
            let mut after = Data::new();
            for prefix in &prefixes {
                read_span(&mem, prefix.as_bytes(), &mut after).await?;
            }
            let reserved = state_prefix();
            after.retain(|k, _| !k.starts_with(reserved.as_bytes()));
            let report = reports.pop();
            let changes = diff(&before, &after);
            out.push(PlannedMigration {
                entities: by_entity(m, &changes),
                area: area.clone(),
                label: m.label(),
                description: m.description.clone(),
                resumes: report.as_ref().is_some_and(|r| r.resumed),
                steps: report.map(|r| r.steps).unwrap_or_default(),
                changes,
            });
            before = after;
        }
    }
    Ok(out)
}

/// Counts each change under the first pattern of the migration's steps that holds it.
fn by_entity(m: &Migration, changes: &[PlannedChange]) -> Vec<EntityChanges> {
    let mut patterns: Vec<&Pattern> = Vec::new();
    for p in m.steps.iter().flat_map(|s| s.patterns()) {
        if !patterns.iter().any(|q| q.as_str() == p.as_str()) {
            patterns.push(p);
        }
    }
    let mut counts: Vec<(EntityChanges, BTreeSet<String>)> = Vec::new();
    for c in changes {
        let key = String::from_utf8_lossy(&c.key);
        let (entity, object) = patterns
            .iter()
            .find_map(|p| p.matches(&key).map(|hit| (p.as_str(), hit.object)))
            .unwrap_or(("(other keys)", key.clone().into_owned()));
        let at = match counts.iter().position(|(e, _)| e.entity == entity) {
            Some(at) => at,
            None => {
                let entry = EntityChanges {
                    entity: entity.to_owned(),
                    ..EntityChanges::default()
                };
                counts.push((entry, BTreeSet::new()));
                counts.len() - 1
            }
        };
        let (e, objects) = &mut counts[at];
        match (&c.before, &c.after) {
            (None, _) => e.added += 1,
            (_, None) => e.removed += 1,
            _ => e.changed += 1,
        }
        objects.insert(object);
    }
    counts.sort_by_key(|(e, _)| {
        patterns
            .iter()
            .position(|p| p.as_str() == e.entity)
            .unwrap_or(usize::MAX)
    });
    counts
        .into_iter()
        .map(|(mut e, objects)| {
            e.objects = objects.len();
            e
        })
        .collect()
}

fn diff(before: &Data, after: &Data) -> Vec<PlannedChange> {
    let mut keys: Vec<&Vec<u8>> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (b, a) = (before.get(k), after.get(k));
            (b != a).then(|| PlannedChange {
                key: k.clone(),
                before: b.cloned().map(PlanValue::Value),
                after: a.cloned().map(PlanValue::Value),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, before: Option<&str>, after: Option<&str>) -> PlannedChange {
        let v = |x: Option<&str>| x.map(|x| PlanValue::Value(x.as_bytes().to_vec()));
        PlannedChange {
            key: key.as_bytes().to_vec(),
            before: v(before),
            after: v(after),
        }
    }

    /// The plan a frontend gets is redacted already: a value under a secret key, and
    /// the same value where a step moved it, under a key the schema does not name.
    #[test]
    fn a_redacted_plan_hides_secrets_also_where_a_step_moves_them() {
        let mut plans = vec![PlannedMigration {
            area: "users".into(),
            label: "0001_x".into(),
            description: String::new(),
            resumes: false,
            steps: Vec::new(),
            changes: vec![
                change("/u/1/token", Some("s3cret"), None),
                change("/moved/1/token", None, Some("s3cret")),
                change("/u/1/name", Some("ada"), Some("Ada")),
            ],
            entities: Vec::new(),
        }];
        redact(&mut plans, |key| key.ends_with(b"/u/1/token"));
        let c = &plans[0].changes;
        assert_eq!(c[0].before, Some(PlanValue::Secret));
        assert_eq!(c[1].after, Some(PlanValue::Secret));
        assert_eq!(c[2].after, Some(PlanValue::Value(b"Ada".to_vec())));
        assert_eq!(c[0].after, None);
    }
}
