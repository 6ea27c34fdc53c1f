//! Webhook subscriptions and deliveries (`webhook_subscriptions`,
//! `webhook_deliveries`, migration 0040).
//!
//! Each subscription has a cursor into the `events` outbox; fanning out
//! (done by the app in one write transaction) inserts one delivery row per
//! matching event — unique per (subscription, event) — and moves the cursor,
//! so an event becomes exactly one delivery per subscriber, across restarts.
//! A delivery is marked delivered only after a 2xx answer.

use crate::engine::{Engine, Get, QueryExt, SqlTx, opt_ts};
use crate::{Result, StoreError, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// A subscription to store.
#[derive(Clone, PartialEq)]
pub struct NewSubscription {
    /// Unique name.
    pub name: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The payload template's name.
    pub template: String,
    /// The filter, JSON.
    pub filter: serde_json::Value,
    /// Template options, JSON.
    pub options: serde_json::Value,
    /// The signing secret (kept as is: the server computes HMACs with it).
    pub secret: String,
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: i32,
    /// The outbox position to start after (events before it are not sent).
    pub cursor: i64,
    /// When.
    pub created_at: Timestamp,
    /// By whom.
    pub created_by: String,
    /// Headers sent with every request, carrying the receiver's credential
    /// (`Authorization: Basic …`): (name, value), kept as is (migration
    /// 0050). Only the names are ever shown.
    pub auth_headers: Vec<(String, String)>,
}

impl NewSubscription {
    /// The auth headers' names (what may be shown of them).
    pub fn auth_header_names(&self) -> Vec<String> {
        self.auth_headers.iter().map(|(n, _)| n.clone()).collect()
    }
}

impl std::fmt::Debug for NewSubscription {
    // The secret, the auth headers' values and the template options (a
    // PagerDuty routing key) are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSubscription")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("template", &self.template)
            .field("secret", &"<redacted>")
            .field("auth_headers", &self.auth_header_names())
            .field("options", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A subscription as stored.
#[derive(Clone, PartialEq)]
pub struct SubscriptionRow {
    /// Its id.
    pub id: i64,
    /// The rest.
    pub sub: NewSubscription,
}

impl std::fmt::Debug for SubscriptionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionRow")
            .field("id", &self.id)
            .field("sub", &self.sub)
            .finish()
    }
}

/// A delivery's state.
pub mod delivery_state {
    /// Due at `next_at`.
    pub const PENDING: &str = "pending";
    /// A 2xx was received.
    pub const DELIVERED: &str = "delivered";
    /// Attempts ran out (replayable).
    pub const DEAD: &str = "dead";
    /// The template carries no such event: nothing to send.
    pub const SKIPPED: &str = "skipped";
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    /// Row id.
    pub id: i64,
    /// Subscription.
    pub subscription_id: i64,
    /// The outbox event.
    pub event_id: i64,
    /// The `Patchbay-Delivery` id (the same across retries).
    pub delivery_id: String,
    /// `pending`, `delivered`, `dead`, `skipped`.
    pub state: String,
    /// Attempts made.
    pub attempts: i32,
    /// When it is due (pending).
    pub next_at: Timestamp,
    /// When it was created (fanned out).
    pub created_at: Timestamp,
    /// The last attempt.
    pub last_at: Option<Timestamp>,
    /// The last HTTP status (none: no answer).
    pub last_status: Option<i64>,
    /// The last error.
    pub last_error: Option<String>,
    /// When a 2xx came.
    pub delivered_at: Option<Timestamp>,
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The delivery row.
    pub id: i64,
    /// When it was made.
    pub at: Timestamp,
    /// The new state.
    pub state: String,
    /// When to try next (pending).
    pub next_at: Timestamp,
    /// The HTTP status, if one came.
    pub status: Option<i64>,
    /// The error, if any.
    pub error: Option<String>,
}

/// Counts for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryStats {
    /// Pending deliveries.
    pub pending: i64,
    /// When the oldest pending one was created.
    pub oldest_pending: Option<Timestamp>,
    /// Dead letters.
    pub dead: i64,
}

/// Webhook subscriptions and deliveries.
#[async_trait]
pub trait WebhookStore {
    /// Adds a subscription; `None` if the name is taken.
    async fn add_subscription(&mut self, s: &NewSubscription) -> Result<Option<i64>>;
    /// Every subscription, by id.
    async fn subscriptions(&mut self) -> Result<Vec<SubscriptionRow>>;
    /// One by name.
    async fn subscription(&mut self, name: &str) -> Result<Option<SubscriptionRow>>;
    /// Removes one (and its deliveries); whether it existed.
    async fn remove_subscription(&mut self, name: &str) -> Result<bool>;
    /// Replaces a subscription's auth headers.
    async fn set_auth_headers(&mut self, id: i64, headers: &[(String, String)]) -> Result<()>;
    /// Moves a subscription's cursor.
    async fn set_cursor(&mut self, id: i64, cursor: i64) -> Result<()>;
    /// Inserts a delivery (nothing if one exists for the same event).
    async fn insert_delivery(&mut self, d: &DeliveryRow) -> Result<bool>;
    /// Pending deliveries of a subscription due at `now`, oldest first, each
    /// with its outbox event.
    async fn due_deliveries(
        &mut self,
        sub: i64,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<(DeliveryRow, crate::EventRow)>>;
    /// The newest outbox event id (0: none).
    async fn outbox_head(&mut self) -> Result<i64>;
    /// The next time a pending delivery of `sub` is due.
    async fn next_due(&mut self, sub: i64) -> Result<Option<Timestamp>>;
    /// Records an attempt.
    async fn record_attempt(&mut self, a: &Attempt) -> Result<()>;
    /// The external id (Jira issue key, ServiceNow sys_id) subscription
    /// `sub` stored for `deployment` (table `webhook_links`, 0046).
    async fn webhook_link(&mut self, sub: i64, deployment: &str) -> Result<Option<String>>;
    /// Stores it (the first one stays: a create sent twice links once).
    async fn set_webhook_link(
        &mut self,
        sub: i64,
        deployment: &str,
        external_id: &str,
        at: Timestamp,
    ) -> Result<()>;
    /// A subscription's deliveries, newest first, optionally of one state.
    async fn deliveries(
        &mut self,
        sub: i64,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>>;
    /// Makes a subscription's dead letters pending again, due `now`, with
    /// their attempts reset; returns how many.
    async fn replay_dead(&mut self, sub: i64, now: Timestamp) -> Result<u64>;
    /// Counts for metrics.
    async fn delivery_stats(&mut self) -> Result<DeliveryStats>;
}

macro_rules! sub_cols {
    () => {
        "id, name, url, template, filter, options, secret, max_attempts, cursor, created_at, created_by, auth_headers"
    };
}
macro_rules! del_cols {
    () => {
        "id, subscription_id, event_id, delivery_id, state, attempts, next_at, created_at, last_at, last_status, last_error, delivered_at"
    };
}

fn json(text: String, what: &str) -> Result<serde_json::Value> {
    serde_json::from_str(&text).map_err(|e| StoreError::Other(format!("bad webhook {what}: {e}")))
}

fn headers_json(h: &[(String, String)]) -> String {
    serde_json::to_string(h).unwrap_or_else(|_| "[]".into())
}

fn sub_row<R>(r: &R) -> Result<SubscriptionRow>
where
    R: Get<i64> + Get<i32> + Get<String>,
{
    Ok(SubscriptionRow {
        id: r.col("id")?,
        sub: NewSubscription {
            name: r.col("name")?,
            url: r.col("url")?,
            template: r.col("template")?,
            filter: json(r.col("filter")?, "filter")?,
            options: json(r.col("options")?, "options")?,
            secret: r.col("secret")?,
            max_attempts: r.col("max_attempts")?,
            cursor: r.col("cursor")?,
            created_at: from_millis(r.col("created_at")?)?,
            created_by: r.col("created_by")?,
            auth_headers: serde_json::from_str(&Get::<String>::col(r, "auth_headers")?)
                .map_err(|e| StoreError::Other(format!("bad webhook auth headers: {e}")))?,
        },
    })
}

fn del_row<R>(r: &R) -> Result<DeliveryRow>
where
    R: Get<i64> + Get<i32> + Get<String> + Get<Option<i64>> + Get<Option<String>>,
{
    Ok(DeliveryRow {
        id: r.col("id")?,
        subscription_id: r.col("subscription_id")?,
        event_id: r.col("event_id")?,
        delivery_id: r.col("delivery_id")?,
        state: r.col("state")?,
        attempts: r.col("attempts")?,
        next_at: from_millis(r.col("next_at")?)?,
        created_at: from_millis(r.col("created_at")?)?,
        last_at: opt_ts(r.col("last_at")?)?,
        last_status: r.col("last_status")?,
        last_error: r.col("last_error")?,
        delivered_at: opt_ts(r.col("delivered_at")?)?,
    })
}

#[async_trait]
impl<DB: Engine> WebhookStore for SqlTx<DB> {
    async fn add_subscription(&mut self, s: &NewSubscription) -> Result<Option<i64>> {
        let r = sqlx::query::<DB>(
            "INSERT INTO webhook_subscriptions (name, url, template, filter, options, secret, \
             max_attempts, cursor, created_at, created_by, auth_headers) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .arg(&s.name)
        .arg(&s.url)
        .arg(&s.template)
        .arg(s.filter.to_string())
        .arg(s.options.to_string())
        .arg(&s.secret)
        .arg(s.max_attempts)
        .arg(s.cursor)
        .arg(to_millis(s.created_at))
        .arg(&s.created_by)
        .arg(headers_json(&s.auth_headers))
        .opt(self.conn())
        .await?;
        r.map(|r| r.col("id")).transpose()
    }

    async fn subscriptions(&mut self) -> Result<Vec<SubscriptionRow>> {
        let rows = sqlx::query::<DB>(concat!(
            "SELECT ",
            sub_cols!(),
            " FROM webhook_subscriptions ORDER BY id"
        ))
        .all(self.conn())
        .await?;
        rows.iter().map(sub_row).collect()
    }

    async fn subscription(&mut self, name: &str) -> Result<Option<SubscriptionRow>> {
        let r = sqlx::query::<DB>(concat!(
            "SELECT ",
            sub_cols!(),
            " FROM webhook_subscriptions WHERE name = $1"
        ))
        .arg(name)
        .opt(self.conn())
        .await?;
        r.as_ref().map(sub_row).transpose()
    }

    async fn remove_subscription(&mut self, name: &str) -> Result<bool> {
        sqlx::query::<DB>(
            "DELETE FROM webhook_deliveries WHERE subscription_id IN \
             (SELECT id FROM webhook_subscriptions WHERE name = $1)",
        )
        .arg(name)
        .exec(self.conn())
        .await?;
        let d = sqlx::query::<DB>("DELETE FROM webhook_subscriptions WHERE name = $1")
            .arg(name)
            .exec(self.conn())
            .await?;
        Ok(d.rows_affected() > 0)
    }

    async fn set_auth_headers(&mut self, id: i64, headers: &[(String, String)]) -> Result<()> {
        sqlx::query::<DB>("UPDATE webhook_subscriptions SET auth_headers = $1 WHERE id = $2")
            .arg(headers_json(headers))
            .arg(id)
            .exec(self.conn())
            .await?;
        Ok(())
    }

    async fn set_cursor(&mut self, id: i64, cursor: i64) -> Result<()> {
        sqlx::query::<DB>("UPDATE webhook_subscriptions SET cursor = $1 WHERE id = $2")
            .arg(cursor)
            .arg(id)
            .exec(self.conn())
            .await?;
        Ok(())
    }

    async fn insert_delivery(&mut self, d: &DeliveryRow) -> Result<bool> {
        let done = sqlx::query::<DB>(
            "INSERT INTO webhook_deliveries (subscription_id, event_id, delivery_id, state, attempts, \
             next_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (subscription_id, event_id) DO NOTHING",
        )
        .arg(d.subscription_id)
        .arg(d.event_id)
        .arg(&d.delivery_id)
        .arg(&d.state)
        .arg(d.attempts)
        .arg(to_millis(d.next_at))
        .arg(to_millis(d.created_at))
        .exec(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn due_deliveries(
        &mut self,
        sub: i64,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<(DeliveryRow, crate::EventRow)>> {
        let rows = sqlx::query::<DB>(
            "SELECT d.id, d.subscription_id, d.event_id, d.delivery_id, d.state, d.attempts, d.next_at, \
             d.created_at, d.last_at, d.last_status, d.last_error, d.delivered_at, \
             e.at AS e_at, e.kind AS e_kind, e.version AS e_version, e.actor AS e_actor, \
             e.subject AS e_subject, e.payload AS e_payload, e.audit_seq AS e_audit_seq \
             FROM webhook_deliveries d JOIN events e ON e.id = d.event_id \
             WHERE d.subscription_id = $1 AND d.state = 'pending' AND d.next_at <= $2 \
             ORDER BY d.next_at, d.id LIMIT $3",
        )
        .arg(sub)
        .arg(to_millis(now))
        .arg(limit)
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                let d = del_row(r)?;
                let e = crate::EventRow {
                    id: d.event_id,
                    event: crate::NewEvent {
                        at: from_millis(r.col("e_at")?)?,
                        kind: r.col("e_kind")?,
                        version: r.col("e_version")?,
                        actor: r.col("e_actor")?,
                        subject: r.col("e_subject")?,
                        payload: json(r.col("e_payload")?, "event payload")?,
                        audit_seq: r.col("e_audit_seq")?,
                    },
                };
                Ok((d, e))
            })
            .collect()
    }

    async fn outbox_head(&mut self) -> Result<i64> {
        let r = sqlx::query::<DB>("SELECT MAX(id) AS n FROM events")
            .one(self.conn())
            .await?;
        Ok(Get::<Option<i64>>::col(&r, "n")?.unwrap_or(0))
    }

    async fn next_due(&mut self, sub: i64) -> Result<Option<Timestamp>> {
        let r = sqlx::query::<DB>(
            "SELECT MIN(next_at) AS n FROM webhook_deliveries WHERE subscription_id = $1 AND state = 'pending'",
        )
        .arg(sub)
        .one(self.conn())
        .await?;
        opt_ts(r.col("n")?)
    }

    async fn webhook_link(&mut self, sub: i64, deployment: &str) -> Result<Option<String>> {
        let r = sqlx::query::<DB>(
            "SELECT external_id FROM webhook_links WHERE subscription_id = $1 AND deployment = $2",
        )
        .arg(sub)
        .arg(deployment)
        .opt(self.conn())
        .await?;
        r.map(|r| r.col("external_id")).transpose()
    }

    async fn set_webhook_link(
        &mut self,
        sub: i64,
        deployment: &str,
        external_id: &str,
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query::<DB>(
            "INSERT INTO webhook_links (subscription_id, deployment, external_id, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (subscription_id, deployment) DO NOTHING",
        )
        .arg(sub)
        .arg(deployment)
        .arg(external_id)
        .arg(to_millis(at))
        .exec(self.conn())
        .await?;
        Ok(())
    }

    async fn record_attempt(&mut self, a: &Attempt) -> Result<()> {
        let delivered = (a.state == delivery_state::DELIVERED).then(|| to_millis(a.at));
        sqlx::query::<DB>(
            "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, next_at = $2, \
             last_at = $3, last_status = $4, last_error = $5, delivered_at = $6 WHERE id = $7",
        )
        .arg(&a.state)
        .arg(to_millis(a.next_at))
        .arg(to_millis(a.at))
        .arg(a.status)
        .arg(&a.error)
        .arg(delivered)
        .arg(a.id)
        .exec(self.conn())
        .await?;
        Ok(())
    }

    async fn deliveries(
        &mut self,
        sub: i64,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>> {
        let rows = sqlx::query::<DB>(concat!(
            "SELECT ",
            del_cols!(),
            " FROM webhook_deliveries WHERE subscription_id = $1 \
             AND ($2 = '' OR state = $2) ORDER BY id DESC LIMIT $3"
        ))
        .arg(sub)
        .arg(state.unwrap_or(""))
        .arg(limit)
        .all(self.conn())
        .await?;
        rows.iter().map(del_row).collect()
    }

    async fn replay_dead(&mut self, sub: i64, now: Timestamp) -> Result<u64> {
        let d = sqlx::query::<DB>(
            "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_at = $1 \
             WHERE subscription_id = $2 AND state = 'dead'",
        )
        .arg(to_millis(now))
        .arg(sub)
        .exec(self.conn())
        .await?;
        Ok(d.rows_affected())
    }

    async fn delivery_stats(&mut self) -> Result<DeliveryStats> {
        let r = sqlx::query::<DB>(
            "SELECT \
               (SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending') AS pending, \
               (SELECT MIN(created_at) FROM webhook_deliveries WHERE state = 'pending') AS oldest, \
               (SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'dead') AS dead",
        )
        .one(self.conn())
        .await?;
        Ok(DeliveryStats {
            pending: r.col("pending")?,
            oldest_pending: opt_ts(r.col("oldest")?)?,
            dead: r.col("dead")?,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_shows_no_secret_header_value_or_routing_key() {
        let s = super::NewSubscription {
            name: "jira".into(),
            url: "https://example.atlassian.net".into(),
            template: "jira".into(),
            filter: serde_json::json!({}),
            options: serde_json::json!({"routing_key": "R0UTING-KEY"}),
            secret: "whsec_S1GNING".into(),
            max_attempts: 10,
            cursor: 0,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            created_by: "test".into(),
            auth_headers: vec![("Authorization".into(), "Basic QVVUSC1WQUxVRQ==".into())],
        };
        let d = format!("{:?}", super::SubscriptionRow { id: 1, sub: s });
        for secret in ["R0UTING-KEY", "whsec_S1GNING", "QVVUSC1WQUxVRQ"] {
            assert!(!d.contains(secret), "{d}");
        }
        assert!(d.contains("Authorization"), "{d}");
    }
}
