//! One meaning per flag: `-o FORMAT` is the output format on every command, files go
//! in `--out FILE` (an old `-o PATH` still works, with a warning naming `--out`),
//! every command a script calls has `-o json`, `-q` silences notes and summaries but
//! never data, and `get --prefix` lines read back unambiguously.

mod util;

use serde_json::Value;
use util::{examples, Sandbox};

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn sigilgate() -> Sandbox {
    let s = Sandbox::new();
    let snapshot = examples().join("sigilgate/expected.json");
    s.ok(&["load", snapshot.to_str().unwrap()]);
    s
}

#[test]
fn export_takes_its_file_in_out_and_its_format_in_o() {
    let s = sigilgate();
    let (out, err) = s.expect(
        0,
        &[
            "export",
            "--prefix",
            "/sigilgate/nodes/",
            "--out",
            "n.json",
            "-o",
            "json",
        ],
    );
    let summary = json(&out);
    let written = json(&std::fs::read_to_string(s.path("n.json")).unwrap());
    assert_eq!(summary["keys"], written.as_object().unwrap().len());
    assert_eq!(summary["file"], "n.json");
    assert!(summary["revision"].as_i64().unwrap() > 0);
    assert!(err.is_empty(), "{err}");
    assert!(!s.path("json").exists(), "-o json made a file named json");
}

#[test]
fn an_old_o_path_still_writes_the_file_with_a_warning_naming_out() {
    let s = sigilgate();
    let (_, err) = s.expect(0, &["export", "-o", "old.json"]);
    assert!(err.contains("--out FILE"), "{err}");
    assert_eq!(
        json(&std::fs::read_to_string(s.path("old.json")).unwrap())
            .as_object()
            .unwrap()
            .len(),
        356
    );
    // Both at once is a contradiction, said before anything is written.
    let (_, err) = s.expect(1, &["export", "-o", "a.json", "--out", "b.json"]);
    assert!(err.contains("--out"), "{err}");
    assert!(!s.path("a.json").exists() && !s.path("b.json").exists());
}

/// Regression: `import … --dry-run -o json` wrote a file named `json` and ignored
/// the dry run.
#[test]
fn import_dry_run_o_json_prints_the_plan_and_writes_nothing() {
    let s = Sandbox::new();
    let legacy = examples().join("sigilgate/legacy");
    let mapping = examples().join("sigilgate/mapping.toml");
    let (legacy, mapping) = (legacy.to_str().unwrap(), mapping.to_str().unwrap());
    let args = ["import", legacy, "--mapping", mapping, "--create"];
    let plan = json(&s.ok(&[&args[..], &["--dry-run", "-o", "json"]].concat()));
    assert_eq!(plan["dry_run"], true);
    let added: u64 = plan["groups"]
        .as_object()
        .unwrap()
        .values()
        .map(|g| g["add"].as_u64().unwrap())
        .sum();
    assert_eq!(added, 356, "{plan}");
    assert!(!s.path("json").exists());
    assert_eq!(s.ok(&["get", "--prefix", "/", "--keys-only"]), "");
    // The import itself, as JSON, and the snapshot-only form with --out.
    let report = json(&s.ok(&[&args[..], &["-o", "json"]].concat()));
    assert_eq!(report["total"], 356);
    assert_eq!(report["changed"], 356);
    let out = json(&s.ok(&[&args[..], &["--out", "snap.json", "-o", "json"]].concat()));
    assert_eq!(out["keys"], 356);
    let snap = json(&std::fs::read_to_string(s.path("snap.json")).unwrap());
    let expected =
        json(&std::fs::read_to_string(examples().join("sigilgate/expected.json")).unwrap());
    assert_eq!(snap, expected);
}

#[test]
fn tree_o_json_nests_levels_and_keeps_a_levels_own_value_under_empty_name() {
    let s = Sandbox::new();
    s.ok(&["put", "/t/a", "1"]);
    s.ok(&["put", "/t/a/b", "2"]);
    s.ok(&["put", "/t/c/d/e", "3"]);
    let tree = json(&s.ok(&["tree", "/t", "-o", "json"]));
    assert_eq!(tree["prefix"], "/t/");
    assert_eq!(
        tree["tree"],
        serde_json::json!({"a": {"": "1", "b": "2"}, "c": {"d": {"e": "3"}}})
    );
}

/// Each writing command a script calls answers `-o json` with what it did.
#[test]
fn writing_commands_answer_o_json() {
    let s = sigilgate();
    let schema = examples().join("sigilgate/schema.toml");
    let schema = schema.to_str().unwrap();
    let rev = json(&s.ok(&["put", "/x", "1", "-o", "json"]))["revision"]
        .as_i64()
        .unwrap();
    s.ok(&["put", "/x", "2"]);
    let compacted = json(&s.ok(&["compact", &rev.to_string(), "--yes", "-o", "json"]));
    assert_eq!(compacted["compacted"], rev);
    assert!(compacted["dropped_revisions"].as_i64().unwrap() > 0);

    let user = r#"{"username": "zoe", "status": "active", "max_devices": 3,
                   "created_at": "2026-01-01T00:00:00Z", "plan": "pro"}"#;
    std::fs::write(s.path("u.json"), user).unwrap();
    let created = json(&s.ok(&[
        "object",
        "create",
        "/sigilgate/users/900",
        "u.json",
        "--schema",
        schema,
        "-o",
        "json",
    ]));
    assert_eq!(created["created"], "/sigilgate/users/900");
    let set = json(&s.ok(&[
        "object",
        "set",
        "/sigilgate/users/900",
        "status",
        "blocked",
        "--schema",
        schema,
        "-o",
        "json",
    ]));
    assert!(set["revision"].as_i64().unwrap() > created["revision"].as_i64().unwrap());
    let deleted = json(&s.ok(&[
        "object",
        "delete",
        "/sigilgate/users/900",
        "--schema",
        schema,
        "-o",
        "json",
    ]));
    assert_eq!(deleted["deleted_fields"], 5);

    let repo = s.path("repo");
    let repo = repo.to_str().unwrap();
    let run = json(&s.ok(&["backup", "run", "--repo", repo, "-o", "json"]));
    assert_eq!(run["full"], true);
    assert_eq!(run["commit"].as_str().unwrap().len(), 40);
    let verify = json(&s.ok(&["backup", "verify", "--repo", repo, "-o", "json"]));
    assert_eq!(verify["ok"], true);
    assert_eq!(verify["commit"], run["commit"]);
    s.ok(&["put", "/sigilgate/users/129/status", "blocked"]);
    let restore = json(&s.ok(&[
        "backup",
        "restore",
        "/sigilgate/users/129",
        "--repo",
        repo,
        "--yes",
        "-o",
        "json",
    ]));
    assert_eq!(
        restore["put"],
        serde_json::json!(["/sigilgate/users/129/status"])
    );

    let dir = s.path("m");
    let dir = dir.to_str().unwrap();
    let new = json(&s.ok(&[
        "migrate", "new", "users", "touch", "--dir", dir, "-o", "json",
    ]));
    assert_eq!(new["area"], "users");
    std::fs::write(
        new["file"].as_str().unwrap(),
        "[[steps]]\nop = 'set_default'\nobject = '/sigilgate/users/{id}'\nfield = 'locale'\nvalue = 'en'\n",
    )
    .unwrap();
    let up = json(&s.ok(&["migrate", "up", "--dir", dir, "--yes", "-o", "json"]));
    assert_eq!(up["applied"][0]["area"], "users", "{up}");
    assert!(
        up["applied"][0]["counts"]["objects"].as_u64().unwrap() > 0,
        "{up}"
    );
    let verify = json(&s.ok(&["migrate", "verify", "--dir", dir, "-o", "json"]));
    assert_eq!(verify["ok"], true);
    assert_eq!(verify["applied"], 1);
}

#[test]
fn quiet_silences_notes_and_summaries_but_never_data() {
    let s = Sandbox::new();
    let (out, err) = s.expect(0, &["put", "/q/a", "1", "-q"]);
    assert_eq!((out.as_str(), err.as_str()), ("", ""));
    let (out, err) = s.expect(0, &["-q", "export", "--out", "e.json"]);
    assert_eq!((out.as_str(), err.as_str()), ("", ""));
    let (out, err) = s.expect(0, &["tree", "/q", "-q"]);
    assert_eq!(out, "/q/\n  a = 1\n");
    assert_eq!(err, "");
    assert_eq!(s.ok(&["get", "/q/a", "-q"]), "1\n");
    // JSON is output, not a note: -q keeps it.
    assert!(json(&s.ok(&["put", "/q/b", "2", "-q", "-o", "json"]))["revision"].is_i64());
    // Errors are never silenced.
    let (_, err) = s.expect(1, &["-q", "--store", "sqlite:missing.db", "get", "/a"]);
    assert!(err.contains("missing.db"), "{err}");
}

/// Regression: `get --prefix` printed `key = value` with nothing to tell a key
/// holding ` = ` from a value holding it, or a real newline from `\n`.
#[test]
fn get_prefix_lines_read_back_unambiguously() {
    let s = Sandbox::new();
    s.ok(&["put", "/u/a = b", "c"]);
    s.ok(&["put", "/u/a", "b = c"]);
    s.run_with_stdin(&["put", "/u/n", "-"], b"two\nlines");
    s.ok(&["put", "/u/s", r"back\nslash"]);
    s.ok(&["put", "/u/j", r#""quoted""#]);
    let out = s.ok(&["get", "--prefix", "/u/"]);
    assert_eq!(
        out,
        concat!(
            "/u/a = b = c\n",
            "\"/u/a = b\" = c\n",
            "/u/j = \"\\\"quoted\\\"\"\n",
            "/u/n = \"two\\nlines\"\n",
            "/u/s = back\\nslash\n",
        )
    );
}
