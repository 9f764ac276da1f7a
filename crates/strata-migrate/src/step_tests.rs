//! Unit tests of [`super`]: every op on every shape of object.

use super::*;

static NO_STOP: AtomicBool = AtomicBool::new(false);

fn object(fields: &[(&str, &str)]) -> Object {
    let p = Pattern::parse("/app/users/{id}").unwrap();
    let m = p.matches("/app/users/7").unwrap();
    Object {
        key: m.object,
        vars: m.vars,
        fields: fields
            .iter()
            .map(|(f, v)| (f.to_string(), (v.as_bytes().to_vec(), 3)))
            .collect(),
    }
}

fn step(toml_text: &str) -> Step {
    let spec: StepSpec = toml::from_str(toml_text).unwrap();
    Step::from_spec(&spec).unwrap()
}

fn show(edits: &Edits) -> Vec<String> {
    edits
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("+{k}={}", String::from_utf8_lossy(v)),
            None => format!("-{k}"),
        })
        .collect()
}

#[test]
fn rename_set_default_split_and_delete() {
    let obj = object(&[("plan", "pro"), ("status", "active")]);
    let s = step("op='rename_field'\nobject='/app/users/{id}'\nfrom='plan'\nto='billing/plan'");
    assert_eq!(
        show(&s.apply(&obj, &NO_STOP).unwrap()),
        ["+/app/users/7/billing/plan=pro", "-/app/users/7/plan"]
    );
    let s = step("op='set_default'\nobject='/app/users/{id}'\nfield='plan'\nvalue='free'");
    assert!(s.apply(&obj, &NO_STOP).unwrap().is_empty());
    let s = step("op='split'\nobject='/app/users/{id}'\nfields=['status']\nto='/app/status/{id}'");
    assert_eq!(
        show(&s.apply(&obj, &NO_STOP).unwrap()),
        ["+/app/status/7/status=active", "-/app/users/7/status"]
    );
    let s = step("op='delete'\nobject='/app/users/{id}'");
    assert_eq!(s.apply(&obj, &NO_STOP).unwrap().len(), 2);
}

#[test]
fn json_round_trip() {
    let obj = object(&[("config", r#"{"a":1,"b":"x","c/d":true}"#)]);
    let s = step("op='explode_json'\nobject='/app/users/{id}'\nfield='config'");
    let edits = s.apply(&obj, &NO_STOP).unwrap();
    assert_eq!(
        show(&edits),
        [
            "-/app/users/7/config",
            "+/app/users/7/config/a=1",
            "+/app/users/7/config/b=x",
            "+/app/users/7/config/c%2Fd=true"
        ]
    );
    let exploded = object(&[
        ("config/a", "1"),
        ("config/b", "x"),
        ("config/c%2Fd", "true"),
    ]);
    let s = step("op='implode_json'\nobject='/app/users/{id}'\nfield='config'");
    let edits = s.apply(&exploded, &NO_STOP).unwrap();
    assert_eq!(
        edits["/app/users/7/config"].as_deref(),
        Some(&br#"{"a":1,"b":"x","c/d":true}"#[..])
    );
    let bad = object(&[("config", "not json")]);
    let s = step("op='explode_json'\nobject='/app/users/{id}'\nfield='config'");
    assert!(s
        .apply(&bad, &NO_STOP)
        .unwrap_err()
        .contains("/app/users/7/config"));
}

#[test]
fn jq_rewrites_and_deletes() {
    let obj = object(&[("status", "ACTIVE"), ("n", "1")]);
    let s = step("op='jq'\nobject='/app/users/{id}'\nfilter='.status |= ascii_downcase | .id = $vars.id | del(.n)'");
    assert_eq!(
        show(&s.apply(&obj, &NO_STOP).unwrap()),
        [
            "+/app/users/7/id=7",
            "-/app/users/7/n",
            "+/app/users/7/status=active"
        ]
    );
    let s = step("op='jq'\nobject='/app/users/{id}'\nfilter='null'");
    assert_eq!(s.apply(&obj, &NO_STOP).unwrap().len(), 2);
    let s = step("op='jq'\nobject='/app/users/{id}'\nfilter='.[]'");
    assert!(s.apply(&obj, &NO_STOP).unwrap_err().contains("exactly one"));
    let s = step("op='jq'\nobject='/app/users/{id}'\nfilter='.status'");
    let err = s.apply(&obj, &NO_STOP).unwrap_err();
    assert!(err.contains("turned /app/users/7 into a string"), "{err}");
    assert!(!err.contains("ACTIVE"), "a value may be secret: {err}");
    let s = step("op='jq'\nobject='/app/users/{id}'\nfilter='.n |= error(\"no n\")'");
    let err = s.apply(&obj, &NO_STOP).unwrap_err();
    assert!(err.starts_with("on /app/users/7: jq expression"), "{err}");
    assert!(err.contains("no n"), "{err}");
}

/// The store after `edits`: every key of `obj` with its value, edits applied.
fn applied(obj: &Object, edits: &Edits) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = obj
        .fields
        .iter()
        .map(|(f, (v, _))| (obj.key_of(f), String::from_utf8_lossy(v).into_owned()))
        .collect();
    for (k, v) in edits {
        match v {
            Some(v) => out.insert(k.clone(), String::from_utf8_lossy(v).into_owned()),
            None => out.remove(k),
        };
    }
    out
}

/// Regression (adversarial trials): `move` of objects made of several fields changed
/// nothing (only a value at the object key itself moved) and the migration was
/// recorded as applied. Every op, on every shape of object.
#[test]
fn move_of_multi_field_objects_moves_every_field() {
    let shapes: [&[(&str, &str)]; 4] = [
        &[("name", "n"), ("addr/ip", "10.0.0.1")], // nested fields
        &[("", "v")],                              // a value at the key
        &[("", "v"), ("name", "n")],               // both
        &[
            ("name", "n"),
            ("devices/d1/pubkey", "k"),
            ("devices/d1/name", "dn"),
        ], // objects below
    ];
    for shape in shapes {
        let obj = object(shape);
        let before = applied(&obj, &Edits::new());
        let run = |text: &str| {
            let s = step(text);
            let edits = s.apply(&obj, &NO_STOP).unwrap();
            assert!(
                !(edits.is_empty() && s.must_change(&obj)),
                "{text} changed nothing on {shape:?}"
            );
            applied(&obj, &edits)
        };
        // move: every key, the object key's own value included, under the new key.
        let moved: BTreeMap<_, _> = before
            .iter()
            .map(|(k, v)| (k.replacen("/app/users/7", "/n/7", 1), v.clone()))
            .collect();
        assert_eq!(
            run("op='move'\nfrom='/app/users/{id}'\nto='/n/{id}'"),
            moved,
            "{shape:?}"
        );
        assert!(
            run("op='delete'\nobject='/app/users/{id}'").is_empty(),
            "{shape:?}"
        );
        let has_name = before.contains_key("/app/users/7/name");
        let renamed = run("op='rename_field'\nobject='/app/users/{id}'\nfrom='name'\nto='title'");
        assert!(!renamed.contains_key("/app/users/7/name"), "{shape:?}");
        assert_eq!(
            renamed.contains_key("/app/users/7/title"),
            has_name,
            "{shape:?}"
        );
        assert_eq!(renamed.len(), before.len());
        let split =
            run("op='split'\nobject='/app/users/{id}'\nfields=['name','devices']\nto='/s/{id}'");
        for (k, v) in &before {
            let rest = k.strip_prefix("/app/users/7/").unwrap_or("");
            let goes = rest == "name" || rest.starts_with("devices/");
            let want = if goes {
                format!("/s/7/{rest}")
            } else {
                k.clone()
            };
            assert_eq!(split.get(&want), Some(v), "{shape:?}: {k}");
        }
        assert_eq!(split.len(), before.len());
        let deleted = run("op='delete_field'\nobject='/app/users/{id}'\nfield='devices'");
        assert!(deleted.keys().all(|k| !k.contains("/devices")), "{shape:?}");
        assert_eq!(
            run("op='set_default'\nobject='/app/users/{id}'\nfield='name'\nvalue='x'")
                ["/app/users/7/name"],
            before.get("/app/users/7/name").map_or("x", |v| v.as_str())
        );
    }
}

#[test]
fn refuses_steps_that_cannot_change_anything() {
    for text in [
        "op='rename_field'\nobject='/a/{id}'\nfrom='f'\nto='f'",
        "op='split'\nobject='/a/{id}'\nfields=['f']\nto='/a/{id}'",
    ] {
        let spec: StepSpec = toml::from_str(text).unwrap();
        let err = Step::from_spec(&spec).unwrap_err();
        assert!(err.contains("onto itself"), "{text}: {err}");
    }
}

#[test]
fn refuses_unbound_templates_and_self_moves() {
    let spec: StepSpec = toml::from_str("op='move'\nfrom='/a/{id}'\nto='/a/x/{id}'").unwrap();
    assert!(Step::from_spec(&spec)
        .unwrap_err()
        .contains("range still being read"));
    let spec: StepSpec =
        toml::from_str("op='split'\nobject='/a/{id}'\nfields=['f']\nto='/b/{ip}'").unwrap();
    assert!(Step::from_spec(&spec).unwrap_err().contains("{ip}"));
    assert!(
        toml::from_str::<StepSpec>("op='move'\nfrom='/a/{id}'\nto='/b/{id}'\nextra=1").is_err()
    );
}
