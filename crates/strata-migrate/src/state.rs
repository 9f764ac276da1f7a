//! What the store records about migrations, under `/_strata/migrations/<area>/`:
//! `applied/<version>` (one record per applied migration), `progress` (the migration
//! under way: step and last object done) and `lock`.
//!
//! Owns the key layout and the record formats (JSON, so `strata get` shows them) and
//! reading an area's state in one consistent read. Writing them is the runner's job,
//! always inside the transaction whose work they describe.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_core::{KeySpan, Op, OpResponse, Store, Txn};

use crate::lock::LockRecord;
use crate::Error;

/// Where migration state lives: `/_strata/migrations/`, inside the reserved prefix,
/// which export, copy and schema checks leave alone.
pub fn state_prefix() -> String {
    strata_core::key::reserved_key("migrations/")
}

pub fn area_prefix(area: &str) -> String {
    format!("{}{area}/", state_prefix())
}

pub fn lock_key(area: &str) -> String {
    format!("{}{area}/lock", state_prefix())
}

pub fn progress_key(area: &str) -> String {
    format!("{}{area}/progress", state_prefix())
}

pub fn applied_key(area: &str, version: u64) -> String {
    format!("{}{area}/applied/{version:010}", state_prefix())
}

/// One applied migration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub version: u64,
    pub name: String,
    pub checksum: String,
    pub applied_at: String,
    pub applied_by: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// The migration under way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InProgress {
    pub version: u64,
    pub name: String,
    pub checksum: String,
    /// The step under way (0-based).
    pub step: usize,
    /// The last object of that step done; none before the first.
    pub cursor: Option<String>,
    pub started_at: String,
    pub by: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// What a migration did, kept exact across interruptions: each count is written in the
/// transaction that did the work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Objects rewritten.
    pub objects: u64,
    pub puts: u64,
    pub deletes: u64,
    /// Objects read again because an application changed them mid-way.
    pub retries: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.objects += other.objects;
        self.puts += other.puts;
        self.deletes += other.deletes;
        self.retries += other.retries;
    }
}

/// An area's recorded state.
#[derive(Clone, Debug, Default)]
pub struct AreaState {
    pub applied: BTreeMap<u64, Applied>,
    pub progress: Option<InProgress>,
    pub lock: Option<LockRecord>,
}

impl AreaState {
    /// The highest applied version, 0 when none.
    pub fn current(&self) -> u64 {
        self.applied.keys().next_back().copied().unwrap_or(0)
    }
}

fn parse<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(value).map_err(|e| Error::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

/// Reads an area's state in one read.
pub async fn read<S: Store>(store: &S, area: &str) -> Result<AreaState, Error> {
    let prefix = area_prefix(area);
    let resp = store
        .txn(Txn::new().and_then([Op::get(KeySpan::prefix(prefix.as_bytes()))]))
        .await
        .map_err(|e| Error::store(format!("reading the migration state of area {area}"), e))?;
    let mut state = AreaState::default();
    let Some(OpResponse::Range(range)) = resp.responses.into_iter().next() else {
        return Ok(state);
    };
    for kv in range.kvs {
        let rest = &kv.key[prefix.len()..];
        if rest == b"lock" {
            state.lock = Some(parse(&kv.key, &kv.value)?);
        } else if rest == b"progress" {
            state.progress = Some(parse(&kv.key, &kv.value)?);
        } else if rest.starts_with(b"applied/") {
            let applied: Applied = parse(&kv.key, &kv.value)?;
            state.applied.insert(applied.version, applied);
        }
    }
    Ok(state)
}

/// The areas that have state in the store.
pub async fn stored_areas<S: Store>(store: &S) -> Result<Vec<String>, Error> {
    let mut areas: Vec<String> = Vec::new();
    let prefix = state_prefix();
    let span = KeySpan::prefix(prefix.as_bytes());
    strata_core::scan(store, span, 0, |kvs| {
        for kv in kvs {
            let rest = String::from_utf8_lossy(&kv.key[prefix.len()..]).into_owned();
            if let Some((area, _)) = rest.split_once('/') {
                if areas.last().map(String::as_str) != Some(area) {
                    areas.push(area.to_owned());
                }
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::store("listing migration areas", e))?;
    areas.dedup();
    Ok(areas)
}
