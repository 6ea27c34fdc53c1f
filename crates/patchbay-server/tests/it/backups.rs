//! Backup verification through the agent protocol (issue 18, item 6), on
//! SQLite and PostgreSQL: a ring with `verify_snapshots: "2"`; four hosts
//! apply, three report the snapshot their `hooks.snapshot` took, one none.
//! Once the ring's jobs ended the server asks exactly the two hosts an
//! independent computation of the documented sample picks (SHA-256 of
//! `DEP/HOST`, lowest first, among the hosts with a snapshot) for a signed
//! `verify_snapshot` job naming their own snapshot; their verdicts (one
//! verified, one failed with tar's error, as the agent reports them — the
//! real tool runs in the agent's tests, `crates/patchbay-agent/tests/exec/
//! backup.rs`) are stored, listed by `GET /api/v1/backup-verifications`,
//! counted in the test report and listed in the evidence bundle.

use crate::support::{Host, InProcess, full_checkin, pb_demo_inventory};
use patchbay_core::job::{JobKind, SignedJob};
use serde_json::{Value, json};
use sha2_next::{Digest, Sha256};

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

fn snapshot_of(host: &str) -> Option<String> {
    (host != "h4").then(|| format!("/var/backups/pb/{host}.tar"))
}

async fn verification(backend: &str) {
    let s = InProcess::on(backend).await;
    let hosts = crate::support::fleet(&s, 4, 0x7e90).await;
    let d = s
        .ok_json(
            "POST",
            "/api/v1/deployments",
            &s.admin,
            json!({"packages": [{"name": "pb-demo", "version": "1.1"}],
                   "rings": [{"name": "all", "assets": ["h1", "h2", "h3", "h4"],
                              "max_concurrent": "100%", "error_budget": "3",
                              "verify_snapshots": "2"}]}),
        )
        .await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();
    // A bad share is refused naming the ring and the field.
    let (st, body) = s
        .call(
            "POST",
            "/api/v1/deployments",
            Some(&s.admin),
            Some(
                &json!({"packages": [{"name": "pb-demo", "version": "1.1"}],
                       "rings": [{"name": "all", "verify_snapshots": "half"}]})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("rings: all: verify_snapshots"), "{body}");

    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        &s.admin,
        json!({}),
    )
    .await;
    s.app.drive_rollouts().await.unwrap();
    for h in &hosts {
        let jobs = checkin(&s, h, "1.0", json!([])).await;
        assert_eq!(jobs.len(), 1, "{}", h.name);
        let mut r = json!({"key": jobs[0].job.key, "outcome": "succeeded",
            "changed": [{"name": "pb-demo", "before": "1.0", "after": "1.1"}],
            "finished_at": "2026-12-08T22:05:00Z"});
        if let Some(snap) = snapshot_of(&h.name) {
            r["snapshot"] = json!(snap);
        }
        checkin(&s, h, "1.1", json!([r])).await;
    }
    s.app.drive_rollouts().await.unwrap();
    s.app.drive_rollouts().await.unwrap();

    // The sample, computed independently.
    let mut keyed: Vec<(String, String)> = ["h1", "h2", "h3"]
        .iter()
        .map(|h| {
            let digest = Sha256::digest(format!("{id}/{h}").as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            (hex, h.to_string())
        })
        .collect();
    keyed.sort();
    let mut want: Vec<String> = keyed.into_iter().take(2).map(|(_, h)| h).collect();
    want.sort();

    let mut asked = Vec::new();
    for h in &hosts {
        let jobs = checkin(&s, h, "1.1", json!([])).await;
        for j in jobs {
            let JobKind::VerifySnapshot { snapshot } = &j.job.kind else {
                panic!("{}: {:?}", h.name, j.job.kind);
            };
            assert_eq!(
                Some(snapshot.clone()),
                snapshot_of(&h.name),
                "its own snapshot"
            );
            assert_eq!(j.job.key, format!("{id}/verify/{}", h.name));
            assert!(!j.signature.is_empty());
            asked.push(h.name.clone());
            // The first sampled host's snapshot verifies; the second's is cut short.
            let r = if asked.len() == 1 {
                json!({"key": j.job.key, "outcome": "succeeded",
                       "message": "exit 0\nverified 812 files in /var/lib/patchbay-agent/verify-snapshot/scratch",
                       "finished_at": "2026-12-08T22:10:00Z"})
            } else {
                json!({"key": j.job.key, "outcome": "failed", "step": "verify_snapshot",
                       "message": "exit 2\ntar: Unexpected EOF in archive\ntar: Error is not recoverable: exiting now",
                       "finished_at": "2026-12-08T22:10:00Z"})
            };
            checkin(&s, h, "1.1", json!([r])).await;
        }
    }
    assert_eq!(asked.len(), 2, "{asked:?}");
    let mut got = asked.clone();
    got.sort();
    assert_eq!(got, want, "the documented deterministic sample");

    // Stored and listed.
    let list = s
        .ok_json("GET", "/api/v1/backup-verifications", &s.admin, json!(null))
        .await;
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    for r in rows {
        let host = r["host"].as_str().unwrap();
        assert_eq!(r["deployment"], id.as_str());
        assert_eq!(r["ring"], "all");
        assert_eq!(
            Some(r["snapshot"].as_str().unwrap().to_string()),
            snapshot_of(host)
        );
        if host == asked[0] {
            assert_eq!(r["verdict"], "verified", "{r}");
            assert!(
                r["excerpt"]
                    .as_str()
                    .unwrap()
                    .contains("verified 812 files")
            );
        } else {
            assert_eq!(r["verdict"], "failed", "{r}");
            assert!(
                r["excerpt"]
                    .as_str()
                    .unwrap()
                    .contains("tar: Unexpected EOF in archive")
            );
        }
        assert!(r["result_at"].is_string());
    }
    // Shown on the deployment.
    let shown = s
        .ok_json(
            "GET",
            &format!("/api/v1/deployments/{id}"),
            &s.admin,
            json!(null),
        )
        .await;
    assert_eq!(shown["backup_verifications"], list, "{shown}");

    // A period before they were asked lists none; a bad one is refused.
    let none = s
        .ok_json(
            "GET",
            "/api/v1/backup-verifications?from=2020-01-01&to=2020-01-02",
            &s.admin,
            json!(null),
        )
        .await;
    assert_eq!(none, json!([]));
    let (st, body) = s
        .call(
            "GET",
            "/api/v1/backup-verifications?from=yesterday",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, 400, "{body}");

    // Counted in the test report: one verified, one failed with the excerpt.
    let r = s
        .ok_json(
            "GET",
            &format!("/api/v1/deployments/{id}/test-report"),
            &s.admin,
            json!(null),
        )
        .await;
    let backup = r["suites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "backup")
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(backup["counts"]["tests"], 2, "{backup}");
    assert_eq!(backup["counts"]["failures"], 1, "{backup}");
    let failed = backup["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == "failed")
        .unwrap();
    assert_eq!(failed["host"], asked[1].as_str());
    assert!(
        failed["excerpt"]
            .as_str()
            .unwrap()
            .contains("tar: Unexpected EOF")
    );

    // Listed in the evidence bundle.
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
    assert!(st.is_success());
    patchbay_app::evidence::verify_bundle(&bytes, patchbay_app::evidence::BundleKey::TrustEmbedded)
        .expect("the bundle verifies");
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut z.by_name("backup-verifications.json").unwrap(),
        &mut text,
    )
    .unwrap();
    let bundled: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(bundled, list, "the bundle lists what the API lists");
}

#[tokio::test]
async fn backup_verification_on_sqlite() {
    verification("sqlite").await;
}

#[tokio::test]
async fn backup_verification_on_postgres() {
    verification("postgres").await;
}
