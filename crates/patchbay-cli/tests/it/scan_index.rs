//! The compiled advisory index of `patchbay scan` (ADR 0009): findings from the
//! index equal those computed from the OSV files on every real inventory in
//! `fixtures`, a damaged index (flipped bytes in header and payload, truncation,
//! another format version) is rejected with a clear message and rebuilt, and a
//! change of the feeds rebuilds it.

use crate::support::{PATCHBAY, fixtures, ok};
use patchbay_app::assess::build_index;
use patchbay_app::feeds::advisory_row;
use patchbay_cli::feeds::ScanFinding;
use patchbay_core::assess::{Assessor, target_for};
use patchbay_core::compiled::CompiledIndex;
use patchbay_core::inventory::{OsRelease, apk, dpkg, rpm};
use patchbay_feeds::source::{Collect, read_path};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;

/// Every real package database in `fixtures/inventories`, with the flag that
/// reads it and the OS it is scanned as (the RHEL-family lists as AlmaLinux, the
/// OS the staged RPM advisories are for; older Alpine databases as 3.10).
const INVENTORIES: &[(&str, &str, &str)] = &[
    (
        "--dpkg-status",
        "debian12/host-ci-image.dpkg-status",
        "debian:12",
    ),
    (
        "--dpkg-status",
        "debian12/debootstrap-minbase-before-security-upgrade.dpkg-status",
        "debian:12",
    ),
    (
        "--dpkg-status",
        "debian12/debootstrap-minbase-after-security-upgrade.dpkg-status",
        "debian:12",
    ),
    (
        "--dpkg-status",
        "ubuntu2404/debootstrap-noble.dpkg-status",
        "ubuntu:24.04",
    ),
    (
        "--dpkg-status",
        "ubuntu1804/trivy-valid-txtar.dpkg-status",
        "ubuntu:18.04",
    ),
    (
        "--apk-installed",
        "alpine310/lib-apk-db-installed",
        "alpine:3.10",
    ),
    (
        "--apk-installed",
        "alpine323/lib-apk-db-installed",
        "alpine:3.23",
    ),
    (
        "--apk-installed",
        "alpine-older/osv-scalibr-testdata.lib-apk-db-installed",
        "alpine:3.10",
    ),
    (
        "--apk-installed",
        "alpine-older/syft-multiple-2.lib-apk-db-installed",
        "alpine:3.10",
    ),
    (
        "--rpm-list",
        "rhel-family/oraclelinux-8-slim.rpm-qa.txt",
        "almalinux:8",
    ),
    ("--rpm-list", "rhel-family/ubi-7.rpm-qa.txt", "almalinux:9"),
];

/// Runs `patchbay scan` with the index at `index`; returns the findings and stderr.
fn scan(
    flag: &str,
    inv: &Path,
    os: &str,
    feeds: &Path,
    index: &Path,
) -> (Vec<ScanFinding>, String) {
    let out = Command::new(PATCHBAY)
        .args(["scan", "--index"])
        .arg(index)
        .arg(flag)
        .arg(inv)
        .args(["--os", os, "--feeds"])
        .arg(feeds)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let stdout = ok(&out);
    let findings = serde_json::from_str(&stdout).unwrap();
    (findings, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The scan as it was before the index: every OSV record parsed, stored-row
/// form, `build_index`, a fresh `Assessor`, KEV and EPSS from maps.
struct Reference {
    index: patchbay_core::assess::Index,
    kev: HashSet<String>,
    epss: HashMap<String, f64>,
}

impl Reference {
    fn read(feeds: &Path) -> Self {
        let mut c = Collect::default();
        read_path(feeds, &mut c).unwrap();
        let rows: Vec<_> = c.advisories.iter().map(advisory_row).collect();
        Self {
            index: build_index(&rows),
            kev: c
                .kev
                .iter()
                .flat_map(|k| k.entries.iter().map(|e| e.cve.clone()))
                .collect(),
            epss: c.epss.iter().map(|s| (s.cve.clone(), s.epss)).collect(),
        }
    }

    fn scan(&self, flag: &str, inv: &Path, os: &str) -> Vec<ScanFinding> {
        let text = std::fs::read_to_string(inv).unwrap();
        let packages = match flag {
            "--dpkg-status" => dpkg::parse_status(&text).unwrap(),
            "--apk-installed" => apk::parse_installed(&text).unwrap(),
            _ => rpm::parse_query_list(&text).unwrap(),
        };
        let (id, v) = os.split_once(':').unwrap();
        let target = target_for(&OsRelease {
            id: id.into(),
            version_id: v.into(),
            ..Default::default()
        })
        .unwrap();
        let (findings, _) = Assessor::new().assess(&self.index, &target, &packages);
        findings
            .into_iter()
            .map(|f| ScanFinding {
                kev: f.cves.iter().any(|c| self.kev.contains(c)),
                epss: f
                    .cves
                    .iter()
                    .filter_map(|c| self.epss.get(c).copied())
                    .reduce(f64::max),
                package: f.package,
                source_package: f.source_package,
                installed_version: f.installed_version,
                fixed_version: f.fixed_version,
                advisory: f.advisory,
                cves: f.cves,
                cvss: f.cvss,
            })
            .collect()
    }
}

#[test]
fn findings_from_the_index_equal_the_osv_files_on_every_inventory() {
    // All staged feeds: every OSV ecosystem, both KEV catalogs, the EPSS files
    // (and the malformed samples, skipped as the reader skips them).
    // EPSS scores for some CVEs the hosts really have (the staged EPSS files
    // are samples that meet none of them), next to the staged feeds.
    let dir = tempfile::tempdir().unwrap();
    let feeds = dir.path().join("feeds");
    std::fs::create_dir(&feeds).unwrap();
    std::os::unix::fs::symlink(fixtures().join("feeds"), feeds.join("staged")).unwrap();
    let cves: Vec<String> = {
        let r = Reference::read(&feeds);
        let (flag, inv, os) = INVENTORIES[0];
        let host = fixtures().join("inventories").join(inv);
        let mut c: Vec<String> = r
            .scan(flag, &host, os)
            .into_iter()
            .flat_map(|f| f.cves)
            .collect();
        c.sort();
        c.dedup();
        c.into_iter().step_by(7).collect()
    };
    let mut csv =
        "#model_version:v2026.06.15,score_date:2026-08-22T00:00:00+0000\ncve,epss,percentile\n"
            .to_string();
    for (i, c) in cves.iter().enumerate() {
        csv.push_str(&format!("{c},0.{:05},0.5\n", 10_000 + i));
    }
    std::fs::write(feeds.join("epss.csv"), csv).unwrap();
    let reference = Reference::read(&feeds);
    let cache = tempfile::tempdir().unwrap();
    let index = cache.path().join("advisories.pbidx");
    let (mut total, mut kev, mut epss) = (0, 0, 0);
    for (i, (flag, inv, os)) in INVENTORIES.iter().enumerate() {
        let path = fixtures().join("inventories").join(inv);
        let want = reference.scan(flag, &path, os);
        let (got, err) = scan(flag, &path, os, &feeds, &index);
        assert_eq!(
            err.contains(": built ("),
            i == 0,
            "{inv}: the first scan builds the index, the others read it:\n{err}"
        );
        assert_eq!(got.len(), want.len(), "{inv}: number of findings");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{inv}");
        }
        total += got.len();
        kev += got.iter().filter(|f| f.kev).count();
        epss += got.iter().filter(|f| f.epss.is_some()).count();
    }
    // The comparison must cover real findings, KEV flags and EPSS scores.
    assert!(total > 5_000 && kev > 0 && epss > 0, "{total} {kev} {epss}");
}

/// The Debian 12 host against the Debian zip: the index file, its bytes, and the
/// findings of a scan that built it.
struct Built {
    _dir: tempfile::TempDir,
    feeds: std::path::PathBuf,
    index: std::path::PathBuf,
    bytes: Vec<u8>,
    findings: Vec<ScanFinding>,
}

const HOST: &str = "debian12/host-ci-image.dpkg-status";

fn built() -> Built {
    let dir = tempfile::tempdir().unwrap();
    let feeds = dir.path().join("feeds");
    std::fs::create_dir(&feeds).unwrap();
    std::fs::copy(
        fixtures().join("feeds/osv/Debian-12-derived.osv.zip"),
        feeds.join("Debian-12-derived.osv.zip"),
    )
    .unwrap();
    let index = dir.path().join("cache/advisories.pbidx");
    let host = fixtures().join("inventories").join(HOST);
    let (findings, err) = scan("--dpkg-status", &host, "debian:12", &feeds, &index);
    assert!(err.contains(": built ("), "{err}");
    assert!(findings.len() > 1_000, "{}", findings.len());
    let bytes = std::fs::read(&index).unwrap();
    Built {
        _dir: dir,
        feeds,
        index,
        bytes,
        findings,
    }
}

impl Built {
    /// The key of the index as first built.
    fn key(&self) -> [u8; 32] {
        CompiledIndex::open(self.bytes.clone(), None).unwrap().key()
    }

    /// The key of the index file now (which must open cleanly).
    fn key_now(&self) -> [u8; 32] {
        CompiledIndex::open(std::fs::read(&self.index).unwrap(), None)
            .unwrap()
            .key()
    }

    /// Scans with the index file as it is now.
    fn scan(&self) -> (Vec<ScanFinding>, String) {
        let host = fixtures().join("inventories").join(HOST);
        scan(
            "--dpkg-status",
            &host,
            "debian:12",
            &self.feeds,
            &self.index,
        )
    }
}

#[test]
fn a_damaged_index_is_rejected_with_its_reason_and_rebuilt() {
    let b = built();
    let (again, err) = b.scan();
    assert!(
        !err.contains("advisory index"),
        "a warm scan says nothing: {err}"
    );
    assert_eq!(again, b.findings);
    let n = b.bytes.len();
    // Magic, version, reserved, key, length, checksum, then the payload's
    // counts, tables and records, and its last byte.
    let cases: Vec<(usize, &str)> = vec![
        (0, "not a patchbay advisory index"),
        (9, "format version"),
        (13, "checksum mismatch"),
        (20, "checksum mismatch"),
        (50, "truncated"),
        (60, "checksum mismatch"),
        (88, "checksum mismatch"),
        (100, "checksum mismatch"),
        (n / 2, "checksum mismatch"),
        (n - 1, "checksum mismatch"),
    ];
    for (at, why) in cases {
        let mut bad = b.bytes.clone();
        bad[at] ^= 0x01;
        std::fs::write(&b.index, &bad).unwrap();
        let (got, err) = b.scan();
        assert!(
            err.contains("rejected") && err.contains(why) && err.contains("rebuilding"),
            "byte {at}: {err}"
        );
        assert_eq!(
            got, b.findings,
            "byte {at}: the rebuilt index gives the same findings"
        );
        assert_eq!(
            b.key_now(),
            b.key(),
            "byte {at}: rebuilt from the same feeds"
        );
    }
    // Truncated, empty, and written by another format version: a later one,
    // and format 1 (SHA-256 checksum), which earlier releases wrote.
    let current = patchbay_core::compiled::FORMAT_VERSION;
    let version = |v: u32| {
        let mut bytes = b.bytes.clone();
        bytes[8..12].copy_from_slice(&v.to_le_bytes());
        (
            bytes,
            format!("format version {v}, this patchbay reads version {current}"),
        )
    };
    let (later, later_why) = version(current + 1);
    let (v1, v1_why) = version(1);
    for (bad, why) in [
        (b.bytes[..n - 10].to_vec(), "truncated"),
        (Vec::new(), "not a patchbay advisory index"),
        (later, later_why.as_str()),
        (v1, v1_why.as_str()),
    ] {
        std::fs::write(&b.index, &bad).unwrap();
        let (got, err) = b.scan();
        assert!(
            err.contains(why) && err.contains("rebuilding"),
            "{why}: {err}"
        );
        assert_eq!(got, b.findings);
        assert_eq!(b.key_now(), b.key(), "{why}: rebuilt from the same feeds");
    }
}

#[test]
fn a_change_of_the_feeds_rebuilds_the_index() {
    let b = built();
    // A new advisory for a package the host has (its kernel headers' source).
    std::fs::write(
        b.feeds.join("DEBIAN-TEST-1.json"),
        r#"{"id": "DEBIAN-TEST-1", "aliases": ["CVE-2099-0001"], "modified": "2099-01-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "linux"},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "99"}]}]}]}"#,
    )
    .unwrap();
    let (got, err) = b.scan();
    assert!(
        err.contains("the feeds changed") && err.contains("rebuilding"),
        "{err}"
    );
    let new: Vec<_> = got
        .iter()
        .filter(|f| f.advisory == "DEBIAN-TEST-1")
        .collect();
    assert!(!new.is_empty(), "the new advisory is found");
    assert_eq!(got.len(), b.findings.len() + new.len());
    // The same content again: nothing to rebuild.
    let (_, err) = b.scan();
    assert!(!err.contains("advisory index"), "{err}");
    // Same size, other content: rebuilt (the key is the content, not the size
    // or the modification time).
    let text = std::fs::read_to_string(b.feeds.join("DEBIAN-TEST-1.json")).unwrap();
    std::fs::write(
        b.feeds.join("DEBIAN-TEST-1.json"),
        text.replace("\"99\"", "\"00\""),
    )
    .unwrap();
    let (got, err) = b.scan();
    assert!(err.contains("the feeds changed"), "{err}");
    assert_eq!(got, b.findings, "fixed in 00: no host version is affected");
    // Removed: back to the original index, byte for byte.
    std::fs::remove_file(b.feeds.join("DEBIAN-TEST-1.json")).unwrap();
    let (got, err) = b.scan();
    assert!(err.contains("the feeds changed"), "{err}");
    assert_eq!(got, b.findings);
    assert_eq!(b.key_now(), b.key(), "the original key again");
}

#[test]
fn the_index_lives_in_the_cache_directory_by_default() {
    let cache = tempfile::tempdir().unwrap();
    let feeds = fixtures().join("feeds/osv/ubuntu");
    let host = fixtures().join("inventories/ubuntu2404/debootstrap-noble.dpkg-status");
    let run = || {
        Command::new(PATCHBAY)
            .env("XDG_CACHE_HOME", cache.path())
            .args([
                "scan",
                "--os",
                "ubuntu:24.04",
                "--format",
                "json",
                "--dpkg-status",
            ])
            .arg(&host)
            .arg("--feeds")
            .arg(&feeds)
            .output()
            .unwrap()
    };
    let first = run();
    ok(&first);
    let files: Vec<_> = std::fs::read_dir(cache.path().join("patchbay"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with("advisories-") && files[0].ends_with(".pbidx"),
        "{files:?}"
    );
    let second = run();
    assert_eq!(ok(&second), ok(&first));
    assert!(String::from_utf8_lossy(&second.stderr).is_empty());
    // An unwritable cache is reported; the scan still answers.
    let blocked = tempfile::tempdir().unwrap();
    std::fs::write(blocked.path().join("patchbay"), "a file, not a directory").unwrap();
    let out = Command::new(PATCHBAY)
        .env("XDG_CACHE_HOME", blocked.path())
        .args([
            "scan",
            "--os",
            "ubuntu:24.04",
            "--format",
            "json",
            "--dpkg-status",
        ])
        .arg(&host)
        .arg("--feeds")
        .arg(&feeds)
        .output()
        .unwrap();
    assert_eq!(ok(&out), ok(&first));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not saved"));
}

/// An index inside the feeds directory is refused with a clear message (it
/// would be read as a feed, change its own key, and be rebuilt every run).
#[test]
fn an_index_inside_the_feeds_is_refused() {
    let feeds = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("feeds/osv/Debian-12-derived.subset.osv.zip"),
        feeds.path().join("debian.zip"),
    )
    .unwrap();
    let host = fixtures().join("inventories/debian12/host-ci-image.dpkg-status");
    let out = Command::new(PATCHBAY)
        .args(["scan", "--os", "debian:12", "--dpkg-status"])
        .arg(&host)
        .arg("--feeds")
        .arg(feeds.path())
        .arg("--index")
        .arg(feeds.path().join("sub/idx.pbidx"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is inside --feeds"), "{err}");
    assert!(!feeds.path().join("sub").exists());
}
