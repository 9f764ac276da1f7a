//! PostgreSQL benchmark: `strata load` of N keys (the real binary, end to end) into a
//! fresh schema, next to `COPY` of the same rows into a plain two-column table
//! through the real `psql`, against the same throwaway PostgreSQL 15 in the same run.
//!
//! Run: `cargo bench -p strata-cli --bench postgres` (STRATA_BENCH_KEYS=N, default
//! 1,000,000).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use strata_testkit::postgres::PgServer;

mod common;

use common::{timed, STRATA};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() {
    let n: usize = common::size("STRATA_BENCH_KEYS", 1_000_000);
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let entries: BTreeMap<String, String> = (0..n)
        .map(|i| {
            (
                format!("/bench/{:03}/item-{i:08}", i % 1000),
                format!(
                    "{{\"id\":{i},\"status\":\"active\",\"owner\":\"user-{:05}\",\"pad\":\"{}\"}}",
                    i % 50_000,
                    "x".repeat(30)
                ),
            )
        })
        .collect();

    // Reference: COPY into a plain (key bytea, value bytea) table, through psql.
    let copy_file = dir.path().join("rows.tsv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&copy_file).unwrap());
    for (k, v) in &entries {
        writeln!(
            out,
            "\\\\x{}\t\\\\x{}",
            hex(k.as_bytes()),
            hex(v.as_bytes())
        )
        .unwrap();
    }
    out.flush().unwrap();
    drop(out);
    pg.psql("CREATE TABLE bench_reference (key bytea PRIMARY KEY, value bytea NOT NULL)");
    let psql = Path::new("/usr/lib/postgresql/15/bin/psql");
    let psql = if psql.is_file() {
        psql.to_path_buf()
    } else {
        "psql".into()
    };
    let (copy, _) = timed(
        Command::new(&psql)
            .arg(pg.base_url())
            .args(["-X", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!(
                "\\copy bench_reference (key, value) FROM '{}'",
                copy_file.display()
            )),
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM bench_reference").trim(),
        n.to_string()
    );

    // strata load, end to end.
    let snapshot = dir.path().join("snapshot.json");
    std::fs::write(&snapshot, serde_json::to_string(&entries).unwrap()).unwrap();
    let url = pg.url("bench");
    let (load, out) = timed(
        Command::new(STRATA)
            .args(["--store", &url, "load"])
            .arg(&snapshot),
    );
    assert!(
        out.contains(&format!("loaded {n} keys: {n} changed")),
        "{out}"
    );
    let (reload, out) = timed(
        Command::new(STRATA)
            .args(["--store", &url, "load"])
            .arg(&snapshot),
    );
    assert!(out.contains("0 changes"), "{out}");
    assert_eq!(
        pg.psql("SELECT count(*) FROM bench.strata_kv").trim(),
        n.to_string()
    );
    let (export, _) = timed(
        Command::new(STRATA)
            .args(["--store", &url, "export", "-o"])
            .arg(dir.path().join("export.json")),
    );

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("PostgreSQL 15, one local server; {n} keys of ~100 B\n");
    println!("| measure | strata | reference | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| load, keys/s | {:.0} (`strata load`, {:.2} s) | {:.0} (`psql \\copy` into a plain two-column table, {:.2} s) | {:.2}× the time |",
        rate(load),
        load.as_secs_f64(),
        rate(copy),
        copy.as_secs_f64(),
        load.as_secs_f64() / copy.as_secs_f64()
    );
    println!(
        "| re-load of unchanged data | {:.2} s | – | – |",
        reload.as_secs_f64()
    );
    println!(
        "| export, keys/s | {:.0} ({:.2} s) | – | – |",
        rate(export),
        export.as_secs_f64()
    );
}
