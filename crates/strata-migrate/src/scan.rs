//! One step of a migration over its objects: the scan, the batches, the compares.
//!
//! Owns reading the step's objects page by page after the recorded cursor (an object
//! is handed over only once the page has passed its whole subtree), computing each
//! object's edits, and committing them in transactions that (1) compare the lock's
//! revision (the fence), (2) compare every key each rewritten object's edits write
//! (and, for a jq step, which sees the whole object, every key of it) against what
//! was read, absent keys included, and (3) record the step's progress.
//! A failed compare redoes the batch's objects one by one from a fresh read.

use std::collections::{BTreeMap, HashMap};

use strata_core::{
    prefix_end, Compare, CompareOp, KeySpan, Op, OpResponse, RangeRequest, Store, Txn,
};

use crate::file::Migration;
use crate::lock::Lock;
use crate::pattern::Pattern;
use crate::run::{progress_op, store_err, RunEvent, StepStats, UpOptions};
use crate::state::{Counts, InProgress};
use crate::step::{Edits, Object, Step};
use crate::Error;

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

pub(crate) struct StepRun<'a, S> {
    pub(crate) store: &'a S,
    pub(crate) lock: &'a mut Lock,
    pub(crate) m: &'a Migration,
    pub(crate) step: &'a Step,
    pub(crate) opts: &'a UpOptions,
    pub(crate) stats: &'a mut StepStats,
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
    pub(crate) async fn run(
        &mut self,
        p: &mut InProgress,
        on: &mut dyn FnMut(&RunEvent),
    ) -> Result<(), Error> {
        let prefix = self.pattern().scan_prefix().into_bytes();
        let end = prefix_end(&prefix);
        let mut scan_from = p
            .cursor
            .as_deref()
            .map_or(prefix.clone(), |c| after(c.as_bytes()));
        loop {
            if self.opts.stop.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::Interrupted {
                    area: self.m.area.clone(),
                    migration: self.m.label(),
                });
            }
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
        let edits = self
            .step
            .apply(obj, &self.opts.stop)
            .map_err(|r| self.fail(r))?;
        if edits.is_empty() && self.step.must_change(obj) {
            return Err(self.fail(format!(
                "it found {} ({} key{}) and would change nothing, although a {} must change it; \
                 nothing of this step was applied. This is a bug in Strata: please report it \
                 with the step and the object's keys",
                obj.key,
                obj.fields.len(),
                if obj.fields.len() == 1 { "" } else { "s" },
                self.step.label().split(' ').next().unwrap_or_default(),
            )));
        }
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

    async fn apply_batch(&mut self, batch: Vec<Object>, p: &mut InProgress) -> Result<(), Error> {
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
            let (c, o, b) = cost(self.step, &obj, &edits);
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
        p: &mut InProgress,
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
        p: &mut InProgress,
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
            compares.extend(object_compares(self.step, obj, edits, revs));
            for (key, edit) in edits {
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

/// The compares that make rewriting `obj` lose no concurrent update: every key written
/// is where the edits were computed from (its read revision, or absent: 0, so a key an
/// application created meanwhile is not overwritten), and for a step that reads the
/// whole object (jq), every key of it as read.
fn object_compares(
    step: &Step,
    obj: &Object,
    edits: &Edits,
    revs: &HashMap<String, i64>,
) -> Vec<Compare> {
    let mut wanted: BTreeMap<&str, i64> = BTreeMap::new();
    let keys: Vec<String>;
    if step.reads_whole_object() {
        keys = obj.fields.keys().map(|f| obj.key_of(f)).collect();
        for (key, (_, rev)) in keys.iter().zip(obj.fields.values()) {
            wanted.insert(key, *rev);
        }
    }
    for key in edits.keys() {
        let rev = if inside(obj, key) {
            obj.revision_of(key)
        } else {
            revs.get(key).copied().unwrap_or(0)
        };
        wanted.entry(key).or_insert(rev);
    }
    wanted
        .into_iter()
        .map(|(key, rev)| Compare::mod_revision(key.as_bytes(), CompareOp::Equal, rev))
        .collect()
}

/// Compares, writes and bytes that rewriting one object takes.
fn cost(step: &Step, obj: &Object, edits: &Edits) -> (usize, usize, usize) {
    if edits.is_empty() {
        return (0, 0, 0);
    }
    let compares = object_compares(step, obj, edits, &HashMap::new()).len();
    let bytes = edits
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    (compares, edits.len(), bytes)
}
