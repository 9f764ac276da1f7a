//! The backup layout read back on restore: a file's bytes parse to members or not at
//! all, parsed members render and parse back the same, and any key's place (file,
//! member) leads back to the key.
#![no_main]

use strata_backup::layout::{key_of, locate, parse, render};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(members) = parse(data) {
        let again = parse(&render(&members)).expect("a rendered file parses");
        assert_eq!(again, members, "a backup file does not round-trip");
    }
    if !data.is_empty() && data[0] == b'/' {
        let (file, member) = locate(data);
        if let Some(key) = key_of(&file, &member) {
            assert_eq!(key, data, "locate and key_of disagree");
        }
    }
});
