//! One NVD API 2.0 CVE record or page, or one CVE JSON 5 record (CVSS scores
//! with their source), as imported from a `cvss` feed: never a panic, and
//! every score kept is the one its vector gives, within 0–10.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    if let Ok((records, _)) = patchbay_feeds::scores::parse(bytes) {
        for r in records {
            for s in r.scores {
                assert!((0.0..=10.0).contains(&s.score.base_score));
                let again = patchbay_feeds::cvss::score(&s.score.vector).unwrap();
                assert_eq!(again.base_score, s.score.base_score);
            }
        }
    }
    let _ = patchbay_feeds::scores::shape(bytes);
});
