//! Strata's store model: validated key paths and the key rule, the [`Store`] trait
//! with etcd v3 semantics, transactions as values, the revision engine shared by the
//! embedded backends, the in-memory reference backend, the replica that holds a prefix
//! in memory, and (feature `conformance`) the backend conformance suite.
//!
//! ```
//! use strata_core::{
//!     scan, Compare, CompareOp, EventKind, KeyPath, KeySpan, MemStore, Op, Store, Txn,
//!     WatchRequest,
//! };
//!
//! # fn main() -> strata_core::Result<()> {
//! let runtime = tokio::runtime::Builder::new_current_thread()
//!     .enable_all()
//!     .build()
//!     .expect("a tokio runtime");
//! runtime.block_on(async {
//!     let store = MemStore::new();
//!     // One object, several keys; a segment from data is escaped (`/` becomes `%2F`).
//!     let user = KeyPath::from_segments(["users", "ada/1"]);
//!     let fields = [("name", "Ada"), ("email", "ada@example.org")];
//!
//!     // Create the object in one transaction, only if none of its keys exists yet.
//!     let create = Txn::new()
//!         .when(fields.iter().map(|(f, _)| Compare::absent(user.join(f).as_str())))
//!         .and_then(fields.iter().map(|(f, v)| Op::put(user.join(f).as_str(), *v)));
//!     let created = store.txn(create.clone()).await?;
//!     assert!(created.succeeded);
//!     // A second try finds the keys there: no error, nothing written, same revision.
//!     let again = store.txn(create).await?;
//!     assert!(!again.succeeded && again.revision == created.revision);
//!
//!     // Compare-and-delete: delete the e-mail only if it is still at version 1.
//!     let email = user.join("email");
//!     let delete = Txn::new()
//!         .when([Compare::version(email.as_str(), CompareOp::Equal, 1)])
//!         .and_then([Op::delete(KeySpan::key(email.as_str()))]);
//!     assert!(store.txn(delete).await?.succeeded);
//!
//!     // Scan a prefix: pages in key order, all read at one revision.
//!     let mut keys = Vec::new();
//!     scan(&store, KeySpan::prefix(user.subtree_prefix()), 0, |page| {
//!         keys.extend(page.into_iter().map(|kv| kv.key));
//!         Ok(())
//!     })
//!     .await?;
//!     assert_eq!(keys, [b"/users/ada%2F1/name".to_vec()]);
//!
//!     // Watch from a past revision: the history since then comes first, one batch per
//!     // revision, then live changes.
//!     let mut watcher = store
//!         .watch(WatchRequest {
//!             span: KeySpan::prefix("/users/"),
//!             start_revision: created.revision,
//!         })
//!         .await?;
//!     let batch = watcher.next().await.unwrap()?;
//!     assert_eq!(batch.len(), 2); // the two puts of the create
//!     let batch = watcher.next().await.unwrap()?;
//!     assert_eq!(batch[0].kind, EventKind::Delete);
//!     assert_eq!(batch[0].kv.key, email.as_bytes());
//!     Ok(())
//! })
//! # }
//! ```
//!
//! This crate owns semantics, not storage and not operations: the real backends live
//! in `strata-store`, what is done with stores (snapshots, loading, copy, mirror) in
//! `strata-ops`.

#![warn(missing_docs)]

pub mod base64;
pub mod clock;
pub mod engine;
pub mod error;
pub mod fault;
pub mod hex;
pub mod key;
pub mod mem;
pub mod model;
pub mod redact;
pub mod replica;
pub mod store;

// The cases are named for what they check; each is one backend test.
#[cfg(feature = "conformance")]
#[allow(missing_docs)]
pub mod conformance;

pub use error::{Error, Result};
pub use key::{prefix_end, KeyPath};
pub use mem::MemStore;
pub use model::*;
pub use store::{scan, Store, StoreStatus, Watcher};
