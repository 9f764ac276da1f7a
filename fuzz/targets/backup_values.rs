//! Values in backup files, read back on restore: any JSON value of a member is bytes,
//! a secret that cannot be restored, or an error naming the key (never a panic);
//! and every value written (a plain string, `{"base64": …}`, an `{"encrypted": …}`
//! envelope for a secret of the sigilgate schema) reads back as the bytes it came
//! from.
#![no_main]

use std::sync::OnceLock;

use strata_backup::secrets::Secrets;

fn secrets() -> &'static Secrets {
    static SECRETS: OnceLock<Secrets> = OnceLock::new();
    SECRETS.get_or_init(|| {
        let schema = strata_schema::Schema::parse(
            include_str!("../../examples/sigilgate/schema.toml"),
            "schema.toml",
        )
        .expect("the example schema parses");
        Secrets::new(Some(schema), vec![7; 32], Some(vec![9; 32]))
    })
}

const SECRET_KEY: &[u8] =
    b"/sigilgate/users/7/devices/5b0c1a8e-1d1c-4c1a-9f1e-3f1e2d1c0b0a/public_key";

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let s = secrets();
    // Any member value: read back or refused.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = s.reveal(b"/sigilgate/users/7/name", &value);
        let _ = s.reveal(SECRET_KEY, &value);
    }
    // Any bytes, written as a plain value and as a secret, read back the same.
    for key in [b"/sigilgate/users/7/name".as_slice(), SECRET_KEY] {
        if let Some(written) = s.protect(key, data) {
            let text = serde_json::to_vec(&written).expect("serializes");
            let parsed: serde_json::Value = serde_json::from_slice(&text).expect("parses");
            let back = s.reveal(key, &parsed).expect("a written value reads back");
            assert_eq!(back.as_deref(), Some(data), "a value does not round-trip");
        }
    }
});
