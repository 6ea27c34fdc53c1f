//! The exception register (`exceptions`).

use crate::engine::{Engine, Get, QueryExt, SqlTx, opt_ts};
use crate::{Result, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// A stored exception (see `patchbay_core::exception`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionRow {
    /// `EXC-<yyyy>-<nnnn>`.
    pub id: String,
    /// Advisory or CVE; empty: any.
    pub advisory: String,
    /// Package; empty: any.
    pub package: String,
    /// Asset name, or empty for a group exception.
    pub asset: String,
    /// Group name, or empty for an asset exception.
    pub group: String,
    /// Who owns the risk.
    pub owner: String,
    /// Why.
    pub reason: String,
    /// What mitigates the risk meanwhile.
    pub compensating_control: String,
    /// Who approved it.
    pub approver: String,
    /// Created.
    pub created_at: Timestamp,
    /// By.
    pub created_by: String,
    /// Expires.
    pub expires_at: Timestamp,
    /// Revoked.
    pub revoked_at: Option<Timestamp>,
    /// By.
    pub revoked_by: Option<String>,
    /// Why.
    pub revoke_reason: Option<String>,
    /// When the expiry event was raised.
    pub expired_noted_at: Option<Timestamp>,
    /// `deferred` or `not_affected` (VEX), migration 0076.
    pub kind: String,
    /// For `not_affected`: the VEX justification label.
    pub justification: String,
    /// Empty (an operator's), or `csaf:<tracking id>`.
    pub origin: String,
}

/// The exception register.
#[async_trait]
pub trait ExceptionStore {
    /// Inserts an exception; `false` when the id is taken.
    async fn insert_exception(&mut self, e: &ExceptionRow) -> Result<bool>;
    /// All exceptions, by id.
    async fn list_exceptions(&mut self) -> Result<Vec<ExceptionRow>>;
    /// Revokes one in force; `false` when there is none to revoke.
    async fn revoke_exception(
        &mut self,
        id: &str,
        at: Timestamp,
        by: &str,
        reason: &str,
    ) -> Result<bool>;
    /// Marks the expiry event raised; `false` when it already was.
    async fn note_exception_expired(&mut self, id: &str, at: Timestamp) -> Result<bool>;
}

#[async_trait]
impl<DB: Engine> ExceptionStore for SqlTx<DB> {
    async fn insert_exception(&mut self, e: &ExceptionRow) -> Result<bool> {
        let r = sqlx::query::<DB>(
            "INSERT INTO exceptions (id, advisory, package, asset, group_name, owner, reason, compensating_control, \
             approver, created_at, created_by, expires_at, kind, justification, origin) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (id) DO NOTHING",
        )
        .arg(&e.id)
        .arg(&e.advisory)
        .arg(&e.package)
        .arg(&e.asset)
        .arg(&e.group)
        .arg(&e.owner)
        .arg(&e.reason)
        .arg(&e.compensating_control)
        .arg(&e.approver)
        .arg(to_millis(e.created_at))
        .arg(&e.created_by)
        .arg(to_millis(e.expires_at))
        .arg(&e.kind)
        .arg(&e.justification)
        .arg(&e.origin)
        .exec(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn list_exceptions(&mut self) -> Result<Vec<ExceptionRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT id, advisory, package, asset, group_name, owner, reason, compensating_control, approver, \
             created_at, created_by, expires_at, revoked_at, revoked_by, revoke_reason, expired_noted_at, \
             kind, justification, origin FROM exceptions ORDER BY id",
        )
        .all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ExceptionRow {
                    id: r.col("id")?,
                    advisory: r.col("advisory")?,
                    package: r.col("package")?,
                    asset: r.col("asset")?,
                    group: r.col("group_name")?,
                    owner: r.col("owner")?,
                    reason: r.col("reason")?,
                    compensating_control: r.col("compensating_control")?,
                    approver: r.col("approver")?,
                    created_at: from_millis(r.col("created_at")?)?,
                    created_by: r.col("created_by")?,
                    expires_at: from_millis(r.col("expires_at")?)?,
                    revoked_at: opt_ts(r.col("revoked_at")?)?,
                    revoked_by: r.col("revoked_by")?,
                    revoke_reason: r.col("revoke_reason")?,
                    expired_noted_at: opt_ts(r.col("expired_noted_at")?)?,
                    kind: r.col("kind")?,
                    justification: r.col("justification")?,
                    origin: r.col("origin")?,
                })
            })
            .collect()
    }

    async fn revoke_exception(
        &mut self,
        id: &str,
        at: Timestamp,
        by: &str,
        reason: &str,
    ) -> Result<bool> {
        let r = sqlx::query::<DB>(
            "UPDATE exceptions SET revoked_at = $2, revoked_by = $3, revoke_reason = $4 \
             WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .arg(id)
        .arg(to_millis(at))
        .arg(by)
        .arg(reason)
        .exec(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn note_exception_expired(&mut self, id: &str, at: Timestamp) -> Result<bool> {
        let r = sqlx::query::<DB>(
            "UPDATE exceptions SET expired_noted_at = $2 WHERE id = $1 AND expired_noted_at IS NULL",
        )
        .arg(id)
        .arg(to_millis(at))
        .exec(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
