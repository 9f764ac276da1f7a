//! Opening one PostgreSQL connection as libpq would: the attempts each `sslmode` makes
//! (`prefer`: TLS, then plain TCP if the handshake fails or the server refuses the TLS
//! session; `allow`: plain, then TLS if the server refuses), each attempt bounded by
//! `connect_timeout` from the TCP connect to the end of authentication, and connect
//! errors that say which step failed and what to change ([`ConnectError`]). The TLS
//! handshake itself is `tls.rs`'s; the URL parameters are `options.rs`'s.

use std::path::PathBuf;
use std::time::Duration;

use strata_core::{Error, Result};
use tokio_postgres::config::{Host, SslMode as WireMode};
use tokio_postgres::{Client, Config, Connection, Socket};

use super::options::{PgOptions, SslMode};
use super::tls::{self, MakeRustls};
use super::tls_stream::RustlsStream;
use super::{pg_err, BACKEND};

/// A connection's I/O half, to be polled by a task of its own.
pub(super) type PgConnection = Connection<Socket, RustlsStream>;

/// Why a connection could not be opened, beyond what the server itself answered. The
/// source of an `Error::Backend` (or, for a timeout, `Error::Unavailable`) for the
/// operation "connect". Messages never hold a password or key material; files are named
/// by path and by the parameter that named them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    #[error(
        "cannot read the {param} file {}: {source}; check the path, and that this user may read the file",
        path.display()
    )]
    ReadFile {
        param: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the {param} file {} {problem}", path.display())]
    BadFile {
        param: &'static str,
        path: PathBuf,
        problem: String,
    },

    #[error(
        "sslmode={mode} needs the CA certificate to check the server's certificate against: set \
         sslrootcert=FILE (or PGSSLROOTCERT), or use sslmode=require to encrypt without checking"
    )]
    NoRootCertificate { mode: SslMode },

    #[error(
        "the private key in sslkey {} does not belong to the certificate in sslcert {}: give the key the certificate was issued for",
        key.display(), cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },

    #[error(
        "the server at {target} does not offer TLS, and sslmode={mode} requires it: turn TLS on in the \
         server (ssl = on, with ssl_cert_file and ssl_key_file, in postgresql.conf), or connect with \
         sslmode=prefer (or disable) to allow an unencrypted connection"
    )]
    TlsNotOffered { target: String, mode: SslMode },

    #[error(
        "the server's certificate is not valid for host {host:?} (it names {presented}): connect by a \
         name the certificate lists, reissue the certificate with subjectAltName={san}, or use \
         sslmode=verify-ca to check only that a trusted CA signed it"
    )]
    WrongHost {
        host: String,
        presented: String,
        /// The subjectAltName entry that would make it valid: `DNS:name` or `IP:address`.
        san: String,
    },

    #[error(
        "the server's certificate is not signed by a CA in sslrootcert {} ({reason}): set sslrootcert \
         (or PGSSLROOTCERT) to the certificate of the CA that issued the server's certificate",
        root.display()
    )]
    UntrustedCertificate { root: PathBuf, reason: String },

    #[error(
        "the server's certificate is outside its validity period ({detail}): renew it on the server, \
         or check this machine's clock"
    )]
    CertificateExpired { detail: String },

    #[error(
        "the server refused this client's certificate (TLS alert {alert}): give as sslcert a \
         certificate signed by a CA in the server's ssl_ca_file, with its key as sslkey"
    )]
    ClientCertificateRefused { alert: String },

    #[error("the TLS handshake with {host} failed: {reason}")]
    Handshake { host: String, reason: String },

    #[error(
        "no answer from {target} within {secs} s (connect_timeout): check the host and port; \
         raise connect_timeout (in seconds, 0 waits forever) if the network is slow"
    )]
    Timeout { target: String, secs: u64 },
}

/// Why one attempt failed.
enum Failure {
    Timeout(Duration),
    Pg(tokio_postgres::Error),
}

/// Opens one connection, with the attempts `opts.tls.mode` calls for.
pub(super) async fn open(opts: &PgOptions, tls: &MakeRustls) -> Result<(Client, PgConnection)> {
    let plan: &[WireMode] = match opts.tls.mode {
        SslMode::Disable => &[WireMode::Disable],
        SslMode::Allow => &[WireMode::Disable, WireMode::Require],
        SslMode::Prefer => &[WireMode::Prefer, WireMode::Disable],
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => &[WireMode::Require],
    };
    let mut reported: Option<Failure> = None;
    for (i, &wire) in plan.iter().enumerate() {
        let failure = match attempt(opts, tls, wire).await {
            Ok(pair) => return Ok(pair),
            Err(failure) => failure,
        };
        let retry = i + 1 < plan.len() && worth_another_attempt(&failure, wire);
        // When both fail, the attempt with TLS says more (e.g. why the certificate was
        // refused) than the plain one (which a hostssl-only server refuses anyway).
        if wire != WireMode::Disable || reported.is_none() {
            reported = Some(failure);
        }
        if !retry {
            break;
        }
    }
    Err(describe(reported.expect("at least one attempt"), opts))
}

/// libpq's fallbacks: after a TLS attempt (`prefer`) whose handshake failed or that the
/// server refused, and after a plain attempt (`allow`) that the server refused.
fn worth_another_attempt(failure: &Failure, wire: WireMode) -> bool {
    let Failure::Pg(e) = failure else {
        return false;
    };
    let refused = e.as_db_error().is_some();
    let handshake = std::error::Error::source(e).is_some_and(|s| s.is::<ConnectError>());
    match wire {
        WireMode::Prefer => refused || handshake,
        _ => refused,
    }
}

async fn attempt(
    opts: &PgOptions,
    tls: &MakeRustls,
    wire: WireMode,
) -> std::result::Result<(Client, PgConnection), Failure> {
    let mut config = opts.config.clone();
    config.ssl_mode(wire);
    if let Some(limit) = opts.command_timeout {
        // Set at startup (no extra round trip), after any `options` of the URL.
        let ms = limit.as_millis().max(1);
        let options = match config.get_options() {
            Some(given) => format!("{given} -c statement_timeout={ms}"),
            None => format!("-c statement_timeout={ms}"),
        };
        config.options(&options);
    }
    let Some(limit) = opts.connect_timeout else {
        return config.connect(tls.clone()).await.map_err(Failure::Pg);
    };
    // tokio-postgres bounds only the TCP connect; the limit here also covers a server
    // that accepts and never answers. As in libpq it applies to each host in turn.
    config.connect_timeout(limit);
    let hosts = config
        .get_hosts()
        .len()
        .max(config.get_hostaddrs().len())
        .max(1);
    let overall = limit.saturating_mul(u32::try_from(hosts).unwrap_or(u32::MAX));
    match tokio::time::timeout(overall, config.connect(tls.clone())).await {
        Ok(result) => result.map_err(Failure::Pg),
        Err(_) => Err(Failure::Timeout(limit)),
    }
}

/// The strata error for a failed connect: ours where we can say more than tokio-postgres.
fn describe(failure: Failure, opts: &PgOptions) -> Error {
    let e = match failure {
        Failure::Timeout(limit) => {
            return Error::Unavailable {
                backend: BACKEND.into(),
                operation: "connect".into(),
                outcome_unknown: false,
                source: Box::new(ConnectError::Timeout {
                    target: target(&opts.config),
                    secs: limit.as_secs(),
                }),
            }
        }
        Failure::Pg(e) => e,
    };
    // tokio-postgres's own words when the server answers "no" to the TLS request.
    let not_offered = std::error::Error::source(&e)
        .is_some_and(|s| s.to_string() == "server does not support TLS");
    if not_offered {
        return Error::backend(
            BACKEND,
            "connect",
            ConnectError::TlsNotOffered {
                target: target(&opts.config),
                mode: opts.tls.mode,
            },
        );
    }
    if let Some(refused) = refused_after_handshake(&e) {
        return Error::backend(BACKEND, "connect", refused);
    }
    if std::error::Error::source(&e).is_some_and(|s| s.is::<ConnectError>()) {
        let source = e.into_source().expect("checked above");
        return Error::Backend {
            backend: BACKEND.into(),
            operation: "connect".into(),
            source,
        };
    }
    pg_err("connect", false)(e)
}

/// A TLS alert refusing our client certificate that arrived after the handshake.
fn refused_after_handshake(e: &tokio_postgres::Error) -> Option<ConnectError> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let alert = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if let Some(rustls::Error::AlertReceived(alert)) = alert {
            return tls::refused_alert(alert);
        }
        source = s.source();
    }
    None
}

/// `host:port[,host:port…]` for messages.
pub(super) fn target(config: &Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let mut names: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| match host {
            Host::Tcp(name) => format!("{name}:{}", port(i)),
            #[cfg(unix)]
            Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), port(i)),
        })
        .collect();
    if names.is_empty() {
        names = config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, addr)| format!("{addr}:{}", port(i)))
            .collect();
    }
    names.join(",")
}
