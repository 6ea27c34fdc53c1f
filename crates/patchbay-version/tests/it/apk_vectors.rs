//! apk-tools' own test vectors, osv-scalibr's Alpine vectors and osv.dev's Alpine
//! converter fixtures (`fixtures/version-vectors/`, provenance in
//! `fixtures/README.md`).

use std::cmp::Ordering;

use patchbay_version::{Scheme, VersionError, apk, compare, validate};

use crate::common::{scalibr, sym, tsv, vectors};

const LESS: u8 = 1;
const EQUAL: u8 = 2;
const GREATER: u8 = 4;
const FUZZY: u8 = 8;

/// `apk_version_result_mask()`: `~` means fuzzy-or-equal.
fn mask(op: &str) -> u8 {
    op.chars().fold(0, |m, c| {
        m | match c {
            '<' => LESS,
            '=' => EQUAL,
            '>' => GREATER,
            '~' => FUZZY | EQUAL,
            _ => panic!("operator {op:?}"),
        }
    })
}

fn bit(o: Ordering) -> u8 {
    match o {
        Ordering::Less => LESS,
        Ordering::Equal => EQUAL,
        Ordering::Greater => GREATER,
    }
}

/// `apk_version_match(a, op, b)` on valid versions.
fn matches(a: &apk::Version, op: &str, b: &apk::Version) -> bool {
    let m = mask(op);
    let r = if m & FUZZY != 0 {
        a.fuzzy_cmp(b)
    } else {
        a.cmp(b)
    };
    bit(r) & m != 0
}

/// The versions of version.data `cmp` rows that `apk_version_validate()` rejects.
/// The unit test calls the library's match/compare on them without validating, and
/// the library still answers from the valid prefix of the tokens (`1.0bc` is marked
/// "invalid. do string sort"; `_foo` and `_post` are not apk suffixes). apk-tools
/// 3.0.8's `apk version -t` prints nothing and exits 1 for `23_foo` and `1.0bc`
/// (see fixtures/README.md), and `compare` is an error here for all of them:
/// `23_foo > 4_beta`, `1.0 < 1.0bc`, `3.6.9_post1 ~ 3.6` and
/// `3.6.9_post1 ~ 3.8` (negated).
const INVALID_CMP_ROWS: [&str; 3] = ["23_foo", "1.0bc", "3.6.9_post1"];

/// `test/unit/version.data`, `cmp` rows: all 754. 750 hold as written (including
/// 14 of the 16 fuzzy `~`, `<~`, `>~` rows, 7 of them negated, evaluated as
/// `apk_version_match` does); the 4 with an invalid version are errors.
#[test]
fn version_data_cmp() {
    let (mut held, mut fuzzy, mut negated, mut invalid) = (0, 0, 0, 0);
    for r in tsv("apk-version-data.tsv")
        .into_iter()
        .filter(|r| r.cols[0] == "cmp")
    {
        let (l, o, rt) = (&r.cols[1], r.cols[2].as_str(), &r.cols[3]);
        let neg = r.cols.get(4).is_some_and(|c| c == "negated");
        let (a, b) = match (l.parse::<apk::Version>(), rt.parse::<apk::Version>()) {
            (Ok(a), Ok(b)) => (a, b),
            (a, _) => {
                let bad = if a.is_err() { l } else { rt };
                assert!(
                    INVALID_CMP_ROWS.contains(&bad.as_str()),
                    "line {}: {l} {o} {rt}",
                    r.line
                );
                let e = compare(Scheme::Apk, l, rt).unwrap_err();
                assert_eq!(&e.version, bad);
                invalid += 1;
                continue;
            }
        };
        let ok = matches(&a, o, &b);
        assert_eq!(ok, !neg, "line {}: {l} {o} {rt} (negated: {neg})", r.line);
        if o.contains('~') {
            fuzzy += 1;
        } else {
            assert!(!neg);
            let got = compare(Scheme::Apk, l, rt).unwrap();
            assert_eq!(
                bit(got) & mask(o),
                bit(got),
                "line {}: {l} {o} {rt} got {}",
                r.line,
                sym(got)
            );
            // The reverse comparison holds too.
            assert_eq!(compare(Scheme::Apk, rt, l).unwrap(), got.reverse());
        }
        if neg {
            negated += 1;
        }
        held += 1;
    }
    assert_eq!((held, fuzzy, negated, invalid), (750, 14, 7, 4));
}

/// `test/unit/version.data`, `valid` (6) and `invalid` (25) rows: all 31.
#[test]
fn version_data_validity() {
    let (mut valid, mut invalid) = (0, 0);
    for r in tsv("apk-version-data.tsv") {
        match r.cols[0].as_str() {
            "valid" => {
                validate(Scheme::Apk, &r.cols[1])
                    .unwrap_or_else(|e| panic!("line {}: {e}", r.line));
                valid += 1;
            }
            "invalid" => {
                let e: VersionError = validate(Scheme::Apk, &r.cols[1]).unwrap_err();
                assert_eq!(e.version, r.cols[1]);
                assert_eq!(e.scheme, Scheme::Apk);
                invalid += 1;
            }
            _ => {}
        }
    }
    assert_eq!((valid, invalid), (6, 25));
}

/// Checks an osv-scalibr Alpine file: every row with two valid versions holds; a row
/// with a version that apk-tools 3 rejects is an error naming that version (the
/// apk-tools 3.0.8 CLI prints nothing for them). Returns (held, errors).
fn scalibr_alpine(file: &str) -> (usize, usize) {
    let (mut held, mut errors) = (0, 0);
    for c in scalibr(file) {
        let valid = |s: &str| s.parse::<apk::Version>().is_ok();
        match compare(Scheme::Apk, &c.left, &c.right) {
            Ok(got) => {
                assert_eq!(
                    got,
                    c.op,
                    "{file}:{}: {} {} {}, got {}",
                    c.line,
                    c.left,
                    sym(c.op),
                    c.right,
                    sym(got)
                );
                assert_eq!(
                    compare(Scheme::Apk, &c.right, &c.left).unwrap(),
                    c.op.reverse()
                );
                held += 1;
            }
            Err(e) => {
                let first_bad = if valid(&c.left) { &c.right } else { &c.left };
                assert_eq!(&e.version, first_bad, "{file}:{}", c.line);
                assert!(!valid(first_bad));
                errors += 1;
            }
        }
    }
    (held, errors)
}

/// osv-scalibr `alpine-versions.txt`: 778 rows, 741 hold, 37 contain a version that
/// apk-tools 3 rejects (the same 37 rows the apk-tools 3.0.8 CLI refuses).
#[test]
fn scalibr_alpine_versions() {
    assert_eq!(scalibr_alpine("alpine-versions.txt"), (741, 37));
}

/// osv-scalibr `alpine-versions-generated.txt` (real Alpine package histories):
/// 13979 rows, 13921 hold, 58 contain a version that apk-tools 3 rejects.
#[test]
fn scalibr_alpine_versions_generated() {
    assert_eq!(scalibr_alpine("alpine-versions-generated.txt"), (13921, 58));
}

/// Versions of `valid_versions.txt` that apk-tools 3.0.8 (`apk version -c`) rejects:
/// historical versions that apk-tools 2 accepted.
const VALID_IN_APK2_ONLY: [&str; 8] = [
    "6.6.2p1-r0",
    "6.6.4p1-r2",
    "16.6.4p1-r1",
    "3.3.3p1-r3",
    "6.7.1p1-r1",
    "10.2.22.r0",
    "10.2.24.r0",
    "0.8.21.r2",
];

fn lines(rel: &str) -> Vec<String> {
    vectors(rel)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// osv.dev's Alpine converter fixtures: all 185 `valid_versions.txt` rows are valid
/// except the 8 that apk-tools 3 rejects; all 11 `invalid_versions.txt` rows are
/// invalid.
#[test]
fn osv_dev_alpine_fixtures() {
    let valid = lines("osv-dev-alpine-fixtures/valid_versions.txt");
    assert_eq!(valid.len(), 185);
    let mut rejected = Vec::new();
    for v in &valid {
        if validate(Scheme::Apk, v).is_err() {
            rejected.push(v.as_str());
        }
    }
    rejected.sort_unstable();
    let mut want = VALID_IN_APK2_ONLY.to_vec();
    want.sort_unstable();
    assert_eq!(rejected, want);

    let invalid = lines("osv-dev-alpine-fixtures/invalid_versions.txt");
    assert_eq!(invalid.len(), 11);
    for v in &invalid {
        assert!(validate(Scheme::Apk, v).is_err(), "{v} must be invalid");
    }
}
