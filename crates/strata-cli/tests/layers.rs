//! The layered keyspace on real servers: `/sigilgate/` on one etcd, `/public/` on
//! another, every other key in SQLite. The sigilgate example imported through its
//! mapping lands each key in its layer's store (etcdctl on each server is the
//! checker), reads across layers equal the example, a transaction across layers is
//! refused with nothing written, and a layer whose etcd is stopped fails only the
//! commands that need it, naming it.

mod util;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use strata_testkit::etcd::{etcdctl, EtcdCluster};
use util::layers::{keys_of, layers, ok, run, start_mirror, wait_caught_up, Layers};
use util::{examples, Sandbox};

#[test]
fn the_sigilgate_example_splits_into_its_layers() {
    let Layers { s, ops, comms } = layers();
    let legacy = examples().join("sigilgate/legacy");
    let mapping = examples().join("sigilgate/mapping.toml");
    ok(
        &s,
        &[
            "import",
            legacy.to_str().unwrap(),
            "--mapping",
            mapping.to_str().unwrap(),
        ],
    );
    // Each server holds exactly its layer's keys.
    let expected: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(examples().join("sigilgate/expected.json")).unwrap(),
    )
    .unwrap();
    let on_ops = keys_of(&ops);
    let on_comms = keys_of(&comms);
    assert_eq!(
        on_ops.len(),
        expected
            .keys()
            .filter(|k| k.starts_with("/sigilgate/"))
            .count()
    );
    assert!(
        on_ops.iter().all(|k| k.starts_with("/sigilgate/")),
        "{on_ops:?}"
    );
    assert_eq!(
        on_comms.len(),
        expected
            .keys()
            .filter(|k| k.starts_with("/public/"))
            .count()
    );
    assert!(
        on_comms.iter().all(|k| k.starts_with("/public/")),
        "{on_comms:?}"
    );
    // Read across the layers, the keyspace is the example.
    let export: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&ok(&s, &["export"])).unwrap();
    assert_eq!(export, expected);
    let schema = examples().join("sigilgate/schema.toml");
    ok(
        &s,
        &["schema", "check", "--schema", schema.to_str().unwrap()],
    );
    let ls = ok(&s, &["ls", "/"]);
    assert!(ls.contains("public/") && ls.contains("sigilgate/"), "{ls}");
    // A key outside both etcd layers goes to the SQLite default.
    ok(&s, &["put", "/elsewhere", "x"]);
    assert_eq!(ok(&s, &["--store", "local", "get", "/elsewhere"]), "x\n");
    assert!(keys_of(&ops).len() == on_ops.len() && keys_of(&comms).len() == on_comms.len());

    // A transaction across layers is refused before anything is written.
    let txn = r#"{"success": [{"put": {"key": "/sigilgate/t", "value": "1"}}, {"put": {"key": "/public/t", "value": "1"}}]}"#;
    let out = s
        .command(&["txn", "-"])
        .env_remove("STRATA_STORE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(txn.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("several layers")
            && err.contains("/sigilgate/t (ops)")
            && err.contains("/public/t (comms)"),
        "{err}"
    );
    assert_eq!(etcdctl(&ops, &["get", "/sigilgate/t"]), "");
    assert_eq!(etcdctl(&comms, &["get", "/public/t"]), "");
    // One inside a layer runs there.
    let one = r#"{"success": [{"put": {"key": "/public/t", "value": "1"}}]}"#;
    let out = s.run_with_stdin(
        &["--store", "layers:strata.toml", "txn", "-"],
        one.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        etcdctl(&comms, &["get", "/public/t", "--print-value-only"]),
        "1\n"
    );
    // A revision means nothing across layers: said, not guessed.
    let out = run(&s, &["get", "--prefix", "/", "--rev", "2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("ambiguous"));
    // Within one layer it is that store's revision.
    ok(&s, &["get", "--prefix", "/public/", "--rev", "2"]);
    let status = ok(&s, &["status"]);
    assert!(
        status.contains("ops@") && status.contains("comms@"),
        "{status}"
    );
}

#[test]
fn a_stopped_layer_fails_only_what_needs_it() {
    let Layers { s, ops, mut comms } = layers();
    ok(&s, &["put", "/sigilgate/a", "1"]);
    ok(&s, &["put", "/public/a", "1"]);
    // A watch of every layer, running while the comms etcd stops.
    let mut watch = s
        .command(&["watch", "--prefix", "/", "--count", "2"])
        .env_remove("STRATA_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    comms.kill(0);
    ok(&s, &["put", "/sigilgate/b", "2"]);
    ok(&s, &["put", "/elsewhere", "3"]);
    let seen: Vec<String> = BufReader::new(watch.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    assert!(watch.wait().unwrap().success());
    assert!(seen[0].starts_with("PUT /sigilgate/b = 2"), "{seen:?}");
    assert!(seen[1].starts_with("PUT /elsewhere = 3"), "{seen:?}");
    // Commands on the other layers work; one that needs comms names it.
    assert_eq!(ok(&s, &["get", "/sigilgate/b"]), "2\n");
    assert_eq!(
        etcdctl(&ops, &["get", "/sigilgate/b", "--print-value-only"]),
        "2\n"
    );
    let out = run(&s, &["get", "/public/a"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the store comms (etcd://127.0.0.1:"), "{err}");
    let out = run(&s, &["export"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("the store comms"));
}

/// The example's two areas on different stores: `users` (its keys under
/// /sigilgate/users/) on an edge etcd, `nodes` (/sigilgate/nodes/ and the
/// /sigilgate/paths/ it splits into) on a cloud etcd. Four runners at once apply
/// each migration once, each area's record and lock in its own store.
#[test]
fn areas_on_different_stores_migrate_each_in_its_store_once() {
    let (edge, cloud) = (EtcdCluster::start(1), EtcdCluster::start(1));
    let s = Sandbox::new();
    std::fs::write(
        s.path("strata.toml"),
        format!(
            "[stores.edge]\nurl = \"{}\"\n[stores.cloud]\nurl = \"{}\"\n[stores.local]\nurl = \"sqlite:local.db\"\n\
             [layers]\n\"/sigilgate/users/\" = \"edge\"\n\"/sigilgate/\" = \"cloud\"\n\"/\" = \"local\"\n",
            edge.url(),
            cloud.url()
        ),
    )
    .unwrap();
    let snapshot = examples().join("sigilgate/expected.json");
    ok(&s, &["load", snapshot.to_str().unwrap()]);
    let dir = examples().join("sigilgate/migrations");
    let dir = dir.to_str().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            s.command(&["migrate", "up", "--dir", dir, "--yes", "--wait", "60"])
                .env_remove("STRATA_STORE")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        applied.extend(
            stdout
                .lines()
                .filter(|l| l.starts_with("applied"))
                .map(|l| l.split(':').next().unwrap().to_owned()),
        );
    }
    applied.sort();
    assert_eq!(
        applied,
        [
            "applied nodes 0001_paths",
            "applied nodes 0002_domain_default",
            "applied users 0001_billing"
        ],
        "each migration is applied by exactly one runner"
    );
    // Each area's record lives in its own store.
    let records = |c: &EtcdCluster, area: &str| {
        etcdctl(
            c,
            &[
                "get",
                "--prefix",
                &format!("/_strata/migrations/{area}/applied/"),
                "--keys-only",
            ],
        )
        .lines()
        .filter(|l| !l.is_empty())
        .count()
    };
    assert_eq!((records(&edge, "users"), records(&edge, "nodes")), (1, 0));
    assert_eq!((records(&cloud, "nodes"), records(&cloud, "users")), (2, 0));
    // The data is what one run on one store makes.
    let reference = Sandbox::new();
    reference.ok(&["load", snapshot.to_str().unwrap()]);
    reference.ok(&["migrate", "up", "--dir", dir, "--yes"]);
    let one_store: serde_json::Value =
        serde_json::from_str(&reference.ok(&["export", "--prefix", "/sigilgate/"])).unwrap();
    let layered: serde_json::Value =
        serde_json::from_str(&ok(&s, &["export", "--prefix", "/sigilgate/"])).unwrap();
    assert_eq!(layered, one_store);
    assert!(etcdctl(
        &edge,
        &["get", "--prefix", "/sigilgate/paths/", "--keys-only"]
    )
    .trim()
    .is_empty());
    let status = ok(&s, &["migrate", "status", "--dir", dir]);
    assert!(
        status.contains("users") && status.contains("nodes") && !status.contains("pending"),
        "{status}"
    );
    ok(&s, &["migrate", "verify", "--dir", dir]);
    // A new area of a draft only (no steps, so in no layer yet) is listed too.
    let drafts = s.path("migrations");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(dir)
        .arg(&drafts)
        .status()
        .unwrap();
    assert!(copied.success());
    let drafts = drafts.to_str().unwrap();
    ok(
        &s,
        &["migrate", "new", "devices", "add_owner", "--dir", drafts],
    );
    let status = ok(&s, &["migrate", "status", "--dir", drafts]);
    assert!(
        status.contains("devices") && status.contains("draft:"),
        "{status}"
    );
}

/// Moving /public/ to a cluster of its own while a writer keeps changing it: copy,
/// mirror until diff is empty, point the layer at the new store.
#[test]
fn moving_a_layer_to_another_store_while_it_is_written() {
    let (old, new) = (EtcdCluster::start(1), EtcdCluster::start(1));
    let s = Sandbox::new();
    let config = |public: &str| {
        format!(
            "[stores.old]\nurl = \"{}\"\n[stores.new]\nurl = \"{}\"\n[stores.local]\nurl = \"sqlite:local.db\"\n\
             [layers]\n\"/public/\" = \"{public}\"\n\"/\" = \"local\"\n",
            old.url(),
            new.url()
        )
    };
    std::fs::write(s.path("strata.toml"), config("old")).unwrap();
    let snapshot = examples().join("sigilgate/expected.json");
    ok(&s, &["load", snapshot.to_str().unwrap()]);
    // The writer: the application, still on the old store.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, bin, url) = (stop.clone(), util::BIN, old.url());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let status = std::process::Command::new(bin)
                    .args([
                        "--store",
                        &url,
                        "put",
                        &format!("/public/tickets/{}", n % 7),
                        &n.to_string(),
                    ])
                    .stdout(Stdio::null())
                    .status()
                    .unwrap();
                assert!(status.success());
            }
            n
        })
    };
    ok(
        &s,
        &[
            "copy", "--from", "old", "--to", "new", "--prefix", "/public/",
        ],
    );
    let mut mirror = s
        .command(&[
            "mirror",
            "--from",
            "old",
            "--to",
            "new",
            "--prefix",
            "/public/",
            "--report-every",
            "1s",
        ])
        .env_remove("STRATA_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let writes = writer.join().unwrap();
    assert!(writes > 3, "the writer wrote {writes} times");
    let diff = [
        "diff", "--from", "old", "--to", "new", "--prefix", "/public/",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while run(&s, &diff).status.code() != Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "mirror never caught up"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = mirror.kill();
    mirror.wait().unwrap();
    // Switch: the layer points at the new store, which holds all of /public/.
    std::fs::write(s.path("strata.toml"), config("new")).unwrap();
    let on_old: serde_json::Value = serde_json::from_str(&ok(
        &s,
        &["--store", "old", "export", "--prefix", "/public/"],
    ))
    .unwrap();
    let layered: serde_json::Value =
        serde_json::from_str(&ok(&s, &["export", "--prefix", "/public/"])).unwrap();
    assert_eq!(layered, on_old);
    let last = (writes % 7).to_string();
    assert_eq!(
        etcdctl(
            &new,
            &[
                "get",
                &format!("/public/tickets/{last}"),
                "--print-value-only"
            ]
        )
        .trim(),
        writes.to_string()
    );
}

/// One repository for the layered keyspace: a full run, a change in each layer, an
/// incremental run that records each store's revision, a restore of one key in each
/// layer, and a rebuild of the whole backup into an empty layered keyspace.
#[test]
fn a_layered_keyspace_backs_up_into_one_repository() {
    let Layers { s, ops, comms } = layers();
    let snapshot = examples().join("sigilgate/expected.json");
    ok(&s, &["load", snapshot.to_str().unwrap()]);
    let repo = s.path("repo.git");
    let r = repo.to_str().unwrap();
    let first = ok(&s, &["backup", "run", "--repo", r]);
    assert!(first.contains("full backup"), "{first}");
    ok(&s, &["put", "/sigilgate/users/129/status", "blocked"]);
    ok(
        &s,
        &[
            "put",
            "/public/contacts/bob@example.org/newsletter",
            "false",
        ],
    );
    let second = ok(&s, &["backup", "run", "--repo", r, "-o", "json"]);
    let second: serde_json::Value = serde_json::from_str(&second).unwrap();
    assert_eq!(
        (second["full"].clone(), second["changed"].clone()),
        (false.into(), 2.into()),
        "{second}"
    );
    // The commit records each store's revision, as etcd itself counts it.
    let (_, message) = strata_testkit::git_try(&repo, &["log", "-1", "--format=%B"]);
    let revision_of = |c: &EtcdCluster| -> i64 {
        let out = etcdctl(c, &["get", "/", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["header"]["revision"].as_i64().unwrap()
    };
    assert!(
        message.contains(&format!("Strata-Revision-ops: {}", revision_of(&ops))),
        "{message}"
    );
    assert!(
        message.contains(&format!("Strata-Revision-comms: {}", revision_of(&comms))),
        "{message}"
    );
    let (fsck, text) = strata_testkit::git_try(&repo, &["fsck", "--strict"]);
    assert!(fsck, "{text}");
    ok(&s, &["backup", "verify", "--repo", r]);
    // Nothing changed: no commit.
    assert!(ok(&s, &["backup", "run", "--repo", r]).starts_with("nothing changed"));
    // One key restored in each layer, written back to its layer's store.
    ok(
        &s,
        &[
            "backup",
            "restore",
            "/sigilgate/users/129",
            "--repo",
            r,
            "--at",
            "HEAD~1",
            "--yes",
        ],
    );
    ok(
        &s,
        &[
            "backup",
            "restore",
            "/public/contacts/bob@example.org",
            "--repo",
            r,
            "--at",
            "HEAD~1",
            "--yes",
        ],
    );
    assert_eq!(
        etcdctl(
            &ops,
            &["get", "/sigilgate/users/129/status", "--print-value-only"]
        )
        .trim(),
        "active"
    );
    assert_eq!(
        etcdctl(
            &comms,
            &[
                "get",
                "/public/contacts/bob@example.org/newsletter",
                "--print-value-only"
            ]
        )
        .trim(),
        "true"
    );
    // The whole backup into an empty layered keyspace (three new SQLite stores).
    std::fs::write(
        s.path("empty.toml"),
        "[stores.a]\nurl = \"sqlite:a.db\"\n[stores.b]\nurl = \"sqlite:b.db\"\n[stores.c]\nurl = \"sqlite:c.db\"\n\
         [layers]\n\"/sigilgate/\" = \"a\"\n\"/public/\" = \"b\"\n\"/\" = \"c\"\n",
    )
    .unwrap();
    ok(
        &s,
        &[
            "backup",
            "restore",
            "--all",
            "--repo",
            r,
            "--at",
            "HEAD~1",
            "--to",
            "layers:empty.toml",
        ],
    );
    let source = ok(&s, &["export"]);
    let rebuilt = ok(&s, &["--store", "layers:empty.toml", "export"]);
    assert_eq!(source, rebuilt);
    let only_sigilgate = ok(
        &s,
        &[
            "--store",
            "sqlite:a.db",
            "get",
            "--prefix",
            "/",
            "--keys-only",
        ],
    );
    assert!(
        only_sigilgate.lines().all(|k| k.starts_with("/sigilgate/")),
        "{only_sigilgate}"
    );
    // A prefix across layers (HEAD, which the two restores above moved both layers
    // away from): no one transaction spans stores, so it takes --in-batches, which
    // writes one transaction per store.
    let all_at_head = [
        "backup", "restore", "/", "--repo", r, "--at", "HEAD", "--yes",
    ];
    let refused = run(&s, &all_at_head);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("stores of the layered keyspace") && err.contains("--in-batches"),
        "{err}"
    );
    assert_eq!(
        etcdctl(
            &ops,
            &["get", "/sigilgate/users/129/status", "--print-value-only"]
        )
        .trim(),
        "active",
        "a refused restore wrote"
    );
    let mut batches = all_at_head.to_vec();
    batches.push("--in-batches");
    ok(&s, &batches);
    ok(&s, &["backup", "verify", "--repo", r]);
}

/// A mirror from one store into the layered keyspace: each key lands in its layer's
/// store, each store keeps its own checkpoint beside the keys it guards, and a
/// restarted mirror resumes from them without copying again.
#[test]
fn a_mirror_into_the_layers_keeps_a_checkpoint_in_each_store() {
    let Layers { s, ops, comms } = layers();
    let snapshot = examples().join("sigilgate/expected.json");
    s.ok(&[
        "--store",
        "sqlite:src.db",
        "load",
        snapshot.to_str().unwrap(),
    ]);
    let start = || start_mirror(&s, "sqlite:src.db", "layers:strata.toml");
    let caught_up = |what: &str| wait_caught_up(&s, "sqlite:src.db", "layers:strata.toml", what);
    let mut mirror = start();
    caught_up("the copy");
    s.ok(&[
        "--store",
        "sqlite:src.db",
        "put",
        "/sigilgate/users/129/status",
        "blocked",
    ]);
    s.ok(&[
        "--store",
        "sqlite:src.db",
        "put",
        "/public/contacts/bob@example.org/newsletter",
        "false",
    ]);
    caught_up("the changes");
    assert_eq!(
        etcdctl(
            &ops,
            &["get", "/sigilgate/users/129/status", "--print-value-only"]
        )
        .trim(),
        "blocked"
    );
    assert!(keys_of(&ops)
        .iter()
        .all(|k| k.starts_with("/sigilgate/") || k == "/_strata/parts/ops/mirror/default"));
    assert!(keys_of(&comms).contains(&"/_strata/parts/comms/mirror/default".to_owned()));
    mirror.kill().unwrap();
    mirror.wait().unwrap();
    // Changes while it is down; the restart resumes from the checkpoints.
    s.ok(&[
        "--store",
        "sqlite:src.db",
        "put",
        "/public/contacts/bob@example.org/newsletter",
        "true",
    ]);
    s.ok(&[
        "--store",
        "sqlite:src.db",
        "del",
        "/sigilgate/users/129/status",
    ]);
    let mut again = start();
    caught_up("the restart");
    again.kill().unwrap();
    let out = again.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    let first: serde_json::Value =
        serde_json::from_str(lines.lines().next().expect("a status line")).unwrap();
    assert_eq!(first["copied"], 0, "the restart copied again: {first}");
    assert_eq!(etcdctl(&ops, &["get", "/sigilgate/users/129/status"]), "");
}
