//! The `strata` binary against a real PostgreSQL, checked with the real `psql`.

mod util;

use strata_testkit::postgres;
use util::{examples, Sandbox};

#[test]
fn sigilgate_round_trip_checked_with_psql() {
    let pg = postgres::shared();
    let schema = format!("cli{}", std::process::id());
    let s = Sandbox::with_store(&pg.url(&schema));
    let path = examples().join("sigilgate/expected.json");
    let expected = std::fs::read_to_string(&path).unwrap();
    let out = s.ok(&["load", path.to_str().unwrap()]);
    assert!(out.starts_with("loaded 356 keys: 356 changed"), "{out}");
    assert!(s
        .ok(&["load", path.to_str().unwrap()])
        .contains("0 changes"));
    assert_eq!(s.ok(&["export"]), expected);
    let count = pg.psql(&format!("SELECT count(*) FROM \"{schema}\".strata_kv"));
    assert_eq!(count.trim(), "356");
    let value = pg.psql(&format!(
        "SELECT convert_from(value, 'UTF8') FROM \"{schema}\".strata_kv \
         WHERE key = convert_to('/sigilgate/nodes/2a01:4f8:c0c:1::78/role', 'UTF8')"
    ));
    assert_eq!(value.trim(), "core");
    // The key-value commands and their exit codes work the same way.
    s.ok(&["cas", "/lock", "me", "--expect-absent"]);
    s.expect(3, &["cas", "/lock", "you", "--expect-absent"]);
    s.ok(&["put", "/lock", "again"]);
    assert_eq!(s.ok(&["history", "/lock"]).lines().count(), 3);
    assert_eq!(
        s.ok(&["ls"]),
        "lock        = again\npublic/     61 keys\nsigilgate/  295 keys\n"
    );
    // A bad URL or an unreachable server is a clear error that hides the password.
    let out = s
        .command(&[
            "--store",
            "postgres://app:hunter2@127.0.0.1:1/db",
            "get",
            "/x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open the store postgres://app@127.0.0.1:1/db")
            && !err.contains("hunter2"),
        "{err}"
    );
}
