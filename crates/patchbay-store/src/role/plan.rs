//! Policies, out-of-band events and proposed deployments (`policies`, `oob_events`, `deployments`).

use crate::engine::{Engine, Get, QueryExt, SqlTx, to_json};
use crate::{Result, StoreError, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// An applied policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRow {
    /// Id (increasing).
    pub id: i64,
    /// Canonical fingerprint of the policy.
    pub fingerprint: String,
    /// The policy file as applied.
    pub text: String,
    /// Who applied it.
    pub applied_by: String,
    /// When.
    pub applied_at: Timestamp,
    /// The effect computed at apply time (JSON).
    pub effect: serde_json::Value,
}

/// A zero-day lane event.
#[derive(Debug, Clone, PartialEq)]
pub struct OobEventRow {
    /// Id.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// What triggered it (e.g. `feed:kev:…`).
    pub source: String,
    /// CVEs that raised findings to P0.
    pub cves: Vec<String>,
    /// Findings created or raised.
    pub findings: i64,
    /// The proposed deployment.
    pub deployment: Option<String>,
}

/// A deployment record.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRow {
    /// `DEP-<yyyy>-<mm>-<seq>` or `DEP-OOB-…`.
    pub id: String,
    /// `oob` or `baseline`.
    pub kind: String,
    /// `proposed`, …
    pub status: String,
    /// Why.
    pub reason: String,
    /// Patch names (JSON list).
    pub patches: Vec<String>,
    /// Asset names.
    pub assets: Vec<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Creator.
    pub created_by: String,
}

/// Policies, out-of-band events and proposed deployments.
#[async_trait]
pub trait PlanStore {
    /// The policy in force, if any.
    async fn current_policy(&mut self) -> Result<Option<PolicyRow>>;
    /// Records an applied policy; returns its id.
    async fn insert_policy(&mut self, p: &PolicyRow) -> Result<i64>;
    /// Records an out-of-band event; returns its id.
    async fn insert_oob_event(&mut self, e: &OobEventRow) -> Result<i64>;
    /// Out-of-band events, newest first.
    async fn list_oob_events(&mut self) -> Result<Vec<OobEventRow>>;
    /// Inserts a deployment.
    async fn insert_deployment(&mut self, d: &DeploymentRow) -> Result<()>;
    /// Deployments, newest first.
    async fn list_deployments(&mut self) -> Result<Vec<DeploymentRow>>;
}

#[async_trait]
impl<DB: Engine> PlanStore for SqlTx<DB> {
    async fn current_policy(&mut self) -> Result<Option<PolicyRow>> {
        let row = sqlx::query::<DB>(
            "SELECT id, fingerprint, text, applied_by, applied_at, effect FROM policies ORDER BY id DESC LIMIT 1",
        )
        .opt(self.conn())
        .await?;
        row.map(|r| {
            let effect: String = r.col("effect")?;
            Ok(PolicyRow {
                id: r.col("id")?,
                fingerprint: r.col("fingerprint")?,
                text: r.col("text")?,
                applied_by: r.col("applied_by")?,
                applied_at: from_millis(r.col("applied_at")?)?,
                effect: serde_json::from_str(&effect)
                    .map_err(|e| StoreError::Other(format!("bad policy effect: {e}")))?,
            })
        })
        .transpose()
    }

    async fn insert_policy(&mut self, p: &PolicyRow) -> Result<i64> {
        let r = sqlx::query::<DB>(
            "INSERT INTO policies (fingerprint, text, applied_by, applied_at, effect) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .arg(&p.fingerprint)
        .arg(&p.text)
        .arg(&p.applied_by)
        .arg(to_millis(p.applied_at))
        .arg(p.effect.to_string())
        .one(self.conn())
        .await?;
        r.col("id")
    }

    async fn insert_oob_event(&mut self, e: &OobEventRow) -> Result<i64> {
        let r = sqlx::query::<DB>(
            "INSERT INTO oob_events (at, source, cves, findings, deployment) VALUES ($1, $2, $3, $4, $5) \
             RETURNING id",
        )
        .arg(to_millis(e.at))
        .arg(&e.source)
        .arg(to_json(&e.cves))
        .arg(e.findings)
        .arg(&e.deployment)
        .one(self.conn())
        .await?;
        r.col("id")
    }

    async fn list_oob_events(&mut self) -> Result<Vec<OobEventRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT id, at, source, cves, findings, deployment FROM oob_events ORDER BY id DESC",
        )
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                let cves: String = r.col("cves")?;
                Ok(OobEventRow {
                    id: r.col("id")?,
                    at: from_millis(r.col("at")?)?,
                    source: r.col("source")?,
                    cves: serde_json::from_str(&cves)
                        .map_err(|e| StoreError::Other(format!("bad oob cves: {e}")))?,
                    findings: r.col("findings")?,
                    deployment: r.col("deployment")?,
                })
            })
            .collect()
    }

    async fn insert_deployment(&mut self, d: &DeploymentRow) -> Result<()> {
        sqlx::query::<DB>(
            "INSERT INTO deployments (id, kind, status, reason, patches, assets, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .arg(&d.id)
        .arg(&d.kind)
        .arg(&d.status)
        .arg(&d.reason)
        .arg(to_json(&d.patches))
        .arg(to_json(&d.assets))
        .arg(to_millis(d.created_at))
        .arg(&d.created_by)
        .exec(self.conn())
        .await?;
        Ok(())
    }

    async fn list_deployments(&mut self) -> Result<Vec<DeploymentRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT id, kind, status, reason, patches, assets, created_at, created_by FROM deployments \
             ORDER BY created_at DESC, id DESC",
        )
        .all(self.conn())
        .await?;
        let list = |s: String| -> Result<Vec<String>> {
            serde_json::from_str(&s).map_err(|e| StoreError::Other(format!("bad JSON list: {e}")))
        };
        rows.iter()
            .map(|r| {
                Ok(DeploymentRow {
                    id: r.col("id")?,
                    kind: r.col("kind")?,
                    status: r.col("status")?,
                    reason: r.col("reason")?,
                    patches: list(r.col("patches")?)?,
                    assets: list(r.col("assets")?)?,
                    created_at: from_millis(r.col("created_at")?)?,
                    created_by: r.col("created_by")?,
                })
            })
            .collect()
    }
}
