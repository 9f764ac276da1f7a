//! Generated test data: a legacy tree in the sigilgate layout (examples/README.md),
//! scaled to any number of users, for crash tests and benchmarks.

use std::path::Path;

/// Writes `users` users with two devices each (and 16 core nodes) under `root`, in the
/// layout `examples/sigilgate/mapping.toml` reads. A quarter of the users have no email.
pub fn sigilgate_tree(root: &Path, users: usize) {
    for dir in [
        "users",
        "devices",
        "nodes",
        "roles/core",
        "domains",
        "support",
        "routes",
    ] {
        std::fs::create_dir_all(root.join(dir)).expect("create the tree");
    }
    let write = |path: String, value: serde_json::Value| {
        std::fs::write(root.join(path), value.to_string()).expect("write a record")
    };
    for n in 0..16 {
        let ip = format!("10.9.0.{n}");
        write(
            format!("nodes/{ip}.json"),
            serde_json::json!({"ip": ip, "status": "up", "grpc_path": format!("/p{n}")}),
        );
        write(
            format!("roles/core/{ip}.json"),
            serde_json::json!({"assigned_at": "2024-01-01T00:00:00Z"}),
        );
    }
    for id in 0..users {
        let email = (id % 4 != 0).then(|| format!("user{id}@example.org"));
        write(
            format!("users/{id}.json"),
            serde_json::json!({"id": id, "username": format!("u_{id:06x}"), "status": "active", "max_devices": 3,
                "created_at": "2024-01-01T00:00:00Z", "email": email, "display_name": format!("User {id}"),
                "newsletter": email.as_ref().map(|_| id % 2 == 0), "telegram_id": 100000 + id,
                "plan": if id % 5 == 0 { Some("pro") } else { None }}),
        );
        for d in 0..2 {
            let uuid = format!("00000000-0000-4000-8000-{id:06}{d:06}");
            write(
                format!("devices/{uuid}.json"),
                serde_json::json!({"uuid": uuid, "user_id": id, "name": format!("u{id}-d{d}"), "platform": "linux",
                    "public_key": "noAEcTl31uGQ+dFCGAtmNtc0mRau8URBfT5MISizhBH=", "core_ip": format!("10.9.0.{}", id % 16),
                    "created_at": "2024-02-01T00:00:00Z", "last_seen": "2025-01-01T00:00:00Z"}),
            );
        }
    }
}
