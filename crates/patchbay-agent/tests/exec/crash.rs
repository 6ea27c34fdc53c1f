//! The rollout crash test (issue 13, acceptance), once per engine: the real
//! `patchbay serve` (SQLite file; PostgreSQL on a fresh database of
//! `PATCHBAY_TEST_PG_URL`'s server, failing rather than skipping without it)
//! is **SIGKILLed at least 20 times at random moments** of two rollouts and,
//! after a random outage of up to a second, restarted on the same database,
//! data directory and port, while four real hosts (debootstrapped Debian 12
//! roots with `pb-demo` 1.0, each with its own `patchbay-agent` in loop mode
//! with jobs and a long poll, each in its own network namespace, the same
//! hosts as `rollout.rs`) keep checking in.
//!
//! - Rolling out 1.1 must complete every ring with every gate passed and
//!   every root on 1.1, as a crash-free run does.
//! - Rolling out 1.2 (its `web` health check fails) must halt in the canary
//!   ring, roll the canary back to 1.1 and lease nothing to a later ring.
//!
//! Rings 1/2/1 (pilot one job at a time), 4 s soaks after the canary and the
//! pilot, and a `web` check slowed to 4 s make a crash-free run of both
//! rollouts last about a minute, so the ≥ 20 kills spread over it (one kill
//! in three comes shortly after a host finished a job, when its result
//! travels and is acted on). Each run takes about two minutes.
//!
//! The kills land wherever the random delays put them: jobs being leased,
//! running on the hosts, results in flight or being taken in, gates, the halt
//! and the rollback; each kill prints its time and the deployment just before
//! it (server side: ring and job states; host side: jobs running, results not
//! yet stored or not yet acknowledged; in the database: job rows not yet
//! delivered, results not yet taken in by the driver), and the test counts the kills that fell while the
//! deployment was not final (at least [`MIN_KILLS`] must). The killer's RNG is
//! seeded: the seed is printed, and `PATCHBAY_CRASH_SEED=N` replays a run's
//! kill delays.
//!
//! The final checks do not trust the server's counters: the roots' dpkg
//! databases; each agent's journal (`STATE/journal.jsonl`) shows every job
//! key started, each step and finished **at most once** (and finished); each
//! agent's outbox holds no unacknowledged result; every result an agent
//! recorded is stored on the server exactly once — one `agent_jobs` row per
//! key (read from the database with `sqlite3`/`psql`) with the same outcome and
//! finish time as the agent's, one `job.result` audit entry per key — and
//! taken in by the driver; and the only job rows are the ones a crash-free
//! run makes.
//!
//! The server runs with `--duty-tick 1s --lease-ttl 2s`: a restarted server
//! is a new lease holder and drives rollouts once its dead predecessor's
//! leader lease has expired (as documented in `crate::duties`).

use crate::rollout::{Engine, Host, Server, db_url, free_addr, patchbay_bin, rings, ts};
use crate::support::{
    deb_repo, drop_in_parallel, ensure_tools, in_parallel, journal, run, wait_for,
};
use patchbay_client::Client;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TESTS: &[crate::Test] = &[
    (
        "crash::sqlite_server_sigkilled_at_random_points_of_a_good_and_a_bad_rollout",
        sqlite_server_sigkilled_at_random_points_of_a_good_and_a_bad_rollout,
    ),
    (
        "crash::postgres_server_sigkilled_at_random_points_of_a_good_and_a_bad_rollout",
        postgres_server_sigkilled_at_random_points_of_a_good_and_a_bad_rollout,
    ),
];

/// Hosts per run: one canary, two pilot, one broad.
const HOSTS: usize = 4;

/// Kills that must land while a deployment is not final, per engine.
const MIN_KILLS: usize = 20;

/// The random delay from a server answering `/healthz` to its kill, in ms.
/// The upper end is past the lease hand-over (`--lease-ttl 2s` plus a tick),
/// so some incarnations drive the rollout and some die before they lead.
const DELAY_MS: (u64, u64) = (100, 3000);

/// How long (ms) a killed server stays dead at most before it is started
/// again (a supervisor's restart delay): agents meanwhile finish jobs and
/// fail to check in, so their results wait in their outboxes.
const DOWN_MS: u64 = 1000;

/// An anchored kill comes this long at most (ms) after a job finished.
const ANCHOR_MS: u64 = 1500;

/// The env var that replays a run's kill delays.
const SEED_VAR: &str = "PATCHBAY_CRASH_SEED";

fn sqlite_server_sigkilled_at_random_points_of_a_good_and_a_bad_rollout() {
    crash_run(Engine::Sqlite);
}

fn postgres_server_sigkilled_at_random_points_of_a_good_and_a_bad_rollout() {
    crash_run(Engine::Postgres);
}

/// Network links of this file's hosts: after `rollout.rs`'s (slots 1–10).
fn first_slot(engine: Engine) -> u8 {
    match engine {
        Engine::Sqlite => 41,
        Engine::Postgres => 41 + HOSTS as u8,
    }
}

/// SplitMix64: a small seeded generator, so a run's kill delays replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The seed: `PATCHBAY_CRASH_SEED`, or one from the clock.
fn seed(engine: Engine) -> u64 {
    match std::env::var(SEED_VAR) {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_VAR}={s:?} is not an unsigned integer")),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            t ^ (engine as u64).wrapping_mul(0x9E37_79B9)
        }
    }
}

/// Phase timings and kill lines, printed as they happen.
struct Clock(Instant, Engine);

impl Clock {
    fn secs(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }

    fn phase(&self, what: &str) {
        println!(
            "  [crash e2e {} {:>6.1}s] {what}",
            self.1.name(),
            self.secs()
        );
    }
}

/// The `patchbay serve` under test and how to start it again as it was.
struct Crashable {
    server: Server,
    db: String,
    bin: PathBuf,
    /// Incarnations started (the first included).
    starts: usize,
}

impl Crashable {
    fn start(engine: Engine) -> Crashable {
        let bin = patchbay_bin();
        let dir = tempfile::Builder::new()
            .prefix("pb-crash-server-")
            .tempdir()
            .unwrap();
        let addr = free_addr();
        let db = db_url(engine, dir.path());
        let child = spawn(&bin, &db, dir.path(), addr);
        let url = format!("http://{addr}");
        let mut c = Crashable {
            server: Server {
                child,
                addr,
                api: Client::new(&url, None, Duration::from_secs(30)),
                dir,
            },
            db,
            bin,
            starts: 1,
        };
        c.wait_up();
        let token = std::fs::read_to_string(c.server.dir.path().join("data/admin.token"))
            .expect("DATA_DIR/admin.token");
        c.server.api = Client::new(&url, Some(token.trim().to_owned()), Duration::from_secs(30));
        c
    }

    /// Waits for `/healthz`; a process that exits is started again (its port
    /// may still be held for a moment), a few times.
    fn wait_up(&mut self) {
        let probe = Client::new(
            &format!("http://{}", self.server.addr),
            None,
            Duration::from_secs(2),
        );
        let start = Instant::now();
        let mut respawns = 0;
        while probe.get_text("/healthz").is_err() {
            if let Ok(Some(st)) = self.server.child.try_wait() {
                assert!(
                    respawns < 5,
                    "patchbay serve (start {}) keeps exiting ({st}):\n{}",
                    self.starts,
                    tail(&self.server.log(), 40)
                );
                respawns += 1;
                std::thread::sleep(Duration::from_millis(200));
                self.server.child = spawn(
                    &self.bin,
                    &self.db,
                    self.server.dir.path(),
                    self.server.addr,
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "patchbay serve (start {}) did not answer /healthz within 60 s:\n{}",
                self.starts,
                tail(&self.server.log(), 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs the server, leaves it dead for `down`, and starts it again on
    /// the same database, data directory and port; returns how long it was
    /// gone.
    fn kill_and_restart(&mut self, down: Duration) -> Duration {
        let t = Instant::now();
        self.server.child.kill().expect("SIGKILL patchbay serve");
        let st = self.server.child.wait().expect("reaping patchbay serve");
        assert!(
            st.code().is_none(),
            "patchbay serve had already exited ({st}) before its kill:\n{}",
            tail(&self.server.log(), 40)
        );
        std::thread::sleep(down);
        self.server.child = spawn(
            &self.bin,
            &self.db,
            self.server.dir.path(),
            self.server.addr,
        );
        self.starts += 1;
        self.wait_up();
        t.elapsed()
    }

    /// Rows of a query on the server's database (tab-separated columns).
    fn sql(&self, query: &str) -> Vec<Vec<String>> {
        let out = if let Some(path) = self.db.strip_prefix("sqlite://") {
            ensure_tools(&[("sqlite3", "sqlite3")]);
            run(Command::new("sqlite3")
                .args(["-batch", "-noheader", "-separator", "\t", path])
                .arg(query))
        } else {
            run(Command::new("psql")
                .args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t", "-F", "\t"])
                .arg(&self.db)
                .arg("-c")
                .arg(query))
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    }
}

/// Starts `patchbay serve`, appending to DIR/server.log.
fn spawn(bin: &Path, db: &str, dir: &Path, addr: SocketAddr) -> Child {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .unwrap();
    Command::new(bin)
        .arg("serve")
        .args(["--db", db])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listen", &addr.to_string()])
        .args(["--duty-tick", "1s", "--lease-ttl", "2s"])
        .env("RUST_LOG", "info")
        .env_remove("PATCHBAY_DB")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()))
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One kill: when, after which delay, and what it hit.
struct Kill {
    at: f64,
    how: String,
    deployment: &'static str,
    during: bool,
    tags: Vec<&'static str>,
    before: String,
    gone: Duration,
}

/// The journal records of `host`.
fn records(h: &Host) -> Vec<Value> {
    if h.root.state.join("journal.jsonl").exists() {
        journal(&h.root.state)
    } else {
        vec![]
    }
}

/// The agent's outbox (empty when it has none yet).
fn outbox(h: &Host) -> Value {
    std::fs::read_to_string(h.root.state.join("outbox.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| json!({}))
}

/// What the deployment looked like (`d`, from the server) and what the hosts
/// were doing with its jobs: a one-line summary and the phases it shows.
fn describe(d: &Value, id: &str, hosts: &[Host]) -> (String, Vec<&'static str>) {
    let mut tags = BTreeSet::new();
    let status = d["deployment"]["status"].as_str().unwrap_or("?").to_owned();
    let mut parts = Vec::new();
    let mut prev_passed = true;
    for r in rings(d) {
        let state = r["state"].as_str().unwrap_or("?");
        let jobs: Vec<String> = r["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| {
                let s = j["state"].as_str().unwrap_or("?");
                match s {
                    "leased" | "preflight" | "applying" | "verifying" => {
                        tags.insert("job leased, no result stored");
                    }
                    "rolling_back" => {
                        tags.insert("rollback");
                    }
                    _ => {}
                }
                s.to_owned()
            })
            .collect();
        match state {
            "soaking" | "awaiting_approval" | "waiting_window" => {
                tags.insert("gating");
            }
            "running"
                if r["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|j| j["state"] == "succeeded" || j["state"] == "failed") =>
            {
                tags.insert("gating");
            }
            "running"
                if r["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|j| j["state"] == "pending") =>
            {
                tags.insert("leasing");
            }
            "pending" if prev_passed && status == "running" => {
                tags.insert("leasing");
            }
            _ => {}
        }
        prev_passed = state == "passed";
        parts.push(format!("{state}[{}]", jobs.join(",")));
    }
    if status == "halted" {
        tags.insert("halted, rollback pending");
    }
    if status == "running"
        && rings(d)
            .iter()
            .flat_map(|r| r["jobs"].as_array().unwrap())
            .any(|j| j["state"] == "failed")
    {
        tags.insert("halting");
    }
    // Host side: jobs of this deployment running, results not acknowledged.
    let mut on_hosts = Vec::new();
    for h in hosts {
        let mut open: BTreeSet<String> = BTreeSet::new();
        for r in records(h) {
            let key = r["job_key"].as_str().unwrap_or("");
            if !key.starts_with(&format!("{id}/")) {
                continue;
            }
            let k = format!("{key}:{}", r["kind"].as_str().unwrap_or("?"));
            match r["event"].as_str() {
                Some("started") => {
                    open.insert(k);
                }
                Some("finished") => {
                    open.remove(&k);
                }
                _ => {}
            }
        }
        if !open.is_empty() {
            tags.insert("job running on a host");
            on_hosts.push(format!("{} running", h.name));
        }
        // A result the agent holds unacknowledged: stored already (its
        // acknowledgement is still to come, or was lost with the kill) or not.
        for r in outbox(h)["results"].as_array().cloned().unwrap_or_default() {
            let key = r["key"].as_str().unwrap_or("");
            if !key.starts_with(&format!("{id}/")) {
                continue;
            }
            let state = rings(d)
                .iter()
                .flat_map(|r| r["jobs"].as_array().unwrap())
                .find(|j| j["spec"]["host"] == h.name)
                .and_then(|j| j["state"].as_str())
                .unwrap_or("?");
            let stored = if key.ends_with("/rollback") {
                matches!(state, "rolled_back" | "rollback_failed")
            } else {
                !matches!(
                    state,
                    "pending" | "leased" | "preflight" | "applying" | "verifying"
                )
            };
            if stored {
                tags.insert("result stored, not yet acknowledged to the agent");
                on_hosts.push(format!("{} result stored, unacked", h.name));
            } else {
                tags.insert("result sent, not yet stored");
                on_hosts.push(format!("{} result not stored", h.name));
            }
        }
    }
    let line = format!(
        "{status} rings {} hosts [{}]",
        parts.join(" "),
        on_hosts.join(", ")
    );
    (line, tags.into_iter().collect())
}

/// The rollouts: `rollout.rs`'s rings with soaks after the canary and the
/// pilot ring (kills land in gating too).
fn crash_spec(version: &str, canary: &str) -> Value {
    json!({"packages": [{"name": "pb-demo", "version": version}],
    "checks": ["web"],
    "rings": [
        {"name": "ring0-canary", "assets": [canary], "soak": "4s"},
        {"name": "ring1-pilot", "size": "2", "max_concurrent": "1", "error_budget": "1", "soak": "4s"},
        {"name": "ring2-broad", "max_concurrent": "100%", "error_budget": "1"}
    ]})
}

/// Creates and starts a deployment; its id and how it looked before.
fn create_and_start(s: &Server, body: Value) -> (String, Value) {
    let d = s.post("/api/v1/deployments", body);
    let id = d["deployment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(d["deployment"]["status"], "draft", "{d:#}");
    let shown = s.get(&format!("/api/v1/deployments/{id}"));
    s.post(&format!("/api/v1/deployments/{id}/start"), json!({}));
    (id, shown)
}

/// Whether the good rollout is over.
fn good_final(d: &Value) -> bool {
    d["deployment"]["status"] != "running"
}

/// Whether the bad rollout is over: halted (or otherwise stopped) and the
/// canary's job settled (rolled back).
fn bad_final(d: &Value) -> bool {
    d["deployment"]["status"] != "running"
        && matches!(
            rings(d)[0]["jobs"][0]["state"].as_str(),
            Some("rolled_back" | "rollback_failed" | "succeeded" | "skipped")
        )
}

/// Drives deployment `id` to `done` while killing the server at random
/// moments; returns the final deployment.
#[allow(clippy::too_many_arguments)]
fn run_with_kills(
    c: &mut Crashable,
    hosts: &[Host],
    clock: &Clock,
    rng: &mut Rng,
    kills: &mut Vec<Kill>,
    label: &'static str,
    id: &str,
    done: fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    let limit = Duration::from_secs(150);
    loop {
        let d = c.server.get(&format!("/api/v1/deployments/{id}"));
        if done(&d) {
            return d;
        }
        if start.elapsed() > limit {
            let logs: Vec<String> = hosts
                .iter()
                .map(|h| format!("--- {} agent log\n{}", h.name, tail(&h.agent_log(), 15)))
                .collect();
            panic!(
                "{label} deployment {id} not done after {limit:?} and {} kills: {:#}\n{}\n--- server log\n{}",
                kills.len(),
                d["rollout"],
                logs.join("\n"),
                tail(&c.server.log(), 40)
            );
        }
        // Four draws per kill whatever happens, so a seed replays the same
        // delays: a plain random moment, or (one kill in three) a moment
        // shortly after a host finished a job of this deployment — when its
        // result travels, is stored, taken in and acted on (the next ring
        // leased, the ring halted, the rollback leased).
        let delay_ms = rng.range(DELAY_MS.0, DELAY_MS.1);
        let anchored = rng.range(0, 2) == 0;
        let after_ms = rng.range(0, ANCHOR_MS);
        let down_ms = rng.range(0, DOWN_MS);
        let how = if anchored {
            // At the random delay anyway if no job finishes before it.
            let base = finished(hosts, id);
            let t = Instant::now();
            let delay = Duration::from_millis(delay_ms);
            while finished(hosts, id) == base && t.elapsed() < delay {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.elapsed() < delay {
                let after = Duration::from_millis(after_ms).min(delay - t.elapsed());
                std::thread::sleep(after);
                format!("{} ms after a job finished", after.as_millis())
            } else {
                format!("+{delay_ms} ms")
            }
        } else {
            std::thread::sleep(Duration::from_millis(delay_ms));
            format!("+{delay_ms} ms")
        };
        // What the deployment looks like just before the kill: the server's
        // view, the hosts', and the job rows' windows in the database.
        let before = c
            .server
            .api
            .get::<Value>(&format!("/api/v1/deployments/{id}"));
        let windows = job_windows(c, id);
        let at = clock.secs();
        let gone = c.kill_and_restart(Duration::from_millis(down_ms));
        let (during, line, tags) = match &before {
            Ok(d) => {
                let (line, mut tags) = describe(d, id, hosts);
                tags.extend(windows);
                (!done(d), line, tags)
            }
            Err(e) => (false, format!("(not read: {e})"), vec![]),
        };
        println!(
            "    kill {:>2} at {at:>6.1}s ({how}) {label}{}: {line} {{{}}} — back in {:.2} s",
            kills.len() + 1,
            if during { "" } else { " (already final)" },
            tags.join("; "),
            gone.as_secs_f64()
        );
        kills.push(Kill {
            at,
            how,
            deployment: label,
            during,
            tags,
            before: line,
            gone,
        });
    }
}

/// How many jobs of deployment `id` the hosts' journals show finished.
fn finished(hosts: &[Host], id: &str) -> usize {
    hosts
        .iter()
        .flat_map(records)
        .filter(|r| {
            r["event"] == "finished"
                && r["job_key"]
                    .as_str()
                    .is_some_and(|k| k.starts_with(&format!("{id}/")))
        })
        .count()
}

/// The windows a crash can hit that only the database shows: a job row
/// leased but not yet handed to its agent, a result stored but not yet
/// taken in by the driver.
fn job_windows(c: &Crashable, id: &str) -> Vec<&'static str> {
    let rows = c.sql(&format!(
        "SELECT CASE WHEN result IS NULL AND delivered_at IS NULL THEN 'undelivered' \
         WHEN result IS NOT NULL AND consumed_at IS NULL THEN 'unconsumed' ELSE 'other' END \
         FROM agent_jobs WHERE deployment = '{id}'"
    ));
    let mut out = Vec::new();
    if rows.iter().any(|r| r[0] == "undelivered") {
        out.push("job row leased, not yet delivered");
    }
    if rows.iter().any(|r| r[0] == "unconsumed") {
        out.push("result stored, not yet taken in by the driver");
    }
    out
}

/// The server's `agent_jobs` rows of a deployment: key → (asset, result,
/// delivered, consumed).
fn job_rows(c: &Crashable, id: &str) -> BTreeMap<String, (String, Value, bool, bool)> {
    let rows = c.sql(&format!(
        "SELECT key, asset, COALESCE(result, 'null'), \
         CASE WHEN delivered_at IS NULL THEN 'no' ELSE 'yes' END, \
         CASE WHEN consumed_at IS NULL THEN 'no' ELSE 'yes' END \
         FROM agent_jobs WHERE deployment = '{id}' ORDER BY key"
    ));
    rows.into_iter()
        .map(|r| {
            assert_eq!(r.len(), 5, "agent_jobs row {r:?}");
            let result: Value = serde_json::from_str(&r[2]).unwrap_or_else(|e| {
                panic!("stored result of {} is not JSON ({e}): {}", r[0], r[2])
            });
            (
                r[0].clone(),
                (r[1].clone(), result, r[3] == "yes", r[4] == "yes"),
            )
        })
        .collect()
}

fn crash_run(engine: Engine) {
    let clock = Clock(Instant::now(), engine);
    ensure_tools(&[("ip", "iproute2")]);
    let seed = seed(engine);
    println!(
        "  [crash e2e {}] kill seed {seed} (replay: {SEED_VAR}={seed})",
        engine.name()
    );
    let mut rng = Rng(seed);
    let repo = deb_repo();
    let repo_addr: SocketAddr = repo
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let mut c = Crashable::start(engine);
    let server_addr = c.server.addr;
    clock.phase(&format!("server up on {server_addr}"));
    let mut hosts: Vec<Host> = in_parallel(HOSTS as u8, |n| {
        Host::prepare(n, first_slot(engine) + n - 1, repo_addr, server_addr)
    });
    clock.phase(&format!(
        "{HOSTS} Debian roots with pb-demo 1.0, each in its namespace"
    ));
    let et = c.server.post(
        "/api/v1/enroll-tokens",
        json!({"uses": HOSTS, "ttl_secs": 3600}),
    );
    let et = et["token"].as_str().unwrap().to_owned();
    for h in &mut hosts {
        h.start_agent(&et);
    }
    for h in &hosts {
        let path = format!("/api/v1/assets/{}", h.name);
        wait_for(
            &format!("{} to enrol and report its inventory", h.name),
            Duration::from_secs(60),
            || {
                c.server
                    .api
                    .get::<Value>(&path)
                    .is_ok_and(|a| a["inventory_hash"].is_string())
            },
        );
    }
    clock.phase(&format!("{HOSTS} agents enrolled"));

    // Slow jobs (the `web` check takes 4 s, before and after each change)
    // and soaks: a crash-free run of both rollouts takes about a minute, so
    // the kills land in every phase of it.
    for h in &hosts {
        std::fs::write(&h.slow, "").unwrap();
    }
    let mut kills = Vec::new();
    // ---- The good rollout: 1.1.
    let canary = hosts[0].name.clone();
    let (good, _) = create_and_start(&c.server, crash_spec("1.1", &canary));
    clock.phase(&format!(
        "{good} (1.1) started; killing the server at random"
    ));
    let d = run_with_kills(
        &mut c, &hosts, &clock, &mut rng, &mut kills, "good", &good, good_final,
    );
    let good_kills = kills.iter().filter(|k| k.during).count();
    clock.phase(&format!(
        "{good}: {} ({:?}) after {good_kills} kills during it",
        d["deployment"]["status"],
        crate::rollout::ring_states(&d)
    ));

    // ---- The bad rollout: 1.2 fails `web` in the canary.
    let (bad, _) = create_and_start(&c.server, crash_spec("1.2", &canary));
    clock.phase(&format!(
        "{bad} (1.2) started; killing the server at random"
    ));
    let b = run_with_kills(
        &mut c, &hosts, &clock, &mut rng, &mut kills, "bad", &bad, bad_final,
    );
    let bad_kills = kills.iter().filter(|k| k.during).count() - good_kills;
    clock.phase(&format!(
        "{bad}: {} ({:?}) after {bad_kills} kills during it — {}",
        b["deployment"]["status"],
        crate::rollout::ring_states(&b),
        b["rollout"]["reason"].as_str().unwrap_or("")
    ));
    // The server stays up from here: give a later ring every chance to be
    // leased (it must not be), and every agent time to send what it holds.
    std::thread::sleep(Duration::from_secs(3));
    wait_for(
        "every agent's results to be acknowledged",
        Duration::from_secs(60),
        || {
            hosts
                .iter()
                .all(|h| outbox(h)["results"].as_array().is_none_or(|a| a.is_empty()))
        },
    );
    clock.phase("server left up: every agent's outbox empty");

    // ---- The kills.
    let during: Vec<&Kill> = kills.iter().filter(|k| k.during).collect();
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    for k in &during {
        for t in &k.tags {
            *tally.entry(t).or_default() += 1;
        }
    }
    let gone: Vec<f64> = kills.iter().map(|k| k.gone.as_secs_f64()).collect();
    let led = c
        .server
        .log()
        .lines()
        .filter(|l| l.contains("took the leader lease"))
        .count();
    println!(
        "    {} server starts, {led} of them took the leader lease (a restarted server waits out its predecessor's 2 s lease)",
        c.starts
    );
    println!(
        "    {} kills, {} during a rollout (good {good_kills}, bad {bad_kills}), {} of them shortly after a job finished; restart took {:.2}–{:.2} s; what they hit: {tally:?}",
        kills.len(),
        during.len(),
        during
            .iter()
            .filter(|k| k.how.contains("after a job"))
            .count(),
        gone.iter().copied().fold(f64::INFINITY, f64::min),
        gone.iter().copied().fold(0.0, f64::max),
    );
    assert!(
        during.len() >= MIN_KILLS,
        "only {} of {} kills fell while a deployment was not final (want ≥ {MIN_KILLS}; seed {seed}):\n{}",
        during.len(),
        kills.len(),
        kills
            .iter()
            .map(|k| format!(
                "{:.1}s ({}) {} {}: {}",
                k.at, k.how, k.deployment, k.during, k.before
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        good_kills > 0 && bad_kills > 0,
        "kills during the good rollout: {good_kills}, the bad one: {bad_kills} (seed {seed})"
    );

    // ---- The good rollout ended as a crash-free one does.
    let d = c.server.get(&format!("/api/v1/deployments/{good}"));
    assert_eq!(d["deployment"]["status"], "completed", "{:#}", d["rollout"]);
    for r in rings(&d) {
        assert_eq!(r["state"], "passed", "{r:#}");
        let gates: Vec<&str> = r["gates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["gate"].as_str().unwrap())
            .collect();
        for g in ["success_rate", "health", "soak"] {
            assert!(
                gates.contains(&g),
                "{}: no {g} verdict: {gates:?}",
                r["spec"]["name"]
            );
        }
        for g in r["gates"].as_array().unwrap() {
            assert_eq!(g["verdict"], "pass", "{g:#}");
        }
        for j in r["jobs"].as_array().unwrap() {
            assert_eq!(j["state"], "succeeded", "{j:#}");
        }
    }
    // Ring by ring, even across crashes.
    let mut prev_done: Option<jiff::Timestamp> = None;
    for r in rings(&d) {
        for j in r["jobs"].as_array().unwrap() {
            let leased = ts(&j["leased_at"]).expect("leased_at");
            if let Some(p) = prev_done {
                assert!(
                    leased >= p,
                    "{j:#} leased before the previous ring ended ({p})"
                );
            }
        }
        prev_done = ts(&r["done_at"]);
    }

    // ---- The bad rollout halted in the canary and rolled it back.
    let b = c.server.get(&format!("/api/v1/deployments/{bad}"));
    assert_eq!(b["deployment"]["status"], "halted", "{:#}", b["rollout"]);
    assert!(
        b["rollout"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("error budget"),
        "{:#}",
        b["rollout"]
    );
    let canary_job = &rings(&b)[0]["jobs"][0];
    assert_eq!(canary_job["state"], "rolled_back", "{canary_job:#}");
    for r in &rings(&b)[1..] {
        for j in r["jobs"].as_array().unwrap() {
            assert_eq!(j["state"], "skipped", "{j:#}");
            assert!(j["leased_at"].is_null(), "{j:#}");
        }
    }

    // ---- The roots: dpkg is the judge.
    for h in &hosts {
        assert_eq!(
            h.root.version("pb-demo").as_deref(),
            Some("1.1"),
            "{}: pb-demo after the rollouts",
            h.name
        );
        assert!(h.web_passes(), "{}", h.name);
    }
    let rb = hosts[0].journal_of(&format!("{bad}/{canary}"));
    assert!(
        rb.iter()
            .any(|r| r["kind"] == "rollback" && r["event"] == "finished" && r["ok"] == true),
        "no finished rollback in the canary's journal: {rb:#?}"
    );

    // ---- Each agent: every key executed at most once (and finished).
    // Server job key of a journal record: apply keys are the job keys, a
    // rollback journals under the key it rolls back (job `KEY/rollback`).
    let mut executed: BTreeMap<String, (String, bool, String)> = BTreeMap::new();
    for h in &hosts {
        let mut seen: BTreeMap<(String, String, String), usize> = BTreeMap::new();
        for r in records(h) {
            let key = r["job_key"].as_str().unwrap_or("?").to_owned();
            let kind = r["kind"].as_str().unwrap_or("?").to_owned();
            let what = match r["event"].as_str() {
                Some("step") => format!("step {}", r["step"].as_str().unwrap_or("?")),
                Some(e) => e.to_owned(),
                None => "?".into(),
            };
            *seen
                .entry((key.clone(), kind.clone(), what.clone()))
                .or_default() += 1;
            if what == "finished" {
                let job_key = if kind == "rollback" {
                    format!("{key}/rollback")
                } else {
                    key.clone()
                };
                let ok = r["ok"] == true;
                let prev = executed.insert(job_key.clone(), (h.name.clone(), ok, kind.clone()));
                assert!(
                    prev.is_none(),
                    "{job_key} finished on two hosts or twice: {prev:?}"
                );
            }
        }
        for ((key, kind, what), n) in &seen {
            assert_eq!(
                *n, 1,
                "{}: {kind} {key}: `{what}` journalled {n} times — executed more than once",
                h.name
            );
        }
        let starts: BTreeSet<(&String, &String)> = seen
            .keys()
            .filter(|(_, _, w)| w == "started")
            .map(|(k, kind, _)| (k, kind))
            .collect();
        let finishes: BTreeSet<(&String, &String)> = seen
            .keys()
            .filter(|(_, _, w)| w == "finished")
            .map(|(k, kind, _)| (k, kind))
            .collect();
        assert_eq!(
            starts, finishes,
            "{}: a job started and never finished",
            h.name
        );
        let o = outbox(h);
        assert!(
            o["pending"].as_array().is_none_or(|a| a.is_empty())
                && o["results"].as_array().is_none_or(|a| a.is_empty()),
            "{}: outbox not drained: {o:#}",
            h.name
        );
    }
    let mut expected: BTreeSet<String> =
        hosts.iter().map(|h| format!("{good}/{}", h.name)).collect();
    expected.insert(format!("{bad}/{canary}"));
    expected.insert(format!("{bad}/{canary}/rollback"));
    assert_eq!(
        executed.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "the jobs the agents ran"
    );

    // ---- Nothing lost: every result an agent recorded is stored once, with
    // the agent's outcome and finish time, and taken in by the driver; the
    // only job rows are a crash-free run's.
    let mut rows = job_rows(&c, &good);
    rows.extend(job_rows(&c, &bad));
    // Control samples (`…/control/RING/HOST`: health checks run on
    // not-yet-patched hosts of later rings while a ring runs) are read-only
    // jobs of their own; checked apart below.
    let (control_rows, rows): (BTreeMap<_, _>, BTreeMap<_, _>) =
        rows.into_iter().partition(|(k, _)| k.contains("/control/"));
    assert_eq!(
        rows.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "the server's agent_jobs rows"
    );
    let mut agent_results: BTreeMap<String, Value> = BTreeMap::new();
    for h in &hosts {
        for r in outbox(h)["done"].as_array().cloned().unwrap_or_default() {
            let key = r["key"].as_str().unwrap_or("?").to_owned();
            assert!(
                agent_results.insert(key.clone(), r).is_none(),
                "{key} acknowledged to two agents"
            );
        }
    }
    let (control_results, agent_results): (BTreeMap<_, _>, BTreeMap<_, _>) = agent_results
        .into_iter()
        .partition(|(k, _)| k.contains("/control/"));
    assert_eq!(
        agent_results.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "the results the agents recorded and had acknowledged"
    );
    let audits = c.server.audit("job.result");
    // Control samples: each stored once as its agent recorded it.
    assert_eq!(
        control_rows.keys().collect::<BTreeSet<_>>(),
        control_results.keys().collect::<BTreeSet<_>>(),
        "control samples: the server's rows and the agents' results"
    );
    assert!(!control_rows.is_empty(), "no control sample was taken");
    for (key, (asset, stored, delivered, consumed)) in &control_rows {
        assert!(key.ends_with(&format!("/{asset}")), "{key} on {asset}");
        assert!(
            *delivered && *consumed,
            "{key}: delivered {delivered}, consumed {consumed}"
        );
        assert_eq!(stored["outcome"], control_results[key]["outcome"], "{key}");
        assert_eq!(
            stored["finished_at"], control_results[key]["finished_at"],
            "{key}"
        );
        let n = audits
            .iter()
            .filter(|e| e["target"] == format!("job:{key}"))
            .count();
        assert_eq!(n, 1, "{key}: {n} job.result audit entries");
    }
    for (key, (asset, stored, delivered, consumed)) in &rows {
        let (host, ok, kind) = &executed[key];
        assert_eq!(asset, host, "{key}: row's asset");
        assert!(delivered, "{key}: never marked delivered");
        assert!(consumed, "{key}: result never taken in by the driver");
        let mine = &agent_results[key];
        assert_eq!(
            stored["outcome"], mine["outcome"],
            "{key}: stored {stored:#} agent {mine:#}"
        );
        assert_eq!(stored["finished_at"], mine["finished_at"], "{key}");
        let want = match (kind.as_str(), ok) {
            ("apply", true) => "succeeded",
            ("apply", false) => "failed",
            ("rollback", true) => "rolled_back",
            _ => "rollback_failed",
        };
        assert_eq!(stored["outcome"], want, "{key}: stored {stored:#}");
        let n = audits
            .iter()
            .filter(|e| e["target"] == format!("job:{key}"))
            .count();
        assert_eq!(n, 1, "{key}: {n} job.result audit entries");
    }
    clock.phase(&format!(
        "final state as without crashes; {} job keys each run once on their host, each result stored once and taken in",
        expected.len()
    ));
    drop_in_parallel(hosts);
    clock.phase("agents stopped, namespaces and roots removed");
}
