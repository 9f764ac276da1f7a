//! `strata ui`: a web console for a store, served by a library-level HTTP server
//! (axum) so that a service can embed it; the CLI's `ui` command is a frontend over
//! [`serve`]. Pages are rendered on the server from the same library calls as the
//! CLI (listing, get, history, objects, refs and their picture, search, the health of
//! the data), every text escaped, the style
//! sheet compiled in (no CDN, nothing fetched at run time).
//!
//! Security: it listens on 127.0.0.1 unless told otherwise, and anywhere else only
//! with a token that every request must carry (`Authorization: Bearer TOKEN`, or once
//! `?token=TOKEN`, which sets a same-site cookie and redirects to the address without
//! it). It is read-only unless started
//! with `--allow-writes` (`writes.rs`: compare-and-swap writes from its own pages;
//! `create.rs`: objects from a form; `restore.rs`: the backup's restore plan, shown
//! and then applied as shown). Fields a schema marks secret are never sent to the
//! browser. Owns the routes and the access rule; the pages are `pages.rs`, HTML
//! `html.rs`.

mod create;
mod graph;
mod health;
pub mod html;
mod live;
mod pages;
mod paths;
mod restore;
mod search;
mod writes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use strata_core::store::Store;
use strata_schema::Schema;
use strata_search::Identity;

/// What can go wrong starting the console.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "{addr} is not a loopback address: anyone who can reach it could read the store; \
         give --token FILE (every request must then carry it), or listen on 127.0.0.1"
    )]
    NoToken { addr: SocketAddr },
    #[error("the token must be at least 16 characters")]
    ShortToken,
    #[error(
        "no random source (/dev/urandom) for the write forms' token: --allow-writes needs one"
    )]
    NoRandom,
}

/// How the console is set up.
#[derive(Clone, Default)]
pub struct ConsoleOptions {
    /// The schema: objects, types, references; its secrets are never shown.
    pub schema: Option<Schema>,
    /// The token every request must carry (required off loopback).
    pub token: Option<String>,
    /// The search index's folder and what it is for.
    pub search: Option<(PathBuf, Identity)>,
    /// The sentence-embedding model: search by meaning too.
    pub model: Option<Arc<strata_search::Embedder>>,
    /// The migrations folder, for the health page.
    pub migrations: Option<PathBuf>,
    /// The Git backup (its repository and how its files were written): a key's and an
    /// object's changes in it, the health page's backup lag, restores.
    pub backup: Option<strata_backup::BackupOptions>,
    /// Pages may write (each write a compare-and-swap, from the console's own pages).
    pub allow_writes: bool,
    /// A layered keyspace's layers: each store's name and the key ranges it holds
    /// (empty for a single store), for the entities page.
    pub layers: Vec<(String, Vec<strata_core::model::KeySpan>)>,
}

impl std::fmt::Debug for ConsoleOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleOptions")
            .field("schema", &self.schema.is_some())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("search", &self.search.as_ref().map(|(d, _)| d))
            .field("model", &self.model.is_some())
            .field("backup", &self.backup.as_ref().map(|b| &b.repo))
            .field("allow_writes", &self.allow_writes)
            .finish()
    }
}

/// The console's state: the store and its options.
pub(crate) struct Console<S> {
    pub store: S,
    pub opts: ConsoleOptions,
    /// The token of this process's write forms.
    pub form_token: String,
    /// The `Host` values a request may carry (none: any, behind a token): on loopback
    /// the console's own addresses, so that a page of another site that a DNS name
    /// rebound to 127.0.0.1 serves cannot use the console.
    pub hosts: Vec<String>,
}

/// The routes over `store`, served at `addr`.
pub fn router<S: Store + Clone + 'static>(
    store: S,
    opts: ConsoleOptions,
    addr: SocketAddr,
) -> Result<Router, Error> {
    let hosts = if addr.ip().is_loopback() {
        let p = addr.port();
        vec![
            addr.to_string(),
            format!("127.0.0.1:{p}"),
            format!("localhost:{p}"),
            format!("[::1]:{p}"),
        ]
    } else {
        Vec::new()
    };
    let form_token = match (writes::form_token(), opts.allow_writes) {
        (Some(t), _) => t,
        (None, false) => String::new(),
        (None, true) => return Err(Error::NoRandom),
    };
    let console = Arc::new(Console {
        store,
        opts,
        form_token,
        hosts,
    });
    Ok(Router::new()
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/browse?prefix=/") }),
        )
        .route(
            "/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], html::CSS) }),
        )
        .route("/browse", get(pages::browse::<S>))
        .route("/complete", get(paths::complete::<S>))
        .route("/go", get(paths::go::<S>))
        .route("/entities", get(create::entities::<S>))
        .route("/new", get(create::new::<S>))
        .route("/create", axum::routing::post(create::create::<S>))
        .route("/key", get(pages::key::<S>))
        .route("/object", get(pages::object::<S>))
        .route("/search", get(search::search::<S>))
        .route("/refs", get(graph::refs::<S>))
        .route("/health", get(health::health::<S>))
        .route("/events", get(live::events::<S>))
        .route("/put", axum::routing::post(writes::write::<S>))
        .route("/delete", axum::routing::post(writes::write::<S>))
        .route(
            "/restore",
            get(restore::plan::<S>).post(restore::apply::<S>),
        )
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            guard::<S>,
        ))
        .with_state(console))
}

/// Lets a request through if no token is set or it carries the token; a `?token=`
/// that matches also sets the cookie.
async fn guard<S: Store + Clone + 'static>(
    State(c): State<Arc<Console<S>>>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    if !c.hosts.is_empty() && !host.is_some_and(|h| c.hosts.iter().any(|a| a == h)) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "this console answers only at its own address (a page of another site is refused)\n",
        )
            .into_response();
    }
    let mut resp = allowed(&c, req, next).await;
    // Never framed (no clickjacking of its forms), never sniffed.
    let h = resp.headers_mut();
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("frame-ancestors 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    resp
}

/// The token rule: through if no token is set or the request carries it.
async fn allowed<S: Store + Clone + 'static>(c: &Console<S>, req: Request, next: Next) -> Response {
    let Some(token) = c.opts.token.clone() else {
        return next.run(req).await;
    };
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(';')
                .find_map(|c| c.trim().strip_prefix("strata_token=").map(str::to_owned))
        });
    let given = html::param(req.uri().query(), "token");
    let same = |t: &Option<String>| {
        t.as_deref()
            .is_some_and(|t| equal(t.as_bytes(), token.as_bytes()))
    };
    if same(&bearer) || same(&cookie) {
        return next.run(req).await;
    }
    if same(&given) {
        // The cookie set, the token taken out of the address (the address bar, the
        // history and the Referer of the next request no longer carry it).
        let rest: Vec<&str> = req
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.starts_with("token=") && !p.is_empty())
            .collect();
        let to = match rest.is_empty() {
            true => req.uri().path().to_owned(),
            false => format!("{}?{}", req.uri().path(), rest.join("&")),
        };
        let mut resp = if req.method() == axum::http::Method::GET {
            axum::response::Redirect::to(&to).into_response()
        } else {
            next.run(req).await
        };
        if let Ok(v) = format!("strata_token={token}; HttpOnly; SameSite=Strict; Path=/").parse() {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
        return resp;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "this console needs its token: Authorization: Bearer TOKEN, or open it once with ?token=TOKEN\n",
    )
        .into_response()
}

/// Compares in time that does not depend on where the bytes differ.
pub(crate) fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves the console on `addr` until `stop` completes; `ready` is told the bound
/// address (port 0: any free one). Off loopback a token is required.
pub async fn serve<S: Store + Clone + 'static>(
    store: S,
    addr: SocketAddr,
    opts: ConsoleOptions,
    ready: impl FnOnce(SocketAddr),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    if !addr.ip().is_loopback() && opts.token.is_none() {
        return Err(Error::NoToken { addr });
    }
    if opts.token.as_ref().is_some_and(|t| t.len() < 16) {
        return Err(Error::ShortToken);
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let app = router(store, opts, bound)?;
    ready(bound);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|source| Error::Bind {
            addr: bound,
            source,
        })
}
