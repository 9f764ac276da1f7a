//! Following a v2 keyspace: the long-poll watch (`?wait=true&recursive=true&waitIndex=N`)
//! of the directory that holds the span, one answer per change, each turned into the
//! events of one revision (the change's index).
//!
//! A set, create, update or compareAndSwap of a leaf is a put; a delete, expire or
//! compareAndDelete of a leaf is a delete; of a directory, it is a delete of every key
//! under it, which the watch knows because it keeps the keys (not the values) it has
//! seen there: those of the view read at its start index (a mirror's copy), or of a
//! read when it starts, and every key set since. A directory removed before such a
//! later read cannot be expanded exactly, so it ends the watch as compacted too. v2 keeps only
//! the last 1,000 events; a watch that falls further behind ends with
//! [`Error::Compacted`], so its follower reads afresh (the mirror copies the
//! difference) rather than skipping anything.

use std::collections::BTreeSet;
use std::time::Duration;

use strata_core::model::*;
use strata_core::store::Watcher;
use strata_core::{Error, Result};
use tokio::sync::mpsc;

use super::node::{self, ErrorAnswer, INDEX_CLEARED};
use super::{holding_dir, Etcd2Store, V2Ttl, BACKEND};

/// Starts the watch; its task ends when the watcher is dropped.
pub(super) async fn start(store: Etcd2Store, req: WatchRequest) -> Result<Watcher> {
    let (start, end) = req.span.bounds();
    let dir = holding_dir(&start, end.as_deref());
    let span = KeySpan::prefix(dir.clone().into_bytes());
    // The keys there just before the start, for directory deletes: from the view a
    // copy read at that index when there is one (a mirror's copy, then its watch),
    // else from a read now, which is exact only for changes after it.
    let kept = (req.start_revision > 0)
        .then(|| store.kept_view(&span, req.start_revision - 1))
        .flatten();
    let (view, exact_after) = match kept {
        Some(view) => (view, 0),
        None => {
            let view = store.read(&span).await?;
            let after = view.index;
            (view, after)
        }
    };
    let from = if req.start_revision > 0 {
        req.start_revision
    } else {
        view.index + 1
    };
    let known = Known {
        keys: view.kvs.keys()?,
        exact_after,
    };
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(follow(store, req.span, dir, from, known, tx));
    Ok(Watcher::new(rx, BACKEND, from))
}

/// The keys under the watched directory, kept for directory deletes; exact for the
/// changes after `exact_after` (a read later than the watch's start cannot say which
/// keys a directory held before it).
struct Known {
    keys: BTreeSet<Vec<u8>>,
    exact_after: i64,
}

async fn follow(
    store: Etcd2Store,
    span: KeySpan,
    dir: String,
    mut next: i64,
    mut known: Known,
    tx: mpsc::Sender<Result<Vec<Event>>>,
) {
    let path = node::escape_path(&dir);
    loop {
        let url = format!("/v2/keys{path}?wait=true&recursive=true&waitIndex={next}");
        let answer = tokio::select! {
            a = store.inner.http.get(&url, true) => a,
            _ = tx.closed() => return,
        };
        let a = match answer {
            Ok(a) => a,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if a.status != 200 {
            let err = match serde_json::from_slice::<ErrorAnswer>(&a.body) {
                Ok(e) if e.code == INDEX_CLEARED => Error::Compacted {
                    requested: next,
                    compacted: e.index,
                },
                _ => store.answer_error(&format!("watching {dir} from index {next}"), &a),
            };
            let _ = tx.send(Err(err)).await;
            return;
        }
        // An empty answer: the server ended the long poll without a change.
        if a.body.iter().all(u8::is_ascii_whitespace) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let change: node::Answer = match serde_json::from_slice(&a.body) {
            Ok(c) => c,
            Err(e) => {
                let _ = tx
                    .send(Err(Error::WatchClosed {
                        backend: BACKEND.into(),
                        reason: format!(
                            "a watch answer is not v2 JSON ({e}); watch again from index {next}"
                        ),
                    }))
                    .await;
                return;
            }
        };
        let index = change.node.modified_index;
        if change.node.dir && index <= known.exact_after && removes(&change.action) {
            // Which keys the directory held then is not known: read afresh instead
            // (a mirror copies the difference) rather than miss a delete.
            let _ = tx
                .send(Err(Error::Compacted {
                    requested: index,
                    compacted: known.exact_after,
                }))
                .await;
            return;
        }
        next = index.max(next) + 1;
        if !change.node.dir {
            let n = &change.node;
            store
                .inner
                .ttls
                .seen(&n.key, index, n.ttl.filter(|_| !removes(&change.action)));
        }
        let events = events_of(change, &mut known.keys, store.inner.ttls.mode);
        let events: Vec<Event> = events
            .into_iter()
            .filter(|e| span.contains(&e.kv.key))
            .collect();
        if !events.is_empty() && tx.send(Ok(events)).await.is_err() {
            return;
        }
    }
}

/// Whether a v2 action removes what it names.
fn removes(action: &str) -> bool {
    matches!(action, "delete" | "expire" | "compareAndDelete")
}

/// The events of one v2 change, `known` kept up to date.
fn events_of(change: node::Answer, known: &mut BTreeSet<Vec<u8>>, ttl: V2Ttl) -> Vec<Event> {
    let n = change.node;
    let index = n.modified_index;
    let delete = |key: Vec<u8>| Event {
        kind: EventKind::Delete,
        kv: KeyValue {
            key,
            mod_revision: index,
            ..KeyValue::default()
        },
    };
    match change.action.as_str() {
        "set" | "create" | "update" | "compareAndSwap" if !n.dir => {
            let key = n.key.into_bytes();
            if n.ttl.is_some() && ttl == V2Ttl::Skip {
                // Left out: gone from the keyspace as read.
                return if known.remove(&key) {
                    vec![delete(key)]
                } else {
                    Vec::new()
                };
            }
            known.insert(key.clone());
            vec![Event {
                kind: EventKind::Put,
                kv: KeyValue {
                    key,
                    value: n.value.unwrap_or_default().into_bytes(),
                    create_revision: n.created_index,
                    mod_revision: index,
                    version: if n.created_index == index { 1 } else { 2 },
                },
            }]
        }
        action if n.dir && removes(action) => {
            let mut under = n.key.into_bytes();
            under.push(b'/');
            let gone: Vec<Vec<u8>> = known
                .range(under.clone()..)
                .take_while(|k| k.starts_with(&under))
                .cloned()
                .collect();
            gone.into_iter()
                .map(|k| {
                    known.remove(&k);
                    delete(k)
                })
                .collect()
        }
        action if removes(action) => {
            let key = n.key.into_bytes();
            known.remove(&key);
            vec![delete(key)]
        }
        // A directory made, or an action that changes no leaf.
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(json: &str) -> node::Answer {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn changes_become_events_and_directory_deletes_every_known_key_under_it() {
        let mut known = BTreeSet::new();
        let e = events_of(
            change(
                r#"{"action":"set","node":{"key":"/d/a","value":"1","modifiedIndex":5,"createdIndex":5}}"#,
            ),
            &mut known,
            V2Ttl::Copy,
        );
        assert_eq!(
            (e[0].kind, e[0].kv.mod_revision, e[0].kv.version),
            (EventKind::Put, 5, 1)
        );
        events_of(
            change(
                r#"{"action":"create","node":{"key":"/d/sub/b","value":"2","modifiedIndex":6,"createdIndex":6}}"#,
            ),
            &mut known,
            V2Ttl::Copy,
        );
        known.insert(b"/dx".to_vec());
        let gone = events_of(
            change(
                r#"{"action":"delete","node":{"key":"/d","dir":true,"modifiedIndex":7,"createdIndex":2}}"#,
            ),
            &mut known,
            V2Ttl::Copy,
        );
        let keys: Vec<_> = gone
            .iter()
            .map(|e| (e.kv.key.clone(), e.kind, e.kv.mod_revision))
            .collect();
        assert_eq!(
            keys,
            [
                (b"/d/a".to_vec(), EventKind::Delete, 7),
                (b"/d/sub/b".to_vec(), EventKind::Delete, 7)
            ]
        );
        assert!(known.contains(b"/dx".as_slice()) && known.len() == 1);
        // Skipping TTL keys: a key that gains a TTL leaves the keyspace.
        known.insert(b"/t".to_vec());
        let e = events_of(
            change(
                r#"{"action":"set","node":{"key":"/t","value":"x","ttl":5,"modifiedIndex":8,"createdIndex":3}}"#,
            ),
            &mut known,
            V2Ttl::Skip,
        );
        assert_eq!(e[0].kind, EventKind::Delete);
        let expired = events_of(
            change(r#"{"action":"expire","node":{"key":"/u","modifiedIndex":9,"createdIndex":3}}"#),
            &mut known,
            V2Ttl::Copy,
        );
        assert_eq!(expired[0].kind, EventKind::Delete);
    }
}
