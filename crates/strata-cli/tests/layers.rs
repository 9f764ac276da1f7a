//! The layered keyspace on real servers: `/sigilgate/` on one etcd, `/public/` on
//! another, every other key in SQLite. The sigilgate example imported through its
//! mapping lands each key in its layer's store (etcdctl on each server is the
//! checker), reads across layers equal the example, a transaction across layers is
//! refused with nothing written, and a layer whose etcd is stopped fails only the
//! commands that need it, naming it.

mod util;

use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};

use strata_testkit::etcd::{etcdctl, EtcdCluster};
use util::{examples, Sandbox};

struct Layers {
    s: Sandbox,
    ops: EtcdCluster,
    comms: EtcdCluster,
}

fn layers() -> Layers {
    let (ops, comms) = (EtcdCluster::start(1), EtcdCluster::start(1));
    let s = Sandbox::new();
    std::fs::write(
        s.path("strata.toml"),
        format!(
            "[stores.ops]\nurl = \"{}\"\ndial_timeout = \"2s\"\ncommand_timeout = \"5s\"\n\
             [stores.comms]\nurl = \"{}\"\ndial_timeout = \"2s\"\ncommand_timeout = \"5s\"\n\
             [stores.local]\nurl = \"sqlite:local.db\"\n\
             [layers]\n\"/sigilgate/\" = \"ops\"\n\"/public/\" = \"comms\"\n\"/\" = \"local\"\n",
            ops.url(),
            comms.url()
        ),
    )
    .unwrap();
    Layers { s, ops, comms }
}

/// `strata ARGS` with the config file's layered keyspace as the default store.
fn run(s: &Sandbox, args: &[&str]) -> Output {
    s.command(args)
        .env_remove("STRATA_STORE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(s: &Sandbox, args: &[&str]) -> String {
    let out = run(s, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn keys_of(cluster: &EtcdCluster) -> Vec<String> {
    etcdctl(cluster, &["get", "--prefix", "", "--keys-only"])
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

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
