//! Telling a full disk from other write failures, where libgit2 does not say.

use std::path::Path;

/// libgit2 reports a failed write as "Write error", without the cause: when the
/// disk holding `dir` is full, say so instead.
pub(crate) fn explain_write(dir: &Path, e: std::io::Error) -> std::io::Error {
    disk_full(dir).unwrap_or(e)
}

/// Whether the disk holding `dir` is full, found by writing a probe file there:
/// the error to report, naming the cause.
pub(crate) fn disk_full(dir: &Path) -> Option<std::io::Error> {
    let probe = dir.join(format!(".strata-space-probe-{}", std::process::id()));
    let wrote = std::fs::File::create(&probe).and_then(|mut f| {
        std::io::Write::write_all(&mut f, &[0u8; 256 * 1024])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    match wrote {
        Err(e) if e.raw_os_error() == Some(28) || e.kind() == std::io::ErrorKind::StorageFull => {
            Some(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "No space left on device: the disk holding the repository is full",
            ))
        }
        _ => None,
    }
}
