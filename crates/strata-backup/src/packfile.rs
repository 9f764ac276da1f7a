//! Writing a packfile ourselves, for a first full backup: every object hashed once
//! (its id, SHA-1 from ring, made by the caller), compressed on every core (zlib, through flate2), and the pack
//! and its version-2 index written in one pass, then moved into `objects/pack/`
//! (the pack first, the index last: a reader finds a pack by its index). libgit2's
//! way hashes each object when it is written to memory, compresses on one thread and
//! then reads the whole pack back to index it.
//!
//! Formats as in Git's `Documentation/gitformat-pack.txt`: a pack is `PACK`, version 2
//! and the object count, then each object as a type-and-size header and its zlib
//! stream, then the SHA-1 of all of it; its index is a fan-out table, the sorted ids,
//! each entry's CRC-32, its offset (31 bits, or an index into a table of 64-bit ones),
//! the pack's checksum and the index's own.

use std::io::Write;
use std::path::Path;

use git2::{ObjectType, Oid};

use crate::Error;

/// An object for the pack: its id, its kind and its bytes (without Git's header).
pub(crate) type Object = (Oid, ObjectType, Vec<u8>);

fn kind_name(kind: ObjectType) -> &'static str {
    match kind {
        ObjectType::Commit => "commit",
        ObjectType::Tree => "tree",
        ObjectType::Tag => "tag",
        _ => "blob",
    }
}

fn kind_code(kind: ObjectType) -> u8 {
    match kind {
        ObjectType::Commit => 1,
        ObjectType::Tree => 2,
        ObjectType::Tag => 4,
        _ => 3,
    }
}

/// The object's Git id: the SHA-1 of `KIND SIZE\0` and its bytes.
pub(crate) fn object_id(kind: ObjectType, data: &[u8]) -> Oid {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(format!("{} {}\0", kind_name(kind), data.len()).as_bytes());
    ctx.update(data);
    Oid::from_bytes(ctx.finish().as_ref()).expect("SHA-1 is 20 bytes")
}

/// An object's entry in the pack: its type-and-size header, then its zlib stream.
fn entry(kind: ObjectType, data: &[u8]) -> Vec<u8> {
    let mut size = data.len();
    let mut out = Vec::with_capacity(data.len() / 2 + 16);
    let mut first = (kind_code(kind) << 4) | (size & 0x0f) as u8;
    size >>= 4;
    if size > 0 {
        first |= 0x80;
    }
    out.push(first);
    while size > 0 {
        let mut byte = (size & 0x7f) as u8;
        size >>= 7;
        if size > 0 {
            byte |= 0x80;
        }
        out.push(byte);
    }
    let mut z = flate2::write::ZlibEncoder::new(out, flate2::Compression::fast());
    z.write_all(data).expect("writing to memory");
    z.finish().expect("writing to memory")
}

/// Each object's pack entry, compressed on every core.
fn entries(objects: &[Object]) -> Vec<(Oid, Vec<u8>)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = objects.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = objects
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(id, kind, data)| (*id, entry(*kind, data)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("a pack thread"))
            .collect()
    })
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.display().to_string(),
        source: crate::space::explain_write(path, e),
    }
}

/// Writes `objects` as one pack (and its index) into `pack_dir`. Objects with the
/// same id are written once.
pub(crate) fn write(pack_dir: &Path, objects: &[Object]) -> Result<(), Error> {
    let mut all = entries(objects);
    all.sort_by_key(|e| e.0);
    all.dedup_by(|a, b| a.0 == b.0);
    // The pack, in id order (any order is valid), with each entry's offset and CRC.
    let mut pack = Vec::with_capacity(all.iter().map(|e| e.1.len()).sum::<usize>() + 32);
    pack.extend_from_slice(b"PACK");
    pack.extend_from_slice(&2u32.to_be_bytes());
    pack.extend_from_slice(&(all.len() as u32).to_be_bytes());
    let mut offsets = Vec::with_capacity(all.len());
    let mut crcs = Vec::with_capacity(all.len());
    for (_, e) in &all {
        offsets.push(pack.len() as u64);
        crcs.push(crc32fast::hash(e));
        pack.extend_from_slice(e);
    }
    let sum = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &pack);
    pack.extend_from_slice(sum.as_ref());
    // The index.
    let mut idx = Vec::with_capacity(all.len() * 28 + 1100);
    idx.extend_from_slice(b"\xfftOc");
    idx.extend_from_slice(&2u32.to_be_bytes());
    let mut fanout = [0u32; 256];
    for (id, _) in &all {
        fanout[id.as_bytes()[0] as usize] += 1;
    }
    let mut running = 0;
    for n in fanout {
        running += n;
        idx.extend_from_slice(&running.to_be_bytes());
    }
    for (id, _) in &all {
        idx.extend_from_slice(id.as_bytes());
    }
    for crc in &crcs {
        idx.extend_from_slice(&crc.to_be_bytes());
    }
    let mut large = Vec::new();
    for &off in &offsets {
        if off < 0x8000_0000 {
            idx.extend_from_slice(&(off as u32).to_be_bytes());
        } else {
            idx.extend_from_slice(&(0x8000_0000 | large.len() as u32).to_be_bytes());
            large.push(off);
        }
    }
    for off in large {
        idx.extend_from_slice(&off.to_be_bytes());
    }
    idx.extend_from_slice(sum.as_ref());
    let own = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &idx);
    idx.extend_from_slice(own.as_ref());
    // Into place: each file written whole under a temporary name, then renamed.
    let name = strata_core::hex::encode(sum.as_ref());
    std::fs::create_dir_all(pack_dir).map_err(io(pack_dir))?;
    // What a killed run left (the writer's lock is ours now).
    for stale in std::fs::read_dir(pack_dir).map_err(io(pack_dir))?.flatten() {
        if stale
            .file_name()
            .to_string_lossy()
            .starts_with("tmp_strata_pack-")
        {
            let _ = std::fs::remove_file(stale.path());
        }
    }
    let final_pack = pack_dir.join(format!("pack-{name}.pack"));
    for (bytes, ext) in [(&pack, "pack"), (&idx, "idx")] {
        let target = pack_dir.join(format!("pack-{name}.{ext}"));
        let tmp = pack_dir.join(format!("tmp_strata_pack-{name}.{ext}"));
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
            .and_then(|_| std::fs::rename(&tmp, &target));
        if let Err(e) = written {
            // Nothing half-written is left behind (a full disk, say): not the
            // temporary file, nor the pack already moved in without its index.
            let _ = std::fs::remove_file(&tmp);
            if ext == "idx" {
                let _ = std::fs::remove_file(&final_pack);
            }
            return Err(io(&tmp)(e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_a_pack_that_libgit2_reads() {
        let blob = b"hello\n".to_vec();
        assert_eq!(
            object_id(ObjectType::Blob, &blob),
            Oid::hash_object(ObjectType::Blob, &blob).unwrap()
        );
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let big: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let objects: Vec<Object> = [&blob, &big, &blob]
            .into_iter()
            .map(|d| (object_id(ObjectType::Blob, d), ObjectType::Blob, d.clone()))
            .collect();
        write(&dir.path().join("objects/pack"), &objects).unwrap();
        let odb = repo.odb().unwrap();
        odb.refresh().unwrap();
        for data in [&blob, &big] {
            let id = object_id(ObjectType::Blob, data);
            let read = odb.read(id).unwrap();
            assert_eq!(read.data(), &data[..]);
            assert_eq!(read.kind(), ObjectType::Blob);
        }
    }
}
