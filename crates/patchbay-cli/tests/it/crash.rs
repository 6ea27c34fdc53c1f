//! Acceptance: SIGKILL of the server during inventory uploads loses nothing stored
//! before, and the agent's next check-in succeeds.

use crate::support::{ServeProcess, agent, deb_root, minbase_before, ok};
use patchbay_client::Client;
use patchbay_core::inventory::Package;
use patchbay_proto::api::AssetDetail;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `patchbay serve` with tower_http at debug, which logs each request's start
/// and end inside the request span (method, path): the proof that the kill
/// landed while uploads were being received or stored.
fn spawn_server(data_dir: &Path, db: &str) -> (ServeProcess, String, Arc<Mutex<Vec<String>>>) {
    let p = ServeProcess::start(
        data_dir,
        &["--db", db],
        "info,tower_http=debug,patchbay_server::router=debug",
    );
    let (url, log) = (p.url.clone(), p.log.clone());
    (p, url, log)
}

/// Check-in requests the server started and finished, from its log.
fn checkins_in_log(log: &[String]) -> (usize, usize) {
    let count = |msg: &str| {
        log.iter()
            .filter(|l| l.contains(msg) && l.contains("/agent/v1/checkin"))
            .count()
    };
    (
        count("started processing request"),
        count("finished processing request"),
    )
}

fn big_inventory(i: usize) -> patchbay_core::inventory::Inventory {
    let t = patchbay_cli::sim::Templates::load().unwrap();
    let mut inv = t.host(i, 7, &format!("bulk-{i:03}"));
    for k in 0..2500 {
        inv.packages.push(Package {
            name: format!("pbsim-lib{k:04}"),
            version: format!("1.{k}-1+deb12u{}", i % 5),
            arch: "amd64".into(),
            source: Some(format!("pbsim-src{}", k / 10)),
            source_version: None,
        });
    }
    inv.normalize();
    inv
}

fn sigkill_during_uploads_loses_nothing(backend: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(patchbay_store::testing::fresh_url(backend));
    let data = tempfile::tempdir().unwrap();
    let (mut server, url, log) = spawn_server(data.path(), &db);
    let admin_token = std::fs::read_to_string(data.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let admin = Client::new(&url, Some(admin_token.clone()), Duration::from_secs(30));

    // Host A: enrolled and stored before the crash.
    let root = deb_root(&minbase_before());
    let state = tempfile::tempdir().unwrap();
    let enroll = |uses: u32| -> String {
        let t: patchbay_proto::api::EnrollTokenCreated = admin
            .send(
                "POST",
                "/api/v1/enroll-tokens",
                &serde_json::json!({"uses": uses}),
            )
            .unwrap();
        t.token
    };
    let run_agent = |url: &str, token: Option<&str>| {
        let mut c = Command::new(agent());
        c.args([
            "--once",
            "--no-pending-updates",
            "--server",
            url,
            "--state-dir",
        ])
        .arg(state.path())
        .arg("--root")
        .arg(root.path());
        if let Some(t) = token {
            c.args(["--enroll-token", t]);
        }
        c.output().unwrap()
    };
    ok(&run_agent(&url, Some(&enroll(1))));
    let stored: AssetDetail = admin.get("/api/v1/assets/chroot-host").unwrap();
    assert_eq!(stored.packages.len(), 88);

    // Many large uploads in flight, then SIGKILL.
    let bulk_token = enroll(1000);
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (url, tok, stop, attempts) = (
                url.clone(),
                bulk_token.clone(),
                stop.clone(),
                attempts.clone(),
            );
            std::thread::spawn(move || {
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let inv = big_inventory(i);
                    attempts.fetch_add(1, Ordering::Relaxed);
                    // Errors are expected once the server is killed.
                    let _ = patchbay_cli::sim::enrol_and_checkin(&url, &tok, &inv);
                    i += 6;
                }
            })
        })
        .collect();
    let start = Instant::now();
    while attempts.load(Ordering::Relaxed) < 12 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Kill only while the server is receiving or storing check-ins, as its
    // own log shows (a kill between requests would prove nothing).
    let start = Instant::now();
    loop {
        let (started, finished) = checkins_in_log(&log.lock().unwrap());
        if started > finished {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no check-in was ever in flight ({started} started, {finished} finished)"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    server.kill(); // SIGKILL
    let (started, finished) = checkins_in_log(&log.lock().unwrap());
    assert!(
        started > finished,
        "the kill landed while {} check-in(s) were in flight (server log: {started} started, {finished} finished)",
        started - finished
    );
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }

    // Restart on the same database.
    let (mut server, url, _log) = spawn_server(data.path(), &db);
    let admin = Client::new(&url, Some(admin_token), Duration::from_secs(30));
    let after: AssetDetail = admin.get("/api/v1/assets/chroot-host").unwrap();
    assert_eq!(
        after.packages, stored.packages,
        "host A's stored inventory survived"
    );
    assert_eq!(after.inventory_hash, stored.inventory_hash);
    // Every upload is all or nothing: each bulk host's stored package rows,
    // counted in the database itself, are none or the complete inventory.
    let rows = crate::support::db_pairs(
        &db,
        "SELECT a.name, COUNT(p.asset_id) FROM assets a LEFT JOIN asset_packages p ON p.asset_id = a.id \
         WHERE a.name LIKE 'bulk-%' GROUP BY a.name",
    );
    assert!(!rows.is_empty(), "some uploads were stored before the kill");
    assert!(
        rows.iter().any(|(_, n)| *n > 0),
        "some complete inventories were stored before the kill"
    );
    for (name, n) in &rows {
        let i: usize = name["bulk-".len()..].parse().unwrap();
        let want = big_inventory(i).packages.len() as i64;
        assert!(
            *n == 0 || *n == want,
            "{name} holds {n} of {want} package rows"
        );
    }
    // The agent's next check-in succeeds (nothing changed: nothing is rewritten).
    let out = ok(&run_agent(&url, None));
    assert!(out.contains("sent unchanged inventory"), "{out}");
    server.kill();
}

crate::both_backends!(sigkill_during_uploads_loses_nothing);
