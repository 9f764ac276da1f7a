//! `history` on etcd: the state at the compaction point, then every change from
//! a watch replay, up to the revision current when the call started.

use super::*;

/// How long the replay may stay silent before a key that is absent now is taken
/// to have no further changes: etcd 3.4 has no ordered "caught up" marker.
const QUIET: Duration = Duration::from_millis(500);

pub(super) async fn read(store: &EtcdStore, key: &[u8]) -> Result<Vec<Event>> {
    let now = store.range(RangeRequest::new(KeySpan::key(key))).await?;
    let current = now.kvs.first().cloned();
    let compacted = store.compact_revision().await?;
    let mut events = Vec::new();
    if compacted > 0 {
        let at = store
            .range(RangeRequest::new(KeySpan::key(key)).at_revision(compacted))
            .await?;
        if let Some(kv) = at
            .kvs
            .into_iter()
            .next()
            .filter(|kv| kv.mod_revision < compacted)
        {
            events.push(Event {
                kind: EventKind::Put,
                kv,
            });
        }
    }
    let mut watcher = store
        .watch(WatchRequest {
            span: KeySpan::key(key),
            start_revision: compacted.max(1),
        })
        .await?;
    loop {
        if let Some(kv) = &current {
            if events
                .last()
                .is_some_and(|e: &Event| e.revision() >= kv.mod_revision)
            {
                break;
            }
        }
        let wait = if current.is_some() {
            store.opts.request_timeout
        } else {
            QUIET
        };
        match tokio::time::timeout(wait, watcher.next()).await {
            Ok(Some(Ok(batch))) => {
                events.extend(batch.into_iter().filter(|e| e.revision() <= now.revision))
            }
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) | Err(_) if current.is_none() => break,
            _ => {
                return Err(Error::Unavailable {
                    backend: BACKEND.into(),
                    operation: "read history".into(),
                    outcome_unknown: false,
                    source: "the history replay stopped before reaching the key's last change"
                        .into(),
                })
            }
        }
    }
    Ok(events)
}
