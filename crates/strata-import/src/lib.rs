//! Strata's importers: turn what data looks like where it lives today into the flat
//! snapshot (`key → value`, sorted) that the loader writes into a store.
//!
//! This slice reads dumps whose keys are kept as they are: an etcd v2 recursive dump,
//! `etcdctl get -w json` output, a Consul `kv export`, and Strata's own snapshot. The
//! JSON file-tree source and the mapping language come next (see the README).

pub use strata_core::base64;
pub mod dumps;
pub mod jq;
pub mod mapping;

pub use dumps::{read_dump, DumpFormat, ImportError};
