//! `patchbay serve` and `patchbay dev`.

use crate::ServeArgs;
use anyhow::Context;
use patchbay_agent::run::AgentOptions;
use patchbay_app::AppConfig;
use patchbay_client::Client;
use patchbay_proto::api::{CreateEnrollToken, EnrollTokenCreated};
use patchbay_server::{Settings, prepare, serve as serve_http};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

fn settings(a: &ServeArgs) -> anyhow::Result<Settings> {
    if a.duty_tick >= a.lease_ttl {
        anyhow::bail!(
            "--duty-tick ({:?}) must be shorter than --lease-ttl ({:?}): the leader renews its lease every tick",
            a.duty_tick,
            a.lease_ttl
        );
    }
    if a.stale_after <= a.heartbeat_flush {
        anyhow::bail!(
            "--stale-after ({:?}) must be longer than --heartbeat-flush ({:?}): a crash loses up to one \
             flush interval of check-in times, which must not make live assets stale",
            a.stale_after,
            a.heartbeat_flush
        );
    }
    let signed = |d: Duration, flag: &str| {
        jiff::SignedDuration::try_from(d).with_context(|| format!("{flag} is too large"))
    };
    Ok(Settings {
        db_url: a.db.clone(),
        data_dir: a.data_dir.clone(),
        app: AppConfig {
            stale_after: signed(a.stale_after, "--stale-after")?,
            duties: patchbay_app::duties::DutiesConfig {
                tick: a.duty_tick,
                lease_ttl: signed(a.lease_ttl, "--lease-ttl")?,
                exception_sweep_every: signed(a.exception_sweep_every, "--exception-sweep-every")?,
            },
            agent_mtls: patchbay_app::agent_ca::AgentMtls {
                mode: a.agent_mtls.into(),
                validity: signed(a.agent_cert_validity, "--agent-cert-validity")?,
            },
            heartbeat_flush: a.heartbeat_flush,
            smtp: smtp(a)?,
            impact: patchbay_app::impact::ImpactConfig {
                lead: signed(a.impact_lead, "--impact-lead")?,
                estimates: patchbay_core::impact::Estimates {
                    service_restart: signed(
                        a.impact_restart_estimate,
                        "--impact-restart-estimate",
                    )?,
                    reboot: signed(a.impact_reboot_estimate, "--impact-reboot-estimate")?,
                },
            },
            ..AppConfig::default()
        },
    })
}

/// The SMTP server from `--smtp-url`, `--smtp-from` and `--smtp-ca-file`.
fn smtp(a: &ServeArgs) -> anyhow::Result<Option<patchbay_app::email::SmtpConfig>> {
    let Some(url) = &a.smtp_url else {
        return Ok(None);
    };
    let from = a.smtp_from.as_deref().unwrap_or_default();
    let mut c =
        patchbay_app::email::SmtpConfig::from_url(url, from).map_err(|e| anyhow::anyhow!(e))?;
    c.ca_file = a.smtp_ca_file.clone();
    // Fail at start-up, not at the first email: the CA file is read now.
    patchbay_app::email::Mailer::new(&c, std::time::Duration::from_secs(30))
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(Some(c))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// What the configuration file (with its `PATCHBAY_…` overrides) sets,
/// checked as far as it can be without starting: the SIEM sink (its CA file
/// read) and the mail relay (its settings built into a mailer). Errors name
/// the file, line and key, or the environment variable.
pub struct FileSettings {
    /// The file as parsed.
    pub file: patchbay_server::config::ServerConfig,
    /// The SIEM sink of `[syslog]`.
    pub siem: Option<patchbay_server::siem::SinkConfig>,
    /// The relay of `[smtp]`.
    pub smtp: Option<patchbay_app::email::SmtpConfig>,
    /// `[feeds]` and the `[[feed_source]]`s: the feed-sync duty.
    pub feeds: patchbay_app::feed_sync::FeedSyncConfig,
    /// The `[[discovery_scan]]`s: the discovery-scan duty.
    pub discovery_scans: Vec<patchbay_app::discovery::ScanConfig>,
}

impl FileSettings {
    /// Loads `path` (none: no file, the environment only).
    pub fn load(
        path: Option<&std::path::Path>,
        smtp_ca_file: Option<PathBuf>,
    ) -> anyhow::Result<FileSettings> {
        // (vars_os: a variable that is not UTF-8 is not ours, and must not panic.)
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        let file = patchbay_server::config::load(path, env)
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        let siem = match &file.syslog {
            Some(c) => Some(
                c.sink()
                    .map_err(|e| anyhow::anyhow!("configuration: {e}"))?,
            ),
            None => None,
        };
        let feeds = file
            .feed_sync()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        let smtp = match &file.smtp {
            Some(m) => {
                use patchbay_server::config::SmtpTls as FileTls;
                let c = patchbay_app::email::SmtpConfig {
                    host: m.host.0.clone(),
                    port: m.port(),
                    tls: match m.tls {
                        FileTls::Starttls => patchbay_app::email::SmtpTls::Starttls,
                        FileTls::Implicit => patchbay_app::email::SmtpTls::Implicit,
                        FileTls::None => patchbay_app::email::SmtpTls::None,
                    },
                    username: m.username.clone(),
                    password: m.password.as_ref().map(|p| p.expose().to_string()),
                    from: m.from.0.clone(),
                    ca_file: smtp_ca_file,
                };
                // Fail at start-up, not at the first email (the password is never logged).
                patchbay_app::email::Mailer::new(&c, std::time::Duration::from_secs(30))
                    .map_err(|e| anyhow::anyhow!("configuration: [smtp]: {e}"))?;
                Some(c)
            }
            None => None,
        };
        let discovery_scans = file
            .discovery_scans()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        Ok(FileSettings {
            file,
            siem,
            smtp,
            feeds,
            discovery_scans,
        })
    }
}

/// Where `patchbay config check` looks without a FILE or PATCHBAY_CONFIG
/// (the packaged unit's `--config`).
pub const DEFAULT_CONFIG: &str = "/etc/patchbay/server.toml";

/// `patchbay config check [FILE]`: loads the file as `serve` would (with the
/// environment's overrides), and prints what it sets — never a secret — or
/// the first error, naming file, line and key.
pub fn config_check(file: Option<PathBuf>, smtp_ca_file: Option<PathBuf>) -> anyhow::Result<()> {
    let path = file.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    if !path.exists() {
        anyhow::bail!(
            "{}: no such file (give the file to check, or set PATCHBAY_CONFIG)",
            path.display()
        );
    }
    let f = FileSettings::load(Some(&path), smtp_ca_file)?;
    println!("{}: OK", path.display());
    match (&f.file.syslog, &f.siem) {
        (Some(c), Some(sink)) => println!(
            "  [syslog] {} to {}:{}, {} messages, queue {}",
            c.transport.0.as_str(),
            crate::output::clean(&sink.host),
            sink.port,
            c.format.0.as_str(),
            sink.queue
        ),
        _ => println!("  [syslog] not set: nothing is forwarded to a SIEM"),
    }
    match &f.smtp {
        Some(c) => println!(
            "  [smtp] {}:{} ({}), from {}, {}",
            crate::output::clean(&c.host),
            c.port,
            format!("{:?}", c.tls).to_ascii_lowercase(),
            crate::output::clean(&c.from),
            match &c.username {
                Some(u) => format!("as {} with a password (not shown)", crate::output::clean(u)),
                None => "no authentication".to_string(),
            }
        ),
        None => println!("  [smtp] not set: emails wait in the outbox"),
    }
    if f.feeds.sources.is_empty() {
        println!("  [[feed_source]] none: feeds are imported by hand (patchbay feeds import)");
    }
    for src in &f.feeds.sources {
        println!(
            "  [[feed_source]] {} ({}) from {}, every {}",
            crate::output::clean(&src.name),
            src.kind.as_str(),
            crate::output::clean(&src.origin.describe()),
            src.every
        );
    }
    if f.discovery_scans.is_empty() {
        println!(
            "  [[discovery_scan]] none: Patchbay runs no network scan (import scans with patchbay discovery import)"
        );
    }
    for d in &f.discovery_scans {
        println!(
            "  [[discovery_scan]] {} over {}{}, every {:#}{}",
            crate::output::clean(&d.name),
            crate::output::clean(&d.ranges.join(" ")),
            d.ports
                .as_deref()
                .map(|p| format!(" ports {}", crate::output::clean(p)))
                .unwrap_or_default(),
            d.every,
            if d.external { " (external)" } else { "" }
        );
    }
    Ok(())
}

/// `patchbay serve`
pub fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let mut s = settings(&a)?;
    let file = FileSettings::load(a.config.as_deref(), a.smtp_ca_file.clone())?;
    let siem = file.siem;
    // The file's [feeds] and [[feed_source]]s: the feed-sync duty.
    s.app.feeds = file.feeds;
    // The file's [[discovery_scan]]s: the discovery-scan duty (none by default).
    s.app.discovery_scans = file.discovery_scans;
    for d in &s.app.discovery_scans {
        tracing::info!(scan = %d.name, ranges = %d.ranges.join(" "), every = %d.every, "discovery scan configured");
    }
    for src in &s.app.feeds.sources {
        tracing::info!(feed = %src.name, kind = src.kind.as_str(), origin = %src.origin.describe(), every = %src.every, "feed source configured");
    }
    // The file's [smtp] sends the email unless --smtp-url is given (flags win).
    if let (None, Some(c)) = (&s.app.smtp, file.smtp) {
        tracing::info!(host = %c.host, port = c.port, tls = ?c.tls, "SMTP relay configured");
        s.app.smtp = Some(c);
    }
    runtime()?.block_on(async move {
        // Load the certificate before anything else, so a bad file fails fast.
        let mtls = a.agent_mtls != crate::AgentMtlsArg::Off;
        let tls = match (&a.tls_cert, &a.tls_key) {
            (Some(c), Some(k)) => Some(patchbay_server::tls::load(c, k)?),
            (None, None) if mtls => anyhow::bail!(
                "--agent-mtls {} needs TLS: give --tls-cert and --tls-key",
                patchbay_app::agent_ca::MtlsMode::from(a.agent_mtls).as_str()
            ),
            (None, None) => None,
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        };
        if a.header_read_timeout.is_zero() {
            anyhow::bail!("--header-read-timeout must be positive");
        }
        if mtls && a.agent_cert_validity < Duration::from_secs(3600) {
            anyhow::bail!("--agent-cert-validity must be at least 1h");
        }
        let mut prepared = prepare(&s).await?;
        // With agent mutual TLS the handshake checks client certificates
        // against the agent CA (created by `prepare` on first start).
        let tls = match (&a.tls_cert, &a.tls_key, prepared.app.agent_ca()) {
            (Some(c), Some(k), Some(ca)) => Some(patchbay_server::tls::load_with_client_ca(
                c,
                k,
                Some(ca.cert_pem()),
            )?),
            _ => tls,
        };
        prepared.conn.header_read_timeout = a.header_read_timeout;
        prepared.siem = siem;
        let listener = TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("listening on {}", a.listen))?;
        match tls {
            Some(cfg) => {
                patchbay_server::serve_tls(&prepared, listener, cfg, shutdown_signal()).await
            }
            None => serve_http(&prepared, listener, shutdown_signal()).await,
        }
    })
}

/// `patchbay dev` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Log format: one human-readable line, or one JSON object, per event
    /// (on stderr).
    #[arg(long, value_enum, default_value_t = crate::LogFormat::Text)]
    pub log_format: crate::LogFormat,
    /// Data directory (SQLite database, admin.token, the local agent's state).
    #[arg(long, default_value = "./patchbay-data")]
    pub data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Check-in interval of the local agent.
    #[arg(long, default_value = "5m", value_parser = patchbay_core::when::flag_interval)]
    pub interval: Duration,
    /// Do not start the local agent.
    #[arg(long)]
    pub no_agent: bool,
    /// Sample feeds imported on first start (the repository's fixtures/feeds:
    /// Debian 12, Alpine 3.10 and AlmaLinux 9 OSV data, CISA KEV, FIRST EPSS,
    /// NVD CVE records with CVSS scores).
    /// Default: ./fixtures/feeds, else the source tree's.
    #[arg(long)]
    pub feeds: Option<PathBuf>,
    /// Do not import the sample feeds.
    #[arg(long)]
    pub no_feeds: bool,
    /// Also enrol a simulated fleet of N virtual hosts (`sim-00000`…) built
    /// from real inventories (as `patchbay sim --agents N`), on the first
    /// start only, so the dashboard has a fleet to show. The virtual hosts
    /// keep checking in and run the jobs they are leased on their simulated
    /// inventories (nothing is installed anywhere), so a deployment started
    /// on the dashboard moves through its rings; their credentials are kept
    /// in `sim-fleet.json` in the data directory.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub sim: usize,
    /// How often each simulated host checks in (and so how long a simulated
    /// job is in flight).
    #[arg(long, default_value = "5s", value_parser = patchbay_core::when::flag_interval)]
    pub sim_interval: Duration,
}

/// The bundled sample feeds under a `fixtures/feeds` directory, in import order.
pub const SAMPLE_FEEDS: [&str; 6] = [
    "osv/Debian-12-derived.osv.zip",
    "osv/Alpine-v3.10-derived.osv.zip",
    "osv/almalinux9.osv.jsonl.gz",
    "kev/known_exploited_vulnerabilities-2026.08.07.json.gz",
    "epss/epss_scores-2026-09-29-head40.csv",
    // Real NVD API 2.0 records (CVSS with its source) of CVEs this kind of
    // Debian 12 machine has findings for: fixtures/feeds/cvss/README.md.
    "cvss/nvd",
];

fn sample_feeds_dir(given: Option<&PathBuf>) -> Option<PathBuf> {
    if let Some(g) = given {
        return Some(g.clone());
    }
    [
        PathBuf::from("fixtures/feeds"),
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/feeds")),
    ]
    .into_iter()
    .find(|p| p.join(SAMPLE_FEEDS[0]).exists())
    .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
}

/// The dashboard's `dev` user (admin), with a fresh random password at every
/// start of `patchbay dev` (its earlier sessions end); returns the password.
fn dev_dashboard_user(url: &str, token_path: &std::path::Path) -> anyhow::Result<String> {
    use patchbay_proto::api::{AddUser, SetPassword, UserInfo};
    use rand::RngCore;
    let mut seed = [0u8; 12];
    rand::rng().fill_bytes(&mut seed);
    let password = hex::encode(seed);
    let admin = std::fs::read_to_string(token_path)
        .with_context(|| format!("reading {}", token_path.display()))?;
    let c = Client::new(url, Some(admin.trim().to_string()), Duration::from_secs(30));
    let added: Result<UserInfo, _> = c.send(
        "POST",
        "/api/v1/users",
        &AddUser {
            name: "dev".into(),
            role: patchbay_core::auth::Role::Admin,
            password: password.clone(),
        },
    );
    match added {
        Ok(_) => {}
        Err(e) if e.code() == Some("conflict") => {
            let () = c.send(
                "POST",
                "/api/v1/users/dev/password",
                &SetPassword {
                    password: password.clone(),
                },
            )?;
        }
        Err(e) => return Err(anyhow::anyhow!("creating the dashboard user: {e}")),
    }
    Ok(password)
}

/// `--sim N`: enrols N virtual hosts once (their credentials saved in
/// `sim-fleet.json`), or loads the ones enrolled at an earlier start.
fn dev_sim_fleet(
    url: &str,
    token_path: &std::path::Path,
    fleet_file: &std::path::Path,
    n: usize,
) -> anyhow::Result<Option<(String, Vec<crate::sim::fleet::SimHost>)>> {
    if fleet_file.exists() {
        let hosts = crate::sim::fleet::load(fleet_file)?;
        return Ok(Some((
            format!(
                "{} virtual hosts enrolled at an earlier start (sim-*), running their jobs",
                hosts.len()
            ),
            hosts,
        )));
    }
    if n == 0 {
        return Ok(None);
    }
    let admin = std::fs::read_to_string(token_path)
        .with_context(|| format!("reading {}", token_path.display()))?
        .trim()
        .to_string();
    let c = Client::new(url, Some(admin.clone()), Duration::from_secs(30));
    let have: Result<serde_json::Value, _> = c.get("/api/v1/assets/sim-00000");
    if have.is_ok() {
        return Ok(Some((
            format!(
                "a simulated fleet is enrolled (sim-*) but {} is missing: its hosts only show their last inventory",
                fleet_file.display()
            ),
            vec![],
        )));
    }
    println!("Enrolling {n} simulated hosts …");
    let hosts = crate::sim::enrol_fleet(
        url,
        Some(admin),
        &crate::sim::SimArgs {
            mode: None,
            agents: n,
            concurrency: 4,
            prefix: "sim".into(),
            seed: 1,
        },
    )?;
    crate::sim::fleet::save(fleet_file, &hosts)?;
    Ok(Some((
        format!(
            "{n} virtual hosts (sim-00000…) from real Debian 12, Ubuntu 24.04 and Alpine 3.23 inventories, running their jobs"
        ),
        hosts,
    )))
}

/// `patchbay dev`: the server on SQLite plus a read-only agent for this machine.
pub fn dev(a: DevArgs) -> anyhow::Result<()> {
    let s = Settings {
        db_url: None,
        data_dir: a.data_dir.clone(),
        app: AppConfig::default(),
    };
    let rt = runtime()?;
    let prepared = rt.block_on(prepare(&s))?;
    // First start: import the bundled sample feeds so that findings, the
    // worklist and the plan have real data to show.
    let mut feeds_note = "sample feeds: already imported".to_string();
    if a.no_feeds {
        feeds_note = "sample feeds: not imported (--no-feeds)".into();
    } else {
        let have = rt
            .block_on(async {
                let mut tx = prepared.app.store().read().await?;
                tx.list_feeds().await
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if have.is_empty() {
            match sample_feeds_dir(a.feeds.as_ref()) {
                Some(dir) => {
                    let paths: Vec<PathBuf> = SAMPLE_FEEDS
                        .iter()
                        .map(|f| dir.join(f))
                        .filter(|p| p.exists())
                        .collect();
                    println!("Importing the sample feeds from {} …", dir.display());
                    rt.block_on(crate::feeds::import_with(
                        &prepared.app,
                        &paths,
                        &patchbay_app::Caller::local("dev:sample-feeds"),
                    ))?;
                    feeds_note = format!("sample feeds: imported from {}", dir.display());
                }
                None => {
                    feeds_note =
                        "sample feeds: not found (run from the repository, or pass --feeds DIR)"
                            .into();
                }
            }
        }
    }
    let listener = rt
        .block_on(TcpListener::bind(a.listen))
        .with_context(|| format!("listening on {}", a.listen))?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    let token_path = prepared.admin_token_path.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(async move {
        let shutdown = async move {
            tokio::select! { _ = shutdown_signal() => {}, _ = stop_rx => {} }
        };
        serve_http(&prepared, listener, shutdown).await
    });

    let dashboard_password = dev_dashboard_user(&url, &token_path)?;
    let fleet_file = a.data_dir.join("sim-fleet.json");
    let sim = dev_sim_fleet(&url, &token_path, &fleet_file, a.sim)?;
    let stop = Arc::new(AtomicBool::new(false));
    let sim_note = sim.as_ref().map(|(note, _)| note.clone());
    let sim_thread = match sim {
        Some((_, hosts)) if !hosts.is_empty() => {
            let (url, stop, every) = (url.clone(), stop.clone(), a.sim_interval);
            Some(std::thread::spawn(move || {
                crate::sim::fleet::drive(&url, hosts, every, &fleet_file, &stop)
            }))
        }
        _ => None,
    };
    let agent_thread = if a.no_agent {
        None
    } else {
        let state_dir = a.data_dir.join("agent");
        let enroll_token = if state_dir.join("identity.json").exists() {
            None
        } else {
            let admin = std::fs::read_to_string(&token_path).with_context(|| {
                format!(
                    "reading {} (delete the data directory to start afresh)",
                    token_path.display()
                )
            })?;
            let c = Client::new(
                &url,
                Some(admin.trim().to_string()),
                Duration::from_secs(30),
            );
            let t: EnrollTokenCreated = c.send(
                "POST",
                "/api/v1/enroll-tokens",
                &CreateEnrollToken {
                    name: Some("dev-local-agent".into()),
                    uses: Some(1),
                    ttl_secs: Some(600),
                },
            )?;
            Some(t.token)
        };
        let opts = AgentOptions {
            server: url.clone(),
            enroll_token,
            state_dir,
            root: "/".into(),
            interval: a.interval,
            pending_updates: true,
            host_network: false,
            timeout: Duration::from_secs(120),
            ca_cert: None,
            re_enroll: false,
            // Read-only: the default configuration refuses every job
            // (`[jobs] enabled = false`), and no long-poll.
            config: Default::default(),
            wait_secs: 0,
        };
        let stop = stop.clone();
        Some(std::thread::spawn(move || {
            patchbay_agent::run::run_loop(&opts, &stop)
        }))
    };

    println!("Patchbay dev mode");
    println!("  API:          {url}/api/v1   (health: {url}/healthz, metrics: {url}/metrics)");
    println!("  Dashboard:    {url}/ui/");
    println!(
        "                sign in as \"dev\" with password {dashboard_password} (a new one at every start)"
    );
    println!("  Admin token:  {}", token_path.display());
    println!("  Database:     SQLite in {}", a.data_dir.display());
    println!("  Feeds:        {feeds_note}");
    if let Some(note) = &sim_note {
        println!("  Simulated:    {note}");
    }
    if a.no_agent {
        println!("  Local agent:  not started (--no-agent)");
    } else {
        println!(
            "  Local agent:  read-only, inventories this machine every {:?}",
            a.interval
        );
    }
    println!(
        "Try (after `export PATCHBAY_URL={url} PATCHBAY_TOKEN=$(cat {})`):",
        token_path.display()
    );
    println!("  patchbay assets list");
    println!("  patchbay worklist --limit 20");
    println!(
        "  patchbay windows add nightly --rrule FREQ=DAILY --dtstart 2026-01-01T02:00 --duration 2h"
    );
    println!("  patchbay plan preview");
    println!("  patchbay report compliance --format html --out compliance.html");
    println!("Press Ctrl-C to stop.");
    std::io::stdout().flush().ok();

    let result = rt.block_on(server).context("server task")?;
    stop.store(true, Ordering::Relaxed);
    let _ = stop_tx;
    if let Some(t) = agent_thread {
        let _ = t.join();
    }
    if let Some(t) = sim_thread {
        let _ = t.join();
    }
    result
}

#[cfg(test)]
mod tests {
    use crate::{Cli, Command};
    use clap::Parser;

    fn serve(args: &[&str]) -> Result<crate::ServeArgs, String> {
        let mut argv = vec!["patchbay", "serve"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            Command::Serve(a) => Ok(a),
            _ => Err("not serve".into()),
        }
    }

    /// `--duty-tick` takes milliseconds (a test or a latency-minded replica
    /// ticks faster than once a second) and must stay below `--lease-ttl`.
    #[test]
    fn duty_tick_takes_milliseconds_and_stays_below_the_lease() {
        let a = serve(&["--duty-tick", "250ms"]).unwrap();
        assert_eq!(a.duty_tick, std::time::Duration::from_millis(250));
        assert!(super::settings(&a).is_ok());
        let a = serve(&["--duty-tick", "30s", "--lease-ttl", "30s"]).unwrap();
        let e = super::settings(&a).unwrap_err().to_string();
        assert!(
            e.contains("--duty-tick (30s) must be shorter than --lease-ttl (30s)"),
            "{e}"
        );
        // Whole-second flags refuse milliseconds.
        let e = serve(&["--lease-ttl", "500ms"]).unwrap_err();
        assert!(e.contains("use s, m, h or d"), "{e}");
    }
}
