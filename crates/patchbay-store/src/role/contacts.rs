//! Notification contacts and their email deliveries (`contacts`,
//! `email_deliveries`, migration 0045).
//!
//! A contact is a named email recipient with the event kinds it receives and
//! a cursor into the `events` outbox: fanning out (done by the app in one
//! write transaction) inserts one email delivery per matching event — unique
//! per (contact, event) — and moves the cursor, so an event is emailed
//! exactly once per recipient across restarts. A delivery is marked sent
//! only after the SMTP server accepted the message.

use crate::engine::{Engine, Get, QueryExt, SqlTx, json_list, opt_ts, to_json};
use crate::{Result, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// A contact to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    /// Unique name (what escalation steps name).
    pub name: String,
    /// Its address.
    pub email: String,
    /// The event kinds it is emailed (besides escalation steps addressed
    /// to it).
    pub events: Vec<String>,
    /// The outbox position to start after.
    pub cursor: i64,
    /// When.
    pub created_at: Timestamp,
    /// By whom.
    pub created_by: String,
}

/// A contact as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRow {
    /// Its id.
    pub id: i64,
    /// The rest.
    pub contact: NewContact,
}

/// An email delivery's state.
pub mod email_state {
    /// Due at `next_at`.
    pub const PENDING: &str = "pending";
    /// The SMTP server accepted it.
    pub const SENT: &str = "sent";
    /// Attempts ran out.
    pub const DEAD: &str = "dead";
}

/// An email delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRow {
    /// Row id.
    pub id: i64,
    /// The contact.
    pub contact_id: i64,
    /// The outbox event.
    pub event_id: i64,
    /// The `Message-ID` (the same across retries).
    pub message_id: String,
    /// `pending`, `sent`, `dead`.
    pub state: String,
    /// Attempts made.
    pub attempts: i32,
    /// When it is due.
    pub next_at: Timestamp,
    /// When it was fanned out.
    pub created_at: Timestamp,
    /// The last attempt.
    pub last_at: Option<Timestamp>,
    /// The last error.
    pub last_error: Option<String>,
    /// When the server accepted it.
    pub delivered_at: Option<Timestamp>,
}

/// Contacts and email deliveries.
#[async_trait]
pub trait ContactStore {
    /// Adds a contact; `None` if the name is taken.
    async fn add_contact(&mut self, c: &NewContact) -> Result<Option<i64>>;
    /// Every contact, by id.
    async fn contacts(&mut self) -> Result<Vec<ContactRow>>;
    /// Removes one (and its deliveries); whether it existed.
    async fn remove_contact(&mut self, name: &str) -> Result<bool>;
    /// Moves a contact's cursor.
    async fn set_contact_cursor(&mut self, id: i64, cursor: i64) -> Result<()>;
    /// Inserts a delivery (nothing if one exists for the same event).
    async fn insert_email(&mut self, d: &EmailRow) -> Result<bool>;
    /// Pending deliveries due at `now`, oldest first, each with its outbox
    /// event.
    async fn due_emails(
        &mut self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<(EmailRow, crate::EventRow)>>;
    /// Records an attempt: the new state, when next, the error.
    async fn record_email_attempt(
        &mut self,
        id: i64,
        at: Timestamp,
        state: &str,
        next_at: Timestamp,
        error: Option<&str>,
    ) -> Result<()>;
    /// The delivery log, newest first, optionally of one contact.
    async fn emails(&mut self, contact: Option<i64>, limit: i64) -> Result<Vec<EmailRow>>;
    /// Pending deliveries and the oldest one's creation, and dead ones.
    async fn email_stats(&mut self) -> Result<(i64, Option<Timestamp>, i64)>;
}

macro_rules! email_cols {
    () => {
        "id, contact_id, event_id, message_id, state, attempts, next_at, created_at, last_at, last_error, delivered_at"
    };
}

fn contact_row<R>(r: &R) -> Result<ContactRow>
where
    R: Get<i64> + Get<String>,
{
    Ok(ContactRow {
        id: r.col("id")?,
        contact: NewContact {
            name: r.col("name")?,
            email: r.col("email")?,
            events: json_list(r.col("events")?)?,
            cursor: r.col("cursor")?,
            created_at: from_millis(r.col("created_at")?)?,
            created_by: r.col("created_by")?,
        },
    })
}

fn email_row<R>(r: &R) -> Result<EmailRow>
where
    R: Get<i64> + Get<i32> + Get<String> + Get<Option<i64>> + Get<Option<String>>,
{
    Ok(EmailRow {
        id: r.col("id")?,
        contact_id: r.col("contact_id")?,
        event_id: r.col("event_id")?,
        message_id: r.col("message_id")?,
        state: r.col("state")?,
        attempts: r.col("attempts")?,
        next_at: from_millis(r.col("next_at")?)?,
        created_at: from_millis(r.col("created_at")?)?,
        last_at: opt_ts(r.col("last_at")?)?,
        last_error: r.col("last_error")?,
        delivered_at: opt_ts(r.col("delivered_at")?)?,
    })
}

#[async_trait]
impl<DB: Engine> ContactStore for SqlTx<DB> {
    async fn add_contact(&mut self, c: &NewContact) -> Result<Option<i64>> {
        let r = sqlx::query::<DB>(
            "INSERT INTO contacts (name, email, events, cursor, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .arg(&c.name)
        .arg(&c.email)
        .arg(to_json(&c.events))
        .arg(c.cursor)
        .arg(to_millis(c.created_at))
        .arg(&c.created_by)
        .opt(self.conn())
        .await?;
        r.map(|r| r.col("id")).transpose()
    }

    async fn contacts(&mut self) -> Result<Vec<ContactRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT id, name, email, events, cursor, created_at, created_by FROM contacts ORDER BY id",
        )
        .all(self.conn())
        .await?;
        rows.iter().map(contact_row).collect()
    }

    async fn remove_contact(&mut self, name: &str) -> Result<bool> {
        sqlx::query::<DB>(
            "DELETE FROM email_deliveries WHERE contact_id IN (SELECT id FROM contacts WHERE name = $1)",
        )
        .arg(name)
        .exec(self.conn())
        .await?;
        let d = sqlx::query::<DB>("DELETE FROM contacts WHERE name = $1")
            .arg(name)
            .exec(self.conn())
            .await?;
        Ok(d.rows_affected() > 0)
    }

    async fn set_contact_cursor(&mut self, id: i64, cursor: i64) -> Result<()> {
        sqlx::query::<DB>("UPDATE contacts SET cursor = $1 WHERE id = $2")
            .arg(cursor)
            .arg(id)
            .exec(self.conn())
            .await?;
        Ok(())
    }

    async fn insert_email(&mut self, d: &EmailRow) -> Result<bool> {
        let done = sqlx::query::<DB>(
            "INSERT INTO email_deliveries (contact_id, event_id, message_id, state, attempts, \
             next_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (contact_id, event_id) DO NOTHING",
        )
        .arg(d.contact_id)
        .arg(d.event_id)
        .arg(&d.message_id)
        .arg(&d.state)
        .arg(d.attempts)
        .arg(to_millis(d.next_at))
        .arg(to_millis(d.created_at))
        .exec(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn due_emails(
        &mut self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<(EmailRow, crate::EventRow)>> {
        let rows = sqlx::query::<DB>(
            "SELECT d.id, d.contact_id, d.event_id, d.message_id, d.state, d.attempts, d.next_at, \
             d.created_at, d.last_at, d.last_error, d.delivered_at, \
             e.at AS e_at, e.kind AS e_kind, e.version AS e_version, e.actor AS e_actor, \
             e.subject AS e_subject, e.payload AS e_payload, e.audit_seq AS e_audit_seq \
             FROM email_deliveries d JOIN events e ON e.id = d.event_id \
             WHERE d.state = 'pending' AND d.next_at <= $1 ORDER BY d.next_at, d.id LIMIT $2",
        )
        .arg(to_millis(now))
        .arg(limit)
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                let d = email_row(r)?;
                let payload: String = r.col("e_payload")?;
                let e = crate::EventRow {
                    id: d.event_id,
                    event: crate::NewEvent {
                        at: from_millis(r.col("e_at")?)?,
                        kind: r.col("e_kind")?,
                        version: r.col("e_version")?,
                        actor: r.col("e_actor")?,
                        subject: r.col("e_subject")?,
                        payload: serde_json::from_str(&payload).map_err(|e| {
                            crate::StoreError::Other(format!("bad event payload: {e}"))
                        })?,
                        audit_seq: r.col("e_audit_seq")?,
                    },
                };
                Ok((d, e))
            })
            .collect()
    }

    async fn record_email_attempt(
        &mut self,
        id: i64,
        at: Timestamp,
        state: &str,
        next_at: Timestamp,
        error: Option<&str>,
    ) -> Result<()> {
        let delivered = (state == email_state::SENT).then(|| to_millis(at));
        sqlx::query::<DB>(
            "UPDATE email_deliveries SET state = $1, attempts = attempts + 1, next_at = $2, \
             last_at = $3, last_error = $4, delivered_at = $5 WHERE id = $6",
        )
        .arg(state)
        .arg(to_millis(next_at))
        .arg(to_millis(at))
        .arg(error.map(str::to_string))
        .arg(delivered)
        .arg(id)
        .exec(self.conn())
        .await?;
        Ok(())
    }

    async fn emails(&mut self, contact: Option<i64>, limit: i64) -> Result<Vec<EmailRow>> {
        let rows = match contact {
            Some(c) => {
                sqlx::query::<DB>(concat!(
                    "SELECT ",
                    email_cols!(),
                    " FROM email_deliveries WHERE contact_id = $1 ORDER BY id DESC LIMIT $2"
                ))
                .arg(c)
                .arg(limit)
                .all(self.conn())
                .await?
            }
            None => {
                sqlx::query::<DB>(concat!(
                    "SELECT ",
                    email_cols!(),
                    " FROM email_deliveries ORDER BY id DESC LIMIT $1"
                ))
                .arg(limit)
                .all(self.conn())
                .await?
            }
        };
        rows.iter().map(email_row).collect()
    }

    async fn email_stats(&mut self) -> Result<(i64, Option<Timestamp>, i64)> {
        let r = sqlx::query::<DB>(
            "SELECT \
             (SELECT COUNT(*) FROM email_deliveries WHERE state = 'pending') AS pending, \
             (SELECT MIN(created_at) FROM email_deliveries WHERE state = 'pending') AS oldest, \
             (SELECT COUNT(*) FROM email_deliveries WHERE state = 'dead') AS dead",
        )
        .one(self.conn())
        .await?;
        Ok((r.col("pending")?, opt_ts(r.col("oldest")?)?, r.col("dead")?))
    }
}
