//! Leader leases (`leases`, ADR 0004).

use crate::engine::{Engine, Get, QueryExt, SqlTx};
use crate::{Result, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// A leader lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// The lease's name (e.g. `duties`).
    pub name: String,
    /// Who holds it.
    pub holder: String,
    /// When the holder took it (renewals keep this).
    pub acquired_at: Timestamp,
    /// When it lapses unless renewed.
    pub expires_at: Timestamp,
}

/// What [`LeaseStore::try_lease`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The caller took the lease (it was free, expired, or another's expired).
    Acquired,
    /// The caller held it already and extended it.
    Renewed,
    /// Another holder's lease is still running.
    HeldByOther,
}

/// Leader leases: at most one holder per name at a time, until it expires.
#[async_trait]
pub trait LeaseStore {
    /// Takes or renews lease `name` for `holder` until `until`, if it is free,
    /// expired at `now`, or `holder`'s already. Atomic: of two replicas racing
    /// for an expired lease, exactly one gets it.
    async fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<LeaseOutcome>;
    /// Gives the lease up if `holder` has it; returns whether it did.
    async fn release_lease(&mut self, name: &str, holder: &str) -> Result<bool>;
    /// The lease as stored.
    async fn lease(&mut self, name: &str) -> Result<Option<LeaseRow>>;
}

#[async_trait]
impl<DB: Engine> LeaseStore for SqlTx<DB> {
    async fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<LeaseOutcome> {
        // One statement: the conflict row is locked and re-checked, so of
        // two racers for an expired lease only one update applies.
        let now_ms = to_millis(now);
        let row = sqlx::query::<DB>(
            "INSERT INTO leases (name, holder, acquired_at, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET \
               acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at ELSE excluded.acquired_at END, \
               holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.acquired_at \
             RETURNING acquired_at",
        )
        .arg(name)
        .arg(holder)
        .arg(now_ms)
        .arg(to_millis(until))
        .opt(self.conn())
        .await?;
        let Some(r) = row else {
            return Ok(LeaseOutcome::HeldByOther);
        };
        let acquired_at: i64 = r.col("acquired_at")?;
        Ok(if acquired_at == now_ms {
            LeaseOutcome::Acquired
        } else {
            LeaseOutcome::Renewed
        })
    }

    async fn release_lease(&mut self, name: &str, holder: &str) -> Result<bool> {
        let r = sqlx::query::<DB>("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .arg(name)
            .arg(holder)
            .exec(self.conn())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn lease(&mut self, name: &str) -> Result<Option<LeaseRow>> {
        let Some(r) = sqlx::query::<DB>(
            "SELECT name, holder, acquired_at, expires_at FROM leases WHERE name = $1",
        )
        .arg(name)
        .opt(self.conn())
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(LeaseRow {
            name: r.col("name")?,
            holder: r.col("holder")?,
            acquired_at: from_millis(r.col("acquired_at")?)?,
            expires_at: from_millis(r.col("expires_at")?)?,
        }))
    }
}
