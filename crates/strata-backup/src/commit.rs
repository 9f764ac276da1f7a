//! Making a backup commit: the commit object over a new tree, its new objects written
//! out as one packfile (libgit2's pack writer, or for a first backup our own,
//! `packfile.rs`), then the branch moved with the parent check.

use git2::{Commit, Oid, Signature};

use crate::repo::{git_err, Repo};
use crate::Error;

impl Repo {
    /// Commits `tree` on HEAD's branch with `parent` as its parent (checked: if HEAD
    /// moved meanwhile, the update fails rather than losing a commit). The new objects
    /// sit in the in-memory backend `pack` and are written out as one packfile before
    /// the branch moves: a commit makes two files, not one per object.
    pub fn commit(
        &self,
        tree: Oid,
        parent: Option<&Commit<'_>>,
        message: &str,
        signatures: (&Signature<'_>, &Signature<'_>),
        pack: &git2::Mempack<'_>,
        new_objects: Option<Vec<Oid>>,
    ) -> Result<Oid, Error> {
        let (author, committer) = signatures;
        let tree = self
            .git
            .find_tree(tree)
            .map_err(git_err("reading the new tree"))?;
        let parents: Vec<&Commit<'_>> = parent.into_iter().collect();
        let oid = self
            .git
            .commit(None, author, committer, message, &tree, &parents)
            .map_err(git_err("writing the commit"))?;
        if self.memory_only {
            self.write_own_pack(pack, oid)?;
        } else {
            self.write_pack(
                pack,
                new_objects.map(|mut o| {
                    o.push(oid);
                    o
                }),
            )?;
        }
        let branch = self.branch()?;
        match parent {
            Some(p) => {
                self.git
                    .reference_matching(&branch, oid, true, p.id(), "strata backup")
                    .map_err(git_err(format!(
                        "moving {branch} (did another writer commit meanwhile?)"
                    )))?;
            }
            None => {
                self.git
                    .reference(&branch, oid, false, "strata backup: first commit")
                    .map_err(git_err(format!("creating {branch}")))?;
            }
        }
        Ok(oid)
    }

    /// Writes a first backup's objects as one pack of our own (`packfile`): the blobs
    /// [`Repo::pending`] holds and the commit `commit` with its trees, which are in
    /// the in-memory backend; then adds the disk's object folders for reading.
    fn write_own_pack(&self, pack: &git2::Mempack<'_>, commit: Oid) -> Result<(), Error> {
        let odb = self
            .git
            .odb()
            .map_err(git_err("opening the object database"))?;
        let mut objects = std::mem::take(&mut *self.pending.borrow_mut());
        let c = self
            .git
            .find_commit(commit)
            .map_err(git_err("reading the new commit"))?;
        let mut ids = vec![commit, c.tree_id()];
        c.tree()
            .map_err(git_err("reading the new tree"))?
            .walk(git2::TreeWalkMode::PreOrder, |_, entry| {
                if entry.kind() == Some(git2::ObjectType::Tree) {
                    ids.push(entry.id());
                }
                git2::TreeWalkResult::Ok
            })
            .map_err(git_err("walking the new trees"))?;
        for id in ids {
            let o = odb.read(id).map_err(git_err("reading a new object"))?;
            objects.push((id, o.kind(), o.data().to_vec()));
        }
        let objects_dir = self.git.path().join("objects");
        crate::packfile::write(&objects_dir.join("pack"), &objects)?;
        odb.add_disk_alternate(&objects_dir.display().to_string())
            .map_err(git_err("opening the object folders"))?;
        pack.reset()
            .map_err(git_err("clearing the in-memory objects"))?;
        Ok(())
    }

    /// Writes new objects, held in the in-memory backend, as one packfile (libgit2's
    /// pack writer: a temp file, renamed with its index), then empties the backend.
    /// `objects` lists them; without it, everything reachable from the backend's
    /// commits is packed (a full backup: all of it is new).
    fn write_pack(&self, pack: &git2::Mempack<'_>, objects: Option<Vec<Oid>>) -> Result<(), Error> {
        let mut buf = git2::Buf::new();
        match objects {
            None => pack
                .dump(&self.git, &mut buf)
                .map_err(git_err("packing the new objects"))?,
            Some(objects) => {
                let mut builder = self
                    .git
                    .packbuilder()
                    .map_err(git_err("packing the new objects"))?;
                for oid in objects {
                    builder
                        .insert_object(oid, None)
                        .map_err(git_err("packing the new objects"))?;
                }
                builder
                    .write_buf(&mut buf)
                    .map_err(git_err("packing the new objects"))?;
            }
        }
        let odb = self
            .git
            .odb()
            .map_err(git_err("opening the object database"))?;
        let mut writer = odb.packwriter().map_err(git_err("writing a packfile"))?;
        std::io::Write::write_all(&mut writer, &buf).map_err(|e| Error::Io {
            path: self.path.display().to_string(),
            source: crate::space::explain_write(&self.path, e),
        })?;
        writer
            .commit()
            .map_err(|e| match crate::space::disk_full(&self.path) {
                Some(full) => Error::Io {
                    path: self.path.display().to_string(),
                    source: full,
                },
                None => git_err("writing a packfile")(e),
            })?;
        pack.reset()
            .map_err(git_err("clearing the in-memory objects"))?;
        crate::pack::consolidate(&self.git)?;
        Ok(())
    }
}
