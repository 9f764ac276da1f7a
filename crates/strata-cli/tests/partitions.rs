//! Network partitions on a three-member etcd: each member on a host of its own (a
//! network namespace, see `strata_testkit::netns`), the commands under test on a
//! client host, and a member cut off (its link down: every packet lost, no reset)
//! while a command runs, then healed. `etcdctl` from the client host checks what is
//! in the cluster afterwards. These tests need root (CI runs as root).

mod util;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strata_testkit::etcd::{etcdctl, etcdctl_dump, EtcdCluster};
use util::{examples, wait_for_commits, Sandbox, BIN};

/// One partition test at a time: each runs three etcd members, and elections under a
/// cut must not also compete for two cores with another test's cluster.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `strata ARGS` on the client host, in the sandbox, with the cluster as its store.
fn strata(s: &Sandbox, cluster: &EtcdCluster, args: &[&str]) -> Command {
    let mut cmd = cluster.net().expect("a test network").client(BIN);
    cmd.current_dir(s.dir.path())
        .env("STRATA_STORE", cluster.url())
        .args(args);
    cmd
}

/// [`strata`] started, its output discarded.
fn spawn(s: &Sandbox, cluster: &EtcdCluster, args: &[&str]) -> Child {
    strata(s, cluster, args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn ok(s: &Sandbox, cluster: &EtcdCluster, args: &[&str]) -> String {
    let out = strata(s, cluster, args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "strata {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn count(cluster: &EtcdCluster, prefix: &str) -> i64 {
    let out = etcdctl(
        cluster,
        &["get", "--prefix", prefix, "--limit=1", "-w", "json"],
    );
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["count"]
        .as_i64()
        .unwrap_or(0)
}

fn leader(cluster: &EtcdCluster) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(l) = cluster.leader() {
            return l;
        }
        assert!(Instant::now() < deadline, "no leader within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The members a process on the client host holds TCP connections to (`ss`, on the
/// client host).
fn members_used_by(cluster: &EtcdCluster, child: &Child) -> Vec<usize> {
    let out = cluster
        .net()
        .unwrap()
        .client("ss")
        .args(["-tnpH", "state", "established"])
        .output()
        .expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    let pid = format!("pid={},", child.id());
    let endpoints = cluster.endpoints();
    (0..endpoints.len())
        .filter(|&i| {
            text.lines()
                .any(|l| l.contains(&pid) && l.contains(&format!(" {}", endpoints[i])))
        })
        .collect()
}

/// Waits for `check` to hold, up to `secs`.
fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_load_rides_out_its_leader_cut_off_for_five_seconds() {
    let _serial = one_at_a_time();
    let cluster = EtcdCluster::start_in_net(3);
    let s = Sandbox::new();
    let n = 100_000;
    let snapshot: serde_json::Map<String, serde_json::Value> = (0..n)
        .map(|i| (format!("/p/{i:06}"), format!("value {i}").into()))
        .collect();
    std::fs::write(
        s.path("big.json"),
        serde_json::to_string(&snapshot).unwrap(),
    )
    .unwrap();
    let leader = leader(&cluster);
    let mut load = strata(
        &s,
        &cluster,
        &["load", "big.json", "--command-timeout", "2s"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Cut the leader off as soon as the load is writing.
    let mut at_cut = 0;
    eventually(60, "the load writes keys", || {
        at_cut = count(&cluster, "/p/");
        at_cut > 0
    });
    cluster.cut(leader);
    assert!(
        at_cut < n,
        "the load finished before the cut ({at_cut} keys)"
    );
    std::thread::sleep(Duration::from_secs(5));
    let running_at_heal = load.try_wait().unwrap().is_none();
    cluster.heal(leader);
    let out = load.wait_with_output().unwrap();
    let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        // A load that stopped is finished by running it again.
        let again = strata(&s, &cluster, &["load", "big.json"])
            .output()
            .unwrap();
        stderr = String::from_utf8_lossy(&again.stderr).into_owned();
        assert!(again.status.success(), "the re-run failed: {stderr}");
    }
    // The cut landed mid-load: keys were being written (some, not all, at the cut).
    eprintln!(
        "cut at {at_cut} of {n} keys; the load {} at the heal and {}",
        if running_at_heal {
            "was still running"
        } else {
            "had ended"
        },
        if out.status.success() {
            "finished by itself"
        } else {
            "was run again"
        }
    );
    let dump = etcdctl_dump(&cluster, "/p/");
    assert_eq!(dump.len() as i64, n, "keys lost or extra: {stderr}");
    let doubled: Vec<_> = dump.iter().filter(|(_, (_, v))| *v != 1).take(5).collect();
    assert!(doubled.is_empty(), "keys written twice: {doubled:?}");
    assert_eq!(dump["/p/004242"].0, "value 4242");
}

#[test]
fn a_mirror_fails_over_when_its_member_is_partitioned_away() {
    let _serial = one_at_a_time();
    let cluster = EtcdCluster::start_in_net(3);
    let s = Sandbox::new();
    let snapshot = examples().join("sigilgate/expected.json");
    ok(
        &s,
        &cluster,
        &[
            "--store",
            "sqlite:src.db",
            "load",
            snapshot.to_str().unwrap(),
        ],
    );
    let mut mirror = spawn(
        &s,
        &cluster,
        &[
            "mirror",
            "--from",
            "sqlite:src.db",
            "--to",
            &cluster.url(),
            "--report-every",
            "1s",
            "--command-timeout",
            "3s",
            "--dial-timeout",
            "1s",
        ],
    );
    let diff = [
        "diff",
        "--from",
        "sqlite:src.db",
        "--to",
        &cluster.url(),
        "--dial-timeout",
        "1s",
        "--command-timeout",
        "3s",
    ];
    let no_diff = |what: &str| {
        eventually(90, what, || {
            strata(&s, &cluster, &diff)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success()
        })
    };
    no_diff("the copy is complete");
    let used = members_used_by(&cluster, &mirror);
    let cut = *used
        .first()
        .expect("the mirror holds a connection to a member");
    cluster.cut(cut);
    for i in 0..20 {
        ok(
            &s,
            &cluster,
            &[
                "--store",
                "sqlite:src.db",
                "put",
                &format!("/sigilgate/nodes/p{i}/status"),
                "up",
            ],
        );
    }
    // Caught up while the member is still cut off: it failed over.
    no_diff("the mirror applies the changes made during the partition");
    cluster.heal(cut);
    let _ = mirror.kill();
    let _ = mirror.wait();
    let on_cluster = etcdctl_dump(&cluster, "/sigilgate/nodes/p");
    assert_eq!(on_cluster.len(), 20);
    assert!(on_cluster
        .values()
        .all(|(v, version)| v == "up" && *version == 1));
}

#[test]
fn backup_watch_misses_nothing_while_its_member_is_partitioned_away() {
    let _serial = one_at_a_time();
    let cluster = EtcdCluster::start_in_net(3);
    let s = Sandbox::new();
    let snapshot = examples().join("sigilgate/expected.json");
    ok(&s, &cluster, &["load", snapshot.to_str().unwrap()]);
    let repo = s.path("repo");
    let mut watch = spawn(
        &s,
        &cluster,
        &[
            "backup",
            "watch",
            "--repo",
            "repo",
            "--debounce",
            "0.3",
            "--command-timeout",
            "3s",
            "--dial-timeout",
            "1s",
        ],
    );
    wait_for_commits(&repo, 1);
    let used = members_used_by(&cluster, &watch);
    let cut = *used
        .first()
        .expect("the watch holds a connection to a member");
    cluster.cut(cut);
    // Changes during the partition, written through the members that are up.
    let up: Vec<String> = (0..3)
        .filter(|&i| i != cut)
        .map(|i| format!("http://{}", cluster.endpoints()[i]))
        .collect();
    for i in 0..10 {
        // Retried while the members that are up elect a leader among themselves.
        let key = format!("/sigilgate/nodes/10.20.0.20/p{i}");
        eventually(30, "a put through the members that are up succeeds", || {
            cluster
                .net()
                .unwrap()
                .client("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={}", up.join(",")))
                .args(["put", &key, "seen"])
                .output()
                .unwrap()
                .status
                .success()
        });
    }
    // Each change is in a later commit, made while the member is still cut off.
    eventually(
        90,
        "the changes made during the partition are committed",
        || {
            let file =
                strata_testkit::git_try(&repo, &["show", "HEAD:sigilgate/nodes/10.20.0.20.json"]).1;
            (0..10).all(|i| file.contains(&format!("\"p{i}\": \"seen\"")))
        },
    );
    cluster.heal(cut);
    let _ = watch.kill();
    let _ = watch.wait();
    ok(&s, &cluster, &["backup", "verify", "--repo", "repo"]);
    let (fsck, text) = strata_testkit::git_try(&repo, &["fsck", "--strict"]);
    assert!(fsck, "{text}");
}
