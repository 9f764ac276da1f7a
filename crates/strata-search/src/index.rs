//! The index on disk: a tantivy index of the store's documents (`doc.rs`) in a folder
//! that says which store and schema it was made for and at which store revision it
//! is, brought up to date before each query by replaying the store's watch from that
//! revision. Owns opening (and refusing or rebuilding what cannot be trusted),
//! building and committing; catching up is `catchup.rs`, queries `search.rs`.
//!
//! The folder holds `strata-search.json` (the format, the store's URL without
//! credentials, the schema's digest) and `tantivy/`. Each commit records the store
//! revision it reflects (the commit payload). A folder made for another store or
//! schema, by another format, or unreadable is rebuilt, saying why; a folder that
//! holds anything else is refused. A revision the store no longer replays
//! (compacted), or one beyond the store's own (the store was replaced), rebuilds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strata_core::model::KeySpan;
use strata_core::store::{scan, Store};
use strata_schema::Schema;
use tantivy::directory::MmapDirectory;
use tantivy::schema::{
    Field, IndexRecordOption, JsonObjectOptions, Schema as TantivySchema, TextFieldIndexing,
    TextOptions, STORED, STRING,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument};

use crate::doc::{self, Doc, Owner};
use crate::query::Fields;
use crate::tokenize::{analyzer, ANALYZER};
use crate::{Error, Result};

/// The layout of the folder and its documents; a folder of another is rebuilt.
const FORMAT: u32 = 1;
const MARKER: &str = "strata-search.json";

/// What an index is for: it is used only for the same store and schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub format: u32,
    /// The store URL, without credentials.
    pub store: String,
    /// The schema's digest (`none` without one).
    pub schema: String,
}

impl Identity {
    pub fn new(store_url: &str, schema_text: Option<&str>) -> Self {
        Identity {
            format: FORMAT,
            store: strata_core::redact::redact_url(store_url),
            schema: schema_text.map_or_else(|| "none".into(), digest),
        }
    }
}

/// A short hex digest (FNV-1a, 64 bits) of a text: names an index folder, tells
/// schemas apart. Not for security.
pub fn digest(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// What a commit records: the revision each store the documents come from was read
/// at (`""` for a plain store; each layer's store by name), and one number to show
/// (the plain store's revision, or their sum).
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct Payload {
    pub revision: i64,
    #[serde(default)]
    pub parts: BTreeMap<String, i64>,
}

impl Payload {
    pub(crate) fn of(parts: BTreeMap<String, i64>) -> Self {
        let revision = match (parts.len(), parts.get("")) {
            (1, Some(r)) => *r,
            _ => parts.values().sum(),
        };
        Payload { revision, parts }
    }

    fn read(index: &Index) -> Payload {
        index
            .load_metas()
            .ok()
            .and_then(|m| m.payload)
            .and_then(|p| serde_json::from_str::<Payload>(&p).ok())
            .unwrap_or_default()
    }
}

/// The keys and values of one document.
type Kvs = Vec<(Vec<u8>, Vec<u8>)>;

/// The index fields.
#[derive(Clone, Copy, Debug)]
pub struct IndexFields {
    pub id: Field,
    pub anc: Field,
    pub lines: Field,
    pub shown: Field,
    pub q: Fields,
}

fn index_schema() -> (TantivySchema, IndexFields) {
    let mut b = TantivySchema::builder();
    let words = TextFieldIndexing::default()
        .set_tokenizer(ANALYZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let id = b.add_text_field("id", STRING | STORED);
    let entity = b.add_text_field("entity", STRING | STORED);
    let anc = b.add_text_field("anc", STRING);
    let key = b.add_text_field(
        "key",
        TextOptions::default().set_indexing_options(words.clone()),
    );
    let body = b.add_text_field(
        "body",
        TextOptions::default().set_indexing_options(words.clone()),
    );
    let attrs = b.add_json_field(
        "attrs",
        JsonObjectOptions::default().set_indexing_options(words),
    );
    let lines = b.add_text_field("lines", STORED);
    let shown = b.add_text_field("shown", STORED);
    let fields = IndexFields {
        id,
        anc,
        lines,
        shown,
        q: Fields {
            entity,
            key,
            body,
            attrs,
        },
    };
    (b.build(), fields)
}

/// How the index was found when opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// New: nothing was there.
    New,
    /// As it was, at this store revision.
    Kept(i64),
    /// Discarded and made anew, for this reason.
    Discarded(String),
}

/// An open index.
pub struct SearchIndex {
    pub(crate) dir: PathBuf,
    pub(crate) index: Index,
    pub(crate) reader: IndexReader,
    pub fields: IndexFields,
    pub(crate) schema: Option<Schema>,
    /// The revision the last commit reflects (0: never built): the plain store's, or
    /// the sum of the layers' stores'.
    pub(crate) revision: i64,
    /// The revision of each store the documents come from (see [`Payload`]).
    pub(crate) parts: BTreeMap<String, i64>,
    /// With a model: the vectors kept beside the index (`semantic.rs`).
    pub(crate) semantic: Option<crate::semantic::Semantic>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("dir", &self.dir)
            .field("revision", &self.revision)
            .finish()
    }
}

fn io_error(dir: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Index {
        dir: dir.to_owned(),
        problem: format!("{what}: {e}"),
    }
}

impl SearchIndex {
    /// Opens the index in `dir` for `identity`, making or remaking it as needed.
    pub fn open(dir: &Path, identity: &Identity, schema: Option<Schema>) -> Result<(Self, Opened)> {
        let marker = dir.join(MARKER);
        let mut opened = Opened::New;
        if dir.exists() {
            match std::fs::read_to_string(&marker) {
                Ok(text) => match serde_json::from_str::<Identity>(&text) {
                    Ok(found) if found == *identity => opened = Opened::Kept(0),
                    Ok(found) => {
                        let why = if found.format != identity.format {
                            format!(
                                "it has format {}, this strata writes {}",
                                found.format, identity.format
                            )
                        } else if found.store != identity.store {
                            format!("it was made for {}", found.store)
                        } else {
                            "it was made with another schema".to_owned()
                        };
                        opened = Opened::Discarded(why);
                    }
                    Err(e) => {
                        opened = Opened::Discarded(format!("its {MARKER} does not read: {e}"))
                    }
                },
                Err(_) => {
                    let empty = std::fs::read_dir(dir)
                        .map_err(|e| io_error(dir, "cannot read the folder", e))?
                        .next()
                        .is_none();
                    if !empty {
                        return Err(Error::Index {
                            dir: dir.to_owned(),
                            problem: format!(
                                "the folder is not a Strata search index (it has no {MARKER}); \
                                 give --index an empty or missing folder"
                            ),
                        });
                    }
                }
            }
        }
        let tantivy_dir = dir.join("tantivy");
        if matches!(opened, Opened::Discarded(_)) {
            std::fs::remove_dir_all(&tantivy_dir)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| io_error(dir, "cannot remove the old index", e))?;
        }
        std::fs::create_dir_all(&tantivy_dir)
            .map_err(|e| io_error(dir, "cannot make the folder", e))?;
        let identity_text = serde_json::to_string_pretty(identity).expect("plain data");
        std::fs::write(&marker, identity_text + "\n")
            .map_err(|e| io_error(dir, "cannot write its marker", e))?;
        let (tschema, fields) = index_schema();
        let open = |d: &Path| -> tantivy::Result<Index> {
            let index = Index::open_or_create(MmapDirectory::open(d)?, tschema.clone())?;
            index.tokenizers().register(ANALYZER, analyzer());
            Ok(index)
        };
        let index = match open(&tantivy_dir) {
            Ok(i) => i,
            Err(e) => {
                // Unreadable (another tantivy's, damaged): made anew.
                opened = Opened::Discarded(format!("it does not open: {e}"));
                std::fs::remove_dir_all(&tantivy_dir)
                    .and_then(|()| std::fs::create_dir_all(&tantivy_dir))
                    .map_err(|e| io_error(dir, "cannot remove the old index", e))?;
                open(&tantivy_dir).map_err(|e| io_error(dir, "cannot make the index", e))?
            }
        };
        let payload = Payload::read(&index);
        let revision = payload.revision;
        if let Opened::Kept(_) = opened {
            opened = if revision > 0 {
                Opened::Kept(revision)
            } else {
                Opened::New
            };
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| io_error(dir, "cannot read the index", e))?;
        Ok((
            SearchIndex {
                dir: dir.to_owned(),
                index,
                reader,
                fields,
                schema,
                revision,
                parts: payload.parts,
                semantic: None,
            },
            opened,
        ))
    }

    /// The store revision the index reflects (0: not built).
    pub fn revision(&self) -> i64 {
        self.revision
    }

    pub fn reader(&self) -> &IndexReader {
        &self.reader
    }

    pub fn schema(&self) -> Option<&Schema> {
        self.schema.as_ref()
    }

    pub(crate) fn err(&self, what: &str, e: impl std::fmt::Display) -> Error {
        io_error(&self.dir, what, e)
    }

    /// The writer; `None` while another process (a `--watch`) holds it. One indexing
    /// thread: documents go to segments in the order they are added, so the same
    /// store gives the same index (and the same scores) every time.
    pub(crate) async fn writer(&self) -> Result<Option<IndexWriter>> {
        match self.index.writer_with_num_threads(1, 50_000_000) {
            Ok(w) => Ok(Some(w)),
            Err(tantivy::TantivyError::LockFailure(..)) => Ok(None),
            Err(e) => Err(self.err("cannot write the index", e)),
        }
    }

    pub(crate) fn add(&self, w: &IndexWriter, d: &Doc) -> Result<()> {
        let f = &self.fields;
        let mut t = TantivyDocument::default();
        t.add_text(f.id, &d.id);
        if let Some(e) = &d.entity {
            t.add_text(f.q.entity, e);
        }
        for a in ancestors(&d.id) {
            t.add_text(f.anc, &a);
        }
        t.add_text(f.q.key, &d.id);
        for (_, text) in &d.lines {
            t.add_text(f.q.body, text);
        }
        if !d.attrs.is_empty() {
            let obj: std::collections::BTreeMap<String, tantivy::schema::OwnedValue> = d
                .attrs
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        tantivy::schema::OwnedValue::Str(v.as_str().unwrap_or_default().to_owned()),
                    )
                })
                .collect();
            t.add_object(f.q.attrs, obj);
        }
        let lines = serde_json::to_string(&d.lines).expect("plain data");
        t.add_text(f.lines, &lines);
        t.add_text(f.shown, d.shown.to_string());
        self.queue_vector(d)?;
        w.add_document(t)
            .map_err(|e| self.err("cannot add a document", e))?;
        Ok(())
    }

    pub(crate) fn commit(
        &mut self,
        w: &mut IndexWriter,
        parts: BTreeMap<String, i64>,
    ) -> Result<()> {
        let payload = Payload::of(parts);
        let mut c = w
            .prepare_commit()
            .map_err(|e| self.err("cannot commit", e))?;
        c.set_payload(&serde_json::to_string(&payload).expect("plain data"));
        c.commit().map_err(|e| self.err("cannot commit", e))?;
        self.revision = payload.revision;
        self.parts = payload.parts;
        self.flush_vectors(Some(self.revision))?;
        self.reader
            .reload()
            .map_err(|e| self.err("cannot reload", e))?;
        Ok(())
    }

    /// Indexes the whole store anew at its current revision, in one paged read:
    /// objects are whole once the read has passed their keys (their keys share a
    /// prefix, so few are open at once). Returns the documents written and the
    /// revision read; the caller commits.
    pub(crate) async fn rebuild<S: Store>(
        &mut self,
        store: &S,
        w: &mut IndexWriter,
    ) -> Result<(u64, i64)> {
        self.clear_vectors()?;
        w.delete_all_documents()
            .map_err(|e| self.err("cannot clear the index", e))?;
        let this = &*self;
        let writer = &*w;
        let schema = this.schema.as_ref();
        let mut open: Vec<(Owner, Kvs)> = Vec::new();
        let mut written = 0u64;
        let mut failed: Option<Error> = None;
        let mut emit = |o: &Owner, kvs: &[(Vec<u8>, Vec<u8>)]| -> strata_core::Result<()> {
            if let Some(d) = doc::build(schema, o, kvs) {
                if let Err(e) = this.add(writer, &d) {
                    let text = e.to_string();
                    failed = Some(e);
                    return Err(strata_core::Error::Backend {
                        backend: "search".into(),
                        operation: "indexing".into(),
                        source: text.into(),
                    });
                }
                written += 1;
            }
            Ok(())
        };
        let read = scan(store, KeySpan::all(), 0, |page| {
            for kv in page {
                let Some(o) = doc::owner(schema, &kv.key) else {
                    continue;
                };
                // Close the objects this key is not under (they nest as prefixes).
                while let Some((top, _)) = open.last() {
                    let under = matches!(top, Owner::Object { path, .. }
                        if kv.key.starts_with(format!("{path}/").as_bytes()));
                    if under || *top == o {
                        break;
                    }
                    let (top, kvs) = open.pop().expect("checked");
                    emit(&top, &kvs)?;
                }
                match (&o, open.last_mut()) {
                    (Owner::Key { .. }, _) => emit(&o, &[(kv.key, kv.value)])?,
                    (_, Some((top, kvs))) if *top == o => kvs.push((kv.key, kv.value)),
                    _ => open.push((o, vec![(kv.key, kv.value)])),
                }
            }
            Ok(())
        })
        .await;
        let mut rest = Ok(());
        if read.is_ok() {
            while let Some((top, kvs)) = open.pop() {
                rest = emit(&top, &kvs);
                if rest.is_err() {
                    break;
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let revision = read.map_err(Error::Store)?;
        rest.map_err(Error::Store)?;
        Ok((written, revision))
    }

    /// Reads the revisions another process committed last, and its documents.
    pub fn reload(&mut self) -> Result<()> {
        self.reader
            .reload()
            .map_err(|e| self.err("cannot reload", e))?;
        let payload = Payload::read(&self.index);
        self.revision = payload.revision;
        self.parts = payload.parts;
        Ok(())
    }

    /// The revision of each store the documents come from, as last committed.
    pub fn parts(&self) -> &BTreeMap<String, i64> {
        &self.parts
    }
}

/// Every folder above `id` (`/`, `/a/`, `/a/b/` for `/a/b/c`) and `id/` itself: what
/// `--prefix` matches.
fn ancestors(id: &str) -> Vec<String> {
    let mut out: Vec<String> = id
        .match_indices('/')
        .map(|(i, _)| id[..=i].to_owned())
        .collect();
    out.push(format!("{id}/"));
    out
}
