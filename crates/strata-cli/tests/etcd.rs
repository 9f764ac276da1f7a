//! The `strata` binary against real etcd servers, checked with the real `etcdctl`:
//! round trips, limits, watch, and loads that survive the loss of a cluster member.

mod util;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use strata_testkit::etcd::{etcdctl, etcdctl_dump, EtcdCluster};
use util::{examples, Sandbox};

#[test]
fn sigilgate_round_trip_checked_with_etcdctl() {
    let cluster = EtcdCluster::start(1);
    let s = Sandbox::with_store(&cluster.url());
    let path = examples().join("sigilgate/expected.json");
    let expected_text = std::fs::read_to_string(&path).unwrap();
    let out = s.ok(&["load", path.to_str().unwrap()]);
    assert!(out.starts_with("loaded 356 keys: 356 changed"), "{out}");
    // 356 keys in transactions of at most 128.
    assert!(out.contains("in 3 transactions"), "{out}");
    assert_eq!(s.ok(&["export"]), expected_text);
    let expected: BTreeMap<String, String> = serde_json::from_str(&expected_text).unwrap();
    let seen = etcdctl_dump(&cluster, "/");
    assert_eq!(seen.len(), expected.len());
    for (key, value) in &expected {
        assert_eq!(
            seen.get(key),
            Some(&(value.clone(), 1)),
            "etcdctl disagrees at {key}"
        );
    }
    assert!(s
        .ok(&["load", path.to_str().unwrap()])
        .contains("0 changes"));
    assert_eq!(s.ok(&["ls"]), "public/     61 keys\nsigilgate/  295 keys\n");
}

#[test]
fn kv_commands_and_exit_codes_on_etcd() {
    let cluster = EtcdCluster::start(1);
    let s = Sandbox::with_store(&cluster.url());
    s.ok(&["put", "/a/b%2Fc", "Zoë"]);
    assert_eq!(
        etcdctl(&cluster, &["get", "/a/b%2Fc", "--print-value-only"]),
        "Zoë\n"
    );
    s.ok(&["cas", "/lock", "me", "--expect-absent"]);
    let (_, err) = s.expect(3, &["cas", "/lock", "you", "--expect-absent"]);
    assert!(err.contains("compare failed"), "{err}");
    s.expect(3, &["cad", "/lock", "--expect-version", "2"]);
    s.ok(&["cad", "/lock", "--expect-version", "1"]);
    s.expect(3, &["get", "/lock"]);
    let history = s.ok(&["history", "/lock"]);
    assert_eq!(history.lines().count(), 3, "{history}");
    // A transaction over etcd's limit is refused before anything is sent.
    let ops: Vec<String> = (0..129)
        .map(|i| format!(r#"{{"put": {{"key": "/big/{i}", "value": "v"}}}}"#))
        .collect();
    std::fs::write(
        s.path("big.json"),
        format!(r#"{{"success": [{}]}}"#, ops.join(",")),
    )
    .unwrap();
    let (_, err) = s.expect(1, &["txn", "big.json"]);
    assert!(
        err.contains("129 operations but etcd accepts at most 128"),
        "{err}"
    );
    assert_eq!(
        etcdctl(&cluster, &["get", "--prefix", "/big/", "--keys-only"]),
        ""
    );
    // An unreachable cluster is a clear error, not a hang.
    let dead = format!("etcd://127.0.0.1:{}", strata_testkit::free_port());
    let out = s
        .command(&["--store", &dead, "--dial-timeout", "1s", "get", "/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("did not complete") || err.contains("cannot open the store"),
        "{err}"
    );
}

#[test]
fn watch_on_etcd_replays_and_follows() {
    let cluster = EtcdCluster::start(1);
    let s = Sandbox::with_store(&cluster.url());
    s.ok(&["put", "/w/a", "1"]);
    let mut watcher = s
        .command(&["watch", "/w/", "--from-rev", "2", "--count", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "PUT /w/a = 1 (revision 2)");
    etcdctl(&cluster, &["put", "/w/b", "2"]);
    etcdctl(&cluster, &["del", "/w/a"]);
    assert_eq!(lines.next().unwrap().unwrap(), "PUT /w/b = 2 (revision 3)");
    assert_eq!(lines.next().unwrap().unwrap(), "DELETE /w/a (revision 4)");
    assert!(watcher.wait().unwrap().success());
}

fn snapshot(n: usize) -> (String, BTreeMap<String, String>) {
    let map: BTreeMap<String, String> = (0..n)
        .map(|i| (format!("/load/{:02}/k{i:06}", i % 64), format!("value-{i}")))
        .collect();
    (serde_json::to_string(&map).unwrap(), map)
}

/// Waits until `load` has written at least `n` keys under /load/ (read with etcdctl)
/// while still running, so that the fault that follows lands mid-load; the count seen.
fn wait_for_keys(cluster: &EtcdCluster, load: &mut std::process::Child, n: i64) -> i64 {
    let started = Instant::now();
    loop {
        let count = etcdctl(
            cluster,
            &["get", "--prefix", "/load/", "--limit=1", "-w", "json"],
        );
        let json: serde_json::Value = serde_json::from_str(&count).unwrap();
        let written = json["count"].as_i64().unwrap_or(0);
        if written >= n {
            return written;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the load made no progress"
        );
        assert!(
            load.try_wait().unwrap().is_none(),
            "the load ended before the fault"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Loads 100,000 keys into a three-node cluster, kills one member part-way (the
/// leader, or a follower), restarts it later, and checks with etcdctl that every key
/// is there once, with its value, written exactly once (version 1: no batch applied
/// twice by a blind retry).
fn load_through_member_loss(kill_leader: bool) {
    let mut cluster = EtcdCluster::start(3);
    let s = Sandbox::with_store(&cluster.url());
    let (text, expected) = snapshot(100_000);
    std::fs::write(s.path("big.json"), text).unwrap();
    let mut load = s
        .command(&["load", "big.json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it write part of the data first.
    let written = wait_for_keys(&cluster, &mut load, 10_000);
    let leader = cluster.leader().expect("a leader");
    let victim = if kill_leader {
        leader
    } else {
        (leader + 1) % 3
    };
    cluster.kill(victim);
    // The fault landed mid-load: some keys, not all, were written when it came.
    assert!(
        written < expected.len() as i64 && load.try_wait().unwrap().is_none(),
        "the member died after the load had written {written} of {} keys",
        expected.len()
    );
    std::thread::sleep(Duration::from_secs(2));
    cluster.restart(victim);
    let out = load.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "load failed: {stdout}\n{stderr}");
    assert!(stdout.contains("loaded 100000 keys"), "{stdout}");
    eprintln!("member {victim} (leader: {kill_leader}) killed mid-load: {stdout}");
    let seen = etcdctl_dump(&cluster, "/load/");
    assert_eq!(seen.len(), expected.len());
    for (key, value) in &expected {
        assert_eq!(seen.get(key), Some(&(value.clone(), 1)), "at {key}");
    }
}

#[test]
fn load_finishes_when_the_leader_is_killed() {
    load_through_member_loss(true);
}

#[test]
fn load_finishes_when_a_follower_is_killed() {
    load_through_member_loss(false);
}

/// A stalled leader (SIGSTOP for 10 s, then SIGCONT) mid-load, with a short command
/// timeout: requests to it time out with an unknown outcome, the loader re-reads
/// those batches before writing again, and every key ends up written exactly once.
#[test]
fn load_survives_a_stalled_leader() {
    let cluster = EtcdCluster::start(3);
    let s = Sandbox::with_store(&cluster.url());
    let (text, expected) = snapshot(100_000);
    std::fs::write(s.path("big.json"), text).unwrap();
    let mut load = s
        .command(&["--command-timeout", "2s", "load", "big.json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let written = wait_for_keys(&cluster, &mut load, 10_000);
    let leader = cluster.leader().expect("a leader");
    let pid = cluster.pid(leader).expect("the leader's pid").to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP");
    assert!(
        written < expected.len() as i64 && load.try_wait().unwrap().is_none(),
        "the leader stalled after the load had written {written} keys"
    );
    std::thread::sleep(Duration::from_secs(10));
    signal("-CONT");
    let out = load.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "load failed: {stdout}\n{stderr}");
    eprintln!("leader {leader} stalled mid-load: {stdout}");
    let seen = etcdctl_dump(&cluster, "/load/");
    assert_eq!(seen.len(), expected.len());
    for (key, value) in &expected {
        assert_eq!(seen.get(key), Some(&(value.clone(), 1)), "at {key}");
    }
}
