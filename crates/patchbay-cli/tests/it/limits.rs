//! Resource limits and resilience end to end, on both backends: concurrent
//! heavy readers never deadlock the connection pools (and `/healthz` answers
//! meanwhile); refused requests grow the audit log by a bounded amount and are
//! still recorded with their source and count; list limits, window and
//! blackout bounds, file permissions, connection timeouts, the calendar token,
//! four-eyes on the zero-day lane and approval of broad policy exclusions.

use crate::support::ServeProcess;
use crate::support::{PATCHBAY, Server, deb_root, fixtures, minbase_before, ok};
use jiff::SignedDuration;
use patchbay_client::{Client, HttpError};
use patchbay_proto::api::{BlackoutSpec, List, PlanRequest, WindowSpec, WorkItem};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const POLICY: &str = r#"version = 1
[[groups]]
name = "web"
[groups.match]
name = ["chroot-*"]
"#;

fn host(s: &Server) -> tempfile::TempDir {
    s.host_with(&minbase_before())
}

fn apply_policy(s: &Server, text: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.toml");
    std::fs::write(&p, text).unwrap();
    s.cli(&["policy", "apply", p.to_str().unwrap()])
}

/// The first column of every row of `q`, read from the database directly.
pub fn query(s: &Server, q: &str) -> Vec<String> {
    crate::support::db_text(&s.db_url, q)
}

fn query_i64(s: &Server, q: &str) -> i64 {
    let v = query(s, q);
    v[0].parse()
        .unwrap_or_else(|e| panic!("{q}: {:?} is not a number: {e}", v[0]))
}

/// Rows and stored bytes of the audit log.
fn audit_size(s: &Server) -> (i64, i64) {
    let rows = query_i64(s, "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events");
    let bytes = query_i64(
        s,
        "SELECT CAST(COALESCE(SUM(LENGTH(actor) + LENGTH(action) + LENGTH(target) + LENGTH(outcome) \
         + LENGTH(detail) + COALESCE(LENGTH(prev_hash), 0) + COALESCE(LENGTH(hash), 0) \
         + COALESCE(LENGTH(sig), 0)), 0) AS TEXT) FROM audit_events",
    );
    (rows, bytes)
}

fn status_of(e: &HttpError) -> Option<u16> {
    match e {
        HttpError::Api { status, .. } => Some(*status),
        _ => None,
    }
}

/// Hole 3: 64 concurrent heavy readers (worklist, reports, plan preview,
/// triage) all answer 200 within a bounded time, and `/healthz` answers
/// during them. Before the fix a read transaction was held while the advisory
/// index took a second pooled connection: 4 such requests deadlocked SQLite's
/// 4-connection reader pool (503 after the 30 s acquire timeout), 16 the
/// PostgreSQL pool.
fn concurrent_heavy_readers_do_not_deadlock(backend: &str) {
    let s = Server::start(backend);
    let _root = host(&s);
    s.import_feeds(&["feeds/osv/Debian-12-derived.osv.zip"]);
    ok(&apply_policy(&s, POLICY));
    ok(&s.cli(&[
        "windows",
        "add",
        "nightly",
        "--rrule",
        "FREQ=DAILY",
        "--dtstart",
        "2026-01-01T02:00",
        "--tz",
        "UTC",
        "--duration",
        "2h",
        "--group",
        "web",
    ]));
    let work: List<WorkItem> = s.admin().get("/api/v1/worklist?limit=5").unwrap();
    let cve = work
        .items
        .iter()
        .flat_map(|w| w.finding.cves.iter())
        .next()
        .expect("the fixture host has findings with CVEs")
        .clone();

    const READERS: usize = 64;
    // More than both pools hold (SQLite 4 readers, PostgreSQL 16), so holding
    // one connection while waiting for another deadlocks. Below the pools' 30 s
    // acquire timeout: a deadlock shows as a timeout.
    let bound = Duration::from_secs(20);
    let done = AtomicBool::new(false);
    let barrier = std::sync::Barrier::new(READERS + 1);
    let started = Instant::now();
    let (results, health) = std::thread::scope(|sc| {
        let readers: Vec<_> = (0..READERS)
            .map(|i| {
                let (s, cve, barrier) = (&s, &cve, &barrier);
                sc.spawn(move || {
                    let c = Client::new(&s.url, Some(s.admin.clone()), bound);
                    barrier.wait();
                    let t0 = Instant::now();
                    let r = match i % 4 {
                        0 => c
                            .get::<serde_json::Value>("/api/v1/worklist?limit=50")
                            .map(|_| ()),
                        1 => c.get_text("/api/v1/reports/compliance").map(|_| ()),
                        2 => c
                            .send::<_, serde_json::Value>(
                                "POST",
                                "/api/v1/plan/preview",
                                &PlanRequest {
                                    deployment: None,
                                    group: None,
                                    from: None,
                                    days: Some(30),
                                    job_estimate: None,
                                },
                            )
                            .map(|_| ()),
                        _ => c
                            .get::<serde_json::Value>(&format!("/api/v1/triage/{cve}"))
                            .map(|_| ()),
                    };
                    (i, r.map_err(|e| e.to_string()), t0.elapsed())
                })
            })
            .collect();
        let health = sc.spawn(|| {
            let c = Client::new(&s.url, None, Duration::from_secs(5));
            barrier.wait();
            let mut answers = Vec::new();
            // Bounded: at most 400 probes, 25 ms apart (10 s), loopback only.
            for _ in 0..400 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let t0 = Instant::now();
                answers.push((
                    c.get_text("/healthz").map_err(|e| e.to_string()),
                    t0.elapsed(),
                ));
                std::thread::sleep(Duration::from_millis(25));
            }
            answers
        });
        let results: Vec<_> = readers.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, Ordering::SeqCst);
        (results, health.join().unwrap())
    });
    let elapsed = started.elapsed();
    let failed: Vec<_> = results.iter().filter(|r| r.1.is_err()).collect();
    assert!(failed.is_empty(), "readers failed: {failed:?}");
    assert!(
        results.iter().all(|r| r.2 < bound),
        "a reader took too long: {:?}",
        results.iter().map(|r| r.2).max()
    );
    assert!(elapsed < bound, "{READERS} readers took {elapsed:?}");
    assert!(!health.is_empty(), "/healthz was probed during the readers");
    let bad: Vec<_> = health
        .iter()
        .filter(|(r, t)| r.as_deref() != Ok("ok\n") || *t > Duration::from_secs(4))
        .collect();
    assert!(
        bad.is_empty(),
        "/healthz failed during the readers: {bad:?}"
    );
}

/// Hole 6: 300 unauthenticated requests with 60 KB paths grow the audit log
/// by a small bounded amount (measured in the database), and the refusals are
/// still recorded: the first ones one by one (target cut to 256 bytes and
/// marked), the rest as one aggregate entry with the source and the count.
fn refusal_flood_grows_the_audit_log_boundedly(backend: &str) {
    let s = Server::start(backend);
    let (rows0, bytes0) = audit_size(&s);
    let long = format!("/api/v1/{}", "a".repeat(60 * 1024));
    let anon = s.client(None);
    for _ in 0..300 {
        let e = anon.get::<serde_json::Value>(&long).unwrap_err();
        assert_eq!(status_of(&e), Some(401), "{e}");
    }
    let (rows1, bytes1) = audit_size(&s);
    let limit = patchbay_app::REFUSALS_PER_MINUTE as i64;
    assert_eq!(
        rows1 - rows0,
        limit,
        "one entry per refusal up to the limit"
    );
    // 60 KB each, twice (target and detail), was 36 MB: now about 1 KB each.
    assert!(
        bytes1 - bytes0 < limit * 1500,
        "300 refusals added {} bytes",
        bytes1 - bytes0
    );
    let longest = query_i64(
        &s,
        "SELECT CAST(MAX(LENGTH(target)) AS TEXT) FROM audit_events WHERE outcome = 'denied'",
    );
    assert!(longest < 300, "target of {longest} bytes");
    let targets = query(
        &s,
        "SELECT target FROM audit_events WHERE action = 'request.denied' ORDER BY seq",
    );
    assert!(targets[0].starts_with("/api/v1/aaaa"), "{}", targets[0]);
    assert!(targets[0].contains("more bytes]"), "{}", targets[0]);
    let details = query(
        &s,
        "SELECT detail FROM audit_events WHERE action = 'request.denied' ORDER BY seq",
    );
    let d: serde_json::Value = serde_json::from_str(&details[0]).unwrap();
    assert_eq!(d["reason"], "no token");
    assert!(d["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(!details[0].contains("aaaaaaaa"), "the path is stored once");

    // The next minute (the app's clock), the source's next refusal first
    // records how many were suppressed.
    s.clock.advance(SignedDuration::from_secs(61));
    let e = anon.get::<serde_json::Value>("/api/v1/assets").unwrap_err();
    assert_eq!(status_of(&e), Some(401));
    let agg = query(
        &s,
        "SELECT detail FROM audit_events WHERE action = 'request.denied.suppressed'",
    );
    assert_eq!(agg.len(), 1, "{agg:?}");
    let d: serde_json::Value = serde_json::from_str(&agg[0]).unwrap();
    assert_eq!(d["source"], "127.0.0.1");
    assert_eq!(d["count"], 300 - limit);
    let actor = query(
        &s,
        "SELECT actor FROM audit_events WHERE action = 'request.denied.suppressed'",
    );
    assert_eq!(actor, vec![patchbay_app::REFUSAL_LIMITER_ACTOR]);
    let (rows2, _) = audit_size(&s);
    assert_eq!(rows2 - rows1, 2, "the aggregate and the new refusal");
    // The chain stays intact.
    let out = Command::new(PATCHBAY)
        .args(["audit", "verify", "--db", &s.db_url, "--data-dir"])
        .arg(&s.data_dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    ok(&out);
}

fn bad_request(e: &HttpError, field: &str) {
    assert_eq!(status_of(e), Some(400), "{e}");
    assert!(e.to_string().contains(field), "{e} does not name {field:?}");
}

/// Hole 8a: list limits are `1..=MAX` or a 400 naming `limit`.
fn list_limits_are_bounded(backend: &str) {
    let s = Server::start(backend);
    let _root = host(&s);
    s.import_feeds(&["feeds/osv/Debian-12-derived.osv.zip"]);
    let admin = s.admin();
    let max = patchbay_app::prioritise::MAX_WORKLIST_LIMIT;
    for q in ["0".to_string(), (max + 1).to_string(), "-1".into()] {
        let e = admin
            .get::<serde_json::Value>(&format!("/api/v1/worklist?limit={q}"))
            .unwrap_err();
        bad_request(&e, "limit");
    }
    let all: List<WorkItem> = admin.get("/api/v1/worklist").unwrap();
    assert!(all.items.len() > 1);
    let one: List<WorkItem> = admin.get("/api/v1/worklist?limit=1").unwrap();
    assert_eq!(one.items.len(), 1);
    let _: List<WorkItem> = admin.get(&format!("/api/v1/worklist?limit={max}")).unwrap();
    let amax = patchbay_app::tokens::MAX_AUDIT_LIMIT;
    for q in ["0".to_string(), (amax + 1).to_string(), "-5".into()] {
        let e = admin
            .get::<serde_json::Value>(&format!("/api/v1/audit?limit={q}"))
            .unwrap_err();
        bad_request(&e, "limit");
    }
    let one: List<serde_json::Value> = admin.get("/api/v1/audit?limit=1").unwrap();
    assert_eq!(one.items.len(), 1);
    // The CLI passes the server's answer on.
    let out = s.cli(&["worklist", "--limit", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("limit"));
}

fn window(name: &str, duration: &str) -> WindowSpec {
    WindowSpec {
        name: name.into(),
        rrule: "FREQ=WEEKLY".into(),
        dtstart: "2026-01-01T02:00".into(),
        tz: "UTC".into(),
        duration: duration.into(),
        offset_days: 0,
        cutoff: None,
        groups: vec![],
        assets: vec![],
        description: String::new(),
    }
}

fn blackout(name: &str, start: &str, end: &str) -> BlackoutSpec {
    BlackoutSpec {
        name: name.into(),
        start: start.into(),
        end: end.into(),
        tz: None,
        reason: "freeze".into(),
        owner: "ops".into(),
        groups: vec![],
        assets: vec![],
    }
}

/// Hole 8b: window durations are `(0, 7 days]`, blackouts at most 366 days,
/// plan job estimates at most 24 h; a 400 names the field and nothing changes.
fn window_and_blackout_lengths_are_bounded(backend: &str) {
    let s = Server::start(backend);
    let admin = s.admin();
    let audit0 = query_i64(&s, "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events");
    for d in ["0m", "169h", "8760h", "99999h"] {
        let e = admin
            .send::<_, serde_json::Value>("POST", "/api/v1/windows", &window("w", d))
            .unwrap_err();
        bad_request(&e, "duration");
    }
    for (start, end) in [
        ("2026-01-01T00:00:00Z", "2027-01-03T00:00:00Z"),
        ("2026-01-01T00:00:00Z", "9999-01-01T00:00:00Z"),
    ] {
        let e = admin
            .send::<_, serde_json::Value>("POST", "/api/v1/blackouts", &blackout("b", start, end))
            .unwrap_err();
        bad_request(&e, "end");
    }
    let e = admin
        .send::<_, serde_json::Value>(
            "POST",
            "/api/v1/plan/preview",
            &PlanRequest {
                deployment: None,
                group: None,
                from: None,
                days: None,
                job_estimate: Some("1000h".into()),
            },
        )
        .unwrap_err();
    bad_request(&e, "job_estimate");
    // Nothing was stored or audited.
    assert_eq!(
        query_i64(&s, "SELECT CAST(COUNT(*) AS TEXT) FROM windows"),
        0
    );
    assert_eq!(
        query_i64(&s, "SELECT CAST(COUNT(*) AS TEXT) FROM blackouts"),
        0
    );
    assert_eq!(
        query_i64(&s, "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events"),
        audit0
    );
    // The longest allowed are accepted.
    let _: serde_json::Value = admin
        .send("POST", "/api/v1/windows", &window("week", "168h"))
        .unwrap();
    let _: serde_json::Value = admin
        .send(
            "POST",
            "/api/v1/blackouts",
            &blackout("year", "2026-01-01T00:00:00Z", "2027-01-02T00:00:00Z"),
        )
        .unwrap();
}

/// Runs `patchbay serve` (SQLite in `data_dir`) on a free loopback port;
/// returns the process (killed when dropped, also when a test fails) and its
/// address.
fn spawn_serve(data_dir: &std::path::Path, extra: &[&str]) -> (ServeProcess, String) {
    let p = ServeProcess::start(data_dir, extra, "info");
    let addr = p.url.trim_start_matches("http://").to_string();
    (p, addr)
}

fn stop(child: ServeProcess) {
    drop(child);
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Hole 8c: `patchbay serve` creates its data directory 0700 and the SQLite
/// database with its -wal and -shm files 0600; an existing database made
/// world-readable is tightened at the next start.
#[test]
fn database_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (child, addr) = spawn_serve(&data, &[]);
    let health = Client::new(&format!("http://{addr}"), None, Duration::from_secs(10));
    assert_eq!(health.get_text("/healthz").unwrap(), "ok\n");
    assert_eq!(mode(&data), 0o700, "data directory");
    for f in [
        "patchbay.db",
        "patchbay.db-wal",
        "patchbay.db-shm",
        "admin.token",
    ] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    stop(child);
    for f in ["patchbay.db", "patchbay.db-wal", "patchbay.db-shm"] {
        let p = data.join(f);
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let (child, addr) = spawn_serve(&data, &[]);
    let health = Client::new(&format!("http://{addr}"), None, Duration::from_secs(10));
    assert_eq!(health.get_text("/healthz").unwrap(), "ok\n");
    for f in ["patchbay.db", "patchbay.db-wal", "patchbay.db-shm"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f} after a restart");
    }
    stop(child);
}

/// Reads until the server closes the connection; returns what it sent and
/// how long it took (the read timeout bounds the wait).
fn read_until_closed(c: &mut std::net::TcpStream) -> (String, Duration) {
    use std::io::Read;
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the connection stayed open ({e}) after {:?}", t0.elapsed()),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), t0.elapsed())
}

/// Hole 8d: a client that sends half a request line is disconnected within
/// the (configured) header-read timeout, an idle keep-alive connection too,
/// and the server keeps serving others meanwhile.
#[test]
fn slow_and_idle_connections_are_closed() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let (child, addr) = spawn_serve(&tmp.path().join("data"), &["--header-read-timeout", "1s"]);
    let health = Client::new(&format!("http://{addr}"), None, Duration::from_secs(5));

    // Slowloris: half a request line, then nothing.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /healthz HT").unwrap();
    // Others are served while it hangs.
    assert_eq!(health.get_text("/healthz").unwrap(), "ok\n");
    let (_, waited) = read_until_closed(&mut slow);
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");

    // Idle keep-alive: one request answered, then the connection is closed.
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let (answer, waited) = read_until_closed(&mut idle);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
    assert!(
        waited >= Duration::from_millis(500),
        "closed at once: {waited:?}"
    );

    // Still serving.
    assert_eq!(health.get_text("/healthz").unwrap(), "ok\n");
    stop(child);
}

/// Hole 8e: the subscribable calendar feed takes only a calendar token (which
/// opens nothing else); an admin or auditor token in its query is refused
/// (403, recorded).
fn calendar_feed_takes_only_calendar_tokens(backend: &str) {
    use patchbay_core::auth::Role;
    use patchbay_proto::api::{CreateToken, TokenCreated};
    let s = Server::start(backend);
    let admin = s.admin();
    // The CLI creates one; its secret is recognisable as a calendar token.
    let out = ok(&s.cli(&[
        "tokens", "create", "--name", "team-cal", "--role", "calendar", "--format", "json",
    ]));
    let cal: TokenCreated = serde_json::from_str(&out).unwrap();
    assert!(cal.token.starts_with("pbc_"), "{}", cal.token);
    assert_eq!(cal.info.role, Role::Calendar);
    let auditor: TokenCreated = admin
        .send(
            "POST",
            "/api/v1/tokens",
            &CreateToken {
                name: "aud".into(),
                role: Role::Auditor,
                ttl_secs: None,
                scopes: None,
            },
        )
        .unwrap();
    let anon = s.client(None);
    let ics = anon
        .get_text(&format!("/calendar.ics?token={}", cal.token))
        .unwrap();
    assert!(ics.starts_with("BEGIN:VCALENDAR"), "{ics}");
    let denied0 = query_i64(
        &s,
        "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE outcome = 'denied'",
    );
    for t in [&s.admin, &auditor.token] {
        let e = anon
            .get_text(&format!("/calendar.ics?token={t}"))
            .unwrap_err();
        assert_eq!(status_of(&e), Some(403), "{e}");
        assert!(e.to_string().contains("calendar token"), "{e}");
        // Nor in the header, on the feed.
        let e = s.client(Some(t)).get_text("/calendar.ics").unwrap_err();
        assert_eq!(status_of(&e), Some(403), "{e}");
    }
    let reasons = query(
        &s,
        "SELECT detail FROM audit_events WHERE outcome = 'denied' ORDER BY seq",
    );
    assert_eq!(reasons.len() as i64 - denied0, 4, "{reasons:?}");
    assert!(reasons.last().unwrap().contains("not a calendar token"));
    // The calendar token opens nothing else.
    let c = s.client(Some(&cal.token));
    for path in [
        "/api/v1/assets",
        "/api/v1/audit",
        "/api/v1/worklist",
        "/api/v1/tokens",
    ] {
        let e = c.get::<serde_json::Value>(path).unwrap_err();
        assert_eq!(status_of(&e), Some(403), "{path}: {e}");
    }
    let e = c
        .send::<_, serde_json::Value>(
            "POST",
            "/api/v1/tokens",
            &CreateToken {
                name: "x".into(),
                role: Role::Admin,
                ttl_secs: None,
                scopes: None,
            },
        )
        .unwrap_err();
    assert_eq!(status_of(&e), Some(403));
    // The API's own calendar still serves every role by header.
    assert!(
        admin
            .get_text("/api/v1/calendar.ics")
            .unwrap()
            .starts_with("BEGIN:VCALENDAR")
    );
    assert!(
        c.get_text("/api/v1/calendar.ics")
            .unwrap()
            .starts_with("BEGIN:VCALENDAR")
    );
}

/// Hole 8f: the zero-day lane's deployment is created by the named system
/// caller `system:zero-day-lane` (not the importing shell user), so four-eyes
/// applies: its approval comes from a human approver's token, recorded as
/// such, and the trigger is recorded separately.
fn zero_day_deployment_is_created_by_the_system(backend: &str) {
    use patchbay_proto::api::{BlackoutApprovalIn, DeploymentOut};
    let s = Server::start(backend);
    let root = deb_root(&format!(
        "{}Package: chromium\nStatus: install ok installed\nArchitecture: amd64\n\
         Version: 139.0.7258.154-1~deb12u1\n\n",
        minbase_before()
    ));
    let state = tempfile::tempdir().unwrap();
    ok(&s.agent_once(
        state.path(),
        Some(&s.enroll_token(1)),
        &[
            "--root",
            root.path().to_str().unwrap(),
            "--no-pending-updates",
        ],
    ));
    s.import_feeds(&[
        "feeds/osv/Debian-12-derived.osv.zip",
        "feeds/kev/known_exploited_vulnerabilities-2025.08.25.json.gz",
    ]);
    // USER unset: the importer used to become the creator `local:unknown`.
    ok(&Command::new(PATCHBAY)
        .args(["feeds", "import", "--db", &s.db_url])
        .arg("--data-dir")
        .arg(&s.data_dir)
        .arg(fixtures().join("feeds/kev/known_exploited_vulnerabilities-2026.08.07.json.gz"))
        .env_remove("USER")
        .output()
        .unwrap());
    let deps: List<DeploymentOut> = s.admin().get("/api/v1/deployments").unwrap();
    let dep = &deps.items[0];
    assert!(dep.id.starts_with("DEP-OOB-"), "{dep:?}");
    assert_eq!(dep.created_by, "system:zero-day-lane");
    assert_eq!(
        query(&s, "SELECT created_by FROM deployments"),
        vec!["system:zero-day-lane"]
    );
    let raised = query(
        &s,
        "SELECT actor || ' ' || detail FROM audit_events WHERE action = 'oob.raise'",
    );
    assert_eq!(raised.len(), 1);
    assert!(
        raised[0].starts_with("system:zero-day-lane {"),
        "{}",
        raised[0]
    );
    assert!(
        raised[0].contains("\"triggered_by\":\"local:unknown\""),
        "{}",
        raised[0]
    );

    // A human approver's approval is what lets it enter a blackout.
    let _: serde_json::Value = s
        .admin()
        .send(
            "POST",
            "/api/v1/blackouts",
            &blackout("freeze", "2026-12-20T00:00:00Z", "2027-01-04T00:00:00Z"),
        )
        .unwrap();
    let approver: patchbay_proto::api::TokenCreated = s
        .admin()
        .send(
            "POST",
            "/api/v1/tokens",
            &patchbay_proto::api::CreateToken {
                name: "alice".into(),
                role: patchbay_core::auth::Role::Approver,
                ttl_secs: None,
                scopes: None,
            },
        )
        .unwrap();
    let _: serde_json::Value = s
        .client(Some(&approver.token))
        .send(
            "POST",
            "/api/v1/blackouts/freeze/approvals",
            &BlackoutApprovalIn {
                deployment: dep.id.clone(),
                note: "exploited".into(),
            },
        )
        .unwrap();
    let by = query(&s, "SELECT approver FROM blackout_approvals");
    assert_eq!(by, vec![format!("token:{}:alice", approver.info.id)]);
    assert_ne!(by[0], dep.created_by);
}

/// Hole 8g: an exclusion takes findings out of the worklist like an exception,
/// so an operator (no approve permission) cannot add one — least of all
/// `package = "*"`: 403 naming the rule, recorded, nothing applied. An admin
/// can; the operator may then change only its reason, or remove it.
fn exclusions_need_the_approve_permission(backend: &str) {
    use patchbay_core::auth::Role;
    use patchbay_proto::api::{CreateToken, TokenCreated};
    let s = Server::start(backend);
    let _root = host(&s);
    s.import_feeds(&["feeds/osv/Debian-12-derived.osv.zip"]);
    let ops: TokenCreated = s
        .admin()
        .send(
            "POST",
            "/api/v1/tokens",
            &CreateToken {
                name: "ops".into(),
                role: Role::Operator,
                ttl_secs: None,
                scopes: None,
            },
        )
        .unwrap();
    let op = s.client(Some(&ops.token));
    let before: List<WorkItem> = s.admin().get("/api/v1/worklist").unwrap();
    assert!(!before.items.is_empty());
    let apply = |c: &Client, text: &str| {
        c.post_raw::<serde_json::Value>("/api/v1/policy", "application/toml", text.as_bytes())
    };
    let wildcard = "version = 1\n[[exclusions]]\npackage = \"*\"\nreason = \"no patching\"\n";
    let e = apply(&op, wildcard).unwrap_err();
    assert_eq!(status_of(&e), Some(403), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("exclusions[0] (package = \"*\")"), "{msg}");
    assert!(msg.contains("wildcard") && msg.contains("approve"), "{msg}");
    let one = "version = 1\n[[exclusions]]\npackage = \"perl\"\nreason = \"vendor\"\n";
    let e = apply(&op, one).unwrap_err();
    assert_eq!(status_of(&e), Some(403), "{e}");
    assert!(
        e.to_string().contains("exclusions[0] (package = \"perl\")"),
        "{e}"
    );
    // Nothing applied, the worklist unchanged, the refusals recorded.
    assert_eq!(
        query_i64(&s, "SELECT CAST(COUNT(*) AS TEXT) FROM policies"),
        0
    );
    let after: List<WorkItem> = s.admin().get("/api/v1/worklist").unwrap();
    assert_eq!(after.items.len(), before.items.len());
    let refused = query(
        &s,
        "SELECT detail FROM audit_events WHERE action = 'policy.apply' AND outcome = 'denied' ORDER BY seq",
    );
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused[0].contains("exclusions[0] (package = \\\"*\\\")"),
        "{}",
        refused[0]
    );
    // Nor widen a group an exclusion is limited to.
    let scoped = |name: &str| {
        format!(
            "version = 1\n[[groups]]\nname = \"g\"\n[groups.match]\nname = [\"{name}\"]\n\n\
             [[exclusions]]\npackage = \"perl\"\ngroup = \"g\"\nreason = \"vendor\"\n"
        )
    };
    let _ = apply(&s.admin(), &scoped("nothing-*")).unwrap();
    let e = apply(&op, &scoped("chroot-*")).unwrap_err();
    assert_eq!(status_of(&e), Some(403), "{e}");
    assert!(e.to_string().contains("changed groups"), "{e}");
    // An admin (who holds the approve permission) may exclude.
    let _ = apply(&s.admin(), one).unwrap();
    // The operator may reword the reason or remove the rule: nothing more excluded.
    let reworded = "version = 1\n[[exclusions]]\npackage = \"perl\"\nreason = \"vendor-managed\"\n";
    let _ = apply(&op, reworded).unwrap();
    let _ = apply(&op, "version = 1\n").unwrap();
    assert_eq!(
        query_i64(&s, "SELECT CAST(COUNT(*) AS TEXT) FROM policies"),
        4
    );
}

/// Hole 3, the write side: concurrent check-ins (each re-assessed inside its
/// own write transaction) never wait for a second pooled connection (before,
/// the advisory index was read through a new read transaction while the write
/// transaction was held, so as many concurrent check-ins as the pool has
/// connections could deadlock PostgreSQL's pool).
fn concurrent_checkins_do_not_deadlock(backend: &str) {
    let s = Server::start(backend);
    s.import_feeds(&["feeds/osv/Debian-12-derived.osv.zip"]);
    const AGENTS: usize = 48;
    let token = s.enroll_token(AGENTS as u32);
    let roots: Vec<_> = (0..AGENTS).map(|_| deb_root(&minbase_before())).collect();
    let states: Vec<_> = (0..AGENTS).map(|_| tempfile::tempdir().unwrap()).collect();
    let args = |i: usize| -> Vec<String> {
        vec![
            "--root".into(),
            roots[i].path().to_str().unwrap().into(),
            "--no-pending-updates".into(),
        ]
    };
    // Enrolled and first inventories in turn; then every host changes and
    // all check in (a delta each) at once.
    for i in 0..AGENTS {
        let a = args(i);
        ok(&s.agent_once(
            states[i].path(),
            Some(&token),
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
        ));
        std::fs::write(
            roots[i].path().join("var/lib/dpkg/status"),
            crate::support::minbase_after(),
        )
        .unwrap();
    }
    let barrier = std::sync::Barrier::new(AGENTS);
    let started = Instant::now();
    let outs: Vec<std::process::Output> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..AGENTS)
            .map(|i| {
                let (s, barrier, a) = (&s, &barrier, args(i));
                let state = states[i].path();
                sc.spawn(move || {
                    barrier.wait();
                    s.agent_once(
                        state,
                        None,
                        &a.iter().map(String::as_str).collect::<Vec<_>>(),
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &outs {
        ok(o);
    }
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{AGENTS} check-ins took {:?}",
        started.elapsed()
    );
    let resolved = query_i64(
        &s,
        "SELECT CAST(COUNT(DISTINCT asset_id) AS TEXT) FROM findings WHERE resolved_at IS NOT NULL",
    );
    assert_eq!(resolved, AGENTS as i64, "every host was re-assessed");
}

crate::both_backends!(
    concurrent_heavy_readers_do_not_deadlock,
    concurrent_checkins_do_not_deadlock,
    refusal_flood_grows_the_audit_log_boundedly,
    list_limits_are_bounded,
    window_and_blackout_lengths_are_bounded,
    calendar_feed_takes_only_calendar_tokens,
    zero_day_deployment_is_created_by_the_system,
    exclusions_need_the_approve_permission,
);
