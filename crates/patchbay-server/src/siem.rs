//! The SIEM sink: every audit entry as an RFC 5424 syslog message (CEF or
//! JSON, [`patchbay_core::siem`]) over UDP, TCP (RFC 6587 octet counting)
//! or TLS (RFC 5425), on the replica that holds the duties lease.
//!
//! Three tasks:
//!
//! - the **reader** takes audit entries after its position (first the
//!   sink's stored cursor, [`App::siem_cursor`]) in batches, encodes and
//!   frames them and puts them on a **bounded queue** ([`SinkConfig::queue`]).
//!   While the receiver is connected a full queue makes it wait (a backlog
//!   is never dropped while it can be sent). While the receiver is down a
//!   full queue **drops** the entry and counts it
//!   (`patchbay_siem_dropped_total`, and a warning per outage), so memory
//!   stays bounded — unless [`Overflow::Wait`] is configured, which waits
//!   instead and drops nothing (the audit log is the backlog);
//! - the **writer** sends the queue's entries, connecting on demand; a failed
//!   connect or write closes the connection and retries the same entries
//!   after an equal-jitter exponential backoff
//!   ([`patchbay_core::webhook::backoff_delay`], [`SinkConfig::backoff_base`]
//!   doubling up to [`SinkConfig::backoff_max`]). Before each write it checks
//!   whether the receiver closed the connection, so a restarted receiver
//!   does not swallow a batch into a dead socket;
//! - the **committer** stores the last written sequence number as the
//!   sink's cursor every [`SinkConfig::commit_every`] and at shutdown.
//!
//! Delivery is therefore at-least-once across restarts: entries written
//! after the last stored cursor are sent again after a crash (receivers
//! deduplicate on `externalId` / `seq`), and nothing after it is lost.
//! Plain syslog has no acknowledgements: bytes the kernel accepted just
//! before a receiver died can still be lost (RFC 6587 §3.4.2's known
//! limit); `docs/siem.md` says so.

use crate::metrics::Metrics;
use patchbay_app::App;
use patchbay_core::siem::{self, Format, Origin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::rustls;

/// How syslog travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RFC 5426: one message per datagram (cut to [`SinkConfig::udp_max`]).
    Udp,
    /// RFC 6587 octet counting over TCP.
    Tcp,
    /// RFC 5425: octet counting over TLS.
    Tls,
}

impl Transport {
    /// `udp`, `tcp` or `tls`.
    pub fn parse(s: &str) -> Option<Transport> {
        match s {
            "udp" => Some(Transport::Udp),
            "tcp" => Some(Transport::Tcp),
            "tls" => Some(Transport::Tls),
            _ => None,
        }
    }
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// What a full queue does while the receiver is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the entry and count it (bounded memory, a gap in the SIEM).
    Drop,
    /// Wait: nothing is dropped; the audit log holds the backlog.
    Wait,
}

/// A SIEM sink's settings (from the configuration file's `[syslog]`,
/// [`crate::config`]).
#[derive(Clone)]
pub struct SinkConfig {
    /// The cursor's name (`syslog`).
    pub name: String,
    /// UDP, TCP or TLS.
    pub transport: Transport,
    /// Receiver host name or address.
    pub host: String,
    /// Receiver port.
    pub port: u16,
    /// CEF or JSON.
    pub format: Format,
    /// TLS client settings (the receiver's CA), for [`Transport::Tls`].
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The name the receiver's certificate must carry (default: `host`).
    pub server_name: Option<String>,
    /// Syslog facility (default 13, log audit).
    pub facility: u8,
    /// HOSTNAME in the syslog header (default: this machine's name).
    pub hostname: String,
    /// Entries the queue holds.
    pub queue: usize,
    /// What a full queue does while the receiver is down.
    pub overflow: Overflow,
    /// First reconnect delay (doubles, jittered).
    pub backoff_base: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Limit of one connect or write.
    pub timeout: Duration,
    /// How often the reader looks for new audit entries (default 250 ms: the
    /// SIEM's latency bound).
    pub poll: Duration,
    /// How often the cursor is stored.
    pub commit_every: Duration,
    /// Largest UDP datagram.
    pub udp_max: usize,
}

impl SinkConfig {
    /// A sink to `host:port` over `transport` with the defaults.
    pub fn new(transport: Transport, host: &str, port: u16, format: Format) -> Self {
        Self {
            name: "syslog".into(),
            transport,
            host: host.into(),
            port,
            format,
            tls: None,
            server_name: None,
            facility: 13,
            hostname: local_hostname(),
            queue: 10_000,
            overflow: Overflow::Drop,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            poll: Duration::from_millis(250),
            commit_every: Duration::from_secs(1),
            udp_max: siem::DEFAULT_UDP_MAX,
        }
    }
}

impl std::fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkConfig")
            .field("transport", &self.transport)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("format", &self.format)
            .field("tls", &self.tls.is_some())
            .field("queue", &self.queue)
            .field("overflow", &self.overflow)
            .finish_non_exhaustive()
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`), or `-`.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}

/// Most entries written at once.
const MAX_WRITE: usize = 256;

/// One encoded entry.
struct Item {
    seq: i64,
    bytes: Vec<u8>,
}

/// The sink's shared state (for tests and the metrics).
#[derive(Default)]
pub struct SinkState {
    /// The last sequence number written to the receiver.
    pub written: AtomicI64,
    /// Whether the receiver is connected now.
    pub connected: AtomicBool,
    /// Whether the last connect or write failed (the receiver is down): only
    /// then does a full queue drop ([`Overflow::Drop`]).
    pub down: AtomicBool,
}

/// Encodes one entry as the bytes the transport sends.
fn encode(cfg: &SinkConfig, origin: &Origin, e: &siem::Entry) -> Vec<u8> {
    let msg = siem::syslog_5424(
        origin,
        e,
        &siem::message(e, cfg.format, env!("CARGO_PKG_VERSION")),
    );
    match cfg.transport {
        Transport::Udp => siem::truncate_datagram(&msg, cfg.udp_max)
            .0
            .as_bytes()
            .to_vec(),
        Transport::Tcp | Transport::Tls => siem::frame_octet_counted(&msg),
    }
}

/// Runs the sink until `stop` resolves, while `leading` (only the duties
/// leader forwards; a new leader resumes from the stored cursor).
pub async fn run(
    app: App,
    cfg: SinkConfig,
    metrics: Arc<Metrics>,
    leading: Arc<AtomicBool>,
    state: Arc<SinkState>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    tracing::info!(transport = cfg.transport.as_str(), host = %cfg.host, port = cfg.port, format = cfg.format.as_str(), "SIEM sink configured");
    loop {
        // Wait to lead.
        while !leading.load(Ordering::SeqCst) {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(cfg.poll) => {}
            }
        }
        let start = match app.siem_cursor(&cfg.name).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e.message, "SIEM: reading the cursor failed");
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(cfg.poll) => continue,
                }
            }
        };
        state.written.store(start, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel::<Item>(cfg.queue.max(1));
        let reader = tokio::spawn(read_loop(
            app.clone(),
            cfg.clone(),
            metrics.clone(),
            state.clone(),
            tx,
            start,
        ));
        let writer = tokio::spawn(write_loop(cfg.clone(), metrics.clone(), state.clone(), rx));
        let mut committed = start;
        let stopping = loop {
            tokio::select! {
                _ = &mut stop => break true,
                _ = tokio::time::sleep(cfg.commit_every) => {}
            }
            committed = commit(&app, &cfg, &state, committed).await;
            if !leading.load(Ordering::SeqCst) {
                break false;
            }
        };
        reader.abort();
        writer.abort();
        let _ = reader.await;
        let _ = writer.await;
        state.connected.store(false, Ordering::SeqCst);
        metrics.siem_connected.set(0);
        metrics.siem_queue_depth.set(0);
        commit(&app, &cfg, &state, committed).await;
        if stopping {
            return;
        }
    }
}

async fn commit(app: &App, cfg: &SinkConfig, state: &SinkState, committed: i64) -> i64 {
    let w = state.written.load(Ordering::SeqCst);
    if w <= committed {
        return committed;
    }
    match app.siem_commit(&cfg.name, w).await {
        Ok(()) => w,
        Err(e) => {
            tracing::warn!(error = %e.message, "SIEM: storing the cursor failed");
            committed
        }
    }
}

async fn read_loop(
    app: App,
    cfg: SinkConfig,
    metrics: Arc<Metrics>,
    state: Arc<SinkState>,
    tx: mpsc::Sender<Item>,
    mut pos: i64,
) {
    let origin = Origin {
        facility: cfg.facility,
        hostname: cfg.hostname.clone(),
        app_name: "patchbay".into(),
        procid: std::process::id().to_string(),
    };
    let cap = cfg.queue.max(1);
    let mut dropping = 0u64;
    loop {
        let entries = match app.siem_entries(pos, 500).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e.message, "SIEM: reading the audit log failed");
                Vec::new()
            }
        };
        if entries.is_empty() {
            // Polled, not woken by the app's outbox bell: that bell wakes one
            // waiter (the webhook loop), and refusals, which reach the SIEM
            // too, do not ring it.
            tokio::time::sleep(cfg.poll).await;
            continue;
        }
        for e in entries {
            let item = Item {
                seq: e.seq,
                bytes: encode(&cfg, &origin, &e),
            };
            pos = e.seq;
            match tx.try_send(item) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(item)) => {
                    // Wait for room while the receiver is up (or always, with
                    // Overflow::Wait); drop once it is known to be down —
                    // rechecked every poll, so a wait that began while it
                    // was up ends when it goes down.
                    let mut item = Some(item);
                    while let Some(it) = item.take() {
                        let may_drop =
                            cfg.overflow == Overflow::Drop && state.down.load(Ordering::SeqCst);
                        if may_drop {
                            metrics.siem_dropped.inc();
                            if dropping == 0 {
                                tracing::warn!(
                                    seq = e.seq,
                                    queue = cap,
                                    "SIEM receiver down and the queue full: dropping audit entries (counted in patchbay_siem_dropped_total; the audit log keeps them)"
                                );
                            }
                            dropping += 1;
                            break;
                        }
                        match tokio::time::timeout(cfg.poll, tx.reserve()).await {
                            Ok(Ok(permit)) => permit.send(it),
                            Ok(Err(_)) => return,
                            Err(_) => item = Some(it),
                        }
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
            if dropping > 0 && !state.down.load(Ordering::SeqCst) {
                tracing::info!(dropped = dropping, "SIEM receiver back");
                dropping = 0;
            }
            metrics
                .siem_queue_depth
                .set((cap - tx.capacity().min(cap)) as i64);
        }
    }
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    /// Whether the receiver closed the connection (it never sends data, so
    /// a readable socket means EOF or an error).
    async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 256];
        match self {
            Conn::Udp(_) => false,
            Conn::Tcp(s) => match s.try_read(&mut buf) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            },
            Conn::Tls(s) => {
                tokio::select! {
                    biased;
                    r = s.read(&mut buf) => !matches!(r, Ok(n) if n > 0),
                    _ = std::future::ready(()) => false,
                }
            }
        }
    }

    async fn write(&mut self, items: &[Item]) -> std::io::Result<()> {
        match self {
            Conn::Udp(s) => {
                for i in items {
                    s.send(&i.bytes).await?;
                }
                Ok(())
            }
            Conn::Tcp(s) => {
                let all: Vec<u8> = items.iter().flat_map(|i| i.bytes.iter().copied()).collect();
                s.write_all(&all).await?;
                s.flush().await
            }
            Conn::Tls(s) => {
                let all: Vec<u8> = items.iter().flat_map(|i| i.bytes.iter().copied()).collect();
                s.write_all(&all).await?;
                s.flush().await
            }
        }
    }
}

async fn connect(cfg: &SinkConfig) -> Result<Conn, String> {
    let addr = tokio::net::lookup_host((cfg.host.as_str(), cfg.port))
        .await
        .map_err(|e| format!("resolving {}: {e}", cfg.host))?
        .next()
        .ok_or_else(|| format!("resolving {}: no address", cfg.host))?;
    match cfg.transport {
        Transport::Udp => {
            let local = if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let s = UdpSocket::bind(local)
                .await
                .map_err(|e| format!("binding a UDP socket: {e}"))?;
            s.connect(addr)
                .await
                .map_err(|e| format!("UDP {addr}: {e}"))?;
            Ok(Conn::Udp(s))
        }
        Transport::Tcp => Ok(Conn::Tcp(
            TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connecting to {addr}: {e}"))?,
        )),
        Transport::Tls => {
            let tls = cfg
                .tls
                .clone()
                .ok_or("transport tls without TLS settings")?;
            let name = cfg.server_name.clone().unwrap_or_else(|| cfg.host.clone());
            let name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| format!("server name {name:?}: {e}"))?;
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connecting to {addr}: {e}"))?;
            let s = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
            Ok(Conn::Tls(Box::new(s)))
        }
    }
}

async fn write_loop(
    cfg: SinkConfig,
    metrics: Arc<Metrics>,
    state: Arc<SinkState>,
    mut rx: mpsc::Receiver<Item>,
) {
    let mut conn: Option<Conn> = None;
    let mut failures = 0u32;
    let mut pending: Vec<Item> = Vec::new();
    let cap = cfg.queue.max(1);
    loop {
        if pending.is_empty() {
            let Some(first) = rx.recv().await else {
                return;
            };
            pending.push(first);
        }
        metrics.siem_queue_depth.set(rx.len().min(cap) as i64);
        if let Some(c) = conn.as_mut()
            && c.closed().await
        {
            tracing::info!(host = %cfg.host, port = cfg.port, "SIEM receiver closed the connection; reconnecting");
            conn = None;
        }
        if conn.is_none() {
            match tokio::time::timeout(cfg.timeout, connect(&cfg)).await {
                Ok(Ok(c)) => {
                    state.down.store(false, Ordering::SeqCst);
                    state.connected.store(true, Ordering::SeqCst);
                    metrics.siem_connected.set(1);
                    tracing::info!(host = %cfg.host, port = cfg.port, transport = cfg.transport.as_str(), "SIEM receiver connected");
                    conn = Some(c);
                }
                Ok(Err(e)) => {
                    failed(&cfg, &metrics, &state, &mut failures, &e).await;
                    continue;
                }
                Err(_) => {
                    failed(&cfg, &metrics, &state, &mut failures, "connect timed out").await;
                    continue;
                }
            }
        }
        // Take more from the queue only once connected: while the receiver
        // is down the writer holds one entry and the queue the rest, so the
        // queue's bound is what decides drops.
        while pending.len() < MAX_WRITE {
            match rx.try_recv() {
                Ok(i) => pending.push(i),
                Err(_) => break,
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match tokio::time::timeout(cfg.timeout, c.write(&pending)).await {
            Ok(Ok(())) => {
                failures = 0;
                state.connected.store(true, Ordering::SeqCst);
                metrics.siem_connected.set(1);
                metrics.siem_sent.inc_by(pending.len() as u64);
                if let Some(last) = pending.last() {
                    state.written.store(last.seq, Ordering::SeqCst);
                }
                pending.clear();
            }
            Ok(Err(e)) => {
                conn = None;
                failed(&cfg, &metrics, &state, &mut failures, &e.to_string()).await;
            }
            Err(_) => {
                conn = None;
                failed(&cfg, &metrics, &state, &mut failures, "write timed out").await;
            }
        }
    }
}

/// Records a failed connect or write and sleeps the backoff.
async fn failed(
    cfg: &SinkConfig,
    metrics: &Metrics,
    state: &SinkState,
    failures: &mut u32,
    error: &str,
) {
    *failures += 1;
    state.down.store(true, Ordering::SeqCst);
    state.connected.store(false, Ordering::SeqCst);
    metrics.siem_connected.set(0);
    if *failures == 1 {
        tracing::warn!(host = %cfg.host, port = cfg.port, error, "SIEM receiver unreachable; retrying with backoff");
    } else {
        tracing::debug!(host = %cfg.host, port = cfg.port, error, attempt = *failures, "SIEM receiver still unreachable");
    }
    let delay = patchbay_core::webhook::backoff_delay(
        *failures,
        jiff::SignedDuration::try_from(cfg.backoff_base).unwrap_or(jiff::SignedDuration::ZERO),
        jiff::SignedDuration::try_from(cfg.backoff_max).unwrap_or(jiff::SignedDuration::ZERO),
        rand::random::<f64>(),
    );
    tokio::time::sleep(delay.unsigned_abs()).await;
}
