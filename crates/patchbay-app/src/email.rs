//! Email over SMTP (issue 15; docs/notifications.md), sent from the outbox.
//!
//! **Fan-out** ([`App::emails_fan_out`]): in one write transaction, each
//! contact's new outbox events (after its cursor) that it receives — a kind
//! it lists, or an escalation step addressed to it — become one email
//! delivery row each (unique per contact and event, with its own
//! `Message-ID`), and the cursor moves: exactly one email per recipient per
//! event, across restarts.
//!
//! **Delivery** ([`App::emails_deliver`]): due rows are rendered
//! ([`patchbay_render::Email`]: text and HTML, values escaped, the subject
//! one line) and sent with lettre over SMTP — STARTTLS (required, not
//! opportunistic), implicit TLS, or plain for a loopback server only — each
//! send bounded by a timeout. A row is marked sent only once the server
//! accepted the message; a failure is retried with equal-jitter exponential
//! backoff on the app's clock, dead after `max_attempts` (the delivery log:
//! `patchbay contacts deliveries`; counts on `/metrics`). A crash between
//! the server's acceptance and the commit sends that email again with the
//! same `Message-ID`.

use crate::outbox::{self, Consumer};
use crate::{App, AppError, SystemActor};
use jiff::{SignedDuration, Timestamp};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use patchbay_core::escalation::{self, Channel};
use patchbay_core::event::{Event, Kind};
use patchbay_core::webhook::backoff_delay;
use patchbay_proto::api::EmailOut;
use patchbay_render::Email;
use patchbay_store::{EmailRow, email_state};
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is **required** (a
    /// server that does not offer it is an error, never plain text).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// No TLS: only for a server on a loopback address (tests, a local
    /// relay).
    None,
}

/// The SMTP server mail is sent through (`patchbay serve --smtp-url
/// smtp[s]://user:pass@host:port --smtp-from ADDR`; embeddable in the
/// server's configuration file as `[smtp]`). `Debug` redacts the password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name (also the name the TLS certificate must carry).
    pub host: String,
    /// Port (587 STARTTLS, 465 implicit TLS, 25 plain by convention).
    pub port: u16,
    /// Connection protection.
    pub tls: SmtpTls,
    /// Login, if the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password (never printed).
    #[serde(default)]
    pub password: Option<String>,
    /// The `From:` address and envelope sender.
    pub from: String,
    /// Extra CA certificates (PEM) to trust for the server's certificate,
    /// beside the web PKI roots (a private CA; the tests' own).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

fn percent_decode(field: &str, s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("--smtp-url: bad percent escape in the {field}"))?;
            out.push(h);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("--smtp-url: the {field} is not UTF-8"))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl SmtpConfig {
    /// Reads `smtp://[user[:pass]@]host[:port]` (STARTTLS, default port
    /// 587), `smtps://…` (implicit TLS, 465) or `smtp+plain://…` (no TLS,
    /// 25; loopback hosts only); user and password percent-decoded. `from`
    /// is the sender address. Errors name the flag and what is wrong, never
    /// the password.
    pub fn from_url(url: &str, from: &str) -> Result<SmtpConfig, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("--smtp-url: expected smtp://, smtps:// or smtp+plain://")?;
        let (tls, default_port) = match scheme {
            "smtp" => (SmtpTls::Starttls, 587),
            "smtps" => (SmtpTls::Implicit, 465),
            "smtp+plain" => (SmtpTls::None, 25),
            other => {
                return Err(format!(
                    "--smtp-url: scheme {other:?} is not smtp (STARTTLS), smtps (implicit TLS) or smtp+plain (loopback only)"
                ));
            }
        };
        let rest = rest.trim_end_matches('/');
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let (username, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (
                    Some(percent_decode("user", u)?),
                    Some(percent_decode("password", p)?),
                ),
                None => (Some(percent_decode("user", a)?), None),
            },
        };
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, p) = h
                .split_once(']')
                .ok_or("--smtp-url: unclosed [ in the host")?;
            (h.to_string(), p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "/?#@".contains(c))
        {
            return Err(format!("--smtp-url: host {host:?} is not a host name"));
        }
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("--smtp-url: port {p:?} is not 1–65535"))?,
        };
        if tls == SmtpTls::None && !is_loopback(&host) {
            return Err(format!(
                "--smtp-url: smtp+plain (no TLS) only to a loopback host, not {host:?}: use smtp:// (STARTTLS) or smtps://"
            ));
        }
        crate::escalations::check_email("--smtp-from", from).map_err(|e| e.message)?;
        Ok(SmtpConfig {
            host,
            port,
            tls,
            username,
            password,
            from: from.trim().to_string(),
            ca_file: None,
        })
    }
}

/// Email delivery settings.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// First retry delay (doubles per attempt, jittered).
    pub backoff_base: SignedDuration,
    /// Longest retry delay.
    pub backoff_max: SignedDuration,
    /// Attempts before an email is dead.
    pub max_attempts: u32,
    /// One send's limit (connect, TLS, SMTP dialogue).
    pub timeout: Duration,
    /// Emails taken per round, and events fanned out per contact per round.
    pub batch: i64,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            backoff_base: SignedDuration::from_secs(30),
            backoff_max: SignedDuration::from_secs(3600),
            max_attempts: 10,
            timeout: Duration::from_secs(30),
            batch: 200,
        }
    }
}

/// A connection recipe to the SMTP server (lettre, tokio, rustls).
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// A mailer for `cfg`, each send bounded by `timeout`. Errors name what
    /// is wrong (an unreadable CA file, a bad address).
    pub fn new(cfg: &SmtpConfig, timeout: Duration) -> Result<Mailer, String> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| format!("smtp from {:?}: {e}", cfg.from))?;
        let params = || -> Result<TlsParameters, String> {
            let mut b = TlsParameters::builder(cfg.host.clone());
            if let Some(f) = &cfg.ca_file {
                let pem =
                    std::fs::read(f).map_err(|e| format!("smtp ca_file {}: {e}", f.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| format!("smtp ca_file {}: {e}", f.display()))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls().map_err(|e| format!("smtp TLS: {e}"))
        };
        let tls = match cfg.tls {
            SmtpTls::Starttls => Tls::Required(params()?),
            SmtpTls::Implicit => Tls::Wrapper(params()?),
            SmtpTls::None => {
                if !is_loopback(&cfg.host) {
                    return Err(format!(
                        "smtp tls = none only to a loopback host, not {:?}",
                        cfg.host
                    ));
                }
                Tls::None
            }
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.clone())
            .port(cfg.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some(u) = &cfg.username {
            b = b.credentials(Credentials::new(
                u.clone(),
                cfg.password.clone().unwrap_or_default(),
            ));
        }
        Ok(Mailer {
            transport: b.build(),
            from,
        })
    }

    /// Sends one message to `to`.
    pub async fn send(&self, to: &str, message_id: &str, email: &Email) -> Result<(), String> {
        let to: Mailbox = to.parse().map_err(|e| format!("address {to:?}: {e}"))?;
        let text = email.text().map_err(|e| e.to_string())?;
        let html = email.html().map_err(|e| e.to_string())?;
        let m = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject())
            .message_id(Some(message_id.to_string()))
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| format!("building the message: {e}"))?;
        self.transport
            .send(m)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

/// The email for event `e` (the content per kind; the rendering is
/// `patchbay_render::Email`'s).
pub fn compose(e: &Event) -> Email {
    let footer = format!("{} {}", e.id, e.kind);
    let mut facts = vec![
        ("Event".to_string(), e.kind.as_str().to_string()),
        ("Subject".to_string(), e.subject.clone()),
        ("At".to_string(), e.at.to_string()),
        ("By".to_string(), e.actor.clone()),
    ];
    match e.kind {
        Kind::ApprovalRequested => {
            let dep = e.deployment.clone().unwrap_or_default();
            let ring = s(&e.data, "ring").unwrap_or_default();
            facts.insert(0, ("Deployment".into(), dep.clone()));
            facts.insert(1, ("Ring".into(), ring.clone()));
            Email {
                subject: format!("[Patchbay] Approval needed: {dep} ring {ring}"),
                heading: format!("Deployment {dep}: ring {ring} waits for your approval"),
                paragraphs: vec![
                    e.summary.clone(),
                    "An approver or admin who neither created nor started the deployment approves or rejects it (four eyes).".into(),
                ],
                facts,
                action: Some(format!(
                    "patchbay deploy approve {dep} --ring {ring} --comment \"…\"   (or: patchbay deploy reject …)"
                )),
                footer,
            }
        }
        Kind::EscalationNotified => {
            let id = s(&e.data, "escalation").unwrap_or_default();
            let chain = s(&e.data, "chain").unwrap_or_default();
            let step = e.data["step"].as_u64().unwrap_or(0) + 1;
            let of = e.data["of"].as_u64().unwrap_or(0);
            facts.insert(0, ("Escalation".into(), id.clone()));
            facts.insert(1, ("Chain".into(), chain.clone()));
            facts.insert(2, ("Step".into(), format!("{step} of {of}")));
            facts[4] = ("Concerns".into(), s(&e.data, "subject").unwrap_or_default());
            Email {
                subject: format!(
                    "[Patchbay] Escalation {id} (step {step} of {of}): {}",
                    e.summary
                ),
                heading: format!("Escalation {id}: nobody has acknowledged this yet"),
                paragraphs: vec![e.summary.clone()],
                facts,
                action: Some(format!(
                    "patchbay escalations ack {chain} {id} --comment \"on it\""
                )),
                footer,
            }
        }
        Kind::ExceptionReview => {
            let mut paragraphs = vec![e.summary.clone()];
            if let Some(list) = e.data.get("expiring").and_then(Value::as_array) {
                for x in list {
                    paragraphs.push(format!(
                        "{} — owner {}, expires {}: {}",
                        s(x, "id").unwrap_or_default(),
                        s(x, "owner").unwrap_or_default(),
                        s(x, "expires_at").unwrap_or_default(),
                        s(x, "reason").unwrap_or_default()
                    ));
                }
            }
            Email {
                subject: "[Patchbay] Weekly exception review".into(),
                heading: "Exceptions to review this week".into(),
                paragraphs,
                facts,
                action: Some("patchbay exceptions review".into()),
                footer,
            }
        }
        Kind::DeploymentCompleted
        | Kind::DeploymentHalted
        | Kind::DeploymentAborted
        | Kind::DeploymentRolledBack
        | Kind::DeploymentRollbackFailed => {
            let dep = e.deployment.clone().unwrap_or_default();
            let outcome = e
                .kind
                .as_str()
                .trim_start_matches("deployment.")
                .replace('_', " ");
            facts.insert(0, ("Deployment".into(), dep.clone()));
            facts.insert(1, ("Outcome".into(), outcome.clone()));
            Email {
                subject: format!("[Patchbay] Deployment {dep} {outcome}"),
                heading: format!("Deployment {dep}: {outcome}"),
                paragraphs: vec![e.summary.clone()],
                facts,
                action: Some(format!(
                    "patchbay changes show {dep}   (the change record, with each host's outcome)"
                )),
                footer,
            }
        }
        Kind::DeploymentImpactNotice | Kind::DeploymentImpactSummary => {
            crate::impact::compose_email(e, facts, footer)
        }
        _ => Email {
            subject: format!("[Patchbay] {}: {}", e.kind, e.summary),
            heading: e.summary.clone(),
            paragraphs: vec![],
            facts,
            action: None,
            footer,
        },
    }
}

/// Per ring, its hosts' job outcomes (`canary: 2 succeeded, 1 rolled_back`):
/// the deployment summary's facts.
pub fn rollout_facts(r: &patchbay_core::rollout::Rollout) -> Vec<(String, String)> {
    r.rings
        .iter()
        .map(|ring| {
            let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
            for j in &ring.jobs {
                let st = serde_json::to_value(j.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("{:?}", j.state));
                *counts.entry(st).or_default() += 1;
            }
            let text = if counts.is_empty() {
                "no hosts".to_string()
            } else {
                counts
                    .iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            (format!("Ring {}", ring.spec.name), text)
        })
        .collect()
}

fn email_out(contact: &str, d: &EmailRow) -> EmailOut {
    EmailOut {
        contact: contact.to_string(),
        event_id: format!("evt_{}", d.event_id),
        message_id: d.message_id.clone(),
        state: d.state.clone(),
        attempts: d.attempts.max(0) as u32,
        next_at: d.next_at.to_string(),
        last_error: d.last_error.clone(),
        delivered_at: d.delivered_at.map(|t| t.to_string()),
    }
}

/// What one email round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailReport {
    /// Accepted by the server.
    pub sent: u64,
    /// Failed, of which:
    pub failed: u64,
    /// … to be retried,
    pub retried: u64,
    /// … dead.
    pub dead: u64,
}

impl App {
    /// Moves every contact's new outbox events into email deliveries (one
    /// transaction); returns the deliveries created.
    pub async fn emails_fan_out(&self) -> Result<usize, AppError> {
        let batch = self.config().email.batch.max(1);
        let now = self.now();
        let mut tx = self.change_by_system(SystemActor::Email).await?;
        let contacts = tx.contacts().await?;
        let (mut created, mut moved) = (0, false);
        for c in &contacts {
            let pending =
                outbox::Pending::read(&mut tx, Consumer::Contact(c.id), c.contact.cursor, batch)
                    .await?;
            for (row, ev) in pending.events() {
                let wanted = escalation::addressed_to(ev, Channel::Email, &c.contact.name)
                    || crate::impact::addressed_to(ev, &c.contact.name)
                    || c.contact.events.iter().any(|k| {
                        k == ev.kind.as_str() || (k == "*" && ev.kind != Kind::EscalationNotified)
                    });
                if !wanted {
                    continue;
                }
                let host = self
                    .config()
                    .smtp
                    .as_ref()
                    .map(|s| s.host.clone())
                    .unwrap_or_else(|| "patchbay.invalid".into());
                let d = EmailRow {
                    id: 0,
                    contact_id: c.id,
                    event_id: row.id,
                    message_id: format!(
                        "<{}.{}@{host}>",
                        ev.id,
                        hex::encode(&crate::random32()[..12])
                    ),
                    state: email_state::PENDING.into(),
                    attempts: 0,
                    next_at: now,
                    created_at: now,
                    last_at: None,
                    last_error: None,
                    delivered_at: None,
                };
                if tx.insert_email(&d).await? {
                    created += 1;
                }
            }
            moved |= pending.advance(&mut tx).await?;
        }
        if moved {
            tx.commit_unaudited("email fan-out: delivery bookkeeping of audited events")
                .await?;
        }
        Ok(created)
    }

    /// Sends the due emails (one round, at most [`EmailConfig::batch`]) one
    /// after the other and stores each outcome as it comes.
    pub async fn emails_deliver(&self, mailer: &Mailer) -> Result<EmailReport, AppError> {
        let cfg = self.config().email.clone();
        let (due, contacts) = {
            let mut r = self.store.read().await?;
            (
                r.due_emails(self.now(), cfg.batch.max(1)).await?,
                r.contacts().await?,
            )
        };
        let mut rep = EmailReport::default();
        for (d, row) in due {
            let Some(c) = contacts.iter().find(|c| c.id == d.contact_id) else {
                continue;
            };
            let e = &row.event;
            let ev = Event::from_outbox(row.id, e.at, &e.kind, &e.actor, &e.subject, &e.payload);
            let mut email = compose(&ev);
            if matches!(
                ev.kind,
                Kind::DeploymentCompleted
                    | Kind::DeploymentHalted
                    | Kind::DeploymentAborted
                    | Kind::DeploymentRolledBack
                    | Kind::DeploymentRollbackFailed
            ) && let Some(dep) = &ev.deployment
            {
                // The summary: each ring's outcomes as they are now.
                let caller = SystemActor::Email.caller();
                if let Ok(d) = self
                    .deploy_show(&caller, dep, &crate::RequestCtx::default())
                    .await
                    && let Some(r) = &d.rollout
                {
                    email.facts.splice(2..2, rollout_facts(r));
                }
            }
            let r = mailer.send(&c.contact.email, &d.message_id, &email).await;
            let at = self.now();
            let n = d.attempts.max(0) as u32 + 1;
            let (st, next_at, err) = match r {
                Ok(()) => {
                    rep.sent += 1;
                    (email_state::SENT, at, None)
                }
                Err(err) => {
                    rep.failed += 1;
                    tracing::debug!(contact = %c.contact.name, message = %d.message_id, attempt = n, error = %err, "email failed");
                    if n >= cfg.max_attempts.max(1) {
                        rep.dead += 1;
                        tracing::warn!(contact = %c.contact.name, message = %d.message_id, error = %err, "email dead after {n} attempts");
                        (email_state::DEAD, at, Some(err))
                    } else {
                        rep.retried += 1;
                        let unit: f64 = rand::random();
                        (
                            email_state::PENDING,
                            at + backoff_delay(n, cfg.backoff_base, cfg.backoff_max, unit),
                            Some(err),
                        )
                    }
                }
            };
            let err: Option<String> = err.map(|e| e.chars().take(500).collect());
            let mut tx = self.change_by_system(SystemActor::Email).await?;
            tx.record_email_attempt(d.id, at, st, next_at, err.as_deref())
                .await?;
            tx.commit_unaudited("email delivery attempt (the delivery log)")
                .await?;
        }
        Ok(rep)
    }

    /// The email delivery log, newest first, of one contact or all.
    pub async fn email_deliveries(
        &self,
        caller: &crate::Caller,
        contact: Option<&str>,
        limit: i64,
        ctx: &crate::RequestCtx,
    ) -> Result<Vec<EmailOut>, AppError> {
        self.require(caller, patchbay_core::auth::Action::WriteAssets, ctx)
            .await?;
        let mut r = self.store.read().await?;
        let contacts = r.contacts().await?;
        let id = match contact {
            None => None,
            Some(n) => Some(
                contacts
                    .iter()
                    .find(|c| c.contact.name == n)
                    .map(|c| c.id)
                    .ok_or_else(|| AppError::not_found(format!("no contact named {n:?}")))?,
            ),
        };
        let rows = r.emails(id, limit.clamp(1, 10_000)).await?;
        Ok(rows
            .iter()
            .map(|d| {
                let name = contacts
                    .iter()
                    .find(|c| c.id == d.contact_id)
                    .map(|c| c.contact.name.as_str())
                    .unwrap_or("");
                email_out(name, d)
            })
            .collect())
    }

    /// Counts for metrics: pending emails, the oldest one's age (seconds),
    /// dead ones.
    pub async fn email_queue(&self) -> Result<(i64, f64, i64), AppError> {
        let (pending, oldest, dead) = self.store.read().await?.email_stats().await?;
        let age = oldest
            .map(|t: Timestamp| self.now().duration_since(t).as_secs_f64().max(0.0))
            .unwrap_or(0.0);
        Ok((pending, age, dead))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_read_with_their_tls_mode_and_redact_the_password() {
        let c = SmtpConfig::from_url("smtp://ops%40x:p%3Ass@mail.example.net", "pb@example.net")
            .unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.tls),
            ("mail.example.net", 587, SmtpTls::Starttls)
        );
        assert_eq!(c.username.as_deref(), Some("ops@x"));
        assert_eq!(c.password.as_deref(), Some("p:ss"));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("p:ss") && dbg.contains("<redacted>"), "{dbg}");
        let c = SmtpConfig::from_url("smtps://mail.example.net:2465", "pb@example.net").unwrap();
        assert_eq!((c.port, c.tls), (2465, SmtpTls::Implicit));
        let c = SmtpConfig::from_url("smtp+plain://127.0.0.1:2525", "pb@example.net").unwrap();
        assert_eq!((c.port, c.tls), (2525, SmtpTls::None));
        for (url, want) in [
            ("smtp+plain://mail.example.net", "loopback"),
            ("http://x", "scheme"),
            ("smtp://x:0", "port"),
            ("smtp://x:99999", "port"),
            ("smtp://a b", "host"),
            ("smtp://u:%zz@x", "percent"),
        ] {
            let e = SmtpConfig::from_url(url, "pb@example.net").unwrap_err();
            assert!(e.contains(want) && e.contains("--smtp-url"), "{url}: {e}");
        }
        let e = SmtpConfig::from_url("smtp://u:secret@x", "not an address").unwrap_err();
        assert!(e.contains("--smtp-from") && !e.contains("secret"), "{e}");
        let e = SmtpConfig::from_url("smtp://u:secret@x:bad", "a@b.c").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn an_approval_request_names_the_deployment_ring_and_the_command() {
        let e = Event::from_outbox(
            5,
            "2026-12-06T17:00:00Z".parse().unwrap(),
            "approval.requested",
            "system:rollout-driver",
            "deployment:DEP-1",
            &serde_json::json!({"ring": "canary", "message": "DEP-1: ring canary waits for approval"}),
        );
        let m = compose(&e);
        assert_eq!(m.subject(), "[Patchbay] Approval needed: DEP-1 ring canary");
        let t = m.text().unwrap();
        assert!(
            t.contains("patchbay deploy approve DEP-1 --ring canary"),
            "{t}"
        );
    }
}
