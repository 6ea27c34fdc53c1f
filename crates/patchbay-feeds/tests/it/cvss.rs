//! CVSS vectors of the staged advisories (`fixtures/feeds/cvss/`): every one scores,
//! known scores, and all 165 unique vectors against PyPI `cvss` (Red Hat's library).

use crate::common::fixture;
use patchbay_feeds::cvss::{self, CvssVersion, Rating};
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

/// (dataset, advisory, severity type, vector) rows of the TSV.
fn rows() -> Vec<(String, String, String, String)> {
    let text = String::from_utf8(fixture("cvss/cvss-vectors-from-staged-advisories.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "{l}");
            (f[0].into(), f[1].into(), f[3].into(), f[4].into())
        })
        .collect()
}

fn unique_vectors() -> Vec<String> {
    rows()
        .into_iter()
        .map(|r| r.3)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[test]
fn every_vector_scores() {
    let rows = rows();
    assert_eq!(rows.len(), 623);
    for (dataset, id, kind, vector) in &rows {
        let s = cvss::score(vector).unwrap_or_else(|e| panic!("{dataset} {id}: {e}"));
        let want = match kind.as_str() {
            "CVSS_V3" => [CvssVersion::V3_0, CvssVersion::V3_1].contains(&s.version),
            "CVSS_V4" => s.version == CvssVersion::V4_0,
            other => panic!("unexpected type {other}"),
        };
        assert!(want, "{id}: {kind} but {vector} is {}", s.version);
        assert!((0.0..=10.0).contains(&s.base_score));
    }
    let unique = unique_vectors();
    assert_eq!(unique.len(), 165);
    let by_version = |v: &str| unique.iter().filter(|u| u.starts_with(v)).count();
    assert_eq!(
        (
            by_version("CVSS:3.0/"),
            by_version("CVSS:3.1/"),
            by_version("CVSS:4.0/")
        ),
        (12, 114, 39)
    );
}

#[test]
fn known_scores() {
    for (vector, want, rating) in [
        (
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            9.8,
            Rating::Critical,
        ),
        (
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H",
            7.5,
            Rating::High,
        ),
        (
            "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H",
            7.8,
            Rating::High,
        ),
        (
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N",
            0.0,
            Rating::None,
        ),
        // v4.0 from the TSV (values from FIRST's calculator, as PyPI cvss 3.6 computes).
        (
            "CVSS:4.0/AV:L/AC:L/AT:N/PR:N/UI:A/VC:N/VI:H/VA:L/SC:H/SI:H/SA:H",
            8.3,
            Rating::High,
        ),
        (
            "CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:L/VI:L/VA:L/SC:N/SI:N/SA:N",
            1.0,
            Rating::Low,
        ),
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            9.3,
            Rating::Critical,
        ),
        ("AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5, Rating::High),
        ("AV:L/AC:H/Au:N/C:N/I:P/A:N", 1.2, Rating::Low),
    ] {
        let s = cvss::score(vector).unwrap();
        assert_eq!((s.base_score, s.rating), (want, rating), "{vector}");
    }
}

#[test]
fn invalid_vectors() {
    for v in [
        "",
        "CVSS:3.1",
        "CVSS:3.1/AV:N",
        "CVSS:5.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/AV:L",
        "high",
        "9.8",
    ] {
        assert!(cvss::score(v).is_err(), "{v:?} should not score");
    }
}

/// Python with PyPI `cvss` (github.com/RedHatProductSecurity/cvss). The project's
/// test script installs it; this test fails rather than skips without it.
fn python() -> String {
    let python = std::env::var("PATCHBAY_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import cvss"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the CVSS oracle needs Python's `cvss` module: run `{python} -m pip install cvss==3.6` \
         (or set PATCHBAY_PYTHON to an interpreter that has it)"
    );
    python
}

/// Every unique vector's base score equals PyPI cvss's. PyPI's `CVSS4.base_score`
/// includes threat and environmental metrics (CVSS-BT/BE); ours is the base score
/// (CVSS-B), so v4.0 vectors are given to it without those metrics. Two vectors of
/// the TSV carry a threat metric (`E:U`, `E:P`); for them the full-vector score of
/// PyPI is checked to be lower, as exploit maturity below "Attacked" lowers it.
#[test]
fn oracle_pypi_cvss() {
    let python = python();
    let vectors = unique_vectors();
    let script = r#"
import sys, cvss
BASE = {"AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA"}
for line in sys.stdin:
    v = line.strip()
    if v.startswith("CVSS:4.0/"):
        parts = v.split("/")
        base = "/".join([parts[0]] + [p for p in parts[1:] if p.split(":")[0] in BASE])
        print(cvss.CVSS4(base).base_score, cvss.CVSS4(v).base_score)
    elif v.startswith("CVSS:3."):
        s = cvss.CVSS3(v).scores()[0]
        print(s, s)
    else:
        s = cvss.CVSS2(v).scores()[0]
        print(s, s)
"#;
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(vectors.join("\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    let theirs: Vec<(f64, f64)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (base, full) = l.trim().split_once(' ').unwrap();
            (base.parse().unwrap(), full.parse().unwrap())
        })
        .collect();
    assert_eq!(theirs.len(), vectors.len());
    let mut disagree = Vec::new();
    let mut with_threat = 0;
    for (v, (want, full)) in vectors.iter().zip(&theirs) {
        let ours = cvss::score(v).unwrap().base_score;
        if (ours - want).abs() > 1e-9 {
            disagree.push(format!("{v}: ours {ours}, PyPI cvss {want}"));
        }
        if full != want {
            with_threat += 1;
            assert!(full < want, "{v}: threat metrics lower the score");
        }
    }
    assert!(
        disagree.is_empty(),
        "{} disagreements:\n{}",
        disagree.len(),
        disagree.join("\n")
    );
    assert_eq!(with_threat, 2);
    eprintln!(
        "CVSS oracle: {} vectors agree with PyPI cvss",
        vectors.len()
    );
}
