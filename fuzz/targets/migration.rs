//! A migration file (TOML steps, with jq compiled at parse): any text is a migration
//! or an error naming the file, never a panic; one that parses has the same checksum
//! each time it is read (the checksum guards applied migrations against edits).
#![no_main]

use std::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("migrations/users/0001_fuzz.toml");
    match strata_migrate::file::parse_file(text, path, 1, "fuzz", "users") {
        Ok(m) => {
            let again = strata_migrate::file::parse_file(text, path, 1, "fuzz", "users")
                .expect("a migration that parsed once parses again");
            assert_eq!(m.checksum, again.checksum, "the checksum is not stable");
        }
        Err(e) => assert!(e.to_string().contains("0001_fuzz.toml"), "{e}"),
    }
});
