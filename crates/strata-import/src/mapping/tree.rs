//! The file-tree side of a mapping: path templates (`roles/{role}/{ip}.json`), and
//! reading every file of the tree into its collection with the checks that need only
//! the file itself (JSON, path and body agreeing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{text_of, Collection, Defect, Mapping, Record};

/// One part of a path or key pattern segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Part {
    Lit(String),
    Var(String),
}

pub(super) fn parse_template(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(Part::Lit(rest[..open].to_owned()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("{text:?}: a `{{` is not closed"))?
            + open;
        let name = &rest[open + 1..close];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("{text:?}: {{{name}}} is not a variable name"));
        }
        if matches!(parts.last(), Some(Part::Var(_))) {
            return Err(format!(
                "{text:?}: two variables need a literal between them"
            ));
        }
        parts.push(Part::Var(name.to_owned()));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_owned()));
    }
    Ok(parts)
}

/// Matches `text` against a segment template, collecting captures.
pub(super) fn match_segment(parts: &[Part], text: &str, caps: &mut Vec<(String, String)>) -> bool {
    match parts.split_first() {
        None => text.is_empty(),
        Some((Part::Lit(lit), rest)) => text
            .strip_prefix(lit.as_str())
            .is_some_and(|t| match_segment(rest, t, caps)),
        Some((Part::Var(name), rest)) => {
            // Try every split point, shortest capture first; captures are non-empty.
            for end in (1..=text.len()).filter(|&i| text.is_char_boundary(i)) {
                caps.push((name.clone(), text[..end].to_owned()));
                if match_segment(rest, &text[end..], caps) {
                    return true;
                }
                caps.pop();
            }
            false
        }
    }
}

impl Mapping {
    /// Reads every file under `root` into the collection whose path pattern it
    /// matches, checking JSON and path/body agreement.
    pub(super) fn read_tree(
        &self,
        root: &Path,
        defects: &mut Vec<Defect>,
    ) -> BTreeMap<String, Vec<Record>> {
        let (mut files, mut odd) = (Vec::new(), Vec::new());
        let inside = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
        if let Err((dir, e)) = walk(root, &inside, &mut files, &mut odd) {
            defects.push(Defect {
                file: dir.display().to_string(),
                problem: format!("cannot read this directory of the tree: {e}"),
            });
        }
        odd.sort();
        for (path, kind) in odd {
            defects.push(Defect {
                file: path.display().to_string(),
                problem: format!("is {kind}, not a regular file; move it out of the tree"),
            });
        }
        files.sort();
        let mut records: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        for file in files {
            let rel = file.strip_prefix(root).unwrap_or(&file);
            let name = file.display().to_string();
            // A capture from a name that is not UTF-8 would be a key nobody chose.
            let Some(rel_text) = rel.to_str().map(|t| t.replace('\\', "/")) else {
                defects.push(Defect {
                    file: name,
                    problem: "its name is not valid UTF-8 (shown with \u{fffd}); rename it".into(),
                });
                continue;
            };
            let text = match self.record_file(&rel_text) {
                Err(problem) => {
                    defects.push(Defect {
                        file: name,
                        problem,
                    });
                    continue;
                }
                Ok(_) => match std::fs::read_to_string(&file) {
                    Ok(t) => t,
                    Err(e) => {
                        defects.push(Defect {
                            file: name,
                            problem: format!("cannot read it: {e}"),
                        });
                        continue;
                    }
                },
            };
            match self.read_record(&rel_text, &text) {
                Ok((collection, value)) => records
                    .entry(collection)
                    .or_default()
                    .push(Record { file: name, value }),
                Err(problems) => defects.extend(problems.into_iter().map(|problem| Defect {
                    file: name.clone(),
                    problem,
                })),
            }
        }
        records
    }
}

/// What a path pattern captured: `(variable, text)` in order.
type Captures = Vec<(String, String)>;

impl Mapping {
    /// The collection whose path pattern a file (its path relative to the tree's
    /// root, `/`-separated) matches, and what the pattern captured from the path.
    fn record_file(&self, rel: &str) -> Result<(&Collection, Captures), String> {
        let segments: Vec<&str> = rel.split('/').collect();
        self.collections
            .iter()
            .find_map(|c| {
                if c.segments.len() != segments.len() {
                    return None;
                }
                let mut caps = Vec::new();
                c.segments
                    .iter()
                    .zip(&segments)
                    .all(|(parts, text)| match_segment(parts, text, &mut caps))
                    .then_some((c, caps))
            })
            .ok_or_else(|| {
                "matches no collection of the mapping; add one (it may emit nothing) or remove \
                 the file"
                    .into()
            })
    }

    /// What one file of the tree becomes: its collection and its record (the JSON
    /// object, with what its path captured filled in), or every problem with it (not
    /// an object, malformed, a path that disagrees with the body). The file is named
    /// by its path relative to the tree's root.
    pub fn read_record(&self, rel: &str, text: &str) -> Result<(String, Value), Vec<String>> {
        let (collection, caps) = self.record_file(rel).map_err(|p| vec![p])?;
        // A UTF-8 byte order mark (left by some editors) is not part of the JSON.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut value: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Err(vec!["is not a JSON object".into()]),
            Err(e) => return Err(vec![format!("malformed JSON: {e}")]),
        };
        let object = value.as_object_mut().expect("checked above");
        let mut problems = Vec::new();
        for (cap, captured) in caps {
            match object.get(&cap) {
                Some(body) if text_of(body).as_deref() != Some(captured.as_str()) => {
                    problems.push(format!(
                        "the file name says {cap} {captured:?} but the body says {body}: the primary key disagrees"
                    ));
                }
                Some(_) => {}
                None => {
                    object.insert(cap, Value::String(captured));
                }
            }
        }
        if problems.is_empty() {
            Ok((collection.name.clone(), value))
        } else {
            Err(problems)
        }
    }
}

/// Every file below `dir`, and the entries that are not regular files (a FIFO, a
/// socket, a device, a dangling link): reading a FIFO would block the import forever,
/// so they are named and refused, never opened. A link is followed to see what it is,
/// and only to a file inside the tree (`inside`, canonical): a link out of it (to
/// `/etc/…`) would import a file nobody put in the tree. A directory that cannot be
/// listed ends the walk, named.
fn walk(
    dir: &Path,
    inside: &Path,
    out: &mut Vec<PathBuf>,
    odd: &mut Vec<(PathBuf, &'static str)>,
) -> Result<(), (PathBuf, std::io::Error)> {
    let named = |e| (dir.to_owned(), e);
    for entry in std::fs::read_dir(dir).map_err(named)? {
        let entry = entry.map_err(named)?;
        let path = entry.path();
        let kind = entry.file_type().map_err(named)?;
        if kind.is_dir() {
            walk(&path, inside, out, odd)?;
            continue;
        }
        if kind.is_symlink()
            && std::fs::canonicalize(&path).is_ok_and(|target| !target.starts_with(inside))
        {
            odd.push((
                path,
                "a link to a file outside the tree (links out of the tree are not followed)",
            ));
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            odd.push((path, "a link that leads nowhere"));
            continue;
        };
        if meta.is_file() {
            out.push(path);
        } else if meta.is_dir() {
            odd.push((
                path,
                "a link to a directory (links to directories are not followed)",
            ));
        } else {
            odd.push((path, special_kind(&meta)));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn special_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::Metadata) -> &'static str {
    "not a regular file"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_templates_capture() {
        let parts = parse_template("entry_{entry}_core_{core}.json").unwrap();
        let mut caps = Vec::new();
        assert!(match_segment(
            &parts,
            "entry_10.30.1.95_core_2a01:4f8:c0c:1::78.json",
            &mut caps
        ));
        assert_eq!(
            caps,
            vec![
                ("entry".into(), "10.30.1.95".into()),
                ("core".into(), "2a01:4f8:c0c:1::78".into())
            ]
        );
        let mut caps = Vec::new();
        assert!(!match_segment(
            &parse_template("{id}.json").unwrap(),
            "notes.txt",
            &mut caps
        ));
        assert!(parse_template("{a}{b}").is_err());
        assert!(parse_template("{a").is_err());
    }
}
