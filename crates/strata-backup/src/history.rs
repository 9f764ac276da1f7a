//! A backup's history: a key's or object's changes commit by commit (`log`), and the
//! key-level difference of two commits or dates (`diff`).

use std::collections::BTreeMap;

use git2::Commit;
use serde_json::Value;

use crate::layout::{key_of, locate, parse};
use crate::repo::{git_err, Repo, Trailers};
use crate::Error;

/// One change of a key (or of an object's file) in history.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub commit: String,
    pub time: i64,
    /// The commit's author, `Name <email>`.
    pub author: String,
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

/// The newest backup commit of a repository: its id, time, the store revisions it
/// records (every part's, for a layered keyspace) and the store it is of; `None` for
/// a repository without commits.
pub fn last(
    repo_path: &std::path::Path,
) -> Result<Option<(LogEntry, crate::repo::Trailers)>, Error> {
    let repo = Repo::open(repo_path, false, false)?;
    let Some(commit) = repo.head()? else {
        return Ok(None);
    };
    let trailers = crate::repo::Trailers::parse(commit.message().unwrap_or("")).unwrap_or_default();
    Ok(Some((
        LogEntry {
            commit: commit.id().to_string(),
            time: commit.time().seconds(),
            author: author_of(&commit),
            revision: trailers.revision,
            changes: Vec::new(),
        },
        trailers,
    )))
}

fn author_of(commit: &git2::Commit<'_>) -> String {
    let a = commit.author();
    format!(
        "{} <{}>",
        String::from_utf8_lossy(a.name_bytes()),
        String::from_utf8_lossy(a.email_bytes())
    )
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
                author: author_of(&commit),
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
