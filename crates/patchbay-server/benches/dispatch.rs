//! Dispatch of a deployment to 10,000 simulated agents, in process.
//!
//! The server's half of a rollout at fleet scale: 10,000 enrolled agents with
//! `pb-demo` 1.0 (SQLite, the embedded default), a deployment of 1.1 in three
//! rings (10 canary hosts, 10 %, the rest; everything in parallel — the error
//! budget at 100 % so the hard cap, failures + in flight ≤ budget + 1, does not
//! serialise the fan-out being measured — soak 0).
//! Agents long-poll: in each "round" the agents the server would wake (a job
//! was leased for them) and those with results to report make one check-in
//! through the router (the real HTTP handlers, authentication and JSON,
//! without sockets), reporting last round's results and receiving new jobs;
//! the rollout driver (the duty) steps once per round.
//!
//! Measured: the time from `start` until every job has been dispatched,
//! reported, acknowledged and the deployment is `completed`, against the
//! ceiling of the same number of check-ins answered with no job (the same
//! fan-out of empty answers). Run:
//! `cargo bench -p patchbay-server --bench dispatch` (set `PB_AGENTS` for
//! another fleet size).

use axum::body::Body;
use axum::http::Request;
use patchbay_proto::agent::{CheckinRequest, InventoryPayload, JobOutcome, JobResult};
use serde_json::{Value, json};
use std::time::Instant;
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
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap();
    assert!(
        status.is_success(),
        "{method} {path}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

struct Agent {
    name: String,
    secret: String,
    hash: String,
    results: Vec<JobResult>,
}

fn checkin_body(a: &Agent) -> Value {
    serde_json::to_value(CheckinRequest {
        protocol: 1,
        inventory_hash: a.hash.clone(),
        inventory: InventoryPayload::Unchanged,
        results: a.results.clone(),
        wait_secs: None,
        key_refusals: Vec::new(),
    })
    .unwrap()
}

fn main() {
    let n: usize = std::env::var("PB_AGENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let settings = patchbay_server::Settings {
            db_url: None,
            data_dir: dir.path().join("data"),
            app: Default::default(),
        };
        let prepared = patchbay_server::prepare(&settings).await.unwrap();
        let admin = std::fs::read_to_string(&prepared.admin_token_path).unwrap();
        let admin = admin.trim().to_string();
        let app = prepared.app.clone();
        let router = patchbay_server::router(prepared.app.clone(), prepared.metrics.clone());
        let t = Instant::now();
        let et = call(&router, "POST", "/api/v1/enroll-tokens", &admin, json!({"uses": n, "ttl_secs": 86400})).await;
        let mut agents = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("host-{i:05}");
            let mid = format!("{:032x}", 0x5eed_0000_u64 + i as u64);
            let e = call(&router, "POST", "/agent/v1/enroll", "-",
                json!({"protocol": 1, "enroll_token": et["token"], "hostname": name, "machine_id": mid})).await;
            let inv = patchbay_core::inventory::Inventory {
                facts: patchbay_core::inventory::HostFacts {
                    hostname: name,
                    machine_id: mid,
                    os: patchbay_core::inventory::OsRelease { id: "debian".into(), version_id: "12".into(), ..Default::default() },
                    kernel: "6.1.0".into(),
                    arch: "amd64".into(),
                    ..Default::default()
                },
                format: Some(patchbay_core::inventory::PackageFormat::Deb),
                packages: vec![patchbay_core::inventory::Package {
                    name: "pb-demo".into(), version: "1.0".into(), arch: "all".into(), source: None, source_version: None,
                }],
                pending_updates: vec![],
            };
            let hash = inv.content_hash();
            let asset = inv.facts.hostname.clone();
            let secret = e["agent_secret"].as_str().unwrap().to_string();
            call(&router, "POST", "/agent/v1/checkin", &secret, serde_json::to_value(CheckinRequest {
                protocol: 1, inventory_hash: hash.clone(), inventory: InventoryPayload::Full { inventory: inv },
                results: vec![], wait_secs: None, key_refusals: Vec::new(),
            }).unwrap()).await;
            agents.push(Agent { name: asset, secret, hash, results: vec![] });
        }
        println!("setup: {n} agents enrolled with a full inventory in {:.1} s", t.elapsed().as_secs_f64());

        // Ceiling: one round of check-ins answered with no job.
        let t = Instant::now();
        for a in &agents {
            call(&router, "POST", "/agent/v1/checkin", &a.secret, checkin_body(a)).await;
        }
        let ceiling = t.elapsed().as_secs_f64();
        println!("ceiling: {n} empty check-in answers in {ceiling:.2} s ({:.0}/s)", n as f64 / ceiling);

        let spec = json!({"packages": [{"name": "pb-demo", "version": "1.1"}],
            "rings": [
                {"name": "ring0-canary", "size": "10", "max_concurrent": "100%", "error_budget": "100%"},
                {"name": "ring1-pilot", "size": "10%", "max_concurrent": "100%", "error_budget": "100%"},
                {"name": "ring2-broad", "max_concurrent": "100%", "error_budget": "100%"}
            ]});
        let d = call(&router, "POST", "/api/v1/deployments", &admin, spec).await;
        let id = d["deployment"]["id"].as_str().unwrap().to_string();
        let t = Instant::now();
        call(&router, "POST", &format!("/api/v1/deployments/{id}/start"), &admin, json!({})).await;
        let (mut rounds, mut checkins, mut dispatched, mut acked) = (0, 0usize, 0usize, 0usize);
        let mut drive = std::time::Duration::ZERO;
        loop {
            rounds += 1;
            // Long-polling agents: only those the server would wake (a job
            // was leased for them) or that have results to report check in;
            // the rest sit in their long poll, costing nothing.
            let woken: std::collections::BTreeSet<String> = {
                let mut tx = app.store().read().await.unwrap();
                tx.jobs_of(&id)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|j| j.delivered_at.is_none())
                    .map(|j| j.asset)
                    .collect()
            };
            for a in agents
                .iter_mut()
                .filter(|a| !a.results.is_empty() || woken.contains(&a.name))
            {
                let r = call(&router, "POST", "/agent/v1/checkin", &a.secret, checkin_body(a)).await;
                checkins += 1;
                acked += r["acked"].as_array().map_or(0, |v| v.len());
                a.results.clear();
                for j in r["jobs"].as_array().cloned().unwrap_or_default() {
                    dispatched += 1;
                    a.results.push(JobResult {
                        key: j["job"]["key"].as_str().unwrap().to_string(),
                        outcome: JobOutcome::Succeeded,
                        step: None, message: None, refusal: None,
                        baseline: vec![], after: vec![], changed: vec![],
                        reboot_required: false,
                        finished_at: "2026-12-08T22:05:00Z".into(),
                        rehearsal: None,
                        privilege: vec![],
                        snapshot: None,
                    });
                }
            }
            let td = Instant::now();
            app.drive_rollouts().await.unwrap();
            drive += td.elapsed();
            let d = call(&router, "GET", &format!("/api/v1/deployments/{id}"), &admin, Value::Null).await;
            if d["deployment"]["status"] == "completed" || rounds > 50 {
                assert_eq!(d["deployment"]["status"], "completed", "{}", d["rollout"]["reason"]);
                break;
            }
        }
        let total = t.elapsed().as_secs_f64();
        assert_eq!(dispatched, n);
        assert_eq!(acked, n);
        // Halt latency: a deployment of 1.2 whose first canary fails. From
        // the check-in carrying the failing result to the halt decision (one
        // driver step), and to the canary's rollback job being handed over.
        for a in agents.iter_mut() {
            a.results.clear();
        }
        let spec = json!({"packages": [{"name": "pb-demo", "version": "1.2"}],
            "rings": [
                {"name": "ring0-canary", "size": "10", "max_concurrent": "100%", "error_budget": "0"},
                {"name": "ring1-rest", "max_concurrent": "100%", "error_budget": "5%"}
            ]});
        let d2 = call(&router, "POST", "/api/v1/deployments", &admin, spec).await;
        let id2 = d2["deployment"]["id"].as_str().unwrap().to_string();
        call(&router, "POST", &format!("/api/v1/deployments/{id2}/start"), &admin, json!({})).await;
        let canaries: Vec<String> = d2["rollout"]["rings"][0]["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["spec"]["host"].as_str().unwrap().to_string())
            .collect();
        let first = agents.iter().position(|a| a.name == canaries[0]).unwrap();
        let r = call(&router, "POST", "/agent/v1/checkin", &agents[first].secret, checkin_body(&agents[first])).await;
        let key = r["jobs"][0]["job"]["key"].as_str().unwrap().to_string();
        agents[first].results = vec![JobResult {
            key: key.clone(),
            outcome: JobOutcome::Failed,
            step: Some("verify.health".into()),
            message: Some("web: 500".into()),
            refusal: None,
            baseline: vec![], after: vec![], changed: vec![],
            reboot_required: false,
            finished_at: "2026-12-08T22:05:00Z".into(),
            rehearsal: None,
            privilege: vec![],
            snapshot: None,
        }];
        let t0 = Instant::now();
        call(&router, "POST", "/agent/v1/checkin", &agents[first].secret, checkin_body(&agents[first])).await;
        agents[first].results.clear();
        app.drive_rollouts().await.unwrap();
        let halted = t0.elapsed();
        let r = call(&router, "POST", "/agent/v1/checkin", &agents[first].secret, checkin_body(&agents[first])).await;
        let rollback_out = t0.elapsed();
        assert_eq!(r["jobs"][0]["job"]["kind"]["type"], "rollback", "{r}");
        let d = call(&router, "GET", &format!("/api/v1/deployments/{id2}"), &admin, Value::Null).await;
        assert_eq!(d["deployment"]["status"], "halted");
        println!(
            "halt: failing report -> halt decided in {:.0} ms, -> rollback job handed to the canary in {:.0} ms \
             (a server wakes its driver when a result is stored)",
            halted.as_secs_f64() * 1e3,
            rollback_out.as_secs_f64() * 1e3
        );
        println!(
            "dispatch: {n} jobs leased, delivered, reported and acknowledged, deployment completed, in {total:.2} s \
             ({rounds} rounds, {checkins} check-ins, driver {:.2} s); ratio to the ceiling of the same number of empty answers: {:.2}",
            drive.as_secs_f64(),
            total / (ceiling * checkins as f64 / n as f64)
        );
    });
}
