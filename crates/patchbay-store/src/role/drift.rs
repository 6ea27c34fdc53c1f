//! Golden hosts pinned as a policy group's drift baseline (`drift_golden`,
//! migration 0105; issue 18, item 4, ADR 0019).

use crate::engine::{Engine, Get, QueryExt, SqlTx};
use crate::{Result, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// A group's pinned golden host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoldenRow {
    /// Policy group.
    pub group: String,
    /// The golden host (asset name).
    pub asset: String,
    /// Who pinned it.
    pub set_by: String,
    /// When.
    pub set_at: Timestamp,
}

/// Pinned golden hosts.
#[async_trait]
pub trait DriftStore {
    /// Every pinned golden host, by group.
    async fn golden_hosts(&mut self) -> Result<Vec<GoldenRow>>;
    /// Pins (or re-pins) `group`'s golden host.
    async fn set_golden_host(&mut self, row: &GoldenRow) -> Result<()>;
    /// Unpins `group`'s golden host; whether there was one.
    async fn clear_golden_host(&mut self, group: &str) -> Result<bool>;
}

#[async_trait]
impl<DB: Engine> DriftStore for SqlTx<DB> {
    async fn golden_hosts(&mut self) -> Result<Vec<GoldenRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT group_name, asset, set_by, set_at FROM drift_golden ORDER BY group_name",
        )
        .all(self.conn())
        .await?;
        let mut out: Vec<GoldenRow> = rows
            .iter()
            .map(|r| {
                Ok(GoldenRow {
                    group: r.col("group_name")?,
                    asset: r.col("asset")?,
                    set_by: r.col("set_by")?,
                    set_at: from_millis(r.col("set_at")?)?,
                })
            })
            .collect::<Result<_>>()?;
        // Byte order, whatever the collation.
        out.sort_by(|a, b| a.group.cmp(&b.group));
        Ok(out)
    }

    async fn set_golden_host(&mut self, row: &GoldenRow) -> Result<()> {
        sqlx::query::<DB>(
            "INSERT INTO drift_golden (group_name, asset, set_by, set_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (group_name) DO UPDATE SET asset = excluded.asset, \
             set_by = excluded.set_by, set_at = excluded.set_at",
        )
        .arg(row.group.as_str())
        .arg(row.asset.as_str())
        .arg(row.set_by.as_str())
        .arg(to_millis(row.set_at))
        .exec(self.conn())
        .await?;
        Ok(())
    }

    async fn clear_golden_host(&mut self, group: &str) -> Result<bool> {
        let r = sqlx::query::<DB>("DELETE FROM drift_golden WHERE group_name = $1")
            .arg(group)
            .exec(self.conn())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}
