//! Guards where a mistake destroys data: `del --prefix` above the threshold, `compact`
//! and `backup restore` say what will change and ask on a terminal, and are refused in
//! a script without `--yes`; `del --prefix --dry-run` lists and deletes nothing; a
//! prefix that reaches past a segment boundary is warned about. (That a key written
//! after the plan's read is never deleted is tested on the library, in strata-ops.)

mod util;

use util::Sandbox;

/// A sandbox with `n` keys under `/sigilgate/k…` and 2 under `/sigilgate-old/`.
fn sandbox(n: usize) -> Sandbox {
    let s = Sandbox::new();
    for i in 0..n {
        s.ok(&["put", &format!("/sigilgate/k{i:02}"), "v"]);
    }
    s.ok(&["put", "/sigilgate-old/a", "v"]);
    s.ok(&["put", "/sigilgate-old/b", "v"]);
    s
}

fn count(s: &Sandbox, prefix: &str) -> usize {
    s.ok(&["get", "--prefix", prefix, "--keys-only"])
        .lines()
        .count()
}

#[test]
fn a_large_prefix_delete_is_refused_in_a_script_without_yes() {
    let s = sandbox(12);
    let (_, err) = s.expect(1, &["del", "--prefix", "/sigilgate/"]);
    assert!(err.contains("refusing to delete 12 keys"), "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(count(&s, "/sigilgate/"), 12, "nothing was deleted");
    // Fed answers on a pipe are no terminal either: still refused.
    let out = s.run_with_stdin(&["del", "--prefix", "/sigilgate/"], b"y\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(count(&s, "/sigilgate/"), 12);

    let out = s.ok(&["del", "--prefix", "/sigilgate/", "--yes"]);
    assert!(out.starts_with("deleted 12 (revision"), "{out}");
    assert_eq!(count(&s, "/sigilgate/"), 0);
    assert_eq!(count(&s, "/sigilgate-old/"), 2, "the sibling is untouched");
}

#[test]
fn a_small_prefix_delete_needs_no_yes() {
    let s = sandbox(10);
    let out = s.ok(&["del", "--prefix", "/sigilgate/"]);
    assert!(out.starts_with("deleted 10"), "{out}");
}

#[test]
fn dry_run_lists_the_keys_and_deletes_nothing() {
    let s = sandbox(12);
    let out = s.ok(&["del", "--prefix", "/sigilgate/", "--dry-run"]);
    assert!(out.contains("delete /sigilgate/k00\n"), "{out}");
    assert!(out.contains("delete /sigilgate/k11\n"), "{out}");
    assert!(!out.contains("sigilgate-old"), "{out}");
    assert!(out.contains("would delete 12 keys"), "{out}");
    assert_eq!(count(&s, "/sigilgate/"), 12);
    let json = s.ok(&["del", "--prefix", "/sigilgate/", "--dry-run", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["count"], 12);
    assert_eq!(v["keys"].as_array().unwrap().len(), 12);
    // --dry-run is about a prefix delete.
    s.expect(2, &["del", "/sigilgate/k00", "--dry-run"]);
}

#[test]
fn a_prefix_that_crosses_a_segment_boundary_is_warned_about() {
    let s = sandbox(3);
    let (out, err) = s.expect(0, &["del", "--prefix", "/sigilgate", "--dry-run"]);
    assert!(err.contains("warning:"), "{err}");
    assert!(err.contains("(/sigilgate-old, /sigilgate)"), "{err}");
    assert!(err.contains("end it with /"), "{err}");
    assert!(out.contains("would delete 5 keys"), "{out}");
    // Ending at the boundary, or one segment only: no warning.
    let (_, err) = s.expect(0, &["del", "--prefix", "/sigilgate/", "--dry-run"]);
    assert!(!err.contains("warning"), "{err}");
    let (_, err) = s.expect(0, &["del", "--prefix", "/sigilgate-o", "--dry-run"]);
    assert!(!err.contains("warning"), "{err}");
    // The warning comes with a real delete too.
    let (out, err) = s.expect(0, &["del", "--prefix", "/sigilgate"]);
    assert!(err.contains("warning:"), "{err}");
    assert!(out.starts_with("deleted 5"), "{out}");
}

#[test]
fn the_empty_prefix_is_every_key_and_is_refused() {
    let s = sandbox(12);
    let (_, err) = s.expect(1, &["del", "--prefix", ""]);
    assert!(err.contains("refusing to delete 14 keys"), "{err}");
    assert_eq!(count(&s, "/"), 14);
}

#[test]
fn compact_is_refused_in_a_script_without_yes() {
    let s = sandbox(3);
    // Revisions 2..=6 written; compacting at 4 drops revisions 1 to 3.
    let (_, err) = s.expect(1, &["compact", "4"]);
    assert!(err.contains("refusing to compact without --yes"), "{err}");
    assert!(err.contains("3 revisions"), "{err}");
    assert!(err.contains("reads before revision 4 will fail"), "{err}");
    s.ok(&["get", "/sigilgate/k00", "--rev", "2"]);
    let out = s.ok(&["compact", "4", "--yes"]);
    assert!(out.contains("3 revisions dropped"), "{out}");
    let (_, err) = s.expect(1, &["get", "/sigilgate/k00", "--rev", "2"]);
    assert!(err.contains("compacted"), "{err}");
    // A revision already compacted has nothing to drop, so nothing to ask.
    let out = s.ok(&["compact", "4"]);
    assert!(out.contains("nothing to do"), "{out}");
    let out = s.ok(&["compact", "3"]);
    assert!(out.contains("compacted at revision 4 already"), "{out}");
}

#[test]
fn restore_is_refused_in_a_script_without_yes() {
    let s = sandbox(3);
    let repo = s.path("repo");
    let r = repo.to_str().unwrap();
    s.ok(&[
        "backup",
        "run",
        "--repo",
        r,
        "--author",
        "Ops <ops@example.org>",
    ]);
    s.ok(&["put", "/sigilgate/k00", "changed"]);
    s.ok(&["put", "/sigilgate/extra", "new"]);
    let (_, err) = s.expect(1, &["backup", "restore", "--repo", r, "/sigilgate/"]);
    assert!(err.contains("refusing to restore without --yes"), "{err}");
    assert!(err.contains("writes 1 key and deletes 1 key"), "{err}");
    assert_eq!(s.ok(&["get", "/sigilgate/k00"]).trim(), "changed");
    // The dry run needs no --yes; then --yes restores.
    let dry = s.ok(&["backup", "restore", "--repo", r, "/sigilgate/", "--dry-run"]);
    assert!(dry.contains("put /sigilgate/k00"), "{dry}");
    assert!(dry.contains("delete /sigilgate/extra"), "{dry}");
    let out = s.ok(&["backup", "restore", "--repo", r, "/sigilgate/", "--yes"]);
    assert!(out.starts_with("restored 1 key and deleted 1"), "{out}");
    assert_eq!(s.ok(&["get", "/sigilgate/k00"]).trim(), "v");
    // Nothing left to change: no question, so no --yes needed.
    s.ok(&["backup", "restore", "--repo", r, "/sigilgate/"]);
}

/// `strata ARGS` on a terminal (util-linux `script`), with `answer` typed after
/// `before_answer` ran; the terminal's output.
fn on_terminal(s: &Sandbox, args: &str, answer: &[u8], before_answer: impl FnOnce()) -> String {
    std::process::Command::new("script")
        .arg("--version")
        .output()
        .expect("`script` (util-linux; Debian package bsdutils) runs a command on a terminal: install it");
    let line = format!("{} {args}", util::BIN);
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(s.dir.path())
        .env("STRATA_STORE", &s.store)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The question is up once the plan is read and printed.
    std::thread::sleep(std::time::Duration::from_millis(800));
    before_answer();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(answer).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// On a terminal the question is asked; `y` deletes, anything else keeps the keys.
#[test]
fn a_terminal_is_asked() {
    let s = sandbox(12);
    let ask = |answer: &[u8]| on_terminal(&s, "del --prefix /sigilgate/", answer, || {});
    let out = ask(b"n\n");
    assert!(out.contains("12 keys under the prefix"), "{out}");
    assert!(out.contains("/sigilgate/k00"), "{out}");
    assert!(out.contains("nothing deleted"), "{out}");
    assert_eq!(count(&s, "/sigilgate/"), 12);
    let out = ask(b"y\n");
    assert!(out.contains("deleted 12"), "{out}");
    assert_eq!(count(&s, "/sigilgate/"), 0);
}

/// Regression: after the question, restore read the store again and applied that
/// new plan, not the one shown. Now a key changed while the question is open is a
/// conflict: nothing of the shown plan is written over it.
#[test]
fn a_restore_applies_the_plan_that_was_confirmed() {
    let s = sandbox(3);
    let repo = s.path("repo");
    let r = repo.to_str().unwrap();
    s.ok(&["backup", "run", "--repo", r]);
    s.ok(&["put", "/sigilgate/k00", "changed"]);
    let args = format!("backup restore --repo {r} /sigilgate/");
    let out = on_terminal(&s, &args, b"y\n", || {
        s.ok(&["put", "/sigilgate/k00", "changed again, while asked"]);
    });
    assert!(out.contains("put /sigilgate/k00"), "{out}");
    assert!(
        out.contains(
            "changed in the store since they were read: /sigilgate/k00; nothing was restored"
        ),
        "{out}"
    );
    assert_eq!(
        s.ok(&["get", "/sigilgate/k00"]).trim(),
        "changed again, while asked"
    );
    // Asked again, the new plan is shown and applied.
    let out = on_terminal(&s, &args, b"y\n", || {});
    assert!(out.contains("restored 1 key"), "{out}");
    assert_eq!(s.ok(&["get", "/sigilgate/k00"]).trim(), "v");
}
