//! The pages: a level of the keyspace with key counts (one level read, never the
//! subtree), a key with its history, an object with its typed fields and references
//! (the search page is `search.rs`). Each is one or a few library calls; values pass through the schema's
//! secret rule ([`strata_search::doc::visible`]) before they are rendered.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;
use strata_core::key::display_key;
use strata_core::model::KeySpan;
use strata_core::store::{scan, Store};
use strata_search::doc::{self, Owner};

use crate::html::{esc, page, param, url};
use crate::Console;

/// Children shown per page of a level.
const PAGE: usize = 200;

/// Versions of a key shown on its page (each one point read).
const VERSIONS: usize = 50;

/// What a value looks like on a page: its text, secrets replaced, long ones cut.
fn shown<S>(c: &Console<S>, key: &[u8], value: &[u8], cut: usize) -> String {
    match doc::visible(c.opts.schema.as_ref(), key, value) {
        None => "<span class=\"secret\">secret, not shown</span>".into(),
        Some(text) if text.chars().count() > cut => {
            format!(
                "<code>{}…</code>",
                esc(&text.chars().take(cut).collect::<String>())
            )
        }
        Some(text) => format!("<code>{}</code>", esc(&text)),
    }
}

pub(crate) fn fail(status: StatusCode, title: &str, text: &str) -> Response {
    (
        status,
        Html(page(title, None, &format!("<p>{}</p>", esc(text)))),
    )
        .into_response()
}

/// `/browse?prefix=P`: the children of one level, each with the keys below it.
pub(crate) async fn browse<S: Store + Clone + 'static>(
    State(c): State<Arc<Console<S>>>,
    uri: Uri,
) -> Response {
    let query = uri.query();
    let prefix = strata_ops::listing::dir_prefix(&param(query, "prefix").unwrap_or_default());
    // A page of children at a time, the later pages at the first one's revision.
    let cursor = param(query, "at").and_then(|h| strata_core::hex::decode(&h));
    let at_rev = param(query, "rev")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let listed = strata_ops::listing::list_page(&c.store, &prefix, cursor, at_rev, PAGE).await;
    let (revision, children, next) = match listed {
        Ok(p) => (p.revision, p.children, p.next),
        Err(e) => return fail(StatusCode::BAD_GATEWAY, &prefix, &e.to_string()),
    };
    let mut rows = String::new();
    for ch in &children {
        let name = if ch.descendants > 0 {
            format!(
                "<a href=\"/browse?prefix={}\">{}/</a>",
                url(&format!("{}/", ch.key)),
                esc(&ch.name)
            )
        } else {
            String::new()
        };
        let value = match &ch.value {
            Some(v) => format!(
                "<a href=\"/key?k={}\">{}</a> = {}",
                url(&ch.key),
                esc(&ch.name),
                shown(&c, ch.key.as_bytes(), v, 120)
            ),
            None => String::new(),
        };
        let object = match doc::owner(c.opts.schema.as_ref(), format!("{}/x", ch.key).as_bytes()) {
            Some(Owner::Object { path, entity }) if path == ch.key => {
                format!(
                    " <a class=\"entity\" href=\"/object?path={}\">{}</a>",
                    url(&path),
                    esc(&entity)
                )
            }
            _ => String::new(),
        };
        rows.push_str(&format!(
            "<tr><td>{name}{object}</td><td class=\"count\">{}</td><td>{value}</td></tr>",
            if ch.descendants > 0 {
                ch.descendants.to_string()
            } else {
                String::new()
            }
        ));
    }
    let more = match next {
        Some(n) => format!(
            "<p><a href=\"/browse?prefix={}&at={}&rev={revision}\">next {PAGE}</a></p>",
            url(&prefix),
            strata_core::hex::encode(&n)
        ),
        None => String::new(),
    };
    let body = format!(
        "<p>{} entries at revision {revision}</p><table><tr><th>below</th><th>keys</th><th>value</th></tr>{rows}</table>{more}{}",
        children.len(),
        crate::live::script(&prefix, revision)
    );
    Html(page(&prefix, Some(&prefix), &body)).into_response()
}

/// `/key?k=K`: a key's value and its history.
pub(crate) async fn key<S: Store + Clone + 'static>(
    State(c): State<Arc<Console<S>>>,
    uri: Uri,
) -> Response {
    let Some(k) = param(uri.query(), "k") else {
        return fail(StatusCode::BAD_REQUEST, "key", "give ?k=KEY");
    };
    let kv = match c.store.get(k.as_bytes()).await {
        Ok(kv) => kv,
        Err(e) => return fail(StatusCode::BAD_GATEWAY, &k, &e.to_string()),
    };
    let Some(kv) = kv else {
        return fail(StatusCode::NOT_FOUND, &k, "no such key");
    };
    let value = match doc::visible(c.opts.schema.as_ref(), &kv.key, &kv.value) {
        None => "<p class=\"secret\">secret, not shown</p>".to_owned(),
        Some(text) => {
            let pretty = serde_json::from_str::<Value>(&text)
                .ok()
                .filter(|v| v.is_object() || v.is_array())
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(text);
            format!("<pre>{}</pre>", esc(&pretty))
        }
    };
    let object = match doc::owner(c.opts.schema.as_ref(), &kv.key) {
        Some(Owner::Object { path, entity }) => format!(
            "<p>a field of <a href=\"/object?path={}\">{}</a> <span class=\"entity\">{}</span></p>",
            url(&path),
            esc(&path),
            esc(&entity)
        ),
        _ => String::new(),
    };
    // Each version beside the one before it (a side-by-side diff), newest first: the
    // recent versions by point reads, or with `history=all` the store's full history
    // (earlier lives of a deleted key too; on etcd a replay of the whole log).
    let full = param(uri.query(), "history").as_deref() == Some("all");
    let (events, more) = if full {
        match c.store.history(&kv.key).await {
            Ok(events) => (events, String::new()),
            Err(e) => (Vec::new(), format!("<p>{}</p>", esc(&e.to_string()))),
        }
    } else {
        match strata_ops::versions::recent(&c.store, &kv.key, VERSIONS).await {
            Ok(v) => {
                let note = if v.compacted {
                    "older versions were compacted away; "
                } else if v.truncated {
                    "older versions not shown; "
                } else {
                    ""
                };
                let mut events = v.events;
                events.reverse();
                let link = format!(
                    "<p class=\"note\">{note}<a href=\"/key?k={}&history=all\">the full history</a> \
                     (earlier lives of the key too; on etcd it replays the store's log)</p>",
                    url(&k)
                );
                (events, link)
            }
            Err(e) => (Vec::new(), format!("<p>{}</p>", esc(&e.to_string()))),
        }
    };
    let mut history = Vec::new();
    let mut before = "<em>absent</em>".to_owned();
    for (i, e) in events.iter().enumerate() {
        let after = match e.kind {
            strata_core::model::EventKind::Put => shown(&c, &e.kv.key, &e.kv.value, 200),
            strata_core::model::EventKind::Delete => "<em>deleted</em>".into(),
        };
        if i == 0 && e.kv.version > 1 && e.kind == strata_core::model::EventKind::Put && !full {
            before = "<em>older, not shown</em>".into();
        }
        history.push(format!(
            "<tr><td>{}</td><td>{before}</td><td>{after}</td></tr>",
            e.kv.mod_revision
        ));
        before = after;
    }
    let history: String = history.into_iter().rev().collect();
    let refs = key_refs(&c, &k).await;
    let backup = backup_history(&c, &k);
    let secret = c
        .opts
        .schema
        .as_ref()
        .is_some_and(|s| s.secrecy(&kv.key).is_secret());
    let edit = if c.opts.allow_writes && !secret {
        let current = doc::visible(c.opts.schema.as_ref(), &kv.key, &kv.value).unwrap_or_default();
        let fields = crate::writes::form_fields(&c, &k, kv.mod_revision);
        // A browser sends a text area's line ends as CR LF: say which the value has, so
        // that the write keeps them. The newline after the tag is the one HTML drops,
        // so a value that starts with one keeps it.
        let eol = if current.contains("\r\n") {
            "crlf"
        } else {
            "lf"
        };
        format!(
            "<form method=\"post\" action=\"/put\">{fields}<input type=\"hidden\" name=\"eol\" value=\"{eol}\">\
             <textarea name=\"value\" rows=\"4\" cols=\"80\">\n{}</textarea>\
             <br><button>Save (only if unchanged since revision {})</button></form>\
             <form method=\"post\" action=\"/delete\">{fields}<button>Delete</button></form>",
            esc(&current),
            kv.mod_revision
        )
    } else {
        String::new()
    };
    let body = format!(
        "{object}<p>version {} · modified at revision {} · created at {}</p>{value}{refs}{edit}\
         <h3>History</h3><table id=\"history\"><tr><th>revision</th><th>before</th><th>after</th></tr>{history}</table>{more}{backup}{}",
        kv.version,
        kv.mod_revision,
        kv.create_revision,
        crate::live::script(&k, kv.mod_revision)
    );
    Html(page(&k, Some(&k), &body)).into_response()
}

/// `/object?path=P`: an object's typed fields (secrets left out) and its references.
pub(crate) async fn object<S: Store + Clone + 'static>(
    State(c): State<Arc<Console<S>>>,
    uri: Uri,
) -> Response {
    let Some(path) = param(uri.query(), "path") else {
        return fail(StatusCode::BAD_REQUEST, "object", "give ?path=OBJECT");
    };
    let Some(schema) = c.opts.schema.as_ref() else {
        return fail(
            StatusCode::BAD_REQUEST,
            &path,
            "objects need the console started with --schema",
        );
    };
    let Some(owner @ Owner::Object { .. }) =
        doc::owner(Some(schema), format!("{path}/x").as_bytes())
    else {
        return fail(
            StatusCode::NOT_FOUND,
            &path,
            "no entity of the schema has objects here",
        );
    };
    let mut kvs = Vec::new();
    let read = scan(
        &c.store,
        KeySpan::prefix(format!("{path}/").into_bytes()),
        0,
        |page| {
            kvs.extend(
                page.into_iter()
                    .filter(|kv| doc::owner(Some(schema), &kv.key).as_ref() == Some(&owner))
                    .map(|kv| (kv.key, kv.value)),
            );
            Ok(())
        },
    )
    .await;
    if let Err(e) = read {
        return fail(StatusCode::BAD_GATEWAY, &path, &e.to_string());
    }
    let Some(d) = doc::build(Some(schema), &owner, &kvs) else {
        return fail(StatusCode::NOT_FOUND, &path, "no such object");
    };
    let entity = owner.entity().and_then(|e| schema.entity(e));
    let mut rows = String::new();
    if let (Some(e), Value::Object(fields)) = (entity, &d.shown) {
        for (name, spec) in &e.fields {
            let value = match (spec.secret, fields.get(name)) {
                (true, _) => "<span class=\"secret\">secret, not shown</span>".to_owned(),
                (false, Some(v)) => typed_value(&spec.ty, v),
                (false, None) => "<em>absent</em>".to_owned(),
            };
            rows.push_str(&format!(
                "<tr><td><a href=\"/key?k={}\">{}</a></td><td>{}</td><td>{value}</td></tr>",
                url(&format!("{path}/{name}")),
                esc(name),
                esc(&crate::html::type_name(&spec.ty))
            ));
        }
    }
    let refs = ref_items(&c, schema, &path).await;
    let body = format!(
        "<p><span class=\"entity\">{}</span></p><table><tr><th>field</th><th>type</th><th>value</th></tr>{rows}</table>\
         <h3>References</h3><ul>{refs}</ul><p><a href=\"/refs?key={}&depth=2\">the references around it, drawn</a></p>{}",
        esc(owner.entity().unwrap_or_default()),
        url(&path),
        backup_history(&c, &path)
    );
    Html(page(&path, Some(&path), &body)).into_response()
}

/// A field's value as its type shows it: text as text (no JSON quotes), a number or a
/// boolean as it is, a time with its zone, a JSON document pretty-printed.
fn typed_value(ty: &strata_schema::FieldType, v: &Value) -> String {
    use strata_schema::FieldType as T;
    match (ty, v) {
        (T::Json, doc) if doc.is_object() || doc.is_array() => format!(
            "<pre class=\"json\">{}</pre>",
            esc(&serde_json::to_string_pretty(doc).unwrap_or_default())
        ),
        (T::Timestamp, Value::String(t)) => format!("<time>{}</time>", esc(t)),
        (T::Bool, Value::Bool(b)) => format!("<code class=\"bool\">{b}</code>"),
        (_, Value::String(text)) => format!("<code>{}</code>", esc(text)),
        (_, other) => format!("<code>{}</code>", esc(&other.to_string())),
    }
}

/// The references of `path` both ways as list items (secret ones are left out by
/// the library).
async fn ref_items<S: Store + Clone + 'static>(
    c: &Console<S>,
    schema: &strata_schema::Schema,
    path: &str,
) -> String {
    let mut items = String::new();
    if let Ok(Some(r)) = strata_schema::refs::refs(&c.store, schema, path).await {
        for (holder, target) in &r.outgoing {
            items.push_str(&format!(
                "<li>references <a class=\"ref\" href=\"/object?path={}\">{}</a> (via {})</li>",
                url(target),
                esc(target),
                esc(holder)
            ));
        }
        for holder in &r.incoming {
            items.push_str(&format!(
                "<li>referenced by <a class=\"ref\" href=\"/key?k={}\">{}</a></li>",
                url(holder),
                esc(holder)
            ));
        }
    }
    items
}

/// The references of a key that is a single value of the schema (a reference
/// itself, like a route naming its node), as a section; empty otherwise.
async fn key_refs<S: Store + Clone + 'static>(c: &Console<S>, key: &str) -> String {
    let Some(schema) = c.opts.schema.as_ref() else {
        return String::new();
    };
    let items = ref_items(c, schema, key).await;
    if items.is_empty() {
        return String::new();
    }
    format!("<h3>References</h3><ul>{items}</ul>")
}

/// A backed-up value as text for a page: a string as it is, a secret's written form
/// (a fingerprint, or encrypted) as a mark, anything else as JSON; secrets by the
/// schema are masked whatever the backup wrote.
fn backed_up<S>(c: &Console<S>, key: &[u8], v: &Option<Value>) -> String {
    match v {
        None => "<em>absent</em>".into(),
        Some(Value::String(text)) => shown(c, key, text.as_bytes(), 200),
        Some(Value::Object(o)) if o.contains_key("secret") || o.contains_key("encrypted") => {
            "<span class=\"secret\">secret, not shown</span>".into()
        }
        Some(other) => shown(c, key, other.to_string().as_bytes(), 200),
    }
}

/// The changes of a key or an object in the Git backup (`--repo`): each commit, its
/// time and revision, each changed key's value before and after side by side, and a
/// link to restore the target as of that commit (the plan shown first).
fn backup_history<S>(c: &Console<S>, target: &str) -> String {
    let Some(repo) = c.opts.backup.as_ref().map(|b| &b.repo) else {
        return String::new();
    };
    let entries = match strata_backup::log(repo, target) {
        Ok(e) => e,
        Err(e) => return format!("<h3>In the Git backup</h3><p>{}</p>", esc(&e.to_string())),
    };
    let mut rows = String::new();
    for e in &entries {
        let mut first = true;
        for ch in &e.changes {
            rows.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}<br>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{restore}</tr>",
                esc(&e.commit[..e.commit.len().min(12)]),
                strata_core::clock::format_rfc3339(e.time),
                esc(&e.author),
                e.revision,
                esc(&display_key(&ch.key)),
                backed_up(c, &ch.key, &ch.before),
                backed_up(c, &ch.key, &ch.after),
                restore = if first {
                    format!(
                        "<td rowspan=\"{}\"><a class=\"restore\" href=\"/restore?target={}&commit={}\">restore as of this</a></td>",
                        e.changes.len(),
                        url(target),
                        url(&e.commit)
                    )
                } else {
                    String::new()
                }
            ));
            first = false;
        }
    }
    format!(
        "<h3>In the Git backup</h3><table id=\"backup\"><tr><th>commit</th><th>time, author</th><th>revision</th>\
         <th>key</th><th>before</th><th>after</th><th></th></tr>{rows}</table>"
    )
}
