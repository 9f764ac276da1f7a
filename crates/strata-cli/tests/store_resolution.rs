//! Which store a command uses and whether it may create it: reads never create a
//! SQLite file (a typo'd path is an error naming it and its source), writes and
//! `--create` do; `--store` > `STRATA_STORE` > `ETCDCTL_ENDPOINTS` > the default;
//! `strata status` on each backend, and on an etcd that does not answer.

mod util;

use std::process::{Command, Output, Stdio};

use strata_testkit::etcd::{self, EtcdCluster};
use strata_testkit::postgres;
use util::{Sandbox, BIN};

/// `strata ARGS` in `dir` with none of the store variables set.
fn bare(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("STRATA_STORE")
        .env_remove("ETCDCTL_ENDPOINTS")
        .stdin(Stdio::null())
        .args(args);
    cmd
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = cmd.output().expect("run strata");
    let (stdout, stderr) = text(&out);
    (out.status.code(), stdout, stderr)
}

#[test]
fn ls_in_an_empty_folder_fails_naming_the_default_path_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(&mut bare(dir.path(), &["ls", "/"]));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("sqlite:./strata.db") && stderr.contains("the default"),
        "{stderr}"
    );
    assert!(stderr.contains("--create"), "the hint: {stderr}");
    assert!(!dir.path().join("strata.db").exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_typo_in_store_fails_naming_the_flag_and_creates_nothing() {
    let s = Sandbox::new();
    s.ok(&["put", "/a", "1"]);
    let typo = format!("sqlite:{}", s.path("stata.db").display());
    let (code, _, stderr) = run(s
        .command(&["--store", &typo, "get", "/a"])
        .stdin(Stdio::null()));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("stata.db") && stderr.contains("--store"),
        "{stderr}"
    );
    assert!(!s.path("stata.db").exists());
    // Through STRATA_STORE, the message names the variable.
    let mut cmd = s.command(&["ls", "/"]);
    cmd.env("STRATA_STORE", &typo).stdin(Stdio::null());
    let (code, _, stderr) = run(&mut cmd);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("STRATA_STORE"), "{stderr}");
    assert!(!s.path("stata.db").exists());
}

#[test]
fn put_creates_the_store_and_create_lets_a_read_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(&mut bare(dir.path(), &["put", "/a", "1"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(dir.path().join("strata.db").exists());
    let (code, stdout, _) = run(&mut bare(dir.path(), &["get", "/a"]));
    assert_eq!((code, stdout.trim()), (Some(0), "1"));

    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(&mut bare(dir.path(), &["--create", "ls", "/"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("nothing under /"), "{stderr}");
    assert!(dir.path().join("strata.db").exists());
}

#[test]
fn an_error_after_opening_names_the_store() {
    let s = Sandbox::new();
    s.ok(&["put", "/a", "1"]);
    let (_, stderr) = s.expect(1, &["compact", "1000"]);
    assert!(stderr.contains(&s.store), "{stderr}");
    assert_eq!(stderr.matches(&s.store).count(), 1, "said once: {stderr}");
}

#[test]
fn etcdctl_endpoints_is_used_without_strata_store_and_loses_to_it() {
    let cluster = etcd::shared();
    let key = format!("/resolution/{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(bare(dir.path(), &["put", &key, "from-env"])
        .env("ETCDCTL_ENDPOINTS", cluster.client_urls()));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!dir.path().join("strata.db").exists(), "went to etcd");
    assert_eq!(
        etcd::etcdctl(cluster, &["get", &key, "--print-value-only"]).trim(),
        "from-env"
    );

    // STRATA_STORE wins: the key is not in that (new) SQLite store.
    let local = format!("sqlite:{}", dir.path().join("local.db").display());
    let (code, stdout, stderr) = run(bare(dir.path(), &["--create", "get", &key])
        .env("ETCDCTL_ENDPOINTS", cluster.client_urls())
        .env("STRATA_STORE", &local));
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    let (code, stdout, _) = run(bare(dir.path(), &["status", "-o", "json"])
        .env("ETCDCTL_ENDPOINTS", cluster.client_urls())
        .env("STRATA_STORE", &local));
    assert_eq!(code, Some(0));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["source"], "STRATA_STORE");
    assert_eq!(report["backend"], "sqlite");

    // --endpoints on the command line, and --store over it.
    let (code, stdout, _) = run(&mut bare(
        dir.path(),
        &["--endpoints", &cluster.client_urls(), "get", &key],
    ));
    assert_eq!((code, stdout.trim()), (Some(0), "from-env"));
    let (code, _, _) = run(&mut bare(
        dir.path(),
        &[
            "--endpoints",
            &cluster.client_urls(),
            "--store",
            &local,
            "get",
            &key,
        ],
    ));
    assert_eq!(code, Some(3));
}

#[test]
fn status_of_sqlite_says_revision_keys_version_and_source() {
    let s = Sandbox::new();
    s.ok(&["put", "/a", "1"]);
    s.ok(&["put", "/b", "2"]);
    let out = s.ok(&["status"]);
    assert!(
        out.contains(&s.store) && out.contains("(from STRATA_STORE)"),
        "{out}"
    );
    assert!(
        out.contains("reachable: yes") && out.contains("revision:  3"),
        "{out}"
    );
    assert!(
        out.contains("keys:      2") && out.contains("version:   sqlite 3."),
        "{out}"
    );
    let report: serde_json::Value = serde_json::from_str(&s.ok(&["status", "-o", "json"])).unwrap();
    assert_eq!(report["revision"], 3);
    assert_eq!(report["keys"], 2);
    assert_eq!(report["reachable"], true);
    // A missing file: not reachable, exit 1, and still no file.
    let missing = format!("sqlite:{}", s.path("missing.db").display());
    let (stdout, stderr) = s.expect(1, &["--store", &missing, "status"]);
    assert!(
        stdout.contains("reachable: no") && stderr.contains("missing.db"),
        "{stderr}"
    );
    assert!(!s.path("missing.db").exists());
}

#[test]
fn status_of_postgres_reports_the_server_version() {
    let pg = postgres::shared();
    let schema = format!("status{}", std::process::id());
    let s = Sandbox::with_store(&pg.url(&schema));
    s.ok(&["put", "/a", "1"]);
    let report: serde_json::Value = serde_json::from_str(&s.ok(&["status", "-o", "json"])).unwrap();
    assert_eq!(report["backend"], "postgres");
    assert_eq!(report["reachable"], true);
    assert_eq!(report["keys"], 1);
    assert_eq!(report["revision"], 2);
    let version = report["version"].as_str().unwrap();
    assert!(
        version.chars().next().unwrap().is_ascii_digit(),
        "{version}"
    );
    let store = report["store"].as_str().unwrap();
    assert!(
        store.starts_with("postgres://") && store.ends_with(&schema),
        "{store}"
    );
}

#[test]
fn status_of_a_three_node_etcd_shows_each_endpoint_and_one_leader() {
    let cluster = EtcdCluster::start(3);
    let s = Sandbox::with_store(&cluster.url());
    s.ok(&["put", "/a", "1"]);
    let report: serde_json::Value = serde_json::from_str(&s.ok(&["status", "-o", "json"])).unwrap();
    assert_eq!(report["backend"], "etcd");
    assert_eq!(report["reachable"], true);
    assert_eq!(report["keys"], 1);
    let endpoints = report["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 3, "{report}");
    assert!(endpoints.iter().all(|e| e["healthy"] == true), "{report}");
    let leaders = endpoints.iter().filter(|e| e["leader"] == true).count();
    assert_eq!(leaders, 1, "{report}");
    assert!(
        report["version"].as_str().unwrap().starts_with('3'),
        "{report}"
    );
    let text = s.ok(&["status"]);
    for endpoint in cluster.endpoints() {
        assert!(text.contains(&endpoint), "{text}");
    }
}

#[test]
fn status_of_an_unreachable_etcd_exits_1() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = Sandbox::with_store(&format!("etcd://127.0.0.1:{port}"));
    let (stdout, stderr) = s.expect(1, &["--dial-timeout", "1s", "status"]);
    assert!(stdout.contains("reachable: no"), "{stdout}");
    assert!(
        stderr.contains("not reachable") && stderr.contains(&port.to_string()),
        "{stderr}"
    );
}
