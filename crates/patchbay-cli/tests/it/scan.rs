//! Acceptance: `patchbay scan` findings equal an independent reference computed
//! with the real tools' comparisons (dpkg, librpm, univers for apk), on real data.

use crate::support::{PATCHBAY, fixtures, ok};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

type Triple = (String, String, String);

/// Compares findings by (package, advisory); where an advisory names several fixed
/// versions for one package (one per module stream), the scan must report the
/// lowest one that is above the installed version — one of the reference's.
fn assert_same(
    what: &str,
    got: &BTreeSet<Triple>,
    want: &BTreeSet<Triple>,
    scheme: patchbay_version::Scheme,
) {
    use std::collections::BTreeMap;
    let mut w: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (p, a, f) in want {
        w.entry((p.clone(), a.clone())).or_default().push(f.clone());
    }
    let g: BTreeMap<(String, String), String> = got
        .iter()
        .map(|(p, a, f)| ((p.clone(), a.clone()), f.clone()))
        .collect();
    let missing: Vec<_> = w.keys().filter(|k| !g.contains_key(*k)).take(5).collect();
    let extra: Vec<_> = g.keys().filter(|k| !w.contains_key(*k)).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: false negatives {missing:?}, false positives {extra:?}"
    );
    for (k, f) in &g {
        let cands = &w[k];
        let lowest = cands
            .iter()
            .min_by(|a, b| patchbay_version::compare(scheme, a, b).unwrap())
            .unwrap();
        assert_eq!(
            f, lowest,
            "{what}: {k:?} should report the lowest fixed version of {cands:?}"
        );
    }
}

fn reference(scheme: &str, packages: &Path, ecosystem: &str, feed: &Path) -> BTreeSet<Triple> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/scan_reference.py");
    // librpm's Python binding is Debian's (system Python); univers comes from PyPI.
    let python = if scheme == "rpm" {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let out = Command::new(python)
        .arg(script)
        .args([
            scheme,
            packages.to_str().unwrap(),
            ecosystem,
            feed.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reference failed (needs dpkg, python3-rpm, and PyPI univers — scripts/test installs them):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<(String, String, String)> = serde_json::from_slice(&out.stdout).unwrap();
    v.into_iter().collect()
}

fn scan(
    flag: &str,
    packages: &Path,
    os: &str,
    feeds: &Path,
) -> (BTreeSet<Triple>, Vec<serde_json::Value>) {
    // The compiled index goes next to nothing else (not into ~/.cache, not into
    // the feeds); tests/it/scan_index.rs covers the index itself.
    let cache = tempfile::tempdir().unwrap();
    let out = ok(&Command::new(PATCHBAY)
        .args(["scan", "--index"])
        .arg(cache.path().join("advisories.pbidx"))
        .args([
            flag,
            packages.to_str().unwrap(),
            "--os",
            os,
            "--feeds",
            feeds.to_str().unwrap(),
            "--format",
            "json",
        ])
        .output()
        .unwrap());
    let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let set = v
        .iter()
        .map(|f| {
            (
                f["package"].as_str().unwrap().to_string(),
                f["advisory"].as_str().unwrap().to_string(),
                f["fixed_version"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    (set, v)
}

fn feed_dir(files: &[&str]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in files {
        let src = fixtures().join(f);
        std::fs::copy(&src, d.path().join(src.file_name().unwrap())).unwrap();
    }
    d
}

#[test]
fn debian12_scan_equals_dpkg_reference() {
    let feeds = feed_dir(&["feeds/osv/Debian-12-derived.osv.zip"]);
    let zip = feeds.path().join("Debian-12-derived.osv.zip");
    let mut total = 0;
    for inv in [
        "inventories/debian12/host-ci-image.dpkg-status",
        "inventories/debian12/debootstrap-minbase-before-security-upgrade.dpkg-status",
        "inventories/debian12/debootstrap-minbase-after-security-upgrade.dpkg-status",
    ] {
        let path = fixtures().join(inv);
        let (got, raw) = scan("--dpkg-status", &path, "debian:12", feeds.path());
        let want = reference("deb", &path, "Debian:12", &zip);
        assert_same(inv, &got, &want, patchbay_version::Scheme::Deb);
        total += got.len();
        // The JSON contract.
        if let Some(f) = raw.first() {
            for key in [
                "package",
                "source_package",
                "installed_version",
                "fixed_version",
                "advisory",
                "cves",
                "cvss",
                "epss",
                "kev",
            ] {
                assert!(f.get(key).is_some(), "{key} missing in scan JSON");
            }
        }
        if inv.contains("before") {
            // The six packages the security upgrade changed are among the findings.
            for p in ["libpcre2-8-0", "perl-base"] {
                assert!(
                    got.iter().any(|(pkg, _, _)| pkg == p),
                    "{p} should be vulnerable before the upgrade"
                );
            }
        }
    }
    assert!(
        total > 100,
        "the reference comparison must cover real findings ({total})"
    );
}

#[test]
fn almalinux9_scan_equals_librpm_reference() {
    // An AlmaLinux 9 host built from the feed itself: each package at the fixed
    // version of its first advisory, so later advisories for it apply and earlier
    // ones do not — every comparison sits on a real boundary.
    let feed = fixtures().join("feeds/osv/almalinux9.osv.jsonl.gz");
    let mut c = patchbay_feeds::source::Collect::default();
    patchbay_feeds::source::read_path(&feed, &mut c).unwrap();
    let mut seen = BTreeSet::new();
    let mut lines = String::new();
    for a in &c.advisories {
        for x in &a.affected {
            let Some(fixed) = x
                .ranges
                .iter()
                .flat_map(|r| r.events.iter())
                .find_map(|e| match e {
                    patchbay_feeds::osv::Event::Fixed(v) => Some(v.clone()),
                    _ => None,
                })
            else {
                continue;
            };
            if x.ecosystem == "AlmaLinux:9" && seen.insert(x.package.clone()) {
                let evr = if fixed.contains(':') {
                    fixed.clone()
                } else {
                    format!("0:{fixed}")
                };
                let (_, vr) = evr.split_once(':').unwrap();
                lines.push_str(&format!(
                    "{}\t{evr}\tx86_64\t{}-{vr}.src.rpm\n",
                    x.package, x.package
                ));
            }
        }
    }
    assert!(seen.len() > 1000, "{}", seen.len());
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("rpm-qa.txt");
    std::fs::write(&list, lines).unwrap();
    let feeds = feed_dir(&["feeds/osv/almalinux9.osv.jsonl.gz"]);
    let (got, _) = scan("--rpm-list", &list, "almalinux:9", feeds.path());
    let want = reference(
        "rpm",
        &list,
        "AlmaLinux:9",
        &feeds.path().join("almalinux9.osv.jsonl.gz"),
    );
    assert_same("almalinux9", &got, &want, patchbay_version::Scheme::Rpm);
    assert!(got.len() > 1000, "{}", got.len());
}

#[test]
fn alpine310_scan_equals_reference() {
    let path = fixtures().join("inventories/alpine310/lib-apk-db-installed");
    let feeds = feed_dir(&["feeds/osv/Alpine-v3.10-derived.osv.zip"]);
    let (got, raw) = scan("--apk-installed", &path, "alpine:3.10", feeds.path());
    let want = reference(
        "apk",
        &path,
        "Alpine:v3.10",
        &feeds.path().join("Alpine-v3.10-derived.osv.zip"),
    );
    assert_same("alpine310", &got, &want, patchbay_version::Scheme::Apk);
    // The documented case: openssl 1.1.1c-r0 is affected by CVE-2019-1547, fixed in 1.1.1d-r0.
    assert!(raw.iter().any(|f| {
        f["source_package"] == "openssl"
            && f["installed_version"] == "1.1.1c-r0"
            && f["fixed_version"] == "1.1.1d-r0"
            && f["cves"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == "CVE-2019-1547")
    }));
}

#[test]
fn scan_reports_kev_and_epss_and_rejects_bad_input() {
    // Ubuntu 24.04: glibc 2.39-0ubuntu8 is affected by CVE-2024-2961 (fixed in
    // 2.39-0ubuntu8.1), which is not in KEV.
    let feeds = feed_dir(&[
        "feeds/osv/ubuntu/UBUNTU-CVE-2023-4911.json",
        "feeds/osv/ubuntu/UBUNTU-CVE-2024-2961.json",
        "feeds/kev/known_exploited_vulnerabilities-2026.08.07.json.gz",
    ]);
    let status = fixtures().join("inventories/ubuntu2404/debootstrap-noble.dpkg-status");
    let (_, raw) = scan("--dpkg-status", &status, "ubuntu:24.04", feeds.path());
    let f = raw
        .iter()
        .find(|f| f["package"] == "libc6" && f["advisory"] == "UBUNTU-CVE-2024-2961")
        .expect("libc6 is affected by CVE-2024-2961");
    assert_eq!(f["fixed_version"], "2.39-0ubuntu8.1");
    assert_eq!(f["source_package"], "glibc");
    assert_eq!(f["kev"], false);

    // Looney Tunables (CVE-2023-4911, in KEV; DSA-5514-1 fixed it in glibc
    // 2.36-9+deb12u3) on a Debian 12 host one revision behind, with its real EPSS
    // score of 2026-08-22 (0.81422, from the KEV_EPSS data set).
    std::fs::write(
        feeds.path().join("DEBIAN-CVE-2023-4911.json"),
        r#"{"id": "DEBIAN-CVE-2023-4911", "aliases": ["CVE-2023-4911"], "modified": "2023-10-03T00:00:00Z",
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "glibc"},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.36-9+deb12u3"}]}]}]}"#,
    )
    .unwrap();
    std::fs::write(
        feeds.path().join("epss.csv"),
        "#model_version:v2026.06.15,score_date:2026-08-22T00:00:00+0000\ncve,epss,percentile\nCVE-2023-4911,0.81422,0.99609\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("status");
    std::fs::write(
        &host,
        "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u2\n\n",
    )
    .unwrap();
    let (_, raw) = scan("--dpkg-status", &host, "debian:12", feeds.path());
    assert_eq!(raw.len(), 1, "{raw:?}");
    assert_eq!(raw[0]["kev"], true);
    assert_eq!(raw[0]["epss"], 0.81422);
    assert_eq!(raw[0]["fixed_version"], "2.36-9+deb12u3");
    assert_eq!(raw[0]["cves"], serde_json::json!(["CVE-2023-4911"]));

    let out = Command::new(PATCHBAY)
        .args([
            "scan",
            "--dpkg-status",
            status.to_str().unwrap(),
            "--os",
            "plan9:4",
            "--feeds",
            feeds.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("plan9"));
}

#[test]
fn vercmp_prints_the_order_or_a_clear_error() {
    let run = |args: &[&str]| {
        Command::new(PATCHBAY)
            .arg("vercmp")
            .args(args)
            .output()
            .unwrap()
    };
    assert_eq!(ok(&run(&["deb", "1.0~rc1", "1.0"])).trim(), "<");
    assert_eq!(ok(&run(&["rpm", "1.0^git1", "1.0"])).trim(), ">");
    assert_eq!(ok(&run(&["apk", "1.0_rc1", "1.0"])).trim(), "<");
    assert_eq!(ok(&run(&["semver", "1.2.3", "1.2.3"])).trim(), "=");
    assert_eq!(ok(&run(&["deb", "1:1.0", "2.0"])).trim(), ">");
    let out = run(&["deb", "1.0", "a:b"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a:b"));
    let out = run(&["nix", "1", "2"]);
    assert!(!out.status.success());
}
