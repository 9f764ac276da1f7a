//! A store wrapper for fault tests: [`Cuttable`] refuses every request while switched
//! off, and ends its open watches on demand, as a lost connection does.
//!
//! Owns nothing else. The mirror, the replica and a service embedding Strata use it
//! to test how their loops ride out an unreachable store, with any backend inside.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::error::{Error, Result};
use crate::model::*;
use crate::store::{Store, StoreStatus, Watcher};

/// `inner`, with a switch: while off, every request fails as
/// [`Error::Unavailable`] (outcome known: nothing was applied); [`Cuttable::cut`] ends
/// every open watch with [`Error::WatchClosed`]. Write to `inner` directly to change
/// the store while the wrapper is off.
#[derive(Clone, Debug)]
pub struct Cuttable<S> {
    /// The store itself, for the test to write to whatever the switch says.
    pub inner: S,
    down: Arc<AtomicBool>,
    cuts: Arc<watch::Sender<u64>>,
}

impl<S: Store> Cuttable<S> {
    /// `inner` behind a switch that is on, with no watch cut.
    pub fn new(inner: S) -> Self {
        Cuttable {
            inner,
            down: Default::default(),
            cuts: Arc::new(watch::channel(0).0),
        }
    }

    /// Switches every request off (`true`) or on again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Ends every open watch with an error, as a lost connection does.
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }

    /// How many clones of this wrapper are alive (a task that holds one counts): for
    /// tests that check a background task let go of its store.
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.down)
    }

    fn check(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::Unavailable {
                backend: "test".into(),
                operation: "a request".into(),
                outcome_unknown: false,
                source: "switched off by the test".into(),
            });
        }
        Ok(())
    }
}

impl<S: Store + Clone + 'static> Store for Cuttable<S> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        self.check()?;
        self.inner.range(req).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.check()?;
        self.inner.txn(txn).await
    }
    async fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        self.check()?;
        let start = req.start_revision;
        let mut inner = self.inner.watch(req).await?;
        let mut cut = self.cuts.subscribe();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    batch = inner.next() => match batch {
                        Some(batch) => if tx.send(batch).await.is_err() { return },
                        None => return,
                    },
                    _ = cut.changed() => {
                        let lost = Error::WatchClosed {
                            backend: "test".into(),
                            reason: "cut by the test".into(),
                        };
                        let _ = tx.send(Err(lost)).await;
                        return;
                    }
                }
            }
        });
        Ok(Watcher::new(rx, "test", start))
    }
    async fn compact(&self, revision: i64) -> Result<()> {
        self.check()?;
        self.inner.compact(revision).await
    }
    async fn history(&self, key: &[u8]) -> Result<Vec<Event>> {
        self.check()?;
        self.inner.history(key).await
    }
    async fn status(&self) -> Result<StoreStatus> {
        self.check()?;
        self.inner.status().await
    }
}
