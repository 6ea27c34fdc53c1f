//! The language ecosystems' schemes (issue 20, item 5): PEP 440 (PyPI) against
//! packaging's own sorted list and against `packaging.version` on every version
//! the staged PyPA advisories name; Go against the Go vulnerability database's
//! own versions and an independent Go-tag-to-SemVer mapping done in Python.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use patchbay_version::osv::{Event, Range, RangeKind, evaluate};
use patchbay_version::{Scheme, compare, validate};

use crate::common::{PYTHON, Rng, oracle_scale, pairs, python_has, python_over_pairs, vectors};

fn lines(rel: &str) -> Vec<String> {
    vectors(rel)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// packaging's `tests/test_version.py` `VERSIONS`: "in the correct sorting
/// order", so every earlier entry is below every later one.
#[test]
fn pypi_packaging_versions_are_in_order() {
    let vs = lines("pypa-packaging-test_version-VERSIONS.txt");
    assert_eq!(vs.len(), 55);
    for (i, a) in vs.iter().enumerate() {
        for (j, b) in vs.iter().enumerate() {
            assert_eq!(
                compare(Scheme::Pypi, a, b).unwrap(),
                i.cmp(&j),
                "{a} vs {b}"
            );
        }
    }
}

#[test]
fn pypi_normalised_spellings_are_equal() {
    for (a, b) in [
        ("1.0", "1.0.0"),
        ("1.0a1", "1.0alpha1"),
        ("1.0c1", "1.0rc1"),
        ("1.0-1", "1.0.post1"),
        ("v1.0", "1.0"),
        ("1.0.dev0", "1.0.dev"),
        ("0!1.0", "1.0"),
    ] {
        assert_eq!(
            compare(Scheme::Pypi, a, b).unwrap(),
            Ordering::Equal,
            "{a} {b}"
        );
    }
    for bad in ["2004d", "1.0-foo", "", "trunk", "1.0+", "1..0"] {
        let e = validate(Scheme::Pypi, bad).unwrap_err();
        assert_eq!((e.scheme, e.version.as_str()), (Scheme::Pypi, bad));
    }
}

const PACKAGING: &str = r#"
import sys
from packaging.version import Version
for line in open(sys.argv[1]):
    a, b = line.rstrip("\n").split("\t")
    a, b = Version(a), Version(b)
    print(-1 if a < b else (1 if a > b else 0))
"#;

/// Every version the staged PyPA advisories name (13,064, from
/// `derived/pypa-osv-event-versions.txt`): valid exactly when
/// `packaging.version` accepts it, and ordered as it orders them (sorted
/// neighbours plus random pairs plus near-miss mutations).
#[test]
fn pypi_oracle_packaging() {
    assert!(
        python_has("packaging.version"),
        "python3-packaging is not importable by {PYTHON}: `apt-get install -y python3-packaging` (this test does not skip)"
    );
    let all = lines("derived/pypa-osv-event-versions.txt");
    // Validity against packaging, in one python call.
    let valid_py = {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for v in &all {
            writeln!(f, "{v}").unwrap();
        }
        f.flush().unwrap();
        let out = std::process::Command::new(PYTHON)
            .args([
                "-c",
                "import sys\nfrom packaging.version import Version, InvalidVersion\nfor l in open(sys.argv[1]):\n    try:\n        Version(l.rstrip('\\n')); print(1)\n    except InvalidVersion:\n        print(0)\n",
            ])
            .arg(f.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l == "1")
            .collect::<Vec<bool>>()
    };
    assert_eq!(valid_py.len(), all.len());
    let mut valid = Vec::new();
    for (v, py) in all.iter().zip(&valid_py) {
        assert_eq!(validate(Scheme::Pypi, v).is_ok(), *py, "validity of {v:?}");
        if *py {
            valid.push(v.clone());
        }
    }
    assert!(valid.len() > 12_900, "{} valid", valid.len());
    let mut rng = Rng(0x7079_7069);
    let cmp = |a: &String, b: &String| compare(Scheme::Pypi, a, b).unwrap();
    let mut ps = pairs(&valid, cmp, 3000 * oracle_scale(), &mut rng);
    for _ in 0..500 * oracle_scale() {
        let v = rng.pick(&valid).clone();
        for suffix in ["a1", ".post1", ".dev0", "+local.1", ".0", "rc1", "-1"] {
            let m = format!("{v}{suffix}");
            if validate(Scheme::Pypi, &m).is_ok() {
                ps.push((v.clone(), m));
            }
        }
    }
    let want = python_over_pairs(PACKAGING, &ps);
    let mut wrong = Vec::new();
    for ((a, b), w) in ps.iter().zip(&want) {
        if compare(Scheme::Pypi, a, b).unwrap() != *w {
            wrong.push(format!("{a} vs {b}: packaging says {w:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} pairs disagree: {:?}",
        wrong.len(),
        ps.len(),
        &wrong[..wrong.len().min(10)]
    );
}

/// The independent Go mapping: Python does what the vulnerability database's
/// `GoTagToSemver` / module `v` stripping does, then compares SemVer 2.0.0
/// precedence by the specification's own rules (section 11).
const GO_ORACLE: &str = r#"
import re, sys
def canon(v):
    m = re.fullmatch(r"go(\d+)\.(\d+)(?:\.(\d+))?(?:(beta|rc)(\d+))?", v)
    if m:
        s = f"{m[1]}.{m[2]}.{m[3] or 0}"
        return s + (f"-{m[4]}.{m[5]}" if m[4] else "")
    return v[1:] if v.startswith("v") else v
def key(v):
    v = canon(v).split("+")[0]
    core, _, pre = v.partition("-")
    nums = tuple(int(x) for x in core.split("."))
    if not pre:
        return (nums, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (nums, 0, ids)
for line in open(sys.argv[1]):
    a, b = line.rstrip("\n").split("\t")
    ka, kb = key(a), key(b)
    print(-1 if ka < kb else (1 if ka > kb else 0))
"#;

/// Every version the staged Go vulnerability database names (2,485), valid,
/// and ordered as the Python mapping orders them; toolchain tags (`go1.19.8`,
/// `go1.21rc2`) and `v`-prefixed module versions against the records' bare
/// versions.
#[test]
fn go_oracle() {
    let all = lines("derived/go-vulndb-event-versions.txt");
    for v in &all {
        validate(Scheme::Go, v).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut items: BTreeSet<String> = all.iter().cloned().collect();
    for v in &all {
        items.insert(format!("v{v}"));
        // The toolchain spelling of a stdlib version.
        if let Some(t) = v.strip_suffix(".0").filter(|t| t.matches('.').count() == 1) {
            items.insert(format!("go{t}"));
        }
        if let Some((core, pre)) = v.split_once('-') {
            if let Some(n) = pre.strip_prefix("rc.") {
                items.insert(format!(
                    "go{}rc{n}",
                    core.strip_suffix(".0").unwrap_or(core)
                ));
            }
        } else {
            items.insert(format!("go{v}"));
        }
    }
    let items: Vec<String> = items
        .into_iter()
        .filter(|v| validate(Scheme::Go, v).is_ok())
        .collect();
    let mut rng = Rng(0x676f);
    let cmp = |a: &String, b: &String| compare(Scheme::Go, a, b).unwrap();
    let ps = pairs(&items, cmp, 4000 * oracle_scale(), &mut rng);
    let want = python_over_pairs(GO_ORACLE, &ps);
    for ((a, b), w) in ps.iter().zip(&want) {
        assert_eq!(compare(Scheme::Go, a, b).unwrap(), *w, "{a} vs {b}");
    }
}

/// A Go binary's `go1.19.8` standard library against a stdlib record's
/// `SEMVER` range: the range is evaluated in the Go scheme.
#[test]
fn go_toolchain_versions_evaluate_against_vulndb_ranges() {
    let r = |events: Vec<Event>| {
        vec![Range {
            kind: RangeKind::Semver,
            events,
        }]
    };
    let range = r(vec![
        Event::Introduced("0".into()),
        Event::Fixed("1.19.9".into()),
        Event::Introduced("1.20.0-0".into()),
        Event::Fixed("1.20.4".into()),
    ]);
    let v = evaluate(Scheme::Go, &range, &[], "go1.19.8").unwrap();
    assert!(v.affected);
    assert_eq!(v.fixed.as_deref(), Some("1.19.9"));
    assert!(
        !evaluate(Scheme::Go, &range, &[], "go1.19.9")
            .unwrap()
            .affected
    );
    assert!(
        evaluate(Scheme::Go, &range, &[], "go1.20rc1")
            .unwrap()
            .affected
    );
    assert!(
        !evaluate(Scheme::Go, &range, &[], "go1.20.4")
            .unwrap()
            .affected
    );
    assert!(
        evaluate(Scheme::Go, &range, &[], "v1.20.3")
            .unwrap()
            .affected
    );
    assert!(evaluate(Scheme::Go, &range, &[], "(devel)").is_err());
    // PyPI records use ECOSYSTEM ranges, ordered by PEP 440.
    let py = vec![Range {
        kind: RangeKind::Ecosystem,
        events: vec![Event::Introduced("0".into()), Event::Fixed("2.31.0".into())],
    }];
    assert!(
        evaluate(Scheme::Pypi, &py, &[], "2.31.0rc1")
            .unwrap()
            .affected
    );
    assert!(!evaluate(Scheme::Pypi, &py, &[], "2.31.0").unwrap().affected);
    assert!(
        !evaluate(Scheme::Pypi, &py, &[], "2.31.0.post1")
            .unwrap()
            .affected
    );
}
