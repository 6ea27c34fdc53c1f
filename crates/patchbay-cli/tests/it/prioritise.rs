//! Prioritisation end to end: worklist with tiers, due dates and reasons; policy
//! check/preview/apply (errors name line and field; preview equals apply; applying
//! twice is a no-op); triage of one CVE.

use crate::support::{PATCHBAY, Server, deb_root, fixtures, minbase_before, ok};
use patchbay_agent::http::HttpError;
use patchbay_proto::api::{List, PolicyEffect, Triage, WorkItem};
use std::process::Command;

fn setup(s: &Server) -> tempfile::TempDir {
    let root = deb_root(&minbase_before());
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
    ok(&Command::new(PATCHBAY)
        .args(["feeds", "import", "--db", &s.db_url])
        .arg(fixtures().join("feeds/osv/Debian-12-derived.osv.zip"))
        .output()
        .unwrap());
    root
}

fn worklist(s: &Server, q: &str) -> Vec<WorkItem> {
    let l: List<WorkItem> = s.admin().get(&format!("/api/v1/worklist?{q}")).unwrap();
    l.items
}

fn worklist_policy_and_triage(backend: &str) {
    let s = Server::start(backend);
    let _root = setup(&s);
    let items = worklist(&s, "");
    assert!(items.len() >= 10);
    // No CVSS in the Debian data: the documented missing-data rule applies and says so.
    assert!(
        items.iter().all(|w| w.tier == "P2"),
        "{:?}",
        items.iter().map(|w| &w.tier).collect::<Vec<_>>()
    );
    assert!(
        items[0].reasons.iter().any(|r| r.contains("assumed")),
        "{:?}",
        items[0].reasons
    );
    assert!(items[0].summary.starts_with("P2"));
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
            .all(|w| w.tier == "P1" && w.owner == "web-team")
    );
    assert!(
        items[0].reasons.iter().any(|r| r.contains("critical")),
        "{:?}",
        items[0].reasons
    );
    assert!(worklist(&s, "owner=nobody").is_empty());
    assert_eq!(worklist(&s, "tier=P1").len(), items.len());
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
        "every finding drops from P1 to P2"
    );
    assert!(after.iter().all(|w| w.tier == "P2"));
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

crate::both_backends!(worklist_policy_and_triage);
