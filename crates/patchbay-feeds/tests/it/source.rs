//! The IO layer: directories, archives, detection by content, malformed inputs
//! reported with file and record id and skipped alone.

use crate::common::{fixture, fixture_path, import, import_path};
use patchbay_feeds::source::{Collect, Counts};
use patchbay_feeds::{FeedErrorKind, RecordError};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

fn counts(c: Counts) -> (u64, u64, u64) {
    (c.files, c.records, c.skipped)
}

fn find<'a>(errors: &'a [RecordError], file_suffix: &str) -> Vec<&'a RecordError> {
    errors
        .iter()
        .filter(|e| e.file.ends_with(file_suffix))
        .collect()
}

/// `fixtures/feeds/malformed/`: every bad record is reported with its file and
/// record id (when the input has one) and skipped; everything else is imported.
#[test]
fn malformed_directory() {
    let (summary, sink) = import("malformed");
    for e in &sink.errors {
        eprintln!("{e}");
    }

    // EPSS: 41 rows, of which epss=1.7 (line 12) and a bad CVE id (line 21).
    let epss = find(&sink.errors, "epss-bad-rows.csv");
    assert_eq!(epss.len(), 2);
    assert_eq!(
        (epss[0].record.as_deref(), epss[0].line),
        (Some("CVE-1999-0010"), Some(12))
    );
    assert!(epss[0].message.contains("1.7"));
    assert_eq!(
        (epss[1].record.as_deref(), epss[1].line),
        (Some("CVE-99-1"), Some(21))
    );
    assert_eq!(counts(summary.epss), (1, 39, 2));
    assert!(sink.epss.iter().all(|r| r.cve != "CVE-1999-0010"));

    // KEV: the entry with dueDate 2026-02-30 is skipped; the other two are kept.
    let kev = find(&sink.errors, "kev-bad-date.json");
    assert_eq!(kev.len(), 1);
    assert_eq!(kev[0].record.as_deref(), Some("CVE-2025-32463"));
    assert!(
        kev[0].message.contains("dueDate \"2026-02-30\""),
        "{}",
        kev[0]
    );
    assert_eq!(counts(summary.kev), (1, 2, 1));
    let cves: Vec<_> = sink.kev[0].entries.iter().map(|e| e.cve.as_str()).collect();
    assert_eq!(cves, ["CVE-2023-4911", "CVE-2026-8037"]);

    // OSV record without id.
    let no_id = find(&sink.errors, "missing-id.json");
    assert_eq!(no_id.len(), 1);
    assert_eq!(no_id[0].record, None);
    assert!(no_id[0].message.contains("no id"));

    // JSONL: line 2 cut in the middle (its id is still read), line 4 has no id.
    let mixed = find(&sink.errors, "mixed.jsonl");
    assert_eq!(mixed.len(), 2);
    assert_eq!(
        (mixed[0].line, mixed[0].record.as_deref()),
        (Some(2), Some("GO-2020-0024"))
    );
    assert!(
        mixed[0].message.contains("invalid OSV JSON"),
        "{}",
        mixed[0]
    );
    assert_eq!((mixed[1].line, mixed[1].record.as_deref()), (Some(4), None));
    assert!(sink.advisories.iter().any(|a| a.id == "GO-2020-0001"));
    assert!(sink.advisories.iter().any(|a| a.id == "GO-2021-0071"));

    // A truncated OSV document: its id comes before the cut.
    let cut = find(&sink.errors, "truncated.json");
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].record.as_deref(), Some("DSA-3029-1"));
    assert!(cut[0].message.contains("EOF"), "{}", cut[0]);

    // A truncated gzip of JSONL: the complete lines are imported, then the file is reported.
    let gz = find(&sink.errors, "truncated.jsonl.gz");
    assert_eq!(gz.len(), 1, "{gz:?}");
    let alma = sink
        .advisories
        .iter()
        .filter(|a| a.id.starts_with("AL"))
        .count() as u64;
    assert!(alma >= 10, "{alma} AlmaLinux records before the cut");

    // A zip without its central directory.
    let zip = find(&sink.errors, "truncated.zip");
    assert_eq!(zip.len(), 1);
    assert!(zip[0].message.contains("zip"), "{}", zip[0]);

    // An ecosystem nobody knows is just a string.
    let plan9 = sink
        .advisories
        .iter()
        .find(|a| a.id == "TEST-UNKNOWN-ECOSYSTEM-1")
        .unwrap();
    assert_eq!(plan9.affected[0].ecosystem, "Plan9:4");
    assert_eq!(plan9.cves, ["CVE-2014-3616"]);

    assert_eq!(counts(summary.osv), (5, 2 + alma + 1, 5));
    assert_eq!(summary.errors, 2 + 1 + 1 + 2 + 1 + 1 + 1);
    assert!(summary.ignored.is_empty());
    // Every error names its file.
    assert!(
        sink.errors
            .iter()
            .all(|e| e.file.contains("fixtures/feeds/malformed/"))
    );
    // Display: file:line: record id: problem.
    assert!(
        epss[0]
            .to_string()
            .ends_with("epss-bad-rows.csv:12: record CVE-1999-0010: epss 1.7 is outside 0..=1"),
        "{}",
        epss[0]
    );
}

/// The whole `fixtures/feeds/` tree at once equals the sum of its parts: each
/// child imported alone. (Asserted this way so that feed files others add to the
/// tree do not break it; the counts of each file are asserted in `osv`, `kev`,
/// `epss`.)
#[test]
fn whole_fixture_tree() {
    let started = Instant::now();
    let (summary, sink) = import("");
    eprintln!(
        "fixtures/feeds imported in {:?}: {summary}",
        started.elapsed()
    );

    let mut children: Vec<_> = std::fs::read_dir(fixture_path(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    children.sort();
    let (mut osv, mut kev, mut epss, mut cvss, mut csaf) = (
        Counts::default(),
        Counts::default(),
        Counts::default(),
        Counts::default(),
        Counts::default(),
    );
    let mut ignored = Vec::new();
    let mut errors = Vec::new();
    for child in children {
        let (s, c) = import_path(&child);
        for (sum, part) in [
            (&mut osv, s.osv),
            (&mut kev, s.kev),
            (&mut epss, s.epss),
            (&mut cvss, s.cvss),
            (&mut csaf, s.csaf),
        ] {
            sum.files += part.files;
            sum.records += part.records;
            sum.skipped += part.skipped;
        }
        ignored.extend(s.ignored);
        errors.extend(c.errors);
    }
    assert_eq!(
        (
            summary.osv,
            summary.kev,
            summary.epss,
            summary.cvss,
            summary.csaf
        ),
        (osv, kev, epss, cvss, csaf)
    );
    assert_eq!(sink.csaf.len() as u64, csaf.records);
    assert_eq!(sink.scores.len() as u64, cvss.records);
    assert_eq!(sink.advisories.len() as u64, osv.records);
    assert_eq!(
        sink.kev.iter().map(|c| c.entries.len() as u64).sum::<u64>(),
        kev.records
    );
    assert_eq!(sink.epss.len() as u64, epss.records);
    let normal = |v: &[String]| v.iter().map(|p| p.replace("//", "/")).collect::<Vec<_>>();
    assert_eq!(normal(&summary.ignored), normal(&ignored));
    assert_eq!(sink.errors.len(), errors.len());

    // At least the files this crate put there (fixtures/README.md).
    assert_eq!((cvss.files, cvss.records, cvss.skipped), (25, 25, 0));
    // The OASIS CSAF examples (feeds/csaf/README.md): 10 documents; its
    // README, provider metadata and ROLIE feed are not advisories.
    assert_eq!((csaf.files, csaf.records, csaf.skipped), (10, 10, 0));
    assert!(osv.records >= 1783 + 1723 + 610 + 215 + 3 + 2);
    assert_eq!(
        (kev.files, kev.records, kev.skipped),
        (3, 1662 + 1404 + 2, 1)
    );
    assert_eq!(
        (epss.files, epss.records, epss.skipped),
        (3, 40 + 100 + 39, 2)
    );
    let ignored: Vec<_> = summary
        .ignored
        .iter()
        .map(|p| Path::new(p).file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        ignored,
        [
            "README.md",
            "example-01-provider-metadata.json",
            "example-01-feed-tlp-white.json",
            "README.md",
            "cvss-vectors-from-staged-advisories.tsv",
            "known_exploited_vulnerabilities_schema.json"
        ]
    );
}

#[test]
fn missing_path_is_refused_by_name() {
    let e = patchbay_feeds::read_path(Path::new("/nonexistent/feeds.zip"), &mut Collect::default())
        .unwrap_err();
    assert_eq!(e.kind(), FeedErrorKind::NotFound);
    assert!(e.to_string().contains("/nonexistent/feeds.zip"), "{e}");
}

#[test]
fn unknown_file_named_directly_is_refused_by_name() {
    for rel in [
        "cvss/cvss-vectors-from-staged-advisories.tsv",
        "kev/known_exploited_vulnerabilities_schema.json",
    ] {
        let e = patchbay_feeds::read_path(&fixture_path(rel), &mut Collect::default()).unwrap_err();
        assert_eq!(e.kind(), FeedErrorKind::UnknownFormat, "{rel}");
        assert!(e.to_string().contains(rel), "{e}");
    }
    let e = patchbay_feeds::read_bytes("upload.bin", b"\x00\x01binary", &mut Collect::default())
        .unwrap_err();
    assert!(e.to_string().starts_with("upload.bin: "), "{e}");
}

#[test]
fn read_bytes_of_one_record() {
    let mut sink = Collect::default();
    let s = patchbay_feeds::read_bytes(
        "DSA-3029-1.json",
        &fixture("osv/samples/DSA-3029-1.json"),
        &mut sink,
    )
    .unwrap();
    assert_eq!(counts(s.osv), (1, 1, 0));
    assert_eq!(sink.advisories[0].id, "DSA-3029-1");
}

fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in members {
        w.start_file(*name, options).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Zips nested in zips, gzip members, a KEV catalog and an EPSS file inside an
/// archive; hidden files skipped; a symlink loop walked once; errors name the
/// member path `outer.zip!/inner.zip!/member`.
#[test]
fn nested_archives_and_member_names() {
    let dir = tempfile::tempdir().unwrap();
    let dsa = fixture("osv/samples/DSA-3029-1.json");
    let inner = zip_of(&[
        ("DSA-3029-1.json", &dsa),
        ("broken/X-1.json", br#"{"id":"X-1","modified":"never"}"#),
        ("README", b"not a feed"),
    ]);
    let kev = fixture("kev/known_exploited_vulnerabilities-2025.08.25.json.gz");
    let epss = fixture("epss/epss_scores-2026-09-29-head40.csv");
    let go = fixture("osv/go-vulndb-osv.every20th.jsonl.gz");
    let outer = zip_of(&[
        ("inner.zip", &inner),
        ("kev.json.gz", &kev),
        ("epss.csv.gz", &gzip(&epss)),
        ("go.jsonl.gz", &go),
        ("dir/", b""),
        (".hidden.json", b"{"),
    ]);
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/outer.zip"), &outer).unwrap();
    std::fs::write(dir.path().join(".hidden.json"), b"{").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path(), dir.path().join("sub/loop")).unwrap();

    let (summary, sink) = import_path(dir.path());
    assert_eq!(counts(summary.osv), (3, 1 + 215, 1));
    assert_eq!(counts(summary.kev), (1, 1404, 0));
    assert_eq!(counts(summary.epss), (1, 40, 0));
    assert_eq!(
        sink.epss_meta[0].model_version.as_deref(),
        Some("v2026.06.15")
    );
    assert_eq!(sink.errors.len(), 1);
    let e = &sink.errors[0];
    assert!(
        e.file
            .ends_with("sub/outer.zip!/inner.zip!/broken/X-1.json"),
        "{e}"
    );
    assert_eq!(e.record.as_deref(), Some("X-1"));
    assert_eq!(summary.ignored.len(), 1);
    assert!(summary.ignored[0].ends_with("outer.zip!/inner.zip!/README"));
}

/// A zip the size of Debian 12's (10,464 records, built from the subset's records
/// with new ids) imports in linear time. Prints the time; asserts the count.
#[test]
fn debian_sized_zip() {
    let (_, subset) = import("osv/Debian-12-derived.subset.osv.zip");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(fixture(
        "osv/Debian-12-derived.subset.osv.zip",
    )))
    .unwrap();
    let records: Vec<Vec<u8>> = (0..archive.len())
        .map(|i| {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut archive.by_index(i).unwrap(), &mut buf).unwrap();
            buf
        })
        .collect();
    let mut members = Vec::new();
    for i in 0..10_464 {
        let record = &records[i % records.len()];
        let text = String::from_utf8(record.clone()).unwrap();
        let id = &subset.advisories[i % records.len()].id;
        let new_id = format!("DEBIAN-SYN-{i:05}");
        members.push((
            format!("{new_id}.json"),
            text.replacen(id.as_str(), &new_id, 1).into_bytes(),
        ));
    }
    let refs: Vec<(&str, &[u8])> = members
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Debian-12-synthetic.osv.zip");
    std::fs::write(&path, zip_of(&refs)).unwrap();

    let started = Instant::now();
    let (summary, sink) = import_path(&path);
    eprintln!("10,464-record zip imported in {:?}", started.elapsed());
    assert_eq!(counts(summary.osv), (10_464, 10_464, 0));
    assert_eq!(sink.advisories[10_463].id, "DEBIAN-SYN-10463");
}

/// JSON Lines recognised by content under a `.json` name; a byte order mark is
/// tolerated; the line numbers of errors count from the first line.
#[test]
fn json_lines_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.json");
    std::fs::write(
        &path,
        "\u{feff}{\"id\":\"A-1\"}\n{\"id\":\"A-2\",\"published\":\"soon\"}\n\n{\"id\":\"A-3\"}\n",
    )
    .unwrap();
    let (summary, sink) = import_path(&path);
    assert_eq!(counts(summary.osv), (1, 2, 1));
    let ids: Vec<_> = sink.advisories.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["A-1", "A-3"]);
    assert_eq!(
        (sink.errors[0].line, sink.errors[0].record.as_deref()),
        (Some(2), Some("A-2"))
    );
}
