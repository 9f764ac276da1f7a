//! Strata's backends and the store URL that picks one.
//!
//! ```
//! use strata_core::{
//!     Compare, CompareOp, EventKind, KeySpan, Op, RangeRequest, Store, Txn, WatchRequest,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let url = format!("sqlite:{}", dir.path().join("meta.db").display());
//! let runtime = tokio::runtime::Builder::new_current_thread()
//!     .enable_all()
//!     .build()?;
//! runtime.block_on(async {
//!     // Any URL of the table below; `mem:` for tests.
//!     let store = strata_store::open(&url).await?;
//!
//!     // Create /nodes/n1 with two fields in one transaction, if neither key exists.
//!     let fields = [("/nodes/n1/addr", "10.0.0.7"), ("/nodes/n1/role", "core")];
//!     let create = Txn::new()
//!         .when(fields.map(|(key, _)| Compare::absent(key)))
//!         .and_then(fields.map(|(key, value)| Op::put(key, value)));
//!     let created = store.txn(create).await?;
//!     assert!(created.succeeded);
//!
//!     // Compare-and-delete at the version read: it fails if another writer got there.
//!     let role = store.get(b"/nodes/n1/role").await?.expect("just created");
//!     let delete = Txn::new()
//!         .when([Compare::version(&role.key[..], CompareOp::Equal, role.version)])
//!         .and_then([Op::delete(KeySpan::key(role.key))]);
//!     let deleted = store.txn(delete).await?;
//!     assert!(deleted.succeeded);
//!
//!     // Read a prefix in one request (`strata_core::scan` pages through large ones).
//!     let nodes = store.range(RangeRequest::new(KeySpan::prefix("/nodes/"))).await?;
//!     assert_eq!(nodes.kvs.len(), 1);
//!     assert_eq!(nodes.kvs[0].value, b"10.0.0.7");
//!
//!     // Watch from the create's revision: what happened since is replayed in order.
//!     let span = KeySpan::prefix("/nodes/");
//!     let start_revision = created.revision;
//!     let mut watcher = store.watch(WatchRequest { span, start_revision }).await?;
//!     let mut events = Vec::new();
//!     while events.len() < 3 {
//!         events.extend(watcher.next().await.expect("an open watch")?);
//!     }
//!     assert_eq!(events[2].kind, EventKind::Delete);
//!     assert_eq!(events[2].revision(), deleted.revision);
//!     Ok(())
//! })
//! # }
//! ```
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

pub mod config;
pub mod etcd;
pub mod etcd2;
pub mod layers;
pub mod postgres;
mod sql;
pub mod sqlite;
mod status;

use std::path::PathBuf;
use std::time::Duration;

use strata_core::{
    Capabilities, Error, Event, MemStore, RangeRequest, RangeResponse, Result, Store, StoreStatus,
    Txn, TxnResponse, WatchRequest, Watcher,
};

pub use etcd::{EtcdOptions, EtcdStore};
pub use etcd2::{Etcd2Options, Etcd2Store, V2Ttl};
pub use postgres::{PgOptions, PgStore};
pub use sqlite::SqliteStore;
pub use status::{status, status_of, StoreReport};

/// The store URL used when neither `--store` nor `STRATA_STORE` is given.
pub const DEFAULT_STORE_URL: &str = "sqlite:./strata.db";

/// A parsed store URL (the forms are in the crate docs). `Debug` shows no credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite:PATH` (or `sqlite://PATH`): the database file (created if missing only
    /// when [`ConnectOptions::create`] says so).
    Sqlite(PathBuf),
    /// `etcd://[user[:password]@]host:port[,host:port…]`.
    Etcd {
        /// `host:port` of each member; requests fail over between them.
        endpoints: Vec<String>,
        /// The user from the URL, if any.
        user: Option<String>,
        /// The password from the URL, if any.
        password: Option<String>,
    },
    /// `etcd2://[user[:password]@]host:port[,host:port…]`: a running etcd v2 keyspace,
    /// read-only.
    Etcd2 {
        /// `host:port` of each member.
        endpoints: Vec<String>,
        /// The user from the URL, if any.
        user: Option<String>,
        /// The password from the URL, if any.
        password: Option<String>,
    },
    /// `postgres://…` or `postgresql://…`: the whole URL, libpq parameters included
    /// (checked by [`PgOptions::parse`]).
    Postgres(String),
    /// `mem:` (or `mem://`): a new, empty in-memory store.
    Mem,
    /// `layers:PATH`: the layered keyspace of the config file at PATH.
    Layers(PathBuf),
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl StoreUrl {
    /// Parses a store URL without opening anything. An unknown scheme or a malformed
    /// URL is [`Error::InvalidUrl`], which shows the URL without credentials.
    pub fn parse(url: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: redact(url),
            reason: reason.to_owned(),
        };
        if url == "mem:" || url == "mem://" {
            return Ok(StoreUrl::Mem);
        }
        if let Some(file) = url.strip_prefix("layers:") {
            if file.is_empty() {
                return Err(invalid("give the config file, e.g. layers:strata.toml"));
            }
            return Ok(StoreUrl::Layers(PathBuf::from(file)));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(invalid("give a file path, e.g. sqlite:./strata.db"));
            }
            return Ok(StoreUrl::Sqlite(path.into()));
        }
        for (scheme, v2) in [("etcd://", false), ("etcd2://", true)] {
            if let Some(rest) = url.strip_prefix(scheme) {
                let (endpoints, user, password) =
                    parse_hosts(rest, scheme).map_err(|r| invalid(&r))?;
                return Ok(if v2 {
                    StoreUrl::Etcd2 {
                        endpoints,
                        user,
                        password,
                    }
                } else {
                    StoreUrl::Etcd {
                        endpoints,
                        user,
                        password,
                    }
                });
            }
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            PgOptions::parse(url)?;
            return Ok(StoreUrl::Postgres(url.to_owned()));
        }
        let scheme = url.split(':').next().unwrap_or_default();
        Err(invalid(&format!(
            "unknown scheme {scheme:?}; use sqlite:PATH, etcd://host:port[,host:port…], \
             postgres://user@host:port/db, etcd2://host:port (a v2 keyspace to read), \
             layers:CONFIG.toml or mem:"
        )))
    }

    /// The etcd store of an endpoint list as etcdctl takes it (`ETCDCTL_ENDPOINTS`):
    /// comma-separated `host:port`, each optionally `http://` or `https://`. Returns
    /// the `etcd://` URL and whether the endpoints asked for TLS (`https://`); a list
    /// that mixes the two schemes is refused.
    pub fn from_endpoints(list: &str) -> Result<(String, bool)> {
        let mut hosts = Vec::new();
        let (mut plain, mut tls) = (false, false);
        for endpoint in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let host = if let Some(rest) = endpoint.strip_prefix("https://") {
                tls = true;
                rest
            } else {
                plain = true;
                endpoint.strip_prefix("http://").unwrap_or(endpoint)
            };
            hosts.push(host.trim_end_matches('/'));
        }
        let invalid = |reason: &str| Error::InvalidUrl {
            url: redact(list),
            reason: reason.to_owned(),
        };
        if hosts.is_empty() {
            return Err(invalid("no endpoint given; write host:port[,host:port…]"));
        }
        if plain && tls {
            return Err(invalid(
                "the endpoints mix http:// and https://; use one scheme for all",
            ));
        }
        let url = format!("etcd://{}", hosts.join(","));
        StoreUrl::parse(&url)?;
        Ok((url, tls))
    }

    /// The URL for messages and backup commits: no credentials.
    pub fn redacted(&self) -> String {
        match self {
            StoreUrl::Sqlite(path) => format!("sqlite:{}", path.display()),
            StoreUrl::Etcd { endpoints, .. } => format!("etcd://{}", endpoints.join(",")),
            StoreUrl::Etcd2 { endpoints, .. } => format!("etcd2://{}", endpoints.join(",")),
            StoreUrl::Postgres(url) => redact(url),
            StoreUrl::Mem => "mem:".into(),
            StoreUrl::Layers(path) => format!("layers:{}", path.display()),
        }
    }
}

/// `[user[:password]@]host:port[,host:port…]` of an `etcd://` or `etcd2://` URL: the
/// endpoints, user and password, or why not.
#[allow(clippy::type_complexity)]
fn parse_hosts(
    rest: &str,
    scheme: &str,
) -> std::result::Result<(Vec<String>, Option<String>, Option<String>), String> {
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
        // A host name, an IPv4 address, or an IPv6 one in brackets: never a
        // second scheme, path or user (`etcd://a@b://c:1` is a typo, not a host).
        let host_ok = |host: &str| match host.strip_prefix('[') {
            Some(v6) => v6.strip_suffix(']').is_some_and(|a| {
                !a.is_empty()
                    && a.chars()
                        .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            }),
            None => {
                !host.is_empty()
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
            }
        };
        let valid = endpoint
            .rsplit_once(':')
            .is_some_and(|(host, port)| host_ok(host) && port.parse::<u16>().is_ok());
        if !valid {
            return Err(format!(
                "{endpoint:?} is not host:port; write {scheme}127.0.0.1:2379[,host:port…]"
            ));
        }
    }
    Ok((endpoints, user, password))
}

/// A URL with any credentials removed, for messages (defined in `strata_core`, so that
/// crates that name a store without opening one, such as backup, share the rule).
pub use strata_core::redact::redact_url as redact;

/// Connection settings that are not part of the URL (the CLI's global flags), for
/// [`open_with`]. `None` keeps the URL's or the backend's default. Only
/// `request_timeout` applies to PostgreSQL (which takes TLS and credentials from its
/// URL); SQLite uses only `create`, `mem:` none. `Debug` shows no password.
#[derive(Clone)]
pub struct ConnectOptions {
    /// SQLite: create the file if it is missing (the default). With `false` a missing
    /// file is an error naming it and nothing is made: what a reader wants, so that a
    /// mistyped path is never a new, empty store.
    pub create: bool,
    /// etcd: TLS even without a CA or client certificate given here (the endpoints
    /// were `https://`); the CA is then still needed.
    pub tls: bool,
    /// etcd: the user, or `NAME:PASSWORD` as etcdctl takes it; wins over the URL's.
    pub user: Option<String>,
    /// etcd: the password; wins over the URL's.
    pub password: Option<String>,
    /// etcd TLS: the CA that signed the servers' certificates.
    pub ca_cert: Option<PathBuf>,
    /// etcd TLS: the client certificate.
    pub cert: Option<PathBuf>,
    /// etcd TLS: the client certificate's key.
    pub key: Option<PathBuf>,
    /// etcd: how long connecting to a member may take (default 5 s).
    pub dial_timeout: Option<Duration>,
    /// etcd: how long one request may take (default 30 s). PostgreSQL: how long one
    /// statement may run (default: no limit).
    pub request_timeout: Option<Duration>,
    /// etcd: the server's `--max-txn-ops`, when it is not the default 128.
    pub max_txn_ops: Option<usize>,
    /// etcd v2 source: what to do with keys that have a TTL.
    pub v2_ttl: V2Ttl,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            create: true,
            tls: false,
            user: None,
            password: None,
            ca_cert: None,
            cert: None,
            key: None,
            dial_timeout: None,
            request_timeout: None,
            max_txn_ops: None,
            v2_ttl: V2Ttl::Copy,
        }
    }
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("create", &self.create)
            .field("tls", &self.tls)
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

/// Opens the store a URL names, with default connection settings (see [`open_with`]).
pub async fn open(url: &str) -> Result<AnyStore> {
    open_with(url, &ConnectOptions::default()).await
}

/// Opens the store a URL names, with `opts` for what the URL does not say.
///
/// SQLite creates the file and its layout if missing (unless `opts.create` is false:
/// then a missing file is [`Error::Backend`] saying [`sqlite::MISSING`]); PostgreSQL connects and creates
/// its schema on first use; etcd connects lazily (the first request dials, so an
/// unreachable cluster fails there, not here); `mem:` is a new, empty store each time.
/// A malformed URL is [`Error::InvalidUrl`]; a file or server that cannot be used is
/// [`Error::Backend`] or [`Error::Unavailable`], naming the backend.
pub async fn open_with(url: &str, opts: &ConnectOptions) -> Result<AnyStore> {
    match StoreUrl::parse(url)? {
        StoreUrl::Sqlite(path) if opts.create => Ok(AnyStore::Sqlite(SqliteStore::open(path)?)),
        StoreUrl::Sqlite(path) => Ok(AnyStore::Sqlite(SqliteStore::open_existing(path)?)),
        StoreUrl::Mem => Ok(AnyStore::Mem(MemStore::new())),
        StoreUrl::Layers(path) => Ok(AnyStore::Layered(std::sync::Arc::new(
            Box::pin(layers::LayeredStore::open(&path, opts)).await?,
        ))),
        StoreUrl::Postgres(url) => {
            let mut pg = PgOptions::parse(&url)?;
            pg.command_timeout = opts.request_timeout;
            Ok(AnyStore::Postgres(PgStore::connect(pg).await?))
        }
        StoreUrl::Etcd2 {
            endpoints,
            user,
            password,
        } => {
            let (user, password) = user_and_password(opts, user, password);
            Ok(AnyStore::Etcd2(Etcd2Store::new(Etcd2Options {
                endpoints,
                user,
                password,
                tls: opts.tls,
                ca_cert: opts.ca_cert.clone(),
                cert: opts.cert.clone(),
                key: opts.key.clone(),
                dial_timeout: opts.dial_timeout,
                request_timeout: opts.request_timeout,
                ttl: opts.v2_ttl,
            })?))
        }
        StoreUrl::Etcd {
            endpoints,
            user,
            password,
        } => {
            let mut etcd = EtcdOptions::new(endpoints);
            (etcd.user, etcd.password) = user_and_password(opts, user, password);
            etcd.ca_cert = opts.ca_cert.clone();
            etcd.cert = opts.cert.clone();
            etcd.key = opts.key.clone();
            etcd.tls = opts.tls;
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

/// The user and password: the options' over the URL's, and `--user name:password` as
/// etcdctl takes it split in two.
fn user_and_password(
    opts: &ConnectOptions,
    user: Option<String>,
    password: Option<String>,
) -> (Option<String>, Option<String>) {
    let user = opts.user.clone().or(user);
    let password = opts.password.clone().or(password);
    match (user, password) {
        (Some(u), None) => match u.split_once(':') {
            Some((name, pass)) => (Some(name.to_owned()), Some(pass.to_owned())),
            None => (Some(u), None),
        },
        other => other,
    }
}

/// Any backend, chosen at run time: what [`open`] returns. It implements [`Store`] by
/// passing each call to its backend (native async traits are not object-safe, so this
/// enum stands in for `dyn Store`). Cloning is cheap and shares the connection (for
/// `mem:`, the data).
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// `sqlite:PATH`.
    Sqlite(SqliteStore),
    /// `etcd://…`.
    Etcd(Box<EtcdStore>),
    /// `postgres://…`.
    Postgres(PgStore),
    /// `etcd2://…`: read-only.
    Etcd2(Etcd2Store),
    /// `mem:`.
    Mem(MemStore),
    /// `layers:PATH`.
    Layered(std::sync::Arc<layers::LayeredStore>),
}

impl AnyStore {
    /// A revision as messages show it: the number, or for a snapshot token of a
    /// layered keyspace each store's revision (`ops@12, comms@5`).
    pub fn describe_revision(&self, revision: i64) -> String {
        match self {
            AnyStore::Layered(l) => l
                .describe_revision(revision)
                .unwrap_or_else(|| revision.to_string()),
            _ => revision.to_string(),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $body:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $body,
            AnyStore::Etcd($s) => $body,
            AnyStore::Postgres($s) => $body,
            AnyStore::Etcd2($s) => $body,
            AnyStore::Mem($s) => $body,
            AnyStore::Layered($s) => $body,
        }
    };
}

impl Store for AnyStore {
    fn capabilities(&self) -> Capabilities {
        dispatch!(self, s => s.capabilities())
    }

    fn partition(&self, key: &[u8]) -> usize {
        dispatch!(self, s => s.partition(key))
    }

    fn partitions(&self) -> usize {
        dispatch!(self, s => s.partitions())
    }

    fn own_key(&self, part: usize, name: &str) -> Vec<u8> {
        dispatch!(self, s => s.own_key(part, name))
    }

    fn expiry(&self, kv: &strata_core::model::KeyValue) -> Option<std::time::Duration> {
        dispatch!(self, s => s.expiry(kv))
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
#[path = "lib_tests.rs"]
mod tests;
