//! `strata copy`, `diff` and `mirror` between real SQLite, etcd and PostgreSQL stores,
//! checked with `strata diff` and with the real clients (etcdctl, psql).

mod util;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_core::{Op, Store, Txn};
use strata_testkit::etcd::{etcdctl_dump, EtcdCluster};
use strata_testkit::postgres;
use util::{examples, Sandbox};

/// The sigilgate data set under `prefix` (its keys start with `/`).
fn dataset(prefix: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(examples().join("sigilgate/expected.json")).unwrap();
    let map: BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
    map.into_iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v))
        .collect()
}

fn etcd_values(cluster: &EtcdCluster, prefix: &str) -> BTreeMap<String, String> {
    etcdctl_dump(cluster, prefix)
        .into_iter()
        .map(|(k, (v, _))| (k, v))
        .collect()
}

fn pg_values(schema: &str, prefix: &str) -> BTreeMap<String, String> {
    postgres::shared()
        .psql(&format!(
            "SELECT convert_from(key, 'UTF8') || E'\\t' || convert_from(value, 'UTF8') FROM \"{schema}\".strata_kv \
             WHERE convert_from(key, 'UTF8') LIKE '{prefix}%' ORDER BY key"
        ))
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

#[test]
fn copies_between_every_pair_of_backends() {
    let etcd = EtcdCluster::start(1);
    let schema = format!("copy{}", std::process::id());
    let s = Sandbox::new();
    let sqlite = s.store.clone();
    let stores = [
        ("sqlite", sqlite),
        ("etcd", etcd.url()),
        ("postgres", postgres::shared().url(&schema)),
    ];
    for (i, (from_name, from)) in stores.iter().enumerate() {
        for (j, (to_name, to)) in stores.iter().enumerate() {
            if i == j {
                continue;
            }
            let prefix = format!("/pair-{from_name}-{to_name}");
            let data = dataset(&prefix);
            let file = s.path(&format!("{from_name}-{to_name}.json"));
            std::fs::write(&file, serde_json::to_string(&data).unwrap()).unwrap();
            s.ok(&["--store", from, "load", file.to_str().unwrap()]);
            let p = format!("{prefix}/");
            let out = s.ok(&["copy", "--from", from, "--to", to, "--prefix", &p]);
            assert!(
                out.contains("356 written") && out.contains("matches the target"),
                "{from_name} → {to_name}: {out}"
            );
            // strata diff agrees, and so do the real clients.
            s.ok(&["diff", "--from", from, "--to", to, "--prefix", &p]);
            match *to_name {
                "etcd" => assert_eq!(etcd_values(&etcd, &p), data, "etcdctl, {from_name} → etcd"),
                "postgres" => {
                    assert_eq!(pg_values(&schema, &p), data, "psql, {from_name} → postgres")
                }
                _ => {
                    let exported: BTreeMap<String, String> =
                        serde_json::from_str(&s.ok(&["--store", to, "export", "--prefix", &p]))
                            .unwrap();
                    assert_eq!(exported, data);
                }
            }
            // Idempotent: a second copy writes nothing.
            let again = s.ok(&["copy", "--from", from, "--to", to, "--prefix", &p]);
            assert!(again.contains("0 written, 356 already in place"), "{again}");
        }
    }
    // A difference is reported with exit code 3, one line per key.
    s.ok(&[
        "--store",
        &etcd.url(),
        "put",
        "/pair-sqlite-etcd/sigilgate/users/94/username",
        "changed",
    ]);
    s.ok(&[
        "--store",
        &etcd.url(),
        "put",
        "/pair-sqlite-etcd/sigilgate/users/94/extra",
        "new",
    ]);
    s.ok(&[
        "--store",
        &stores[0].1,
        "del",
        "/pair-sqlite-etcd/sigilgate/users/94/status",
    ]);
    let (out, _) = s.expect(
        3,
        &[
            "diff",
            "--from",
            &stores[0].1,
            "--to",
            &etcd.url(),
            "--prefix",
            "/pair-sqlite-etcd/",
        ],
    );
    assert_eq!(
        out,
        "+ /pair-sqlite-etcd/sigilgate/users/94/extra\n+ /pair-sqlite-etcd/sigilgate/users/94/status\n\
         ~ /pair-sqlite-etcd/sigilgate/users/94/username\n"
    );
}

#[test]
fn copy_rewrites_prefixes_dry_runs_and_deletes_extras_only_when_asked() {
    let s = Sandbox::new();
    let target = format!("sqlite:{}", s.path("target.db").display());
    s.ok(&[
        "load",
        examples().join("sigilgate/expected.json").to_str().unwrap(),
    ]);
    s.ok(&["--store", &target, "put", "/metadata/sigilgate/stale", "x"]);
    // `strata copy` from /sigilgate/ to /metadata/sigilgate/ in the target, plus `extra`.
    let copy = |extra: &[&str]| {
        let mut args = vec![
            "copy",
            "--from",
            &s.store,
            "--to",
            &target,
            "--prefix",
            "/sigilgate/",
            "--rewrite",
            "/sigilgate/=/metadata/sigilgate/",
        ];
        args.extend_from_slice(extra);
        s.ok(&args)
    };
    let plan = copy(&["--dry-run"]);
    assert!(
        plan.starts_with("would copy 295 keys") && plan.contains("/metadata/sigilgate/stale"),
        "{plan}"
    );
    assert_eq!(
        s.ok(&[
            "--store",
            &target,
            "get",
            "--prefix",
            "/metadata/",
            "--keys-only"
        ]),
        "/metadata/sigilgate/stale\n"
    );
    let out = copy(&[]);
    assert!(
        out.contains("found (keep them, or delete with --delete-extra)"),
        "{out}"
    );
    assert_eq!(
        s.ok(&["--store", &target, "get", "/metadata/sigilgate/stale"]),
        "x\n"
    );
    let out = copy(&["--delete-extra", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (json["deleted_extra"].as_u64(), json["verified"].as_bool()),
        (Some(1), Some(true))
    );
    s.expect(3, &["--store", &target, "get", "/metadata/sigilgate/stale"]);
    assert_eq!(
        s.ok(&[
            "--store",
            &target,
            "get",
            "/metadata/sigilgate/nodes/2a01:4f8:c0c:1::78/role"
        ]),
        "core\n"
    );
}

/// A mirror from SQLite to a three-node etcd keeps up while a writer changes 10,000
/// keys and one etcd member is killed and restarted; at the end `strata diff` is
/// empty and the mirror stops cleanly on SIGTERM.
#[test]
fn mirror_keeps_up_through_a_member_loss() {
    let mut cluster = EtcdCluster::start(3);
    let s = Sandbox::new();
    s.ok(&["put", "/m/seed", "0"]);
    let mirror = s
        .command(&[
            "mirror",
            "--from",
            &s.store,
            "--to",
            &cluster.url(),
            "--prefix",
            "/m/",
            "--report-every",
            "1s",
            "--status",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let source = strata_store::SqliteStore::open(s.path("strata.db")).unwrap();
    let write = |from: usize, to: usize| {
        rt.block_on(async {
            for chunk in (from..to).collect::<Vec<_>>().chunks(50) {
                let ops = chunk
                    .iter()
                    .map(|i| Op::put(format!("/m/k{:05}", i % 4000), format!("v{i}")));
                source.txn(Txn::new().and_then(ops)).await.unwrap();
            }
        })
    };
    write(0, 4000);
    let victim = cluster.leader().expect("a leader");
    cluster.kill(victim);
    write(4000, 7000);
    rt.block_on(async {
        source
            .delete(strata_core::KeySpan::prefix("/m/k0001"))
            .await
            .unwrap();
    });
    cluster.restart(victim);
    write(7000, 10_000);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = s.run(&[
            "diff",
            "--from",
            &s.store,
            "--to",
            &cluster.url(),
            "--prefix",
            "/m/",
        ]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mirror did not catch up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let pid = mirror.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let out = mirror.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the mirror did not stop cleanly: {stderr}"
    );
    assert!(
        stderr.contains("mirror stopped at source revision"),
        "{stderr}"
    );
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["lag_revisions"], 0);
    // etcdctl sees the mirrored data, and the checkpoint.
    let mirrored = etcd_values(&cluster, "/m/");
    let source: BTreeMap<String, String> =
        serde_json::from_str(&s.ok(&["export", "--prefix", "/m/"])).unwrap();
    assert_eq!(mirrored, source);
    assert_eq!(mirrored.len(), 4001);
    let checkpoint = etcd_values(&cluster, "/_strata/mirror/default");
    assert_eq!(checkpoint.len(), 1);
}

/// The source restarts under a running mirror, and the mirror itself is killed and
/// started again: it resumes from its checkpoint (no second copy) with no gap.
#[test]
fn mirror_survives_a_source_restart_and_its_own() {
    let mut source = EtcdCluster::start(1);
    let s = Sandbox::new();
    let target = s.store.clone();
    let put = |s: &Sandbox, url: &str, from: usize, to: usize| {
        for i in from..to {
            s.ok(&[
                "--store",
                url,
                "put",
                &format!("/r/k{:03}", i % 40),
                &format!("v{i}"),
            ]);
        }
    };
    put(&s, &source.url(), 0, 20);
    // The URL stays the same across the restart (same ports).
    let source_url = source.url();
    let start = |s: &Sandbox| {
        s.command(&[
            "mirror",
            "--from",
            &source_url,
            "--to",
            &target,
            "--prefix",
            "/r/",
            "--report-every",
            "1s",
            "--status",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let caught_up = |s: &Sandbox, source: &EtcdCluster| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !s
            .run(&[
                "diff",
                "--from",
                &source.url(),
                "--to",
                &target,
                "--prefix",
                "/r/",
            ])
            .status
            .success()
        {
            assert!(Instant::now() < deadline, "the mirror did not catch up");
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let mut mirror = start(&s);
    caught_up(&s, &source);
    source.kill(0);
    std::thread::sleep(Duration::from_millis(500));
    source.restart(0);
    put(&s, &source.url(), 20, 60);
    caught_up(&s, &source);
    // Kill the mirror outright, change the source while it is down, start it again.
    let _ = mirror.kill();
    let _ = mirror.wait();
    put(&s, &source.url(), 60, 90);
    s.ok(&["--store", &source.url(), "del", "/r/k001"]);
    let mirror = start(&s);
    caught_up(&s, &source);
    Command::new("kill")
        .args(["-TERM", &mirror.id().to_string()])
        .status()
        .unwrap();
    let out = mirror.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(
        last["copied"], 0,
        "the restarted mirror resumed from its checkpoint"
    );
    assert_eq!(last["lag_revisions"], 0);
    s.expect(3, &["get", "/r/k001"]);
}
