//! The discovery-scan duty (issue 19): a configured nmap scan, run by the
//! duties runner on a manual clock, against a real TCP listener on
//! loopback; imported as `nmap:NAME` by `system:discovery-scan`; not run
//! again before it is due; a scan that cannot run is audited, not fatal.

use crate::support::InProcess;
use axum::http::StatusCode;
use jiff::SignedDuration;
use patchbay_app::AppConfig;
use patchbay_app::discovery::ScanConfig;
use patchbay_app::duties::{Duty, Runner};
use serde_json::Value;

async fn get(s: &InProcess, path: &str) -> Value {
    let (st, text) = s.call("GET", path, Some(&s.admin), None).await;
    assert_eq!(st, StatusCode::OK, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn actions(s: &InProcess, action: &str) -> Vec<Value> {
    get(s, "/api/v1/audit?limit=1000").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
}

async fn tick(s: &InProcess, runner: &mut Runner) -> usize {
    let r = runner.tick().await;
    assert!(r.leader);
    let (_, res) = r
        .ran
        .iter()
        .find(|(d, _)| *d == Duty::DiscoveryScan)
        .expect("the discovery-scan duty runs every tick")
        .clone();
    s.app.wait_discovery_scans().await;
    res.unwrap()
}

async fn scan_duty(backend: &str) {
    // A real service on loopback, and a port nobody listens on.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            if let Ok((s, _)) = listener.accept().await {
                drop(s);
            }
        }
    });
    let scan = |name: &str, nmap: &str| ScanConfig {
        name: name.into(),
        ranges: vec!["127.0.0.1/32".into()],
        ports: Some(format!("{port},9")),
        every: SignedDuration::from_hours(24),
        external: false,
        nmap: nmap.into(),
        timeout: std::time::Duration::from_secs(120),
    };
    let config = AppConfig {
        discovery_scans: vec![
            scan("loopback", "nmap"),
            scan("broken", "/nonexistent/nmap"),
        ],
        ..Default::default()
    };
    let s = InProcess::on_with(backend, config).await;
    let mut runner = Runner::new(s.app.clone(), "test-replica");
    assert_eq!(tick(&s, &mut runner).await, 1, "the scans started");
    let v = get(&s, "/api/v1/discovery").await;
    let shadows = v["shadows"].as_array().unwrap();
    assert_eq!(shadows.len(), 1, "{v}");
    assert_eq!(shadows[0]["key"], "ip:127.0.0.1");
    assert_eq!(shadows[0]["sources"], serde_json::json!(["nmap:loopback"]));
    let ports: Vec<u64> = shadows[0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, vec![u64::from(port)], "only the open port");
    let imports = actions(&s, "discovery.import").await;
    assert_eq!(imports.len(), 1);
    assert_eq!(imports[0]["actor"], "system:discovery-scan");
    let failed = actions(&s, "discovery.scan_failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0]["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/nmap"),
        "{failed:?}"
    );
    // Not due again for a day: an hour on, nothing is scanned.
    s.clock.advance(SignedDuration::from_hours(1));
    tick(&s, &mut runner).await;
    assert_eq!(actions(&s, "discovery.import").await.len(), 1);
    // A day on, it is.
    s.clock.advance(SignedDuration::from_hours(24));
    tick(&s, &mut runner).await;
    assert_eq!(actions(&s, "discovery.import").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_scan_runs_as_a_duty_sqlite() {
    scan_duty("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_scan_runs_as_a_duty_postgres() {
    // Never skipped: without PATCHBAY_TEST_PG_URL (scripts/with-postgres) it fails.
    scan_duty("postgres").await;
}
