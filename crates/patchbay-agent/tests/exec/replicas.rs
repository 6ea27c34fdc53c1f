//! Replicas behind a real load balancer (issue 12, item 9): **three**
//! `patchbay serve` processes on one fresh PostgreSQL database (each on its
//! own port, `--lease-ttl 3s --duty-tick 250ms`, sharing the signing key),
//! behind **HAProxy** from Debian on 127.0.0.1 (configuration written here:
//! round robin, health checks on `/healthz` every 250 ms, `retries` with
//! `option redispatch` and `retry-on conn-failure empty-response
//! response-timeout` — a check-in is safe to replay: results are stored once
//! per key and jobs are re-delivered until answered —, timeouts longer than
//! the long poll), and three real agents on debootstrapped Debian 12 roots
//! with `pb-demo` 1.0, jobs enabled and 20 s long polls, checking in through
//! HAProxy only. The test's own API calls go through HAProxy too.
//!
//! - Rolling restart: during the rollout of `pb-demo` 1.1 every replica in
//!   turn gets SIGTERM, is waited for (it must exit within a few seconds
//!   although agents hold 20 s long polls: a draining replica answers them at
//!   once) and is started again on the same port. No agent check-in fails
//!   (the agents' logs), HAProxy answered no 5xx, every root has 1.1, and
//!   every job ran exactly once (journal: one start and one finish per key;
//!   one `job.result` audit entry per key; one `agent_jobs` row per host).
//! - Leader kill: during the rollout of 1.2 (whose check passes here), once
//!   the canary's job is leased, the replica holding the leader lease (the
//!   `leases` row names its process id) is SIGKILLed. Another replica holds
//!   the lease within the TTL plus a tick (measured, printed, asserted with a
//!   small allowance for a loaded machine), the rollout completes, and no
//!   job was dispatched twice (one row per key in `agent_jobs`, one start per
//!   key in each journal, one `job.result` per key).

use crate::rollout::{fresh_postgres, job_of, ring_states, rings, toml_str, ts};
use crate::support::{
    AGENT, Root, debian_root, drop_in_parallel, ensure_tools, in_parallel, journal, kill_tree, run,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use patchbay_client::Client;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TESTS: &[crate::Test] = &[(
    "replicas::postgres_three_replicas_behind_haproxy_rolling_restart_and_leader_kill",
    postgres_three_replicas_behind_haproxy_rolling_restart_and_leader_kill,
)];

const REPLICAS: usize = 3;
/// A moment of a rollout (what, and whether a deployment shows it).
type Milestone<'a> = (&'static str, Box<dyn Fn(&Value) -> bool + 'a>);
const HOSTS: usize = 3;
/// `--lease-ttl` of every replica.
const LEASE_TTL: Duration = Duration::from_secs(3);
/// `--duty-tick` of every replica.
const DUTY_TICK: Duration = Duration::from_millis(250);
/// The agents' `--long-poll`, seconds.
const LONG_POLL: u32 = 20;

/// Phase timings, printed as they happen.
struct Clock(Instant);

impl Clock {
    fn phase(&self, what: &str) {
        println!(
            "  [replicas {:>6.1}s] {what}",
            self.0.elapsed().as_secs_f64()
        );
    }
}

/// A free port on 127.0.0.1 (bound and released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `patchbay serve` replica: its port, data directory and log (appended
/// across restarts).
struct Replica {
    name: String,
    port: u16,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Replica {
    fn start(&mut self, db: &str) {
        let bin = Path::new(AGENT).with_file_name("patchbay");
        assert!(
            bin.is_file(),
            "{} is missing; build it: cargo build -p patchbay",
            bin.display()
        );
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&bin)
            .arg("serve")
            .args(["--db", db])
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--lease-ttl", &format!("{}s", LEASE_TTL.as_secs())])
            .args(["--duty-tick", &format!("{}ms", DUTY_TICK.as_millis())])
            .env("RUST_LOG", "info")
            .env_remove("PATCHBAY_DB")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} for {}: {e}", bin.display(), self.name));
        self.child = Some(child);
        let probe = Client::new(
            &format!("http://127.0.0.1:{}", self.port),
            None,
            Duration::from_secs(2),
        );
        let start = Instant::now();
        while probe.get_text("/healthz").is_err() {
            if let Ok(Some(st)) = self.child.as_mut().unwrap().try_wait() {
                panic!("{} exited ({st}):\n{}", self.name, self.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{} did not answer /healthz within 60 s:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running replica").id()
    }

    /// Sends `sig` and waits (at most `limit`) for the process to exit;
    /// returns how long it took and how it ended.
    fn stop(&mut self, sig: Signal, limit: Duration) -> (Duration, std::process::ExitStatus) {
        let mut child = self.child.take().expect("a running replica");
        let t = Instant::now();
        kill(Pid::from_raw(child.id() as i32), sig)
            .unwrap_or_else(|e| panic!("sending {sig} to {}: {e}", self.name));
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return (t.elapsed(), st);
            }
            if t.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not exit within {limit:?} of {sig}:\n{}",
                    self.name,
                    tail(&self.log_text(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// HAProxy in the foreground, killed on drop.
struct Haproxy {
    child: Child,
    port: u16,
    socket: PathBuf,
    log: PathBuf,
}

impl Haproxy {
    fn start(dir: &Path, replicas: &[Replica]) -> Haproxy {
        let port = free_port();
        let socket = dir.join("haproxy.sock");
        let servers: String = replicas
            .iter()
            .map(|r| format!("    server {} 127.0.0.1:{} check\n", r.name, r.port))
            .collect();
        // Timeouts exceed the long poll (20 s; the server caps it at 55 s).
        let cfg = format!(
            "global\n\
             \x20   stats socket {sock} mode 600 level admin\n\
             \x20   maxconn 512\n\
             \x20   log stderr format raw local0 info\n\
             defaults\n\
             \x20   mode http\n\
             \x20   log global\n\
             \x20   option httplog\n\
             \x20   timeout connect 1s\n\
             \x20   timeout client 90s\n\
             \x20   timeout server 90s\n\
             \x20   timeout http-request 10s\n\
             \x20   timeout queue 10s\n\
             \x20   retries 3\n\
             \x20   option redispatch 1\n\
             \x20   retry-on conn-failure empty-response response-timeout\n\
             frontend patchbay\n\
             \x20   bind 127.0.0.1:{port}\n\
             \x20   default_backend replicas\n\
             backend replicas\n\
             \x20   balance roundrobin\n\
             \x20   option httpchk\n\
             \x20   http-check send meth GET uri /healthz\n\
             \x20   http-check expect status 200\n\
             \x20   default-server inter 250ms fall 1 rise 1\n\
             {servers}",
            sock = socket.display(),
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, &cfg).unwrap();
        let check = run(Command::new("haproxy").arg("-c").arg("-f").arg(&path));
        assert!(check.status.success(), "haproxy -c rejects:\n{cfg}");
        let log = dir.join("haproxy.log");
        let out = File::create(&log).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting haproxy: {e}"));
        let mut h = Haproxy {
            child,
            port,
            socket,
            log,
        };
        let probe = Client::new(&h.url(), None, Duration::from_secs(2));
        let start = Instant::now();
        while probe.get_text("/healthz").is_err() {
            if let Ok(Some(st)) = h.child.try_wait() {
                panic!(
                    "haproxy exited ({st}):\n{}",
                    std::fs::read_to_string(&h.log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "haproxy on port {port} did not pass /healthz through within 30 s:\n{}",
                std::fs::read_to_string(&h.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        h
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// HAProxy's request log (`option httplog`, one line per request).
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Check-ins in the request log after `from` bytes: (per replica, per
    /// status code).
    fn checkins_since(&self, from: usize) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
        let text = self.log_text();
        let (mut per_server, mut per_status) = (BTreeMap::new(), BTreeMap::new());
        for l in text[from.min(text.len())..]
            .lines()
            .filter(|l| l.contains("POST /agent/v1/checkin"))
        {
            // `… patchbay replicas/r2 0/0/0/5/5 200 …`
            let mut words = l.split_whitespace();
            if let Some(srv) = words.find(|w| w.starts_with("replicas/")) {
                let _timers = words.next();
                let status = words.next().unwrap_or("?");
                *per_server
                    .entry(srv.trim_start_matches("replicas/").to_owned())
                    .or_insert(0) += 1;
                *per_status.entry(status.to_owned()).or_insert(0) += 1;
            }
        }
        (per_server, per_status)
    }

    /// `show stat` on the admin socket: (proxy, server) → column → value.
    fn stats(&self) -> BTreeMap<(String, String), BTreeMap<String, String>> {
        let mut s = UnixStream::connect(&self.socket)
            .unwrap_or_else(|e| panic!("haproxy stats socket {}: {e}", self.socket.display()));
        s.write_all(b"show stat\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .and_then(|l| l.strip_prefix("# "))
            .unwrap_or_else(|| panic!("haproxy show stat: no header in {text:?}"))
            .split(',')
            .collect();
        let mut out = BTreeMap::new();
        for l in lines.filter(|l| !l.is_empty()) {
            let row: BTreeMap<String, String> = header
                .iter()
                .zip(l.split(','))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            out.insert((row["pxname"].clone(), row["svname"].clone()), row);
        }
        out
    }

    /// A counter of a stats row (0 when empty).
    fn counter(&self, px: &str, sv: &str, col: &str) -> u64 {
        self.stats()
            .get(&(px.to_owned(), sv.to_owned()))
            .and_then(|r| r.get(col))
            .map(|v| v.parse().unwrap_or(0))
            .unwrap_or_else(|| panic!("haproxy stats: no {px}/{sv} {col}"))
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One host: a Debian root with pb-demo 1.0 and its agent process.
struct Host {
    name: String,
    root: Root,
    agent: Option<Child>,
}

impl Host {
    fn prepare(n: usize) -> Host {
        let name = format!("rep-h{n}");
        let root = debian_root(&["pb-demo=1.0"]);
        std::fs::write(root.path.join("etc/hostname"), format!("{name}\n")).unwrap();
        std::fs::write(root.path.join("etc/machine-id"), format!("rep{n:029x}\n")).unwrap();
        // The check takes a second: a job lasts long enough to overlap restarts.
        root.config(&format!(
            "[jobs]\nenabled = true\nreboot_command = [\"/bin/false\"]\n\n[[check]]\nname = \"web\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", {}]\ntimeout_secs = 30\n",
            toml_str("sleep 1")
        ));
        Host {
            name,
            root,
            agent: None,
        }
    }

    /// The agent in loop mode, checking in through HAProxy.
    fn start_agent(&mut self, server: &str, enroll_token: &str) {
        let log = File::create(self.root.scratch.join("agent.log")).unwrap();
        let child = Command::new(AGENT)
            .args(["--server", server, "--enroll-token", enroll_token])
            .arg("--root")
            .arg(&self.root.path)
            .arg("--state-dir")
            .arg(&self.root.state)
            .arg("--config")
            .arg(self.root.scratch.join("agent.toml"))
            .args([
                "--interval",
                "1s",
                "--long-poll",
                &LONG_POLL.to_string(),
                "--no-pending-updates",
            ])
            .env_remove("PATCHBAY_SERVER")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agent = Some(child);
    }

    fn agent_log(&self) -> String {
        std::fs::read_to_string(self.root.scratch.join("agent.log")).unwrap_or_default()
    }

    /// (check-ins that succeeded, check-ins that failed) so far.
    fn checkins(&self) -> (usize, usize) {
        let log = self.agent_log();
        (
            log.lines().filter(|l| l.contains("checked in")).count(),
            log.lines()
                .filter(|l| l.contains("check-in failed"))
                .count(),
        )
    }

    fn journal_of(&self, key: &str) -> Vec<Value> {
        if !self.root.state.join("journal.jsonl").exists() {
            return vec![];
        }
        journal(&self.root.state)
            .into_iter()
            .filter(|r| r["job_key"] == key)
            .collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(c) = self.agent.take() {
            kill_tree(c.id());
            let mut c = c;
            let _ = c.wait();
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `psql -At` on the test database; one line per row, `|` between columns.
fn sql(db: &str, query: &str) -> Vec<String> {
    let out = run(Command::new("psql")
        .args(["-v", "ON_ERROR_STOP=1", "-At", db, "-c"])
        .arg(query));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The leader lease's holder (`host:pid:suffix`), if any.
fn lease_holder(db: &str) -> Option<String> {
    sql(db, "SELECT holder FROM leases WHERE name = 'duties'")
        .into_iter()
        .next()
}

/// The process id in a holder name.
fn holder_pid(holder: &str) -> u32 {
    holder
        .split(':')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("lease holder {holder:?} names no process id"))
}

fn spec(version: &str, canary: &str, soak: &str) -> Value {
    json!({"packages": [{"name": "pb-demo", "version": version}],
    "checks": ["web"],
    "rings": [
        {"name": "ring0-canary", "assets": [canary], "soak": soak},
        {"name": "ring1-rest", "max_concurrent": "100%", "error_budget": "1"}
    ]})
}

struct Api(Client);

impl Api {
    fn get(&self, path: &str) -> Value {
        self.0
            .get(path)
            .unwrap_or_else(|e| panic!("GET {path} through haproxy: {e}"))
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.0
            .send("POST", path, &body)
            .unwrap_or_else(|e| panic!("POST {path} {body} through haproxy: {e}"))
    }

    fn deployment(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/deployments/{id}"))
    }

    fn start_deployment(&self, version: &str, canary: &str, soak: &str) -> String {
        let d = self.post("/api/v1/deployments", spec(version, canary, soak));
        let id = d["deployment"]["id"].as_str().unwrap().to_owned();
        self.post(&format!("/api/v1/deployments/{id}/start"), json!({}));
        id
    }

    /// `job.result` audit entries per job key of deployment `id`.
    fn results_per_key(&self, id: &str) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for e in self.get("/api/v1/audit?limit=10000")["items"]
            .as_array()
            .unwrap()
        {
            let target = e["target"].as_str().unwrap_or("");
            if e["action"] == "job.result"
                && let Some(key) = target.strip_prefix("job:")
                && key.starts_with(&format!("{id}/"))
                // Control samples (read-only health checks of later rings'
                // hosts) are counted apart.
                && !key.contains("/control/")
            {
                *out.entry(key.to_owned()).or_insert(0) += 1;
            }
        }
        out
    }
}

/// Polls until deployment `id` is no longer running (at most `limit`).
fn wait_done(api: &Api, hosts: &[Host], replicas: &[Replica], id: &str, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let d = api.deployment(id);
        if d["deployment"]["status"] != "running" {
            return d;
        }
        if start.elapsed() > limit {
            let agents: Vec<String> = hosts
                .iter()
                .map(|h| format!("--- {} agent log\n{}", h.name, tail(&h.agent_log(), 15)))
                .collect();
            let servers: Vec<String> = replicas
                .iter()
                .map(|r| format!("--- {} log\n{}", r.name, tail(&r.log_text(), 20)))
                .collect();
            panic!(
                "deployment {id} still running after {limit:?}: {:#}\n{}\n{}",
                d["rollout"],
                agents.join("\n"),
                servers.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every job of `id` ran exactly once: one `agent_jobs` row per host, one
/// start and one finish per key in its host's journal, one `job.result`
/// audit entry per key; every root has `version`.
fn assert_each_job_once(api: &Api, db: &str, hosts: &[Host], id: &str, version: &str) {
    let d = api.deployment(id);
    assert_eq!(d["deployment"]["status"], "completed", "{:#}", d["rollout"]);
    assert_eq!(ring_states(&d), vec!["passed"; 2], "{:#}", d["rollout"]);
    let rows = sql(
        db,
        &format!(
            "SELECT key, asset, (result_at IS NOT NULL)::text FROM agent_jobs \
             WHERE deployment = '{id}' AND key NOT LIKE '%/control/%' ORDER BY key"
        ),
    );
    let mut expected: Vec<String> = hosts
        .iter()
        .map(|h| format!("{id}/{}|{}|true", h.name, h.name))
        .collect();
    expected.sort();
    assert_eq!(rows, expected, "the jobs of {id} in agent_jobs");
    let results = api.results_per_key(id);
    let mut latencies = Vec::new();
    for h in hosts {
        let key = format!("{id}/{}", h.name);
        assert_eq!(job_of(&d, &h.name)["state"], "succeeded", "{key}");
        let recs = h.journal_of(&key);
        let started = recs.iter().filter(|r| r["event"] == "started").count();
        let finished = recs.iter().filter(|r| r["event"] == "finished").count();
        assert_eq!(
            (started, finished),
            (1, 1),
            "{key} in {}'s journal: {recs:#?}",
            h.name
        );
        // Dispatch through haproxy: from the lease (made by the leader) to
        // the agent's journal starting the job, whichever replica the agent's
        // long poll was on (a poll on another replica re-checks every 250 ms).
        let leased = ts(&job_of(&d, &h.name)["leased_at"]).expect("leased_at");
        let started = recs
            .iter()
            .find(|r| r["event"] == "started")
            .and_then(|r| ts(&r["ts"]))
            .expect("a start time");
        // From when the agent was free: it may have been running a control
        // sample (a health check asked while an earlier ring ran).
        let busy_until = d["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| {
                r["key"].as_str().is_some_and(|k| {
                    k.contains("/control/") && k.ends_with(&format!("/{}", h.name))
                })
            })
            .filter_map(|r| ts(&r["finished_at"]))
            .max();
        let from = busy_until.map_or(leased, |b| b.max(leased));
        latencies.push(started.duration_since(from).as_secs_f64());
        assert_eq!(
            results.get(&key),
            Some(&1),
            "job.result entries of {key}: {results:?}"
        );
        assert_eq!(
            h.root.version("pb-demo").as_deref(),
            Some(version),
            "{}",
            h.name
        );
    }
    assert_eq!(results.len(), hosts.len(), "{results:?}");
    println!(
        "    {id}: lease → job started on the host: {}",
        latencies
            .iter()
            .map(|l| format!("{l:.2} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for l in &latencies {
        assert!(*l < 10.0, "{id}: {l} s from a lease to its job's start");
    }
}

pub(crate) fn postgres_three_replicas_behind_haproxy_rolling_restart_and_leader_kill() {
    let clock = Clock(Instant::now());
    ensure_tools(&[("haproxy", "haproxy"), ("psql", "postgresql-client")]);
    let db = fresh_postgres();
    let dir = tempfile::Builder::new()
        .prefix("pb-replicas-")
        .tempdir()
        .unwrap();

    // Three replicas; the first creates the signing key and the admin token,
    // the others get a copy of the key (replicas must share it).
    let mut replicas: Vec<Replica> = (1..=REPLICAS)
        .map(|n| Replica {
            name: format!("r{n}"),
            port: free_port(),
            data: dir.path().join(format!("data-r{n}")),
            log: dir.path().join(format!("r{n}.log")),
            child: None,
        })
        .collect();
    replicas[0].start(&db);
    let key = std::fs::read(replicas[0].data.join("server-signing.key")).unwrap();
    for r in &mut replicas[1..] {
        std::fs::create_dir_all(&r.data).unwrap();
        let p = r.data.join("server-signing.key");
        std::fs::write(&p, &key).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        r.start(&db);
    }
    let token = std::fs::read_to_string(replicas[0].data.join("admin.token")).unwrap();
    let lb = Haproxy::start(dir.path(), &replicas);
    let api = Api(Client::new(
        &lb.url(),
        Some(token.trim().to_owned()),
        Duration::from_secs(30),
    ));
    clock.phase(&format!(
        "3 replicas on ports {:?} behind haproxy on {}",
        replicas.iter().map(|r| r.port).collect::<Vec<_>>(),
        lb.url()
    ));

    let mut hosts: Vec<Host> = in_parallel(HOSTS as u8, |n| Host::prepare(usize::from(n)));
    let et = api.post(
        "/api/v1/enroll-tokens",
        json!({"uses": HOSTS, "ttl_secs": 3600}),
    );
    let et = et["token"].as_str().unwrap().to_owned();
    for h in &mut hosts {
        h.start_agent(&lb.url(), &et);
    }
    for h in &hosts {
        let path = format!("/api/v1/assets/{}", h.name);
        let start = Instant::now();
        while !api
            .0
            .get::<Value>(&path)
            .is_ok_and(|a| a["inventory_hash"].is_string())
        {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{} did not enrol through haproxy within 60 s:\n{}",
                h.name,
                tail(&h.agent_log(), 20)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    clock.phase("3 Debian roots with pb-demo 1.0, agents enrolled through haproxy");
    let canary = hosts[0].name.clone();

    // ---- Rolling restart of every replica during the rollout of 1.1: one
    // as it starts, one while the canary's job runs, one once the next
    // ring's jobs are leased. Meanwhile a reader polls the deployment
    // through haproxy every 50 ms.
    let before: Vec<(usize, usize)> = hosts.iter().map(Host::checkins).collect();
    let fe_5xx = lb.counter("patchbay", "FRONTEND", "hrsp_5xx");
    let log_from = lb.log_text().len();
    let id = api.start_deployment("1.1", &canary, "10s");
    clock.phase(&format!(
        "{id} (1.1) started; restarting every replica in turn"
    ));
    let stop_reader = std::sync::atomic::AtomicBool::new(false);
    let mut graceful_handovers = Vec::new();
    let (reads, read_errors) = std::thread::scope(|sc| {
        let reader = sc.spawn(|| {
            let c = Client::new(
                &lb.url(),
                Some(token.trim().to_owned()),
                Duration::from_secs(30),
            );
            let (mut ok, mut errors) = (0usize, Vec::new());
            while !stop_reader.load(std::sync::atomic::Ordering::SeqCst) {
                match c.get::<Value>(&format!("/api/v1/deployments/{id}")) {
                    Ok(_) => ok += 1,
                    Err(e) => errors.push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (ok, errors)
        });
        // Stops the reader however this scope ends (a failed assertion
        // below must not leave the scope waiting for it forever).
        struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let stop_guard = StopOnDrop(&stop_reader);
        let milestones: [Milestone; REPLICAS] = [
            (
                "the canary's job is leased",
                Box::new(|d| !job_of(d, &canary)["leased_at"].is_null()),
            ),
            (
                "the canary's result is in",
                Box::new(|d| job_of(d, &canary)["state"] == "succeeded"),
            ),
            (
                "the next ring's jobs are leased",
                Box::new(|d| {
                    rings(d)[1]["jobs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|j| !j["leased_at"].is_null())
                }),
            ),
        ];
        for (i, (what, reached)) in milestones.iter().enumerate() {
            let t = Instant::now();
            loop {
                let d = api.deployment(&id);
                if reached(&d) {
                    break;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(90),
                    "{id}: not reached within 90 s: {what}: {:#}",
                    d["rollout"]
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            let held = lease_holder(&db).is_some_and(|h| holder_pid(&h) == replicas[i].pid());
            let (took, st) = replicas[i].stop(Signal::SIGTERM, Duration::from_secs(15));
            assert!(
                st.success(),
                "{} ended with {st} after SIGTERM",
                replicas[i].name
            );
            let t = Instant::now();
            if held {
                // A graceful stop releases the lease: another replica takes
                // it at its next tick, not after the TTL.
                loop {
                    if lease_holder(&db).is_some() {
                        break;
                    }
                    assert!(
                        t.elapsed() < LEASE_TTL + Duration::from_secs(5),
                        "no replica took the released lease"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
                let taken = t.elapsed();
                println!(
                    "    {} held the leader lease; released at SIGTERM, taken over {:.2} s after it exited",
                    replicas[i].name,
                    taken.as_secs_f64()
                );
                assert!(
                    taken <= DUTY_TICK + Duration::from_secs(1),
                    "the released lease was taken {taken:?} after {} exited",
                    replicas[i].name
                );
                graceful_handovers.push(taken);
            }
            let t = Instant::now();
            replicas[i].start(&db);
            let status = api.deployment(&id)["deployment"]["status"].clone();
            clock.phase(&format!(
                "{} restarted when {what}: exited {:.2} s after SIGTERM, back on port {} in {:.2} s; {id} {status}",
                replicas[i].name,
                took.as_secs_f64(),
                replicas[i].port,
                t.elapsed().as_secs_f64()
            ));
            // A draining replica answers its long polls at once rather than
            // holding the shutdown for up to a long poll (20 s).
            assert!(
                took < Duration::from_secs(5),
                "{} took {took:?} to exit after SIGTERM",
                replicas[i].name
            );
            // Every restart happens while the rollout runs.
            assert_eq!(
                status, "running",
                "{id} ended before {} was restarted",
                replicas[i].name
            );
        }
        let d = wait_done(&api, &hosts, &replicas, &id, Duration::from_secs(180));
        drop(stop_guard);
        let r = reader.join().unwrap();
        clock.phase(&format!(
            "{id}: {} ({:?})",
            d["deployment"]["status"],
            ring_states(&d)
        ));
        r
    });
    assert_each_job_once(&api, &db, &hosts, &id, "1.1");
    let mut ok = 0;
    for (h, (ok0, failed0)) in hosts.iter().zip(&before) {
        let (ok1, failed1) = h.checkins();
        ok += ok1 - ok0;
        assert_eq!(
            failed1 - failed0,
            0,
            "{}: check-ins failed during the rolling restart:\n{}",
            h.name,
            h.agent_log()
                .lines()
                .filter(|l| l.contains("check-in failed"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let be = |c: &str| lb.counter("replicas", "BACKEND", c);
    let fe_5xx_during = lb.counter("patchbay", "FRONTEND", "hrsp_5xx") - fe_5xx;
    let (per_server, per_status) = lb.checkins_since(log_from);
    println!(
        "    rolling restart: {ok} agent check-ins succeeded, 0 failed (haproxy: by replica {per_server:?}, \
         by status {per_status:?}); API reads through haproxy: {reads} ok, {} failed; haproxy 5xx answers {fe_5xx_during}, \
         backend retries {}, redispatches {}, connection errors {}, response errors {}",
        read_errors.len(),
        be("wretr"),
        be("wredis"),
        be("econ"),
        be("eresp")
    );
    println!(
        "    graceful lease handovers during the restarts: {:?}",
        graceful_handovers
    );
    assert_eq!(
        fe_5xx_during, 0,
        "haproxy answered 5xx during the rolling restart"
    );
    assert!(
        read_errors.is_empty(),
        "API reads through haproxy failed during the rolling restart: {read_errors:#?}"
    );
    assert!(
        per_status.keys().all(|s| s == "200"),
        "check-ins answered other than 200 during the rolling restart: {per_status:?}"
    );
    clock.phase(&format!(
        "{id} completed across 3 restarts: no check-in failed, every job ran once"
    ));

    // ---- Leader kill during the rollout of 1.2.
    let before: Vec<(usize, usize)> = hosts.iter().map(Host::checkins).collect();
    let kill_log_from = lb.log_text().len();
    let id2 = api.start_deployment("1.2", &canary, "2s");
    let start = Instant::now();
    loop {
        let d = api.deployment(&id2);
        if !job_of(&d, &canary)["leased_at"].is_null() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{id2}: the canary's job was not leased within 30 s: {:#}",
            d["rollout"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let leader = lease_holder(&db).expect("a leader lease while a rollout runs");
    let pid = holder_pid(&leader);
    let li = replicas
        .iter()
        .position(|r| r.pid() == pid)
        .unwrap_or_else(|| panic!("the lease holder {leader} is none of the replicas"));
    let (_, st) = replicas[li].stop(Signal::SIGKILL, Duration::from_secs(5));
    let killed_at = Instant::now();
    let killed_ts = jiff::Timestamp::now();
    let name = replicas[li].name.clone();
    clock.phase(&format!(
        "{id2} (1.2): canary's job leased; SIGKILLed the leader {name} ({leader}, {st})"
    ));
    let new_holder = loop {
        if let Some(h) = lease_holder(&db).filter(|h| *h != leader) {
            break h;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "no replica took the leader lease over within 30 s of killing {name}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let handover = killed_at.elapsed();
    let np = holder_pid(&new_holder);
    let new_name = replicas
        .iter()
        .find(|r| r.child.is_some() && r.pid() == np)
        .map(|r| r.name.clone())
        .unwrap_or_else(|| panic!("the new holder {new_holder} is none of the live replicas"));
    println!(
        "    leader handover: {new_name} took the lease {:.2} s after {name} was killed (lease TTL {} s, tick {} ms)",
        handover.as_secs_f64(),
        LEASE_TTL.as_secs(),
        DUTY_TICK.as_millis()
    );
    // Within the TTL plus a tick, with one second's allowance for a loaded
    // machine (the bound counts from the last renewal, before the kill).
    assert!(
        handover <= LEASE_TTL + DUTY_TICK + Duration::from_secs(1),
        "handover took {handover:?}"
    );
    let d = wait_done(&api, &hosts, &replicas, &id2, Duration::from_secs(180));
    clock.phase(&format!(
        "{id2}: {} ({:?}) driven on by {new_name}",
        d["deployment"]["status"],
        ring_states(&d)
    ));
    assert_each_job_once(&api, &db, &hosts, &id2, "1.2");
    // The canary's job was leased by the killed leader; the later ring's by
    // the new one, after the handover.
    let leased: Vec<jiff::Timestamp> = rings(&d)[1]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| ts(&j["leased_at"]).expect("leased_at"))
        .collect();
    assert_eq!(leased.len(), HOSTS - 1);
    for l in &leased {
        assert!(
            *l >= killed_ts,
            "a later ring's job was leased at {l}, before the leader died ({killed_ts})"
        );
    }
    let (mut ok, mut failed) = (0, 0);
    for (h, (ok0, failed0)) in hosts.iter().zip(&before) {
        let (ok1, failed1) = h.checkins();
        ok += ok1 - ok0;
        failed += failed1 - failed0;
        for l in h
            .agent_log()
            .lines()
            .filter(|l| l.contains("check-in failed"))
            .skip(*failed0)
        {
            println!("    {}: {l}", h.name);
        }
    }
    let (per_server, per_status) = lb.checkins_since(kill_log_from);
    // What haproxy could not hide: a request the dead replica had begun to
    // answer is not replayed (its termination flags say where it ended).
    for l in lb.log_text()[kill_log_from..]
        .lines()
        .filter(|l| l.contains("POST /agent/v1/checkin") && !l.contains(" 200 "))
    {
        println!("    haproxy: {l}");
    }
    println!(
        "    leader kill: {ok} agent check-ins succeeded, {failed} failed (haproxy: by replica {per_server:?}, \
         by status {per_status:?}; backend retries {}, redispatches {})",
        be("wretr"),
        be("wredis")
    );
    clock.phase(&format!(
        "{id2} completed after the leader's death: each key leased once, run once, one result each"
    ));
    drop_in_parallel(hosts);
}
