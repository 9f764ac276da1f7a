//! Restoring from a backup.
//!
//! Owns turning the files of a commit into keys and values (revealing encrypted
//! secrets with the key file; fingerprinted ones cannot be restored and are reported),
//! planning and applying the restore of a key, an object or a prefix in one
//! transaction conditioned on the revisions read, and rebuilding a whole store into an
//! empty one. `history` reads a key's changes and `verify` checks the last commit.

use std::collections::BTreeMap;

use git2::Commit;
use serde_json::Value;
use strata_core::key::display_key;
use strata_core::{Compare, CompareOp, KeySpan, Op, RangeRequest, Store, Txn};

use crate::layout::{file_prefix, key_of, parse, SUFFIX};
use crate::options::BackupOptions;
use crate::repo::{git_err, Repo, Trailers};
use crate::secrets::Secrets;
use crate::Error;

/// The keys of a commit under `prefix`: key → written value.
pub(crate) fn written(
    repo: &Repo,
    commit: &Commit<'_>,
    prefix: &[u8],
) -> Result<BTreeMap<Vec<u8>, Value>, Error> {
    let tree = commit.tree().map_err(git_err("reading a commit's tree"))?;
    let mut out = BTreeMap::new();
    let dir = file_prefix(prefix);
    // Keys under the prefix live below its folder, or in that folder's own file (its
    // direct children); `dir` is empty for the root, whose walk covers every file.
    let mut files = repo.files(&tree, &dir)?;
    if !dir.is_empty() {
        let own = format!("{dir}{SUFFIX}");
        if let Ok(entry) = tree.get_path(std::path::Path::new(&own)) {
            files.insert(own, entry.id());
        }
    }
    for (file, oid) in files {
        let members = parse(&repo.blob(oid)?).ok_or_else(|| Error::Format {
            key: file.clone(),
            reason: "not a JSON object".into(),
        })?;
        for (member, value) in members {
            let key = key_of(&file, &member).ok_or_else(|| Error::Format {
                key: format!("{file} member {member}"),
                reason: "a name that is not Strata's escaping".into(),
            })?;
            if key.starts_with(prefix) {
                out.insert(key, value);
            }
        }
    }
    Ok(out)
}

/// Restorable keys and values, and the keys that cannot be restored.
type Snapshot = (BTreeMap<Vec<u8>, Vec<u8>>, Vec<Vec<u8>>);

/// The restorable keys of a commit under `prefix`, and the keys that cannot be
/// restored (fingerprinted secrets).
pub(crate) fn snapshot(
    repo: &Repo,
    commit: &Commit<'_>,
    prefix: &[u8],
    secrets: &Secrets,
) -> Result<Snapshot, Error> {
    let mut values = BTreeMap::new();
    let mut secret = Vec::new();
    for (key, value) in written(repo, commit, prefix)? {
        match secrets.reveal(&key, &value)? {
            Some(v) => {
                values.insert(key, v);
            }
            None => secret.push(key),
        }
    }
    Ok((values, secret))
}

/// What a restore did (or would do, with `dry_run`).
#[derive(Clone, Debug, Default)]
pub struct RestoreReport {
    pub commit: String,
    pub revision: i64,
    /// Every part's revision the commit records (see [`crate::Revisions`]).
    pub revisions: crate::Revisions,
    /// Keys written (missing or different), and deleted (not in the backup).
    pub put: Vec<Vec<u8>>,
    pub deleted: Vec<Vec<u8>>,
    pub unchanged: u64,
    /// Fingerprinted secrets: left as they are in the store.
    pub secrets_kept: Vec<Vec<u8>>,
    /// The store revision after the restore (0 for a dry run or no change).
    pub store_revision: i64,
}

/// How a restore writes.
#[derive(Clone, Copy, Debug, Default)]
pub struct RestoreHow {
    /// Report what would change; write nothing.
    pub dry_run: bool,
    /// Write without comparing revisions: overwrite concurrent changes.
    pub force: bool,
    /// Allow a restore larger than one transaction: batches of the backend's op limit,
    /// each conditioned on its own keys. Not atomic as a whole: a conflict stops it after
    /// the batches already written, and running it again finishes the job.
    pub in_batches: bool,
}

/// Restores `target` as of `at`: with a trailing `/` every key under that prefix;
/// otherwise the key itself and the object below it (`/app/users/7` and
/// `/app/users/7/…`). One transaction, conditioned on the revisions read (unless
/// `force`); keys of the span that the backup lacks are deleted, except keys the backup
/// never covers (`backup = false`, `/_strata/`, outside its prefixes).
pub async fn restore<S: Store>(
    store: &S,
    opts: &BackupOptions,
    target: &str,
    at: &str,
    how: RestoreHow,
) -> Result<RestoreReport, Error> {
    let plan = plan_restore(store, opts, target, at).await?;
    if how.dry_run {
        return Ok(plan.report);
    }
    apply_restore(store, plan, how).await
}

/// A restore as read, before anything is written: what it will put and delete
/// ([`RestorePlan::report`]), each write conditioned on the revision its key had
/// when read. Applied by [`apply_restore`], it writes exactly what the report
/// shows, or nothing of a key that changed since (a conflict): a frontend can show
/// the plan, ask, and apply what was shown.
#[derive(Clone, Debug)]
pub struct RestorePlan {
    /// What applying the plan will do (`store_revision` 0 until applied).
    pub report: RestoreReport,
    target: String,
    compares: Vec<Compare>,
    ops: Vec<Op>,
    /// Each written key's value as the plan read it (`None`: absent).
    read: Vec<Option<Vec<u8>>>,
}

/// One write of a [`RestorePlan`]: the key, the revision and value it had when the
/// plan read it (0 and `None`: absent), and its value as of the backup (`None`:
/// deleted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedWrite {
    pub key: Vec<u8>,
    pub read_at: i64,
    pub now: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl RestorePlan {
    /// Each write the plan makes, in order: puts, then deletes.
    pub fn writes(&self) -> Vec<PlannedWrite> {
        self.compares
            .iter()
            .zip(&self.ops)
            .zip(&self.read)
            .map(|((c, op), now)| PlannedWrite {
                key: c.key.clone(),
                read_at: match c.target {
                    strata_core::model::CompareTarget::ModRevision(r) => r,
                    _ => 0,
                },
                now: now.clone(),
                value: match op {
                    Op::Put { value, .. } => Some(value.clone()),
                    _ => None,
                },
            })
            .collect()
    }

    /// A digest of every write with the revision it is conditioned on: two plans with
    /// the same digest write the same values over the same store state, so a frontend
    /// that showed one plan can check that the one it is about to apply is that one.
    pub fn digest(&self) -> String {
        let mut d = strata_ops::transfer::Digest::default();
        d.add(self.report.commit.as_bytes(), self.target.as_bytes());
        for w in self.writes() {
            d.add(&w.key, w.read_at.to_string().as_bytes());
            d.add(
                &[u8::from(w.value.is_some())],
                w.value.as_deref().unwrap_or_default(),
            );
        }
        d.hex()
    }
}

/// Reads the commit and the store and plans the restore of `target` as of `at`
/// (see [`restore`]); writes nothing.
pub async fn plan_restore<S: Store>(
    store: &S,
    opts: &BackupOptions,
    target: &str,
    at: &str,
) -> Result<RestorePlan, Error> {
    let t = target.as_bytes();
    // Everything from Git first, so that no Git object is held across the store's
    // reads (they are not `Send`: a server's handler future must be).
    let (commit_id, revision, revisions, mut wanted, secret) = {
        let repo = Repo::open(&opts.repo, false, false)?;
        let commit = repo.resolve(at)?;
        let trailers = Trailers::parse(commit.message().unwrap_or("")).unwrap_or_default();
        let (wanted, secret) = snapshot(&repo, &commit, t, &opts.secrets)?;
        let id = commit.id().to_string();
        (id, trailers.revision, trailers.revisions, wanted, secret)
    };
    let spans: Vec<KeySpan> = if target.ends_with('/') {
        vec![KeySpan::prefix(t)]
    } else {
        let mut sub = t.to_vec();
        sub.push(b'/');
        vec![KeySpan::key(t), KeySpan::prefix(sub)]
    };
    wanted.retain(|k, _| spans.iter().any(|s| s.contains(k)));
    // One consistent read of the spans (the later one at the revision of the first),
    // paged; on a layered keyspace it may cross layers, which no one transaction can.
    let mut current = BTreeMap::new();
    let mut read_at = 0;
    for span in &spans {
        read_at = strata_core::store::scan(store, span.clone(), read_at, |page| {
            current.extend(page.into_iter().map(|kv| (kv.key.clone(), kv)));
            Ok(())
        })
        .await
        .map_err(|e| Error::store(format!("reading {target}"), e))?;
    }
    let in_span = |k: &Vec<u8>| spans.iter().any(|s| s.contains(k));
    if wanted.is_empty() && !secret.iter().any(in_span) && !current.keys().any(|k| opts.selected(k))
    {
        // Nothing to restore and nothing to delete: most likely a misspelt target.
        return Err(Error::NotFound(format!(
            "{target}: no key of it is in commit {} nor in the store; check the name \
             (`strata backup log {target}` lists the commits that changed it)",
            &commit_id[..12]
        )));
    }
    let mut report = RestoreReport {
        commit: commit_id,
        revision,
        revisions: revisions.clone(),
        ..RestoreReport::default()
    };
    let mut compares = Vec::new();
    let mut ops = Vec::new();
    let mut read = Vec::new();
    let secret_in_span: Vec<Vec<u8>> = secret.into_iter().filter(in_span).collect();
    for (key, value) in &wanted {
        let now = current.get(key);
        if now.is_some_and(|kv| &kv.value == value) {
            report.unchanged += 1;
            continue;
        }
        compares.push(Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            now.map_or(0, |kv| kv.mod_revision),
        ));
        ops.push(Op::put(key.clone(), value.clone()));
        read.push(now.map(|kv| kv.value.clone()));
        report.put.push(key.clone());
    }
    for (key, kv) in &current {
        if wanted.contains_key(key) || secret_in_span.contains(key) || !opts.selected(key) {
            continue;
        }
        compares.push(Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            kv.mod_revision,
        ));
        ops.push(Op::delete(KeySpan::key(key.clone())));
        read.push(Some(kv.value.clone()));
        report.deleted.push(key.clone());
    }
    report.secrets_kept = secret_in_span;
    Ok(RestorePlan {
        report,
        target: target.to_owned(),
        compares,
        ops,
        read,
    })
}

/// Writes a plan of [`plan_restore`]: one transaction (or, with `in_batches`,
/// several), each write conditioned on its key's revision in the plan unless
/// `force`. `how.dry_run` is ignored: the plan is the dry run.
pub async fn apply_restore<S: Store>(
    store: &S,
    plan: RestorePlan,
    how: RestoreHow,
) -> Result<RestoreReport, Error> {
    let RestoreHow {
        force, in_batches, ..
    } = how;
    let RestorePlan {
        mut report,
        target,
        compares,
        ops,
        ..
    } = plan;
    if ops.is_empty() {
        return Ok(report);
    }
    let limit = store.capabilities().max_txn_ops;
    // Each write with its compare, grouped by the store that holds its key (one group
    // unless the store is a layered keyspace and the plan spans layers).
    let mut groups: std::collections::BTreeMap<usize, (Vec<Compare>, Vec<Op>)> = Default::default();
    for (c, op) in compares.into_iter().zip(ops) {
        let group = groups.entry(store.partition(&c.key)).or_default();
        group.0.push(c);
        group.1.push(op);
    }
    let total: usize = groups.values().map(|g| g.1.len()).sum();
    if groups.len() > 1 && !in_batches {
        return Err(Error::Refused(format!(
            "restoring {target} writes into {} stores of the layered keyspace, and no one \
             transaction spans stores; pass --in-batches to restore it in one transaction per \
             store (each conditioned on its keys; a conflict stops it part-way, and running it \
             again finishes), or restore each layer's prefix on its own",
            groups.len()
        )));
    }
    if total > limit && !in_batches {
        return Err(Error::Refused(format!(
            "restoring {target} takes {total} writes, more than one {} transaction holds ({limit}); \
             pass --in-batches to restore it in transactions of {limit} (each conditioned on its \
             keys; a conflict stops it part-way, and running it again finishes), raise \
             --max-txn-ops if the server allows more, or restore a narrower prefix",
            store.capabilities().backend
        )));
    }
    let mut done = 0;
    for (compares, ops) in groups.into_values() {
        let mut ops = ops.into_iter();
        for compares in compares.chunks(limit) {
            let batch: Vec<Op> = ops.by_ref().take(compares.len()).collect();
            let txn = Txn::new()
                .when(if force { Vec::new() } else { compares.to_vec() })
                .and_then(batch);
            let resp = store
                .txn(txn)
                .await
                .map_err(|e| Error::store(format!("restoring {target}"), e))?;
            if !resp.succeeded {
                return Err(Error::Conflict {
                    keys: moved(store, compares).await?,
                    restored: done,
                    total,
                });
            }
            done += compares.len();
            report.store_revision = resp.revision;
        }
    }
    Ok(report)
}

/// The keys whose compare no longer holds.
async fn moved<S: Store>(store: &S, compares: &[Compare]) -> Result<Vec<String>, Error> {
    let mut moved = Vec::new();
    for c in compares {
        let kv = store
            .get(&c.key)
            .await
            .map_err(|e| Error::store("re-reading", e))?;
        if !c.evaluate(kv.as_ref()) {
            moved.push(display_key(&c.key));
        }
    }
    Ok(moved)
}

/// Rebuilds a whole store as of `at` into `target`, which must hold no keys.
pub async fn restore_all<S: Store + Clone + 'static>(
    target: &S,
    opts: &BackupOptions,
    at: &str,
    progress: strata_ops::load::OnBatch<'_>,
) -> Result<RestoreReport, Error> {
    let repo = Repo::open(&opts.repo, false, false)?;
    let commit = repo.resolve(at)?;
    let trailers = Trailers::parse(commit.message().unwrap_or("")).unwrap_or_default();
    let (revision, revisions) = (trailers.revision, trailers.revisions);
    let count = |span: KeySpan| async move {
        target
            .range(RangeRequest::new(span).count_only())
            .await
            .map(|r| r.count)
            .map_err(|e| Error::store("counting the keys of the target store", e))
    };
    let reserved = strata_core::key::RESERVED_PREFIX.as_bytes();
    let existing = count(KeySpan::all()).await? - count(KeySpan::prefix(reserved)).await?;
    // A rebuild names its commit in the target while it runs, so that one interrupted
    // part-way (the keys are written in several transactions) can be run again.
    let marker = [reserved, b"restore-all"].concat();
    let id = commit.id().to_string();
    let store_err = |what: &str| {
        let what = what.to_owned();
        move |e| Error::store(what, e)
    };
    let (values, secret) = snapshot(&repo, &commit, b"", &opts.secrets)?;
    let entries: Vec<(Vec<u8>, Vec<u8>)> = values.into_iter().collect();
    if existing > 0 {
        let underway = target
            .get(&marker)
            .await
            .map_err(store_err("reading the target store"))?;
        match underway {
            Some(kv) if kv.value == id.as_bytes() => {}
            Some(kv) => {
                return Err(Error::Refused(format!(
                    "the target store holds {existing} keys from an interrupted restore --all of commit {}; \
                     finish that rebuild (from commit {0}), or empty the store to rebuild from another commit",
                    String::from_utf8_lossy(&kv.value)
                )))
            }
            None => {
                // A rebuild killed after it finished (mark cleared, not yet exited)
                // left exactly the commit: running it again is done at once.
                let (_, held) = strata_ops::transfer::read_selection(
                    target,
                    &strata_ops::transfer::Selection::default(),
                    0,
                )
                .await
                .map_err(|e| Error::op("reading the target store", e))?;
                if held == entries {
                    return Ok(RestoreReport {
                        commit: id,
                        revision,
                        revisions,
                        unchanged: held.len() as u64,
                        secrets_kept: secret,
                        store_revision: target
                            .status()
                            .await
                            .map_err(store_err("reading the target store"))?
                            .revision,
                        ..RestoreReport::default()
                    });
                }
                return Err(Error::Refused(format!(
                    "the target store holds {existing} keys; restore --all rebuilds into an empty store \
                     (restore prefixes into a live one)"
                )));
            }
        }
    }
    let keys: Vec<Vec<u8>> = entries.iter().map(|(k, _)| k.clone()).collect();
    target
        .put(&marker, id.as_bytes())
        .await
        .map_err(store_err("marking the rebuild in the target store"))?;
    let loaded = strata_ops::load::load(target, entries, None, progress)
        .await
        .map_err(|e| Error::op("writing the restored keys", e))?;
    target
        .delete(KeySpan::key(marker))
        .await
        .map_err(store_err("clearing the rebuild's mark"))?;
    Ok(RestoreReport {
        commit: id,
        revision,
        revisions,
        put: keys,
        secrets_kept: secret,
        store_revision: loaded.revision,
        ..RestoreReport::default()
    })
}
