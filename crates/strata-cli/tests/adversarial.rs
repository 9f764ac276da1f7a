//! Regressions found by adversarial trials (hostile inputs, odd files, extreme flags):
//! each test is named for what broke, and failed before its fix.

mod util;

use std::collections::BTreeMap;

use util::{examples, Sandbox};

type Data = BTreeMap<String, String>;

fn export(s: &Sandbox, prefix: &str) -> Data {
    serde_json::from_str(&s.ok(&["export", "--prefix", prefix])).unwrap()
}

fn load_sigilgate(s: &Sandbox) {
    s.ok(&[
        "load",
        examples().join("sigilgate/expected.json").to_str().unwrap(),
    ]);
}

#[test]
fn move_of_multi_field_objects_moves_every_field() {
    let s = Sandbox::new();
    load_sigilgate(&s);
    let nodes = export(&s, "/sigilgate/nodes/");
    assert!(
        nodes.len() > 9,
        "the example's nodes have several fields each"
    );
    let dir = s.path("migrations/nodes");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("0001_move.toml"),
        "description = 'nodes move out'\n[[steps]]\nop = 'move'\nfrom = '/sigilgate/nodes/{ip}'\nto = '/n/{ip}'\n",
    )
    .unwrap();
    let dir = s.path("migrations");
    let out = s.ok(&["migrate", "up", "--dir", dir.to_str().unwrap(), "--yes"]);
    assert!(!out.contains("0 object"), "{out}");
    let moved: Data = nodes
        .iter()
        .map(|(k, v)| (k.replacen("/sigilgate/nodes/", "/n/", 1), v.clone()))
        .collect();
    assert_eq!(export(&s, "/n/"), moved);
    assert!(export(&s, "/sigilgate/nodes/").is_empty());
    s.ok(&["migrate", "verify", "--dir", dir.to_str().unwrap()]);
}

/// A one-collection mapping whose `fields` is `filter`, over one record.
fn jq_import(s: &Sandbox, filter: &str) -> (String, String) {
    std::fs::create_dir_all(s.path("tree/u")).unwrap();
    std::fs::write(s.path("tree/u/1.json"), r#"{"id":"1","n":"a"}"#).unwrap();
    std::fs::write(
        s.path("m.toml"),
        format!("[collections.u]\npath = 'u/{{id}}.json'\nkey = 'id'\n[[emit]]\nfrom = 'u'\nat = '/u/{{id}}'\nfields = '{filter}'\n"),
    )
    .unwrap();
    s.expect(
        1,
        &["import", "tree", "--mapping", "m.toml", "--out", "out.json"],
    )
}

#[test]
fn unbounded_jq_is_stopped_by_its_limits() {
    let s = Sandbox::new();
    for (filter, limit) in [
        ("def f: f; f", "ran longer than 10 s"),
        ("def f: [f]; f", "used more than 1 GiB of memory"),
        ("def f: 1 + f; f", "used more than 1 GiB of memory"),
        (
            "{a: (\"x\" * 100000000)}",
            "gave more than 16 MiB of output",
        ),
        ("range(100000000) | {a: .}", "gave more than 10000 results"),
    ] {
        let (_, err) = jq_import(&s, filter);
        assert!(err.contains("tree/u/1.json"), "names the record: {err}");
        assert!(
            err.contains(&format!("{filter:?}")),
            "names the expression: {err}"
        );
        assert!(err.contains(limit), "{filter}: {err}");
        assert!(!s.path("out.json").exists());
    }
}

#[test]
fn a_looping_jq_step_stops_on_the_first_signal_and_releases_the_lock() {
    let s = Sandbox::new();
    s.ok(&["put", "/j/users/1/name", "a"]);
    let dir = s.path("migrations/users");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("0001_spin.toml"),
        "[[steps]]\nop = 'jq'\nobject = '/j/users/{id}'\nfilter = 'def f: f; f'\n",
    )
    .unwrap();
    let runner = s
        .command(&["migrate", "up", "--dir", "migrations", "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the runner holds its lock, i.e. is inside the step.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while s
        .ok(&[
            "get",
            "--prefix",
            "/_strata/migrations/users/lock",
            "--keys-only",
        ])
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the runner never took its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &runner.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    let out = runner.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "not stopped by the signal: {stderr}"
    );
    assert!(stderr.contains("was interrupted"), "{stderr}");
    assert!(stderr.contains("/j/users/1"), "names the object: {stderr}");
    assert!(
        s.ok(&["get", "--prefix", "/_strata/migrations/users/lock"])
            .is_empty(),
        "the lock was not released"
    );
}

#[test]
fn output_to_a_device_or_fifo_is_written_into_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let s = Sandbox::new();
    load_sigilgate(&s);
    s.ok(&["export", "--out", "/dev/null"]);
    let meta = std::fs::metadata("/dev/null").unwrap();
    assert!(meta.file_type().is_char_device(), "/dev/null was replaced");
    // A FIFO: a reader on the other end gets the snapshot; the FIFO stays a FIFO.
    let fifo = s.path("pipe");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    s.ok(&[
        "export",
        "--prefix",
        "/sigilgate/nodes/",
        "--out",
        fifo.to_str().unwrap(),
    ]);
    let got: Data = serde_json::from_str(&reader.join().unwrap()).unwrap();
    assert_eq!(got, export(&s, "/sigilgate/nodes/"));
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    // `-o -` is standard output, not a file named `-`.
    let out = s.ok(&["export", "--prefix", "/sigilgate/nodes/", "--out", "-"]);
    assert_eq!(serde_json::from_str::<Data>(&out).unwrap(), got);
    assert!(!s.path("-").exists());
    // A regular file is still replaced whole.
    std::fs::write(s.path("snap.json"), "old").unwrap();
    s.ok(&[
        "export",
        "--prefix",
        "/sigilgate/nodes/",
        "--out",
        "snap.json",
    ]);
    let file: Data =
        serde_json::from_str(&std::fs::read_to_string(s.path("snap.json")).unwrap()).unwrap();
    assert_eq!(file, got);
    // The import snapshot writer is the same one.
    let legacy = examples().join("sigilgate/legacy");
    let mapping = examples().join("sigilgate/mapping.toml");
    let out = s.ok(&[
        "import",
        legacy.to_str().unwrap(),
        "--mapping",
        mapping.to_str().unwrap(),
        "--out",
        "-",
    ]);
    assert!(out.starts_with('{'), "{out}");
    s.ok(&[
        "import",
        legacy.to_str().unwrap(),
        "--mapping",
        mapping.to_str().unwrap(),
        "--out",
        "/dev/null",
    ]);
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn a_fifo_in_an_import_tree_is_refused_not_read() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path("tree/u")).unwrap();
    std::fs::write(s.path("tree/u/1.json"), r#"{"id":"1"}"#).unwrap();
    let fifo = s.path("tree/u/2.json");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    std::fs::write(
        s.path("m.toml"),
        "[collections.u]\npath = 'u/{id}.json'\nkey = 'id'\n[[emit]]\nfrom = 'u'\nat = '/u/{id}'\nfields = '{id}'\n",
    )
    .unwrap();
    // Opening the FIFO would block forever: give the run 60 s.
    let mut child = s
        .command(&["import", "tree", "--mapping", "m.toml", "--dry-run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the import blocked on the FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2.json: is a FIFO (named pipe), not a regular file"),
        "{err}"
    );
}

#[test]
fn a_65535_character_segment_is_listed_without_a_panic() {
    let s = Sandbox::new();
    let long = "x".repeat(2000);
    s.ok(&["put", &format!("/k/{long}"), "v"]);
    s.ok(&["put", &format!("/k/{long}/below"), "v"]);
    let out = s.ok(&["ls", "/k"]);
    assert!(out.contains(&long), "{out}");
    // Over the key limit: a clear error, not a panic.
    let longer = "y".repeat(65_535);
    let (_, err) = s.expect(1, &["put", &format!("/k/{longer}"), "v"]);
    assert!(err.contains("keys are at most 2048 bytes"), "{err}");
    assert!(err.len() < 600, "quotes an excerpt: {err}");
}

#[test]
fn zero_or_out_of_range_numeric_flags_are_usage_errors() {
    let s = Sandbox::new();
    std::fs::write(s.path("snap.json"), "{\"/a\": \"1\"}").unwrap();
    for args in [
        &["--max-txn-ops", "0", "load", "snap.json"][..],
        &["load", "snap.json", "--batch", "0"],
        &["get", "/a", "--rev=-1"],
        &["get", "/a", "--limit=-5"],
        &["watch", "/a", "--count", "0"],
        &["--dial-timeout", "99999999999999999999s", "get", "/a"],
    ] {
        let (_, err) = s.expect(2, args);
        assert!(err.contains("error: invalid value"), "{args:?}: {err}");
    }
    let (_, err) = s.expect(
        2,
        &["import", "tree", "--mapping", "m.toml", "--batch", "0"],
    );
    assert!(err.contains("must be at least 1"), "{err}");
}

#[test]
fn temporary_pack_files_of_a_killed_backup_are_removed_by_the_next_run() {
    let s = Sandbox::new();
    load_sigilgate(&s);
    s.ok(&["backup", "run", "--repo", "repo"]);
    let git = s.path("repo/.git");
    let git = if git.exists() { git } else { s.path("repo") };
    // What a run killed while libgit2 wrote its pack and a loose object leaves behind.
    let pack = git.join("objects/pack/pack_git2_Xa1b2c");
    std::fs::write(&pack, vec![0u8; 4096]).unwrap();
    std::fs::create_dir_all(git.join("objects/ab")).unwrap();
    let loose = git.join("objects/ab/tmp_object_git2_Q9z");
    std::fs::write(&loose, b"x").unwrap();
    s.ok(&["put", "/sigilgate/users/1/status", "blocked"]);
    s.ok(&["backup", "run", "--repo", "repo"]);
    assert!(!pack.exists() && !loose.exists(), "leftovers stayed");
    let fsck = std::process::Command::new("git")
        .args(["-C", s.path("repo").to_str().unwrap(), "fsck", "--strict"])
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
}

#[test]
fn a_value_over_the_target_limit_stops_a_copy_before_its_first_write() {
    let cluster = strata_testkit::etcd::shared();
    let s = Sandbox::new();
    let mut data = Data::new();
    for i in 0..300 {
        data.insert(format!("/big/k{i:03}"), format!("v{i}"));
    }
    std::fs::write(s.path("data.json"), serde_json::to_string(&data).unwrap()).unwrap();
    s.ok(&["load", "data.json"]);
    std::fs::write(s.path("big"), vec![b'x'; 2 << 20]).unwrap();
    let put = s
        .command(&["put", "/big/k150", "-"])
        .stdin(std::fs::File::open(s.path("big")).unwrap())
        .output()
        .unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let to = cluster.url();
    let from = s.store.clone();
    let (_, err) = s.expect(
        1,
        &["copy", "--from", &from, "--to", &to, "--prefix", "/big/"],
    );
    assert!(err.contains("/big/k150"), "names the key: {err}");
    assert!(
        err.contains("2097152 bytes") && err.contains("at most"),
        "names the limit: {err}"
    );
    assert!(
        !err.contains("run the same command again"),
        "a re-run stops at the same key: {err}"
    );
    let target = Sandbox::with_store(&to);
    assert!(
        target
            .ok(&["get", "--prefix", "/big/", "--keys-only"])
            .is_empty(),
        "something was written before the limit was found"
    );
}

#[test]
fn non_utf8_standard_input_and_a_bad_snapshot_dump_say_why_once() {
    let s = Sandbox::new();
    let out = s.run_with_stdin(&["txn", "-"], b"{\"compare\": [], \"success\": [\xff]}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("standard input is not UTF-8 text (byte 29 is invalid)"),
        "{err}"
    );
    // A snapshot read as a dump names its file once, not "file: file: …".
    std::fs::write(s.path("bad.json"), "{\"/a\": 1}").unwrap();
    let (_, err) = s.expect(1, &["import", "bad.json", "--format", "snapshot"]);
    assert_eq!(err.matches("bad.json").count(), 1, "{err}");
    assert!(err.contains("the value of key /a is a number"), "{err}");
}
