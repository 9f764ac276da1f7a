//! A key's recent versions, read back one point read at a time: the current value,
//! then the value at the revision before each version's, down to the first version
//! of the key's current life, at most a given number. This is what a page that shows
//! a key's history can afford on any store: on etcd the full history
//! (`Store::history`) replays the watch log from the start, a read of every revision
//! of the whole store, where a point read at an old revision is an index lookup.

use crate::error::Result;
use strata_core::model::{Event, EventKind, KeySpan, RangeRequest};
use strata_core::store::Store;

/// The versions found, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Versions {
    /// Each version as a put event, newest first.
    pub events: Vec<Event>,
    /// Older versions of this life exist beyond those read (the limit, or history
    /// compacted away).
    pub truncated: bool,
    /// The store's history no longer holds the versions before the oldest read.
    pub compacted: bool,
}

/// Up to `max` versions of `key`'s current life (none if it does not exist); a key
/// deleted and written again had earlier lives, which only the full history shows.
pub async fn recent<S: Store>(store: &S, key: &[u8], max: usize) -> Result<Versions> {
    let mut out = Versions::default();
    let now = store.range(RangeRequest::new(KeySpan::key(key))).await?;
    let Some(mut kv) = now.kvs.into_iter().next() else {
        return Ok(out);
    };
    loop {
        let (version, before) = (kv.version, kv.mod_revision - 1);
        out.events.push(Event {
            kind: EventKind::Put,
            kv,
        });
        if version <= 1 {
            break;
        }
        if out.events.len() >= max {
            out.truncated = true;
            break;
        }
        let read = store
            .range(RangeRequest::new(KeySpan::key(key)).at_revision(before))
            .await;
        match read {
            Ok(r) => match r.kvs.into_iter().next() {
                Some(older) => kv = older,
                None => break,
            },
            Err(strata_core::Error::Compacted { .. }) => {
                out.truncated = true;
                out.compacted = true;
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::MemStore;

    #[tokio::test]
    async fn versions_newest_first_within_the_limit() {
        let s = MemStore::new();
        for v in ["1", "2", "3"] {
            s.put(b"/k", v.as_bytes()).await.unwrap();
            s.put(b"/other", v.as_bytes()).await.unwrap();
        }
        let all = recent(&s, b"/k", 10).await.unwrap();
        let values: Vec<&[u8]> = all.events.iter().map(|e| &e.kv.value[..]).collect();
        assert_eq!(values, [b"3", b"2", b"1"]);
        assert!(!all.truncated);
        let two = recent(&s, b"/k", 2).await.unwrap();
        assert_eq!(two.events.len(), 2);
        assert!(two.truncated && !two.compacted);
        // Only the current life: written again after a delete, it starts anew.
        s.delete(KeySpan::key(&b"/k"[..])).await.unwrap();
        s.put(b"/k", b"again").await.unwrap();
        let life = recent(&s, b"/k", 10).await.unwrap();
        assert_eq!(life.events.len(), 1);
        assert!(recent(&s, b"/absent", 10).await.unwrap().events.is_empty());
        // History compacted away below the current version.
        s.put(b"/k", b"later").await.unwrap();
        let (rev, _) = s.put(b"/k", b"last").await.unwrap();
        s.compact(rev).await.unwrap();
        let cut = recent(&s, b"/k", 10).await.unwrap();
        assert_eq!(cut.events.len(), 1);
        assert!(cut.truncated && cut.compacted);
    }
}
