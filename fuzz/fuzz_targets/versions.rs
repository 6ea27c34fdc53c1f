//! Version strings of every scheme: parsing never panics, and comparison is
//! a total order (antisymmetric, reflexive) on what parses.
#![no_main]
use patchbay_version::{Scheme, compare};
libfuzzer_sys::fuzz_target!(|input: (u8, &str, &str)| {
    let (k, a, b) = input;
    let scheme = [Scheme::Deb, Scheme::Rpm, Scheme::Apk, Scheme::Semver][k as usize % 4];
    if let (Ok(ab), Ok(ba)) = (compare(scheme, a, b), compare(scheme, b, a)) {
        assert_eq!(ab, ba.reverse(), "{scheme} {a:?} vs {b:?}");
    }
    if let Ok(o) = compare(scheme, a, a) {
        assert_eq!(o, std::cmp::Ordering::Equal, "{scheme} {a:?}");
    }
});
