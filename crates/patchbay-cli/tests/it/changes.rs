//! Change records and runbooks end to end, on both backends: the out-of-band
//! deployment the zero-day lane proposes gets CHG-0001 in the same
//! transaction; the record shows scope, risk (P0, the KEV CVEs), windows, a
//! back-out plan to the installed versions, approvals and lessons; the runbook
//! has every section in Markdown and HTML; lessons are searchable.

use crate::support::{PATCHBAY, Server, deb_root, fixtures, minbase_before, ok};
use patchbay_agent::http::HttpError;
use patchbay_proto::api::{ChangeRecordOut, LessonIn, LessonOut, List};
use std::process::Command;

fn change_records_and_runbooks(backend: &str) {
    let s = Server::start(backend);
    let mut status = minbase_before();
    status.push_str(
        "Package: chromium\nStatus: install ok installed\nArchitecture: amd64\n\
         Version: 139.0.7258.154-1~deb12u1\n\n",
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
    ok(&s.cli(&["assets", "set", "chroot-host", "--owner", "web-team"]));
    let import = |files: &[&str]| {
        let mut c = Command::new(PATCHBAY);
        c.args(["feeds", "import", "--db", &s.db_url])
            .arg("--data-dir")
            .arg(&s.data_dir);
        for f in files {
            c.arg(fixtures().join(f));
        }
        ok(&c.output().unwrap());
    };
    import(&[
        "feeds/osv/Debian-12-derived.osv.zip",
        "feeds/kev/known_exploited_vulnerabilities-2025.08.25.json.gz",
    ]);
    import(&["feeds/kev/known_exploited_vulnerabilities-2026.08.07.json.gz"]);
    let list = ok(&s.cli(&["changes", "list"]));
    assert!(
        list.contains("CHG-0001") && list.contains("DEP-OOB-"),
        "{list}"
    );
    // The summary's tier and counts agree with the full record (below).
    let summaries: List<patchbay_proto::api::ChangeSummaryOut> =
        s.admin().get("/api/v1/changes").unwrap();
    assert_eq!(summaries.items.len(), 1);
    let summary = summaries.items[0].clone();
    let audit = ok(&s.cli(&["audit", "list", "--limit", "10000", "--format", "json"]));
    // Created in the deployment's own transaction (recorded with oob.raise),
    // not afterwards.
    assert!(audit.contains("CHG-0001"), "{audit}");
    assert!(!audit.contains("change.create"));

    ok(&s.cli(&[
        "windows",
        "add",
        "nightly",
        "--rrule",
        "FREQ=DAILY",
        "--dtstart",
        "2026-01-01T02:00",
        "--duration",
        "2h",
    ]));
    let c: ChangeRecordOut = serde_json::from_str(&ok(
        &s.cli(&["changes", "show", "CHG-0001", "--format", "json"])
    ))
    .unwrap();
    assert!(c.deployment.starts_with("DEP-OOB-"));
    assert_eq!(c.assets, vec!["chroot-host".to_string()]);
    assert_eq!(c.highest_tier, "P0");
    assert!(!c.kev_cves.is_empty());
    assert!(c.patches.iter().any(|p| p.package == "chromium"));
    assert!(c.findings > 0);
    assert!(
        c.risk.contains("out-of-band") && c.risk.contains("CISA KEV"),
        "{}",
        c.risk
    );
    assert_eq!(c.windows.len(), 1);
    assert_eq!(c.windows[0].window.as_deref(), Some("nightly"));
    let chromium = c.back_out.iter().find(|b| b.package == "chromium").unwrap();
    assert_eq!(chromium.installed_version, "139.0.7258.154-1~deb12u1");
    assert!(
        chromium
            .command
            .contains("apt-get install -y --allow-downgrades")
    );
    assert!(
        chromium
            .command
            .ends_with("chromium=139.0.7258.154-1~deb12u1")
    );
    assert_eq!(c.outcome, "proposed");
    assert_eq!(
        (
            summary.highest_tier.as_str(),
            summary.assets,
            summary.patches,
            summary.status.as_str()
        ),
        (
            c.highest_tier.as_str(),
            c.assets.len(),
            c.patches.len(),
            c.outcome.as_str()
        )
    );
    assert!(c.approvals.is_empty());

    // An approval to enter a blackout shows up in the record.
    ok(&s.cli(&[
        "blackouts",
        "add",
        "freeze",
        "--start",
        "2030-01-01",
        "--end",
        "2030-01-02",
        "--reason",
        "r",
        "--owner",
        "cab",
    ]));
    ok(&s.cli(&[
        "blackouts",
        "approve",
        "freeze",
        "--deployment",
        &c.deployment,
        "--note",
        "exploited",
    ]));
    // Lessons: recorded, searchable; auditors cannot write; empty text refused.
    ok(&s.cli(&[
        "changes",
        "lessons",
        "add",
        "CHG-0001",
        "--text",
        "Chromium needed a browser restart on kiosks",
    ]));
    let auditor: patchbay_proto::api::TokenCreated = s
        .admin()
        .send(
            "POST",
            "/api/v1/tokens",
            &patchbay_proto::api::CreateToken {
                name: "aud".into(),
                role: patchbay_core::auth::Role::Auditor,
            },
        )
        .unwrap();
    let r: Result<LessonOut, HttpError> = s.client(Some(&auditor.token)).send(
        "POST",
        "/api/v1/changes/CHG-0001/lessons",
        &LessonIn { text: "x".into() },
    );
    assert!(matches!(r, Err(HttpError::Api { status: 403, .. })));
    let r: Result<LessonOut, HttpError> = s.admin().send(
        "POST",
        "/api/v1/changes/CHG-0001/lessons",
        &LessonIn { text: " ".into() },
    );
    assert!(matches!(r, Err(HttpError::Api { status: 400, .. })));
    let found: List<LessonOut> = s
        .admin()
        .get("/api/v1/lessons?q=RESTART%20chromium")
        .unwrap();
    assert_eq!(found.items.len(), 1);
    let none: List<LessonOut> = s
        .admin()
        .get("/api/v1/lessons?q=restart%20firefox")
        .unwrap();
    assert!(none.items.is_empty());

    let c: ChangeRecordOut = s.admin().get("/api/v1/changes/CHG-0001").unwrap();
    assert_eq!(c.approvals.len(), 1);
    assert_eq!(c.approvals[0].subject, "blackout:freeze");
    assert_eq!(c.lessons.len(), 1);

    // The runbook, both forms.
    let md = ok(&s.cli(&["changes", "runbook", "CHG-0001"]));
    for section in [
        "# Runbook CHG-0001",
        "## Roles",
        "## Timeline by window",
        "## Steps",
        "## Gates",
        "## Escalation chain",
        "## Back-out",
        "## Approvals",
        "## Lessons learned",
    ] {
        assert!(md.contains(section), "{section} missing:\n{md}");
    }
    assert!(
        md.contains("web-team"),
        "asset owner in roles and escalation"
    );
    assert!(md.contains("chromium=139.0.7258.154-1~deb12u1"));
    assert!(md.contains("| chroot-host | all | nightly |"), "{md}");
    assert!(md.contains("Chromium needed a browser restart"));
    let html = ok(&s.cli(&["changes", "runbook", "CHG-0001", "--format", "html"]));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains("<h2>Back-out</h2>") && html.contains("<table>") && html.contains("<ol>")
    );
    assert!(html.contains("<code>apt-get install"));
    let bad = s.cli(&["changes", "runbook", "CHG-0001", "--format", "pdf"]);
    assert!(!bad.status.success());
    let missing = s.cli(&["changes", "show", "CHG-9999"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no change record"));

    // The evidence bundle carries the change record and its runbook.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("e.zip");
    ok(&s.cli(&["evidence", "export", "--out", file.to_str().unwrap()]));
    let m = patchbay_app::evidence::verify_bundle(
        &std::fs::read(&file).unwrap(),
        patchbay_app::evidence::BundleKey::TrustEmbedded,
    )
    .unwrap()
    .manifest;
    assert!(m.files.iter().any(|f| f.path == "changes/CHG-0001.json"));
    assert!(
        m.files
            .iter()
            .any(|f| f.path == "changes/CHG-0001-runbook.md")
    );
}

crate::both_backends!(change_records_and_runbooks);
