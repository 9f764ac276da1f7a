//! Copy benchmark: `strata copy` of N keys etcd → PostgreSQL, SQLite → etcd and
//! etcd → etcd, next to `etcdctl make-mirror` (etcd → etcd, the reference) in the same
//! run, against throwaway servers started by the harness.
//!
//! Run: `cargo bench -p strata-cli --bench copy` (STRATA_BENCH_KEYS=N, default
//! 1,000,000).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_testkit::etcd::{etcdctl, EtcdCluster};
use strata_testkit::postgres::PgServer;

mod common;

use common::strata;

fn etcd_count(cluster: &EtcdCluster, prefix: &str) -> i64 {
    let json: serde_json::Value = serde_json::from_str(&etcdctl(
        cluster,
        &["get", "--prefix", prefix, "--limit=1", "-w", "json"],
    ))
    .unwrap();
    json["count"].as_i64().unwrap_or(0)
}

fn main() {
    let n: usize = common::size("STRATA_BENCH_KEYS", 1_000_000);
    let source_etcd = EtcdCluster::start(1);
    let target_etcd = EtcdCluster::start(1);
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().join("source.db").display());
    let entries: BTreeMap<String, String> = (0..n)
        .map(|i| {
            (
                format!("/bench/{:03}/item-{i:08}", i % 1000),
                format!("value-{i}-{}", "x".repeat(80)),
            )
        })
        .collect();
    let file = dir.path().join("snapshot.json");
    std::fs::write(&file, serde_json::to_string(&entries).unwrap()).unwrap();
    let file = file.to_str().unwrap();
    strata(&["--store", &source_etcd.url(), "load", file]);
    strata(&["--store", &sqlite, "load", file]);

    // Reference: etcdctl make-mirror from the source etcd into the target etcd.
    let started = Instant::now();
    let mut make_mirror = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", source_etcd.client_urls()))
        .args([
            "make-mirror",
            "--prefix",
            "/bench/",
            "--dest-prefix",
            "/mm/",
        ])
        .arg(target_etcd.client_urls())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start etcdctl make-mirror");
    // make-mirror writes one key per request: on 2 cores it needs many minutes for a
    // million keys, so its rate is measured over at most two minutes.
    let mut mirrored = 0;
    while started.elapsed() < Duration::from_secs(120) {
        mirrored = etcd_count(&target_etcd, "/mm/");
        if mirrored >= n as i64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let make_mirror_took = started.elapsed();
    let make_mirror_rate = mirrored as f64 / make_mirror_took.as_secs_f64();
    let _ = make_mirror.kill();
    let _ = make_mirror.wait();

    let pg_url = pg.url("copybench");
    let (etcd_to_etcd, out1) = strata(&[
        "copy",
        "--from",
        &source_etcd.url(),
        "--to",
        &target_etcd.url(),
        "--prefix",
        "/bench/",
        "--rewrite",
        "/bench/=/sc/",
    ]);
    let (etcd_to_pg, out2) = strata(&[
        "copy",
        "--from",
        &source_etcd.url(),
        "--to",
        &pg_url,
        "--prefix",
        "/bench/",
    ]);
    let (sqlite_to_etcd, out3) = strata(&[
        "copy",
        "--from",
        &sqlite,
        "--to",
        &target_etcd.url(),
        "--prefix",
        "/bench/",
    ]);
    for out in [&out1, &out2, &out3] {
        assert!(out.contains("matches the target"), "{out}");
    }

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("{n} keys of ~100 B; single-node etcd 3.4, PostgreSQL 15, SQLite\n");
    println!("| copy | keys/s | time | vs `etcdctl make-mirror` |");
    println!("|---|---|---|---|");
    println!(
        "| `etcdctl make-mirror` etcd → etcd (reference) | {make_mirror_rate:.0} | {mirrored} keys in {:.1} s | 1.00× |",
        make_mirror_took.as_secs_f64()
    );
    for (name, took) in [
        ("etcd → etcd", etcd_to_etcd),
        ("etcd → PostgreSQL", etcd_to_pg),
        ("SQLite → etcd", sqlite_to_etcd),
    ] {
        println!(
            "| `strata copy` {name} (with verification) | {:.0} | {:.2} s | {:.2}× |",
            rate(took),
            took.as_secs_f64(),
            rate(took) / make_mirror_rate
        );
    }
}
