//! The transaction JSON form (`strata txn FILE`): any text is a transaction or an
//! error naming what is wrong.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = strata_ops::txn_json::parse_txn(text, "fuzz");
    }
});
