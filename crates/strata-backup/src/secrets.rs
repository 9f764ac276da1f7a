//! Secrets never reach the repository in the clear.
//!
//! Owns what a schema says about each key (a `secret` field or value, `secret_paths`
//! inside a JSON value, an entity with `backup = false`) and the two ways a secret is
//! written: by default a keyed fingerprint, HMAC-SHA256 under a key kept outside the
//! repository's history (so a diff still shows that a secret changed, and the value
//! cannot be guessed from the repository alone), or with `--encrypt-secrets KEYFILE`
//! ChaCha20-Poly1305 with a nonce derived from the key and value (deterministic: the
//! same data gives the same file), restorable with the key file.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use strata_core::base64;
use strata_schema::{KeyClass, Schema};

use crate::layout::encode_value;
use crate::Error;

/// How values are written.
#[derive(Clone)]
pub struct Secrets {
    schema: Option<Schema>,
    fingerprint_key: Vec<u8>,
    cipher: Option<(ChaCha20Poly1305, Vec<u8>)>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("schema", &self.schema.is_some())
            .field("encrypt", &self.cipher.is_some())
            .finish()
    }
}

/// Reads a 32-byte key file (raw, or 64 hex digits).
pub fn read_key(path: &Path) -> Result<Vec<u8>, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::Key {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let hex = text.trim();
    if let Some(key) = strata_core::hex::decode(hex).filter(|k| k.len() == 32) {
        return Ok(key);
    }
    if bytes.len() == 32 {
        return Ok(bytes);
    }
    Err(Error::Key {
        path: path.display().to_string(),
        reason: "a key file holds 32 bytes, or 64 hex digits; make one with `head -c 32 /dev/urandom > FILE`".into(),
    })
}

/// Reads `path`, or creates it with 32 random bytes.
pub fn read_or_create_key(path: &Path) -> Result<Vec<u8>, Error> {
    if !path.exists() {
        let mut key = vec![0u8; 32];
        let io = |e: std::io::Error| Error::Key {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").map_err(io)?,
            &mut key,
        )
        .map_err(io)?;
        // Readable by its owner only, like an SSH key.
        crate::repo::write_atomically(path, &key, 0o600).map_err(io)?;
    }
    read_key(path)
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(&(p.len() as u64).to_le_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

impl Secrets {
    pub fn new(
        schema: Option<Schema>,
        fingerprint_key: Vec<u8>,
        encrypt_key: Option<Vec<u8>>,
    ) -> Self {
        let cipher = encrypt_key.map(|k| {
            let cipher = ChaCha20Poly1305::new_from_slice(&k).expect("keys are 32 bytes");
            (cipher, k)
        });
        Secrets {
            schema,
            fingerprint_key,
            cipher,
        }
    }

    /// True when the key's entity is `backup = false`.
    pub fn skipped(&self, key: &[u8]) -> bool {
        self.schema
            .as_ref()
            .is_some_and(|s| s.classify(key) == KeyClass::NoBackup)
    }

    fn fingerprint(&self, key: &[u8], value: &[u8]) -> String {
        format!(
            "hmac-sha256:{}",
            strata_core::hex::encode(&hmac(&self.fingerprint_key, &[key, value]))
        )
    }

    /// The value as written to the repository; `None` to leave the key out.
    pub fn protect(&self, key: &[u8], value: &[u8]) -> Option<Value> {
        let Some(schema) = &self.schema else {
            return Some(encode_value(value));
        };
        let class = schema.classify(key);
        let one = |name: &str, v: Value| {
            let mut m = Map::new();
            m.insert(name.to_owned(), v);
            Some(Value::Object(m))
        };
        match class {
            KeyClass::Plain => Some(encode_value(value)),
            KeyClass::NoBackup => None,
            _ if self.cipher.is_some() => {
                let (cipher, k) = self.cipher.as_ref().expect("checked");
                let nonce_bytes = hmac(k, &[b"nonce", key, value]);
                let nonce = Nonce::from_slice(&nonce_bytes[..12]);
                let sealed = cipher
                    .encrypt(
                        nonce,
                        Payload {
                            msg: value,
                            aad: key,
                        },
                    )
                    .expect("ChaCha20-Poly1305 encrypts any message");
                let mut out = nonce_bytes[..12].to_vec();
                out.extend(sealed);
                one(
                    "encrypted",
                    Value::String(format!("chacha20poly1305:{}", base64::encode(&out))),
                )
            }
            KeyClass::Secret => one("secret", Value::String(self.fingerprint(key, value))),
            KeyClass::SecretPaths(paths) => {
                let Ok(mut doc) = serde_json::from_slice::<Value>(value) else {
                    return one("secret", Value::String(self.fingerprint(key, value)));
                };
                for path in paths {
                    strata_schema::secret_paths::each_holder(&mut doc, path, &mut |obj, name| {
                        if let Some(member) = obj.get_mut(name) {
                            let text = member.to_string();
                            *member = Value::String(self.fingerprint(key, text.as_bytes()));
                        }
                    });
                }
                one("redacted", doc)
            }
        }
    }

    /// A written value back as bytes; `Ok(None)` for a fingerprinted secret, which
    /// cannot be restored.
    pub fn reveal(&self, key: &[u8], value: &Value) -> Result<Option<Vec<u8>>, Error> {
        let bad = |reason: &str| Error::Format {
            key: strata_core::key::display_key(key),
            reason: reason.to_owned(),
        };
        match value {
            Value::String(s) => Ok(Some(s.as_bytes().to_vec())),
            Value::Object(m) => {
                if let Some(Value::String(b)) = m.get("base64") {
                    return base64::decode(b).map(Some).ok_or_else(|| bad("bad base64"));
                }
                if m.contains_key("secret") || m.contains_key("redacted") {
                    return Ok(None);
                }
                if let Some(Value::String(e)) = m.get("encrypted") {
                    let Some((cipher, _)) = &self.cipher else {
                        return Err(Error::NeedKey {
                            key: strata_core::key::display_key(key),
                        });
                    };
                    let sealed = e
                        .strip_prefix("chacha20poly1305:")
                        .and_then(base64::decode)
                        .filter(|s| s.len() > 12)
                        .ok_or_else(|| bad("bad encrypted value"))?;
                    let (nonce, body) = sealed.split_at(12);
                    return cipher
                        .decrypt(
                            Nonce::from_slice(nonce),
                            Payload {
                                msg: body,
                                aad: key,
                            },
                        )
                        .map(Some)
                        .map_err(|_| bad("cannot decrypt: wrong key file?"));
                }
                Err(bad("unknown value form"))
            }
            _ => Err(bad("a value is a string or an object")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_members_of_lists_are_fingerprinted() {
        let schema = Schema::parse(
            "[entities.team]\nkey = \"/teams/{id}\"\nvars = { id = \"string\" }\n\
             [entities.team.fields]\nstate = { type = \"json\", secret_paths = [\"members.password\"] }\n",
            "team.toml",
        )
        .unwrap();
        let secrets = Secrets::new(Some(schema), vec![7; 32], None);
        let value = br#"{"members":[{"name":"ann","password":"pw-one"},{"name":"bo","password":"pw-two"}]}"#;
        let written = secrets
            .protect(b"/teams/a/state", value)
            .unwrap()
            .to_string();
        assert!(!written.contains("pw-"), "{written}");
        assert_eq!(written.matches("hmac-sha256:").count(), 2, "{written}");
        assert!(
            written.contains("ann") && written.contains("redacted"),
            "{written}"
        );
    }
}
