//! The duties runner across replicas (spine issue, item 3): two `patchbay
//! serve` processes on one PostgreSQL database; exactly one holds the leader
//! lease and runs the exception-expiry sweep; after `kill -9` of the leader the
//! other takes the lease over once it has expired (never before) and within a
//! tick or two of that, and every expiry event is raised exactly once.

use crate::support::{PATCHBAY, ServeProcess, ok};
use std::process::Command;
use std::time::{Duration, Instant};

/// The duties flags, fast for the test.
const FAST: &[&str] = &[
    "--lease-ttl",
    "3s",
    "--duty-tick",
    "1s",
    "--exception-sweep-every",
    "1s",
];
fn flags(db: &str) -> Vec<&str> {
    let mut f = vec!["--db", db];
    f.extend_from_slice(FAST);
    f
}

const LOG: &str = "info,patchbay_app::duties=debug";

use crate::support::{db_exec as exec, db_pairs as query};

/// The lease row: (holder, acquired_at ms), (holder, expires_at ms).
fn lease(db: &str) -> Option<(String, i64, i64)> {
    let a = query(
        db,
        "SELECT holder, acquired_at FROM leases WHERE name = 'duties'",
    );
    let e = query(
        db,
        "SELECT holder, expires_at FROM leases WHERE name = 'duties'",
    );
    a.first().map(|(h, at)| (h.clone(), *at, e[0].1))
}

/// The replica's lease holder name, from its log.
fn holder_of(p: &ServeProcess) -> String {
    p.lines()
        .iter()
        .find(|l| l["fields"]["message"] == "duties runner started")
        .and_then(|l| l["fields"]["holder"].as_str().map(str::to_string))
        .expect("the replica logs its holder name")
}

/// How many times the replica's log says it ran the sweep, and how many
/// expiry events it says it raised.
fn sweeps(p: &ServeProcess) -> (usize, i64) {
    let runs: Vec<i64> = p
        .lines()
        .iter()
        .filter(|l| {
            l["fields"]["message"] == "duties: ran" && l["fields"]["duty"] == "exception-expiry"
        })
        .map(|l| l["fields"]["items"].as_i64().unwrap_or(-1))
        .collect();
    (runs.len(), runs.iter().sum())
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn expired_events(db: &str) -> i64 {
    query(
        db,
        "SELECT action, COUNT(*) FROM audit_events WHERE action = 'exception.expired' GROUP BY action",
    )
    .first()
    .map(|r| r.1)
    .unwrap_or(0)
}

/// Adds an exception on `asset` through the API, then moves its expiry into
/// the past directly in the database (the API refuses past expiries).
fn expiring_exception(url: &str, token: &str, db: &str, advisory: &str) {
    let out = Command::new(PATCHBAY)
        .args([
            "exceptions",
            "add",
            "--advisory",
            advisory,
            "--asset",
            "erp-app",
            "--owner",
            "erp-team",
            "--reason",
            "vendor fix pending",
            "--control",
            "segmented",
            "--expires",
            "1d",
        ])
        .env("PATCHBAY_URL", url)
        .env("PATCHBAY_TOKEN", token)
        .output()
        .unwrap();
    ok(&out);
    let now = jiff::Timestamp::now().as_millisecond();
    exec(
        db,
        &format!(
            "UPDATE exceptions SET created_at = {}, expires_at = {} WHERE advisory = '{advisory}'",
            now - 2000,
            now - 1000
        ),
    );
}

#[test]
fn one_leader_runs_the_duties_and_another_takes_over_after_kill_9() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(patchbay_store::testing::fresh_url("postgres"));
    let (da, db_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = ServeProcess::start(da.path(), &flags(&db), LOG);
    // Replicas share the signing key (each signs on top of the other's entries).
    std::fs::copy(
        da.path().join("server-signing.key"),
        db_dir.path().join("server-signing.key"),
    )
    .unwrap();
    let mut b = ServeProcess::start(db_dir.path(), &flags(&db), LOG);
    let token = std::fs::read_to_string(da.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let assets = da.path().join("assets.json");
    std::fs::write(
        &assets,
        r#"[{"name": "erp-app", "kind": "application", "owner": "erp-team"}]"#,
    )
    .unwrap();
    ok(&Command::new(PATCHBAY)
        .args(["assets", "import"])
        .arg(&assets)
        .env("PATCHBAY_URL", &a.url)
        .env("PATCHBAY_TOKEN", &token)
        .output()
        .unwrap());

    // Exactly one replica leads.
    wait_for("a leader", Duration::from_secs(20), || lease(&db).is_some());
    let (first, _, _) = lease(&db).unwrap();
    let (ha, hb) = (holder_of(&a), holder_of(&b));
    assert!(first == ha || first == hb, "{first} is one of {ha}, {hb}");
    let (leader, follower) = if first == ha {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };

    // An exception runs out: the leader's sweep raises its event, once.
    expiring_exception(&leader.url, &token, &db, "CVE-2024-0001");
    wait_for("the first expiry event", Duration::from_secs(20), || {
        expired_events(&db) == 1
    });
    std::thread::sleep(Duration::from_millis(2500)); // two more sweeps
    assert_eq!(expired_events(&db), 1, "raised exactly once");
    let (runs, raised) = sweeps(leader);
    assert!(runs >= 2, "the leader sweeps every tick ({runs})");
    assert_eq!(raised, 1, "the leader raised it");
    assert_eq!(sweeps(follower), (0, 0), "the follower never ran the sweep");

    // kill -9 the leader: the lease lapses and the follower takes it over.
    leader.kill();
    let (dead, _, expiry) = lease(&db).unwrap();
    assert_eq!(
        dead, first,
        "the dead leader's lease stays until it expires"
    );
    let new_holder = holder_of(follower);
    wait_for("the takeover", Duration::from_secs(20), || {
        lease(&db).is_some_and(|(h, _, _)| h == new_holder)
    });
    let (_, acquired, _) = lease(&db).unwrap();
    assert!(
        acquired >= expiry,
        "taken over no earlier than the dead leader's lease expired (acquired {acquired}, expired {expiry})"
    );
    // The follower tries every 1 s tick; 5 s leaves room for a loaded
    // machine (the whole suite runs in parallel) while still far below what
    // "never" would look like.
    assert!(
        acquired <= expiry + 5000,
        "taken over within a few ticks of the expiry (acquired {acquired}, expired {expiry})"
    );

    // The new leader raises the next expiry event, once.
    expiring_exception(&follower.url, &token, &db, "CVE-2024-0002");
    wait_for("the second expiry event", Duration::from_secs(20), || {
        expired_events(&db) == 2
    });
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(expired_events(&db), 2);
    assert_eq!(sweeps(follower).1, 1, "the new leader raised it");
    // Each term is audited, with its holder.
    let terms = query(
        &db,
        "SELECT detail, seq FROM audit_events WHERE action = 'duties.leader' ORDER BY seq",
    );
    assert_eq!(terms.len(), 2, "{terms:?}");
    assert!(terms[0].0.contains(&first) && terms[1].0.contains(&new_holder));
}

/// A replica that stops gracefully releases its lease at once.
#[test]
fn a_graceful_stop_releases_the_lease() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(patchbay_store::testing::fresh_url("sqlite"));
    let d = tempfile::tempdir().unwrap();
    let p = ServeProcess::start(d.path(), &flags(&db), LOG);
    wait_for("the lease", Duration::from_secs(20), || {
        lease(&db).is_some()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(p.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut p = p;
    let status = p.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(lease(&db), None, "released at shutdown");
}
