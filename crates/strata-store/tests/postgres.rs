//! The PostgreSQL backend under real concurrency: eight writers racing compare-and-swap
//! increments of one counter while a watcher follows, a watch whose connection is
//! killed by the server, and a data set read back with the real `psql`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use strata_core::{Compare, CompareOp, Event, KeySpan, Op, Store, Txn, WatchRequest};
use strata_store::{PgOptions, PgStore};
use strata_testkit::postgres;

/// Reads watch batches until `seen` holds `want` events, failing after 20 s.
async fn collect(watcher: &mut strata_core::Watcher, seen: &mut Vec<Event>, want: usize) {
    while seen.len() < want {
        let batch = tokio::time::timeout(Duration::from_secs(20), watcher.next())
            .await
            .unwrap_or_else(|_| panic!("the watch stalled after {} of {want} events", seen.len()));
        seen.extend(batch.unwrap().unwrap());
    }
}

fn schema() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "p{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

async fn connect(schema: &str) -> PgStore {
    PgStore::connect(PgOptions::parse(&postgres::shared().url(schema)).unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_cas_writers_and_a_watcher() {
    let schema = schema();
    let store = connect(&schema).await;
    let key = b"/counter".to_vec();
    let (start, _) = store.put(&key, b"0").await.unwrap();
    let mut watcher = store
        .watch(WatchRequest {
            span: KeySpan::key(key.clone()),
            start_revision: start + 1,
        })
        .await
        .unwrap();
    let mut writers = Vec::new();
    for _ in 0..8 {
        // Each writer has its own connections, as separate processes would.
        let store = connect(&schema).await;
        let key = key.clone();
        writers.push(tokio::spawn(async move {
            let mut won = 0u64;
            for _ in 0..500 {
                let kv = store.get(&key).await.unwrap().unwrap();
                let n: u64 = String::from_utf8(kv.value).unwrap().parse().unwrap();
                let txn = Txn::new()
                    .when([Compare::mod_revision(
                        key.clone(),
                        CompareOp::Equal,
                        kv.mod_revision,
                    )])
                    .and_then([Op::put(key.clone(), (n + 1).to_string())]);
                if store.txn(txn).await.unwrap().succeeded {
                    won += 1;
                }
            }
            won
        }));
    }
    let mut successes = 0;
    for w in writers {
        successes += w.await.unwrap();
    }
    let last = store.get(&key).await.unwrap().unwrap();
    assert_eq!(
        String::from_utf8(last.value).unwrap(),
        successes.to_string()
    );
    assert_eq!(last.version as u64, successes + 1);
    let history = store.history(&key).await.unwrap();
    assert_eq!(
        history.len() as u64,
        successes + 1,
        "one history entry per successful CAS, plus the first put"
    );
    // The watcher saw every revision once, in order, each one step up.
    let mut seen: Vec<Event> = Vec::new();
    collect(&mut watcher, &mut seen, successes as usize).await;
    let values: Vec<u64> = seen
        .iter()
        .map(|e| String::from_utf8_lossy(&e.kv.value).parse().unwrap())
        .collect();
    assert_eq!(values, (1..=successes).collect::<Vec<_>>());
    let revisions: Vec<i64> = seen.iter().map(Event::revision).collect();
    let expected: Vec<i64> = history[1..].iter().map(Event::revision).collect();
    assert_eq!(revisions, expected);
    assert!(revisions.windows(2).all(|w| w[0] < w[1]));
    eprintln!("{successes} of 4000 CAS attempts won");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_survives_a_killed_connection() {
    let schema = schema();
    let store = connect(&schema).await;
    let mut watcher = store
        .watch(WatchRequest {
            span: KeySpan::prefix("/w/"),
            start_revision: 0,
        })
        .await
        .unwrap();
    let mut written = Vec::new();
    let mut seen: Vec<Event> = Vec::new();
    for round in 0..3 {
        for i in 0..10 {
            written.push(
                store
                    .put(format!("/w/{round}/{i}").as_bytes(), b"v")
                    .await
                    .unwrap()
                    .0,
            );
        }
        collect(&mut watcher, &mut seen, written.len()).await;
        // The server drops every LISTEN connection of this schema's watch.
        let killed = postgres::shared().psql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN \"strata_{schema}\"%'"
        ));
        assert_eq!(
            killed.trim(),
            "t",
            "round {round}: the watch's LISTEN connection was not found"
        );
        // Writes made while it reconnects still arrive, once each.
    }
    for i in 0..10 {
        written.push(
            store
                .put(format!("/w/last/{i}").as_bytes(), b"v")
                .await
                .unwrap()
                .0,
        );
    }
    collect(&mut watcher, &mut seen, written.len()).await;
    assert_eq!(
        seen.iter().map(Event::revision).collect::<Vec<_>>(),
        written
    );
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(1500), watcher.next()).await
    {
        panic!("a change was delivered twice: {extra:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_reads_the_current_rows_with_a_plain_select() {
    let schema = schema();
    let store = connect(&schema).await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/sigilgate/expected.json"
    );
    let entries = strata_ops::snapshot::read_snapshot(std::path::Path::new(path)).unwrap();
    strata_ops::load::load(&store, entries.clone(), None, &mut |_| {})
        .await
        .unwrap();
    let out = postgres::shared().psql(&format!(
        "SELECT convert_from(key, 'UTF8') || '=' || convert_from(value, 'UTF8') \
         FROM \"{schema}\".strata_kv ORDER BY key"
    ));
    let expected: Vec<String> = entries.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
    let revision = postgres::shared().psql(&format!(
        "SELECT value FROM \"{schema}\".strata_meta WHERE name = 'revision'"
    ));
    assert_eq!(
        revision.trim(),
        store.status().await.unwrap().revision.to_string()
    );
}

/// Regression: the PostgreSQL watch swallowed connection errors and retried forever.
/// A server that stays away longer than the command timeout ends the watch with an
/// error naming the server and the revision to watch again from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_a_server_gone_for_good_ends_naming_it() {
    let server = postgres::PgServer::start();
    let mut opts = PgOptions::parse(&server.url("gone")).unwrap();
    opts.command_timeout = Some(Duration::from_secs(2));
    let store = PgStore::connect(opts).await.unwrap();
    let (rev, _) = store.put(b"/w/a", b"1").await.unwrap();
    let mut w = store
        .watch(WatchRequest {
            span: KeySpan::prefix(b"/w/".to_vec()),
            start_revision: rev,
        })
        .await
        .unwrap();
    let first = w.next().await.unwrap().unwrap();
    assert_eq!(first[0].kv.value, b"1");
    let port = server.port();
    drop(server); // stops the server and removes its data
    let ended = tokio::time::timeout(Duration::from_secs(60), w.next())
        .await
        .expect("the watch kept retrying a server that is gone");
    let err = ended.unwrap().unwrap_err().to_string();
    assert!(
        err.contains(&format!("127.0.0.1:{port}")),
        "names the server: {err}"
    );
    assert!(
        err.contains(&format!("watch again from revision {}", rev + 1)),
        "{err}"
    );
}

/// Regression (adversarial trials): nothing bounded a PostgreSQL statement. With a
/// command timeout, a write stuck behind another session's lock gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_timeout_bounds_a_statement_stuck_on_a_lock() {
    let schema = schema();
    let server = postgres::shared();
    let mut opts = PgOptions::parse(&server.url(&schema)).unwrap();
    opts.command_timeout = Some(Duration::from_secs(1));
    let store = PgStore::connect(opts).await.unwrap();
    store.put(b"/t/a", b"1").await.unwrap();
    // Another session holds the revision row (every writer's first lock) for 8 s.
    let sql = format!(
        "BEGIN; SELECT value FROM \"{schema}\".strata_meta WHERE name = 'revision' FOR UPDATE; SELECT pg_sleep(8); COMMIT;"
    );
    let holder = std::thread::spawn(move || server.psql(&sql));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = std::time::Instant::now();
    let err = store.put(b"/t/a", b"2").await.unwrap_err().to_string();
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "not bounded: {err}"
    );
    assert!(err.contains("statement timeout"), "{err}");
    holder.join().unwrap();
}
