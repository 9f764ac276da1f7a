//! The per-area migration lock: a key in the store, taken with compare-and-swap,
//! carrying its owner.
//!
//! On etcd the key is attached to a lease: the runner keeps the lease alive while it
//! works and revokes it when done, and etcd itself deletes the key when a killed
//! runner's lease runs out, by the server's clock. SQLite and PostgreSQL have no
//! leases: there the record carries an expiry that the runner pushes forward with a
//! compare-and-swap, and another runner takes over a lock whose expiry has passed.
//!
//! Either way the lock is also a *fence*: every write of a migration compares the
//! lock key's revision, so a runner that lost its lock (a pause longer than the
//! expiry) cannot write at all.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use strata_core::clock::{format_rfc3339, unix_millis};
use strata_core::{Compare, CompareOp, Op, Store, Txn};

use crate::state::lock_key;
use crate::Error;

/// What the lock key holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    /// `user@host/pid/nonce`: who ran it, unique per runner.
    pub owner: String,
    /// Unix milliseconds after which another runner may take the lock over (on a
    /// backend without leases).
    pub expires_at_ms: i64,
    pub acquired_at: String,
    /// The etcd lease the key is attached to: the key lives as long as the lease, and
    /// `expires_at_ms` is only informative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<i64>,
}

impl LockRecord {
    /// Held by a live runner: its lease still holds the key (on a store with leases,
    /// the key is gone once the lease is), or its expiry is ahead.
    fn is_live(&self, store_has_leases: bool) -> bool {
        (self.lease.is_some() && store_has_leases) || self.expires_at_ms > unix_millis()
    }

    pub fn describe(&self) -> String {
        if let Some(lease) = self.lease {
            return format!(
                "{} (since {}, on etcd lease {lease:x}, which expires when its holder stops renewing it)",
                self.owner, self.acquired_at
            );
        }
        let left = (self.expires_at_ms - unix_millis()) as f64 / 1000.0;
        if left > 0.0 {
            format!(
                "{} (since {}, expires in {left:.0} s unless renewed)",
                self.owner, self.acquired_at
            )
        } else {
            format!("{} (since {}, expired)", self.owner, self.acquired_at)
        }
    }
}

/// A held lock.
#[derive(Debug)]
pub struct Lock {
    area: String,
    key: Vec<u8>,
    record: LockRecord,
    /// The lock key's mod revision as we last wrote it: the fence.
    revision: i64,
    renewed: Instant,
    ttl: Duration,
}

/// A name for this runner: the OS user (when known), host, process id and a nonce.
pub fn runner_name() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .map_or_else(String::new, |u| format!("{u}@"));
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{user}{host}/{}/{nonce:08x}", std::process::id())
}

fn store_err(area: &str, e: strata_core::Error) -> Error {
    Error::store(format!("taking the migration lock of area {area}"), e)
}

impl Lock {
    /// Takes the lock of `area`, waiting up to `wait` for a holder to finish.
    pub async fn acquire<S: Store>(
        store: &S,
        area: &str,
        owner: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Lock, Error> {
        let key = lock_key(area).into_bytes();
        let deadline = Instant::now() + wait;
        loop {
            let current = store.get(&key).await.map_err(|e| store_err(area, e))?;
            let compare = match &current {
                None => Some(Compare::absent(key.clone())),
                Some(kv) => {
                    let held: Option<LockRecord> = serde_json::from_slice(&kv.value).ok();
                    match held {
                        Some(h) if h.is_live(store.capabilities().leases) => {
                            if Instant::now() >= deadline {
                                return Err(Error::Locked {
                                    area: area.to_owned(),
                                    holder: h.describe(),
                                });
                            }
                            None
                        }
                        // Expired, or unreadable: take it over.
                        _ => Some(Compare::mod_revision(
                            key.clone(),
                            CompareOp::Equal,
                            kv.mod_revision,
                        )),
                    }
                }
            };
            if let Some(compare) = compare {
                let lease = store
                    .lease_grant(ttl)
                    .await
                    .map_err(|e| store_err(area, e))?;
                let record = LockRecord {
                    owner: owner.to_owned(),
                    expires_at_ms: unix_millis() + ttl.as_millis() as i64,
                    acquired_at: format_rfc3339(unix_millis() / 1000),
                    lease,
                };
                let value = serde_json::to_vec(&record).expect("a lock record serializes");
                let put = Op::put_with_lease(key.clone(), value, lease.unwrap_or(0));
                let txn = Txn::new().when([compare]).and_then([put]);
                let resp = store.txn(txn).await.map_err(|e| store_err(area, e))?;
                if !resp.succeeded {
                    if let Some(lease) = lease {
                        let _ = store.lease_revoke(lease).await;
                    }
                }
                if resp.succeeded {
                    return Ok(Lock {
                        area: area.to_owned(),
                        key,
                        record,
                        revision: resp.revision,
                        renewed: Instant::now(),
                        ttl,
                    });
                }
                continue;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The compare that every write under this lock carries.
    pub fn fence(&self) -> Compare {
        Compare::mod_revision(self.key.clone(), CompareOp::Equal, self.revision)
    }

    pub fn owner(&self) -> &str {
        &self.record.owner
    }

    /// Keeps the lease alive, or pushes the expiry forward, when a third of the TTL
    /// has passed.
    pub async fn renew_if_due<S: Store>(&mut self, store: &S) -> Result<(), Error> {
        if self.renewed.elapsed() < self.ttl / 3 {
            return Ok(());
        }
        if let Some(lease) = self.record.lease {
            let alive = store
                .lease_keep_alive(lease)
                .await
                .map_err(|e| store_err(&self.area, e))?;
            if !alive {
                return Err(self.lost(store).await);
            }
            self.renewed = Instant::now();
            return Ok(());
        }
        self.record.expires_at_ms = unix_millis() + self.ttl.as_millis() as i64;
        let value = serde_json::to_vec(&self.record).expect("a lock record serializes");
        let txn = Txn::new()
            .when([self.fence()])
            .and_then([Op::put(self.key.clone(), value)]);
        let resp = store.txn(txn).await.map_err(|e| store_err(&self.area, e))?;
        if !resp.succeeded {
            return Err(self.lost(store).await);
        }
        self.revision = resp.revision;
        self.renewed = Instant::now();
        Ok(())
    }

    /// The error for a fence that failed: who holds the lock now.
    pub async fn lost<S: Store>(&self, store: &S) -> Error {
        let holder = match store.get(&self.key).await {
            Ok(Some(kv)) => serde_json::from_slice::<LockRecord>(&kv.value)
                .map(|r| r.describe())
                .unwrap_or_else(|_| "an unreadable record".into()),
            Ok(None) => "nobody".into(),
            Err(e) => format!("unknown ({e})"),
        };
        Error::LockLost {
            area: self.area.clone(),
            holder,
        }
    }

    /// True if the fence still holds (the lock is still ours, unchanged).
    pub async fn still_held<S: Store>(&self, store: &S) -> Result<bool, Error> {
        let kv = store
            .get(&self.key)
            .await
            .map_err(|e| store_err(&self.area, e))?;
        Ok(kv.is_some_and(|kv| kv.mod_revision == self.revision))
    }

    /// Deletes the lock if it is still ours (on etcd: revokes its lease, which
    /// deletes the key).
    pub async fn release<S: Store>(self, store: &S) -> Result<(), Error> {
        let txn = Txn::new()
            .when([self.fence()])
            .and_then([Op::delete(strata_core::KeySpan::key(self.key.clone()))]);
        store.txn(txn).await.map_err(|e| store_err(&self.area, e))?;
        if let Some(lease) = self.record.lease {
            store
                .lease_revoke(lease)
                .await
                .map_err(|e| store_err(&self.area, e))?;
        }
        Ok(())
    }
}
