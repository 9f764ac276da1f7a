//! The query language and its translation into a tantivy query.
//!
//! `grace hopper` (every word), `"grace hopper"` (a phrase), `hop*` (a prefix),
//! `status:blocked` (a field of an object, with a schema), `entity:user`, `-word` (not),
//! `a OR b` (either; `OR` binds its neighbours, and the groups are all required).
//! A word matches itself in a value or a key, each of its parts when it has joiners
//! (`example.org`), and, from 5 letters on, a word one edit away (two from 9 letters on,
//! as the big engines default). Owns parsing, the query built from it, and deciding
//! which words of a text a query matches (to mark them).

use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, PhraseQuery, Query, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::Term;

use crate::tokenize::{words, Word};

/// One clause of a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Clause {
    /// A word (analyzed: its whole form and its parts).
    Word(String),
    /// Words in this order.
    Phrase(String),
    /// Words starting so (`hop*`).
    Prefix(String),
    /// A field of an object, `status:blocked`.
    Field { name: String, value: String },
    /// An entity, `entity:user`.
    Entity(String),
}

/// A clause, maybe negated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term0 {
    pub clause: Clause,
    pub negated: bool,
}

/// A parsed query: every group must match; a group matches when one of its clauses
/// does (`a OR b`). Negated clauses form groups of their own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub groups: Vec<Vec<Term0>>,
}

/// Why a query cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("query {query:?}: {problem}")]
pub struct QueryError {
    pub query: String,
    pub problem: String,
}

/// Splits `text` into raw pieces: quoted phrases whole (the quotes kept), else at
/// white space.
fn pieces(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                cur.push(c);
                quoted = !quoted;
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("a phrase is not closed: end it with \"".into());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Parses a query.
pub fn parse(text: &str) -> Result<Parsed, QueryError> {
    let fail = |problem: String| QueryError {
        query: text.to_owned(),
        problem,
    };
    let mut parsed = Parsed::default();
    let mut join = false;
    for piece in pieces(text).map_err(fail)? {
        if piece == "OR" {
            if parsed
                .groups
                .last()
                .is_none_or(|g| g.iter().any(|t| t.negated))
            {
                return Err(fail("OR needs a word before it".into()));
            }
            join = true;
            continue;
        }
        if piece == "AND" {
            continue;
        }
        let (negated, body) = match piece.strip_prefix('-') {
            Some(rest) if !rest.is_empty() => (true, rest),
            _ => (false, piece.as_str()),
        };
        let clause = if body.len() >= 2 && body.starts_with('"') && body.ends_with('"') {
            Clause::Phrase(body[1..body.len() - 1].to_owned())
        } else if let Some(stem) = body.strip_suffix('*').filter(|s| !s.is_empty()) {
            Clause::Prefix(stem.to_owned())
        } else if let Some((name, value)) = body
            .split_once(':')
            .filter(|(n, v)| is_field_name(n) && !v.is_empty() && !v.starts_with('/'))
        {
            let value = value.trim_matches('"').to_owned();
            if name == "entity" {
                Clause::Entity(value)
            } else {
                Clause::Field {
                    name: name.to_owned(),
                    value,
                }
            }
        } else {
            Clause::Word(body.to_owned())
        };
        if words_of(&clause).is_empty() && !matches!(clause, Clause::Entity(_)) {
            return Err(fail(format!(
                "{piece:?} has no letters or digits to search for"
            )));
        }
        let term = Term0 { clause, negated };
        match (join, parsed.groups.last_mut()) {
            (true, Some(g)) if !negated => g.push(term),
            (true, _) => return Err(fail("OR cannot join a negated word".into())),
            (false, _) => parsed.groups.push(vec![term]),
        }
        join = false;
    }
    if join {
        return Err(fail("OR needs a word after it".into()));
    }
    if parsed.groups.is_empty() {
        return Err(fail("nothing to search for".into()));
    }
    Ok(parsed)
}

/// `name` of `name:value`: a field name as schemas write them (not a URL scheme or an
/// IPv6 address, which are words).
fn is_field_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.chars().all(|c| c.is_ascii_hexdigit())
}

fn words_of(clause: &Clause) -> Vec<Word> {
    match clause {
        Clause::Word(w) | Clause::Phrase(w) | Clause::Prefix(w) => words(w),
        Clause::Field { value, .. } => words(value),
        Clause::Entity(_) => Vec::new(),
    }
}

/// The edits a word of this many letters may be away: none below 5, 1, 2 from 9.
pub fn typo_distance(word: &str) -> u8 {
    match word.chars().count() {
        0..=4 => 0,
        5..=8 => 1,
        _ => 2,
    }
}

/// The index fields a query reads.
#[derive(Clone, Copy, Debug)]
pub struct Fields {
    pub entity: Field,
    pub key: Field,
    pub body: Field,
    pub attrs: Field,
}

fn boxed(q: impl Query) -> Box<dyn Query> {
    Box::new(q)
}

/// A word in one text field: itself (boosted), its parts all present, a word a few
/// edits away.
fn word_in(field: Field, ws: &[Word]) -> Box<dyn Query> {
    let Some(whole) = ws.first() else {
        return boxed(AllQuery);
    };
    let term = Term::from_field_text(field, &whole.text);
    let mut any: Vec<(Occur, Box<dyn Query>)> = vec![(
        Occur::Should,
        boxed(BoostQuery::new(
            boxed(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)),
            2.0,
        )),
    )];
    let parts: Vec<&Word> = ws.iter().filter(|w| w.part).collect();
    if !parts.is_empty() {
        let all = parts
            .iter()
            .map(|p| {
                let t = Term::from_field_text(field, &p.text);
                (
                    Occur::Must,
                    boxed(TermQuery::new(t, IndexRecordOption::WithFreqs)),
                )
            })
            .collect();
        any.push((Occur::Should, boxed(BooleanQuery::new(all))));
    }
    let d = typo_distance(&whole.text);
    if d > 0 && parts.is_empty() {
        any.push((
            Occur::Should,
            boxed(BoostQuery::new(
                boxed(FuzzyTermQuery::new(term, d, true)),
                0.5,
            )),
        ));
    }
    boxed(BooleanQuery::new(any))
}

/// The words of a phrase in one text field, in order (whole words only).
fn phrase_in(field: Field, ws: &[Word]) -> Box<dyn Query> {
    let whole: Vec<(usize, Term)> = ws
        .iter()
        .filter(|w| !w.part)
        .map(|w| (w.position, Term::from_field_text(field, &w.text)))
        .collect();
    if whole.len() < 2 {
        return word_in(field, ws);
    }
    boxed(PhraseQuery::new_with_offset(whole))
}

fn either(a: Box<dyn Query>, b: Box<dyn Query>) -> Box<dyn Query> {
    boxed(BooleanQuery::new(vec![
        (Occur::Should, a),
        (Occur::Should, b),
    ]))
}

fn clause_query(f: &Fields, clause: &Clause) -> Box<dyn Query> {
    let ws = words_of(clause);
    match clause {
        Clause::Word(_) => either(word_in(f.body, &ws), word_in(f.key, &ws)),
        Clause::Phrase(_) => either(phrase_in(f.body, &ws), phrase_in(f.key, &ws)),
        Clause::Prefix(_) => {
            let stem = &ws.last().map(|w| w.text.clone()).unwrap_or_default();
            let at = |field| {
                boxed(FuzzyTermQuery::new_prefix(
                    Term::from_field_text(field, stem),
                    0,
                    false,
                ))
            };
            either(at(f.body), at(f.key))
        }
        Clause::Field { name, .. } => {
            let all = ws
                .iter()
                .filter(|w| !w.part)
                .map(|w| {
                    let mut t = Term::from_field_json_path(f.attrs, name, false);
                    t.append_type_and_str(&w.text);
                    (
                        Occur::Must,
                        boxed(TermQuery::new(t, IndexRecordOption::WithFreqs)),
                    )
                })
                .collect();
            boxed(BooleanQuery::new(all))
        }
        Clause::Entity(name) => boxed(TermQuery::new(
            Term::from_field_text(f.entity, name),
            IndexRecordOption::Basic,
        )),
    }
}

/// The tantivy query of a parsed query, within `filter` (e.g. a prefix) if given.
pub fn build(f: &Fields, parsed: &Parsed, filter: Option<Box<dyn Query>>) -> Box<dyn Query> {
    let mut all: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for group in &parsed.groups {
        let occur = if group.iter().any(|t| t.negated) {
            Occur::MustNot
        } else {
            Occur::Must
        };
        let q = match group.as_slice() {
            [one] => clause_query(f, &one.clause),
            many => boxed(BooleanQuery::new(
                many.iter()
                    .map(|t| (Occur::Should, clause_query(f, &t.clause)))
                    .collect(),
            )),
        };
        all.push((occur, q));
    }
    if let Some(filter) = filter {
        all.push((Occur::Must, filter));
    }
    if all.iter().all(|(o, _)| *o == Occur::MustNot) {
        all.push((Occur::Must, boxed(AllQuery)));
    }
    boxed(BooleanQuery::new(all))
}

/// Edit distance of two words, an adjacent transposition costing one edit; anything
/// past `limit` is `limit + 1`.
fn distance(a: &str, b: &str, limit: usize) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > limit {
        return limit + 1;
    }
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()].min(limit + 1)
}

/// Which words of `text` the query's positive clauses match, as byte ranges: what a
/// hit's snippet marks.
pub fn marks(parsed: &Parsed, text: &str) -> Vec<std::ops::Range<usize>> {
    let wanted: Vec<(String, bool)> = parsed
        .groups
        .iter()
        .flatten()
        .filter(|t| !t.negated)
        .flat_map(|t| {
            let prefix = matches!(t.clause, Clause::Prefix(_));
            // A query word's whole form: its parts alone would mark other words.
            words_of(&t.clause)
                .into_iter()
                .filter(|w| !w.part)
                .map(move |w| (w.text, prefix))
        })
        .collect();
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for w in words(text) {
        let hit = wanted.iter().any(|(q, prefix)| {
            if *prefix {
                w.text.starts_with(q.as_str())
            } else {
                let d = usize::from(typo_distance(q));
                w.text == *q || (d > 0 && distance(&w.text, q, d) <= d)
            }
        });
        if hit
            && !out
                .iter()
                .any(|r| r.start <= w.range.start && w.range.end <= r.end)
        {
            out.retain(|r| !(w.range.start <= r.start && r.end <= w.range.end));
            out.push(w.range);
        }
    }
    out.sort_by_key(|r| r.start);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(w: &str) -> Term0 {
        Term0 {
            clause: Clause::Word(w.into()),
            negated: false,
        }
    }

    #[test]
    fn the_query_language() {
        let p =
            parse(r#"grace "grace hopper" hop* status:blocked entity:user -vpn a OR b"#).unwrap();
        let clauses: Vec<&Clause> = p.groups.iter().flatten().map(|t| &t.clause).collect();
        assert_eq!(clauses[1], &Clause::Phrase("grace hopper".into()));
        assert_eq!(clauses[2], &Clause::Prefix("hop".into()));
        assert_eq!(
            clauses[3],
            &Clause::Field {
                name: "status".into(),
                value: "blocked".into()
            }
        );
        assert_eq!(clauses[4], &Clause::Entity("user".into()));
        assert!(p.groups[5][0].negated);
        assert_eq!(p.groups[6], vec![word("a"), word("b")]);
        // An IPv6 address and a URL are words, not fields.
        assert_eq!(
            parse("2a01:4f8:c0c:1::78").unwrap().groups[0],
            vec![word("2a01:4f8:c0c:1::78")]
        );
        assert_eq!(parse("http://x").unwrap().groups[0], vec![word("http://x")]);
        for bad in ["", "\"open", "OR x", "x OR", "--", "x OR -y"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn typos_and_marks() {
        assert_eq!(typo_distance("hop"), 0);
        assert_eq!(typo_distance("hoppr"), 1);
        assert_eq!(typo_distance("angstroem"), 2);
        assert_eq!(distance("hopper", "hoppre", 1), 1);
        assert_eq!(distance("hopper", "hoper", 1), 1);
        assert_eq!(distance("hopper", "happen", 1), 2);
        let text = "Grace Hopper <grace+vpn@example.org>";
        let marked = |q: &str| -> Vec<&str> {
            marks(&parse(q).unwrap(), text)
                .into_iter()
                .map(|r| &text[r])
                .collect()
        };
        assert_eq!(marked("hoppr"), ["Hopper"]);
        assert_eq!(marked("gra*"), ["Grace", "grace+vpn@example.org"]);
        assert_eq!(marked("vpn -grace"), ["vpn"]);
        assert_eq!(marked("grace+vpn@example.org"), ["grace+vpn@example.org"]);
    }
}
