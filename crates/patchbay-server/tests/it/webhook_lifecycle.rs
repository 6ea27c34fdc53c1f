//! Jira and ServiceNow lifecycle (issue 15) against a loopback receiver that
//! answers like their REST APIs: the create call's answer carries the id
//! (Jira's `key` from `POST /rest/api/2/issue`, ServiceNow's
//! `result.sys_id` from `POST /api/sn_chg_rest/change/normal`); Patchbay
//! keeps it per (subscription, deployment) and comments on (Jira) or
//! updates and closes (ServiceNow) that record as the deployment goes on.
//! The deployment events are written to the outbox directly (as the
//! rollout engine does, in a store transaction), so the test needs no fleet.

use crate::support::InProcess;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::SignedDuration;
use patchbay_app::webhooks::{Sender, WebhookConfig};
use patchbay_store::NewEvent;
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
}

type St = Arc<Mutex<Tickets>>;

async fn jira_create(State(st): State<St>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let mut t = st.lock().unwrap();
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
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut t = st.lock().unwrap();
    if !t.issues.iter().any(|(k, _)| *k == key) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"errorMessages": ["Issue does not exist"]})),
        );
    }
    t.comments.push((key, body));
    (StatusCode::CREATED, Json(json!({"id": "1"})))
}

async fn sn_create(State(st): State<St>, Json(body): Json<Value>) -> Json<Value> {
    let mut t = st.lock().unwrap();
    let sys_id = format!("{:032x}", t.changes.len() + 0xabc);
    t.changes.push((sys_id.clone(), body));
    Json(
        json!({"result": {"sys_id": {"value": sys_id, "display_value": sys_id}, "number": {"value": "CHG0030001"}}}),
    )
}

async fn sn_update(
    State(st): State<St>,
    Path(sys_id): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut t = st.lock().unwrap();
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

async fn event(s: &InProcess, kind: &str, dep: &str, message: &str) {
    let mut tx = s.app.store().write().await.unwrap();
    tx.enqueue_event(&NewEvent {
        at: patchbay_app::Clock::now(s.clock.as_ref()),
        kind: kind.into(),
        version: 2,
        actor: "system:duties".into(),
        subject: format!("deployment:{dep}"),
        payload: json!({"message": message}),
        audit_seq: 0,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
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
    let (base, st) = receiver().await;
    st.lock().unwrap().fail_jira_creates = 1;
    for (name, template, path) in [("jira", "jira", "/jira/"), ("snow", "servicenow", "/sn")] {
        s.ok_json(
            "POST",
            "/api/v1/webhooks",
            &s.admin,
            json!({"name": name, "url": format!("{base}{path}"), "template": template,
                   "project": "OPS", "events": ["*"]}),
        )
        .await;
    }
    event(&s, "deployment.created", "DEP-1", "DEP-1 created").await;
    event(&s, "deployment.created", "DEP-2", "DEP-2 created").await;
    event(&s, "deployment.ring_passed", "DEP-1", "ring canary passed").await;
    event(&s, "deployment.started", "DEP-1", "started").await;
    event(&s, "deployment.completed", "DEP-1", "DEP-1 completed").await;
    event(&s, "deployment.rollback", "DEP-2", "DEP-2 rolled back").await;
    while s.app.webhooks_fan_out().await.unwrap() > 0 {}
    let sender = Sender::new(Duration::from_secs(5));
    let ids = s.app.webhook_ids().await.unwrap();
    for _ in 0..40 {
        for id in &ids {
            while s.app.webhooks_deliver(*id, &sender).await.unwrap().sent > 0 {}
        }
        s.clock.advance(SignedDuration::from_secs(600));
    }
    // Every delivery ended delivered or skipped: nothing pending or dead.
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
    let t = st.lock().unwrap();
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
        comments(&issue_of("DEP-1")),
        ["deployment.completed", "deployment.ring_passed"]
    );
    assert_eq!(comments(&issue_of("DEP-2")), ["deployment.rolled_back"]);
    assert_eq!(t.comments.len(), 3, "started is not commented");
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
    let one = updates(&change_of("DEP-1"));
    assert_eq!(one.len(), 2, "{one:?}");
    assert_eq!(one[0]["state"], "-1");
    assert_eq!(
        (one[1]["state"].as_str(), one[1]["close_code"].as_str()),
        (Some("3"), Some("successful"))
    );
    let two = updates(&change_of("DEP-2"));
    assert_eq!(two.len(), 1);
    assert_eq!(two[0]["close_code"], "unsuccessful");
    assert!(
        two[0]["close_notes"]
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
    if std::env::var("PATCHBAY_TEST_PG_URL").is_err() {
        eprintln!("PATCHBAY_TEST_PG_URL unset: run under scripts/with-postgres");
        return;
    }
    lifecycle("postgres").await;
}
