//! CISA KEV catalogs from `fixtures/feeds/kev/`.

use crate::common::{fixture, gunzip, import, import_path};
use jiff::civil::date;
use patchbay_feeds::kev;

#[test]
fn catalog_2026_08_07() {
    let (catalog, errors) = kev::parse(&gunzip(&fixture(
        "kev/known_exploited_vulnerabilities-2026.08.07.json.gz",
    )))
    .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(catalog.version, "2026.08.07");
    assert_eq!(catalog.released.to_string(), "2026-08-07T16:45:47.0648Z");
    assert_eq!(catalog.entries.len(), 1662);
    assert_eq!(
        catalog
            .entries
            .iter()
            .filter(|e| e.known_ransomware)
            .count(),
        338
    );

    let glibc = catalog.get("CVE-2023-4911").unwrap();
    assert_eq!(glibc.vendor, "GNU");
    assert_eq!(glibc.product, "GNU C Library");
    assert_eq!(glibc.name, "GNU C Library Buffer Overflow Vulnerability");
    assert_eq!(glibc.date_added, date(2023, 11, 21));
    assert_eq!(glibc.due_date, date(2023, 12, 12));
    assert!(!glibc.known_ransomware);
    assert_eq!(glibc.cwes, ["CWE-122"]);
    assert!(glibc.notes.contains("dsa-5514"));

    let first = &catalog.entries[0];
    assert_eq!(first.cve, "CVE-2026-8037");
    assert_eq!(first.due_date, date(2026, 8, 10));
}

#[test]
fn catalog_2025_08_25_gz_through_the_io_layer() {
    let (summary, sink) = import("kev/known_exploited_vulnerabilities-2025.08.25.json.gz");
    assert_eq!(
        (summary.kev.files, summary.kev.records, summary.kev.skipped),
        (1, 1404, 0)
    );
    assert_eq!(sink.kev.len(), 1);
    let c = &sink.kev[0];
    assert_eq!(c.version, "2025.08.25");
    assert_eq!(c.entries.len(), 1404);
    assert_eq!(c.entries.iter().filter(|e| e.known_ransomware).count(), 293);
    assert_eq!(c.get("CVE-2023-4911").unwrap().due_date, date(2023, 12, 12));
}

/// The plain (uncompressed) catalog as CISA serves it, under a name that says
/// nothing: the kind is detected from the content.
#[test]
fn plain_json_under_any_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("download.bin");
    std::fs::write(
        &path,
        gunzip(&fixture(
            "kev/known_exploited_vulnerabilities-2026.08.07.json.gz",
        )),
    )
    .unwrap();
    let (summary, sink) = import_path(&path);
    assert_eq!((summary.kev.files, summary.kev.records), (1, 1662));
    assert_eq!(sink.kev[0].version, "2026.08.07");
}

/// The two catalogs differ as CISA's history says: nothing was removed between
/// them, and 258 CVEs were added.
#[test]
fn catalog_growth() {
    let (old, _) = kev::parse(&gunzip(&fixture(
        "kev/known_exploited_vulnerabilities-2025.08.25.json.gz",
    )))
    .unwrap();
    let (new, _) = kev::parse(&gunzip(&fixture(
        "kev/known_exploited_vulnerabilities-2026.08.07.json.gz",
    )))
    .unwrap();
    let old_ids: std::collections::HashSet<_> = old.entries.iter().map(|e| &e.cve).collect();
    assert!(old.entries.iter().all(|e| new.get(&e.cve).is_some()));
    assert_eq!(
        new.entries
            .iter()
            .filter(|e| !old_ids.contains(&e.cve))
            .count(),
        258
    );
    assert!(new.released > old.released);
}
