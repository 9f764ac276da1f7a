//! Strata's schema: which keys exist, as typed entities over key patterns
//! (`/sigilgate/users/{id}`), with typed fields, required fields, secrets and
//! references; parsed from TOML and checked against a live store.
//!
//! This slice owns the schema file and `check`; the object codec, documentation,
//! inference and reference queries come next.

pub mod check;
pub mod doc;
pub mod infer;
pub mod object;
pub mod refs;
pub mod schema;

pub use check::{check, Violation, ViolationKind};
pub use schema::{Entity, Field, FieldType, KeyClass, Schema, SchemaError, SegmentType};
