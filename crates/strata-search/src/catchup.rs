//! Bringing an index up to date with its stores: for each store the documents come
//! from (the store itself, or each layer's store of a layered keyspace, each with its
//! own revision), every change after the revision the index recorded for it is read
//! from that store's watch, and each document it touches is read again (through the
//! keyspace, so an object is read whole) and replaced or removed. A store that cannot
//! replay them (compacted, an etcd v2 source too far on, a revision never delivered),
//! one the index does not know, or one behind what the index recorded (another store
//! at the same address) has the index rebuilt from a full read. Owns catching up,
//! applying watched batches and re-reading documents.

use std::collections::{BTreeMap, BTreeSet};
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

/// A store the documents come from and the key spans of it that count: the store
/// itself for a plain store ([`Feed::whole`]), each layer's store of a layered
/// keyspace with the spans it holds.
#[derive(Debug)]
pub struct Feed<'a, P> {
    /// `""` for a plain store; the layer's store name.
    pub name: String,
    pub store: &'a P,
    pub spans: Vec<KeySpan>,
}

impl<'a, P> Feed<'a, P> {
    /// A plain store: all of it.
    pub fn whole(store: &'a P) -> Self {
        Feed {
            name: String::new(),
            store,
            spans: vec![KeySpan::all()],
        }
    }
}

/// How a replay of one feed ended.
enum Replayed {
    /// It reached this revision.
    Reached(i64),
    /// It cannot be replayed: why.
    Lost(String),
}

impl SearchIndex {
    /// Applies every change after the index's revisions up to the stores' current
    /// ones, re-reading each changed document from `store`; rebuilds when a store
    /// cannot replay them.
    pub async fn catch_up<S: Store, P: Store>(
        &mut self,
        store: &S,
        feeds: &[Feed<'_, P>],
        w: &mut IndexWriter,
    ) -> Result<CatchUp> {
        let mut current = Vec::with_capacity(feeds.len());
        for f in feeds {
            current.push(f.store.status().await.map_err(Error::Store)?.revision);
        }
        let empty = self.revision == 0 && self.parts.is_empty();
        let mut why = None;
        if !empty && self.parts.len() != feeds.len() {
            why = Some("the index was made over other stores (the layers changed?)".to_owned());
        }
        for (f, cur) in feeds.iter().zip(&current) {
            match self.parts.get(&f.name) {
                None if !empty => why = why.or(Some(format!("the index does not know the store {:?}", f.name))),
                Some(at) if at > cur => {
                    why = Some(format!(
                        "the index is at revision {at} but the store only at {cur} (another store at the same address?)"
                    ))
                }
                _ => {}
            }
        }
        if empty || why.is_some() {
            return self.rebuild_all(store, feeds, current, w, why).await;
        }
        let mut changed: BTreeSet<Owner> = BTreeSet::new();
        let mut parts = self.parts.clone();
        let mut applied = 0u64;
        for (f, cur) in feeds.iter().zip(&current) {
            let at = parts[&f.name];
            if at >= *cur {
                continue;
            }
            match self
                .replay(
                    store,
                    f,
                    at,
                    *cur,
                    &mut changed,
                    &mut applied,
                    &mut parts,
                    w,
                )
                .await?
            {
                Replayed::Reached(r) => {
                    parts.insert(f.name.clone(), r);
                }
                Replayed::Lost(why) => {
                    return self.rebuild_all(store, feeds, current, w, Some(why)).await
                }
            }
        }
        if applied == 0 && changed.is_empty() && parts == self.parts {
            return Ok(CatchUp::Current);
        }
        let docs = changed.len() as u64;
        self.reindex(store, w, changed).await?;
        self.commit(w, parts)?;
        Ok(CatchUp::Applied {
            changes: applied,
            docs,
        })
    }

    /// Reads `store` whole into the index and commits the feeds at their revisions
    /// (a plain store's: the revision the read was at).
    async fn rebuild_all<S: Store, P: Store>(
        &mut self,
        store: &S,
        feeds: &[Feed<'_, P>],
        current: Vec<i64>,
        w: &mut IndexWriter,
        why: Option<String>,
    ) -> Result<CatchUp> {
        let (docs, read_at) = self.rebuild(store, w).await?;
        let plain = matches!(feeds, [f] if f.name.is_empty());
        let parts = feeds
            .iter()
            .zip(current)
            .map(|(f, cur)| (f.name.clone(), if plain { read_at.max(cur) } else { cur }))
            .collect();
        self.commit(w, parts)?;
        Ok(CatchUp::Rebuilt { docs, why })
    }

    /// Replays `f`'s changes after `at` up to `to`, collecting the documents they touch
    /// (re-read and committed every [`COMMIT_EVERY`] documents).
    #[allow(clippy::too_many_arguments)]
    async fn replay<S: Store, P: Store>(
        &mut self,
        store: &S,
        f: &Feed<'_, P>,
        at: i64,
        to: i64,
        changed: &mut BTreeSet<Owner>,
        applied: &mut u64,
        parts: &mut BTreeMap<String, i64>,
        w: &mut IndexWriter,
    ) -> Result<Replayed> {
        let mut watcher = match f
            .store
            .watch(WatchRequest {
                span: KeySpan::all(),
                start_revision: at + 1,
            })
            .await
        {
            Ok(w) => w,
            Err(strata_core::Error::Compacted { .. }) => {
                return Ok(Replayed::Lost(format!(
                    "the store no longer holds the changes after revision {at}"
                )))
            }
            Err(e) => return Err(Error::Store(e)),
        };
        let mut reached = at;
        while reached < to {
            let batch = match tokio::time::timeout(WATCH_PATIENCE, watcher.next()).await {
                Ok(Some(Ok(events))) => events,
                Ok(Some(Err(strata_core::Error::Compacted { .. }))) | Err(_) => {
                    return Ok(Replayed::Lost(format!(
                        "the store's watch did not replay revisions {}..{to}",
                        reached + 1
                    )))
                }
                Ok(Some(Err(e))) => return Err(Error::Store(e)),
                Ok(None) => break,
            };
            reached = batch.last().map_or(reached, Event::revision);
            for e in batch
                .iter()
                .filter(|e| f.spans.iter().any(|s| s.contains(&e.kv.key)))
            {
                if let Some(o) = doc::owner(self.schema.as_ref(), &e.kv.key) {
                    changed.insert(o);
                }
                *applied += 1;
            }
            if changed.len() >= COMMIT_EVERY {
                self.reindex(store, w, std::mem::take(changed)).await?;
                parts.insert(f.name.clone(), reached);
                self.commit(w, parts.clone())?;
            }
        }
        Ok(Replayed::Reached(reached.max(to)))
    }

    /// Applies one batch of a plain store's watched changes and commits at its
    /// revision.
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
        self.commit(w, BTreeMap::from([(String::new(), at)]))?;
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
