//! Strata over HTTP: the metrics and health endpoints of long-running commands
//! (`backup watch`, `mirror`), for Prometheus and for service managers and load
//! balancers that probe `/healthz`.
//!
//! A [`Monitor`] holds a metric [`Registry`] and a [`Health`]; a feed
//! ([`MirrorFeed`], [`BackupFeed`]) sets both from the status reports of the library
//! loops; [`serve`] answers `GET /metrics` and `GET /healthz` from them. Frontends
//! start the server and pass each report to the feed; they hold no metric or health
//! rule of their own.

pub mod feed;
pub mod health;
pub mod registry;
pub mod server;

use std::net::SocketAddr;

pub use feed::{BackupFeed, MirrorFeed};
pub use health::{Health, Monitor};
pub use registry::{Counter, Gauge, Registry};
pub use server::{serve, Server};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot listen on {addr}: {source}; is another process using that port? Choose another address, or port 0 for any free one")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error("the HTTP server on {addr} stopped: {source}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
