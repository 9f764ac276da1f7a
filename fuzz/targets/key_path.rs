//! Key paths and their segment codec: parsing any text never panics, a parsed path
//! rebuilt from its segments is the same path, and every segment survives encoding.
#![no_main]

use strata_core::key::{decode_segment, encode_segment};
use strata_core::KeyPath;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(
        decode_segment(&encode_segment(text)),
        text,
        "a segment does not round-trip"
    );
    if let Ok(path) = KeyPath::parse(text) {
        let rebuilt = KeyPath::from_segments(path.segments());
        assert_eq!(rebuilt, path, "a path rebuilt from its segments differs");
    }
});
