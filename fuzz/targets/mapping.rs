//! The import mapping (TOML, with jq expressions compiled at parse): any text is a
//! mapping or an error naming the file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = strata_import::mapping::Mapping::parse(text, "fuzz.toml");
    }
});
