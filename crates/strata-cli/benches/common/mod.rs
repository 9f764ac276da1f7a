#![allow(dead_code)]

//! Helpers shared by the benchmarks that drive the real `strata` binary.

pub mod etcd;

use std::process::Command;
use std::time::{Duration, Instant};

pub const STRATA: &str = env!("CARGO_BIN_EXE_strata");

/// Runs `strata ARGS`, fails loudly on error, and returns the wall time and stdout.
pub fn strata(args: &[&str]) -> (Duration, String) {
    timed(Command::new(STRATA).args(args))
}

/// Runs a command, fails loudly on error, and returns the wall time and stdout.
pub fn timed(cmd: &mut Command) -> (Duration, String) {
    let started = Instant::now();
    let out = cmd.output().expect("run a benchmark command");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (took, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A size from the environment variable `var` (e.g. STRATA_BENCH_KEYS), or `default`.
pub fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `strata ARGS` (with `env`) under `/usr/bin/time`: the wall time, the peak RSS
/// in MB, stdout's length in bytes.
pub fn strata_rss(args: &[&str], env: &[(&str, &str)]) -> (Duration, f64, usize) {
    let report = tempfile::NamedTempFile::new().unwrap();
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(report.path())
        .arg(STRATA)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run /usr/bin/time (Debian: apt-get install time)");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "strata {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kb: f64 = std::fs::read_to_string(report.path())
        .unwrap()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("a peak RSS from /usr/bin/time");
    (took, kb / 1024.0, out.stdout.len())
}

/// The sigilgate tree of `users` generated users (`strata_testkit::fixtures`) in
/// `dir/legacy`.
pub fn sigilgate_tree(dir: &std::path::Path, users: usize) -> std::path::PathBuf {
    let root = dir.join("legacy");
    strata_testkit::fixtures::sigilgate_tree(&root, users);
    root
}

/// `strata import ROOT --mapping` the sigilgate mapping into `store`: the wall time
/// and the summary.
pub fn import_sigilgate(store: &str, root: &std::path::Path) -> (Duration, String) {
    let mapping = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/sigilgate/mapping.toml");
    strata(&[
        "--store",
        store,
        "import",
        root.to_str().unwrap(),
        "--mapping",
        mapping.to_str().unwrap(),
    ])
}
