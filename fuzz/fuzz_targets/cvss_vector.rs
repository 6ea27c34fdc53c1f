//! CVSS v2/v3.x/v4.0 vectors from advisories.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(s) = patchbay_feeds::cvss::score(text) {
        assert!(
            (0.0..=10.0).contains(&s.base_score),
            "score out of range for {text:?}"
        );
    }
    let _ = patchbay_feeds::cvss::best(text.split('\n'));
});
