//! A JSON file tree with what real trees hold by accident: links (a loop, one out of
//! the tree), a FIFO, invalid UTF-8 in a body and in a file name, 100 levels of
//! nesting, a 10 MB value, a file and a directory without read permission, a file
//! rewritten while the import reads it. Each is a clear error naming the file, with
//! nothing written, or works as documented; never a hang or a panic.

mod util;

use util::{examples, Sandbox};

/// A sandbox with the sigilgate tree copied into `tree/`, changed by `spoil`.
fn spoilt_tree(spoil: impl FnOnce(&std::path::Path)) -> Sandbox {
    let s = Sandbox::new();
    let tree = s.path("tree");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(examples().join("sigilgate/legacy"))
        .arg(&tree)
        .status()
        .unwrap();
    assert!(status.success());
    spoil(&tree);
    s
}

/// The sigilgate tree copied into the sandbox, changed by `spoil`; the import's exit
/// code and stderr, with a time limit so that a hang fails the test.
fn import(spoil: impl FnOnce(&std::path::Path)) -> (Sandbox, i32, String) {
    let s = spoilt_tree(spoil);
    let mapping = examples().join("sigilgate/mapping.toml");
    let mut child = s
        .command(&["import", "tree", "--mapping", mapping.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the import hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let code = out
        .status
        .code()
        .expect("exited, not killed by a signal (a panic aborts)");
    (s, code, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Refused: exit 1, the file named with the problem, nothing written.
fn refused(spoil: impl FnOnce(&std::path::Path), file: &str, problem: &str) {
    let (s, code, err) = import(spoil);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(file) && err.contains(problem), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (_, keys) = s.expect(1, &["get", "--prefix", "/", "--keys-only"]);
    assert!(
        keys.contains("no such file") || keys.contains("a read creates none"),
        "{keys}"
    );
}

#[test]
fn a_link_loop_is_refused() {
    refused(
        |t| std::os::unix::fs::symlink("..", t.join("users/loop")).unwrap(),
        "users/loop",
        "links to directories are not followed",
    );
}

/// Regression: a link to a file outside the tree was followed, so an import read
/// whatever it pointed at (here /etc/passwd).
#[test]
fn a_link_out_of_the_tree_is_refused_never_read() {
    refused(
        |t| std::os::unix::fs::symlink("/etc/passwd", t.join("users/999.json")).unwrap(),
        "users/999.json",
        "a link to a file outside the tree",
    );
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    refused(
        |t| {
            let fifo = t.join("users/998.json");
            assert!(std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success());
        },
        "users/998.json",
        "a FIFO",
    );
}

#[test]
fn invalid_utf8_in_a_body_or_a_name_is_named() {
    refused(
        |t| {
            std::fs::write(
                t.join("users/996.json"),
                b"{\"id\": 996, \"username\": \"\xff\xfe\"}",
            )
            .unwrap()
        },
        "users/996.json",
        "valid UTF-8",
    );
    let (_, code, err) = import(|t| {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"\xff.json");
        std::fs::write(t.join("users").join(name), b"{}").unwrap();
    });
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("users/\u{fffd}.json") && err.contains("not valid UTF-8"),
        "{err}"
    );
}

/// Documented handling: deep nesting and large values are data like any other.
#[test]
fn deep_nesting_and_a_10_mb_value_are_imported() {
    let (s, code, err) = import(|t| {
        let mut user: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(t.join("users/129.json")).unwrap())
                .unwrap();
        user["id"] = 994.into();
        user["username"] = "x".repeat(10_000_000).into();
        let mut deep = serde_json::json!("bottom");
        for _ in 0..100 {
            deep = serde_json::json!({ "n": deep });
        }
        user["nested"] = deep;
        std::fs::write(t.join("users/994.json"), serde_json::to_vec(&user).unwrap()).unwrap();
    });
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        s.ok(&["get", "/sigilgate/users/994/username"]).len(),
        10_000_001
    );
}

/// The import as root without the right to bypass file permissions (what a service
/// account meets): a file and a directory it may not read are named, nothing written.
fn import_without_override(spoil: impl FnOnce(&std::path::Path)) -> (Sandbox, i32, String) {
    let s = spoilt_tree(spoil);
    let mapping = examples().join("sigilgate/mapping.toml");
    // Root reads every file whatever its mode; without CAP_DAC_OVERRIDE and
    // CAP_DAC_READ_SEARCH the mode holds (setpriv, util-linux).
    let out = std::process::Command::new("setpriv")
        .arg("--bounding-set=-dac_override,-dac_read_search")
        .arg(util::BIN)
        .args(["import", "tree", "--mapping", mapping.to_str().unwrap()])
        .current_dir(s.dir.path())
        .env("STRATA_STORE", &s.store)
        .output()
        .expect("setpriv (apt-get install -y util-linux)");
    let code = out.status.code().expect("exited, not killed by a signal");
    (s, code, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn files_and_directories_without_read_permission_are_named() {
    use std::os::unix::fs::PermissionsExt;
    let no_access = |p: &std::path::Path| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o000)).unwrap()
    };
    let (s, code, err) = import_without_override(|t| no_access(&t.join("users/129.json")));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("users/129.json") && err.contains("Permission denied"),
        "{err}"
    );
    assert!(
        err.contains("nothing was written") && !err.contains("panicked"),
        "{err}"
    );
    assert!(
        !s.path("strata.db").exists()
            || s.run(&["get", "/sigilgate/users/129/status"]).status.code() != Some(0)
    );
    let (_, code, err) = import_without_override(|t| no_access(&t.join("nodes")));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("tree/nodes") && err.contains("Permission denied"),
        "{err}"
    );
}

/// Documented handling: each file is read once, whole; a file rewritten while the
/// import runs is imported as one of its versions, or (caught half-written) refused
/// as malformed JSON naming it. Never a panic, a hang, or a mix of the two versions.
#[test]
fn a_file_rewritten_during_the_import_is_one_version_or_named() {
    let s = spoilt_tree(|_| {});
    let file = s.path("tree").join("users/129.json");
    let original = std::fs::read_to_string(&file).unwrap();
    let other = original.replace("Heidi Klum-Ng", "Heidi Klum-Ng the Second");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, file) = (stop.clone(), file.clone());
        let bodies = [original.clone(), other.clone()];
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Truncate, then write: a reader may see it empty or half-written.
                std::fs::write(&file, &bodies[i % 2]).unwrap();
                i += 1;
            }
            i
        })
    };
    let mapping = examples().join("sigilgate/mapping.toml");
    let (mut imported, mut refused) = (0, 0);
    for _ in 0..10 {
        let out = s.run(&["import", "tree", "--mapping", mapping.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        match out.status.code() {
            Some(0) => {
                imported += 1;
                let name = s.ok(&["get", "/public/contacts/ivan@example.org/display_name"]);
                assert!(
                    name == "Heidi Klum-Ng\n" || name == "Heidi Klum-Ng the Second\n",
                    "{name:?}"
                );
            }
            Some(1) => {
                refused += 1;
                assert!(err.contains("users/129.json"), "{err}");
            }
            other => panic!("exit {other:?}: {err}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rewrites = writer.join().unwrap();
    assert!(
        rewrites > 10,
        "the file was rewritten only {rewrites} times"
    );
    assert_eq!(imported + refused, 10);
}
