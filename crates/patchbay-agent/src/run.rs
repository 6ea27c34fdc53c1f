//! Enrolment, check-in and the check-in loop.
//!
//! Each check-in sends the inventory (unchanged, delta or full) and the job
//! results of the outbox ([`crate::jobs::Outbox`]) until the server
//! acknowledges them; the answer's signed jobs are admitted or refused and the
//! due ones run ([`crate::jobs`]). With long-polling (`wait_secs`, flag
//! `--long-poll`) the server holds a check-in until it leases a job, so the
//! loop checks in again at once, collecting the inventory afresh only every
//! `--interval` (and after every job: re-inventory); without it, or against a
//! server that answers at once, the loop sleeps the interval.

use crate::collect::{CollectOptions, collect};
use crate::exec::config::Config;
use crate::jobs::{self, JobContext, Outbox};
use crate::state::{Acked, ClientCert, Identity, StateDir};
use anyhow::{Context, bail};
use patchbay_client::{Client, HttpError};
use patchbay_core::inventory::{Inventory, PackageDelta};
use patchbay_proto::AGENT_PROTOCOL_VERSION;
use patchbay_proto::agent::{
    CertificateRequest, CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse,
    InventoryPayload, IssuedCertificate,
};
use std::path::PathBuf;
use std::time::Duration;

/// Agent options.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Server base URL.
    pub server: String,
    /// Enrolment token, needed only until the agent is enrolled.
    pub enroll_token: Option<String>,
    /// State directory.
    pub state_dir: PathBuf,
    /// Root file system to inventory.
    pub root: PathBuf,
    /// Check-in interval.
    pub interval: Duration,
    /// Collect pending updates (apt/dnf/apk simulation).
    pub pending_updates: bool,
    /// Report the network namespace's addresses, MACs and neighbours even
    /// with another root (`--host-network`).
    pub host_network: bool,
    /// HTTP timeout.
    pub timeout: Duration,
    /// CA certificate (PEM) to trust for an HTTPS server, instead of the
    /// public roots.
    pub ca_cert: Option<PathBuf>,
    /// Enrol again although enrolled, presenting the current credential.
    pub re_enroll: bool,
    /// The local configuration (`[jobs]`, checks); the default refuses every
    /// job (`[jobs] enabled = false`).
    pub config: Config,
    /// Long-poll: ask the server to hold a check-in up to this many seconds
    /// until it has a job (0: no long-poll).
    pub wait_secs: u32,
}

/// What one check-in did.
#[derive(Debug, Clone)]
pub struct CheckinOutcome {
    /// Asset name.
    pub asset_name: String,
    /// `unchanged`, `delta` or `full`.
    pub sent: &'static str,
    /// Packages in the inventory.
    pub packages: usize,
    /// Package rows the server wrote.
    pub rows_written: u64,
    /// Suggested next interval.
    pub next_checkin_secs: u64,
    /// Job results sent with this check-in.
    pub results_sent: usize,
    /// Results the server acknowledged.
    pub acked: usize,
    /// Jobs in the answer.
    pub jobs_received: usize,
    /// Jobs run (before and after the check-in).
    pub jobs_run: usize,
    /// Results still waiting for an acknowledgement.
    pub unacked: usize,
    /// The earliest `not_before` of the jobs still pending.
    pub next_due: Option<jiff::Timestamp>,
    /// How long the server took to answer.
    pub elapsed: Duration,
    /// Key announcements in the answer refused (not signed by the pinned
    /// key); reported to the server with the next check-in.
    pub key_refusals: Vec<String>,
}

/// Follows the server's key rotations from the pinned key (ADR 0007): the
/// pin moves along every announcement signed by the key pinned so far and is
/// persisted; an announcement that claims the pinned key but is not signed by
/// it is refused, logged and kept in the state directory until a check-in
/// has reported it. Refusals already reported are forgotten here.
fn follow_key_announcements(
    state: &StateDir,
    id: &mut Identity,
    announcements: &[patchbay_core::audit::KeyAnnouncement],
) -> anyhow::Result<Vec<String>> {
    let (pin, refused) = match &id.server_public_key {
        Some(pinned) if !announcements.is_empty() => {
            patchbay_core::audit::KeyAnnouncement::follow(pinned, announcements)
        }
        _ => (String::new(), Vec::new()),
    };
    if !pin.is_empty() && id.server_public_key.as_deref() != Some(pin.as_str()) {
        tracing::info!(old = ?id.server_public_key, new = %pin, "the server rotated its signing key: re-pinned");
        id.server_public_key = Some(pin);
        state.save_identity(id)?;
    }
    for r in &refused {
        tracing::error!(refusal = %r, "refused a server key announcement");
    }
    state.save_key_refusals(&refused)?;
    Ok(refused)
}

/// Reads the host name for enrolment.
fn hostname(inv: &Inventory) -> String {
    if inv.facts.hostname.is_empty() {
        "host".to_string()
    } else {
        inv.facts.hostname.clone()
    }
}

/// Enrols if the state directory has no identity; returns the identity.
pub fn ensure_enrolled(
    opts: &AgentOptions,
    state: &StateDir,
    inv: &Inventory,
) -> anyhow::Result<Identity> {
    match state.identity()? {
        Some(id) if !opts.re_enroll => Ok(id),
        previous => enroll(opts, state, inv, previous.map(|p| p.secret)),
    }
}

/// Enrols with the enrolment token. When the host was enrolled before, its
/// credential goes along as the proof the server asks for before it lets an
/// enrolment take over an asset whose agent is active.
pub fn enroll(
    opts: &AgentOptions,
    state: &StateDir,
    inv: &Inventory,
    previous_secret: Option<String>,
) -> anyhow::Result<Identity> {
    let Some(token) = &opts.enroll_token else {
        bail!(
            "this agent is not enrolled (no identity in {}): pass --enroll-token",
            state.path().display()
        );
    };
    // The enrolment presents no client certificate (an old one may have
    // expired: re-enrolling is how an agent recovers); over HTTPS it asks for
    // one for a new key, which a server with agent mutual TLS issues.
    let client = Client::new(&opts.server, None, opts.timeout).with_ca(opts.ca_cert.as_deref())?;
    let new_key = if is_https(&opts.server) {
        Some(new_key_and_csr()?)
    } else {
        None
    };
    let resp: EnrollResponse = client
        .send(
            "POST",
            "/agent/v1/enroll",
            &EnrollRequest {
                protocol: AGENT_PROTOCOL_VERSION,
                enroll_token: token.clone(),
                hostname: hostname(inv),
                machine_id: inv.facts.machine_id.clone(),
                agent_secret: previous_secret,
                csr: new_key.as_ref().map(|(_, csr)| csr.clone()),
            },
        )
        .with_context(|| format!("enrolling with {}", opts.server))?;
    let id = Identity {
        server: opts.server.clone(),
        agent_id: resp.agent_id,
        asset_name: resp.asset_name,
        secret: resp.agent_secret,
        server_public_key: resp.server_public_key,
    };
    state.save_identity(&id)?;
    state.clear_acked()?;
    match (resp.client_certificate, new_key) {
        (Some(issued), Some((key_pem, _))) => save_certificate(state, issued, key_pem)?,
        // A certificate of an earlier enrolment belongs to a revoked agent.
        _ => state.clear_client_cert()?,
    }
    tracing::info!(agent = %id.agent_id, asset = %id.asset_name, "enrolled");
    Ok(id)
}

fn is_https(server: &str) -> bool {
    server
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
}

/// A new TLS client key (ECDSA P-256, PEM) and a certificate signing request
/// for it (PEM). The server takes only the public key from the request.
pub fn new_key_and_csr() -> anyhow::Result<(String, String)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("making a TLS client key")?;
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .context("making a certificate signing request")?;
    Ok((key.serialize_pem(), csr))
}

fn save_certificate(
    state: &StateDir,
    issued: IssuedCertificate,
    key_pem: String,
) -> anyhow::Result<()> {
    state.save_client_cert(&ClientCert {
        key_pem,
        cert_pem: issued.certificate,
        not_after: issued.not_after.clone(),
        sha256: issued.sha256,
    })?;
    tracing::info!(not_after = %issued.not_after, "stored the TLS client certificate issued by the server");
    Ok(())
}

/// A client for the server with the agent's TLS settings: `--ca-cert`, and
/// the agent's client certificate when it has one that has not expired (an
/// expired one would fail the handshake; without one, a server that requires
/// it answers 401 and the agent re-enrols when it has an enrolment token).
fn agent_client(
    opts: &AgentOptions,
    state: &StateDir,
    token: Option<String>,
    timeout: Duration,
) -> anyhow::Result<Client> {
    let mut client = Client::new(&opts.server, token, timeout).with_ca(opts.ca_cert.as_deref())?;
    if !is_https(&opts.server) {
        return Ok(client);
    }
    if let Some(cc) = state.client_cert()? {
        let expired = cc
            .not_after
            .parse::<jiff::Timestamp>()
            .map(|end| end <= jiff::Timestamp::now())
            .unwrap_or(true);
        if expired {
            tracing::warn!(not_after = %cc.not_after, "the TLS client certificate has expired; not presenting it (re-enrol with --enroll-token if the server requires it)");
        } else {
            let what = state.path().join("client-cert.json").display().to_string();
            client = client.with_client_cert(&cc.cert_pem, &cc.key_pem, &what)?;
        }
    }
    Ok(client)
}

/// Gets a new client certificate for a new key (`POST /agent/v1/certificate`)
/// and stores it; the request presents the current one, if any.
pub fn renew_certificate(
    opts: &AgentOptions,
    state: &StateDir,
    id: &Identity,
) -> anyhow::Result<()> {
    let (key_pem, csr) = new_key_and_csr()?;
    let client = agent_client(opts, state, Some(id.secret.clone()), opts.timeout)?;
    let issued: IssuedCertificate = client
        .send(
            "POST",
            "/agent/v1/certificate",
            &CertificateRequest {
                protocol: AGENT_PROTOCOL_VERSION,
                csr,
            },
        )
        .with_context(|| format!("getting a TLS client certificate from {}", opts.server))?;
    save_certificate(state, issued, key_pem)
}

/// Builds the check-in payload: nothing if unchanged, a delta against the last
/// acknowledged inventory, or the full inventory.
pub fn payload(
    inv: &Inventory,
    hash: &str,
    acked: Option<&Acked>,
) -> (InventoryPayload, &'static str) {
    match acked {
        Some(a) if a.hash == hash => (InventoryPayload::Unchanged, "unchanged"),
        Some(a) => {
            let d = PackageDelta::between(&a.inventory.packages, &inv.packages);
            (
                InventoryPayload::Delta {
                    base_hash: a.hash.clone(),
                    facts: inv.facts.clone(),
                    format: inv.format,
                    added: d.added,
                    removed: d.removed,
                    pending_updates: inv.pending_updates.clone(),
                },
                "delta",
            )
        }
        None => (
            InventoryPayload::Full {
                inventory: inv.clone(),
            },
            "full",
        ),
    }
}

/// Collects the inventory of the agent's root.
pub fn collect_inventory(opts: &AgentOptions) -> anyhow::Result<Inventory> {
    collect(&CollectOptions {
        root: opts.root.clone(),
        pending_updates: opts.pending_updates,
        host_network: opts.host_network,
        unmanaged: opts.config.unmanaged.clone(),
        ..Default::default()
    })
    .with_context(|| format!("collecting the inventory of {}", opts.root.display()))
}

/// Collects the inventory and checks in once (enrolling first if needed),
/// then runs the jobs the server sent that are due.
pub fn checkin_once(opts: &AgentOptions) -> anyhow::Result<CheckinOutcome> {
    let ran = run_pending(opts)?;
    let inv = collect_inventory(opts)?;
    let mut o = checkin_with(opts, &inv)?;
    o.jobs_run += ran;
    Ok(o)
}

/// Runs the due jobs an earlier run left pending (killed while running one,
/// or waiting for its not-before), before the inventory is collected, so the
/// check-in that carries their results also carries the changed inventory.
/// Nothing to do before enrolment.
pub fn run_pending(opts: &AgentOptions) -> anyhow::Result<usize> {
    let state = StateDir::open(&opts.state_dir)?;
    let Some(id) = state.identity()? else {
        return Ok(0);
    };
    let mut outbox = Outbox::load(&state)?;
    if outbox.pending.is_empty() {
        return Ok(0);
    }
    jobs::run_due(&mut outbox, &job_context(opts, &state, &id))
}

fn job_context<'a>(
    opts: &'a AgentOptions,
    state: &'a StateDir,
    id: &'a Identity,
) -> JobContext<'a> {
    JobContext {
        state,
        root: opts.root.clone(),
        config: &opts.config,
        asset: &id.asset_name,
        pinned_key: id.server_public_key.as_deref(),
    }
}

/// Checks in once with `inv`: sends the outbox's results, drops those
/// acknowledged, admits or refuses the answer's jobs and runs the due ones
/// (their results go with the next check-in; [`run_pending`] runs the jobs an
/// earlier run left pending).
pub fn checkin_with(opts: &AgentOptions, inv: &Inventory) -> anyhow::Result<CheckinOutcome> {
    let state = StateDir::open(&opts.state_dir)?;
    let mut id = ensure_enrolled(opts, &state, inv)?;
    let mut outbox = Outbox::load(&state)?;
    let hash = inv.content_hash();
    let mut acked = state.acked()?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (inventory, sent) = payload(inv, &hash, acked.as_ref());
        // The --server given now wins over the one recorded at enrolment: servers
        // move (new address, load balancer) without re-enrolling their fleet.
        let wait = Duration::from_secs(opts.wait_secs.into());
        let client = agent_client(opts, &state, Some(id.secret.clone()), opts.timeout + wait)?;
        let req = CheckinRequest {
            key_refusals: state.key_refusals()?,
            results: outbox.results.clone(),
            wait_secs: (opts.wait_secs > 0).then_some(opts.wait_secs),
            protocol: AGENT_PROTOCOL_VERSION,
            inventory_hash: hash.clone(),
            inventory,
        };
        let started = std::time::Instant::now();
        match client.send_dated::<_, CheckinResponse>("POST", "/agent/v1/checkin", &req) {
            Ok((resp, date)) => {
                let elapsed = started.elapsed();
                jobs::note_server_date(date.as_deref(), jiff::Timestamp::now());
                if sent != "unchanged" {
                    state.save_acked(&Acked {
                        hash: resp.stored_hash.clone(),
                        inventory: inv.clone(),
                    })?;
                }
                if outbox.ack(&resp.acked) {
                    outbox.save(&state)?;
                }
                // Key rotations first: the answer's jobs are signed with the
                // key in force now.
                let key_refusals =
                    follow_key_announcements(&state, &mut id, &resp.key_announcements)?;
                // The server asks for a (new) client certificate: a failure
                // costs nothing now, the next check-in asks again.
                if resp.certificate_wanted
                    && is_https(&opts.server)
                    && let Err(e) = renew_certificate(opts, &state, &id)
                {
                    tracing::warn!(error = %format!("{e:#}"), "getting a TLS client certificate failed; retrying at the next check-in");
                }
                let ctx = job_context(opts, &state, &id);
                jobs::receive(&mut outbox, &resp.jobs, &ctx, jobs::server_now())?;
                let jobs_run = jobs::run_due(&mut outbox, &ctx)?;
                return Ok(CheckinOutcome {
                    asset_name: id.asset_name.clone(),
                    sent,
                    packages: inv.packages.len(),
                    rows_written: resp.package_rows_written,
                    next_checkin_secs: resp.next_checkin_secs,
                    results_sent: req.results.len(),
                    acked: resp.acked.len(),
                    jobs_received: resp.jobs.len(),
                    jobs_run,
                    unacked: outbox.results.len(),
                    next_due: outbox.next_due(),
                    elapsed,
                    key_refusals,
                });
            }
            // The server holds another base (restored backup, lost write): send it all.
            Err(e) if e.code() == Some("inventory_base_mismatch") && attempt == 1 => {
                tracing::info!("server holds a different inventory; sending the full inventory");
                acked = None;
                state.clear_acked()?;
            }
            // Credential rejected: re-enrol when a token was given.
            Err(HttpError::Api { status: 401, .. })
                if attempt == 1 && opts.enroll_token.is_some() =>
            {
                tracing::warn!("agent credential rejected; enrolling again");
                // The rejected credential still goes along: the server decides
                // whether it proves anything.
                id = enroll(opts, &state, inv, Some(id.secret.clone()))?;
                acked = None;
            }
            Err(e) => return Err(e).with_context(|| format!("checking in with {}", opts.server)),
        }
    }
}

/// Sleep time with ±10 % jitter, so a fleet restarted together spreads out.
pub fn jittered(interval: Duration) -> Duration {
    use rand::Rng;
    let f: f64 = rand::rng().random_range(0.9..1.1);
    interval.mul_f64(f)
}

/// How long the loop waits after a check-in that went through.
///
/// At once after running a job (results and the changed inventory are
/// reported without delay) and, with long-polling, after an answer the server
/// held (it will hold the next one until it has a job); otherwise the jittered
/// interval. Never past the `not_before` of a pending job.
pub fn next_wait(opts: &AgentOptions, o: &CheckinOutcome) -> Duration {
    let held = opts.wait_secs > 0
        && (o.jobs_received > 0 || o.elapsed >= Duration::from_secs(u64::from(opts.wait_secs) / 2));
    let mut wait = if o.jobs_run > 0 || held {
        Duration::ZERO
    } else {
        jittered(opts.interval)
    };
    if let Some(due) = o.next_due {
        let until = due.duration_since(jobs::server_now());
        let until = Duration::try_from(until).unwrap_or(Duration::ZERO);
        wait = wait.min(until);
    }
    wait
}

/// How long the loop waits after a failed check-in: the current backoff,
/// never longer than the interval (an agent checking in every second retries
/// within a second, not after the 5 s first step), which then doubles.
pub fn retry_wait(backoff: &mut Duration, interval: Duration) -> Duration {
    let w = (*backoff).min(interval);
    *backoff = (*backoff * 2).min(interval);
    w
}

/// Runs forever: check in, run jobs, wait ([`next_wait`]), repeat. The
/// inventory is collected every interval and after every job; in between a
/// long-polling agent sends the one it has (usually `unchanged`). Failures
/// are logged and retried with exponential backoff capped at the interval.
pub fn run_loop(opts: &AgentOptions, stop: &std::sync::atomic::AtomicBool) {
    let mut backoff = Duration::from_secs(5);
    let mut cached: Option<(std::time::Instant, Inventory)> = None;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match run_pending(opts) {
            Ok(0) => {}
            Ok(_) => cached = None,
            Err(e) => tracing::warn!(error = format!("{e:#}"), "running pending jobs failed"),
        }
        let fresh = cached
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= opts.interval);
        if fresh {
            cached = match collect_inventory(opts) {
                Ok(inv) => Some((std::time::Instant::now(), inv)),
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "collecting the inventory failed");
                    None
                }
            };
        }
        let res = match &cached {
            Some((_, inv)) => checkin_with(opts, inv),
            None => Err(anyhow::anyhow!("no inventory")),
        };
        let wait = match res {
            Ok(o) => {
                backoff = Duration::from_secs(5);
                tracing::info!(asset = %o.asset_name, sent = o.sent, packages = o.packages, rows = o.rows_written, results = o.results_sent, acked = o.acked, jobs = o.jobs_received, ran = o.jobs_run, "checked in");
                if o.jobs_run > 0 {
                    // Re-inventory after every job.
                    cached = None;
                }
                next_wait(opts, &o)
            }
            Err(e) => {
                let w = retry_wait(&mut backoff, opts.interval);
                tracing::warn!(error = format!("{e:#}"), retry_in = ?w, "check-in failed");
                w
            }
        };
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline
            && !stop.load(std::sync::atomic::Ordering::Relaxed)
        {
            std::thread::sleep(
                Duration::from_millis(200).min(deadline - std::time::Instant::now()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(jobs_received: usize, jobs_run: usize, elapsed_secs: u64) -> CheckinOutcome {
        CheckinOutcome {
            asset_name: "a".into(),
            sent: "unchanged",
            packages: 0,
            rows_written: 0,
            next_checkin_secs: 60,
            results_sent: 0,
            acked: 0,
            jobs_received,
            jobs_run,
            unacked: 0,
            next_due: None,
            elapsed: Duration::from_secs(elapsed_secs),
            key_refusals: Vec::new(),
        }
    }

    fn opts(wait_secs: u32) -> AgentOptions {
        AgentOptions {
            server: "http://x".into(),
            enroll_token: None,
            state_dir: "/nonexistent".into(),
            root: "/".into(),
            interval: Duration::from_secs(600),
            pending_updates: false,
            host_network: false,
            timeout: Duration::from_secs(10),
            ca_cert: None,
            re_enroll: false,
            config: Config::default(),
            wait_secs,
        }
    }

    #[test]
    fn a_failed_checkin_is_retried_within_the_interval() {
        // Interval 1 s: every retry within 1 s, the first one included.
        let mut b = Duration::from_secs(5);
        let waits: Vec<Duration> = (0..3)
            .map(|_| retry_wait(&mut b, Duration::from_secs(1)))
            .collect();
        assert_eq!(waits, vec![Duration::from_secs(1); 3]);
        // Interval 60 s: 5, 10, 20, 40, 60, 60 s.
        let mut b = Duration::from_secs(5);
        let waits: Vec<u64> = (0..6)
            .map(|_| retry_wait(&mut b, Duration::from_secs(60)).as_secs())
            .collect();
        assert_eq!(waits, vec![5, 10, 20, 40, 60, 60]);
    }

    #[test]
    fn the_loop_polls_again_at_once_only_when_it_should() {
        let interval = |w: Duration| w >= Duration::from_secs(540);
        // No long-poll: the interval, unless a job ran (report it at once).
        assert!(interval(next_wait(&opts(0), &outcome(0, 0, 0))));
        assert_eq!(next_wait(&opts(0), &outcome(1, 1, 0)), Duration::ZERO);
        // Long-poll: an answer the server held, or one with jobs → again at once.
        assert_eq!(next_wait(&opts(20), &outcome(0, 0, 20)), Duration::ZERO);
        assert_eq!(next_wait(&opts(20), &outcome(1, 0, 0)), Duration::ZERO);
        // A server that answers at once (no long-poll support): the interval.
        assert!(interval(next_wait(&opts(20), &outcome(0, 0, 0))));
        // A pending job due in ~30 s caps the wait.
        let mut o = outcome(0, 0, 0);
        o.next_due = Some(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30));
        let w = next_wait(&opts(0), &o);
        assert!(
            w <= Duration::from_secs(30) && w >= Duration::from_secs(25),
            "{w:?}"
        );
    }
}
