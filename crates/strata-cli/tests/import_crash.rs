//! `strata import --mapping` killed with SIGKILL at random moments: between the kill and
//! the re-run no object is ever half-written, and the re-run completes the data set
//! exactly. On SQLite (20 trials) and on a real etcd (5 trials).

mod util;

use std::collections::{BTreeMap, BTreeSet};

use strata_testkit::etcd::EtcdCluster;
use util::{examples, Sandbox};

/// The object a key of the sigilgate layout belongs to.
fn object_of(key: &str) -> &str {
    if key.starts_with("/sigilgate/routes/") {
        key
    } else {
        &key[..key.rfind('/').unwrap()]
    }
}

fn objects(data: &BTreeMap<String, String>) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for key in data.keys() {
        out.entry(object_of(key)).or_default().insert(key);
    }
    out
}

fn crash_trials(s: &Sandbox, trials: usize) {
    let tree = s.path("legacy");
    strata_testkit::fixtures::sigilgate_tree(&tree, 2000);
    let mapping = examples().join("sigilgate/mapping.toml");
    let (tree, mapping) = (tree.to_str().unwrap(), mapping.to_str().unwrap());
    s.ok(&[
        "import",
        tree,
        "--mapping",
        mapping,
        "--out",
        "expected.json",
    ]);
    let expected: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(s.path("expected.json")).unwrap()).unwrap();
    let expected_objects = objects(&expected);
    let max_delay_ms =
        s.timed_ms(&["import", tree, "--mapping", mapping, "--batch", "64"]) * 9 / 10;
    let mut interrupted = 0;
    for trial in 0..trials {
        s.ok(&["del", "--prefix", "/sigilgate/", "--yes"]);
        s.ok(&["del", "--prefix", "/public/", "--yes"]);
        if s.kill_at_random(
            &["import", tree, "--mapping", mapping, "--batch", "64"],
            max_delay_ms,
        ) {
            interrupted += 1;
        }
        // Between the kill and the re-run: every object is whole or absent.
        let seen: BTreeMap<String, String> = serde_json::from_str(&s.ok(&["export"])).unwrap();
        for (object, keys) in objects(&seen) {
            let whole = &expected_objects[object];
            assert_eq!(
                &keys, whole,
                "trial {trial}: object {object} is half-written"
            );
        }
        for (k, v) in &seen {
            assert_eq!(
                expected.get(k),
                Some(v),
                "trial {trial}: wrong value at {k}"
            );
        }
        s.ok(&["import", tree, "--mapping", mapping, "--batch", "64"]);
        let done: BTreeMap<String, String> = serde_json::from_str(&s.ok(&["export"])).unwrap();
        assert_eq!(
            done, expected,
            "trial {trial}: the re-run did not complete the data set"
        );
    }
    eprintln!("{interrupted} of {trials} imports were killed mid-way");
    assert!(
        interrupted > 0,
        "no import was interrupted: make the tree larger"
    );
}

#[test]
fn import_killed_at_random_moments_on_sqlite() {
    crash_trials(&Sandbox::new(), 20);
}

#[test]
fn import_killed_at_random_moments_on_etcd() {
    let cluster = EtcdCluster::start(1);
    crash_trials(&Sandbox::with_store(&cluster.url()), 5);
}
