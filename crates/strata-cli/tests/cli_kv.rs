//! The `strata` binary's key-value commands on the SQLite default store: get, put,
//! del, cas, cad, txn, history, compact, and their exit codes.

mod util;

use util::Sandbox;

#[test]
fn put_get_del_with_exit_codes() {
    let s = Sandbox::new();
    assert!(s.ok(&["put", "/a/b", "hello"]).contains("revision 2"));
    assert_eq!(s.ok(&["get", "/a/b"]), "hello\n");
    let (_, err) = s.expect(3, &["get", "/a/missing"]);
    assert!(err.contains("key /a/missing not found"), "{err}");
    assert!(s.ok(&["del", "/a/b"]).starts_with("deleted 1"));
    s.expect(3, &["del", "/a/b"]);
    // Deleting an empty prefix is not a failure.
    assert!(s
        .ok(&["del", "--prefix", "/a/", "--yes"])
        .starts_with("deleted 0"));
}

#[test]
fn put_reads_stdin_as_is() {
    let s = Sandbox::new();
    let out = s.run_with_stdin(&["put", "/doc", "-"], b"line 1\nline 2\n");
    assert!(out.status.success());
    assert_eq!(s.ok(&["get", "/doc"]), "line 1\nline 2\n");
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["get", "/doc", "-o", "json"])).unwrap();
    assert_eq!(json["kvs"][0]["value"], "line 1\nline 2\n");
}

#[test]
fn odd_keys_round_trip() {
    let s = Sandbox::new();
    for key in [
        "/a/b%2Fc",
        "/unicode/Zoë Ångström/李",
        "/spaces/with space/x",
        "/ip/2a01:4f8:c0c:1::78/role",
    ] {
        s.ok(&["put", key, key]);
        assert_eq!(s.ok(&["get", key]), format!("{key}\n"));
    }
    let listing = s.ok(&["get", "--prefix", "/", "--keys-only"]);
    assert_eq!(
        listing,
        "/a/b%2Fc\n/ip/2a01:4f8:c0c:1::78/role\n/spaces/with space/x\n/unicode/Zoë Ångström/李\n"
    );
}

#[test]
fn get_prefix_limit_rev_and_json() {
    let s = Sandbox::new();
    s.ok(&["put", "/p/1", "one"]);
    s.ok(&["put", "/p/2", "two"]);
    s.ok(&["put", "/p/1", "uno"]);
    assert_eq!(
        s.ok(&["get", "--prefix", "/p/"]),
        "/p/1 = uno\n/p/2 = two\n"
    );
    assert_eq!(
        s.ok(&["get", "--prefix", "/p/", "--rev", "3"]),
        "/p/1 = one\n/p/2 = two\n"
    );
    assert!(s
        .ok(&["get", "--prefix", "/p/", "--limit", "1"])
        .contains("more keys"));
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["get", "/p/1", "-o", "json"])).unwrap();
    assert_eq!(json["kvs"][0]["version"], 2);
    assert_eq!(json["kvs"][0]["create_revision"], 2);
    assert_eq!(json["kvs"][0]["mod_revision"], 4);
    assert_eq!(json["revision"], 4);
    let (_, err) = s.expect(1, &["get", "/p/1", "--rev", "99"]);
    assert!(err.contains("revision 99 is in the future"), "{err}");
}

#[test]
fn cas_and_cad_mismatch_exit_3() {
    let s = Sandbox::new();
    s.ok(&["cas", "/lock", "me", "--expect-absent"]);
    let (_, err) = s.expect(3, &["cas", "/lock", "you", "--expect-absent"]);
    assert!(
        err.contains("expected absent, but the key is version 1"),
        "{err}"
    );
    s.expect(3, &["cas", "/lock", "you", "--expect-version", "2"]);
    s.expect(3, &["cas", "/lock", "you", "--expect-value", "nobody"]);
    s.ok(&["cas", "/lock", "you", "--expect-value", "me"]);
    s.ok(&["cas", "/lock", "again", "--expect-version", "2"]);
    assert_eq!(s.ok(&["get", "/lock"]), "again\n");
    s.expect(3, &["cad", "/lock", "--expect-version", "1"]);
    assert_eq!(s.ok(&["get", "/lock"]), "again\n");
    s.ok(&["cad", "/lock", "--expect-version", "3"]);
    s.expect(3, &["get", "/lock"]);
    s.expect(3, &["cad", "/lock", "--expect-version", "3"]);
    // Usage errors are exit 2: cas needs exactly one expectation.
    s.expect(2, &["cas", "/lock", "x"]);
    s.expect(
        2,
        &[
            "cas",
            "/lock",
            "x",
            "--expect-absent",
            "--expect-version",
            "1",
        ],
    );
}

#[test]
fn txn_from_file_and_stdin() {
    let s = Sandbox::new();
    s.ok(&["put", "/c/x", "1"]);
    let txn = r#"{"compare": [{"key": "/obj/id", "absent": true}],
                  "success": [{"put": {"key": "/obj/id", "value": "7"}},
                              {"put": {"key": "/obj/name", "value": "seven"}},
                              {"delete": {"prefix": "/c/"}}],
                  "failure": [{"get": {"key": "/obj/id"}}]}"#;
    std::fs::write(s.path("t.json"), txn).unwrap();
    let out = s.ok(&["txn", "t.json"]);
    assert!(out.starts_with("SUCCESS (revision 3)"), "{out}");
    assert_eq!(s.ok(&["get", "/obj/name"]), "seven\n");
    s.expect(3, &["get", "/c/x"]);
    let again = s.run_with_stdin(&["txn", "-", "-o", "json"], txn.as_bytes());
    assert_eq!(again.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(json["succeeded"], false);
    assert_eq!(json["responses"][0]["get"]["kvs"][0]["value"], "7");
    std::fs::write(
        s.path("bad.json"),
        r#"{"compare": [{"key": "/a", "version": 1, "value": "x"}]}"#,
    )
    .unwrap();
    let (_, err) = s.expect(1, &["txn", "bad.json"]);
    assert!(err.contains("compare #1 (key /a)"), "{err}");
}

#[test]
fn history_and_compact() {
    let s = Sandbox::new();
    s.ok(&["put", "/h", "a"]);
    s.ok(&["put", "/h", "b"]);
    s.ok(&["del", "/h"]);
    s.ok(&["put", "/h", "c"]);
    let history = s.ok(&["history", "/h"]);
    let lines: Vec<&str> = history.lines().skip(1).map(str::trim).collect();
    assert_eq!(lines.len(), 4, "{history}");
    assert!(
        lines[0].starts_with("2  put") && lines[0].ends_with("a"),
        "{history}"
    );
    assert!(lines[2].starts_with("4  delete"), "{history}");
    assert!(lines[3].ends_with("c"), "{history}");
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["history", "/h", "-o", "json"])).unwrap();
    assert_eq!(json[2]["type"], "delete");
    s.ok(&["compact", "4", "--yes"]);
    let (_, err) = s.expect(1, &["get", "/h", "--rev", "3"]);
    assert!(err.contains("revision 3 has been compacted"), "{err}");
    let history = s.ok(&["history", "/h"]);
    assert_eq!(history.lines().count(), 3, "{history}");
    // Compacting again at (or below) the compaction point has nothing to do.
    let out = s.ok(&["compact", "4", "--yes"]);
    assert!(
        out.contains("nothing to do") && out.contains("compacted at revision 4"),
        "{out}"
    );
    s.expect(3, &["history", "/never"]);
}

#[test]
fn bad_store_url_is_a_clear_error() {
    let s = Sandbox::new();
    let out = s
        .command(&["get", "/x"])
        .env("STRATA_STORE", "redis://h")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown scheme \"redis\""), "{err}");
    let out = s
        .command(&["--store", "sqlite:/nonexistent/dir/x.db", "get", "/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot open the store sqlite:/nonexistent/dir/x.db"));
}

#[test]
fn help_teaches_and_usage_errors_exit_2() {
    let s = Sandbox::new();
    let help = s.ok(&["--help"]);
    for word in [
        "Exit codes",
        "get",
        "cas",
        "watch",
        "export",
        "load",
        "--store",
    ] {
        assert!(help.contains(word), "--help lacks {word}");
    }
    assert!(s.ok(&["txn", "--help"]).contains("\"compare\""));
    s.expect(2, &["frobnicate"]);
}

/// `--version` names the commit the binary was built from, its date and the backends.
#[test]
fn version_names_the_commit_and_the_backends() {
    let s = Sandbox::new();
    let out = s.ok(&["--version"]);
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    assert!(out.starts_with("strata 0.1.0 (commit "), "{out}");
    assert!(out.contains(&head), "built from {head}: {out}");
    assert!(out.contains("backends: sqlite, etcd, postgres"), "{out}");
}

/// Regression (first ten minutes): `get` of a path that holds no value but has keys
/// below it only said "not found".
#[test]
fn get_of_a_level_points_at_prefix_and_tree() {
    let s = Sandbox::new();
    s.ok(&["put", "/a/b", "1"]);
    let (_, err) = s.expect(3, &["get", "/a"]);
    assert!(
        err.contains("key /a not found, but keys below it exist: `strata get --prefix /a/`"),
        "{err}"
    );
    let (_, err) = s.expect(3, &["get", "/zz"]);
    assert_eq!(err.trim(), "key /zz not found");
}
