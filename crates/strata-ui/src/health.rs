//! `/health`: the health of the data in one page: `schema check`'s findings grouped by
//! kind with links to the keys, each migration area's state (applied, pending, in
//! progress, who holds the lock) from `--migrations DIR`, and the Git backup's last
//! commit, the revision it holds and how far the store has moved on, from `--repo`.
//! Each part is one library call (`strata_schema::check`, `strata_migrate::status`,
//! `strata_backup::last`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use strata_core::store::Store;

use crate::html::{esc, page, url};
use crate::Console;

/// Findings shown per kind.
const SHOWN: usize = 20;

pub(crate) async fn health<S: Store + Clone + 'static>(
    State(c): State<Arc<Console<S>>>,
) -> Response {
    let mut body = String::new();
    // The data against the schema.
    body.push_str("<h3>Schema</h3>");
    match &c.opts.schema {
        None => body.push_str("<p>no schema given (--schema FILE)</p>"),
        Some(schema) => match strata_schema::check(&c.store, schema, b"").await {
            Err(e) => body.push_str(&format!("<p>the check failed: {}</p>", esc(&e.to_string()))),
            Ok(found) if found.is_empty() => body.push_str("<p>every key matches the schema</p>"),
            Ok(found) => {
                let mut by_kind: BTreeMap<String, Vec<&strata_schema::Violation>> = BTreeMap::new();
                for v in &found {
                    by_kind.entry(format!("{:?}", v.kind)).or_default().push(v);
                }
                body.push_str(&format!("<p>{} findings</p>", found.len()));
                for (kind, list) in by_kind {
                    body.push_str(&format!("<h4>{} ({})</h4><ul>", esc(&kind), list.len()));
                    for v in list.iter().take(SHOWN) {
                        // A finding on a secret key may quote its value: not shown.
                        let detail = if schema.secrecy(v.key.as_bytes()).is_secret() {
                            "(a secret field: details not shown)".to_owned()
                        } else {
                            v.detail.clone()
                        };
                        body.push_str(&format!(
                            "<li><a href=\"/key?k={}\">{}</a> {}</li>",
                            url(&v.key),
                            esc(&v.key),
                            esc(&detail)
                        ));
                    }
                    if list.len() > SHOWN {
                        body.push_str(&format!("<li>… and {} more</li>", list.len() - SHOWN));
                    }
                    body.push_str("</ul>");
                }
            }
        },
    }
    // Migrations, per area.
    body.push_str("<h3>Migrations</h3>");
    match &c.opts.migrations {
        None => body.push_str("<p>no migrations folder given (--migrations DIR)</p>"),
        Some(dir) => {
            // Migration files hold compiled jq, which stays on one thread: read and
            // checked on a blocking thread of its own.
            let (store, dir) = (c.store.clone(), dir.clone());
            let runtime = tokio::runtime::Handle::current();
            let part =
                tokio::task::spawn_blocking(move || runtime.block_on(migrations(&store, &dir)))
                    .await
                    .unwrap_or_else(|e| format!("<p>{}</p>", esc(&e.to_string())));
            body.push_str(&part);
        }
    }
    // The Git backup.
    body.push_str("<h3>Backup</h3>");
    match c.opts.backup.as_ref().map(|b| &b.repo) {
        None => body.push_str("<p>no backup repository given (--repo PATH)</p>"),
        Some(repo) => match strata_backup::last(repo) {
            Err(e) => body.push_str(&format!("<p>{}</p>", esc(&e.to_string()))),
            Ok(None) => body.push_str("<p>the repository has no backup yet</p>"),
            Ok(Some((entry, trailers))) => {
                let now = c.store.status().await.map(|s| s.revision).unwrap_or(0);
                let age = strata_core::clock::unix_now().saturating_sub(entry.time);
                let lag = if trailers.revisions.len() == 1 && entry.revision > 0 {
                    format!(
                        "{} revisions behind the store",
                        (now - entry.revision).max(0)
                    )
                } else {
                    "per store, see the revisions".to_owned()
                };
                body.push_str(&format!(
                    "<p>last commit <code>{}</code>, {age} s ago, at revision {}; {lag}</p>",
                    esc(&entry.commit[..entry.commit.len().min(12)]),
                    esc(&strata_backup::source::describe(&trailers.revisions))
                ));
            }
        },
    }
    Html(page("health", None, &body)).into_response()
}

/// The migrations part: each area's state, as a table.
async fn migrations<S: Store>(store: &S, dir: &std::path::Path) -> String {
    let areas = match strata_migrate::load_dir(dir) {
        Ok(a) => a,
        Err(e) => return format!("<p>{}</p>", esc(&e.to_string())),
    };
    let list = match strata_migrate::status(store, &areas).await {
        Ok(l) => l,
        Err(e) => return format!("<p>{}</p>", esc(&e.to_string())),
    };
    let mut out = String::from(
        "<table><tr><th>area</th><th>version</th><th>applied</th><th>pending</th>\
         <th>in progress</th><th>lock</th><th>problems</th></tr>",
    );
    for a in list {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.area),
            a.current,
            a.applied.len(),
            esc(&a.pending.join(", ")),
            esc(&a.in_progress.map(|p| format!("{p:?}")).unwrap_or_default()),
            esc(&a.lock.map(|l| format!("{l:?}")).unwrap_or_default()),
            esc(&a.problems.join("; "))
        ));
    }
    out.push_str("</table>");
    out
}
