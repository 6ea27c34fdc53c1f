//! `patchbay sim load`: a load test of one server by many simulated agents.
//!
//! The generator is asynchronous (tokio and hyper's HTTP/1 client, the stack
//! the server itself runs on), so 50,000 agents at a 10 s interval — 5,000
//! check-ins per second — fit on the machine next to the server:
//!
//! 1. **Setup** (untimed for the steady figures): an enrolment token for all
//!    agents (the admin API), then each agent enrols (`/agent/v1/enroll`) and
//!    sends its first full inventory (a real template of
//!    [`super::Templates`], optionally cut to `--packages` packages so a big
//!    fleet is set up in minutes).
//! 2. **Steady state** for `--duration`: every agent checks in with
//!    `InventoryPayload::Unchanged` every `--interval`, agent `i` at phase
//!    `i / agents` of the interval, so the load is even. `--connections`
//!    keep-alive connections carry the check-ins (each its share of the
//!    agents, in due order). Latency is measured **from the time a check-in
//!    was due**, not from when it was sent, so a server (or generator) that
//!    falls behind shows up in the percentiles instead of silently slowing
//!    the load (no coordinated omission); the service time (send → answer)
//!    is reported too.
//! 3. **Report**: check-ins, errors (non-2xx answers and transport errors,
//!    with the first few messages), achieved rate, p50/p90/p99/max latency,
//!    and — with `--server-pid` — the server's CPU use (from
//!    `/proc/PID/stat` over the steady phase, in cores) and its RSS (peak of
//!    1 s samples of `/proc/PID/status`, and at the end), next to the
//!    generator's own CPU. `--json` prints the same as one JSON object.
//!
//! Plain HTTP only (the generator measures the server, not TLS).

use super::Templates;
use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use patchbay_proto::AGENT_PROTOCOL_VERSION;
use patchbay_proto::agent::{
    CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse, InventoryPayload,
};
use patchbay_proto::api::{CreateEnrollToken, EnrollTokenCreated};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// `patchbay sim load` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Number of simulated agents.
    #[arg(long, default_value_t = 50_000)]
    pub agents: usize,
    /// Check-in interval of every agent (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = patchbay_core::when::flag_fine_interval)]
    pub interval: Duration,
    /// Length of the steady phase (e.g. 5m, 30s).
    #[arg(long, default_value = "5m", value_parser = patchbay_core::when::flag_fine_interval)]
    pub duration: Duration,
    /// Keep-alive connections carrying the steady check-ins.
    #[arg(long, default_value_t = 256)]
    pub connections: usize,
    /// Concurrent enrolments during setup.
    #[arg(long, default_value_t = 16)]
    pub setup_concurrency: usize,
    /// Keep only the first N packages of each inventory (a quicker setup of a
    /// big fleet; the steady check-ins send no inventory either way).
    #[arg(long)]
    pub packages: Option<usize>,
    /// Name prefix of the simulated hosts (unique per run on one server).
    #[arg(long, default_value = "load")]
    pub prefix: String,
    /// Random seed (the same seed gives the same fleet).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The server's process id: report its CPU and RSS from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Timeout of one request.
    #[arg(long, default_value = "30s", value_parser = patchbay_core::when::flag_fine_interval)]
    pub timeout: Duration,
    /// Print the report as one JSON object (after the human-readable lines).
    #[arg(long)]
    pub json: bool,
}

/// What a load run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Agents simulated.
    pub agents: usize,
    /// Check-in interval, seconds.
    pub interval_secs: f64,
    /// Steady phase, seconds (as run).
    pub duration_secs: f64,
    /// Setup (enrolment and first inventory of every agent), seconds.
    pub setup_secs: f64,
    /// Errors during setup.
    pub setup_errors: u64,
    /// Steady check-ins answered 2xx.
    pub checkins: u64,
    /// Steady check-ins that failed (non-2xx or transport error).
    pub errors: u64,
    /// The first few error messages.
    pub error_samples: Vec<String>,
    /// Answered check-ins per second over the steady phase.
    pub rate: f64,
    /// The rate asked for (agents ÷ interval).
    pub target_rate: f64,
    /// Latency from the time each check-in was due, milliseconds.
    pub latency_ms: Percentiles,
    /// Service time (sent → answered), milliseconds.
    pub service_ms: Percentiles,
    /// The server's CPU use over the steady phase, in cores (1.0 = one core busy).
    pub server_cpu_cores: Option<f64>,
    /// The server's largest RSS sampled over the steady phase, MiB.
    pub server_rss_peak_mib: Option<f64>,
    /// The server's RSS at the end, MiB.
    pub server_rss_end_mib: Option<f64>,
    /// This generator's CPU use over the steady phase, in cores.
    pub generator_cpu_cores: Option<f64>,
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    fn of(mut us: Vec<u32>) -> Self {
        if us.is_empty() {
            return Self::default();
        }
        us.sort_unstable();
        let at = |q: f64| {
            let i = ((us.len() as f64 * q).ceil() as usize).clamp(1, us.len()) - 1;
            f64::from(us[i]) / 1000.0
        };
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: f64::from(us[us.len() - 1]) / 1000.0,
        }
    }
}

/// The server's address from a `http://host:port` URL.
async fn server_addr(url: &str) -> anyhow::Result<(SocketAddr, String)> {
    let Some(rest) = url.trim().strip_prefix("http://") else {
        bail!(
            "patchbay sim load speaks plain HTTP only: give --url http://HOST:PORT (got {url:?})"
        );
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        bail!("--url {url:?} names no host");
    }
    let with_port = if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let addr = tokio::net::lookup_host(&with_port)
        .await
        .with_context(|| format!("resolving {with_port}"))?
        .next()
        .with_context(|| format!("{with_port} resolves to no address"))?;
    Ok((addr, host.to_string()))
}

/// One keep-alive HTTP/1 connection to the server.
struct Conn {
    addr: SocketAddr,
    host: String,
    timeout: Duration,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    fn new(addr: SocketAddr, host: &str, timeout: Duration) -> Self {
        Self {
            addr,
            host: host.to_string(),
            timeout,
            sender: None,
        }
    }

    async fn connect(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.addr)
                .await
                .with_context(|| format!("connecting to {}", self.addr))?;
            stream.set_nodelay(true)?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .context("HTTP handshake")?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        self.sender.as_mut().context("no connection to the server")
    }

    /// POSTs `body` to `path`; returns the status and the answer's body.
    async fn post(
        &mut self,
        path: &str,
        bearer: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<(u16, Bytes)> {
        let timeout = self.timeout;
        let host = self.host.clone();
        let res = tokio::time::timeout(timeout, async {
            let sender = self.connect().await?;
            sender.ready().await.context("connection not ready")?;
            let mut req = hyper::Request::post(path)
                .header(hyper::header::HOST, host)
                .header(hyper::header::CONTENT_TYPE, "application/json");
            if let Some(b) = bearer {
                req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {b}"));
            }
            let resp = sender
                .send_request(req.body(Full::new(body))?)
                .await
                .context("sending the request")?;
            let status = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .context("reading the answer")?
                .to_bytes();
            anyhow::Ok((status, bytes))
        })
        .await;
        match res {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                bail!("no answer within {timeout:?}")
            }
        }
    }
}

/// An enrolled simulated agent: its credential and its unchanged check-in.
struct SimAgent {
    secret: String,
    body: Bytes,
}

/// Errors of a phase: a count and the first few messages.
#[derive(Default)]
struct Errors {
    count: AtomicU64,
    samples: std::sync::Mutex<Vec<String>>,
}

impl Errors {
    fn add(&self, what: String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() < 5 {
            s.push(what);
        }
    }
    fn samples(&self) -> Vec<String> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// CPU time (user + system) of a process, seconds.
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) in ")".
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // In clock ticks of USER_HZ, which Linux's /proc ABI fixes at 100.
    Some((utime + stime) / 100.0)
}

/// Resident set size of a process, MiB.
fn rss_mib(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// `patchbay sim load`
pub fn run(url: &str, token: Option<String>, a: LoadArgs) -> anyhow::Result<()> {
    let report = run_load(url, token, &a)?;
    print_report(&report);
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    if report.setup_errors > 0 || report.errors > 0 {
        bail!(
            "{} setup errors and {} check-in errors (first: {:?})",
            report.setup_errors,
            report.errors,
            report.error_samples
        );
    }
    Ok(())
}

/// Runs a load test; returns its report (errors are counted, not fatal).
pub fn run_load(url: &str, token: Option<String>, a: &LoadArgs) -> anyhow::Result<LoadReport> {
    if a.agents == 0 || a.connections == 0 || a.setup_concurrency == 0 {
        bail!("--agents, --connections and --setup-concurrency must be positive");
    }
    if let Some(pid) = a.server_pid
        && cpu_secs(&pid.to_string()).is_none()
    {
        bail!("--server-pid {pid}: /proc/{pid}/stat cannot be read (no such process?)");
    }
    let templates = Arc::new(Templates::load()?);
    let admin = crate::conn::connect(url, token)?;
    let t: EnrollTokenCreated = admin.send(
        "POST",
        "/api/v1/enroll-tokens",
        &CreateEnrollToken {
            name: Some(format!("sim-load-{}", a.prefix)),
            uses: Some(u32::try_from(a.agents).context("--agents is too large")?),
            ttl_secs: Some(24 * 3600),
        },
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(load(url, &t.token, templates, a))
}

async fn load(
    url: &str,
    enroll_token: &str,
    templates: Arc<Templates>,
    a: &LoadArgs,
) -> anyhow::Result<LoadReport> {
    let (addr, host) = server_addr(url).await?;

    // 1. Setup: enrol, first inventory.
    let setup_start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let setup_errors = Arc::new(Errors::default());
    let mut tasks = Vec::new();
    for _ in 0..a.setup_concurrency.min(a.agents) {
        let (next, errors, host) = (next.clone(), setup_errors.clone(), host.clone());
        let enroll_token = enroll_token.to_string();
        let templates = templates.clone();
        let (agents, prefix, seed, packages, timeout) =
            (a.agents, a.prefix.clone(), a.seed, a.packages, a.timeout);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(addr, &host, timeout);
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= agents {
                    return out;
                }
                let name = format!("{prefix}-{i:05}");
                let mut inv = templates.host(i, seed, &name);
                if let Some(n) = packages {
                    inv.packages.truncate(n);
                }
                match setup_agent(&mut conn, &enroll_token, &inv).await {
                    Ok(agent) => out.push((i, agent)),
                    Err(e) => errors.add(format!("setup of {name}: {e:#}")),
                }
            }
        }));
    }
    let mut agents: Vec<(usize, SimAgent)> = Vec::with_capacity(a.agents);
    for t in tasks {
        agents.extend(t.await.context("a setup task panicked")?);
    }
    agents.sort_by_key(|(i, _)| *i);
    let setup_secs = setup_start.elapsed().as_secs_f64();
    eprintln!(
        "sim load: {} agents enrolled with their first inventory in {setup_secs:.1}s ({} errors)",
        agents.len(),
        setup_errors.count.load(Ordering::Relaxed)
    );

    if agents.is_empty() {
        bail!(
            "no simulated agent could be set up (first errors: {:?})",
            setup_errors.samples()
        );
    }

    // 2. Steady state.
    let n = agents.len();
    let agents: Arc<Vec<SimAgent>> = Arc::new(agents.into_iter().map(|(_, g)| g).collect());
    let errors = Arc::new(Errors::default());
    let ok = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + a.duration;
    let interval = a.interval;
    let pid = a.server_pid.map(|p| p.to_string());
    let cpu0 = pid.as_deref().and_then(cpu_secs);
    let own0 = cpu_secs("self");
    // RSS samples, once a second.
    let rss_peak = Arc::new(std::sync::Mutex::new(None::<f64>));
    let sampler = pid.clone().map(|pid| {
        let peak = rss_peak.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                if let Some(r) = rss_mib(&pid) {
                    let mut g = peak.lock().unwrap_or_else(|e| e.into_inner());
                    *g = Some(g.map_or(r, |p: f64| p.max(r)));
                }
            }
        })
    });
    let conns = a.connections.min(n);
    let mut workers = Vec::with_capacity(conns);
    for w in 0..conns {
        let (agents, errors, ok, host) = (agents.clone(), errors.clone(), ok.clone(), host.clone());
        let timeout = a.timeout;
        workers.push(tokio::spawn(async move {
            let mut conn = Conn::new(addr, &host, timeout);
            let mut lat = Vec::new();
            let mut svc = Vec::new();
            // This worker's agents, in phase order, round after round.
            'rounds: for round in 0u32.. {
                for i in (w..n).step_by(conns) {
                    let phase = interval.mul_f64(i as f64 / n as f64);
                    let due = start + interval * round + phase;
                    if due >= end {
                        break 'rounds;
                    }
                    tokio::time::sleep_until(due).await;
                    let sent = Instant::now();
                    let g = &agents[i];
                    match conn
                        .post("/agent/v1/checkin", Some(&g.secret), g.body.clone())
                        .await
                    {
                        Ok((s, _)) if (200..300).contains(&s) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            let now = Instant::now();
                            lat.push(micros(now - due));
                            svc.push(micros(now - sent));
                        }
                        Ok((s, body)) => errors.add(format!(
                            "check-in answered {s}: {}",
                            String::from_utf8_lossy(&body)
                                .chars()
                                .take(300)
                                .collect::<String>()
                        )),
                        Err(e) => errors.add(format!("check-in: {e:#}")),
                    }
                }
            }
            (lat, svc)
        }));
    }
    let mut lat = Vec::new();
    let mut svc = Vec::new();
    for w in workers {
        let (l, s) = w.await.context("a load task panicked")?;
        lat.extend(l);
        svc.extend(s);
    }
    let ran = Instant::now()
        .saturating_duration_since(start)
        .max(a.duration);
    let secs = ran.as_secs_f64();
    let cpu1 = pid.as_deref().and_then(cpu_secs);
    let own1 = cpu_secs("self");
    if let Some(s) = sampler {
        s.abort();
    }
    let checkins = ok.load(Ordering::Relaxed);
    Ok(LoadReport {
        agents: a.agents,
        interval_secs: a.interval.as_secs_f64(),
        duration_secs: secs,
        setup_secs,
        setup_errors: setup_errors.count.load(Ordering::Relaxed),
        checkins,
        errors: errors.count.load(Ordering::Relaxed),
        error_samples: setup_errors
            .samples()
            .into_iter()
            .chain(errors.samples())
            .collect(),
        rate: checkins as f64 / secs,
        target_rate: a.agents as f64 / a.interval.as_secs_f64(),
        latency_ms: Percentiles::of(lat),
        service_ms: Percentiles::of(svc),
        server_cpu_cores: cpu0.zip(cpu1).map(|(c0, c1)| (c1 - c0) / secs),
        server_rss_peak_mib: *rss_peak.lock().unwrap_or_else(|e| e.into_inner()),
        server_rss_end_mib: pid.as_deref().and_then(rss_mib),
        generator_cpu_cores: own0.zip(own1).map(|(c0, c1)| (c1 - c0) / secs),
    })
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Enrols one agent and sends its first inventory.
async fn setup_agent(
    conn: &mut Conn,
    enroll_token: &str,
    inv: &patchbay_core::inventory::Inventory,
) -> anyhow::Result<SimAgent> {
    let body = serde_json::to_vec(&EnrollRequest {
        protocol: AGENT_PROTOCOL_VERSION,
        enroll_token: enroll_token.to_string(),
        hostname: inv.facts.hostname.clone(),
        machine_id: inv.facts.machine_id.clone(),
        agent_secret: None,
        csr: None,
    })?;
    let (s, b) = conn.post("/agent/v1/enroll", None, body.into()).await?;
    if !(200..300).contains(&s) {
        bail!("enrolment answered {s}: {}", String::from_utf8_lossy(&b));
    }
    let e: EnrollResponse = serde_json::from_slice(&b).context("decoding the enrolment")?;
    let hash = inv.content_hash();
    let full = serde_json::to_vec(&CheckinRequest {
        results: vec![],
        wait_secs: None,
        key_refusals: Vec::new(),
        protocol: AGENT_PROTOCOL_VERSION,
        inventory_hash: hash.clone(),
        inventory: InventoryPayload::Full {
            inventory: inv.clone(),
        },
    })?;
    let (s, b) = conn
        .post("/agent/v1/checkin", Some(&e.agent_secret), full.into())
        .await?;
    if !(200..300).contains(&s) {
        bail!(
            "first check-in answered {s}: {}",
            String::from_utf8_lossy(&b)
        );
    }
    let r: CheckinResponse = serde_json::from_slice(&b).context("decoding the check-in")?;
    if r.stored_hash != hash {
        bail!("the server stored {}, not {hash}", r.stored_hash);
    }
    let body = serde_json::to_vec(&CheckinRequest {
        results: vec![],
        wait_secs: None,
        key_refusals: Vec::new(),
        protocol: AGENT_PROTOCOL_VERSION,
        inventory_hash: hash,
        inventory: InventoryPayload::Unchanged,
    })?;
    Ok(SimAgent {
        secret: e.agent_secret,
        body: body.into(),
    })
}

fn print_report(r: &LoadReport) {
    let opt =
        |v: Option<f64>, unit: &str| v.map_or_else(|| "n/a".into(), |x| format!("{x:.2}{unit}"));
    println!(
        "sim load: {} agents every {:.1}s for {:.0}s (target {:.0}/s); setup {:.1}s ({} errors)",
        r.agents, r.interval_secs, r.duration_secs, r.target_rate, r.setup_secs, r.setup_errors
    );
    println!(
        "  check-ins: {} answered, {} errors, {:.0}/s",
        r.checkins, r.errors, r.rate
    );
    println!(
        "  latency from due (ms): p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        r.latency_ms.p50, r.latency_ms.p90, r.latency_ms.p99, r.latency_ms.max
    );
    println!(
        "  service time (ms):     p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        r.service_ms.p50, r.service_ms.p90, r.service_ms.p99, r.service_ms.max
    );
    println!(
        "  server: CPU {} cores, RSS peak {} (end {}); generator CPU {} cores",
        opt(r.server_cpu_cores, ""),
        opt(r.server_rss_peak_mib, " MiB"),
        opt(r.server_rss_end_mib, " MiB"),
        opt(r.generator_cpu_cores, "")
    );
    for e in &r.error_samples {
        println!("  error: {e}");
    }
}
