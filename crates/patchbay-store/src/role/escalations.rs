//! Escalation chains and running escalations (`escalation_chains`,
//! `escalations`, migration 0045).
//!
//! A chain has a cursor into the `events` outbox: the runner reads the
//! events after it, opens an escalation per starting event (unique per
//! chain and event, so a re-read opens nothing twice) and closes the ones an
//! event decided, then moves the cursor — one transaction.

use crate::engine::{Engine, Get, QueryExt, SqlTx, opt_ts};
use crate::{Result, StoreError, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// A chain to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChain {
    /// Unique name.
    pub name: String,
    /// What starts it (`approval`, `sla`).
    pub trigger: String,
    /// Its steps, JSON (`patchbay_core::escalation::Step` list).
    pub steps: serde_json::Value,
    /// The outbox position to start after.
    pub cursor: i64,
    /// When.
    pub created_at: Timestamp,
    /// By whom.
    pub created_by: String,
}

/// A chain as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainRow {
    /// Its id.
    pub id: i64,
    /// The rest.
    pub chain: NewChain,
}

/// An escalation's state.
pub mod escalation_state {
    /// Steps firing.
    pub const OPEN: &str = "open";
    /// Someone acknowledged it: the chain stopped.
    pub const ACKNOWLEDGED: &str = "acknowledged";
    /// What it was for was decided (the approval given or refused).
    pub const RESOLVED: &str = "resolved";
    /// Every step fired; nobody acknowledged.
    pub const EXHAUSTED: &str = "exhausted";
}

/// One escalation (one chain started for one event).
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationRow {
    /// Its id (`ESC-<id>`).
    pub id: i64,
    /// The chain.
    pub chain_id: i64,
    /// The outbox event that started it.
    pub event_id: i64,
    /// What it is about (`deployment:DEP-…`, `finding:…`).
    pub subject: String,
    /// The starting event's summary.
    pub summary: String,
    /// `open`, `acknowledged`, `resolved`, `exhausted`.
    pub state: String,
    /// When it started (its event's time).
    pub started_at: Timestamp,
    /// How many steps fired.
    pub fired: i32,
    /// When the next step is due (open ones).
    pub next_at: Option<Timestamp>,
    /// The fired steps, JSON list.
    pub history: serde_json::Value,
    /// When it was closed.
    pub closed_at: Option<Timestamp>,
    /// By whom.
    pub closed_by: Option<String>,
    /// Why.
    pub comment: Option<String>,
}

/// Escalation chains and escalations.
#[async_trait]
pub trait EscalationStore {
    /// Adds a chain; `None` if the name is taken.
    async fn add_chain(&mut self, c: &NewChain) -> Result<Option<i64>>;
    /// Every chain, by id.
    async fn chains(&mut self) -> Result<Vec<ChainRow>>;
    /// One by name.
    async fn chain(&mut self, name: &str) -> Result<Option<ChainRow>>;
    /// Removes a chain and its escalations; whether it existed.
    async fn remove_chain(&mut self, name: &str) -> Result<bool>;
    /// Moves a chain's cursor.
    async fn set_chain_cursor(&mut self, id: i64, cursor: i64) -> Result<()>;
    /// Opens an escalation (nothing if the chain has one for that event);
    /// its id.
    async fn insert_escalation(&mut self, e: &EscalationRow) -> Result<Option<i64>>;
    /// One escalation.
    async fn escalation(&mut self, id: i64) -> Result<Option<EscalationRow>>;
    /// A chain's escalations, newest first.
    async fn escalations_of(&mut self, chain: i64, limit: i64) -> Result<Vec<EscalationRow>>;
    /// Open escalations whose next step is due at `now`, oldest first.
    async fn due_escalations(&mut self, now: Timestamp, limit: i64) -> Result<Vec<EscalationRow>>;
    /// Open escalations about `subject`.
    async fn open_escalations_about(&mut self, subject: &str) -> Result<Vec<EscalationRow>>;
    /// Stores an escalation's state, steps fired, next time, history and
    /// closing.
    async fn update_escalation(&mut self, e: &EscalationRow) -> Result<()>;
    /// Records that `state` of `key` was raised at `at` (table `notices`);
    /// `false` if it was already (the caller raises nothing then).
    async fn note_once(&mut self, key: &str, state: &str, at: Timestamp) -> Result<bool>;
    /// [`Self::note_once`], keeping `detail` with the notice (migration 0051).
    async fn note_once_with(
        &mut self,
        key: &str,
        state: &str,
        at: Timestamp,
        detail: &serde_json::Value,
    ) -> Result<bool>;
    /// The keys noted with state `raised` and not (yet) with `ended`
    /// (`sla.breached` without `sla.resolved`: the breaches still open),
    /// each with the detail kept with it (null if none).
    async fn noted_without(
        &mut self,
        raised: &str,
        ended: &str,
    ) -> Result<Vec<(String, serde_json::Value)>>;
    /// Whether any key starting with `prefix` is noted with `raised` and not
    /// with `ended` (e.g. an open SLA breach of one asset's findings:
    /// `finding:F-<asset>-`), without reading the notes.
    async fn any_noted_without(&mut self, raised: &str, ended: &str, prefix: &str) -> Result<bool>;
}

macro_rules! esc_cols {
    () => {
        "id, chain_id, event_id, subject, summary, state, started_at, fired, next_at, history, closed_at, closed_by, comment"
    };
}

fn json(text: String, what: &str) -> Result<serde_json::Value> {
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Other(format!("bad escalation {what}: {e}")))
}

fn chain_row<R>(r: &R) -> Result<ChainRow>
where
    R: Get<i64> + Get<String>,
{
    Ok(ChainRow {
        id: r.col("id")?,
        chain: NewChain {
            name: r.col("name")?,
            trigger: r.col("trigger_on")?,
            steps: json(r.col("steps")?, "steps")?,
            cursor: r.col("cursor")?,
            created_at: from_millis(r.col("created_at")?)?,
            created_by: r.col("created_by")?,
        },
    })
}

fn esc_row<R>(r: &R) -> Result<EscalationRow>
where
    R: Get<i64> + Get<i32> + Get<String> + Get<Option<i64>> + Get<Option<String>>,
{
    Ok(EscalationRow {
        id: r.col("id")?,
        chain_id: r.col("chain_id")?,
        event_id: r.col("event_id")?,
        subject: r.col("subject")?,
        summary: r.col("summary")?,
        state: r.col("state")?,
        started_at: from_millis(r.col("started_at")?)?,
        fired: r.col("fired")?,
        next_at: opt_ts(r.col("next_at")?)?,
        history: json(r.col("history")?, "history")?,
        closed_at: opt_ts(r.col("closed_at")?)?,
        closed_by: r.col("closed_by")?,
        comment: r.col("comment")?,
    })
}

#[async_trait]
impl<DB: Engine> EscalationStore for SqlTx<DB> {
    async fn add_chain(&mut self, c: &NewChain) -> Result<Option<i64>> {
        let r = sqlx::query::<DB>(
            "INSERT INTO escalation_chains (name, trigger_on, steps, cursor, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .arg(&c.name)
        .arg(&c.trigger)
        .arg(c.steps.to_string())
        .arg(c.cursor)
        .arg(to_millis(c.created_at))
        .arg(&c.created_by)
        .opt(self.conn())
        .await?;
        r.map(|r| r.col("id")).transpose()
    }

    async fn chains(&mut self) -> Result<Vec<ChainRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT id, name, trigger_on, steps, cursor, created_at, created_by \
             FROM escalation_chains ORDER BY id",
        )
        .all(self.conn())
        .await?;
        rows.iter().map(chain_row).collect()
    }

    async fn chain(&mut self, name: &str) -> Result<Option<ChainRow>> {
        let r = sqlx::query::<DB>(
            "SELECT id, name, trigger_on, steps, cursor, created_at, created_by \
             FROM escalation_chains WHERE name = $1",
        )
        .arg(name)
        .opt(self.conn())
        .await?;
        r.as_ref().map(chain_row).transpose()
    }

    async fn remove_chain(&mut self, name: &str) -> Result<bool> {
        sqlx::query::<DB>(
            "DELETE FROM escalations WHERE chain_id IN (SELECT id FROM escalation_chains WHERE name = $1)",
        )
        .arg(name)
        .exec(self.conn())
        .await?;
        let d = sqlx::query::<DB>("DELETE FROM escalation_chains WHERE name = $1")
            .arg(name)
            .exec(self.conn())
            .await?;
        Ok(d.rows_affected() > 0)
    }

    async fn set_chain_cursor(&mut self, id: i64, cursor: i64) -> Result<()> {
        sqlx::query::<DB>("UPDATE escalation_chains SET cursor = $1 WHERE id = $2")
            .arg(cursor)
            .arg(id)
            .exec(self.conn())
            .await?;
        Ok(())
    }

    async fn insert_escalation(&mut self, e: &EscalationRow) -> Result<Option<i64>> {
        let r = sqlx::query::<DB>(
            "INSERT INTO escalations (chain_id, event_id, subject, summary, state, started_at, \
             fired, next_at, history) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (chain_id, event_id) DO NOTHING RETURNING id",
        )
        .arg(e.chain_id)
        .arg(e.event_id)
        .arg(&e.subject)
        .arg(&e.summary)
        .arg(&e.state)
        .arg(to_millis(e.started_at))
        .arg(e.fired)
        .arg(e.next_at.map(to_millis))
        .arg(e.history.to_string())
        .opt(self.conn())
        .await?;
        r.map(|r| r.col("id")).transpose()
    }

    async fn escalation(&mut self, id: i64) -> Result<Option<EscalationRow>> {
        let r = sqlx::query::<DB>(concat!(
            "SELECT ",
            esc_cols!(),
            " FROM escalations WHERE id = $1"
        ))
        .arg(id)
        .opt(self.conn())
        .await?;
        r.as_ref().map(esc_row).transpose()
    }

    async fn escalations_of(&mut self, chain: i64, limit: i64) -> Result<Vec<EscalationRow>> {
        let rows = sqlx::query::<DB>(concat!(
            "SELECT ",
            esc_cols!(),
            " FROM escalations WHERE chain_id = $1 ORDER BY id DESC LIMIT $2"
        ))
        .arg(chain)
        .arg(limit)
        .all(self.conn())
        .await?;
        rows.iter().map(esc_row).collect()
    }

    async fn due_escalations(&mut self, now: Timestamp, limit: i64) -> Result<Vec<EscalationRow>> {
        let rows = sqlx::query::<DB>(concat!(
            "SELECT ",
            esc_cols!(),
            " FROM escalations WHERE state = 'open' AND next_at <= $1 ORDER BY next_at, id LIMIT $2"
        ))
        .arg(to_millis(now))
        .arg(limit)
        .all(self.conn())
        .await?;
        rows.iter().map(esc_row).collect()
    }

    async fn open_escalations_about(&mut self, subject: &str) -> Result<Vec<EscalationRow>> {
        let rows = sqlx::query::<DB>(concat!(
            "SELECT ",
            esc_cols!(),
            " FROM escalations WHERE state = 'open' AND subject = $1 ORDER BY id"
        ))
        .arg(subject)
        .all(self.conn())
        .await?;
        rows.iter().map(esc_row).collect()
    }

    async fn update_escalation(&mut self, e: &EscalationRow) -> Result<()> {
        sqlx::query::<DB>(
            "UPDATE escalations SET state = $1, fired = $2, next_at = $3, history = $4, \
             closed_at = $5, closed_by = $6, comment = $7 WHERE id = $8",
        )
        .arg(&e.state)
        .arg(e.fired)
        .arg(e.next_at.map(to_millis))
        .arg(e.history.to_string())
        .arg(e.closed_at.map(to_millis))
        .arg(&e.closed_by)
        .arg(&e.comment)
        .arg(e.id)
        .exec(self.conn())
        .await?;
        Ok(())
    }

    async fn note_once(&mut self, key: &str, state: &str, at: Timestamp) -> Result<bool> {
        let d = sqlx::query::<DB>(
            "INSERT INTO notices (subject, state, at) VALUES ($1, $2, $3) \
             ON CONFLICT (subject, state) DO NOTHING",
        )
        .arg(key)
        .arg(state)
        .arg(to_millis(at))
        .exec(self.conn())
        .await?;
        Ok(d.rows_affected() > 0)
    }

    async fn note_once_with(
        &mut self,
        key: &str,
        state: &str,
        at: Timestamp,
        detail: &serde_json::Value,
    ) -> Result<bool> {
        let d = sqlx::query::<DB>(
            "INSERT INTO notices (subject, state, at, detail) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (subject, state) DO NOTHING",
        )
        .arg(key)
        .arg(state)
        .arg(to_millis(at))
        .arg(detail.to_string())
        .exec(self.conn())
        .await?;
        Ok(d.rows_affected() > 0)
    }

    async fn noted_without(
        &mut self,
        raised: &str,
        ended: &str,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        let rows = sqlx::query::<DB>(
            "SELECT n.subject, n.detail FROM notices n WHERE n.state = $1 AND NOT EXISTS \
             (SELECT 1 FROM notices e WHERE e.subject = n.subject AND e.state = $2) \
             ORDER BY n.subject",
        )
        .arg(raised)
        .arg(ended)
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                let detail: Option<String> = r.col("detail")?;
                let detail = detail
                    .and_then(|d| serde_json::from_str(&d).ok())
                    .unwrap_or(serde_json::Value::Null);
                Ok((r.col("subject")?, detail))
            })
            .collect()
    }

    async fn any_noted_without(&mut self, raised: &str, ended: &str, prefix: &str) -> Result<bool> {
        let row = sqlx::query::<DB>(
            "SELECT 1 AS one FROM notices n WHERE n.state = $1 \
             AND substr(n.subject, 1, CAST($3 AS INTEGER)) = $4 AND NOT EXISTS \
             (SELECT 1 FROM notices e WHERE e.subject = n.subject AND e.state = $2) LIMIT 1",
        )
        .arg(raised)
        .arg(ended)
        .arg(prefix.chars().count() as i64)
        .arg(prefix)
        .opt(self.conn())
        .await?;
        Ok(row.is_some())
    }
}
