//! Deployments through the API and the agent protocol, in-process: five
//! enrolled hosts with `pb-demo` 1.0, rings 1 canary / 2 pilot / 2 broad. The
//! agents' side is played by this test over the real check-in endpoint (the
//! real agent runs jobs in the agent crate's tests and the end-to-end tests);
//! here the server's half is checked: signed jobs only to the ring whose turn
//! it is, results stored once and acknowledged, gates, halt and rollback jobs,
//! four eyes, and a long-polling check-in woken by a lease.

use crate::support::{Host, InProcess, full_checkin, import_pb_demo_advisory, pb_demo_inventory};
use axum::http::StatusCode;
use jiff::SignedDuration;
use patchbay_core::job::{AgentView, JobKind, SignedJob, admit};
use patchbay_proto::agent::{CheckinRequest, InventoryPayload};
use serde_json::{Value, json};

pub(crate) async fn fleet(s: &InProcess, n: usize) -> Vec<Host> {
    crate::support::fleet(s, n, 0xabc0).await
}

pub(crate) async fn token(s: &InProcess, role: &str) -> String {
    s.ok_json(
        "POST",
        "/api/v1/tokens",
        &s.admin,
        json!({"name": format!("deploy-{role}"), "role": role}),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An unchanged check-in carrying `results`; returns (jobs, acked).
pub(crate) async fn checkin(
    s: &InProcess,
    h: &Host,
    results: Value,
) -> (Vec<SignedJob>, Vec<String>) {
    let hash = {
        // An unchanged check-in names the hash the server holds.
        let a = s
            .ok_json(
                "GET",
                &format!("/api/v1/assets/{}", h.name),
                &s.admin,
                json!(null),
            )
            .await;
        a["inventory_hash"].as_str().unwrap().to_string()
    };
    let body = unchanged(hash, results, None);
    let r = s
        .ok_json("POST", "/agent/v1/checkin", &h.secret, body)
        .await;
    let jobs = serde_json::from_value(r["jobs"].clone()).unwrap_or_default();
    let acked = serde_json::from_value(r["acked"].clone()).unwrap_or_default();
    (jobs, acked)
}

/// An unchanged check-in's body, with results given as JSON.
fn unchanged(hash: String, results: Value, wait_secs: Option<u32>) -> Value {
    serde_json::to_value(CheckinRequest {
        protocol: 1,
        inventory_hash: hash,
        inventory: InventoryPayload::Unchanged,
        results: serde_json::from_value(results).unwrap(),
        wait_secs,
        key_refusals: Vec::new(),
    })
    .unwrap()
}

pub(crate) fn result(key: &str, host: &str, ok: bool) -> Value {
    json!({"key": key, "outcome": if ok {"succeeded"} else {"failed"},
           "step": if ok { Value::Null } else { json!("verify.health") },
           "message": if ok { Value::Null } else { json!("web: expected 200, got 500") },
           "baseline": [{"host": host, "check": "web", "pass": true}],
           "after": [{"host": host, "check": "web", "pass": ok}],
           "changed": [{"name": "pb-demo", "before": "1.0", "after": "1.1"}],
           "finished_at": "2026-12-08T22:05:00Z"})
}

fn spec(version: &str) -> Value {
    json!({"packages": [{"name": "pb-demo", "version": version}],
    "checks": ["web"],
    "rings": [
        {"name": "ring0-canary", "assets": ["h1"]},
        {"name": "ring1-pilot", "size": "2", "max_concurrent": "2", "error_budget": "1"},
        {"name": "ring2-broad", "max_concurrent": "100%", "error_budget": "1"}
    ]})
}

async fn show(s: &InProcess, id: &str) -> Value {
    s.ok_json(
        "GET",
        &format!("/api/v1/deployments/{id}"),
        &s.admin,
        json!(null),
    )
    .await
}

fn ring_states(d: &Value) -> Vec<String> {
    d["rollout"]["rings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap().to_string())
        .collect()
}

fn server_key(whoami: &Value) -> String {
    whoami["server_public_key"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_good_rollout_runs_ring_by_ring_with_signed_jobs() {
    let s = InProcess::new().await;
    let hosts = fleet(&s, 5).await;
    let ops = token(&s, "operator").await;
    let key = server_key(
        &s.ok_json("GET", "/api/v1/whoami", &s.admin, json!(null))
            .await,
    );

    // Preview: every host, its ring, 1.0 -> 1.1, and the rules.
    let p = s
        .ok_json("POST", "/api/v1/deployments/preview", &ops, spec("1.1"))
        .await;
    let rings: Vec<(&str, &str)> = p["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["asset"].as_str().unwrap(), h["ring"].as_str().unwrap()))
        .collect();
    assert_eq!(rings.len(), 5);
    assert_eq!(rings[0], ("h1", "ring0-canary"));
    assert_eq!(rings.iter().filter(|r| r.1 == "ring1-pilot").count(), 2);
    assert_eq!(
        p["hosts"][0]["packages"][0],
        json!({"name": "pb-demo", "from": "1.0", "to": "1.1"})
    );
    assert!(
        p["rules"][0].as_str().unwrap().contains("never exceed 1"),
        "{}",
        p["rules"]
    );

    let d = s
        .ok_json("POST", "/api/v1/deployments", &ops, spec("1.1"))
        .await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("DEP-2026-12-"), "{id}");
    assert_eq!(d["deployment"]["status"], "draft");
    // Nothing is leased before the start.
    for h in &hosts {
        assert!(checkin(&s, h, json!([])).await.0.is_empty());
    }
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        &ops,
        json!({}),
    )
    .await;

    let checks = vec!["web".to_string()];
    let mut done = 0;
    let mut controls = 0;
    for round in 0..10 {
        s.app.drive_rollouts().await.unwrap();
        let mut any = false;
        for h in &hosts {
            let (jobs, _) = checkin(&s, h, json!([])).await;
            for j in &jobs {
                any = true;
                // Every job is signed by the server key, for this host, typed.
                let view = AgentView {
                    jobs_enabled: true,
                    pinned_key: Some(&key),
                    asset: &h.name,
                    checks: &checks,
                };
                admit(j, view, s.app.now()).unwrap();
                if let JobKind::RunCheck { name } = &j.job.kind {
                    // A control sample from a host of a later ring, not yet
                    // patched, while an earlier ring runs: its first check by
                    // name, the others as the job's checks (none here).
                    assert_eq!(name, "web");
                    assert!(j.job.checks.is_empty(), "{:?}", j.job.checks);
                    assert!(j.job.key.contains("/control/"), "{}", j.job.key);
                    // As the agent answers it: the job's checks before, then
                    // each check once after (only `after` is a sample).
                    let sample = json!({"key": j.job.key, "outcome": "succeeded",
                        "baseline": [{"host": h.name, "check": "web", "pass": true}],
                        "after": [{"host": h.name, "check": "web", "pass": true}],
                        "finished_at": "2026-12-08T22:05:00Z"});
                    let (_, acked) = checkin(&s, h, json!([sample])).await;
                    assert_eq!(acked, vec![j.job.key.clone()]);
                    controls += 1;
                    continue;
                }
                assert_eq!(
                    j.job.kind,
                    JobKind::Apply {
                        packages: vec![patchbay_core::job::PackagePin {
                            name: "pb-demo".into(),
                            version: "1.1".into()
                        }]
                    }
                );
                // Rings in order: a broad host gets nothing before the pilot passed.
                let d = show(&s, &id).await;
                let states = ring_states(&d);
                let ring_of = d["rollout"]["rings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .position(|r| {
                        r["jobs"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|x| x["spec"]["host"] == h.name.as_str())
                    })
                    .unwrap();
                for earlier in &states[..ring_of] {
                    assert_eq!(earlier, "passed", "round {round}: {} leased early", h.name);
                }
                let (_, acked) = checkin(&s, h, json!([result(&j.job.key, &h.name, true)])).await;
                assert_eq!(acked, vec![j.job.key.clone()]);
                // Sent again (the ack was lost): acknowledged, stored once.
                let (_, acked) = checkin(&s, h, json!([result(&j.job.key, &h.name, false)])).await;
                assert_eq!(acked, vec![j.job.key.clone()]);
                done += 1;
            }
        }
        if !any && show(&s, &id).await["deployment"]["status"] == "completed" {
            break;
        }
        s.clock.advance(SignedDuration::from_mins(1));
    }
    let d = show(&s, &id).await;
    assert_eq!(d["deployment"]["status"], "completed", "{:#}", d["rollout"]);
    assert_eq!(done, 5);
    // Control samples: the canary ring's from the four later hosts, the
    // pilot's from the two broad ones, and the canary analysis saw them.
    assert_eq!(controls, 6);
    let rings = d["rollout"]["rings"].as_array().unwrap();
    assert_eq!(
        rings[0]["control"].as_array().unwrap().len(),
        4,
        "{:#}",
        rings[0]
    );
    assert_eq!(rings[1]["control"].as_array().unwrap().len(), 2);
    let health = rings[0]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == "health")
        .unwrap();
    // The canary analysis counted them: no failure among 4 control samples.
    assert_eq!(
        health["canary"]["checks"][0]["control"],
        json!([0, 4]),
        "{health:#}"
    );
    // The list shows the rollout's status too.
    let list = s
        .ok_json("GET", "/api/v1/deployments", &s.admin, json!(null))
        .await;
    assert_eq!(list["items"][0]["status"], "completed", "{list}");
    assert_eq!(ring_states(&d), vec!["passed"; 3]);
    for r in d["rollout"]["rings"].as_array().unwrap() {
        let gates: Vec<&str> = r["gates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["gate"].as_str().unwrap())
            .collect();
        assert_eq!(gates, vec!["success_rate", "health", "soak"]);
        // The first result stood (the re-sent "failed" changed nothing).
        for j in r["jobs"].as_array().unwrap() {
            assert_eq!(j["state"], "succeeded");
        }
    }
    // Audited: creation, start, each stored result once, the ring passes, completion.
    let audit = s
        .ok_json("GET", "/api/v1/audit?limit=10000", &s.admin, json!(null))
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // Five jobs and six control samples, each stored once.
    assert_eq!(actions.iter().filter(|a| **a == "job.result").count(), 11);
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "deployment.ring_passed")
            .count(),
        3
    );
    assert!(actions.contains(&"deployment.created"));
    assert!(actions.contains(&"deployment.completed"));
}

#[tokio::test]
async fn a_bad_version_halts_in_the_canary_and_rolls_it_back() {
    let s = InProcess::new().await;
    let hosts = fleet(&s, 5).await;
    let ops = token(&s, "operator").await;
    let d = s
        .ok_json("POST", "/api/v1/deployments", &ops, spec("1.2"))
        .await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        &ops,
        json!({}),
    )
    .await;
    let (jobs, _) = checkin(&s, &hosts[0], json!([])).await;
    assert_eq!(jobs.len(), 1);
    let k = jobs[0].job.key.clone();
    let bell = s.app.driver_bell();
    checkin(&s, &hosts[0], json!([result(&k, "h1", false)])).await;
    // The stored result woke the rollout driver (a permit waits for it).
    tokio::time::timeout(std::time::Duration::from_millis(100), bell.notified())
        .await
        .expect("a stored job result rings the driver's bell");
    s.app.drive_rollouts().await.unwrap();
    let d = show(&s, &id).await;
    assert_eq!(d["deployment"]["status"], "halted", "{:#}", d["rollout"]);
    assert!(
        d["rollout"]["reason"]
            .as_str()
            .unwrap()
            .contains("error budget"),
        "{}",
        d["rollout"]["reason"]
    );
    // The canary gets a signed rollback job for its key; nobody else gets anything.
    let (jobs, _) = checkin(&s, &hosts[0], json!([])).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].job.kind, JobKind::Rollback { of: k.clone() });
    for h in &hosts[1..] {
        assert!(checkin(&s, h, json!([])).await.0.is_empty(), "{}", h.name);
    }
    let rk = jobs[0].job.key.clone();
    checkin(
        &s,
        &hosts[0],
        json!([{"key": rk, "outcome": "rolled_back", "finished_at": "2026-12-08T22:06:00Z"}]),
    )
    .await;
    s.app.drive_rollouts().await.unwrap();
    let d = show(&s, &id).await;
    assert_eq!(d["rollout"]["rings"][0]["jobs"][0]["state"], "rolled_back");
    for r in &d["rollout"]["rings"].as_array().unwrap()[1..] {
        for j in r["jobs"].as_array().unwrap() {
            assert_eq!(j["state"], "skipped");
        }
    }
    // The change record carries the real outcome and the gate decision.
    let chg = s
        .ok_json(
            "GET",
            &format!("/api/v1/changes/{id}"),
            &s.admin,
            json!(null),
        )
        .await;
    assert!(
        chg["outcome"]
            .as_str()
            .unwrap()
            .starts_with("halted: ring ring0-canary"),
        "{}",
        chg["outcome"]
    );
    let ring0 = &chg["rollout"]["rings"][0];
    assert_eq!(
        (ring0["rolled_back"].as_u64(), ring0["succeeded"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(ring0["gates"][0][0], "budget");
    assert_eq!(ring0["gates"][0][1], "fail");
    assert_eq!(chg["rollout"]["rings"][1]["skipped"], 2);
    // Hours later nothing more is leased anywhere.
    s.clock.advance(SignedDuration::from_hours(2));
    s.app.drive_rollouts().await.unwrap();
    for h in &hosts {
        assert!(checkin(&s, h, json!([])).await.0.is_empty());
    }
}

#[tokio::test]
async fn four_eyes_actions_and_refusals() {
    let s = InProcess::new().await;
    fleet(&s, 2).await;
    let ops = token(&s, "operator").await;
    let approver = token(&s, "approver").await;
    let mut sp = spec("1.1");
    sp["rings"] =
        json!([{"name": "only", "approval": true, "max_concurrent": "2", "error_budget": "1"}]);
    let d = s.ok_json("POST", "/api/v1/deployments", &ops, sp).await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();
    // An approver may not start it; an operator may not approve; abort needs a comment.
    let (st, _) = s
        .call(
            "POST",
            &format!("/api/v1/deployments/{id}/start"),
            Some(&approver),
            Some("{}"),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, body) = s
        .call(
            "POST",
            &format!("/api/v1/deployments/{id}/abort"),
            Some(&ops),
            Some("{}"),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        &ops,
        json!({}),
    )
    .await;
    // Starting twice is a conflict naming the state.
    let (st, body) = s
        .call(
            "POST",
            &format!("/api/v1/deployments/{id}/start"),
            Some(&ops),
            Some("{}"),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    // The admin who is neither creator nor starter may approve; the creator
    // (operator) may not even hold the permission; an admin that created one may not.
    let (st, _) = s
        .call(
            "POST",
            &format!("/api/v1/deployments/{id}/approvals"),
            Some(&ops),
            Some(&json!({"approve": true, "comment": "lgtm"}).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let mut sp2 = spec("1.1");
    sp2["rings"] = json!([{"name": "only", "approval": true}]);
    let d2 = s
        .ok_json("POST", "/api/v1/deployments", &s.admin, sp2)
        .await;
    let id2 = d2["deployment"]["id"].as_str().unwrap().to_string();
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id2}/start"),
        &ops,
        json!({}),
    )
    .await;
    let (st, body) = s
        .call(
            "POST",
            &format!("/api/v1/deployments/{id2}/approvals"),
            Some(&s.admin),
            Some(&json!({"approve": true, "comment": "mine"}).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("four eyes"), "{body}");
    let d = s
        .ok_json(
            "POST",
            &format!("/api/v1/deployments/{id2}/approvals"),
            &approver,
            json!({"approve": true, "comment": "checked the canary dashboards"}),
        )
        .await;
    assert_eq!(
        d["rollout"]["rings"][0]["approved_by"]
            .as_str()
            .unwrap()
            .split(':')
            .nth(2),
        Some("deploy-approver")
    );
    // Rejection aborts, with the comment audited.
    let d = s
        .ok_json(
            "POST",
            &format!("/api/v1/deployments/{id}/approvals"),
            &approver,
            json!({"approve": false, "comment": "not this week"}),
        )
        .await;
    assert_eq!(d["deployment"]["status"], "aborted");
    // Bad specs are refused naming the field, and nothing is stored.
    for (bad, needle) in [
        (json!({"packages": []}), "packages"),
        (
            json!({"packages": [{"name": "pb-demo", "version": "1.1"}], "rings": [{"name": "r", "size": "ten"}, {"name": "s"}]}),
            "size",
        ),
        (
            json!({"packages": [{"name": "pb;rm -rf /", "version": "1.1"}]}),
            "not a valid deb package",
        ),
        (
            json!({"packages": [{"name": "absent", "version": "1"}]}),
            "nothing to deploy",
        ),
        // Going back is what a rollback is for: every host would downgrade.
        (
            json!({"packages": [{"name": "pb-demo", "version": "0.9"}]}),
            "nothing to deploy",
        ),
        (
            json!({"packages": [{"name": "pb-demo", "version": "1.1"}], "assets": ["ghost"]}),
            "ghost",
        ),
    ] {
        let (st, body) = s
            .call(
                "POST",
                "/api/v1/deployments",
                Some(&ops),
                Some(&bad.to_string()),
            )
            .await;
        assert!(st.is_client_error(), "{bad}: {st} {body}");
        assert!(body.contains(needle), "{bad}: {body}");
    }
    let list = s
        .ok_json("GET", "/api/v1/deployments", &s.admin, json!(null))
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_long_polling_agent_gets_its_job_as_soon_as_it_is_leased() {
    let s = std::sync::Arc::new(InProcess::new().await);
    let hosts = fleet(&s, 1).await;
    let ops = token(&s, "operator").await;
    let d = s
        .ok_json(
            "POST",
            "/api/v1/deployments",
            &ops,
            json!({"packages": [{"name": "pb-demo", "version": "1.1"}]}),
        )
        .await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();
    let hash = s
        .ok_json("GET", "/api/v1/assets/h1", &s.admin, json!(null))
        .await["inventory_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let (s2, secret) = (s.clone(), hosts[0].secret.clone());
    let started = std::time::Instant::now();
    let poll = tokio::spawn(async move {
        s2.ok_json(
            "POST",
            "/agent/v1/checkin",
            &secret,
            unchanged(hash, json!([]), Some(30)),
        )
        .await
    });
    // Let the poll start waiting, then lease.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        &ops,
        json!({}),
    )
    .await;
    let r = poll.await.unwrap();
    assert_eq!(r["jobs"].as_array().unwrap().len(), 1, "{r}");
    // Answered on the lease, not at the end of the 30 s wait.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// The apply jobs among `jobs` (not control samples).
fn applies(jobs: Vec<SignedJob>) -> Vec<SignedJob> {
    jobs.into_iter()
        .filter(|j| matches!(j.job.kind, JobKind::Apply { .. }))
        .collect()
}

/// With no rings in the request, the policy's `[[rings]]` give them and their
/// rules (a host in none is left alone); the maintenance windows and
/// blackouts covering each host decide when its job may start: the preview
/// says so per host, the job carries its slots, and the driver leases it only
/// inside one.
#[tokio::test]
async fn policy_rings_and_maintenance_windows_shape_the_rollout() {
    let s = InProcess::new().await; // 2026-12-08T22:00Z
    let hosts = fleet(&s, 5).await;
    let ops = token(&s, "operator").await;
    let policy = r#"version = 1
[[groups]]
name = "canary"
match = { name = "h1" }

[[rings]]
name = "r0-canary"
order = 0
groups = ["canary"]
soak = "0h"
health_checks = ["disk"]

[[rings]]
name = "r1-rest"
order = 1
match = { name = ["h2", "h3", "h4"] }
soak = "0h"
max_concurrent = "100%"
error_budget = 1
success_threshold = "60%"
rollback = "none"
"#;
    let (st, text) = s
        .call_typed(
            "POST",
            "/api/v1/policy",
            Some(&s.admin),
            "application/toml",
            Some(policy),
        )
        .await;
    assert!(st.is_success(), "{st} {text}");
    // h2: nightly 23:00–00:30 UTC with a 30 min cutoff; h3: frozen for two
    // days; h4: no window (any time); h5: in no ring.
    s.ok_json(
        "POST",
        "/api/v1/windows",
        &ops,
        json!({"name": "nightly-h2", "rrule": "FREQ=DAILY", "dtstart": "2026-12-01T23:00:00",
               "tz": "UTC", "duration": "90m", "cutoff": "30m", "assets": ["h2"]}),
    )
    .await;
    s.ok_json(
        "POST",
        "/api/v1/blackouts",
        &ops,
        json!({"name": "freeze-h3", "start": "2026-12-08T00:00:00Z", "end": "2026-12-10T12:00:00Z",
               "reason": "audit week", "owner": "cab", "assets": ["h3"]}),
    )
    .await;
    let body = json!({"packages": [{"name": "pb-demo", "version": "1.1"}], "checks": ["web"],
                      "job_timeout": "20m"});
    let p = s
        .ok_json("POST", "/api/v1/deployments/preview", &ops, body.clone())
        .await;
    let ring_of = |a: &str| {
        p["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["asset"] == a)
            .map(|h| {
                (
                    h["ring"].as_str().unwrap().to_string(),
                    h["window"].as_str().unwrap().to_string(),
                )
            })
    };
    let skip_of = |a: &str| {
        p["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["asset"] == a)
            .map(|h| h["reason"].as_str().unwrap().to_string())
    };
    assert_eq!(ring_of("h1").unwrap().0, "r0-canary", "{p:#}");
    let (r2, w2) = ring_of("h2").unwrap();
    assert_eq!(r2, "r1-rest");
    assert!(
        w2.contains("nightly-h2")
            && w2.contains("first 2026-12-08T23:00:00Z – 2026-12-09T00:00:00Z"),
        "{w2}"
    );
    assert!(
        ring_of("h4")
            .unwrap()
            .1
            .starts_with("any time until 2026-12-09T22:00:00Z"),
        "{p:#}"
    );
    assert!(skip_of("h3").unwrap().contains("blackouts cover"), "{p:#}");
    assert!(
        skip_of("h5").unwrap().contains("in no ring of the policy"),
        "{p:#}"
    );
    assert!(
        p["rules"].as_array().unwrap().iter().any(|r| r
            .as_str()
            .unwrap()
            .starts_with("r1-rest: 2 host(s), at most 2 at a time; 1 failure(s) tolerated")
            && r.as_str().unwrap().contains("success ≥ 60 %")
            && r.as_str().unwrap().ends_with("rollback none")),
        "{:#}",
        p["rules"]
    );

    let d = s.ok_json("POST", "/api/v1/deployments", &ops, body).await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();
    // The stored plan: the policy's rules, the host's slots.
    let r1 = &d["rollout"]["rings"][1];
    assert_eq!(r1["spec"]["max_concurrent"], 2);
    assert_eq!(r1["spec"]["error_budget"], 1);
    assert_eq!(r1["spec"]["rollback"], "none");
    let h2 = r1["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["spec"]["host"] == "h2")
        .unwrap();
    assert_eq!(
        h2["spec"]["slots"][0],
        json!({"opens": "2026-12-08T23:00:00Z", "closes": "2026-12-09T00:00:00Z"})
    );
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        &ops,
        json!({}),
    )
    .await;
    let by = |n: &str| hosts.iter().find(|h| h.name == n).unwrap();
    // The canary's job carries the deployment's checks and its ring's.
    s.app.drive_rollouts().await.unwrap();
    let (jobs, _) = checkin(&s, by("h1"), json!([])).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].job.checks,
        vec!["web".to_string(), "disk".to_string()]
    );
    checkin(&s, by("h1"), json!([result(&jobs[0].job.key, "h1", true)])).await;
    s.clock.advance(SignedDuration::from_mins(1));
    s.app.drive_rollouts().await.unwrap();
    s.app.drive_rollouts().await.unwrap();
    // 22:01: h4 (any time) is leased; h2's window has not opened.
    let (j4, _) = checkin(&s, by("h4"), json!([])).await;
    // (h4 also got a control-sample job while the canary ring ran.)
    let j4: Vec<SignedJob> = j4
        .into_iter()
        .filter(|j| matches!(j.job.kind, JobKind::Apply { .. }))
        .collect();
    assert_eq!(j4.len(), 1, "{:#}", show(&s, &id).await["rollout"]);
    assert_eq!(j4[0].job.checks, vec!["web".to_string()]);
    assert!(applies(checkin(&s, by("h2"), json!([])).await.0).is_empty());
    // 22:59: still closed. 23:00: open.
    s.clock.advance(SignedDuration::from_mins(58));
    s.app.drive_rollouts().await.unwrap();
    assert!(applies(checkin(&s, by("h2"), json!([])).await.0).is_empty());
    s.clock.advance(SignedDuration::from_mins(1));
    s.app.drive_rollouts().await.unwrap();
    let (j2, _) = checkin(&s, by("h2"), json!([])).await;
    assert_eq!(applies(j2).len(), 1);
    // Neither the frozen host nor the one in no ring ever gets a job.
    for n in ["h3", "h5"] {
        assert!(checkin(&s, by(n), json!([])).await.0.is_empty());
    }
    // `windows = required` leaves h4 (no window) alone as well.
    let p = s
        .ok_json(
            "POST",
            "/api/v1/deployments/preview",
            &ops,
            json!({"packages": [{"name": "pb-demo", "version": "1.1"}], "windows": "required"}),
        )
        .await;
    assert!(
        p["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["asset"] == "h4"
                && x["reason"]
                    .as_str()
                    .unwrap()
                    .contains("no maintenance window covers it")),
        "{p:#}"
    );
    // A bad mode is named.
    let (st, text) = s
        .call(
            "POST",
            "/api/v1/deployments/preview",
            Some(&ops),
            Some(&json!({"packages": [{"name": "pb-demo", "version": "1.1"}], "windows": "sometimes"}).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        text.contains("windows: unknown mode \\\"sometimes\\\""),
        "{text}"
    );
}

/// A host that reports it needs a reboot after its job gets a signed reboot
/// job (key `…/reboot`) while its window is open; its job stays in flight
/// (holding the ring's concurrency) until the reboot reports, then succeeds.
/// With `reboot = never` the need is only noted.
#[tokio::test]
async fn a_required_reboot_is_a_signed_job_and_never_means_a_note() {
    let s = InProcess::new().await;
    let hosts = fleet(&s, 2).await;
    let ops = token(&s, "operator").await;
    let body = |reboot: &str| {
        json!({"packages": [{"name": "pb-demo", "version": "1.1"}], "assets": ["h1", "h2"],
               "rings": [{"name": "all", "max_concurrent": "1"}], "reboot": reboot})
    };
    let d = s
        .ok_json("POST", "/api/v1/deployments", &ops, body("if-required"))
        .await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        &ops,
        json!({}),
    )
    .await;
    s.app.drive_rollouts().await.unwrap();
    // Concurrency 1: exactly one of the two hosts gets its job.
    let (j1, _) = checkin(&s, &hosts[0], json!([])).await;
    let (j2, _) = checkin(&s, &hosts[1], json!([])).await;
    assert_eq!(j1.len() + j2.len(), 1);
    let (first, other) = if j1.is_empty() {
        (&hosts[1], &hosts[0])
    } else {
        (&hosts[0], &hosts[1])
    };
    let key = format!("{id}/{}", first.name);
    let mut r = result(&key, &first.name, true);
    r["reboot_required"] = json!(true);
    checkin(&s, first, json!([r])).await;
    s.app.drive_rollouts().await.unwrap();
    let (reboot, _) = checkin(&s, first, json!([])).await;
    assert_eq!(reboot.len(), 1, "{:#}", show(&s, &id).await["rollout"]);
    assert_eq!(reboot[0].job.kind, JobKind::Reboot);
    assert_eq!(reboot[0].job.key, format!("{key}/reboot"));
    let d = show(&s, &id).await;
    let job_state = |d: &Value, host: &str| {
        d["rollout"]["rings"][0]["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["spec"]["host"] == host)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(job_state(&d, &first.name), "rebooting");
    // Concurrency 1: the other host waits for the reboot.
    assert!(checkin(&s, other, json!([])).await.0.is_empty());
    let rr = json!({"key": format!("{key}/reboot"), "outcome": "succeeded",
                    "message": "reboot issued", "finished_at": "2026-12-08T22:06:00Z"});
    checkin(&s, first, json!([rr])).await;
    s.app.drive_rollouts().await.unwrap();
    let d = show(&s, &id).await;
    assert_eq!(job_state(&d, &first.name), "succeeded");
    assert_eq!(checkin(&s, other, json!([])).await.0.len(), 1);

    // `never`: noted, not rebooted.
    let s = InProcess::new().await;
    let hosts = fleet(&s, 1).await;
    let ops = token(&s, "operator").await;
    let mut b = body("never");
    b["assets"] = json!(["h1"]);
    let d = s.ok_json("POST", "/api/v1/deployments", &ops, b).await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        &ops,
        json!({}),
    )
    .await;
    s.app.drive_rollouts().await.unwrap();
    let (jobs, _) = checkin(&s, &hosts[0], json!([])).await;
    assert_eq!(jobs.len(), 1);
    let mut r = result(&jobs[0].job.key, "h1", true);
    r["reboot_required"] = json!(true);
    checkin(&s, &hosts[0], json!([r])).await;
    s.app.drive_rollouts().await.unwrap();
    assert!(checkin(&s, &hosts[0], json!([])).await.0.is_empty());
    let d = show(&s, &id).await;
    let j = &d["rollout"]["rings"][0]["jobs"][0];
    assert_eq!(j["state"], "succeeded");
    assert_eq!(
        j["note"],
        "a reboot is required but was not done: the deployment does not reboot hosts"
    );
    // A bad policy is named.
    let (st, text) = s
        .call(
            "POST",
            "/api/v1/deployments/preview",
            Some(&ops),
            Some(
                &json!({"packages": [{"name": "pb-demo", "version": "1.1"}], "reboot": "always"})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(text.contains("reboot: unknown policy"), "{text}");
}

/// A succeeded result whose `p99` check measured `base` before and `after`
/// after the change (higher is worse), as an agent with a `metric = true`
/// check reports it.
fn measured(key: &str, host: &str, base: f64, after: f64) -> Value {
    json!({"key": key, "outcome": "succeeded",
           "baseline": [{"host": host, "check": "p99", "pass": true, "value": base}],
           "after": [{"host": host, "check": "p99", "pass": true, "value": after}],
           "changed": [{"name": "pb-demo", "before": "1.0", "after": "1.1"}],
           "finished_at": "2026-12-08T22:05:00Z"})
}

/// Runs a one-ring deployment of the five hosts to its end, each host
/// reporting its `p99` as `before[i]` then `after(before[i])`; returns the
/// deployment's detail.
async fn numeric_rollout(s: &InProcess, hosts: &[Host], after: impl Fn(f64) -> f64) -> Value {
    let spec = json!({"packages": [{"name": "pb-demo", "version": "1.1"}],
        "checks": ["p99"],
        "rings": [{"name": "all", "max_concurrent": "100%", "error_budget": "0", "rollback": "none"}]});
    let d = s
        .ok_json("POST", "/api/v1/deployments", &s.admin, spec)
        .await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        &s.admin,
        json!({}),
    )
    .await;
    // The hosts' own spread: every check passes, only the numbers differ.
    let before = [100.0, 104.0, 97.0, 101.0, 99.0];
    for _ in 0..10 {
        s.app.drive_rollouts().await.unwrap();
        for (h, b) in hosts.iter().zip(before) {
            let (jobs, _) = checkin(s, h, json!([])).await;
            for j in jobs {
                let (_, acked) =
                    checkin(s, h, json!([measured(&j.job.key, &h.name, b, after(b))])).await;
                assert_eq!(acked, vec![j.job.key.clone()]);
            }
        }
        let d = show(s, &id).await;
        if !["running", "draft"].contains(&d["deployment"]["status"].as_str().unwrap()) {
            return d;
        }
        s.clock.advance(SignedDuration::from_mins(1));
    }
    panic!("{id} did not finish: {:#}", show(s, &id).await["rollout"]);
}

fn health_gate(d: &Value) -> Value {
    d["rollout"]["rings"][0]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == "health")
        .cloned()
        .unwrap_or_else(|| panic!("no health gate: {:#}", d["rollout"]))
}

/// Numeric health values (issue 13): every job succeeds and every check
/// passes, so only the numbers the agents measured decide. Values twice the
/// baseline fail the ring's health gate (Mann-Whitney at 98 %, beyond the
/// 25 % tolerance) and halt the deployment; values 10 % higher — significant
/// for five hosts, but within the tolerance — pass it.
#[tokio::test]
async fn numeric_health_values_decide_the_health_gate_with_their_tolerance() {
    let s = InProcess::new().await;
    let hosts = fleet(&s, 5).await;

    let d = numeric_rollout(&s, &hosts, |b| b * 2.0).await;
    let g = health_gate(&d);
    println!("twice the baseline: {g}");
    assert_eq!(g["verdict"], "fail", "{g:#}");
    let reason = g["reason"].as_str().unwrap();
    assert!(
        reason.contains("p99") && reason.contains("more than the 25 % tolerance"),
        "{reason}"
    );
    assert_eq!(d["deployment"]["status"], "halted", "{:#}", d["rollout"]);
    assert_eq!(d["rollout"]["rings"][0]["state"], "failed");
    // The samples the gate judged are the values the agents sent, stored.
    for j in d["rollout"]["rings"][0]["jobs"].as_array().unwrap() {
        assert_eq!(j["state"], "succeeded", "{j:#}");
        let (b, a) = (
            j["baseline"][0]["value"].as_f64().unwrap(),
            j["after"][0]["value"].as_f64().unwrap(),
        );
        assert_eq!(a, b * 2.0, "{j:#}");
    }
    let stored: Vec<f64> = d["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["after"][0]["value"].as_f64().unwrap())
        .collect();
    assert_eq!(stored.len(), 5, "{:#}", d["results"]);

    let d = numeric_rollout(&s, &hosts, |b| b * 1.1).await;
    let g = health_gate(&d);
    println!("10 % over the baseline: {g}");
    assert_eq!(g["verdict"], "pass", "{g:#}");
    // Significant at 98 %: the tolerance alone lets it pass.
    let p = g["canary"]["checks"][0]["p_value"].as_f64().unwrap();
    assert!(p < 0.02, "{g:#}");
    assert_eq!(d["deployment"]["status"], "completed", "{:#}", d["rollout"]);
    assert_eq!(d["rollout"]["rings"][0]["state"], "passed");
}

/// The preview uses what each host's agent reported its repositories offer
/// (pending updates): a pin above that is not available there — the host is
/// skipped with the reason — and an available one is shown.
#[tokio::test]
async fn a_version_the_hosts_repositories_do_not_offer_is_skipped() {
    let s = InProcess::new().await;
    let hosts = fleet(&s, 2).await;
    let ops = token(&s, "operator").await;
    // h2 reports that its repositories offer pb-demo 1.1 at most.
    let mut inv = pb_demo_inventory("h2", &hosts[1].mid, "1.0");
    inv.pending_updates = vec![patchbay_core::inventory::PendingUpdate {
        name: "pb-demo".into(),
        arch: "all".into(),
        current_version: "1.0".into(),
        available_version: "1.1".into(),
        origin: "local".into(),
    }];
    let body = full_checkin(inv, json!([]));
    s.ok_json("POST", "/agent/v1/checkin", &hosts[1].secret, body)
        .await;
    let preview = |v: &str| {
        let ops = ops.clone();
        let s = &s;
        let v = v.to_string();
        async move {
            s.ok_json(
                "POST",
                "/api/v1/deployments/preview",
                &ops,
                json!({"packages": [{"name": "pb-demo", "version": v}]}),
            )
            .await
        }
    };
    let p = preview("1.2").await;
    assert_eq!(p["hosts"].as_array().unwrap().len(), 1, "{p:#}");
    assert_eq!(p["hosts"][0]["asset"], "h1");
    assert!(p["hosts"][0]["packages"][0].get("available").is_none());
    assert_eq!(p["skipped"][0]["asset"], "h2");
    assert_eq!(
        p["skipped"][0]["reason"],
        "not available to the host: pb-demo 1.2 (its repositories offer 1.1 at most) — as its agent last reported"
    );
    let p = preview("1.1").await;
    assert_eq!(p["hosts"].as_array().unwrap().len(), 2, "{p:#}");
    assert_eq!(p["hosts"][1]["packages"][0]["available"], "1.1");
}

/// "What" from the catalog: `patches` by name or a `tier` selection give each
/// host with an open, not excluded finding the finding's package at the
/// patch's fixed version; an unapproved patch is refused by name.
#[tokio::test]
async fn patches_and_tiers_of_the_catalog_select_what_each_host_gets() {
    let s = InProcess::new().await;
    let _hosts = fleet(&s, 3).await;
    let ops = token(&s, "operator").await;
    import_pb_demo_advisory(&s).await;
    let policy = |approve: &str| {
        format!(
            "version = 1\n[approval]\nalways_approve_tiers = {approve}\n[[exclusions]]\npackage = \"pb-demo\"\nasset = \"h3\"\nreason = \"vendor appliance\"\n"
        )
    };
    let apply = |text: String| {
        let s = &s;
        async move {
            let (st, body) = s
                .call_typed(
                    "POST",
                    "/api/v1/policy",
                    Some(&s.admin),
                    "application/toml",
                    Some(&text),
                )
                .await;
            assert!(st.is_success(), "{st} {body}");
        }
    };
    apply(policy(r#"["P0", "P1", "P2", "P3", "P4"]"#)).await;
    let catalog = s
        .ok_json("GET", "/api/v1/patches", &s.admin, json!(null))
        .await;
    let patch = catalog["items"][0].clone();
    let name = patch["name"].as_str().unwrap().to_string();
    let tier = patch["highest_tier"].as_str().unwrap().to_string();
    assert_eq!(patch["fixed_version"], "1.1", "{catalog:#}");
    for body in [json!({"patches": [name]}), json!({"tier": tier})] {
        let p = s
            .ok_json("POST", "/api/v1/deployments/preview", &ops, body.clone())
            .await;
        let hosts: Vec<&str> = p["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["asset"].as_str().unwrap())
            .collect();
        // h3's finding is excluded by the policy: it is not selected.
        assert_eq!(hosts, vec!["h1", "h2"], "{body}: {p:#}");
        assert_eq!(
            p["hosts"][0]["packages"][0],
            json!({"name": "pb-demo", "from": "1.0", "to": "1.1"})
        );
    }
    let d = s
        .ok_json("POST", "/api/v1/deployments", &ops, json!({"tier": "P4"}))
        .await;
    assert_eq!(
        d["deployment"]["patches"],
        json!([name]),
        "{:#}",
        d["deployment"]
    );
    // Unknown and unapproved patches are named.
    let (st, text) = s
        .call(
            "POST",
            "/api/v1/deployments/preview",
            Some(&ops),
            Some(&json!({"patches": ["PB-nope"]}).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{text}");
    assert!(
        text.contains("no patch \\\"PB-nope\\\" in the catalog"),
        "{text}"
    );
    apply(policy("[]")).await;
    let (st, text) = s
        .call(
            "POST",
            "/api/v1/deployments/preview",
            Some(&ops),
            Some(&json!({"patches": [name]}).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        text.contains("is not approved by the policy in force"),
        "{text}"
    );
    let (st, text) = s
        .call(
            "POST",
            "/api/v1/deployments/preview",
            Some(&ops),
            Some(&json!({"tier": "P4"}).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("tier: no approved patch"), "{text}");
    // Neither packages nor a selection.
    let (st, text) = s
        .call(
            "POST",
            "/api/v1/deployments/preview",
            Some(&ops),
            Some("{}"),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{text}");
}
