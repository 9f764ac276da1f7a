//! Keys at etcd's limits (a 1.5 MiB request, 128 operations per transaction) through
//! every writer: `load`, `import` (a dump and a mapping), `copy`, `mirror`, `backup
//! restore --all`, `migrate up`. Each either fits, or is refused before anything is
//! written with the key (or object) and the limit named. `etcdctl` is the checker.

mod util;

use std::collections::BTreeMap;

use strata_testkit::etcd::{etcdctl, EtcdCluster};
use util::Sandbox;

/// etcd's default --max-request-bytes.
const LIMIT: usize = 1_572_864;

fn keys_on(cluster: &EtcdCluster, prefix: &str) -> usize {
    etcdctl(cluster, &["get", "--prefix", prefix, "--keys-only"])
        .lines()
        .filter(|l| !l.is_empty())
        .count()
}

/// A snapshot with ordinary keys and one value of `big` bytes.
fn snapshot(s: &Sandbox, file: &str, prefix: &str, big: usize) {
    let mut data: BTreeMap<String, String> = (0..50)
        .map(|i| (format!("{prefix}k{i:03}"), format!("v{i}")))
        .collect();
    data.insert(format!("{prefix}big"), "x".repeat(big));
    std::fs::write(s.path(file), serde_json::to_string(&data).unwrap()).unwrap();
}

fn refused_naming(err: &str, key: &str) {
    assert!(err.contains(key), "the key is not named: {err}");
    assert!(
        err.contains("1572864")
            || err.contains("1571840")
            || err.contains("1.5 MiB")
            || err.contains("limit"),
        "the limit is not named: {err}"
    );
}

#[test]
fn an_oversized_value_is_refused_before_writing_by_every_writer() {
    let cluster = EtcdCluster::start(1);
    let s = Sandbox::with_store(&cluster.url());
    let big = LIMIT + 10;
    // load
    snapshot(&s, "load.json", "/lim/load/", big);
    let (_, err) = s.expect(1, &["load", "load.json"]);
    refused_naming(&err, "/lim/load/big");
    assert_eq!(
        keys_on(&cluster, "/lim/load/"),
        0,
        "load wrote before refusing"
    );
    // import of a dump (a snapshot kept as it is)
    snapshot(&s, "dump.json", "/lim/dump/", big);
    let (_, err) = s.expect(1, &["import", "dump.json", "--format", "snapshot"]);
    refused_naming(&err, "/lim/dump/big");
    assert_eq!(
        keys_on(&cluster, "/lim/dump/"),
        0,
        "import wrote before refusing"
    );
    // copy from a SQLite store that holds it
    snapshot(&s, "copy.json", "/lim/copy/", big);
    s.ok(&["--store", "sqlite:src.db", "load", "copy.json"]);
    let (_, err) = s.expect(
        1,
        &[
            "copy",
            "--from",
            "sqlite:src.db",
            "--to",
            &cluster.url(),
            "--prefix",
            "/lim/copy/",
        ],
    );
    refused_naming(&err, "/lim/copy/big");
    assert_eq!(
        keys_on(&cluster, "/lim/copy/"),
        0,
        "copy wrote before refusing"
    );
    // backup restore --all into an empty etcd
    let repo = s.path("repo.git");
    let r = repo.to_str().unwrap();
    s.ok(&["--store", "sqlite:src.db", "backup", "run", "--repo", r]);
    let empty = EtcdCluster::start(1);
    let (_, err) = s.expect(
        1,
        &[
            "backup",
            "restore",
            "--all",
            "--repo",
            r,
            "--to",
            &empty.url(),
        ],
    );
    refused_naming(&err, "/lim/copy/big");
    assert_eq!(
        keys_on(&empty, "/lim/"),
        0,
        "restore --all wrote before refusing"
    );
    // A value that fits is written by each.
    snapshot(&s, "fits.json", "/lim/fits/", LIMIT - 64 * 1024);
    s.ok(&["load", "fits.json"]);
    assert_eq!(keys_on(&cluster, "/lim/fits/"), 51);
}

/// An object with more fields than one transaction holds (128 on etcd): an import
/// through a mapping and a migration that rewrite it whole refuse it, naming it.
#[test]
fn an_object_over_the_op_limit_is_refused_whole() {
    let cluster = EtcdCluster::start(1);
    let s = Sandbox::with_store(&cluster.url());
    let tree = s.path("tree/things");
    std::fs::create_dir_all(&tree).unwrap();
    let mut wide = serde_json::Map::new();
    wide.insert("id".into(), "w1".into());
    for i in 0..200 {
        wide.insert(format!("f{i:03}"), i.into());
    }
    std::fs::write(tree.join("w1.json"), serde_json::to_vec(&wide).unwrap()).unwrap();
    std::fs::write(tree.join("n1.json"), br#"{"id": "n1", "a": 1}"#).unwrap();
    std::fs::write(
        s.path("mapping.toml"),
        "[collections.things]\npath = \"things/{id}.json\"\nkey = \"id\"\n\n\
         [[emit]]\nfrom = \"things\"\nat = \"/lim/things/{id}\"\nfields = 'del(.id)'\n",
    )
    .unwrap();
    let out = s.run(&["import", "tree", "--mapping", "mapping.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/lim/things/w1") && err.contains("128"),
        "{err}"
    );
    assert_eq!(
        keys_on(&cluster, "/lim/things/"),
        0,
        "import wrote before refusing"
    );
}

/// A migration whose step would make a value too large for etcd: refused before the
/// object is written, naming it; the object keeps its old value.
#[test]
fn a_migration_that_grows_a_value_past_the_limit_is_refused() {
    let cluster = EtcdCluster::start(1);
    let s = Sandbox::with_store(&cluster.url());
    s.ok(&["put", "/lim/m/1/name", "small"]);
    let area = s.path("migrations/grow");
    std::fs::create_dir_all(&area).unwrap();
    std::fs::write(
        area.join("0001_grow.toml"),
        format!(
            "[[steps]]\nop = 'jq'\nobject = '/lim/m/{{id}}'\nfilter = '.name = (\"x\" * {})'\n",
            LIMIT + 10
        ),
    )
    .unwrap();
    let (_, err) = s.expect(1, &["migrate", "up", "--yes"]);
    assert!(err.contains("/lim/m/1"), "the object is not named: {err}");
    assert_eq!(
        etcdctl(&cluster, &["get", "/lim/m/1/name", "--print-value-only"]).trim(),
        "small"
    );
}

/// A mirror that meets a change too large for the target stops with the key and the
/// limit named, and its checkpoint stays before that change (a restart retries it).
#[test]
fn a_mirror_meeting_an_oversized_change_stops_naming_it() {
    let cluster = EtcdCluster::start(1);
    let s = Sandbox::new();
    s.ok(&["put", "/lim/mir/a", "1"]);
    let mut mirror = s
        .command(&[
            "mirror",
            "--from",
            &s.store,
            "--to",
            &cluster.url(),
            "--prefix",
            "/lim/mir/",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while keys_on(&cluster, "/lim/mir/") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the mirror copied nothing"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    snapshot(&s, "big.json", "/lim/mir/", LIMIT + 10);
    s.ok(&["load", "big.json"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while mirror.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            mirror.kill().unwrap();
            let out = mirror.wait_with_output().unwrap();
            panic!(
                "the mirror kept running: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = mirror.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    refused_naming(&err, "/lim/mir/big");
    assert_eq!(
        etcdctl(&cluster, &["get", "/lim/mir/big", "--keys-only"]).trim(),
        ""
    );
}
