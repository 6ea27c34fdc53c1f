//! Reports and the signed evidence bundle end to end, on both backends: the
//! report figures agree with the findings behind them (time to patch of a
//! real security upgrade, SLA adherence, compliance, coverage); CSV is
//! formula-safe; the HTML is self-contained with SVG charts and names its
//! controls; `evidence verify` passes an untouched bundle and fails on any
//! modified, removed or added file and on a wrong signature.

use crate::support::{PATCHBAY, Server, deb_root, fixtures, minbase_after, minbase_before, ok};
use jiff::SignedDuration;
use patchbay_proto::api::{FindingOut, List};
use std::io::{Read, Write};
use std::process::Command;

/// A package the upgrade leaves vulnerable, so that findings stay open.
const CHROMIUM: &str = "Package: chromium\nStatus: install ok installed\nArchitecture: amd64\n\
                        Version: 139.0.7258.154-1~deb12u1\n\n";

fn setup(s: &Server) {
    let root = deb_root(&format!("{}{CHROMIUM}", minbase_before()));
    let state = tempfile::tempdir().unwrap();
    let args = [
        "--root",
        root.path().to_str().unwrap(),
        "--no-pending-updates",
    ];
    ok(&s.agent_once(state.path(), Some(&s.enroll_token(1)), &args));
    ok(&Command::new(PATCHBAY)
        .args(["feeds", "import", "--db", &s.db_url])
        .arg("--data-dir")
        .arg(&s.data_dir)
        .arg(fixtures().join("feeds/osv/Debian-12-derived.osv.zip"))
        .output()
        .unwrap());
    // Three days later the security upgrade is installed.
    s.clock.advance(SignedDuration::from_hours(72));
    std::fs::write(
        root.path().join("var/lib/dpkg/status"),
        format!("{}{CHROMIUM}", minbase_after()),
    )
    .unwrap();
    ok(&s.agent_once(state.path(), None, &args));
    ok(&s.cli(&[
        "assets",
        "set",
        "chroot-host",
        "--owner",
        "=HYPERLINK(\"x\")",
    ]));
}

fn report(s: &Server, kind: &str, extra: &[&str]) -> String {
    let mut args = vec!["report", kind];
    args.extend_from_slice(extra);
    ok(&s.cli(&args))
}

fn reports_agree_with_the_findings(backend: &str) {
    let s = Server::start(backend);
    setup(&s);
    let all: List<FindingOut> = s.admin().get("/api/v1/findings?all=true").unwrap();
    let resolved = all.items.iter().filter(|f| f.resolved_at.is_some()).count() as u64;
    let open = all.items.len() as u64 - resolved;
    assert!(
        resolved > 0 && open > 0,
        "resolved {resolved} open {open} of {}",
        all.items.len()
    );

    // Time to patch: every resolved finding took the three days (± the few
    // seconds between the feed import and the server's clock).
    let v: serde_json::Value = serde_json::from_str(&report(&s, "ttp", &[])).unwrap();
    assert_eq!(v["all"]["count"], resolved);
    let median = v["all"]["median_hours"].as_f64().unwrap();
    assert!((median - 72.0).abs() < 0.1, "{median}");
    assert!(
        v["controls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "SI-2")
    );

    // SLA: all patched within the 14-day P2 SLA; the rest open, none overdue yet.
    let v: serde_json::Value = serde_json::from_str(&report(&s, "sla", &[])).unwrap();
    assert_eq!(v["all"]["resolved"], resolved);
    assert_eq!(v["all"]["resolved_in_sla_pct"], 100.0);
    assert_eq!(v["all"]["open"], open);
    assert_eq!(v["all"]["open_overdue"], 0);
    // Per tier, the open findings are the worklist's lines of that tier.
    let work: List<patchbay_proto::api::WorkItem> =
        s.admin().get("/api/v1/worklist?limit=10000").unwrap();
    assert_eq!(work.items.len() as u64, open);
    for tier in ["P0", "P1", "P2", "P3", "P4"] {
        let lines = work.items.iter().filter(|w| w.tier == tier).count() as u64;
        assert_eq!(
            v["by_tier"][tier]["open"], lines,
            "open {tier} findings in the SLA report"
        );
    }

    // Compliance: compliant now; 30 days on the open findings are overdue.
    let v: serde_json::Value = serde_json::from_str(&report(&s, "compliance", &[])).unwrap();
    assert_eq!(v["total"]["compliant_assets"], 1);
    assert_eq!(v["total"]["findings"]["within_sla"], open);
    assert_eq!(v["total"]["findings"]["patched"], resolved);
    let later =
        (patchbay_app::Clock::now(&*s.clock) + SignedDuration::from_hours(30 * 24)).to_string();
    let v: serde_json::Value =
        serde_json::from_str(&report(&s, "compliance", &["--as-of", &later])).unwrap();
    assert_eq!(v["total"]["compliant_assets"], 0);
    assert_eq!(v["total"]["findings"]["overdue"], open);
    // Before anything was detected: nothing.
    let v: serde_json::Value =
        serde_json::from_str(&report(&s, "ttp", &["--as-of", "2020-01-01"])).unwrap();
    assert_eq!(v["all"]["count"], 0);

    // Coverage: the one managed host was seen within 24 h; two days on, not.
    let v: serde_json::Value = serde_json::from_str(&report(&s, "coverage", &[])).unwrap();
    assert_eq!(
        (v["known"].as_u64(), v["seen_24h"].as_u64()),
        (Some(1), Some(1))
    );
    s.clock.advance(SignedDuration::from_hours(48));
    let v: serde_json::Value = serde_json::from_str(&report(&s, "coverage", &[])).unwrap();
    assert_eq!(v["seen_24h"], 0);
    assert_eq!(v["stale"][0], "chroot-host");

    // CSV: parses, and the owner that looks like a formula is defused.
    let text = report(&s, "compliance", &["--format", "csv"]);
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert!(rows.iter().any(|x| &x[1] == "'=HYPERLINK(\"x\")"), "{text}");
    assert!(!text.contains(",=HYPERLINK"));

    // HTML: self-contained (no external references), SVG charts, controls.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sla.html");
    report(
        &s,
        "sla",
        &["--format", "html", "--out", file.to_str().unwrap()],
    );
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg") && html.contains("</svg>"));
    assert!(html.contains("PCI DSS v4.0") && html.contains("6.3.3"));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    let html = report(&s, "compliance", &["--format", "html"]);
    // The owner is shown as text, HTML-escaped (askama's entities), never as
    // markup.
    assert!(html.contains("=HYPERLINK(&#34;x&#34;)"), "{html}");
    assert!(!html.contains("HYPERLINK(\"x\")"));
    // Rollout outcomes: no deployment yet, so no job and no rate (null, not
    // 0 or 100); the CSV has its one "all" row.
    let v: serde_json::Value = serde_json::from_str(&report(&s, "deployments", &[])).unwrap();
    assert_eq!(v["all"]["jobs"], 0);
    assert!(v["all"]["success_pct"].is_null(), "{v}");
    assert_eq!(v["deployments"], serde_json::json!([]));
    let text = report(&s, "deployments", &["--format", "csv"]);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.starts_with("scope,name,kind,state,"), "{text}");
    // Governance review over a period holding everything (issue 18, item 9):
    // the findings the real upgrade closed, all within SLA; no job ran.
    let v: serde_json::Value = serde_json::from_str(&report(
        &s,
        "governance",
        &["--from", "2000-01-01", "--to", "2099-12-31"],
    ))
    .unwrap();
    assert_eq!(v["risk"]["closed"], resolved, "{v}");
    assert_eq!(v["risk"]["closed_in_sla"], resolved, "{v}");
    assert_eq!(v["effort"]["jobs"], 0, "{v}");
    assert_eq!(v["by_owner"][0]["name"], "=HYPERLINK(\"x\")", "{v}");
    let text = report(
        &s,
        "governance",
        &[
            "--from",
            "2000-01-01",
            "--to",
            "2099-12-31",
            "--format",
            "csv",
        ],
    );
    // The owner cell is quoted (it holds quotes) and defused with a `'`.
    assert!(text.contains("owner,\"'=HYPERLINK(\"\"x\"\")\""), "{text}");
    let html = report(
        &s,
        "governance",
        &[
            "--from",
            "2000-01-01",
            "--to",
            "2099-12-31",
            "--format",
            "html",
        ],
    );
    assert!(html.contains("<svg") && html.contains("=HYPERLINK(&#34;x&#34;)"));
    let out = s.cli(&["report", "governance", "--from", "2000-01-01"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--to"));
    // Drift of the host: the default policy has no groups, so none.
    let d = ok(&s.cli(&["drift", "chroot-host", "--json"]));
    let d: serde_json::Value = serde_json::from_str(&d).unwrap();
    assert_eq!(d["groups"], serde_json::json!([]), "{d}");
    // Unknown kinds and formats are refused.
    let out = s.cli(&["report", "nope"]);
    assert!(!out.status.success());
}

fn rezip(
    src: &[u8],
    edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>,
    extra: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(src)).unwrap();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut b = Vec::new();
        f.read_to_end(&mut b).unwrap();
        if let Some(b) = edit(&name, b) {
            w.start_file(name, opts).unwrap();
            w.write_all(&b).unwrap();
        }
    }
    if let Some((n, b)) = extra {
        w.start_file(n, opts).unwrap();
        w.write_all(b).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn evidence_bundle_is_tamper_evident(backend: &str) {
    let s = Server::start(backend);
    setup(&s);
    ok(&s.cli(&[
        "exceptions",
        "add",
        "--package",
        "tzdata",
        "--asset",
        "chroot-host",
        "--owner",
        "ops",
        "--reason",
        "r",
        "--control",
        "c",
        "--expires",
        "30d",
    ]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("evidence.zip");
    let key = patchbay_server::setup::load_signing_key(&s.data_dir, false)
        .unwrap()
        .unwrap()
        .public_hex();
    // The server publishes its key (to pin), and export names it.
    let who: serde_json::Value =
        serde_json::from_str(&ok(&s.cli(&["whoami", "--format", "json"]))).unwrap();
    assert_eq!(who["server_public_key"], key.as_str());
    let out = ok(&s.cli(&["evidence", "export", "--out", file.to_str().unwrap()]));
    assert!(out.contains("files"), "{out}");
    assert!(out.contains(&format!("--public-key {key}")), "{out}");
    let bytes = std::fs::read(&file).unwrap();
    let verify = |b: &[u8], extra: &[&str]| {
        let p = dir.path().join("check.zip");
        std::fs::write(&p, b).unwrap();
        let mut args = vec!["evidence", "verify", p.to_str().unwrap()];
        args.extend_from_slice(extra);
        Command::new(PATCHBAY).args(&args).output().unwrap()
    };
    let pinned = ["--public-key", key.as_str()];
    let good = verify(&bytes, &pinned);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains("(pinned)"));
    // No key, no verdict: the bundle's own key is not trusted by default.
    let unpinned = verify(&bytes, &[]);
    assert!(!unpinned.status.success());
    assert!(
        String::from_utf8_lossy(&unpinned.stderr).contains("--public-key"),
        "{}",
        String::from_utf8_lossy(&unpinned.stderr)
    );

    // The bundle holds what the issue lists.
    let server_key = patchbay_core::audit::public_key(&key).unwrap();
    let m = patchbay_app::evidence::verify_bundle(
        &bytes,
        patchbay_app::evidence::BundleKey::Pinned(&server_key),
    )
    .unwrap()
    .manifest;
    let names: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    for want in [
        "reports/compliance.html",
        "reports/ttp.csv",
        "reports/sla.json",
        "reports/coverage.json",
        "reports/deployments.json",
        "reports/deployments.csv",
        "reports/deployments.html",
        "exceptions.json",
        "deployments.json",
        "audit/segment.jsonl",
        "audit/verification.json",
        "controls.json",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let fail = |b: Vec<u8>, extra: &[&str], needle: &str| {
        let out = verify(&b, extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    };
    // Modified file.
    fail(
        rezip(
            &bytes,
            |n, mut b| {
                if n == "exceptions.json" {
                    b[10] ^= 1;
                }
                Some(b)
            },
            None,
        ),
        &pinned,
        "exceptions.json: modified",
    );
    // Removed file.
    fail(
        rezip(&bytes, |n, b| (n != "reports/ttp.csv").then_some(b), None),
        &pinned,
        "reports/ttp.csv: listed in the manifest but missing",
    );
    // Added file.
    fail(
        rezip(&bytes, |_, b| Some(b), Some(("notes.txt", b"trust me"))),
        &pinned,
        "notes.txt: not listed in the manifest (added)",
    );
    // A manifest edited to match a modified file breaks the signature.
    fail(
        rezip(
            &bytes,
            |n, b| {
                if n == "manifest.json" {
                    let t = String::from_utf8(b)
                        .unwrap()
                        .replacen("\"bytes\"", "\"bytes\" ", 1);
                    Some(t.into_bytes())
                } else {
                    Some(b)
                }
            },
            None,
        ),
        &pinned,
        "manifest.sig: the signature does not verify",
    );
    // Re-signed with another key: fails when the server's key is pinned.
    let other = patchbay_core::audit::Signer::from_seed(&[9; 32]);
    let resigned = rezip(
        &bytes,
        |n, b| match n {
            "manifest.json" => {
                let mut m: patchbay_app::evidence::Manifest = serde_json::from_slice(&b).unwrap();
                m.public_key = other.public_hex();
                Some(serde_json::to_vec_pretty(&m).unwrap())
            }
            _ => Some(b),
        },
        None,
    );
    let resigned = {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(&resigned)).unwrap();
        let mut m = Vec::new();
        z.by_name("manifest.json")
            .unwrap()
            .read_to_end(&mut m)
            .unwrap();
        let sig = other.sign_bytes(&m);
        rezip(
            &resigned,
            |n, b| {
                if n == "manifest.sig" {
                    Some(sig.clone().into_bytes())
                } else {
                    Some(b)
                }
            },
            None,
        )
    };
    fail(resigned.clone(), &pinned, "re-signed with another key");
    // Trusting the embedded key is explicit, loud, and accepts the forgery:
    // exactly why it is not the default.
    let trusting = verify(&resigned, &["--insecure-trust-embedded-key"]);
    assert!(trusting.status.success());
    assert!(String::from_utf8_lossy(&trusting.stderr).contains("WARNING"));
    assert!(String::from_utf8_lossy(&trusting.stdout).contains("NOT pinned"));
    // A garbage signature fails outright.
    fail(
        rezip(
            &bytes,
            |n, b| {
                if n == "manifest.sig" {
                    Some(b"00".repeat(64))
                } else {
                    Some(b)
                }
            },
            None,
        ),
        &pinned,
        "manifest.sig: the signature does not verify",
    );
    // Exporting is audited.
    let audit = ok(&s.cli(&["audit", "list", "--limit", "10000", "--format", "json"]));
    assert!(audit.contains("evidence.export"));
}

crate::both_backends!(
    reports_agree_with_the_findings,
    evidence_bundle_is_tamper_evident
);
