//! Backup benchmark: `strata backup run` of an N-key SQLite store in full, then after
//! 100 changed keys incrementally, each next to the git CLI doing the same work in a
//! worktree holding the same files (`git add -A && git commit`), in one run.
//!
//! Run: `cargo bench -p strata-cli --bench backup` (STRATA_BENCH_KEYS=N, default
//! 1,000,000; 4 fields per object, so N/4 files in 1,000 folders).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use common::{strata, timed};

fn git(dir: &Path, args: &[&str]) -> Duration {
    timed(Command::new("git").arg("-C").arg(dir).args(args)).0
}

/// `git archive REV PATHS… | tar -x -C worktree`: the same files, not timed.
fn extract(repo: &Path, rev: &str, paths: &[String], worktree: &Path) {
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["archive", rev])
        .args(paths)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let status = Command::new("tar")
        .args(["-x", "-C"])
        .arg(worktree)
        .stdin(archive.stdout.take().unwrap())
        .status()
        .unwrap();
    assert!(status.success() && archive.wait().unwrap().success());
}

/// The tree id of HEAD.
fn tree_id(dir: &Path) -> String {
    timed(
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["rev-parse", "HEAD^{tree}"]),
    )
    .1
}

fn commit(worktree: &Path) -> Duration {
    settle();
    git(worktree, &["add", "-A"]) + git(worktree, &["commit", "-q", "-m", "backup"])
}

/// Flushes dirty pages (not timed), so that one step's writeback does not slow the next.
fn settle() {
    let _ = Command::new("sync").status();
}

fn main() {
    let n: usize = common::size("STRATA_BENCH_KEYS", 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("store.db").display());
    let fields = ["name", "status", "plan", "created_at"];
    let entries: BTreeMap<String, String> = (0..n)
        .map(|i| {
            let object = i / 4;
            (
                format!(
                    "/bench/{:03}/obj-{object:07}/{}",
                    object % 1000,
                    fields[i % 4]
                ),
                format!("{}-{object}-{}", fields[i % 4], "x".repeat(40)),
            )
        })
        .collect();
    let snapshot = dir.path().join("snapshot.json");
    std::fs::write(&snapshot, serde_json::to_string(&entries).unwrap()).unwrap();
    strata(&["--store", &store, "load", snapshot.to_str().unwrap()]);
    let repo = dir.path().join("backup.git");
    let r = repo.to_str().unwrap();

    settle();
    let (full, out) = strata(&["--store", &store, "backup", "run", "--repo", r]);
    eprintln!("strata full: {out}");
    let worktree = dir.path().join("worktree");
    std::fs::create_dir(&worktree).unwrap();
    git(&worktree, &["init", "-q"]);
    git(&worktree, &["config", "user.email", "bench@localhost"]);
    git(&worktree, &["config", "user.name", "bench"]);
    extract(&repo, "HEAD", &[], &worktree);
    let git_full = commit(&worktree);
    assert_eq!(
        tree_id(&repo),
        tree_id(&worktree),
        "the git CLI committed the same tree"
    );

    // Two rounds of 100 keys changed, spread over the store: the first warms both
    // sides up (a backup that runs every few seconds works on a warm cache), the second
    // is timed.
    let mut timings = (Duration::ZERO, Duration::ZERO);
    let mut changed_files: Vec<String> = Vec::new();
    let mut changes_len = 0;
    for round in 0..2 {
        let changes: BTreeMap<&String, String> = entries
            .keys()
            .skip(round * 7)
            .step_by((n / 100).max(1))
            .take(100)
            .map(|k| (k, format!("changed in round {round}")))
            .collect();
        changes_len = changes.len();
        let change_file = dir.path().join("changes.json");
        std::fs::write(&change_file, serde_json::to_string(&changes).unwrap()).unwrap();
        strata(&["--store", &store, "load", change_file.to_str().unwrap()]);
        settle();
        let (incremental, out) = strata(&["--store", &store, "backup", "run", "--repo", r]);
        eprintln!("strata incremental: {out}");
        changed_files = timed(Command::new("git").arg("-C").arg(&repo).args([
            "diff",
            "--name-only",
            "HEAD~1",
            "HEAD",
        ]))
        .1
        .lines()
        .map(str::to_owned)
        .collect();
        extract(&repo, "HEAD", &changed_files, &worktree);
        timings = (incremental, commit(&worktree));
    }
    let (incremental, git_incremental) = timings;
    assert_eq!(
        tree_id(&repo),
        tree_id(&worktree),
        "the git CLI committed the same tree"
    );

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {n} keys ({} files) | strata backup run | git add -A && git commit | git / strata |",
        n / 4
    );
    println!("|---|---|---|---|");
    println!(
        "| full | {:.0} ms | {:.0} ms | {:.1}× |",
        ms(full),
        ms(git_full),
        git_full.as_secs_f64() / full.as_secs_f64()
    );
    println!(
        "| incremental, {} keys changed in {} files | {:.0} ms | {:.0} ms | {:.1}× |",
        changes_len,
        changed_files.len(),
        ms(incremental),
        ms(git_incremental),
        git_incremental.as_secs_f64() / incremental.as_secs_f64()
    );
}
