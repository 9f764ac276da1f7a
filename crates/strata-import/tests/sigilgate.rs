//! The sigilgate mapping against the example data: the exact expected result, and
//! every defect of the broken tree named with its file.

use std::collections::BTreeMap;
use std::path::Path;

use strata_import::mapping::{Mapping, MappingError};

fn examples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"))
}

#[test]
fn sigilgate_legacy_maps_to_the_expected_store() {
    let mapping = Mapping::load(&examples().join("sigilgate/mapping.toml")).unwrap();
    let got: BTreeMap<String, String> = mapping
        .run(&examples().join("sigilgate/legacy"))
        .unwrap()
        .into_iter()
        .collect();
    let expected: BTreeMap<String, String> = serde_json::from_str(
        &std::fs::read_to_string(examples().join("sigilgate/expected.json")).unwrap(),
    )
    .unwrap();
    let missing: Vec<_> = expected.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !expected.contains_key(*k)).collect();
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && wrong.is_empty(),
        "missing {missing:?}\nextra {extra:?}\nwrong {wrong:?}"
    );
}

#[test]
fn broken_tree_reports_all_three_defects() {
    let mapping = Mapping::load(&examples().join("sigilgate/mapping.toml")).unwrap();
    let err = mapping
        .run(&examples().join("sigilgate-broken/legacy"))
        .unwrap_err();
    let MappingError::Input(defects) = &err else {
        panic!("{err}")
    };
    let text = err.to_string();
    assert_eq!(defects.len(), 3, "{text}");
    assert!(
        defects
            .iter()
            .any(|d| d.file.ends_with("users/2.json") && d.problem.contains("primary key")),
        "{text}"
    );
    assert!(
        defects
            .iter()
            .any(|d| d.file.ends_with("users/4.json") && d.problem.contains("malformed JSON")),
        "{text}"
    );
    assert!(
        defects
            .iter()
            .any(|d| d.problem.contains("99") && d.problem.contains("dangling")),
        "{text}"
    );
}
