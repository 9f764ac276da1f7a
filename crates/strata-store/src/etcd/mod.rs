//! The etcd v3 backend (`etcd://host:port[,host:port…]`): a thin adapter from the
//! `Store` contract onto etcd's own KV, Txn, Watch and Compact calls, which already
//! have the contract's semantics.
//!
//! What this module adds: limits checked before sending (op count, value and request
//! size) with errors that name the key and the limit; etcd errors mapped to the
//! contract's errors (compacted, future revision, unavailable) instead of raw gRPC
//! strings; request timeouts; and a watch that resumes after a lost connection from
//! the revision after the last one it delivered. It never retries a write itself: a
//! write whose answer was lost is reported with `outcome_unknown`, and the batched
//! writers re-read before deciding (see `strata_ops::load`). What a broken
//! connection means, and which endpoints to use when some are down, is `diagnose`'s.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp as EtcdCompareOp, ConnectOptions, DeleteOptions,
    GetOptions, PutOptions, TxnOp, TxnOpResponse,
};
use strata_core::{
    prefix_end, Capabilities, Compare, CompareOp, CompareTarget, Error, Event, EventKind, KeySpan,
    KeyValue, Op, OpResponse, RangeRequest, RangeResponse, Result, Store, StoreStatus, Txn,
    TxnResponse, WatchRequest, Watcher,
};
use tokio::sync::mpsc;

mod diagnose;

use diagnose::reachable;
pub(crate) use diagnose::{chain_text, diagnosis};
mod history;
mod status;
mod watch;

pub use status::EndpointStatus;

const BACKEND: &str = "etcd";

/// How to reach an etcd cluster. `Debug` shows no password.
#[derive(Clone)]
pub struct EtcdOptions {
    /// `host:port` of each member; requests fail over between them.
    pub endpoints: Vec<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// TLS: the CA that signed the servers' certificates, and an optional client
    /// certificate and key.
    pub ca_cert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// TLS even without a client certificate (the endpoints were given as
    /// `https://`); it needs `ca_cert`.
    pub tls: bool,
    pub dial_timeout: Duration,
    pub request_timeout: Duration,
    /// The server's `--max-txn-ops` (128 by default).
    pub max_txn_ops: usize,
    /// The server's `--max-request-bytes` (1.5 MiB by default).
    pub max_request_bytes: usize,
}

impl std::fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("endpoints", &self.endpoints)
            .field("user", &self.user.as_deref().map(crate::user_name))
            .field("password", &crate::redacted(&self.password))
            .field("ca_cert", &self.ca_cert)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("tls", &self.tls)
            .field("dial_timeout", &self.dial_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_txn_ops", &self.max_txn_ops)
            .field("max_request_bytes", &self.max_request_bytes)
            .finish()
    }
}

impl EtcdOptions {
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdOptions {
            endpoints,
            user: None,
            password: None,
            ca_cert: None,
            cert: None,
            key: None,
            tls: false,
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_txn_ops: 128,
            max_request_bytes: 1_572_864,
        }
    }
}

/// A connection to an etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    opts: EtcdOptions,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.opts.endpoints)
            .field("user", &self.opts.user)
            .finish()
    }
}

/// Messages are capped by page size, not by gRPC's 4 MiB default.
const MAX_MESSAGE: usize = 1 << 30;

impl EtcdStore {
    /// Connects (lazily: the first request dials) to the cluster.
    pub async fn connect(opts: EtcdOptions) -> Result<Self> {
        let connect = client_options(&opts)?;
        let endpoints = reachable(&opts.endpoints, opts.dial_timeout).await;
        let client =
            Client::connect(&endpoints, Some(connect))
                .await
                .map_err(|e| match diagnosis(&chain_text(&e)) {
                    Some(said) => said.into_error("connect", false),
                    None => unavailable("connect", false, e),
                })?;
        Ok(EtcdStore { client, opts })
    }

    fn kv(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// Runs one request under the request timeout.
    async fn call<T>(
        &self,
        operation: &str,
        write: bool,
        fut: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.opts.request_timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                let text = chain_text(&e);
                if diagnosis(&text).is_none() && text.contains("operation was canceled") {
                    // The connection broke off at once: see whether an HTTP/1 server
                    // answers there rather than etcd.
                    for endpoint in &self.opts.endpoints {
                        if diagnose::http1_answer(endpoint).await {
                            let said = diagnose::not_etcd("it answers HTTP/1");
                            return Err(said.into_error(operation, write));
                        }
                    }
                }
                Err(map_error(operation, write, e))
            }
            Err(_) => Err(Error::Unavailable {
                backend: BACKEND.into(),
                operation: operation.into(),
                outcome_unknown: write,
                source: format!("no answer within {:?}", self.opts.request_timeout).into(),
            }),
        }
    }

    /// Turns the placeholder errors of [`map_error`] into exact ones, which need
    /// another request to learn the current and compacted revisions.
    async fn refine(&self, err: Error, requested: i64) -> Error {
        match err {
            Error::Compacted { .. } => match self.compact_revision().await {
                Ok(compacted) => Error::Compacted {
                    requested,
                    compacted,
                },
                Err(e) => e,
            },
            Error::FutureRevision { .. } => match self.current_revision().await {
                Ok(current) => Error::FutureRevision { requested, current },
                Err(e) => e,
            },
            other => other,
        }
    }

    async fn current_revision(&self) -> Result<i64> {
        let resp = self
            .call(
                "read the revision",
                false,
                self.kv()
                    .get(vec![0u8], Some(GetOptions::new().with_count_only())),
            )
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// etcd does not report its compaction point directly; reads below it fail, so
    /// it is found by binary search over revisions (about log2(revision) reads).
    async fn compact_revision(&self) -> Result<i64> {
        let current = self.current_revision().await?;
        let readable = |rev: i64| async move {
            let opts = GetOptions::new().with_count_only().with_revision(rev);
            match self
                .call(
                    "find the compaction point",
                    false,
                    self.kv().get(vec![0u8], Some(opts)),
                )
                .await
            {
                Ok(_) => Ok(true),
                Err(Error::Compacted { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        };
        if readable(1).await? {
            return Ok(0);
        }
        let (mut lo, mut hi) = (1, current);
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            if readable(mid).await? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Ok(hi)
    }
}

/// The client's connection settings (timeouts, keep-alive, credentials, TLS).
fn client_options(opts: &EtcdOptions) -> Result<ConnectOptions> {
    let mut connect = ConnectOptions::new()
        .with_connect_timeout(opts.dial_timeout)
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
        .with_keep_alive_while_idle(true);
    match (&opts.user, &opts.password) {
        (Some(user), Some(password)) => connect = connect.with_user(user.clone(), password.clone()),
        (Some(user), None) => {
            return Err(Error::InvalidUrl {
                url: opts.endpoints.join(","),
                reason: format!("user {user} has no password: give its password too"),
            })
        }
        _ => {}
    }
    if let Some(tls) = tls_options(opts)? {
        connect = connect.with_tls(tls);
    }
    Ok(connect)
}

fn tls_options(opts: &EtcdOptions) -> Result<Option<etcd_client::TlsOptions>> {
    if opts.ca_cert.is_none() && opts.cert.is_none() {
        if opts.tls {
            return Err(Error::InvalidUrl {
                url: opts.endpoints.join(","),
                reason: "TLS (an https endpoint) needs the CA certificate that signed the servers' certificates".into(),
            });
        }
        return Ok(None);
    }
    let read = |path: &PathBuf| {
        std::fs::read(path)
            .map_err(|e| Error::backend(BACKEND, format!("read {}", path.display()), e))
    };
    let mut tls = etcd_client::TlsOptions::new();
    if let Some(ca) = &opts.ca_cert {
        tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
    }
    match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
        }
        (None, None) => {}
        _ => {
            return Err(Error::InvalidUrl {
                url: opts.endpoints.join(","),
                reason: "a client certificate needs both the certificate and its key".into(),
            })
        }
    }
    Ok(Some(tls))
}

fn unavailable(
    operation: &str,
    write: bool,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::Unavailable {
        backend: BACKEND.into(),
        operation: operation.into(),
        outcome_unknown: write,
        source: e.into(),
    }
}

/// Maps an etcd-client error onto the contract's errors. Compacted and future
/// revisions carry placeholder numbers; [`EtcdStore::refine`] fills them in.
/// Whether a request failed because the cluster was electing a leader.
fn in_election(e: &Error) -> bool {
    match e {
        Error::Unavailable { source, .. } => {
            let text = source.to_string();
            text.contains("leader changed") || text.contains("no leader")
        }
        _ => false,
    }
}

fn map_error(operation: &str, write: bool, e: etcd_client::Error) -> Error {
    use tonic::Code;
    if let Some(said) = diagnosis(&chain_text(&e)) {
        return said.into_error(operation, write);
    }
    match e {
        etcd_client::Error::GRpcStatus(status) => {
            let message = status.message();
            if message.contains("required revision has been compacted") {
                return Error::Compacted {
                    requested: 0,
                    compacted: 0,
                };
            }
            if message.contains("required revision is a future revision") {
                return Error::FutureRevision {
                    requested: 0,
                    current: 0,
                };
            }
            if message.contains("too many operations in txn request") {
                return Error::InvalidTxn(format!(
                    "the server refused the transaction: {message}; the server takes fewer operations per transaction than assumed (its --max-txn-ops): tell Strata its limit"
                ));
            }
            if message.contains("request is too large") {
                return Error::InvalidTxn(format!(
                    "the server refused the request: {message}; lower the batch size, or raise the server's limit (its --max-request-bytes)"
                ));
            }
            let auth_hint = [
                "user name is empty",
                "authentication failed",
                "permission denied",
                "invalid auth token",
            ]
            .iter()
            .any(|m| message.contains(m));
            if auth_hint {
                return Error::backend(
                    BACKEND,
                    operation,
                    format!("{message} (give a user and password the cluster accepts)"),
                );
            }
            match status.code() {
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::Aborted
                | Code::Unknown => {
                    // "leader changed", "request timed out", a lost connection.
                    unavailable(operation, write, status.message().to_owned())
                }
                Code::Unauthenticated | Code::PermissionDenied => Error::backend(
                    BACKEND,
                    operation,
                    format!("{message} (give a user and password the cluster accepts)"),
                ),
                _ => Error::backend(BACKEND, operation, status.message().to_owned()),
            }
        }
        etcd_client::Error::TransportError(t) => unavailable(operation, write, t),
        etcd_client::Error::IoError(io) => unavailable(operation, write, io),
        other => Error::backend(BACKEND, operation, other),
    }
}

/// etcd's (key, range_end) for a span: no range end for one key, `\0` for "to the end".
fn etcd_range(span: &KeySpan) -> (Vec<u8>, Option<Vec<u8>>) {
    match span {
        KeySpan::Key(k) => (k.clone(), None),
        KeySpan::Prefix(p) if p.is_empty() => (vec![0], Some(vec![0])),
        KeySpan::Prefix(p) => (p.clone(), Some(prefix_end(p).unwrap_or_else(|| vec![0]))),
        KeySpan::Range { start, end } => {
            let start = if start.is_empty() {
                vec![0]
            } else {
                start.clone()
            };
            (start, Some(end.clone().unwrap_or_else(|| vec![0])))
        }
    }
}

fn get_options(req: &RangeRequest) -> (Vec<u8>, GetOptions) {
    let (key, end) = etcd_range(&req.span);
    let mut opts = GetOptions::new()
        .with_limit(req.limit.max(0))
        .with_revision(req.revision.max(0));
    if let Some(end) = end {
        opts = opts.with_range(end);
    }
    if req.keys_only {
        opts = opts.with_keys_only();
    }
    if req.count_only {
        opts = opts.with_count_only();
    }
    (key, opts)
}

fn from_etcd_kv(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key().to_vec(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
    }
}

fn range_response(
    req: &RangeRequest,
    resp: &etcd_client::GetResponse,
    header_revision: i64,
) -> RangeResponse {
    RangeResponse {
        // A read at a past revision was served at that revision.
        revision: if req.revision > 0 {
            req.revision
        } else {
            header_revision
        },
        kvs: resp.kvs().iter().map(from_etcd_kv).collect(),
        more: resp.more(),
        count: resp.count(),
    }
}

fn is_inverted(span: &KeySpan) -> bool {
    matches!(span, KeySpan::Range { start, end: Some(end) } if end <= start)
}

fn to_etcd_compare(c: &Compare) -> EtcdCompare {
    let op = match c.op {
        CompareOp::Equal => EtcdCompareOp::Equal,
        CompareOp::NotEqual => EtcdCompareOp::NotEqual,
        CompareOp::Greater => EtcdCompareOp::Greater,
        CompareOp::Less => EtcdCompareOp::Less,
    };
    match &c.target {
        CompareTarget::Value(v) => EtcdCompare::value(c.key.clone(), op, v.clone()),
        CompareTarget::Version(n) => EtcdCompare::version(c.key.clone(), op, *n),
        CompareTarget::CreateRevision(n) => EtcdCompare::create_revision(c.key.clone(), op, *n),
        CompareTarget::ModRevision(n) => EtcdCompare::mod_revision(c.key.clone(), op, *n),
    }
}

fn to_etcd_op(op: &Op) -> TxnOp {
    match op {
        Op::Put {
            key,
            value,
            prev_kv,
            lease,
        } => {
            let mut opts = PutOptions::new();
            if *prev_kv {
                opts = opts.with_prev_key();
            }
            if *lease != 0 {
                opts = opts.with_lease(*lease);
            }
            TxnOp::put(key.clone(), value.clone(), Some(opts))
        }
        Op::Delete { span, prev_kv } => {
            let (key, end) = etcd_range(span);
            let mut opts = DeleteOptions::new();
            if let Some(end) = end {
                opts = opts.with_range(end);
            }
            if *prev_kv {
                opts = opts.with_prev_key();
            }
            TxnOp::delete(key, Some(opts))
        }
        Op::Range(req) => {
            let (key, opts) = get_options(req);
            TxnOp::get(key, Some(opts))
        }
    }
}

impl Store for EtcdStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            backend: BACKEND,
            max_txn_ops: self.opts.max_txn_ops,
            // A put carries its key and some framing besides the value.
            max_value_bytes: self.opts.max_request_bytes.saturating_sub(1024),
            max_request_bytes: self.opts.max_request_bytes.saturating_sub(1024),
            range_page_size: 100_000,
            max_in_flight: 8,
            leases: true,
        }
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        if is_inverted(&req.span) {
            // An empty span: answer it here rather than send an end before the start.
            let revision = if req.revision > 0 {
                req.revision
            } else {
                self.current_revision().await?
            };
            return Ok(RangeResponse {
                revision,
                ..Default::default()
            });
        }
        let (key, opts) = get_options(&req);
        let mut attempt = 0;
        let read = loop {
            let read = self
                .call(
                    "range read",
                    false,
                    self.kv().get(key.clone(), Some(opts.clone())),
                )
                .await;
            // A read is safe to send again: one that met an election (a member that
            // rejoins after a partition often starts one) is retried a few times.
            match read {
                Err(e) if attempt < 4 && in_election(&e) => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(125 << attempt)).await;
                }
                other => break other,
            }
        };
        match read {
            Ok(resp) => {
                let header = resp.header().map_or(0, |h| h.revision());
                Ok(range_response(&req, &resp, header))
            }
            Err(e) => Err(self.refine(e, req.revision).await),
        }
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        txn.validate(&self.capabilities())?;
        let etcd_txn = etcd_client::Txn::new()
            .when(txn.compares.iter().map(to_etcd_compare).collect::<Vec<_>>())
            .and_then(txn.success.iter().map(to_etcd_op).collect::<Vec<_>>())
            .or_else(txn.failure.iter().map(to_etcd_op).collect::<Vec<_>>());
        let writes = txn
            .success
            .iter()
            .chain(&txn.failure)
            .any(|op| !matches!(op, Op::Range(_)));
        let resp = match self
            .call("transaction", writes, self.kv().txn(etcd_txn))
            .await
        {
            Ok(resp) => resp,
            Err(e) => {
                let requested = txn
                    .success
                    .iter()
                    .chain(&txn.failure)
                    .find_map(|op| match op {
                        Op::Range(r) if r.revision > 0 => Some(r.revision),
                        _ => None,
                    })
                    .unwrap_or(0);
                return Err(self.refine(e, requested).await);
            }
        };
        let revision = resp.header().map_or(0, |h| h.revision());
        let ops = if resp.succeeded() {
            &txn.success
        } else {
            &txn.failure
        };
        let responses = resp
            .op_responses()
            .iter()
            .zip(ops)
            .map(|(r, op)| match (r, op) {
                (TxnOpResponse::Put(p), _) => OpResponse::Put {
                    prev_kv: p.prev_key().map(from_etcd_kv),
                },
                (TxnOpResponse::Delete(d), _) => OpResponse::Delete {
                    deleted: d.deleted(),
                    prev_kvs: d.prev_kvs().iter().map(from_etcd_kv).collect(),
                },
                (TxnOpResponse::Get(g), Op::Range(req)) => {
                    OpResponse::Range(range_response(req, g, revision))
                }
                (TxnOpResponse::Get(g), _) => OpResponse::Range(range_response(
                    &RangeRequest::new(KeySpan::all()),
                    g,
                    revision,
                )),
                (TxnOpResponse::Txn(_), _) => OpResponse::Delete {
                    deleted: 0,
                    prev_kvs: Vec::new(),
                },
            })
            .collect();
        Ok(TxnResponse {
            revision,
            succeeded: resp.succeeded(),
            responses,
        })
    }

    async fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        let start = if req.start_revision > 0 {
            req.start_revision
        } else {
            self.current_revision().await? + 1
        };
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(watch::watch_task(self.clone(), req.span, start, tx));
        Ok(Watcher::new(rx, BACKEND, start))
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        let opts = etcd_client::CompactionOptions::new().with_physical();
        match self
            .call(
                "compact",
                true,
                self.client.kv_client().compact(revision, Some(opts)),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.refine(e, revision).await),
        }
    }

    async fn history(&self, key: &[u8]) -> Result<Vec<Event>> {
        history::read(self, key).await
    }

    async fn status(&self) -> Result<StoreStatus> {
        Ok(StoreStatus {
            revision: self.current_revision().await?,
            compact_revision: self.compact_revision().await?,
        })
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<Option<i64>> {
        let secs = ttl.as_secs().max(1) as i64;
        let resp = self
            .call(
                "grant a lease",
                true,
                self.client.lease_client().grant(secs, None),
            )
            .await?;
        Ok(Some(resp.id()))
    }

    async fn lease_keep_alive(&self, lease: i64) -> Result<bool> {
        let mut client = self.client.lease_client();
        let renew = async move {
            let answer = async {
                let (mut keeper, mut stream) = client.keep_alive(lease).await?;
                keeper.keep_alive().await?;
                stream.message().await
            };
            match answer.await {
                Ok(resp) => Ok(resp.is_some_and(|r| r.ttl() > 0)),
                // etcd answers a lease it no longer has with TTL 0, which the client
                // turns into this error.
                Err(etcd_client::Error::LeaseKeepAliveError(m)) if m.contains("not found") => {
                    Ok(false)
                }
                Err(e) => Err(e),
            }
        };
        self.call("renew a lease", true, renew).await
    }

    async fn lease_revoke(&self, lease: i64) -> Result<()> {
        match self
            .call(
                "revoke a lease",
                true,
                self.client.lease_client().revoke(lease),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Already expired: its keys are gone, as asked.
            Err(e) if e.to_string().contains("requested lease not found") => Ok(()),
            Err(e) => Err(e),
        }
    }
}
