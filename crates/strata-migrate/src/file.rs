//! Migration files: `migrations/<area>/<version>_<name>.toml`, each a list of steps.
//!
//! Owns reading a migrations folder into areas of ordered migrations, checking every
//! step before anything runs, the checksum (SHA-256 over a canonical JSON form, so
//! comments and layout may change but meaning may not) and the template of
//! `strata migrate new`. It does not touch a store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::spec::StepSpec;
use crate::step::Step;
use crate::Error;

/// One migration file, checked.
#[derive(Clone, Debug)]
pub struct Migration {
    pub area: String,
    pub version: u64,
    pub name: String,
    pub description: String,
    pub path: PathBuf,
    pub steps: Vec<Step>,
    /// SHA-256 of the canonical form, lowercase hex.
    pub checksum: String,
}

impl Migration {
    /// `0001_move_plan`: how status lines and records name it.
    pub fn label(&self) -> String {
        format!("{:04}_{}", self.version, self.name)
    }

    /// A file with no steps yet (as `migrate new` writes it): listed by `status`,
    /// refused by `plan` and `up` until it has one.
    pub fn is_draft(&self) -> bool {
        self.steps.is_empty()
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    description: String,
    #[serde(default)]
    steps: Vec<StepSpec>,
}

/// Every area of a migrations folder: area name → migrations in version order.
pub fn load_dir(dir: &Path) -> Result<BTreeMap<String, Vec<Migration>>, Error> {
    let io = |path: &Path, e: std::io::Error| Error::File {
        path: path.display().to_string(),
        reason: format!("cannot read it: {e}"),
    };
    let mut areas = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::File {
        path: dir.display().to_string(),
        reason: format!("cannot read the migrations folder: {e}"),
    })?;
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, e))?;
        let path = entry.path();
        if !path.is_dir() {
            // A migration placed beside the area folders would never run: say so.
            if path.extension().is_some_and(|e| e == "toml") {
                return Err(Error::File {
                    path: path.display().to_string(),
                    reason: "a migration file outside an area folder is never applied; \
                             move it into <migrations>/<area>/ (e.g. migrations/users/)"
                        .into(),
                });
            }
            continue;
        }
        let area = entry.file_name().to_string_lossy().into_owned();
        check_area_name(&area).map_err(|reason| Error::File {
            path: path.display().to_string(),
            reason,
        })?;
        areas.insert(area.clone(), load_area(&path, &area)?);
    }
    Ok(areas)
}

/// The migrations of one area folder, in version order.
pub fn load_area(dir: &Path, area: &str) -> Result<Vec<Migration>, Error> {
    let mut out: Vec<Migration> = Vec::new();
    let files = toml_files(dir).map_err(|e| Error::File {
        path: dir.display().to_string(),
        reason: if e.kind() == std::io::ErrorKind::Other {
            e.to_string()
        } else {
            format!("cannot read it: {e}")
        },
    })?;
    for path in files {
        out.push(load_file(&path, area)?);
    }
    out.sort_by_key(|m| m.version);
    if let Some(pair) = out.windows(2).find(|w| w[0].version == w[1].version) {
        return Err(Error::File {
            path: pair[1].path.display().to_string(),
            reason: format!(
                "version {} is also used by {}; give each migration of an area its own version",
                pair[1].version,
                pair[0].path.display()
            ),
        });
    }
    Ok(out)
}

/// The `*.toml` files of a folder (in no particular order). A file named like a
/// migration (`0003_…`) without the `.toml` extension is an error, not skipped: it
/// would silently never run.
fn toml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in std::fs::read_dir(dir)?.flatten().map(|entry| entry.path()) {
        if path.extension().and_then(|e| e.to_str()) == Some("toml") {
            out.push(path);
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let digits = name.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && name[digits..].starts_with('_') {
            return Err(std::io::Error::other(format!(
                "{name} is named like a migration but is not a .toml file, so it would never run; \
                 rename it to end in .toml (or move it out of the folder)"
            )));
        }
    }
    Ok(out)
}

/// Reads and checks one migration file.
pub fn load_file(path: &Path, area: &str) -> Result<Migration, Error> {
    let fail = |reason: String| Error::File {
        path: path.display().to_string(),
        reason,
    };
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let (version, name) = parse_file_name(stem).ok_or_else(|| {
        fail("the file name must be <version>_<name>.toml, e.g. 0001_move_plan.toml".into())
    })?;
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    parse_file(&text, path, version, name, area)
}

/// Parses and checks the text of a migration file (`path`, whose name gave `version`
/// and `name`, names it in errors).
pub fn parse_file(
    text: &str,
    path: &Path,
    version: u64,
    name: &str,
    area: &str,
) -> Result<Migration, Error> {
    let fail = |reason: String| Error::File {
        path: path.display().to_string(),
        reason,
    };
    let spec: FileSpec = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
    let mut steps = Vec::new();
    for (i, s) in spec.steps.iter().enumerate() {
        steps.push(Step::from_spec(s).map_err(|e| fail(format!("step {}: {e}", i + 1)))?);
    }
    let checksum = checksum(&spec);
    Ok(Migration {
        area: area.to_owned(),
        version,
        name: name.to_owned(),
        description: spec.description,
        path: path.to_owned(),
        steps,
        checksum,
    })
}

fn parse_file_name(stem: &str) -> Option<(u64, &str)> {
    let (version, name) = stem.split_once('_')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    Some((version.parse().ok()?, name))
}

/// An area name is one plain key segment.
pub fn check_area_name(area: &str) -> Result<(), String> {
    if area.is_empty()
        || !area
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        || area.starts_with('.')
    {
        return Err(format!(
            "area {area:?} must be a name of letters, digits, `_`, `-` and `.`"
        ));
    }
    Ok(())
}

/// SHA-256 over `strata-migration/1\n` and the canonical JSON of the file (sorted keys,
/// no whitespace): comments, layout and key order do not change it.
fn checksum(spec: &FileSpec) -> String {
    let value = serde_json::to_value(spec).expect("a parsed migration serializes");
    let canonical = serde_json::to_string(&value).expect("JSON values serialize");
    let mut hasher = Sha256::new();
    hasher.update(b"strata-migration/1\n");
    hasher.update(canonical.as_bytes());
    strata_core::hex::encode(&hasher.finalize())
}

/// Writes `<dir>/<area>/<next version>_<name>.toml` from the template; returns its path.
pub fn new_file(dir: &Path, area: &str, name: &str) -> Result<PathBuf, Error> {
    let fail = |path: &Path, reason: String| Error::File {
        path: path.display().to_string(),
        reason,
    };
    check_area_name(area).map_err(|r| fail(dir, r))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(fail(
            dir,
            format!("name {name:?} must be letters, digits, `_` and `-`, e.g. move_plan"),
        ));
    }
    let area_dir = dir.join(area);
    std::fs::create_dir_all(&area_dir).map_err(|e| fail(&area_dir, e.to_string()))?;
    // Only the file names count: a new migration can be started while another file
    // of the area is still being written (and does not parse yet).
    let files = toml_files(&area_dir).map_err(|e| fail(&area_dir, e.to_string()))?;
    let last = files
        .iter()
        .filter_map(|path| {
            let stem = path.file_stem()?.to_str()?;
            parse_file_name(stem).map(|(version, _)| version)
        })
        .max();
    let next = last.map_or(1, |v| v + 1);
    let path = area_dir.join(format!("{next:04}_{name}.toml"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| fail(&path, e.to_string()))?;
    std::io::Write::write_all(&mut file, TEMPLATE.replace("{name}", name).as_bytes())
        .map_err(|e| fail(&path, e.to_string()))?;
    Ok(path)
}

const TEMPLATE: &str = r#"# Migration {name}. Steps run in order; each rewrites every object its pattern
# matches, once, with a compare on every key it read (a concurrent write is retried).
# Patterns: `/prefix/{var}/...`; a `{var}` is one key segment. Field paths are relative
# to the object (`billing/plan`). Preview with `strata migrate plan`, apply with
# `strata migrate up`. Once applied, do not edit this file: add a new migration.
description = "What this migration does, in one sentence"

# [[steps]]
# op = "rename_field"       # a field moves; `to` may be an absolute key template
# object = "/app/users/{id}"
# from = "plan"
# to = "billing/plan"

# [[steps]]
# op = "set_default"        # only where the field is missing
# object = "/app/users/{id}"
# field = "billing/currency"
# value = "EUR"

# [[steps]]
# op = "split"              # fields move to another namespace: {to}/{field}
# object = "/app/nodes/{ip}"
# fields = ["grpc_path"]
# to = "/app/paths/{ip}"

# [[steps]]
# op = "move"               # re-key whole objects
# from = "/app/hosts/{ip}"
# to = "/app/nodes/{ip}"

# [[steps]]
# op = "delete_field"       # or op = "delete" with only `object`: the whole object
# object = "/app/users/{id}"
# field = "legacy_flag"

# [[steps]]
# op = "explode_json"       # a JSON object value becomes one key per member
# object = "/app/devices/{id}"   # (op = "implode_json" does the reverse)
# field = "config"

# [[steps]]
# op = "jq"                 # `.` is {field: value}; `$vars` the pattern's variables
# object = "/app/users/{id}"
# filter = '.status |= ascii_downcase'
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_the_template_shows_is_valid_once_uncommented() {
        let dir = tempfile::tempdir().unwrap();
        let path = new_file(dir.path(), "users", "try_it").unwrap();
        assert!(
            path.ends_with("users/0001_try_it.toml"),
            "{}",
            path.display()
        );
        let template = std::fs::read_to_string(&path).unwrap();
        // As written it loads, as a draft (no steps) that plan and up refuse.
        assert!(load_file(&path, "users").unwrap().is_draft());
        let blocks: Vec<&str> = template.split("# [[steps]]\n").skip(1).collect();
        assert_eq!(blocks.len(), 7, "{template}");
        for block in blocks {
            let step: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("# "))
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(&path, format!("[[steps]]\n{step}")).unwrap();
            let migration = load_file(&path, "users")
                .unwrap_or_else(|e| panic!("the template's step\n{step}does not load: {e}"));
            assert_eq!(migration.steps.len(), 1);
        }
    }

    /// Regression (adversarial trials): a migration file beside the area folders, or
    /// one without `.toml`, was silently ignored and so never ran.
    #[test]
    fn a_misplaced_migration_file_is_named_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("users")).unwrap();
        std::fs::write(dir.path().join("README.md"), "notes").unwrap();
        std::fs::write(dir.path().join("users/notes.txt"), "notes").unwrap();
        assert!(load_dir(dir.path()).unwrap()["users"].is_empty());
        std::fs::write(dir.path().join("0001_x.toml"), "[[steps]]").unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("0001_x.toml: a migration file outside an area folder"),
            "{err}"
        );
        std::fs::remove_file(dir.path().join("0001_x.toml")).unwrap();
        std::fs::write(dir.path().join("users/0002_y.tml"), "[[steps]]").unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("0002_y.tml is named like a migration but is not a .toml file"),
            "{err}"
        );
    }

    #[test]
    fn a_new_file_takes_the_next_version_even_when_another_does_not_parse() {
        let dir = tempfile::tempdir().unwrap();
        let area = dir.path().join("nodes");
        std::fs::create_dir(&area).unwrap();
        std::fs::write(area.join("0007_half_written.toml"), "steps = [ {").unwrap();
        std::fs::write(area.join("notes.txt"), "not a migration").unwrap();
        let path = new_file(dir.path(), "nodes", "next").unwrap();
        assert!(path.ends_with("nodes/0008_next.toml"), "{}", path.display());
        let err = new_file(dir.path(), "nodes", "bad name")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be letters, digits"), "{err}");
        let err = new_file(dir.path(), "../up", "x").unwrap_err().to_string();
        assert!(err.contains("must be a name of letters"), "{err}");
    }
}
