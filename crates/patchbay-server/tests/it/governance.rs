//! The governance review through the API, on SQLite and PostgreSQL (the
//! numbers themselves are checked against a hand-computed history in
//! `patchbay-core`'s `tests/it/report_governance.rs`): a real deployment with
//! a ring that needs an approval, driven by the rollout engine with the
//! clock in hand, so every figure below follows from the script.
//!
//! Script (`t0` = the test clock's start, 2026-12-08T22:00Z):
//! - two hosts with `pb-demo` 1.0, the DSA-9999-1 advisory (fixed in 1.1):
//!   two open findings first seen at `t0`, ranked P2 by the default policy
//!   (due `t0` + 14 d);
//! - `t0`: an operator creates and starts DEP (one ring, approval needed,
//!   both hosts at once); both jobs are leased at `t0`;
//! - `t0` + 30 min: both hosts report success with 1.1 installed: the
//!   findings close (30 min after detection);
//! - `t0` + 2 h: the admin approves the ring; the engine takes it in.

use crate::support::{InProcess, full_checkin, import_pb_demo_advisory, pb_demo_inventory};
use jiff::SignedDuration;
use patchbay_core::job::SignedJob;
use serde_json::{Value, json};

async fn checkin(
    s: &InProcess,
    h: &crate::support::Host,
    v: &str,
    results: Value,
) -> Vec<SignedJob> {
    let r = s
        .ok_json(
            "POST",
            "/agent/v1/checkin",
            &h.secret,
            full_checkin(pb_demo_inventory(&h.name, &h.mid, v), results),
        )
        .await;
    serde_json::from_value(r["jobs"].clone()).unwrap_or_default()
}

async fn governance_over_the_api(backend: &str) {
    let s = InProcess::on(backend).await;
    let hosts = crate::support::fleet(&s, 2, 0x90f0).await;
    import_pb_demo_advisory(&s).await;
    let ops = s
        .ok_json(
            "POST",
            "/api/v1/tokens",
            &s.admin,
            json!({"name": "gov-ops", "role": "operator"}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let d = s
        .ok_json(
            "POST",
            "/api/v1/deployments",
            &ops,
            json!({"packages": [{"name": "pb-demo", "version": "1.1"}],
                   "rings": [{"name": "all", "max_concurrent": "100%", "error_budget": "1", "approval": true}]}),
        )
        .await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        &ops,
        json!({}),
    )
    .await;
    let mut keys = vec![];
    for _ in 0..2 {
        for h in &hosts {
            for j in checkin(&s, h, "1.0", json!([])).await {
                if !keys.contains(&(h.clone().name, j.job.key.clone())) {
                    keys.push((h.name.clone(), j.job.key.clone()));
                }
            }
        }
        s.app.drive_rollouts().await.unwrap();
    }
    assert_eq!(keys.len(), 2, "{keys:?}");
    s.clock.advance(SignedDuration::from_mins(30));
    for (h, (_, key)) in hosts.iter().zip(&keys) {
        checkin(
            &s,
            h,
            "1.1",
            json!([{"key": key, "outcome": "succeeded",
                    "changed": [{"name": "pb-demo", "before": "1.0", "after": "1.1"}],
                    "finished_at": "2026-12-08T22:30:00Z"}]),
        )
        .await;
    }
    s.app.drive_rollouts().await.unwrap();
    s.clock.advance(SignedDuration::from_mins(90));
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/approvals"),
        &s.admin,
        json!({"approve": true, "comment": "looks good"}),
    )
    .await;
    s.app.drive_rollouts().await.unwrap();

    let g = s
        .ok_json(
            "GET",
            "/api/v1/governance?from=2026-12-08&to=2026-12-09",
            &s.admin,
            json!(null),
        )
        .await;
    // Two P2 findings closed 30 min after detection, 14 d − 30 min before
    // their due date: 2 × (14 − 1/48) d = 27.958… ≈ 27.96 d.
    assert_eq!(g["risk"]["closed"], 2, "{g}");
    assert_eq!(g["risk"]["closed_by_tier"]["P2"], 2, "{g}");
    assert_eq!(g["risk"]["closed_in_sla"], 2, "{g}");
    assert_eq!(g["risk"]["exposure_days_avoided"], 27.96, "{g}");
    // Effort: 2 jobs, leased at t0, ended t0 + 30 min: 0.5 window hours.
    assert_eq!(g["effort"]["jobs"], 2, "{g}");
    assert_eq!(g["effort"]["window_hours"], 0.5, "{g}");
    // One approval; asked for when the ring's last gate before it was
    // decided (t0 + 30 min), taken in at t0 + 2 h: 1.5 h.
    assert_eq!(g["effort"]["approvals"], 1, "{g}");
    assert_eq!(g["effort"]["approval_wait"]["max_hours"], 1.5, "{g}");
    assert_eq!(g["wins"]["fastest"][0]["hours"], 0.5, "{g}");
    assert!(g["controls"].as_array().unwrap().len() >= 5);

    // CSV and HTML.
    let (st, csv) = s
        .call(
            "GET",
            "/api/v1/governance?from=2026-12-08&to=2026-12-09&format=csv",
            Some(&s.admin),
            None,
        )
        .await;
    assert!(st.is_success(), "{csv}");
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("all,all,2,0,0,2,0,0,2,0,27.96,0,2,0,1,0.5,1,1.5,1.5"),
        "{csv}"
    );
    let (st, html) = s
        .call(
            "GET",
            "/api/v1/governance?from=2026-12-08&to=2026-12-09&format=html",
            Some(&s.admin),
            None,
        )
        .await;
    assert!(st.is_success() && html.contains("<svg"), "{html}");
    // A period outside: nothing.
    let g = s
        .ok_json(
            "GET",
            "/api/v1/governance?from=2026-11-01&to=2026-11-30",
            &s.admin,
            json!(null),
        )
        .await;
    assert_eq!(g["risk"]["closed"], 0, "{g}");
    assert_eq!(g["effort"]["jobs"], 0, "{g}");
    // An inverted period is refused naming the field.
    let (st, body) = s
        .call(
            "GET",
            "/api/v1/governance?from=2026-12-09&to=2026-12-01",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st.as_u16(), 400, "{body}");
    assert!(body.contains("from"), "{body}");
}

#[tokio::test]
async fn governance_over_the_api_on_sqlite() {
    governance_over_the_api("sqlite").await;
}

#[tokio::test]
async fn governance_over_the_api_on_postgres() {
    governance_over_the_api("postgres").await;
}
