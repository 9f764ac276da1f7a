//! Strata's operations on any [`strata_core::Store`]: the flat snapshot format
//! ([`snapshot`]), the batched, resumable loader ([`load`]) and the pruning of an
//! import ([`prune`]), copy and diff between two stores ([`transfer`], keys that expire
//! in the source given leases in the target: `leases`) and the mirror
//! that keeps a target current ([`mirror`]), `ls` and `tree` views ([`listing`]), a
//! key's recent versions by point reads ([`versions`]), the
//! JSON form of a transaction ([`txn_json`]), and the plans that guard destructive
//! commands ([`guard`]: a prefix delete that deletes only the keys it showed, a
//! compaction's reach).
//!
//! This crate owns what is done with stores; the model it works on (keys, the `Store`
//! contract, transactions) is `strata-core`, the backends are `strata-store`. Its
//! errors are [`Error`]: a store's own error, or what an operation adds (a malformed
//! input file, an interrupted run and how far it got, an unverified copy).

#![warn(missing_docs)]

pub mod error;
pub mod guard;
mod leases;
pub mod listing;
pub mod load;
pub mod mirror;
pub mod prune;
pub mod snapshot;
pub mod snapshot_stream;
pub mod transfer;
pub mod txn_json;
pub mod versions;

pub use error::{Error, Result};
