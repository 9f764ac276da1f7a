//! The HTTP/1.1 client of the etcd v2 source, on hyper (already compiled in for
//! etcd-client's gRPC): GET requests to the members in turn (a GET is safe to send
//! again, so a member that does not answer is passed over for the next), plain or
//! over rustls with the CA and client certificate given, basic auth, and one kept-alive
//! connection per member reused between requests.
//!
//! Owns connecting, failing over and naming what failed; what the answers mean is the
//! parent module's.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use strata_core::{Error, Result};
use tokio::net::TcpStream;

use super::BACKEND;

/// An answer: the HTTP status, the `X-Etcd-Index` header, the body: in memory, or,
/// past the spill size a request allowed, in an (unnamed) temporary file read from
/// its start, `body` then empty.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: u16,
    pub index: Option<i64>,
    pub body: Bytes,
    pub spilled: Option<std::fs::File>,
}

/// Where and how to connect.
pub(super) struct Http {
    endpoints: Vec<String>,
    tls: Option<Arc<ClientConfig>>,
    /// The `Authorization` header value (basic auth), if a user is given.
    auth: Option<String>,
    dial_timeout: Duration,
    request_timeout: Duration,
    /// The member that answered last: asked first next time.
    preferred: AtomicUsize,
    /// Idle connections, by member.
    idle: Mutex<Vec<(usize, SendRequest<Empty<Bytes>>)>>,
}

impl std::fmt::Debug for Http {
    // Not derived: the auth header holds the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("endpoints", &self.endpoints)
            .field("tls", &self.tls.is_some())
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The TLS settings, read from their files.
pub(super) struct TlsFiles<'a> {
    pub ca_cert: Option<&'a Path>,
    pub cert: Option<&'a Path>,
    pub key: Option<&'a Path>,
}

impl Http {
    pub(super) fn new(
        endpoints: Vec<String>,
        tls: Option<TlsFiles<'_>>,
        user: Option<(&str, &str)>,
        dial_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self> {
        let tls = tls.map(|t| client_config(&t).map(Arc::new)).transpose()?;
        let auth = user.map(|(name, password)| {
            format!(
                "Basic {}",
                strata_core::base64::encode(format!("{name}:{password}").as_bytes())
            )
        });
        Ok(Http {
            endpoints,
            tls,
            auth,
            dial_timeout,
            request_timeout,
            preferred: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// `GET path` (path and query, already escaped) from the first member that
    /// answers. `wait` allows a long poll: no request timeout (a watch).
    pub(super) async fn get(&self, path: &str, wait: bool) -> Result<Answer> {
        self.get_spilling(path, wait, None).await
    }

    /// [`Http::get`], a body larger than `spill` bytes written to a temporary file as
    /// it arrives rather than held.
    pub(super) async fn get_spilling(
        &self,
        path: &str,
        wait: bool,
        spill: Option<usize>,
    ) -> Result<Answer> {
        let n = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        let mut last: Option<io::Error> = None;
        for i in (0..n).map(|k| (first + k) % n) {
            // A kept-alive connection the server closed meanwhile fails at once: one
            // more try on a new connection before the next member.
            for fresh in [false, true] {
                match self.get_from(i, path, wait, fresh, spill).await {
                    Ok(answer) => {
                        self.preferred.store(i, Ordering::Relaxed);
                        return Ok(answer);
                    }
                    Err(e) => last = Some(e),
                }
            }
        }
        let e = last.unwrap_or_else(|| io::Error::other("no endpoint"));
        Err(Error::Unavailable {
            backend: BACKEND.into(),
            operation: format!("GET {} from {}", path_only(path), self.endpoints.join(",")),
            outcome_unknown: false,
            source: Box::new(e),
        })
    }

    async fn get_from(
        &self,
        i: usize,
        path: &str,
        wait: bool,
        fresh: bool,
        spill: Option<usize>,
    ) -> io::Result<Answer> {
        let reused = if fresh { None } else { self.take_idle(i) };
        let mut send = match reused {
            Some(s) => s,
            None => self.connect(i).await?,
        };
        let host = &self.endpoints[i];
        let mut req = hyper::Request::get(path).header(hyper::header::HOST, host.as_str());
        if let Some(auth) = &self.auth {
            req = req.header(hyper::header::AUTHORIZATION, auth.as_str());
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(io::Error::other)?;
        let exchange = async {
            send.ready().await.map_err(io::Error::other)?;
            let resp = send.send_request(req).await.map_err(io::Error::other)?;
            let status = resp.status().as_u16();
            let index = resp
                .headers()
                .get("x-etcd-index")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let (body, spilled) = read_body(resp.into_body(), spill).await?;
            Ok::<_, io::Error>(Answer {
                status,
                index,
                body,
                spilled,
            })
        };
        let answer = if wait {
            exchange.await?
        } else {
            tokio::time::timeout(self.request_timeout, exchange)
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer within {:?}", self.request_timeout),
                    )
                })??
        };
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((i, send));
        Ok(answer)
    }

    fn take_idle(&self, i: usize) -> Option<SendRequest<Empty<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|(_, s)| !s.is_closed());
        let at = idle.iter().position(|(m, _)| *m == i)?;
        Some(idle.swap_remove(at).1)
    }

    async fn connect(&self, i: usize) -> io::Result<SendRequest<Empty<Bytes>>> {
        let endpoint = &self.endpoints[i];
        let tcp = tokio::time::timeout(self.dial_timeout, TcpStream::connect(endpoint))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {endpoint} took over {:?}", self.dial_timeout),
                )
            })??;
        tcp.set_nodelay(true)?;
        let Some(config) = &self.tls else {
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(io::Error::other)?;
            tokio::spawn(conn);
            return Ok(send);
        };
        let host = endpoint
            .rsplit_once(':')
            .map_or(endpoint.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(conn);
        Ok(send)
    }
}

/// The path of a request without its query, for messages.
fn path_only(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

/// A body in memory, or past `spill` bytes in a temporary file (rewound).
async fn read_body(
    mut body: hyper::body::Incoming,
    spill: Option<usize>,
) -> io::Result<(Bytes, Option<std::fs::File>)> {
    use std::io::{Seek, Write};
    let mut held = Vec::new();
    let mut file: Option<std::fs::File> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(io::Error::other)?.into_data() else {
            continue;
        };
        match &mut file {
            Some(f) => f.write_all(&data)?,
            None => {
                held.extend_from_slice(&data);
                if spill.is_some_and(|limit| held.len() > limit) {
                    let mut f = tempfile::tempfile()?;
                    f.write_all(&held)?;
                    held = Vec::new();
                    file = Some(f);
                }
            }
        }
    }
    if let Some(f) = &mut file {
        f.flush()?;
        f.rewind()?;
    }
    Ok((Bytes::from(held), file))
}

/// A rustls client config: the servers' CA from `ca_cert`, a client certificate when
/// both `cert` and `key` are given. An unreadable or unusable file is named.
fn client_config(files: &TlsFiles<'_>) -> Result<ClientConfig> {
    let bad = |path: &Path, what: String| Error::InvalidUrl {
        url: path.display().to_string(),
        reason: what,
    };
    let certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>> {
        let pem = std::fs::read(path).map_err(|e| bad(path, format!("cannot be read: {e}")))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(path, format!("is not a PEM certificate file: {e}")))?;
        if certs.is_empty() {
            return Err(bad(path, "holds no certificate".into()));
        }
        Ok(certs)
    };
    let Some(ca) = files.ca_cert else {
        return Err(Error::InvalidUrl {
            url: "etcd2://".into(),
            reason: "HTTPS needs the CA that signed the members' certificates: give --cacert"
                .into(),
        });
    };
    let mut roots = RootCertStore::empty();
    for cert in certs(ca)? {
        roots
            .add(cert)
            .map_err(|e| bad(ca, format!("holds a certificate that is no CA: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(ca, e.to_string()))?
        .with_root_certificates(roots);
    match (files.cert, files.key) {
        (Some(cert), Some(key)) => {
            let pem = std::fs::read(key).map_err(|e| bad(key, format!("cannot be read: {e}")))?;
            let k = PrivateKeyDer::from_pem_slice(&pem)
                .map_err(|e| bad(key, format!("holds no usable private key: {e}")))?;
            builder
                .with_client_auth_cert(certs(cert)?, k)
                .map_err(|e| bad(key, format!("does not go with {}: {e}", cert.display())))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(Error::InvalidUrl {
            url: "etcd2://".into(),
            reason: "a client certificate needs both --cert and --key".into(),
        }),
    }
}
