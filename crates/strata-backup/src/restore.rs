//! Reading backups back: restore, log, diff, verify.
//!
//! Owns turning the files of a commit into keys and values (revealing encrypted
//! secrets with the key file; fingerprinted ones cannot be restored and are reported),
//! restoring a key, an object or a prefix in one transaction conditioned on the
//! revisions read, rebuilding a whole store into an empty one, a key's or object's
//! history, the key-level difference of two commits, and the check that the last
//! commit matches the store at the revision it records.

use std::collections::BTreeMap;

use git2::Commit;
use serde_json::Value;
use strata_core::key::display_key;
use strata_core::{
    scan, Compare, CompareOp, KeySpan, MemStore, Op, OpResponse, RangeRequest, Store, Txn,
};
use strata_ops::transfer::Digest;

use crate::layout::{file_prefix, key_of, locate, parse, SUFFIX};
use crate::options::BackupOptions;
use crate::repo::{git_err, Repo, Trailers};
use crate::secrets::Secrets;
use crate::Error;

/// The keys of a commit under `prefix`: key → written value.
fn written(
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
fn snapshot(
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
    let RestoreHow {
        dry_run,
        force,
        in_batches,
    } = how;
    let repo = Repo::open(&opts.repo, false, false)?;
    let commit = repo.resolve(at)?;
    let revision = Trailers::parse(commit.message().unwrap_or("")).map_or(0, |t| t.revision);
    let t = target.as_bytes();
    let spans: Vec<KeySpan> = if target.ends_with('/') {
        vec![KeySpan::prefix(t)]
    } else {
        let mut sub = t.to_vec();
        sub.push(b'/');
        vec![KeySpan::key(t), KeySpan::prefix(sub)]
    };
    let (mut wanted, secret) = snapshot(&repo, &commit, t, &opts.secrets)?;
    wanted.retain(|k, _| spans.iter().any(|s| s.contains(k)));
    let resp = store
        .txn(Txn::new().and_then(spans.iter().map(|s| Op::get(s.clone()))))
        .await
        .map_err(|e| Error::store(format!("reading {target}"), e))?;
    let mut current = BTreeMap::new();
    for r in resp.responses {
        if let OpResponse::Range(range) = r {
            for kv in range.kvs {
                current.insert(kv.key.clone(), kv);
            }
        }
    }
    let in_span = |k: &Vec<u8>| spans.iter().any(|s| s.contains(k));
    if wanted.is_empty() && !secret.iter().any(in_span) && !current.keys().any(|k| opts.selected(k))
    {
        // Nothing to restore and nothing to delete: most likely a misspelt target.
        let id = commit.id().to_string();
        return Err(Error::NotFound(format!(
            "{target}: no key of it is in commit {} nor in the store; check the name \
             (`strata backup log {target}` lists the commits that changed it)",
            &id[..12]
        )));
    }
    let mut report = RestoreReport {
        commit: commit.id().to_string(),
        revision,
        ..RestoreReport::default()
    };
    let mut compares = Vec::new();
    let mut ops = Vec::new();
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
        report.deleted.push(key.clone());
    }
    report.secrets_kept = secret_in_span;
    if dry_run || ops.is_empty() {
        return Ok(report);
    }
    let limit = store.capabilities().max_txn_ops;
    if ops.len() > limit && !in_batches {
        return Err(Error::Refused(format!(
            "restoring {target} takes {} writes, more than one {} transaction holds ({limit}); \
             pass --in-batches to restore it in transactions of {limit} (each conditioned on its \
             keys; a conflict stops it part-way, and running it again finishes), raise \
             --max-txn-ops if the server allows more, or restore a narrower prefix",
            ops.len(),
            store.capabilities().backend
        )));
    }
    let total = ops.len();
    let mut done = 0;
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
    let revision = Trailers::parse(commit.message().unwrap_or("")).map_or(0, |t| t.revision);
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
        put: keys,
        secrets_kept: secret,
        store_revision: loaded.revision,
        ..RestoreReport::default()
    })
}

/// One change of a key (or of an object's file) in history.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub commit: String,
    pub time: i64,
    pub revision: i64,
    pub changes: Vec<KeyChange>,
}

/// A key's written value before and after.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyChange {
    pub key: Vec<u8>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

fn member_diff(
    file: &str,
    before: &BTreeMap<String, Value>,
    after: &BTreeMap<String, Value>,
    only: Option<&str>,
) -> Vec<KeyChange> {
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|m| only.is_none_or(|o| o == m.as_str()))
        .filter_map(|m| {
            let (b, a) = (before.get(m), after.get(m));
            (b != a).then(|| KeyChange {
                key: key_of(file, m).unwrap_or_else(|| m.as_bytes().to_vec()),
                before: b.cloned(),
                after: a.cloned(),
            })
        })
        .collect()
}

fn file_at(repo: &Repo, commit: &Commit<'_>, file: &str) -> Result<BTreeMap<String, Value>, Error> {
    let tree = commit.tree().map_err(git_err("reading a tree"))?;
    Ok(repo
        .file(&tree, file)?
        .and_then(|b| parse(&b))
        .unwrap_or_default())
}

/// Every commit where `target` changed, newest first. `target` is a key (its value),
/// or an object path (every field in its file).
pub fn log(repo_path: &std::path::Path, target: &str) -> Result<Vec<LogEntry>, Error> {
    let repo = Repo::open(repo_path, false, false)?;
    let (key_file, member) = locate(target.as_bytes());
    let (object_file, _) = locate(format!("{target}/x").as_bytes());
    let mut walk = repo.git.revwalk().map_err(git_err("walking history"))?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)
        .map_err(git_err("walking history"))?;
    if repo.head()?.is_none() {
        return Ok(Vec::new());
    }
    walk.push_head().map_err(git_err("walking history"))?;
    let mut out = Vec::new();
    for oid in walk {
        let commit = repo
            .git
            .find_commit(oid.map_err(git_err("walking history"))?)
            .map_err(git_err("reading a commit"))?;
        let parent = commit.parent(0).ok();
        let mut changes = Vec::new();
        for (file, only) in [(&key_file, Some(member.as_str())), (&object_file, None)] {
            let after = file_at(&repo, &commit, file)?;
            let before = match &parent {
                Some(p) => file_at(&repo, p, file)?,
                None => BTreeMap::new(),
            };
            changes.extend(member_diff(file, &before, &after, only));
        }
        if !changes.is_empty() {
            out.push(LogEntry {
                commit: commit.id().to_string(),
                time: commit.time().seconds(),
                revision: Trailers::parse(commit.message().unwrap_or("")).map_or(0, |t| t.revision),
                changes,
            });
        }
    }
    Ok(out)
}

/// Every key that differs between two commits (or dates).
pub fn diff(repo_path: &std::path::Path, a: &str, b: &str) -> Result<Vec<KeyChange>, Error> {
    let repo = Repo::open(repo_path, false, false)?;
    let (ca, cb) = (repo.resolve(a)?, repo.resolve(b)?);
    let (ta, tb) = (
        ca.tree().map_err(git_err("reading a tree"))?,
        cb.tree().map_err(git_err("reading a tree"))?,
    );
    let diff = repo
        .git
        .diff_tree_to_tree(Some(&ta), Some(&tb), None)
        .map_err(git_err("comparing the commits"))?;
    let mut files = Vec::new();
    for delta in diff.deltas() {
        for f in [delta.old_file(), delta.new_file()] {
            if let Some(p) = f.path().and_then(|p| p.to_str()) {
                files.push(p.to_owned());
            }
        }
    }
    files.sort();
    files.dedup();
    let mut out = Vec::new();
    for file in files {
        out.extend(member_diff(
            &file,
            &file_at(&repo, &ca, &file)?,
            &file_at(&repo, &cb, &file)?,
            None,
        ));
    }
    Ok(out)
}

/// What `verify` compared.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    pub commit: String,
    /// The store revision the commit records.
    pub revision: i64,
    /// The revision the live store was read at: `revision`, or the current one when
    /// the store has compacted `revision` away.
    pub compared_at: i64,
    pub keys: u64,
    pub digest: String,
}

/// The digest of the live store's backed-up keys at `revision` (0: now), and the
/// revision read.
async fn live_digest<S: Store>(
    store: &S,
    opts: &BackupOptions,
    revision: i64,
) -> strata_core::Result<(Digest, i64)> {
    let mut live = Digest::default();
    let mut read_at = revision;
    for span in opts.spans() {
        read_at = scan(store, span, read_at, |kvs| {
            for kv in kvs.iter().filter(|kv| opts.selected(&kv.key)) {
                let Some(written) = opts.secrets.protect(&kv.key, &kv.value) else {
                    continue;
                };
                match opts.secrets.reveal(&kv.key, &written) {
                    Ok(Some(_)) => live.add(&kv.key, &kv.value),
                    _ => live.add(&kv.key, written.to_string().as_bytes()),
                }
            }
            Ok(())
        })
        .await?;
    }
    Ok((live, read_at))
}

/// Restores the latest commit into a scratch in-memory store and compares its digest
/// with the live store's selected keys at the revision the commit records (secrets
/// compared in their written form). If the store has compacted that revision away
/// (and nothing changed since, so no backup committed), it compares with the store
/// as it is now: equal digests still prove the backup exact.
pub async fn verify<S: Store>(store: &S, opts: &BackupOptions) -> Result<VerifyReport, Error> {
    let repo = Repo::open(&opts.repo, false, false)?;
    let commit = repo.head()?.ok_or_else(|| {
        Error::NotFound(format!(
            "{} has no backup yet: run `strata backup run`",
            opts.repo.display()
        ))
    })?;
    let t = Trailers::parse(commit.message().unwrap_or(""))
        .ok_or_else(|| Error::NotFound("HEAD is not a strata backup commit".into()))?;
    let scratch = MemStore::new();
    let entries: Vec<(Vec<u8>, Vec<u8>)> = written(&repo, &commit, b"")?
        .into_iter()
        .map(|(key, value)| {
            let bytes = match opts.secrets.reveal(&key, &value) {
                Ok(Some(v)) => v,
                _ => value.to_string().into_bytes(),
            };
            (key, bytes)
        })
        .collect();
    strata_ops::load::load(&scratch, entries, None, &mut |_| {})
        .await
        .map_err(|e| Error::op("filling the scratch store", e))?;
    let mut restored = Digest::default();
    scan(&scratch, KeySpan::all(), 0, |kvs| {
        kvs.iter().for_each(|kv| restored.add(&kv.key, &kv.value));
        Ok(())
    })
    .await
    .map_err(|e| Error::store("reading the scratch store", e))?;
    let read = |revision| live_digest(store, opts, revision);
    let (live, compared_at) = match read(t.revision).await {
        Ok(found) => found,
        Err(strata_core::Error::Compacted { .. }) => read(0)
            .await
            .map_err(|e| Error::store("reading the live store", e))?,
        Err(e) => return Err(Error::store("reading the live store", e)),
    };
    if restored != live {
        let compacted = if compared_at == t.revision {
            String::new()
        } else {
            format!(
                " (the store has compacted revision {} that the commit records, so it was read at its current revision {compared_at}: run `strata backup run` and verify again)",
                t.revision
            )
        };
        return Err(Error::Refused(format!(
            "the backup does not match the store: commit {} holds {} keys (digest {}), the store at revision {compared_at} has {} (digest {}){compacted}",
            commit.id(),
            restored.keys,
            restored.hex(),
            live.keys,
            live.hex()
        )));
    }
    Ok(VerifyReport {
        commit: commit.id().to_string(),
        revision: t.revision,
        compared_at,
        keys: restored.keys,
        digest: restored.hex(),
    })
}
