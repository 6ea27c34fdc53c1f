//! Maintenance windows, blackouts and blackout approvals (`windows`, `blackouts`, `blackout_approvals`).

use crate::engine::{Engine, Get, QueryExt, SqlTx, json_list, to_json};
use crate::{Result, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// A stored maintenance window (see `patchbay_core::window::Window`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRow {
    /// Unique name.
    pub name: String,
    /// The RRULE (canonical text).
    pub rrule: String,
    /// Local DTSTART (`YYYY-MM-DDTHH:MM:SS`).
    pub dtstart: String,
    /// IANA time zone.
    pub tz: String,
    /// Duration in seconds.
    pub duration_secs: i64,
    /// Day offset.
    pub offset_days: i64,
    /// Cutoff in seconds.
    pub cutoff_secs: i64,
    /// Groups it applies to.
    pub groups: Vec<String>,
    /// Assets it applies to.
    pub assets: Vec<String>,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Creator.
    pub created_by: String,
}

/// A stored blackout (change freeze).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlackoutRow {
    /// Unique name.
    pub name: String,
    /// Start (inclusive).
    pub starts_at: Timestamp,
    /// End (exclusive).
    pub ends_at: Timestamp,
    /// Why.
    pub reason: String,
    /// Who owns it.
    pub owner: String,
    /// Groups it applies to (none and no assets: everything).
    pub groups: Vec<String>,
    /// Assets it applies to.
    pub assets: Vec<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Creator.
    pub created_by: String,
}

/// An approval for an out-of-band deployment to enter a blackout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlackoutApprovalRow {
    /// The blackout.
    pub blackout: String,
    /// The deployment (`DEP-OOB-…`).
    pub deployment: String,
    /// Who approved.
    pub approver: String,
    /// Why.
    pub note: String,
    /// When.
    pub approved_at: Timestamp,
}

/// Maintenance windows, blackouts and blackout approvals.
#[async_trait]
pub trait ScheduleStore {
    /// Inserts a window; `false` when the name is taken (nothing written).
    async fn insert_window(&mut self, w: &WindowRow) -> Result<bool>;
    /// All windows, by name.
    async fn list_windows(&mut self) -> Result<Vec<WindowRow>>;
    /// Deletes a window; `false` when there was none.
    async fn delete_window(&mut self, name: &str) -> Result<bool>;
    /// Inserts a blackout; `false` when the name is taken.
    async fn insert_blackout(&mut self, b: &BlackoutRow) -> Result<bool>;
    /// All blackouts, by start.
    async fn list_blackouts(&mut self) -> Result<Vec<BlackoutRow>>;
    /// Deletes a blackout (and its approvals); `false` when there was none.
    async fn delete_blackout(&mut self, name: &str) -> Result<bool>;
    /// Records an approval; `false` when one exists for the pair.
    async fn insert_blackout_approval(&mut self, a: &BlackoutApprovalRow) -> Result<bool>;
    /// All approvals, by blackout then deployment.
    async fn list_blackout_approvals(&mut self) -> Result<Vec<BlackoutApprovalRow>>;
}

#[async_trait]
impl<DB: Engine> ScheduleStore for SqlTx<DB> {
    async fn insert_window(&mut self, w: &WindowRow) -> Result<bool> {
        let r = sqlx::query::<DB>(
            "INSERT INTO windows (name, rrule, dtstart, tz, duration_s, offset_days, cutoff_s, groups, assets, \
             description, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (name) DO NOTHING",
        )
        .arg(&w.name)
        .arg(&w.rrule)
        .arg(&w.dtstart)
        .arg(&w.tz)
        .arg(w.duration_secs)
        .arg(w.offset_days)
        .arg(w.cutoff_secs)
        .arg(to_json(&w.groups))
        .arg(to_json(&w.assets))
        .arg(&w.description)
        .arg(to_millis(w.created_at))
        .arg(&w.created_by)
        .exec(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn list_windows(&mut self) -> Result<Vec<WindowRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT name, rrule, dtstart, tz, duration_s, offset_days, cutoff_s, groups, assets, description, \
             created_at, created_by FROM windows ORDER BY name",
        )
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WindowRow {
                    name: r.col("name")?,
                    rrule: r.col("rrule")?,
                    dtstart: r.col("dtstart")?,
                    tz: r.col("tz")?,
                    duration_secs: r.col("duration_s")?,
                    offset_days: r.col("offset_days")?,
                    cutoff_secs: r.col("cutoff_s")?,
                    groups: json_list(r.col("groups")?)?,
                    assets: json_list(r.col("assets")?)?,
                    description: r.col("description")?,
                    created_at: from_millis(r.col("created_at")?)?,
                    created_by: r.col("created_by")?,
                })
            })
            .collect()
    }

    async fn delete_window(&mut self, name: &str) -> Result<bool> {
        let r = sqlx::query::<DB>("DELETE FROM windows WHERE name = $1")
            .arg(name)
            .exec(self.conn())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn insert_blackout(&mut self, b: &BlackoutRow) -> Result<bool> {
        let r = sqlx::query::<DB>(
            "INSERT INTO blackouts (name, starts_at, ends_at, reason, owner, groups, assets, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO NOTHING",
        )
        .arg(&b.name)
        .arg(to_millis(b.starts_at))
        .arg(to_millis(b.ends_at))
        .arg(&b.reason)
        .arg(&b.owner)
        .arg(to_json(&b.groups))
        .arg(to_json(&b.assets))
        .arg(to_millis(b.created_at))
        .arg(&b.created_by)
        .exec(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn list_blackouts(&mut self) -> Result<Vec<BlackoutRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT name, starts_at, ends_at, reason, owner, groups, assets, created_at, created_by \
             FROM blackouts ORDER BY starts_at, name",
        )
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BlackoutRow {
                    name: r.col("name")?,
                    starts_at: from_millis(r.col("starts_at")?)?,
                    ends_at: from_millis(r.col("ends_at")?)?,
                    reason: r.col("reason")?,
                    owner: r.col("owner")?,
                    groups: json_list(r.col("groups")?)?,
                    assets: json_list(r.col("assets")?)?,
                    created_at: from_millis(r.col("created_at")?)?,
                    created_by: r.col("created_by")?,
                })
            })
            .collect()
    }

    async fn delete_blackout(&mut self, name: &str) -> Result<bool> {
        // Explicit, so that the approvals go on engines without cascades too.
        sqlx::query::<DB>("DELETE FROM blackout_approvals WHERE blackout = $1")
            .arg(name)
            .exec(self.conn())
            .await?;
        let r = sqlx::query::<DB>("DELETE FROM blackouts WHERE name = $1")
            .arg(name)
            .exec(self.conn())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn insert_blackout_approval(&mut self, a: &BlackoutApprovalRow) -> Result<bool> {
        let r = sqlx::query::<DB>(
            "INSERT INTO blackout_approvals (blackout, deployment, approver, note, approved_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (blackout, deployment) DO NOTHING",
        )
        .arg(&a.blackout)
        .arg(&a.deployment)
        .arg(&a.approver)
        .arg(&a.note)
        .arg(to_millis(a.approved_at))
        .exec(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn list_blackout_approvals(&mut self) -> Result<Vec<BlackoutApprovalRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT blackout, deployment, approver, note, approved_at FROM blackout_approvals \
             ORDER BY blackout, deployment",
        )
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BlackoutApprovalRow {
                    blackout: r.col("blackout")?,
                    deployment: r.col("deployment")?,
                    approver: r.col("approver")?,
                    note: r.col("note")?,
                    approved_at: from_millis(r.col("approved_at")?)?,
                })
            })
            .collect()
    }
}
