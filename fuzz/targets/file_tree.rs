//! One file of a JSON file tree through the sigilgate mapping (its path templates and
//! captures, then the body): any relative path and any text is a record of one
//! collection or the problems with it, never a panic; a record is an object that
//! holds every value its path captured.
#![no_main]

use std::sync::OnceLock;

use strata_import::mapping::Mapping;

fn mapping() -> &'static Mapping {
    static MAPPING: OnceLock<Mapping> = OnceLock::new();
    MAPPING.get_or_init(|| {
        Mapping::parse(
            include_str!("../../examples/sigilgate/mapping.toml"),
            "mapping.toml",
        )
        .expect("the example mapping parses")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is the file's path in the tree, the rest its body.
    let (path, body) = text.split_once('\n').unwrap_or((text, ""));
    match mapping().read_record(path, body) {
        Ok((collection, record)) => {
            assert!(!collection.is_empty());
            assert!(record.is_object(), "a record that is not an object");
        }
        Err(problems) => assert!(!problems.is_empty(), "refused without a reason"),
    }
});
