//! `strata schema check` of about 1,000,000 keys on SQLite (target: under 5 s), next to
//! `strata export` of the same keys (the cost of just reading them) in the same run.
//!
//! Run: `cargo bench -p strata-cli --bench schema` (STRATA_BENCH_USERS=N, default 60,000
//! users with two devices each, loaded through the sigilgate mapping).

use std::path::Path;

mod common;

use common::strata;

fn main() {
    let users: usize = common::size("STRATA_BENCH_USERS", 60_000);
    let dir = tempfile::tempdir().unwrap();
    let root = common::sigilgate_tree(dir.path(), users);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let store = format!("sqlite:{}", dir.path().join("s.db").display());
    let (_, out) = common::import_sigilgate(&store, &root);
    let keys: usize = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let (export, _) = strata(&[
        "--store",
        &store,
        "export",
        "--out",
        dir.path().join("e.json").to_str().unwrap(),
    ]);
    let (check, _) = strata(&[
        "--store",
        &store,
        "schema",
        "check",
        "--schema",
        examples.join("sigilgate/schema.toml").to_str().unwrap(),
    ]);
    println!("{keys} keys in SQLite\n");
    println!("| command | time | keys/s |");
    println!("|---|---|---|");
    println!(
        "| `strata schema check` | {:.2} s | {:.0} |",
        check.as_secs_f64(),
        keys as f64 / check.as_secs_f64()
    );
    println!(
        "| `strata export` (reading alone, reference) | {:.2} s | {:.0} |",
        export.as_secs_f64(),
        keys as f64 / export.as_secs_f64()
    );
}
