//! The systemd units of `deploy/`: `systemd-analyze verify` accepts them (run on
//! copies whose ExecStart points at the binary just built, since verify wants it to
//! exist), their command lines parse, and no store URL or secret is on the command
//! line: those come from the EnvironmentFile, whose example names only variables the
//! CLI reads.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use util::BIN;

const UNITS: [(&str, &str); 2] = [
    ("strata-backup-watch.service", "backup-watch.env.example"),
    ("strata-mirror.service", "mirror.env.example"),
];

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(deploy().join(name)).unwrap_or_else(|e| panic!("deploy/{name}: {e}"))
}

/// `Key=value` lines of a unit (the last one of a key wins, as for systemd's
/// single-valued keys).
fn setting(unit: &str, key: &str) -> Option<String> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .next_back()
        .map(str::to_owned)
}

#[test]
fn systemd_analyze_verifies_the_units() {
    let analyze = strata_testkit::require_program("systemd-analyze", "apt-get install -y systemd");
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (unit, _) in UNITS {
        let text = read(unit);
        assert!(text.contains("ExecStart=/usr/local/bin/strata "), "{unit}");
        let path = dir.path().join(unit);
        std::fs::write(&path, text.replace("/usr/local/bin/strata", BIN)).unwrap();
        paths.push(path);
    }
    let out = Command::new(analyze)
        .arg("verify")
        .args(&paths)
        .output()
        .expect("run systemd-analyze");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // verify only warns (exit 0) about unknown keys and bad values: any line about
    // our units is a failure.
    let about_ours: Vec<&str> = said
        .lines()
        .filter(|l| UNITS.iter().any(|(unit, _)| l.contains(unit)))
        .collect();
    assert!(
        out.status.success() && about_ours.is_empty(),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn the_units_restart_on_failure_run_hardened_and_keep_secrets_off_the_command_line() {
    for (unit, env_file) in UNITS {
        let text = read(unit);
        let exec = setting(&text, "ExecStart").unwrap();
        for (key, want) in [
            ("Restart", "on-failure"),
            ("NoNewPrivileges", "yes"),
            ("User", "strata"),
            ("ProtectSystem", "strict"),
        ] {
            assert_eq!(setting(&text, key).as_deref(), Some(want), "{unit}: {key}");
        }
        let env_path = setting(&text, "EnvironmentFile").unwrap();
        assert!(env_path.starts_with("/etc/strata/"), "{unit}: {env_path}");
        assert!(exec.contains("--metrics 127.0.0.1:94"), "{unit}: {exec}");
        assert!(exec.contains("--log-format json"), "{unit}: {exec}");
        for secret in [
            "://",
            "--store",
            "--from",
            "--to",
            "--user",
            "--password",
            "$",
            "%",
        ] {
            assert!(!exec.contains(secret), "{unit}: {secret:?} in {exec}");
        }
        // The command line parses: clap checks every flag before it gets to --help.
        let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
        let out = Command::new(BIN)
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{unit}: {exec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Every variable of the example env file is one the command reads (clap's
        // help names each flag's variable; the connection options' variables are
        // listed once, on `strata --help`).
        let top = Command::new(BIN).arg("--help").output().unwrap();
        let help = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&top.stdout)
        );
        let example = read(env_file);
        let names: Vec<&str> = example
            .lines()
            .map(|l| l.trim().trim_start_matches('#').trim())
            .filter_map(|l| l.split_once('=').map(|(name, _)| name))
            .filter(|name| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .collect();
        assert!(names.contains(&"ETCDCTL_PASSWORD"), "{env_file}");
        for name in names {
            assert!(
                help.contains(&format!("[env: {name}")),
                "{env_file} sets {name}, which `{exec}` does not read:\n{help}"
            );
        }
    }
}
