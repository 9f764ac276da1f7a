//! Watch on PostgreSQL: LISTEN on the schema's channel, and after each notification
//! (or a fallback poll) read every committed revision after the last one delivered.

use std::time::Duration;

use strata_core::{Error, Event, KeySpan, Result};
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::{connect, state, PgStore, WATCH_FALLBACK_POLL};
use crate::sql;

/// Reads the events of revisions `[next, next + window)` that are already committed;
/// returns the last revision covered and the events.
async fn catch_up(store: &PgStore, span: &KeySpan, next: i64) -> Result<Option<(i64, Vec<Event>)>> {
    let (start, end) = span.bounds();
    store
        .with_tx(false, async |pg| {
            let Some(upto) = sql::catch_up_until(pg, next).await? else {
                return Ok(None);
            };
            let text = store.sql.shared.watch(end.is_some());
            let rows = pg.query(text, &[&next, &upto, &start, &end]).await?;
            Ok(Some((upto, state::decode(&rows, sql::event)?)))
        })
        .await
}

/// How long a watch keeps trying to reach the server before it ends with an error
/// (as an etcd watch does), unless the command timeout says otherwise: long enough for
/// a restart or a failover.
const WATCH_RECONNECT_FOR: Duration = Duration::from_secs(60);

/// Follows changes from `next` on: LISTEN on the schema's channel, and after each
/// notification (or a fallback poll) read every committed revision after the last one
/// delivered. A lost connection is re-established with backoff and the catch-up
/// resumes from the same revision, so nothing is missed or repeated; a server that
/// stays out of reach for [`WATCH_RECONNECT_FOR`] (or the command timeout) ends the watch with an error that
/// names it and the revision to watch again from.
pub(super) async fn watch_task(
    store: PgStore,
    span: KeySpan,
    mut next: i64,
    tx: mpsc::Sender<Result<Vec<Event>>>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut failing_since: Option<tokio::time::Instant> = None;
    let give_up_after = store
        .pool
        .opts
        .command_timeout
        .unwrap_or(WATCH_RECONNECT_FOR);
    while !tx.is_closed() {
        let lost = match follow(&store, &span, &mut next, &tx, &mut failing_since).await {
            Ok(()) => return,
            Err(lost) => lost,
        };
        let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() > give_up_after {
            let _ = tx
                .send(Err(Error::WatchClosed {
                    backend: super::BACKEND.into(),
                    reason: format!(
                        "the server {} could not be reached for {} s ({lost}); watch again from revision {next}",
                        connect::target(&store.pool.opts.config),
                        give_up_after.as_secs_f64()
                    ),
                }))
                .await;
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = tx.closed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// One connection's life: LISTEN, then catch up after each notification. `Ok` when
/// the watch is over (the watcher is gone, or an error was sent); `Err` with what
/// failed when the connection must be made again.
async fn follow(
    store: &PgStore,
    span: &KeySpan,
    next: &mut i64,
    tx: &mpsc::Sender<Result<Vec<Event>>>,
    failing_since: &mut Option<tokio::time::Instant>,
) -> std::result::Result<(), String> {
    let (client, mut connection) = connect::open(&store.pool.opts, &store.pool.tls)
        .await
        .map_err(|e| e.to_string())?;
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
    // Aborts the connection's driver however this returns.
    struct Abort(tokio::task::JoinHandle<()>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _driver = Abort(driver);
    let listen = format!("LISTEN \"{}\"", store.sql.channel);
    client
        .batch_execute(&listen)
        .await
        .map_err(|e| format!("LISTEN failed: {e}"))?;
    // Listening first, then catching up: a commit after the catch-up read is always
    // followed by a notification.
    loop {
        match catch_up(store, span, *next).await {
            Ok(Some((upto, events))) => {
                *failing_since = None;
                for batch in events.chunk_by(|a, b| a.revision() == b.revision()) {
                    if tx.send(Ok(batch.to_vec())).await.is_err() {
                        return Ok(());
                    }
                }
                *next = upto + 1;
                continue;
            }
            Ok(None) => *failing_since = None,
            Err(err @ Error::Compacted { .. }) => {
                let _ = tx.send(Err(err)).await;
                return Ok(());
            }
            Err(err) => return Err(err.to_string()),
        }
        tokio::select! {
            n = notified.recv() => if n.is_none() { return Err("the connection closed".into()) },
            _ = tokio::time::sleep(WATCH_FALLBACK_POLL) => {}
            _ = tx.closed() => return Ok(()),
        }
    }
}
