//! SQLite backend benchmark: load of N keys (keys/s) and point-get latency (p50/p99),
//! side by side with a reference run in the same process: plain rusqlite inserting the
//! same rows into one two-column table in one transaction, and reading them back by
//! primary key. The ratio is the cost of the revisioned layout (current rows + history
//! + revision counter) and of the `Store` API.
//!
//! Run: `cargo bench -p strata-store --bench sqlite` (STRATA_BENCH_KEYS=N to resize;
//! default 1,000,000). Prints a Markdown table; see BENCHMARKS.md.

use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use strata_core::Store;
use strata_ops::load::load;
use strata_store::SqliteStore;

fn dataset(n: usize) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("/bench/{:03}/item-{i:08}", i % 1000),
                format!(
                    "{{\"id\":{i},\"status\":\"active\",\"owner\":\"user-{:05}\",\"pad\":\"{}\"}}",
                    i % 50_000,
                    "x".repeat(40)
                ),
            )
        })
        .collect();
    entries.sort();
    entries
}

/// A small deterministic generator (xorshift) for the read sample.
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

fn reference_load(path: &std::path::Path, entries: &[(String, String)]) -> Duration {
    let mut conn = Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
        .unwrap();
    let started = Instant::now();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare("INSERT INTO kv (key, value) VALUES (?1, ?2)")
            .unwrap();
        for (k, v) in entries {
            insert.execute(params![k.as_bytes(), v.as_bytes()]).unwrap();
        }
    }
    tx.commit().unwrap();
    started.elapsed()
}

fn reference_gets(
    path: &std::path::Path,
    entries: &[(String, String)],
    picks: &[usize],
) -> Vec<Duration> {
    let conn = Connection::open(path).unwrap();
    let mut get = conn.prepare("SELECT value FROM kv WHERE key = ?1").unwrap();
    picks
        .iter()
        .map(|&i| {
            let started = Instant::now();
            let v: Vec<u8> = get
                .query_row([entries[i].0.as_bytes()], |r| r.get(0))
                .unwrap();
            let took = started.elapsed();
            assert_eq!(v, entries[i].1.as_bytes());
            took
        })
        .collect()
}

fn main() {
    let n: usize = std::env::var("STRATA_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let entries = dataset(n);
    let picks = sample(n, 20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // Reference first, then strata, on the same machine in the same process.
    let ref_load = reference_load(&dir.path().join("reference.db"), &entries);
    let ref_gets = reference_gets(&dir.path().join("reference.db"), &entries, &picks);

    let store = SqliteStore::open(dir.path().join("strata.db")).unwrap();
    let input = entries.clone();
    let started = Instant::now();
    let report = rt.block_on(load(&store, input, None, &mut |_| {})).unwrap();
    let strata_load = started.elapsed();
    assert_eq!(report.changed as usize, n);
    let input = entries.clone();
    let reload_started = Instant::now();
    let again = rt.block_on(load(&store, input, None, &mut |_| {})).unwrap();
    let strata_reload = reload_started.elapsed();
    assert_eq!(again.changed, 0);
    let strata_gets: Vec<Duration> = picks
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

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let (rp50, rp99) = percentiles(ref_gets);
    let (sp50, sp99) = percentiles(strata_gets);
    println!(
        "SQLite backend, {n} keys of ~100 B, {} transactions of {} keys\n",
        report.txns,
        store.capabilities().max_txn_ops
    );
    println!("| measure | strata (sqlite:) | reference (plain rusqlite table) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| load, keys/s | {:.0} ({:.2} s) | {:.0} ({:.2} s) | {:.2}× slower |",
        rate(strata_load),
        strata_load.as_secs_f64(),
        rate(ref_load),
        ref_load.as_secs_f64(),
        strata_load.as_secs_f64() / ref_load.as_secs_f64()
    );
    println!(
        "| re-load, unchanged, keys/s | {:.0} ({:.2} s) | – | – |",
        rate(strata_reload),
        strata_reload.as_secs_f64()
    );
    println!(
        "| point get p50, µs | {sp50:.1} | {rp50:.1} | {:.2}× |",
        sp50 / rp50
    );
    println!(
        "| point get p99, µs | {sp99:.1} | {rp99:.1} | {:.2}× |",
        sp99 / rp99
    );
}
