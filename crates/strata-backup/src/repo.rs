//! The backup repository, through libgit2 (the `git2` crate; no `git` process).
//!
//! Owns opening or creating the repository, the single-writer lock, reading the files
//! of a commit, the trailers a commit carries (`Strata-Revision: N`…) and resolving
//! `--at COMMIT|DATE`; making a commit and its pack is `commit.rs`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use git2::{
    Commit, ObjectType, Oid, Repository, RepositoryInitOptions, Tree, TreeWalkMode, TreeWalkResult,
};

use crate::Error;

pub(crate) fn git_err(what: impl Into<String>) -> impl FnOnce(git2::Error) -> Error {
    let what = what.into();
    move |source| Error::Git { what, source }
}

/// An open backup repository.
pub struct Repo {
    pub git: Repository,
    pub path: PathBuf,
    /// New objects go to an in-memory backend only (a first backup: nothing on disk
    /// to look up); the disk's object folders are added when the pack is written.
    pub(crate) memory_only: bool,
    /// With `memory_only`: the blobs for the pack with their ids, compressed when it
    /// is written (not put in the in-memory backend).
    pub(crate) pending: std::cell::RefCell<Vec<crate::packfile::Object>>,
    /// Held while we write: a second writer fails fast instead of racing.
    _lock: Option<File>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repo({})", self.path.display())
    }
}

/// What a commit records about the backup it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trailers {
    /// The store's revision (`Strata-Revision`; 0 for a layered keyspace).
    pub revision: i64,
    /// Every part's revision: `""` for `Strata-Revision`, `NAME` for
    /// `Strata-Revision-NAME` (a layered keyspace's stores).
    pub revisions: crate::Revisions,
    /// A digest of the options that shape the files (prefixes, schema, secrets mode):
    /// an incremental backup continues only a commit made with the same options.
    pub options: String,
    pub store: String,
}

impl Trailers {
    pub fn parse(message: &str) -> Option<Trailers> {
        let mut t = Trailers::default();
        let mut found = false;
        for line in message.lines() {
            if let Some(v) = line.strip_prefix("Strata-Revision: ") {
                t.revision = v.trim().parse().ok()?;
                t.revisions.insert(String::new(), t.revision);
                found = true;
            } else if let Some((name, v)) = line
                .strip_prefix("Strata-Revision-")
                .and_then(|rest| rest.split_once(": "))
            {
                t.revisions.insert(name.to_owned(), v.trim().parse().ok()?);
                found = true;
            } else if let Some(v) = line.strip_prefix("Strata-Options: ") {
                t.options = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("Store: ") {
                t.store = v.trim().to_owned();
            }
        }
        found.then_some(t)
    }
}

impl Repo {
    /// Opens `path`, creating a bare repository (branch `main`) if it does not exist.
    /// With `write`, takes the writer lock and clears lock files a killed writer left.
    pub fn open(path: &Path, create: bool, write: bool) -> Result<Repo, Error> {
        // Objects we read were written by us or checked by `git fsck`; re-hashing each
        // on every read doubles the cost of an incremental backup.
        git2::opts::strict_hash_verification(false);
        // Nor is each tree entry, commit parent and branch target looked up before it
        // is written: we write the objects first, always (a tenth of a full backup).
        git2::opts::strict_object_creation(false);
        let git = match Repository::open(path) {
            Ok(git) => git,
            Err(_) if create && (!path.exists() || dir_is_empty(path)) => create_repository(path)?,
            Err(e) => {
                return Err(Error::Git {
                    what: format!(
                        "opening {} (give the path of a Git repository, or of a new or empty folder to create one)",
                        path.display()
                    ),
                    source: e,
                })
            }
        };
        let lock = if write {
            Some(take_writer_lock(git.path())?)
        } else {
            None
        };
        Ok(Repo {
            git,
            path: path.to_owned(),
            memory_only: false,
            pending: Default::default(),
            _lock: lock,
        })
    }

    /// The commit HEAD points at, if any.
    pub fn head(&self) -> Result<Option<Commit<'_>>, Error> {
        match self.git.head() {
            Ok(r) => Ok(Some(r.peel_to_commit().map_err(git_err("reading HEAD"))?)),
            Err(e)
                if matches!(
                    e.code(),
                    git2::ErrorCode::UnbornBranch | git2::ErrorCode::NotFound
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(git_err("reading HEAD")(e)),
        }
    }

    /// Makes this handle's pack builder store whole objects, without searching for
    /// deltas: the delta search is most of the cost of packing a commit's few hundred
    /// new objects, and whole objects read back faster. (libgit2 takes the size above
    /// which it skips deltas from `pack.deltaCacheSize`, and may one day take it from
    /// `pack.bigFileThreshold`; both are set, for this handle only, by a config file
    /// inside the Git folder that the `git` CLI does not read.)
    pub fn pack_without_deltas(&self) -> Result<(), Error> {
        let path = self.git.path().join("strata/pack.config");
        if !path.exists() {
            write_git_file(
                &path,
                "[pack]\n\tdeltaCacheSize = 1\n\tbigFileThreshold = 1\n",
            )?;
        }
        let mut config = self
            .git
            .config()
            .map_err(git_err("reading the configuration"))?;
        config
            .add_file(&path, git2::ConfigLevel::App, true)
            .map_err(git_err("reading the pack configuration"))?;
        Ok(())
    }

    /// The newest revision at which a run found the store's backed-up keys equal to
    /// commit `head` (only keys outside the backup changed after the revision `head`
    /// records). Kept in the Git folder (`strata/seen`, never committed), so the next
    /// run starts there rather than at `head`'s revision, which the store may have
    /// compacted meanwhile. `None` if the note is about another commit.
    pub fn seen(&self, head: Oid) -> Option<crate::Revisions> {
        let text = std::fs::read_to_string(self.git.path().join("strata/seen")).ok()?;
        let (commit, revisions) = text.trim().split_once(' ')?;
        if commit != head.to_string() {
            return None;
        }
        // `12` for one store, `comms=5,ops=12` for the stores of a layered keyspace.
        let mut out = crate::Revisions::new();
        for item in revisions.split(',') {
            match item.split_once('=') {
                Some((name, r)) => out.insert(name.to_owned(), r.parse().ok()?),
                None => out.insert(String::new(), item.parse().ok()?),
            };
        }
        Some(out)
    }

    /// Notes that the store at `revisions` equals commit `head` (see [`Repo::seen`]).
    pub fn set_seen(&self, head: Oid, revisions: &crate::Revisions) -> Result<(), Error> {
        let text: Vec<String> = revisions
            .iter()
            .map(|(name, r)| {
                if name.is_empty() {
                    r.to_string()
                } else {
                    format!("{name}={r}")
                }
            })
            .collect();
        write_git_file(
            &self.git.path().join("strata/seen"),
            &format!("{head} {}\n", text.join(",")),
        )
    }

    /// The branch HEAD names (`refs/heads/main` on a repository we created).
    pub fn branch(&self) -> Result<String, Error> {
        let head = self
            .git
            .find_reference("HEAD")
            .map_err(git_err("reading HEAD"))?;
        Ok(head
            .symbolic_target()
            .unwrap_or("refs/heads/main")
            .to_owned())
    }

    /// HEAD's commit (if any) and its tree (the empty tree before the first commit):
    /// what a backup builds on.
    pub fn head_and_tree(&self) -> Result<(Option<Commit<'_>>, Tree<'_>), Error> {
        let head = self.head()?;
        let tree = match &head {
            Some(c) => c.tree().map_err(git_err("reading HEAD's tree"))?,
            None => self.empty_tree()?,
        };
        Ok((head, tree))
    }

    pub fn empty_tree(&self) -> Result<Tree<'_>, Error> {
        let oid = self
            .git
            .treebuilder(None)
            .and_then(|b| b.write())
            .map_err(git_err("writing the empty tree"))?;
        self.git
            .find_tree(oid)
            .map_err(git_err("reading the empty tree"))
    }

    /// Every `.json` file of a tree under `dir` (`""` for all): path → blob id.
    pub fn files(&self, tree: &Tree<'_>, dir: &str) -> Result<BTreeMap<String, Oid>, Error> {
        let mut out = BTreeMap::new();
        let (root, base) = if dir.is_empty() {
            (tree.clone(), String::new())
        } else {
            match tree.get_path(Path::new(dir)) {
                Ok(entry) if entry.kind() == Some(ObjectType::Tree) => (
                    self.git
                        .find_tree(entry.id())
                        .map_err(git_err("reading a tree"))?,
                    format!("{dir}/"),
                ),
                _ => return Ok(out),
            }
        };
        root.walk(TreeWalkMode::PreOrder, |parent, entry| {
            if entry.kind() == Some(ObjectType::Blob) {
                if let Some(name) = entry.name() {
                    out.insert(format!("{base}{parent}{name}"), entry.id());
                }
            }
            TreeWalkResult::Ok
        })
        .map_err(git_err("walking a tree"))?;
        Ok(out)
    }

    /// The blob at `path` in `tree`, if any.
    pub fn file(&self, tree: &Tree<'_>, path: &str) -> Result<Option<Vec<u8>>, Error> {
        match tree.get_path(Path::new(path)) {
            Ok(entry) if entry.kind() == Some(ObjectType::Blob) => {
                let blob = self
                    .git
                    .find_blob(entry.id())
                    .map_err(git_err(format!("reading {path}")))?;
                Ok(Some(blob.content().to_vec()))
            }
            _ => Ok(None),
        }
    }

    pub fn blob(&self, oid: Oid) -> Result<Vec<u8>, Error> {
        Ok(self
            .git
            .find_blob(oid)
            .map_err(git_err("reading a blob"))?
            .content()
            .to_vec())
    }

    /// A commit from `COMMIT` (anything `git rev-parse` takes) or a date
    /// (`2026-11-24`, `2026-11-24T08:00:00Z`): the last commit made at or before it.
    pub fn resolve(&self, at: &str) -> Result<Commit<'_>, Error> {
        if let Some(secs) = strata_core::clock::parse_rfc3339(at) {
            let mut walk = self.git.revwalk().map_err(git_err("walking history"))?;
            walk.push_head().map_err(git_err("walking history"))?;
            for oid in walk {
                let c = self
                    .git
                    .find_commit(oid.map_err(git_err("walking history"))?)
                    .map_err(git_err("reading a commit"))?;
                if c.time().seconds() <= secs {
                    return Ok(c);
                }
            }
            return Err(Error::NotFound(format!(
                "no backup commit was made at or before {at}"
            )));
        }
        let obj = self.git.revparse_single(at).map_err(|_| {
            Error::NotFound(format!(
                "{at} is neither a commit of the backup nor a date (YYYY-MM-DD[THH:MM:SSZ])"
            ))
        })?;
        obj.peel_to_commit()
            .map_err(git_err(format!("reading commit {at}")))
    }
}

/// Creates a bare repository (branch `main`) at `path` whole or not at all: it is made
/// in a hidden sibling folder and renamed into place, so a process killed half-way
/// leaves no half-made repository that the next run could not open. Leftovers of
/// killed creators are removed; if another process created `path` meanwhile, that
/// repository is opened.
fn create_repository(path: &Path) -> Result<Repository, Error> {
    let failed = || git_err(format!("creating a repository at {}", path.display()));
    let mut opts = RepositoryInitOptions::new();
    opts.bare(true).initial_head("main");
    // `.`, `..` or `a/..`: work on the folder's real name and parent.
    let resolved = path.canonicalize().ok();
    if let Some(real) = &resolved {
        let cwd = std::env::current_dir().and_then(|c| c.canonicalize());
        if cwd.is_ok_and(|c| c.starts_with(real)) {
            // The (empty) folder we stand in cannot be replaced: create it in place.
            return Repository::init_opts(real, &opts).map_err(failed());
        }
    }
    let path = resolved.as_deref().unwrap_or(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".into());
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => Path::new(".").to_owned(),
    };
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(&parent).map_err(io)?;
    let stem = format!(".{name}.strata-init-");
    if let Ok(entries) = std::fs::read_dir(&parent) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let dead = file
                .strip_prefix(&stem)
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists());
            if dead {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let tmp = parent.join(format!("{stem}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    drop(Repository::init_opts(&tmp, &opts).map_err(failed())?);
    // rename(2) replaces an empty folder; a non-empty one means another process won.
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_dir_all(&tmp);
        if dir_is_empty(path) || !path.exists() {
            return Err(io(e));
        }
    }
    Repository::open(path).map_err(failed())
}

fn dir_is_empty(path: &Path) -> bool {
    std::fs::read_dir(path)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

/// An exclusive OS lock on `<gitdir>/strata-backup.lock`, released when the process
/// dies. Holding it, any `*.lock` file under `refs/` or `HEAD.lock` was left by a
/// killed writer and is removed.
fn take_writer_lock(git_dir: &Path) -> Result<File, Error> {
    let path = git_dir.join("strata-backup.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(Error::Busy {
                repo: git_dir.display().to_string(),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Error::Io {
                path: path.display().to_string(),
                source: e,
            })
        }
    }
    let mut stale = vec![
        git_dir.join("HEAD.lock"),
        git_dir.join("packed-refs.lock"),
        git_dir.join("index.lock"),
    ];
    collect_locks(&git_dir.join("refs"), &mut stale);
    collect_temp_objects(&git_dir.join("objects"), &mut stale);
    for lock in stale {
        let _ = std::fs::remove_file(lock);
    }
    Ok(file)
}

/// The temporary files libgit2 writes while it adds objects (`pack/pack_git2_*` while
/// it indexes a pack, `??/tmp_object_git2_*` for a loose object) and renames when done:
/// a writer killed in between leaves them, and nothing else would ever remove them.
fn collect_temp_objects(objects: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(objects) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let fan_out = name.len() == 2 && name.chars().all(|c| c.is_ascii_hexdigit());
        let (dir, temp) = match () {
            _ if name == "pack" => (path, "pack_git2_"),
            _ if fan_out => (path, "tmp_object_git2_"),
            _ => continue,
        };
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        out.extend(
            files
                .flatten()
                .filter(|f| f.file_name().to_string_lossy().starts_with(temp))
                .map(|f| f.path()),
        );
    }
}

fn collect_locks(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_locks(&path, out);
        } else if path.extension().is_some_and(|e| e == "lock") {
            out.push(path);
        }
    }
}

/// Writes a file whole or not at all: a new temp file beside it, created with the
/// permission bits `mode`, renamed over it. Creates the folder if need be.
pub(crate) fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    // A leftover of a killed writer would keep its own permissions: start afresh.
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    std::io::Write::write_all(&mut options.open(&tmp)?, contents)?;
    std::fs::rename(&tmp, path)
}

/// [`write_atomically`] a file of the Git folder (mode 0644).
fn write_git_file(path: &Path, contents: &str) -> Result<(), Error> {
    write_atomically(path, contents.as_bytes(), 0o644).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A creator killed half-way leaves only a hidden sibling folder, which the next
    /// creation removes; an empty folder given as the path is used.
    #[test]
    fn a_repository_is_created_whole_and_leftovers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup.git");
        let leftover = dir.path().join(".backup.git.strata-init-4000000000");
        std::fs::create_dir_all(leftover.join("objects")).unwrap();
        std::fs::create_dir(&path).unwrap();
        let repo = Repo::open(&path, true, true).unwrap();
        assert!(repo.head().unwrap().is_none());
        assert!(path.join("HEAD").is_file());
        assert!(
            !leftover.exists(),
            "the killed creator's folder is still there"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["backup.git"]);
        drop(repo);
        // A folder that is neither empty nor a repository is refused, untouched.
        let other = dir.path().join("notes");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("todo.txt"), "x").unwrap();
        let Err(err) = Repo::open(&other, true, true) else {
            panic!("a folder with other files must be refused");
        };
        assert!(err.to_string().contains("empty folder"), "{err}");
    }
}
