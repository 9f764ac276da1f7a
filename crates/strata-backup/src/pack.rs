//! Keeping the number of packfiles small.
//!
//! Each backup commit writes its new objects as one packfile (a few files instead of
//! one per object, which is what makes an incremental backup cheap). Left alone, a
//! continuous backup would pile up thousands of small packs and every read would
//! search them all; so once [`MAX_SMALL_PACKS`] packs under [`SMALL_PACK_BYTES`] exist,
//! they are merged into one (libgit2's pack builder), and the merged files removed only
//! after the new pack is in place. Large packs (a full backup) are never rewritten.

use std::path::{Path, PathBuf};

use git2::{Oid, Repository};

use crate::repo::git_err;
use crate::Error;

pub const MAX_SMALL_PACKS: usize = 16;
pub const SMALL_PACK_BYTES: u64 = 8 << 20;

/// The object ids listed in a version-2 pack index (`.idx`).
fn idx_oids(path: &Path) -> Option<Vec<Oid>> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.get(..8)? != b"\xfftOc\x00\x00\x00\x02" {
        return None;
    }
    let count = u32::from_be_bytes(bytes.get(8 + 255 * 4..8 + 256 * 4)?.try_into().ok()?) as usize;
    let start = 8 + 256 * 4;
    (0..count)
        .map(|i| Oid::from_bytes(bytes.get(start + i * 20..start + (i + 1) * 20)?).ok())
        .collect()
}

fn small_packs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() < SMALL_PACK_BYTES))
        .filter(|p| p.with_extension("idx").exists())
        .collect()
}

/// Merges the small packs if there are too many; returns how many were merged.
pub fn consolidate(git: &Repository) -> Result<usize, Error> {
    let dir = git.path().join("objects/pack");
    let packs = small_packs(&dir);
    if packs.len() < MAX_SMALL_PACKS {
        return Ok(0);
    }
    let mut builder = git.packbuilder().map_err(git_err("merging packs"))?;
    for pack in &packs {
        let Some(oids) = idx_oids(&pack.with_extension("idx")) else {
            continue;
        };
        for oid in oids {
            builder
                .insert_object(oid, None)
                .map_err(git_err("merging packs"))?;
        }
    }
    builder
        .write(&dir, 0o444)
        .map_err(git_err("writing the merged pack"))?;
    // The merged pack now holds every object: the small ones can go. A reader that had
    // one open keeps its mapping; later reads find the objects in the new pack.
    for pack in &packs {
        for ext in ["pack", "idx", "rev", "keep"] {
            let _ = std::fs::remove_file(pack.with_extension(ext));
        }
    }
    Ok(packs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_small_packs_are_merged_and_every_object_stays_readable() {
        let dir = tempfile::tempdir().unwrap();
        Repository::init_bare(dir.path()).unwrap();
        let mut blobs = Vec::new();
        for i in 0..MAX_SMALL_PACKS + 2 {
            // A handle per commit, as a backup run has.
            let git = Repository::open_bare(dir.path()).unwrap();
            let odb = git.odb().unwrap();
            let mem = odb.add_new_mempack_backend(1000).unwrap();
            blobs.push(git.blob(format!("blob {i}").as_bytes()).unwrap());
            let mut buf = git2::Buf::new();
            let mut builder = git.packbuilder().unwrap();
            builder.insert_object(blobs[i], None).unwrap();
            builder.write_buf(&mut buf).unwrap();
            let mut w = odb.packwriter().unwrap();
            std::io::Write::write_all(&mut w, &buf).unwrap();
            w.commit().unwrap();
            mem.reset().unwrap();
        }
        let merged = consolidate(&Repository::open_bare(dir.path()).unwrap()).unwrap();
        assert_eq!(merged, MAX_SMALL_PACKS + 2);
        assert_eq!(small_packs(&dir.path().join("objects/pack")).len(), 1);
        let fresh = Repository::open_bare(dir.path()).unwrap();
        for (i, oid) in blobs.iter().enumerate() {
            assert_eq!(
                fresh.find_blob(*oid).unwrap().content(),
                format!("blob {i}").as_bytes()
            );
        }
    }
}
