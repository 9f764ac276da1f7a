//! `strata import --format …` of the example dumps: exact snapshots, loads, plans, and
//! round trips through the real etcdctl and a Consul-shaped export.

mod util;

use std::collections::BTreeMap;

use strata_testkit::etcd::{etcdctl, EtcdCluster};
use util::{examples, Sandbox};

fn broker(name: &str) -> String {
    examples()
        .join("etcd-v2-broker")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

/// The rows of a `--dry-run` plan, split into columns.
fn plan_rows(plan: &str) -> Vec<Vec<&str>> {
    plan.lines()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

#[test]
fn etcd_v2_dump_gives_the_expected_snapshot_exactly() {
    let s = Sandbox::new();
    s.ok(&[
        "import",
        &broker("etcd-v2-dump.json"),
        "--format",
        "etcd-v2",
        "--out",
        "out.json",
    ]);
    assert_eq!(
        std::fs::read(s.path("out.json")).unwrap(),
        std::fs::read(broker("expected.json")).unwrap()
    );
    assert!(!s.path("strata.db").exists(), "-o touches no store");
}

#[test]
fn etcd_v2_dump_loads_plans_and_is_idempotent() {
    let s = Sandbox::new();
    s.ok(&["put", "/routing/nextport", "1"]);
    let plan = s.ok(&[
        "import",
        &broker("etcd-v2-dump.json"),
        "--format",
        "etcd-v2",
        "--dry-run",
    ]);
    let rows = plan_rows(&plan);
    assert!(
        rows.contains(&vec!["/routing/", "4", "1", "0", "0"]),
        "{plan}"
    );
    assert!(
        rows.contains(&vec!["/service/", "12", "0", "0", "0"]),
        "{plan}"
    );
    assert!(
        rows.contains(&vec!["/postgresql-brokerpatroni/", "8", "0", "0", "0"]),
        "{plan}"
    );
    assert_eq!(
        s.ok(&["get", "/routing/nextport"]),
        "1\n",
        "a dry run writes nothing"
    );
    let out = s.ok(&[
        "import",
        &broker("etcd-v2-dump.json"),
        "--format",
        "etcd-v2",
    ]);
    assert!(out.starts_with("imported 25 keys: 25 changed"), "{out}");
    assert_eq!(
        s.ok(&["export"]).into_bytes(),
        std::fs::read(broker("expected.json")).unwrap()
    );
    let again = s.ok(&[
        "import",
        &broker("etcd-v2-dump.json"),
        "--format",
        "etcd-v2",
    ]);
    assert!(
        again.starts_with("imported 25 keys: 0 changed, 25 unchanged"),
        "{again}"
    );
}

#[test]
fn etcdctl_json_from_the_real_etcdctl_round_trips() {
    let cluster = EtcdCluster::start(1);
    let s = Sandbox::with_store(&cluster.url());
    s.ok(&["load", &broker("expected.json")]);
    std::fs::write(
        s.path("etcdctl.json"),
        etcdctl(&cluster, &["get", "--prefix", "/", "-w", "json"]),
    )
    .unwrap();
    s.ok(&[
        "import",
        "etcdctl.json",
        "--format",
        "etcdctl-json",
        "--out",
        "out.json",
    ]);
    assert_eq!(
        std::fs::read(s.path("out.json")).unwrap(),
        std::fs::read(broker("expected.json")).unwrap()
    );
}

#[test]
fn consul_export_round_trips() {
    let s = Sandbox::new();
    let expected: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(broker("expected.json")).unwrap()).unwrap();
    // `consul kv export` writes keys without the leading slash and values in base64.
    let export: Vec<serde_json::Value> = expected
        .iter()
        .map(|(k, v)| {
            serde_json::json!({"key": k.trim_start_matches('/'), "flags": 0,
                               "value": strata_import::base64::encode(v.as_bytes())})
        })
        .collect();
    std::fs::write(
        s.path("consul.json"),
        serde_json::to_string_pretty(&export).unwrap(),
    )
    .unwrap();
    s.ok(&["import", "consul.json", "--format", "consul"]);
    let imported: BTreeMap<String, String> = serde_json::from_str(&s.ok(&["export"])).unwrap();
    let back: BTreeMap<String, String> = imported
        .into_iter()
        .map(|(k, v)| (format!("/{k}"), v))
        .collect();
    assert_eq!(back, expected);
}

#[test]
fn broken_dumps_are_named_and_write_nothing() {
    let s = Sandbox::new();
    std::fs::write(
        s.path("cut.json"),
        "{\"action\": \"get\",\n \"node\": {\"dir\": true, \"nodes\": [\n",
    )
    .unwrap();
    let (_, err) = s.expect(1, &["import", "cut.json", "--format", "etcd-v2"]);
    assert!(
        err.contains("cut.json: not valid JSON") && err.contains("line 3"),
        "{err}"
    );
    // An unknown format is a usage error.
    let (_, err) = s.expect(2, &["import", "cut.json", "--format", "zookeeper"]);
    assert!(err.contains("invalid value 'zookeeper'"), "{err}");
    assert_eq!(s.ok(&["--create", "export"]), "{}\n");
}

fn sigilgate(name: &str) -> String {
    examples().join(name).to_str().unwrap().to_owned()
}

#[test]
fn sigilgate_mapping_gives_the_expected_snapshot_and_store() {
    let s = Sandbox::new();
    let (legacy, mapping) = (
        sigilgate("sigilgate/legacy"),
        sigilgate("sigilgate/mapping.toml"),
    );
    s.ok(&[
        "import",
        &legacy,
        "--mapping",
        &mapping,
        "--out",
        "out.json",
    ]);
    let expected = std::fs::read_to_string(sigilgate("sigilgate/expected.json")).unwrap();
    let got: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("out.json")).unwrap()).unwrap();
    assert_eq!(
        got,
        serde_json::from_str::<serde_json::Value>(&expected).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(s.path("out.json")).unwrap(),
        expected,
        "byte for byte, too"
    );
    let out = s.ok(&["import", &legacy, "--mapping", &mapping]);
    assert!(out.starts_with("imported 356 keys: 356 changed"), "{out}");
    assert_eq!(s.ok(&["export"]), expected);
    let again = s.ok(&["import", &legacy, "--mapping", &mapping]);
    assert!(again.contains("0 changed, 356 unchanged"), "{again}");
}

#[test]
fn broken_tree_names_every_defect_and_writes_nothing() {
    let s = Sandbox::new();
    let (_, err) = s.expect(
        1,
        &[
            "import",
            &sigilgate("sigilgate-broken/legacy"),
            "--mapping",
            &sigilgate("sigilgate/mapping.toml"),
        ],
    );
    assert!(err.contains("3 defect(s); nothing was written"), "{err}");
    assert!(
        err.contains("users/2.json: the file name says id \"2\" but the body says 3"),
        "{err}"
    );
    assert!(err.contains("users/4.json: malformed JSON"), "{err}");
    assert!(
        err.contains("user_id 99 refers to a users record that does not exist"),
        "{err}"
    );
    assert_eq!(s.ok(&["--create", "export"]), "{}\n");
    s.expect(2, &["import", &sigilgate("sigilgate/legacy")]);
}

#[test]
fn sigilgate_mapping_into_etcd_agrees_with_etcdctl() {
    let cluster = EtcdCluster::start(1);
    let s = Sandbox::with_store(&cluster.url());
    let out = s.ok(&[
        "import",
        &sigilgate("sigilgate/legacy"),
        "--mapping",
        &sigilgate("sigilgate/mapping.toml"),
    ]);
    assert!(out.starts_with("imported 356 keys: 356 changed"), "{out}");
    let expected = std::fs::read_to_string(sigilgate("sigilgate/expected.json")).unwrap();
    assert_eq!(s.ok(&["export"]), expected);
    let json: serde_json::Value =
        serde_json::from_str(&etcdctl(&cluster, &["get", "--prefix", "/", "-w", "json"])).unwrap();
    let seen: BTreeMap<String, String> = json["kvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            let text = |f: &str| {
                String::from_utf8(strata_testkit::etcd::base64_decode(kv[f].as_str().unwrap()))
                    .unwrap()
            };
            (text("key"), text("value"))
        })
        .collect();
    assert_eq!(
        seen,
        serde_json::from_str::<BTreeMap<String, String>>(&expected).unwrap()
    );
    // The plan of a second run: nothing to add or change, per entity.
    let plan = s.ok(&[
        "import",
        &sigilgate("sigilgate/legacy"),
        "--mapping",
        &sigilgate("sigilgate/mapping.toml"),
        "--dry-run",
    ]);
    let rows = plan_rows(&plan);
    assert!(
        rows.contains(&vec!["/sigilgate/users/{id}", "0", "0", "120", "0"]),
        "{plan}"
    );
}

#[test]
fn schema_violations_stop_the_import_before_any_write() {
    let s = Sandbox::new();
    let (legacy, mapping, schema) = (
        sigilgate("sigilgate/legacy"),
        sigilgate("sigilgate/mapping.toml"),
        sigilgate("sigilgate/schema.toml"),
    );
    // The shipped mapping meets the shipped schema.
    s.ok(&[
        "import",
        &legacy,
        "--mapping",
        &mapping,
        "--schema",
        &schema,
        "--out",
        "ok.json",
    ]);
    // A mapping that writes a field the schema does not know is stopped.
    let bad = std::fs::read_to_string(&mapping).unwrap().replace(
        "fields = '{username, status, max_devices, created_at, plan: (.plan // \"free\")}'",
        "fields = '{username, status, max_devices, created_at, plan: (.plan // \"free\"), email}'",
    );
    std::fs::write(s.path("bad.toml"), bad).unwrap();
    let (_, err) = s.expect(
        1,
        &[
            "import",
            &legacy,
            "--mapping",
            "bad.toml",
            "--schema",
            &schema,
        ],
    );
    assert!(
        err.contains("violates the schema") && err.contains("nothing was written"),
        "{err}"
    );
    assert!(
        err.contains("/sigilgate/users/") && err.contains("field email is not part of entity user"),
        "{err}"
    );
    assert_eq!(s.ok(&["--create", "export"]), "{}\n");
}

#[test]
fn prune_removes_stale_fields_of_imported_objects_only() {
    let s = Sandbox::new();
    let (legacy, mapping) = (
        sigilgate("sigilgate/legacy"),
        sigilgate("sigilgate/mapping.toml"),
    );
    s.ok(&["import", &legacy, "--mapping", &mapping]);
    // A field the input no longer has, and a key that belongs to no imported object.
    s.ok(&["put", "/sigilgate/users/94/telegram_id", "12345"]);
    s.ok(&["put", "/sigilgate/other/x", "kept"]);
    let (plan, err) = s.expect(0, &["import", &legacy, "--mapping", &mapping, "--dry-run"]);
    let rows = plan_rows(&plan);
    assert!(
        rows.contains(&vec!["/sigilgate/users/{id}", "0", "0", "120", "1"]),
        "{plan}"
    );
    assert!(
        err.contains("1 stale fields are removed only with --prune"),
        "{err}"
    );
    s.ok(&["import", &legacy, "--mapping", &mapping]);
    assert_eq!(
        s.ok(&["get", "/sigilgate/users/94/telegram_id"]),
        "12345\n",
        "kept without --prune"
    );
    let out = s.ok(&["import", &legacy, "--mapping", &mapping, "--prune"]);
    assert!(out.contains("pruned 1 stale fields"), "{out}");
    s.expect(3, &["get", "/sigilgate/users/94/telegram_id"]);
    assert_eq!(s.ok(&["get", "/sigilgate/other/x"]), "kept\n");
    // Devices nested under the user object are objects of their own, untouched.
    let devices = s.ok(&["get", "--prefix", "/sigilgate/users/", "--keys-only"]);
    assert_eq!(
        devices.lines().filter(|l| l.contains("/devices/")).count(),
        112
    );
    let (_, err) = s.expect(1, &["import", "x.json", "--format", "etcd-v2", "--prune"]);
    assert!(
        err.contains("--prune works on the objects of a mapping"),
        "{err}"
    );
}

/// Regressions (first ten minutes): `import DIR` without --mapping asked for --format;
/// an unknown --format exited 1; a dump in the wrong --format imported 0 keys, exit 0.
#[test]
fn import_says_what_is_missing_and_refuses_the_wrong_format() {
    let s = Sandbox::new();
    let legacy = sigilgate("sigilgate/legacy");
    let (_, err) = s.expect(2, &["import", &legacy]);
    assert!(
        err.contains("is a directory: give --mapping FILE to import a JSON file tree"),
        "{err}"
    );
    let dump = sigilgate("etcd-v2-broker/etcd-v2-dump.json");
    let (_, err) = s.expect(2, &["import", &dump, "--format", "zookeeper"]);
    assert!(err.contains("invalid value 'zookeeper'"), "{err}");
    let (_, err) = s.expect(
        1,
        &[
            "import",
            &dump,
            "--format",
            "etcdctl-json",
            "--out",
            "out.json",
        ],
    );
    assert!(
        err.contains("this is not `etcdctl get -w json` output"),
        "{err}"
    );
    assert!(!s.path("out.json").exists());
    s.ok(&["import", &dump, "--format", "etcd-v2", "--out", "out.json"]);
}
