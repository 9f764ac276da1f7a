//! Regressions found by adversarial trials (hostile inputs, odd files, extreme flags):
//! each test is named for what broke, and failed before its fix.

mod util;

use std::collections::BTreeMap;

use util::{examples, Sandbox};

type Data = BTreeMap<String, String>;

fn export(s: &Sandbox, prefix: &str) -> Data {
    serde_json::from_str(&s.ok(&["export", "--prefix", prefix])).unwrap()
}

fn load_sigilgate(s: &Sandbox) {
    s.ok(&[
        "load",
        examples().join("sigilgate/expected.json").to_str().unwrap(),
    ]);
}

#[test]
fn move_of_multi_field_objects_moves_every_field() {
    let s = Sandbox::new();
    load_sigilgate(&s);
    let nodes = export(&s, "/sigilgate/nodes/");
    assert!(
        nodes.len() > 9,
        "the example's nodes have several fields each"
    );
    let dir = s.path("migrations/nodes");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("0001_move.toml"),
        "description = 'nodes move out'\n[[steps]]\nop = 'move'\nfrom = '/sigilgate/nodes/{ip}'\nto = '/n/{ip}'\n",
    )
    .unwrap();
    let dir = s.path("migrations");
    let out = s.ok(&["migrate", "up", "--dir", dir.to_str().unwrap(), "--yes"]);
    assert!(!out.contains("0 object"), "{out}");
    let moved: Data = nodes
        .iter()
        .map(|(k, v)| (k.replacen("/sigilgate/nodes/", "/n/", 1), v.clone()))
        .collect();
    assert_eq!(export(&s, "/n/"), moved);
    assert!(export(&s, "/sigilgate/nodes/").is_empty());
    s.ok(&["migrate", "verify", "--dir", dir.to_str().unwrap()]);
}
