//! `strata migrate up` killed with SIGKILL at random moments (20 trials on SQLite, 5 on
//! a real etcd, 5 on a real PostgreSQL): between the kill and the re-run no object is half-migrated, and after
//! the re-run the data equals that of an uninterrupted run, each object rewritten once.
//! And an application writing the migrated field all along loses no update.

mod util;

use std::collections::BTreeMap;

use strata_testkit::etcd::EtcdCluster;
use strata_testkit::postgres;
use util::migrations::{expected, write_data, write_migrations};
use util::Sandbox;

type Data = BTreeMap<String, String>;

fn export(s: &Sandbox, prefix: &str) -> Data {
    serde_json::from_str(&s.ok(&["export", "--prefix", prefix])).unwrap()
}

/// Every user is wholly before or wholly after each migration.
fn check_whole(data: &Data, trial: usize) {
    for (key, value) in data {
        if let Some(base) = key.strip_suffix("/name") {
            let plan = data.contains_key(&format!("{base}/plan"));
            let billing = data.contains_key(&format!("{base}/billing/plan"));
            assert!(plan != billing, "trial {trial}: {base} is half-migrated (plan {plan}, billing/plan {billing}), name {value}");
            let n = &data[&format!("{base}/n")];
            assert!(n == "0" || n == "1", "trial {trial}: {base}/n = {n}");
        }
    }
}

/// The kill moments are drawn from the length of one uninterrupted run on the same
/// store, timed first, so a fast machine or backend does not let every run finish
/// before its kill.
fn crash_trials(s: &Sandbox, tag: &str, trials: usize) {
    let prefix = format!("/crash_{tag}");
    write_migrations(&s.path("migrations"), &prefix, tag);
    write_data(&s.path("data.json"), &prefix, 2000);
    let data: Data =
        serde_json::from_str(&std::fs::read_to_string(s.path("data.json")).unwrap()).unwrap();
    // The reference: one uninterrupted run on a store of its own.
    let reference = Sandbox::new();
    write_migrations(&reference.path("migrations"), &prefix, tag);
    reference.ok(&["load", s.path("data.json").to_str().unwrap()]);
    reference.ok(&["migrate", "up", "--yes"]);
    let uninterrupted = export(&reference, &format!("{prefix}/"));
    assert_eq!(uninterrupted, expected(&data, &prefix));
    s.ok(&["load", "data.json"]);
    let max_delay_ms = s.timed_ms(&["migrate", "up", "--yes", "--page", "200"]) * 9 / 10;
    assert_eq!(export(s, &format!("{prefix}/")), uninterrupted);
    let mut interrupted = 0;
    for trial in 0..trials {
        s.ok(&["del", "--prefix", &format!("{prefix}/"), "--yes"]);
        s.ok(&["del", "--prefix", "/_strata/migrations/", "--yes"]);
        s.ok(&["load", "data.json"]);
        if s.kill_at_random(
            &["migrate", "up", "--yes", "--page", "200", "--lock-ttl", "1"],
            max_delay_ms,
        ) {
            interrupted += 1;
        }
        check_whole(&export(s, &format!("{prefix}/")), trial);
        // The killed runner's lock expires after a second; then the re-run resumes.
        let out = s.ok(&["migrate", "up", "--yes", "--wait", "10"]);
        assert_eq!(
            export(s, &format!("{prefix}/")),
            uninterrupted,
            "trial {trial}: the re-run did not finish the job exactly\n{out}"
        );
        let records = s.ok(&[
            "get",
            "--prefix",
            &format!("/_strata/migrations/users_{tag}/applied/"),
        ]);
        assert!(
            records.contains(r#""objects":2000"#),
            "trial {trial}: {records}"
        );
    }
    eprintln!("{interrupted} of {trials} runs were killed mid-way");
    assert!(
        interrupted > 0,
        "no run was interrupted: make the data set larger"
    );
}

#[test]
fn migrate_killed_at_random_moments_on_sqlite() {
    crash_trials(&Sandbox::new(), "sq", 20);
}

#[test]
fn migrate_killed_at_random_moments_on_etcd() {
    let cluster = EtcdCluster::start(1);
    crash_trials(&Sandbox::with_store(&cluster.url()), "et", 5);
}

#[test]
fn migrate_killed_at_random_moments_on_postgres() {
    let pg = postgres::shared();
    let s = Sandbox::with_store(&pg.url(&format!("crash{}", std::process::id())));
    crash_trials(&s, "pg", 5);
}

/// While a jq step adds 1,000,000 to every user's `counter`, another process keeps
/// rewriting the counters of a fifth of the users at a time to k = 1, 2, 3, … With the
/// compare on every object, each final counter is the last k written to it (the
/// application wrote after the migration) or that k + 1,000,000 (the migration
/// rewrote the application's last value); never a value computed from an older k,
/// which is what a lost update would leave.
#[test]
fn an_application_writing_during_a_migration_loses_no_update() {
    let s = Sandbox::new();
    let prefix = "/busy";
    let users = 1500;
    write_data(&s.path("data.json"), prefix, users);
    s.ok(&["load", "data.json"]);
    let area = s.path("migrations/bump");
    std::fs::create_dir_all(&area).unwrap();
    std::fs::write(
        area.join("0001_bump.toml"),
        format!(
            "[[steps]]\nop = 'jq'\nobject = '{prefix}/users/{{id}}'\nfilter = '.counter = ((.counter | tonumber) + 1000000 | tostring)'\n"
        ),
    )
    .unwrap();
    let mut migration = s
        .command(&["migrate", "up", "--yes", "--page", "40"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut last = vec![0u64; users];
    let mut k = 0;
    while migration.try_wait().unwrap().is_none() {
        k += 1;
        let mut counters = Data::new();
        for (i, last) in last
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| i % 5 == k as usize % 5)
        {
            counters.insert(format!("{prefix}/users/{i}/counter"), k.to_string());
            *last = k;
        }
        std::fs::write(
            s.path("counters.json"),
            serde_json::to_string(&counters).unwrap(),
        )
        .unwrap();
        s.ok(&["load", "counters.json"]);
    }
    let out = migration.wait_with_output().unwrap();
    assert!(out.status.success());
    eprintln!(
        "{k} rounds of application writes; {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    assert!(
        k >= 3,
        "the migration ended before the application wrote much: make it longer"
    );
    let done = export(&s, &format!("{prefix}/"));
    for (i, last) in last.iter().enumerate() {
        let counter: u64 = done[&format!("{prefix}/users/{i}/counter")]
            .parse()
            .unwrap();
        assert!(
            counter == *last || counter == last + 1_000_000,
            "user {i}: counter {counter}, expected {last} or {}: an update was lost",
            last + 1_000_000
        );
    }
}
