//! Webhooks, the pure part: the signature scheme, retry backoff,
//! subscription filters and payload templates.
//!
//! **Signature** (as Stripe and Slack do): the signed string is
//! `"{t}.{body}"`, `t` the sending time in Unix seconds, signed with
//! HMAC-SHA256 under the subscription's secret; the header is
//! `Patchbay-Signature: t={t},v1={hex}`. A receiver recomputes the MAC over
//! the raw body, compares in constant time, and refuses a `t` more than
//! [`REPLAY_WINDOW_SECS`] from its own clock (replays of an old, captured
//! request fail), then deduplicates by the `Patchbay-Delivery` id (a retried
//! delivery keeps its id). [`verify`] is that receiver check.
//!
//! **Backoff**: attempt *n* (1-based) failed → next try after
//! `min(max, base·2^(n−1))`, of which the upper half is jittered
//! ([`backoff_delay`], "equal jitter"); the random unit is an argument.
//!
//! **Templates** ([`Template`]): the same typed [`Event`] rendered as generic
//! JSON, Slack Block Kit, a Microsoft Teams Adaptive Card (Workflows
//! webhook), PagerDuty Events v2, a Jira issue and a ServiceNow change
//! request; [`render`] returns `None` for an event a template does not carry
//! (PagerDuty only pages on a halt or an SLA breach and resolves on
//! completion or rollback).

use crate::event::{Event, Kind};
use hmac::{Hmac, KeyInit, Mac};
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How far a signature's timestamp may be from the receiver's clock, either
/// way (five minutes, as Stripe and Slack).
pub const REPLAY_WINDOW_SECS: i64 = 300;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "Patchbay-Signature";
/// The unique delivery id header (the same across retries of one delivery).
pub const DELIVERY_HEADER: &str = "Patchbay-Delivery";
/// The event kind header.
pub const EVENT_HEADER: &str = "Patchbay-Event";

type HmacSha256 = Hmac<sha2_next::Sha256>;

fn mac(secret: &[u8], t: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length: this cannot fail.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `Patchbay-Signature` header value for `body` sent at `t` (Unix
/// seconds) under `secret`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let tag = mac(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(tag))
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=…,v1=…`.
    #[error("malformed Patchbay-Signature header: {0}")]
    Malformed(String),
    /// The timestamp is outside the replay window.
    #[error(
        "signature timestamp {t} is {skew}s from now, outside the {REPLAY_WINDOW_SECS}s window"
    )]
    Stale {
        /// The header's timestamp.
        t: i64,
        /// Its distance from now, in seconds.
        skew: i64,
    },
    /// No `v1` MAC matches.
    #[error("signature does not match the body")]
    Mismatch,
}

/// Checks a `Patchbay-Signature` header against the raw `body`, at `now`
/// (Unix seconds). Several `v1=` values are accepted (a secret being
/// rotated); any one matching suffices. Never panics on any input.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64) -> Result<(), SignatureError> {
    let mut t = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| SignatureError::Malformed(format!("no '=' in {part:?}")))?;
        match k {
            "t" => {
                t = Some(
                    v.parse::<i64>()
                        .map_err(|_| SignatureError::Malformed(format!("t={v:?}")))?,
                )
            }
            "v1" => tags
                .push(hex::decode(v).map_err(|_| SignatureError::Malformed(format!("v1={v:?}")))?),
            _ => {}
        }
    }
    let t = t.ok_or_else(|| SignatureError::Malformed("no t=".into()))?;
    if tags.is_empty() {
        return Err(SignatureError::Malformed("no v1=".into()));
    }
    let skew = now.saturating_sub(t);
    if skew.saturating_abs() > REPLAY_WINDOW_SECS {
        return Err(SignatureError::Stale { t, skew });
    }
    for tag in tags {
        if mac(secret, t, body).verify_slice(&tag).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

/// The wait before the next try after failed attempt `attempt` (1-based):
/// `d = min(max, base·2^(attempt−1))`, then `d/2 + unit·d/2` with `unit` in
/// `[0, 1)` drawn by the caller (clamped).
pub fn backoff_delay(
    attempt: u32,
    base: SignedDuration,
    max: SignedDuration,
    unit: f64,
) -> SignedDuration {
    let base_ms = base.as_millis().max(1) as f64;
    let max_ms = max.as_millis().max(1) as f64;
    let exp = attempt.saturating_sub(1).min(62) as i32;
    let d = (base_ms * 2f64.powi(exp)).min(max_ms);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    SignedDuration::from_millis((d / 2.0 + unit * d / 2.0) as i64)
}

/// What a subscription receives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Event kinds (`deployment.halted`, …); `*` is every kind. Empty means
    /// every kind.
    #[serde(default)]
    pub events: Vec<String>,
    /// Only events of this deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Only events naming this policy group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Only events naming this tier (`P0`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
}

impl Filter {
    /// Checks the kind names: each is a kind, a reserved kind or `*`.
    pub fn validate(&self) -> Result<(), String> {
        for e in &self.events {
            if e != "*" && Kind::parse(e).is_none() && !Kind::RESERVED.contains(&e.as_str()) {
                return Err(format!(
                    "unknown event kind {e:?} (one of: *, {})",
                    Kind::ALL
                        .iter()
                        .map(|k| k.as_str())
                        .chain(Kind::RESERVED)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Whether `e` passes: its kind is listed (or `*`), and each scope the
    /// filter sets is one the event names (an event that names no group
    /// does not pass a group filter).
    pub fn matches(&self, e: &Event) -> bool {
        let kind_ok = self.events.is_empty()
            || self.events.iter().any(|k| k == "*" || k == e.kind.as_str())
            // A test delivery reaches every subscription.
            || e.kind == Kind::WebhookTest;
        let scope = |want: &Option<String>, have: &Option<String>| match want {
            None => true,
            Some(w) => have.as_deref() == Some(w.as_str()),
        };
        kind_ok
            && scope(&self.deployment, &e.deployment)
            && scope(&self.group, &e.group)
            && scope(&self.tier, &e.tier)
    }
}

/// A payload template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Template {
    /// The event envelope as JSON.
    Generic,
    /// Slack incoming webhook, Block Kit.
    Slack,
    /// Microsoft Teams via a Workflows webhook: an Adaptive Card message.
    Teams,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// Jira Cloud REST v2 create-issue body (one issue per deployment).
    Jira,
    /// ServiceNow Change Management API (a normal change per deployment).
    Servicenow,
}

impl Template {
    /// Every template.
    pub const ALL: [Template; 6] = [
        Template::Generic,
        Template::Slack,
        Template::Teams,
        Template::Pagerduty,
        Template::Jira,
        Template::Servicenow,
    ];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Template::Generic => "generic",
            Template::Slack => "slack",
            Template::Teams => "teams",
            Template::Pagerduty => "pagerduty",
            Template::Jira => "jira",
            Template::Servicenow => "servicenow",
        }
    }

    /// The template named `s`.
    pub fn parse(s: &str) -> Result<Template, String> {
        Template::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown template {s:?} (one of: {})",
                    Template::ALL.map(|t| t.as_str()).join(", ")
                )
            })
    }
}

/// Most auth headers a subscription may carry (a credential takes one or
/// two; the bound keeps a stored row small).
pub const AUTH_HEADERS_MAX: usize = 8;
/// The longest auth header value (a JWT bearer token fits comfortably).
pub const AUTH_HEADER_VALUE_MAX: usize = 8192;

/// Checks a subscription's auth headers (name, value): at most
/// [`AUTH_HEADERS_MAX`], each name an HTTP token (RFC 9110 §5.6.2) given
/// once, not one Patchbay sets itself (`Patchbay-*`, `Content-Type`, …),
/// each value 1–[`AUTH_HEADER_VALUE_MAX`] visible ASCII characters or
/// spaces (no CR or LF: nothing can be smuggled into the request). An
/// error names the header, never its value (a secret).
pub fn validate_auth_headers(headers: &[(String, String)]) -> Result<(), String> {
    if headers.len() > AUTH_HEADERS_MAX {
        return Err(format!(
            "{} auth headers: at most {AUTH_HEADERS_MAX}",
            headers.len()
        ));
    }
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let mut seen = std::collections::BTreeSet::new();
    for (name, value) in headers {
        if name.is_empty() || name.len() > 64 || !name.chars().all(tchar) {
            return Err(format!(
                "auth header name {name:?}: must be 1–64 characters of an HTTP header name"
            ));
        }
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("patchbay-")
            || [
                "content-type",
                "content-length",
                "transfer-encoding",
                "host",
                "connection",
                "te",
                "upgrade",
            ]
            .contains(&lower.as_str())
        {
            return Err(format!(
                "auth header {name:?}: Patchbay sets this header itself"
            ));
        }
        if !seen.insert(lower) {
            return Err(format!("auth header {name:?}: given twice"));
        }
        if value.is_empty()
            || value.len() > AUTH_HEADER_VALUE_MAX
            || !value.chars().all(|c| c == ' ' || c.is_ascii_graphic())
        {
            return Err(format!(
                "auth header {name:?}: the value must be 1–{AUTH_HEADER_VALUE_MAX} visible \
                 ASCII characters or spaces (value not shown: it is a secret)"
            ));
        }
    }
    Ok(())
}

/// Per-subscription template settings (the PagerDuty routing key, the Jira
/// project).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateOptions {
    /// PagerDuty integration (routing) key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    /// Jira project key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

impl std::fmt::Debug for TemplateOptions {
    // The routing key is PagerDuty's credential: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateOptions")
            .field(
                "routing_key",
                &self.routing_key.as_ref().map(|_| "<redacted>"),
            )
            .field("project", &self.project)
            .finish()
    }
}

impl Template {
    /// The least spacing between two requests of one subscription of this
    /// template: Slack allows one message per second per incoming webhook
    /// (<https://api.slack.com/docs/rate-limits>, "Incoming webhooks");
    /// the others are not paced.
    pub fn min_interval(self) -> Option<SignedDuration> {
        match self {
            Template::Slack => Some(SLACK_MIN_INTERVAL),
            _ => None,
        }
    }
}

/// Slack's rate limit for an incoming webhook: one message per second.
pub const SLACK_MIN_INTERVAL: SignedDuration = SignedDuration::from_secs(1);

/// The longest `Retry-After` honoured (a longer one is cut to this).
pub const RETRY_AFTER_MAX: SignedDuration = SignedDuration::from_hours(24);

/// The wait a `Retry-After` header asks for at `now` (RFC 9110 §10.2.3):
/// delay-seconds (`120`) or an HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`,
/// a date in the past is no wait). `None` for anything else; at most
/// [`RETRY_AFTER_MAX`]. Never panics.
pub fn retry_after(value: &str, now: jiff::Timestamp) -> Option<SignedDuration> {
    let v = value.trim();
    let d = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        SignedDuration::from_secs(
            v.parse::<i64>()
                .unwrap_or(i64::MAX)
                .min(RETRY_AFTER_MAX.as_secs()),
        )
    } else {
        let at = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
        at.duration_since(now).max(SignedDuration::ZERO)
    };
    Some(d.min(RETRY_AFTER_MAX))
}

/// Slack's limit of blocks per message, and of a section's text.
pub const SLACK_MAX_BLOCKS: usize = 50;
/// Slack's limit of a section block's text.
pub const SLACK_MAX_SECTION_TEXT: usize = 3000;

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Slack mrkdwn's escaping: `&`, `<` and `>` (what else would start a
/// link, a mention or an entity; <https://api.slack.com/reference/surfaces/formatting#escaping>).
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn s_of(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(x) => x.to_string(),
    }
}

fn pkg_changes(v: Option<&Value>) -> String {
    let parts: Vec<String> = v
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "{} {} → {}",
                s_of(p, "name"),
                p.get("from").and_then(Value::as_str).unwrap_or("(none)"),
                p.get("to").and_then(Value::as_str).unwrap_or("(removed)")
            )
        })
        .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

/// Per host, one plain-text line of an impact notice
/// (`deployment.impact_notice`: window, packages, services, reboot,
/// interruption estimate) or summary (`deployment.impact_summary`: state,
/// changes, rollback, reboot, CVEs closed); empty for other kinds.
pub fn impact_lines(e: &Event) -> Vec<String> {
    let assets = e.data.get("assets").and_then(Value::as_array);
    let Some(assets) = assets else { return vec![] };
    match e.kind {
        Kind::DeploymentImpactNotice => assets
            .iter()
            .map(|a| {
                let w = a.get("window").cloned().unwrap_or_default();
                let sv = a.get("services").cloned().unwrap_or_default();
                let services = if sv["known"].as_bool() == Some(true) {
                    let n: Vec<&str> = sv["names"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    if n.is_empty() {
                        "none".to_string()
                    } else {
                        n.join(", ")
                    }
                } else {
                    "unknown until rehearsed".to_string()
                };
                let rb = a.get("reboot").cloned().unwrap_or_default();
                let int = a.get("interruption").cloned().unwrap_or_default();
                format!(
                    "{}: {} ({}) · packages: {} · services: {} · reboot: {} · ≈{} s (estimate)",
                    s_of(a, "asset"),
                    s_of(&w, "opens_local"),
                    s_of(&w, "zone"),
                    pkg_changes(a.get("packages")),
                    services,
                    if rb["needed"].as_bool() == Some(true) {
                        format!("yes ({})", s_of(&rb, "source"))
                    } else {
                        "no".into()
                    },
                    s_of(&int, "seconds"),
                )
            })
            .collect(),
        Kind::DeploymentImpactSummary => assets
            .iter()
            .map(|a| {
                let closed: Vec<&str> = a["closed"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let mut l = format!(
                    "{}: {} · changed: {} · rebooted: {} · closed: {}",
                    s_of(a, "asset"),
                    s_of(a, "state"),
                    pkg_changes(a.get("changed")),
                    if a["rebooted"].as_bool() == Some(true) {
                        "yes"
                    } else {
                        "no"
                    },
                    if closed.is_empty() {
                        "none".to_string()
                    } else {
                        closed.join(", ")
                    },
                );
                if let Some(r) = a.get("rollback").and_then(Value::as_str) {
                    l.push_str(&format!(" · rollback: {r}"));
                }
                if let Some(r) = a.get("error").and_then(Value::as_str) {
                    l.push_str(&format!(" · failure: {r}"));
                }
                l
            })
            .collect(),
        _ => vec![],
    }
}

/// The body `template` makes of `e`, or `None` when the template carries no
/// such event.
pub fn render(template: Template, e: &Event, opts: &TemplateOptions) -> Option<Value> {
    let title = format!("Patchbay: {}", e.kind);
    match template {
        Template::Generic => Some(serde_json::to_value(e).unwrap_or(Value::Null)),
        Template::Slack => {
            let mut blocks = vec![
                json!({"type": "header", "text": {"type": "plain_text", "text": clip(&title, 150)}}),
                json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&slack_escape(&e.summary), SLACK_MAX_SECTION_TEXT)}}),
                json!({"type": "context", "elements": [
                    {"type": "mrkdwn", "text": clip(&format!("{} · {} · {}", e.subject, e.actor, e.at), SLACK_MAX_SECTION_TEXT)}
                ]}),
            ];
            // Impact notices and summaries: one section per host (at most
            // what Slack allows), values escaped for mrkdwn.
            let lines = impact_lines(e);
            let room = SLACK_MAX_BLOCKS - blocks.len();
            for (i, l) in lines.iter().enumerate().take(room) {
                let text = if i + 1 == room && lines.len() > room {
                    format!("… and {} more host(s)", lines.len() - i)
                } else {
                    slack_escape(l)
                };
                blocks.insert(
                    2 + i,
                    json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&text, SLACK_MAX_SECTION_TEXT)}}),
                );
            }
            debug_assert!(blocks.len() <= SLACK_MAX_BLOCKS);
            Some(json!({"text": clip(&e.summary, 3000), "blocks": blocks}))
        }
        Template::Teams => {
            let mut body = vec![
                json!({"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": title, "wrap": true}),
                json!({"type": "TextBlock", "text": e.summary, "wrap": true}),
            ];
            for l in impact_lines(e) {
                body.push(json!({"type": "TextBlock", "text": l, "wrap": true}));
            }
            body.push(json!({"type": "FactSet", "facts": [
                {"title": "Subject", "value": e.subject},
                {"title": "Actor", "value": e.actor},
                {"title": "At", "value": e.at.to_string()},
            ]}));
            Some(json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body
                }
            }]
            }))
        }
        Template::Pagerduty => {
            if e.kind == Kind::SlaBreached {
                return Some(pagerduty_sla_breach(e, opts));
            }
            if e.kind == Kind::SlaResolved {
                return Some(pagerduty_sla_resolve(e, opts));
            }
            let action = match e.kind {
                Kind::DeploymentHalted | Kind::DeploymentRollbackFailed => "trigger",
                Kind::DeploymentCompleted | Kind::DeploymentRolledBack => "resolve",
                _ => return None,
            };
            let dep = e.deployment.clone().unwrap_or_else(|| e.subject.clone());
            let mut body = json!({
                "routing_key": opts.routing_key.clone().unwrap_or_default(),
                "event_action": action,
                "dedup_key": clip(&format!("patchbay-deployment-{dep}"), 255),
            });
            if action == "trigger" {
                body["payload"] = json!({
                    "summary": clip(&e.summary, 1024),
                    "source": "patchbay",
                    "severity": "critical",
                    "timestamp": e.at.to_string(),
                    "component": dep,
                    "class": e.kind.as_str(),
                    "custom_details": e.data,
                });
            }
            Some(body)
        }
        Template::Jira => {
            let dep = e.deployment.clone().unwrap_or_default();
            if e.kind == Kind::DeploymentCreated {
                return Some(json!({"fields": {
                    "project": {"key": opts.project.clone().unwrap_or_else(|| "OPS".into())},
                    "summary": clip(&format!("Patch deployment {dep}"), 255),
                    "description": format!("{}\n\nCreated by {} at {}.", e.summary, e.actor, e.at),
                    "issuetype": {"name": "Task"},
                    "labels": ["patchbay", format!("patchbay-{dep}")],
                }}));
            }
            lifecycle_step(e.kind)?;
            // A comment on the deployment's issue (POST …/issue/{key}/comment).
            Some(
                json!({"body": clip(&format!("{}: {} ({}, {})", e.kind, e.summary, e.actor, e.at), 32_000)}),
            )
        }
        Template::Servicenow => {
            let dep = e.deployment.clone().unwrap_or_default();
            if e.kind == Kind::DeploymentCreated {
                return Some(json!({
                    "short_description": clip(&format!("Patch deployment {dep}"), 160),
                    "description": e.summary,
                    "correlation_id": format!("patchbay-{dep}"),
                    "correlation_display": "Patchbay",
                    "category": "Software",
                }));
            }
            let note = format!("{}: {} ({}, {})", e.kind, e.summary, e.actor, e.at);
            // PATCH …/change/{sys_id}: states of a normal change: -1
            // Implement, 3 Closed.
            Some(match lifecycle_step(e.kind)? {
                Step::Progress => json!({"state": "-1", "work_notes": note}),
                Step::Completed => json!({"state": "3", "close_code": "successful",
                    "close_notes": note, "work_notes": note}),
                Step::RolledBack => json!({"state": "3", "close_code": "unsuccessful",
                    "close_notes": format!("Rolled back. {note}"), "work_notes": note}),
            })
        }
    }
}

/// Where a lifecycle event leaves a deployment's ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Progress,
    Completed,
    RolledBack,
}

fn lifecycle_step(k: Kind) -> Option<Step> {
    match k {
        Kind::DeploymentRingPassed | Kind::DeploymentHalted => Some(Step::Progress),
        Kind::DeploymentCompleted => Some(Step::Completed),
        Kind::DeploymentRolledBack => Some(Step::RolledBack),
        _ => None,
    }
}

/// How a ticketing template's body is sent: the method and the path under
/// the subscription's URL (the instance's base URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `POST` or `PATCH`.
    pub method: &'static str,
    /// Appended to the subscription's URL.
    pub path: String,
    /// The deployment whose ticket this is, and whether this request
    /// creates it (its answer carries the id to keep).
    pub deployment: String,
    /// This request creates the ticket.
    pub creates: bool,
}

/// The route of a Jira / ServiceNow request for `e` (other templates POST
/// to the URL as is: `None`). `external` is the id kept from the create
/// call's answer; a follow-up without it is an error (retried: the create
/// may not be delivered yet). Jira: `POST /rest/api/2/issue`, then `POST
/// /rest/api/2/issue/{key}/comment`; ServiceNow: `POST
/// /api/sn_chg_rest/change/normal`, then `PATCH
/// /api/sn_chg_rest/change/{sys_id}`.
pub fn route(
    template: Template,
    e: &Event,
    external: Option<&str>,
) -> Option<Result<Route, String>> {
    let (create, follow) = match template {
        Template::Jira => ("/rest/api/2/issue", "/rest/api/2/issue/{}/comment"),
        Template::Servicenow => (
            "/api/sn_chg_rest/change/normal",
            "/api/sn_chg_rest/change/{}",
        ),
        _ => return None,
    };
    let deployment = e.deployment.clone().unwrap_or_default();
    if e.kind == Kind::DeploymentCreated {
        return Some(Ok(Route {
            method: "POST",
            path: create.into(),
            deployment,
            creates: true,
        }));
    }
    let Some(id) = external else {
        return Some(Err(format!(
            "no {} record created yet for deployment {deployment:?}",
            template.as_str()
        )));
    };
    // The id came from the receiver: escape it into the path.
    let id: String = url_escape(id);
    let method = if template == Template::Jira {
        "POST"
    } else {
        "PATCH"
    };
    Some(Ok(Route {
        method,
        path: follow.replace("{}", &id),
        deployment,
        creates: false,
    }))
}

/// Percent-escapes all but `A–Z a–z 0–9 - _ ~` (dots too: `..` must not
/// become a path segment).
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The id to keep from a create call's answer: Jira's `key`, ServiceNow's
/// `result.sys_id` (a string, or `{"value": …}` with display values on).
pub fn external_id(template: Template, answer: &Value) -> Option<String> {
    let v = match template {
        Template::Jira => answer.get("key")?,
        Template::Servicenow => answer.get("result")?.get("sys_id")?,
        _ => return None,
    };
    let v = v.get("value").unwrap_or(v);
    v.as_str()
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .map(str::to_string)
}

/// PagerDuty for `sla.breached`: a breach concerns a finding, not a
/// deployment, so it pages under its own `dedup_key`,
/// `patchbay-sla-<finding id>` (one incident per finding, however often the
/// event is sent again); severity `critical` for a P0 finding, else `error`.
/// `sla.resolved` (the finding fixed, or an exception granted) resolves it
/// ([`pagerduty_sla_resolve`]).
fn pagerduty_sla_breach(e: &Event, opts: &TemplateOptions) -> Value {
    let severity = if e.tier.as_deref() == Some("P0") {
        "critical"
    } else {
        "error"
    };
    let mut payload = json!({
        "summary": clip(&e.summary, 1024),
        "source": "patchbay",
        "severity": severity,
        "timestamp": e.at.to_string(),
        "class": e.kind.as_str(),
        "custom_details": e.data,
    });
    if let Some(asset) = e.data.get("asset").and_then(Value::as_str) {
        payload["component"] = json!(asset);
    }
    if let Some(g) = &e.group {
        payload["group"] = json!(g);
    }
    json!({
        "routing_key": opts.routing_key.clone().unwrap_or_default(),
        "event_action": "trigger",
        "dedup_key": sla_dedup_key(e),
        "payload": payload,
    })
}

/// The `dedup_key` of a finding's SLA incident: `patchbay-sla-<finding id>`.
fn sla_dedup_key(e: &Event) -> String {
    let finding = e.subject.strip_prefix("finding:").unwrap_or(&e.subject);
    clip(&format!("patchbay-sla-{finding}"), 255)
}

/// PagerDuty for `sla.resolved`: resolves the incident `sla.breached`
/// triggered (the same `dedup_key`; a resolve carries no payload).
fn pagerduty_sla_resolve(e: &Event, opts: &TemplateOptions) -> Value {
    json!({
        "routing_key": opts.routing_key.clone().unwrap_or_default(),
        "event_action": "resolve",
        "dedup_key": sla_dedup_key(e),
    })
}

#[cfg(test)]
mod tests {
    /// An impact notice's host lines reach Slack escaped (a service name is
    /// the agent's word) and Teams as text blocks; other kinds get none.
    #[test]
    fn impact_notices_render_their_hosts_escaped() {
        use super::*;
        let e = Event::from_outbox(
            3,
            "2026-12-08T22:00:00Z".parse().unwrap(),
            "deployment.impact_notice",
            "system:duties",
            "deployment:DEP-1",
            &json!({"message": "DEP-1: expected impact on web <@U1>",
                    "owner": "web", "contact": "web",
                    "assets": [{"asset": "h1", "window": {"opens_local": "2026-12-12T23:00:00+01:00[Europe/Berlin]", "zone": "Europe/Berlin"},
                                "packages": [{"name": "nginx", "from": "1.22", "to": "1.24"}],
                                "services": {"known": true, "names": ["<!channel>"]},
                                "reboot": {"needed": false}, "interruption": {"seconds": 10}}]}),
        );
        let lines = impact_lines(&e);
        assert_eq!(
            lines,
            [
                "h1: 2026-12-12T23:00:00+01:00[Europe/Berlin] (Europe/Berlin) · packages: nginx 1.22 → 1.24 · services: <!channel> · reboot: no · ≈10 s (estimate)"
            ]
        );
        let slack = render(Template::Slack, &e, &TemplateOptions::default()).unwrap();
        let text = slack["blocks"].to_string();
        assert!(text.contains("services: &lt;!channel&gt;"), "{text}");
        assert!(text.contains("web &lt;@U1&gt;"), "{text}");
        assert!(
            !text.contains("<!channel>") && !text.contains("<@U1>"),
            "{text}"
        );
        let teams = render(Template::Teams, &e, &TemplateOptions::default()).unwrap();
        let body = &teams["attachments"][0]["content"]["body"];
        assert_eq!(body[2]["text"], lines[0].as_str());
        let other = Event {
            kind: Kind::DeploymentCompleted,
            ..e
        };
        assert!(impact_lines(&other).is_empty());
    }

    #[test]
    fn auth_headers_are_checked_without_echoing_the_value() {
        let h = |n: &str, v: &str| vec![(n.to_string(), v.to_string())];
        assert!(super::validate_auth_headers(&h("Authorization", "Basic dTpw")).is_ok());
        assert!(super::validate_auth_headers(&[]).is_ok());
        for (name, value, want) in [
            (
                "Authorization",
                "Basic s3cr3t\r\nX-Evil: 1",
                "visible ASCII",
            ),
            ("Authorization", "", "visible ASCII"),
            ("Bad Name", "s3cr3t", "HTTP header name"),
            ("", "s3cr3t", "HTTP header name"),
            ("Patchbay-Signature", "s3cr3t", "sets this header itself"),
            ("content-type", "s3cr3t", "sets this header itself"),
        ] {
            let e = super::validate_auth_headers(&h(name, value)).unwrap_err();
            assert!(e.contains(want), "{name:?}: {e}");
            assert!(!e.contains("s3cr3t"), "the value is echoed: {e}");
        }
        let twice = vec![
            ("Authorization".to_string(), "a".to_string()),
            ("authorization".to_string(), "b".to_string()),
        ];
        assert!(
            super::validate_auth_headers(&twice)
                .unwrap_err()
                .contains("twice")
        );
        let many: Vec<_> = (0..9)
            .map(|i| (format!("X-{i}"), "v".to_string()))
            .collect();
        assert!(super::validate_auth_headers(&many).is_err());
    }

    #[test]
    fn template_options_debug_redacts_the_routing_key() {
        let o = super::TemplateOptions {
            routing_key: Some("R0UT1NGKEY".into()),
            project: Some("OPS".into()),
        };
        let d = format!("{o:?}");
        assert!(!d.contains("R0UT1NGKEY") && d.contains("OPS"), "{d}");
    }

    use super::*;
    use proptest::prelude::*;

    /// RFC 4231 test case 2 (key "Jefe"), through the signed-string shape:
    /// HMAC-SHA256("Jefe", "what do ya want for nothing?").
    #[test]
    fn hmac_matches_rfc_4231() {
        let t = 0;
        // "0." ‖ body: recompute the known vector on its exact message instead.
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(sign(b"k", t, b"x").starts_with("t=0,v1="));
    }

    proptest! {
        /// Any body and secret: a signature verifies within the window, and
        /// fails with any body byte changed, another secret, or a time
        /// outside the window. No input panics the verifier.
        #[test]
        fn signatures_verify_and_only_for_what_was_signed(
            secret in proptest::collection::vec(any::<u8>(), 1..64),
            body in proptest::collection::vec(any::<u8>(), 0..512),
            t in 1_000_000_000i64..3_000_000_000,
            skew in -REPLAY_WINDOW_SECS..=REPLAY_WINDOW_SECS,
            flip in any::<prop::sample::Index>(),
        ) {
            let h = sign(&secret, t, &body);
            prop_assert_eq!(verify(&secret, &h, &body, t + skew), Ok(()));
            if !body.is_empty() {
                let mut b = body.clone();
                let i = flip.index(b.len());
                b[i] ^= 1;
                prop_assert_eq!(verify(&secret, &h, &b, t), Err(SignatureError::Mismatch));
            }
            let mut other = secret.clone();
            other[0] ^= 0x80;
            prop_assert_eq!(verify(&other, &h, &body, t), Err(SignatureError::Mismatch));
            let stale = verify(&secret, &h, &body, t + REPLAY_WINDOW_SECS + 1);
            prop_assert!(matches!(stale, Err(SignatureError::Stale { .. })), "stale accepted");
            // A timestamp moved into the window by an attacker breaks the MAC.
            let moved = h.replacen(&format!("t={t}"), &format!("t={}", t + 1), 1);
            prop_assert_eq!(verify(&secret, &moved, &body, t), Err(SignatureError::Mismatch));
        }

        #[test]
        fn the_verifier_never_panics(header in ".{0,200}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = verify(b"s", &header, &body, 0);
        }

        /// Backoff: within [d/2, d], d = min(max, base·2^(n−1)), so it grows
        /// with the attempt until the cap.
        #[test]
        fn backoff_stays_within_its_bounds(n in 1u32..40, unit in 0.0f64..1.0) {
            let base = SignedDuration::from_secs(1);
            let max = SignedDuration::from_secs(3600);
            let d = backoff_delay(n, base, max, unit).as_millis() as f64;
            let full = (1000f64 * 2f64.powi(n as i32 - 1)).min(3_600_000.0);
            prop_assert!(d >= (full / 2.0).floor() && d <= full, "{n}: {d} vs {full}");
        }
    }

    #[test]
    fn pagerduty_triggers_on_halt_and_resolves_on_completion_with_one_dedup_key() {
        let at = "2026-12-06T00:00:00Z".parse().unwrap();
        let ev = |a: &str| {
            Event::from_outbox(
                1,
                at,
                a,
                "system:duties",
                "deployment:DEP-9",
                &json!({"message": "m"}),
            )
        };
        let o = TemplateOptions::default();
        let t = render(Template::Pagerduty, &ev("deployment.halted"), &o).unwrap();
        let r = render(Template::Pagerduty, &ev("deployment.completed"), &o).unwrap();
        assert_eq!(t["event_action"], "trigger");
        assert_eq!(r["event_action"], "resolve");
        assert_eq!(t["dedup_key"], r["dedup_key"]);
        assert!(render(Template::Pagerduty, &ev("deployment.started"), &o).is_none());
    }

    #[test]
    fn pagerduty_triggers_on_an_sla_breach_under_the_findings_own_dedup_key() {
        let at = "2026-12-06T00:00:00Z".parse().unwrap();
        let o = TemplateOptions::default();
        let breach = |f: &str, tier: &str| {
            Event::from_outbox(
                2,
                at,
                "sla.breached",
                "system:sla-watch",
                &format!("finding:{f}"),
                &json!({"asset": "web-1", "tier": tier, "group": "web", "message": "SLA breached"}),
            )
        };
        let b = render(Template::Pagerduty, &breach("F-7", "P0"), &o).unwrap();
        assert_eq!(b["event_action"], "trigger");
        assert_eq!(b["dedup_key"], "patchbay-sla-F-7");
        assert_eq!(b["payload"]["severity"], "critical");
        assert_eq!(b["payload"]["component"], "web-1");
        assert_eq!(b["payload"]["group"], "web");
        let other = render(Template::Pagerduty, &breach("F-8", "P2"), &o).unwrap();
        assert_eq!(other["dedup_key"], "patchbay-sla-F-8");
        assert_eq!(other["payload"]["severity"], "error");
        // At risk is not a page.
        let risk = Event::from_outbox(3, at, "sla.at_risk", "s", "finding:F-7", &json!({}));
        assert!(render(Template::Pagerduty, &risk, &o).is_none());
        // The breach ending resolves the same incident.
        let end = Event::from_outbox(4, at, "sla.resolved", "s", "finding:F-7", &json!({}));
        let r = render(Template::Pagerduty, &end, &o).unwrap();
        assert_eq!(r["event_action"], "resolve");
        assert_eq!(r["dedup_key"], b["dedup_key"]);
        assert!(r.get("payload").is_none(), "{r}");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now: jiff::Timestamp = "1994-11-06T08:49:00Z".parse().unwrap();
        assert_eq!(
            retry_after("120", now),
            Some(SignedDuration::from_secs(120))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(SignedDuration::from_secs(37))
        );
        // In the past: no wait; absurdly far: capped; garbage: none.
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(SignedDuration::ZERO)
        );
        assert_eq!(
            retry_after("99999999999999999999999", now),
            Some(RETRY_AFTER_MAX)
        );
        assert_eq!(retry_after("-5", now), None);
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(
            Template::Slack.min_interval(),
            Some(SignedDuration::from_secs(1))
        );
        assert_eq!(Template::Generic.min_interval(), None);
    }

    #[test]
    fn ticketing_routes_keep_the_created_id_and_escape_it() {
        let at = "2026-12-06T00:00:00Z".parse().unwrap();
        let ev = |a: &str| Event::from_outbox(1, at, a, "ops", "deployment:DEP-1", &json!({}));
        let c = route(Template::Jira, &ev("deployment.created"), None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.method, c.path.as_str(), c.creates),
            ("POST", "/rest/api/2/issue", true)
        );
        assert!(
            route(Template::Jira, &ev("deployment.completed"), None)
                .unwrap()
                .is_err()
        );
        let f = route(
            Template::Jira,
            &ev("deployment.completed"),
            Some("OPS/../1"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(f.path, "/rest/api/2/issue/OPS%2F%2E%2E%2F1/comment");
        let p = route(
            Template::Servicenow,
            &ev("deployment.rollback"),
            Some("abc"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (p.method, p.path.as_str()),
            ("PATCH", "/api/sn_chg_rest/change/abc")
        );
        assert!(route(Template::Slack, &ev("deployment.created"), None).is_none());
        assert_eq!(
            external_id(Template::Jira, &json!({"id": "1", "key": "OPS-7"})),
            Some("OPS-7".into())
        );
        assert_eq!(
            external_id(
                Template::Servicenow,
                &json!({"result": {"sys_id": {"value": "s1"}}})
            ),
            Some("s1".into())
        );
        assert_eq!(
            external_id(Template::Servicenow, &json!({"result": {}})),
            None
        );
        let rb = render(
            Template::Servicenow,
            &ev("deployment.rollback"),
            &TemplateOptions::default(),
        )
        .unwrap();
        assert_eq!(
            (rb["state"].as_str(), rb["close_code"].as_str()),
            (Some("3"), Some("unsuccessful"))
        );
    }
}
