//! Enrolled agents and enrolment approvals (`agents`, `enrollment_approvals`).

use crate::engine::{Engine, Get, QueryExt, SqlTx, opt_ts};
use crate::{Result, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// A stored agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    /// Agent id.
    pub id: String,
    /// Asset id.
    pub asset_id: i64,
    /// Asset name.
    pub asset_name: String,
    /// Enrolment time.
    pub enrolled_at: Timestamp,
    /// Last check-in.
    pub last_checkin_at: Option<Timestamp>,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
    /// SHA-256 (hex) of the client certificate issued to the agent last.
    pub cert_sha256: Option<String>,
    /// End of that certificate's validity.
    pub cert_not_after: Option<Timestamp>,
}

/// Enrolled agents.
#[async_trait]
pub trait AgentStore {
    /// Inserts an agent.
    async fn insert_agent(
        &mut self,
        id: &str,
        asset_id: i64,
        secret_hash: &str,
        enroll_token_id: Option<i64>,
        now: Timestamp,
    ) -> Result<()>;
    /// Finds an agent by its secret's hash.
    async fn agent_by_secret_hash(&mut self, hash: &str) -> Result<Option<AgentRow>>;
    /// Revokes all agents of an asset (on re-enrolment).
    async fn revoke_agents_of_asset(&mut self, asset_id: i64, now: Timestamp) -> Result<u64>;
    /// Records the client certificate issued to an agent (replacing the
    /// one before: only the latest is accepted).
    async fn set_agent_certificate(
        &mut self,
        id: &str,
        sha256: &str,
        not_after: Timestamp,
    ) -> Result<()>;
    /// Records a check-in.
    async fn touch_agent(&mut self, id: &str, at: Timestamp) -> Result<()>;
    /// Number of agents of an asset that are not revoked.
    async fn active_agents_of_asset(&mut self, asset_id: i64) -> Result<u64>;
    /// Records an operator's approval for the next enrolment to take over (or
    /// adopt) an asset; returns its id.
    async fn insert_enrollment_approval(
        &mut self,
        asset_id: i64,
        approved_by: &str,
        note: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<i64>;
    /// Uses up the oldest unused, unexpired enrolment approval of an asset;
    /// returns its id and approver, or `None` when there is none.
    async fn take_enrollment_approval(
        &mut self,
        asset_id: i64,
        now: Timestamp,
    ) -> Result<Option<(i64, String)>>;
}

#[async_trait]
impl<DB: Engine> AgentStore for SqlTx<DB> {
    async fn insert_agent(
        &mut self,
        id: &str,
        asset_id: i64,
        secret_hash: &str,
        enroll_token_id: Option<i64>,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query::<DB>(
            "INSERT INTO agents (id, asset_id, secret_hash, enroll_token_id, enrolled_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .arg(id)
        .arg(asset_id)
        .arg(secret_hash)
        .arg(enroll_token_id)
        .arg(to_millis(now))
        .exec(self.conn())
        .await?;
        Ok(())
    }

    async fn agent_by_secret_hash(&mut self, hash: &str) -> Result<Option<AgentRow>> {
        let row = sqlx::query::<DB>(
            "SELECT g.id, g.asset_id, a.name, g.enrolled_at, g.last_checkin_at, g.revoked_at, \
             g.cert_sha256, g.cert_not_after FROM agents g JOIN assets a ON a.id = g.asset_id WHERE g.secret_hash = $1",
        )
        .arg(hash)
        .opt(self.conn())
        .await?;
        row.map(|r| {
            Ok(AgentRow {
                id: r.col("id")?,
                asset_id: r.col("asset_id")?,
                asset_name: r.col("name")?,
                enrolled_at: from_millis(r.col("enrolled_at")?)?,
                last_checkin_at: opt_ts(r.col("last_checkin_at")?)?,
                revoked_at: opt_ts(r.col("revoked_at")?)?,
                cert_sha256: r.col("cert_sha256")?,
                cert_not_after: opt_ts(r.col("cert_not_after")?)?,
            })
        })
        .transpose()
    }

    async fn revoke_agents_of_asset(&mut self, asset_id: i64, now: Timestamp) -> Result<u64> {
        let r = sqlx::query::<DB>(
            "UPDATE agents SET revoked_at = $2 WHERE asset_id = $1 AND revoked_at IS NULL",
        )
        .arg(asset_id)
        .arg(to_millis(now))
        .exec(self.conn())
        .await?;
        Ok(r.rows_affected())
    }

    async fn set_agent_certificate(
        &mut self,
        id: &str,
        sha256: &str,
        not_after: Timestamp,
    ) -> Result<()> {
        sqlx::query::<DB>("UPDATE agents SET cert_sha256 = $2, cert_not_after = $3 WHERE id = $1")
            .arg(id)
            .arg(sha256)
            .arg(to_millis(not_after))
            .exec(self.conn())
            .await?;
        Ok(())
    }

    async fn touch_agent(&mut self, id: &str, at: Timestamp) -> Result<()> {
        sqlx::query::<DB>("UPDATE agents SET last_checkin_at = $2 WHERE id = $1")
            .arg(id)
            .arg(to_millis(at))
            .exec(self.conn())
            .await?;
        Ok(())
    }

    async fn active_agents_of_asset(&mut self, asset_id: i64) -> Result<u64> {
        let r = sqlx::query::<DB>(
            "SELECT COUNT(*) AS n FROM agents WHERE asset_id = $1 AND revoked_at IS NULL",
        )
        .arg(asset_id)
        .one(self.conn())
        .await?;
        let n: i64 = r.col("n")?;
        Ok(n.max(0) as u64)
    }

    async fn insert_enrollment_approval(
        &mut self,
        asset_id: i64,
        approved_by: &str,
        note: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<i64> {
        let r = sqlx::query::<DB>(
            "INSERT INTO enrollment_approvals (asset_id, approved_by, approved_at, expires_at, note) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .arg(asset_id)
        .arg(approved_by)
        .arg(to_millis(now))
        .arg(to_millis(expires_at))
        .arg(note)
        .one(self.conn())
        .await?;
        r.col("id")
    }

    async fn take_enrollment_approval(
        &mut self,
        asset_id: i64,
        now: Timestamp,
    ) -> Result<Option<(i64, String)>> {
        // One statement: on PostgreSQL the UPDATE's row lock makes two
        // concurrent enrolments race for one approval, and only one wins.
        let row = sqlx::query::<DB>(
            "UPDATE enrollment_approvals SET used_at = $2 WHERE id = ( \
               SELECT id FROM enrollment_approvals \
               WHERE asset_id = $1 AND used_at IS NULL AND expires_at > $2 \
               ORDER BY id LIMIT 1) \
             AND used_at IS NULL RETURNING id, approved_by",
        )
        .arg(asset_id)
        .arg(to_millis(now))
        .opt(self.conn())
        .await?;
        row.map(|r| Ok((r.col("id")?, r.col("approved_by")?)))
            .transpose()
    }
}
