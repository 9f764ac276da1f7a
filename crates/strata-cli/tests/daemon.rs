//! `mirror` and `backup watch` as services: `--metrics ADDR` scraped over plain HTTP
//! while a real etcd changes, stops and comes back (the metrics move, `/healthz` turns
//! 503 naming the store, then both recover), and `--log-format json` lines.
//!
//! Every wait is a bounded poll; nothing asserts how long anything took.

mod util;

use std::path::Path;

use strata_testkit::etcd::EtcdCluster;
use util::daemon::{assert_described, failing_naming, healthy, json_lines, put, value, Daemon};
use util::Sandbox;

#[test]
fn mirror_metrics_and_health_follow_a_source_outage_and_recover() {
    let mut etcd = EtcdCluster::start(1);
    let url = etcd.url();
    let s = Sandbox::new();
    put(&s, &url, "/d/a", "1");
    let rev = put(&s, &url, "/d/b", "2");
    let target = s.store.clone();
    let mirror = Daemon::start(
        &s,
        "mirror",
        &[
            "mirror",
            "--from",
            &url,
            "--to",
            &target,
            "--report-every",
            "300ms",
        ],
    );
    mirror.wait_for("healthy mirror", healthy);
    mirror.wait_for("applied revision", |d| {
        d.metric("strata_mirror_applied_revision") == rev
    });
    let text = mirror.metrics();
    assert_described(
        &text,
        &[
            ("strata_mirror_applied_revision", "gauge"),
            ("strata_mirror_source_revision", "gauge"),
            ("strata_mirror_lag_revisions", "gauge"),
            ("strata_mirror_lag_seconds", "gauge"),
            ("strata_mirror_errors_total", "counter"),
            ("strata_mirror_source_up", "gauge"),
        ],
    );
    assert_eq!(value(&text, "strata_mirror_lag_revisions"), 0.0);
    assert_eq!(value(&text, "strata_mirror_errors_total"), 0.0);
    s.ok(&["--store", &target, "get", "/d/b"]);

    // The source goes away: errors count, the source is down, /healthz names it.
    etcd.kill(0);
    mirror.wait_for("503 naming the source", |d| failing_naming(d, &url));
    mirror.wait_for("counted errors", |d| {
        d.metric("strata_mirror_errors_total") >= 1.0
    });
    assert_eq!(mirror.metric("strata_mirror_source_up"), 0.0);

    // It comes back and changes: healthy again, caught up, lag 0.
    etcd.restart(0);
    let rev2 = put(&s, &url, "/d/c", "3");
    mirror.wait_for("healthy again", healthy);
    mirror.wait_for("caught up after the outage", |d| {
        let text = d.metrics();
        value(&text, "strata_mirror_applied_revision") == rev2
            && value(&text, "strata_mirror_lag_revisions") == 0.0
            && value(&text, "strata_mirror_lag_seconds") == 0.0
            && value(&text, "strata_mirror_source_up") == 1.0
    });
    assert_eq!(s.ok(&["--store", &target, "get", "/d/c"]), "3\n");
    let log = mirror.stop();
    assert!(log.contains("mirror stopped at source revision"), "{log}");
    // The outage and the recovery were logged as such.
    assert!(
        log.contains(&format!("the source store {url} fails")),
        "{log}"
    );
    assert!(
        log.contains(&format!("the source store {url} works again")),
        "{log}"
    );
}

#[test]
fn mirror_lag_grows_while_the_target_is_down_and_returns_to_zero() {
    let source = EtcdCluster::start(1);
    let mut target = EtcdCluster::start(1);
    let (from, to) = (source.url(), target.url());
    let s = Sandbox::new();
    let mut rev = put(&s, &from, "/l/0", "0");
    let mirror = Daemon::start(
        &s,
        "mirror",
        &[
            "mirror",
            "--from",
            &from,
            "--to",
            &to,
            "--report-every",
            "300ms",
        ],
    );
    mirror.wait_for("caught up", |d| {
        healthy(d) && d.metric("strata_mirror_applied_revision") == rev
    });
    let applied = rev;
    target.kill(0);
    for i in 1..=3 {
        rev = put(&s, &from, &format!("/l/{i}"), "x");
    }
    mirror.wait_for("a lag of every revision written", |d| {
        let text = d.metrics();
        value(&text, "strata_mirror_source_revision") == rev
            && value(&text, "strata_mirror_applied_revision") == applied
            && value(&text, "strata_mirror_lag_revisions") == rev - applied
    });
    mirror.wait_for("a lag in seconds and counted errors", |d| {
        let text = d.metrics();
        value(&text, "strata_mirror_lag_seconds") > 0.0
            && value(&text, "strata_mirror_errors_total") >= 1.0
    });
    mirror.wait_for("503 naming the target", |d| failing_naming(d, &to));
    // The source was up all along.
    assert_eq!(mirror.metric("strata_mirror_source_up"), 1.0);

    target.restart(0);
    mirror.wait_for("caught up again", |d| {
        let text = d.metrics();
        value(&text, "strata_mirror_applied_revision") == rev
            && value(&text, "strata_mirror_lag_revisions") == 0.0
            && value(&text, "strata_mirror_lag_seconds") == 0.0
    });
    mirror.wait_for("healthy again", healthy);
    assert_eq!(s.ok(&["--store", &to, "get", "/l/3"]), "x\n");
    mirror.stop();
}

/// `git log -1 --format=%ct` of the repository: the independent reading of the time
/// of its newest commit.
fn head_time(repo: &Path) -> f64 {
    strata_testkit::git(repo, &["log", "-1", "--format=%ct"])
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn backup_watch_metrics_and_health_follow_a_store_outage_and_recover() {
    let mut etcd = EtcdCluster::start(1);
    let url = etcd.url();
    let s = Sandbox::with_store(&url);
    let rev = put(&s, &url, "/b/1", "one");
    let repo = s.path("repo.git");
    let r = repo.to_str().unwrap();
    let watch = Daemon::start(
        &s,
        "watch",
        &[
            "backup",
            "watch",
            "--repo",
            r,
            "--debounce",
            "0.2",
            "--check-every",
            "300ms",
        ],
    );
    watch.wait_for("the first commit", |d| {
        healthy(d) && d.metric("strata_backup_commits_total") == 1.0
    });
    let text = watch.metrics();
    assert_described(
        &text,
        &[
            ("strata_backup_last_commit_revision", "gauge"),
            ("strata_backup_last_commit_timestamp_seconds", "gauge"),
            ("strata_backup_commits_total", "counter"),
            ("strata_backup_errors_total", "counter"),
            ("strata_backup_source_up", "gauge"),
        ],
    );
    assert_eq!(value(&text, "strata_backup_last_commit_revision"), rev);
    assert_eq!(
        value(&text, "strata_backup_last_commit_timestamp_seconds"),
        head_time(&repo)
    );
    assert_eq!(value(&text, "strata_backup_errors_total"), 0.0);

    etcd.kill(0);
    watch.wait_for("503 naming the store", |d| failing_naming(d, &url));
    watch.wait_for("counted errors", |d| {
        d.metric("strata_backup_errors_total") >= 1.0
    });
    assert_eq!(watch.metric("strata_backup_source_up"), 0.0);

    etcd.restart(0);
    watch.wait_for("healthy again", healthy);
    let rev2 = put(&s, &url, "/b/2", "two");
    watch.wait_for("a new commit", |d| {
        let text = d.metrics();
        value(&text, "strata_backup_commits_total") == 2.0
            && value(&text, "strata_backup_last_commit_revision") == rev2
            && value(&text, "strata_backup_source_up") == 1.0
    });
    assert_eq!(
        watch.metric("strata_backup_last_commit_timestamp_seconds"),
        head_time(&repo)
    );
    let log = watch.stop();
    assert!(log.contains(&format!("the store {url} fails")), "{log}");
    assert!(
        log.contains(&format!("the store {url} works again")),
        "{log}"
    );
    s.ok(&["backup", "verify", "--repo", r]);
}

#[test]
fn log_format_json_writes_every_line_as_one_object_with_level_time_message_and_fields() {
    let s = Sandbox::new();
    put(&s, &s.store, "/j/a", "1");
    let other = format!("sqlite:{}", s.path("copy.db").display());
    let mirror = Daemon::start(
        &s,
        "mirror",
        &[
            "--log-format",
            "json",
            "mirror",
            "--from",
            &s.store,
            "--to",
            &other,
            "--report-every",
            "200ms",
        ],
    );
    mirror.wait_for("two status lines", |d| {
        d.log().matches("mirror: applied revision").count() >= 2
    });
    let log = mirror.stop();
    let lines = json_lines(&log, "mirror");
    let status = lines
        .iter()
        .find(|v| {
            v["message"]
                .as_str()
                .unwrap()
                .starts_with("mirror: applied")
        })
        .unwrap();
    assert_eq!(status["applied_revision"], 2, "{status}");
    assert_eq!(status["lag_revisions"], 0, "{status}");
    let last = lines.last().unwrap();
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .starts_with("mirror stopped"),
        "{last}"
    );
    assert!(lines.iter().any(|v| v["metrics_addr"].is_string()), "{log}");

    // backup watch: its notes on stderr, and its commit lines on stdout.
    let repo = s.path("repo.git");
    let watch = Daemon::start(
        &s,
        "watch",
        &[
            "--log-format",
            "json",
            "backup",
            "watch",
            "--repo",
            repo.to_str().unwrap(),
            "--debounce",
            "0.1",
        ],
    );
    watch.wait_for("a commit line", |d| d.output().contains("committed"));
    put(&s, &s.store, "/j/b", "2");
    watch.wait_for("a second commit line", |d| d.output().lines().count() >= 2);
    let commits = json_lines(&watch.output(), "backup watch stdout");
    assert!(commits
        .iter()
        .all(|v| v["commit"].is_string() && v["revision"].is_i64()));
    assert_eq!(commits.last().unwrap()["revision"], 3);
    let log = watch.stop();
    let notes = json_lines(&log, "backup watch stderr");
    assert!(
        notes.iter().any(|v| v["store"] == s.store.as_str()),
        "{log}"
    );

    // The final error of a command, with the format from the environment.
    let out = s
        .command(&[
            "mirror",
            "--from",
            "sqlite:/nonexistent/dir/x.db",
            "--to",
            "mem:",
        ])
        .env("STRATA_LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines = json_lines(&err, "an error");
    assert_eq!(lines.len(), 1, "{err}");
    assert_eq!(lines[0]["level"], "error");
    assert!(
        lines[0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot open the store"),
        "{err}"
    );
    assert!(lines[0]["causes"].is_array(), "{err}");
}
