//! Strata's store model: validated key paths and the key rule, the [`Store`] trait
//! with etcd v3 semantics, transactions as values, the revision engine shared by the
//! embedded backends, the in-memory reference backend, the replica that holds a prefix
//! in memory, and (feature `conformance`) the backend conformance suite.
//!
//! This crate owns semantics, not storage and not operations: the real backends live
//! in `strata-store`, what is done with stores (snapshots, loading, copy, mirror) in
//! `strata-ops`.

pub mod base64;
pub mod clock;
pub mod engine;
pub mod error;
pub mod key;
pub mod mem;
pub mod model;
pub mod redact;
pub mod replica;
pub mod store;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{Error, Result};
pub use key::{prefix_end, KeyPath};
pub use mem::MemStore;
pub use model::*;
pub use store::{scan, Store, StoreStatus, Watcher};
