//! Migration benchmark on a real etcd: the shipped example migration `users` 0001
//! (move `plan` to `billing/plan`, set `billing/currency` where missing) over N users,
//! next to the same rewrite done by hand, in one run against one local etcd node:
//!
//! - `strata migrate up` (the real binary: lock on a lease, one pass per step, every
//!   object's write conditioned on the revisions read, progress recorded per batch);
//! - a hand-written etcd-client program doing the same rewrite in one pass: one read at
//!   one revision, then transactions of whole users, each compare-and-swapped on every
//!   key it read, 4 transactions in flight (what a careful ad-hoc migration can do at
//!   best, without a lock, progress or resume);
//! - an `etcdctl txn` per user from a shell loop (the usual migration script), over
//!   the first 300 users.
//!
//! Both full runs must leave identical keys (checked).
//!
//! Run: `cargo bench -p strata-cli --bench migrate` (STRATA_BENCH_USERS=N, default
//! 20,000 users of 5 fields: 100,000 keys).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use strata_testkit::etcd::EtcdCluster;

mod common;

use common::{strata, timed};

const PREFIX: &str = "/sigilgate/users/";

fn users(n: usize) -> BTreeMap<String, String> {
    let mut data = BTreeMap::new();
    for i in 1..=n {
        let user = format!("{PREFIX}{i}/");
        let plan = ["free", "pro", "team"][i % 3];
        data.insert(format!("{user}username"), format!("u_{i:06x}"));
        data.insert(format!("{user}status"), "active".into());
        data.insert(format!("{user}max_devices"), "3".into());
        data.insert(format!("{user}created_at"), "2024-03-18T10:00:00Z".into());
        data.insert(format!("{user}plan"), plan.into());
    }
    data
}

/// One user's keys as read: field → (value, mod revision).
type Object = BTreeMap<String, (Vec<u8>, i64)>;

/// Every user at one revision, paged.
async fn read_users(client: &Client) -> BTreeMap<String, Object> {
    let mut kv = client.kv_client();
    let mut objects: BTreeMap<String, Object> = BTreeMap::new();
    let end = format!("{}0", &PREFIX[..PREFIX.len() - 1]);
    let mut start = PREFIX.as_bytes().to_vec();
    let mut revision = 0;
    loop {
        let mut opts = GetOptions::new().with_range(end.clone()).with_limit(10_000);
        if revision > 0 {
            opts = opts.with_revision(revision);
        }
        let resp = kv.get(start.clone(), Some(opts)).await.expect("range");
        revision = resp.header().expect("header").revision();
        for k in resp.kvs() {
            let key = std::str::from_utf8(k.key()).expect("utf-8 key");
            let rest = &key[PREFIX.len()..];
            let (id, field) = rest.split_once('/').expect("user/field");
            objects
                .entry(id.to_owned())
                .or_default()
                .insert(field.to_owned(), (k.value().to_vec(), k.mod_revision()));
        }
        if !resp.more() {
            break;
        }
        start = resp.kvs().last().expect("a page").key().to_vec();
        start.push(0);
    }
    objects
}

/// The rewrite of one user: compares on every key read, and the ops.
fn rewrite(id: &str, object: &Object) -> (Vec<Compare>, Vec<TxnOp>) {
    let key = |field: &str| format!("{PREFIX}{id}/{field}");
    let compares = object
        .iter()
        .map(|(field, (_, rev))| Compare::mod_revision(key(field), CompareOp::Equal, *rev))
        .collect();
    let mut ops = Vec::new();
    if let Some((plan, _)) = object.get("plan") {
        ops.push(TxnOp::put(key("billing/plan"), plan.clone(), None));
        ops.push(TxnOp::delete(key("plan"), None));
    }
    if !object.contains_key("billing/currency") {
        ops.push(TxnOp::put(key("billing/currency"), "EUR", None));
    }
    (compares, ops)
}

/// The hand-written migration: whole users per transaction (at most 128 compares and
/// 128 ops), 4 transactions in flight.
async fn by_hand(client: &Client) -> Duration {
    let started = Instant::now();
    let objects = read_users(client).await;
    let mut batches: Vec<(Vec<Compare>, Vec<TxnOp>)> = vec![(Vec::new(), Vec::new())];
    for (id, object) in &objects {
        let (compares, ops) = rewrite(id, object);
        let last = batches.last_mut().expect("a batch");
        if last.0.len() + compares.len() > 128 || last.1.len() + ops.len() > 128 {
            batches.push((compares, ops));
        } else {
            last.0.extend(compares);
            last.1.extend(ops);
        }
    }
    let mut set = tokio::task::JoinSet::new();
    let mut queue = batches.into_iter();
    loop {
        while set.len() < 4 {
            let Some((compares, ops)) = queue.next() else {
                break;
            };
            let mut kv = client.kv_client();
            set.spawn(async move {
                let resp = kv
                    .txn(Txn::new().when(compares).and_then(ops))
                    .await
                    .expect("txn");
                assert!(resp.succeeded(), "nobody else writes during the benchmark");
            });
        }
        if set.join_next().await.is_none() {
            break;
        }
    }
    started.elapsed()
}

/// `etcdctl txn` per user, from a shell loop, over users 1..=count.
fn etcdctl_script(
    endpoints: &str,
    dir: &Path,
    count: usize,
    revisions: &BTreeMap<String, Object>,
) -> Duration {
    let mut script = String::new();
    for i in 1..=count {
        let id = i.to_string();
        let object = &revisions[&id];
        let mut body = String::new();
        for (field, (_, rev)) in object {
            body.push_str(&format!("mod(\"{PREFIX}{id}/{field}\") = \"{rev}\"\n"));
        }
        let plan = String::from_utf8_lossy(&object["plan"].0).into_owned();
        body.push_str(&format!(
            "\nput {PREFIX}{id}/billing/plan {plan}\ndel {PREFIX}{id}/plan\nput {PREFIX}{id}/billing/currency EUR\n\n\n"
        ));
        let file = dir.join(format!("txn-{i}"));
        std::fs::write(&file, body).expect("write a txn file");
        script.push_str(&format!(
            "etcdctl --endpoints={endpoints} txn < {} > /dev/null || exit 1\n",
            file.display()
        ));
    }
    let (took, _) = timed(
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("ETCDCTL_API", "3"),
    );
    took
}

fn export(url: &str) -> String {
    strata(&["--store", url, "export", "--prefix", PREFIX]).1
}

fn reload(url: &str, data_file: &str) {
    strata(&["--store", url, "del", "--prefix", "/"]);
    strata(&["--store", url, "load", data_file]);
}

fn main() {
    let n: usize = common::size("STRATA_BENCH_USERS", 20_000);
    let cluster = EtcdCluster::start(1);
    let url = cluster.url();
    let endpoints = cluster.endpoints().join(",");
    let dir = tempfile::tempdir().expect("temp dir");
    let data_file = dir.path().join("users.json");
    let data = users(n);
    std::fs::write(&data_file, serde_json::to_string(&data).expect("json")).expect("write");
    let data_file = data_file.to_str().expect("utf-8 path").to_owned();
    let migrations =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sigilgate/migrations");
    let migrations = migrations.to_str().expect("utf-8 path");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client = runtime
        .block_on(Client::connect([endpoints.as_str()], None))
        .expect("connect");

    reload(&url, &data_file);
    let (plan_took, _) = strata(&[
        "--store", &url, "migrate", "plan", "--area", "users", "--dir", migrations,
    ]);
    let (strata_took, _) = strata(&[
        "--store", &url, "migrate", "up", "--yes", "--area", "users", "--dir", migrations,
    ]);
    let by_strata = export(&url);

    reload(&url, &data_file);
    let raw_took = runtime.block_on(by_hand(&client));
    let by_raw = export(&url);
    assert_eq!(
        by_strata, by_raw,
        "strata and the hand-written migration disagree"
    );

    reload(&url, &data_file);
    let revisions = runtime.block_on(read_users(&client));
    let script_users = 300.min(n);
    let script_took = etcdctl_script(&endpoints, dir.path(), script_users, &revisions);

    let rate = |users: usize, took: Duration| users as f64 / took.as_secs_f64();
    println!(
        "migration users 0001_billing over {n} users ({} keys), one etcd node:",
        data.len()
    );
    println!("| measure | strata | reference | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| migrate, users/s | {:.0} (`strata migrate up`, {:.2} s) | {:.0} (hand-written etcd-client, one pass, 4 txns in flight, {:.2} s) | {:.0}% of by-hand |",
        rate(n, strata_took),
        strata_took.as_secs_f64(),
        rate(n, raw_took),
        raw_took.as_secs_f64(),
        100.0 * raw_took.as_secs_f64() / strata_took.as_secs_f64()
    );
    println!(
        "| migrate, users/s | {:.0} | {:.0} (`etcdctl txn` per user in a shell loop, {script_users} users, {:.2} s) | {:.0}× |",
        rate(n, strata_took),
        rate(script_users, script_took),
        script_took.as_secs_f64(),
        rate(n, strata_took) / rate(script_users, script_took)
    );
    println!(
        "| plan (exact key diff, no writes) | {:.2} s | – | – |",
        plan_took.as_secs_f64()
    );
}
