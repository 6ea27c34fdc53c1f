//! Opening the store, the first-start admin token, and serving.

use crate::metrics::Metrics;
use anyhow::Context;
use patchbay_app::{App, AppConfig, Clock, SystemClock};
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Server settings.
#[derive(Clone)]
pub struct Settings {
    /// Database URL; `None` means SQLite at `<data_dir>/patchbay.db`.
    pub db_url: Option<String>,
    /// Data directory (SQLite file, admin token).
    pub data_dir: PathBuf,
    /// Service settings.
    pub app: AppConfig,
}

impl std::fmt::Debug for Settings {
    // The database URL may carry a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field(
                "db_url",
                &self.db_url.as_deref().map(patchbay_store::redact_url),
            )
            .field("data_dir", &self.data_dir)
            .field("app", &self.app)
            .finish()
    }
}

/// Limits of client connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// How long a connection may take to send a complete request head (request
    /// line and headers), counted from the connection's start and, on a
    /// keep-alive connection, from the end of the previous response: it bounds
    /// slow senders (slowloris) and idle keep-alive connections alike. The
    /// connection is closed when it runs out.
    pub header_read_timeout: std::time::Duration,
}

/// Default of [`ConnLimits::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

/// A ready-to-serve server.
pub struct Prepared {
    /// The service layer.
    pub app: App,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Where the first-start admin token is written.
    pub admin_token_path: PathBuf,
    /// Whether this start created the admin token.
    pub admin_token_created: bool,
    /// The effective database URL (redacted).
    pub db_display: String,
    /// Whether [`serve`] runs the duties runner in the background (default;
    /// tests that drive the runner by hand turn it off).
    pub run_duties: bool,
    /// Connection limits (set before serving).
    pub conn: ConnLimits,
    /// The SIEM sink, if configured (`[syslog]` of the configuration file,
    /// [`crate::config`]); runs beside the duties, on the leader.
    pub siem: Option<crate::siem::SinkConfig>,
}

/// Opens the store (applying migrations) and creates the admin token on first start.
pub async fn prepare(settings: &Settings) -> anyhow::Result<Prepared> {
    prepare_with_clock(settings, Arc::new(SystemClock)).await
}

/// [`prepare`] with an injected clock.
pub async fn prepare_with_clock(
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Prepared> {
    prepare_inner(settings, clock, true).await
}

/// For tools that run next to the database (`feeds import --db`): like
/// [`prepare`], but the server's signing key must already be in the data
/// directory. Their audit entries are signed like the server's: an unsigned
/// entry would end the chain with one that nothing vouches for, and the
/// server refuses to sign on top of it.
pub async fn prepare_tool(settings: &Settings) -> anyhow::Result<Prepared> {
    if load_signing_key(&settings.data_dir, false)?.is_none() {
        anyhow::bail!(
            "{} does not exist: tools that write to the database directly sign their audit entries with the server's key, \
             so run them with --data-dir set to the server's data directory",
            signing_key_path(&settings.data_dir).display()
        );
    }
    prepare_inner(settings, Arc::new(SystemClock), false).await
}

/// The signing key file in a data directory.
pub fn signing_key_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("server-signing.key")
}

/// Loads the server's signing key (hex seed, mode 0600), creating it if asked.
pub fn load_signing_key(
    data_dir: &std::path::Path,
    create: bool,
) -> anyhow::Result<Option<patchbay_core::audit::Signer>> {
    let path = signing_key_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                .with_context(|| format!("{}: not a 32-byte hex key", path.display()))?;
            Ok(Some(patchbay_core::audit::Signer::from_seed(&bytes)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !create {
                return Ok(None);
            }
            let seed = patchbay_app::new_signing_seed();
            write_secret(&path, &hex::encode(seed))?;
            let s = patchbay_core::audit::Signer::from_seed(&seed);
            tracing::info!(path = %path.display(), public_key = %s.public_hex(), "created the server's signing key");
            Ok(Some(s))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The agent CA's certificate and key files in a data directory.
pub fn agent_ca_paths(data_dir: &std::path::Path) -> (PathBuf, PathBuf) {
    (data_dir.join("agent-ca.pem"), data_dir.join("agent-ca.key"))
}

/// Loads the agent CA (agent mutual TLS) from the data directory, creating
/// it (key mode 0600) on first use if asked. Replicas share one CA: copy
/// both files to every replica's data directory (ADR 0008).
pub fn load_agent_ca(
    data_dir: &std::path::Path,
    create: bool,
) -> anyhow::Result<patchbay_app::agent_ca::AgentCa> {
    use patchbay_app::agent_ca::AgentCa;
    let (cert, key) = agent_ca_paths(data_dir);
    if create && !cert.exists() && !key.exists() {
        let ca = AgentCa::generate(jiff::Timestamp::now()).map_err(anyhow::Error::msg)?;
        write_secret(&key, ca.key_pem.trim_end())?;
        std::fs::write(&cert, &ca.cert_pem)
            .with_context(|| format!("writing {}", cert.display()))?;
        tracing::info!(cert = %cert.display(), "created the agent CA (agent mutual TLS)");
    }
    let cert_pem = std::fs::read_to_string(&cert).with_context(|| {
        format!(
            "reading the agent CA certificate {} (agent mutual TLS)",
            cert.display()
        )
    })?;
    let key_pem = std::fs::read_to_string(&key)
        .with_context(|| format!("reading the agent CA key {}", key.display()))?;
    AgentCa::from_pem(&cert_pem, &key_pem, &data_dir.display().to_string())
        .map_err(anyhow::Error::msg)
}

async fn prepare_inner(
    settings: &Settings,
    clock: Arc<dyn Clock>,
    create_key: bool,
) -> anyhow::Result<Prepared> {
    // Owner-only (0700): the directory holds the database, the admin token and
    // the signing key. An existing directory is left as it is.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    let url = settings.db_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            settings.data_dir.join("patchbay.db").display()
        )
    });
    let store = patchbay_store::open(&url)
        .await
        .with_context(|| format!("opening database {}", patchbay_store::redact_url(&url)))?;
    // A key rotation interrupted between its commit and the key file swap
    // is finished (or abandoned) before the key is read.
    let key_file = signing_key_path(&settings.data_dir);
    if let Some(public_key) = patchbay_app::keys::recover_pending_key(store.as_ref(), &key_file)
        .await
        .map_err(|e| anyhow::anyhow!("finishing an interrupted key rotation: {e}"))?
    {
        tracing::warn!(%public_key, "installed the signing key of a rotation interrupted before its key file was replaced");
    }
    let mut config = settings.app.clone();
    // Synced feeds' last good copies and uploads in progress live in the
    // data directory unless the configuration file says otherwise.
    if config.feeds.dir.is_none() {
        config.feeds.dir = Some(settings.data_dir.join("feeds"));
    }
    let mut app = App::new(store, clock, config).with_key_file(key_file);
    if let Some(signer) = load_signing_key(&settings.data_dir, create_key)? {
        app = app.with_signer(signer);
    }
    if settings.app.agent_mtls.mode != patchbay_app::agent_ca::MtlsMode::Off {
        app = app.with_agent_ca(load_agent_ca(&settings.data_dir, create_key)?);
    }
    let sealed = app
        .init_audit_chain()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    if sealed > 0 {
        tracing::info!(
            entries = sealed,
            "sealed earlier audit entries into the hash chain"
        );
    }
    let changes = app
        .init_change_records()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    if changes > 0 {
        tracing::info!(changes, "created change records for earlier deployments");
    }
    let admin_token_path = settings.data_dir.join("admin.token");
    let created = app
        .bootstrap_admin_token()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let admin_token_created = created.is_some();
    if let Some(t) = created {
        write_secret(&admin_token_path, &t.token)?;
        tracing::info!(path = %admin_token_path.display(), "first start: created an admin API token and wrote it to the data directory (mode 0600)");
    } else if !admin_token_path.exists() {
        tracing::info!(
            "API tokens exist already; no admin token file written (create one with `patchbay tokens create`)"
        );
    }
    Ok(Prepared {
        app,
        metrics: Metrics::new(),
        admin_token_path,
        admin_token_created,
        db_display: patchbay_store::redact_url(&url),
        run_duties: true,
        conn: ConnLimits::default(),
        siem: None,
    })
}

/// Writes a secret to a new file readable only by its owner.
pub fn write_secret(path: &std::path::Path, secret: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{secret}").with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok(())
}

/// Serves until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    prepared: &Prepared,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_on(prepared, listener, "http", shutdown).await
}

/// [`serve`] over TLS (`config` from [`crate::tls::load`]).
pub async fn serve_tls(
    prepared: &Prepared,
    listener: TcpListener,
    config: Arc<tokio_rustls::rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_on(
        prepared,
        crate::tls::TlsListener::new(listener, config),
        "https",
        shutdown,
    )
    .await
}

async fn serve_on<L>(
    prepared: &Prepared,
    listener: L,
    scheme: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: crate::tls::PeerCert,
{
    let mut router = crate::router(prepared.app.clone(), prepared.metrics.clone());
    if scheme == "https" {
        router = crate::router::with_hsts(router);
    }
    let addr = listener.local_addr()?;
    // Background work: the duties runner (under the leader lease), which
    // also records this replica's suppressed refusal counts.
    let (stop_duties, duties) = if prepared.run_duties {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let holder = patchbay_app::duties::replica_id();
        tracing::info!(%holder, "duties runner started");
        let runner = patchbay_app::duties::Runner::new(prepared.app.clone(), holder);
        // Webhook delivery beside it, while this replica leads.
        let (wtx, wrx) = tokio::sync::oneshot::channel::<()>();
        let webhooks = tokio::spawn(crate::delivery::run(
            prepared.app.clone(),
            prepared.metrics.clone(),
            runner.leading(),
            wrx,
        ));
        // The SIEM sink too, while this replica leads.
        let (stx, srx) = tokio::sync::oneshot::channel::<()>();
        let siem = prepared.siem.clone().map(|cfg| {
            tokio::spawn(crate::siem::run(
                prepared.app.clone(),
                cfg,
                prepared.metrics.clone(),
                runner.leading(),
                Arc::default(),
                srx,
            ))
        });
        // Email delivery too (when an SMTP server is configured).
        let (mtx, mrx) = tokio::sync::oneshot::channel::<()>();
        let mail = tokio::spawn(crate::mail::run(
            prepared.app.clone(),
            prepared.metrics.clone(),
            runner.leading(),
            mrx,
        ));
        let duties = tokio::spawn(run_duties(runner, rx));
        let both = tokio::spawn(async move {
            let _ = duties.await;
            let _ = wtx.send(());
            let _ = stx.send(());
            let _ = mtx.send(());
            let _ = webhooks.await;
            if let Some(s) = siem {
                let _ = s.await;
            }
            let _ = mail.await;
        });
        (Some(tx), Some(both))
    } else {
        (None, None)
    };
    // Every replica stores its in-memory check-in times in batches
    // (patchbay_app::heartbeats), leader or not.
    let (stop_flush, flusher) = {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        (tx, tokio::spawn(flush_heartbeats(prepared.app.clone(), rx)))
    };
    tracing::info!(%addr, scheme, db = %prepared.db_display, "patchbay server listening");
    // At the shutdown signal the listener closes and open long polls answer
    // at once (no jobs), so in-flight requests drain in moments.
    let app = prepared.app.clone();
    let shutdown = async move {
        shutdown.await;
        app.end_long_polls();
    };
    serve_connections(listener, router, prepared.conn, shutdown).await;
    if let (Some(stop), Some(task)) = (stop_duties, duties) {
        let _ = stop.send(());
        let _ = task.await;
    }
    // No check-in time and no suppressed refusal count is lost at shutdown.
    let _ = stop_flush.send(());
    let _ = flusher.await;
    prepared.app.flush_all_refusals().await;
    prepared.app.store().close().await;
    Ok(())
}

/// Stores the pending check-in times every `heartbeat_flush` until `stop`,
/// then once more (no-op when the flush interval is zero: nothing is pending).
async fn flush_heartbeats(app: App, mut stop: tokio::sync::oneshot::Receiver<()>) {
    let every = app.config().heartbeat_flush;
    if !every.is_zero() {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => {
                    if let Err(e) = app.flush_heartbeats().await {
                        tracing::error!(error = %e.message, pending = app.heartbeats().len(),
                            "could not store check-in times; they stay pending for the next flush");
                    }
                }
            }
        }
    } else {
        let _ = stop.await;
    }
    match app.flush_heartbeats().await {
        Ok(n) => tracing::info!(assets = n, "check-in times stored at shutdown"),
        Err(e) => tracing::error!(error = %e.message, pending = app.heartbeats().len(),
            "could not store check-in times at shutdown; they are lost"),
    }
}

/// Ticks the duties runner until `stop`, then releases its lease.
async fn run_duties(
    mut runner: patchbay_app::duties::Runner,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut every = tokio::time::interval(runner_tick(&runner));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A stored job result rings the bell: step the rollouts now rather than
    // at the next tick (results stored meanwhile coalesce into one permit).
    let bell = runner.bell();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = every.tick() => {
                runner.tick().await;
            }
            _ = bell.notified() => {
                runner.tick().await;
            }
        }
    }
    runner.release().await;
}

fn runner_tick(runner: &patchbay_app::duties::Runner) -> std::time::Duration {
    runner
        .tick_every()
        .max(std::time::Duration::from_millis(10))
}

/// The accept loop: like `axum::serve` with graceful shutdown, but each HTTP/1
/// connection has a header-read timeout (hyper's, on the tokio timer — axum's
/// own loop sets no timer, so it has none).
async fn serve_connections<L>(
    mut listener: L,
    router: axum::Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: crate::tls::PeerCert,
{
    use crate::tls::PeerCert;
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let (signal_tx, signal_rx) = tokio::sync::watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(signal_rx);
    });
    let (close_tx, close_rx) = tokio::sync::watch::channel(());
    loop {
        let (io, remote) = tokio::select! {
            conn = listener.accept() => conn,
            _ = signal_tx.closed() => break,
        };
        let remote = crate::tls::RemoteAddr(remote);
        let client_cert = crate::tls::ClientCert(io.client_cert_sha256());
        let svc = router.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(remote));
                req.extensions_mut().insert(client_cert.clone());
                req.map(axum::body::Body::new)
            },
        );
        let svc = TowerToHyperService::new(svc);
        let signal_tx = signal_tx.clone();
        let close_rx = close_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(io), svc)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            let mut closed = std::pin::pin!(signal_tx.closed());
            let mut draining = false;
            loop {
                tokio::select! {
                    res = conn.as_mut() => {
                        if let Err(e) = res {
                            tracing::debug!(%remote, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = &mut closed, if !draining => {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(close_rx);
        });
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
}
