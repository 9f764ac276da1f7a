//! `backup run`: the store into Git, in full or incrementally.
//!
//! Owns choosing full or incremental, reading the store (one consistent read for a
//! full backup; the changes since the recorded revision for an incremental one),
//! turning keys into file edits, and committing. Invariant: a commit is written only
//! after every blob and tree it points to, and the branch moves (atomically, checked
//! against the parent) only after the commit; so a killed run leaves at most unused
//! objects, never a commit that claims a revision whose data it lacks.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use git2::build::TreeUpdateBuilder;
use git2::{FileMode, ObjectType, Oid};
use serde_json::Value;
use strata_core::{scan, Event, EventKind, KeySpan, Store, WatchRequest};

use crate::layout::{locate, parse, render};
use crate::options::{BackupOptions, BackupReport, Stage};
use crate::repo::{git_err, Repo, Trailers};
use crate::source::{describe, reads, single, Part, Revisions};
use crate::Error;

/// Keys changed, with their final value (`None`: deleted).
pub(crate) type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// One backup: incremental when the last commit was made with the same options and
/// its revision is still in the store's history, full otherwise.
pub async fn run<S: Store>(store: &S, opts: &BackupOptions) -> Result<BackupReport, Error> {
    run_parts(&single(store), opts).await
}

/// [`run`] over several stores (a layered keyspace's): each part read only in its
/// spans, at its own revision, into one commit that records every part's revision;
/// an incremental run replays each part from its own.
pub async fn run_parts<S: Store>(
    parts: &[Part<'_, S>],
    opts: &BackupOptions,
) -> Result<BackupReport, Error> {
    let repo = Repo::open(&opts.repo, true, true)?;
    push_remote(&repo, opts)?;
    let report = run_in(parts, &repo, opts).await?;
    push(&repo, opts)?;
    Ok(report)
}

pub(crate) async fn run_in<S: Store>(
    parts: &[Part<'_, S>],
    repo: &Repo,
    opts: &BackupOptions,
) -> Result<BackupReport, Error> {
    let mut now = Revisions::new();
    for p in parts {
        let status = p
            .store
            .status()
            .await
            .map_err(|e| Error::store(format!("reading the revision of {}", p.label()), e))?;
        now.insert(p.name.clone(), status.revision);
    }
    let head = repo.head()?.map(|c| c.id());
    let last = last_trailers(repo)?;
    // Each part at or before where `later` is, with the same parts.
    let not_after = |earlier: &Revisions, later: &Revisions| {
        earlier.len() == later.len()
            && earlier
                .iter()
                .all(|(name, r)| later.get(name).is_some_and(|l| r <= l))
    };
    // Another store, other options, or a store whose revision went back (restored,
    // recreated): the files are rebuilt from a full read.
    let continues = |t: &Trailers| {
        t.options == opts.digest() && t.store == opts.store_label && not_after(&t.revisions, &now)
    };
    let report = 'run: {
        if let Some(t) = last.filter(continues) {
            // Where the store was last seen equal to HEAD (a run that found nothing to
            // commit), or else the revisions HEAD records.
            let since = head
                .and_then(|h| repo.seen(h))
                .filter(|seen| not_after(&t.revisions, seen) && not_after(seen, &now))
                .unwrap_or(t.revisions);
            if not_after(&now, &since) {
                break 'run BackupReport {
                    revision: since.get("").copied().unwrap_or(0),
                    revisions: since,
                    ..BackupReport::default()
                };
            }
            let mut changes = Changes::new();
            let mut compacted = false;
            for p in parts {
                let (from, to) = (since[&p.name], now[&p.name]);
                if from >= to {
                    continue;
                }
                match changes_between(p, opts, from + 1, to).await {
                    Ok(found) => changes.extend(found),
                    Err(strata_core::Error::Compacted { .. }) => {
                        compacted = true;
                        break;
                    }
                    Err(e) => {
                        return Err(Error::store("reading the changes since the last backup", e))
                    }
                }
            }
            if !compacted {
                break 'run commit_changes(repo, opts, changes, &now).await?;
            }
        }
        full(parts, repo, opts, &now).await?
    };
    if let (None, Some(head)) = (&report.commit, head) {
        repo.set_seen(head, &report.revisions)?;
    }
    Ok(report)
}

pub(crate) fn last_trailers(repo: &Repo) -> Result<Option<Trailers>, Error> {
    Ok(repo
        .head()?
        .and_then(|c| Trailers::parse(c.message().unwrap_or(""))))
}

/// Notes a change of a key the backup covers: its final value, `None` once deleted.
pub(crate) fn record(opts: &BackupOptions, changes: &mut Changes, e: Event) {
    if opts.selected(&e.kv.key) {
        let value = (e.kind == EventKind::Put).then_some(e.kv.value);
        changes.insert(e.kv.key, value);
    }
}

/// Every change of the selected keys of a part's spans in revisions `from..=to`,
/// replayed by a watch of the part's whole store (every revision has a change, so
/// the replay reaches `to`).
async fn changes_between<S: Store>(
    part: &Part<'_, S>,
    opts: &BackupOptions,
    from: i64,
    to: i64,
) -> Result<Changes, strata_core::Error> {
    let store = part.store;
    let mut changes = Changes::new();
    let mut watcher = store
        .watch(WatchRequest {
            span: KeySpan::all(),
            start_revision: from,
        })
        .await?;
    // Every revision up to `to` was made by a write, so the replay reaches `to`.
    loop {
        let batch = tokio::time::timeout(Duration::from_secs(60), watcher.next())
            .await
            .map_err(|_| strata_core::Error::WatchClosed {
                backend: store.capabilities().backend.to_owned(),
                reason: format!("no change reached revision {to} within 60 s"),
            })?;
        let events = match batch {
            Some(Ok(events)) => events,
            Some(Err(e)) => return Err(e),
            None => return Ok(changes),
        };
        // A batch never splits a revision, so stopping after one is exact.
        for e in events {
            if e.revision() > to {
                return Ok(changes);
            }
            if part.spans.iter().any(|s| s.contains(&e.kv.key)) {
                record(opts, &mut changes, e);
            }
        }
        if watcher.resume_revision() > to {
            return Ok(changes);
        }
    }
}

/// Runs `write` on a repository handle of its own whose writes go to an in-memory
/// backend, packed (without a delta search) when the commit is made; on a repository
/// without commits, the in-memory backend is the only one until then.
fn with_bulk<T>(
    repo: &Repo,
    write: impl FnOnce(&Repo, &git2::Mempack<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut bulk = Repo::open(&repo.path, false, false)?;
    bulk.pack_without_deltas()?;
    // A first backup has nothing on disk to find, so its objects go to memory only:
    // otherwise libgit2 looks for each new object among the loose files and packs
    // first, and reads the pack folder again when it is not there (a directory read
    // and a stat per object, a fifth of a full backup's time).
    let odb = if bulk.head()?.is_none() {
        let odb = git2::Odb::new().map_err(git_err("making an object database"))?;
        bulk.git
            .set_odb(&odb)
            .map_err(git_err("making an object database"))?;
        bulk.memory_only = true;
        odb
    } else {
        bulk.git
            .odb()
            .map_err(git_err("opening the object database"))?
    };
    let pack = odb
        .add_new_mempack_backend(1000)
        .map_err(git_err("adding an in-memory object backend"))?;
    write(&bulk, &pack)
}

/// Applies key changes to the files of HEAD and commits (if anything changed).
pub(crate) async fn commit_changes(
    repo: &Repo,
    opts: &BackupOptions,
    changes: Changes,
    revisions: &Revisions,
) -> Result<BackupReport, Error> {
    with_bulk(repo, |bulk, pack| {
        apply_changes(bulk, opts, changes, revisions, pack)
    })
}

fn apply_changes(
    repo: &Repo,
    opts: &BackupOptions,
    changes: Changes,
    revisions: &Revisions,
    pack: &git2::Mempack<'_>,
) -> Result<BackupReport, Error> {
    let (head, base) = repo.head_and_tree()?;
    // File → (member, new value, key).
    type Edit = (String, Option<Vec<u8>>, Vec<u8>);
    let mut by_file: BTreeMap<String, Vec<Edit>> = BTreeMap::new();
    let keys_read = changes.len() as u64;
    for (key, value) in changes {
        let (file, member) = locate(&key);
        by_file.entry(file).or_default().push((member, value, key));
    }
    let mut report = BackupReport {
        revision: revisions.get("").copied().unwrap_or(0),
        revisions: revisions.clone(),
        keys_read,
        ..BackupReport::default()
    };
    let mut update = TreeUpdateBuilder::new();
    let mut dirs = DirCache::default();
    let mut new_objects: Vec<Oid> = Vec::new();
    let mut touched: BTreeSet<String> = BTreeSet::new();
    for (file, edits) in by_file {
        let old = match dirs.file(repo, &base, &file)? {
            Some(bytes) => parse(&bytes).ok_or_else(|| Error::Format {
                key: file.clone(),
                reason: "not a JSON object".into(),
            })?,
            None => BTreeMap::new(),
        };
        let mut new = old.clone();
        for (member, value, key) in edits {
            match value.and_then(|v| opts.secrets.protect(&key, &v)) {
                Some(v) => new.insert(member, v),
                None => new.remove(&member),
            };
        }
        count(&old, &new, &mut report);
        if new == old {
            continue;
        }
        if new.is_empty() {
            update.remove(file.as_str());
        } else {
            let oid = repo
                .git
                .blob(&render(&new))
                .map_err(git_err(format!("writing {file}")))?;
            update.upsert(file.as_str(), oid, FileMode::Blob);
            new_objects.push(oid);
            report.files_written += 1;
        }
        touched.insert(file);
    }
    let tree = update
        .create_updated(&repo.git, &base)
        .map_err(git_err("writing the trees"))?;
    // The new trees are the folders above the touched files.
    let new_tree = repo
        .git
        .find_tree(tree)
        .map_err(git_err("reading the new tree"))?;
    new_objects.push(tree);
    let mut dirs = BTreeSet::new();
    for file in &touched {
        let mut dir = file.as_str();
        while let Some((parent, _)) = dir.rsplit_once('/') {
            dirs.insert(parent.to_owned());
            dir = parent;
        }
    }
    for dir in dirs {
        if let Ok(entry) = new_tree.get_path(std::path::Path::new(&dir)) {
            new_objects.push(entry.id());
        }
    }
    finish(
        repo,
        opts,
        (head.as_ref(), base.id()),
        tree,
        report,
        pack,
        Some(new_objects),
    )
}

/// The trees of the directories an incremental backup reads, each read once: a
/// directory of many files is one large tree object, too costly to inflate per file.
#[derive(Default)]
struct DirCache<'r> {
    trees: std::collections::HashMap<String, Option<git2::Tree<'r>>>,
}

impl<'r> DirCache<'r> {
    fn file(
        &mut self,
        repo: &'r Repo,
        base: &git2::Tree<'r>,
        file: &str,
    ) -> Result<Option<Vec<u8>>, Error> {
        let (dir, name) = file.rsplit_once('/').unwrap_or(("", file));
        if !self.trees.contains_key(dir) {
            let tree = if dir.is_empty() {
                Some(base.clone())
            } else {
                match base.get_path(std::path::Path::new(dir)) {
                    Ok(e) if e.kind() == Some(ObjectType::Tree) => Some(
                        repo.git
                            .find_tree(e.id())
                            .map_err(git_err(format!("reading {dir}")))?,
                    ),
                    _ => None,
                }
            };
            self.trees.insert(dir.to_owned(), tree);
        }
        let Some(Some(tree)) = self.trees.get(dir) else {
            return Ok(None);
        };
        match tree.get_name(name) {
            Some(e) if e.kind() == Some(ObjectType::Blob) => Ok(Some(repo.blob(e.id())?)),
            _ => Ok(None),
        }
    }
}

fn count(old: &BTreeMap<String, Value>, new: &BTreeMap<String, Value>, report: &mut BackupReport) {
    for (m, v) in new {
        match old.get(m) {
            None => report.added += 1,
            Some(o) if o != v => report.changed += 1,
            Some(_) => {}
        }
    }
    report.removed += old.keys().filter(|m| !new.contains_key(*m)).count() as u64;
}

/// Commits `tree` unless it equals the parent's (`head`, whose tree is `base`).
fn finish(
    repo: &Repo,
    opts: &BackupOptions,
    (head, base): (Option<&git2::Commit<'_>>, Oid),
    tree: Oid,
    mut report: BackupReport,
    pack: &git2::Mempack<'_>,
    new_objects: Option<Vec<Oid>>,
) -> Result<BackupReport, Error> {
    if head.is_some() && tree == base {
        return Ok(report);
    }
    let trailers: String = report
        .revisions
        .iter()
        .map(|(name, r)| match name.as_str() {
            "" => format!("Strata-Revision: {r}\n"),
            name => format!("Strata-Revision-{name}: {r}\n"),
        })
        .collect();
    let message = format!(
        "backup at revision {}: {} added, {} changed, {} removed\n\n\
         Store: {}\n{trailers}Strata-Added: {}\nStrata-Changed: {}\nStrata-Removed: {}\nStrata-Options: {}\n",
        describe(&report.revisions),
        report.added,
        report.changed,
        report.removed,
        opts.store_label,
        report.added,
        report.changed,
        report.removed,
        opts.digest()
    );
    let author = BackupOptions::signature(&opts.author)?;
    let committer = BackupOptions::signature(&opts.committer)?;
    let oid = repo.commit(
        tree,
        head,
        &message,
        (&author, &committer),
        pack,
        new_objects,
    )?;
    report.commit = Some(oid.to_string());
    Ok(report)
}

/// A full backup: one consistent read of the selected keys at `revision`, every file
/// compared by its hash with HEAD's and written only if it differs.
async fn full<S: Store>(
    parts: &[Part<'_, S>],
    repo: &Repo,
    opts: &BackupOptions,
    revisions: &Revisions,
) -> Result<BackupReport, Error> {
    let mut files: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut keys_read = 0u64;
    for (part, span) in reads(parts, &opts.spans()) {
        scan(part.store, span, revisions[&part.name], |kvs| {
            opts.progress.tell(Stage::Reading {
                keys: keys_read + kvs.len() as u64,
            });
            for kv in kvs {
                keys_read += 1;
                if !opts.selected(&kv.key) {
                    continue;
                }
                if let Some(v) = opts.secrets.protect(&kv.key, &kv.value) {
                    let (file, member) = locate(&kv.key);
                    files.entry(file).or_default().insert(member, v);
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::store("reading the store", e))?;
    }
    let report = BackupReport {
        revision: revisions.get("").copied().unwrap_or(0),
        revisions: revisions.clone(),
        full: true,
        keys_read,
        ..BackupReport::default()
    };
    with_bulk(repo, |bulk, pack| {
        write_full(bulk, opts, &files, report, pack)
    })
}

/// Writes the files of a full backup: each compared by hash with HEAD's, written
/// only if it differs; files HEAD has and the store no longer does are removed.
fn write_full(
    repo: &Repo,
    opts: &BackupOptions,
    files: &BTreeMap<String, BTreeMap<String, Value>>,
    mut report: BackupReport,
    pack: &git2::Mempack<'_>,
) -> Result<BackupReport, Error> {
    let (head, base) = repo.head_and_tree()?;
    let old_files = repo.files(&base, "")?;
    let mut update = TreeUpdateBuilder::new();
    let mut seen = BTreeSet::new();
    for (done, (file, members)) in files.iter().enumerate() {
        if done % 10_000 == 0 {
            opts.progress.tell(Stage::Writing {
                files: done as u64,
                total: files.len() as u64,
            });
        }
        seen.insert(file.as_str());
        let bytes = render(members);
        let old = old_files.get(file);
        // Compared by hash with HEAD's file, when HEAD has one.
        if let Some(old) = old {
            let oid =
                Oid::hash_object(ObjectType::Blob, &bytes).map_err(git_err("hashing a file"))?;
            if old == &oid {
                continue;
            }
        }
        let before = match old {
            Some(o) => parse(&repo.blob(*o)?).unwrap_or_default(),
            None => BTreeMap::new(),
        };
        count(&before, members, &mut report);
        let oid = if repo.memory_only {
            // Hashed here, compressed with the others when the pack is written.
            let oid = crate::packfile::object_id(ObjectType::Blob, &bytes);
            repo.pending
                .borrow_mut()
                .push((oid, ObjectType::Blob, bytes));
            oid
        } else {
            repo.git
                .blob(&bytes)
                .map_err(git_err(format!("writing {file}")))?
        };
        update.upsert(file.as_str(), oid, FileMode::Blob);
        report.files_written += 1;
    }
    for (file, oid) in &old_files {
        if !seen.contains(file.as_str()) {
            let before = parse(&repo.blob(*oid)?).unwrap_or_default();
            report.removed += before.len() as u64;
            update.remove(file.as_str());
        }
    }
    let tree = update
        .create_updated(&repo.git, &base)
        .map_err(git_err("writing the trees"))?;
    finish(
        repo,
        opts,
        (head.as_ref(), base.id()),
        tree,
        report,
        pack,
        None,
    )
}

pub(crate) fn push(repo: &Repo, opts: &BackupOptions) -> Result<(), Error> {
    let Some(remote) = &opts.push else {
        return Ok(());
    };
    let Some(_) = repo.head()? else {
        return Ok(());
    };
    let Some(mut r) = push_remote(repo, opts)? else {
        return Ok(());
    };
    let branch = repo.branch()?;
    // A remote may refuse a ref while the push as a whole succeeds: collect refusals.
    let refused = std::cell::RefCell::new(Vec::new());
    let mut callbacks = git2::RemoteCallbacks::new();
    callbacks.push_update_reference(|name, status| {
        if let Some(why) = status {
            refused.borrow_mut().push(format!("{name}: {why}"));
        }
        Ok(())
    });
    let mut push_options = git2::PushOptions::new();
    push_options.remote_callbacks(callbacks);
    r.push(&[format!("{branch}:{branch}")], Some(&mut push_options))
        .map_err(git_err(format!(
            "pushing {branch} to {remote} (the commit is kept; the next run pushes again)"
        )))?;
    drop(push_options);
    let refused = refused.into_inner();
    if !refused.is_empty() {
        return Err(Error::Refused(format!(
            "{remote} refused the push ({}); the commit is kept here",
            refused.join("; ")
        )));
    }
    Ok(())
}

/// The remote of `--push` (a name configured in the repository, or a path or URL),
/// refused up front when it needs a transport this build lacks.
pub(crate) fn push_remote<'r>(
    repo: &'r Repo,
    opts: &BackupOptions,
) -> Result<Option<git2::Remote<'r>>, Error> {
    let Some(remote) = &opts.push else {
        return Ok(None);
    };
    let r = repo
        .git
        .find_remote(remote)
        .or_else(|_| repo.git.remote_anonymous(remote))
        .map_err(git_err(format!("finding the remote {remote}")))?;
    let url = r.url().unwrap_or(remote).to_owned();
    if let Some(scheme) = network_scheme(&url) {
        return Err(Error::Refused(format!(
            "remote {remote}: this build pushes to local paths and file:// URLs only, not over \
             {scheme}; push to a bare repository on a local or mounted disk, or push the backup \
             repository with git after each run"
        )));
    }
    Ok(Some(r))
}

/// The scheme of a remote URL that needs a network transport (`ssh`, `https`, …), or
/// `None` for a local path or `file://`.
fn network_scheme(url: &str) -> Option<String> {
    if let Some((scheme, _)) = url.split_once("://") {
        return (scheme != "file").then(|| scheme.to_owned());
    }
    // scp-like `user@host:path` (a local path has no `:` before its first `/`).
    let before_slash = url.split('/').next().unwrap_or_default();
    before_slash.contains(':').then(|| "ssh".to_owned())
}
