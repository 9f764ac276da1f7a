//! Strata's backends and the store URL that picks one.
//!
//! Each backend is one module and a thin adapter onto the `strata_core::Store`
//! contract. [`AnyStore`] dispatches over them at the edge (native async traits are
//! not object-safe), and [`open`] turns a URL into one:
//!
//! | URL | backend |
//! |---|---|
//! | `sqlite:PATH` (default `sqlite:./strata.db`) | [`sqlite::SqliteStore`] |
//! | `etcd://[user:password@]host:port[,host:port…]` | [`etcd::EtcdStore`] |
//! | `postgres://user[:password]@host:port/db[?schema=NAME]` | [`postgres::PgStore`] |
//! | `mem:` | [`strata_core::MemStore`] (tests, dry runs) |
//!
//! SQLite and PostgreSQL keep one layout, whose SQL is written once in `sql`; each of
//! the two keeps only its connection handling and what only it has.

pub mod etcd;
pub mod postgres;
mod sql;
pub mod sqlite;

use std::path::PathBuf;
use std::time::Duration;

use strata_core::{
    Capabilities, Error, Event, MemStore, RangeRequest, RangeResponse, Result, Store, StoreStatus,
    Txn, TxnResponse, WatchRequest, Watcher,
};

pub use etcd::{EtcdOptions, EtcdStore};
pub use postgres::{PgOptions, PgStore};
pub use sqlite::SqliteStore;

/// The store URL used when neither `--store` nor `STRATA_STORE` is given.
pub const DEFAULT_STORE_URL: &str = "sqlite:./strata.db";

/// A parsed store URL.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Etcd {
        endpoints: Vec<String>,
        user: Option<String>,
        password: Option<String>,
    },
    Postgres(String),
    Mem,
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: redact(url),
            reason: reason.to_owned(),
        };
        if url == "mem:" || url == "mem://" {
            return Ok(StoreUrl::Mem);
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(invalid("give a file path, e.g. sqlite:./strata.db"));
            }
            return Ok(StoreUrl::Sqlite(path.into()));
        }
        if let Some(rest) = url.strip_prefix("etcd://") {
            let (credentials, hosts) = match rest.rsplit_once('@') {
                Some((c, h)) => (Some(c), h),
                None => (None, rest),
            };
            let (user, password) = match credentials {
                Some(c) => match c.split_once(':') {
                    Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
                    None => (Some(c.to_owned()), None),
                },
                None => (None, None),
            };
            let endpoints: Vec<String> = hosts
                .trim_end_matches('/')
                .split(',')
                .map(str::to_owned)
                .collect();
            for endpoint in &endpoints {
                let valid = endpoint
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !valid {
                    return Err(invalid(&format!(
                        "{endpoint:?} is not host:port; write etcd://127.0.0.1:2379[,host:port…]"
                    )));
                }
            }
            return Ok(StoreUrl::Etcd {
                endpoints,
                user,
                password,
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            PgOptions::parse(url)?;
            return Ok(StoreUrl::Postgres(url.to_owned()));
        }
        let scheme = url.split(':').next().unwrap_or_default();
        Err(invalid(&format!(
            "unknown scheme {scheme:?}; use sqlite:PATH, etcd://host:port[,host:port…], \
             postgres://user@host:port/db or mem:"
        )))
    }

    /// The URL for messages and backup commits: no credentials.
    pub fn redacted(&self) -> String {
        match self {
            StoreUrl::Sqlite(path) => format!("sqlite:{}", path.display()),
            StoreUrl::Etcd { endpoints, .. } => format!("etcd://{}", endpoints.join(",")),
            StoreUrl::Postgres(url) => redact(url),
            StoreUrl::Mem => "mem:".into(),
        }
    }
}

/// A URL with any credentials removed, for messages (defined in `strata_core`, so that
/// crates that name a store without opening one, such as backup, share the rule).
pub use strata_core::redact::redact_url as redact;

/// Connection settings that are not part of the URL (the CLI's global flags).
/// `Debug` shows no password.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    pub user: Option<String>,
    pub password: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub dial_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub max_txn_ops: Option<usize>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("user", &self.user.as_deref().map(user_name))
            .field("password", &redacted(&self.password))
            .field("ca_cert", &self.ca_cert)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("dial_timeout", &self.dial_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_txn_ops", &self.max_txn_ops)
            .finish()
    }
}

/// `<redacted>` for a secret that is set: what `Debug` shows instead of it.
pub fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}

/// A user as `NAME` or `NAME:PASSWORD` (as etcdctl takes it), shown without a password.
pub fn user_name(user: &str) -> &str {
    user.split_once(':').map_or(user, |(name, _)| name)
}

/// Opens the store a URL names, with default connection settings.
pub async fn open(url: &str) -> Result<AnyStore> {
    open_with(url, &ConnectOptions::default()).await
}

/// Opens the store a URL names.
pub async fn open_with(url: &str, opts: &ConnectOptions) -> Result<AnyStore> {
    match StoreUrl::parse(url)? {
        StoreUrl::Sqlite(path) => Ok(AnyStore::Sqlite(SqliteStore::open(path)?)),
        StoreUrl::Mem => Ok(AnyStore::Mem(MemStore::new())),
        StoreUrl::Postgres(url) => {
            let mut pg = PgOptions::parse(&url)?;
            pg.command_timeout = opts.request_timeout;
            Ok(AnyStore::Postgres(PgStore::connect(pg).await?))
        }
        StoreUrl::Etcd {
            endpoints,
            user,
            password,
        } => {
            let mut etcd = EtcdOptions::new(endpoints);
            etcd.user = opts.user.clone().or(user);
            etcd.password = opts.password.clone().or(password);
            // `--user name:password`, as etcdctl takes it.
            if let (Some(u), None) = (&etcd.user, &etcd.password) {
                if let Some((name, pass)) = u.split_once(':') {
                    etcd.password = Some(pass.to_owned());
                    etcd.user = Some(name.to_owned());
                }
            }
            etcd.ca_cert = opts.ca_cert.clone();
            etcd.cert = opts.cert.clone();
            etcd.key = opts.key.clone();
            if let Some(t) = opts.dial_timeout {
                etcd.dial_timeout = t;
            }
            if let Some(t) = opts.request_timeout {
                etcd.request_timeout = t;
            }
            if let Some(n) = opts.max_txn_ops {
                etcd.max_txn_ops = n;
            }
            Ok(AnyStore::Etcd(Box::new(EtcdStore::connect(etcd).await?)))
        }
    }
}

/// Any backend, chosen at run time.
#[derive(Clone, Debug)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Etcd(Box<EtcdStore>),
    Postgres(PgStore),
    Mem(MemStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $body:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $body,
            AnyStore::Etcd($s) => $body,
            AnyStore::Postgres($s) => $body,
            AnyStore::Mem($s) => $body,
        }
    };
}

impl Store for AnyStore {
    fn capabilities(&self) -> Capabilities {
        dispatch!(self, s => s.capabilities())
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        dispatch!(self, s => s.range(req).await)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        dispatch!(self, s => s.txn(txn).await)
    }

    async fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        dispatch!(self, s => s.watch(req).await)
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        dispatch!(self, s => s.compact(revision).await)
    }

    async fn history(&self, key: &[u8]) -> Result<Vec<Event>> {
        dispatch!(self, s => s.history(key).await)
    }

    async fn status(&self) -> Result<StoreStatus> {
        dispatch!(self, s => s.status().await)
    }

    async fn lease_grant(&self, ttl: std::time::Duration) -> Result<Option<i64>> {
        dispatch!(self, s => s.lease_grant(ttl).await)
    }

    async fn lease_keep_alive(&self, lease: i64) -> Result<bool> {
        dispatch!(self, s => s.lease_keep_alive(lease).await)
    }

    async fn lease_revoke(&self, lease: i64) -> Result<()> {
        dispatch!(self, s => s.lease_revoke(lease).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `EtcdOptions` and `ConnectOptions` derived `Debug` with the password
    /// in it. Every options type, formatted with a known password, shows none.
    #[test]
    fn no_options_type_shows_a_password_in_debug() {
        const PW: &str = "hunter2-Zq9";
        let connect = ConnectOptions {
            user: Some(format!("root:{PW}")),
            password: Some(PW.into()),
            key: Some("/etc/strata/client.key".into()),
            ..ConnectOptions::default()
        };
        let mut etcd = EtcdOptions::new(vec!["h:2379".into()]);
        etcd.user = Some("root".into());
        etcd.password = Some(PW.into());
        let shown = [
            format!("{connect:?}"),
            format!("{connect:#?}"),
            format!("{etcd:?}"),
            format!(
                "{:?}",
                StoreUrl::parse(&format!("etcd://root:{PW}@h:2379")).unwrap()
            ),
            format!(
                "{:?}",
                StoreUrl::parse(&format!("postgres://u:{PW}@h/db?password={PW}")).unwrap()
            ),
            format!(
                "{:?}",
                PgOptions::parse(&format!("postgres://u:{PW}@h/db")).unwrap()
            ),
            redact(&format!(
                "postgres://u:{PW}@h/db?sslmode=require&password={PW}"
            )),
        ];
        for text in shown {
            assert!(!text.contains(PW), "{text}");
        }
        // What is not secret stays visible: the user name, the key file's path.
        let text = format!("{connect:?}");
        assert!(
            text.contains("\"root\"") && text.contains("client.key") && text.contains("<redacted>"),
            "{text}"
        );
    }

    #[test]
    fn parses_urls() {
        assert_eq!(
            StoreUrl::parse("sqlite:./x.db").unwrap(),
            StoreUrl::Sqlite("./x.db".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///tmp/x.db").unwrap(),
            StoreUrl::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(StoreUrl::parse("mem:").unwrap(), StoreUrl::Mem);
        let etcd = StoreUrl::parse("etcd://root:s3cret@10.0.0.1:2379,h2:2379").unwrap();
        assert_eq!(
            etcd,
            StoreUrl::Etcd {
                endpoints: vec!["10.0.0.1:2379".into(), "h2:2379".into()],
                user: Some("root".into()),
                password: Some("s3cret".into()),
            }
        );
        assert_eq!(etcd.redacted(), "etcd://10.0.0.1:2379,h2:2379");
        assert!(!format!("{etcd:?}").contains("s3cret"));
        let err = StoreUrl::parse("etcd://root:s3cret@nohost")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not host:port") && !err.contains("s3cret"),
            "{err}"
        );
        let pg = StoreUrl::parse("postgres://app:pw@127.0.0.1:5432/meta?schema=prod").unwrap();
        assert_eq!(pg.redacted(), "postgres://127.0.0.1:5432/meta?schema=prod");
        let pg = "postgres://app@h:5432/db?password=pw&schema=prod&sslpassword=k";
        assert_eq!(redact(pg), "postgres://h:5432/db?schema=prod");
        assert_eq!(
            redact("postgres://app:p@ss?w@h/db?password=x"),
            "postgres://h/db"
        );
        let err = StoreUrl::parse("postgres://app:pw@h:5432/db?schema=Bad-Name")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("schema \"Bad-Name\"") && !err.contains("pw@"),
            "{err}"
        );
        let err = StoreUrl::parse("redis://x").unwrap_err().to_string();
        assert!(err.contains("unknown scheme \"redis\""), "{err}");
        assert!(StoreUrl::parse("sqlite:").is_err());
    }
}
