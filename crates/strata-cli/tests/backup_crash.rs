//! `backup run` and `backup watch` killed with SIGKILL at random moments (20 trials
//! each): the repository always passes `git fsck --strict`, its last commit holds
//! exactly the store's data at the revision it claims (`backup verify` reads the store
//! at that revision), and the next run catches up to a tree identical to a fresh full
//! backup of the same data. `backup restore --all` killed part-way finishes the
//! rebuild when run again.

mod util;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use strata_testkit::git_try;
use util::{random_below, Sandbox};

fn has_commit(repo: &Path) -> bool {
    git_try(repo, &["rev-parse", "--verify", "-q", "HEAD"]).0
}

/// Writes a change set: round `k` rewrites a third of the users and deletes a few.
fn change(s: &Sandbox, k: u64) {
    let mut data = BTreeMap::new();
    for i in (k % 3..6000).step_by(3) {
        data.insert(format!("/bk/users/{i}/status"), format!("s{k}"));
        data.insert(format!("/bk/users/{i}/round"), k.to_string());
    }
    std::fs::write(s.path("change.json"), serde_json::to_string(&data).unwrap()).unwrap();
    s.ok(&["load", "change.json"]);
    s.ok(&[
        "del",
        "--prefix",
        &format!("/bk/users/{}/", k * 7 % 6000),
        "--yes",
    ]);
}

fn check(s: &Sandbox, repo: &Path, trial: u64) {
    if !repo.exists() {
        // Killed before it created the repository: nothing was written.
        return;
    }
    let (ok, out) = git_try(repo, &["fsck", "--strict"]);
    assert!(ok, "trial {trial}: git fsck failed:\n{out}");
    if has_commit(repo) {
        let out = s.run(&["backup", "verify", "--repo", repo.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "trial {trial}: the last commit does not hold the data of the revision it claims: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// libgit2's temporary object files (what a killed writer leaves) under `repo`.
fn temp_objects(repo: &Path) -> Vec<String> {
    let git = if repo.join(".git").exists() {
        repo.join(".git")
    } else {
        repo.to_owned()
    };
    let mut out = Vec::new();
    for dir in std::fs::read_dir(git.join("objects"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with("pack_git2_") || name.starts_with("tmp_object_git2_") {
                out.push(name);
            }
        }
    }
    out
}

/// After a complete run, the tree equals a full backup of the same store, and no
/// temporary file of a killed run is left.
fn caught_up(s: &Sandbox, repo: &Path, trial: u64) {
    let r = repo.to_str().unwrap();
    s.ok(&["backup", "run", "--repo", r]);
    check(s, repo, trial);
    assert_eq!(
        temp_objects(repo),
        Vec::<String>::new(),
        "trial {trial}: leftovers of killed runs"
    );
    let fresh = s.path(&format!("fresh{trial}"));
    s.ok(&["backup", "run", "--repo", fresh.to_str().unwrap()]);
    assert_eq!(
        git_try(repo, &["rev-parse", "HEAD^{tree}"]).1,
        git_try(&fresh, &["rev-parse", "HEAD^{tree}"]).1,
        "trial {trial}: the caught-up backup differs from a full one"
    );
    std::fs::remove_dir_all(fresh).unwrap();
}

/// Loads `n` users of three fields each; returns what was loaded.
fn seed_users(s: &Sandbox, n: u64) -> BTreeMap<String, String> {
    let mut data = BTreeMap::new();
    for i in 0..n {
        for f in ["name", "status", "plan"] {
            data.insert(format!("/bk/users/{i}/{f}"), format!("{f}-{i}"));
        }
    }
    std::fs::write(s.path("seed.json"), serde_json::to_string(&data).unwrap()).unwrap();
    s.ok(&["load", "seed.json"]);
    data
}

fn seed(s: &Sandbox) {
    seed_users(s, 6000);
}

#[test]
fn backup_run_killed_at_random_moments() {
    let s = Sandbox::new();
    seed(&s);
    let repo = s.path("repo");
    let mut interrupted = 0;
    for trial in 0..20 {
        change(&s, trial);
        let mut child = s
            .command(&["backup", "run", "--repo", repo.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(random_below(if trial < 3 {
            1500
        } else {
            400
        })));
        let _ = child.kill();
        if !child.wait().unwrap().success() {
            interrupted += 1;
        }
        check(&s, &repo, trial);
        if trial % 5 == 4 {
            caught_up(&s, &repo, trial);
        }
    }
    caught_up(&s, &repo, 99);
    eprintln!("{interrupted} of 20 runs were killed mid-way");
    assert!(
        interrupted > 0,
        "no run was interrupted: make the data set larger"
    );
}

#[test]
fn backup_watch_killed_at_random_moments() {
    let s = Sandbox::new();
    seed(&s);
    let repo = s.path("repo");
    let r = repo.to_str().unwrap().to_owned();
    for trial in 0..20 {
        let mut child = s
            .command(&["backup", "watch", "--repo", &r, "--debounce", "0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        change(&s, 100 + trial);
        std::thread::sleep(Duration::from_millis(random_below(600)));
        change(&s, 200 + trial);
        std::thread::sleep(Duration::from_millis(random_below(300)));
        let _ = child.kill();
        child.wait().unwrap();
        check(&s, &repo, trial);
    }
    caught_up(&s, &repo, 99);
}

#[test]
fn restore_all_killed_at_random_moments_finishes_when_run_again() {
    let s = Sandbox::new();
    let data = seed_users(&s, 20000);
    let repo = s.path("repo");
    let r = repo.to_str().unwrap();
    s.ok(&["backup", "run", "--repo", r]);
    let export = |url: &str| -> BTreeMap<String, String> {
        let out = s.ok(&["--store", url, "export", "--prefix", "/bk/"]);
        serde_json::from_str(&out).unwrap()
    };
    let mut part_way = 0;
    for trial in 0..8 {
        let url = format!("sqlite:{}", s.path(&format!("t{trial}.db")).display());
        let args = ["backup", "restore", "--all", "--repo", r, "--to", &url];
        if s.kill_at_random(&args, 800) {
            let keys = export(&url).len();
            if keys > 0 && keys < data.len() {
                part_way += 1;
            }
        }
        s.ok(&args);
        assert_eq!(
            export(&url),
            data,
            "trial {trial}: the rebuilt store differs"
        );
        // Done: a second rebuild of the same commit finds the store equal to it and
        // writes nothing (it may be a run killed after it finished); a store that
        // differs from the commit is refused.
        let again = s.ok(&args);
        assert!(
            again.contains("restored 0 keys and deleted 0 from commit"),
            "{again}"
        );
        assert!(
            again.contains(&format!("{} already as backed up", data.len())),
            "{again}"
        );
        s.ok(&["--store", &url, "put", "/bk/extra", "x"]);
        let (_, err) = s.expect(1, &args);
        assert!(err.contains("rebuilds into an empty store"), "{err}");
    }
    eprintln!("{part_way} of 8 rebuilds were killed part-way");
    assert!(
        part_way > 0,
        "no rebuild was killed part-way: make the data set larger"
    );
}
