//! A running etcd v2 keyspace as a source (`etcd2://`): a real etcd 3.4 with
//! `--enable-v2`, filled through the v2 HTTP API the way the services that still use
//! v2 write it, then copied into SQLite, etcd v3 and PostgreSQL, read directly,
//! refused as a target, and mirrored into etcd v3 while a writer outruns v2's
//! 1,000-event history; etcdctl on the v3 target is the independent checker.

mod util;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_testkit::etcd::{etcdctl, EtcdCluster, TlsFiles};
use strata_testkit::etcd_v2::V2Writer;
use strata_testkit::postgres;
use util::{examples, Sandbox};

/// Every leaf of the broker's v2 dump, set through the v2 API.
fn fill_with_the_broker_example(v2: &mut V2Writer) {
    fn leaves(node: &Value, out: &mut Vec<(String, String)>) {
        if node["dir"].as_bool() == Some(true) {
            for n in node["nodes"].as_array().into_iter().flatten() {
                leaves(n, out);
            }
        } else if let (Some(k), Some(v)) = (node["key"].as_str(), node["value"].as_str()) {
            out.push((k.to_owned(), v.to_owned()));
        }
    }
    let dump: Value = serde_json::from_str(
        &std::fs::read_to_string(examples().join("etcd-v2-broker/etcd-v2-dump.json")).unwrap(),
    )
    .unwrap();
    let mut all = Vec::new();
    leaves(&dump["node"], &mut all);
    assert!(all.len() > 20, "the example has {} leaves", all.len());
    for (k, v) in all {
        v2.set(&k, &v, None);
    }
}

fn expected() -> BTreeMap<String, String> {
    serde_json::from_str(
        &std::fs::read_to_string(examples().join("etcd-v2-broker/expected.json")).unwrap(),
    )
    .unwrap()
}

fn export(s: &Sandbox, store: &str) -> BTreeMap<String, String> {
    serde_json::from_str(&s.ok(&["--store", store, "export"])).unwrap()
}

/// The client address of a one-member test cluster.
fn addr(cluster: &EtcdCluster) -> String {
    cluster.endpoints()[0].clone()
}

#[test]
fn a_live_v2_keyspace_copies_into_every_backend_and_reads_like_a_store() {
    let v2 = EtcdCluster::start_v2(None);
    let mut writer = V2Writer::new(&addr(&v2));
    fill_with_the_broker_example(&mut writer);
    // Hidden keys are not part of what v2 lists, so they are not copied.
    writer.set("/_hidden/x", "never listed", None);
    let source = format!("etcd2://{}", addr(&v2));
    let s = Sandbox::new();
    let expected = expected();

    let v3 = EtcdCluster::start(1);
    let pg = postgres::shared();
    let targets = [
        format!("sqlite:{}", s.path("copy.db").display()),
        v3.url(),
        pg.url(&format!("v2src{}", std::process::id())),
    ];
    for target in &targets {
        let out = s.ok(&["copy", "--from", &source, "--to", target]);
        assert!(out.contains("verified"), "{target}: {out}");
        assert_eq!(export(&s, target), expected, "{target}");
        assert!(
            s.run(&["diff", "--from", &source, "--to", target])
                .status
                .success(),
            "{target}: diff not empty"
        );
    }
    // etcdctl sees the same keys and values in the v3 copy.
    let dump = strata_testkit::etcd::etcdctl_dump(&v3, "");
    assert_eq!(
        dump.into_iter()
            .map(|(k, (v, _))| (k, v))
            .collect::<BTreeMap<_, _>>(),
        expected
    );

    // Read directly, like any store.
    assert_eq!(export(&s, &source), expected);
    // An answer over the spill size is streamed to a temporary file and its leaves
    // kept in a temporary table: the same keys, by copy, export and diff.
    let spilled = |args: &[&str]| {
        let out = s
            .command(args)
            .env("STRATA_V2_SPILL_BYTES", "512")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let from_disk: BTreeMap<String, String> =
        serde_json::from_str(&spilled(&["--store", &source, "export"])).unwrap();
    assert_eq!(from_disk, expected);
    let disk_copy = format!("sqlite:{}", s.path("spilled.db").display());
    assert!(spilled(&["copy", "--from", &source, "--to", &disk_copy]).contains("verified"));
    assert_eq!(export(&s, &disk_copy), expected);
    spilled(&["diff", "--from", &source, "--to", &targets[1]]);
    let (key, value) = expected.iter().next().unwrap();
    assert_eq!(
        s.ok(&["--store", &source, "get", key]),
        format!("{value}\n")
    );
    let ls = s.ok(&["--store", &source, "ls", "/"]);
    assert!(ls.contains("routing/"), "{ls}");
    let inferred = s.ok(&["--store", &source, "schema", "infer"]);
    assert!(!inferred.trim().is_empty());

    // A source, never a target: refused, nothing written.
    let out = s.run(&["--store", &source, "put", "/x", "y"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("read") && err.contains("source only"), "{err}");
    let (status, _, _) = writer.request("GET", "/x", "", "");
    assert_eq!(status, 404);

    // A key with a TTL: copied without it (with a note), or left out.
    writer.set("/routing/lease-holder", "me", Some(300));
    let out = s.command(&["--store", &source, "export"]).output().unwrap();
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(note.contains("1 key(s)") && note.contains("TTL"), "{note}");
    let with: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        with.get("/routing/lease-holder").map(String::as_str),
        Some("me")
    );
    let without: BTreeMap<String, String> =
        serde_json::from_str(&s.ok(&["--store", &source, "--v2-ttl", "skip", "export"])).unwrap();
    assert_eq!(without, expected);
}

#[test]
fn a_v2_keyspace_over_https_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsFiles::generate(dir.path());
    let v2 = EtcdCluster::start_v2(Some(tls));
    let tls = v2.tls().unwrap();
    let (ca, cert, key) = (
        tls.ca.to_str().unwrap(),
        tls.cert.to_str().unwrap(),
        tls.key.to_str().unwrap(),
    );
    // Written with curl, which speaks TLS with the same files.
    let url = format!("https://{}/v2/keys/tls/probe", addr(&v2));
    let put = std::process::Command::new("curl")
        .args([
            "-sf",
            "--cacert",
            ca,
            "--cert",
            cert,
            "--key",
            key,
            "-XPUT",
            &url,
            "-d",
            "value=over tls",
        ])
        .output()
        .expect("curl");
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let s = Sandbox::new();
    let source = format!("etcd2://{}", addr(&v2));
    let got = s.ok(&[
        "--store",
        &source,
        "--cacert",
        ca,
        "--cert",
        cert,
        "--key",
        key,
        "get",
        "/tls/probe",
    ]);
    assert_eq!(got, "over tls\n");
    // Without the client certificate the server refuses the handshake: said, not hung.
    let out = s.run(&[
        "--store",
        &source,
        "--cacert",
        ca,
        "--dial-timeout",
        "2s",
        "get",
        "/tls/probe",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("etcd2") && !err.contains("panicked"), "{err}");
}

/// `strata mirror` from the v2 source, its `--status` lines read as they come.
struct Mirror {
    child: Child,
    lines: std::sync::mpsc::Receiver<Value>,
}

impl Mirror {
    fn start(s: &Sandbox, source: &str, target: &str) -> Mirror {
        Mirror::start_with(s, source, target, &[], &[])
    }

    /// [`Mirror::start`] with more flags and environment variables.
    fn start_with(
        s: &Sandbox,
        source: &str,
        target: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Mirror {
        let mut args = vec![
            "mirror",
            "--from",
            source,
            "--to",
            target,
            "--status",
            "--report-every",
            "1s",
        ];
        args.extend_from_slice(extra);
        let mut child = s
            .command(&args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(s.path("mirror.log")).unwrap())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        Mirror { child, lines }
    }

    /// The status lines so far.
    fn statuses(&self) -> Vec<Value> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_no_diff(s: &Sandbox, source: &str, target: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = s.run(&["diff", "--from", source, "--to", target]);
        if out.status.success() {
            return;
        }
        let log = std::fs::read_to_string(s.path("mirror.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        assert!(
            Instant::now() < deadline,
            "{what}: the mirror never caught up: {}\nthe mirror's log, last lines first:\n{}",
            String::from_utf8_lossy(&out.stdout),
            tail.join("\n")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// 5,000 v2 changes of every kind, far faster than the mirror applies them one by
/// one, so the watch falls more than v2's 1,000 events behind and the mirror must
/// copy the difference; the end state matches, and etcdctl on the target agrees.
#[test]
fn a_mirror_keeps_up_with_a_writer_faster_than_the_v2_history() {
    let v2 = EtcdCluster::start_v2(None);
    let v3 = EtcdCluster::start(1);
    let mut writer = V2Writer::new(&addr(&v2));
    fill_with_the_broker_example(&mut writer);
    let source = format!("etcd2://{}", addr(&v2));
    let target = v3.url();
    let s = Sandbox::new();
    // Every read of the mirror's (its copies of the difference too) is kept on disk.
    let mut mirror =
        Mirror::start_with(&s, &source, &target, &[], &[("STRATA_V2_SPILL_BYTES", "1")]);
    wait_for_no_diff(&s, &source, &target, "the copy");
    let log = std::fs::read_to_string(s.path("mirror.log")).unwrap();
    assert!(
        log.contains("temporary file"),
        "the mirror read into memory: {log}"
    );

    // Every kind of change, 5,000 in all: set, CAS, delete, CAD, keys that expire,
    // whole directories deleted.
    let mut changes = 0;
    let mut round = 0;
    while changes < 5_000 {
        let dir = format!("/load/r{round}");
        for i in 0..20 {
            writer.set(&format!("{dir}/k{i}"), "v0", None);
        }
        for i in 0..20 {
            writer.cas(&format!("{dir}/k{i}"), "v0", "v1");
        }
        for i in 0..5 {
            writer.delete(&format!("{dir}/k{i}"));
        }
        for i in 5..10 {
            writer.cad(&format!("{dir}/k{i}"), "v1");
        }
        writer.set(&format!("/load/expiring/e{round}"), "soon gone", Some(1));
        writer.set("/routing/counter", &round.to_string(), None);
        changes += 20 + 20 + 5 + 5 + 2;
        if round % 3 == 2 {
            writer.rmdir(&format!("/load/r{}", round - 1));
            changes += 1;
        }
        round += 1;
    }
    // The TTL keys expire (v2 expires them within a second or so of their TTL).
    std::thread::sleep(Duration::from_secs(3));
    wait_for_no_diff(&s, &source, &target, "the writer's changes");
    let statuses = mirror.statuses();
    let recopies = statuses
        .iter()
        .filter_map(|v| v["recopies"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(
        recopies >= 1,
        "the writer never outran the v2 history (no copy of the difference): {:?}",
        statuses.last()
    );
    // etcdctl on the target: what strata reads from the v2 source, no more.
    let on_v3: BTreeMap<String, String> = strata_testkit::etcd::etcdctl_dump(&v3, "")
        .into_iter()
        .map(|(k, (v, _))| (k, v))
        .filter(|(k, _)| !k.starts_with("/_strata/"))
        .collect();
    assert_eq!(on_v3, export(&s, &source));
    assert!(!on_v3.keys().any(|k| k.starts_with("/load/expiring/")));
    assert!(!on_v3.keys().any(|k| k.starts_with("/load/r1/")));
    assert_eq!(on_v3["/load/r0/k19"], "v1");

    // Killed with SIGKILL, changed while down, restarted: it resumes from its
    // checkpoint without copying, applying exactly the changes it missed.
    let _ = mirror.child.kill();
    let _ = mirror.child.wait();
    let before = etcdctl(
        &v3,
        &["get", "/_strata/mirror/default", "--print-value-only"],
    );
    assert!(before.trim().parse::<i64>().is_ok(), "{before}");
    for i in 0..25 {
        writer.set(&format!("/after/k{i}"), "new", None);
    }
    let again = Mirror::start(&s, &source, &target);
    wait_for_no_diff(&s, &source, &target, "the restart");
    std::thread::sleep(Duration::from_millis(1500));
    let last = again.statuses().pop().expect("a status line");
    assert_eq!(last["copied"], 0, "the restart copied again: {last}");
    assert_eq!(last["changes_applied"], 25, "a gap or a repeat: {last}");
}

/// v2's own users: with authentication on and the guest role's rights revoked, a read
/// without a user is refused with the way round, and one with the user succeeds; the
/// password never shows.
#[test]
fn a_v2_keyspace_with_authentication_on() {
    let v2 = EtcdCluster::start_v2(None);
    let base = format!("http://{}/v2", addr(&v2));
    let mut writer = V2Writer::new(&addr(&v2));
    writer.set("/guarded/k", "v", None);
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .arg("-sf")
            .args(args)
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    curl(&[
        "-XPUT",
        &format!("{base}/auth/users/root"),
        "-d",
        r#"{"user":"root","password":"rootpw"}"#,
    ]);
    curl(&["-XPUT", &format!("{base}/auth/enable")]);
    curl(&[
        "-u",
        "root:rootpw",
        "-XPUT",
        &format!("{base}/auth/roles/guest"),
        "-d",
        r#"{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}"#,
    ]);
    let s = Sandbox::new();
    let source = format!("etcd2://{}", addr(&v2));
    let out = s.run(&["--store", &source, "get", "/guarded/k"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("HTTP 401") && err.contains("--user"), "{err}");
    assert_eq!(
        s.ok(&[
            "--store",
            &source,
            "--user",
            "root:rootpw",
            "get",
            "/guarded/k"
        ]),
        "v\n"
    );
    let with_url = format!("etcd2://root:wrong@{}", addr(&v2));
    let out = s.run(&["--store", &with_url, "get", "/guarded/k"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HTTP 401") && !err.contains("wrong"), "{err}");
}

/// The lease a key of the v3 target is attached to (0: none), and that lease's TTL
/// left, as etcdctl reports them.
fn lease_of(v3: &EtcdCluster, key: &str) -> (i64, i64) {
    let got: Value = serde_json::from_str(&etcdctl(v3, &["get", key, "-w", "json"])).unwrap();
    let lease = got["kvs"][0]["lease"].as_i64().unwrap_or(0);
    if lease == 0 {
        return (0, 0);
    }
    let hex = format!("{lease:x}");
    let ttl: Value =
        serde_json::from_str(&etcdctl(v3, &["lease", "timetolive", &hex, "-w", "json"])).unwrap();
    (lease, ttl["ttl"].as_i64().unwrap())
}

/// `--v2-ttl lease`: each TTL key is written into etcd v3 attached to a lease of the
/// TTL it has left (by copy and by the mirror), so it expires there by itself; a
/// target without leases is refused before anything is written.
#[test]
fn ttl_keys_are_carried_as_v3_leases() {
    let v2 = EtcdCluster::start_v2(None);
    let v3 = EtcdCluster::start(1);
    let mut writer = V2Writer::new(&addr(&v2));
    writer.set("/svc/plain", "stays", None);
    writer.set("/svc/long", "a while", Some(120));
    writer.set("/svc/short", "soon gone", Some(6));
    let source = format!("etcd2://{}", addr(&v2));
    let s = Sandbox::new();

    let sqlite = format!("sqlite:{}", s.path("no-leases.db").display());
    let out = s.run(&[
        "--v2-ttl", "lease", "copy", "--from", &source, "--to", &sqlite,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no leases") && err.contains("--v2-ttl copy"),
        "{err}"
    );
    assert_eq!(
        export(&s, &sqlite),
        BTreeMap::new(),
        "written before the refusal"
    );

    let out = s.ok(&[
        "--v2-ttl",
        "lease",
        "copy",
        "--from",
        &source,
        "--to",
        &v3.url(),
    ]);
    assert!(out.contains("2 keys written with a lease"), "{out}");
    assert_eq!(lease_of(&v3, "/svc/plain"), (0, 0));
    let (long, left) = lease_of(&v3, "/svc/long");
    assert!(
        long != 0 && left > 100 && left <= 120,
        "lease {long}: {left} s left"
    );
    let (short, left) = lease_of(&v3, "/svc/short");
    assert!(
        short != 0 && short != long && left <= 6,
        "lease {short}: {left} s left"
    );
    // Gone from the target by itself (no mirror runs), as from the source.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !etcdctl(&v3, &["get", "/svc/short"]).trim().is_empty() {
        assert!(
            Instant::now() < deadline,
            "/svc/short never expired in the target"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The source expires it too (v2 checks its TTLs about every half second, so it may
    // be the later of the two).
    while writer.request("GET", "/svc/short", "", "").0 != 404 {
        assert!(
            Instant::now() < deadline,
            "/svc/short never expired in the source"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The mirror gives a key set with a TTL later its lease too, and a refreshed
    // key a new one.
    let _mirror = Mirror::start_with(&s, &source, &v3.url(), &["--v2-ttl", "lease"], &[]);
    wait_for_no_diff(&s, &source, &v3.url(), "the copy");
    writer.set("/svc/later", "leased", Some(60));
    writer.set("/svc/long", "a while", Some(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (later, _) = lease_of(&v3, "/svc/later");
        let (renewed, left) = lease_of(&v3, "/svc/long");
        if later != 0 && renewed != 0 && left <= 30 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mirror gave no lease to the changed keys"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(lease_of(&v3, "/svc/plain"), (0, 0));
}
