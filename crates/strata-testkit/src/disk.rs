//! A small filesystem that a test can fill up: a size-limited tmpfs mounted on a
//! temp dir (as root; otherwise the test fails saying so), filled to the brim by a
//! filler file, freed again on demand, unmounted when dropped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a few megabytes at [`SmallFs::path`].
#[derive(Debug)]
pub struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    /// Mounts a tmpfs of `megabytes` MiB. Needs root (CAP_SYS_ADMIN), as the test
    /// suite runs in CI; a failure says so rather than skipping.
    pub fn mount(megabytes: u32) -> SmallFs {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={megabytes}m"),
                "strata-test",
            ])
            .arg(dir.path())
            .output()
            .expect("`mount` (util-linux) runs the full-disk tests: install util-linux");
        assert!(
            out.status.success(),
            "mounting a {megabytes} MiB tmpfs at {} failed: {} — the full-disk tests need \
             root (CAP_SYS_ADMIN) to mount a size-limited filesystem; run them as root, as CI does",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        SmallFs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn filler(&self) -> PathBuf {
        self.path().join("filler")
    }

    /// Fills the filesystem, leaving about `leave` bytes free.
    pub fn fill(&self, leave: u64) {
        let mut file = std::fs::File::create(self.filler()).expect("create the filler");
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.flush();
        drop(file);
        let len = std::fs::metadata(self.filler())
            .map(|m| m.len())
            .unwrap_or(0);
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .open(self.filler())
            .and_then(|f| f.set_len(len.saturating_sub(leave)));
    }

    /// Frees what [`SmallFs::fill`] took.
    pub fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
