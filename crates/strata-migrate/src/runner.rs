//! `migrate up`: apply an area's pending migrations, each object exactly once.
//!
//! Owns the run loop (lock → read state → refuse if invalid → resume what is in
//! progress → apply pending → unlock) and the per-step scan. Every write is one
//! transaction that (1) compares the lock's revision (the fence), (2) compares every key
//! of each rewritten object and every outside key it writes against what was read, and
//! (3) records the step's progress. So a crash leaves either all of a batch or none of
//! it, progress always tells exactly which objects are done, and an application's
//! concurrent write makes the compare fail: the object is read again and redone.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use strata_core::clock::now_rfc3339;
use strata_core::{
    prefix_end, Compare, CompareOp, KeySpan, Op, OpResponse, RangeRequest, Store, Txn,
};

use crate::file::Migration;
use crate::lock::{runner_name, Lock};
use crate::pattern::Pattern;
use crate::state::{self, applied_key, progress_key, Applied, Counts, Progress};
use crate::step::{Edits, Object, Step};
use crate::{validate, Areas, Error};

/// How `up` (and `plan`) run.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Only this area (all when `None`).
    pub area: Option<String>,
    /// Stop after this version (inclusive).
    pub to: Option<u64>,
    /// How long to wait for another runner's lock before giving up.
    pub wait: Duration,
    /// How long a lock lasts without renewal (a killed runner's lock expires).
    pub lock_ttl: Duration,
    /// Keys read per page of a step's scan.
    pub page_keys: i64,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            area: None,
            to: None,
            wait: Duration::ZERO,
            lock_ttl: Duration::from_secs(30),
            page_keys: 1000,
        }
    }
}

/// What one step did in this run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepStats {
    pub label: String,
    /// Objects read and handed to the step.
    pub objects_seen: u64,
    pub counts: Counts,
}

/// One migration applied (or finished) by this run.
#[derive(Clone, Debug)]
pub struct MigrationReport {
    pub area: String,
    pub label: String,
    pub description: String,
    /// True when an interrupted run of it was finished.
    pub resumed: bool,
    /// This run's work, per step (steps done before a resume show zero).
    pub steps: Vec<StepStats>,
    /// Everything the migration did, across interruptions.
    pub total: Counts,
}

/// Progress of a run, for a progress bar.
#[derive(Clone, Debug)]
pub enum RunEvent {
    Started {
        area: String,
        label: String,
        resumed: bool,
    },
    Step {
        index: usize,
        of: usize,
        label: String,
    },
    Objects {
        seen: u64,
    },
    Done(MigrationReport),
}

/// The areas a run selects; an unknown `--area` is an error.
pub(crate) fn select<'a>(
    areas: &'a Areas,
    only: Option<&str>,
) -> Result<Vec<(&'a String, &'a Vec<Migration>)>, Error> {
    match only {
        None => Ok(areas.iter().collect()),
        Some(a) => areas
            .get_key_value(a)
            .map(|kv| vec![kv])
            .ok_or_else(|| Error::UnknownArea {
                area: a.to_owned(),
                known: areas.keys().cloned().collect(),
            }),
    }
}

/// Applies the pending migrations of every selected area.
pub async fn up<S: Store>(
    store: &S,
    areas: &Areas,
    opts: &UpOptions,
    on: &mut dyn FnMut(&RunEvent),
) -> Result<Vec<MigrationReport>, Error> {
    let owner = runner_name();
    let mut reports = Vec::new();
    for (area, migrations) in select(areas, opts.area.as_deref())? {
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
    let mut todo: Vec<(&Migration, Option<Progress>)> = Vec::new();
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

fn store_err(m: &Migration, e: strata_core::Error) -> Error {
    Error::store(format!("applying {} {}", m.area, m.label()), e)
}

async fn run_migration<S: Store>(
    store: &S,
    lock: &mut Lock,
    m: &Migration,
    progress: Option<Progress>,
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
            let p = Progress {
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
    p: &Progress,
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

fn progress_op(area: &str, p: &Progress) -> Op {
    Op::put(
        progress_key(area).into_bytes(),
        serde_json::to_vec(p).expect("records serialize"),
    )
}

/// The smallest key after `key`.
fn after(key: &[u8]) -> Vec<u8> {
    let mut out = key.to_vec();
    out.push(0);
    out
}

fn inside(obj: &Object, key: &str) -> bool {
    key == obj.key
        || key
            .strip_prefix(obj.key.as_str())
            .is_some_and(|r| r.starts_with('/'))
}

/// Attempts at one object before giving up (an application rewriting it non-stop).
const MAX_RETRIES: u32 = 100;

struct StepRun<'a, S> {
    store: &'a S,
    lock: &'a mut Lock,
    m: &'a Migration,
    step: &'a Step,
    opts: &'a UpOptions,
    stats: &'a mut StepStats,
}

impl<S: Store> StepRun<'_, S> {
    fn fail(&self, reason: String) -> Error {
        Error::Step {
            area: self.m.area.clone(),
            migration: self.m.label(),
            step: self.step.label(),
            reason,
        }
    }

    fn pattern(&self) -> &Pattern {
        self.step.object()
    }

    /// Scans the step's objects after the cursor, page by page, and rewrites them.
    async fn run(&mut self, p: &mut Progress, on: &mut dyn FnMut(&RunEvent)) -> Result<(), Error> {
        let prefix = self.pattern().scan_prefix().into_bytes();
        let end = prefix_end(&prefix);
        let mut scan_from = p
            .cursor
            .as_deref()
            .map_or(prefix.clone(), |c| after(c.as_bytes()));
        loop {
            self.lock.renew_if_due(self.store).await?;
            let req = RangeRequest::new(KeySpan::Range {
                start: scan_from.clone(),
                end: end.clone(),
            })
            .with_limit(self.opts.page_keys);
            let resp = self
                .store
                .range(req)
                .await
                .map_err(|e| store_err(self.m, e))?;
            let (more, last_key) = (resp.more, resp.kvs.last().map(|kv| kv.key.clone()));
            let mut objects: BTreeMap<String, Object> = BTreeMap::new();
            for kv in resp.kvs {
                let Ok(key) = std::str::from_utf8(&kv.key) else {
                    continue;
                };
                let Some(hit) = self.pattern().matches(key) else {
                    continue;
                };
                if p.cursor
                    .as_deref()
                    .is_some_and(|c| hit.object.as_str() <= c)
                {
                    continue;
                }
                let obj = objects.entry(hit.object.clone()).or_insert_with(|| Object {
                    key: hit.object,
                    vars: hit.vars,
                    fields: BTreeMap::new(),
                });
                obj.fields.insert(hit.field, (kv.value, kv.mod_revision));
            }
            let Some(first) = objects.keys().next().cloned() else {
                match last_key {
                    Some(last) if more => {
                        scan_from = after(&last);
                        continue;
                    }
                    _ => return Ok(()),
                }
            };
            // An object is whole once the page has passed its whole subtree.
            let whole = |key: &str| {
                !more
                    || last_key.as_deref().is_some_and(|l| {
                        prefix_end(format!("{key}/").as_bytes()).is_none_or(|e| l >= e.as_slice())
                    })
            };
            let mut batch: Vec<Object> = Vec::new();
            for (key, obj) in objects {
                if !whole(&key) {
                    break;
                }
                batch.push(obj);
            }
            if batch.is_empty() {
                batch.push(self.read_object(&first).await?);
            }
            self.stats.objects_seen += batch.len() as u64;
            self.apply_batch(batch, p).await?;
            on(&RunEvent::Objects {
                seen: self.stats.objects_seen,
            });
            scan_from = after(p.cursor.as_deref().unwrap_or_default().as_bytes());
        }
    }

    /// Reads one object whole, in one consistent read.
    async fn read_object(&self, key: &str) -> Result<Object, Error> {
        let txn = Txn::new().and_then([
            Op::get(KeySpan::key(key.as_bytes())),
            Op::get(KeySpan::prefix(format!("{key}/").into_bytes())),
        ]);
        let resp = self
            .store
            .txn(txn)
            .await
            .map_err(|e| store_err(self.m, e))?;
        let hit = self
            .pattern()
            .matches(key)
            .expect("object keys match their pattern");
        let mut obj = Object {
            key: hit.object,
            vars: hit.vars,
            fields: BTreeMap::new(),
        };
        for r in resp.responses {
            let OpResponse::Range(range) = r else {
                continue;
            };
            for kv in range.kvs {
                let Ok(k) = std::str::from_utf8(&kv.key) else {
                    continue;
                };
                if let Some(h) = self.pattern().matches(k) {
                    obj.fields.insert(h.field, (kv.value, kv.mod_revision));
                }
            }
        }
        Ok(obj)
    }

    /// The step's edits of one object, checked against writing ahead of the scan.
    fn edits(&self, obj: &Object) -> Result<Edits, Error> {
        let edits = self.step.apply(obj).map_err(|r| self.fail(r))?;
        for (key, value) in &edits {
            if strata_core::KeyPath::parse(key).is_err() {
                return Err(self.fail(format!("it would write the invalid key {key:?}")));
            }
            if value.is_some() {
                if let Some(hit) = self.pattern().matches(key) {
                    if hit.object > obj.key {
                        return Err(self.fail(format!(
                            "rewriting {} would write {key}, inside {}, an object this step has yet to visit; \
                             move objects out of the pattern's range in one step and back in another",
                            obj.key, hit.object
                        )));
                    }
                }
            }
        }
        Ok(edits)
    }

    /// Current mod revisions (0 = absent) of keys outside their objects.
    async fn revisions(&self, keys: Vec<String>) -> Result<HashMap<String, i64>, Error> {
        let mut out = HashMap::new();
        let chunk = self.store.capabilities().max_txn_ops.max(1);
        for keys in keys.chunks(chunk) {
            let txn = Txn::new().and_then(keys.iter().map(|k| Op::get(KeySpan::key(k.as_bytes()))));
            let resp = self
                .store
                .txn(txn)
                .await
                .map_err(|e| store_err(self.m, e))?;
            for (k, r) in keys.iter().zip(resp.responses) {
                let rev = match r {
                    OpResponse::Range(range) => range.kvs.first().map_or(0, |kv| kv.mod_revision),
                    _ => 0,
                };
                out.insert(k.clone(), rev);
            }
        }
        Ok(out)
    }

    async fn apply_batch(&mut self, batch: Vec<Object>, p: &mut Progress) -> Result<(), Error> {
        let mut planned = Vec::with_capacity(batch.len());
        for obj in batch {
            let edits = self.edits(&obj)?;
            planned.push((obj, edits));
        }
        let outside: Vec<String> = planned
            .iter()
            .flat_map(|(o, e)| e.keys().filter(|k| !inside(o, k)).cloned())
            .collect();
        let revs = self.revisions(outside).await?;
        let caps = self.store.capabilities();
        let budget_bytes = caps.max_request_bytes.saturating_sub(4096);
        let mut group: Vec<(Object, Edits)> = Vec::new();
        let (mut compares, mut ops, mut bytes) = (1, 1, 0);
        for (obj, edits) in planned {
            let (c, o, b) = cost(&obj, &edits);
            if c + 1 > caps.max_txn_ops || o + 1 > caps.max_txn_ops || b > budget_bytes {
                return Err(self.fail(format!(
                    "rewriting {} takes {c} compares and {o} writes ({b} bytes), more than one {} transaction holds",
                    obj.key, caps.backend
                )));
            }
            if !group.is_empty()
                && (compares + c > caps.max_txn_ops
                    || ops + o > caps.max_txn_ops
                    || bytes + b > budget_bytes)
            {
                self.commit_group(std::mem::take(&mut group), &revs, p)
                    .await?;
                (compares, ops, bytes) = (1, 1, 0);
            }
            (compares, ops, bytes) = (compares + c, ops + o, bytes + b);
            group.push((obj, edits));
        }
        if !group.is_empty() {
            self.commit_group(group, &revs, p).await?;
        }
        Ok(())
    }

    /// Commits a group in one transaction; if a compare fails, redoes its objects one
    /// by one from a fresh read.
    async fn commit_group(
        &mut self,
        group: Vec<(Object, Edits)>,
        revs: &HashMap<String, i64>,
        p: &mut Progress,
    ) -> Result<(), Error> {
        if self.try_commit(&group, revs, p).await? {
            return Ok(());
        }
        for (obj, _) in group {
            let mut attempt = 0;
            loop {
                if !self.lock.still_held(self.store).await? {
                    return Err(self.lock.lost(self.store).await);
                }
                let fresh = self.read_object(&obj.key).await?;
                if attempt == 0 && fresh.fields != obj.fields {
                    // The object changed after the batch read it: it is redone.
                    p.counts.retries += 1;
                    self.stats.counts.retries += 1;
                }
                let edits = self.edits(&fresh)?;
                let outside = edits
                    .keys()
                    .filter(|k| !inside(&fresh, k))
                    .cloned()
                    .collect();
                let revs = self.revisions(outside).await?;
                if self.try_commit(&[(fresh, edits)], &revs, p).await? {
                    break;
                }
                attempt += 1;
                p.counts.retries += 1;
                self.stats.counts.retries += 1;
                if attempt >= MAX_RETRIES {
                    return Err(self.fail(format!(
                        "{} changed {MAX_RETRIES} times while being rewritten; stop the writer and run again",
                        obj.key
                    )));
                }
            }
        }
        Ok(())
    }

    async fn try_commit(
        &mut self,
        group: &[(Object, Edits)],
        revs: &HashMap<String, i64>,
        p: &mut Progress,
    ) -> Result<bool, Error> {
        let mut next = p.clone();
        next.cursor = group.last().map(|(o, _)| o.key.clone());
        let mut counts = Counts::default();
        let mut compares = vec![self.lock.fence()];
        let mut ops = Vec::new();
        for (obj, edits) in group {
            if edits.is_empty() {
                continue;
            }
            counts.objects += 1;
            for (f, (_, rev)) in &obj.fields {
                compares.push(Compare::mod_revision(
                    obj.key_of(f).into_bytes(),
                    CompareOp::Equal,
                    *rev,
                ));
            }
            for (key, edit) in edits {
                if !inside(obj, key) {
                    let rev = revs.get(key).copied().unwrap_or(0);
                    compares.push(Compare::mod_revision(key.as_bytes(), CompareOp::Equal, rev));
                }
                match edit {
                    Some(v) => {
                        counts.puts += 1;
                        ops.push(Op::put(key.as_bytes(), v.clone()));
                    }
                    None => {
                        counts.deletes += 1;
                        ops.push(Op::delete(KeySpan::key(key.as_bytes())));
                    }
                }
            }
        }
        next.counts.add(&counts);
        ops.push(progress_op(&self.m.area, &next));
        let resp = self
            .store
            .txn(Txn::new().when(compares).and_then(ops))
            .await
            .map_err(|e| store_err(self.m, e))?;
        if resp.succeeded {
            *p = next;
            self.stats.counts.add(&counts);
        }
        Ok(resp.succeeded)
    }
}

/// Compares, writes and bytes that rewriting one object takes.
fn cost(obj: &Object, edits: &Edits) -> (usize, usize, usize) {
    if edits.is_empty() {
        return (0, 0, 0);
    }
    let outside = edits.keys().filter(|k| !inside(obj, k)).count();
    let bytes = edits
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    (obj.fields.len() + outside, edits.len(), bytes)
}
