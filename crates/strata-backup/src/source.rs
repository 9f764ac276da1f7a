//! What a backup reads: one store, or the stores of a layered keyspace, each part
//! with the key spans it holds and its own revision. A commit records every part's
//! revision (`Strata-Revision: 12` for one store, `Strata-Revision-ops: 12` per layer's
//! store), and an incremental run replays each part from its own.

use std::collections::BTreeMap;

use strata_core::KeySpan;

/// One store of the backup's source and the key spans it holds.
#[derive(Debug)]
pub struct Part<'a, S> {
    /// Its name (the config file's), or empty for a backup of one store.
    pub name: String,
    pub store: &'a S,
    /// The keys this part holds; a backup reads only these from it.
    pub spans: Vec<KeySpan>,
}

impl<S> Part<'_, S> {
    /// The part as messages name it: `the store`, or `the store ops`.
    pub(crate) fn label(&self) -> String {
        match self.name.as_str() {
            "" => "the store".into(),
            name => format!("the store {name}"),
        }
    }
}

/// Each part's revision, by name (`""` for a backup of one store).
pub type Revisions = BTreeMap<String, i64>;

/// The source of a backup of one store: one part holding every key.
pub fn single<S>(store: &S) -> Vec<Part<'_, S>> {
    vec![Part {
        name: String::new(),
        store,
        spans: vec![KeySpan::all()],
    }]
}

/// Revisions as messages show them: `12`, or `comms@5, ops@12`.
pub fn describe(revisions: &Revisions) -> String {
    match revisions.get("") {
        Some(r) if revisions.len() == 1 => r.to_string(),
        _ => revisions
            .iter()
            .map(|(name, r)| format!("{name}@{r}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Every read a backup makes: each of `spans` (the options' prefixes) cut to what each
/// part holds, in key order (parts hold disjoint ranges, so this is the order of the
/// keys themselves).
pub(crate) fn reads<'p, 'a, S>(
    parts: &'p [Part<'a, S>],
    spans: &[KeySpan],
) -> Vec<(&'p Part<'a, S>, KeySpan)> {
    let mut out: Vec<(&Part<'a, S>, KeySpan)> = spans
        .iter()
        .flat_map(|span| {
            parts.iter().flat_map(move |p| {
                p.spans
                    .iter()
                    .filter_map(move |held| intersect(span, held))
                    .map(move |s| (p, s))
            })
        })
        .collect();
    out.sort_by(|a, b| a.1.bounds().0.cmp(&b.1.bounds().0));
    out
}

/// The keys in both spans, or `None` when they do not meet.
pub(crate) fn intersect(a: &KeySpan, b: &KeySpan) -> Option<KeySpan> {
    let ((a0, a1), (b0, b1)) = (a.bounds(), b.bounds());
    let start = a0.max(b0);
    let end = match (a1, b1) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x),
        (Some(x), Some(y)) => Some(x.min(y)),
    };
    if end.as_ref().is_some_and(|e| *e <= start) {
        return None;
    }
    Some(KeySpan::Range { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_meet_where_both_hold_keys() {
        let all = KeySpan::all();
        let a = KeySpan::prefix("/a/");
        assert!(intersect(&a, &all).unwrap().contains(b"/a/x"));
        assert!(intersect(&a, &KeySpan::prefix("/b/")).is_none());
        let cut = intersect(&KeySpan::prefix("/"), &a).unwrap();
        assert!(cut.contains(b"/a/1") && !cut.contains(b"/b"));
        assert_eq!(describe(&Revisions::from([(String::new(), 7)])), "7");
        let two = Revisions::from([("ops".into(), 12), ("comms".into(), 5)]);
        assert_eq!(describe(&two), "comms@5, ops@12");
    }
}
