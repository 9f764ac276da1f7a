//! `strata backup`: readable commits checked with the real git (fsck, log -p, diff-tree),
//! single-record log and restore, secrets never in the repository, restore with the
//! encryption key, push to a bare repository, and continuous backup with watch.

mod util;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use strata_testkit::{etcd, git};
use util::{examples, wait_for_commits, Sandbox};

type Data = BTreeMap<String, String>;

/// Every object of the repository, uncompressed: what anyone holding it can read.
fn all_objects(repo: &Path) -> String {
    git(repo, &["cat-file", "--batch-all-objects", "--batch"])
}

fn export(s: &Sandbox, prefix: &str) -> Data {
    serde_json::from_str(&s.ok(&["export", "--prefix", prefix])).unwrap()
}

/// The `-`/`+` lines of a patch.
fn changed_lines(patch: &str) -> Vec<&str> {
    patch
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect()
}

/// A sandbox holding the sigilgate data, and the path for its backup repository.
fn sigilgate() -> (Sandbox, std::path::PathBuf) {
    let s = Sandbox::new();
    s.ok(&[
        "load",
        examples().join("sigilgate/expected.json").to_str().unwrap(),
    ]);
    let repo = s.path("repo");
    (s, repo)
}

/// `strata backup restore` of one sigilgate node as of `at`, with more arguments.
fn restore_node(s: &Sandbox, repo: &str, at: &str, more: &[&str]) -> String {
    let node = "/sigilgate/nodes/10.20.0.20";
    let mut args = vec![
        "backup", "restore", "--yes", "--repo", repo, node, "--at", at,
    ];
    args.extend_from_slice(more);
    s.ok(&args)
}

#[test]
fn one_changed_field_is_a_one_line_diff_and_can_be_restored_alone() {
    let (s, repo) = sigilgate();
    let r = repo.to_str().unwrap();
    let out = s.ok(&[
        "backup",
        "run",
        "--repo",
        r,
        "--author",
        "Ops Bot <ops@example.org>",
    ]);
    assert!(out.contains("356 added, 0 changed, 0 removed"), "{out}");
    assert!(s
        .ok(&["backup", "run", "--repo", r])
        .contains("nothing changed"));
    s.ok(&["put", "/sigilgate/nodes/10.20.0.20/status", "down"]);
    s.ok(&[
        "put",
        "/public/contacts/bob@example.org/newsletter",
        "false",
    ]);
    let out = s.ok(&[
        "backup",
        "run",
        "--repo",
        r,
        "--author",
        "Ops Bot <ops@example.org>",
    ]);
    assert!(
        out.contains("0 added, 2 changed, 0 removed (2 files written)"),
        "{out}"
    );
    git(&repo, &["fsck", "--strict"]);
    let log = git(&repo, &["log", "-p", "-1", "--format=%an <%ae>%n%B"]);
    assert!(log.contains("Ops Bot <ops@example.org>"), "{log}");
    assert!(log.contains("Strata-Revision: 4"), "{log}");
    assert!(log.contains(&format!("Store: {}", s.store)), "{log}");
    assert_eq!(
        changed_lines(&log),
        [
            r#"-  "newsletter": "true""#,
            r#"+  "newsletter": "false""#,
            r#"-  "status": "up""#,
            r#"+  "status": "down""#,
        ]
    );
    // History of one record, and the key-level diff of two commits.
    let history = s.ok(&["backup", "log", "--repo", r, "/sigilgate/nodes/10.20.0.20"]);
    assert!(
        history.contains("~ /sigilgate/nodes/10.20.0.20/status: up -> down"),
        "{history}"
    );
    assert!(
        history.contains("+ /sigilgate/nodes/10.20.0.20/grpc_path = /1c7bd1"),
        "{history}"
    );
    let (diff, _) = s.expect(3, &["backup", "diff", "--repo", r, "HEAD~1", "HEAD"]);
    assert_eq!(diff.lines().count(), 2, "{diff}");
    // Restore that one node from the first commit; the contact keeps its new value.
    s.ok(&["put", "/sigilgate/nodes/10.20.0.20/extra", "x"]);
    let dry = restore_node(&s, r, "HEAD~1", &["--dry-run"]);
    assert!(
        dry.contains("put /sigilgate/nodes/10.20.0.20/status"),
        "{dry}"
    );
    assert!(
        dry.contains("delete /sigilgate/nodes/10.20.0.20/extra"),
        "{dry}"
    );
    assert_eq!(
        s.ok(&["get", "/sigilgate/nodes/10.20.0.20/status"]).trim(),
        "down"
    );
    restore_node(&s, r, "HEAD~1", &[]);
    assert_eq!(
        s.ok(&["get", "/sigilgate/nodes/10.20.0.20/status"]).trim(),
        "up"
    );
    s.expect(3, &["get", "/sigilgate/nodes/10.20.0.20/extra"]);
    assert_eq!(
        s.ok(&["get", "/public/contacts/bob@example.org/newsletter"])
            .trim(),
        "false"
    );
    // A misspelt target is an error, not a restore of nothing.
    let (_, err) = s.expect(
        1,
        &[
            "backup",
            "restore",
            "--repo",
            r,
            "/sigilgate/nodes/10.9.9.9",
        ],
    );
    assert!(
        err.contains("/sigilgate/nodes/10.9.9.9: no key of it is in commit"),
        "{err}"
    );
    // A date before the first backup names no commit.
    let (_, err) = s.expect(
        1,
        &[
            "backup",
            "restore",
            "--repo",
            r,
            "/sigilgate/",
            "--at",
            "2001-01-01",
        ],
    );
    assert!(
        err.contains("no backup commit was made at or before 2001-01-01"),
        "{err}"
    );
    // verify: the last commit against the store at its revision.
    s.ok(&["backup", "run", "--repo", r]);
    assert!(s
        .ok(&["backup", "verify", "--repo", r])
        .starts_with("ok: commit"));
}

#[test]
fn a_date_restores_from_the_last_commit_made_at_or_before_it() {
    let (s, repo) = sigilgate();
    let r = repo.to_str().unwrap();
    s.ok(&["backup", "run", "--repo", r]);
    // Commit times are in whole seconds: the second commit must fall in a later one.
    std::thread::sleep(Duration::from_millis(1100));
    s.ok(&["put", "/sigilgate/nodes/10.20.0.20/status", "down"]);
    s.ok(&["backup", "run", "--repo", r]);
    let times = git(&repo, &["log", "--format=%H %ct"]);
    let commits: Vec<(&str, i64)> = times
        .lines()
        .map(|l| {
            let (id, secs) = l.split_once(' ').unwrap();
            (id, secs.parse().unwrap())
        })
        .collect();
    let [(last, last_time), (first, first_time)] = commits[..] else {
        panic!("two commits expected: {times}");
    };
    assert!(first_time < last_time, "{times}");
    let restore_at = |at: &str| restore_node(&s, r, at, &["--dry-run"]);
    // At the first commit's second (UTC, and the same instant with an offset), and
    // just before the second commit: the first.
    for at in [
        strata_core::clock::format_rfc3339(first_time),
        strata_core::clock::format_rfc3339(first_time + 3600).replace('Z', "+01:00"),
        strata_core::clock::format_rfc3339(last_time - 1),
    ] {
        let out = restore_at(&at);
        assert!(
            out.contains(&format!("from commit {}", &first[..12])),
            "{at}: {out}"
        );
        assert!(
            out.contains("put /sigilgate/nodes/10.20.0.20/status"),
            "{at}: {out}"
        );
    }
    // From the second commit's time on, or a day far ahead: the last.
    for at in [
        strata_core::clock::format_rfc3339(last_time),
        "2999-12-31".to_string(),
    ] {
        let out = restore_at(&at);
        assert!(
            out.contains(&format!("from commit {}", &last[..12])),
            "{at}: {out}"
        );
        assert!(out.starts_with("would restore 0 keys"), "{at}: {out}");
    }
}

#[test]
fn an_incremental_backup_rewrites_only_the_changed_objects_trees() {
    let (s, repo) = sigilgate();
    let r = repo.to_str().unwrap();
    s.ok(&["backup", "run", "--repo", r]);
    s.ok(&["put", "/sigilgate/users/92/status", "blocked"]);
    let out = s.ok(&["backup", "run", "--repo", r]);
    assert!(out.contains("(1 file written)"), "{out}");
    let trees = |rev: &str| -> BTreeMap<String, String> {
        git(&repo, &["ls-tree", "-r", "-t", rev])
            .lines()
            .map(|l| {
                let (meta, path) = l.split_once('\t').unwrap();
                (path.to_owned(), meta.split(' ').nth(2).unwrap().to_owned())
            })
            .collect()
    };
    let (before, after) = (trees("HEAD~1"), trees("HEAD"));
    let mut touched: Vec<&String> = after
        .iter()
        .filter(|(p, id)| before.get(*p) != Some(id))
        .map(|(p, _)| p)
        .collect();
    touched.sort();
    eprintln!(
        "{} of {} entries changed: {touched:?}",
        touched.len(),
        after.len()
    );
    assert_eq!(
        touched,
        ["sigilgate", "sigilgate/users", "sigilgate/users/92.json"]
    );
}

/// Every secret value of the broker example: the passwords in each service's state and
/// each member's connection URL.
fn broker_secrets(data: &Data) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in data {
        if k.ends_with("/state") {
            let doc: serde_json::Value = serde_json::from_str(v).unwrap();
            for c in ["admin_credentials", "app_credentials"] {
                out.push(doc[c]["password"].as_str().unwrap().to_owned());
            }
        } else if k.contains("/members/") {
            let doc: serde_json::Value = serde_json::from_str(v).unwrap();
            let url = doc["conn_url"].as_str().unwrap();
            let password = url.split(':').nth(2).unwrap().split('@').next().unwrap();
            out.push(password.to_owned());
            out.push(url.to_owned());
        }
    }
    assert_eq!(
        out.len(),
        4 * 2 + 8 * 2,
        "the broker example has 4 services with 2 members each"
    );
    out
}

#[test]
fn broker_secrets_never_reach_the_repository_and_encrypted_ones_restore() {
    let s = Sandbox::new();
    let dump = examples().join("etcd-v2-broker/etcd-v2-dump.json");
    s.ok(&["import", dump.to_str().unwrap(), "--format", "etcd-v2"]);
    let data = export(&s, "/");
    let secrets = broker_secrets(&data);
    let schema = examples().join("broker/schema.toml");
    let schema = schema.to_str().unwrap();
    let repo = s.path("repo");
    let r = repo.to_str().unwrap();
    s.ok(&["backup", "run", "--repo", r, "--schema", schema]);
    // The fingerprint key lives beside the history, readable by its owner only.
    let key_file = std::fs::metadata(repo.join("strata/fingerprint.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_file.permissions()) & 0o777,
        0o600
    );
    // Change a password: the diff shows that it changed, not what it is.
    let state_key = "/service/f1/state";
    let doc: serde_json::Value = serde_json::from_str(&data[state_key]).unwrap();
    let old_password = doc["admin_credentials"]["password"].as_str().unwrap();
    let new_state = data[state_key].replace(old_password, "n3w-s3cret-pw");
    s.ok(&["put", state_key, &new_state]);
    s.ok(&["backup", "run", "--repo", r, "--schema", schema]);
    let patch = git(&repo, &["log", "-p", "-1"]);
    let lines = changed_lines(&patch);
    assert_eq!(lines.len(), 2, "{patch}");
    assert!(
        lines[0].contains("hmac-sha256:") && lines[1].contains("hmac-sha256:"),
        "{patch}"
    );
    let everything = all_objects(&repo) + &git(&repo, &["log", "-p", "--all"]);
    for secret in secrets.iter().chain([&"n3w-s3cret-pw".to_owned()]) {
        assert!(
            !everything.contains(secret.as_str()),
            "the secret {secret} is in the repository"
        );
    }
    // backup = false: the registrar's entries are not backed up at all.
    assert!(!everything.contains("postgresql-brokerpatroni"));
    assert!(
        everything.contains("\"allocated_port\""),
        "the rest of the state is readable"
    );
    git(&repo, &["fsck", "--strict"]);
    s.ok(&["backup", "verify", "--repo", r, "--schema", schema]);

    // With a key file, secrets are encrypted: still never in the clear, and restorable.
    std::fs::write(
        s.path("secrets.key"),
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    )
    .unwrap();
    let enc = s.path("enc");
    let e = enc.to_str().unwrap();
    s.ok(&[
        "backup",
        "run",
        "--repo",
        e,
        "--schema",
        schema,
        "--encrypt-secrets",
        "secrets.key",
    ]);
    let everything = all_objects(&enc);
    for secret in secrets.iter().skip(2) {
        assert!(
            !everything.contains(secret.as_str()),
            "the secret {secret} is in the repository"
        );
    }
    let target = format!("sqlite:{}", s.path("restored.db").display());
    let (_, err) = s.expect(
        1,
        &[
            "backup", "restore", "--all", "--to", &target, "--repo", e, "--schema", schema,
        ],
    );
    assert!(err.contains("--encrypt-secrets"), "{err}");
    let restored = Sandbox::with_store(&target);
    restored.ok(&["del", "--prefix", "/", "--yes"]);
    s.ok(&[
        "backup",
        "restore",
        "--all",
        "--to",
        &target,
        "--repo",
        e,
        "--schema",
        schema,
        "--encrypt-secrets",
        "secrets.key",
    ]);
    let mut expected = export(&s, "/");
    expected.retain(|k, _| !k.starts_with("/postgresql-brokerpatroni/"));
    assert_eq!(export(&restored, "/"), expected);
}

#[test]
fn push_sends_each_commit_to_a_bare_repository() {
    let (s, repo) = sigilgate();
    let bare = s.path("mirror.git");
    git(
        s.dir.path(),
        &["init", "--bare", "-q", bare.to_str().unwrap()],
    );
    let args = [
        "backup",
        "run",
        "--repo",
        repo.to_str().unwrap(),
        "--push",
        bare.to_str().unwrap(),
    ];
    s.ok(&args);
    s.ok(&["put", "/sigilgate/nodes/10.20.0.20/status", "down"]);
    s.ok(&args);
    assert_eq!(
        git(&bare, &["rev-parse", "main"]),
        git(&repo, &["rev-parse", "main"])
    );
    assert_eq!(git(&bare, &["rev-list", "--count", "main"]).trim(), "2");
    git(&bare, &["fsck", "--strict"]);
    // A remote that went its own way refuses the push: an error, the commit kept here.
    let clone = s.path("clone");
    git(
        s.dir.path(),
        &[
            "clone",
            "-q",
            "-b",
            "main",
            bare.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    std::fs::write(clone.join("note.txt"), "by hand").unwrap();
    git(&clone, &["add", "note.txt"]);
    git(
        &clone,
        &[
            "-c",
            "user.name=x",
            "-c",
            "user.email=x@y",
            "commit",
            "-qm",
            "by hand",
        ],
    );
    git(&clone, &["push", "-q", "origin", "main"]);
    s.ok(&["put", "/sigilgate/nodes/10.20.0.20/status", "up"]);
    let (_, err) = s.expect(1, &args);
    assert!(err.contains("pushing refs/heads/main to"), "{err}");
    assert_eq!(git(&repo, &["rev-list", "--count", "main"]).trim(), "3");
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%s", "main"]).trim(),
        "by hand"
    );
    // A network remote is refused before anything is done (this build has no SSH/HTTPS).
    s.ok(&["put", "/sigilgate/nodes/10.20.0.20/status", "down"]);
    for remote in [
        "git@example.org:ops/backup.git",
        "https://example.org/backup.git",
    ] {
        let r = repo.to_str().unwrap();
        let (_, err) = s.expect(1, &["backup", "run", "--repo", r, "--push", remote]);
        assert!(err.contains("local paths and file:// URLs only"), "{err}");
    }
    assert_eq!(git(&repo, &["rev-list", "--count", "main"]).trim(), "3");
}

#[test]
fn a_repository_is_made_in_the_empty_folder_one_stands_in_or_by_a_relative_path() {
    let (s, _) = sigilgate();
    let here = s.path("here");
    std::fs::create_dir(&here).unwrap();
    for repo in [".", "../there/../other.git"] {
        let out = s
            .command(&["backup", "run", "--repo", repo])
            .current_dir(&here)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "--repo {repo}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for repo in [here, s.path("other.git")] {
        git(&repo, &["fsck", "--strict"]);
        assert_eq!(git(&repo, &["rev-list", "--count", "main"]).trim(), "1");
    }
}

#[test]
fn watch_commits_each_burst_within_seconds_and_resumes_after_a_restart() {
    let (s, repo) = sigilgate();
    let r = repo.to_str().unwrap().to_owned();
    let start = || {
        s.command(&["backup", "watch", "--repo", &r, "--debounce", "0.3"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let wait_for = |n: u32| wait_for_commits(&repo, n);
    let mut watcher = start();
    wait_for(1);
    for i in 0..5 {
        s.ok(&["put", &format!("/sigilgate/nodes/10.20.0.20/n{i}"), "v"]);
    }
    wait_for(2);
    // Stop it, change things while it is down, start again: no gap.
    Command::new("kill")
        .arg("-TERM")
        .arg(watcher.id().to_string())
        .status()
        .unwrap();
    watcher.wait().unwrap();
    s.ok(&["put", "/sigilgate/nodes/10.20.0.20/status", "down"]);
    s.ok(&["del", "/sigilgate/nodes/10.20.0.20/n0"]);
    let mut watcher = start();
    wait_for(3);
    let _ = watcher.kill();
    watcher.wait().unwrap();
    let file = git(&repo, &["show", "HEAD:sigilgate/nodes/10.20.0.20.json"]);
    assert!(
        file.contains("\"status\": \"down\"")
            && !file.contains("\"n0\"")
            && file.contains("\"n4\""),
        "{file}"
    );
    s.ok(&["backup", "verify", "--repo", &r]);
    git(&repo, &["fsck", "--strict"]);
}

#[test]
fn watch_on_etcd_rides_out_a_server_restart_and_loses_nothing() {
    let mut cluster = etcd::EtcdCluster::start(1);
    let s = Sandbox::with_store(&cluster.url());
    s.ok(&[
        "load",
        examples().join("sigilgate/expected.json").to_str().unwrap(),
    ]);
    let repo = s.path("repo");
    let r = repo.to_str().unwrap();
    let watcher = s
        .command(&["backup", "watch", "--repo", r, "--debounce", "0.3"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_commits(&repo, 1);
    s.ok(&["put", "/sigilgate/nodes/10.20.0.20/status", "down"]);
    wait_for_commits(&repo, 2);
    // The server goes away under the watch and comes back on the same data.
    cluster.kill(0);
    std::thread::sleep(Duration::from_secs(2));
    cluster.restart(0);
    s.ok(&["put", "/sigilgate/nodes/10.20.0.20/status", "maintenance"]);
    s.ok(&["del", "/sigilgate/nodes/10.20.0.20/role"]);
    wait_for_commits(&repo, 3);
    Command::new("kill")
        .arg("-TERM")
        .arg(watcher.id().to_string())
        .status()
        .unwrap();
    let out = watcher.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let file = git(&repo, &["show", "HEAD:sigilgate/nodes/10.20.0.20.json"]);
    assert!(
        file.contains("\"status\": \"maintenance\"") && !file.contains("\"role\""),
        "{file}"
    );
    // Every change is in the history, and the last commit is the store.
    let history = s.ok(&[
        "backup",
        "log",
        "--repo",
        r,
        "/sigilgate/nodes/10.20.0.20/status",
    ]);
    assert!(
        history.contains("up -> down") && history.contains("down -> maintenance"),
        "{history}"
    );
    s.ok(&["backup", "verify", "--repo", r]);
    git(&repo, &["fsck", "--strict"]);
}

#[test]
fn a_compacted_revision_or_a_replaced_store_falls_back_to_a_full_backup() {
    let (s, repo) = sigilgate();
    let r = repo.to_str().unwrap();
    s.ok(&["backup", "run", "--repo", r]);
    s.ok(&["put", "/sigilgate/nodes/10.20.0.20/status", "down"]);
    s.ok(&["put", "/sigilgate/nodes/10.20.0.20/status", "maintenance"]);
    s.ok(&["compact", "4", "--yes"]);
    let out = s.ok(&["backup", "run", "--repo", r]);
    assert!(
        out.contains("0 added, 1 changed, 0 removed (1 file written, full backup)"),
        "{out}"
    );
    // Another store (its revision is behind the recorded one): a full backup too.
    let other = Sandbox::with_store(&format!("sqlite:{}", s.path("other.db").display()));
    other.ok(&["put", "/sigilgate/nodes/10.20.0.20/status", "up"]);
    let out = other.ok(&["backup", "run", "--repo", r]);
    assert!(out.contains("full backup"), "{out}");
    assert!(out.contains("355 removed"), "{out}");
    git(&repo, &["fsck", "--strict"]);
}
