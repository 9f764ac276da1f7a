//! `strata search` on about 1,000,000 keys in SQLite (the sigilgate mapping of N
//! generated users), next to references in the same run:
//! - building the index (the first query), next to `strata export` of the same keys
//!   (the cost of just reading them);
//! - query latency, p50 and p99 over a fixed set of queries, each a fresh `strata
//!   search` process (opening the index and checking the store's revision included),
//!   next to `strata get --prefix / | grep -F WORD` of the same words;
//! - an incremental update: 1,000 changes written, then the next query (which applies
//!   them from the watch).
//!
//! Run: `cargo bench -p strata-cli --bench search` (STRATA_BENCH_USERS=N, default
//! 60,000: 990,048 keys).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{strata, STRATA};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let users: usize = common::size("STRATA_BENCH_USERS", 60_000);
    let dir = tempfile::tempdir().unwrap();
    let root = common::sigilgate_tree(dir.path(), users);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let store = format!("sqlite:{}", dir.path().join("s.db").display());
    let schema = examples.join("sigilgate/schema.toml").display().to_string();
    common::import_sigilgate(&store, &root);
    let (_, exported) = strata(&["--store", &store, "export"]);
    let keys = exported.lines().count().saturating_sub(2);
    let (export, _) = strata(&[
        "--store",
        &store,
        "export",
        "--out",
        dir.path().join("e.json").to_str().unwrap(),
    ]);
    println!(
        "strata export (reference: reading the keys): {keys} keys in {:.2} s ({:.0} keys/s)",
        export.as_secs_f64(),
        keys as f64 / export.as_secs_f64()
    );
    let search = |q: &str| {
        strata(&[
            "--store", &store, "search", q, "--schema", &schema, "--limit", "10",
        ])
    };
    let (build, _) = search("u_000001");
    println!(
        "strata search, first query (builds the index, objects by the schema): {keys} keys in {:.2} s ({:.0} keys/s, {:.2}x export's time)",
        build.as_secs_f64(),
        keys as f64 / build.as_secs_f64(),
        build.as_secs_f64() / export.as_secs_f64()
    );
    let index_bytes: u64 = walk(&dir.path().join("s.db.search"));
    println!(
        "index size: {:.0} MB (store file {:.0} MB)",
        index_bytes as f64 / 1e6,
        std::fs::metadata(dir.path().join("s.db")).unwrap().len() as f64 / 1e6
    );

    // A fixed query set: a name, a username, an email, an address, a typo, a phrase, a
    // prefix, a field filter.
    let last = users - 1;
    let queries: Vec<(String, String)> = vec![
        (format!("u_{:06x}", last / 2), format!("u_{:06x}", last / 2)),
        (
            format!("user{}@example.org", last - 1),
            format!("user{}@example.org", last - 1),
        ),
        ("10.9.0.7".into(), "10.9.0.7".into()),
        (format!("u{}-d1", last / 3), format!("u{}-d1", last / 3)),
        (
            format!("\"user {}\"", last / 5),
            format!("User {}", last / 5),
        ),
        ("exampel".into(), "example".into()),
        (
            format!("u_{:05x}*", last / 16),
            format!("u_{:05x}", last / 16),
        ),
        ("plan:pro entity:user".into(), "pro".into()),
    ];
    let mut ours = Vec::new();
    let mut grep = Vec::new();
    for round in 0..3 {
        for (q, word) in &queries {
            let (took, _) = search(q);
            ours.push(took);
            if round == 0 {
                let started = Instant::now();
                let mut get = Command::new(STRATA)
                    .args(["--store", &store, "get", "--prefix", "/"])
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                let out = Command::new("grep")
                    .args(["-F", word])
                    .stdin(get.stdout.take().unwrap())
                    .stdout(Stdio::null())
                    .status()
                    .unwrap();
                get.wait().unwrap();
                assert!(out.success(), "grep found no {word}");
                grep.push(started.elapsed());
            }
        }
    }
    ours.sort();
    grep.sort();
    println!(
        "query latency over {} queries (fresh process each): p50 {:.0} ms, p99 {:.0} ms",
        ours.len(),
        percentile(&ours, 0.5),
        percentile(&ours, 0.99)
    );
    println!(
        "reference strata get --prefix / | grep -F (same words, {}): p50 {:.0} ms, p99 {:.0} ms",
        grep.len(),
        percentile(&grep, 0.5),
        percentile(&grep, 0.99)
    );

    // 1,000 changes, then the next query applies them.
    let changes: serde_json::Map<String, serde_json::Value> = (0..1000)
        .map(|i| {
            (
                format!("/sigilgate/users/{}/username", i * (users / 1000).max(1)),
                format!("renamed_{i}").into(),
            )
        })
        .collect();
    let file = dir.path().join("changes.json");
    std::fs::write(&file, serde_json::to_string(&changes).unwrap()).unwrap();
    strata(&["--store", &store, "load", file.to_str().unwrap()]);
    let (update, out) = search("renamed_999");
    assert!(out.contains("renamed_999"), "{out}");
    let (after, _) = search("renamed_998");
    println!(
        "after 1,000 changes: the next query in {:.0} ms (applies them), the one after in {:.0} ms",
        update.as_secs_f64() * 1000.0,
        after.as_secs_f64() * 1000.0
    );
}

fn walk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(Result::unwrap)
                .map(|e| {
                    if e.file_type().unwrap().is_dir() {
                        walk(&e.path())
                    } else {
                        e.metadata().unwrap().len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
