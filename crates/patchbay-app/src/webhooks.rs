//! Webhook subscriptions and their delivery from the outbox (issue 15).
//!
//! **Fan-out** ([`App::webhooks_fan_out`]): in one write transaction, each
//! subscription's new outbox events (after its cursor) are mapped to typed
//! events ([`patchbay_core::event`]), filtered, and each match becomes one
//! delivery row (unique per subscription and event, with its own
//! `Patchbay-Delivery` id); the cursor moves in the same transaction. An
//! event therefore becomes exactly one delivery per subscriber, whatever
//! crashes when.
//!
//! **Delivery** ([`App::webhooks_deliver`]): one subscription's due deliveries
//! are sent (at most [`WebhookConfig::concurrency`] at once, each bounded by
//! [`WebhookConfig::timeout`]), signed per [`patchbay_core::webhook`]; the
//! results are stored as they come, one transaction for all those ready at
//! once (at most [`FLUSH_MAX`]). A delivery is marked
//! delivered only after a 2xx, so a crash between the receiver's 2xx and the
//! commit sends it again *with the same delivery id*: receivers deduplicate
//! on it (at-least-once on the wire, exactly once accepted). A failure is
//! retried after [`backoff_delay`] (time from the app's clock, jitter from
//! the RNG) until `max_attempts`, then dead-lettered; [`App::replay_webhook`]
//! makes dead letters pending again. The server runs one task per
//! subscription, so a slow or hanging receiver only delays itself.
//!
//! **Pacing**: a template with a rate limit ([`Template::min_interval`]:
//! Slack, one message per second) is sent one delivery per round, and the
//! [`Sender`] holds the subscription until the interval has passed after
//! the answer (time from the app's clock). A `429` or `503` answer with
//! `Retry-After` ([`webhook::retry_after`]) holds the subscription, whatever
//! its template, and schedules the retry no earlier than it says (the later
//! of that and the backoff); it still counts as a failed attempt.
//!
//! The secret is stored as is, not hashed: the server must compute an HMAC
//! with it for every delivery, which a hash would not allow (encryption at
//! rest is out of scope; the database is as sensitive as the signing key
//! beside it). It is shown once, at creation, and never printed by `Debug`.
//! The auth headers (the receiver's credential: Jira, ServiceNow) are kept
//! the same way and sent with every request; only their names are ever
//! answered or audited ([`App::set_webhook_auth`] rotates them).

use crate::outbox::{self, Consumer};
use crate::{App, AppError, Caller, RequestCtx, SystemActor};
use jiff::{SignedDuration, Timestamp};
use patchbay_core::auth::Action;
use patchbay_core::escalation;
use patchbay_core::event::{Event, Kind};
use patchbay_core::webhook::{
    self, DELIVERY_HEADER, EVENT_HEADER, Filter, SIGNATURE_HEADER, Template, TemplateOptions,
    backoff_delay,
};
use patchbay_proto::api::{
    DeliveryOut, ReplayOut, WebhookCreated, WebhookOut, WebhookSpec, WebhookTestOut,
};
use patchbay_store::{
    Attempt, DeliveryRow, NewSubscription, SubscriptionRow, delivery_state as state,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Most delivery outcomes stored in one transaction (the results ready
/// when the round looks; a bound on what a crash sends again).
pub const FLUSH_MAX: usize = 256;

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// First retry delay (doubles per attempt, jittered).
    pub backoff_base: SignedDuration,
    /// Longest retry delay.
    pub backoff_max: SignedDuration,
    /// Default attempts before dead-lettering.
    pub max_attempts: u32,
    /// One request's limit (connect, send, answer).
    pub timeout: Duration,
    /// Requests in flight per subscription.
    pub concurrency: usize,
    /// Deliveries taken per round, and events fanned out per subscription
    /// per round.
    pub batch: i64,
    /// How often the server's delivery loop looks for work without being
    /// woken (new events wake it at once).
    pub poll: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            backoff_base: SignedDuration::from_secs(1),
            backoff_max: SignedDuration::from_secs(3600),
            max_attempts: 10,
            timeout: Duration::from_secs(10),
            concurrency: 8,
            batch: 500,
            poll: Duration::from_secs(1),
        }
    }
}

/// What one delivery round of a subscription did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliverReport {
    /// Answered 2xx.
    pub sent: u64,
    /// Failed (any kind), of which:
    pub failed: u64,
    /// … scheduled for another attempt,
    pub retried: u64,
    /// … dead-lettered.
    pub dead: u64,
    /// When the subscription next has a delivery due, if any.
    pub next_due: Option<Timestamp>,
    /// Nothing was sent: the subscription is held (paced, or asked to wait
    /// by `Retry-After`) until then.
    pub held_until: Option<Timestamp>,
}

/// A shared, pooling HTTP client for deliveries (blocking ureq, run on the
/// blocking pool: a hanging receiver holds one thread of its own
/// subscription until the timeout, nothing else).
///
/// It also keeps, per subscription, the time before which nothing more is
/// sent to it (pacing and `Retry-After`): in memory, on the replica that
/// delivers (a failover forgets at most one interval).
#[derive(Clone)]
pub struct Sender {
    agent: ureq::Agent,
    hold: Arc<std::sync::Mutex<std::collections::HashMap<i64, Timestamp>>>,
}

impl Sender {
    /// A client whose requests give up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_idle_connections_per_host(64)
            .user_agent("patchbay-webhooks")
            .build()
            .into();
        Self {
            agent,
            hold: Arc::default(),
        }
    }

    /// Until when subscription `sub` is held, if it is after `now`.
    fn held(&self, sub: i64, now: Timestamp) -> Option<Timestamp> {
        let hold = self.hold.lock().unwrap_or_else(|p| p.into_inner());
        hold.get(&sub).copied().filter(|t| *t > now)
    }

    /// Holds `sub` until `until` (never shortens a hold).
    fn hold(&self, sub: i64, until: Timestamp) {
        let mut hold = self.hold.lock().unwrap_or_else(|p| p.into_inner());
        let t = hold.entry(sub).or_insert(until);
        *t = (*t).max(until);
    }

    /// POSTs `body` with no Patchbay headers (the benchmark's ceiling).
    pub fn post_plain(&self, url: &str, body: Vec<u8>) -> Result<u16, String> {
        self.post("POST", url, &[], body)
            .map(|(status, _, _)| status)
    }

    /// POSTs (or PATCHes); the answer's status, its `Retry-After` header,
    /// if any, and its body (at most 64 KiB).
    fn post(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<(u16, Option<String>, Vec<u8>), String> {
        let req = if method == "PATCH" {
            self.agent.patch(url)
        } else {
            self.agent.post(url)
        };
        let mut req = req.header("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        match req.send(&body[..]) {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                // Read (and drop) the answer so the connection is reused.
                let answer = resp
                    .into_body()
                    .with_config()
                    .limit(64 * 1024)
                    .read_to_vec()
                    .unwrap_or_default();
                Ok((status, retry_after, answer))
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn filter_of(s: &SubscriptionRow) -> Result<Filter, AppError> {
    serde_json::from_value(s.sub.filter.clone()).map_err(|e| {
        AppError::invalid(format!(
            "webhook {:?}: stored filter unreadable: {e}",
            s.sub.name
        ))
    })
}

fn out(s: &SubscriptionRow, pending: u64, dead: u64) -> WebhookOut {
    let f: Filter = serde_json::from_value(s.sub.filter.clone()).unwrap_or_default();
    WebhookOut {
        name: s.sub.name.clone(),
        url: s.sub.url.clone(),
        template: s.sub.template.clone(),
        events: f.events,
        deployment: f.deployment,
        group: f.group,
        tier: f.tier,
        max_attempts: s.sub.max_attempts.max(0) as u32,
        cursor: s.sub.cursor,
        created_at: s.sub.created_at.to_string(),
        created_by: s.sub.created_by.clone(),
        pending,
        dead,
        auth_headers: s.sub.auth_header_names(),
    }
}

/// A spec's auth headers as (name, value), checked.
fn auth_headers_of(
    spec: &[patchbay_proto::api::AuthHeader],
) -> Result<Vec<(String, String)>, AppError> {
    let h: Vec<(String, String)> = spec
        .iter()
        .map(|h| (h.name.trim().to_string(), h.value.clone()))
        .collect();
    webhook::validate_auth_headers(&h).map_err(AppError::invalid)?;
    Ok(h)
}

fn delivery_out(d: &DeliveryRow) -> DeliveryOut {
    DeliveryOut {
        delivery_id: d.delivery_id.clone(),
        event_id: format!("evt_{}", d.event_id),
        state: d.state.clone(),
        attempts: d.attempts.max(0) as u32,
        next_at: d.next_at.to_string(),
        last_at: d.last_at.map(|t| t.to_string()),
        last_status: d.last_status.and_then(|s| u16::try_from(s).ok()),
        last_error: d.last_error.clone(),
        delivered_at: d.delivered_at.map(|t| t.to_string()),
    }
}

impl App {
    /// Adds a subscription (it receives events from now on); returns it with
    /// its secret, shown this once.
    pub async fn add_webhook(
        &self,
        caller: &Caller,
        spec: &WebhookSpec,
        ctx: &RequestCtx,
    ) -> Result<WebhookCreated, AppError> {
        if !valid_name(&spec.name) {
            return Err(AppError::invalid(format!(
                "webhook name {:?}: use 1–64 letters, digits, '-', '_' or '.'",
                spec.name
            )));
        }
        let url = spec.url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.len() > 2048
            || url.chars().any(char::is_whitespace)
        {
            return Err(AppError::invalid(format!(
                "webhook url {url:?}: must be an http:// or https:// URL without spaces"
            )));
        }
        let template = Template::parse(spec.template.as_deref().unwrap_or("generic"))
            .map_err(AppError::invalid)?;
        let filter = Filter {
            events: spec.events.clone(),
            deployment: spec.deployment.clone(),
            group: spec.group.clone(),
            tier: spec.tier.clone(),
        };
        filter.validate().map_err(AppError::invalid)?;
        let options = TemplateOptions {
            routing_key: spec.routing_key.clone(),
            project: spec.project.clone(),
        };
        if template == Template::Pagerduty && options.routing_key.is_none() {
            return Err(AppError::invalid(
                "template pagerduty needs routing_key (the PagerDuty integration key)",
            ));
        }
        let max_attempts = spec
            .max_attempts
            .unwrap_or(self.config().webhooks.max_attempts);
        if !(1..=50).contains(&max_attempts) {
            return Err(AppError::invalid(format!(
                "max_attempts {max_attempts}: must be 1–50"
            )));
        }
        let auth_headers = auth_headers_of(&spec.auth_headers)?;
        let secret = format!("whsec_{}", hex::encode(crate::random32()));
        let now = self.now();
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        let cursor = tx.outbox_head().await?;
        let mut new = NewSubscription {
            name: spec.name.clone(),
            url: url.to_string(),
            template: template.as_str().to_string(),
            filter: serde_json::to_value(&filter).map_err(|e| AppError::invalid(e.to_string()))?,
            options: serde_json::to_value(&options)
                .map_err(|e| AppError::invalid(e.to_string()))?,
            secret: secret.clone(),
            max_attempts: max_attempts as i32,
            cursor,
            created_at: now,
            created_by: tx.actor().to_string(),
            auth_headers,
        };
        let Some(id) = tx.add_subscription(&new).await? else {
            return Err(AppError::new(
                patchbay_proto::error::ErrorCode::Conflict,
                format!("a webhook named {:?} exists", spec.name),
            ));
        };
        tx.audit(
            "webhook.add",
            &format!("webhook:{}", spec.name),
            // The auth headers' names only: their values are secrets.
            json!({"url": new.url, "template": new.template, "filter": new.filter,
                   "auth_headers": new.auth_header_names()}),
        )
        .await?;
        // From now on: its own creation included, nothing earlier.
        let cursor = tx.outbox_head().await?;
        tx.set_cursor(id, cursor).await?;
        new.cursor = cursor;
        tx.commit().await?;
        self.outbox_bell().notify_one();
        Ok(WebhookCreated {
            webhook: out(&SubscriptionRow { id, sub: new }, 0, 0),
            secret,
        })
    }

    async fn webhook_row(&self, name: &str) -> Result<SubscriptionRow, AppError> {
        let mut r = self.store.read().await?;
        r.subscription(name)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no webhook named {name:?}")))
    }

    async fn counts(&self, id: i64) -> Result<(u64, u64), AppError> {
        let mut r = self.store.read().await?;
        let pending = r.deliveries(id, Some(state::PENDING), 100_000).await?.len();
        let dead = r.deliveries(id, Some(state::DEAD), 100_000).await?.len();
        Ok((pending as u64, dead as u64))
    }

    /// Every subscription.
    pub async fn webhooks(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Vec<WebhookOut>, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let subs = self.store.read().await?.subscriptions().await?;
        let mut v = Vec::new();
        for s in &subs {
            let (p, d) = self.counts(s.id).await?;
            v.push(out(s, p, d));
        }
        Ok(v)
    }

    /// One subscription.
    pub async fn webhook(
        &self,
        caller: &Caller,
        name: &str,
        ctx: &RequestCtx,
    ) -> Result<WebhookOut, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let s = self.webhook_row(name).await?;
        let (p, d) = self.counts(s.id).await?;
        Ok(out(&s, p, d))
    }

    /// Replaces a subscription's auth headers (rotating a credential keeps
    /// its deliveries and the records it created); audited with the
    /// headers' names only.
    pub async fn set_webhook_auth(
        &self,
        caller: &Caller,
        name: &str,
        spec: &patchbay_proto::api::WebhookAuthSpec,
        ctx: &RequestCtx,
    ) -> Result<WebhookOut, AppError> {
        let headers = auth_headers_of(&spec.auth_headers)?;
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        let Some(mut s) = tx.subscription(name).await? else {
            return Err(AppError::not_found(format!("no webhook named {name:?}")));
        };
        tx.set_auth_headers(s.id, &headers).await?;
        s.sub.auth_headers = headers;
        tx.audit(
            "webhook.auth",
            &format!("webhook:{name}"),
            json!({"auth_headers": s.sub.auth_header_names()}),
        )
        .await?;
        tx.commit().await?;
        let (p, d) = self.counts(s.id).await?;
        Ok(out(&s, p, d))
    }

    /// Removes a subscription and its deliveries.
    pub async fn remove_webhook(
        &self,
        caller: &Caller,
        name: &str,
        ctx: &RequestCtx,
    ) -> Result<(), AppError> {
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        if !tx.remove_subscription(name).await? {
            return Err(AppError::not_found(format!("no webhook named {name:?}")));
        }
        tx.audit("webhook.remove", &format!("webhook:{name}"), json!({}))
            .await?;
        tx.commit().await
    }

    /// A subscription's delivery log, newest first (`state` filters).
    pub async fn webhook_deliveries(
        &self,
        caller: &Caller,
        name: &str,
        state_filter: Option<&str>,
        limit: i64,
        ctx: &RequestCtx,
    ) -> Result<Vec<DeliveryOut>, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        if let Some(s) = state_filter
            && ![
                state::PENDING,
                state::DELIVERED,
                state::DEAD,
                state::SKIPPED,
            ]
            .contains(&s)
        {
            return Err(AppError::invalid(format!(
                "state {s:?}: one of pending, delivered, dead, skipped"
            )));
        }
        let s = self.webhook_row(name).await?;
        let mut r = self.store.read().await?;
        let rows = r
            .deliveries(s.id, state_filter, limit.clamp(1, 10_000))
            .await?;
        Ok(rows.iter().map(delivery_out).collect())
    }

    /// Makes a subscription's dead letters pending again, due now.
    pub async fn replay_webhook(
        &self,
        caller: &Caller,
        name: &str,
        ctx: &RequestCtx,
    ) -> Result<ReplayOut, AppError> {
        let s = self.webhook_row(name).await?;
        let now = self.now();
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        let n = tx.replay_dead(s.id, now).await?;
        tx.audit(
            "webhook.replay",
            &format!("webhook:{name}"),
            json!({"replayed": n}),
        )
        .await?;
        tx.commit().await?;
        self.outbox_bell().notify_one();
        Ok(ReplayOut { replayed: n })
    }

    /// Queues a `webhook.test` event for one subscription (delivered like
    /// any other, through the outbox).
    pub async fn test_webhook(
        &self,
        caller: &Caller,
        name: &str,
        ctx: &RequestCtx,
    ) -> Result<WebhookTestOut, AppError> {
        self.webhook_row(name).await?;
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        tx.audit(
            "webhook.test",
            &format!("webhook:{name}"),
            json!({"message": format!("Test delivery to webhook {name}")}),
        )
        .await?;
        let head = tx.outbox_head().await?;
        tx.commit().await?;
        self.outbox_bell().notify_one();
        Ok(WebhookTestOut {
            event_id: format!("evt_{head}"),
        })
    }

    /// Moves every subscription's new outbox events into deliveries (one
    /// transaction); returns the deliveries created.
    pub async fn webhooks_fan_out(&self) -> Result<usize, AppError> {
        let batch = self.config().webhooks.batch.max(1);
        let now = self.now();
        let mut tx = self.change_by_system(SystemActor::Webhooks).await?;
        let subs = tx.subscriptions().await?;
        let mut created = 0;
        let mut moved = false;
        for s in &subs {
            let filter = filter_of(s)?;
            let template = Template::parse(&s.sub.template).map_err(AppError::invalid)?;
            let opts: TemplateOptions =
                serde_json::from_value(s.sub.options.clone()).unwrap_or_default();
            let pending =
                outbox::Pending::read(&mut tx, Consumer::Webhook(s.id), s.sub.cursor, batch)
                    .await?;
            for (row, ev) in pending.events() {
                let wanted = if ev.kind == Kind::WebhookTest {
                    ev.subject == format!("webhook:{}", s.sub.name)
                } else if ev.kind == Kind::EscalationNotified {
                    // A step is addressed to one subscription; `*`
                    // subscribers see the others' too.
                    escalation::addressed_to(ev, escalation::Channel::Webhook, &s.sub.name)
                        || filter.matches(ev)
                } else {
                    filter.matches(ev)
                };
                if !wanted {
                    continue;
                }
                let st = if webhook::render(template, ev, &opts).is_some() {
                    state::PENDING
                } else {
                    state::SKIPPED
                };
                let d = DeliveryRow {
                    id: 0,
                    subscription_id: s.id,
                    event_id: row.id,
                    delivery_id: format!("dlv_{}", hex::encode(&crate::random32()[..16])),
                    state: st.to_string(),
                    attempts: 0,
                    next_at: now,
                    created_at: now,
                    last_at: None,
                    last_status: None,
                    last_error: None,
                    delivered_at: None,
                };
                if tx.insert_delivery(&d).await? {
                    created += 1;
                }
            }
            moved |= pending.advance(&mut tx).await?;
        }
        if moved {
            tx.commit_unaudited("webhook fan-out: delivery bookkeeping of audited events")
                .await?;
        }
        Ok(created)
    }

    /// The ids of every subscription.
    pub async fn webhook_ids(&self) -> Result<Vec<i64>, AppError> {
        Ok(self
            .store
            .read()
            .await?
            .subscriptions()
            .await?
            .iter()
            .map(|s| s.id)
            .collect())
    }

    /// Counts for metrics: pending deliveries, the oldest pending one's age
    /// (seconds), dead letters.
    pub async fn webhook_queue(&self) -> Result<(i64, f64, i64), AppError> {
        let st = self.store.read().await?.delivery_stats().await?;
        let age = st
            .oldest_pending
            .map(|t| self.now().duration_since(t).as_secs_f64().max(0.0))
            .unwrap_or(0.0);
        Ok((st.pending, age, st.dead))
    }

    /// Sends subscription `sub`'s due deliveries (one round, at most
    /// [`WebhookConfig::batch`]) and stores the outcomes.
    pub async fn webhooks_deliver(
        &self,
        sub: i64,
        sender: &Sender,
    ) -> Result<DeliverReport, AppError> {
        let cfg = self.config().webhooks.clone();
        let now = self.now();
        if let Some(until) = sender.held(sub, now) {
            return Ok(DeliverReport {
                held_until: Some(until),
                next_due: Some(until),
                ..DeliverReport::default()
            });
        }
        let (s, template, due) = {
            let mut r = self.store.read().await?;
            let Some(s) = r.subscriptions().await?.into_iter().find(|s| s.id == sub) else {
                return Ok(DeliverReport::default());
            };
            let template = Template::parse(&s.sub.template).map_err(AppError::invalid)?;
            // A paced template sends one delivery per round; so does a
            // ticketing one (a comment must follow its issue's creation).
            let ticketing = matches!(template, Template::Jira | Template::Servicenow);
            let limit = if template.min_interval().is_some() || ticketing {
                1
            } else {
                cfg.batch.max(1)
            };
            let mut due = Vec::new();
            for (d, row) in r.due_deliveries(sub, now, limit).await? {
                let e = &row.event;
                let ev =
                    Event::from_outbox(row.id, e.at, &e.kind, &e.actor, &e.subject, &e.payload);
                let ext = match &ev.deployment {
                    Some(dep) if ticketing => r.webhook_link(sub, dep).await?,
                    _ => None,
                };
                let route = webhook::route(template, &ev, ext.as_deref());
                due.push((d, ev, route));
            }
            (s, template, due)
        };
        let opts: TemplateOptions =
            serde_json::from_value(s.sub.options.clone()).unwrap_or_default();
        let secret = Arc::new(s.sub.secret.clone());
        let url = Arc::new(s.sub.url.clone());
        let sem = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for (d, ev, route) in due {
            // Ticketing templates: the method and path under the base URL.
            let (method, url, link) = match route {
                None => ("POST", url.clone(), None),
                Some(Ok(r)) => (
                    r.method,
                    Arc::new(format!("{}{}", url.trim_end_matches('/'), r.path)),
                    r.creates.then_some(r.deployment),
                ),
                Some(Err(e)) => {
                    set.spawn(async move { (d, Err(e), None) });
                    continue;
                }
            };
            let body = webhook::render(template, &ev, &opts)
                .map(|v| v.to_string().into_bytes())
                .unwrap_or_default();
            let t = self.now().as_second();
            let mut headers = vec![
                (
                    SIGNATURE_HEADER.to_string(),
                    webhook::sign(secret.as_bytes(), t, &body),
                ),
                (DELIVERY_HEADER.to_string(), d.delivery_id.clone()),
                (EVENT_HEADER.to_string(), ev.kind.as_str().to_string()),
            ];
            // The receiver's credential (Jira, ServiceNow, …).
            headers.extend(s.sub.auth_headers.iter().cloned());
            let (sender, sem) = (sender.clone(), sem.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let r =
                    tokio::task::spawn_blocking(move || sender.post(method, &url, &headers, body))
                        .await
                        .unwrap_or_else(|e| Err(format!("sender task failed: {e}")));
                (d, r, link)
            });
        }
        let mut attempts = Vec::new();
        let mut links: Vec<(String, String)> = Vec::new();
        let mut rep = DeliverReport::default();
        // Outcomes are stored as they come (not at the end of the round), one
        // transaction per wake-up holding every result that is ready then (at
        // most FLUSH_MAX): a busy round writes few, larger transactions (the
        // results that finished while the last one was written), a quiet one
        // each result at once. After a crash, only the last batch's accepted
        // deliveries are sent again, and a hanging request does not hold the
        // others' results.
        while let Some(first) = set.join_next().await {
            let mut ready = vec![first];
            while ready.len() < FLUSH_MAX
                && let Some(more) = set.try_join_next()
            {
                ready.push(more);
            }
            for done in ready {
                let Ok((d, r, link)) = done else { continue };
                let at = self.now();
                if let Some(gap) = template.min_interval() {
                    sender.hold(sub, at + gap);
                }
                // 429 / 503 with Retry-After: nothing to this subscription, and
                // no retry of this delivery, before it says.
                let mut wait = None;
                let (status, error) = match r {
                    Ok((code, _, answer)) if (200..300).contains(&code) => {
                        // A create call: keep the id its answer carries.
                        if let Some(dep) = link {
                            let v: serde_json::Value =
                                serde_json::from_slice(&answer).unwrap_or_default();
                            match webhook::external_id(template, &v) {
                                Some(id) => links.push((dep, id)),
                                None => tracing::warn!(webhook = %s.sub.name, deployment = %dep,
                                "the create call's answer carries no id: later updates of this deployment will fail"),
                            }
                        }
                        (Some(code as i64), None)
                    }
                    Ok((code, ra, _)) => {
                        if code == 429 || code == 503 {
                            wait = ra.as_deref().and_then(|v| webhook::retry_after(v, at));
                            if let Some(w) = wait {
                                sender.hold(sub, at + w);
                            }
                        }
                        (Some(code as i64), Some(format!("HTTP {code}")))
                    }
                    Err(e) => (None, Some(e)),
                };
                let n = d.attempts.max(0) as u32 + 1;
                let (st, next_at) = if error.is_none() {
                    rep.sent += 1;
                    (state::DELIVERED, at)
                } else if n >= s.sub.max_attempts.max(1) as u32 {
                    rep.failed += 1;
                    rep.dead += 1;
                    (state::DEAD, at)
                } else {
                    rep.failed += 1;
                    rep.retried += 1;
                    let unit: f64 = rand::random();
                    let backoff = backoff_delay(n, cfg.backoff_base, cfg.backoff_max, unit);
                    (
                        state::PENDING,
                        at + wait.map_or(backoff, |w| w.max(backoff)),
                    )
                };
                if let Some(err) = &error {
                    tracing::debug!(webhook = %s.sub.name, delivery = %d.delivery_id, attempt = n, error = %err, "webhook delivery failed");
                }
                attempts.push(Attempt {
                    id: d.id,
                    at,
                    state: st.to_string(),
                    next_at,
                    status,
                    error: error.map(|e| e.chars().take(500).collect()),
                });
            }
            self.record_attempts(
                sub,
                &std::mem::take(&mut attempts),
                &std::mem::take(&mut links),
            )
            .await?;
        }
        rep.next_due = self.store.read().await?.next_due(sub).await?;
        if rep.dead > 0 {
            tracing::warn!(webhook = %s.sub.name, dead = rep.dead, "webhook deliveries dead-lettered; replay with `patchbay webhooks replay`");
        }
        Ok(rep)
    }

    /// Stores delivery attempts (the delivery log; bookkeeping of events
    /// already audited, so not audited itself).
    /// With them, the ids the create calls' answers carried (a ticket's
    /// id is kept in the transaction that marks its creation delivered).
    async fn record_attempts(
        &self,
        sub: i64,
        attempts: &[Attempt],
        links: &[(String, String)],
    ) -> Result<(), AppError> {
        if attempts.is_empty() {
            return Ok(());
        }
        let at = self.now();
        let mut tx = self.change_by_system(SystemActor::Webhooks).await?;
        for a in attempts {
            tx.record_attempt(a).await?;
        }
        for (dep, id) in links {
            tx.set_webhook_link(sub, dep, id, at).await?;
        }
        tx.commit_unaudited("webhook delivery attempts (the delivery log)")
            .await
    }
}
