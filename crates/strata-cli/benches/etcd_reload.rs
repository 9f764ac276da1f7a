//! Why a second load into the same etcd crawls: N keys loaded into a fresh 3-node
//! etcd, deleted (no compaction), loaded again, by `strata load` and by the raw
//! etcd-client writer in the same state, each step timed; the load's read of the
//! store (what it compares the input with) timed on its own as `strata export` of the
//! deleted prefix; then the history compacted (and defragmented) and the load timed
//! once more. Every figure of one run is from the same cluster.
//!
//! Run: `cargo bench -p strata-cli --bench etcd_reload` (STRATA_BENCH_KEYS=N, default
//! 300,000).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::etcd::{key, raw_load, value};
use etcd_client::Client;
use strata_testkit::etcd::EtcdCluster;

mod common;

const PREFIX: &str = "reload";

fn main() {
    let n: usize = common::size("STRATA_BENCH_KEYS", 300_000);
    let cluster = EtcdCluster::start(3);
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let (rt, client) = common::etcd::client(&cluster);
    let snapshot: BTreeMap<String, String> = (0..n).map(|i| (key(PREFIX, i), value(i))).collect();
    let file = dir.path().join("snapshot.json");
    std::fs::write(&file, serde_json::to_string(&snapshot).unwrap()).unwrap();
    let file = file.display().to_string();
    let prefix = format!("/{PREFIX}/");
    let strata = |args: &[&str]| {
        let mut all = vec!["--store", url.as_str()];
        all.extend_from_slice(args);
        common::strata(&all)
    };
    let load = || {
        let (took, out) = strata(&["load", &file]);
        assert!(
            out.contains(&format!("loaded {n} keys: {n} changed")),
            "{out}"
        );
        took
    };
    let delete = || {
        let (_, out) = strata(&["del", "--prefix", &prefix, "--yes"]);
        assert!(out.contains(&format!("deleted {n}")), "{out}");
    };
    let read = || {
        let out = dir.path().join("read.json");
        let (took, _) = strata(&[
            "export",
            "--prefix",
            &prefix,
            "-o",
            &out.display().to_string(),
        ]);
        took
    };
    let raw = |p: &str| rt.block_on(raw_load(&client, p, n, 8));

    let read_empty = read();
    let fresh = load();
    let read_full = read();
    delete();
    let read_deleted = read();
    let second = load();
    delete();
    let raw_second = raw(PREFIX);
    let raw_fresh = raw("freshraw");
    delete();
    let third = load();
    delete();
    // Compact the history away (and defragment), then load again.
    let status = rt.block_on(async {
        let mut c = client.clone();
        let rev = c.get("/", None).await.unwrap().header().unwrap().revision();
        c.compact(
            rev,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .unwrap();
        for ep in cluster.endpoints() {
            let mut one = Client::connect([ep], None).await.unwrap();
            one.defragment().await.unwrap();
        }
        rev
    });
    let compacted = load();
    let endpoints = format!("--endpoints={}", cluster.client_urls());
    let db = Command::new("etcdctl")
        .args([endpoints.as_str(), "endpoint", "status", "-w", "table"])
        .env("ETCDCTL_API", "3")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("etcd, 3 local members; {n} keys of ~100 B; every load into the same cluster\n");
    println!("| step | strata load | raw etcd-client (txns of 128, 8 in flight) |");
    println!("|---|---|---|");
    println!(
        "| fresh keys | {:.0} keys/s ({:.2} s) | {:.0} keys/s ({:.2} s), other keys, after the deletes |",
        rate(fresh),
        fresh.as_secs_f64(),
        rate(raw_fresh),
        raw_fresh.as_secs_f64()
    );
    println!(
        "| the same keys again, after a delete | {:.0} keys/s ({:.2} s); a third time {:.0} keys/s ({:.2} s) | {:.0} keys/s ({:.2} s) |",
        rate(second),
        second.as_secs_f64(),
        rate(third),
        third.as_secs_f64(),
        rate(raw_second),
        raw_second.as_secs_f64()
    );
    println!(
        "| after compaction at {status} and defragment | {:.0} keys/s ({:.2} s) | – |",
        rate(compacted),
        compacted.as_secs_f64()
    );
    println!(
        "\nthe load's read of the store (`strata export --prefix`): empty {:.2} s, {n} keys {:.2} s, all deleted {:.2} s",
        read_empty.as_secs_f64(),
        read_full.as_secs_f64(),
        read_deleted.as_secs_f64()
    );
    println!("\n{db}");
}
