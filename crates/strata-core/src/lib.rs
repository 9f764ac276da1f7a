//! Strata's store model: validated key paths, the [`Store`] trait with etcd v3
//! semantics, transactions as values, the revision engine shared by the embedded
//! backends, the in-memory reference backend, the flat snapshot format and the batched
//! loader, and (feature `conformance`) the backend conformance suite.
//!
//! This crate owns semantics, not storage: the real backends live in `strata-store`.

pub mod base64;
pub mod clock;
pub mod engine;
pub mod error;
pub mod key;
pub mod listing;
pub mod load;
pub mod mem;
pub mod mirror;
pub mod model;
pub mod redact;
pub mod snapshot;
pub mod store;
pub mod transfer;
pub mod txn_json;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{Error, Result};
pub use key::{prefix_end, KeyPath};
pub use mem::MemStore;
pub use model::*;
pub use store::{scan, Store, StoreStatus, Watcher};
