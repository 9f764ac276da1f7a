//! Writes from the console (only with `--allow-writes`): a key's new value, or its
//! delete, each a compare-and-swap on the revision the page was rendered at, so that
//! a change made meanwhile by anyone else is shown as a conflict and never
//! overwritten. A write must come from the console's own pages: its `Origin` (or
//! `Referer`) names the console's host, and it carries the console's per-process
//! token from the form. A field of a schema object is type-checked as `object set`
//! checks it; a secret field cannot be written from a page that never showed it.
//! Every write is logged on stderr with its key and revision.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use strata_core::model::{Compare, CompareOp, KeySpan, Op, Txn};
use strata_core::store::Store;

use crate::html::{esc, page, param, url};
use crate::Console;

/// A secret for the forms of this process: 16 bytes from the OS, in hex; `None`
/// without a random source.
pub(crate) fn form_token() -> Option<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .ok()?;
    Some(strata_core::hex::encode(&bytes))
}

/// The hidden fields of a write form for `key` read at `revision`.
pub(crate) fn form_fields<S>(c: &Console<S>, key: &str, revision: i64) -> String {
    format!(
        "<input type=\"hidden\" name=\"k\" value=\"{}\"><input type=\"hidden\" name=\"at\" value=\"{revision}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(key),
        esc(&c.form_token)
    )
}

pub(crate) fn refuse(status: StatusCode, text: &str) -> Response {
    crate::pages::fail(status, "refused", text)
}

/// The answer to a write on a console started without `--allow-writes`.
pub(crate) fn read_only() -> Response {
    refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        "this console is read-only (start it with --allow-writes)",
    )
}

/// Whether the request comes from a page of this console (same origin).
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    match (host, from) {
        (Some(host), Some(from)) => {
            let rest = from.split_once("://").map_or(from, |(_, r)| r);
            rest.split('/').next() == Some(host)
        }
        _ => false,
    }
}

/// Whether a write may go ahead (`None`): the console writes, the request comes from
/// its own pages and carries this process's form token; otherwise the page that says
/// why it is refused.
pub(crate) fn refusal<S>(c: &Console<S>, headers: &HeaderMap, form: &str) -> Option<Response> {
    if !c.opts.allow_writes {
        return Some(read_only());
    }
    if !same_origin(headers) {
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "a write must come from this console's own pages (cross-origin request refused)",
        ));
    }
    let token = param(Some(form), "csrf").unwrap_or_default();
    if !crate::equal(token.as_bytes(), c.form_token.as_bytes()) {
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "the form's token is missing or stale: reload the page and try again",
        ));
    }
    None
}

/// `POST /put` (`k`, `at`, `value`, `csrf`) and `POST /delete` (`k`, `at`, `csrf`).
pub(crate) async fn write<S: Store + Clone + 'static>(
    State(c): State<Arc<Console<S>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = String::from_utf8_lossy(&body).into_owned();
    if let Some(refused) = refusal(&c, &headers, &form) {
        return refused;
    }
    let field = |name: &str| param(Some(&form), name);
    let (Some(key), Some(at)) = (field("k"), field("at").and_then(|a| a.parse::<i64>().ok()))
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the form lacks its key or revision",
        );
    };
    if key.starts_with(strata_core::key::RESERVED_PREFIX) {
        return refuse(
            StatusCode::FORBIDDEN,
            "Strata's own keys (/_strata/) are not written from the console",
        );
    }
    let delete = uri.path() == "/delete";
    let value = field("value").unwrap_or_default();
    // The text area's CR LF back to the value's own line ends.
    let value = match field("eol").as_deref() {
        Some("crlf") => value,
        _ => value.replace("\r\n", "\n"),
    };
    let schema = c.opts.schema.as_ref();
    if let Some(s) = schema {
        if s.secrecy(key.as_bytes()).is_secret() {
            return refuse(
                StatusCode::FORBIDDEN,
                "a secret field is not written from the console",
            );
        }
        if !delete {
            if let Some(problem) = field_problem(s, &key, &value) {
                return refuse(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &format!("{key}: {problem}"),
                );
            }
        }
    }
    // Unchanged since the page read it (`at` 0: the key did not exist).
    let guard = if at == 0 {
        Compare::version(key.clone(), CompareOp::Equal, 0)
    } else {
        Compare::mod_revision(key.clone(), CompareOp::Equal, at)
    };
    let op = if delete {
        Op::delete(KeySpan::key(key.clone()))
    } else {
        Op::put(key.clone(), value.clone())
    };
    match c.store.txn(Txn::new().when([guard]).and_then([op])).await {
        Ok(r) if r.succeeded => {
            eprintln!(
                "strata ui: {} {key} at revision {} (read at {at})",
                if delete { "deleted" } else { "wrote" },
                r.revision
            );
            Redirect::to(&format!("/key?k={}", url(&key))).into_response()
        }
        Ok(_) => {
            let now = c.store.get(key.as_bytes()).await.ok().flatten();
            let now = match now {
                Some(kv) => match strata_search::doc::visible(schema, &kv.key, &kv.value) {
                    Some(v) => format!(
                        "it now holds <code>{}</code> (revision {})",
                        esc(&v),
                        kv.mod_revision
                    ),
                    None => format!("it changed at revision {}", kv.mod_revision),
                },
                None => "it has been deleted".into(),
            };
            let body = format!(
                "<p>Conflict: {} changed after this page read it at revision {at}; {now}. Nothing \
                 was written. Your value was <code>{}</code>.</p><p><a href=\"/key?k={}\">Reload the key</a></p>",
                esc(&key),
                esc(&value),
                url(&key)
            );
            (
                StatusCode::CONFLICT,
                Html(page("conflict", Some(&key), &body)),
            )
                .into_response()
        }
        Err(e) => refuse(StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}

/// What is wrong with `value` for the schema's key `key` (a single value's, or an
/// object's field, which must be one the entity has), if anything.
fn field_problem(schema: &strata_schema::Schema, key: &str, value: &str) -> Option<String> {
    match schema.key_field(key.as_bytes())? {
        (_, Some(f)) => f.violation(value),
        (e, None) => {
            let last = key.rsplit('/').next().unwrap_or_default();
            let name = strata_core::key::decode_segment(last);
            Some(format!("{} has no field {name:?}", e.name))
        }
    }
}
