//! CVSS scores with their source: the staged real NVD API 2.0 records
//! (`fixtures/feeds/cvss/nvd/`) and CVE JSON 5 record (`cvss/cve5/`), read
//! through the IO layer as files, a directory, a zip and gzip; malformed ones
//! reported with file and record.

use crate::common::{fixture, fixture_path};
use patchbay_feeds::cvss::CvssVersion;
use patchbay_feeds::scores::{CveScores, SourceKind};
use patchbay_feeds::source::{Collect, read_bytes, read_path};
use std::io::Write;

fn scores_of<'a>(c: &'a Collect, cve: &str) -> &'a CveScores {
    c.scores
        .iter()
        .find(|s| s.cve == cve)
        .unwrap_or_else(|| panic!("no scores for {cve}"))
}

fn summary_of(c: &CveScores) -> Vec<(SourceKind, String, CvssVersion, f64)> {
    c.scores
        .iter()
        .map(|s| {
            (
                s.kind,
                s.source.clone(),
                s.score.version,
                s.score.base_score,
            )
        })
        .collect()
}

#[test]
fn staged_nvd_records() {
    let mut c = Collect::default();
    let summary = read_path(&fixture_path("cvss/nvd"), &mut c).unwrap();
    assert_eq!(
        (
            summary.cvss.files,
            summary.cvss.records,
            summary.cvss.skipped
        ),
        (24, 24, 0)
    );
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(summary.osv.files, 0, "NVD records are not OSV records");
    use CvssVersion::*;
    use SourceKind::*;
    let nvd = || "nvd@nist.gov".to_string();
    let adp = || "CISA-ADP".to_string();
    assert_eq!(
        summary_of(scores_of(&c, "CVE-2025-13836")),
        [
            (Cna, "cna@python.org".into(), V4_0, 6.3),
            (Nvd, nvd(), V3_1, 9.1)
        ]
    );
    assert_eq!(
        summary_of(scores_of(&c, "CVE-2018-13410")),
        [(Nvd, nvd(), V3_0, 9.8), (Nvd, nvd(), V2_0, 7.5)]
    );
    assert_eq!(
        summary_of(scores_of(&c, "CVE-2023-31484")),
        [(Nvd, nvd(), V3_1, 8.1), (Adp, adp(), V3_1, 8.1)]
    );
    assert_eq!(
        summary_of(scores_of(&c, "CVE-2025-61984")),
        [(Cna, "cve@mitre.org".into(), V3_1, 3.6)]
    );
    // Not yet analysed: no metrics, no scores (an import clears stale ones).
    assert!(scores_of(&c, "CVE-2025-21635").scores.is_empty());
    assert_eq!(
        summary_of(scores_of(&c, "CVE-2025-58060")),
        [(Cna, "security-advisories@github.com".into(), V3_1, 8.0)]
    );
    assert_eq!(
        scores_of(&c, "CVE-2025-13836").modified.as_deref(),
        Some("2025-12-30T15:08:14.027")
    );
}

#[test]
fn staged_cve5_record() {
    let mut c = Collect::default();
    let summary = read_path(&fixture_path("cvss/cve5/CVE-2025-13836.json"), &mut c).unwrap();
    assert_eq!((summary.cvss.records, summary.cvss.skipped), (1, 0));
    // The CNA (PSF) gives v4.0; CISA-ADP only an SSVC decision, no CVSS.
    assert_eq!(
        summary_of(&c.scores[0]),
        [(SourceKind::Cna, "PSF".into(), CvssVersion::V4_0, 6.3)]
    );
}

#[test]
fn zip_gzip_and_an_nvd_page_read_the_same() {
    let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixture_path("cvss/nvd"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_str().unwrap().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in &files {
        zip.start_file(
            format!("nvd/{name}"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.write_all(bytes).unwrap();
    }
    let zip = zip.finish().unwrap().into_inner();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&zip).unwrap();
    let gz = gz.finish().unwrap();
    let page = format!(
        r#"{{"resultsPerPage":{n},"startIndex":0,"totalResults":{n},"format":"NVD_CVE","version":"2.0","timestamp":"2026-12-07T00:00:00.000","vulnerabilities":[{}]}}"#,
        files
            .iter()
            .map(|(_, b)| format!("{{\"cve\":{}}}", String::from_utf8_lossy(b)))
            .collect::<Vec<_>>()
            .join(","),
        n = files.len()
    );
    let sorted = |mut c: Collect| {
        c.scores.sort_by(|a, b| a.cve.cmp(&b.cve));
        c.scores
    };
    let mut reference = Collect::default();
    read_path(&fixture_path("cvss/nvd"), &mut reference).unwrap();
    let reference = sorted(reference);
    for (name, bytes) in [
        ("nvd.zip", zip.clone()),
        ("nvd.zip.gz", gz),
        ("page.json", page.into_bytes()),
    ] {
        let mut c = Collect::default();
        let s = read_bytes(name, &bytes, &mut c).unwrap();
        assert_eq!(s.cvss.records, 24, "{name}");
        assert!(c.errors.is_empty(), "{name}: {:?}", c.errors);
        assert_eq!(sorted(c), reference, "{name}");
    }
}

#[test]
fn malformed_records_name_file_and_record() {
    let good = String::from_utf8(fixture("cvss/nvd/CVE-2024-28757.json")).unwrap();
    // A vector that does not score: that metric is skipped, the other kept.
    let bad_vector = good.replacen(
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H",
        "CVSS:3.1/AV:N/AC:L",
        1,
    );
    let mut c = Collect::default();
    read_bytes("CVE-2024-28757.json", bad_vector.as_bytes(), &mut c).unwrap();
    assert_eq!(c.scores[0].scores.len(), 1);
    assert_eq!(c.errors.len(), 1);
    let e = c.errors[0].to_string();
    assert!(
        e.starts_with("CVE-2024-28757.json: record CVE-2024-28757: metrics.cvssMetricV31[0]:"),
        "{e}"
    );
    // Truncated: refused whole, naming the file and the id it could read.
    let mut c = Collect::default();
    read_bytes("cut.json", &good.as_bytes()[..300], &mut c).unwrap();
    assert!(c.scores.is_empty());
    let e = c.errors[0].to_string();
    assert!(
        e.starts_with("cut.json: record CVE-2024-28757: invalid CVE record JSON"),
        "{e}"
    );
    // Not a CVE id.
    let mut c = Collect::default();
    read_bytes(
        "x.json",
        good.replacen("CVE-2024-28757", "CVE-24-1", 1).as_bytes(),
        &mut c,
    )
    .unwrap();
    assert!(c.scores.is_empty());
    assert!(
        c.errors[0].to_string().contains("is not a CVE id"),
        "{}",
        c.errors[0]
    );
}

/// The distribution's own severity of real records (ADR 0013): Ubuntu's
/// priority (a `severity` of type `Ubuntu`, or `ubuntu_priority`), Debian's
/// urgency, Red Hat's errata severity in AlmaLinux summaries.
#[test]
fn distribution_severities_of_real_records() {
    let sev = |a: &patchbay_feeds::osv::Advisory| a.distro_severity().map(|d| (d.source, d.level));
    let pair = |s: &str, l: &str| Some((s.to_string(), l.to_string()));
    let u = patchbay_feeds::osv::parse(&fixture("osv/ubuntu/UBUNTU-CVE-2025-32463.json")).unwrap();
    assert_eq!(sev(&u), pair("Ubuntu priority", "high"));
    let u = patchbay_feeds::osv::parse(&fixture("osv/ubuntu/UBUNTU-CVE-2023-4911.json")).unwrap();
    assert_eq!(sev(&u), pair("Ubuntu priority", "high"));
    let mut c = Collect::default();
    read_path(
        &fixture_path("osv/Debian-12-derived.subset.osv.zip"),
        &mut c,
    )
    .unwrap();
    assert!(!c.advisories.is_empty());
    assert!(
        c.advisories
            .iter()
            .all(|a| sev(a).is_some_and(|(s, l)| s == "Debian urgency" && !l.is_empty()))
    );
    let mut c = Collect::default();
    read_path(&fixture_path("osv/almalinux9.osv.jsonl.gz"), &mut c).unwrap();
    let alba = c
        .advisories
        .iter()
        .find(|a| a.id == "ALBA-2022:8256")
        .unwrap();
    assert_eq!(sev(alba), pair("Red Hat severity", "important"));
    // "None: kernel bug fix…" is no severity.
    let none = c
        .advisories
        .iter()
        .find(|a| a.id == "ALBA-2026:39332")
        .unwrap();
    assert_eq!(sev(none), None);
}
