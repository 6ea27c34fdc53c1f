//! The outbox of domain events (`events`, ADR 0005).

use crate::engine::{Engine, Get, QueryExt, SqlTx};
use crate::{Result, StoreError, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// A domain event to enqueue in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// When.
    pub at: Timestamp,
    /// What happened (`window.add`, `exception.expired`, …).
    pub kind: String,
    /// The payload's schema version.
    pub version: i32,
    /// Who did it.
    pub actor: String,
    /// What it happened to (`window:nightly`).
    pub subject: String,
    /// The payload.
    pub payload: serde_json::Value,
    /// The audit entry recording the same change.
    pub audit_seq: i64,
}

/// A domain event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Outbox position (increasing).
    pub id: i64,
    /// The event.
    pub event: NewEvent,
}

/// The outbox of domain events, written in the transaction of the change.
#[async_trait]
pub trait EventStore {
    /// Enqueues an event; returns its id.
    async fn enqueue_event(&mut self, e: &NewEvent) -> Result<i64>;
    /// Events with id > `after`, oldest first, at most `limit`.
    async fn events_after(&mut self, after: i64, limit: i64) -> Result<Vec<EventRow>>;
    /// The newest event's id (0 when there is none).
    async fn last_event_id(&mut self) -> Result<i64>;
}

#[async_trait]
impl<DB: Engine> EventStore for SqlTx<DB> {
    async fn enqueue_event(&mut self, e: &NewEvent) -> Result<i64> {
        let r = sqlx::query::<DB>(
            "INSERT INTO events (at, kind, version, actor, subject, payload, audit_seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .arg(to_millis(e.at))
        .arg(&e.kind)
        .arg(e.version)
        .arg(&e.actor)
        .arg(&e.subject)
        .arg(e.payload.to_string())
        .arg(e.audit_seq)
        .one(self.conn())
        .await?;
        r.col("id")
    }

    async fn last_event_id(&mut self) -> Result<i64> {
        let r = sqlx::query::<DB>("SELECT COALESCE(MAX(id), 0) AS id FROM events")
            .one(self.conn())
            .await?;
        r.col("id")
    }

    async fn events_after(&mut self, after: i64, limit: i64) -> Result<Vec<EventRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT id, at, kind, version, actor, subject, payload, audit_seq FROM events \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .arg(after)
        .arg(limit)
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                let payload: String = r.col("payload")?;
                Ok(EventRow {
                    id: r.col("id")?,
                    event: NewEvent {
                        at: from_millis(r.col("at")?)?,
                        kind: r.col("kind")?,
                        version: r.col("version")?,
                        actor: r.col("actor")?,
                        subject: r.col("subject")?,
                        payload: serde_json::from_str(&payload)
                            .map_err(|e| StoreError::Other(format!("bad event payload: {e}")))?,
                        audit_seq: r.col("audit_seq")?,
                    },
                })
            })
            .collect()
    }
}
