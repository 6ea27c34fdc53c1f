//! Issue 15: a PagerDuty SLA incident is resolved when its breach ends.
//!
//! Two hosts with an open finding each pass their SLA due date; the SLA
//! watch (the duties runner, on the injected clock) raises `sla.breached`
//! for both, and a PagerDuty subscription (filtered by the findings' tier)
//! triggers one incident per finding. Then the breach ends through the real
//! change paths: h1 checks in with the fixed package (the assessment that
//! resolves its finding writes `sla.resolved` in the check-in's
//! transaction), and an exception is granted for h2's finding (written in
//! the exception's transaction). The receiver, on loopback, gets a resolve
//! under each trigger's `dedup_key`, an `--on sla` escalation chain's
//! escalations about the two breaches are resolved; nothing is raised twice.

use crate::escalations::events;
use crate::support::{InProcess, full_checkin, pb_demo_inventory};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use patchbay_app::duties::Runner;
use patchbay_app::webhooks::Sender;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Bodies = Arc<Mutex<Vec<Value>>>;

async fn enqueue(State(b): State<Bodies>, Json(v): Json<Value>) -> (StatusCode, Json<Value>) {
    b.lock().unwrap().push(v);
    // What PagerDuty's Events API v2 answers.
    (
        StatusCode::ACCEPTED,
        Json(json!({"status": "success", "message": "Event processed"})),
    )
}

async fn pagerduty() -> (String, Bodies) {
    let b: Bodies = Arc::default();
    let app = axum::Router::new()
        .route("/v2/enqueue", axum::routing::post(enqueue))
        .with_state(b.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/v2/enqueue"), b)
}

async fn deliver(s: &InProcess) {
    while s.app.webhooks_fan_out().await.unwrap() > 0 {}
    let sender = Sender::new(Duration::from_secs(5));
    for id in s.app.webhook_ids().await.unwrap() {
        while s.app.webhooks_deliver(id, &sender).await.unwrap().sent > 0 {}
    }
}

async fn sla_incidents_resolve(backend: &str) {
    let s = InProcess::on(backend).await;
    let mut runner = Runner::new(s.app.clone(), "test-replica");
    let hosts = crate::support::fleet(&s, 2, 0x51a0).await;
    crate::support::import_pb_demo_advisory(&s).await;
    let wl = s
        .ok_json("GET", "/api/v1/worklist", &s.admin, json!(null))
        .await;
    let items = wl["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{wl}");
    let due: Timestamp = items[0]["due"].as_str().unwrap().parse().unwrap();
    let tier = items[0]["tier"].as_str().unwrap().to_string();
    let (url, bodies) = pagerduty().await;
    // Filtered by tier: the resolve must carry the breach's tier to pass.
    s.ok_json(
        "POST",
        "/api/v1/webhooks",
        &s.admin,
        json!({"name": "pager", "url": url, "template": "pagerduty",
               "routing_key": "R0UTINGKEY0123456789abcdef012345", "events": ["sla.breached", "sla.resolved"],
               "tier": tier}),
    )
    .await;

    // An SLA escalation chain pages about each breach until it ends.
    s.ok_json(
        "POST",
        "/api/v1/contacts",
        &s.admin,
        json!({"name": "oncall", "email": "oncall@example.net"}),
    )
    .await;
    s.ok_json(
        "POST",
        "/api/v1/escalations",
        &s.admin,
        json!({"name": "sla", "trigger": "sla", "steps": ["email:oncall", "email:oncall:4h"]}),
    )
    .await;

    // Past the due date: one breach per finding, one incident each.
    s.clock.set(due + SignedDuration::from_secs(1));
    runner.tick().await;
    let breached = events(&s, "sla.breached").await;
    assert_eq!(breached.len(), 2, "{breached:?}");
    deliver(&s).await;
    let triggers: Vec<String> = bodies
        .lock()
        .unwrap()
        .iter()
        .filter(|b| b["event_action"] == "trigger")
        .map(|b| b["dedup_key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(triggers.len(), 2, "{:?}", bodies.lock().unwrap());
    assert!(events(&s, "sla.resolved").await.is_empty());

    // h1 is fixed: its check-in's assessment resolves the finding and, in
    // the same transaction, ends the breach.
    let h1 = &hosts[0];
    s.ok_json(
        "POST",
        "/agent/v1/checkin",
        &h1.secret,
        full_checkin(pb_demo_inventory(&h1.name, &h1.mid, "1.1"), json!([])),
    )
    .await;
    let resolved = events(&s, "sla.resolved").await;
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    let fixed = &resolved[0];
    assert!(
        fixed["_subject"]
            .as_str()
            .unwrap()
            .starts_with(&format!("finding:F-{}-", h1.name)),
        "{fixed}"
    );
    assert_eq!(fixed["reason"], "fixed");
    assert_eq!(fixed["tier"], tier.as_str());
    // The check-in's own audit entry follows in the same transaction: the
    // next event is its inventory update.
    let upd = events(&s, "inventory.update").await;
    let last_upd = upd.last().unwrap();
    let id = |v: &Value| v["_id"].as_str().unwrap()[4..].parse::<i64>().unwrap();
    assert_eq!(id(last_upd), id(fixed) + 1, "{last_upd} / {fixed}");
    assert_eq!(last_upd["_actor"], fixed["_actor"]);

    // h2's finding gets an exception: its breach ends with it.
    let h2 = &hosts[1];
    s.ok_json(
        "POST",
        "/api/v1/exceptions",
        &s.admin,
        json!({"advisory": "DSA-9999-1", "asset": h2.name, "owner": "web-team",
               "reason": "vendor fix pending", "compensating_control": "WAF rule 42",
               "expires": "30d"}),
    )
    .await;
    let resolved = events(&s, "sla.resolved").await;
    assert_eq!(resolved.len(), 2, "{resolved:?}");
    let excepted = &resolved[1];
    assert_eq!(excepted["reason"], "exception");
    assert!(excepted["exception"].as_str().unwrap().starts_with("EXC-"));
    let added = events(&s, "exception.add").await;
    assert_eq!(id(excepted), id(added.last().unwrap()) + 1);

    // Each incident is resolved under its trigger's dedup_key.
    deliver(&s).await;
    let mut resolves: Vec<String> = bodies
        .lock()
        .unwrap()
        .iter()
        .filter(|b| b["event_action"] == "resolve")
        .map(|b| b["dedup_key"].as_str().unwrap().to_string())
        .collect();
    let mut want = triggers.clone();
    want.sort();
    resolves.sort();
    assert_eq!(resolves, want);

    // The chain's escalations about both breaches are resolved by it.
    runner.tick().await;
    let c = s
        .ok_json("GET", "/api/v1/escalations/sla", &s.admin, json!(null))
        .await;
    let states: Vec<&str> = c["escalations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["resolved", "resolved"], "{c}");

    // Nothing more: once per finding, however often the watch runs or the
    // host checks in again.
    s.clock.advance(SignedDuration::from_mins(10));
    runner.tick().await;
    s.ok_json(
        "POST",
        "/agent/v1/checkin",
        &h1.secret,
        full_checkin(pb_demo_inventory(&h1.name, &h1.mid, "1.2"), json!([])),
    )
    .await;
    assert_eq!(events(&s, "sla.resolved").await.len(), 2);
    assert_eq!(events(&s, "sla.breached").await.len(), 2);
}

#[tokio::test]
async fn a_breach_ending_resolves_its_pagerduty_incident_sqlite() {
    sla_incidents_resolve("sqlite").await;
}

#[tokio::test]
async fn a_breach_ending_resolves_its_pagerduty_incident_postgres() {
    sla_incidents_resolve("postgres").await;
}
