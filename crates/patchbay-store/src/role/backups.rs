//! Backup verifications (`backup_verifications`, migration 0115; issue 18,
//! item 6, ADR 0020): the hosts of a deployment sampled to verify their
//! snapshot, and each verdict.

use crate::engine::{Engine, Get, QueryExt, SqlTx};
use crate::{Result, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// One verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupVerificationRow {
    /// The `verify_snapshot` job's key.
    pub key: String,
    /// The deployment.
    pub deployment: String,
    /// The host's ring.
    pub ring: String,
    /// The host.
    pub host: String,
    /// The snapshot's identity (as the apply's `hooks.snapshot` printed it).
    pub snapshot: String,
    /// When asked.
    pub requested_at: Timestamp,
    /// `pending`, `verified` or `failed`.
    pub verdict: String,
    /// The hook's output excerpt (or why it could not run).
    pub excerpt: String,
    /// When the agent's result was taken in.
    pub result_at: Option<Timestamp>,
}

/// Backup verifications.
#[async_trait]
pub trait BackupStore {
    /// Records a requested verification (`pending`); a key asked before is
    /// left as it is. Whether it was new.
    async fn add_backup_verification(&mut self, row: &BackupVerificationRow) -> Result<bool>;
    /// Sets a verification's verdict and excerpt.
    async fn set_backup_verdict(
        &mut self,
        key: &str,
        verdict: &str,
        excerpt: &str,
        at: Timestamp,
    ) -> Result<bool>;
    /// The verifications of `deployment`, by host.
    async fn backup_verifications_of(
        &mut self,
        deployment: &str,
    ) -> Result<Vec<BackupVerificationRow>>;
    /// The verifications asked in `[from, to)`, oldest first.
    async fn backup_verifications_between(
        &mut self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<BackupVerificationRow>>;
}

fn row<DB: Engine>(r: &DB::Row) -> Result<BackupVerificationRow> {
    let result_at: Option<i64> = r.col("result_at")?;
    Ok(BackupVerificationRow {
        key: r.col("job_key")?,
        deployment: r.col("deployment")?,
        ring: r.col("ring")?,
        host: r.col("host")?,
        snapshot: r.col("snapshot")?,
        requested_at: from_millis(r.col("requested_at")?)?,
        verdict: r.col("verdict")?,
        excerpt: r.col("excerpt")?,
        result_at: match result_at {
            Some(ms) => Some(from_millis(ms)?),
            None => None,
        },
    })
}

#[async_trait]
impl<DB: Engine> BackupStore for SqlTx<DB> {
    async fn add_backup_verification(&mut self, r: &BackupVerificationRow) -> Result<bool> {
        let done = sqlx::query::<DB>(
            "INSERT INTO backup_verifications (job_key, deployment, ring, host, snapshot, \
             requested_at, verdict, excerpt, result_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL) \
             ON CONFLICT (job_key) DO NOTHING",
        )
        .arg(r.key.as_str())
        .arg(r.deployment.as_str())
        .arg(r.ring.as_str())
        .arg(r.host.as_str())
        .arg(r.snapshot.as_str())
        .arg(to_millis(r.requested_at))
        .arg(r.verdict.as_str())
        .arg(r.excerpt.as_str())
        .exec(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_backup_verdict(
        &mut self,
        key: &str,
        verdict: &str,
        excerpt: &str,
        at: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query::<DB>(
            "UPDATE backup_verifications SET verdict = $1, excerpt = $2, result_at = $3 \
             WHERE job_key = $4",
        )
        .arg(verdict)
        .arg(excerpt)
        .arg(to_millis(at))
        .arg(key)
        .exec(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn backup_verifications_of(
        &mut self,
        deployment: &str,
    ) -> Result<Vec<BackupVerificationRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT job_key, deployment, ring, host, snapshot, requested_at, verdict, excerpt, \
             result_at FROM backup_verifications WHERE deployment = $1",
        )
        .arg(deployment)
        .all(self.conn())
        .await?;
        let mut out = rows.iter().map(row::<DB>).collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.host.cmp(&b.host).then(a.key.cmp(&b.key)));
        Ok(out)
    }

    async fn backup_verifications_between(
        &mut self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<BackupVerificationRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT job_key, deployment, ring, host, snapshot, requested_at, verdict, excerpt, \
             result_at FROM backup_verifications WHERE requested_at >= $1 AND requested_at < $2",
        )
        .arg(to_millis(from))
        .arg(to_millis(to))
        .all(self.conn())
        .await?;
        let mut out = rows.iter().map(row::<DB>).collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.requested_at.cmp(&b.requested_at).then(a.key.cmp(&b.key)));
        Ok(out)
    }
}
