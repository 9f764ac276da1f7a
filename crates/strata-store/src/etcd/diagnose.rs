//! Connecting to etcd when something is wrong: which of the endpoints accept a
//! connection (a member down at start must not take requests), and what a failure
//! of the connection itself means in words (nothing listening, something that is not
//! etcd on the port, authentication switched off), from the raw gRPC, HTTP/2 and
//! socket text.

use std::time::Duration;

use strata_core::Error;

use super::{unavailable, BACKEND};

/// The endpoints that accept a TCP connection (all of them when none does, so that
/// the error says why). The client's balancer keeps sending requests to an endpoint
/// that never connected, and each such request fails: a member down when the
/// command starts would fail about every other request although the others answer.
/// (Once connected, a member that goes away is dropped by the balancer, and requests
/// go to the others.)
pub(super) async fn reachable(endpoints: &[String], timeout: Duration) -> Vec<String> {
    if endpoints.len() < 2 {
        return endpoints.to_vec();
    }
    let mut probes = tokio::task::JoinSet::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let address = address(endpoint);
        probes.spawn(async move {
            let connected = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address));
            (i, matches!(connected.await, Ok(Ok(_))))
        });
    }
    let mut up = vec![false; endpoints.len()];
    while let Some(Ok((i, ok))) = probes.join_next().await {
        up[i] = ok;
    }
    let reachable: Vec<String> = endpoints
        .iter()
        .zip(up)
        .filter(|(_, ok)| *ok)
        .map(|(e, _)| e.clone())
        .collect();
    if reachable.is_empty() {
        endpoints.to_vec()
    } else {
        reachable
    }
}

/// The text of an error and all its causes, for [`diagnosis`].
pub(crate) fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// What a failure of the connection itself most likely means, in words.
#[derive(Debug, PartialEq)]
pub(crate) struct Diagnosis {
    /// The sentence for an error message: what is true and what to do.
    pub text: String,
    /// A few words for a table cell (`strata status`).
    pub short: String,
    /// Nothing answered (etcd may be starting): a retry may help. Otherwise something
    /// answered and said no.
    pub transient: bool,
}

impl Diagnosis {
    pub(super) fn into_error(self, operation: &str, write: bool) -> Error {
        if self.transient {
            unavailable(operation, write, self.text)
        } else {
            Error::backend(BACKEND, operation, self.text)
        }
    }
}

/// Reads the raw gRPC, HTTP/2 and socket text of an error (the whole chain) and says
/// what it means for someone connecting to etcd: nothing listening, something that
/// is not etcd on the port, authentication switched off on the cluster.
pub(crate) fn diagnosis(chain: &str) -> Option<Diagnosis> {
    let has = |s: &str| chain.contains(s);
    if has("authentication is not enabled") {
        return Some(Diagnosis {
            text: "authentication is not enabled on this cluster, but a user and password \
                   were given: connect without a user, or enable authentication on the \
                   cluster (`etcdctl user add root`, then `etcdctl auth enable`)"
                .into(),
            short: "authentication is not enabled, but a user was given".into(),
            transient: false,
        });
    }
    if has("onnection refused") {
        return Some(Diagnosis {
            text: "nothing accepts connections there (connection refused): is etcd running, \
                   and is this its client port (2379 unless the cluster was set up otherwise)?"
                .into(),
            short: "connection refused".into(),
            transient: true,
        });
    }
    let http_status = chain.split("HTTP status code ").nth(1).map(|rest| {
        rest.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
    });
    let broken = [
        "h2 protocol error",
        "frame with invalid size",
        "invalid HTTP version",
    ];
    let what = match http_status {
        Some(code) if !code.is_empty() => format!("it answered HTTP {code}"),
        _ if broken.iter().any(|m| has(m)) => "its answer is not HTTP/2".to_owned(),
        _ => return None,
    };
    Some(not_etcd(&what))
}

/// Something that is not etcd's gRPC API answers at the endpoint; `what` says how.
pub(crate) fn not_etcd(what: &str) -> Diagnosis {
    Diagnosis {
        text: format!(
            "something answers there, but not etcd's gRPC API ({what}): an HTTP/1 server, a \
             proxy, or another service is on this port, or it expects TLS (https://, a CA \
             certificate); check the client URL's host and port (etcd's client port is 2379 \
             unless the cluster was set up otherwise)"
        ),
        short: format!("not etcd ({what})"),
        transient: false,
    }
}

/// Whether `endpoint` answers HTTP/2's connection preface in HTTP/1 (a web server or
/// a proxy on the port, not etcd): sends the preface, reads the first bytes. For a
/// connection that broke off at once ("operation was canceled"), which hides why.
pub(crate) async fn http1_answer(endpoint: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = address(endpoint);
    let probe = async move {
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .ok()?;
        let mut head = [0u8; 5];
        stream.read_exact(&mut head).await.ok()?;
        Some(&head == b"HTTP/")
    };
    tokio::time::timeout(Duration::from_secs(1), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// An endpoint as a socket address: `host:port`, without a scheme or a trailing `/`.
fn address(endpoint: &str) -> String {
    endpoint
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned()
}
