//! Prioritisation end to end: worklist with tiers, due dates and reasons; policy
//! check/preview/apply (errors name line and field; preview equals apply; applying
//! twice is a no-op); triage of one CVE.

use crate::support::{PATCHBAY, Server, deb_root, fixtures, minbase_before, ok};
use patchbay_client::HttpError;
use patchbay_proto::api::{FindingOut, List, PolicyEffect, Triage, WorkItem};
use std::process::Command;

fn setup(s: &Server) -> tempfile::TempDir {
    let root = s.host_with(&minbase_before());
    s.import_feeds(&["feeds/osv/Debian-12-derived.osv.zip"]);
    root
}

fn worklist(s: &Server, q: &str) -> Vec<WorkItem> {
    let l: List<WorkItem> = s.admin().get(&format!("/api/v1/worklist?{q}")).unwrap();
    l.items
}

/// The worklist selects its lines without building every finding's line
/// (`Snapshot::top_open`); whatever the filter and limit, the answer must be
/// the full ranking filtered and cut — and the full ranking must hold every
/// open finding that no exclusion or exception takes out (`dropped`: the
/// (asset, advisory, package) lines the caller knows are taken out).
fn assert_selection(s: &Server, dropped: &[(String, String, String)]) {
    let full = worklist(s, "limit=10000");
    let open: List<FindingOut> = s.admin().get("/api/v1/findings").unwrap();
    let key = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    let mut want: Vec<_> = open
        .items
        .iter()
        .map(|f| key(&f.asset, &f.advisory, &f.package))
        .filter(|k| !dropped.contains(k))
        .collect();
    let mut got: Vec<_> = full
        .iter()
        .map(|w| key(&w.finding.asset, &w.finding.advisory, &w.finding.package))
        .collect();
    want.sort();
    got.sort();
    assert_eq!(
        got, want,
        "the full worklist holds every open finding not taken out"
    );
    type Keep = fn(&WorkItem) -> bool;
    let cases: [(&str, Keep); 8] = [
        ("limit=1", |_| true),
        ("limit=7", |_| true),
        ("limit=250", |_| true),
        ("owner=web-team&limit=5", |w| w.owner == "web-team"),
        ("tier=P1&limit=4", |w| w.tier == "P1"),
        ("tier=P2&limit=9", |w| w.tier == "P2"),
        ("asset=CHROOT-HOST&limit=6", |w| {
            w.finding.asset == "chroot-host"
        }),
        ("owner=nobody", |_| false),
    ];
    for (q, keep) in cases {
        let limit = q
            .split('&')
            .find_map(|p| p.strip_prefix("limit="))
            .map_or(1000, |n| n.parse().unwrap());
        let reference: Vec<WorkItem> = full
            .iter()
            .filter(|w| keep(w))
            .take(limit)
            .cloned()
            .collect();
        assert_eq!(worklist(s, q), reference, "worklist?{q}");
    }
}

fn worklist_policy_and_triage(backend: &str) {
    let s = Server::start(backend);
    let _root = setup(&s);
    let items = worklist(&s, "");
    assert!(items.len() >= 10);
    // A limit returns the head of the same ranking.
    assert_eq!(worklist(&s, "limit=3"), items[..3].to_vec());
    // No CVSS in the Debian data: the documented missing-data rule applies
    // (ADR 0013: the Debian urgency of the record, mapped through
    // severity_cvss) and says so.
    assert!(
        items
            .iter()
            .all(|w| ["P2", "P3", "P4"].contains(&w.tier.as_str())),
        "{:?}",
        items.iter().map(|w| &w.tier).collect::<Vec<_>>()
    );
    assert!(
        items
            .iter()
            .all(|w| w.reasons[0].starts_with("assumed CVSS")
                && w.reasons.iter().any(
                    |r| r.contains("Debian urgency") || r.contains("unknown severity assumed")
                )),
        "{:?}",
        items[0].reasons
    );
    assert!(items[0].summary.starts_with(&items[0].tier));
    let tier_of = |items: &[WorkItem]| -> std::collections::HashMap<String, String> {
        items
            .iter()
            .map(|w| (w.finding.id.clone(), w.tier.clone()))
            .collect()
    };
    let raised = |t: &str| match t {
        "P4" => "P3",
        "P3" => "P2",
        "P2" => "P1",
        _ => "P0",
    };
    let initial = tier_of(&worklist(&s, "limit=10000"));
    // Ranked: never a later due date before an earlier one within a tier.
    assert!(items.windows(2).all(|w| w[0].overdue >= w[1].overdue));

    // Business context raises the tier: critical impact moves P2 to P1.
    ok(&s.cli(&[
        "assets",
        "set",
        "chroot-host",
        "--business-impact",
        "critical",
        "--owner",
        "web-team",
    ]));
    let items = worklist(&s, "owner=web-team");
    assert!(
        items
            .iter()
            .all(|w| w.tier == raised(&initial[&w.finding.id]) && w.owner == "web-team")
    );
    assert!(
        items[0].reasons.iter().any(|r| r.contains("critical")),
        "{:?}",
        items[0].reasons
    );
    assert!(worklist(&s, "owner=nobody").is_empty());
    let p1 = items.iter().filter(|w| w.tier == "P1").count();
    assert_eq!(worklist(&s, "tier=P1&limit=10000").len(), p1);
    assert_selection(&s, &[]);
    let e = s
        .admin()
        .get::<serde_json::Value>("/api/v1/worklist?tier=P9")
        .unwrap_err();
    assert!(matches!(e, HttpError::Api { status: 400, .. }));

    // CSV output: a header and one line per item, formula-safe.
    let csv = ok(&s.cli(&["worklist", "--format", "csv"]));
    assert!(csv.starts_with("tier,due,overdue,asset"), "{csv}");
    assert_eq!(csv.lines().count(), items.len() + 1);

    // Policy: errors name line and field; nothing is applied.
    let bad = "version = 1\n\n[sla]\nP1 = \"7x\"\n";
    let e = s
        .admin()
        .post_raw::<PolicyEffect>("/api/v1/policy", "application/toml", bad.as_bytes())
        .unwrap_err();
    assert!(
        matches!(&e, HttpError::Api { status: 400, message, .. } if message.contains("line 4") && message.contains("sla.P1")),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad_file = dir.path().join("bad.toml");
    std::fs::write(&bad_file, bad).unwrap();
    let out = Command::new(PATCHBAY)
        .args(["policy", "check"])
        .arg(&bad_file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 4, sla.P1"));

    // A policy that turns off the critical-impact modifier and excludes perl.
    let policy = "version = 1\n[tiers]\ncritical_impact_raises = false\n\n[[exclusions]]\npackage = \"perl\"\nreason = \"vendor-managed\"\n";
    let before = worklist(&s, "");
    let preview: PolicyEffect = s
        .admin()
        .post_raw(
            "/api/v1/policy/preview",
            "application/toml",
            policy.as_bytes(),
        )
        .unwrap();
    assert!(!preview.no_op);
    assert_eq!(
        worklist(&s, "").len(),
        before.len(),
        "a preview changes nothing"
    );
    let applied: PolicyEffect = s
        .admin()
        .post_raw("/api/v1/policy", "application/toml", policy.as_bytes())
        .unwrap();
    assert_eq!(
        applied, preview,
        "the preview's numbers are what apply changes"
    );
    let after = worklist(&s, "");
    let perl = before
        .iter()
        .filter(|w| w.finding.source_package == "perl")
        .count() as u64;
    assert!(perl > 0);
    assert_eq!(applied.findings_newly_excluded, perl);
    assert_eq!(after.len() as u64, before.len() as u64 - perl);
    let changed = before
        .iter()
        .filter(|w| w.finding.source_package != "perl")
        .count() as u64;
    assert_eq!(
        applied.findings_changing_tier,
        changed + perl,
        "every finding drops back one tier"
    );
    assert!(after.iter().all(|w| w.tier == initial[&w.finding.id]));
    let perl_lines: Vec<_> = before
        .iter()
        .filter(|w| w.finding.source_package == "perl")
        .map(|w| {
            (
                w.finding.asset.clone(),
                w.finding.advisory.clone(),
                w.finding.package.clone(),
            )
        })
        .collect();
    assert_selection(&s, &perl_lines);
    // Applying it again (reformatted, with a comment) is a no-op.
    let again = format!("# same policy\n{policy}");
    let second: PolicyEffect = s
        .admin()
        .post_raw("/api/v1/policy", "application/toml", again.as_bytes())
        .unwrap();
    assert!(second.no_op, "{second:?}");
    let audit: serde_json::Value = s.admin().get("/api/v1/audit?limit=1000").unwrap();
    let applies = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "policy.apply")
        .count();
    assert_eq!(applies, 1);

    // Triage of a CVE that affects the host.
    let cve = after[0].finding.cves[0].clone();
    let t: Triage = s.admin().get(&format!("/api/v1/triage/{cve}")).unwrap();
    assert!(t.affected);
    assert!(
        t.items
            .iter()
            .all(|w| w.finding.asset == "chroot-host" && w.finding.cves.contains(&cve))
    );
    assert!(!t.fixes.is_empty() && t.fixes[0].contains("->"));
    let screen = ok(&s.cli(&["triage", &cve]));
    assert!(
        screen.contains("AFFECTED") && screen.contains("chroot-host"),
        "{screen}"
    );
    let t: Triage = s.admin().get("/api/v1/triage/CVE-1999-0001").unwrap();
    assert!(!t.affected);
}

/// Acceptance: importing the 2026.08.07 KEV catalog over the 2025.08.25 one raises
/// exactly the findings whose CVEs were added to KEV, records the out-of-band
/// event and proposes an out-of-band deployment.
fn kev_catalog_update_drives_the_zero_day_lane(backend: &str) {
    let s = Server::start(backend);
    // A Debian 12 host with packages that the KEV additions of 2025-08..2026-08
    // touch in the real Debian data (chromium, inetutils), at vulnerable versions.
    let mut status = minbase_before();
    status.push_str(
        "Package: chromium\nStatus: install ok installed\nArchitecture: amd64\n\
         Version: 139.0.7258.154-1~deb12u1\n\n\
         Package: inetutils-telnet\nStatus: install ok installed\nArchitecture: amd64\n\
         Source: inetutils\nVersion: 2:2.4-2+deb12u1\n\n",
    );
    let root = deb_root(&status);
    let state = tempfile::tempdir().unwrap();
    ok(&s.agent_once(
        state.path(),
        Some(&s.enroll_token(1)),
        &[
            "--root",
            root.path().to_str().unwrap(),
            "--no-pending-updates",
        ],
    ));
    let import = |files: &[&str]| -> String {
        let mut c = Command::new(PATCHBAY);
        c.args(["feeds", "import", "--db", &s.db_url])
            .arg("--data-dir")
            .arg(&s.data_dir);
        for f in files {
            c.arg(fixtures().join(f));
        }
        ok(&c.output().unwrap())
    };
    import(&[
        "feeds/osv/Debian-12-derived.osv.zip",
        "feeds/kev/known_exploited_vulnerabilities-2025.08.25.json.gz",
    ]);
    let before = worklist(&s, "");
    let p0_before: std::collections::BTreeSet<String> = before
        .iter()
        .filter(|w| w.tier == "P0")
        .map(|w| w.finding.id.clone())
        .collect();

    let out = import(&["feeds/kev/known_exploited_vulnerabilities-2026.08.07.json.gz"]);
    assert!(out.contains("zero-day lane"), "{out}");
    let after = worklist(&s, "");

    // The CVEs added between the two catalogs, read independently.
    let read = |f: &str| -> std::collections::BTreeSet<String> {
        let mut d = flate2::read::GzDecoder::new(std::fs::File::open(fixtures().join(f)).unwrap());
        let mut text = String::new();
        std::io::Read::read_to_string(&mut d, &mut text).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["vulnerabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["cveID"].as_str().unwrap().to_string())
            .collect()
    };
    let old = read("feeds/kev/known_exploited_vulnerabilities-2025.08.25.json.gz");
    let new = read("feeds/kev/known_exploited_vulnerabilities-2026.08.07.json.gz");
    let added: std::collections::BTreeSet<&String> = new.difference(&old).collect();
    assert_eq!(added.len(), 258);
    let expected: std::collections::BTreeSet<String> = after
        .iter()
        .filter(|w| w.finding.cves.iter().any(|c| added.contains(c)))
        .map(|w| w.finding.id.clone())
        .collect();
    let raised: std::collections::BTreeSet<String> = after
        .iter()
        .filter(|w| w.tier == "P0" && !p0_before.contains(&w.finding.id))
        .map(|w| w.finding.id.clone())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(
        raised, expected,
        "exactly the findings whose CVEs were added to KEV are raised"
    );
    assert!(
        after
            .iter()
            .filter(|w| raised.contains(&w.finding.id))
            .all(|w| w.due
                <= w.finding
                    .due_date
                    .clone()
                    .map(|d| format!("{d}T23:59:59Z"))
                    .unwrap())
    );

    let events: List<patchbay_proto::api::OobEventOut> =
        s.admin().get("/api/v1/oob-events").unwrap();
    assert_eq!(events.items.len(), 1);
    assert_eq!(events.items[0].findings as usize, expected.len());
    let dep = events.items[0].deployment.clone().unwrap();
    assert!(dep.starts_with("DEP-OOB-"), "{dep}");
    let deps: List<patchbay_proto::api::DeploymentOut> =
        s.admin().get("/api/v1/deployments").unwrap();
    assert_eq!(deps.items.len(), 1);
    assert_eq!(
        (deps.items[0].id.as_str(), deps.items[0].status.as_str()),
        (dep.as_str(), "proposed")
    );
    assert_eq!(deps.items[0].assets, vec!["chroot-host".to_string()]);
    // Its patches are approved P0 patches of the catalog, named by the standard.
    let patches: List<patchbay_proto::api::PatchOut> = s.admin().get("/api/v1/patches").unwrap();
    for name in &deps.items[0].patches {
        let p = patches.items.iter().find(|p| &p.name == name).unwrap();
        assert!(p.approved && p.highest_tier == "P0", "{p:?}");
        assert!(
            name.starts_with("PB-") && name.contains("-debian12-"),
            "{name}"
        );
    }
    assert!(
        deps.items[0]
            .patches
            .iter()
            .any(|n| n.contains("-chromium-"))
    );
    assert!(
        deps.items[0]
            .patches
            .iter()
            .any(|n| n.contains("-inetutils-2:2.4-2+deb12u2"))
    );
    // Importing the same catalog again raises nothing new.
    let out = import(&["feeds/kev/known_exploited_vulnerabilities-2026.08.07.json.gz"]);
    assert!(!out.contains("zero-day lane"), "{out}");
    let list = ok(&s.cli(&["deployments"]));
    assert!(list.contains(&dep));
}

/// Acceptance: triage on the real fixture data gives the assets and fixed versions
/// that the offline scan (itself checked against dpkg) gives.
fn triage_matches_the_scan(backend: &str) {
    let s = Server::start(backend);
    let _root = setup(&s);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("feeds/osv/Debian-12-derived.osv.zip"),
        dir.path().join("d.zip"),
    )
    .unwrap();
    let status = _root.path().join("var/lib/dpkg/status");
    let scan: Vec<serde_json::Value> = serde_json::from_str(&ok(&Command::new(PATCHBAY)
        // The compiled index beside the feeds (a dot file: not read as a feed).
        .args(["scan", "--index"])
        .arg(dir.path().join(".advisories.pbidx"))
        .args([
            "--dpkg-status",
            status.to_str().unwrap(),
            "--os",
            "debian:12",
            "--format",
            "json",
            "--feeds",
        ])
        .arg(dir.path())
        .output()
        .unwrap()))
    .unwrap();
    let mut cves: Vec<String> = scan
        .iter()
        .flat_map(|f| {
            f["cves"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
        })
        .collect();
    cves.sort();
    cves.dedup();
    assert!(cves.len() >= 5);
    for cve in cves.iter().take(10) {
        let t: Triage = s.admin().get(&format!("/api/v1/triage/{cve}")).unwrap();
        let mut got: Vec<(String, String, String)> = t
            .items
            .iter()
            .map(|w| {
                (
                    w.finding.package.clone(),
                    w.finding.installed_version.clone(),
                    w.finding.fixed_version.clone().unwrap(),
                )
            })
            .collect();
        got.sort();
        let mut want: Vec<(String, String, String)> = scan
            .iter()
            .filter(|f| {
                f["cves"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c == cve.as_str())
            })
            .map(|f| {
                (
                    f["package"].as_str().unwrap().into(),
                    f["installed_version"].as_str().unwrap().into(),
                    f["fixed_version"].as_str().unwrap().into(),
                )
            })
            .collect();
        want.sort();
        assert_eq!(got, want, "{cve}");
        assert!(t.items.iter().all(|w| w.finding.asset == "chroot-host"));
    }
}

crate::both_backends!(
    worklist_policy_and_triage,
    kev_catalog_update_drives_the_zero_day_lane,
    triage_matches_the_scan
);

#[test]
fn agentless_assets_with_versions_get_findings_and_patches() {
    let s = Server::start("sqlite");
    ok(&Command::new(PATCHBAY)
        .args(["feeds", "import", "--db", &s.db_url])
        .arg("--data-dir")
        .arg(&s.data_dir)
        .arg(fixtures().join("feeds/osv/Debian-12-derived.osv.zip"))
        .output()
        .unwrap());
    // An appliance on Debian 12 known only from a CMDB export, with one package.
    let csv = "name,kind,os,packages,exposure\nvpn-gw-01,appliance,debian:12,sudo=1.9.13p3-1+deb12u1,internet-facing\n";
    let _: serde_json::Value = s
        .admin()
        .post_raw("/api/v1/assets/import", "text/csv", csv.as_bytes())
        .unwrap();
    let items = worklist(&s, "asset=vpn-gw-01");
    assert!(!items.is_empty(), "the imported versions are assessed");
    assert!(items.iter().all(|w| w.finding.package == "sudo"
        && w.reasons.iter().any(|r| r.contains("internet-facing"))
        || w.tier != "P0"));
    let patches: List<patchbay_proto::api::PatchOut> = s.admin().get("/api/v1/patches").unwrap();
    let p = patches
        .items
        .iter()
        .find(|p| p.assets == vec!["vpn-gw-01".to_string()])
        .unwrap();
    assert!(
        p.name.starts_with("PB-") && p.name.contains("-debian12-sudo-"),
        "{}",
        p.name
    );
    assert_eq!(p.family, "os");
    assert_eq!(p.os, "debian:12");
}
