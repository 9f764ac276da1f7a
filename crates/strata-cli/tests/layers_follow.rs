//! Following a layered keyspace: `backup watch` and `mirror` from it, each store
//! followed from its own revision. `/sigilgate/` on one etcd, `/public/` on another,
//! every other key in SQLite; etcdctl writes straight into each server, so the changes
//! come from outside Strata, and each follower is stopped and restarted to show it
//! resumes from what it recorded per store, with nothing missed.

mod util;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_testkit::etcd::etcdctl;
use strata_testkit::git;
use util::layers::{layers, ok, start_mirror, wait_caught_up, Layers};
use util::{examples, wait_for_commits};

fn sigterm(child: &std::process::Child) {
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
}

#[test]
fn backup_watch_follows_each_layer_and_resumes_after_a_restart() {
    let Layers { s, ops, comms } = layers();
    let snapshot = examples().join("sigilgate/expected.json");
    ok(&s, &["load", snapshot.to_str().unwrap()]);
    let repo = s.path("repo");
    let r = repo.to_str().unwrap().to_owned();
    let start = || {
        s.command(&["backup", "watch", "--repo", &r, "--debounce", "0.3"])
            .env_remove("STRATA_STORE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut watcher = start();
    wait_for_commits(&repo, 1);
    // A change in each etcd layer, made behind Strata's back, and one in SQLite.
    etcdctl(&ops, &["put", "/sigilgate/nodes/10.20.0.20/status", "down"]);
    wait_for_commits(&repo, 2);
    etcdctl(
        &comms,
        &[
            "put",
            "/public/contacts/bob@example.org/newsletter",
            "false",
        ],
    );
    ok(&s, &["put", "/elsewhere/note", "kept"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !git(
        &repo,
        &["show", "HEAD:public/contacts/bob@example.org.json"],
    )
    .contains("\"newsletter\": \"false\"")
        || !git(&repo, &["ls-tree", "-r", "--name-only", "HEAD"]).contains("elsewhere")
    {
        assert!(
            Instant::now() < deadline,
            "the changes in comms and local never landed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Each commit records every store's revision.
    let message = git(&repo, &["log", "-1", "--format=%B"]);
    for name in ["ops", "comms", "local"] {
        assert!(
            message.contains(&format!("Strata-Revision-{name}: ")),
            "{message}"
        );
    }
    sigterm(&watcher);
    let out = watcher.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = util::commits(&repo);
    // Changes while it is down, in both etcd layers; the restart replays each from
    // the revision its last commit records.
    etcdctl(&ops, &["del", "/sigilgate/nodes/10.20.0.20/role"]);
    etcdctl(
        &comms,
        &["put", "/public/contacts/bob@example.org/newsletter", "true"],
    );
    watcher = start();
    wait_for_commits(&repo, before + 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let node = git(&repo, &["show", "HEAD:sigilgate/nodes/10.20.0.20.json"]);
        let bob = git(
            &repo,
            &["show", "HEAD:public/contacts/bob@example.org.json"],
        );
        if !node.contains("\"role\"") && bob.contains("\"newsletter\": \"true\"") {
            assert!(node.contains("\"status\": \"down\""), "{node}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "missed a change made while stopped:\n{node}\n{bob}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    sigterm(&watcher);
    watcher.wait().unwrap();
    ok(&s, &["backup", "verify", "--repo", &r]);
    git(&repo, &["fsck", "--strict"]);
}

#[test]
fn a_mirror_from_the_layers_follows_each_store_and_resumes() {
    let Layers { s, ops, comms } = layers();
    let snapshot = examples().join("sigilgate/expected.json");
    ok(&s, &["load", snapshot.to_str().unwrap()]);
    // A key each etcd server holds outside its layer: not part of the keyspace, never
    // mirrored.
    etcdctl(&ops, &["put", "/public/stray", "not ops's"]);
    etcdctl(&comms, &["put", "/sigilgate/stray", "not comms's"]);
    let start = || start_mirror(&s, "layers:strata.toml", "sqlite:copy.db");
    let caught_up = |what: &str| wait_caught_up(&s, "layers:strata.toml", "sqlite:copy.db", what);
    let mut mirror = start();
    caught_up("the copy");
    // A writer in each layer, straight into its server.
    for i in 0..20 {
        etcdctl(
            &ops,
            &["put", &format!("/sigilgate/nodes/n{i}/status"), "up"],
        );
        etcdctl(
            &comms,
            &["put", &format!("/public/tickets/t{i}"), &i.to_string()],
        );
    }
    ok(&s, &["put", "/elsewhere/x", "1"]);
    caught_up("the changes");
    mirror.kill().unwrap();
    mirror.wait().unwrap();
    // While it is down: each layer moves on by a different number of revisions.
    etcdctl(&ops, &["del", "/sigilgate/nodes/n3/status"]);
    for i in 0..5 {
        etcdctl(
            &comms,
            &["put", "/public/tickets/t0", &format!("again {i}")],
        );
    }
    let mut again = start();
    caught_up("the restart");
    again.kill().unwrap();
    let out = again.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    let first: serde_json::Value =
        serde_json::from_str(lines.lines().next().expect("a status line")).unwrap();
    assert_eq!(first["copied"], 0, "the restart copied again: {first}");
    for name in ["ops", "comms", "local"] {
        assert!(first["parts"][name].is_object(), "{first}");
    }
    let copy = |args: &[&str]| {
        let mut all = vec!["--store", "sqlite:copy.db"];
        all.extend_from_slice(args);
        ok(&s, &all)
    };
    assert_eq!(copy(&["get", "/public/tickets/t0"]), "again 4\n");
    assert_eq!(copy(&["get", "--prefix", "/public/stray"]), "");
    assert_eq!(copy(&["get", "--prefix", "/sigilgate/stray"]), "");
    let checkpoints = copy(&["get", "--prefix", "/_strata/mirror/", "--keys-only"]);
    for name in ["ops", "comms", "local"] {
        assert!(
            checkpoints.contains(&format!("/_strata/mirror/default@{name}")),
            "{checkpoints}"
        );
    }
}
