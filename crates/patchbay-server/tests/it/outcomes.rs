//! Rollout outcomes through the public surfaces, on SQLite and PostgreSQL:
//! two real deployments driven by the rollout engine, the agents' side played
//! over the real check-in endpoint (as in `deploy.rs`), then the
//! `deployments` report (JSON, CSV, HTML), the change record's and runbook's
//! per-host outcomes, and the evidence bundle are checked against figures
//! worked out by hand from the script below (the comments show the
//! arithmetic).
//!
//! The script, clock in hand (`t0` = 2026-12-08T22:00Z):
//! - `t0`: five hosts with `pb-demo` 1.0 check in; an advisory (fixed in
//!   1.1) is imported and the fleet assessed: five open findings, first seen
//!   at `t0`.
//! - DEP-1 at `t0`+2 h (2026-12-09T00:00Z, ISO week 50): ring `first` h1–h3
//!   (budget 1, so two jobs in flight at most; failed hosts rolled back),
//!   ring `rest` h4–h5. h1 and h2 are leased at 00:00, h3 at 00:05 when h1
//!   succeeds (sending 1.1: its finding closes); h2 fails at 00:10, h3 at
//!   00:20: the budget is exceeded, the deployment halts, h4 and h5 are
//!   skipped, h2 and h3 get rollback jobs; h2 rolls back (00:25), h3's
//!   rollback fails (00:30).
//! - DEP-2 at 2026-12-14T10:00Z (ISO week 51), one ring of all five, 1.2: h1
//!   to h4 succeed after 1, 2, 3 and 4 min (sending 1.2: h2–h4's findings
//!   close), h5 never reports (still in flight when the report is read).

use crate::support::{Host, InProcess, full_checkin, import_pb_demo_advisory, pb_demo_inventory};
use jiff::{SignedDuration, Timestamp};
use patchbay_core::job::SignedJob;
use serde_json::{Value, json};
use std::io::Read;

async fn fleet(s: &InProcess, n: usize) -> Vec<Host> {
    crate::support::fleet(s, n, 0xbee0).await
}

/// A check-in with the full inventory at `version` and `results`; returns
/// the jobs handed over.
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

fn result(key: &str, outcome: &str, from: &str, to: &str) -> Value {
    let ok = outcome == "succeeded";
    json!([{"key": key, "outcome": outcome,
            "step": if ok { Value::Null } else { json!("verify.health") },
            "message": if ok { Value::Null } else { json!("web: expected 200, got 500") },
            "changed": [{"name": "pb-demo", "before": from, "after": to}],
            "finished_at": "2026-12-09T00:00:00Z"}])
}

/// Every host checks in (so the driver sees them online), then the driver steps.
async fn tick(s: &InProcess, hosts: &[Host], versions: &[&str]) {
    for (h, v) in hosts.iter().zip(versions) {
        checkin(s, h, v, json!([])).await;
    }
    s.app.drive_rollouts().await.unwrap();
}

fn key_of(jobs: &[SignedJob]) -> String {
    assert_eq!(jobs.len(), 1, "one job");
    jobs[0].job.key.clone()
}

async fn get_text(s: &InProcess, path: &str) -> String {
    let (st, body) = s.call("GET", path, Some(&s.admin), None).await;
    assert!(st.is_success(), "{path}: {st} {body}");
    body
}

async fn create_and_start(s: &InProcess, spec: Value) -> String {
    let ops = s
        .ok_json(
            "POST",
            "/api/v1/tokens",
            &s.admin,
            json!({"name": format!("ops-{}", Timestamp::now().as_nanosecond()), "role": "operator"}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let d = s.ok_json("POST", "/api/v1/deployments", &ops, spec).await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        &ops,
        json!({}),
    )
    .await;
    id
}

async fn outcomes_are_reported(backend: &str) {
    let s = InProcess::on(backend).await;
    let hosts = fleet(&s, 5).await;
    import_pb_demo_advisory(&s).await;
    let open = s
        .ok_json("GET", "/api/v1/findings", &s.admin, json!(null))
        .await;
    assert_eq!(open["items"].as_array().unwrap().len(), 5, "{open}");

    // DEP-1.
    s.clock.advance(SignedDuration::from_hours(2));
    for h in &hosts {
        checkin(&s, h, "1.0", json!([])).await;
    }
    let dep1 = create_and_start(
        &s,
        json!({"packages": [{"name": "pb-demo", "version": "1.1"}],
               "rings": [
                 {"name": "first", "assets": ["h1", "h2", "h3"], "max_concurrent": "3", "error_budget": "1"},
                 {"name": "rest", "max_concurrent": "100%", "error_budget": "1"}]}),
    )
    .await;
    // Failures plus jobs in flight stay within budget + 1: h1 and h2 now,
    // h3 once h1 has reported.
    let k1 = key_of(&checkin(&s, &hosts[0], "1.0", json!([])).await);
    let k2 = key_of(&checkin(&s, &hosts[1], "1.0", json!([])).await);
    s.clock.advance(SignedDuration::from_mins(5));
    checkin(&s, &hosts[0], "1.1", result(&k1, "succeeded", "1.0", "1.1")).await;
    tick(&s, &hosts, &["1.1", "1.0", "1.0", "1.0", "1.0"]).await;
    let k3 = key_of(&checkin(&s, &hosts[2], "1.0", json!([])).await);
    s.clock.advance(SignedDuration::from_mins(5));
    checkin(&s, &hosts[1], "1.0", result(&k2, "failed", "1.0", "1.0")).await;
    tick(&s, &hosts, &["1.1", "1.0", "1.0", "1.0", "1.0"]).await;
    s.clock.advance(SignedDuration::from_mins(10));
    checkin(&s, &hosts[2], "1.0", result(&k3, "failed", "1.0", "1.0")).await;
    s.app.drive_rollouts().await.unwrap();
    let d = s
        .ok_json(
            "GET",
            &format!("/api/v1/deployments/{dep1}"),
            &s.admin,
            json!(null),
        )
        .await;
    assert_eq!(d["deployment"]["status"], "halted", "{:#}", d["rollout"]);
    // The rollback jobs of h2 and h3.
    s.clock.advance(SignedDuration::from_mins(5));
    let rb2 = key_of(&checkin(&s, &hosts[1], "1.0", json!([])).await);
    checkin(
        &s,
        &hosts[1],
        "1.0",
        result(&rb2, "rolled_back", "1.0", "1.0"),
    )
    .await;
    s.app.drive_rollouts().await.unwrap();
    s.clock.advance(SignedDuration::from_mins(5));
    let rb3 = key_of(&checkin(&s, &hosts[2], "1.0", json!([])).await);
    checkin(
        &s,
        &hosts[2],
        "1.0",
        result(&rb3, "rollback_failed", "1.0", "1.0"),
    )
    .await;
    s.app.drive_rollouts().await.unwrap();

    // DEP-2, the next week.
    s.clock.set("2026-12-14T10:00:00Z".parse().unwrap());
    let versions = ["1.1", "1.0", "1.0", "1.0", "1.0"];
    for (h, v) in hosts.iter().zip(versions) {
        checkin(&s, h, v, json!([])).await;
    }
    let dep2 = create_and_start(
        &s,
        json!({"packages": [{"name": "pb-demo", "version": "1.2"}],
               "rings": [{"name": "all", "max_concurrent": "100%", "error_budget": "5"}]}),
    )
    .await;
    let mut k2 = vec![];
    for (h, v) in hosts.iter().zip(versions) {
        k2.push(key_of(&checkin(&s, h, v, json!([])).await));
    }
    for (i, h) in hosts[..4].iter().enumerate() {
        s.clock.advance(SignedDuration::from_mins(1));
        checkin(
            &s,
            h,
            "1.2",
            result(&k2[i], "succeeded", versions[i], "1.2"),
        )
        .await;
    }
    s.app.drive_rollouts().await.unwrap();

    // The report, as JSON.
    let r: Value =
        serde_json::from_str(&get_text(&s, "/api/v1/reports/deployments?format=json").await)
            .unwrap();
    let ids: Vec<&str> = r["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [dep1.as_str(), dep2.as_str()], "{r:#}");
    let d1 = &r["deployments"][0];
    // 5 jobs: h1 succeeded, h2 rolled back, h3 rollback failed, h4 and h5
    // skipped. Ran 3: 1/3 = 33.3 % succeeded, 1/3 rolled back; failures h2,
    // h3, of which rolled back 1: 50 %.
    let n = |v: &Value, f: &str| v[f].as_u64().unwrap_or(u64::MAX);
    assert_eq!(
        [
            "jobs",
            "ran",
            "succeeded",
            "failed",
            "rolled_back",
            "rollback_failed",
            "skipped",
            "in_progress",
            "failures",
            "failures_rolled_back"
        ]
        .map(|f| n(d1, f)),
        [5, 3, 1, 0, 1, 1, 2, 0, 2, 1],
        "{d1:#}"
    );
    assert_eq!(
        (
            &d1["success_pct"],
            &d1["rollback_pct"],
            &d1["failures_rolled_back_pct"]
        ),
        (&json!(33.3), &json!(33.3), &json!(50.0))
    );
    // Lease → result: h1 300, h2 600, h3 900 s: median 600, p90 = ⌈2.7⌉ = 3rd = 900.
    assert_eq!(
        d1["duration"],
        json!({"count": 3, "median_secs": 600.0, "p90_secs": 900.0})
    );
    assert_eq!(d1["state"], "halted");
    assert_eq!(d1["started_at"], "2026-12-09T00:00:00Z");
    // The last end: h3's failed rollback, reported at 00:30.
    assert_eq!(d1["finished_at"], "2026-12-09T00:30:00Z");
    // h1's finding: first seen t0, the job's success at 00:05: 2 h 5 min =
    // 7500 s = 2.08 h.
    assert_eq!(d1["patched_findings"], 1);
    assert_eq!(d1["time_to_patch"]["median_hours"], 2.08);

    let d2 = &r["deployments"][1];
    assert_eq!(
        ["jobs", "ran", "succeeded", "failures", "in_progress"].map(|f| n(d2, f)),
        [5, 4, 4, 0, 1],
        "{d2:#}"
    );
    assert_eq!(d2["success_pct"], 100.0);
    assert_eq!(d2["rollback_pct"], 0.0);
    assert!(d2["failures_rolled_back_pct"].is_null());
    // 60, 120, 180, 240 s: median 150, p90 = ⌈3.6⌉ = 4th = 240.
    assert_eq!(
        d2["duration"],
        json!({"count": 4, "median_secs": 150.0, "p90_secs": 240.0})
    );
    assert_eq!(d2["state"], "running");
    assert!(d2["finished_at"].is_null());
    // h2–h4's findings (h1's closed already): t0 → 12-14 10:02, 10:03,
    // 10:04 = 475 320, 475 380, 475 440 s = 132.03, 132.05, 132.07 h.
    assert_eq!(d2["patched_findings"], 3);
    assert_eq!(
        d2["time_to_patch"],
        json!({"count": 3, "mean_hours": 132.05, "median_hours": 132.05, "p90_hours": 132.07})
    );

    // All: 10 jobs, ran 7, 5 succeeded = 71.4 %, 1 rolled back = 14.3 %.
    let a = &r["all"];
    assert_eq!(
        ["jobs", "ran", "succeeded", "in_progress"].map(|f| n(a, f)),
        [10, 7, 5, 1]
    );
    assert_eq!(
        (&a["success_pct"], &a["rollback_pct"]),
        (&json!(71.4), &json!(14.3))
    );
    // 60 120 180 240 300 600 900: median 240, p90 = ⌈6.3⌉ = 7th = 900.
    assert_eq!(
        a["duration"],
        json!({"count": 7, "median_secs": 240.0, "p90_secs": 900.0})
    );
    // 7500, 475 320, 475 380, 475 440 s: mean 358 410 s = 99.56 h; median
    // 475 350 s = 132.04 h; p90 = 4th = 132.07 h.
    assert_eq!(
        r["time_to_patch"],
        json!({"count": 4, "mean_hours": 99.56, "median_hours": 132.04, "p90_hours": 132.07})
    );
    // Per ISO week: DEP-1's five jobs in week 50, DEP-2's four in week 51.
    let weeks: Vec<(String, u64, u64, Value)> = r["by_week"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["week"].as_str().unwrap().to_string(),
                n(w, "jobs"),
                n(w, "ran"),
                w["success_pct"].clone(),
            )
        })
        .collect();
    assert_eq!(
        weeks,
        [
            ("2026-W50".to_string(), 5, 3, json!(33.3)),
            ("2026-W51".to_string(), 4, 4, json!(100.0))
        ]
    );
    assert!(
        r["controls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "SI-2")
    );

    // As of the end of 12-10: DEP-1 only.
    let r: Value =
        serde_json::from_str(&get_text(&s, "/api/v1/reports/deployments?as_of=2026-12-10").await)
            .unwrap();
    assert_eq!(r["deployments"].as_array().unwrap().len(), 1);
    assert_eq!(r["all"]["jobs"], 5);

    // CSV: the same figures, one row for all, one per deployment and week.
    let text = get_text(&s, "/api/v1/reports/deployments?format=csv").await;
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let header = rd.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = rd.records().map(|x| x.unwrap()).collect();
    assert_eq!(rows.len(), 1 + 2 + 2, "{text}");
    assert_eq!(&rows[1][col("name")], dep1.as_str());
    assert_eq!(&rows[1][col("success_pct")], "33.3");
    assert_eq!(&rows[1][col("rollback_pct")], "33.3");
    assert_eq!(&rows[2][col("failures_rolled_back_pct")], "", "{text}");
    assert_eq!(&rows[4][col("name")], "2026-W51");
    // HTML: self-contained, charts, controls.
    let html = get_text(&s, "/api/v1/reports/deployments?format=html").await;
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg ").count(), 3);
    assert!(html.contains(
        "10 job(s), 7 ran: 5 succeeded (71.4 %), 0 not remediated, 1 rolled back (14.3 %)"
    ));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));

    // The change record: per host, the job's state, versions and error.
    let chg = s
        .ok_json(
            "GET",
            &format!("/api/v1/changes/{dep1}"),
            &s.admin,
            json!(null),
        )
        .await;
    let hosts_out = chg["hosts"].as_array().unwrap();
    let by = |h: &str| hosts_out.iter().find(|x| x["host"] == h).unwrap();
    assert_eq!(by("h1")["state"], "succeeded");
    assert_eq!(
        by("h1")["packages"],
        json!([{"name": "pb-demo", "target": "1.1", "before": "1.0", "after": "1.1"}])
    );
    assert_eq!(by("h2")["state"], "rolled_back");
    assert_eq!(
        by("h2")["error"],
        "verify.health: web: expected 200, got 500"
    );
    assert_eq!(
        by("h2")["rollback"],
        "rolled_back: web: expected 200, got 500"
    );
    assert_eq!(by("h3")["state"], "rollback_failed");
    assert!(
        by("h3")["error"]
            .as_str()
            .unwrap()
            .starts_with("rollback failed"),
        "{}",
        by("h3")
    );
    assert_eq!(by("h4")["state"], "skipped");
    assert_eq!(by("h4")["ring"], "rest");
    let md = get_text(&s, &format!("/api/v1/changes/{dep1}/runbook")).await;
    assert!(md.contains("## Rollout outcome"), "{md}");
    assert!(
        md.contains("| h1 | first | succeeded | pb\\-demo | 1.1 | 1.0 | 1.1 |")
            || md.contains("| h1 | first | succeeded | pb-demo | 1.1 | 1.0 | 1.1 |"),
        "{md}"
    );
    assert!(md.contains("| h4 | rest | skipped |"), "{md}");

    // The evidence bundle carries the report in every format, and the
    // runbook with the per-host outcomes.
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
        let st = resp.status();
        (
            st,
            axum::body::to_bytes(resp.into_body(), 64 << 20)
                .await
                .unwrap(),
        )
    };
    assert!(st.is_success(), "{st}");
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut read = |p: &str| {
        let mut s = String::new();
        z.by_name(p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    let v: Value = serde_json::from_str(&read("reports/deployments.json")).unwrap();
    assert_eq!(v["all"]["success_pct"], 71.4);
    assert_eq!(v["deployments"][0]["rollback_pct"], 33.3);
    assert!(read("reports/deployments.csv").starts_with("scope,name,kind,state"));
    assert!(read("reports/deployments.html").contains("Rollout outcomes"));
    let controls: Value = serde_json::from_str(&read("controls.json")).unwrap();
    assert!(
        controls["deployments"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );
    let chg_id = chg["id"].as_str().unwrap();
    assert!(read(&format!("changes/{chg_id}-runbook.md")).contains("| h4 | rest | skipped |"));
}

#[tokio::test]
async fn outcomes_are_reported_on_sqlite() {
    outcomes_are_reported("sqlite").await;
}

#[tokio::test]
async fn outcomes_are_reported_on_postgres() {
    outcomes_are_reported("postgres").await;
}
