//! What `strata status` reports about a store: which one (its URL without
//! credentials), whether it answers, its revision, key count and backend version, and
//! for etcd each endpoint's own view (`etcd::EndpointStatus`). Gathering never fails
//! on an unreachable store: that is part of the report. Where the URL came from is the
//! caller's to say; printing is the frontend's.

use strata_core::{KeySpan, RangeRequest, Result, Store};

use crate::{etcd::EndpointStatus, open_with, AnyStore, ConnectOptions, StoreUrl};

/// A store's state, as [`status`] or [`status_of`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreReport {
    /// The store's URL, without credentials.
    pub url: String,
    /// `sqlite`, `etcd`, `postgres` or `mem`.
    pub backend: &'static str,
    /// The store answered a read of its revision and key count.
    pub reachable: bool,
    /// Why it is not reachable (or why a part of the report is missing).
    pub error: Option<String>,
    /// The current revision.
    pub revision: Option<i64>,
    /// The revision as messages show it: the number, or for a layered keyspace each
    /// store's (`ops@12, comms@5`).
    pub revision_shown: Option<String>,
    /// The compaction point (0: never compacted).
    pub compact_revision: Option<i64>,
    /// How many keys it holds (Strata's own under `/_strata/` included).
    pub keys: Option<i64>,
    /// The backend's version: SQLite's library, PostgreSQL's or etcd's server.
    pub version: Option<String>,
    /// etcd: each endpoint, asked alone. Empty for the other backends.
    pub endpoints: Vec<EndpointStatus>,
}

impl StoreReport {
    fn new(url: String, backend: &'static str) -> Self {
        StoreReport {
            url,
            backend,
            reachable: false,
            error: None,
            revision: None,
            revision_shown: None,
            compact_revision: None,
            keys: None,
            version: None,
            endpoints: Vec::new(),
        }
    }
}

fn backend_of(store: &AnyStore) -> &'static str {
    match store {
        AnyStore::Sqlite(_) => "sqlite",
        AnyStore::Etcd(_) => "etcd",
        AnyStore::Postgres(_) => "postgres",
        AnyStore::Etcd2(_) => "etcd2",
        AnyStore::Mem(_) => "mem",
        AnyStore::Layered(_) => "layers",
    }
}

/// Opens the store `url` names and reports on it. Only a malformed URL is an error: a
/// store that cannot be opened (a missing SQLite file when `opts.create` is false, a
/// PostgreSQL server that does not answer) is reported as not reachable, with why.
pub async fn status_of(url: &str, opts: &ConnectOptions) -> Result<StoreReport> {
    let parsed = StoreUrl::parse(url)?;
    match open_with(url, opts).await {
        Ok(store) => Ok(status(&store, url).await),
        Err(e) => {
            let backend = match parsed {
                StoreUrl::Sqlite(_) => "sqlite",
                StoreUrl::Etcd { .. } => "etcd",
                StoreUrl::Postgres(_) => "postgres",
                StoreUrl::Etcd2 { .. } => "etcd2",
                StoreUrl::Mem => "mem",
                StoreUrl::Layers(_) => "layers",
            };
            let mut report = StoreReport::new(parsed.redacted(), backend);
            report.error = Some(e.to_string());
            Ok(report)
        }
    }
}

/// Reports on an open store, opened from `url` (shown without credentials): its revision and key count (read at one revision), its
/// backend's version and, for etcd, every endpoint's status. Never fails: what could
/// not be read is left out and the first reason is in [`StoreReport::error`].
pub async fn status(store: &AnyStore, url: &str) -> StoreReport {
    let url = StoreUrl::parse(url).map_or_else(|_| crate::redact(url), |u| u.redacted());
    let mut report = StoreReport::new(url, backend_of(store));
    let note = |report: &mut StoreReport, e: strata_core::Error| {
        report.error.get_or_insert_with(|| e.to_string());
    };
    let counted = match store.status().await {
        Ok(st) => {
            report.compact_revision = Some(st.compact_revision);
            store
                .range(RangeRequest::new(KeySpan::all()).count_only())
                .await
        }
        Err(e) => Err(e),
    };
    match counted {
        Ok(range) => {
            report.reachable = true;
            report.revision = Some(range.revision);
            report.revision_shown = Some(store.describe_revision(range.revision));
            report.keys = Some(range.count);
        }
        Err(e) => note(&mut report, e),
    }
    let version: Result<Option<String>> = match store {
        AnyStore::Sqlite(s) => s.sqlite_version().map(Some),
        AnyStore::Postgres(s) if report.reachable => s.server_version().await.map(Some),
        AnyStore::Etcd(s) => {
            report.endpoints = s.endpoint_statuses().await;
            let leader = report.endpoints.iter().find(|e| e.leader);
            let any = report.endpoints.iter().find(|e| e.version.is_some());
            Ok(leader.or(any).and_then(|e| e.version.clone()))
        }
        AnyStore::Layered(l) => Ok(Some(format!("({})", l.store_names().join(", ")))),
        _ => Ok(None),
    };
    match version {
        Ok(v) => report.version = v,
        Err(e) => note(&mut report, e),
    }
    report
}
