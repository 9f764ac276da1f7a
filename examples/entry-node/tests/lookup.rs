//! The entry node against a SQLite store loaded with the sigilgate example data
//! (`examples/sigilgate/expected.json`): device ids on the command line and on stdin
//! resolve to their core nodes; an unknown id exits 3 and says so.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn entry_node(url: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_entry-node"))
        .arg("--store")
        .arg(url)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start entry-node");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn resolves_devices_of_the_example_data_to_their_core_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("strata.db").display());
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sigilgate/expected.json");
    let entries = strata_ops::snapshot::read_snapshot(&data).unwrap();
    let store = strata_store::open(&url).await.unwrap();
    strata_ops::load::load(&store, entries.clone(), None, &mut |_| {})
        .await
        .unwrap();
    drop(store);

    let out = entry_node(
        &url,
        &[
            "245448c8-989b-49dc-b95f-e8a0060c8804",
            "0c5cd43b-f53e-4c38-be5c-39319d892098",
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "245448c8-989b-49dc-b95f-e8a0060c8804 2a01:4f8:c0c:1::78\n\
         0c5cd43b-f53e-4c38-be5c-39319d892098 10.20.5.244\n"
    );

    // Every route of the data set, one id per line of stdin.
    let routes: Vec<(&str, &str)> = entries
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("/sigilgate/routes/")?, v.as_str())))
        .collect();
    assert!(routes.len() > 10);
    let ids: String = routes.iter().map(|(id, _)| format!("{id}\n")).collect();
    let out = entry_node(&url, &[], &ids);
    assert!(out.status.success(), "{out:?}");
    let want: String = routes
        .iter()
        .map(|(id, ip)| format!("{id} {ip}\n"))
        .collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);

    let out = entry_node(&url, &["no-such-device"], "");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("device no-such-device has no route"), "{err}");
}
