//! The conveniences people expect: help with examples and the connection options
//! once, shell completions, manual pages, `strata edit` with compare-and-swap, and
//! `watch` of one key.

mod util;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use util::Sandbox;

#[test]
fn help_has_examples_and_shows_the_connection_options_only_at_the_top() {
    let s = Sandbox::new();
    let top = s.ok(&["--help"]);
    assert!(
        top.contains("--cacert") && top.contains("--endpoints"),
        "{top}"
    );
    assert!(top.contains("EXAMPLES:"), "{top}");
    for args in [
        &["get", "--help"][..],
        &["backup", "run", "--help"],
        &["migrate", "up", "-h"],
    ] {
        let help = s.ok(args);
        assert!(help.contains("EXAMPLES:\n  strata "), "{args:?}:\n{help}");
        assert!(!help.contains("--cacert <FILE>"), "{args:?}:\n{help}");
        assert!(!help.contains("--dial-timeout"), "{args:?}:\n{help}");
    }
    // Copy works on --from and --to: --store is not offered there.
    let copy = s.ok(&["copy", "--help"]);
    assert!(!copy.contains("--store <STORE>"), "{copy}");
    assert!(copy.contains("--from <STORE>"), "{copy}");
    // Hidden is not gone: the options still work after the command.
    let (_, err) = s.expect(
        1,
        &[
            "get",
            "/a",
            "--store",
            "etcd://127.0.0.1:1",
            "--dial-timeout",
            "1s",
            "--user",
            "root",
        ],
    );
    assert!(err.contains("127.0.0.1:1"), "{err}");
    // Positional arguments are described.
    assert!(s
        .ok(&["get", "--help"])
        .contains("<KEY>\n          The key"));
}

#[test]
fn completions_are_scripts_the_shell_accepts() {
    let s = Sandbox::new();
    let bash = s.ok(&["completions", "bash"]);
    assert!(
        bash.contains("strata") && bash.contains("migrate"),
        "{bash}"
    );
    std::fs::write(s.path("strata.bash"), &bash).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(s.path("strata.bash"))
        .output()
        .expect("bash is needed to check the completion script");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Loaded into bash, it completes a subcommand.
    let complete = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(strata back); COMP_CWORD=1; _strata strata back strata; echo \"${{COMPREPLY[@]}}\"",
            s.path("strata.bash").display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&complete.stdout).trim(), "backup");
    for shell in ["zsh", "fish"] {
        assert!(s.ok(&["completions", shell]).contains("backup"), "{shell}");
    }
    let (_, err) = s.expect(2, &["completions", "tcsh"]);
    assert!(err.contains("bash"), "{err}");
}

#[test]
fn man_pages_for_every_command() {
    let s = Sandbox::new();
    let page = s.ok(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH strata"),
        "{}",
        &page[..200.min(page.len())]
    );
    let dir = s.path("man1");
    s.ok(&["man", "--dir", dir.to_str().unwrap()]);
    for name in [
        "strata.1",
        "strata-get.1",
        "strata-backup-restore.1",
        "strata-migrate-up.1",
    ] {
        let text =
            std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.contains(".TH"), "{name}");
    }
    let restore = std::fs::read_to_string(dir.join("strata-backup-restore.1")).unwrap();
    assert!(restore.contains("EXAMPLES"), "{restore}");
}

/// `EDITOR` is run by the shell on the file, as git runs it.
fn edit(s: &Sandbox, editor: &str, key: &str) -> (i32, String, String) {
    let out = s
        .command(&["edit", key])
        .env("EDITOR", editor)
        .env_remove("VISUAL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn edit_writes_back_with_compare_and_swap() {
    let s = Sandbox::new();
    s.ok(&["put", "/cfg", r#"{"port": 80}"#]);
    let (code, out, _) = edit(&s, "sed -i s/80/8080/", "/cfg");
    assert_eq!(code, 0);
    assert!(out.starts_with("OK (revision "), "{out}");
    // The editor's final newline is not added to a value that had none.
    assert_eq!(s.ok(&["get", "/cfg"]), "{\"port\": 8080}\n");
    assert_eq!(
        s.ok(&["get", "/cfg", "-o", "json"]).matches("8080").count(),
        1
    );
    let history = s.ok(&["history", "/cfg"]);
    assert_eq!(history.lines().count(), 3, "{history}");

    // Unchanged: nothing written.
    let (code, _, err) = edit(&s, "true", "/cfg");
    assert_eq!(code, 0);
    assert!(err.contains("no change"), "{err}");
    assert_eq!(s.ok(&["history", "/cfg"]).lines().count(), 3);

    // The editor fails: nothing written.
    let (code, _, err) = edit(&s, "false", "/cfg");
    assert_eq!(code, 1);
    assert!(err.contains("nothing written"), "{err}");

    // A missing key starts empty and is created.
    let (code, _, _) = edit(&s, "sh -c 'printf fresh > \"$1\"' sh", "/new");
    assert_eq!(code, 0);
    assert_eq!(s.ok(&["get", "/new"]), "fresh\n");
}

#[test]
fn edit_never_overwrites_a_change_made_meanwhile() {
    let s = Sandbox::new();
    s.ok(&["put", "/cfg", "mine"]);
    // While "the editor" runs, another writer changes the key.
    let editor = format!(
        "sh -c '{} --store {} put /cfg theirs >/dev/null; printf edited > \"$1\"' sh",
        util::BIN,
        s.store
    );
    let (code, _, err) = edit(&s, &editor, "/cfg");
    assert_eq!(code, 3, "{err}");
    assert_eq!(s.ok(&["get", "/cfg"]), "theirs\n");
    let kept = err
        .split_whitespace()
        .find(|w| w.contains("strata-edit-"))
        .map(|w| w.trim_end_matches([':', ',']))
        .unwrap_or_else(|| panic!("no kept file named: {err}"));
    assert_eq!(std::fs::read_to_string(kept).unwrap(), "edited");
    std::fs::remove_file(kept).unwrap();
}

#[test]
fn watch_follows_one_key_or_with_prefix_a_subtree() {
    let s = Sandbox::new();
    s.ok(&["put", "/w/a", "0"]);
    let mut one = s
        .command(&["watch", "/w/a", "--count", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sub = s
        .command(&["watch", "--prefix", "/w/", "--count", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    s.ok(&["put", "/w/ab", "1"]);
    s.ok(&["put", "/w/a", "2"]);
    let line = BufReader::new(one.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    assert!(line.starts_with("PUT /w/a = 2 "), "{line}");
    assert!(one.wait().unwrap().success());
    let lines: Vec<String> = BufReader::new(sub.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    assert!(sub.wait().unwrap().success());
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("PUT /w/ab = 1 ") && lines[1].starts_with("PUT /w/a = 2 "));
    // The old form (a prefix without --prefix) still works, with a warning.
    let (out, err) = s.expect(0, &["watch", "/w/", "--from-rev", "1", "--count", "1"]);
    assert!(err.contains("--prefix"), "{err}");
    assert!(out.starts_with("PUT /w/a = 0"), "{out}");
    // A revision beyond the current one is said, not waited on in silence.
    let mut later = s
        .command(&["watch", "/w/a", "--from-rev", "1000"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let said = BufReader::new(later.stderr.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    later.kill().unwrap();
    later.wait().unwrap();
    assert!(
        said.contains("beyond the store's current revision"),
        "{said}"
    );
}
