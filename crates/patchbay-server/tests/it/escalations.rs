//! Escalation chains driven by the duties runner on the injected clock
//! (issue 15): a real rollout reaches a ring that needs approval
//! (`approval.requested`), each chain escalates step by step at the times
//! its waits say (observed in the stored history and in the audited
//! events), an acknowledgement stops one chain, the approval resolves
//! another, and a step addressed to a webhook subscription reaches that
//! subscription whatever its event filter. On SQLite and PostgreSQL.

use crate::deploy::{checkin, fleet, result, token};
use crate::support::{Host, InProcess};
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use patchbay_app::duties::Runner;
use serde_json::{Value, json};

/// A one-ring deployment whose ring needs a human approval, driven (by the
/// duties runner) until the ring waits for it; returns the deployment id,
/// the host, and the instant the ring started waiting.
pub(crate) async fn reach_approval(
    s: &InProcess,
    runner: &mut Runner,
    ops: &str,
) -> (String, Host, Timestamp) {
    let hosts = fleet(s, 1).await;
    let spec = json!({"packages": [{"name": "pb-demo", "version": "1.1"}],
        "rings": [{"name": "only", "approval": true}]});
    let d = s.ok_json("POST", "/api/v1/deployments", ops, spec).await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        ops,
        json!({}),
    )
    .await;
    for _ in 0..30 {
        runner.tick().await;
        let d = s
            .ok_json(
                "GET",
                &format!("/api/v1/deployments/{id}"),
                &s.admin,
                json!(null),
            )
            .await;
        if d["rollout"]["rings"][0]["state"] == "awaiting_approval" {
            return (id, hosts[0].clone(), s.app.now());
        }
        let (jobs, _) = checkin(s, &hosts[0], json!([])).await;
        let results: Vec<Value> = jobs
            .iter()
            .map(|j| result(&j.job.key, &hosts[0].name, true))
            .collect();
        if !results.is_empty() {
            checkin(s, &hosts[0], json!(results)).await;
        }
        s.clock.advance(SignedDuration::from_mins(5));
    }
    panic!("the ring never waited for approval");
}

/// The stored outbox events of `kind` (the audit action), in order.
pub(crate) async fn events(s: &InProcess, kind: &str) -> Vec<Value> {
    let mut r = s.app.store().read().await.unwrap();
    r.events_after(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.kind == kind)
        .map(|e| {
            let mut p = e.event.payload.clone();
            p["_at"] = json!(e.event.at.to_string());
            p["_subject"] = json!(e.event.subject);
            p["_actor"] = json!(e.event.actor);
            p["_id"] = json!(format!("evt_{}", e.id));
            p
        })
        .collect()
}

async fn chain(s: &InProcess, name: &str) -> Value {
    s.ok_json(
        "GET",
        &format!("/api/v1/escalations/{name}"),
        &s.admin,
        json!(null),
    )
    .await
}

fn fired(c: &Value) -> Vec<(String, String)> {
    c["escalations"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| {
            (
                st["to"].as_str().unwrap().to_string(),
                st["at"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn chain_escalates_step_by_step_and_stops(backend: &str) {
    let s = InProcess::on(backend).await;
    let ops = token(&s, "operator").await;
    let approver = token(&s, "approver").await;
    let mut runner = Runner::new(s.app.clone(), "test-replica");
    for (name, events) in [("alice", json!(["approval.requested"])), ("bob", json!([]))] {
        s.ok_json(
            "POST",
            "/api/v1/contacts",
            &ops,
            json!({"name": name, "email": format!("{name}@example.net"), "events": events}),
        )
        .await;
    }
    // A subscription that does not list escalation events: the step
    // addressed to it reaches it anyway.
    s.ok_json(
        "POST",
        "/api/v1/webhooks",
        &ops,
        json!({"name": "noc", "url": "http://127.0.0.1:9/hook", "events": ["deployment.completed"]}),
    )
    .await;
    // A step naming nobody is refused, naming the step.
    let (st, body) = s
        .call(
            "POST",
            "/api/v1/escalations",
            Some(&ops),
            Some(
                &json!({"name": "x", "trigger": "approval", "steps": ["email:carol"]}).to_string(),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("steps[0]") && body.contains("carol"),
        "{body}"
    );
    for (name, steps) in [
        (
            "cab",
            json!(["email:alice", "email:bob:10m", "webhook:noc:30m"]),
        ),
        ("pager", json!(["webhook:noc:5m"])),
        ("slow", json!(["email:bob:2h"])),
    ] {
        s.ok_json(
            "POST",
            "/api/v1/escalations",
            &ops,
            json!({"name": name, "trigger": "approval", "steps": steps}),
        )
        .await;
    }

    let (id, _host, t0) = reach_approval(&s, &mut runner, &ops).await;
    // The step that made the ring wait raised approval.requested.
    let req = events(&s, "approval.requested").await;
    assert_eq!(req.len(), 1, "{req:?}");
    assert_eq!(req[0]["ring"], "only");
    assert_eq!(req[0]["_subject"], format!("deployment:{id}"));

    // The next tick opens one escalation per chain and fires cab's first
    // step (wait 0) at once.
    runner.tick().await;
    let cab = chain(&s, "cab").await;
    assert_eq!(cab["escalations"].as_array().unwrap().len(), 1, "{cab}");
    let esc = cab["escalations"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(cab["escalations"][0]["state"], "open");
    assert_eq!(fired(&cab), vec![("alice".into(), t0.to_string())]);
    assert_eq!(
        cab["escalations"][0]["next_at"],
        (t0 + SignedDuration::from_mins(10)).to_string()
    );
    // One second before bob's step: nothing more.
    s.clock
        .set(t0 + SignedDuration::from_mins(10) - SignedDuration::from_secs(1));
    runner.tick().await;
    assert_eq!(fired(&chain(&s, "cab").await).len(), 1);
    // At the minute: bob.
    s.clock.set(t0 + SignedDuration::from_mins(10));
    runner.tick().await;
    let t10 = (t0 + SignedDuration::from_mins(10)).to_string();
    assert_eq!(
        fired(&chain(&s, "cab").await),
        vec![
            ("alice".into(), t0.to_string()),
            ("bob".into(), t10.clone())
        ]
    );
    // pager's only step came due at 5 minutes: fired at the first tick
    // after (9:59), once; then it is exhausted.
    let pager = chain(&s, "pager").await;
    assert_eq!(pager["escalations"][0]["state"], "exhausted");
    assert_eq!(
        fired(&pager),
        vec![(
            "noc".into(),
            (t0 + SignedDuration::from_mins(10) - SignedDuration::from_secs(1)).to_string()
        )]
    );
    assert_eq!(
        pager["escalations"][0]["steps"][0]["due_at"],
        (t0 + SignedDuration::from_mins(5)).to_string()
    );

    // An operator acknowledges cab's escalation: it stops.
    let (st, body) = s
        .call(
            "POST",
            "/api/v1/escalations/cab/ack",
            Some(&approver),
            Some(&json!({"id": esc}).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    let ack = s
        .ok_json(
            "POST",
            "/api/v1/escalations/cab/ack",
            &ops,
            json!({"id": esc, "comment": "looking at the canary now"}),
        )
        .await;
    assert_eq!(ack["state"], "acknowledged");
    assert!(
        ack["closed_by"].as_str().unwrap().contains("operator"),
        "{ack}"
    );
    // Twice is a conflict naming the state.
    let (st, body) = s
        .call(
            "POST",
            "/api/v1/escalations/cab/ack",
            Some(&ops),
            Some(&json!({"id": esc}).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("acknowledged"), "{body}");
    // Long after the third step's time: nothing more fires for cab.
    s.clock.set(t0 + SignedDuration::from_mins(90));
    runner.tick().await;
    let cab = chain(&s, "cab").await;
    assert_eq!(fired(&cab).len(), 2, "{cab}");
    assert_eq!(cab["escalations"][0]["state"], "acknowledged");
    assert_eq!(cab["chain"]["open"], 0);

    // slow is still open; approving the ring resolves it before its step.
    assert_eq!(chain(&s, "slow").await["escalations"][0]["state"], "open");
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/approvals"),
        &approver,
        json!({"approve": true, "comment": "canary is fine"}),
    )
    .await;
    runner.tick().await;
    s.clock.set(t0 + SignedDuration::from_hours(3));
    runner.tick().await;
    let slow = chain(&s, "slow").await;
    assert_eq!(slow["escalations"][0]["state"], "resolved", "{slow}");
    // By the approval itself (the deployment then completing would resolve
    // it too, but the approval came first).
    let by = slow["escalations"][0]["closed_by"].as_str().unwrap();
    assert!(
        by.contains("deployment.approve") && by.contains("approver"),
        "{by}"
    );
    assert!(fired(&slow).is_empty(), "{slow}");

    // Every step is audited and is an event naming channel and recipient,
    // with its due time; the acknowledgement is one too.
    let notes = events(&s, "escalation.notify").await;
    let seen: Vec<(String, String, String)> = notes
        .iter()
        .map(|n| {
            (
                n["chain"].as_str().unwrap().to_string(),
                n["channel"].as_str().unwrap().to_string(),
                n["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("cab".into(), "email".into(), "alice".into()),
            ("pager".into(), "webhook".into(), "noc".into()),
            ("cab".into(), "email".into(), "bob".into()),
        ]
    );
    assert!(notes.iter().all(|n| n["_actor"] == "system:escalations"));
    let acks = events(&s, "escalation.ack").await;
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0]["comment"], "looking at the canary now");
    let audit = s
        .ok_json("GET", "/api/v1/audit?limit=1000", &s.admin, json!(null))
        .await;
    let audited = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "escalation.notify")
        .count();
    assert_eq!(audited, 3, "every step is an audit entry");

    // Delivered through the outbox: alice gets the approval request and
    // her step, bob his step; noc (filter: deployment.completed) the one
    // step addressed to it.
    assert!(s.app.emails_fan_out().await.unwrap() >= 3);
    let log = s
        .ok_json(
            "GET",
            "/api/v1/contacts/deliveries?limit=100",
            &ops,
            json!(null),
        )
        .await;
    let per = |who: &str| {
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["contact"] == who)
            .count()
    };
    assert_eq!((per("alice"), per("bob")), (2, 1), "{log}");
    s.app.webhooks_fan_out().await.unwrap();
    let d = s
        .ok_json("GET", "/api/v1/webhooks/noc/deliveries", &ops, json!(null))
        .await;
    let mut got: Vec<String> = d["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    // The pager step, and the deployment.completed its filter asks for
    // (the approval let the deployment finish): not cab's email steps.
    let completed = events(&s, "deployment.completed").await;
    assert_eq!(completed.len(), 1);
    let mut want = vec![
        notes[1]["_id"].as_str().unwrap().to_string(),
        completed[0]["_id"].as_str().unwrap().to_string(),
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(notes[1]["escalation"], pager["escalations"][0]["id"]);
}

#[tokio::test]
async fn a_chain_escalates_step_by_step_and_stops_when_acknowledged_sqlite() {
    chain_escalates_step_by_step_and_stops("sqlite").await;
}

#[tokio::test]
async fn a_chain_escalates_step_by_step_and_stops_when_acknowledged_postgres() {
    chain_escalates_step_by_step_and_stops("postgres").await;
}

/// Findings past their SLA: the SLA watch (a duty) raises `sla.breached`
/// once per finding, and a chain `--on sla` escalates each until
/// acknowledged.
async fn sla_breaches_escalate(backend: &str) {
    let s = InProcess::on(backend).await;
    let ops = token(&s, "operator").await;
    let mut runner = Runner::new(s.app.clone(), "test-replica");
    crate::support::fleet(&s, 2, 0x5a00).await;
    crate::support::import_pb_demo_advisory(&s).await;
    s.ok_json(
        "POST",
        "/api/v1/contacts",
        &ops,
        json!({"name": "oncall", "email": "oncall@example.net"}),
    )
    .await;
    s.ok_json(
        "POST",
        "/api/v1/escalations",
        &ops,
        json!({"name": "sla", "trigger": "sla", "steps": ["email:oncall", "email:oncall:4h"]}),
    )
    .await;
    let wl = s
        .ok_json("GET", "/api/v1/worklist", &s.admin, json!(null))
        .await;
    let items = wl["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{wl}");
    let due: Timestamp = items[0]["due"].as_str().unwrap().parse().unwrap();
    // Well before the due date: nothing.
    runner.tick().await;
    assert!(events(&s, "sla.breached").await.is_empty());
    assert!(events(&s, "sla.at_risk").await.is_empty());
    // Within a day of it: at risk (an `sla` chain starts on at-risk and
    // breached findings alike).
    s.clock.set(due - SignedDuration::from_hours(2));
    runner.tick().await;
    assert_eq!(events(&s, "sla.at_risk").await.len(), 2);
    // Past it: breached, once per finding however often the watch runs.
    s.clock.set(due + SignedDuration::from_secs(1));
    runner.tick().await;
    s.clock.set(due + SignedDuration::from_mins(10));
    runner.tick().await;
    let b = events(&s, "sla.breached").await;
    assert_eq!(b.len(), 2, "{b:?}");
    assert!(
        b.iter()
            .all(|e| e["tier"].is_string() && e["asset"].is_string())
    );
    assert_eq!(events(&s, "sla.at_risk").await.len(), 2);
    let c = chain(&s, "sla").await;
    // Four escalations (two findings × at risk, breached), each with its
    // first step fired.
    let list = c["escalations"].as_array().unwrap();
    assert_eq!(list.len(), 4, "{c}");
    assert!(
        list.iter()
            .all(|e| e["steps"].as_array().unwrap().len() == 1)
    );
    // Acknowledge one; four hours on, only the other three send step two.
    let id = list[0]["id"].as_str().unwrap();
    s.ok_json(
        "POST",
        "/api/v1/escalations/sla/ack",
        &ops,
        json!({"id": id, "comment": "patching tonight"}),
    )
    .await;
    s.clock.set(due + SignedDuration::from_hours(5));
    runner.tick().await;
    let c = chain(&s, "sla").await;
    let steps: Vec<(String, usize)> = c["escalations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["state"].as_str().unwrap().to_string(),
                e["steps"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        steps
            .iter()
            .filter(|(st, n)| st == "exhausted" && *n == 2)
            .count(),
        3,
        "{steps:?}"
    );
    assert_eq!(
        steps
            .iter()
            .filter(|(st, n)| st == "acknowledged" && *n == 1)
            .count(),
        1,
        "{steps:?}"
    );
}

#[tokio::test]
async fn sla_breaches_escalate_until_acknowledged_sqlite() {
    sla_breaches_escalate("sqlite").await;
}

#[tokio::test]
async fn sla_breaches_escalate_until_acknowledged_postgres() {
    sla_breaches_escalate("postgres").await;
}
