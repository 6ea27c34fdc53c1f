//! Acceptance: feeds import (idempotent, recorded, malformed records skipped
//! alone), findings kept in step with inventories: a fixed version closes a
//! finding with `resolved_at`, a downgrade reopens it — on both backends.

use crate::support::{PATCHBAY, Server, deb_root, fixtures, minbase_after, minbase_before, ok};
use patchbay_proto::api::{FeedOut, FindingOut, List};
use std::collections::BTreeSet;
use std::process::Command;

fn import(s: &Server, paths: &[&str]) -> String {
    let mut c = Command::new(PATCHBAY);
    c.args(["feeds", "import", "--db", &s.db_url])
        .arg("--data-dir")
        .arg(&s.data_dir);
    for p in paths {
        c.arg(fixtures().join(p));
    }
    ok(&c.output().unwrap())
}

fn findings(s: &Server, all: bool) -> Vec<FindingOut> {
    let l: List<FindingOut> = s
        .admin()
        .get(&format!("/api/v1/findings?asset=chroot-host&all={all}"))
        .unwrap();
    l.items
}

fn feeds_import_and_findings_lifecycle(backend: &str) {
    let s = Server::start(backend);
    let root = deb_root(&minbase_before());
    let state = tempfile::tempdir().unwrap();
    let args = [
        "--root",
        root.path().to_str().unwrap(),
        "--no-pending-updates",
    ];
    ok(&s.agent_once(state.path(), Some(&s.enroll_token(1)), &args));
    assert!(findings(&s, true).is_empty(), "no feeds, no findings");

    let out = import(
        &s,
        &[
            "feeds/osv/Debian-12-derived.osv.zip",
            "feeds/kev/known_exploited_vulnerabilities-2026.08.07.json.gz",
            "feeds/epss/epss_scores-2026-09-29-head40.csv",
        ],
    );
    assert!(out.contains("10464 advisories stored"), "{out}");
    assert!(out.contains("KEV catalog 2026.08.07"), "{out}");
    assert!(out.contains("EPSS 2026-09-29: 40 scores"), "{out}");
    assert!(out.contains("findings opened"), "{out}");

    // The server picks up the new feeds; its findings equal the offline scan's.
    let open = findings(&s, false);
    let scan_dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("feeds/osv/Debian-12-derived.osv.zip"),
        scan_dir.path().join("debian.zip"),
    )
    .unwrap();
    let status = root.path().join("var/lib/dpkg/status");
    let scan: Vec<serde_json::Value> = serde_json::from_str(&ok(&Command::new(PATCHBAY)
        // The compiled index beside the feeds (a dot file: not read as a feed).
        .args(["scan", "--index"])
        .arg(scan_dir.path().join(".advisories.pbidx"))
        .args([
            "--dpkg-status",
            status.to_str().unwrap(),
            "--os",
            "debian:12",
            "--feeds",
        ])
        .arg(scan_dir.path())
        .args(["--format", "json"])
        .output()
        .unwrap()))
    .unwrap();
    let from_scan: BTreeSet<(String, String)> = scan
        .iter()
        .map(|f| {
            (
                f["package"].as_str().unwrap().to_string(),
                f["advisory"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let from_server: BTreeSet<(String, String)> = open
        .iter()
        .map(|f| (f.package.clone(), f.advisory.clone()))
        .collect();
    assert_eq!(from_server, from_scan);
    assert!(open.len() >= 10);
    let perl: Vec<&FindingOut> = open.iter().filter(|f| f.package == "perl-base").collect();
    assert!(!perl.is_empty());
    assert_eq!(perl[0].installed_version, "5.36.0-7+deb12u3");
    assert_eq!(perl[0].fixed_version.as_deref(), Some("5.36.0-7+deb12u4"));
    assert!(perl[0].id.starts_with("F-chroot-host-DEBIAN-CVE-"));
    assert!(!perl[0].cves.is_empty());

    // The security upgrade: its findings close with resolved_at; the rest stay.
    std::fs::write(root.path().join("var/lib/dpkg/status"), minbase_after()).unwrap();
    ok(&s.agent_once(state.path(), None, &args));
    let after = findings(&s, true);
    let resolved: Vec<&FindingOut> = after.iter().filter(|f| f.resolved_at.is_some()).collect();
    let resolved_pkgs: BTreeSet<&str> = resolved.iter().map(|f| f.package.as_str()).collect();
    assert!(
        resolved_pkgs.contains("perl-base") && resolved_pkgs.contains("libpcre2-8-0"),
        "{resolved_pkgs:?}"
    );
    for p in &resolved_pkgs {
        assert!(
            [
                "apt",
                "libapt-pkg6.0",
                "liblzma5",
                "libpcre2-8-0",
                "perl-base",
                "tzdata"
            ]
            .contains(p),
            "{p} was not upgraded and must not be resolved"
        );
    }
    let still_open = after.iter().filter(|f| f.resolved_at.is_none()).count();
    assert_eq!(still_open + resolved.len(), open.len());

    // A downgrade reopens them, keeping first_seen.
    std::fs::write(root.path().join("var/lib/dpkg/status"), minbase_before()).unwrap();
    ok(&s.agent_once(state.path(), None, &args));
    let again = findings(&s, false);
    assert_eq!(again.len(), open.len());
    let p0 = again.iter().find(|f| f.id == perl[0].id).unwrap();
    assert_eq!(p0.first_seen, perl[0].first_seen);
    assert!(p0.resolved_at.is_none());

    // Re-importing the same files changes nothing.
    let feeds_before: List<FeedOut> = s.admin().get("/api/v1/feeds").unwrap();
    let out = import(
        &s,
        &[
            "feeds/osv/Debian-12-derived.osv.zip",
            "feeds/kev/known_exploited_vulnerabilities-2026.08.07.json.gz",
            "feeds/epss/epss_scores-2026-09-29-head40.csv",
        ],
    );
    assert!(
        out.contains("0 findings opened, 0 reopened, 0 resolved"),
        "{out}"
    );
    // Delta re-assessment: an unchanged re-import queues no (ecosystem,
    // package) pair, so nothing is re-matched.
    assert!(
        out.contains(
            "(0 changed (ecosystem, package) pairs on 0 assets; 0 package versions evaluated"
        ),
        "{out}"
    );
    let feeds_after: List<FeedOut> = s.admin().get("/api/v1/feeds").unwrap();
    let strip = |l: &List<FeedOut>| -> Vec<(String, String, String, i64, i64)> {
        l.items
            .iter()
            .map(|f| {
                (
                    f.kind.clone(),
                    f.source.clone(),
                    f.version.clone(),
                    f.records,
                    f.skipped,
                )
            })
            .collect()
    };
    assert_eq!(strip(&feeds_before), strip(&feeds_after));
    assert_eq!(feeds_after.items.len(), 3);
    let kinds: BTreeSet<(&str, &str)> = feeds_after
        .items
        .iter()
        .map(|f| (f.kind.as_str(), f.version.as_str()))
        .collect();
    assert!(
        kinds.contains(&("kev", "2026.08.07")) && kinds.contains(&("epss", "2026-09-29")),
        "{kinds:?}"
    );
    assert_eq!(findings(&s, true).len(), after.len());

    // CLI views.
    let list = ok(&s.cli(&["feeds", "list"]));
    assert!(
        list.contains("2026.08.07") && list.contains("10464"),
        "{list}"
    );
    let table = ok(&s.cli(&["findings", "list", "--asset", "chroot-host"]));
    assert!(
        table.contains("perl-base") && table.contains("5.36.0-7+deb12u4"),
        "{table}"
    );
    // Feed imports are audited.
    let audit: serde_json::Value = s.admin().get("/api/v1/audit?limit=1000").unwrap();
    let imports = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "feed.import")
        .count();
    assert_eq!(imports, 6);
}

fn malformed_feed_records_are_skipped_alone(backend: &str) {
    let s = Server::start(backend);
    let out = Command::new(PATCHBAY)
        .args(["feeds", "import", "--db", &s.db_url])
        .arg("--data-dir")
        .arg(&s.data_dir)
        .arg(fixtures().join("feeds/malformed"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    assert!(stderr.contains("skipped:"), "{stderr}");
    assert!(
        stderr.contains("truncated.json"),
        "the file is named: {stderr}"
    );
    assert!(
        stdout.contains("advisories stored"),
        "valid records are still imported: {stdout}"
    );
    // A path that does not exist is an error naming it.
    let out = Command::new(PATCHBAY)
        .args(["feeds", "import", "--db", &s.db_url, "/nonexistent/feeds"])
        .arg("--data-dir")
        .arg(&s.data_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/feeds"));
}

crate::both_backends!(
    feeds_import_and_findings_lifecycle,
    malformed_feed_records_are_skipped_alone
);
