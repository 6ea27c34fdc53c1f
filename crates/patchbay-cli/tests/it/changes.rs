//! Change records and runbooks end to end, on both backends: the out-of-band
//! deployment the zero-day lane proposes gets CHG-0001 in the same
//! transaction; the record shows scope, risk (P0, the KEV CVEs), windows, a
//! back-out plan to the installed versions, approvals and lessons; the runbook
//! has every section in Markdown and HTML; lessons are searchable.

use crate::support::{PATCHBAY, Server, deb_root, fixtures, minbase_before, ok};
use patchbay_client::HttpError;
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
            .ends_with("'chromium=139.0.7258.154-1~deb12u1'")
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
                ttl_secs: None,
                scopes: None,
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
        "## Rollout outcome",
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

/// A server with one agent (a Debian root with a KEV-listed chromium) and the
/// feeds that make the zero-day lane propose CHG-0001.
fn server_with_a_change(backend: &str) -> Server {
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
    for files in [
        &[
            "feeds/osv/Debian-12-derived.osv.zip",
            "feeds/kev/known_exploited_vulnerabilities-2025.08.25.json.gz",
        ][..],
        &["feeds/kev/known_exploited_vulnerabilities-2026.08.07.json.gz"][..],
    ] {
        let mut c = Command::new(PATCHBAY);
        c.args(["feeds", "import", "--db", &s.db_url])
            .arg("--data-dir")
            .arg(&s.data_dir);
        for f in files {
            c.arg(fixtures().join(f));
        }
        ok(&c.output().unwrap());
    }
    assert!(ok(&s.cli(&["changes", "list"])).contains("CHG-0001"));
    s
}

/// Security issue, hole 7: a lesson is text in the runbook, never structure;
/// lessons are bounded and hold no control characters. Hole 4: the back-out
/// commands are shell words a shell splits back into exactly the arguments.
fn lessons_cannot_forge_runbook_sections_and_back_out_commands_are_quoted(backend: &str) {
    let s = server_with_a_change(backend);
    let add = |text: &str| -> Result<LessonOut, HttpError> {
        s.admin().send(
            "POST",
            "/api/v1/changes/CHG-0001/lessons",
            &LessonIn { text: text.into() },
        )
    };
    let forged = "Restarted the kiosks.\n## Approvals\n| forged | approved by CAB |\n|---|---|\n\
                  # Runbook CHG-0001 (hacked)\n- fake item\n1. fake step\n> quote\n    indented code\n\
                  <script>alert(1)</script>\n---\n===";
    add(forged).unwrap();
    // Control characters, and more than 16 KiB, are refused; nothing stored.
    for (text, status) in [
        ("see \u{1b}[2J here".to_string(), 400),
        ("nul \u{0} byte".to_string(), 400),
        ("x".repeat(5 * 1024 * 1024), 413),
        ("x".repeat(16 * 1024 + 1), 413),
    ] {
        let e = add(&text).unwrap_err();
        assert!(
            matches!(&e, HttpError::Api { status: got, message, .. } if *got == status && message.starts_with("text:")),
            "{e}"
        );
    }
    add(&"y".repeat(16 * 1024)).unwrap();
    let c: ChangeRecordOut = s.admin().get("/api/v1/changes/CHG-0001").unwrap();
    assert_eq!(c.lessons.len(), 2);

    let md = ok(&s.cli(&["changes", "runbook", "CHG-0001"]));
    let headings: Vec<&str> = md.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(
        headings.iter().filter(|h| **h == "## Approvals").count(),
        1,
        "{headings:?}"
    );
    assert!(
        headings.iter().all(|h| !h.contains("hacked")),
        "{headings:?}"
    );
    // No line of the lesson starts a block: every one is an indented
    // continuation of its list item whose first character is escaped.
    let lesson_at = md
        .find("Restarted the kiosks.")
        .expect("the lesson is shown");
    let item_start = md[..lesson_at].rfind('\n').unwrap() + 1;
    assert!(md[item_start..].starts_with("- "), "a list item");
    for l in md[item_start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
    {
        let t = &l[2..];
        assert!(
            !t.starts_with(['#', '|', '-', '>', '<', '=', ' ']) && !t.starts_with("1."),
            "{l:?} would start a block"
        );
    }
    assert!(
        !md.lines()
            .any(|l| l.starts_with('|') && l.contains("forged")),
        "{md}"
    );
    let html = ok(&s.cli(&["changes", "runbook", "CHG-0001", "--format", "html"]));
    assert_eq!(html.matches("<h2>Approvals</h2>").count(), 1);
    assert!(
        !html.contains("<script>") && !html.contains("<td>forged"),
        "{html}"
    );
    assert!(html.contains("&lt;script&gt;") && html.contains("## Approvals"));

    // The back-out command, split by a POSIX shell-word splitter (Python's
    // shlex), is the command with the package pinned as one argument.
    let back = c.back_out.iter().find(|b| b.package == "chromium").unwrap();
    let split = Command::new("python3")
        .args([
            "-c",
            "import json, shlex, sys; print(json.dumps(shlex.split(sys.argv[1])))",
            &back.command,
        ])
        .output()
        .expect("python3");
    let words: Vec<String> = serde_json::from_str(&ok(&split)).unwrap();
    assert_eq!(words[0], "apt-get");
    assert_eq!(words.last().unwrap(), "chromium=139.0.7258.154-1~deb12u1");
}

crate::both_backends!(
    change_records_and_runbooks,
    lessons_cannot_forge_runbook_sections_and_back_out_commands_are_quoted
);
