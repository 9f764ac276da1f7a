//! The search page: `/search?q=Q[&mode=words|meaning|both]` runs `strata search`'s
//! library call on the console's index (brought up to date first), shows the hits
//! with their matching words marked, each linked to its object or key, and with a
//! model (`--model`) offers search by meaning and by both.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use strata_core::store::Store;

use crate::html::{esc, page, param, url};
use crate::pages::fail;
use crate::Console;

/// `/search?q=Q`: the search hits, matching words marked.
pub(crate) async fn search<S: Store + Clone + 'static>(
    State(c): State<Arc<Console<S>>>,
    uri: Uri,
) -> Response {
    let q = param(uri.query(), "q").unwrap_or_default();
    let Some((dir, identity)) = &c.opts.search else {
        return fail(
            StatusCode::NOT_FOUND,
            "search",
            "search is not set up for this console",
        );
    };
    let mode = match (
        param(uri.query(), "mode").as_deref(),
        c.opts.model.is_some(),
    ) {
        (Some("meaning"), true) => strata_search::Mode::Semantic,
        (Some("both"), true) => strata_search::Mode::Hybrid,
        _ => strata_search::Mode::Words,
    };
    let req = strata_search::SearchRequest {
        query: q.clone(),
        mode,
        limit: 50,
        ..Default::default()
    };
    let feeds = [strata_search::Feed::whole(&c.store)];
    let report = strata_search::run(
        &c.store,
        &feeds,
        dir,
        identity,
        c.opts.schema.clone(),
        c.opts.model.clone(),
        &req,
    )
    .await;
    let hits = match report {
        Ok(r) => r.hits,
        Err(e) => return fail(StatusCode::BAD_REQUEST, &q, &e.to_string()),
    };
    let mut rows = String::new();
    for h in &hits {
        let mut marked = String::new();
        let mut at = 0;
        for r in &h.marks {
            marked.push_str(&esc(&h.snippet[at..r.start]));
            marked.push_str(&format!("<mark>{}</mark>", esc(&h.snippet[r.clone()])));
            at = r.end;
        }
        marked.push_str(&esc(&h.snippet[at..]));
        let link = if h.entity.is_some() && h.id != h.key {
            format!("/object?path={}", url(&h.id))
        } else {
            format!("/key?k={}", url(&h.key))
        };
        rows.push_str(&format!(
            "<tr><td><a href=\"{link}\">{}</a> <span class=\"entity\">{}</span></td><td>{marked}</td></tr>",
            esc(&h.key),
            esc(h.entity.as_deref().unwrap_or(""))
        ));
    }
    // By words, by meaning or both (with a model), the query kept.
    let modes = if c.opts.model.is_some() {
        let choice = |value: &str, label: &str, on: bool| {
            format!(
                "<label><input type=\"radio\" name=\"mode\" value=\"{value}\"{}> {label}</label> ",
                if on { " checked" } else { "" }
            )
        };
        format!(
            "{}{}{}",
            choice("words", "words", mode == strata_search::Mode::Words),
            choice("meaning", "meaning", mode == strata_search::Mode::Semantic),
            choice("both", "both", mode == strata_search::Mode::Hybrid)
        )
    } else {
        String::new()
    };
    let body = format!(
        "<form action=\"/search\" id=\"search\"><input name=\"q\" value=\"{}\" size=\"50\"> {modes}<button>Search</button></form>\
         <p>{} hits</p><table>{rows}</table>",
        esc(&q),
        hits.len()
    );
    Html(page(&format!("search: {q}"), None, &body)).into_response()
}
