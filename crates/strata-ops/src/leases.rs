//! Keys that expire by themselves in the source ([`Store::expiry`]: an etcd v2 key
//! with a TTL read with `--v2-ttl lease`) written into the target attached to a lease
//! of the time they have left, so that they go when they would have gone in the
//! source. Keys with the same TTL (in whole seconds, rounded up) share one lease.
//! Used by `copy` (and so by a mirror's copies) and by the mirror's changes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Error, Result};
use strata_core::model::*;
use strata_core::store::Store;

/// A lease's TTL for a key with `left` to live: whole seconds, rounded up, at least 1.
pub(crate) fn ttl_secs(left: Duration) -> u64 {
    (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1)
}

/// The error for `count` keys that need a lease in a target without leases.
pub(crate) fn no_leases(backend: &str, count: usize) -> Error {
    Error::Invalid(format!(
        "{count} key(s) of the source have a TTL to carry as a lease (--v2-ttl lease), \
         but the target ({backend}) has no leases: write into an etcd v3 target, or use \
         --v2-ttl copy (without the TTL) or --v2-ttl skip (leave them out)"
    ))
}

/// Grants one lease per TTL in `secs`; the lease of each TTL.
pub(crate) async fn grant<B: Store>(to: &B, secs: Vec<u64>) -> Result<BTreeMap<u64, i64>> {
    let mut out = BTreeMap::new();
    for s in secs {
        if out.contains_key(&s) {
            continue;
        }
        match to.lease_grant(Duration::from_secs(s)).await? {
            Some(id) => out.insert(s, id),
            None => return Err(no_leases(to.capabilities().backend, 1)),
        };
    }
    Ok(out)
}

/// Writes `(key, value, time left)` each attached to a lease of its time left, in
/// transactions of at most the target's op limit. Returns the transactions written.
/// Run again it writes them again (a put cannot tell which lease a key has), with
/// the TTL left then.
pub(crate) async fn put_leased<B: Store>(
    to: &B,
    items: Vec<(Vec<u8>, Vec<u8>, Duration)>,
) -> Result<u64> {
    if items.is_empty() {
        return Ok(0);
    }
    let caps = to.capabilities();
    if !caps.leases {
        return Err(no_leases(caps.backend, items.len()));
    }
    let secs: Vec<u64> = items.iter().map(|i| ttl_secs(i.2)).collect();
    let leases = grant(to, secs).await?;
    let ops: Vec<Op> = items
        .into_iter()
        .map(|(k, v, left)| Op::put_with_lease(k, v, leases[&ttl_secs(left)]))
        .collect();
    let mut txns = 0;
    for chunk in ops.chunks(caps.max_txn_ops.max(1)) {
        to.txn(Txn::new().and_then(chunk.to_vec())).await?;
        txns += 1;
    }
    Ok(txns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::mem::MemStore;

    #[test]
    fn whole_seconds_rounded_up_at_least_one() {
        assert_eq!(ttl_secs(Duration::ZERO), 1);
        assert_eq!(ttl_secs(Duration::from_millis(300)), 1);
        assert_eq!(ttl_secs(Duration::from_secs(30)), 30);
        assert_eq!(ttl_secs(Duration::from_millis(29_001)), 30);
    }

    #[tokio::test]
    async fn a_target_without_leases_is_refused_naming_the_choices() {
        let to = MemStore::new();
        let err = put_leased(
            &to,
            vec![(b"/t".to_vec(), b"x".to_vec(), Duration::from_secs(5))],
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("has no leases") && err.contains("--v2-ttl copy"),
            "{err}"
        );
        assert_eq!(to.get(b"/t").await.unwrap(), None);
    }
}
