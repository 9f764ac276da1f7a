//! Store URLs (`--store`, the config file, `--from`/`--to`): any text is a URL or an
//! error, and a URL's redacted form never shows the password it was given.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = strata_store::StoreUrl::parse(text) {
        let shown = url.redacted();
        if let strata_store::StoreUrl::Etcd {
            password: Some(p), ..
        } = &url
        {
            assert!(
                !shown.contains(&format!(":{p}@")),
                "the redacted URL shows the password"
            );
        }
    }
});
