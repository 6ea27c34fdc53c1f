//! Upgrades, on both engines: a database written by a previous release
//! (`fixtures/upgrade/<release>/`, made by `scripts/make-upgrade-fixture` with
//! that release's binaries; provenance in its README) is opened by this
//! release's server — every migration since runs forward —, keeps its assets,
//! findings, exceptions and audit log (which still verifies against the old
//! release's key, now extended by this server's signed entries), and answers
//! the old admin token. And the exchange that release's agent had with its
//! server (captured through a recording proxy) replayed against this server
//! enrols and checks in: an agent not yet upgraded keeps working.

use crate::support::{PATCHBAY, ServeProcess, Server, db_pairs, fixtures};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The release the fixture was made with.
const RELEASE: &str = "2026-11-6fb1c0b";

fn fixture() -> PathBuf {
    fixtures().join("upgrade").join(RELEASE)
}

fn count(db: &str, table: &str) -> i64 {
    db_pairs(db, &format!("SELECT '{table}', COUNT(*) FROM {table}"))[0].1
}

fn a_database_of_the_previous_release_migrates_forward(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let src = fixture().join(backend);
    std::fs::copy(
        src.join("server-signing.key"),
        data.join("server-signing.key"),
    )
    .unwrap();
    let db = if backend == "postgres" {
        let url = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(patchbay_store::testing::fresh_postgres_url());
        let out = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(src.join("dump.sql"))
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "loading the dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        url
    } else {
        std::fs::copy(src.join("patchbay.db"), data.join("patchbay.db")).unwrap();
        format!("sqlite://{}", data.join("patchbay.db").display())
    };
    let before: Vec<(String, i64)> = [
        "assets",
        "findings",
        "exceptions",
        "advisories",
        "audit_events",
    ]
    .iter()
    .map(|t| (t.to_string(), count(&db, t)))
    .collect();
    assert!(
        before.iter().all(|(_, n)| *n > 0),
        "the fixture has data in each: {before:?}"
    );
    let applied_before = db_pairs(&db, "SELECT 'v', MAX(version) FROM _sqlx_migrations")[0].1;
    let newest = *patchbay_store::MIGRATION_VERSIONS.last().unwrap();
    assert!(
        applied_before < newest,
        "the fixture predates migration {newest} (it is at {applied_before}): otherwise nothing is tested"
    );

    let mut extra = Vec::new();
    if backend == "postgres" {
        extra.extend(["--db", db.as_str()]);
    }
    let mut served = ServeProcess::start(&data, &extra, "info");
    let applied: Vec<i64> = db_pairs(
        &db,
        "SELECT 'v', version FROM _sqlx_migrations ORDER BY version",
    )
    .into_iter()
    .map(|(_, v)| v)
    .collect();
    assert_eq!(
        applied,
        patchbay_store::MIGRATION_VERSIONS,
        "every migration ran forward"
    );
    for (table, n) in &before {
        let now = count(&db, table);
        if table == "audit_events" {
            assert!(now >= *n, "{table}: {now} < {n}");
        } else {
            assert_eq!(now, *n, "{table} kept");
        }
    }
    // The old admin token still works, and the API reads the old rows.
    let admin = std::fs::read_to_string(fixture().join(backend).join("admin.token")).unwrap();
    let c = patchbay_client::Client::new(
        &served.url,
        Some(admin.trim().to_string()),
        std::time::Duration::from_secs(30),
    );
    let findings: Value = c
        .get("/api/v1/findings?asset=upgrade-host&limit=1000")
        .unwrap();
    let n = findings["items"].as_array().unwrap().len();
    assert!(n > 0, "{findings}");
    served.kill();

    // The audit log verifies against the old release's key, with no unsigned tail.
    let out = Command::new(PATCHBAY)
        .args(["audit", "verify", "--every", "1", "--db", &db, "--data-dir"])
        .arg(&data)
        .env_remove("PATCHBAY_DB")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Replays `exchange` (captured JSON lines) against `server`: the enrolment
/// with a fresh enrolment token in place of the captured one, then every
/// agent request with the credential this server issued in place of the old
/// server's. Returns the statuses.
fn replay(server: &Server, exchange: &Path) -> Vec<(String, u16)> {
    let text = std::fs::read_to_string(exchange).unwrap();
    let mut credential: Option<String> = None;
    let mut statuses = Vec::new();
    let mut old_credential: Option<String> = None;
    for line in text.lines() {
        let x: Value = serde_json::from_str(line).unwrap();
        let path = x["path"].as_str().unwrap();
        let mut body = x["request_body"].as_str().unwrap().to_string();
        let mut req = ureq::post(format!("{}{path}", server.url))
            .config()
            .http_status_as_error(false)
            .build()
            .header("content-type", "application/json");
        if path.ends_with("/enroll") {
            let mut v: Value = serde_json::from_str(&body).unwrap();
            let token = server.enroll_token(1);
            let key = ["enroll_token", "token"]
                .into_iter()
                .find(|k| v.get(k).is_some())
                .expect("the enrolment body carries its token");
            v[key] = Value::String(token);
            body = v.to_string();
            let old: Value = serde_json::from_str(x["response_body"].as_str().unwrap()).unwrap();
            old_credential = old["agent_secret"].as_str().map(str::to_string);
        } else if let Some(auth) = x["request_headers"]["authorization"].as_str() {
            let new = credential.clone().expect("enrolled first");
            let old = old_credential.clone().expect("the old credential");
            req = req.header("authorization", auth.replace(&old, &new));
        }
        let mut res = req.send(body.as_bytes()).unwrap();
        let status = res.status().as_u16();
        let text = res.body_mut().read_to_string().unwrap();
        assert!(status < 300, "{path}: {status} {text}");
        if path.ends_with("/enroll") {
            let v: Value = serde_json::from_str(&text).unwrap();
            credential = v["agent_secret"].as_str().map(str::to_string);
        }
        statuses.push((path.to_string(), status));
    }
    statuses
}

fn an_agent_of_the_previous_release_enrols_and_checks_in(backend: &str) {
    let s = Server::start(backend);
    s.import_feeds(&["feeds/osv/Debian-12-derived.subset.osv.zip"]);
    let statuses = replay(&s, &fixture().join("agent-exchange.jsonl"));
    assert!(statuses.len() >= 2, "{statuses:?}");
    let assets: Value = s.admin().get("/api/v1/assets").unwrap();
    let names: Vec<&str> = assets["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["upgrade-host"]);
    let findings: Value = s
        .admin()
        .get("/api/v1/findings?asset=upgrade-host")
        .unwrap();
    assert!(
        !findings["items"].as_array().unwrap().is_empty(),
        "the old agent's inventory was assessed: {findings}"
    );
}

crate::both_backends!(
    a_database_of_the_previous_release_migrates_forward,
    an_agent_of_the_previous_release_enrols_and_checks_in
);
