//! The chaos matrix (issue 12, item 10): the rows `crash.rs` (kill -9 of the
//! server, ≥ 20 trials per engine) and `rollout.rs` (a host's link cut
//! mid-job) do not cover, each with real processes — `patchbay serve`, real
//! agents on debootstrapped Debian 12 roots in network namespaces (link
//! slots 51–60 only), a PostgreSQL cluster of this test's own, a
//! loop-mounted ext4 — and assertions on what is stored:
//!
//! - **PostgreSQL restarted, then stopped** for `PATCHBAY_CHAOS_PG_OUTAGE_SECS`
//!   (default 5; `scripts/chaos --long`: 30) while a rollout's job runs: the
//!   API answers 503 `unavailable` naming the database, `/healthz` answers 503
//!   naming it, the agents' check-ins fail and are retried; when PostgreSQL is
//!   back the same server process (no restart) answers again, the rollout
//!   completes and the result the agent held during the outage is stored
//!   once (one `agent_jobs` row, one `job.result` audit entry), the job ran
//!   once (journal), and the inventories reach the server.
//! - **Packet loss, delay and a partition** with `tc netem` on both ends of a
//!   host's veth during a rollout (30 % loss + 100 ms delay; 300 ± 100 ms delay;
//!   100 % loss for `PATCHBAY_CHAOS_PARTITION_SECS`, default 8, while a job
//!   runs): the rollout completes, every job ran once, every result stored once.
//! - **The server's disk full**: SQLite and the data directory on a 24 MB
//!   loop-mounted ext4 filled by a filler file: writes get 503 naming the full
//!   disk, reads keep working, nothing panics; once the filler is removed,
//!   writes succeed again in the same process, `PRAGMA integrity_check` says
//!   ok, and `patchbay audit verify` verifies the chain with the pinned key.
//! - **Agent clocks ±1 h off** (libfaketime preloaded into the agent and
//!   everything it runs, also inside the root): check-ins work, the agents
//!   notice the difference from the server's `Date` header and judge job
//!   times on the server's clock, so a rollout completes as it does with true
//!   clocks (a host an hour behind would otherwise hold its job for an hour).

use crate::rollout::{Engine, Host, Server, free_addr, job_of, rings, wait_deployment};
use crate::support::{AGENT, deb_repo, ensure_tools, in_parallel, run, wait_for};
use patchbay_client::{Client, HttpError};
use serde_json::{Value, json};
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const TESTS: &[crate::Test] = &[
    (
        "chaos::postgres_restarted_and_stopped_under_a_rollout",
        postgres_restarted_and_stopped_under_a_rollout,
    ),
    (
        "chaos::sqlite_packet_drops_delay_and_partition_during_a_rollout",
        sqlite_packet_drops_delay_and_partition_during_a_rollout,
    ),
    (
        "chaos::sqlite_disk_full_then_space_returns",
        sqlite_disk_full_then_space_returns,
    ),
    (
        "chaos::sqlite_agent_clocks_an_hour_off",
        sqlite_agent_clocks_an_hour_off,
    ),
];

/// Phase output with the row's name and elapsed time.
struct Phase(Instant, &'static str);

impl Phase {
    fn new(row: &'static str) -> Phase {
        Phase(Instant::now(), row)
    }

    fn say(&self, what: &str) {
        println!(
            "  [chaos {} {:>6.1}s] {what}",
            self.1,
            self.0.elapsed().as_secs_f64()
        );
    }
}

/// Seconds from an environment variable, or `default`.
fn secs_env(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{var}={v:?} is not a number of seconds: {e}")),
        Err(_) => default,
    }
}

/// The server process is the one started (never restarted) and alive, and
/// its log shows no panic.
fn assert_alive(s: &mut Server, pid: u32) {
    assert_eq!(s.child.id(), pid);
    if let Ok(Some(st)) = s.child.try_wait() {
        panic!("patchbay serve exited ({st}):\n{}", s.log());
    }
    let log = s.log();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

/// One ring with every host, all at once.
fn one_ring(version: &str) -> Value {
    json!({"packages": [{"name": "pb-demo", "version": version}],
    "checks": ["web"],
    "rings": [{"name": "all", "max_concurrent": "100%", "error_budget": "1"}]})
}

fn start_deployment(s: &Server, version: &str) -> String {
    let d = s.post("/api/v1/deployments", one_ring(version));
    let id = d["deployment"]["id"].as_str().unwrap().to_owned();
    s.post(&format!("/api/v1/deployments/{id}/start"), json!({}));
    id
}

/// `n` hosts on link slots `first..`, prepared in parallel.
fn hosts(first: u8, n: u8, server: SocketAddr) -> Vec<Host> {
    ensure_tools(&[("ip", "iproute2")]);
    let repo = deb_repo();
    let repo_addr: SocketAddr = repo
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    assert!(
        first >= 51 && first + n - 1 <= 60,
        "chaos uses link slots 51–60"
    );
    in_parallel(n, |i| Host::prepare(i, first + i - 1, repo_addr, server))
}

/// Enrols every host (agents started with `start`) and waits for their
/// inventories.
fn enrol(s: &Server, hosts: &mut [Host], mut start: impl FnMut(&mut Host, &str)) {
    let et = s.post(
        "/api/v1/enroll-tokens",
        json!({"uses": hosts.len(), "ttl_secs": 3600}),
    );
    let et = et["token"].as_str().unwrap().to_owned();
    for h in hosts.iter_mut() {
        start(h, &et);
    }
    for h in hosts.iter() {
        let path = format!("/api/v1/assets/{}", h.name);
        wait_for(
            &format!("{} to enrol and report its inventory", h.name),
            Duration::from_secs(60),
            || {
                s.api
                    .get::<Value>(&path)
                    .is_ok_and(|a| a["inventory_hash"].is_string())
            },
        );
    }
}

/// The version of `pkg` the server holds for `host`.
fn stored_version(s: &Server, host: &str, pkg: &str) -> Option<String> {
    let a = s.get(&format!("/api/v1/assets/{host}"));
    a["packages"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == pkg)
        .and_then(|p| p["version"].as_str().map(str::to_owned))
}

/// Every job of deployment `id`: succeeded, run once by its host (journal:
/// one `started`, one `finished`), its result stored once (one `job.result`
/// audit entry), and the root on `version`.
fn assert_ran_once_each(s: &Server, hosts: &[Host], id: &str, version: &str) {
    let d = s.get(&format!("/api/v1/deployments/{id}"));
    assert_eq!(d["deployment"]["status"], "completed", "{:#}", d["rollout"]);
    let results = s.audit("job.result");
    for h in hosts {
        let key = format!("{id}/{}", h.name);
        assert_eq!(job_of(&d, &h.name)["state"], "succeeded", "{key}");
        let recs = h.journal_of(&key);
        let started = recs.iter().filter(|r| r["event"] == "started").count();
        let finished = recs.iter().filter(|r| r["event"] == "finished").count();
        assert_eq!((started, finished), (1, 1), "{key}: {recs:#?}");
        let stored = results
            .iter()
            .filter(|e| e["target"] == format!("job:{key}"))
            .count();
        assert_eq!(stored, 1, "{key}: {stored} job.result audit entries");
        assert_eq!(
            h.root.version("pb-demo").as_deref(),
            Some(version),
            "{}",
            h.name
        );
    }
}

// ---------------------------------------------------------------- PostgreSQL

/// A PostgreSQL cluster of this test's own (as `scripts/with-postgres` makes
/// one), so it can be restarted and stopped without touching the shared one.
struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PgCluster {
    fn start() -> PgCluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").is_file())
            .max()
            .expect(
                "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql): the outage row needs its own cluster",
            );
        let dir = tempfile::Builder::new()
            .prefix("pb-chaos-pg-")
            .tempdir()
            .unwrap();
        let port = free_addr().port();
        let c = PgCluster { bin, dir, port };
        c.as_owner(&format!(
            "'{}' -D '{}' -A trust -U postgres --no-sync -E UTF8 >'{}/initdb.log' 2>&1",
            c.bin.join("initdb").display(),
            c.data().display(),
            c.dir.path().display()
        ));
        c.pg_ctl("start");
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sh -c CMD` as the cluster's owner (postgres when we are root).
    fn as_owner(&self, cmd: &str) {
        let root = std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false);
        if root {
            run(Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(self.dir.path()));
            run(Command::new("chmod").arg("755").arg(self.dir.path()));
            run(Command::new("su").args(["postgres", "-s", "/bin/sh", "-c", cmd]));
        } else {
            run(Command::new("sh").args(["-c", cmd]));
        }
    }

    /// `pg_ctl start|stop|restart`, waiting for it.
    fn pg_ctl(&self, what: &str) {
        let d = self.dir.path().display();
        self.as_owner(&format!(
            "'{}' -D '{}' -l '{d}/server.log' -w -t 60 -m fast -o \"-p {} -k '{d}' -c listen_addresses=127.0.0.1 -c fsync=off\" {what}",
            self.bin.join("pg_ctl").display(),
            self.data().display(),
            self.port
        ));
    }

    fn sql(&self, q: &str) -> String {
        let out = run(Command::new("psql").args(["-tA", &self.url(), "-c", q]));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new("su")
            .args([
                "postgres",
                "-s",
                "/bin/sh",
                "-c",
                &format!(
                    "'{}' -D '{}' -m immediate stop",
                    self.bin.join("pg_ctl").display(),
                    self.data().display()
                ),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// What one API call answered: the status (200 or the error's) and the
/// error's code and message.
fn answer(r: Result<Value, HttpError>) -> (u16, String, String) {
    match r {
        Ok(_) => (200, String::new(), String::new()),
        Err(HttpError::Api {
            status,
            code,
            message,
        }) => (status, code, message),
        Err(e) => (0, "transport".into(), e.to_string()),
    }
}

fn healthz(s: &Server) -> (u16, String) {
    let c = Client::new(&format!("http://{}", s.addr), None, Duration::from_secs(10));
    match c.get_text("/healthz") {
        Ok(t) => (200, t),
        Err(HttpError::Api {
            status, message, ..
        }) => (status, message),
        Err(e) => (0, e.to_string()),
    }
}

pub(crate) fn postgres_restarted_and_stopped_under_a_rollout() {
    let p = Phase::new("postgres-outage");
    let outage = Duration::from_secs(secs_env("PATCHBAY_CHAOS_PG_OUTAGE_SECS", 5));
    ensure_tools(&[("psql", "postgresql-client")]);
    let pg = PgCluster::start();
    let dir = tempfile::Builder::new()
        .prefix("pb-chaos-pg-server-")
        .tempdir()
        .unwrap();
    let data = dir.path().join("data");
    let mut s = Server::serve(&pg.url(), &data, dir, &[]);
    let pid = s.child.id();
    p.say(&format!(
        "own PostgreSQL on port {}, server up on {}",
        pg.port, s.addr
    ));
    let mut hs = hosts(51, 2, s.addr);
    enrol(&s, &mut hs, |h, t| h.start_agent(t));
    p.say("2 agents enrolled, inventories stored");

    // --- Restart: every answer meanwhile is 200 or a 503 naming the database.
    pg.pg_ctl("restart");
    let restarted = Instant::now();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    loop {
        let (st, code, msg) = answer(s.api.get::<Value>("/api/v1/assets"));
        *statuses.entry(st).or_default() += 1;
        assert!(
            st == 200 || (st == 503 && code == "unavailable" && msg.contains("database")),
            "after a PostgreSQL restart the API answered {st} {code}: {msg}\n{}",
            s.log()
        );
        if st == 200 && restarted.elapsed() > Duration::from_secs(2) {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(30),
            "no 200 within 30 s of a PostgreSQL restart: {statuses:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_alive(&mut s, pid);
    p.say(&format!(
        "PostgreSQL restarted: API answers by status {statuses:?}, same server process"
    ));

    // --- Outage while a job runs: h1's check is slowed, so its result is
    // made while the database is down.
    let slow = &hs[0];
    std::fs::write(&slow.slow, "").unwrap();
    let id = start_deployment(&s, "1.1");
    let version_file = slow.root.path.join("usr/share/pb-demo/version");
    wait_for(
        &format!("{} to unpack pb-demo 1.1", slow.name),
        Duration::from_secs(120),
        || std::fs::read_to_string(&version_file).is_ok_and(|v| v.trim() == "1.1"),
    );
    pg.pg_ctl("stop");
    let down = Instant::now();
    p.say(&format!(
        "{id}: {} unpacked 1.1; PostgreSQL stopped",
        slow.name
    ));
    let key = format!("{id}/{}", slow.name);
    let mut api_503 = 0;
    let mut health_503 = 0;
    let mut finished_at: Option<Instant> = None;
    let mut sample: Option<(String, String)> = None;
    while down.elapsed() < outage
        || finished_at.is_none_or(|t| t.elapsed() < Duration::from_secs(3))
    {
        let (st, code, msg) = answer(s.api.get::<Value>("/api/v1/assets"));
        assert_eq!(
            (st, code.as_str()),
            (503, "unavailable"),
            "during the outage: {msg}"
        );
        assert_eq!(msg, "the database is unavailable; retry later");
        api_503 += 1;
        let (hst, htext) = healthz(&s);
        assert_eq!(hst, 503, "/healthz during the outage: {htext}");
        assert!(htext.contains("database unavailable"), "{htext}");
        health_503 += 1;
        if sample.is_none() {
            sample = Some((msg, htext));
        }
        if finished_at.is_none()
            && slow
                .journal_of(&key)
                .iter()
                .any(|r| r["event"] == "finished")
        {
            finished_at = Some(Instant::now());
        }
        assert!(
            down.elapsed() < outage + Duration::from_secs(90),
            "{key} did not finish during the outage: {}",
            slow.agent_log()
        );
        assert_alive(&mut s, pid);
        std::thread::sleep(Duration::from_millis(250));
    }
    let failed = slow
        .agent_log()
        .lines()
        .filter(|l| l.contains("check-in failed") && l.contains("503"))
        .count();
    assert!(
        failed > 0,
        "no check-in of {} got a 503 during the outage:\n{}",
        slow.name,
        slow.agent_log()
    );
    let (msg, htext) = sample.unwrap();
    p.say(&format!(
        "outage of {:.1} s: {api_503} API answers 503 {msg:?}, {health_503} /healthz 503 {:?}; {} check-ins of {} failed with 503; its job finished meanwhile",
        down.elapsed().as_secs_f64(),
        htext.trim(),
        failed,
        slow.name
    ));

    // --- Back: the same process answers, the rollout completes, the held
    // result is stored once.
    pg.pg_ctl("start");
    let back = Instant::now();
    wait_for(
        "/healthz to answer 200 after PostgreSQL returned",
        Duration::from_secs(30),
        || healthz(&s).0 == 200,
    );
    let recovered = back.elapsed().as_secs_f64();
    assert_alive(&mut s, pid);
    std::fs::remove_file(&slow.slow).unwrap();
    wait_deployment(&s, &hs, &id, Duration::from_secs(120), |d| {
        d["deployment"]["status"] != "running"
    });
    assert_ran_once_each(&s, &hs, &id, "1.1");
    let rows = pg.sql(&format!(
        "SELECT count(*) FROM agent_jobs WHERE deployment = '{id}' AND result IS NOT NULL"
    ));
    assert_eq!(rows, "2", "agent_jobs rows with a result of {id}");
    for h in &hs {
        wait_for(
            &format!("{}'s inventory with pb-demo 1.1", h.name),
            Duration::from_secs(30),
            || stored_version(&s, &h.name, "pb-demo").as_deref() == Some("1.1"),
        );
    }
    assert_alive(&mut s, pid);
    let d = s.get(&format!("/api/v1/deployments/{id}"));
    p.say(&format!(
        "PostgreSQL back: /healthz 200 after {recovered:.1} s without a server restart; {id} {} ({}), each job run once, each result stored once, inventories on 1.1",
        d["deployment"]["status"],
        rings(&d).len()
    ));
}

// ---------------------------------------------------------------- network

/// `tc qdisc replace … root tbf ARGS` on both ends of `h`'s link (empty:
/// removes it). This machine's kernel has no `sch_netem` ("Specified qdisc
/// kind is unknown"), so losses are made with a token bucket whose queue is
/// too short for the traffic: the kernel drops what does not fit — real
/// packet loss, counted by `tc -s` — and a bucket of 8 bit/s that can never
/// hold a full packet is a partition that drops (nearly) everything silently.
fn shape(h: &Host, args: &[&str]) {
    let ns_if = format!("{}n", h.net.host_if.trim_end_matches('h'));
    let mut host = Command::new("tc");
    let mut inside = h.net.exec("tc");
    if args.is_empty() {
        host.args(["qdisc", "del", "dev", &h.net.host_if, "root"]);
        inside.args(["qdisc", "del", "dev", &ns_if, "root"]);
    } else {
        host.args(["qdisc", "replace", "dev", &h.net.host_if, "root", "tbf"])
            .args(args);
        inside
            .args(["qdisc", "replace", "dev", &ns_if, "root", "tbf"])
            .args(args);
    }
    run(&mut host);
    run(&mut inside);
}

/// Packets the shaping on both ends of `h`'s link dropped so far.
fn dropped(h: &Host) -> u64 {
    let ns_if = format!("{}n", h.net.host_if.trim_end_matches('h'));
    let count = |out: std::process::Output| -> u64 {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split("dropped ")
            .skip(1)
            .filter_map(|t| t.split(',').next()?.trim().parse::<u64>().ok())
            .sum()
    };
    count(run(Command::new("tc").args([
        "-s",
        "qdisc",
        "show",
        "dev",
        &h.net.host_if,
    ]))) + count(run(h
        .net
        .exec("tc")
        .args(["-s", "qdisc", "show", "dev", &ns_if])))
}

/// A relay like `rollout::relay` that holds every chunk `delay` before
/// passing it on, both ways (latency on the agent's server connection).
fn delaying_relay(bind: std::net::Ipv4Addr, to: SocketAddr, delay: Duration) -> u16 {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpStream};
    fn copy(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    std::thread::sleep(delay);
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    }
    let listener = TcpListener::bind((bind, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for inbound in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let Ok(out) = TcpStream::connect(to) else {
                    return;
                };
                let (Ok(i2), Ok(o2)) = (inbound.try_clone(), out.try_clone()) else {
                    return;
                };
                let t = std::thread::spawn(move || copy(i2, o2, delay));
                copy(out, inbound, delay);
                let _ = t.join();
            });
        }
    });
    port
}

pub(crate) fn sqlite_packet_drops_delay_and_partition_during_a_rollout() {
    let p = Phase::new("network");
    let partition = Duration::from_secs(secs_env("PATCHBAY_CHAOS_PARTITION_SECS", 8));
    ensure_tools(&[("tc", "iproute2")]);
    let s = Server::start(Engine::Sqlite);
    let mut hs = hosts(53, 3, s.addr);
    // h3 talks to the server through a relay adding 300 ms to every chunk.
    hs[2].server_port = delaying_relay(hs[2].net.host_ip, s.addr, Duration::from_millis(300));
    enrol(&s, &mut hs, |h, t| h.start_agent(t));
    p.say("3 agents enrolled (h3 through a 300 ms-per-chunk relay)");
    // h1: 32 kbit/s with a one-packet queue each way — bursts overflow it.
    shape(
        &hs[0],
        &["rate", "32kbit", "burst", "1600", "limit", "1600"],
    );
    // The shaping drops what does not fit: 40 datagrams of 1400 bytes sent
    // at once into the host-side queue (the namespace's address; nobody
    // listens there) leave at most a few through.
    let before = dropped(&hs[0]);
    let ns_ip = std::net::Ipv4Addr::from(u32::from(hs[0].net.host_ip) + 1);
    let udp = std::net::UdpSocket::bind((hs[0].net.host_ip, 0)).unwrap();
    for _ in 0..40 {
        let _ = udp.send_to(&[0u8; 1400], (ns_ip, 9));
    }
    let burst_drops = dropped(&hs[0]) - before;
    assert!(
        burst_drops >= 30,
        "the shaping of {} dropped only {burst_drops} of 40 back-to-back datagrams",
        hs[0].name
    );
    p.say(&format!(
        "{}: a burst of 40 datagrams lost {burst_drops} in the shaped queue",
        hs[0].name
    ));
    let before_rollout = dropped(&hs[0]);
    std::fs::write(&hs[1].slow, "").unwrap();
    p.say(&format!(
        "{}: 32 kbit/s, one-packet queue (drops) each way; {}: 300 ms per chunk; {}: slow job, to be partitioned",
        hs[0].name, hs[2].name, hs[1].name
    ));
    let id = start_deployment(&s, "1.1");
    let cut = &hs[1];
    let version_file = cut.root.path.join("usr/share/pb-demo/version");
    wait_for(
        &format!("{} to unpack pb-demo 1.1", cut.name),
        Duration::from_secs(120),
        || std::fs::read_to_string(&version_file).is_ok_and(|v| v.trim() == "1.1"),
    );
    shape(cut, &["rate", "8bit", "burst", "1600", "limit", "1"]);
    let key = format!("{id}/{}", cut.name);
    let t = Instant::now();
    while t.elapsed() < partition {
        let d = s.get(&format!("/api/v1/deployments/{id}"));
        assert!(
            !job_of(&d, &cut.name)["ran"].as_bool().unwrap_or(false),
            "a result of {key} arrived through the partition"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let finished_in_partition = cut
        .journal_of(&key)
        .iter()
        .any(|r| r["event"] == "finished");
    let cut_drops = dropped(cut);
    assert!(
        cut_drops > 0,
        "the partition of {} dropped nothing",
        cut.name
    );
    shape(cut, &[]);
    std::fs::remove_file(&cut.slow).unwrap();
    p.say(&format!(
        "{}: partitioned for {:.0} s mid-job ({cut_drops} packets dropped; job finished meanwhile: {finished_in_partition}), healed",
        cut.name,
        partition.as_secs_f64()
    ));
    let healed = Instant::now();
    let d = wait_deployment(&s, &hs, &id, Duration::from_secs(180), |d| {
        d["deployment"]["status"] != "running"
    });
    p.say(&format!(
        "{id}: {} {:.1} s after the partition healed",
        d["deployment"]["status"],
        healed.elapsed().as_secs_f64()
    ));
    assert_ran_once_each(&s, &hs, &id, "1.1");
    let lossy_drops = dropped(&hs[0]) - before_rollout;
    for h in &hs {
        let failed = h
            .agent_log()
            .lines()
            .filter(|l| l.contains("check-in failed"))
            .count();
        p.say(&format!("{}: {failed} check-in(s) failed", h.name));
    }
    p.say(&format!(
        "{}: {lossy_drops} packets of the rollout's traffic dropped by its queue; every job ran once, every result stored once, every root on 1.1",
        hs[0].name
    ));
    shape(&hs[0], &[]);
}

// ---------------------------------------------------------------- disk full

/// A small ext4 file system on a loop device, mounted on `mnt`; unmounted and
/// removed on drop.
struct LoopFs {
    dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl LoopFs {
    fn new(mb: u64) -> LoopFs {
        ensure_tools(&[("mkfs.ext4", "e2fsprogs"), ("losetup", "mount")]);
        let dir = tempfile::Builder::new()
            .prefix("pb-chaos-fs-")
            .tempdir()
            .unwrap();
        let img = dir.path().join("fs.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        run(Command::new("truncate")
            .args(["-s", &format!("{mb}M")])
            .arg(&img));
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        let out = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the disk-full row needs a loop mount (root, loop devices): mount -o loop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        LoopFs { dir, mnt }
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mnt)
            .stderr(Stdio::null())
            .status();
        let _ = self.dir.path();
    }
}

/// Writes zeros to `path` until the file system is full; returns the bytes.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Whatever is left in blocks smaller than ours.
    while let Ok(k) = f.write(&block[..512]) {
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    let _ = f.sync_all();
    n
}

pub(crate) fn sqlite_disk_full_then_space_returns() {
    let p = Phase::new("disk-full");
    ensure_tools(&[("sqlite3", "sqlite3")]);
    let fs = LoopFs::new(24);
    let dir = tempfile::Builder::new()
        .prefix("pb-chaos-full-server-")
        .tempdir()
        .unwrap();
    let db_path = fs.mnt.join("patchbay.db");
    let db = format!("sqlite://{}", db_path.display());
    let data = fs.mnt.join("data");
    let mut s = Server::serve(&db, &data, dir, &[]);
    let pid = s.child.id();
    p.say(&format!(
        "server on a 24 MB loop-mounted ext4 ({})",
        fs.mnt.display()
    ));
    let token = |s: &Server| {
        answer(s.api.send::<_, Value>(
            "POST",
            "/api/v1/enroll-tokens",
            &json!({"uses": 1, "ttl_secs": 600}),
        ))
    };
    let (st, _, msg) = token(&s);
    assert_eq!(st, 200, "{msg}");
    let filler = fs.mnt.join("filler");
    let filled = fill(&filler);
    p.say(&format!(
        "filler wrote {} MB; the file system is full",
        filled / (1 << 20)
    ));

    // Writes until one fails: SQLite may still have room in its WAL.
    let mut ok_while_full = 0;
    let refused = loop {
        let (st, code, msg) = token(&s);
        match st {
            200 => ok_while_full += 1,
            _ => break (st, code, msg),
        }
        assert!(ok_while_full < 5000, "5000 writes succeeded on a full disk");
    };
    let (st, code, msg) = refused;
    assert_eq!(
        (st, code.as_str()),
        (503, "unavailable"),
        "a write on a full disk: {msg}\n{}",
        s.log()
    );
    assert!(
        msg.contains("disk is full"),
        "the answer to a write on a full disk names it: {msg}"
    );
    // More writes: the same clear answer every time, nothing stored.
    for _ in 0..5 {
        let (st2, _, msg2) = token(&s);
        assert_eq!((st2, &msg2), (503, &msg), "{}", s.log());
    }
    // Reads keep working.
    let (rst, _, rmsg) = answer(s.api.get::<Value>("/api/v1/audit?limit=5"));
    assert_eq!(rst, 200, "a read on a full disk: {rmsg}");
    let (hst, htext) = healthz(&s);
    assert_alive(&mut s, pid);
    p.say(&format!(
        "full: {ok_while_full} writes still fit, then 503 {msg:?} (6 times); reads 200; /healthz {hst} {:?}",
        htext.trim()
    ));
    let logged = s.log().lines().filter(|l| l.contains("disk full")).count();
    assert!(
        logged > 0,
        "the server log names the full disk:\n{}",
        s.log()
    );

    // Space returns: writes succeed in the same process.
    std::fs::remove_file(&filler).unwrap();
    let back = Instant::now();
    wait_for(
        "a write to succeed once space returned",
        Duration::from_secs(30),
        || token(&s).0 == 200,
    );
    p.say(&format!(
        "filler removed: writes succeed again after {:.1} s, same process",
        back.elapsed().as_secs_f64()
    ));
    assert_alive(&mut s, pid);
    let tokens = s.audit("enroll_token.create").len();
    let n_ok = 1 + ok_while_full + 1;
    // Every answered write is in the audit log, no refused one is.
    assert!(
        tokens >= n_ok && tokens <= n_ok + 30,
        "{tokens} enroll-token audit entries for {n_ok} successful writes (plus the wait's)"
    );
    let out = run(Command::new("sqlite3")
        .arg(&db_path)
        .arg("PRAGMA integrity_check;"));
    let integrity = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(integrity, "ok");
    let bin = Path::new(AGENT).with_file_name("patchbay");
    let out = Command::new(&bin)
        .args(["audit", "verify", "--db", &db])
        .arg("--data-dir")
        .arg(&data)
        .env_remove("PATCHBAY_DB")
        .output()
        .unwrap();
    let verify = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "patchbay audit verify failed: {verify}"
    );
    p.say(&format!(
        "PRAGMA integrity_check: {integrity}; patchbay audit verify: {}",
        verify.lines().last().unwrap_or("").trim()
    ));
    drop(s);
    drop(fs);
}

// ---------------------------------------------------------------- clocks

const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The agent of `h` with libfaketime preloaded at `offset` ("+1h", "-1h").
/// The library is copied into the root too, so what the agent runs there
/// (dpkg, apt, checks) sees the same wrong clock.
fn start_skewed_agent(h: &mut Host, token: &str, offset: &str) {
    let inside = h.root.path.join(FAKETIME.trim_start_matches('/'));
    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
    std::fs::copy(FAKETIME, &inside).unwrap();
    let log = File::create(h.root.scratch.join("agent.log")).unwrap();
    let url = format!("http://{}:{}", h.net.host_ip, h.server_port);
    let child = h
        .net
        .exec(AGENT)
        .args(["--server", &url, "--enroll-token", token])
        .arg("--root")
        .arg(&h.root.path)
        .arg("--state-dir")
        .arg(&h.root.state)
        .arg("--config")
        .arg(h.root.scratch.join("agent.toml"))
        .args([
            "--interval",
            "1s",
            "--long-poll",
            "10",
            "--no-pending-updates",
        ])
        .env_remove("PATCHBAY_SERVER")
        .env("RUST_LOG", "info")
        .env("LD_PRELOAD", FAKETIME)
        .env("FAKETIME", offset)
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    h.agent = Some(child);
}

pub(crate) fn sqlite_agent_clocks_an_hour_off() {
    let p = Phase::new("clock-skew");
    ensure_tools(&[("faketime", "faketime")]);
    assert!(
        Path::new(FAKETIME).is_file(),
        "{FAKETIME} missing (apt-get install libfaketime)"
    );
    let s = Server::start(Engine::Sqlite);
    let mut hs = hosts(56, 2, s.addr);
    let offsets = ["+1h", "-1h"];
    let mut i = 0;
    enrol(&s, &mut hs, |h, t| {
        start_skewed_agent(h, t, offsets[i]);
        i += 1;
    });
    // The agents' clocks are off indeed (their journal/log times), and they
    // noticed: the server's clock is taken from its answers.
    for (h, o) in hs.iter().zip(offsets) {
        let want = if o.starts_with('+') { "-3600" } else { "3600" };
        let t = Instant::now();
        while !h
            .agent_log()
            .lines()
            .any(|l| l.contains("differs from the server's") && l.contains(want))
        {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{} ({o}) logged no clock difference of {want} s:\n{}",
                h.name,
                h.agent_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    p.say("2 agents enrolled with clocks +1 h and −1 h; each logged the difference to the server's clock");
    let id = start_deployment(&s, "1.1");
    let d = wait_deployment(&s, &hs, &id, Duration::from_secs(120), |d| {
        d["deployment"]["status"] != "running"
    });
    assert_ran_once_each(&s, &hs, &id, "1.1");
    for (h, o) in hs.iter().zip(offsets) {
        let key = format!("{id}/{}", h.name);
        let leased = crate::rollout::ts(&job_of(&d, &h.name)["leased_at"]).unwrap();
        let started = h
            .journal_of(&key)
            .iter()
            .find(|r| r["event"] == "started")
            .and_then(|r| crate::rollout::ts(&r["ts"]))
            .unwrap();
        // Journal times are the host's clock.
        let skew = started.duration_since(leased).as_secs_f64();
        let expect = if o.starts_with('+') { 3600.0 } else { -3600.0 };
        assert!(
            (skew - expect).abs() < 30.0,
            "{}: journal start {started} vs lease {leased}: the clock is not {o} off",
            h.name
        );
        p.say(&format!(
            "{} ({o}): started its job {:.1} s after the lease (on the server's clock)",
            h.name,
            skew - expect
        ));
    }
    p.say(&format!("{id}: completed with both clocks an hour off"));
}
