//! `strata ls`, `tree` and `watch` — watch across processes on the SQLite store.

mod util;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use util::{examples, Sandbox};

fn seeded() -> Sandbox {
    let s = Sandbox::new();
    let expected = examples().join("sigilgate/expected.json");
    s.ok(&["load", expected.to_str().unwrap()]);
    s
}

#[test]
fn ls_lists_one_level_with_counts() {
    let s = seeded();
    assert_eq!(s.ok(&["ls"]), "public/     61 keys\nsigilgate/  295 keys\n");
    let nodes = s.ok(&["ls", "/sigilgate/nodes/2a01:4f8:c0c:1::78"]);
    assert_eq!(
        nodes,
        "domain      = core3.gate.example.net\ngrpc_path   = /d7f4e9\nrole        = core\nstatus      = up\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["ls", "/sigilgate/", "-o", "json"])).unwrap();
    let names: Vec<&str> = json["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["nodes", "routes", "users"]);
    assert_eq!(json["children"][2]["keys_below"], 232);
}

#[test]
fn tree_shows_levels_and_values() {
    let s = seeded();
    let tree = s.ok(&["tree", "/sigilgate/nodes"]);
    let mut lines = tree.lines();
    assert_eq!(lines.next(), Some("/sigilgate/nodes/"));
    assert_eq!(lines.next(), Some("  10.20.0.20/"));
    assert!(
        tree.contains("\n  2a01:4f8:c0c:1::78/\n    domain = core3.gate.example.net\n"),
        "{tree}"
    );
    let (_, err) = s.expect(0, &["tree", "/sigilgate/nodes"]);
    assert_eq!(err.trim(), "35 keys");
}

#[test]
fn watch_in_another_process_sees_puts_and_deletes() {
    let s = Sandbox::new();
    s.ok(&["put", "/w/before", "0"]);
    let mut watcher = s
        .command(&[
            "watch",
            "--prefix",
            "/w/",
            "--from-rev",
            "3",
            "--count",
            "3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The store is at revision 2: watching from 3 sees every later write, however
    // long the watcher takes to start.
    s.ok(&["put", "/w/a", "1"]);
    s.ok(&["put", "/other", "x"]);
    s.ok(&["put", "/w/a", "2"]);
    s.ok(&["del", "/w/a"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while watcher.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "watch did not see 3 events");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = watcher.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "PUT /w/a = 1 (revision 3)\nPUT /w/a = 2 (revision 5)\nDELETE /w/a (revision 6)\n"
    );
}

#[test]
fn watch_from_rev_replays_then_follows_as_json_lines() {
    let s = Sandbox::new();
    s.ok(&["put", "/r/a", "1"]);
    s.ok(&["put", "/r/b", "2"]);
    let mut watcher = s
        .command(&[
            "watch",
            "--prefix",
            "/r/",
            "--from-rev",
            "2",
            "--count",
            "3",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(
        (first["key"].as_str(), first["mod_revision"].as_i64()),
        (Some("/r/a"), Some(2))
    );
    s.ok(&["put", "/r/c", "3"]);
    let rest: Vec<serde_json::Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[1]["key"], "/r/c");
    assert_eq!(rest[1]["type"], "put");
    assert!(watcher.wait().unwrap().success());
}

/// Regression (first ten minutes): `ls` of a key, or of a path without its leading
/// `/`, said only "nothing under …".
#[test]
fn ls_of_a_key_or_a_relative_path_says_what_is_there() {
    let s = Sandbox::new();
    s.ok(&["put", "/a/b", "1"]);
    let (_, err) = s.expect(0, &["ls", "/a/b"]);
    assert!(
        err.contains("/a/b is a key, not a level: `strata get /a/b` reads it"),
        "{err}"
    );
    let (_, err) = s.expect(0, &["ls", "a"]);
    assert!(err.contains("did you mean `strata ls /a`?"), "{err}");
    let (_, err) = s.expect(0, &["ls", "/zz"]);
    assert_eq!(err.trim(), "nothing under /zz/");
}
