//! Replica benchmark: point lookups through a `strata_core::replica::Replica` next to a
//! direct `Store::get` of the same keys, on each backend in one run: a SQLite file, a
//! throwaway PostgreSQL and a throwaway one-node etcd (both started by the harness).
//! The direct `get` is the reference: what a service pays per lookup without the
//! replica.
//!
//! Per backend: N keys (`/bench/routes/dev-NNNNNNNN` = an IPv4 address) are written in
//! transactions of the backend's op limit, the replica is started (its first read timed), then the same M
//! random lookups are made three ways: through the replica untimed one by one (the
//! rate), through the replica timed one by one (p50/p99), and as direct `get`s timed one
//! by one (rate and p50/p99). Every answer is checked. A last row has two threads
//! looking up through one replica at once.
//!
//! Run: `cargo bench -p strata-store --bench replica` (STRATA_BENCH_KEYS=N, default
//! 10,000; STRATA_BENCH_LOOKUPS=M, default 200,000). Prints a Markdown table; see
//! BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_core::replica::Replica;
use strata_core::{Op, Store, Txn};
use strata_store::AnyStore;
use strata_testkit::etcd::EtcdCluster;
use strata_testkit::postgres::PgServer;

const PREFIX: &str = "/bench/routes/";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn dataset(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("{PREFIX}dev-{i:08}"),
                format!("10.20.{}.{}", i / 250 % 250, i % 250 + 1),
            )
        })
        .collect()
}

/// A small deterministic generator (xorshift) for the lookup sample.
fn sample(n: usize, count: usize) -> Vec<usize> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        })
        .collect()
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

struct Row {
    backend: &'static str,
    fill: Duration,
    replica_rate: f64,
    replica_p: (f64, f64),
    direct_rate: f64,
    direct_p: (f64, f64),
    two_threads_rate: f64,
}

fn lookup(replica: &Replica, entries: &[(String, String)], i: usize) {
    let kv = replica
        .get(entries[i].0.as_bytes())
        .value
        .expect("a key held");
    assert_eq!(kv.value, entries[i].1.as_bytes());
}

fn measure(
    rt: &tokio::runtime::Runtime,
    backend: &'static str,
    store: AnyStore,
    entries: &Arc<Vec<(String, String)>>,
    picks: &Arc<Vec<usize>>,
) -> Row {
    let batch = store.capabilities().max_txn_ops;
    for chunk in entries.chunks(batch) {
        let puts = chunk.iter().map(|(k, v)| Op::put(k.as_str(), v.as_str()));
        rt.block_on(store.txn(Txn::new().and_then(puts))).unwrap();
    }
    let started = Instant::now();
    let replica = Arc::new(rt.block_on(Replica::start(store.clone(), PREFIX)).unwrap());
    let fill = started.elapsed();
    assert_eq!(replica.status().keys, entries.len());

    let started = Instant::now();
    for &i in picks.iter() {
        lookup(&replica, entries, i);
    }
    let replica_rate = picks.len() as f64 / started.elapsed().as_secs_f64();
    let replica_times: Vec<Duration> = picks
        .iter()
        .map(|&i| {
            let started = Instant::now();
            lookup(&replica, entries, i);
            started.elapsed()
        })
        .collect();

    let two_started = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (replica, entries, picks) = (replica.clone(), entries.clone(), picks.clone());
            std::thread::spawn(move || {
                for &i in picks.iter() {
                    lookup(&replica, &entries, i);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let two_threads_rate = 2.0 * picks.len() as f64 / two_started.elapsed().as_secs_f64();

    let direct_started = Instant::now();
    let direct_times: Vec<Duration> = picks
        .iter()
        .map(|&i| {
            let started = Instant::now();
            let kv = rt
                .block_on(store.get(entries[i].0.as_bytes()))
                .unwrap()
                .unwrap();
            let took = started.elapsed();
            assert_eq!(kv.value, entries[i].1.as_bytes());
            took
        })
        .collect();
    let direct_rate = picks.len() as f64 / direct_started.elapsed().as_secs_f64();
    Row {
        backend,
        fill,
        replica_rate,
        replica_p: percentiles(replica_times),
        direct_rate,
        direct_p: percentiles(direct_times),
        two_threads_rate,
    }
}

fn main() {
    let n = env("STRATA_BENCH_KEYS", 10_000);
    let m = env("STRATA_BENCH_LOOKUPS", 200_000);
    let entries = Arc::new(dataset(n));
    let picks = Arc::new(sample(n, m));
    // One worker runs the replicas' watch tasks (and the clients' I/O) beside the
    // thread that looks up.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pg = PgServer::start();
    let etcd = EtcdCluster::start(1);
    let urls = [
        (
            "SQLite file",
            format!("sqlite:{}", dir.path().join("bench.db").display()),
        ),
        ("PostgreSQL", pg.url("replica_bench")),
        ("etcd (one node)", etcd.url()),
    ];
    let rows: Vec<Row> = urls
        .iter()
        .map(|(backend, url)| {
            let store = rt.block_on(strata_store::open(url)).unwrap();
            measure(&rt, backend, store, &entries, &picks)
        })
        .collect();

    println!("{n} keys under {PREFIX}, {m} random lookups, one thread unless said\n");
    println!(
        "| backend | replica, lookups/s | direct `get`, lookups/s | ratio | replica p50 / p99, µs \
         | direct `get` p50 / p99, µs | replica, 2 threads, lookups/s | first read |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0}× | {:.2} / {:.2} | {:.1} / {:.1} | {:.0} | {:.0} ms |",
            r.backend,
            r.replica_rate,
            r.direct_rate,
            r.replica_rate / r.direct_rate,
            r.replica_p.0,
            r.replica_p.1,
            r.direct_p.0,
            r.direct_p.1,
            r.two_threads_rate,
            r.fill.as_secs_f64() * 1e3
        );
    }
}
