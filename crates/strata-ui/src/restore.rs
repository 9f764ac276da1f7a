//! Restore from the Git backup (`--repo`): `GET /restore?target=T&commit=C` shows the
//! library's restore plan ([`strata_backup::plan_restore`]) of a key or an object as
//! of a commit, each key's value now and after, and asks; `POST /restore` plans again
//! and applies the plan only if it is the one shown (same writes over the same
//! revisions, by [`strata_backup::RestorePlan::digest`]), each write conditioned on
//! the revision its key had when read, so a change made meanwhile is a conflict,
//! never overwritten. Secrets are masked in the plan as everywhere; a fingerprinted
//! secret is never restored (the plan lists it as kept).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use strata_backup::{apply_restore, plan_restore, RestoreHow, RestorePlan};
use strata_core::key::display_key;
use strata_core::store::Store;

use crate::html::{esc, page, param, url};
use crate::writes::{refusal, refuse};
use crate::Console;

/// Rows of a plan shown at most (the rest counted).
const SHOWN: usize = 500;

/// The page to go back to after restoring `target`.
fn back_to<S>(c: &Console<S>, target: &str) -> String {
    let object =
        strata_search::doc::owner(c.opts.schema.as_ref(), format!("{target}/x").as_bytes());
    match object {
        Some(strata_search::doc::Owner::Object { path, .. }) if path == target => {
            format!("/object?path={}", url(target))
        }
        _ => format!("/key?k={}", url(target)),
    }
}

async fn planned<S: Store + Clone + 'static>(
    c: &Console<S>,
    target: &str,
    commit: &str,
) -> Result<RestorePlan, Response> {
    let Some(opts) = &c.opts.backup else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "no backup repository: start the console with --repo PATH",
        ));
    };
    if target.is_empty() || commit.is_empty() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "give ?target=KEY&commit=COMMIT",
        ));
    }
    plan_restore(&c.store, opts, target, commit)
        .await
        .map_err(|e| refuse(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()))
}

/// A value for the plan's table, masked by the schema's secret rule.
fn cell<S>(c: &Console<S>, key: &[u8], value: Option<&[u8]>) -> String {
    match value {
        None => "<em>absent</em>".into(),
        Some(v) => match strata_search::doc::visible(c.opts.schema.as_ref(), key, v) {
            None => "<span class=\"secret\">secret, not shown</span>".into(),
            Some(text) => format!("<code>{}</code>", esc(&text)),
        },
    }
}

/// `GET /restore?target=T&commit=C`: the plan, and the form that applies it.
pub(crate) async fn plan<S: Store + Clone + 'static>(
    State(c): State<Arc<Console<S>>>,
    uri: Uri,
) -> Response {
    let target = param(uri.query(), "target").unwrap_or_default();
    let commit = param(uri.query(), "commit").unwrap_or_default();
    let plan = match planned(&c, &target, &commit).await {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    let r = &plan.report;
    let writes = plan.writes();
    let mut rows = String::new();
    for w in writes.iter().take(SHOWN) {
        let now = cell(&c, &w.key, w.now.as_deref());
        rows.push_str(&format!(
            "<tr><td><a href=\"/key?k={k}\">{}</a></td><td>{}</td><td>{now}</td><td>{}</td></tr>",
            esc(&display_key(&w.key)),
            if w.value.is_some() { "put" } else { "delete" },
            cell(&c, &w.key, w.value.as_deref()),
            k = url(&display_key(&w.key)),
        ));
    }
    if writes.len() > SHOWN {
        rows.push_str(&format!(
            "<tr><td colspan=\"4\">and {} more</td></tr>",
            writes.len() - SHOWN
        ));
    }
    let kept = if r.secrets_kept.is_empty() {
        String::new()
    } else {
        format!(
            "<p>{} secret key(s) are fingerprinted in the backup and stay as they are in the store.</p>",
            r.secrets_kept.len()
        )
    };
    let action = if writes.is_empty() {
        "<p>Nothing to do: the store already holds these values.</p>".to_owned()
    } else if c.opts.allow_writes {
        format!(
            "<form method=\"post\" action=\"/restore\">\
             <input type=\"hidden\" name=\"target\" value=\"{}\"><input type=\"hidden\" name=\"commit\" value=\"{}\">\
             <input type=\"hidden\" name=\"plan\" value=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button id=\"confirm-restore\">Restore: {} write(s), only if none of these keys changed since this page</button></form>",
            esc(&target),
            esc(&r.commit),
            esc(&plan.digest()),
            esc(&c.form_token),
            writes.len()
        )
    } else {
        "<p>This console is read-only (start it with --allow-writes to restore).</p>".to_owned()
    };
    let body = format!(
        "<p>Restore <code>{}</code> as of commit <code>{}</code> (store revision {}): {} put, {} deleted, \
         {} unchanged.</p>{kept}<table id=\"plan\"><tr><th>key</th><th>write</th><th>now</th><th>after</th></tr>{rows}</table>{action}",
        esc(&target),
        esc(&r.commit[..r.commit.len().min(12)]),
        r.revision,
        r.put.len(),
        r.deleted.len(),
        r.unchanged
    );
    Html(page(&format!("restore {target}"), Some(&target), &body)).into_response()
}

/// `POST /restore` (`target`, `commit`, `plan`, `csrf`): applies the plan shown.
pub(crate) async fn apply<S: Store + Clone + 'static>(
    State(c): State<Arc<Console<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = String::from_utf8_lossy(&body).into_owned();
    if let Some(refused) = refusal(&c, &headers, &form) {
        return refused;
    }
    let field = |name: &str| param(Some(&form), name).unwrap_or_default();
    let (target, commit) = (field("target"), field("commit"));
    let plan = match planned(&c, &target, &commit).await {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    let again = format!("/restore?target={}&commit={}", url(&target), url(&commit));
    let conflict = |what: String| {
        let body = format!(
            "<p>Conflict: {what} Nothing was written.</p><p><a href=\"{again}\">Review the plan again</a></p>"
        );
        (
            StatusCode::CONFLICT,
            Html(page("conflict", Some(&target), &body)),
        )
            .into_response()
    };
    if !crate::equal(plan.digest().as_bytes(), field("plan").as_bytes()) {
        return conflict(format!(
            "the store changed under {} since the plan was shown, so the plan is not the one you confirmed.",
            esc(&target)
        ));
    }
    match apply_restore(&c.store, plan, RestoreHow::default()).await {
        Ok(report) => {
            eprintln!(
                "strata ui: restored {target} as of {commit} at revision {} ({} put, {} deleted)",
                report.store_revision,
                report.put.len(),
                report.deleted.len()
            );
            Redirect::to(&back_to(&c, &target)).into_response()
        }
        Err(strata_backup::Error::Conflict { keys, .. }) => conflict(format!(
            "{} changed after the plan read it.",
            esc(&keys.join(", "))
        )),
        Err(e) => refuse(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    }
}
