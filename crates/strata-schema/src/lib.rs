//! Strata's schema: which keys exist, as typed entities over key patterns
//! (`/sigilgate/users/{id}`), with typed fields, required fields, secrets and
//! references; parsed from TOML and checked against a live store.
//!
//! Owns the schema file ([`schema`]), checking a store against it ([`mod@check`]), the
//! object codec that reads and writes an entity's objects whole ([`object`]), the
//! rendered documentation ([`doc`]), inference of a draft schema from a live keyspace
//! ([`infer`]), reference queries ([`refs`]) and the members `secret_paths` name
//! inside a JSON document ([`secret_paths`]).

pub mod check;
pub mod doc;
pub mod infer;
pub mod object;
pub mod refs;
pub mod schema;
pub mod secret_paths;

pub use check::{check, Violation, ViolationKind};
pub use schema::{Entity, Field, FieldType, KeyClass, Schema, SchemaError, SegmentType};
