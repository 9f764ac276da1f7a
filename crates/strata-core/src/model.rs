//! The data model every backend implements: key-values with etcd v3 revision
//! metadata, key spans, range requests, compares, transactions and watch events.
//!
//! Owns the values and their validation (op limits, overlapping writes); does not own
//! how a backend stores or evaluates them (see [`crate::engine`] and the backends).

use crate::error::{Error, Result};
use crate::key::{display_key, prefix_end};

/// One key with its value and etcd v3 metadata.
///
/// - `create_revision`: the revision of the put that created this generation of the key;
/// - `mod_revision`: the revision of the last put;
/// - `version`: 1 after creation, +1 per put; a delete ends the generation and the next
///   put starts again at 1.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value; empty in a `keys_only` read.
    pub value: Vec<u8>,
    /// The revision of the put that created this generation of the key.
    pub create_revision: i64,
    /// The revision of the last put (of the delete, in a delete [`Event`]).
    pub mod_revision: i64,
    /// Puts since creation: 1 after the first.
    pub version: i64,
}

/// Which keys an operation covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySpan {
    /// Exactly one key.
    Key(Vec<u8>),
    /// Every key that starts with these bytes; the empty prefix is every key.
    Prefix(Vec<u8>),
    /// `[start, end)`; `end = None` means no upper bound.
    Range {
        /// The first key of the range (included).
        start: Vec<u8>,
        /// The end of the range (excluded); `None` for no upper bound.
        end: Option<Vec<u8>>,
    },
}

impl KeySpan {
    /// Exactly `key`.
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        KeySpan::Key(key.into())
    }

    /// Every key that starts with `prefix` (bytewise: `/a/` does not cover `/a`).
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        KeySpan::Prefix(prefix.into())
    }

    /// Every key of the store.
    pub fn all() -> Self {
        KeySpan::Prefix(Vec::new())
    }

    /// `[start, end)` with `end = None` for unbounded. A single key `k` is
    /// `[k, k\0)`.
    pub fn bounds(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        match self {
            KeySpan::Key(key) => {
                let mut end = key.clone();
                end.push(0);
                (key.clone(), Some(end))
            }
            KeySpan::Prefix(prefix) => (prefix.clone(), prefix_end(prefix)),
            KeySpan::Range { start, end } => (start.clone(), end.clone()),
        }
    }

    /// Whether `key` lies in the span.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeySpan::Key(k) => k == key,
            KeySpan::Prefix(p) => key.starts_with(p),
            KeySpan::Range { start, end } => {
                key >= start.as_slice() && end.as_deref().is_none_or(|e| key < e)
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            KeySpan::Key(k) => display_key(k),
            KeySpan::Prefix(p) => format!("prefix {}", display_key(p)),
            KeySpan::Range { start, end } => format!(
                "range [{}, {})",
                display_key(start),
                end.as_deref()
                    .map(display_key)
                    .unwrap_or_else(|| "end".into())
            ),
        }
    }
}

/// A range read. `revision = 0` reads the latest revision; `limit = 0` means no limit.
/// Results are sorted by key, ascending bytewise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeRequest {
    /// The keys to read.
    pub span: KeySpan,
    /// The revision to read at; 0 (or less) reads the latest. Below the compaction
    /// point the read fails with [`Error::Compacted`], above the current revision with
    /// [`Error::FutureRevision`].
    pub revision: i64,
    /// The most keys to return, the first ones in key order; 0 (or less) means no
    /// limit.
    pub limit: i64,
    /// Return keys and their metadata with empty values.
    pub keys_only: bool,
    /// Return only [`RangeResponse::count`], no key-values.
    pub count_only: bool,
}

impl RangeRequest {
    /// A read of `span` at the latest revision, without a limit, keys and values.
    pub fn new(span: KeySpan) -> Self {
        RangeRequest {
            span,
            revision: 0,
            limit: 0,
            keys_only: false,
            count_only: false,
        }
    }

    /// Reads at `revision` (0: the latest).
    pub fn at_revision(mut self, revision: i64) -> Self {
        self.revision = revision;
        self
    }

    /// Returns at most `limit` keys (0: no limit).
    pub fn with_limit(mut self, limit: i64) -> Self {
        self.limit = limit;
        self
    }

    /// Sets `keys_only`: keys and metadata, with empty values.
    pub fn keys_only(mut self) -> Self {
        self.keys_only = true;
        self
    }

    /// Sets `count_only`: the number of keys, no key-values.
    pub fn count_only(mut self) -> Self {
        self.count_only = true;
        self
    }
}

/// The answer to a range read.
///
/// `count` is the number of keys in the span when `limit` is 0 or `count_only` is set;
/// with a limit it is at least `kvs.len()` (etcd gives the exact total; the SQL backends
/// do not pay for a full count on every page). `more` is exact in every case.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RangeResponse {
    /// The store revision the read was served at: the requested revision, or the
    /// current one for a read of the latest.
    pub revision: i64,
    /// The keys read, sorted by key; empty when nothing matched (or `count_only`).
    pub kvs: Vec<KeyValue>,
    /// Whether the span holds keys after the last of `kvs` (the limit cut the answer).
    pub more: bool,
    /// The number of keys in the span (see above for reads with a limit).
    pub count: i64,
}

/// What a compare looks at, and the value it is compared with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    /// The key's value, bytewise; any compare of a missing key's value is false.
    Value(Vec<u8>),
    /// The key's version (0 for a missing key).
    Version(i64),
    /// The key's `create_revision` (0 for a missing key).
    CreateRevision(i64),
    /// The key's `mod_revision` (0 for a missing key).
    ModRevision(i64),
}

/// How a compare relates the key's current state to the target: `current OP target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// `current == target`.
    Equal,
    /// `current != target`.
    NotEqual,
    /// `current > target`.
    Greater,
    /// `current < target`.
    Less,
}

/// One compare of a transaction, on one key, with etcd's semantics: a missing key has
/// version, create and mod revision 0, and any compare of its *value* is false.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The key compared (one key, not a span).
    pub key: Vec<u8>,
    /// How the key's state must relate to the target.
    pub op: CompareOp,
    /// What is compared, and with what.
    pub target: CompareTarget,
}

impl Compare {
    /// `key`'s `target` field compared by `op`.
    pub fn new(key: impl Into<Vec<u8>>, op: CompareOp, target: CompareTarget) -> Self {
        Compare {
            key: key.into(),
            op,
            target,
        }
    }

    /// The key does not exist (version = 0).
    pub fn absent(key: impl Into<Vec<u8>>) -> Self {
        Self::new(key, CompareOp::Equal, CompareTarget::Version(0))
    }

    /// A compare of the key's version: with [`CompareOp::Equal`], the expected-version
    /// check of a compare-and-swap or compare-and-delete.
    pub fn version(key: impl Into<Vec<u8>>, op: CompareOp, version: i64) -> Self {
        Self::new(key, op, CompareTarget::Version(version))
    }

    /// A compare of the key's value (false for a missing key, whatever `op`).
    pub fn value(key: impl Into<Vec<u8>>, op: CompareOp, value: impl Into<Vec<u8>>) -> Self {
        Self::new(key, op, CompareTarget::Value(value.into()))
    }

    /// A compare of the key's `mod_revision`: with [`CompareOp::Equal`], "unchanged
    /// since I read it at that revision".
    pub fn mod_revision(key: impl Into<Vec<u8>>, op: CompareOp, revision: i64) -> Self {
        Self::new(key, op, CompareTarget::ModRevision(revision))
    }

    /// A compare of the key's `create_revision` (which generation of the key it is).
    pub fn create_revision(key: impl Into<Vec<u8>>, op: CompareOp, revision: i64) -> Self {
        Self::new(key, op, CompareTarget::CreateRevision(revision))
    }

    /// Evaluates the compare against the key's current state (`None` = missing).
    pub fn evaluate(&self, current: Option<&KeyValue>) -> bool {
        use std::cmp::Ordering;
        let ordering: Ordering = match (&self.target, current) {
            (CompareTarget::Value(_), None) => return false,
            (CompareTarget::Value(v), Some(kv)) => kv.value.as_slice().cmp(v.as_slice()),
            (CompareTarget::Version(n), kv) => kv.map_or(0, |kv| kv.version).cmp(n),
            (CompareTarget::CreateRevision(n), kv) => kv.map_or(0, |kv| kv.create_revision).cmp(n),
            (CompareTarget::ModRevision(n), kv) => kv.map_or(0, |kv| kv.mod_revision).cmp(n),
        };
        match self.op {
            CompareOp::Equal => ordering == Ordering::Equal,
            CompareOp::NotEqual => ordering != Ordering::Equal,
            CompareOp::Greater => ordering == Ordering::Greater,
            CompareOp::Less => ordering == Ordering::Less,
        }
    }
}

/// One operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Writes `value` at `key`: creates the key (version 1) or adds a version.
    Put {
        /// The key written; must pass [`check_key`].
        key: Vec<u8>,
        /// The value; at most [`Capabilities::max_value_bytes`].
        value: Vec<u8>,
        /// Return the key's state before the put in [`OpResponse::Put`].
        prev_kv: bool,
        /// The lease the key is attached to (0: none): the key is deleted when the
        /// lease expires. Only on backends whose [`Capabilities::leases`] is true.
        lease: i64,
    },
    /// Deletes every key in `span`; a span with no keys deletes nothing, which is not
    /// an error.
    Delete {
        /// The keys deleted.
        span: KeySpan,
        /// Return the deleted key-values in [`OpResponse::Delete`].
        prev_kv: bool,
    },
    /// A read; without a revision it sees the writes of earlier ops of the same
    /// transaction.
    Range(RangeRequest),
}

impl Op {
    /// A put of `key` = `value`, without a lease and without the previous value.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
            prev_kv: false,
            lease: 0,
        }
    }

    /// A put whose key lives only as long as `lease` (see [`crate::Store::lease_grant`]).
    pub fn put_with_lease(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, lease: i64) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
            prev_kv: false,
            lease,
        }
    }

    /// A delete of every key in `span`, without the deleted values.
    pub fn delete(span: KeySpan) -> Self {
        Op::Delete {
            span,
            prev_kv: false,
        }
    }

    /// A read of `span` at the latest revision.
    pub fn get(span: KeySpan) -> Self {
        Op::Range(RangeRequest::new(span))
    }
}

/// A transaction: if every compare holds, run `success`, else run `failure`. Atomic:
/// all its writes share one new revision, and a transaction that writes nothing does
/// not advance the revision.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Txn {
    /// Evaluated first, against the latest state; all must hold for `success` to run
    /// (no compares always holds).
    pub compares: Vec<Compare>,
    /// Run in order when every compare holds.
    pub success: Vec<Op>,
    /// Run in order when a compare does not hold.
    pub failure: Vec<Op>,
}

impl Txn {
    /// An empty transaction: no compares, no ops.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds compares; all must hold.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compares.extend(compares);
        self
    }

    /// Adds ops to the `success` branch.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.success.extend(ops);
        self
    }

    /// Adds ops to the `failure` branch.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.failure.extend(ops);
        self
    }

    /// The number of operations that count against a backend's `max_txn_ops`
    /// (etcd counts compares, success ops and failure ops separately against the
    /// limit; the largest of the three must fit).
    pub fn op_count(&self) -> usize {
        self.compares
            .len()
            .max(self.success.len())
            .max(self.failure.len())
    }

    /// Checks what etcd checks before running a transaction: the op limit, value
    /// sizes, and that no key is written twice (two puts of one key, or a put inside a
    /// deleted range) in one branch.
    pub fn validate(&self, caps: &Capabilities) -> Result<()> {
        if self.op_count() > caps.max_txn_ops {
            return Err(Error::TooManyOps {
                backend: caps.backend.to_owned(),
                ops: self.op_count(),
                limit: caps.max_txn_ops,
            });
        }
        for ops in [&self.success, &self.failure] {
            validate_branch(ops, caps)?;
            let bytes: usize = ops
                .iter()
                .map(|op| match op {
                    Op::Put { key, value, .. } => key.len() + value.len(),
                    _ => 0,
                })
                .sum();
            if bytes > caps.max_request_bytes {
                return Err(Error::InvalidTxn(format!(
                    "the transaction writes {bytes} bytes but {} accepts at most {} per request; \
                     split it into smaller transactions",
                    caps.backend, caps.max_request_bytes
                )));
            }
        }
        Ok(())
    }
}

/// The longest key any backend accepts, in bytes. One rule for every backend, so a
/// copy between two can never stop half-way on a key: PostgreSQL indexes a key (with
/// its revision) in a B-tree whose entries must stay under 2,704 bytes; SQLite and etcd
/// take longer keys, but refuse them here too.
pub const MAX_KEY_BYTES: usize = 2048;

/// The key rule of every backend: not empty, at most [`MAX_KEY_BYTES`] bytes. Checked
/// before anything is written; the error shows the key (cut, if long) and the limit.
pub fn check_key(key: &[u8]) -> Result<()> {
    let reason = if key.is_empty() {
        "the empty key is not a key; every key has at least one byte (by convention a /path)"
            .to_owned()
    } else if key.len() > MAX_KEY_BYTES {
        format!(
            "it is {} bytes long and keys are at most {MAX_KEY_BYTES} bytes on every backend; \
             shorten it (hash a long part, or keep it in the value)",
            key.len()
        )
    } else {
        return Ok(());
    };
    Err(Error::KeyNotAccepted {
        key: key_excerpt(key),
        reason,
    })
}

/// A key for a message: whole if short, else its first 64 characters and its length.
pub fn key_excerpt(key: &[u8]) -> String {
    if key.is_empty() {
        return "\"\"".to_owned();
    }
    let shown = display_key(key);
    if shown.chars().count() <= 80 {
        return shown;
    }
    let cut: String = shown.chars().take(64).collect();
    format!("{cut}… ({} bytes)", key.len())
}

/// Whether one put of `key` = `value` fits the backend at all (the key rule, the value
/// and request limits): what a writer checks for every entry before its first write, so
/// that a limit stops it before anything is written, never half-way.
pub fn check_put(key: &[u8], value: &[u8], caps: &Capabilities) -> Result<()> {
    check_key(key)?;
    let limit = caps
        .max_value_bytes
        .min(caps.max_request_bytes.saturating_sub(key.len()));
    if value.len() > limit {
        return Err(Error::ValueTooLarge {
            backend: caps.backend.to_owned(),
            key: key.to_vec(),
            size: value.len(),
            limit,
        });
    }
    Ok(())
}

fn validate_branch(ops: &[Op], caps: &Capabilities) -> Result<()> {
    let mut puts: Vec<&[u8]> = Vec::new();
    let mut deletes: Vec<&KeySpan> = Vec::new();
    for op in ops {
        match op {
            Op::Put {
                key, value, lease, ..
            } => {
                if *lease != 0 && !caps.leases {
                    return Err(Error::InvalidTxn(format!(
                        "{} has no leases: key {} cannot be attached to lease {lease}",
                        caps.backend,
                        String::from_utf8_lossy(key)
                    )));
                }
                check_key(key)?;
                if value.len() > caps.max_value_bytes {
                    return Err(Error::ValueTooLarge {
                        backend: caps.backend.to_owned(),
                        key: key.clone(),
                        size: value.len(),
                        limit: caps.max_value_bytes,
                    });
                }
                puts.push(key);
            }
            Op::Delete { span, .. } => deletes.push(span),
            Op::Range(_) => {}
        }
    }
    let mut sorted = puts.clone();
    sorted.sort();
    if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::InvalidTxn(format!(
            "key {} is put twice in one transaction; put it once",
            display_key(pair[0])
        )));
    }
    for key in puts {
        if let Some(span) = deletes.iter().find(|d| d.contains(key)) {
            return Err(Error::InvalidTxn(format!(
                "key {} is put and deleted ({}) in one transaction; do one or the other",
                display_key(key),
                span.describe()
            )));
        }
    }
    // Overlapping deletes are allowed, as in etcd: only puts must be unique.
    Ok(())
}

/// The answer to one op of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResponse {
    /// The answer to an [`Op::Put`].
    Put {
        /// The key before the put: `None` unless the op asked for it (`prev_kv`) and
        /// the key existed.
        prev_kv: Option<KeyValue>,
    },
    /// The answer to an [`Op::Delete`].
    Delete {
        /// How many keys were deleted (0 when none existed).
        deleted: i64,
        /// The deleted key-values when the op asked for them (`prev_kv`), else empty.
        prev_kvs: Vec<KeyValue>,
    },
    /// The answer to an [`Op::Range`]; a read of the latest state reports the
    /// transaction's revision.
    Range(RangeResponse),
}

/// The answer to a [`Txn`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TxnResponse {
    /// The store revision after the transaction (the new one if it wrote anything).
    pub revision: i64,
    /// Whether the compares held (and `success` ran).
    pub succeeded: bool,
    /// One answer per op of the branch that ran, in order.
    pub responses: Vec<OpResponse>,
}

/// What a change did to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was written (created or updated).
    Put,
    /// The key was deleted.
    Delete,
}

/// One change. For a delete, `kv` holds the key and `mod_revision` = the revision of
/// the delete; its other fields are zero (as etcd reports it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// A put or a delete.
    pub kind: EventKind,
    /// The key's state after the change (for a delete, see above).
    pub kv: KeyValue,
}

impl Event {
    /// The revision of the change (`kv.mod_revision`).
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }
}

/// Start a watch on `span`. `start_revision = 0` means "changes after now".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchRequest {
    /// The keys watched.
    pub span: KeySpan,
    /// The first revision delivered: a past revision replays the history held since
    /// then (it must not be below the compaction point); 0 delivers the changes after
    /// the current revision.
    pub start_revision: i64,
}

/// What a backend supports; writers size their batches from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Short backend name for messages: `sqlite`, `etcd`, `postgres`, `mem`.
    pub backend: &'static str,
    /// The most operations one transaction may hold (etcd's default is 128).
    pub max_txn_ops: usize,
    /// The largest value one put may carry.
    pub max_value_bytes: usize,
    /// The largest request (sum of keys and values of one transaction's puts).
    pub max_request_bytes: usize,
    /// The largest page a range read should ask for, to keep messages bounded.
    pub range_page_size: i64,
    /// How many write transactions a batched writer keeps in flight at once.
    pub max_in_flight: usize,
    /// Whether keys can be attached to leases that expire (etcd only).
    pub leases: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> Capabilities {
        Capabilities {
            backend: "test",
            max_txn_ops: 3,
            max_value_bytes: 4,
            max_request_bytes: 10,
            range_page_size: 10,
            max_in_flight: 1,
            leases: false,
        }
    }

    #[test]
    fn validate_names_the_problem() {
        let txn = Txn::new().and_then([Op::put("/a", "1"), Op::put("/a", "2")]);
        assert!(txn
            .validate(&caps())
            .unwrap_err()
            .to_string()
            .contains("/a is put twice"));
        let txn = Txn::new().and_then([Op::delete(KeySpan::prefix("/d/")), Op::put("/d/x", "2")]);
        assert!(txn
            .validate(&caps())
            .unwrap_err()
            .to_string()
            .contains("prefix /d/"));
        let txn = Txn::new().and_then([Op::put("/big", "12345")]);
        assert!(matches!(
            txn.validate(&caps()),
            Err(Error::ValueTooLarge { size: 5, .. })
        ));
        let txn = Txn::new().and_then((0..4).map(|i| Op::put(format!("/k{i}"), "v")));
        assert!(matches!(
            txn.validate(&caps()),
            Err(Error::TooManyOps {
                ops: 4,
                limit: 3,
                ..
            })
        ));
        // The same key in both branches is fine: only one branch runs.
        let txn = Txn::new()
            .and_then([Op::put("/a", "1")])
            .or_else([Op::put("/a", "2")]);
        txn.validate(&caps()).unwrap();
    }

    #[test]
    fn compares_on_missing_keys_follow_etcd() {
        assert!(Compare::absent("/x").evaluate(None));
        assert!(!Compare::value("/x", CompareOp::NotEqual, "v").evaluate(None));
        assert!(Compare::mod_revision("/x", CompareOp::Less, 1).evaluate(None));
        let kv = KeyValue {
            key: b"/x".to_vec(),
            value: b"b".to_vec(),
            create_revision: 2,
            mod_revision: 5,
            version: 3,
        };
        assert!(Compare::value("/x", CompareOp::Greater, "a").evaluate(Some(&kv)));
        assert!(Compare::version("/x", CompareOp::Equal, 3).evaluate(Some(&kv)));
        assert!(!Compare::absent("/x").evaluate(Some(&kv)));
    }

    #[test]
    fn span_bounds() {
        assert_eq!(
            KeySpan::key("a").bounds(),
            (b"a".to_vec(), Some(b"a\0".to_vec()))
        );
        assert_eq!(KeySpan::all().bounds(), (vec![], None));
        assert!(KeySpan::prefix("/a/").contains(b"/a/b"));
        assert!(!KeySpan::prefix("/a/").contains(b"/a"));
    }
}
