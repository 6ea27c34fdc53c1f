//! Expected-impact notices and summaries raised (`impact_notices`, migration
//! 0120; issue 18, item 8): one row per deployment, owner and kind, so each
//! is raised exactly once whichever replica leads and across restarts.

use crate::engine::{Engine, Get, QueryExt, SqlTx};
use crate::{Result, StoreError, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// A notice raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImpactNoticeRow {
    /// The deployment.
    pub deployment: String,
    /// The owner (`(unowned)` for hosts without one).
    pub owner: String,
    /// `notice` (before the window) or `summary` (after the deployment).
    pub kind: String,
    /// When it was raised.
    pub at: Timestamp,
    /// The contact its email goes to.
    pub contact: String,
    /// The owner's assets it covered.
    pub assets: Vec<String>,
}

/// Impact notices.
#[async_trait]
pub trait ImpactStore {
    /// Records a notice; `false` if one of that deployment, owner and kind
    /// was already (the caller raises nothing then).
    async fn note_impact(&mut self, n: &ImpactNoticeRow) -> Result<bool>;
    /// A deployment's notices, by time then owner.
    async fn impact_notices(&mut self, deployment: &str) -> Result<Vec<ImpactNoticeRow>>;
}

#[async_trait]
impl<DB: Engine> ImpactStore for SqlTx<DB> {
    async fn note_impact(&mut self, n: &ImpactNoticeRow) -> Result<bool> {
        let assets =
            serde_json::to_string(&n.assets).map_err(|e| StoreError::Other(e.to_string()))?;
        let d = sqlx::query::<DB>(
            "INSERT INTO impact_notices (deployment, owner, kind, at, contact, assets) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (deployment, owner, kind) DO NOTHING",
        )
        .arg(&n.deployment)
        .arg(&n.owner)
        .arg(&n.kind)
        .arg(to_millis(n.at))
        .arg(&n.contact)
        .arg(assets)
        .exec(self.conn())
        .await?;
        Ok(d.rows_affected() > 0)
    }

    async fn impact_notices(&mut self, deployment: &str) -> Result<Vec<ImpactNoticeRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT deployment, owner, kind, at, contact, assets FROM impact_notices \
             WHERE deployment = $1 ORDER BY at, owner, kind",
        )
        .arg(deployment)
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                let assets: String = r.col("assets")?;
                Ok(ImpactNoticeRow {
                    deployment: r.col("deployment")?,
                    owner: r.col("owner")?,
                    kind: r.col("kind")?,
                    at: from_millis(r.col("at")?)?,
                    contact: r.col("contact")?,
                    assets: serde_json::from_str(&assets)
                        .map_err(|e| StoreError::Other(format!("impact_notices.assets: {e}")))?,
                })
            })
            .collect()
    }
}
