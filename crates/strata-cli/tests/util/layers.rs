//! The layered keyspace of the layer tests: `/sigilgate/` on one etcd server,
//! `/public/` on another, every other key in SQLite, in a `strata.toml` of a sandbox.

use std::process::{Output, Stdio};

use strata_testkit::etcd::{etcdctl, EtcdCluster};

use super::Sandbox;

/// The sandbox and the two servers of a layered keyspace.
pub struct Layers {
    pub s: Sandbox,
    pub ops: EtcdCluster,
    pub comms: EtcdCluster,
}

/// Two fresh etcd servers and the config file that layers them over SQLite.
pub fn layers() -> Layers {
    let (ops, comms) = (EtcdCluster::start(1), EtcdCluster::start(1));
    let s = Sandbox::new();
    std::fs::write(
        s.path("strata.toml"),
        format!(
            "[stores.ops]\nurl = \"{}\"\ndial_timeout = \"2s\"\ncommand_timeout = \"5s\"\n\
             [stores.comms]\nurl = \"{}\"\ndial_timeout = \"2s\"\ncommand_timeout = \"5s\"\n\
             [stores.local]\nurl = \"sqlite:local.db\"\n\
             [layers]\n\"/sigilgate/\" = \"ops\"\n\"/public/\" = \"comms\"\n\"/\" = \"local\"\n",
            ops.url(),
            comms.url()
        ),
    )
    .unwrap();
    Layers { s, ops, comms }
}

/// `strata ARGS` with the config file's layered keyspace as the default store.
pub fn run(s: &Sandbox, args: &[&str]) -> Output {
    s.command(args)
        .env_remove("STRATA_STORE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// [`run`], which must succeed; its standard output.
pub fn ok(s: &Sandbox, args: &[&str]) -> String {
    let out = run(s, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every key of an etcd server, by etcdctl.
pub fn keys_of(cluster: &EtcdCluster) -> Vec<String> {
    etcdctl(cluster, &["get", "--prefix", "", "--keys-only"])
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `strata mirror --from FROM --to TO --status --report-every 1s`, its status lines
/// on a pipe (stdout), with the config file's stores.
pub fn start_mirror(s: &Sandbox, from: &str, to: &str) -> std::process::Child {
    s.command(&[
        "mirror",
        "--from",
        from,
        "--to",
        to,
        "--status",
        "--report-every",
        "1s",
    ])
    .env_remove("STRATA_STORE")
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap()
}

/// Waits up to 30 s until `strata diff --from FROM --to TO` finds nothing.
pub fn wait_caught_up(s: &Sandbox, from: &str, to: &str, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while run(s, &["diff", "--from", from, "--to", to]).status.code() != Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: the mirror never caught up"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
