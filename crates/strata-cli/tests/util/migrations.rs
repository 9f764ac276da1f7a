//! A synthetic data set and migrations for the `migrate` tests: users and nodes under
//! a test's own prefix, areas named after the test (tests share one server).

use std::collections::BTreeMap;
use std::path::Path;

/// Writes `{prefix}/users/{i}/…` and `{prefix}/nodes/{ip}/…` as a snapshot file.
pub fn write_data(path: &Path, prefix: &str, users: usize) {
    let mut data = BTreeMap::new();
    for i in 0..users {
        let u = format!("{prefix}/users/{i}");
        data.insert(format!("{u}/name"), format!("user {i}"));
        data.insert(
            format!("{u}/plan"),
            ["free", "pro", "team"][i % 3].to_owned(),
        );
        data.insert(format!("{u}/n"), "0".to_owned());
        data.insert(format!("{u}/counter"), "0".to_owned());
        if i % 5 == 0 {
            data.insert(format!("{u}/billing/currency"), "USD".to_owned());
        }
    }
    for i in 0..users / 4 {
        let n = format!("{prefix}/nodes/10.0.{}.{}", i / 250, i % 250);
        data.insert(format!("{n}/grpc_path"), format!("/p{i:x}"));
        data.insert(format!("{n}/status"), "up".to_owned());
    }
    std::fs::write(path, serde_json::to_string_pretty(&data).unwrap()).unwrap();
}

/// Writes the migrations folder: area `users_{tag}` (0001 rename + default, 0002 a jq
/// counter that shows a double application) and `nodes_{tag}` (0001 split).
pub fn write_migrations(dir: &Path, prefix: &str, tag: &str) {
    let users = dir.join(format!("users_{tag}"));
    let nodes = dir.join(format!("nodes_{tag}"));
    std::fs::create_dir_all(&users).unwrap();
    std::fs::create_dir_all(&nodes).unwrap();
    std::fs::write(
        users.join("0001_billing.toml"),
        format!(
            r#"description = "plan under billing, default currency"
[[steps]]
op = "rename_field"
object = "{prefix}/users/{{id}}"
from = "plan"
to = "billing/plan"
[[steps]]
op = "set_default"
object = "{prefix}/users/{{id}}"
field = "billing/currency"
value = "EUR"
"#
        ),
    )
    .unwrap();
    std::fs::write(
        users.join("0002_count.toml"),
        format!(
            r#"description = "count applications"
[[steps]]
op = "jq"
object = "{prefix}/users/{{id}}"
filter = '.n = ((.n | tonumber) + 1 | tostring)'
"#
        ),
    )
    .unwrap();
    std::fs::write(
        nodes.join("0001_paths.toml"),
        format!(
            r#"description = "paths apart"
[[steps]]
op = "split"
object = "{prefix}/nodes/{{ip}}"
fields = ["grpc_path"]
to = "{prefix}/paths/{{ip}}"
"#
        ),
    )
    .unwrap();
}

/// What the migrations above must make of the data of [`write_data`].
pub fn expected(data: &BTreeMap<String, String>, prefix: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in data {
        let rest = &k[prefix.len()..];
        if let Some(user) = rest.strip_prefix("/users/") {
            let (id, field) = user.split_once('/').unwrap();
            let base = format!("{prefix}/users/{id}");
            match field {
                "plan" => {
                    out.insert(format!("{base}/billing/plan"), v.clone());
                }
                "n" => {
                    out.insert(k.clone(), (v.parse::<u64>().unwrap() + 1).to_string());
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
            out.entry(format!("{base}/billing/currency"))
                .or_insert_with(|| "EUR".to_owned());
        } else if let Some(node) = rest.strip_prefix("/nodes/") {
            let (ip, field) = node.split_once('/').unwrap();
            if field == "grpc_path" {
                out.insert(format!("{prefix}/paths/{ip}/grpc_path"), v.clone());
            } else {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    // A currency already set wins over the default.
    for (k, v) in data {
        if k.ends_with("/billing/currency") {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}
