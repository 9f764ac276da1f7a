//! etcd v2 source benchmark: `strata copy` of N keys from a live v2 keyspace (etcd
//! 3.4 with `--enable-v2`) into SQLite and into etcd v3, next to a `curl` of the same
//! recursive GET (the read alone, into /dev/null: the floor of any v2 copy) in the
//! same run, and `strata export` of the source (the read and the parse, no target).
//! The keys are written through the v2 API first.
//!
//! Run: `cargo bench -p strata-cli --bench etcd2` (STRATA_BENCH_KEYS=N, default
//! 100,000).

use std::process::Command;

use strata_testkit::etcd::EtcdCluster;
use strata_testkit::etcd_v2::V2Writer;

mod common;

use common::{strata, strata_rss, timed};

fn main() {
    let n: usize = common::size("STRATA_BENCH_KEYS", 100_000);
    let v2 = EtcdCluster::start_v2(None);
    let addr = v2.endpoints()[0].clone();
    let mut writer = V2Writer::new(&addr);
    for i in 0..n {
        writer.set(
            &format!("/bench/{:03}/item-{i:08}", i % 1000),
            &format!("value-{i}-{}", "x".repeat(80)),
            None,
        );
    }
    let source = format!("etcd2://{addr}");
    let dir = tempfile::tempdir().unwrap();
    let v3 = EtcdCluster::start(1);
    let rate = |d: std::time::Duration| n as f64 / d.as_secs_f64();

    // Reference: the recursive GET alone, with curl.
    let url = format!("http://{addr}/v2/keys/?recursive=true&sorted=true");
    let (curl, _) = timed(Command::new("curl").args(["-sf", "-o", "/dev/null", &url]));
    println!(
        "curl recursive GET (reference): {n} keys in {:.2} s ({:.0} keys/s)",
        curl.as_secs_f64(),
        rate(curl)
    );
    let (export, out) = strata(&["--store", &source, "export"]);
    assert!(out.len() > n * 80);
    println!(
        "strata export of etcd2 (read and parse, JSON to a pipe): {n} keys in {:.2} s ({:.0} keys/s, {:.2}x curl's time)",
        export.as_secs_f64(),
        rate(export),
        export.as_secs_f64() / curl.as_secs_f64()
    );
    // Peak memory of the read: the answer and its keys in memory (the default for an
    // answer under 64 MiB), and both kept in temporary files (any size above the
    // spill size; here every answer).
    for (how, env) in [
        ("in memory", vec![]),
        ("spilled to disk", vec![("STRATA_V2_SPILL_BYTES", "1")]),
    ] {
        let (took, rss, bytes) = strata_rss(&["--store", &source, "export"], &env);
        println!(
            "strata export of etcd2, {how}: {n} keys ({:.1} MB of JSON out) in {:.2} s, peak RSS {rss:.0} MB",
            bytes as f64 / 1e6,
            took.as_secs_f64()
        );
    }
    for (name, target) in [
        (
            "SQLite",
            format!("sqlite:{}", dir.path().join("copy.db").display()),
        ),
        ("etcd v3", v3.url()),
    ] {
        let (took, out) = strata(&["copy", "--from", &source, "--to", &target]);
        assert!(out.contains("verified"), "{out}");
        println!(
            "strata copy etcd2 -> {name} (with verification): {n} keys in {:.2} s ({:.0} keys/s, {:.2}x curl's time)",
            took.as_secs_f64(),
            rate(took),
            took.as_secs_f64() / curl.as_secs_f64()
        );
    }
}
