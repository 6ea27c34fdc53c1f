//! Property tests: no parser panics on any input, and the IO layer's detection does
//! not either.

use patchbay_feeds::source::Collect;
use patchbay_feeds::{cvss, epss, kev, osv, scores};
use proptest::prelude::*;

/// Bytes that are often almost-JSON, almost-CSV or almost-CVSS.
fn feedish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        "[{}\\[\\]\":,a-z0-9 \\n._-]{0,200}".prop_map(String::into_bytes),
        "(#model_version:v1,score_date:[0-9TZ:-]{0,25}\\n)?cve,epss,percentile\\n([A-Za-z0-9.,-]{0,30}\\n){0,5}"
            .prop_map(String::into_bytes),
        "CVSS:[0-9.]{1,4}(/[A-Za-z]{1,3}:[A-Za-z]{1,3}){0,14}".prop_map(String::into_bytes),
    ]
}

/// A real NVD record (with a v4.0 and a v3.1 score) cut or with a byte changed.
fn mutated_nvd() -> impl Strategy<Value = Vec<u8>> {
    let base = crate::common::fixture("cvss/nvd/CVE-2025-13836.json");
    let len = base.len();
    (0..len, any::<u8>(), any::<bool>()).prop_map(move |(at, byte, cut)| {
        let mut b = base.clone();
        if cut {
            b.truncate(at);
        } else {
            b[at] = byte;
        }
        b
    })
}

/// A real record cut or with a byte changed.
fn mutated_record() -> impl Strategy<Value = Vec<u8>> {
    let base = crate::common::fixture("osv/ubuntu/UBUNTU-CVE-2025-32463.json");
    let len = base.len();
    (0..len, any::<u8>(), any::<bool>()).prop_map(move |(at, byte, cut)| {
        let mut b = base.clone();
        if cut {
            b.truncate(at);
        } else {
            b[at] = byte;
        }
        b
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn osv_parse_never_panics(bytes in feedish()) {
        let _ = osv::parse(&bytes);
    }

    #[test]
    fn scores_parse_never_panics(bytes in feedish()) {
        let _ = scores::parse(&bytes);
    }

    /// A real NVD record cut or with a byte changed: never a panic, and every
    /// score that comes out is one computed from a vector (0–10).
    #[test]
    fn mutated_nvd_record(bytes in mutated_nvd()) {
        if let Ok((records, _)) = scores::parse(&bytes) {
            for r in records {
                for s in r.scores {
                    prop_assert!((0.0..=10.0).contains(&s.score.base_score));
                    prop_assert_eq!(cvss::score(&s.score.vector).unwrap().base_score, s.score.base_score);
                }
            }
        }
        let mut c = patchbay_feeds::source::Collect::default();
        let _ = patchbay_feeds::read_bytes("nvd.json", &bytes, &mut c);
    }

    #[test]
    fn osv_parse_of_mutated_records_never_panics(bytes in mutated_record()) {
        if let Err(e) = osv::parse(&bytes) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn kev_parse_never_panics(bytes in feedish()) {
        let _ = kev::parse(&bytes);
    }

    #[test]
    fn epss_read_never_panics(bytes in feedish()) {
        let _ = epss::read(&bytes[..], |_| {}, |_| {});
    }

    #[test]
    fn cvss_score_never_panics(s in "\\PC{0,80}", bytes in feedish()) {
        let _ = cvss::score(&s);
        let _ = cvss::score(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn cvss_scores_are_in_range(v in "CVSS:3\\.1/AV:[NALP]/AC:[LH]/PR:[NLH]/UI:[NR]/S:[UC]/C:[NLH]/I:[NLH]/A:[NLH]") {
        let s = cvss::score(&v).unwrap();
        prop_assert!((0.0..=10.0).contains(&s.base_score));
    }

    #[test]
    fn read_bytes_never_panics(bytes in feedish(), name in "[a-z]{1,8}\\.(json|jsonl|csv|gz|zip)") {
        let _ = patchbay_feeds::read_bytes(&name, &bytes, &mut Collect::default());
    }
}
