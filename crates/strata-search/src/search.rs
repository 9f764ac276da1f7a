//! Running a query on an open index: the hits, best first, each with the key that
//! matched (an object's field key when the words are in a field), the object or
//! value shown (secrets were never indexed), its score and a snippet with the
//! matching words marked. Owns ranking order, the prefix filter and snippets.

use std::ops::Range;

use serde_json::Value;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{IndexRecordOption, Value as _};
use tantivy::{TantivyDocument, Term};

use crate::index::SearchIndex;
use crate::query::{self, Parsed};
use crate::{Error, Result};

/// One hit.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The key the words were found in: an object's field key, a key, or the object's
    /// path when they were found in it.
    pub key: String,
    /// The document: the object's path, or the key.
    pub id: String,
    pub entity: Option<String>,
    /// The object (typed fields, secrets left out) or the value.
    pub shown: Value,
    pub score: f32,
    /// A line of the value (or the key), cut to about 160 characters.
    pub snippet: String,
    /// The matching words in `snippet`, as byte ranges.
    pub marks: Vec<Range<usize>>,
}

impl Hit {
    /// The snippet with its marked words in `[` `]`.
    pub fn marked(&self) -> String {
        let mut out = String::new();
        let mut at = 0;
        for r in &self.marks {
            out.push_str(&self.snippet[at..r.start]);
            out.push('[');
            out.push_str(&self.snippet[r.clone()]);
            out.push(']');
            at = r.end;
        }
        out.push_str(&self.snippet[at..]);
        out
    }
}

const SNIPPET_CHARS: usize = 160;

/// Cuts `text` to about [`SNIPPET_CHARS`] around its first mark.
pub(crate) fn cut(text: &str, marks: Vec<Range<usize>>) -> (String, Vec<Range<usize>>) {
    let one_line = |s: &str| s.replace(['\n', '\r', '\t'], " ");
    if text.chars().count() <= SNIPPET_CHARS {
        return (one_line(text), marks);
    }
    let first = marks.first().map_or(0, |r| r.start);
    let mut start = first.saturating_sub(40);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + SNIPPET_CHARS * 2).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let taken: String = text[start..end].chars().take(SNIPPET_CHARS).collect();
    let end = start + taken.len();
    let lead = if start > 0 { "…" } else { "" };
    let shift = lead.len();
    let marks = marks
        .into_iter()
        .filter(|r| r.start >= start && r.end <= end)
        .map(|r| r.start - start + shift..r.end - start + shift)
        .collect();
    let tail = if end < text.len() { "…" } else { "" };
    (format!("{lead}{}{tail}", one_line(&taken)), marks)
}

/// What the index keeps of a document to show it.
pub(crate) struct Stored {
    pub id: String,
    pub entity: Option<String>,
    pub lines: Vec<(String, String)>,
    pub shown: Value,
}

/// Whether document `id` is under one of `prefixes` (all are, without any).
pub(crate) fn under(id: &str, prefixes: &[String]) -> bool {
    prefixes.is_empty()
        || prefixes
            .iter()
            .any(|p| id.starts_with(p.as_str()) || format!("{id}/").starts_with(p.as_str()))
}

impl SearchIndex {
    /// The stored fields of the document at `addr`.
    pub(crate) fn stored(
        &self,
        searcher: &tantivy::Searcher,
        addr: tantivy::DocAddress,
    ) -> Result<Stored> {
        let d: TantivyDocument = searcher
            .doc(addr)
            .map_err(|e| Error::Search(e.to_string()))?;
        let text = |field| {
            d.get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned()
        };
        let f = &self.fields;
        Ok(Stored {
            id: text(f.id),
            entity: Some(text(f.q.entity)).filter(|e| !e.is_empty()),
            lines: serde_json::from_str(&text(f.lines)).unwrap_or_default(),
            shown: serde_json::from_str(&text(f.shown)).unwrap_or(Value::Null),
        })
    }

    /// The best `limit` hits of `parsed` among the documents under one of `prefixes`
    /// (every document when empty).
    pub fn query(&self, parsed: &Parsed, prefixes: &[String], limit: usize) -> Result<Vec<Hit>> {
        let f = self.fields;
        // Folder prefixes are indexed terms; any other prefix is checked on each hit.
        let filter: Option<Box<dyn Query>> = (!prefixes.is_empty()).then(|| {
            let any = prefixes
                .iter()
                .map(|p| {
                    let folder = match p.rfind('/') {
                        Some(i) => &p[..=i],
                        None => "/",
                    };
                    let q: Box<dyn Query> = Box::new(TermQuery::new(
                        Term::from_field_text(f.anc, folder),
                        IndexRecordOption::Basic,
                    ));
                    (Occur::Should, q)
                })
                .collect();
            Box::new(BooleanQuery::new(any)) as Box<dyn Query>
        });
        let exact = prefixes.iter().all(|p| p.ends_with('/'));
        let q = query::build(&f.q, parsed, filter);
        let searcher = self.reader().searcher();
        // More than asked, so that hits of equal score cut at the limit are chosen by
        // key (the same on every backend), not by where the index put them.
        let fetch = if exact {
            limit
        } else {
            limit.saturating_mul(10)
        }
        .saturating_mul(2)
        .saturating_add(10);
        let top = searcher
            .search(&*q, &TopDocs::with_limit(fetch).order_by_score())
            .map_err(|e| Error::Search(e.to_string()))?;
        let mut hits = Vec::new();
        for (score, addr) in top {
            let Stored {
                id,
                entity,
                lines,
                shown,
            } = self.stored(&searcher, addr)?;
            if !under(&id, prefixes) {
                continue;
            }
            // The line with the most marked words; else the key itself.
            let best = lines
                .iter()
                .map(|(field, line)| (field, line, query::marks(parsed, line)))
                .max_by_key(|(_, _, m)| m.len())
                .filter(|(_, _, m)| !m.is_empty());
            let (key, snippet, marks) = match best {
                Some((field, line, marks)) => {
                    let key = if field.is_empty() {
                        id.clone()
                    } else {
                        format!("{id}/{field}")
                    };
                    let (s, m) = cut(line, marks);
                    (key, s, m)
                }
                None => {
                    let marks = query::marks(parsed, &id);
                    let line = lines.first().map(|(_, l)| l.as_str());
                    match (marks.is_empty(), line) {
                        (true, Some(l)) => {
                            let (s, m) = cut(l, Vec::new());
                            (id.clone(), s, m)
                        }
                        _ => (id.clone(), id.clone(), marks),
                    }
                }
            };
            hits.push(Hit {
                key,
                id,
                entity,
                shown,
                score,
                snippet,
                marks,
            });
            if hits.len() == limit {
                break;
            }
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_around_the_first_mark() {
        let text = format!("{}needle{}", "a ".repeat(200), " b".repeat(200));
        let at = text.find("needle").unwrap();
        let one = std::iter::once(at..at + 6).collect();
        let (s, m) = cut(&text, one);
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert_eq!(&s[m[0].clone()], "needle");
        let (short, _) = cut("one\nline", vec![]);
        assert_eq!(short, "one line");
    }
}
