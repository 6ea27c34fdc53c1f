//! Dashboard page server time at fleet scale (issue 17), each page next to the
//! JSON API request for the same data, measured in the same run.
//!
//! A real `patchbay serve` (in-process: [`patchbay_server::prepare`] +
//! [`patchbay_server::serve`] on its own multi-thread runtime, SQLite,
//! `127.0.0.1:0`) holds `PATCHBAY_BENCH_DASH_ASSETS` (default 50,000) assets
//! × `PATCHBAY_BENCH_DASH_FINDINGS` (default 40) open findings = 2,000,000
//! findings: real (advisory, package) pairs of the Debian 12 host template
//! against the repository's OSV data (`fixtures/feeds/osv`), a different slice
//! per asset, written with the store's batched insert (untimed); 25
//! exceptions and 50 completed deployments with their change records. A dashboard
//! user signs in over HTTP; an admin API token is the baseline's caller.
//!
//! Each page is requested once first ("first request": on a large fleet it
//! starts computing what the page rolls up, `patchbay_app::rollup`, and
//! answers at once that it is doing so), then again every 0.5 s until it
//! shows the figures ("figures ready after", from the first request), then
//! sampled (a sample that says "being computed" fails the run).
//! Each request is a fresh HTTP/1.1 connection from a blocking socket, timed
//! to the **first byte** of the answer (the server renders a page whole
//! before it answers, so the first byte is the server's time).
//! Every request must answer 200. Samples per request: at least 3, at most
//! `PATCHBAY_BENCH_DASH_REPS` (default 11), stopping early once a request
//! has used `PATCHBAY_BENCH_DASH_BUDGET_S` seconds (default 60): the slow ones
//! get fewer samples, and the table says how many.
//!
//! Run it: `cargo bench -p patchbay --bench dashboard`
//! (`PATCHBAY_BENCH_DASH_ASSETS=5000` for a quick run;
//! `PATCHBAY_BENCH_DASH_PAGES=/ui/assets,/ui/` for only those pages). The figures are in
//! `docs/benchmarks.md`.

use anyhow::{Context, anyhow, bail};
use patchbay_app::{AppConfig, Caller, RequestCtx};
use patchbay_cli::sim::Templates;
use patchbay_core::assess::{Assessor, target_for};
use patchbay_feeds::source::{Collect, read_path};
use patchbay_proto::api::AddUser;
use patchbay_server::Settings;
use patchbay_store::{AssetAttrs, DeploymentRow, ExceptionRow, NewFinding};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench password, long enough";
const GOAL_P95_MS: f64 = 300.0;
/// Exceptions in the register (each on one asset and advisory).
const EXCEPTIONS: usize = 25;
/// Completed deployments (100 assets each), each with its change record.
const DEPLOYMENTS: usize = 50;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dashboard bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn env_num(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn pct(xs: &[f64], p: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// One timed request: (status, ms to the first byte, bytes).
/// What a page says while its figures are still being computed
/// (`patchbay_app::rollup`): the whole page, or some of its figures (the
/// exceptions' counts, the change records' tiers).
const PENDING_MARKS: [&[u8]; 3] = [br#"id="pending""#, b"being computed", b"being counted"];

fn is_pending(body: &[u8]) -> bool {
    PENDING_MARKS
        .iter()
        .any(|m| body.windows(m.len()).any(|w| w == *m))
}

fn fetch_body(addr: SocketAddr, path: &str, auth: &str) -> anyhow::Result<(u16, f64, Vec<u8>)> {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(600)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\nConnection: close\r\n\r\n"
    )?;
    let mut first = [0u8; 1];
    s.read_exact(&mut first)?;
    let ttfb = t.elapsed().as_secs_f64() * 1000.0;
    let mut rest = vec![first[0]];
    s.read_to_end(&mut rest)?;
    let head = String::from_utf8_lossy(&rest[..rest.len().min(16)]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("{path}: no status line"))?;
    Ok((status, ttfb, rest))
}

struct Timing {
    ttfb: Vec<f64>,
    bytes: usize,
}

fn measure(
    addr: SocketAddr,
    path: &str,
    auth: &str,
    reps: usize,
    budget: Duration,
) -> anyhow::Result<Timing> {
    let start = Instant::now();
    let mut t = Timing {
        ttfb: vec![],
        bytes: 0,
    };
    while t.ttfb.len() < reps && (t.ttfb.len() < 3 || start.elapsed() < budget) {
        let (status, ttfb, body) = fetch_body(addr, path, auth)?;
        if status != 200 {
            bail!("{path} answered {status}");
        }
        if is_pending(&body) {
            bail!("{path} said its figures were being computed after they were ready");
        }
        t.ttfb.push(ttfb);
        t.bytes = body.len();
    }
    Ok(t)
}

fn run() -> anyhow::Result<()> {
    let n_assets = env_num("PATCHBAY_BENCH_DASH_ASSETS", 50_000)?;
    let per_asset = env_num("PATCHBAY_BENCH_DASH_FINDINGS", 40)?;
    let reps = env_num("PATCHBAY_BENCH_DASH_REPS", 11)?;
    let budget = Duration::from_secs(env_num("PATCHBAY_BENCH_DASH_BUDGET_S", 60)? as u64);
    let data = tempfile::tempdir()?;
    let db_url = patchbay_store::testing::fresh_sqlite_url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let prepared = rt.block_on(patchbay_server::prepare(&Settings {
        db_url: Some(db_url.clone()),
        data_dir: data.path().to_path_buf(),
        app: AppConfig::default(),
    }))?;
    let app = prepared.app.clone();
    let admin_token = std::fs::read_to_string(&prepared.admin_token_path)?
        .trim()
        .to_string();

    // The advisories, and the real findings of the Debian 12 host template.
    let mut c = Collect::default();
    let osv = fixtures().join("feeds/osv");
    read_path(&osv, &mut c).with_context(|| format!("reading {}", osv.display()))?;
    let all = c.advisories;
    let local = Caller::local("bench");
    rt.block_on(app.import_advisories("fixtures/feeds/osv", &all, 0, &local))
        .map_err(|e| anyhow!("{e}"))?;
    let templates = Templates::load()?;
    let host = (0..)
        .map(|i| templates.host(i, 14, "x"))
        .find(|h| h.facts.os.id == "debian" && h.packages.len() > 700)
        .ok_or_else(|| anyhow!("no Debian 12 host template"))?;
    let rows = patchbay_app::feeds::merge_rows(all.iter().map(patchbay_app::feeds::advisory_row));
    let index = patchbay_app::assess::build_index(&rows);
    let target = target_for(&host.facts.os).map_err(|e| anyhow!(e))?;
    let (found, _) = Assessor::new().assess(&index, &target, &host.packages);
    if found.len() <= per_asset {
        bail!("the host template has only {} findings", found.len());
    }

    let t = Instant::now();
    let written = rt.block_on(async {
        let now = jiff::Timestamp::now();
        let attrs = AssetAttrs::default();
        let mut written = 0usize;
        for start in (0..n_assets).step_by(250) {
            let mut tx = app.store().write().await?;
            let mut batch = Vec::new();
            for i in start..(start + 250).min(n_assets) {
                let id = tx
                    .insert_asset(&format!("wl-{i:05}"), &attrs, false, now)
                    .await?;
                let off = (i * 37) % (found.len() - per_asset);
                for f in &found[off..off + per_asset] {
                    batch.push((
                        id,
                        NewFinding {
                            advisory_id: f.advisory.clone(),
                            package: f.package.clone(),
                            arch: f.arch.clone(),
                            source_package: f.source_package.clone(),
                            installed_version: f.installed_version.clone(),
                            fixed_version: f.fixed_version.clone(),
                        },
                    ));
                }
            }
            written += batch.len();
            tx.insert_findings_of_assets(&batch, now).await?;
            tx.commit().await?;
        }
        // An exception register and change records, so their pages count
        // findings against them (written as rows, untimed).
        let mut tx = app.store().write().await?;
        for k in 0..EXCEPTIONS {
            let f = &found[(k * 37) % (found.len() - per_asset)];
            tx.insert_exception(&ExceptionRow {
                id: format!("EXC-2026-{:04}", k + 1),
                advisory: f.advisory.clone(),
                package: String::new(),
                asset: format!("wl-{k:05}"),
                group: String::new(),
                owner: "team-web".into(),
                reason: "vendor build pending".into(),
                compensating_control: "WAF rule".into(),
                approver: "local:bench".into(),
                created_at: now,
                created_by: "local:bench".into(),
                expires_at: now + jiff::SignedDuration::from_hours(24 * (k as i64 + 2)),
                revoked_at: None,
                revoked_by: None,
                revoke_reason: None,
                expired_noted_at: None,
                kind: "deferred".into(),
                justification: String::new(),
                origin: "manual".into(),
            })
            .await?;
        }
        for k in 0..DEPLOYMENTS {
            tx.insert_deployment(&DeploymentRow {
                id: format!("DEP-{:04}", k + 1),
                kind: "baseline".into(),
                status: "completed".into(),
                reason: String::new(),
                patches: found[k..k + 5].iter().map(|f| f.package.clone()).collect(),
                assets: (0..100).map(|i| format!("wl-{:05}", k * 100 + i)).collect(),
                created_at: now,
                created_by: "local:bench".into(),
            })
            .await?;
        }
        tx.commit().await?;
        app.init_change_records()
            .await
            .map_err(|e| anyhow!("{e}"))?;
        app.add_user(
            &local,
            AddUser {
                name: "noc".into(),
                role: patchbay_core::auth::Role::Admin,
                password: PASSWORD.into(),
            },
            &RequestCtx::default(),
        )
        .await
        .map_err(|e| anyhow!("{e}"))?;
        anyhow::Ok(written)
    })?;
    eprintln!(
        "{n_assets} assets × {per_asset} = {written} open findings written in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // The server.
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(async move {
        patchbay_server::serve(&prepared, listener, async {
            let _ = stop_rx.await;
        })
        .await
    });

    // Sign in over HTTP, as a browser does.
    let body = format!(
        "name=noc&password={}&next=%2Fui%2F",
        PASSWORD.replace(' ', "+").replace(',', "%2C")
    );
    let mut s = TcpStream::connect(addr)?;
    write!(
        s,
        "POST /ui/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let cookie = answer
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: pb_session=")
                .or_else(|| l.strip_prefix("Set-Cookie: pb_session="))
        })
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow!("signing in failed: {}", answer.lines().next().unwrap_or("")))?
        .to_string();
    let page_auth = format!("Cookie: pb_session={cookie}");
    let api_auth = format!("Authorization: Bearer {admin_token}");

    let cve = found
        .iter()
        .find(|f| f.advisory.contains("CVE-"))
        .map(|f| f.advisory.trim_start_matches("DEBIAN-").to_string())
        .unwrap_or_else(|| "CVE-2023-4911".into());
    let pairs: Vec<(String, Option<String>)> = vec![
        ("/ui/".into(), Some("/api/v1/reports/compliance".into())),
        ("/ui/assets".into(), Some("/api/v1/assets".into())),
        (
            "/ui/assets/wl-00001".into(),
            Some("/api/v1/assets/wl-00001".into()),
        ),
        (
            "/ui/worklist".into(),
            Some("/api/v1/worklist?limit=500".into()),
        ),
        ("/ui/deployments".into(), Some("/api/v1/deployments".into())),
        (
            format!("/ui/triage?cve={cve}"),
            Some(format!("/api/v1/triage/{cve}")),
        ),
        ("/ui/catalog".into(), Some("/api/v1/patches".into())),
        ("/ui/calendar".into(), Some("/api/v1/windows".into())),
        ("/ui/exceptions".into(), Some("/api/v1/exceptions".into())),
        ("/ui/reports".into(), None),
        (
            "/ui/reports/compliance".into(),
            Some("/api/v1/reports/compliance".into()),
        ),
        ("/ui/changes".into(), Some("/api/v1/changes".into())),
        (
            "/ui/changes/CHG-0001".into(),
            Some("/api/v1/changes/CHG-0001".into()),
        ),
        (
            "/ui/deployments/DEP-0001".into(),
            Some("/api/v1/deployments/DEP-0001".into()),
        ),
        ("/ui/feeds".into(), Some("/api/v1/feeds".into())),
        ("/ui/lessons".into(), Some("/api/v1/lessons".into())),
        ("/ui/audit".into(), Some("/api/v1/audit?limit=200".into())),
        ("/ui/sessions".into(), Some("/api/v1/sessions".into())),
    ];
    // `PATCHBAY_BENCH_DASH_PAGES=/ui/assets,/ui/` measures only those pages.
    let only: Vec<String> = std::env::var("PATCHBAY_BENCH_DASH_PAGES")
        .map(|v| v.split(',').map(|p| p.trim().to_string()).collect())
        .unwrap_or_default();
    let pairs: Vec<(String, Option<String>)> = pairs
        .into_iter()
        .filter(|(page, _)| only.is_empty() || only.contains(page))
        .collect();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\n## Dashboard pages at {n_assets} assets × {per_asset} = {written} open findings (SQLite; load average {})",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "| page | first request | figures ready after | samples | first byte p50 | p95 | size | baseline: JSON API | API p50 | API p95 | ratio (page p50 ÷ API p50) | goal p95 < {GOAL_P95_MS:.0} ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|");
    let mut met = 0;
    for (page, api) in &pairs {
        // The first request after the start begins computing what a page
        // rolls up (docs/dashboard.md, "Large fleets"): it answers at once
        // with a page saying so, which a browser loads again until the
        // figures are there. Both times reported on their own.
        let started = Instant::now();
        let (status, first, mut body) = fetch_body(addr, page, &page_auth)?;
        if status != 200 {
            bail!("{page} answered {status}");
        }
        while is_pending(&body) {
            std::thread::sleep(Duration::from_millis(500));
            let (status, _, b) = fetch_body(addr, page, &page_auth)?;
            if status != 200 {
                bail!("{page} answered {status}");
            }
            body = b;
        }
        let ready = started.elapsed().as_secs_f64() * 1000.0;
        let p = measure(addr, page, &page_auth, reps, budget)?;
        let (api_cells, ratio) = match api {
            Some(a) => {
                let b = measure(addr, a, &api_auth, reps, budget)?;
                (
                    format!(
                        "`{a}` | {:.0} ms | {:.0} ms",
                        pct(&b.ttfb, 50.0),
                        pct(&b.ttfb, 95.0)
                    ),
                    format!("{:.2}", pct(&p.ttfb, 50.0) / pct(&b.ttfb, 50.0)),
                )
            }
            None => ("— | | ".into(), "—".into()),
        };
        let p95 = pct(&p.ttfb, 95.0);
        let ok = p95 < GOAL_P95_MS;
        met += usize::from(ok);
        println!(
            "| `{page}` | {first:.0} ms | {ready:.0} ms | {} | {:.0} ms | {:.0} ms | {} KB | {api_cells} | {ratio} | {} |",
            p.ttfb.len(),
            pct(&p.ttfb, 50.0),
            p95,
            p.bytes / 1024,
            if ok { "met" } else { "**not met**" }
        );
    }
    println!(
        "\n{met} of {} pages meet p95 < {GOAL_P95_MS:.0} ms.",
        pairs.len()
    );
    let _ = stop_tx.send(());
    rt.block_on(server)??;
    if let Some(dir) = db_url
        .strip_prefix("sqlite://")
        .and_then(|p| Path::new(p).parent())
    {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}
