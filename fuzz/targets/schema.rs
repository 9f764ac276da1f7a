//! The schema file (TOML): any text is a schema or an error naming the file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = strata_schema::Schema::parse(text, "fuzz.toml");
    }
});
