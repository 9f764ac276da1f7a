//! Live pages: `/events?prefix=P&from=REV` streams a server-sent event for every
//! revision after REV that changes a key under P (the store's watch), and the pages
//! that show keys carry a few lines of script that listen to it: when something
//! they show changes, a note says the page is behind (at which revision) and the page
//! reloads itself, unless the user has typed into one of its forms: then the note
//! says so and offers a reload, and the edit stays (its save is a compare-and-swap on
//! the page's revision, so it will be refused as a conflict). Owns the event stream
//! and that script.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::Uri;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use strata_core::model::{KeySpan, WatchRequest};
use strata_core::store::Store;

use crate::html::{param, url};
use crate::Console;

/// The script of a page that shows the keys under `prefix` as of `revision`.
pub fn script(prefix: &str, revision: i64) -> String {
    format!(
        "<div id=\"behind\" hidden class=\"behind\"></div><script>\
         (function(){{var dirty=false;document.addEventListener('input',function(){{dirty=true}});\
         var s=new EventSource('/events?prefix={}&from={revision}');\
         s.onmessage=function(e){{var b=document.getElementById('behind');b.hidden=false;s.close();\
         var said='This page shows revision {revision}; the keys changed at revision '+e.data;\
         if(dirty){{b.textContent=said+'. Your edit is kept here; saving it will be refused as a conflict. ';\
         var a=document.createElement('a');a.href=location.href;a.textContent='Reload';b.appendChild(a);return;}}\
         b.textContent=said+': reloading.';setTimeout(function(){{location.reload()}},800);}};}})();</script>",
        // Percent-encoded, the prefix holds no quote, backslash or `<`: safe inside
        // the script's string (where HTML escapes would not be decoded).
        url(prefix)
    )
}

/// `/events?prefix=P&from=REV`: one event per changed revision (its number as data).
pub(crate) async fn events<S: Store + Clone + 'static>(
    State(c): State<Arc<Console<S>>>,
    uri: Uri,
) -> Response {
    let prefix = param(uri.query(), "prefix").unwrap_or_default();
    let from = param(uri.query(), "from")
        .and_then(|f| f.parse::<i64>().ok())
        .unwrap_or(0);
    let span = if prefix.is_empty() || prefix == "/" {
        KeySpan::all()
    } else {
        KeySpan::prefix(prefix.into_bytes())
    };
    let watcher = c
        .store
        .watch(WatchRequest {
            span,
            start_revision: if from > 0 { from.saturating_add(1) } else { 0 },
        })
        .await;
    let Ok(watcher) = watcher else {
        return (
            axum::http::StatusCode::GONE,
            "the store cannot be watched from that revision",
        )
            .into_response();
    };
    let stream = futures_util::stream::unfold(watcher, |mut w| async move {
        match w.next().await {
            Some(Ok(batch)) => {
                let rev = batch.last().map_or(0, |e| e.revision());
                Some((
                    Ok::<_, Infallible>(Event::default().data(rev.to_string())),
                    w,
                ))
            }
            _ => None,
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
