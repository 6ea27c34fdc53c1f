//! Enrolled agents and enrolment approvals (`agents`, `enrollment_approvals`),
//! and the queries of write-free check-ins: [`AgentStore::agent_for_checkin`]
//! (the credential lookup and what an unchanged check-in needs, in one
//! query: the whole steady-state check-in is one read),
//! [`AgentStore::checkin_state`] (the same state by asset, for a caller
//! authenticated without it) and [`AgentStore::record_seen`] (a batch of
//! liveness times, flushed from memory).

use crate::engine::{Engine, Get, QueryExt, SeparatedExt, SqlTx, opt_ts};
use crate::{Result, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::QueryBuilder;

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

/// What an unchanged check-in needs to know of its asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckinState {
    /// The asset's name.
    pub asset_name: String,
    /// The inventory hash the server holds.
    pub inventory_hash: Option<String>,
    /// Whether the asset has a job without a result (to hand over or re-hand).
    pub open_jobs: bool,
}

/// One check-in's liveness, recorded in memory and flushed in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The asset that checked in.
    pub asset_id: i64,
    /// The agent that checked in for it.
    pub agent_id: String,
    /// When.
    pub at: Timestamp,
}

/// Rows per `UPDATE … FROM (VALUES …)` statement of [`AgentStore::record_seen`]
/// (two bound values each; far below both engines' parameter limits).
const SEEN_CHUNK: usize = 500;

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
    /// [`AgentStore::agent_by_secret_hash`] joined with its asset's
    /// [`AgentStore::checkin_state`], in one query: the one read of an
    /// unchanged check-in.
    async fn agent_for_checkin(&mut self, hash: &str) -> Result<Option<(AgentRow, CheckinState)>>;
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
    /// The asset's name, held inventory hash and whether it has open jobs, in
    /// one query (`None`: no asset with that id).
    async fn checkin_state(&mut self, asset_id: i64) -> Result<Option<CheckinState>>;
    /// Records check-in times in batches: each asset's `last_seen_at` and each
    /// agent's `last_checkin_at` become the later of the stored and the given
    /// time (never earlier: several replicas flush the same assets, in any
    /// order). Returns the asset rows changed.
    async fn record_seen(&mut self, seen: &[Seen]) -> Result<u64>;
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

    async fn agent_for_checkin(&mut self, hash: &str) -> Result<Option<(AgentRow, CheckinState)>> {
        agent_for_checkin_query::<DB>(self.conn(), hash).await
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

    async fn checkin_state(&mut self, asset_id: i64) -> Result<Option<CheckinState>> {
        let row = sqlx::query::<DB>(
            "SELECT a.name, a.inventory_hash, \
               CAST(CASE WHEN EXISTS (SELECT 1 FROM agent_jobs j \
                 WHERE j.asset = a.name AND j.result_at IS NULL) THEN 1 ELSE 0 END AS BIGINT) AS open_jobs \
             FROM assets a WHERE a.id = $1",
        )
        .arg(asset_id)
        .opt(self.conn())
        .await?;
        row.map(|r| {
            let open: i64 = r.col("open_jobs")?;
            Ok(CheckinState {
                asset_name: r.col("name")?,
                inventory_hash: r.col("inventory_hash")?,
                open_jobs: open != 0,
            })
        })
        .transpose()
    }

    async fn record_seen(&mut self, seen: &[Seen]) -> Result<u64> {
        let mut changed = 0;
        // `VALUES` names its columns column1, column2 on both engines.
        for chunk in seen.chunks(SEEN_CHUNK) {
            let mut qb =
                QueryBuilder::<DB>::new("UPDATE assets SET last_seen_at = v.column2 FROM (");
            qb.push_values(chunk, |mut b, s| {
                b.push_arg(s.asset_id).push_arg(to_millis(s.at));
            });
            qb.push(
                ") AS v WHERE assets.id = v.column1 \
                 AND (assets.last_seen_at IS NULL OR assets.last_seen_at < v.column2)",
            );
            changed += qb.build().exec(self.conn()).await?.rows_affected();
            let mut qb =
                QueryBuilder::<DB>::new("UPDATE agents SET last_checkin_at = v.column2 FROM (");
            qb.push_values(chunk, |mut b, s| {
                b.push_arg(s.agent_id.clone()).push_arg(to_millis(s.at));
            });
            qb.push(
                ") AS v WHERE agents.id = v.column1 \
                 AND (agents.last_checkin_at IS NULL OR agents.last_checkin_at < v.column2)",
            );
            qb.build().exec(self.conn()).await?;
        }
        Ok(changed)
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

/// The query of [`AgentStore::agent_for_checkin`] on any connection: in a
/// read transaction, or alone on a pooled connection
/// ([`crate::Store::agent_for_checkin`]) — one statement reads one
/// consistent snapshot either way.
pub(crate) async fn agent_for_checkin_query<DB: Engine>(
    c: &mut DB::Connection,
    hash: &str,
) -> Result<Option<(AgentRow, CheckinState)>> {
    let row = sqlx::query::<DB>(
        "SELECT g.id, g.asset_id, a.name, g.enrolled_at, g.last_checkin_at, g.revoked_at, \
           g.cert_sha256, g.cert_not_after, a.inventory_hash, \
           CAST(CASE WHEN EXISTS (SELECT 1 FROM agent_jobs j \
             WHERE j.asset = a.name AND j.result_at IS NULL) THEN 1 ELSE 0 END AS BIGINT) AS open_jobs \
         FROM agents g JOIN assets a ON a.id = g.asset_id WHERE g.secret_hash = $1",
    )
    .arg(hash)
    .opt(c)
    .await?;
    row.map(|r| {
        let open: i64 = r.col("open_jobs")?;
        let name: String = r.col("name")?;
        Ok((
            AgentRow {
                id: r.col("id")?,
                asset_id: r.col("asset_id")?,
                asset_name: name.clone(),
                enrolled_at: from_millis(r.col("enrolled_at")?)?,
                last_checkin_at: opt_ts(r.col("last_checkin_at")?)?,
                revoked_at: opt_ts(r.col("revoked_at")?)?,
                cert_sha256: r.col("cert_sha256")?,
                cert_not_after: opt_ts(r.col("cert_not_after")?)?,
            },
            CheckinState {
                asset_name: name,
                inventory_hash: r.col("inventory_hash")?,
                open_jobs: open != 0,
            },
        ))
    })
    .transpose()
}
