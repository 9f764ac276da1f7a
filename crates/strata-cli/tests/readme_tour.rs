//! The README's tour, run as written: each line of its first `sh` block, by `sh`, in a
//! folder where the quick-start command loaded the example (the default store
//! `sqlite:./strata.db`, no server). A `# → TEXT` comment is the first line the command
//! prints (a trailing `…` makes it a prefix), `(exit N)` its exit code (else 0).

mod util;

use std::path::Path;

use util::{examples, BIN};

/// The tour's lines: the first ```sh block after "## A tour of the CLI".
fn tour() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md");
    let after = readme
        .split_once("## A tour of the CLI")
        .expect("the README has a tour")
        .1;
    let block = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .expect("the tour has an sh block")
        .0;
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// What a line's comment says it prints and how it exits.
fn expected(line: &str) -> (Option<String>, i32) {
    let comment = line.split_once("  # ").map_or("", |(_, c)| c.trim());
    let mut code = 0;
    let mut said = comment.to_owned();
    if let Some(i) = said.find("(exit ") {
        let digits: String = said[i + 6..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        code = digits.parse().expect("(exit N)");
        said.truncate(i);
    }
    let printed = said.strip_prefix("→ ").map(|text| {
        let text = text.split("   (").next().unwrap_or(text);
        text.trim().to_owned()
    });
    (printed, code)
}

#[test]
fn the_readme_tour_runs_as_written_on_the_quick_start_data() {
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |line: &str| {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(line)
            .current_dir(dir.path())
            .env("PATH", &path);
        for (name, _) in std::env::vars() {
            if name.starts_with("STRATA_") || name.starts_with("ETCDCTL_") {
                cmd.env_remove(name);
            }
        }
        cmd.stdin(std::process::Stdio::null()).output().unwrap()
    };
    // The quick-start command's load, on the default store.
    let quick_start = format!(
        "strata load {}",
        examples().join("sigilgate/expected.json").display()
    );
    let out = run(&quick_start);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = tour();
    assert!(lines.len() >= 15, "{lines:?}");
    let checked = lines.iter().filter(|l| expected(l).0.is_some()).count();
    assert!(checked >= 12, "only {checked} lines say what they print");
    for line in &lines {
        let out = run(line);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        let (printed, code) = expected(line);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{line}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        if let Some(want) = printed {
            let first = stdout
                .lines()
                .next()
                .or_else(|| stderr.lines().next())
                .unwrap_or("");
            let ok = match want.strip_suffix('…') {
                Some(prefix) => first.starts_with(prefix.trim_end_matches([',', ' '])),
                None => first == want,
            };
            assert!(
                ok,
                "{line}\nwanted: {want}\nprinted: {first}\nstderr: {stderr}"
            );
        }
    }
    // What the comments without a `→` describe: the dry run deleted nothing.
    let routes = run("strata get --prefix /sigilgate/routes/ --keys-only");
    assert_eq!(String::from_utf8_lossy(&routes.stdout).lines().count(), 28);
}

#[test]
fn a_tour_comment_reads_as_meant() {
    assert_eq!(
        expected("strata x   # → OK (revision 4)   (`-` reads stdin)"),
        (Some("OK (revision 4)".into()), 0)
    );
    assert_eq!(
        expected("strata x   # → compare failed: cas of /a, … (exit 3)"),
        (Some("compare failed: cas of /a, …".into()), 3)
    );
    assert_eq!(expected("strata x   # every key below"), (None, 0));
}
