//! etcd benchmark, every figure next to a reference measured in the same run against
//! the same local single-node etcd:
//!
//! - `strata load` of N keys (the real binary, end to end: JSON parsing, change
//!   detection reads, batched transactions) next to the best raw batched put rate
//!   this machine reaches with etcd-client (transactions of 128 puts, 1–32 in flight);
//! - a shell loop of `etcdctl put` over the first 2,000 keys;
//! - `etcdctl check perf --load=l`, the machine's ceiling as etcd's own tool sees it;
//! - `strata export` of the N keys next to `etcdctl get --prefix -w json`.
//!
//! Run: `cargo bench -p strata-cli --bench etcd` (STRATA_BENCH_KEYS=N, default 100,000;
//! STRATA_BENCH_CHECK_PERF=0 skips the 60-second `etcdctl check perf --load=l`).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::etcd::{key, raw_load, value};
use strata_testkit::etcd::EtcdCluster;

mod common;

const STRATA: &str = env!("CARGO_BIN_EXE_strata");

fn run(cmd: &mut Command) -> (Duration, String) {
    let started = Instant::now();
    let out = cmd
        .stderr(Stdio::piped())
        .output()
        .expect("run a benchmark command");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (took, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() {
    let n: usize = common::size("STRATA_BENCH_KEYS", 100_000);
    let check_perf = std::env::var("STRATA_BENCH_CHECK_PERF").map_or(true, |v| v != "0");
    let cluster = EtcdCluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let (rt, client) = common::etcd::client(&cluster);

    // Reference: the best raw batched put rate through etcd-client.
    let mut raw = Vec::new();
    for in_flight in [1, 4, 8, 16, 32] {
        let took = rt.block_on(raw_load(&client, &format!("raw{in_flight}"), n, in_flight));
        raw.push((in_flight, took));
    }
    let (best_in_flight, best_raw) = *raw.iter().min_by_key(|(_, t)| *t).unwrap();

    // strata load, end to end, through the real binary.
    let snapshot: BTreeMap<String, String> = (0..n).map(|i| (key("strata", i), value(i))).collect();
    let file = dir.path().join("snapshot.json");
    std::fs::write(&file, serde_json::to_string(&snapshot).unwrap()).unwrap();
    let url = cluster.url();
    let (load, out) = run(Command::new(STRATA)
        .args(["--store", &url, "load"])
        .arg(&file));
    assert!(
        out.contains(&format!("loaded {n} keys: {n} changed")),
        "{out}"
    );
    let (reload, out) = run(Command::new(STRATA)
        .args(["--store", &url, "load"])
        .arg(&file));
    assert!(out.contains("0 changes"), "{out}");

    // etcdctl put, one process per key.
    let endpoints = format!("--endpoints={}", cluster.client_urls());
    let script = format!("for i in $(seq 1 2000); do etcdctl {endpoints} put /ctl/$i value-$i >/dev/null || exit 1; done");
    let (ctl_loop, _) = run(Command::new("bash")
        .args(["-c", &script])
        .env("ETCDCTL_API", "3"));

    // Export: strata vs etcdctl get -w json.
    let export_file = dir.path().join("export.json");
    let (export, _) = run(Command::new(STRATA)
        .args(["--store", &url, "export", "--prefix", "/strata/", "-o"])
        .arg(&export_file));
    assert_eq!(
        std::fs::read_to_string(&export_file).unwrap(),
        serde_json::to_string_pretty(&snapshot).unwrap() + "\n"
    );
    let (ctl_get, json) = run(Command::new("etcdctl")
        .args([
            endpoints.as_str(),
            "get",
            "--prefix",
            "/strata/",
            "-w",
            "json",
        ])
        .env("ETCDCTL_API", "3"));
    assert!(json.len() > n * 100);

    let check = if check_perf {
        let out = Command::new("etcdctl")
            .args([endpoints.as_str(), "check", "perf", "--load=l"])
            .env("ETCDCTL_API", "3")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // The progress bar redraws with carriage returns; keep the verdict lines.
        let verdicts: Vec<&str> = text
            .split(['\r', '\n'])
            .filter_map(|l| {
                l.find("PASS")
                    .or_else(|| l.find("FAIL"))
                    .map(|i| l[i..].trim())
            })
            .collect();
        Some(verdicts.join("; "))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| format!("(no throughput line: {})", text.trim()))
    } else {
        "skipped (STRATA_BENCH_CHECK_PERF=0)".into()
    };

    let rate = |count: usize, d: Duration| count as f64 / d.as_secs_f64();
    println!("etcd 3.4, one local node; {n} keys of ~100 B\n");
    println!("| measure | strata | reference | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| load, keys/s | {:.0} (`strata load`, {:.2} s) | {:.0} (raw etcd-client, txns of 128, {best_in_flight} in flight, {:.2} s) | {:.0}% of raw |",
        rate(n, load),
        load.as_secs_f64(),
        rate(n, best_raw),
        best_raw.as_secs_f64(),
        100.0 * best_raw.as_secs_f64() / load.as_secs_f64()
    );
    println!(
        "| load, keys/s | {:.0} | {:.0} (`etcdctl put` in a shell loop, 2,000 keys) | {:.0}× |",
        rate(n, load),
        rate(2000, ctl_loop),
        rate(n, load) / rate(2000, ctl_loop)
    );
    println!(
        "| re-load of unchanged data | {:.2} s | – | – |",
        reload.as_secs_f64()
    );
    println!(
        "| export, keys/s | {:.0} (`strata export`, {:.2} s) | {:.0} (`etcdctl get --prefix -w json`, {:.2} s) | {:.2}× |",
        rate(n, export),
        export.as_secs_f64(),
        rate(n, ctl_get),
        ctl_get.as_secs_f64(),
        ctl_get.as_secs_f64() / export.as_secs_f64()
    );
    println!(
        "\nraw etcd-client by transactions in flight: {}",
        raw.iter()
            .map(|(k, t)| format!("{k}: {:.0} keys/s", rate(n, *t)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("etcdctl check perf --load=l: {check}");
}
