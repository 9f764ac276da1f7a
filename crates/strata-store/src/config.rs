//! The config file of named stores (`strata.toml`): `[stores.NAME]` tables, each a
//! store URL with every connection option of the CLI, secrets read from a file or
//! an environment variable (never required inline), and `[layers]`, which routes
//! key prefixes to those stores (the longest prefix wins).
//!
//! Owns parsing, checking and resolving the file: unknown keys, layers naming a store
//! that is not there, relative paths (taken from the file's folder). Finding the file
//! (a flag, a variable, the working directory, the user's config folder) is the
//! frontend's; opening a named store is [`crate::open_with`] with
//! [`NamedStore::options`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ConnectOptions;

/// A config file that cannot be used: the file, where in it, and what to write.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// What is wrong, naming the table or key, and what to write instead.
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    /// The store commands use when no other is named: a store's name.
    default: Option<String>,
    #[serde(default)]
    stores: BTreeMap<String, StoreSpec>,
    #[serde(default)]
    layers: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSpec {
    url: String,
    user: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    cacert: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    dial_timeout: Option<String>,
    command_timeout: Option<String>,
    max_txn_ops: Option<usize>,
    v2_ttl: Option<String>,
}

/// A parsed, checked config file.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The store used when none is named (`default = "NAME"`).
    pub default: Option<String>,
    /// The stores, by name.
    pub stores: BTreeMap<String, NamedStore>,
    /// The layers, longest prefix first.
    pub layers: Vec<Layer>,
}

/// One `[stores.NAME]`: its URL (relative SQLite paths resolved against the file's
/// folder) and connection options. `Debug` shows no password.
#[derive(Debug, Clone)]
pub struct NamedStore {
    pub name: String,
    pub url: String,
    /// Everything but `create`, which is the command's to decide.
    pub options: ConnectOptions,
}

/// A prefix of the keyspace and the store that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub prefix: String,
    pub store: String,
}

impl Config {
    /// Reads and checks `path`. Passwords are read now, from their files or
    /// variables, so that a missing one is reported before any command runs.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let fail = |reason: String| ConfigError {
            path: path.display().to_string(),
            reason,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        let spec: FileSpec = toml::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut stores = BTreeMap::new();
        for (name, s) in spec.stores {
            check_name(&name).map_err(|r| fail(format!("[stores.{name}]: {r}")))?;
            let store =
                resolve_store(&name, s, base).map_err(|r| fail(format!("[stores.{name}]: {r}")))?;
            stores.insert(name, store);
        }
        let mut layers = Vec::new();
        for (prefix, store) in spec.layers {
            if !prefix.starts_with('/') || !prefix.ends_with('/') {
                return Err(fail(format!(
                    "[layers] {prefix:?}: a layer is a key prefix that starts and ends with / \
                     (\"/sigilgate/\", or \"/\" for every other key)"
                )));
            }
            if !stores.contains_key(&store) {
                return Err(fail(format!(
                    "[layers] {prefix:?} = {store:?}: there is no [stores.{store}]; the stores \
                     are: {}",
                    names(&stores)
                )));
            }
            layers.push(Layer { prefix, store });
        }
        layers.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(a.prefix.cmp(&b.prefix))
        });
        if let Some(default) = &spec.default {
            if !stores.contains_key(default) {
                return Err(fail(format!(
                    "default = {default:?}: there is no [stores.{default}]; the stores are: {}",
                    names(&stores)
                )));
            }
        }
        Ok(Config {
            path: path.to_owned(),
            default: spec.default,
            stores,
            layers,
        })
    }

    /// The store named `name`.
    pub fn store(&self, name: &str) -> Option<&NamedStore> {
        self.stores.get(name)
    }

    /// The layer holding `key`: the longest layer prefix it starts with.
    pub fn layer_of(&self, key: &[u8]) -> Option<&Layer> {
        self.layers
            .iter()
            .find(|l| key.starts_with(l.prefix.as_bytes()))
    }

    /// What is odd but usable: a layer nested in another that points at the same
    /// store (it changes nothing), a store no layer uses while layers exist, a
    /// password written into a URL.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for inner in &self.layers {
            let outer = self
                .layers
                .iter()
                .filter(|o| {
                    o.prefix.len() < inner.prefix.len() && inner.prefix.starts_with(&o.prefix)
                })
                .max_by_key(|o| o.prefix.len());
            if let Some(outer) = outer.filter(|o| o.store == inner.store) {
                out.push(format!(
                    "[layers] {:?} and {:?} both point at {:?}: the inner layer changes nothing",
                    inner.prefix, outer.prefix, inner.store
                ));
            }
        }
        if !self.layers.is_empty() {
            for name in self.stores.keys() {
                if !self.layers.iter().any(|l| &l.store == name) {
                    out.push(format!("[stores.{name}] holds no layer"));
                }
            }
        }
        for store in self.stores.values() {
            if crate::redact(&store.url) != store.url && store.url.contains(":<redacted>@") {
                out.push(format!(
                    "[stores.{}]: the URL holds a password; put it in password_file or \
                     password_env instead",
                    store.name
                ));
            }
        }
        out
    }
}

fn names(stores: &BTreeMap<String, NamedStore>) -> String {
    if stores.is_empty() {
        return "none (add a [stores.NAME] table with a url)".into();
    }
    stores.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// Store names are what `--store NAME` takes: never mistaken for a URL.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err("a store name is letters, digits, _ and - (it is what --store NAME takes)".into())
    }
}

fn resolve_store(name: &str, s: StoreSpec, base: &Path) -> Result<NamedStore, String> {
    let at = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
    let url = match s.url.strip_prefix("sqlite:") {
        Some(file) if Path::new(file).is_relative() => {
            format!("sqlite:{}", base.join(file).display())
        }
        _ => s.url.clone(),
    };
    crate::StoreUrl::parse(&url).map_err(|e| format!("url: {e}"))?;
    let password = match (s.password_file, s.password_env) {
        (Some(_), Some(_)) => {
            return Err("give password_file or password_env, not both".into());
        }
        (Some(file), None) => {
            let file = at(file);
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("password_file {}: cannot read it: {e}", file.display()))?;
            Some(text.trim_end_matches(['\n', '\r']).to_owned())
        }
        (None, Some(var)) => Some(std::env::var(&var).map_err(|_| {
            format!(
                "password_env {var:?}: the variable is not set; export it, or use password_file"
            )
        })?),
        (None, None) => None,
    };
    let duration = |key: &str, v: Option<String>| -> Result<Option<Duration>, String> {
        v.map(|t| parse_duration(&t).map_err(|e| format!("{key}: {e}")))
            .transpose()
    };
    let options = ConnectOptions {
        create: false,
        tls: s.url.contains("https://"),
        user: s.user,
        password,
        ca_cert: s.cacert.map(at),
        cert: s.cert.map(at),
        key: s.key.map(at),
        dial_timeout: duration("dial_timeout", s.dial_timeout)?,
        request_timeout: duration("command_timeout", s.command_timeout)?,
        max_txn_ops: s.max_txn_ops,
        v2_ttl: match s.v2_ttl {
            Some(t) => crate::V2Ttl::parse(&t).map_err(|e| format!("v2_ttl: {e}"))?,
            None => crate::V2Ttl::Copy,
        },
    };
    Ok(NamedStore {
        name: name.to_owned(),
        url,
        options,
    })
}

/// Parses `500ms`, `5s`, `2m` or a plain number of seconds (the CLI's and the config
/// file's durations).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 5s or 500ms"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}; use ms, s or m")),
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(format!("{text:?} must be a positive duration"));
    }
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| *d <= Duration::from_secs(31_536_000))
        .ok_or_else(|| format!("{text:?} is longer than a year; give a shorter time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strata.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret-Qx\n").unwrap();
        let out = Config::load(&path);
        drop(dir);
        out
    }

    #[test]
    fn the_issue_example_parses_and_routes_by_the_longest_prefix() {
        let c = config(
            r#"
            [stores.ops]
            url = "etcd://10.0.0.1:2379,10.0.0.2:2379"
            cacert = "/etc/strata/ca.pem"
            dial_timeout = "2s"
            [stores.comms]
            url = "postgres://strata@db.internal/meta?sslmode=verify-full&sslrootcert=/etc/strata/db-ca.pem"
            password_file = "pw"
            [stores.local]
            url = "sqlite:./strata.db"
            [layers]
            "/sigilgate/" = "ops"
            "/public/" = "comms"
            "/" = "local"
            "#,
        )
        .unwrap();
        assert_eq!(c.layer_of(b"/sigilgate/users/7").unwrap().store, "ops");
        assert_eq!(c.layer_of(b"/public/contacts/a").unwrap().store, "comms");
        assert_eq!(c.layer_of(b"/other").unwrap().store, "local");
        let comms = c.store("comms").unwrap();
        assert_eq!(comms.options.password.as_deref(), Some("s3cret-Qx"));
        assert!(!format!("{comms:?}").contains("s3cret"), "{comms:?}");
        assert_eq!(
            c.store("ops").unwrap().options.dial_timeout,
            Some(Duration::from_secs(2))
        );
        let local = &c.store("local").unwrap().url;
        assert!(
            local.starts_with("sqlite:/") && local.ends_with("/strata.db"),
            "{local}"
        );
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }

    #[test]
    fn mistakes_name_the_table_and_say_what_to_write() {
        let err = |text: &str| config(text).unwrap_err().to_string();
        assert!(err("[stores.a]\nurl = 'mem:'\nusr = 'x'\n").contains("unknown field `usr`"));
        assert!(err("[stores.a]\nurl = 'mem:'\n[layers]\n'/x/' = 'b'\n")
            .contains("there is no [stores.b]"));
        assert!(err("[stores.a]\nurl = 'mem:'\n[layers]\n'/x' = 'a'\n")
            .contains("starts and ends with /"));
        assert!(
            err("[stores.a]\nurl = 'mem:'\npassword_env = 'STRATA_TEST_UNSET_VAR_Q'\n")
                .contains("not set")
        );
        assert!(err("[stores.'a b']\nurl = 'mem:'\n").contains("letters, digits"));
        assert!(err("[stores.a]\nurl = 'ftp://x'\n").contains("[stores.a]: url:"));
        assert!(err("default = 'x'\n[stores.a]\nurl = 'mem:'\n").contains("default = \"x\""));
    }

    #[test]
    fn a_nested_layer_on_the_same_store_is_warned_about() {
        let c = config("[stores.a]\nurl = 'mem:'\n[stores.b]\nurl = 'mem:'\n[layers]\n'/x/' = 'a'\n'/x/y/' = 'a'\n")
            .unwrap();
        let w = c.warnings();
        assert!(w.iter().any(|w| w.contains("changes nothing")), "{w:?}");
        assert!(
            w.iter().any(|w| w.contains("[stores.b] holds no layer")),
            "{w:?}"
        );
    }
}
