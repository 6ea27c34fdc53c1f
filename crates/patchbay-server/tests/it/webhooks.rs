//! Webhook delivery against a real HTTP receiver on loopback (issue 15).
//!
//! The receiver ([`Receiver`], axum on 127.0.0.1) checks each request the way
//! a careful integrator would — HMAC-SHA256 over `"{t}.{body}"` recomputed
//! with the `hmac` crate (not Patchbay's code), the timestamp within five
//! minutes of *its* clock (the test's injected clock), and deduplication by
//! `Patchbay-Delivery` — and can fail the first N attempts of a path or
//! hang. Retries are driven step by step with the app's manual clock, so
//! the backoff is observed in the stored `next_at` without sleeping.

use crate::support::InProcess;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use hmac::{KeyInit, Mac};
use jiff::SignedDuration;
use patchbay_app::ManualClock;
use patchbay_app::webhooks::{Sender, WebhookConfig};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver saw.
#[derive(Default)]
pub struct Seen {
    /// Accepted deliveries: id → times accepted (must stay 1).
    pub accepted: HashMap<String, u32>,
    /// Accepted ids per path, in order, with when they arrived.
    pub by_path: HashMap<String, Vec<(String, Instant)>>,
    /// Requests refused for a bad or stale signature.
    pub rejected: u32,
    /// Duplicates answered 200 but not accepted again.
    pub duplicates: u32,
    /// Requests answered with a planned failure.
    pub failed: u32,
    /// Requests answered 429 (rate limited).
    pub limited: u32,
    /// Raw requests kept for replay checks: (headers, body).
    pub last: Option<(HeaderMap, Bytes)>,
}

struct RxState {
    secrets: Mutex<HashMap<String, String>>,
    fail_first: Mutex<HashMap<String, u32>>,
    hang: Mutex<HashMap<String, Duration>>,
    /// Path → (requests left to answer 429, their `Retry-After` value).
    limit: Mutex<HashMap<String, (u32, String)>>,
    now: Arc<dyn Fn() -> i64 + Send + Sync>,
    seen: Mutex<Seen>,
}

/// A webhook receiver on loopback.
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    st: Arc<RxState>,
}

fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> Result<(), String> {
    let mut t = None;
    let mut v1 = None;
    for p in header.split(',') {
        match p.split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1 = hex::decode(x).ok(),
            _ => {}
        }
    }
    let (t, v1) = (t.ok_or("no t")?, v1.ok_or("no v1")?);
    if (now - t).abs() > 300 {
        return Err(format!("stale: t={t} now={now}"));
    }
    let mut m = hmac::Hmac::<sha2_next::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(format!("{t}.").as_bytes());
    m.update(body);
    m.verify_slice(&v1).map_err(|_| "mismatch".to_string())
}

async fn receive(
    State(st): State<Arc<RxState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    {
        let mut limit = st.limit.lock().unwrap();
        if let Some((n, after)) = limit.get_mut(&path)
            && *n > 0
        {
            *n -= 1;
            st.seen.lock().unwrap().limited += 1;
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", after.clone())],
            )
                .into_response();
        }
    }
    check(st, path, headers, body).await.into_response()
}

async fn check(st: Arc<RxState>, path: String, headers: HeaderMap, body: Bytes) -> StatusCode {
    let hang = st.hang.lock().unwrap().get(&path).copied();
    if let Some(d) = hang {
        tokio::time::sleep(d).await;
    }
    let secret = st.secrets.lock().unwrap().get(&path).cloned();
    let sig = headers
        .get("patchbay-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let id = headers
        .get("patchbay-delivery")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut seen = st.seen.lock().unwrap();
    seen.last = Some((headers.clone(), body.clone()));
    let Some(secret) = secret else {
        seen.rejected += 1;
        return StatusCode::NOT_FOUND;
    };
    if verify(&secret, sig, &body, (st.now)()).is_err() || id.is_empty() {
        seen.rejected += 1;
        return StatusCode::UNAUTHORIZED;
    }
    {
        let mut ff = st.fail_first.lock().unwrap();
        if let Some(n) = ff.get_mut(&path)
            && *n > 0
        {
            *n -= 1;
            seen.failed += 1;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    if seen.accepted.contains_key(&id) {
        seen.duplicates += 1;
        *seen.accepted.get_mut(&id).unwrap() += 1;
        return StatusCode::OK;
    }
    seen.accepted.insert(id.clone(), 1);
    seen.by_path
        .entry(path)
        .or_default()
        .push((id, Instant::now()));
    StatusCode::OK
}

impl Receiver {
    /// Starts a receiver whose clock is `now` (Unix seconds).
    pub async fn start(now: Arc<dyn Fn() -> i64 + Send + Sync>) -> Receiver {
        let st = Arc::new(RxState {
            secrets: Mutex::default(),
            fail_first: Mutex::default(),
            hang: Mutex::default(),
            limit: Mutex::default(),
            now,
            seen: Mutex::default(),
        });
        let app = axum::Router::new()
            .route("/hook/{path}", axum::routing::post(receive))
            .with_state(st.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        Receiver { addr, st }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/hook/{path}", self.addr)
    }
    pub fn secret(&self, path: &str, secret: &str) {
        self.st
            .secrets
            .lock()
            .unwrap()
            .insert(path.into(), secret.into());
    }
    pub fn fail_first(&self, path: &str, n: u32) {
        self.st.fail_first.lock().unwrap().insert(path.into(), n);
    }
    /// Answers the next `n` requests of `path` with 429 and `Retry-After: after`.
    pub fn rate_limit(&self, path: &str, n: u32, after: &str) {
        self.st
            .limit
            .lock()
            .unwrap()
            .insert(path.into(), (n, after.into()));
    }
    pub fn hang(&self, path: &str, d: Duration) {
        self.st.hang.lock().unwrap().insert(path.into(), d);
    }
    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.st.seen.lock().unwrap())
    }
}

fn clock_secs(c: &Arc<ManualClock>) -> Arc<dyn Fn() -> i64 + Send + Sync> {
    let c = c.clone();
    Arc::new(move || patchbay_app::Clock::now(c.as_ref()).as_second())
}

/// Adds a subscription through the API; returns its secret.
async fn add(s: &InProcess, rx: &Receiver, name: &str, extra: Value) -> String {
    let mut body = json!({"name": name, "url": rx.url(name), "events": ["webhook.test"]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let out = s.ok_json("POST", "/api/v1/webhooks", &s.admin, body).await;
    let secret = out["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{out}");
    rx.secret(name, &secret);
    secret
}

async fn deliveries(s: &InProcess, name: &str) -> Vec<Value> {
    let v = s
        .ok_json(
            "GET",
            &format!("/api/v1/webhooks/{name}/deliveries"),
            &s.admin,
            json!(null),
        )
        .await;
    v["items"].as_array().unwrap().clone()
}

async fn id_of(s: &InProcess, name: &str) -> i64 {
    let subs = s.app.webhook_ids().await.unwrap();
    let list = s
        .ok_json("GET", "/api/v1/webhooks", &s.admin, json!(null))
        .await;
    let i = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .position(|w| w["name"] == name)
        .unwrap();
    subs[i]
}

fn config() -> patchbay_app::AppConfig {
    patchbay_app::AppConfig {
        webhooks: WebhookConfig {
            backoff_base: SignedDuration::from_secs(10),
            backoff_max: SignedDuration::from_secs(3600),
            max_attempts: 10,
            timeout: Duration::from_secs(5),
            ..WebhookConfig::default()
        },
        ..Default::default()
    }
}

/// Retries back off exponentially (observed in the stored `next_at`, with
/// time injected), a delivery is accepted exactly once, attempts run out
/// into the dead-letter list, and a replay delivers a dead letter once.
async fn retries_dead_letters_and_replay(backend: &str) {
    let s = InProcess::on_with(backend, config()).await;
    let rx = Receiver::start(clock_secs(&s.clock)).await;
    let sender = Sender::new(Duration::from_secs(5));
    add(&s, &rx, "flaky", json!({})).await;
    add(&s, &rx, "down", json!({"max_attempts": 3})).await;
    let (flaky, down) = (id_of(&s, "flaky").await, id_of(&s, "down").await);
    rx.fail_first("flaky", 2);
    rx.fail_first("down", 1000);
    for name in ["flaky", "down"] {
        s.ok_json(
            "POST",
            &format!("/api/v1/webhooks/{name}/test"),
            &s.admin,
            json!(null),
        )
        .await;
    }
    assert_eq!(s.app.webhooks_fan_out().await.unwrap(), 2, "one each");
    // A second fan-out finds nothing new: the cursor moved with the rows.
    assert_eq!(s.app.webhooks_fan_out().await.unwrap(), 0);

    let mut delays = Vec::new();
    for attempt in 1..=2 {
        let r = s.app.webhooks_deliver(flaky, &sender).await.unwrap();
        assert_eq!((r.sent, r.retried), (0, 1), "attempt {attempt}");
        let d = &deliveries(&s, "flaky").await[0];
        assert_eq!(d["state"], "pending");
        assert_eq!(d["attempts"], attempt);
        assert_eq!(d["last_status"], 503);
        let next: jiff::Timestamp = d["next_at"].as_str().unwrap().parse().unwrap();
        let now = patchbay_app::Clock::now(s.clock.as_ref());
        let wait = next.duration_since(now);
        // Equal jitter: within [d/2, d] of 10 s · 2^(n−1).
        let full = SignedDuration::from_secs(10 * (1 << (attempt - 1)));
        assert!(
            wait >= full / 2 && wait <= full,
            "attempt {attempt}: waits {wait:?}, expected within [{:?}, {full:?}]",
            full / 2
        );
        delays.push(wait);
        // Not due yet: nothing is sent before the backoff ran out.
        let r = s.app.webhooks_deliver(flaky, &sender).await.unwrap();
        assert_eq!(r.sent + r.failed, 0, "sent before its time");
        s.clock.advance(wait);
    }
    let r = s.app.webhooks_deliver(flaky, &sender).await.unwrap();
    assert_eq!(r.sent, 1);
    let d = &deliveries(&s, "flaky").await[0];
    assert_eq!(
        (d["state"].as_str(), d["attempts"].as_u64()),
        (Some("delivered"), Some(3))
    );
    let id = d["delivery_id"].as_str().unwrap().to_string();
    // Delivered: never sent again.
    s.clock.advance(SignedDuration::from_secs(7200));
    let r = s.app.webhooks_deliver(flaky, &sender).await.unwrap();
    assert_eq!(r.sent + r.failed, 0);
    rx.seen(|x| {
        assert_eq!(
            x.accepted.get(&id),
            Some(&1),
            "accepted once: {:?}",
            x.accepted
        );
        assert_eq!(x.failed, 2, "the planned failures of flaky so far");
        assert_eq!(x.rejected, 0, "every signature verified");
    });

    // down: three attempts, then the dead-letter list.
    for _ in 0..3 {
        s.app.webhooks_deliver(down, &sender).await.unwrap();
        s.clock.advance(SignedDuration::from_secs(3600));
    }
    let d = &deliveries(&s, "down").await[0];
    assert_eq!(
        (d["state"].as_str(), d["attempts"].as_u64()),
        (Some("dead"), Some(3))
    );
    let dead_id = d["delivery_id"].as_str().unwrap().to_string();
    let r = s.app.webhooks_deliver(down, &sender).await.unwrap();
    assert_eq!(r.sent + r.failed, 0, "a dead letter is not retried");
    let show = s
        .ok_json("GET", "/api/v1/webhooks/down", &s.admin, json!(null))
        .await;
    assert_eq!(show["dead"], 1, "{show}");
    assert!(
        show.get("secret").is_none(),
        "the secret is shown once only"
    );
    // The receiver is fixed; the dead letter is replayed and delivered once,
    // under its original delivery id.
    rx.fail_first("down", 0);
    let rep = s
        .ok_json(
            "POST",
            "/api/v1/webhooks/down/replay",
            &s.admin,
            json!(null),
        )
        .await;
    assert_eq!(rep["replayed"], 1);
    let r = s.app.webhooks_deliver(down, &sender).await.unwrap();
    assert_eq!(r.sent, 1);
    let r = s.app.webhooks_deliver(down, &sender).await.unwrap();
    assert_eq!(r.sent + r.failed, 0);
    let again = s
        .ok_json(
            "POST",
            "/api/v1/webhooks/down/replay",
            &s.admin,
            json!(null),
        )
        .await;
    assert_eq!(again["replayed"], 0, "nothing dead any more");
    rx.seen(|x| {
        assert_eq!(x.accepted.get(&dead_id), Some(&1));
        assert_eq!(x.accepted.len(), 2);
        assert_eq!(x.duplicates, 0);
    });
    // The receiver's replay protection: the last request, sent again past
    // the five-minute window, is refused.
    let (headers, body) = rx.seen(|x| x.last.clone()).unwrap();
    s.clock.advance(SignedDuration::from_secs(301));
    let url = rx.url("down");
    // Off the runtime's thread: the receiver runs on it.
    let status = tokio::task::spawn_blocking(move || {
        let mut req = ureq::post(url);
        for (k, v) in headers.iter() {
            if k.as_str().starts_with("patchbay-") || k == "content-type" {
                req = req.header(k.as_str(), v.to_str().unwrap());
            }
        }
        match req.send(&body[..]) {
            Ok(r) => r.status().as_u16(),
            Err(ureq::Error::StatusCode(c)) => c,
            Err(e) => panic!("{e}"),
        }
    })
    .await
    .unwrap();
    assert_eq!(status, 401);
    // Every step of the change path was audited; delivery bookkeeping was not.
    let audit = s
        .ok_json("GET", "/api/v1/audit?limit=100", &s.admin, json!(null))
        .await
        .to_string();
    for a in ["webhook.add", "webhook.test", "webhook.replay"] {
        assert!(audit.contains(a), "{a} not audited");
    }
}

#[tokio::test]
async fn retries_back_off_dead_letter_and_replay_delivers_once_sqlite() {
    retries_dead_letters_and_replay("sqlite").await;
}

#[tokio::test]
async fn retries_back_off_dead_letter_and_replay_delivers_once_postgres() {
    retries_dead_letters_and_replay("postgres").await;
}

/// A receiver that hangs for 60 s does not delay another subscription's
/// deliveries: each of the other's events is accepted within a second of
/// its change committing, while the hanging one is still held. On SQLite
/// and PostgreSQL.
async fn a_hanging_receiver_does_not_delay_another(backend: &str) {
    let mut cfg = config();
    cfg.webhooks.timeout = Duration::from_secs(90);
    cfg.webhooks.poll = Duration::from_millis(100);
    let s = InProcess::on_with(backend, cfg).await;
    let rx = Receiver::start(clock_secs(&s.clock)).await;
    add(&s, &rx, "stuck", json!({})).await;
    add(&s, &rx, "quick", json!({"events": ["webhook.test"]})).await;
    rx.hang("stuck", Duration::from_secs(60));
    let leading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let metrics = patchbay_server::metrics::Metrics::new();
    let task = tokio::spawn(patchbay_server::delivery::run(
        s.app.clone(),
        metrics.clone(),
        leading,
        stopped,
    ));
    // The stuck receiver gets its event first and hangs on it.
    s.ok_json("POST", "/api/v1/webhooks/stuck/test", &s.admin, json!(null))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut worst = Duration::ZERO;
    for i in 0..5 {
        let t0 = Instant::now();
        s.ok_json("POST", "/api/v1/webhooks/quick/test", &s.admin, json!(null))
            .await;
        let deadline = t0 + Duration::from_secs(5);
        loop {
            let n = rx.seen(|x| x.by_path.get("quick").map_or(0, Vec::len));
            if n > i {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "quick delivery {i} not received in 5 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        worst = worst.max(t0.elapsed());
    }
    eprintln!("worst commit → accepted latency beside a hanging receiver: {worst:?}");
    assert!(worst < Duration::from_secs(1), "delayed by {worst:?}");
    rx.seen(|x| assert!(!x.by_path.contains_key("stuck"), "stuck answered early"));
    let stuck = deliveries(&s, "stuck").await;
    assert_eq!(stuck[0]["state"], "pending", "still in flight");
    // The counter moves when an outcome is stored, just after the receiver
    // has answered: wait for it (bounded) rather than race it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut m = metrics.encode();
    while !m.contains("patchbay_webhook_deliveries_sent_total 5") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        m = metrics.encode();
    }
    assert!(
        m.contains("patchbay_webhook_deliveries_sent_total 5"),
        "{m}"
    );
    let _ = stop.send(());
    let _ = task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_delay_another_sqlite() {
    a_hanging_receiver_does_not_delay_another("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_delay_another_postgres() {
    a_hanging_receiver_does_not_delay_another("postgres").await;
}

/// A `slack` subscription is paced to one message per second (time
/// injected: the manual clock), a generic one is not; a 429 with
/// `Retry-After` holds the subscription and its retry until then, for
/// seconds and HTTP-date forms alike.
async fn slack_pacing_and_retry_after(backend: &str) {
    let s = InProcess::on_with(backend, config()).await;
    let rx = Receiver::start(clock_secs(&s.clock)).await;
    let sender = Sender::new(Duration::from_secs(5));
    add(&s, &rx, "chat", json!({"template": "slack"})).await;
    add(&s, &rx, "plain", json!({})).await;
    let (chat, plain) = (id_of(&s, "chat").await, id_of(&s, "plain").await);
    for _ in 0..3 {
        for name in ["chat", "plain"] {
            s.ok_json(
                "POST",
                &format!("/api/v1/webhooks/{name}/test"),
                &s.admin,
                json!(null),
            )
            .await;
        }
    }
    assert_eq!(s.app.webhooks_fan_out().await.unwrap(), 6);
    let accepted = |p: &str| rx.seen(|x| x.by_path.get(p).map_or(0, Vec::len));
    // Generic: all three in one round.
    let r = s.app.webhooks_deliver(plain, &sender).await.unwrap();
    assert_eq!(r.sent, 3);
    // Slack: one, then held for a second of the (manual) clock.
    let r = s.app.webhooks_deliver(chat, &sender).await.unwrap();
    assert_eq!((r.sent, r.held_until), (1, None));
    let t1 = patchbay_app::Clock::now(s.clock.as_ref());
    let r = s.app.webhooks_deliver(chat, &sender).await.unwrap();
    assert_eq!(r.sent + r.failed, 0, "a second message within the second");
    assert_eq!(r.held_until, Some(t1 + SignedDuration::from_secs(1)));
    s.clock.advance(SignedDuration::from_millis(999));
    let r = s.app.webhooks_deliver(chat, &sender).await.unwrap();
    assert_eq!(r.sent + r.failed, 0, "sent 999 ms after the last");
    assert_eq!(accepted("chat"), 1);
    s.clock.advance(SignedDuration::from_millis(1));
    assert_eq!(s.app.webhooks_deliver(chat, &sender).await.unwrap().sent, 1);
    s.clock.advance(SignedDuration::from_secs(1));
    assert_eq!(s.app.webhooks_deliver(chat, &sender).await.unwrap().sent, 1);
    assert_eq!(accepted("chat"), 3);

    // 429, Retry-After in seconds (longer than the 10 s backoff).
    rx.rate_limit("plain", 1, "120");
    s.ok_json("POST", "/api/v1/webhooks/plain/test", &s.admin, json!(null))
        .await;
    s.app.webhooks_fan_out().await.unwrap();
    let t0 = patchbay_app::Clock::now(s.clock.as_ref());
    let r = s.app.webhooks_deliver(plain, &sender).await.unwrap();
    assert_eq!((r.failed, r.retried), (1, 1));
    let d = &deliveries(&s, "plain").await[0];
    assert_eq!(d["last_status"], 429);
    let next: jiff::Timestamp = d["next_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(next.duration_since(t0), SignedDuration::from_secs(120));
    // Another event meanwhile is held too: the limit is the receiver's.
    s.ok_json("POST", "/api/v1/webhooks/plain/test", &s.admin, json!(null))
        .await;
    s.app.webhooks_fan_out().await.unwrap();
    s.clock.advance(SignedDuration::from_secs(119));
    let r = s.app.webhooks_deliver(plain, &sender).await.unwrap();
    assert_eq!(r.sent + r.failed, 0, "sent before Retry-After ran out");
    assert_eq!(r.held_until, Some(t0 + SignedDuration::from_secs(120)));
    s.clock.advance(SignedDuration::from_secs(1));
    let r = s.app.webhooks_deliver(plain, &sender).await.unwrap();
    assert_eq!(r.sent, 2, "the limited one and the one held behind it");

    // 429, Retry-After as an HTTP-date 300 s ahead, on the Slack template.
    let now = patchbay_app::Clock::now(s.clock.as_ref());
    let date = jiff::fmt::rfc2822::to_string(
        &(now + SignedDuration::from_secs(300)).to_zoned(jiff::tz::TimeZone::UTC),
    )
    .unwrap()
    .replace("+0000", "GMT");
    rx.rate_limit("chat", 1, &date);
    s.ok_json("POST", "/api/v1/webhooks/chat/test", &s.admin, json!(null))
        .await;
    s.app.webhooks_fan_out().await.unwrap();
    let r = s.app.webhooks_deliver(chat, &sender).await.unwrap();
    assert_eq!(r.failed, 1);
    s.clock.advance(SignedDuration::from_secs(299));
    let r = s.app.webhooks_deliver(chat, &sender).await.unwrap();
    assert_eq!(r.sent + r.failed, 0, "sent before the Retry-After date");
    s.clock.advance(SignedDuration::from_secs(1));
    assert_eq!(s.app.webhooks_deliver(chat, &sender).await.unwrap().sent, 1);
    rx.seen(|x| {
        assert_eq!(x.limited, 2);
        assert_eq!(x.rejected, 0);
        assert!(x.accepted.values().all(|n| *n == 1), "{:?}", x.accepted);
    });
    assert_eq!(accepted("chat"), 4);
    assert_eq!(accepted("plain"), 5);
}

#[tokio::test]
async fn slack_is_paced_and_retry_after_is_honoured_sqlite() {
    slack_pacing_and_retry_after("sqlite").await;
}

#[tokio::test]
async fn slack_is_paced_and_retry_after_is_honoured_postgres() {
    slack_pacing_and_retry_after("postgres").await;
}

/// The server's delivery loop keeps a Slack subscription's pace: with the
/// (manual) clock standing still, one message goes and the rest wait; each
/// second the clock moves lets exactly one more through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_loop_sends_a_slack_subscription_one_message_per_second() {
    let mut cfg = config();
    cfg.webhooks.poll = Duration::from_millis(100);
    let s = InProcess::with_config(cfg).await;
    let rx = Receiver::start(clock_secs(&s.clock)).await;
    add(&s, &rx, "chat", json!({"template": "slack"})).await;
    let leading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let metrics = patchbay_server::metrics::Metrics::new();
    let task = tokio::spawn(patchbay_server::delivery::run(
        s.app.clone(),
        metrics,
        leading,
        stopped,
    ));
    for _ in 0..3 {
        s.ok_json("POST", "/api/v1/webhooks/chat/test", &s.admin, json!(null))
            .await;
    }
    let accepted = || rx.seen(|x| x.by_path.get("chat").map_or(0, Vec::len));
    let wait_for = |n: usize| async move {
        let deadline = Instant::now() + Duration::from_secs(5);
        while accepted() < n {
            assert!(Instant::now() < deadline, "message {n} not received in 5 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    wait_for(1).await;
    for n in 2..=3 {
        // The clock stands still: the loop, woken by its poll, sends nothing.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(accepted(), n - 1, "sent within the same second");
        s.clock.advance(SignedDuration::from_secs(1));
        wait_for(n).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(accepted(), 3);
    let _ = stop.send(());
    let _ = task.await;
}
