//! The key-path box in every page's header: `GET /complete?path=P` answers the
//! completions of a typed path as a JSON list (the children of P's level whose names
//! start with what follows its last `/`, at most [`SHOWN`], read from there with the
//! level's paged listing, never the whole level), and `GET /go?path=P` opens it: a
//! level for a path ending in `/`, else the key, else the level below it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use strata_core::store::Store;

use crate::html::{param, url};
use crate::Console;

/// Completions answered at most.
const SHOWN: usize = 20;

/// A typed path, made absolute.
fn absolute(path: &str) -> String {
    match path.starts_with('/') {
        true => path.to_owned(),
        false => format!("/{path}"),
    }
}

/// `GET /complete?path=P`: a JSON array of paths (`/a/b/` for a level, `/a/b` for a key).
pub(crate) async fn complete<S: Store + Clone + 'static>(
    State(c): State<Arc<Console<S>>>,
    uri: Uri,
) -> Response {
    let path = absolute(&param(uri.query(), "path").unwrap_or_default());
    let (level, partial) = path.rsplit_once('/').map_or(("", ""), |(l, p)| (l, p));
    let level = format!("{level}/");
    // From the first child that could start with the partial name.
    let cursor = Some(format!("{level}{partial}").into_bytes());
    let page = strata_ops::listing::list_page(&c.store, &level, cursor, 0, SHOWN).await;
    let children = match page {
        Ok(p) => p.children,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut out = Vec::new();
    for ch in children.iter().filter(|ch| ch.name.starts_with(partial)) {
        if ch.value.is_some() {
            out.push(serde_json::Value::String(ch.key.clone()));
        }
        if ch.descendants > 0 {
            out.push(serde_json::Value::String(format!("{}/", ch.key)));
        }
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::Value::Array(out).to_string(),
    )
        .into_response()
}

/// `GET /go?path=P`: the page of the typed path.
pub(crate) async fn go<S: Store + Clone + 'static>(
    State(c): State<Arc<Console<S>>>,
    uri: Uri,
) -> Response {
    let path = absolute(param(uri.query(), "path").unwrap_or_default().trim());
    if !path.ends_with('/') && matches!(c.store.get(path.as_bytes()).await, Ok(Some(_))) {
        return Redirect::to(&format!("/key?k={}", url(&path))).into_response();
    }
    Redirect::to(&format!("/browse?prefix={}", url(&path))).into_response()
}

/// The header's path box (holding `path`) and its completion script.
pub fn path_box(path: &str) -> String {
    format!(
        "<form action=\"/go\" class=\"path\"><input id=\"path\" name=\"path\" list=\"paths\" value=\"{}\" \
         autocomplete=\"off\" spellcheck=\"false\" placeholder=\"/key/path\"><datalist id=\"paths\"></datalist></form>\
         <script>(function(){{var i=document.getElementById('path'),l=document.getElementById('paths'),t;\
         i.addEventListener('input',function(){{clearTimeout(t);t=setTimeout(function(){{\
         fetch('/complete?path='+encodeURIComponent(i.value)).then(function(r){{return r.json()}})\
         .then(function(a){{l.textContent='';a.forEach(function(p){{var o=document.createElement('option');\
         o.value=p;l.appendChild(o)}})}})}},150)}})}})();</script>",
        crate::html::esc(path)
    )
}
