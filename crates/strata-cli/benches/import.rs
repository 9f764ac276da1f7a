//! Import benchmark: a legacy tree in the sigilgate layout, scaled to more than
//! 1,000,000 resulting keys, imported through `examples/sigilgate/mapping.toml` into
//! SQLite and into a local etcd by the real binary. Reports keys/s end to end and the
//! share of the time spent in the mapping (measured alone with `-o`) vs writing.
//!
//! Run: `cargo bench -p strata-cli --bench import` (STRATA_BENCH_USERS=N, default
//! 80,000 users with two devices each: about 1.36 million keys).

use std::path::Path;
use std::time::{Duration, Instant};

use strata_testkit::etcd::EtcdCluster;

mod common;

use common::strata;

fn main() {
    let users: usize = common::size("STRATA_BENCH_USERS", 80_000);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("legacy");
    let started = Instant::now();
    strata_testkit::fixtures::sigilgate_tree(&root, users);
    let generated = started.elapsed();
    let mapping =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sigilgate/mapping.toml");
    let (root, mapping) = (root.to_str().unwrap(), mapping.to_str().unwrap());
    let out = dir.path().join("out.json");
    let (map_only, _) = strata(&[
        "import",
        root,
        "--mapping",
        mapping,
        "--out",
        out.to_str().unwrap(),
    ]);
    let keys = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(
        &std::fs::read_to_string(&out).unwrap(),
    )
    .unwrap()
    .len();
    let sqlite = format!("sqlite:{}", dir.path().join("s.db").display());
    let (into_sqlite, o1) = strata(&["--store", &sqlite, "import", root, "--mapping", mapping]);
    let cluster = EtcdCluster::start(1);
    let (into_etcd, o2) = strata(&[
        "--store",
        &cluster.url(),
        "import",
        root,
        "--mapping",
        mapping,
    ]);
    for o in [&o1, &o2] {
        assert!(
            o.contains(&format!("imported {keys} keys: {keys} changed")),
            "{o}"
        );
    }
    let rate = |d: Duration| keys as f64 / d.as_secs_f64();
    let share = |total: Duration| 100.0 * map_only.as_secs_f64() / total.as_secs_f64();
    println!(
        "{users} users, {} devices: {keys} keys from {} files (generated in {:.1} s)\n",
        users * 2,
        users * 3 + 32,
        generated.as_secs_f64()
    );
    println!("| import | keys/s end to end | time | mapping share | writing share |");
    println!("|---|---|---|---|---|");
    println!(
        "| mapping only (`-o` snapshot) | {:.0} | {:.2} s | 100% | – |",
        rate(map_only),
        map_only.as_secs_f64()
    );
    for (name, took) in [
        ("into SQLite", into_sqlite),
        ("into etcd (one local node)", into_etcd),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} s | {:.0}% | {:.0}% |",
            rate(took),
            took.as_secs_f64(),
            share(took),
            100.0 - share(took)
        );
    }
}
