//! Webhook delivery throughput: outbox → signed POST → a local receiver.
//!
//! `PB_EVENTS` (default 5,000) `webhook.test` events are committed to the
//! outbox through the API (SQLite, the embedded default) while the delivery
//! loop is stopped; then the loop (`patchbay_server::delivery::run`, the code
//! `patchbay serve` runs) starts, and the time until the receiver — an axum
//! server on 127.0.0.1 that counts `Patchbay-Delivery` ids — has every one is
//! measured: fan-out, rendering, signing, the HTTP round trips and storing
//! each outcome. The same-run ceiling: the same number of plain POSTs of a
//! body of the same size, with the same client (`Sender`: ureq on the
//! blocking pool) and the same concurrency, to the same receiver, nothing
//! stored. Run: `cargo bench -p patchbay-server --bench webhooks`.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use patchbay_app::webhooks::WebhookConfig;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower::ServiceExt;

async fn call(router: &axum::Router, method: &str, path: &str, bearer: &str, body: Value) -> Value {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    assert!(status.is_success(), "{method} {path}: {status}");
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

#[derive(Default)]
struct Counts {
    ids: Mutex<HashSet<String>>,
    plain: AtomicUsize,
}

async fn receive(
    axum::extract::State(c): axum::extract::State<Arc<Counts>>,
    headers: HeaderMap,
    _body: axum::body::Bytes,
) -> StatusCode {
    match headers
        .get("patchbay-delivery")
        .and_then(|v| v.to_str().ok())
    {
        Some(id) => {
            c.ids.lock().unwrap().insert(id.to_string());
        }
        None => {
            c.plain.fetch_add(1, Ordering::Relaxed);
        }
    }
    StatusCode::OK
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("PB_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let counts = Arc::new(Counts::default());
    let rx = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(counts.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, rx).await.unwrap() });
    let url = format!("http://{addr}/hook");

    let dir = tempfile::tempdir().unwrap();
    let cfg = WebhookConfig::default();
    let settings = patchbay_server::Settings {
        db_url: None,
        data_dir: dir.path().join("data"),
        app: patchbay_app::AppConfig {
            webhooks: cfg.clone(),
            ..Default::default()
        },
    };
    let prepared = patchbay_server::prepare(&settings).await.unwrap();
    let admin = std::fs::read_to_string(&prepared.admin_token_path)
        .unwrap()
        .trim()
        .to_string();
    let router = patchbay_server::router(prepared.app.clone(), prepared.metrics.clone());
    call(
        &router,
        "POST",
        "/api/v1/webhooks",
        &admin,
        json!({"name": "bench", "url": url, "events": ["webhook.test"]}),
    )
    .await;
    let t = Instant::now();
    for _ in 0..n {
        call(
            &router,
            "POST",
            "/api/v1/webhooks/bench/test",
            &admin,
            json!({}),
        )
        .await;
    }
    let produce = t.elapsed();
    println!(
        "produced {n} events into the outbox in {:.2} s ({:.0} events/s, each an audited API call)",
        produce.as_secs_f64(),
        n as f64 / produce.as_secs_f64()
    );

    // Delivery, end to end: the fan-out (timed on its own, as the loop's
    // first step would run it), then the loop.
    let t = Instant::now();
    while prepared.app.webhooks_fan_out().await.unwrap() > 0 {}
    let fanned = t.elapsed();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(patchbay_server::delivery::run(
        prepared.app.clone(),
        prepared.metrics.clone(),
        Arc::new(AtomicBool::new(true)),
        stopped,
    ));
    prepared.app.outbox_bell().notify_one();
    let deadline = Instant::now() + Duration::from_secs(600);
    while counts.ids.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "deliveries did not finish");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let delivered = t.elapsed();
    // Every outcome stored: the queue is empty.
    loop {
        let (depth, _, _) = prepared.app.webhook_queue().await.unwrap();
        if depth == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let stored = t.elapsed();
    let _ = stop.send(());
    let _ = task.await;

    // Ceiling: the same number of plain POSTs, same client and concurrency.
    let body = vec![b'x'; 600];
    let sender = patchbay_app::webhooks::Sender::new(cfg.timeout);
    let sem = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency));
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (sender, url, body, sem) = (
            sender.clone(),
            format!("http://{addr}/hook"),
            body.clone(),
            sem.clone(),
        );
        set.spawn(async move {
            let _p = sem.acquire_owned().await;
            tokio::task::spawn_blocking(move || sender.post_plain(&url, body))
                .await
                .unwrap()
        });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap(), Ok(200));
    }
    let ceiling = t.elapsed();
    assert_eq!(counts.plain.load(Ordering::Relaxed), n);

    println!(
        "  of which fan-out (outbox → {n} delivery rows, batches of {}): {:.2} s",
        cfg.batch,
        fanned.as_secs_f64()
    );
    let rate = n as f64 / stored.as_secs_f64();
    let ceil = n as f64 / ceiling.as_secs_f64();
    println!(
        "outbox → receiver: {n} deliveries accepted in {:.2} s, all outcomes stored in {:.2} s: {rate:.0} events/s",
        delivered.as_secs_f64(),
        stored.as_secs_f64()
    );
    println!(
        "ceiling (plain POSTs, same client, concurrency {}): {:.2} s: {ceil:.0} requests/s",
        cfg.concurrency,
        ceiling.as_secs_f64()
    );
    println!(
        "ratio: {:.2} of the ceiling (goal: ≥ 2,000 events/s)",
        rate / ceil
    );
}
