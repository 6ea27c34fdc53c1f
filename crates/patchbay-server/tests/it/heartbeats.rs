//! Write-free steady-state check-ins, in-process on both engines: an unchanged
//! check-in is answered while another transaction holds SQLite's only writer,
//! its time is stored only by the batched flush (the API shows it at once),
//! and a check-in with something to write (a job result, a changed
//! inventory) still goes through the write path. An unchanged check-in
//! through the router costs exactly one read transaction (the credential
//! lookup, which reads the check-in state in the same query), where the path
//! before (authenticate, then read the state) cost two.

use crate::support::{InProcess, fleet};
use jiff::SignedDuration;
use patchbay_proto::agent::{CheckinRequest, InventoryPayload};
use serde_json::json;
use std::time::Duration;

fn unchanged(hash: &str) -> serde_json::Value {
    serde_json::to_value(CheckinRequest {
        protocol: 1,
        inventory_hash: hash.to_string(),
        inventory: InventoryPayload::Unchanged,
        results: vec![],
        wait_secs: None,
        key_refusals: Vec::new(),
    })
    .unwrap()
}

/// The stored `last_seen_at` of `asset` and its agent's `last_checkin_at`.
async fn stored(s: &InProcess, asset: &str, secret: &str) -> (jiff::Timestamp, jiff::Timestamp) {
    let mut tx = s.app.store().read().await.unwrap();
    let a = tx.asset_by_name(asset).await.unwrap().unwrap();
    let g = tx
        .agent_by_secret_hash(&patchbay_core::token::hash(secret))
        .await
        .unwrap()
        .unwrap();
    (a.last_seen_at.unwrap(), g.last_checkin_at.unwrap())
}

async fn unchanged_checkins_are_batched(backend: &str) {
    let s = InProcess::on(backend).await;
    let hosts = fleet(&s, 2, 0x4b00).await;
    let t_enrol = s.app.now();
    let h = &hosts[0];
    let asset = s
        .ok_json("GET", "/api/v1/assets/h1", &s.admin, json!(null))
        .await;
    let hash = asset["inventory_hash"].as_str().unwrap().to_string();

    s.clock.advance(SignedDuration::from_mins(10));
    let t_beat = s.app.now();
    {
        // SQLite has one writer: a check-in that needed it would wait here.
        let _writer = s.app.store().write().await.unwrap();
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            s.ok_json("POST", "/agent/v1/checkin", &h.secret, unchanged(&hash)),
        )
        .await
        .expect("an unchanged check-in does not wait for the writer");
        assert_eq!(r["package_rows_written"], 0);
    }
    // Not stored yet: the database still holds the enrolment's check-in …
    assert_eq!(stored(&s, "h1", &h.secret).await, (t_enrol, t_enrol));
    assert_eq!(s.app.heartbeats().len(), 1);
    // … but every reader sees the new time.
    let a = s
        .ok_json("GET", "/api/v1/assets/h1", &s.admin, json!(null))
        .await;
    assert_eq!(a["last_seen"], patchbay_app::fmt_ts(t_beat));
    assert_eq!(a["liveness"], "managed");
    // A wrong hash is still refused on the read path, and records nothing.
    let (status, body) = s
        .call(
            "POST",
            "/agent/v1/checkin",
            Some(&hosts[1].secret),
            Some(&unchanged("sha256:0000").to_string()),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("inventory_base_mismatch"), "{body}");
    assert_eq!(s.app.heartbeats().len(), 1);

    // The flush stores it (asset and agent) and empties the map.
    assert_eq!(s.app.flush_heartbeats().await.unwrap(), 1);
    assert_eq!(stored(&s, "h1", &h.secret).await, (t_beat, t_beat));
    assert!(s.app.heartbeats().is_empty());
    assert_eq!(s.app.flush_heartbeats().await.unwrap(), 0);

    // Stale detection reads the same: 25 h later without a check-in, stale.
    s.clock.advance(SignedDuration::from_hours(25));
    let a = s
        .ok_json("GET", "/api/v1/assets/h1", &s.admin, json!(null))
        .await;
    assert_eq!(a["liveness"], "stale");
    s.ok_json("POST", "/agent/v1/checkin", &h.secret, unchanged(&hash))
        .await;
    let a = s
        .ok_json("GET", "/api/v1/assets/h1", &s.admin, json!(null))
        .await;
    assert_eq!(a["liveness"], "managed", "a pending check-in makes it live");

    // A changed inventory is written at once, with its time.
    s.clock.advance(SignedDuration::from_mins(1));
    let t_full = s.app.now();
    let inv = crate::support::pb_demo_inventory("h2", &hosts[1].mid, "1.1");
    s.ok_json(
        "POST",
        "/agent/v1/checkin",
        &hosts[1].secret,
        crate::support::full_checkin(inv, json!([])),
    )
    .await;
    assert_eq!(stored(&s, "h2", &hosts[1].secret).await, (t_full, t_full));
}

#[tokio::test]
async fn unchanged_checkins_are_batched_sqlite() {
    unchanged_checkins_are_batched("sqlite").await
}

#[tokio::test]
async fn unchanged_checkins_are_batched_postgres() {
    unchanged_checkins_are_batched("postgres").await
}

/// An unchanged check-in through the router is one read statement outside
/// any transaction (`Store::agent_for_checkin`, counted by a wrapper of the
/// same database: no read transaction) and is answered and recorded; a wrong
/// hash is refused from that same read. The path before (authentication
/// without the state, then the check-in's own read) costs two, measured on
/// the same wrapper.
async fn an_unchanged_checkin_is_one_read(backend: &str) {
    use patchbay_store::testing::CountingStore;
    let mut s = InProcess::on(backend).await;
    let hosts = fleet(&s, 2, 0x4c00).await;
    let asset = s
        .ok_json("GET", "/api/v1/assets/h1", &s.admin, json!(null))
        .await;
    let hash = asset["inventory_hash"].as_str().unwrap().to_string();
    let counting = std::sync::Arc::new(CountingStore::new(s.app.store().clone()));
    let app = s.app.clone().with_store(counting.clone());
    s.router = patchbay_server::router(app.clone(), patchbay_server::metrics::Metrics::new());
    s.clock.advance(SignedDuration::from_mins(1));
    let t_beat = s.app.now();

    counting.take_reads();
    counting.take_statements();
    let r = s
        .ok_json(
            "POST",
            "/agent/v1/checkin",
            &hosts[0].secret,
            unchanged(&hash),
        )
        .await;
    assert_eq!(
        (counting.take_reads(), counting.take_statements()),
        (0, 1),
        "(read transactions, statements outside one) of an unchanged check-in"
    );
    assert_eq!(r["stored_hash"], hash.as_str());
    assert!(r.get("jobs").is_none_or(|j| j == &json!([])), "{r}");
    assert_eq!(s.app.heartbeats().len(), 1, "recorded in memory");
    let a = s
        .ok_json("GET", "/api/v1/assets/h1", &s.admin, json!(null))
        .await;
    assert_eq!(a["last_seen"], patchbay_app::fmt_ts(t_beat));

    // A wrong hash: refused from the same one read.
    counting.take_reads();
    let (status, body) = s
        .call(
            "POST",
            "/agent/v1/checkin",
            Some(&hosts[1].secret),
            Some(&unchanged("sha256:0000").to_string()),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        (counting.take_reads(), counting.take_statements()),
        (0, 1),
        "(read transactions, statements outside one) of a mismatch"
    );

    // The path before: authentication without the state, then the
    // check-in's own read.
    let ctx = patchbay_app::RequestCtx::default();
    let bearer = format!("Bearer {}", hosts[0].secret);
    counting.take_reads();
    let agent = app.authenticate_agent(Some(&bearer), &ctx).await.unwrap();
    assert_eq!(agent.checkin_held, None);
    let req: CheckinRequest = serde_json::from_value(unchanged(&hash)).unwrap();
    app.checkin(&agent, req).await.unwrap();
    assert_eq!(
        (counting.take_reads(), counting.take_statements()),
        (2, 0),
        "the path before: two reads"
    );
}

#[tokio::test]
async fn an_unchanged_checkin_is_one_read_sqlite() {
    an_unchanged_checkin_is_one_read("sqlite").await
}

#[tokio::test]
async fn an_unchanged_checkin_is_one_read_postgres() {
    an_unchanged_checkin_is_one_read("postgres").await
}
