//! Watch on etcd: events converted to the contract's, batched per revision, and a
//! stream that reconnects after a lost connection from the revision after the last
//! one delivered.

use std::time::Duration;

use etcd_client::WatchOptions;
use strata_core::{Error, Event, EventKind, KeySpan, Result};
use tokio::sync::mpsc;

use super::{etcd_range, from_etcd_kv, EtcdStore, BACKEND, MAX_MESSAGE};

/// Converts one watch response's events, in order.
fn convert_events(resp: &etcd_client::WatchResponse) -> Vec<Event> {
    resp.events()
        .iter()
        .filter_map(|e| {
            let kv = from_etcd_kv(e.kv()?);
            let kind = match e.event_type() {
                etcd_client::EventType::Put => EventKind::Put,
                etcd_client::EventType::Delete => EventKind::Delete,
            };
            Some(Event { kind, kv })
        })
        .collect()
}

/// How long a watch keeps trying to reconnect before it reports the failure.
const WATCH_RECONNECT_FOR: Duration = Duration::from_secs(60);

/// Streams events to `tx` from `next` on; after a lost connection, watches again from
/// the revision after the last one delivered, so nothing is missed or repeated.
pub(super) async fn watch_task(
    store: EtcdStore,
    span: KeySpan,
    mut next: i64,
    tx: mpsc::Sender<Result<Vec<Event>>>,
) {
    let (key, end) = etcd_range(&span);
    let mut failing_since: Option<tokio::time::Instant> = None;
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut opts = WatchOptions::new().with_start_revision(next);
        if let Some(end) = &end {
            opts = opts.with_range(end.clone());
        }
        let mut client = store
            .client
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE);
        let stream = tokio::select! {
            s = client.watch(key.clone(), Some(opts)) => s,
            _ = tx.closed() => return,
        };
        let lost: String = match stream {
            Err(e) => e.to_string(),
            Ok(mut stream) => loop {
                let message = tokio::select! {
                    m = stream.message() => m,
                    _ = tx.closed() => return,
                };
                match message {
                    Ok(Some(resp)) => {
                        failing_since = None;
                        backoff = Duration::from_millis(50);
                        if resp.canceled() {
                            let err = if resp.compact_revision() > 0 {
                                Error::Compacted {
                                    requested: next,
                                    compacted: resp.compact_revision(),
                                }
                            } else {
                                Error::WatchClosed {
                                    backend: BACKEND.into(),
                                    reason: resp.cancel_reason().to_owned(),
                                }
                            };
                            let _ = tx.send(Err(err)).await;
                            return;
                        }
                        let events = convert_events(&resp);
                        for batch in events.chunk_by(|a, b| a.revision() == b.revision()) {
                            if tx.send(Ok(batch.to_vec())).await.is_err() {
                                return;
                            }
                            next = batch[0].revision() + 1;
                        }
                    }
                    Ok(None) => break "the server closed the stream".to_owned(),
                    Err(e) => break e.to_string(),
                }
            },
        };
        let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() > WATCH_RECONNECT_FOR {
            let _ = tx
                .send(Err(Error::WatchClosed {
                    backend: BACKEND.into(),
                    reason: format!("no connection for {WATCH_RECONNECT_FOR:?} ({lost}); watch again from revision {next}"),
                }))
                .await;
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
