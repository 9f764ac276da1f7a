//! `strata migrate`: the shipped example, plan against up, verify, the lock, and
//! several runners at once on a real etcd and a real PostgreSQL.

mod util;

use std::collections::BTreeMap;
use std::process::Stdio;

use serde_json::Value;
use strata_testkit::{etcd, postgres};
use util::migrations::{expected, write_data, write_migrations};
use util::{examples, Sandbox};

type Data = BTreeMap<String, String>;

fn export(s: &Sandbox, prefix: &str) -> Data {
    serde_json::from_str(&s.ok(&["export", "--prefix", prefix])).unwrap()
}

/// Applies the changes of `migrate plan -o json` to `data`.
fn apply_plan(mut data: Data, plan: &str) -> Data {
    let plan: Value = serde_json::from_str(plan).unwrap();
    for migration in plan.as_array().unwrap() {
        for change in migration["changes"].as_array().unwrap() {
            let key = change["key"].as_str().unwrap().to_owned();
            match change["after"].as_str() {
                Some(v) => data.insert(key, v.to_owned()),
                None => data.remove(&key),
            };
        }
    }
    data
}

#[test]
fn the_sigilgate_example_plans_exactly_what_up_does() {
    let s = Sandbox::new();
    let dir = examples().join("sigilgate/migrations");
    let dir = dir.to_str().unwrap();
    s.ok(&[
        "load",
        examples().join("sigilgate/expected.json").to_str().unwrap(),
    ]);
    let before = export(&s, "/");
    let status = s.ok(&["migrate", "status", "--dir", dir]);
    assert!(
        status.contains("pending: 0001_paths, 0002_domain_default"),
        "{status}"
    );
    let text = s.ok(&["migrate", "plan", "--dir", dir]);
    assert!(text.contains("users 0001_billing"), "{text}");
    assert!(
        text.contains("  - /sigilgate/users/92/plan (was free)"),
        "{text}"
    );
    assert!(
        text.contains("  + /sigilgate/users/92/billing/currency = EUR"),
        "{text}"
    );
    // Counted per entity: the split takes keys from the nodes and gives them to paths.
    for line in [
        "    /sigilgate/nodes/{ip}: 9 objects (0 keys added, 0 changed, 9 removed)",
        "    /sigilgate/paths/{ip}: 9 objects (9 keys added, 0 changed, 0 removed)",
        "    /sigilgate/users/{id}: 24 objects (48 keys added, 0 changed, 24 removed)",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    }
    let plan = s.ok(&["migrate", "plan", "--dir", dir, "-o", "json"]);
    let json: Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(
        json[0]["entities"][1],
        serde_json::json!({"entity": "/sigilgate/paths/{ip}", "objects": 9, "added": 9, "changed": 0, "removed": 0})
    );
    // A plan writes nothing.
    assert_eq!(export(&s, "/"), before);
    let (_, err) = s.expect(1, &["migrate", "up", "--dir", dir]);
    assert!(err.contains("--yes"), "{err}");
    let out = s.ok(&["migrate", "up", "--dir", dir, "--yes"]);
    assert!(
        out.contains(
            "applied users 0001_billing: 48 object rewrites (48 keys written, 24 deleted)"
        ),
        "{out}"
    );
    let mut after = export(&s, "/");
    after.retain(|k, _| !k.starts_with("/_strata/"));
    assert_eq!(after, apply_plan(before, &plan));
    assert_eq!(after["/sigilgate/paths/10.20.0.20/grpc_path"], "/1c7bd1");
    assert!(!after.contains_key("/sigilgate/nodes/10.20.0.20/grpc_path"));
    assert_eq!(
        after["/sigilgate/nodes/10.30.6.109/domain"],
        "10.30.6.109.nodes.sigil.example.net"
    );
    // A second run has nothing to do; verify agrees with the files.
    assert!(s
        .ok(&["migrate", "up", "--dir", dir, "--yes"])
        .contains("nothing to apply"));
    assert!(s
        .ok(&["migrate", "verify", "--dir", dir])
        .contains("3 applied migrations in 2 areas"));
    let status = s.ok(&["migrate", "status", "--dir", dir, "-o", "json"]);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status[0]["current"], 2);
    assert_eq!(status[1]["applied"][0]["objects"], 48);
}

#[test]
fn new_writes_the_next_file_of_an_area_from_the_template() {
    let s = Sandbox::new();
    let dir = s.path("migrations");
    let d = dir.to_str().unwrap();
    let (out, err) = s.expect(0, &["migrate", "new", "users", "add_region", "--dir", d]);
    let first = dir.join("users/0001_add_region.toml");
    assert_eq!(out.trim(), first.to_str().unwrap());
    assert!(
        err.contains(&format!("strata migrate plan --dir {d} --area users")),
        "{err}"
    );
    // As written it has no steps: status lists it as a draft (exit 0: files and
    // store agree), plan and up say what to add, naming the file, and apply nothing.
    let (status, _) = s.expect(0, &["--create", "migrate", "status", "--dir", d]);
    assert!(
        status.contains("draft: ") && status.contains("0001_add_region.toml"),
        "{status}"
    );
    for args in [
        &["migrate", "plan", "--dir", d][..],
        &["migrate", "up", "--dir", d, "--yes"],
    ] {
        let (_, err) = s.expect(1, args);
        assert!(
            err.contains("0001_add_region.toml") && err.contains("[[steps]]"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        s.ok(&["get", "--prefix", "/_strata/migrations/", "--keys-only"]),
        ""
    );
    let second = s.ok(&["migrate", "new", "users", "set_currency", "--dir", d]);
    assert!(
        second.trim().ends_with("users/0002_set_currency.toml"),
        "{second}"
    );
    let (_, err) = s.expect(1, &["migrate", "new", "users", "no spaces", "--dir", d]);
    assert!(err.contains("must be letters, digits"), "{err}");
}

#[test]
fn a_plan_with_a_schema_shows_no_secret_even_one_a_step_moves() {
    let s = Sandbox::new();
    s.ok(&[
        "load",
        examples().join("sigilgate/expected.json").to_str().unwrap(),
    ]);
    let data = export(&s, "/sigilgate/");
    let keys: Vec<&String> = data
        .iter()
        .filter(|(k, _)| k.ends_with("/public_key"))
        .map(|(_, v)| v)
        .collect();
    assert!(keys.len() > 20, "the example's devices have public keys");
    let dir = s.path("migrations");
    std::fs::create_dir_all(dir.join("devices")).unwrap();
    std::fs::write(
        dir.join("devices/0001_keys.toml"),
        r#"
[[steps]]
op = "rename_field"
object = "/sigilgate/users/{user}/devices/{uuid}"
from = "public_key"
to = "keys/wireguard"

[[steps]]
op = "jq"
object = "/sigilgate/users/{user}/devices/{uuid}"
filter = '.name |= ascii_upcase'
"#,
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let schema = examples().join("sigilgate/schema.toml");
    let schema = schema.to_str().unwrap();
    let plain = s.ok(&["migrate", "plan", "--dir", d]);
    assert!(
        plain.contains(keys[0].as_str()),
        "without a schema values show"
    );
    for format in ["text", "json"] {
        let plan = s.ok(&[
            "migrate", "plan", "--dir", d, "--schema", schema, "-o", format,
        ]);
        for key in &keys {
            assert!(
                !plan.contains(key.as_str()),
                "{key} shows in the {format} plan"
            );
        }
        assert!(plan.contains("<secret>"), "{plan}");
        // Other values still show.
        assert!(plan.contains("U_D58DCD-MACOS"), "{plan}");
    }
}

#[test]
fn an_edited_applied_migration_is_refused_until_restored() {
    let s = Sandbox::new();
    let dir = s.path("migrations");
    write_migrations(&dir, "/v", "t");
    write_data(&s.path("data.json"), "/v", 20);
    s.ok(&["load", "data.json"]);
    s.ok(&["migrate", "up", "--yes", "--area", "users_t", "--to", "1"]);
    let file = dir.join("users_t/0001_billing.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    // Comments and layout do not count; meaning does.
    std::fs::write(&file, format!("# reviewed\n\n{original}")).unwrap();
    s.ok(&["migrate", "verify"]);
    std::fs::write(&file, original.replace("EUR", "GBP")).unwrap();
    let (_, err) = s.expect(1, &["migrate", "verify"]);
    assert!(
        err.contains("users_t 0001_billing: applied with checksum"),
        "{err}"
    );
    assert!(err.contains("0001_billing.toml now has checksum"), "{err}");
    let (_, err) = s.expect(1, &["migrate", "up", "--yes"]);
    assert!(err.contains("must not change"), "{err}");
    // Regression: `migrate status` showed the mismatch but exited 0.
    let (out, err) = s.expect(3, &["migrate", "status"]);
    assert!(out.contains("! "), "{out}");
    assert!(
        err.contains("1 problem: the migrations and what the store records disagree"),
        "{err}"
    );
    s.expect(3, &["migrate", "status", "-o", "json"]);
    std::fs::write(&file, &original).unwrap();
    // A new migration below the current version is refused too.
    std::fs::write(
        dir.join("users_t/0000_early.toml"),
        "[[steps]]\nop='delete'\nobject='/v/x/{id}'\n",
    )
    .unwrap();
    let (_, err) = s.expect(1, &["migrate", "verify"]);
    assert!(err.contains("below the area's current version 1"), "{err}");
    std::fs::remove_file(dir.join("users_t/0000_early.toml")).unwrap();
    s.ok(&["migrate", "up", "--yes"]);
    let data: Data =
        serde_json::from_str(&std::fs::read_to_string(s.path("data.json")).unwrap()).unwrap();
    assert_eq!(export(&s, "/v/"), expected(&data, "/v"));
}

#[test]
fn a_held_lock_names_its_holder_and_an_expired_one_is_taken_over() {
    let s = Sandbox::new();
    write_migrations(&s.path("migrations"), "/l", "l");
    write_data(&s.path("data.json"), "/l", 8);
    s.ok(&["load", "data.json"]);
    let far = strata_core_millis() + 3_600_000;
    let held = format!(
        r#"{{"owner":"ops-host/4242/1","expires_at_ms":{far},"acquired_at":"2026-11-24T08:00:00Z"}}"#
    );
    s.ok(&["put", "/_strata/migrations/users_l/lock", &held]);
    let (_, err) = s.expect(
        1,
        &["migrate", "up", "--yes", "--area", "users_l", "--wait", "1"],
    );
    assert!(
        err.contains("area users_l is being migrated by ops-host/4242/1"),
        "{err}"
    );
    let status = s.ok(&["migrate", "status"]);
    assert!(status.contains("locked by ops-host/4242/1"), "{status}");
    let expired = held.replace(&far.to_string(), "1");
    s.ok(&["put", "/_strata/migrations/users_l/lock", &expired]);
    s.ok(&["migrate", "up", "--yes", "--area", "users_l"]);
    assert!(s
        .ok(&["get", "--prefix", "/_strata/migrations/users_l/lock"])
        .is_empty());
}

fn strata_core_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Four `migrate up` at once: each migration is recorded once, each object rewritten
/// once (the jq counter `n` is 1 everywhere).
fn four_runners_at_once(s: &Sandbox, prefix: &str, tag: &str) {
    write_migrations(&s.path("migrations"), prefix, tag);
    write_data(&s.path("data.json"), prefix, 400);
    s.ok(&["load", "data.json"]);
    let children: Vec<_> = (0..4)
        .map(|_| {
            s.command(&["migrate", "up", "--yes", "--wait", "120", "--page", "50"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied_lines = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        applied_lines.extend(
            stdout
                .lines()
                .filter(|l| l.starts_with("applied"))
                .map(str::to_owned),
        );
    }
    applied_lines.sort();
    assert_eq!(
        applied_lines
            .iter()
            .map(|l| l.split(':').next().unwrap())
            .collect::<Vec<_>>(),
        [
            format!("applied nodes_{tag} 0001_paths"),
            format!("applied users_{tag} 0001_billing"),
            format!("applied users_{tag} 0002_count"),
        ],
        "each migration is applied by exactly one runner"
    );
    let records = s.ok(&[
        "get",
        "--prefix",
        &format!("/_strata/migrations/users_{tag}/applied/"),
    ]);
    assert_eq!(records.lines().count(), 2, "{records}");
    assert!(records.contains(r#""objects":400"#), "{records}");
    let data: Data =
        serde_json::from_str(&std::fs::read_to_string(s.path("data.json")).unwrap()).unwrap();
    let done = export(s, &format!("{prefix}/"));
    assert_eq!(done, expected(&data, prefix));
}

#[test]
fn four_runners_at_once_on_etcd() {
    let cluster = etcd::shared();
    four_runners_at_once(&Sandbox::with_store(&cluster.url()), "/mig4", "etcd4");
}

#[test]
fn four_runners_at_once_on_postgres() {
    let pg = postgres::shared();
    let s = Sandbox::with_store(&pg.url(&format!("mig{}", std::process::id())));
    four_runners_at_once(&s, "/mig4", "pg4");
}

/// A step that fails on one object stops the run with the object named; the area shows
/// the migration in progress, and once the data is fixed the next run finishes it
/// without redoing the objects already done.
#[test]
fn a_failed_migration_is_shown_in_progress_and_resumed() {
    let s = Sandbox::new();
    for i in 0..300 {
        s.ok(&[
            "put",
            &format!("/f/dev/{i:03}/config"),
            &format!(r#"{{"mtu":{i}}}"#),
        ]);
    }
    s.ok(&["put", "/f/dev/150/config", "not json"]);
    let area = s.path("migrations/devices");
    std::fs::create_dir_all(&area).unwrap();
    std::fs::write(
        area.join("0001_explode.toml"),
        "[[steps]]\nop = 'explode_json'\nobject = '/f/dev/{id}'\nfield = 'config'\n",
    )
    .unwrap();
    let (_, err) = s.expect(1, &["migrate", "up", "--yes", "--page", "40"]);
    assert!(
        err.contains("key /f/dev/150/config does not hold a JSON object"),
        "{err}"
    );
    let status = s.ok(&["migrate", "status"]);
    assert!(
        status.contains("in progress: 0001_explode step 1, after /f/dev/1"),
        "{status}"
    );
    assert_eq!(s.ok(&["get", "/f/dev/000/config/mtu"]).trim(), "0");
    s.ok(&["put", "/f/dev/150/config", r#"{"mtu":150}"#]);
    let out = s.ok(&["migrate", "up", "--yes"]);
    assert!(
        out.contains(
            "applied devices 0001_explode: 300 object rewrites (300 keys written, 300 deleted)"
        ),
        "{out}"
    );
    for i in [0, 149, 150, 299] {
        assert_eq!(
            s.ok(&["get", &format!("/f/dev/{i:03}/config/mtu")]).trim(),
            i.to_string()
        );
    }
    assert!(s
        .ok(&["get", "--prefix", "/f/dev/"])
        .lines()
        .all(|l| !l.contains("/config =")));
}

/// The lock keys of the areas of `tag` (`users_TAG`, `nodes_TAG`), as the real etcdctl
/// sees them (other tests migrate other areas of the same etcd meanwhile).
fn lock_keys(cluster: &etcd::EtcdCluster, tag: &str) -> Vec<Value> {
    let out = etcd::etcdctl(
        cluster,
        &["get", "--prefix", "/_strata/migrations/", "-w", "json"],
    );
    let json: Value = serde_json::from_str(&out).unwrap();
    json["kvs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|kv| {
            etcd::base64_decode(kv["key"].as_str().unwrap())
                .ends_with(format!("_{tag}/lock").as_bytes())
        })
        .collect()
}

/// Starts `migrate up` on 3,000 users in small pages and returns it once its lock is
/// seen, with that lock.
fn runner_holding_its_lock(
    s: &Sandbox,
    cluster: &etcd::EtcdCluster,
    tag: &str,
    args: &[&str],
) -> (std::process::Child, Value) {
    let mut runner = s
        .command(&[&["migrate", "up", "--yes", "--page", "20"], args].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(lock) = lock_keys(cluster, tag).into_iter().next() {
            return (runner, lock);
        }
        assert!(
            runner.try_wait().unwrap().is_none(),
            "the runner finished before its lock was seen: make the data set larger"
        );
        assert!(std::time::Instant::now() < deadline, "no lock key appeared");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn users_on_etcd(cluster: &etcd::EtcdCluster, prefix: &str, tag: &str) -> Sandbox {
    let s = Sandbox::with_store(&cluster.url());
    write_migrations(&s.path("migrations"), prefix, tag);
    write_data(&s.path("data.json"), prefix, 3000);
    s.ok(&["load", "data.json"]);
    s
}

fn assert_migrated(s: &Sandbox, prefix: &str) {
    let data: Data =
        serde_json::from_str(&std::fs::read_to_string(s.path("data.json")).unwrap()).unwrap();
    assert_eq!(export(s, &format!("{prefix}/")), expected(&data, prefix));
}

/// On etcd the lock lives on a lease: the real etcdctl sees the lease on the lock key
/// while a runner works; once the runner is killed, etcd itself deletes the key when
/// the lease runs out, so the next run needs no --wait and no clock of ours.
#[test]
fn on_etcd_the_lock_is_a_lease_that_dies_with_its_runner() {
    let cluster = etcd::shared();
    let s = users_on_etcd(cluster, "/lease", "lz");
    let (mut runner, lock) = runner_holding_its_lock(&s, cluster, "lz", &["--lock-ttl", "2"]);
    runner.kill().unwrap();
    runner.wait().unwrap();
    let lease = lock["lease"].as_i64().unwrap_or(0);
    assert_ne!(lease, 0, "the lock key is not attached to a lease: {lock}");
    let record: Value =
        serde_json::from_slice(&etcd::base64_decode(lock["value"].as_str().unwrap())).unwrap();
    assert_eq!(record["lease"].as_i64(), Some(lease), "{record}");
    // Nobody renews the lease now: etcd deletes the key by itself.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !lock_keys(cluster, "lz").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the killed runner's lock is still there"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    s.ok(&["migrate", "up", "--yes"]);
    assert_migrated(&s, "/lease");
    assert!(
        lock_keys(cluster, "lz").is_empty(),
        "a finished run leaves no lock"
    );
}

/// SIGTERM (or Ctrl-C) stops a run at the next batch boundary: it says how to go on,
/// releases its lock at once (no waiting for the lease), leaves the migration visibly
/// in progress, and the next run finishes it.
#[test]
fn a_signal_stops_a_run_cleanly_and_the_next_run_finishes() {
    let cluster = etcd::shared();
    let s = users_on_etcd(cluster, "/sig", "sg");
    let (runner, _) = runner_holding_its_lock(&s, cluster, "sg", &[]);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &runner.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = runner.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted while applying"), "{stderr}");
    assert!(stderr.contains("run `strata migrate up` again"), "{stderr}");
    assert!(
        lock_keys(cluster, "sg").is_empty(),
        "the lock was not released"
    );
    // The shared etcd holds other tests' areas too, whose files are not in this
    // folder: status may exit 3 for those (a real problem on a real store).
    let out = s.run(&["migrate", "status"]);
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(matches!(out.status.code(), Some(0 | 3)), "{status}");
    assert!(
        status.contains("users_sg") && status.contains("in progress"),
        "{status}"
    );
    s.ok(&["migrate", "up", "--yes"]);
    assert_migrated(&s, "/sig");
}
