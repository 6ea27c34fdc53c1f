//! Key rotation on the server's side (ADR 0007), on both engines: audited
//! writes racing a rotation are neither refused nor signed by the wrong key
//! (the chain verifies from the old key alone), a replica still holding the
//! retired key refuses changes naming the rotation, and a rotation interrupted
//! between its commit and the key file swap is finished at the next start,
//! while a `.next` key of a rotation that never committed is discarded.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use patchbay_app::ManualClock;
use patchbay_server::Settings;
use patchbay_server::setup::{prepare_with_clock, signing_key_path};
use std::sync::Arc;
use tower::ServiceExt;

async fn call(
    router: &axum::Router,
    admin: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("Authorization", format!("Bearer {admin}"))
        .header("Content-Type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn rotation_races_and_recovery(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        db_url: Some(patchbay_store::testing::fresh_url(backend).await),
        data_dir: dir.path().join("data"),
        app: Default::default(),
    };
    let clock = Arc::new(ManualClock::new("2026-12-08T22:00:00Z".parse().unwrap()));
    let p = prepare_with_clock(&settings, clock.clone()).await.unwrap();
    let admin = std::fs::read_to_string(&p.admin_token_path)
        .unwrap()
        .trim()
        .to_string();
    let router = patchbay_server::router(p.app.clone(), p.metrics.clone());
    let key_file = signing_key_path(&settings.data_dir);
    let old_seed = std::fs::read_to_string(&key_file).unwrap();
    let old = p.app.signer().unwrap().verifying_key();

    // 16 audited writes racing one rotation: all succeed.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (r, a) = (router.clone(), admin.clone());
        tasks.push(tokio::spawn(async move {
            let body = format!(r#"{{"name": "race-{i}", "role": "auditor", "ttl_secs": 3600}}"#);
            call(&r, &a, "POST", "/api/v1/tokens", &body).await
        }));
        if i == 8 {
            let (r, a) = (router.clone(), admin.clone());
            tasks.push(tokio::spawn(async move {
                call(&r, &a, "POST", "/api/v1/keys/rotate", "{}").await
            }));
        }
    }
    for t in tasks {
        let (status, text) = t.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{text}");
    }
    let new = p.app.signer().unwrap().public_hex();
    assert_ne!(hex::encode(old.as_bytes()), new);
    let v = patchbay_app::evidence::verify_audit(p.app.store().as_ref(), vec![old], 1, 0, |_| {})
        .await
        .unwrap()
        .expect("the chain verifies from the old key");
    assert_eq!(v.rotations.len(), 1);

    // Another replica on the same database still holding the old key refuses
    // changes, and says why.
    let replica_settings = Settings {
        data_dir: dir.path().join("replica"),
        ..settings.clone()
    };
    std::fs::create_dir_all(&replica_settings.data_dir).unwrap();
    std::fs::write(signing_key_path(&replica_settings.data_dir), &old_seed).unwrap();
    let replica = prepare_with_clock(&replica_settings, clock.clone())
        .await
        .unwrap();
    let replica_router = patchbay_server::router(replica.app.clone(), replica.metrics.clone());
    let (status, text) = call(
        &replica_router,
        &admin,
        "POST",
        "/api/v1/tokens",
        r#"{"name": "stale", "role": "auditor", "ttl_secs": 60}"#,
    )
    .await;
    assert!(!status.is_success(), "{status} {text}");
    assert!(
        text.contains("was retired by the key rotation in audit entry"),
        "{text}"
    );
    replica.app.store().close().await;
    drop((replica_router, replica));

    // Interrupted after the commit, before the key file swap: the old key is
    // back in the file and the new one waits in `.next`.
    let next = key_file.with_file_name("server-signing.key.next");
    std::fs::rename(&key_file, &next).unwrap();
    std::fs::write(&key_file, &old_seed).unwrap();
    p.app.store().close().await;
    drop((router, p));
    let p = prepare_with_clock(&settings, clock.clone()).await.unwrap();
    assert_eq!(
        p.app.signer().unwrap().public_hex(),
        new,
        "the committed rotation is finished"
    );
    assert!(!next.exists());
    let router = patchbay_server::router(p.app.clone(), p.metrics.clone());
    let (status, text) = call(
        &router,
        &admin,
        "POST",
        "/api/v1/tokens",
        r#"{"name": "after", "role": "auditor", "ttl_secs": 60}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");

    // A `.next` of a rotation that never committed is discarded.
    std::fs::write(&next, format!("{}\n", hex::encode([5u8; 32]))).unwrap();
    p.app.store().close().await;
    drop((router, p));
    let p = prepare_with_clock(&settings, clock).await.unwrap();
    assert_eq!(p.app.signer().unwrap().public_hex(), new);
    assert!(!next.exists());
    assert_eq!(
        p.app.key_announcements().len(),
        1,
        "announcements loaded at start"
    );
    p.app.store().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rotation_races_and_recovery() {
    rotation_races_and_recovery("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rotation_races_and_recovery() {
    rotation_races_and_recovery("postgres").await;
}
