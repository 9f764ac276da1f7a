//! The references around an object drawn as a picture (SVG, rendered on the server):
//! `strata refs --depth N`'s graph laid out in columns by hops from the object, each
//! object a box linking to its page, each reference an arrow from the object that
//! holds it. Owns the layout and the drawing; the walk is `strata_schema::refs`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use strata_core::store::Store;

use crate::html::{esc, page, param, url};
use crate::Console;

/// Objects drawn at most (a deep walk of a large keyspace reaches many).
const MAX_NODES: usize = 150;
const COL: i64 = 300;
const ROW: i64 = 44;
const BOX_W: i64 = 260;
const BOX_H: i64 = 30;

/// The SVG of `g`: columns by hops, rows in the order reached.
pub fn svg(g: &strata_schema::refs::Graph) -> String {
    let mut at: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut rows: HashMap<usize, i64> = HashMap::new();
    for (node, _, hops) in g.nodes.iter().take(MAX_NODES) {
        let row = rows.entry(*hops).or_insert(0);
        at.insert(node.as_str(), (20 + *hops as i64 * COL, 20 + *row * ROW));
        *row += 1;
    }
    let width = 20 + (rows.keys().max().copied().unwrap_or(0) as i64 + 1) * COL;
    let height = 20 + rows.values().max().copied().unwrap_or(1) * ROW;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" class=\"refs\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\">\
         <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#667\"/></marker></defs>"
    );
    for (from, to, via) in &g.edges {
        let (Some(a), Some(b)) = (at.get(from.as_str()), at.get(to.as_str())) else {
            continue;
        };
        let (x1, x2) = if a.0 <= b.0 {
            (a.0 + BOX_W, b.0)
        } else {
            (a.0, b.0 + BOX_W)
        };
        let field = via.rsplit('/').next().unwrap_or(via);
        out.push_str(&format!(
            "<line x1=\"{x1}\" y1=\"{}\" x2=\"{x2}\" y2=\"{}\" stroke=\"#667\" marker-end=\"url(#arrow)\"><title>{}</title></line>",
            a.1 + BOX_H / 2,
            b.1 + BOX_H / 2,
            esc(field)
        ));
    }
    for (node, entity, hops) in g.nodes.iter().take(MAX_NODES) {
        let (x, y) = at[node.as_str()];
        let label: String = node
            .chars()
            .rev()
            .take(34)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let label = if label.len() < node.len() {
            format!("…{label}")
        } else {
            label
        };
        out.push_str(&format!(
            "<a href=\"/object?path={}\"><rect x=\"{x}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"4\" \
             fill=\"{}\" stroke=\"#1d2433\"/><text x=\"{}\" y=\"{}\" font-size=\"12\">{} <tspan fill=\"#667\">{}</tspan></text>\
             <title>{}</title></a>",
            url(node),
            if *hops == 0 { "#ffe58a" } else { "#fff" },
            x + 6,
            y + 19,
            esc(&label),
            esc(entity),
            esc(node)
        ));
    }
    out.push_str("</svg>");
    out
}

/// `/refs?key=K&depth=N`: the picture, with a depth control.
pub(crate) async fn refs<S: Store + Clone + 'static>(
    State(c): State<Arc<Console<S>>>,
    uri: Uri,
) -> Response {
    let Some(key) = param(uri.query(), "key") else {
        return (StatusCode::BAD_REQUEST, "give ?key=OBJECT").into_response();
    };
    let depth = param(uri.query(), "depth")
        .and_then(|d| d.parse::<usize>().ok())
        .unwrap_or(2)
        .clamp(1, 5);
    let Some(schema) = c.opts.schema.as_ref() else {
        return (
            StatusCode::BAD_REQUEST,
            "references need the console started with --schema",
        )
            .into_response();
    };
    let g = match strata_schema::refs::graph(&c.store, schema, &key, depth).await {
        Ok(Some(g)) => g,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                "no entity of the schema matches this key",
            )
                .into_response()
        }
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let options: String = (1..=5)
        .map(|d| {
            format!(
                "<option{}>{d}</option>",
                if d == depth { " selected" } else { "" }
            )
        })
        .collect();
    let more = g.nodes.len().saturating_sub(MAX_NODES);
    let body = format!(
        "<form action=\"/refs\"><input type=\"hidden\" name=\"key\" value=\"{}\">depth \
         <select name=\"depth\" onchange=\"this.form.submit()\">{options}</select></form>\
         <p>{} objects, {} references{}</p>{}",
        esc(&key),
        g.nodes.len(),
        g.edges.len(),
        if more > 0 {
            format!(" ({more} not drawn)")
        } else {
            String::new()
        },
        svg(&g)
    );
    Html(page(&format!("references of {key}"), Some(&key), &body)).into_response()
}
