//! Strata's importers: turn what data looks like where it lives today into the flat
//! snapshot (`key → value`, sorted) that the loader writes into a store.
//!
//! Two kinds of source: dumps whose keys are kept as they are ([`dumps`]: an etcd v2
//! recursive dump, `etcdctl get -w json` output, a Consul `kv export`, Strata's own
//! snapshot), and a JSON file tree reshaped by a declarative mapping ([`mapping`]),
//! whose expressions run in `strata_jq`, bounded. [`json_events`] reads JSON of any depth.
//! [`run`] is the import itself as a library call: prepare (read, transform, check
//! against a schema), then plan or write.

pub use strata_core::base64;
pub mod dumps;
pub mod json_events;
pub mod mapping;
pub mod run;

pub use dumps::{read_dump, DumpFormat, ImportError};
pub use run::{ImportPlan, ImportReport, ImportRequest, Prepared, RunError, Source};
