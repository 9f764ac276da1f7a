//! Moving data between two stores: `copy` (a consistent snapshot of the source written
//! into the target, verified by digest) and `diff` (what differs between two stores).
//! `crate::mirror` builds on `copy` to keep a target current.
//!
//! Owns prefix selection, prefix rewriting, the digest and the comparison; reading is
//! [`strata_core::scan`], writing is [`crate::load`]. Keys under [`RESERVED_PREFIX`]
//! hold Strata's own state (a mirror's checkpoint) and are never copied or compared.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::load::{load, LoadReport, OnBatch};
use strata_core::key::display_key;
use strata_core::model::*;
use strata_core::store::{scan, Store};

pub use strata_core::key::RESERVED_PREFIX;

/// `OLD=NEW`: keys that start with `OLD` are written with `NEW` in its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// The source prefix replaced (not empty).
    pub from: Vec<u8>,
    /// What replaces it in the target (may be empty).
    pub to: Vec<u8>,
}

impl Rewrite {
    /// Parses `OLD=NEW`; text without `=` or with an empty `OLD` is
    /// [`Error::Invalid`].
    pub fn parse(text: &str) -> Result<Self> {
        match text.split_once('=') {
            Some((from, to)) if !from.is_empty() => Ok(Rewrite {
                from: from.as_bytes().to_vec(),
                to: to.as_bytes().to_vec(),
            }),
            _ => Err(Error::Invalid(format!(
                "rewrite {text:?} is not OLD=NEW (e.g. /fiberlb/=/metadata/fiberlb/)"
            ))),
        }
    }
}

/// Which keys move, and how they are renamed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Source prefixes; empty means every key.
    pub prefixes: Vec<Vec<u8>>,
    /// Applied in order; the first whose `from` starts the key wins.
    pub rewrites: Vec<Rewrite>,
    /// Source keys outside these spans are left out (none: no such bound). A mirror
    /// from one store of a layered keyspace takes only the spans that store holds.
    pub within: Vec<KeySpan>,
}

impl Selection {
    /// The source prefixes, without any that another one already covers.
    pub fn source_prefixes(&self) -> Vec<Vec<u8>> {
        normalize(if self.prefixes.is_empty() {
            vec![Vec::new()]
        } else {
            self.prefixes.clone()
        })
    }

    /// Whether a source key is selected: under one of the prefixes (any, when there
    /// are none), inside `within` (when given) and not reserved.
    pub fn includes(&self, key: &[u8]) -> bool {
        !key.starts_with(RESERVED_PREFIX.as_bytes())
            && (self.prefixes.is_empty() || self.prefixes.iter().any(|p| key.starts_with(p)))
            && (self.within.is_empty() || self.within.iter().any(|s| s.contains(key)))
    }

    /// The key as it is written in the target: the first matching rewrite applied,
    /// or the key unchanged.
    pub fn rewrite(&self, key: &[u8]) -> Vec<u8> {
        for r in &self.rewrites {
            if let Some(rest) = key.strip_prefix(r.from.as_slice()) {
                let mut out = r.to.clone();
                out.extend_from_slice(rest);
                return out;
            }
        }
        key.to_vec()
    }

    /// The target prefixes that can hold copied keys: each source prefix rewritten, plus
    /// the `to` side of rewrites that apply inside a source prefix.
    pub fn target_prefixes(&self) -> Vec<Vec<u8>> {
        let sources = self.source_prefixes();
        let mut out: Vec<Vec<u8>> = sources.iter().map(|p| self.rewrite(p)).collect();
        for r in &self.rewrites {
            if sources.iter().any(|p| r.from.starts_with(p)) {
                out.push(r.to.clone());
            }
        }
        normalize(out)
    }
}

/// Sorts prefixes and drops those covered by a shorter one.
fn normalize(mut prefixes: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    prefixes.sort();
    let mut out: Vec<Vec<u8>> = Vec::new();
    for p in prefixes {
        if !out.iter().any(|q| p.starts_with(q)) {
            out.push(p);
        }
    }
    out
}

/// A stable digest of a sorted key-value sequence: two
/// 64-bit FNV-1a lanes over length-prefixed keys and values, as 32 hex digits. Not a
/// cryptographic hash: it detects accidents, not tampering. Feed it in key order;
/// the same sequence always gives the same digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest {
    a: u64,
    b: u64,
    /// Key-values fed so far.
    pub keys: u64,
}

impl Default for Digest {
    fn default() -> Self {
        Digest {
            a: 0xcbf2_9ce4_8422_2325,
            b: 0x8422_2325_cbf2_9ce4,
            keys: 0,
        }
    }
}

impl Digest {
    fn feed(&mut self, bytes: &[u8]) {
        for chunk in [&(bytes.len() as u64).to_le_bytes()[..], bytes] {
            for &byte in chunk {
                self.a = (self.a ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3);
                self.b = (self.b ^ byte as u64)
                    .wrapping_mul(0x0000_0100_0000_01b3)
                    .rotate_left(5);
            }
        }
    }

    /// Feeds one key-value.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        self.feed(key);
        self.feed(value);
        self.keys += 1;
    }

    /// The digest so far, as 32 lower-case hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}{:016x}", self.a, self.b)
    }
}

/// Reads the selected keys of `store` at one revision (`revision = 0`: the latest),
/// rewritten and sorted by their target key. Returns the revision read. Two source
/// keys rewritten to one target key are [`Error::Invalid`].
pub async fn read_selection<S: Store>(
    store: &S,
    selection: &Selection,
    revision: i64,
) -> Result<(i64, Vec<(Vec<u8>, Vec<u8>)>)> {
    let (revision, entries, _) = read_expiring(store, selection, revision).await?;
    Ok((revision, entries))
}

/// The target key and the time left of each key that expires by itself in the source
/// ([`Store::expiry`]).
type Expiring = HashMap<Vec<u8>, Duration>;

/// [`read_selection`], also returning the keys read that expire by themselves.
async fn read_expiring<S: Store>(
    store: &S,
    selection: &Selection,
    revision: i64,
) -> Result<(i64, Vec<(Vec<u8>, Vec<u8>)>, Expiring)> {
    let mut expiring = Expiring::new();
    let mut revision = if revision > 0 {
        revision
    } else {
        store.status().await?.revision
    };
    let mut entries = Vec::new();
    for prefix in selection.source_prefixes() {
        revision = scan(store, KeySpan::prefix(prefix), revision, |page| {
            for kv in page {
                if !selection.includes(&kv.key) {
                    continue;
                }
                let key = selection.rewrite(&kv.key);
                if let Some(left) = store.expiry(&kv) {
                    expiring.insert(key.clone(), left);
                }
                entries.push((key, kv.value));
            }
            Ok(())
        })
        .await?;
    }
    entries.sort_by(|x, y| x.0.cmp(&y.0));
    if let Some(pair) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::Invalid(format!(
            "two source keys are rewritten to the same key {}; make the rewrites distinct",
            display_key(&pair[0].0)
        )));
    }
    Ok((revision, entries, expiring))
}

/// Every key under `prefixes` (none reserved), sorted, at the latest revision.
async fn read_prefixes<S: Store>(store: &S, prefixes: &[Vec<u8>]) -> Result<Vec<KeyValue>> {
    let mut out = Vec::new();
    let mut revision = 0;
    for prefix in prefixes {
        revision = scan(store, KeySpan::prefix(prefix.clone()), revision, |page| {
            out.extend(
                page.into_iter()
                    .filter(|kv| !kv.key.starts_with(RESERVED_PREFIX.as_bytes())),
            );
            Ok(())
        })
        .await?;
    }
    out.sort_by(|x, y| x.key.cmp(&y.key));
    Ok(out)
}

/// What a copy did (or, with `dry_run`, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// The source revision the copy reflects.
    pub source_revision: i64,
    /// Keys selected in the source.
    pub keys: u64,
    /// Keys that are missing or differ in the target (written, unless `dry_run`).
    pub to_write: u64,
    /// What the write did (all zero with `dry_run`).
    pub load: LoadReport,
    /// Keys in the target's copied prefixes that the source does not have.
    pub extra: Vec<Vec<u8>>,
    /// Of those, deleted (`delete_extra`).
    pub deleted_extra: u64,
    /// Keys that expire by themselves in the source, written (unless `dry_run`) each
    /// attached to a lease of the time it has left (counted in `keys`, not in `load`).
    pub leased: u64,
    /// The [`Digest`] of the selected keys (rewritten) and values at `source_revision`.
    pub source_digest: String,
    /// The digest of the same keys in the target after the copy (empty with `dry_run`).
    pub target_digest: String,
    /// The target holds exactly the source's selected keys and values.
    pub verified: bool,
}

/// Copy options beyond the selection.
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    /// Read both stores and report what would be written; write nothing.
    pub dry_run: bool,
    /// Also delete the target's keys under the copied prefixes that the source does
    /// not have ([`CopyReport::extra`]).
    pub delete_extra: bool,
    /// Keys per write transaction, at most the target's `max_txn_ops` (its limit when
    /// `None`).
    pub batch: Option<usize>,
}

/// Copies the selected keys of `from`, read at one revision, into `to`: batched,
/// idempotent, resumable (a re-run writes what is still missing), then verified by
/// comparing a digest of the source at that revision with the target. A target that
/// does not match is [`Error::CopyNotVerified`]. With `dry_run` it returns after
/// reading, without writing or verifying (`verified` false).
pub async fn copy<A: Store, B: Store + Clone + 'static>(
    from: &A,
    to: &B,
    selection: &Selection,
    opts: &CopyOptions,
    progress: OnBatch<'_>,
) -> Result<CopyReport> {
    let (source_revision, mut entries, expiring) = read_expiring(from, selection, 0).await?;
    let mut report = CopyReport {
        source_revision,
        keys: entries.len() as u64,
        leased: expiring.len() as u64,
        ..Default::default()
    };
    // Keys that expire in the source need leases: refused before anything is written
    // when the target has none.
    if !expiring.is_empty() && !to.capabilities().leases {
        return Err(crate::leases::no_leases(
            to.capabilities().backend,
            expiring.len(),
        ));
    }
    let mut source_digest = Digest::default();
    entries.iter().for_each(|(k, v)| source_digest.add(k, v));
    report.source_digest = source_digest.hex();
    let target_prefixes = selection.target_prefixes();
    let before = read_prefixes(to, &target_prefixes).await?;
    let wanted: HashSet<&[u8]> = entries.iter().map(|(k, _)| k.as_slice()).collect();
    report.extra = before
        .iter()
        .filter(|kv| !wanted.contains(kv.key.as_slice()))
        // Without rewrites a target key is a source key: one the selection leaves out
        // (another store's, for a mirror of one store of a layered source) is not extra.
        .filter(|kv| !selection.rewrites.is_empty() || selection.includes(&kv.key))
        .map(|kv| kv.key.clone())
        .collect();
    report.to_write = {
        let existing: std::collections::HashMap<&[u8], &[u8]> = before
            .iter()
            .map(|kv| (kv.key.as_slice(), kv.value.as_slice()))
            .collect();
        entries
            .iter()
            .filter(|(k, v)| existing.get(k.as_slice()) != Some(&v.as_slice()))
            .count() as u64
    };
    drop(wanted);
    if opts.dry_run {
        return Ok(report);
    }
    // Keys with a lease are written after the rest, each attached to its lease.
    let mut leased = Vec::new();
    if !expiring.is_empty() {
        let mut rest = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            match expiring.get(&k) {
                Some(left) => leased.push((k, v, *left)),
                None => rest.push((k, v)),
            }
        }
        entries = rest;
    }
    report.load = load(to, entries, opts.batch, progress).await?;
    report.load.txns += crate::leases::put_leased(to, leased).await?;
    if opts.delete_extra && !report.extra.is_empty() {
        let limit = to.capabilities().max_txn_ops;
        for chunk in report.extra.chunks(limit) {
            let ops = chunk.iter().map(|k| Op::delete(KeySpan::key(k.clone())));
            report.deleted_extra += chunk.len() as u64;
            to.txn(Txn::new().and_then(ops)).await?;
        }
    }
    // Verify: the target's copy of exactly the source's keys has the same digest.
    let (_, again) = read_selection(from, selection, source_revision).await?;
    let keys: HashSet<Vec<u8>> = again.into_iter().map(|(k, _)| k).collect();
    let mut target_digest = Digest::default();
    for kv in read_prefixes(to, &target_prefixes).await? {
        if keys.contains(&kv.key) {
            target_digest.add(&kv.key, &kv.value);
        }
    }
    report.target_digest = target_digest.hex();
    report.verified =
        report.target_digest == report.source_digest && target_digest.keys == report.keys;
    // An unverified copy is a failure for every caller, not a flag each must check.
    if !report.verified {
        return Err(Error::CopyNotVerified {
            source_revision,
            source_digest: report.source_digest,
            target_digest: report.target_digest,
        });
    }
    Ok(report)
}

/// What differs between two stores.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffReport {
    /// Keys only the `from` store has, sorted.
    pub only_in_from: Vec<Vec<u8>>,
    /// Keys only the `to` store has, sorted.
    pub only_in_to: Vec<Vec<u8>>,
    /// Keys both have, with different values, sorted.
    pub different: Vec<Vec<u8>>,
    /// Keys compared on the `from` side.
    pub keys: u64,
}

impl DiffReport {
    /// Whether the two stores hold the same keys and values.
    pub fn is_empty(&self) -> bool {
        self.only_in_from.is_empty() && self.only_in_to.is_empty() && self.different.is_empty()
    }
}

/// Compares the keys under `prefixes` (all when empty; reserved keys skipped) of two
/// stores, each read at one revision, key for key (no rewrites). Writes nothing.
pub async fn diff<A: Store, B: Store>(
    from: &A,
    to: &B,
    prefixes: &[Vec<u8>],
) -> Result<DiffReport> {
    let prefixes = normalize(if prefixes.is_empty() {
        vec![Vec::new()]
    } else {
        prefixes.to_vec()
    });
    let a = read_prefixes(from, &prefixes).await?;
    let b = read_prefixes(to, &prefixes).await?;
    let mut report = DiffReport {
        keys: a.len() as u64,
        ..Default::default()
    };
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.key == y.key => {
                if x.value != y.value {
                    report.different.push(x.key.clone());
                }
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.key < y.key => {
                report.only_in_from.push(x.key.clone());
                i += 1;
            }
            (Some(_), Some(y)) => {
                report.only_in_to.push(y.key.clone());
                j += 1;
            }
            (Some(x), None) => {
                report.only_in_from.push(x.key.clone());
                i += 1;
            }
            (None, Some(y)) => {
                report.only_in_to.push(y.key.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::MemStore;

    #[test]
    fn rewrites_and_prefixes() {
        let sel = Selection {
            prefixes: vec![b"/fiberlb/".to_vec(), b"/fiberlb/x/".to_vec()],
            rewrites: vec![Rewrite::parse("/fiberlb/=/metadata/fiberlb/").unwrap()],
            ..Selection::default()
        };
        assert_eq!(sel.source_prefixes(), vec![b"/fiberlb/".to_vec()]);
        assert_eq!(sel.rewrite(b"/fiberlb/a"), b"/metadata/fiberlb/a".to_vec());
        assert_eq!(sel.rewrite(b"/other"), b"/other".to_vec());
        assert_eq!(sel.target_prefixes(), vec![b"/metadata/fiberlb/".to_vec()]);
        assert!(Rewrite::parse("nothing").is_err());
        assert!(!Selection::default().includes(b"/_strata/mirror/x"));
    }

    #[tokio::test]
    async fn copy_verifies_reports_extras_and_is_idempotent() {
        let (a, b) = (MemStore::new(), MemStore::new());
        for i in 0..50 {
            a.put(format!("/src/{i:02}").as_bytes(), &[i as u8, 0xff])
                .await
                .unwrap();
        }
        b.put(b"/dst/extra", b"x").await.unwrap();
        let sel = Selection {
            prefixes: vec![b"/src/".to_vec()],
            rewrites: vec![Rewrite::parse("/src/=/dst/").unwrap()],
            ..Selection::default()
        };
        let dry = copy(
            &a,
            &b,
            &sel,
            &CopyOptions {
                dry_run: true,
                ..Default::default()
            },
            &mut |_| {},
        )
        .await
        .unwrap();
        assert_eq!((dry.keys, dry.to_write, dry.extra.len()), (50, 50, 1));
        assert_eq!(
            b.status().await.unwrap().revision,
            2,
            "a dry run writes nothing"
        );
        let done = copy(&a, &b, &sel, &CopyOptions::default(), &mut |_| {})
            .await
            .unwrap();
        assert!(done.verified && done.load.changed == 50 && done.extra.len() == 1);
        let again = copy(
            &a,
            &b,
            &sel,
            &CopyOptions {
                delete_extra: true,
                ..Default::default()
            },
            &mut |_| {},
        )
        .await
        .unwrap();
        assert_eq!((again.load.changed, again.deleted_extra), (0, 1));
        let d = diff(&a, &b, &[]).await.unwrap();
        assert_eq!(d.only_in_from.len(), 50);
        assert_eq!(d.only_in_to.len(), 50);
        b.put(b"/src/07", b"changed").await.unwrap();
        a.put(b"/_strata/mirror/x", b"1").await.unwrap();
        let d = diff(&a, &b, &[b"/src/".to_vec()]).await.unwrap();
        assert_eq!(d.different, vec![b"/src/07".to_vec()]);
        assert_eq!(d.only_in_from.len(), 49);
    }
}
