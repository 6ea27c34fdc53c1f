//! Agent check-ins per second against the real server, each figure next to a
//! ceiling measured in the same run.
//!
//! For each backend (SQLite always; PostgreSQL when `PATCHBAY_TEST_PG_URL` is set,
//! as `scripts/with-postgres` does), the real server runs in-process
//! ([`patchbay_server::prepare`] + [`patchbay_server::serve`] on a multi-thread
//! tokio runtime, bound to `127.0.0.1:0`) and blocking clients
//! ([`patchbay_client::Client`], ureq) post pre-serialized check-ins from
//! [`CONCURRENCY`] (8) threads:
//!
//! - **unchanged**: agents whose inventory the server already holds (enrolled and
//!   checked in fully beforehand, untimed; inventories from the real package
//!   databases of [`patchbay_cli::sim::Templates`]) check in with
//!   `InventoryPayload::Unchanged` and the matching hash: the steady state of a
//!   fleet. 64 agents take turns for 20,000 timed check-ins. The server runs
//!   with its defaults: an unchanged check-in opens no write transaction, its
//!   time is flushed in batches (`patchbay_app::heartbeats`); after the timed
//!   run the bench flushes (a graceful stop) and checks that every agent's
//!   stored `last_seen_at` is at least its last answered check-in's.
//! - **unchanged, write each** (the baseline in the same run): the same
//!   check-ins against a second server with `heartbeat_flush` zero, the path
//!   before batching — one write transaction per check-in.
//! - **first inventory**: freshly enrolled agents (enrolment untimed) send their
//!   first full inventory of 2,000 packages (a real template topped up with
//!   synthetic `pbsim-lib…` packages); every package row is written. 500 agents,
//!   one timed check-in each, each on a new connection as a real agent's would be.
//!
//! The **ceiling** is a bare axum handler on the same stack (axum, hyper, a tokio
//! runtime of the same shape, the same client, the same connections pattern and
//! the very same request bodies) that reads the body and answers `{"ok":true}`:
//! `ratio = ops/s ÷ ceiling` is the share of the transport-bound maximum the server
//! reaches. A third figure, **no-DB**, is a handler on the same stack that does the
//! server's pure CPU work (JSON decoding; for full inventories also normalising,
//! validating and hashing) without touching a database, which splits the gap into
//! decoding and storage.
//!
//! Run it (release build; the PostgreSQL server is throwaway):
//!
//! ```text
//! scripts/with-postgres cargo bench -p patchbay-server --bench checkin
//! ```
//!
//! Knobs: `PATCHBAY_BENCH_SCALE` (float, default 1.0) multiplies the counts, e.g.
//! `0.05` for a quick smoke run; `PATCHBAY_BENCH_REQUIRE_PG=1` makes a missing
//! PostgreSQL an error instead of a loud skip. The latest figures are recorded in
//! `docs/benchmarks.md`. The ceiling uses the server's own `axum`; the fleet's
//! inventories come from the CLI's simulator (`patchbay_cli::sim::Templates`),
//! a dev-dependency of this package (a cycle through dev-dependencies, which
//! Cargo allows: the CLI links this very `patchbay-server`).

/// The allocator the `patchbay` binary ships with (ADR 0025), so that this
/// measures what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, anyhow, bail};
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use patchbay_app::AppConfig;
use patchbay_cli::sim::Templates;
use patchbay_client::Client;
use patchbay_core::inventory::{self, Inventory, Package, PackageFormat};
use patchbay_proto::AGENT_PROTOCOL_VERSION;
use patchbay_proto::agent::{
    CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse, InventoryPayload,
};
use patchbay_proto::api::{CreateEnrollToken, EnrollTokenCreated};
use patchbay_server::Settings;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Client threads posting concurrently.
const CONCURRENCY: usize = 8;
/// Agents taking turns in the unchanged scenario.
const UNCHANGED_AGENTS: usize = 64;
/// Timed unchanged check-ins (at scale 1).
const UNCHANGED_CHECKINS: usize = 20_000;
/// Agents sending a first inventory (at scale 1).
const FIRST_AGENTS: usize = 500;
/// Packages in a first inventory.
const FIRST_PACKAGES: usize = 2_000;
const SEED: u64 = 42;
const TIMEOUT: Duration = Duration::from_secs(120);
const CHECKIN: &str = "/agent/v1/checkin";
const JSON: &str = "application/json";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("checkin bench: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// One line of the result table.
struct Row {
    backend: &'static str,
    scenario: String,
    ops: usize,
    secs: f64,
    /// Package rows written (first inventory only).
    rows: Option<u64>,
    no_db: f64,
    ceiling: f64,
}

impl Row {
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.secs
    }
}

fn run() -> anyhow::Result<()> {
    let scale = match std::env::var("PATCHBAY_BENCH_SCALE") {
        Ok(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| anyhow!("PATCHBAY_BENCH_SCALE={s:?} is not a positive number"))?,
        Err(_) => 1.0,
    };
    let scaled = |n: usize| ((n as f64 * scale).round() as usize).max(1);
    let unchanged_agents = scaled(UNCHANGED_AGENTS);
    let unchanged_checkins = scaled(UNCHANGED_CHECKINS).max(CONCURRENCY);
    let first_agents = scaled(FIRST_AGENTS);

    let require_pg = std::env::var("PATCHBAY_BENCH_REQUIRE_PG").is_ok_and(|v| v.trim() == "1");
    let pg = std::env::var("PATCHBAY_TEST_PG_URL").is_ok_and(|v| !v.trim().is_empty());
    const SKIP: &str =
        "postgres: SKIPPED (PATCHBAY_TEST_PG_URL not set; run via scripts/with-postgres)";
    if !pg {
        eprintln!("\n*** {SKIP} ***\n");
        if require_pg {
            bail!("PATCHBAY_BENCH_REQUIRE_PG=1 but PostgreSQL is not available");
        }
    }

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "checkin bench: scale {scale}, {cores} cores, {CONCURRENCY} client threads; \
         unchanged: {unchanged_agents} agents x {unchanged_checkins} check-ins; \
         first inventory: {first_agents} agents x {FIRST_PACKAGES} packages"
    );
    let templates = Templates::load()?;
    let mut backends = vec![Backend::Sqlite];
    if pg {
        backends.push(Backend::Postgres);
    }
    let mut rows = Vec::new();
    let bare = Server::start_bare()?;
    for backend in backends {
        let data_dir = tempfile::tempdir().context("creating a temporary data directory")?;
        let (server, admin_token) =
            Server::start_real(backend, data_dir.path().to_path_buf(), AppConfig::default())
                .with_context(|| format!("starting the server on {}", backend.name()))?;
        let admin = Client::new(&server.base, Some(admin_token), TIMEOUT);
        let enrol_token: EnrollTokenCreated = admin.send(
            "POST",
            "/api/v1/enroll-tokens",
            &CreateEnrollToken {
                name: Some("bench".into()),
                uses: Some(u32::try_from(unchanged_agents + first_agents)?),
                ttl_secs: Some(3600),
            },
        )?;
        let ctx = Ctx {
            backend,
            base: &server.base,
            bare: &bare.base,
            enrol_token: &enrol_token.token,
            templates: &templates,
        };
        let (row, last_answered) =
            unchanged(&ctx, "unchanged", unchanged_agents, unchanged_checkins)
                .with_context(|| format!("{}: unchanged check-ins", backend.name()))?;
        rows.push(row);
        rows.push(
            first_inventory(&ctx, first_agents)
                .with_context(|| format!("{}: first inventories", backend.name()))?,
        );
        // A graceful stop flushes the pending check-in times: each agent's
        // stored time is at least the one of its last answered check-in.
        let db_url = server.db_url.clone();
        server.stop()?;
        check_stored_seen(&db_url, &last_answered)
            .with_context(|| format!("{}: stored check-in times", backend.name()))?;

        // The baseline in the same run: one write transaction per check-in.
        let data_dir2 = tempfile::tempdir().context("creating a temporary data directory")?;
        let (legacy, admin_token) = Server::start_real(
            backend,
            data_dir2.path().to_path_buf(),
            AppConfig {
                heartbeat_flush: Duration::ZERO,
                ..AppConfig::default()
            },
        )
        .with_context(|| format!("starting the write-each server on {}", backend.name()))?;
        let admin = Client::new(&legacy.base, Some(admin_token), TIMEOUT);
        let enrol_token: EnrollTokenCreated = admin.send(
            "POST",
            "/api/v1/enroll-tokens",
            &CreateEnrollToken {
                name: Some("bench-write-each".into()),
                uses: Some(u32::try_from(unchanged_agents)?),
                ttl_secs: Some(3600),
            },
        )?;
        let ctx = Ctx {
            backend,
            base: &legacy.base,
            bare: &bare.base,
            enrol_token: &enrol_token.token,
            templates: &templates,
        };
        rows.push(
            unchanged(
                &ctx,
                "unchanged, write each (before)",
                unchanged_agents,
                unchanged_checkins,
            )
            .with_context(|| format!("{}: unchanged check-ins, write each", backend.name()))?
            .0,
        );
        legacy.stop()?;
        drop(data_dir);
        drop(data_dir2);
    }
    bare.stop()?;

    print_table(&rows);
    if !pg {
        println!("\n*** {SKIP} ***");
    }
    println!(
        "peak RSS of the bench process (servers + clients + bodies): {}",
        peak_rss()
    );
    Ok(())
}

struct Ctx<'a> {
    backend: Backend,
    base: &'a str,
    bare: &'a str,
    enrol_token: &'a str,
    templates: &'a Templates,
}

/// An enrolled agent.
struct Agent {
    secret: String,
    hash: String,
    packages: usize,
}

/// Enrols a host (untimed setup).
fn enrol(ctx: &Ctx<'_>, inv: &Inventory) -> anyhow::Result<Agent> {
    let c = Client::new(ctx.base, None, TIMEOUT);
    let e: EnrollResponse = c.send(
        "POST",
        "/agent/v1/enroll",
        &EnrollRequest {
            protocol: AGENT_PROTOCOL_VERSION,
            enroll_token: ctx.enrol_token.to_string(),
            hostname: inv.facts.hostname.clone(),
            machine_id: inv.facts.machine_id.clone(),
            agent_secret: None,
            csr: None,
        },
    )?;
    Ok(Agent {
        secret: e.agent_secret,
        hash: inv.content_hash(),
        packages: inv.packages.len(),
    })
}

fn full_body(inv: &Inventory) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(&CheckinRequest {
        results: vec![],
        wait_secs: None,
        key_refusals: Vec::new(),
        protocol: AGENT_PROTOCOL_VERSION,
        inventory_hash: inv.content_hash(),
        inventory: InventoryPayload::Full {
            inventory: inv.clone(),
        },
    })?)
}

fn unchanged_body(hash: &str) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(&CheckinRequest {
        results: vec![],
        wait_secs: None,
        key_refusals: Vec::new(),
        protocol: AGENT_PROTOCOL_VERSION,
        inventory_hash: hash.to_string(),
        inventory: InventoryPayload::Unchanged,
    })?)
}

/// Checks a real check-in's answer.
fn expect(r: &CheckinResponse, agent: &Agent, rows: u64) -> anyhow::Result<u64> {
    if r.stored_hash != agent.hash || r.package_rows_written != rows {
        bail!(
            "unexpected answer: stored {} with {} rows written, expected {} with {rows}",
            r.stored_hash,
            r.package_rows_written,
            agent.hash
        );
    }
    Ok(rows)
}

/// The check-in times the server answered last, by agent secret hash: the
/// time just before each agent's last check-in was sent.
type LastAnswered = Vec<(String, jiff::Timestamp)>;

/// Checks that every agent's stored `last_checkin_at` and its asset's
/// `last_seen_at` are at least the time its last answered check-in was sent.
fn check_stored_seen(db_url: &str, last: &LastAnswered) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let store = patchbay_store::open(db_url).await?;
        let mut tx = store.read().await?;
        for (hash, sent) in last {
            let g = tx
                .agent_by_secret_hash(hash)
                .await?
                .ok_or_else(|| anyhow!("agent with secret hash {hash} is gone"))?;
            let a = tx
                .asset_by_name(&g.asset_name)
                .await?
                .ok_or_else(|| anyhow!("asset {} is gone", g.asset_name))?;
            for (what, t) in [
                ("agent last_checkin_at", g.last_checkin_at),
                ("asset last_seen_at", a.last_seen_at),
            ] {
                if t.is_none_or(|t| t < *sent) {
                    bail!(
                        "{} {what} is {t:?}, before its last answered check-in (sent {sent})",
                        g.asset_name
                    );
                }
            }
        }
        drop(tx);
        store.close().await;
        Ok(())
    })
}

fn unchanged(
    ctx: &Ctx<'_>,
    label: &str,
    agents: usize,
    checkins: usize,
) -> anyhow::Result<(Row, LastAnswered)> {
    // Untimed setup: enrol and send the first (full) inventory.
    let setup = par_map(agents, |i| {
        let inv = ctx.templates.host(i, SEED, &format!("bench-steady-{i:05}"));
        let agent = enrol(ctx, &inv)?;
        let client = Client::new(ctx.base, Some(agent.secret.clone()), TIMEOUT);
        let r: CheckinResponse = client.post_raw(CHECKIN, JSON, &full_body(&inv)?)?;
        expect(&r, &agent, agent.packages as u64)?;
        let body = unchanged_body(&agent.hash)?;
        Ok((agent, client, body))
    })?;

    // Ceiling and no-DB handler: the same bodies, one warmed connection per agent.
    let bare_clients: Vec<Client> = setup
        .iter()
        .map(|(a, _, _)| Client::new(ctx.bare, Some(a.secret.clone()), TIMEOUT))
        .collect();
    let post_bare = |path: &str, k: usize| -> anyhow::Result<u64> {
        let i = k % agents;
        let _: serde_json::Value = bare_clients[i].post_raw(path, JSON, &setup[i].2)?;
        Ok(0)
    };
    for i in 0..agents {
        post_bare("/bare", i)?;
    }
    let (ceiling, _) = timed(checkins, |k| post_bare("/bare", k))?;
    let (no_db, _) = timed(checkins, |k| post_bare("/decode", k))?;

    let (secs, _) = timed(checkins, |k| {
        let (agent, client, body) = &setup[k % agents];
        let r: CheckinResponse = client.post_raw(CHECKIN, JSON, body)?;
        expect(&r, agent, 0)
    })?;
    // One more, untimed, per agent: the time before it was sent is a lower
    // bound of what the server must store for it.
    let mut last = Vec::with_capacity(agents);
    for (agent, client, body) in &setup {
        // Stored times have millisecond precision.
        let sent = jiff::Timestamp::from_millisecond(jiff::Timestamp::now().as_millisecond())?;
        let r: CheckinResponse = client.post_raw(CHECKIN, JSON, body)?;
        expect(&r, agent, 0)?;
        last.push((patchbay_core::token::hash(&agent.secret), sent));
    }
    Ok((
        Row {
            backend: ctx.backend.name(),
            scenario: format!("{label} ({} B body)", setup[0].2.len()),
            ops: checkins,
            secs,
            rows: None,
            no_db: checkins as f64 / no_db,
            ceiling: checkins as f64 / ceiling,
        },
        last,
    ))
}

/// A host with [`FIRST_PACKAGES`] packages: a real template topped up with
/// synthetic libraries whose versions vary a little from host to host.
fn big_inventory(templates: &Templates, i: usize) -> Inventory {
    let mut inv = templates.host(i, SEED, &format!("bench-first-{i:05}"));
    let apk = inv.format == Some(PackageFormat::Apk);
    let mut j = 0;
    while inv.packages.len() < FIRST_PACKAGES {
        let (major, minor, patch) = (1 + j % 7, (j / 7) % 23, (j + i % 3) % 11);
        let rev = 1 + (j + i) % 4;
        inv.packages.push(Package {
            name: format!("pbsim-lib{j}"),
            version: if apk {
                format!("{major}.{minor}.{patch}-r{rev}")
            } else {
                format!("{major}.{minor}.{patch}-{rev}")
            },
            arch: if apk { "x86_64" } else { "amd64" }.into(),
            source: (!apk).then(|| format!("pbsim-src{}", j / 3)),
            source_version: None,
        });
        j += 1;
    }
    inv.normalize();
    inv
}

fn first_inventory(ctx: &Ctx<'_>, n: usize) -> anyhow::Result<Row> {
    // Untimed setup: build the inventories, serialize them, enrol the hosts.
    let setup = par_map(n, |i| {
        let inv = big_inventory(ctx.templates, 1_000_000 + i);
        if inv.packages.len() != FIRST_PACKAGES {
            bail!(
                "built {} packages, not {FIRST_PACKAGES}",
                inv.packages.len()
            );
        }
        let agent = enrol(ctx, &inv)?;
        Ok((agent, full_body(&inv)?))
    })?;
    let body_bytes: usize = setup.iter().map(|(_, b)| b.len()).sum();

    // Ceiling and no-DB handler: the same bodies, each on a new connection as below.
    let bare = |path: &str| {
        let clients: Vec<Client> = setup
            .iter()
            .map(|(a, _)| Client::new(ctx.bare, Some(a.secret.clone()), TIMEOUT))
            .collect();
        timed(n, |k| {
            let _: serde_json::Value = clients[k].post_raw(path, JSON, &setup[k].1)?;
            Ok(0)
        })
    };
    // One untimed pass first: the process's first touch of this much memory
    // (page faults, allocator growth) would otherwise land in the ceiling.
    bare("/bare")?;
    let (ceiling, _) = bare("/bare")?;
    let (no_db, _) = bare("/decode")?;

    // Each agent's first check-in, on its own (new) connection as a real agent's.
    let clients: Vec<Client> = setup
        .iter()
        .map(|(a, _)| Client::new(ctx.base, Some(a.secret.clone()), TIMEOUT))
        .collect();
    let (secs, rows) = timed(n, |k| {
        let (agent, body) = &setup[k];
        let r: CheckinResponse = clients[k].post_raw(CHECKIN, JSON, body)?;
        expect(&r, agent, agent.packages as u64)
    })?;
    Ok(Row {
        backend: ctx.backend.name(),
        scenario: format!(
            "first inventory ({FIRST_PACKAGES} pkgs, {} KB body)",
            body_bytes / n / 1024
        ),
        ops: n,
        secs,
        rows: Some(rows),
        no_db: n as f64 / no_db,
        ceiling: n as f64 / ceiling,
    })
}

/// Runs `f(0..total)` on [`CONCURRENCY`] threads (thread `t` takes `t`, `t + C`, …);
/// returns the wall time in seconds and the sum of what `f` returned.
fn timed(
    total: usize,
    f: impl Fn(usize) -> anyhow::Result<u64> + Sync,
) -> anyhow::Result<(f64, u64)> {
    let failed = AtomicBool::new(false);
    let start = Instant::now();
    let results: Vec<anyhow::Result<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CONCURRENCY)
            .map(|t| {
                let (f, failed) = (&f, &failed);
                s.spawn(move || {
                    let mut sum = 0;
                    for k in (t..total).step_by(CONCURRENCY) {
                        if failed.load(Ordering::Relaxed) {
                            break;
                        }
                        match f(k) {
                            Ok(x) => sum += x,
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(e.context(format!("request #{k}")));
                            }
                        }
                    }
                    Ok(sum)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("client thread panicked")))
            })
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut sum = 0;
    for r in results {
        sum += r?;
    }
    Ok((secs, sum))
}

/// Maps `f` over `0..n` on [`CONCURRENCY`] threads, keeping the order.
fn par_map<R: Send>(
    n: usize,
    f: impl Fn(usize) -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let parts: Vec<anyhow::Result<Vec<(usize, R)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(out);
                        }
                        match f(i) {
                            Ok(r) => out.push((i, r)),
                            Err(e) => {
                                next.store(n, Ordering::Relaxed);
                                return Err(e.context(format!("setting up agent #{i}")));
                            }
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("setup thread panicked")))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(n);
    for p in parts {
        all.extend(p?);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

/// A server running on its own tokio runtime in a background thread.
struct Server {
    base: String,
    /// The database (real server only).
    db_url: String,
    stop: oneshot::Sender<()>,
    thread: JoinHandle<anyhow::Result<()>>,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // The shape `patchbay serve` runs with: one worker per core.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")
}

/// Waits for a server thread's readiness message, or reports why it died.
fn await_ready<T>(
    name: &str,
    ready: mpsc::Receiver<anyhow::Result<T>>,
    thread: &mut Option<JoinHandle<anyhow::Result<()>>>,
) -> anyhow::Result<T> {
    match ready.recv() {
        Ok(r) => r,
        Err(_) => {
            let why = match thread.take().map(JoinHandle::join) {
                Some(Ok(Err(e))) => format!("{e:#}"),
                Some(Err(p)) => p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into()),
                _ => "stopped without saying why".into(),
            };
            bail!("{name} did not start: {why}")
        }
    }
}

impl Server {
    /// The real server (setup, router, store) on a fresh database.
    fn start_real(
        backend: Backend,
        data_dir: PathBuf,
        app: AppConfig,
    ) -> anyhow::Result<(Self, String)> {
        let (ready_tx, ready_rx) = mpsc::channel::<anyhow::Result<(SocketAddr, String, String)>>();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("patchbay-server".into())
            .spawn(move || {
                runtime()?.block_on(async move {
                    let started = async {
                        let db_url = match backend {
                            Backend::Sqlite => {
                                format!("sqlite://{}", data_dir.join("patchbay.db").display())
                            }
                            Backend::Postgres => {
                                patchbay_store::testing::fresh_postgres_url().await
                            }
                        };
                        let prepared = patchbay_server::prepare(&Settings {
                            db_url: Some(db_url.clone()),
                            data_dir,
                            app,
                        })
                        .await?;
                        let token = std::fs::read_to_string(&prepared.admin_token_path)
                            .with_context(|| {
                                format!("reading {}", prepared.admin_token_path.display())
                            })?
                            .trim()
                            .to_string();
                        let listener = TcpListener::bind("127.0.0.1:0").await?;
                        let addr = listener.local_addr()?;
                        anyhow::Ok((prepared, listener, addr, token, db_url))
                    }
                    .await;
                    match started {
                        Ok((prepared, listener, addr, token, db_url)) => {
                            let _ = ready_tx.send(Ok((addr, token, db_url)));
                            patchbay_server::serve(&prepared, listener, async {
                                let _ = stop_rx.await;
                            })
                            .await
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            Ok(())
                        }
                    }
                })
            })
            .context("spawning the server thread")?;
        let mut thread = Some(thread);
        let (addr, token, db_url) = await_ready("the patchbay server", ready_rx, &mut thread)?;
        let thread = thread.ok_or_else(|| anyhow!("server thread gone"))?;
        Ok((
            Self {
                base: format!("http://{addr}"),
                db_url,
                stop,
                thread,
            },
            token,
        ))
    }

    /// The ceiling: bare handlers on the same stack.
    fn start_bare() -> anyhow::Result<Self> {
        let (ready_tx, ready_rx) = mpsc::channel::<anyhow::Result<SocketAddr>>();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bare-server".into())
            .spawn(move || {
                runtime()?.block_on(async move {
                    let listener = match TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return Ok(());
                        }
                    };
                    let _ = ready_tx.send(listener.local_addr().map_err(Into::into));
                    let router = axum::Router::new()
                        .route("/bare", axum::routing::post(bare))
                        .route("/decode", axum::routing::post(decode))
                        .layer(axum::extract::DefaultBodyLimit::max(
                            patchbay_server::MAX_AGENT_BODY,
                        ));
                    axum::serve(
                        listener,
                        router.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .context("serving the bare handler")
                })
            })
            .context("spawning the bare server thread")?;
        let mut thread = Some(thread);
        let addr = await_ready("the bare server", ready_rx, &mut thread)?;
        let thread = thread.ok_or_else(|| anyhow!("bare server thread gone"))?;
        Ok(Self {
            base: format!("http://{addr}"),
            db_url: String::new(),
            stop,
            thread,
        })
    }

    fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .map_err(|_| anyhow!("server thread panicked"))?
    }
}

fn ok() -> Response {
    ([(header::CONTENT_TYPE, JSON)], r#"{"ok":true}"#).into_response()
}

/// The ceiling handler: reads the body, answers a small JSON document.
async fn bare(_body: Bytes) -> Response {
    ok()
}

/// The server's pure CPU work on a check-in, without a database.
async fn decode(body: Bytes) -> Response {
    let req: CheckinRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    if let InventoryPayload::Full { mut inventory } = req.inventory {
        inventory.normalize();
        if let Err(m) = inventory::validate(&inventory) {
            return (StatusCode::BAD_REQUEST, m).into_response();
        }
        if inventory.content_hash() != req.inventory_hash {
            return (StatusCode::BAD_REQUEST, "hash mismatch").into_response();
        }
    }
    ok()
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| backend  | scenario                                   |   ops | seconds |    ops/s | no-DB ops/s | ceiling ops/s | ratio | package rows/s |"
    );
    println!(
        "|----------|--------------------------------------------|------:|--------:|---------:|------------:|--------------:|------:|---------------:|"
    );
    for r in rows {
        let rows_per_sec = r
            .rows
            .map_or_else(String::new, |n| format!("{:.0}", n as f64 / r.secs));
        println!(
            "| {:<8} | {:<42} | {:>5} | {:>7.2} | {:>8.0} | {:>11.0} | {:>13.0} | {:>5.3} | {:>14} |",
            r.backend,
            r.scenario,
            r.ops,
            r.secs,
            r.ops_per_sec(),
            r.no_db,
            r.ceiling,
            r.ops_per_sec() / r.ceiling,
            rows_per_sec
        );
    }
    println!();
    println!(
        "ratio = ops/s ÷ ceiling ops/s; ceiling = bare axum handler on the same stack \
         (same client, connections and request bodies); no-DB = the same stack doing the \
         server's decoding/validation/hashing without a database."
    );
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
