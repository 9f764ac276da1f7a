//! `strata schema check` on SQLite and on a real etcd: the shipped data set is clean,
//! and a store seeded with one violation of each kind reports each once, with its key.

mod util;

use strata_testkit::etcd::EtcdCluster;
use util::{examples, Sandbox};

fn check_store(s: &Sandbox) {
    let schema = examples().join("sigilgate/schema.toml");
    let schema = schema.to_str().unwrap();
    s.ok(&[
        "load",
        examples().join("sigilgate/expected.json").to_str().unwrap(),
    ]);
    let (_, err) = s.expect(0, &["schema", "check", "--schema", schema]);
    assert!(err.contains("the store matches the schema"), "{err}");
    for (k, v) in [
        ("/sigilgate/stray/key", "x"),
        ("/sigilgate/users/94/max_devices", "many"),
        ("/public/support/107/contact", "nobody@example.org"),
        ("/sigilgate/users/94/display_name", "Leaked"),
    ] {
        s.ok(&["put", k, v]);
    }
    s.ok(&["del", "/sigilgate/nodes/10.20.0.20/role"]);
    let (out, err) = s.expect(1, &["schema", "check", "--schema", schema, "-o", "json"]);
    assert!(err.contains("5 violations of the schema"), "{err}");
    let found: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let got: Vec<(&str, &str)> = found
        .iter()
        .map(|v| (v["kind"].as_str().unwrap(), v["key"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("unknown-key", "/sigilgate/stray/key"),
            ("missing-field", "/sigilgate/nodes/10.20.0.20/role"),
            ("wrong-type", "/sigilgate/users/94/max_devices"),
            ("dangling-ref", "/public/support/107/contact"),
            ("other-layer", "/sigilgate/users/94/display_name"),
        ]
    );
    // --prefix narrows the check.
    let (out, _) = s.expect(
        1,
        &[
            "schema", "check", "--schema", schema, "--prefix", "/public/",
        ],
    );
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn schema_check_on_sqlite() {
    check_store(&Sandbox::new());
}

#[test]
fn schema_check_on_etcd() {
    let cluster = EtcdCluster::start(1);
    check_store(&Sandbox::with_store(&cluster.url()));
}

#[test]
fn schema_file_errors_name_the_file() {
    let s = Sandbox::new();
    std::fs::write(
        s.path("bad.toml"),
        "[entities.u]\nkey = \"/u/{id}\"\nvars = { id = \"number\" }\n",
    )
    .unwrap();
    let (_, err) = s.expect(1, &["--create", "schema", "check", "--schema", "bad.toml"]);
    assert!(
        err.contains("bad.toml: entity u: variable id: unknown type \"number\""),
        "{err}"
    );
}

#[test]
fn schema_infer_drafts_the_broker_patterns() {
    infer_on(&Sandbox::new());
}

#[test]
fn schema_infer_and_doc_on_etcd() {
    let cluster = EtcdCluster::start(1);
    let s = Sandbox::with_store(&cluster.url());
    infer_on(&s);
    doc_on(&Sandbox::with_store(&EtcdCluster::start(1).url()));
}

fn infer_on(s: &Sandbox) {
    s.ok(&[
        "import",
        examples()
            .join("etcd-v2-broker/etcd-v2-dump.json")
            .to_str()
            .unwrap(),
        "--format",
        "etcd-v2",
    ]);
    let draft = s.ok(&["schema", "infer"]);
    for pattern in [
        "/service/{id}/members/{uuid}",
        "/service/{id}/state",
        "/postgresql-brokerpatroni/{name}",
        "/routing/allocation/{id}",
        "/routing/nextport",
    ] {
        assert!(
            draft.contains(&format!("#   {pattern}\n")),
            "{pattern}: {draft}"
        );
    }
    // The draft is a schema the store passes, and so is the shipped broker schema.
    std::fs::write(s.path("draft.toml"), &draft).unwrap();
    s.ok(&["schema", "check", "--schema", "draft.toml"]);
    s.ok(&[
        "schema",
        "check",
        "--schema",
        examples().join("broker/schema.toml").to_str().unwrap(),
    ]);
}

#[test]
fn schema_doc_with_live_counts() {
    doc_on(&Sandbox::new());
}

fn doc_on(s: &Sandbox) {
    s.ok(&[
        "load",
        examples().join("sigilgate/expected.json").to_str().unwrap(),
    ]);
    let schema = examples().join("sigilgate/schema.toml");
    let md = s.ok(&[
        "schema",
        "doc",
        "--schema",
        schema.to_str().unwrap(),
        "--live",
    ]);
    assert!(
        md.starts_with("# Keyspace\n") && md.contains("## Layer public (`/public/`)"),
        "{md}"
    );
    assert!(md.contains("28 keys in the store."), "{md}");
}

fn objects_and_refs(s: &Sandbox) {
    let schema = examples().join("sigilgate/schema.toml");
    let schema = schema.to_str().unwrap();
    s.ok(&[
        "load",
        examples().join("sigilgate/expected.json").to_str().unwrap(),
    ]);
    std::fs::write(s.path("user.json"), r#"{"username": "zed", "status": "active", "max_devices": 2, "created_at": "2025-01-01T00:00:00Z"}"#).unwrap();
    s.ok(&[
        "object",
        "create",
        "/sigilgate/users/500",
        "user.json",
        "--schema",
        schema,
    ]);
    let (_, err) = s.expect(
        3,
        &[
            "object",
            "create",
            "/sigilgate/users/500",
            "user.json",
            "--schema",
            schema,
        ],
    );
    assert!(err.contains("/sigilgate/users/500 already exists"), "{err}");
    let got: serde_json::Value =
        serde_json::from_str(&s.ok(&["object", "get", "/sigilgate/users/500", "--schema", schema]))
            .unwrap();
    assert_eq!(got["max_devices"], 2);
    assert_eq!(got["plan"], "free", "the default was written");
    let (_, err) = s.expect(
        1,
        &[
            "object",
            "set",
            "/sigilgate/users/500",
            "max_devices",
            "lots",
            "--schema",
            schema,
        ],
    );
    assert!(err.contains("\"lots\" is not an integer"), "{err}");
    s.ok(&[
        "object",
        "set",
        "/sigilgate/users/500",
        "max_devices",
        "4",
        "--schema",
        schema,
    ]);
    assert_eq!(s.ok(&["get", "/sigilgate/users/500/max_devices"]), "4\n");
    s.ok(&[
        "object",
        "delete",
        "/sigilgate/users/500",
        "--schema",
        schema,
    ]);
    s.expect(
        3,
        &["object", "get", "/sigilgate/users/500", "--schema", schema],
    );
    let refs: serde_json::Value = serde_json::from_str(&s.ok(&[
        "refs",
        "/sigilgate/nodes/10.20.0.20",
        "--schema",
        schema,
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(refs["entity"], "node");
    assert_eq!(refs["referenced_by"].as_array().unwrap().len(), 8, "{refs}");

    // Transitively: the node, the 8 routes to it, each reference once.
    let graph: serde_json::Value = serde_json::from_str(&s.ok(&[
        "refs",
        "/sigilgate/nodes/10.20.0.20",
        "--schema",
        schema,
        "--depth",
        "2",
        "-o",
        "json",
    ]))
    .unwrap();
    let nodes = graph["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 9, "{graph}");
    assert_eq!(nodes[0]["hops"], 0);
    assert!(nodes[1..]
        .iter()
        .all(|n| n["entity"] == "route" && n["hops"] == 1));
    let edges = graph["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 8, "{graph}");
    assert!(edges
        .iter()
        .all(|e| e["to"] == "/sigilgate/nodes/10.20.0.20"));
    // Two hops from a ticket: its contact, and the contact's other tickets.
    let ticket = s.ok(&["get", "--prefix", "/public/support/", "--keys-only"]);
    let first = ticket
        .lines()
        .find(|k| k.ends_with("/contact"))
        .expect("a ticket with a contact");
    let ticket = first.trim_end_matches("/contact");
    let dot = s.ok(&[
        "refs", ticket, "--schema", schema, "--depth", "2", "-o", "dot",
    ]);
    assert!(
        dot.starts_with("digraph refs {") && dot.contains("-> \"/public/contacts/"),
        "{dot}"
    );
}

#[test]
fn objects_and_refs_on_sqlite() {
    objects_and_refs(&Sandbox::new());
}

#[test]
fn objects_and_refs_on_etcd() {
    let cluster = EtcdCluster::start(1);
    objects_and_refs(&Sandbox::with_store(&cluster.url()));
}

/// An object of 200 fields is more than one etcd transaction (128 ops): refused with
/// its op count and the limit, and written whole with --chunked.
#[test]
fn chunked_objects_on_etcd() {
    let cluster = EtcdCluster::start(1);
    let s = Sandbox::with_store(&cluster.url());
    let fields: String = (0..200)
        .map(|i| format!("f{i:03} = {{ type = \"int\", required = true }}\n"))
        .collect();
    std::fs::write(s.path("big.toml"), format!("[entities.big]\nkey = \"/big/{{id}}\"\nvars = {{ id = \"int\" }}\n[entities.big.fields]\n{fields}")).unwrap();
    let object: serde_json::Map<String, serde_json::Value> = (0..200)
        .map(|i| (format!("f{i:03}"), serde_json::json!(i)))
        .collect();
    std::fs::write(
        s.path("big.json"),
        serde_json::Value::Object(object.clone()).to_string(),
    )
    .unwrap();
    let (_, err) = s.expect(
        1,
        &[
            "object", "create", "/big/1", "big.json", "--schema", "big.toml",
        ],
    );
    assert!(
        err.contains("needs 200 operations") && err.contains("at most 128"),
        "{err}"
    );
    s.ok(&[
        "object",
        "create",
        "/big/1",
        "big.json",
        "--schema",
        "big.toml",
        "--chunked",
    ]);
    let got: serde_json::Value =
        serde_json::from_str(&s.ok(&["object", "get", "/big/1", "--schema", "big.toml"])).unwrap();
    assert_eq!(got, serde_json::Value::Object(object));
    s.expect(3, &["get", "/_strata/pending/big/1"]);
}
