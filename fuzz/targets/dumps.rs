//! The dump readers of `import --format`: an etcd v2 answer, `etcdctl -w json` and a
//! Consul export (the first byte picks the format, the rest is the file).
#![no_main]

use strata_import::dumps::parse_dump;
use strata_import::DumpFormat;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let format = match first % 4 {
        0 => DumpFormat::EtcdV2,
        1 => DumpFormat::EtcdctlJson,
        2 => DumpFormat::Consul,
        _ => DumpFormat::Snapshot,
    };
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = parse_dump(text, format, "fuzz");
    }
});
