//! The flat snapshot reader (`load`, `import --format snapshot`): any text is
//! entries or an error; entries written back by the writer read back the same.
#![no_main]

use strata_ops::snapshot::{parse_snapshot, SnapshotWriter};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(entries) = parse_snapshot(text, "fuzz") else {
        return;
    };
    let mut out = Vec::new();
    let mut writer = SnapshotWriter::new(&mut out);
    for (k, v) in &entries {
        writer
            .entry(k.as_bytes(), v.as_bytes())
            .expect("write an entry");
    }
    writer.finish().expect("finish");
    let again = parse_snapshot(std::str::from_utf8(&out).expect("UTF-8"), "again")
        .expect("what the writer wrote reads back");
    assert_eq!(again, entries, "a snapshot does not round-trip");
});
