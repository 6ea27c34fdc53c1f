//! Jira and ServiceNow lifecycle (issue 15) against a loopback receiver that
//! answers like their REST APIs: the create call's answer carries the id
//! (Jira's `key` from `POST /rest/api/2/issue`, ServiceNow's
//! `result.sys_id` from `POST /api/sn_chg_rest/change/normal`); Patchbay
//! keeps it per (subscription, deployment) and comments on (Jira) or
//! updates and closes (ServiceNow) that record as the deployment goes on.
//!
//! The events come from real deployments driven through the service layer
//! (the API, agent check-ins, the rollout driver): one runs ring by ring to
//! completion, another halts in its canary and is rolled back. Like the
//! real services, the receiver refuses (401) a request without the
//! subscription's credential: Jira wants `Authorization: Basic …`,
//! ServiceNow a Bearer token, sent as the subscriptions' auth headers.

use crate::deploy::{checkin, result, token};
use crate::support::{Host, InProcess};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use jiff::SignedDuration;
use patchbay_app::webhooks::{Sender, WebhookConfig};
use patchbay_core::job::JobKind;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Tickets {
    /// Jira issue keys created, with their create bodies.
    issues: Vec<(String, Value)>,
    /// (issue key, comment body).
    comments: Vec<(String, Value)>,
    /// ServiceNow changes created: (sys_id, body).
    changes: Vec<(String, Value)>,
    /// (sys_id, PATCH body).
    updates: Vec<(String, Value)>,
    /// Jira creates to refuse with 503 first.
    fail_jira_creates: u32,
    /// Requests refused for a missing or wrong credential.
    unauthorized: u32,
}

/// Jira Cloud's Basic credential (`email:api-token`), ServiceNow's bearer.
const JIRA_AUTH: &str = "Basic b3BzQGV4YW1wbGUubmV0OmppcmEtdG9rZW4=";
const SN_AUTH: &str = "Bearer sn-oauth-access-token";

/// As the services do: no right credential, 401 and nothing done.
fn refused(t: &mut Tickets, h: &HeaderMap, want: &str) -> Option<(StatusCode, Json<Value>)> {
    if h.get("authorization").and_then(|v| v.to_str().ok()) == Some(want) {
        return None;
    }
    t.unauthorized += 1;
    Some((
        StatusCode::UNAUTHORIZED,
        Json(json!({"errorMessages": ["You are not authenticated."]})),
    ))
}

type St = Arc<Mutex<Tickets>>;

async fn jira_create(
    State(st): State<St>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut t = st.lock().unwrap();
    if let Some(no) = refused(&mut t, &h, JIRA_AUTH) {
        return no;
    }
    if t.fail_jira_creates > 0 {
        t.fail_jira_creates -= 1;
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({})));
    }
    let n = t.issues.len() + 1;
    let key = format!("OPS-{n}");
    t.issues.push((key.clone(), body));
    (
        StatusCode::CREATED,
        Json(
            json!({"id": format!("1000{n}"), "key": key, "self": format!("http://jira/rest/api/2/issue/1000{n}")}),
        ),
    )
}

async fn jira_comment(
    State(st): State<St>,
    Path(key): Path<String>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut t = st.lock().unwrap();
    if let Some(no) = refused(&mut t, &h, JIRA_AUTH) {
        return no;
    }
    if !t.issues.iter().any(|(k, _)| *k == key) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"errorMessages": ["Issue does not exist"]})),
        );
    }
    t.comments.push((key, body));
    (StatusCode::CREATED, Json(json!({"id": "1"})))
}

async fn sn_create(
    State(st): State<St>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut t = st.lock().unwrap();
    if let Some(no) = refused(&mut t, &h, SN_AUTH) {
        return no;
    }
    let sys_id = format!("{:032x}", t.changes.len() + 0xabc);
    t.changes.push((sys_id.clone(), body));
    (
        StatusCode::OK,
        Json(
            json!({"result": {"sys_id": {"value": sys_id, "display_value": sys_id}, "number": {"value": "CHG0030001"}}}),
        ),
    )
}

async fn sn_update(
    State(st): State<St>,
    Path(sys_id): Path<String>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut t = st.lock().unwrap();
    if let Some(no) = refused(&mut t, &h, SN_AUTH) {
        return no;
    }
    if !t.changes.iter().any(|(k, _)| *k == sys_id) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"message": "No Record found"}})),
        );
    }
    t.updates.push((sys_id.clone(), body));
    (
        StatusCode::OK,
        Json(json!({"result": {"sys_id": {"value": sys_id}}})),
    )
}

async fn receiver() -> (String, St) {
    use axum::routing::{patch, post};
    let st: St = Arc::default();
    let app = axum::Router::new()
        .route("/jira/rest/api/2/issue", post(jira_create))
        .route("/jira/rest/api/2/issue/{key}/comment", post(jira_comment))
        .route("/sn/api/sn_chg_rest/change/normal", post(sn_create))
        .route("/sn/api/sn_chg_rest/change/{sys_id}", patch(sn_update))
        .with_state(st.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), st)
}

/// Sends every due delivery of every subscription, advancing the clock so
/// retries come due.
async fn deliver(s: &InProcess, rounds: usize) {
    while s.app.webhooks_fan_out().await.unwrap() > 0 {}
    let sender = Sender::new(Duration::from_secs(5));
    let ids = s.app.webhook_ids().await.unwrap();
    for _ in 0..rounds {
        for id in &ids {
            while s.app.webhooks_deliver(*id, &sender).await.unwrap().sent > 0 {}
        }
        s.clock.advance(SignedDuration::from_secs(600));
    }
}

fn spec(version: &str) -> Value {
    json!({"packages": [{"name": "pb-demo", "version": version}],
    "checks": ["web"],
    "rings": [
        {"name": "canary", "assets": ["h1"]},
        {"name": "rest", "max_concurrent": "100%", "error_budget": "1"}
    ]})
}

async fn status(s: &InProcess, id: &str) -> String {
    s.ok_json(
        "GET",
        &format!("/api/v1/deployments/{id}"),
        &s.admin,
        json!(null),
    )
    .await["deployment"]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Creates and starts a deployment of `version` (through the API); its id.
async fn deploy(s: &InProcess, ops: &str, version: &str) -> String {
    let d = s
        .ok_json("POST", "/api/v1/deployments", ops, spec(version))
        .await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        ops,
        json!({}),
    )
    .await;
    id
}

/// Drives deployment `id`: the rollout driver steps it and each host
/// checks in, answering its jobs (updates succeed when `good`, control
/// samples pass), one simulated minute a round, until `until` is its
/// status.
async fn drive(s: &InProcess, hosts: &[Host], id: &str, good: bool, until: &str) {
    for _ in 0..30 {
        s.app.drive_rollouts().await.unwrap();
        for h in hosts {
            let (jobs, _) = checkin(s, h, json!([])).await;
            for j in &jobs {
                let answer = match &j.job.kind {
                    JobKind::RunCheck { .. } => json!({"key": j.job.key, "outcome": "succeeded",
                        "baseline": [{"host": h.name, "check": "web", "pass": true}],
                        "after": [{"host": h.name, "check": "web", "pass": true}],
                        "finished_at": "2026-12-08T22:05:00Z"}),
                    JobKind::Rollback { .. } => json!({"key": j.job.key, "outcome": "rolled_back",
                        "finished_at": "2026-12-08T22:06:00Z"}),
                    _ => result(&j.job.key, &h.name, good),
                };
                checkin(s, h, json!([answer])).await;
            }
        }
        s.app.drive_rollouts().await.unwrap();
        if status(s, id).await == until {
            return;
        }
        s.clock.advance(SignedDuration::from_mins(1));
    }
    panic!("{id} never reached {until}: {}", status(s, id).await);
}

async fn lifecycle(backend: &str) {
    let cfg = patchbay_app::AppConfig {
        webhooks: WebhookConfig {
            backoff_base: SignedDuration::from_secs(10),
            timeout: Duration::from_secs(5),
            ..WebhookConfig::default()
        },
        ..Default::default()
    };
    let s = InProcess::on_with(backend, cfg).await;
    let hosts = crate::support::fleet(&s, 3, 0x11fe).await;
    let ops = token(&s, "operator").await;
    let (base, st) = receiver().await;
    st.lock().unwrap().fail_jira_creates = 1;
    for (name, template, path, auth) in [
        ("jira", "jira", "/jira/", JIRA_AUTH),
        ("snow", "servicenow", "/sn", SN_AUTH),
    ] {
        s.ok_json(
            "POST",
            "/api/v1/webhooks",
            &s.admin,
            json!({"name": name, "url": format!("{base}{path}"), "template": template,
                   "project": "OPS", "events": ["*"],
                   "auth_headers": [{"name": "Authorization", "value": auth}]}),
        )
        .await;
    }
    // A subscription without the credential is refused by the receiver.
    s.ok_json(
        "POST",
        "/api/v1/webhooks",
        &s.admin,
        json!({"name": "nocred", "url": format!("{base}/sn"), "template": "servicenow",
               "events": ["deployment.created"], "max_attempts": 1}),
    )
    .await;

    // DEP-1 runs ring by ring to completion.
    let one = deploy(&s, &ops, "1.1").await;
    drive(&s, &hosts, &one, true, "completed").await;
    deliver(&s, 20).await;
    // DEP-2 halts in its canary (the update fails) and is rolled back.
    let two = deploy(&s, &ops, "1.2").await;
    drive(&s, &hosts, &two, false, "halted").await;
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{two}/rollback"),
        &ops,
        json!({"comment": "canary regressions"}),
    )
    .await;
    deliver(&s, 40).await;
    // Every delivery with the credential ended delivered or skipped:
    // nothing pending or dead; the one without it is dead after a 401.
    for name in ["jira", "snow"] {
        let v = s
            .ok_json(
                "GET",
                &format!("/api/v1/webhooks/{name}"),
                &s.admin,
                json!(null),
            )
            .await;
        assert_eq!(
            (v["pending"].as_u64(), v["dead"].as_u64()),
            (Some(0), Some(0)),
            "{v}"
        );
    }
    let nocred = s
        .ok_json(
            "GET",
            "/api/v1/webhooks/nocred/deliveries",
            &s.admin,
            json!(null),
        )
        .await;
    let nocred = nocred["items"].as_array().unwrap();
    assert_eq!(nocred.len(), 2, "{nocred:?}");
    assert!(
        nocred
            .iter()
            .all(|d| d["state"] == "dead" && d["last_status"] == 401),
        "{nocred:?}"
    );
    let t = st.lock().unwrap();
    // Only the subscription without the credential was refused (its two
    // creates, once each: max_attempts 1).
    assert_eq!(t.unauthorized, 2);
    // Jira: one issue per deployment (the refused create retried, not
    // doubled); comments on the right issue, never before it existed.
    let created: Vec<&str> = t.issues.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(created, ["OPS-1", "OPS-2"], "{:?}", t.issues);
    let issue_of = |dep: &str| {
        t.issues
            .iter()
            .find(|(_, b)| b["fields"]["summary"].as_str().unwrap().ends_with(dep))
            .unwrap()
            .0
            .clone()
    };
    let comments = |key: &str| {
        let mut v: Vec<String> = t
            .comments
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, b)| {
                b["body"]
                    .as_str()
                    .unwrap()
                    .split(':')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        comments(&issue_of(&one)),
        [
            "deployment.completed",
            "deployment.ring_passed",
            "deployment.ring_passed"
        ]
    );
    assert_eq!(
        comments(&issue_of(&two)),
        ["deployment.halted", "deployment.rolled_back"]
    );
    assert_eq!(t.comments.len(), 5, "started is not commented");
    // ServiceNow: one change each, updated as rings pass, closed with the
    // outcome; the rollback noted.
    assert_eq!(t.changes.len(), 2);
    let change_of = |dep: &str| {
        t.changes
            .iter()
            .find(|(_, b)| b["correlation_id"] == format!("patchbay-{dep}"))
            .unwrap()
            .0
            .clone()
    };
    let updates = |id: &str| -> Vec<Value> {
        t.updates
            .iter()
            .filter(|(k, _)| k == id)
            .map(|(_, b)| b.clone())
            .collect()
    };
    let one = updates(&change_of(&one));
    assert_eq!(one.len(), 3, "{one:?}");
    assert_eq!(
        (one[0]["state"].as_str(), one[1]["state"].as_str()),
        (Some("-1"), Some("-1"))
    );
    assert_eq!(
        (one[2]["state"].as_str(), one[2]["close_code"].as_str()),
        (Some("3"), Some("successful"))
    );
    let two = updates(&change_of(&two));
    assert_eq!(two.len(), 2, "{two:?}");
    assert_eq!(two[0]["state"], "-1", "halted: noted, still open");
    assert_eq!(two[1]["close_code"], "unsuccessful");
    assert!(
        two[1]["close_notes"]
            .as_str()
            .unwrap()
            .starts_with("Rolled back."),
        "{two:?}"
    );
}

#[tokio::test]
async fn jira_and_servicenow_follow_a_deployment_with_the_kept_id_sqlite() {
    lifecycle("sqlite").await;
}

#[tokio::test]
async fn jira_and_servicenow_follow_a_deployment_with_the_kept_id_postgres() {
    lifecycle("postgres").await;
}
