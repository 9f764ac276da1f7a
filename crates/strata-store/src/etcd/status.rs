//! Each member's own view, as `etcdctl endpoint status` shows it: every endpoint is
//! asked alone (its own client, no failover), so one that is down shows as down
//! instead of being hidden behind a member that answers. The store-wide report
//! (revision, key count) is `crate::status`'s.

use etcd_client::Client;

use super::{client_options, EtcdStore};

/// What one endpoint said about itself, or why it said nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointStatus {
    /// `host:port`, as given.
    pub endpoint: String,
    /// It answered, and reported no errors (alarms, a failed apply).
    pub healthy: bool,
    /// It is the cluster's leader (its member id is the leader it reports).
    pub leader: bool,
    /// Its etcd version, when it answered.
    pub version: Option<String>,
    /// Its member id, when it answered.
    pub member_id: Option<u64>,
    /// Its revision, when it answered.
    pub revision: Option<i64>,
    /// Its raft term, when it answered.
    pub raft_term: Option<u64>,
    /// Its database size in bytes, when it answered.
    pub db_size: Option<i64>,
    /// Why it is not healthy: the connection's error, or the errors it reported.
    pub error: Option<String>,
}

impl EtcdStore {
    /// Asks every endpoint for its status, each alone and all at once, within the
    /// dial timeout plus the request timeout. Never fails: an endpoint that cannot be
    /// asked is reported as not healthy, with the reason.
    pub async fn endpoint_statuses(&self) -> Vec<EndpointStatus> {
        let asks = self.opts.endpoints.iter().map(|e| self.endpoint_status(e));
        futures_join_all(asks).await
    }

    async fn endpoint_status(&self, endpoint: &str) -> EndpointStatus {
        let mut report = EndpointStatus {
            endpoint: endpoint.to_owned(),
            healthy: false,
            leader: false,
            version: None,
            member_id: None,
            revision: None,
            raft_term: None,
            db_size: None,
            error: None,
        };
        let limit = self.opts.dial_timeout + self.opts.request_timeout;
        let ask = async {
            let options = client_options(&self.opts).map_err(|e| e.to_string())?;
            let mut client = Client::connect([endpoint], Some(options))
                .await
                .map_err(short)?;
            client.status().await.map_err(short)
        };
        let answer = match tokio::time::timeout(limit, ask).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {limit:?}")),
        };
        match answer {
            Ok(status) => {
                let member = status.header().map(|h| h.member_id());
                report.member_id = member;
                report.leader = member.is_some_and(|m| m == status.leader());
                report.version = Some(status.version().to_owned());
                report.revision = status.header().map(|h| h.revision());
                report.raft_term = Some(status.raft_term());
                report.db_size = Some(status.db_size());
                if status.errors().is_empty() {
                    report.healthy = true;
                } else {
                    report.error = Some(status.errors().join("; "));
                }
            }
            Err(e) => {
                report.error = Some(match super::diagnose::http1_answer(endpoint).await {
                    // A connection that broke off at once hides why; an HTTP/1 server
                    // answering the HTTP/2 preface says it.
                    true if !e.starts_with("not etcd") => "not etcd (it answers HTTP/1)".to_owned(),
                    _ => e,
                })
            }
        }
        report
    }
}

/// The gist of a client error: what it means when that is known, else a gRPC
/// status's message, not its debug dump.
fn short(e: etcd_client::Error) -> String {
    if let Some(said) = super::diagnosis(&super::chain_text(&e)) {
        return said.short;
    }
    match e {
        etcd_client::Error::GRpcStatus(status) => status.message().to_owned(),
        other => other.to_string(),
    }
}

/// Runs the futures concurrently and returns their outputs in order (tokio has no
/// `join_all`, and the handful of endpoints does not warrant a dependency).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}
