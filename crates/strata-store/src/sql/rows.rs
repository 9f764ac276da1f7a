//! Decoding the layout's rows, written once for both drivers: a row of the current
//! table (or of the log read as one) as a key-value, a log row as an event. Each
//! backend implements [`SqlRow`] for its driver's row type.

use strata_core::{Event, EventKind, KeyValue};

/// A result row, as the decoders below read it; each backend implements it for its
/// driver's row.
pub(crate) trait SqlRow {
    type Error;
    /// A bytes column that may be NULL.
    fn bytes(&self, column: usize) -> std::result::Result<Option<Vec<u8>>, Self::Error>;
    /// A 64-bit integer column.
    fn int(&self, column: usize) -> std::result::Result<i64, Self::Error>;
}

/// A row of `key, value, create_revision, mod_revision, version` (a current row, or a
/// log row read as one); a NULL value (a keys-only read) decodes as empty.
pub(crate) fn kv<R: SqlRow + ?Sized>(row: &R) -> std::result::Result<KeyValue, R::Error> {
    Ok(KeyValue {
        key: row.bytes(0)?.unwrap_or_default(),
        value: row.bytes(1)?.unwrap_or_default(),
        create_revision: row.int(2)?,
        mod_revision: row.int(3)?,
        version: row.int(4)?,
    })
}

/// A log row (`revision, seq, key, value, create_revision, version`) as an event: a
/// NULL value is a delete.
pub(crate) fn event<R: SqlRow + ?Sized>(row: &R) -> std::result::Result<Event, R::Error> {
    let value = row.bytes(3)?;
    Ok(Event {
        kind: if value.is_some() {
            EventKind::Put
        } else {
            EventKind::Delete
        },
        kv: KeyValue {
            key: row.bytes(2)?.unwrap_or_default(),
            value: value.unwrap_or_default(),
            create_revision: row.int(4)?,
            mod_revision: row.int(0)?,
            version: row.int(5)?,
        },
    })
}
