//! `verify`: the last commit restored into a scratch store, its digest compared with
//! the live store's at the revision the commit records.

use strata_core::{scan, KeySpan, MemStore, Store};
use strata_ops::transfer::Digest;

use crate::options::BackupOptions;
use crate::repo::{Repo, Trailers};
use crate::restore::written;
use crate::source::{describe, reads, Part, Revisions};
use crate::Error;

/// What `verify` compared.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    pub commit: String,
    /// The store revision the commit records.
    pub revision: i64,
    /// The revision the live store was read at: `revision`, or the current one when
    /// the store has compacted `revision` away.
    pub compared_at: i64,
    /// Each part's revision the commit records, and the one it was compared at
    /// (a layered keyspace's stores; one entry, `""`, for one store).
    pub revisions: Revisions,
    pub compared: Revisions,
    pub keys: u64,
    pub digest: String,
}

/// The digest of the live store's backed-up keys, each part read at its revision in
/// `at` (0: now), in key order; and the revisions read.
async fn live_digest<S: Store>(
    parts: &[Part<'_, S>],
    opts: &BackupOptions,
    at: &Revisions,
) -> strata_core::Result<(Digest, Revisions)> {
    let mut live = Digest::default();
    let mut read_at = at.clone();
    for (part, span) in reads(parts, &opts.spans()) {
        let revision = read_at.get(&part.name).copied().unwrap_or(0);
        let read = scan(part.store, span, revision, |kvs| {
            for kv in kvs.iter().filter(|kv| opts.selected(&kv.key)) {
                let Some(written) = opts.secrets.protect(&kv.key, &kv.value) else {
                    continue;
                };
                match opts.secrets.reveal(&kv.key, &written) {
                    Ok(Some(_)) => live.add(&kv.key, &kv.value),
                    _ => live.add(&kv.key, written.to_string().as_bytes()),
                }
            }
            Ok(())
        })
        .await?;
        read_at.insert(part.name.clone(), read);
    }
    Ok((live, read_at))
}

/// Restores the latest commit into a scratch in-memory store and compares its digest
/// with the live store's selected keys at the revision the commit records (secrets
/// compared in their written form). If the store has compacted that revision away
/// (and nothing changed since, so no backup committed), it compares with the store
/// as it is now: equal digests still prove the backup exact.
pub async fn verify<S: Store>(store: &S, opts: &BackupOptions) -> Result<VerifyReport, Error> {
    verify_parts(&crate::source::single(store), opts).await
}

/// [`verify`] over several stores (a layered keyspace's), each part compared at the
/// revision the commit records for it.
pub async fn verify_parts<S: Store>(
    parts: &[Part<'_, S>],
    opts: &BackupOptions,
) -> Result<VerifyReport, Error> {
    let repo = Repo::open(&opts.repo, false, false)?;
    let commit = repo.head()?.ok_or_else(|| {
        Error::NotFound(format!(
            "{} has no backup yet: run `strata backup run`",
            opts.repo.display()
        ))
    })?;
    let t = Trailers::parse(commit.message().unwrap_or(""))
        .ok_or_else(|| Error::NotFound("HEAD is not a strata backup commit".into()))?;
    let scratch = MemStore::new();
    let entries: Vec<(Vec<u8>, Vec<u8>)> = written(&repo, &commit, b"")?
        .into_iter()
        .map(|(key, value)| {
            let bytes = match opts.secrets.reveal(&key, &value) {
                Ok(Some(v)) => v,
                _ => value.to_string().into_bytes(),
            };
            (key, bytes)
        })
        .collect();
    strata_ops::load::load(&scratch, entries, None, &mut |_| {})
        .await
        .map_err(|e| Error::op("filling the scratch store", e))?;
    let mut restored = Digest::default();
    scan(&scratch, KeySpan::all(), 0, |kvs| {
        kvs.iter().for_each(|kv| restored.add(&kv.key, &kv.value));
        Ok(())
    })
    .await
    .map_err(|e| Error::store("reading the scratch store", e))?;
    let now: Revisions = t.revisions.keys().map(|k| (k.clone(), 0)).collect();
    let (live, compared) = match live_digest(parts, opts, &t.revisions).await {
        Ok(found) => found,
        Err(strata_core::Error::Compacted { .. }) => live_digest(parts, opts, &now)
            .await
            .map_err(|e| Error::store("reading the live store", e))?,
        Err(e) => return Err(Error::store("reading the live store", e)),
    };
    let compared_at = compared.get("").copied().unwrap_or(0);
    if restored != live {
        let compacted = if compared == t.revisions {
            String::new()
        } else {
            format!(
                " (the store has compacted revision {} that the commit records, so it was read at its current revision {compared_at}: run `strata backup run` and verify again)",
                t.revision
            )
        };
        let compared_at = describe(&compared);
        return Err(Error::Refused(format!(
            "the backup does not match the store: commit {} holds {} keys (digest {}), the store at revision {compared_at} has {} (digest {}){compacted}",
            commit.id(),
            restored.keys,
            restored.hex(),
            live.keys,
            live.hex()
        )));
    }
    Ok(VerifyReport {
        commit: commit.id().to_string(),
        revision: t.revision,
        revisions: t.revisions,
        compared: compared.clone(),
        compared_at,
        keys: restored.keys,
        digest: restored.hex(),
    })
}
