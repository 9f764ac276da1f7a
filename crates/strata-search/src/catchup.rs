//! Bringing an index up to date with its store: every change after the revision the
//! index reflects is read from the store's watch, and each document it touches is read
//! again and replaced (or removed); a store that cannot replay them (compacted, an
//! etcd v2 source too far on, a revision never delivered) is read whole instead.
//! Owns catching up, applying watched batches and re-reading documents.

use std::collections::BTreeSet;
use std::time::Duration;

use strata_core::model::{Event, KeySpan, WatchRequest};
use strata_core::store::{scan, Store};
use strata_schema::Schema;
use tantivy::{IndexWriter, Term};

use crate::doc::{self, Owner};
use crate::index::SearchIndex;
use crate::{Error, Result};

/// Documents re-read between commits while catching up.
const COMMIT_EVERY: usize = 50_000;
/// How long a catch-up waits for the watch to deliver a revision the store has.
const WATCH_PATIENCE: Duration = Duration::from_secs(10);

/// What a catch-up did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatchUp {
    /// Nothing had changed.
    Current,
    /// Changes applied, documents re-read.
    Applied { changes: u64, docs: u64 },
    /// Built from a full read (`why`: when it was not simply new).
    Rebuilt { docs: u64, why: Option<String> },
}

impl SearchIndex {
    /// Applies every change after the index's revision up to the store's current one,
    /// re-reading each changed document; rebuilds when the store cannot replay them.
    /// Returns what was done.
    pub async fn catch_up<S: Store>(&mut self, store: &S, w: &mut IndexWriter) -> Result<CatchUp> {
        let current = store.status().await.map_err(Error::Store)?.revision;
        if self.revision == 0 || self.revision > current {
            let why = if self.revision == 0 {
                None
            } else {
                Some(format!("the index is at revision {} but the store only at {current} (another store at the same address?)", self.revision))
            };
            let docs = self.rebuild(store, w).await?;
            return Ok(CatchUp::Rebuilt { docs, why });
        }
        if self.revision == current {
            return Ok(CatchUp::Current);
        }
        let mut watcher = match store
            .watch(WatchRequest {
                span: KeySpan::all(),
                start_revision: self.revision + 1,
            })
            .await
        {
            Ok(w) => w,
            Err(strata_core::Error::Compacted { .. }) => {
                let docs = self.rebuild(store, w).await?;
                return Ok(CatchUp::Rebuilt {
                    docs,
                    why: Some(format!(
                        "the store no longer holds the changes after revision {}",
                        self.revision
                    )),
                });
            }
            Err(e) => return Err(Error::Store(e)),
        };
        let mut changed: BTreeSet<Owner> = BTreeSet::new();
        let mut at = self.revision;
        let mut applied = 0u64;
        while at < current {
            let batch = match tokio::time::timeout(WATCH_PATIENCE, watcher.next()).await {
                Ok(Some(Ok(events))) => events,
                Ok(Some(Err(strata_core::Error::Compacted { .. }))) | Err(_) => {
                    // The store moved past what its watch replays (or never sends a
                    // revision it reports): read it whole instead.
                    let docs = self.rebuild(store, w).await?;
                    return Ok(CatchUp::Rebuilt {
                        docs,
                        why: Some(format!(
                            "the store's watch did not replay revisions {}..{current}",
                            at + 1
                        )),
                    });
                }
                Ok(Some(Err(e))) => return Err(Error::Store(e)),
                Ok(None) => break,
            };
            at = batch.last().map_or(at, Event::revision);
            for e in &batch {
                if let Some(o) = doc::owner(self.schema.as_ref(), &e.kv.key) {
                    changed.insert(o);
                }
            }
            applied += batch.len() as u64;
            if changed.len() >= COMMIT_EVERY {
                self.reindex(store, w, std::mem::take(&mut changed)).await?;
                self.commit(w, at)?;
            }
        }
        let docs = changed.len() as u64;
        self.reindex(store, w, changed).await?;
        self.commit(w, at.max(current))?;
        Ok(CatchUp::Applied {
            changes: applied,
            docs,
        })
    }

    /// Applies one batch of watched changes and commits at its revision.
    pub async fn apply<S: Store>(
        &mut self,
        store: &S,
        w: &mut IndexWriter,
        events: &[Event],
    ) -> Result<CatchUp> {
        let Some(at) = events.last().map(Event::revision) else {
            return Ok(CatchUp::Current);
        };
        let owners: BTreeSet<Owner> = events
            .iter()
            .filter_map(|e| doc::owner(self.schema.as_ref(), &e.kv.key))
            .collect();
        let docs = owners.len() as u64;
        self.reindex(store, w, owners).await?;
        self.commit(w, at)?;
        Ok(CatchUp::Applied {
            changes: events.len() as u64,
            docs,
        })
    }

    /// Reads each owner's keys again and replaces its document (or removes it).
    async fn reindex<S: Store>(
        &self,
        store: &S,
        w: &IndexWriter,
        owners: BTreeSet<Owner>,
    ) -> Result<()> {
        let ids: Vec<String> = owners.iter().map(|o| o.id().to_owned()).collect();
        self.drop_vectors(&ids)?;
        for o in owners {
            w.delete_term(Term::from_field_text(self.fields.id, o.id()));
            let kvs = read_owner(store, self.schema.as_ref(), &o).await?;
            if let Some(d) = doc::build(self.schema.as_ref(), &o, &kvs) {
                self.add(w, &d)?;
            }
        }
        Ok(())
    }
}

/// The keys of one document as the store holds them now.
async fn read_owner<S: Store>(
    store: &S,
    schema: Option<&Schema>,
    o: &Owner,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    match o {
        Owner::Key { key, .. } => Ok(store
            .get(key.as_bytes())
            .await
            .map_err(Error::Store)?
            .map(|kv| vec![(kv.key, kv.value)])
            .unwrap_or_default()),
        Owner::Object { path, .. } => {
            let mut out = Vec::new();
            scan(
                store,
                KeySpan::prefix(format!("{path}/").into_bytes()),
                0,
                |page| {
                    out.extend(
                        page.into_iter()
                            .filter(|kv| doc::owner(schema, &kv.key).as_ref() == Some(o))
                            .map(|kv| (kv.key, kv.value)),
                    );
                    Ok(())
                },
            )
            .await
            .map_err(Error::Store)?;
            Ok(out)
        }
    }
}
