//! Named stores in a config file (`strata.toml`): `--store NAME`, the file's
//! `default`, the documented order against `STRATA_STORE` and `ETCDCTL_ENDPOINTS`,
//! a password read from a file for a real etcd with authentication, and `strata
//! config check`.

mod util;

use std::process::Output;

use strata_testkit::etcd::{etcdctl, EtcdCluster};
use strata_testkit::free_port;
use util::Sandbox;

/// Runs in the sandbox with no store variable set: only the config file and flags.
fn run(s: &Sandbox, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = s.command(args);
    cmd.env_remove("STRATA_STORE")
        .env_remove("ETCDCTL_ENDPOINTS")
        .env_remove("STRATA_CONFIG")
        .env("XDG_CONFIG_HOME", s.path("no-user-config"))
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const TWO: &str =
    "default = \"a\"\n[stores.a]\nurl = \"sqlite:a.db\"\n[stores.b]\nurl = \"sqlite:b.db\"\n";

#[test]
fn store_names_and_the_files_default_in_the_documented_order() {
    let s = Sandbox::new();
    std::fs::write(s.path("strata.toml"), TWO).unwrap();
    assert!(run(&s, &[], &["put", "/x", "1"]).status.success());
    assert!(s.path("a.db").exists() && !s.path("strata.db").exists());
    assert!(run(&s, &[], &["--store", "b", "put", "/y", "2"])
        .status
        .success());
    assert_eq!(
        run(&s, &[], &["--store", "b", "get", "/x"]).status.code(),
        Some(3)
    );
    assert_eq!(text(&run(&s, &[], &["--store", "b", "get", "/y"])).0, "2\n");
    // STRATA_STORE may name a store too, and wins over the file's default.
    assert_eq!(
        text(&run(&s, &[("STRATA_STORE", "b")], &["get", "/y"])).0,
        "2\n"
    );
    let (out, _) = text(&run(&s, &[], &["status"]));
    assert!(
        out.contains("(from the config file)") && out.contains("a.db"),
        "{out}"
    );
    // ETCDCTL_ENDPOINTS wins over the file's default as well.
    let dead = format!("127.0.0.1:{}", free_port());
    let o = run(
        &s,
        &[("ETCDCTL_ENDPOINTS", &dead)],
        &["--dial-timeout", "1s", "get", "/x"],
    );
    assert!(text(&o).1.contains(&dead), "{}", text(&o).1);
    // A name the file does not define is refused, listing the names it has.
    let (_, err) = text(&run(&s, &[], &["--store", "c", "get", "/x"]));
    assert!(
        err.contains("has no [stores.c]") && err.contains("a, b"),
        "{err}"
    );
    // --config names another file; a missing one is an error naming it.
    let (_, err) = text(&run(&s, &[], &["--config", "nope.toml", "get", "/x"]));
    assert!(
        err.contains("nope.toml") && err.contains("cannot read it"),
        "{err}"
    );
    // Without a config file, a bare name is not taken for a URL.
    std::fs::remove_file(s.path("strata.toml")).unwrap();
    let (_, err) = text(&run(&s, &[], &["--store", "b", "get", "/x"]));
    assert!(
        err.contains("names a store, but there is no config file"),
        "{err}"
    );
}

#[test]
fn a_named_etcd_store_reads_its_password_from_a_file_and_never_prints_it() {
    let password = "cfg-Pw-91x";
    let cluster = EtcdCluster::start(1);
    etcdctl(&cluster, &["user", "add", &format!("root:{password}")]);
    etcdctl(&cluster, &["user", "grant-role", "root", "root"]);
    etcdctl(&cluster, &["auth", "enable"]);
    let s = Sandbox::new();
    std::fs::write(s.path("etcd.password"), format!("{password}\n")).unwrap();
    std::fs::write(
        s.path("strata.toml"),
        format!(
            "[stores.ops]\nurl = \"{}\"\nuser = \"root\"\npassword_file = \"etcd.password\"\ndial_timeout = \"3s\"\n",
            cluster.url()
        ),
    )
    .unwrap();
    let o = run(&s, &[], &["--store", "ops", "put", "/cfg/a", "1"]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(
        text(&run(&s, &[], &["--store", "ops", "get", "/cfg/a"])).0,
        "1\n"
    );
    // A wrong password (from the command line, which wins) fails without showing either.
    let o = run(
        &s,
        &[],
        &[
            "--store",
            "ops",
            "--password",
            "wrong-Pw-22",
            "get",
            "/cfg/a",
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    for shown in [&out, &err] {
        assert!(
            !shown.contains(password) && !shown.contains("wrong-Pw-22"),
            "{shown}"
        );
    }
    let (out, _) = text(&run(&s, &[], &["--store", "ops", "status", "-o", "json"]));
    assert!(!out.contains(password), "{out}");
}

#[test]
fn config_check_prints_stores_and_layers_and_fails_on_an_unreachable_store() {
    let s = Sandbox::new();
    run(
        &s,
        &[],
        &["--store", "sqlite:ops.db", "put", "/sigilgate/a", "1"],
    );
    let dead = free_port();
    std::fs::write(
        s.path("strata.toml"),
        format!(
            "[stores.ops]\nurl = \"sqlite:ops.db\"\n[stores.comms]\nurl = \"etcd://127.0.0.1:{dead}\"\ndial_timeout = \"1s\"\n\
             [layers]\n\"/sigilgate/\" = \"ops\"\n\"/public/\" = \"comms\"\n"
        ),
    )
    .unwrap();
    let o = run(&s, &[], &["config", "check"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        out.contains("/sigilgate/") && out.contains("ops@2"),
        "{out}"
    );
    assert!(
        out.contains("keys outside every layer are refused"),
        "{out}"
    );
    assert!(
        err.contains("1 store of") && err.contains("not reachable: comms"),
        "{err}"
    );
    let o = run(&s, &[], &["config", "check", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["layers"][0]["prefix"], "/sigilgate/");
    assert_eq!(json["layers"][0]["revision"], 2);
    assert_eq!(json["stores"][0]["name"], "comms");
    assert_eq!(json["stores"][0]["reachable"], false);
    // A mistake in the file is named with its table.
    std::fs::write(
        s.path("strata.toml"),
        "[stores.ops]\nurl = \"sqlite:ops.db\"\ncacertt = \"x\"\n",
    )
    .unwrap();
    let (_, err) = text(&run(&s, &[], &["config", "check"]));
    assert!(
        err.contains("strata.toml") && err.contains("unknown field `cacertt`"),
        "{err}"
    );
    // A store given as a URL does not read the file, so its mistake does not stop it.
    assert_eq!(
        text(&run(
            &s,
            &[],
            &["--store", "sqlite:ops.db", "get", "/sigilgate/a"]
        ))
        .0,
        "1\n"
    );
}
