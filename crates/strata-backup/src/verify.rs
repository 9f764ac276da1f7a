//! `verify`: the last commit restored into a scratch store, its digest compared with
//! the live store's at the revision the commit records.

use strata_core::{scan, KeySpan, MemStore, Store};
use strata_ops::transfer::Digest;

use crate::options::BackupOptions;
use crate::repo::{Repo, Trailers};
use crate::restore::written;
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
    pub keys: u64,
    pub digest: String,
}

/// The digest of the live store's backed-up keys at `revision` (0: now), and the
/// revision read.
async fn live_digest<S: Store>(
    store: &S,
    opts: &BackupOptions,
    revision: i64,
) -> strata_core::Result<(Digest, i64)> {
    let mut live = Digest::default();
    let mut read_at = revision;
    for span in opts.spans() {
        read_at = scan(store, span, read_at, |kvs| {
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
    }
    Ok((live, read_at))
}

/// Restores the latest commit into a scratch in-memory store and compares its digest
/// with the live store's selected keys at the revision the commit records (secrets
/// compared in their written form). If the store has compacted that revision away
/// (and nothing changed since, so no backup committed), it compares with the store
/// as it is now: equal digests still prove the backup exact.
pub async fn verify<S: Store>(store: &S, opts: &BackupOptions) -> Result<VerifyReport, Error> {
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
    let read = |revision| live_digest(store, opts, revision);
    let (live, compared_at) = match read(t.revision).await {
        Ok(found) => found,
        Err(strata_core::Error::Compacted { .. }) => read(0)
            .await
            .map_err(|e| Error::store("reading the live store", e))?,
        Err(e) => return Err(Error::store("reading the live store", e)),
    };
    if restored != live {
        let compacted = if compared_at == t.revision {
            String::new()
        } else {
            format!(
                " (the store has compacted revision {} that the commit records, so it was read at its current revision {compared_at}: run `strata backup run` and verify again)",
                t.revision
            )
        };
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
        compared_at,
        keys: restored.keys,
        digest: restored.hex(),
    })
}
