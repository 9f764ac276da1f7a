//! `strata ui` with about 1,000,000 keys (the sigilgate mapping of N generated users)
//! in SQLite and in etcd: time to first byte of the root page, of the users' level
//! (60,000 children: its first page of 200), of an object page, a key page, a node page
//! (whose incoming references are found by reading the routes) and the path box's
//! completions, each measured by curl (`%{time_starttransfer}`) over 5 requests, next
//! to `strata ls` of the same level (a fresh process) in the same run.
//!
//! Run: `cargo bench -p strata-cli --bench ui` (STRATA_BENCH_USERS=N, default 60,000).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use std::io::{BufRead, BufReader};

mod common;

use common::{strata, STRATA};

fn ttfb(addr: &str, path: &str) -> (f64, f64) {
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let out = Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{time_starttransfer} %{http_code}",
                ])
                .arg(format!("http://{addr}{path}"))
                .output()
                .expect("curl");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let (t, code) = text.split_once(' ').unwrap();
            assert_eq!(code, "200", "{path}");
            t.parse::<f64>().unwrap() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[2], times[4])
}

fn main() {
    let users: usize = common::size("STRATA_BENCH_USERS", 60_000);
    let dir = tempfile::tempdir().unwrap();
    let root = common::sigilgate_tree(dir.path(), users);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let schema = examples.join("sigilgate/schema.toml").display().to_string();
    let etcd = strata_testkit::etcd::EtcdCluster::start(1);
    for (name, store) in [
        (
            "SQLite",
            format!("sqlite:{}", dir.path().join("s.db").display()),
        ),
        ("etcd", etcd.url()),
    ] {
        let (took, _) = common::import_sigilgate(&store, &root);
        println!(
            "{name}: imported {users} users in {:.1} s",
            took.as_secs_f64()
        );
        let mut child = Command::new(STRATA)
            .args([
                "--store",
                &store,
                "ui",
                "--listen",
                "127.0.0.1:0",
                "--schema",
                &schema,
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("the console's address").unwrap();
            if let Some(rest) = line.split("http://").nth(1) {
                break rest.split('/').next().unwrap().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        std::thread::sleep(Duration::from_millis(200));
        let (ls, _) = strata(&["--store", &store, "ls", "/sigilgate/"]);
        let (_, nodes) = strata(&["--store", &store, "ls", "/sigilgate/nodes/"]);
        let node = nodes
            .lines()
            .find_map(|l| l.split_whitespace().next().filter(|w| w.ends_with('/')))
            .expect("a node")
            .trim_end_matches('/')
            .to_owned();
        for (what, path) in [
            ("root level", "/browse?prefix=/".to_owned()),
            (
                "the users' level, first 200 of 60,000",
                "/browse?prefix=/sigilgate/users/".to_owned(),
            ),
            (
                "an object page",
                format!("/object?path=/sigilgate/users/{}", users / 2),
            ),
            (
                "a key page",
                format!("/key?k=/sigilgate/users/{}/username", users / 2),
            ),
            (
                "a node page (who references it: the routes read)",
                format!("/object?path=/sigilgate/nodes/{node}"),
            ),
            (
                "the path box's completions",
                "/complete?path=/sigilgate/users/123".to_owned(),
            ),
        ] {
            let (p50, max) = ttfb(&addr, &path);
            println!("{name}: {what}: time to first byte p50 {p50:.1} ms, max {max:.1} ms");
        }
        println!(
            "{name}: reference strata ls /sigilgate/ (a fresh process): {:.0} ms",
            ls.as_secs_f64() * 1000.0
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}
