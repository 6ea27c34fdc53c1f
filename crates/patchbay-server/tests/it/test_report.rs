//! A deployment's published test report (issue 18, item 7), on SQLite and
//! PostgreSQL, through the real agent protocol (the agents' side played
//! over the check-in endpoint, as in `deploy.rs`).
//!
//! Three Debian 12 hosts with `pb-demo` 1.0 and DSA-9999-1 open (fixed in
//! 1.1). One ring requires a rehearsal. h2's rehearsal fails (its
//! `postinst` exits 1, printing `<script>` and an `]]>`); h1 and h3 pass.
//! h1 applies 1.1 and reports its inventory at 1.1; h3 reports success but
//! still has 1.0 (not remediated). The report's JUnit XML is validated
//! against the JUnit schema and read by an independent reader
//! (`fixtures/oracles/junit_check.py`: xmlschema + junitparser), its counts
//! and named failures must be exactly as expected, agent-supplied text is
//! escaped in XML and HTML, and a webhook receiver on loopback gets the
//! `deployment.test_report` event (counts and the report's path).

use crate::support::{Host, InProcess, full_checkin, import_pb_demo_advisory, pb_demo_inventory};
use crate::webhooks::Receiver;
use patchbay_app::webhooks::Sender;
use patchbay_core::job::SignedJob;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

async fn checkin(s: &InProcess, h: &Host, version: &str, results: Value) -> Vec<SignedJob> {
    let r = s
        .ok_json(
            "POST",
            "/agent/v1/checkin",
            &h.secret,
            full_checkin(pb_demo_inventory(&h.name, &h.mid, version), results),
        )
        .await;
    serde_json::from_value(r["jobs"].clone()).unwrap_or_default()
}

const EVIL: &str = "<script>alert('pb')</script> ]]> & \"quoted\"";

fn rehearsal_result(key: &str, ok: bool) -> Value {
    if ok {
        json!({"key": key, "outcome": "succeeded", "finished_at": "2026-12-08T22:01:00Z",
               "rehearsal": {"mode": "overlay", "exit": 0,
                   "changed": [{"name": "pb-demo", "before": "1.0", "after": "1.1"}]}})
    } else {
        json!({"key": key, "outcome": "failed", "step": "rehearse.apply",
               "message": "pb-demo postinst exited 1",
               "finished_at": "2026-12-08T22:01:00Z",
               "rehearsal": {"mode": "overlay", "exit": 100,
                   "scripts": [{"package": "pb-demo", "script": "postinst", "exit": 1,
                                "output": format!("Setting up pb-demo (1.1) ...\n{EVIL}\n")}]}})
    }
}

fn apply_result(key: &str, after: &str) -> Value {
    json!({"key": key, "outcome": "succeeded",
           "changed": [{"name": "pb-demo", "before": "1.0", "after": after}],
           "finished_at": "2026-12-08T22:05:00Z"})
}

async fn report(backend: &str) {
    let s = InProcess::on(backend).await;
    let now = {
        let c = s.clock.clone();
        Arc::new(move || patchbay_app::Clock::now(c.as_ref()).as_second())
            as Arc<dyn Fn() -> i64 + Send + Sync>
    };
    let rx = Receiver::start(now).await;
    let sub = s
        .ok_json(
            "POST",
            "/api/v1/webhooks",
            &s.admin,
            json!({"name": "ci", "url": rx.url("ci"), "events": ["deployment.test_report"]}),
        )
        .await;
    rx.secret("ci", sub["secret"].as_str().unwrap());
    let hosts = crate::support::fleet(&s, 3, 0x7e70).await;
    import_pb_demo_advisory(&s).await;

    let d = s
        .ok_json(
            "POST",
            "/api/v1/deployments",
            &s.admin,
            json!({"packages": [{"name": "pb-demo", "version": "1.1"}],
                   "rings": [{"name": "all", "assets": ["h1", "h2", "h3"],
                              "max_concurrent": "100%", "error_budget": "1",
                              "success_threshold": 0.5, "require_rehearsal": true}]}),
        )
        .await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        &s.admin,
        json!({}),
    )
    .await;
    s.app.drive_rollouts().await.unwrap();

    // Rehearsals: h2 fails, h1 and h3 pass.
    for h in &hosts {
        let jobs = checkin(&s, h, "1.0", json!([])).await;
        assert_eq!(jobs.len(), 1, "{}: one rehearsal", h.name);
        let key = &jobs[0].job.key;
        assert!(key.contains("/rehearse/gate/"), "{key}");
        checkin(&s, h, "1.0", json!([rehearsal_result(key, h.name != "h2")])).await;
    }
    s.app.drive_rollouts().await.unwrap();
    s.app.drive_rollouts().await.unwrap();

    // Applies: h1 really upgrades, h3 says it did but still has 1.0; h2 gets
    // none. The error budget's cap (failures + in flight <= budget + 1) lets
    // h3's apply out once h1's ended: rounds until nothing more comes.
    let mut applied = Vec::new();
    for _ in 0..6 {
        for h in &hosts {
            let version = if h.name == "h1" && applied.contains(&h.name) {
                "1.1"
            } else {
                "1.0"
            };
            let jobs = checkin(&s, h, version, json!([])).await;
            for j in jobs {
                assert_ne!(h.name, "h2", "a failed rehearsal never gets its apply");
                assert!(!j.job.key.contains("/rehearse/"), "{}", j.job.key);
                let installed = if h.name == "h1" { "1.1" } else { "1.0" };
                checkin(&s, h, installed, json!([apply_result(&j.job.key, "1.1")])).await;
                applied.push(h.name.clone());
            }
        }
        s.app.drive_rollouts().await.unwrap();
    }
    applied.sort();
    assert_eq!(applied, ["h1", "h3"]);
    let shown = s
        .ok_json(
            "GET",
            &format!("/api/v1/deployments/{id}"),
            &s.admin,
            json!(null),
        )
        .await;
    let state = shown["rollout"]["state"].as_str().unwrap().to_string();
    assert_eq!(state, "completed", "{shown}");

    // The gate decisions, read from the deployment itself.
    let gates: Vec<(String, String)> = shown["rollout"]["rings"][0]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["gate"].as_str().unwrap().to_string(),
                g["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(!gates.is_empty(), "{shown}");
    assert!(gates.iter().all(|(_, v)| v == "pass"), "{gates:?}");

    // JUnit XML, validated and read by an independent reader.
    let (st, xml) = s
        .call(
            "GET",
            &format!("/api/v1/deployments/{id}/test-report?format=junit"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, 200, "{xml}");
    assert!(!xml.contains("<script>"), "agent text escaped in XML");
    let path = std::env::temp_dir().join(format!(
        "patchbay-test-report-{}-{backend}.xml",
        std::process::id()
    ));
    std::fs::write(&path, &xml).unwrap();
    let cache =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-cache/junit");
    let out = std::process::Command::new("python3")
        .arg(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../fixtures/oracles/junit_check.py"),
        )
        .arg(&cache)
        .arg(&path)
        .output()
        .expect("python3 runs the JUnit oracle (scripts/test installs xmlschema and junitparser)");
    std::fs::remove_file(&path).unwrap();
    assert!(
        out.status.success(),
        "the report must validate against junit-10.xsd: {}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
    let o: Value = serde_json::from_slice(&out.stdout).unwrap();
    // gates: every decision passes; rehearsal: 3 (h2 fails); apply: 3 (h2
    // fails: its rehearsal failed); privilege: 3 (h2 not run); retest: 3
    // (h3 not remediated, h2 not run).
    let g = gates.len() as u64;
    assert_eq!(o["tests"], g + 12, "{o}");
    assert_eq!(o["failures"], 3, "{o}");
    assert_eq!(o["skipped"], 2, "{o}");
    assert_eq!(o["errors"], 0, "{o}");
    assert_eq!(
        o["failed"],
        json!(["rehearsal h2", "apply h2", "retest h3"]),
        "{o}"
    );
    assert_eq!(
        o["skipped_cases"],
        json!(["privilege h2", "retest h2"]),
        "{o}"
    );
    assert_eq!(o["messages"]["rehearsal h2"], "pb-demo postinst exited 1");
    assert_eq!(
        o["messages"]["retest h3"],
        "not remediated: CVE-2026-99999 still open"
    );
    // The excerpt survives escaping intact.
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert!(failure.text().unwrap().contains(EVIL), "{xml}");

    // HTML: escaped, with the summary line.
    let (st, html) = s
        .call(
            "GET",
            &format!("/api/v1/deployments/{id}/test-report?format=html"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert!(!html.contains("<script>"), "agent text escaped in HTML");
    assert!(
        html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            "{id}: {} test(s), {} passed, 3 failed, 2 not run (deployment completed)",
            g + 12,
            g + 7
        )),
        "{html}"
    );
    // JSON, and a bad format named.
    let j = s
        .ok_json(
            "GET",
            &format!("/api/v1/deployments/{id}/test-report"),
            &s.admin,
            json!(null),
        )
        .await;
    assert_eq!(j["summary"]["failures"], 3, "{j}");
    let (st, body) = s
        .call(
            "GET",
            &format!("/api/v1/deployments/{id}/test-report?format=pdf"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("format"), "{body}");

    // Attached to the change record: its counts and links, and its runbook
    // (the dashboard's change page) says so.
    let chg = s
        .ok_json(
            "GET",
            &format!("/api/v1/changes/{id}"),
            &s.admin,
            json!(null),
        )
        .await;
    let t = &chg["test_report"];
    assert_eq!(t["failures"], 3, "{chg}");
    assert_eq!(t["skipped"], 2, "{chg}");
    assert_eq!(t["tests"], g + 12, "{chg}");
    assert_eq!(t["api"], format!("/api/v1/deployments/{id}/test-report"));
    assert_eq!(t["page"], format!("/ui/deployments/{id}/test-report"));
    let (_, md) = s
        .call(
            "GET",
            &format!("/api/v1/changes/{id}/runbook?format=md"),
            Some(&s.admin),
            None,
        )
        .await;
    assert!(md.contains("## Test report"), "{md}");
    assert!(
        md.contains(&format!(
            "{} test(s): {} passed, 3 failed, 2 not run",
            g + 12,
            g + 7
        )),
        "{md}"
    );
    assert!(md.contains("- failed: retest h3"), "{md}");

    // On the dashboard: the deployment's board links the report's page.
    crate::dashboard::add_user(&s, "noc", "auditor").await;
    let cookie = crate::dashboard::sign_in(&s, "noc").await;
    let (st, _, board) = crate::dashboard::browse(
        &s,
        "GET",
        &format!("/ui/deployments/{id}"),
        Some(&cookie),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 200);
    let link = format!("href=\"/ui/deployments/{id}/test-report\"");
    assert!(board.contains(&link), "{board}");
    let (st, _, page) = crate::dashboard::browse(
        &s,
        "GET",
        &format!("/ui/deployments/{id}/test-report"),
        Some(&cookie),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("pb-demo postinst exited 1"), "{page}");
    assert!(!page.contains("<script>"), "{page}");

    // In the evidence bundle, which still verifies.
    let (st, bytes) = {
        let req = axum::http::Request::builder()
            .method("GET")
            .uri("/api/v1/evidence")
            .header("authorization", format!("Bearer {}", s.admin))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = tower::ServiceExt::oneshot(s.router.clone(), req)
            .await
            .unwrap();
        (
            resp.status(),
            axum::body::to_bytes(resp.into_body(), 64 << 20)
                .await
                .unwrap(),
        )
    };
    assert!(st.is_success(), "{st}");
    let m = patchbay_app::evidence::verify_bundle(
        &bytes,
        patchbay_app::evidence::BundleKey::TrustEmbedded,
    )
    .expect("the bundle verifies")
    .manifest;
    for ext in ["xml", "html"] {
        let p = format!("deployments/{id}/test-report.{ext}");
        assert!(m.files.iter().any(|f| f.path == p), "{p} in the bundle");
    }
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut bundled = String::new();
    std::io::Read::read_to_string(
        &mut z
            .by_name(&format!("deployments/{id}/test-report.xml"))
            .unwrap(),
        &mut bundled,
    )
    .unwrap();
    let bundled_doc = roxmltree::Document::parse(&bundled).unwrap();
    assert_eq!(bundled_doc.root_element().attribute("failures"), Some("3"));

    // The event, through the outbox to a real receiver.
    let subs = s.app.webhook_ids().await.unwrap();
    assert_eq!(
        s.app.webhooks_fan_out().await.unwrap(),
        1,
        "exactly one event"
    );
    let r = s
        .app
        .webhooks_deliver(subs[0], &Sender::new(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(r.sent, 1);
    let body: Value = rx.seen(|seen| {
        assert_eq!(seen.accepted.len(), 1, "accepted once, signature checked");
        serde_json::from_slice(&seen.last.as_ref().unwrap().1).unwrap()
    });
    assert_eq!(body["kind"], "deployment.test_report", "{body}");
    assert_eq!(body["deployment"], id.as_str());
    assert_eq!(body["data"]["failures"], 3, "{body}");
    assert_eq!(body["data"]["skipped"], 2, "{body}");
    assert_eq!(body["data"]["tests"], g + 12, "{body}");
    assert_eq!(
        body["data"]["report"],
        format!("/api/v1/deployments/{id}/test-report")
    );
    assert_eq!(
        body["data"]["failed"],
        json!(["rehearsal h2", "apply h2", "retest h3"])
    );
}

#[tokio::test]
async fn test_report_on_sqlite() {
    report("sqlite").await;
}

#[tokio::test]
async fn test_report_on_postgres() {
    report("postgres").await;
}
