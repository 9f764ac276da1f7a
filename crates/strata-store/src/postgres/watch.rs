//! Watch on PostgreSQL: LISTEN on the schema's channel, and after each notification
//! (or a fallback poll) read every committed revision after the last one delivered.

use std::time::Duration;

use strata_core::{Error, Event, KeySpan, Result};
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::{connect, log_event, PgStore, EVENT_COLUMNS, WATCH_FALLBACK_POLL, WATCH_WINDOW};
use strata_core::engine::RevisionedState;

/// Reads the events of revisions `[next, next + window)` that are already committed;
/// returns the last revision covered and the events.
async fn catch_up(store: &PgStore, span: &KeySpan, next: i64) -> Result<Option<(i64, Vec<Event>)>> {
    let (start, end) = span.bounds();
    store
        .with_tx(false, async |state| {
            let current = state.revision().await?;
            if current < next {
                return Ok(None);
            }
            let compacted = state.compact_revision().await?;
            if next < compacted {
                return Err(Error::Compacted {
                    requested: next,
                    compacted,
                });
            }
            let upto = current.min(next + WATCH_WINDOW - 1);
            let upper = if end.is_some() {
                "AND key < $4"
            } else {
                "AND $4::bytea IS NULL"
            };
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM S.strata_log WHERE revision >= $1 AND revision <= $2 \
                 AND key >= $3 {upper} ORDER BY revision, seq"
            );
            let rows = state.query(&sql, &[&next, &upto, &start, &end]).await?;
            Ok(Some((upto, rows.iter().map(log_event).collect())))
        })
        .await
}

/// Follows changes from `next` on: LISTEN on the schema's channel, and after each
/// notification (or a fallback poll) read every committed revision after the last one
/// delivered. A lost connection is re-established and the catch-up resumes from the
/// same revision, so nothing is missed or repeated.
pub(super) async fn watch_task(
    store: PgStore,
    span: KeySpan,
    mut next: i64,
    tx: mpsc::Sender<Result<Vec<Event>>>,
) {
    let mut backoff = Duration::from_millis(50);
    while !tx.is_closed() {
        let (client, mut connection) = match connect::open(&store.pool.opts, &store.pool.tls).await
        {
            Ok(pair) => pair,
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let (notify_tx, mut notified) = mpsc::unbounded_channel::<()>();
        let driver = tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        let _ = notify_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        let listen = format!("LISTEN \"{}\"", store.sql.channel);
        if client.batch_execute(&listen).await.is_err() {
            driver.abort();
            continue;
        }
        backoff = Duration::from_millis(50);
        // Listening first, then catching up: a commit after the catch-up read is
        // always followed by a notification.
        loop {
            match catch_up(&store, &span, next).await {
                Ok(Some((upto, events))) => {
                    for batch in events.chunk_by(|a, b| a.revision() == b.revision()) {
                        if tx.send(Ok(batch.to_vec())).await.is_err() {
                            driver.abort();
                            return;
                        }
                    }
                    next = upto + 1;
                    continue;
                }
                Ok(None) => {}
                Err(err @ Error::Compacted { .. }) => {
                    let _ = tx.send(Err(err)).await;
                    driver.abort();
                    return;
                }
                Err(_) => break,
            }
            tokio::select! {
                n = notified.recv() => if n.is_none() { break },
                _ = tokio::time::sleep(WATCH_FALLBACK_POLL) => {}
                _ = tx.closed() => break,
            }
        }
        driver.abort();
        drop(client);
    }
}
