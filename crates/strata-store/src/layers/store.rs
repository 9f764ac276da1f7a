//! `Store` for the layered keyspace: reads cut by segment and concatenated in key
//! order, transactions routed to the one store their keys live in (or refused),
//! watches merged, revisions per store behind snapshot tokens. Calls into a part's
//! store are boxed: a part is an `AnyStore`, which may itself be layered.

use std::future::Future;
use std::pin::Pin;

use strata_core::key::display_key;
use strata_core::{
    Capabilities, Error, Event, Op, RangeRequest, RangeResponse, Result, Store, StoreStatus, Txn,
    TxnResponse, WatchRequest, Watcher,
};

use super::{in_layer, LayeredStore, TOKEN_BASE};
use crate::AnyStore;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

// Plain functions with the boxed type in their signature: the async bodies below see
// only that type, so the compiler need not look through `AnyStore`'s futures (which
// contain these) to know they are `Send`.
fn range_in(store: &AnyStore, req: RangeRequest) -> Boxed<'_, RangeResponse> {
    Box::pin(store.range(req))
}

fn txn_in(store: &AnyStore, txn: Txn) -> Boxed<'_, TxnResponse> {
    Box::pin(store.txn(txn))
}

fn watch_in(store: &AnyStore, req: WatchRequest) -> Boxed<'_, Watcher> {
    Box::pin(store.watch(req))
}

fn compact_in(store: &AnyStore, revision: i64) -> Boxed<'_, ()> {
    Box::pin(store.compact(revision))
}

fn history_in<'a>(store: &'a AnyStore, key: &'a [u8]) -> Boxed<'a, Vec<Event>> {
    Box::pin(store.history(key))
}

fn status_in(store: &AnyStore) -> Boxed<'_, StoreStatus> {
    Box::pin(store.status())
}

/// An error of a layer's store, as the layered keyspace reports it: the store's own
/// failures name the layer's store; errors about the request keep their kind.
fn layer_error(name: &str, url: &str, e: Error) -> Error {
    match e {
        // Still transient (a retry may work), and naming the layer's store.
        Error::Unavailable {
            outcome_unknown, ..
        } => Error::Unavailable {
            backend: "layers".into(),
            operation: format!("the store {name} ({url})"),
            outcome_unknown,
            source: Box::new(e),
        },
        Error::Backend { .. } => in_layer(name, url, e),
        // About the request (a bad key, a limit, a revision) or a watch to resume: as is.
        e => e,
    }
}

impl LayeredStore {
    fn part_error(&self, part: usize, e: Error) -> Error {
        layer_error(&self.parts[part].name, &self.parts[part].url, e)
    }

    /// The one part a transaction's keys live in, or the refusal naming them.
    fn txn_part(&self, txn: &Txn) -> Result<usize> {
        // The request's own mistakes first, as every backend reports them.
        txn.validate(&self.capabilities())?;
        let mut touched: Vec<(String, usize)> = Vec::new();
        let key = |k: &[u8]| -> Result<(String, usize)> {
            let s = self.segment_of(k).ok_or_else(|| self.outside(k))?;
            Ok((display_key(k), s.part))
        };
        for c in &txn.compares {
            touched.push(key(&c.key)?);
        }
        for op in txn.success.iter().chain(&txn.failure) {
            match op {
                Op::Put { key: k, .. } => touched.push(key(k)?),
                Op::Delete { span, .. } | Op::Range(RangeRequest { span, .. }) => {
                    let parts = self.parts_of(span);
                    if parts.is_empty() {
                        let (start, _) = span.bounds();
                        return Err(self.outside(&start));
                    }
                    for part in parts {
                        touched.push((format!("{span:?}"), part));
                    }
                }
            }
        }
        let mut parts: Vec<usize> = touched.iter().map(|(_, p)| *p).collect();
        parts.sort_unstable();
        parts.dedup();
        match parts.as_slice() {
            [] => Ok(0),
            [one] => Ok(*one),
            _ => {
                let mut named: Vec<String> = Vec::new();
                for (k, p) in &touched {
                    let line = format!("{k} ({})", self.parts[*p].name);
                    if !named.contains(&line) {
                        named.push(line);
                    }
                }
                Err(Error::InvalidTxn(format!(
                    "the transaction touches keys of several layers: {}; nothing was written \
                     (a transaction runs in one layer's store: split it by layer)",
                    named.join(", ")
                )))
            }
        }
    }
}

impl Store for LayeredStore {
    fn capabilities(&self) -> Capabilities {
        let all: Vec<Capabilities> = self
            .parts
            .iter()
            .filter_map(|p| p.store.as_ref().ok())
            .map(|s| s.capabilities())
            .collect();
        Capabilities {
            backend: "layers",
            max_txn_ops: all.iter().map(|c| c.max_txn_ops).min().unwrap_or(128),
            max_value_bytes: all.iter().map(|c| c.max_value_bytes).min().unwrap_or(0),
            max_request_bytes: all.iter().map(|c| c.max_request_bytes).min().unwrap_or(0),
            range_page_size: all.iter().map(|c| c.range_page_size).min().unwrap_or(1),
            max_in_flight: all.iter().map(|c| c.max_in_flight).min().unwrap_or(1),
            // A lease is one store's; a lock's key may live in another.
            leases: false,
        }
    }

    fn partition(&self, key: &[u8]) -> usize {
        self.segment_of(key).map_or(usize::MAX, |s| s.part)
    }

    fn partitions(&self) -> usize {
        self.parts.len()
    }

    fn own_key(&self, part: usize, name: &str) -> Vec<u8> {
        let store = self.parts.get(part).map_or("", |p| p.name.as_str());
        format!("{}{name}", super::own_prefix(store)).into_bytes()
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let cuts = self.cut(&req.span);
        let parts = self.parts_of(&req.span);
        let given = req.revision;
        if parts.len() > 1 && given > 0 && given < TOKEN_BASE {
            return Err(self.ambiguous(given, &parts));
        }
        if given >= TOKEN_BASE && self.describe_revision(given).is_none() {
            return Err(Error::InvalidTxn(format!(
                "revision {given} is no snapshot of this layered keyspace (a snapshot token \
                 lasts as long as the process that read it)"
            )));
        }
        let token = if given >= TOKEN_BASE {
            given
        } else if parts.len() > 1 || (cuts.is_empty() && given == 0) {
            self.token(vec![0; self.parts.len()])
        } else {
            0
        };
        let mut out = RangeResponse {
            revision: if token != 0 { token } else { given },
            kvs: Vec::new(),
            more: false,
            count: 0,
        };
        // One store read at the latest: its later cuts read at the first one's revision.
        let mut single = given;
        for (span, part) in cuts {
            let revision = if token != 0 {
                self.pinned(token, part).unwrap_or(0)
            } else {
                single
            };
            let full = req.limit > 0 && out.kvs.len() as i64 >= req.limit;
            let sub = RangeRequest {
                span,
                revision,
                limit: if req.limit > 0 {
                    (req.limit - out.kvs.len() as i64).max(1)
                } else {
                    0
                },
                keys_only: req.keys_only,
                // Past the limit only the count is still needed.
                count_only: req.count_only || full,
            };
            let resp = range_in(self.store(part)?, sub)
                .await
                .map_err(|e| self.part_error(part, e))?;
            if token != 0 {
                self.record(token, part, resp.revision);
            } else {
                single = resp.revision;
                out.revision = resp.revision;
            }
            out.count += resp.count;
            if full {
                out.more |= resp.count > 0;
            } else {
                out.more |= resp.more;
                out.kvs.extend(resp.kvs);
            }
        }
        Ok(out)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let part = self.txn_part(&txn)?;
        let pin = |ops: Vec<Op>| -> Vec<Op> {
            ops.into_iter()
                .map(|op| match op {
                    Op::Range(mut r) if r.revision >= TOKEN_BASE => {
                        r.revision = self.pinned(r.revision, part).unwrap_or(0);
                        Op::Range(r)
                    }
                    other => other,
                })
                .collect()
        };
        let txn = Txn {
            compares: txn.compares,
            success: pin(txn.success),
            failure: pin(txn.failure),
        };
        txn_in(self.store(part)?, txn)
            .await
            .map_err(|e| self.part_error(part, e))
    }

    async fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        let cuts = self.cut(&req.span);
        let parts = self.parts_of(&req.span);
        let start = req.start_revision;
        if parts.len() > 1 && start > 0 && start < TOKEN_BASE {
            return Err(self.ambiguous(start, &parts));
        }
        if start >= TOKEN_BASE && self.describe_revision(start).is_none() {
            return Err(Error::InvalidTxn(format!(
                "revision {start} is no snapshot of this layered keyspace (a snapshot token \
                 lasts as long as the process that read it): nothing to watch from"
            )));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        for (span, part) in cuts {
            let start_revision = if start >= TOKEN_BASE {
                self.pinned(start, part).unwrap_or(0)
            } else {
                start
            };
            let req = WatchRequest {
                span,
                start_revision,
            };
            let mut watcher = watch_in(self.store(part)?, req)
                .await
                .map_err(|e| self.part_error(part, e))?;
            let tx = tx.clone();
            let (name, url) = (self.parts[part].name.clone(), self.parts[part].url.clone());
            tokio::spawn(async move {
                while let Some(batch) = watcher.next().await {
                    let failed = batch.is_err();
                    let batch = batch.map_err(|e| layer_error(&name, &url, e));
                    if tx.send(batch).await.is_err() || failed {
                        return;
                    }
                }
            });
        }
        // No layer in the span: a watch that never sees anything, and stays open.
        tokio::spawn(async move {
            tx.closed().await;
        });
        Ok(Watcher::new(rx, "layers", start))
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        match self.parts.as_slice() {
            [_] => compact_in(self.store(0)?, revision).await,
            _ => Err(Error::InvalidTxn(format!(
                "compaction is per store, and the layers of {} are in {}: compact each \
                 store by its name",
                self.file,
                self.store_names().join(", ")
            ))),
        }
    }

    async fn history(&self, key: &[u8]) -> Result<Vec<Event>> {
        let Some(part) = self.segment_of(key).map(|s| s.part) else {
            return Ok(Vec::new());
        };
        history_in(self.store(part)?, key)
            .await
            .map_err(|e| self.part_error(part, e))
    }

    async fn status(&self) -> Result<StoreStatus> {
        let mut revs = Vec::new();
        let mut compacted = Vec::new();
        for i in 0..self.parts.len() {
            let s = status_in(self.store(i)?)
                .await
                .map_err(|e| self.part_error(i, e))?;
            revs.push(s.revision);
            compacted.push(s.compact_revision);
        }
        if let ([revision], [compact_revision]) = (revs.as_slice(), compacted.as_slice()) {
            return Ok(StoreStatus {
                revision: *revision,
                compact_revision: *compact_revision,
            });
        }
        Ok(StoreStatus {
            revision: self.token(revs),
            compact_revision: 0,
        })
    }
}
