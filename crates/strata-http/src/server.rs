//! The HTTP server of a long-running command: `GET /metrics` (the Prometheus text
//! exposition format) and `GET /healthz` (200 `ok`, or 503 and the reason), on
//! axum over a tokio listener.
//!
//! Owns binding, routing and shutting down; what the answers say is the
//! [`Monitor`]'s.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::health::Monitor;
use crate::Error;

/// The content type of the text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A running server; [`Server::shutdown`] stops it (dropping it leaves it running
/// until the runtime ends).
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

/// The routes, on `monitor`.
pub fn router(monitor: Monitor) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(monitor)
}

async fn metrics(State(monitor): State<Monitor>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        monitor.registry.render(),
    )
}

async fn healthz(State(monitor): State<Monitor>) -> impl IntoResponse {
    let (status, body) = match monitor.health.get() {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
}

/// Listens on `addr` (port 0: any free port) and serves `monitor` in a task of the
/// current runtime. Fails at once when the address cannot be bound.
pub async fn serve(addr: SocketAddr, monitor: Monitor) -> Result<Server, Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router(monitor))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok(Server {
        addr,
        stop: Some(stop),
        task,
    })
}

impl Server {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish (for up to a second), and
    /// ends.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(Duration::from_secs(1), &mut self.task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(source))) => Err(Error::Serve {
                addr: self.addr,
                source,
            }),
            // A panicked task, or connections that outlive the grace period.
            Ok(Err(_)) => Ok(()),
            Err(_) => {
                self.task.abort();
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn serves_metrics_and_health_until_shut_down() {
        let monitor = Monitor::new();
        monitor
            .registry
            .counter("strata_test_errors_total", "Errors.")
            .set_total(2);
        monitor
            .health
            .set_failing("the store etcd://h:1 does not answer");
        let server = serve(([127, 0, 0, 1], 0).into(), monitor.clone())
            .await
            .unwrap();
        let addr = server.local_addr();
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(metrics.contains(METRICS_CONTENT_TYPE), "{metrics}");
        assert!(metrics.contains("\r\n\r\n# HELP strata_test_errors_total Errors.\n# TYPE strata_test_errors_total counter\nstrata_test_errors_total 2\n"), "{metrics}");
        let sick = get(addr, "/healthz").await;
        assert!(sick.starts_with("HTTP/1.1 503"), "{sick}");
        assert!(
            sick.ends_with("\r\n\r\nthe store etcd://h:1 does not answer\n"),
            "{sick}"
        );
        monitor.health.set_ok();
        let well = get(addr, "/healthz").await;
        assert!(
            well.starts_with("HTTP/1.1 200") && well.ends_with("\r\n\r\nok\n"),
            "{well}"
        );
        assert!(get(addr, "/nothing").await.starts_with("HTTP/1.1 404"));
        server.shutdown().await.unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn a_busy_address_is_an_error_that_names_it() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let err = serve(addr, Monitor::new()).await.unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
