//! Keys with a TTL in a v2 keyspace: what the user chose to do with them
//! (`--v2-ttl copy|skip|lease`), the note said once per store, and, for `lease`, when
//! each such key read or watched will expire, so that a writer can attach its copy
//! to a v3 lease of the time it has left ([`strata_core::Store::expiry`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use strata_core::model::KeyValue;

/// What to do with keys that have a TTL in the v2 keyspace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum V2Ttl {
    /// Copy them without the TTL (a v3 key does not expire by itself), with a note.
    #[default]
    Copy,
    /// Leave them out: not read, and a key that gains a TTL is a delete.
    Skip,
    /// Copy them attached to a v3 lease of the TTL they have left, so that they expire
    /// in the target when they would have in the source (an etcd v3 target only).
    Lease,
}

impl V2Ttl {
    /// `copy`, `skip` or `lease`.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        match text {
            "copy" => Ok(V2Ttl::Copy),
            "skip" => Ok(V2Ttl::Skip),
            "lease" => Ok(V2Ttl::Lease),
            other => Err(format!("--v2-ttl {other:?}: use copy, skip or lease")),
        }
    }
}

/// The TTL rule of one store, and the deadlines of its TTL keys (`lease` only).
#[derive(Debug, Default)]
pub(super) struct Ttls {
    pub mode: V2Ttl,
    noted: AtomicBool,
    /// Key → (the modified index of the generation seen, when it expires).
    deadlines: Mutex<HashMap<Vec<u8>, (i64, Instant)>>,
}

impl Ttls {
    pub fn new(mode: V2Ttl) -> Self {
        Ttls {
            mode,
            ..Ttls::default()
        }
    }

    /// Says once what happens to the `count` TTL keys of a read of `label`.
    pub fn note(&self, count: usize, label: &str) {
        if count == 0 || self.mode == V2Ttl::Skip || self.noted.swap(true, Ordering::Relaxed) {
            return;
        }
        match self.mode {
            V2Ttl::Copy => eprintln!(
                "strata: note: {count} key(s) of {label} have a TTL; they are read without it \
                 (a v3 key does not expire by itself); --v2-ttl lease gives each a v3 lease of \
                 its remaining TTL, --v2-ttl skip leaves them out"
            ),
            _ => eprintln!(
                "strata: note: {count} key(s) of {label} have a TTL; each is written with a v3 \
                 lease of the TTL it has left (--v2-ttl lease)"
            ),
        }
    }

    /// Records that `key` at `modified` has `ttl` seconds left (`lease` only).
    pub fn seen(&self, key: &str, modified: i64, ttl: Option<i64>) {
        if self.mode != V2Ttl::Lease {
            return;
        }
        let mut d = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
        match ttl {
            Some(secs) => {
                let at = Instant::now() + Duration::from_secs(secs.max(0) as u64);
                d.insert(key.as_bytes().to_vec(), (modified, at));
            }
            None => {
                d.remove(key.as_bytes());
            }
        }
    }

    /// The time `kv` has left, if it is a TTL key seen at its modified index.
    pub fn expiry(&self, kv: &KeyValue) -> Option<Duration> {
        let d = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
        match d.get(&kv.key) {
            Some((modified, at)) if *modified == kv.mod_revision => {
                Some(at.saturating_duration_since(Instant::now()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_kept_for_lease_only_and_per_generation() {
        assert_eq!(V2Ttl::parse("lease"), Ok(V2Ttl::Lease));
        assert!(V2Ttl::parse("forever")
            .unwrap_err()
            .contains("copy, skip or lease"));
        let kv = |m| KeyValue {
            key: b"/t".to_vec(),
            mod_revision: m,
            ..KeyValue::default()
        };
        let copy = Ttls::new(V2Ttl::Copy);
        copy.seen("/t", 5, Some(30));
        assert_eq!(copy.expiry(&kv(5)), None);
        let lease = Ttls::new(V2Ttl::Lease);
        lease.seen("/t", 5, Some(30));
        let left = lease.expiry(&kv(5)).unwrap();
        assert!(left > Duration::from_secs(28) && left <= Duration::from_secs(30));
        // Another generation of the key (set again without a TTL, or not seen yet).
        assert_eq!(lease.expiry(&kv(6)), None);
        lease.seen("/t", 6, None);
        assert_eq!(lease.expiry(&kv(5)), None);
    }
}
