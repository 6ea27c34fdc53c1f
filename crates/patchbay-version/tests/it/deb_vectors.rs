//! dpkg's own test vectors and osv-scalibr's Debian vectors
//! (`fixtures/version-vectors/`, provenance in `fixtures/README.md`).

use std::cmp::Ordering;

use patchbay_version::{Scheme, compare, deb};

use crate::common::{op, scalibr, sym, tsv};

fn check_pairs(rows: &[(usize, String, Ordering, String)], file: &str) -> usize {
    for (line, l, o, r) in rows {
        let got = compare(Scheme::Deb, l, r).unwrap_or_else(|e| panic!("{file}:{line}: {e}"));
        assert_eq!(
            got,
            *o,
            "{file}:{line}: {l} {} {r}, got {}",
            sym(*o),
            sym(got)
        );
        let back = compare(Scheme::Deb, r, l).unwrap();
        assert_eq!(back, o.reverse(), "{file}:{line}: reversed");
    }
    rows.len()
}

/// `scripts/t/Dpkg_Version.t`: all 43 rows.
#[test]
fn dpkg_version_t() {
    let rows: Vec<_> = tsv("dpkg-Dpkg_Version-t.tsv")
        .into_iter()
        .map(|r| (r.line, r.cols[0].clone(), op(&r.cols[1]), r.cols[2].clone()))
        .collect();
    assert_eq!(check_pairs(&rows, "dpkg-Dpkg_Version-t.tsv"), 43);
}

/// `lib/dpkg/t/t-version.c` test_version_compare / test_version_relate: all 15 rows.
/// Those tests compare version *objects*, two of which have an upstream version
/// that does not start with a digit (`a`, `b`), which dpkg's parser only warns
/// about; they are compared through [`deb::Version::parse_lax`], and the strict
/// parser must reject exactly those.
#[test]
fn dpkg_t_version_c() {
    let mut n = 0;
    let mut lax_only = 0;
    for r in tsv("dpkg-t-version-c.tsv") {
        let (l, o, rt) = (&r.cols[1], r.cols[2].as_str(), &r.cols[3]);
        let a = deb::Version::parse_lax(l).unwrap();
        let b = deb::Version::parse_lax(rt).unwrap();
        let got = a.cmp(&b);
        match o {
            "!=" => assert_ne!(got, Ordering::Equal, "line {}", r.line),
            _ => assert_eq!(got, op(o), "line {}: {l} {o} {rt}", r.line),
        }
        let strict_ok = l.parse::<deb::Version>().is_ok() && rt.parse::<deb::Version>().is_ok();
        let digit_start = |s: &str| {
            s.split(':')
                .nth(1)
                .is_some_and(|u| u.starts_with(|c: char| c.is_ascii_digit()))
        };
        assert_eq!(
            strict_ok,
            digit_start(l) && digit_start(rt),
            "line {}",
            r.line
        );
        if strict_ok {
            let got = compare(Scheme::Deb, l, rt).unwrap();
            assert_eq!(got, a.cmp(&b));
        } else {
            lax_only += 1;
        }
        n += 1;
    }
    assert_eq!(n, 15);
    assert_eq!(lax_only, 2, "the 0:a-0 / 0:b-0 rows");
}

/// Decodes the `|…|` input of the parse table (C escapes: `\t`).
fn unquote(cell: &str) -> String {
    let inner = cell
        .strip_prefix('|')
        .and_then(|s| s.strip_suffix('|'))
        .expect("|…|");
    inner.replace("\\t", "\t")
}

/// `lib/dpkg/t/t-version.c` test_version_parse: every row, with the rows that say
/// "same for each of: …" expanded to one case per character.
///
/// Decision for what dpkg only warns about (`warning` rows): the strict parser
/// (`FromStr`, used by [`compare`] and OSV evaluation) rejects them — dpkg-deb
/// refuses to build such versions, so no archive package has one;
/// [`deb::Version::parse_lax`] accepts them as `dpkg --compare-versions` does.
#[test]
fn dpkg_t_version_c_parse() {
    let (mut ok, mut error, mut warning) = (0, 0, 0);
    for r in tsv("dpkg-t-version-c-parse.tsv") {
        let input = unquote(&r.cols[0]);
        let expected = r.cols[1].as_str();
        let note = r.cols.get(5).map(String::as_str).unwrap_or("");
        let mut inputs = vec![input.clone()];
        if let Some(list) = note.split("same for each of: ").nth(1) {
            assert!(input.contains('!'));
            for c in list.split(' ').filter(|c| !c.is_empty()) {
                inputs.push(input.replace('!', c));
            }
        }
        for input in inputs {
            let strict = input.parse::<deb::Version>();
            let lax = deb::Version::parse_lax(&input);
            match expected {
                "ok" => {
                    let v = strict.unwrap_or_else(|e| panic!("line {}: {e}", r.line));
                    let want = (
                        r.cols[2].parse::<u32>().unwrap(),
                        r.cols[3].as_str(),
                        r.cols[4].as_str(),
                    );
                    assert_eq!(
                        (v.epoch(), v.upstream(), v.revision()),
                        want,
                        "line {}",
                        r.line
                    );
                    let l = lax.unwrap();
                    assert_eq!((l.epoch(), l.upstream(), l.revision()), want);
                    ok += 1;
                }
                "error" => {
                    assert!(
                        strict.is_err(),
                        "line {}: {input:?} must be an error",
                        r.line
                    );
                    assert!(
                        lax.is_err(),
                        "line {}: {input:?} must be an error (lax)",
                        r.line
                    );
                    error += 1;
                }
                "warning" => {
                    let e = strict.expect_err("strict parsing rejects dpkg warnings");
                    assert_eq!(e.version, input);
                    assert!(lax.is_ok(), "line {}: {input:?} lax: {lax:?}", r.line);
                    warning += 1;
                }
                other => panic!("unknown expectation {other}"),
            }
        }
    }
    // 17 ok, 12 error, 4 warning rows; the warning rows for invalid characters
    // expand to 1 + 24 (upstream) and 1 + 25 (revision) cases.
    assert_eq!((ok, error, warning), (17, 12, 1 + 25 + 1 + 26));
}

/// osv-scalibr `debian-versions.txt`: all 30 rows.
#[test]
fn scalibr_debian_versions() {
    let rows: Vec<_> = scalibr("debian-versions.txt")
        .into_iter()
        .map(|c| (c.line, c.left, c.op, c.right))
        .collect();
    assert_eq!(check_pairs(&rows, "debian-versions.txt"), 30);
}

/// osv-scalibr `debian-versions-generated.txt` (real Debian package histories):
/// all 14442 rows.
#[test]
fn scalibr_debian_versions_generated() {
    let rows: Vec<_> = scalibr("debian-versions-generated.txt")
        .into_iter()
        .map(|c| (c.line, c.left, c.op, c.right))
        .collect();
    assert_eq!(check_pairs(&rows, "debian-versions-generated.txt"), 14442);
}
