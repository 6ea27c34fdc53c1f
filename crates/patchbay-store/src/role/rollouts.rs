//! Rollouts and the jobs they lease to agents (`rollouts`, `agent_jobs`).
//!
//! The rollout driver writes a rollout's new state and the jobs its step
//! produced in one transaction before anything is sent; the check-in hands an
//! agent its undelivered-or-unanswered jobs and stores each result once per
//! key; the driver consumes stored results as observations exactly once.

use crate::engine::{Engine, Get, QueryExt, SqlTx};
use crate::{Result, StoreError, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// A rollout as stored: the core state machine's state as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutRow {
    /// The deployment (`DEP-…`).
    pub deployment: String,
    /// `patchbay_core::rollout::Rollout`, as JSON.
    pub state: serde_json::Value,
    /// Its deployment state's wire name (for listing without decoding).
    pub status: String,
    /// Last written.
    pub updated_at: Timestamp,
}

/// A job leased to an agent, and its result once reported.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentJobRow {
    /// Idempotency key.
    pub key: String,
    /// The deployment.
    pub deployment: String,
    /// The asset whose agent runs it.
    pub asset: String,
    /// The signed job (`patchbay_core::job::SignedJob`) as JSON.
    pub job: serde_json::Value,
    /// When it was leased.
    pub leased_at: Timestamp,
    /// When an agent was first handed it.
    pub delivered_at: Option<Timestamp>,
    /// The agent's result (`patchbay_proto::agent::JobResult`) as JSON.
    pub result: Option<serde_json::Value>,
    /// When the result was stored.
    pub result_at: Option<Timestamp>,
    /// When the driver took the result in.
    pub consumed_at: Option<Timestamp>,
}

/// When a job was leased and answered, without its signed job or result (what
/// the rollout-outcomes report reads for every job at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentJobTimes {
    /// Idempotency key (`DEP-…/host`, `…/rollback` for a rollback job).
    pub key: String,
    /// The deployment.
    pub deployment: String,
    /// When it was leased.
    pub leased_at: Timestamp,
    /// When its result was stored.
    pub result_at: Option<Timestamp>,
}

/// Rollout state and agent jobs.
#[async_trait]
pub trait RolloutStore {
    /// Writes a rollout's state (insert or replace).
    async fn put_rollout(&mut self, r: &RolloutRow) -> Result<()>;
    /// A rollout by deployment.
    async fn rollout(&mut self, deployment: &str) -> Result<Option<RolloutRow>>;
    /// A rollout read to be changed, in a write transaction: its row is
    /// locked until commit, so two writers (the rollout driver on the leader
    /// and an operator's action on any replica, or an old and a new leader
    /// overlapping at a handover) never step the same state and overwrite
    /// each other. With `skip_locked`, a row another transaction holds is
    /// skipped (`None`, like a missing one) instead of waited for; PostgreSQL
    /// `FOR UPDATE [SKIP LOCKED]`, SQLite's single writer needs no clause.
    async fn lock_rollout(
        &mut self,
        deployment: &str,
        skip_locked: bool,
    ) -> Result<Option<RolloutRow>>;
    /// Rollouts whose status is one of `statuses`, by deployment.
    async fn rollouts_with_status(&mut self, statuses: &[&str]) -> Result<Vec<RolloutRow>>;
    /// Every rollout.
    async fn list_rollouts(&mut self) -> Result<Vec<RolloutRow>>;
    /// Leases a job; a key leased before is left as it is (returns false).
    async fn insert_agent_job(&mut self, j: &AgentJobRow) -> Result<bool>;
    /// Jobs of `asset` without a stored result, oldest first (re-delivered
    /// until answered: the agent's journal keeps a key from running twice).
    async fn open_jobs_for(&mut self, asset: &str, limit: i64) -> Result<Vec<AgentJobRow>>;
    /// Marks jobs handed to an agent (first delivery time kept).
    async fn mark_delivered(&mut self, keys: &[String], at: Timestamp) -> Result<()>;
    /// Stores a result for `key` of `asset`'s job if none is stored yet:
    /// `Some(true)` stored now, `Some(false)` one was stored before (both are
    /// acknowledged), `None` no such job of that asset.
    async fn store_job_result(
        &mut self,
        asset: &str,
        key: &str,
        result: &serde_json::Value,
        at: Timestamp,
    ) -> Result<Option<bool>>;
    /// Stored results the driver has not taken in yet, for a deployment.
    async fn unconsumed_results(&mut self, deployment: &str) -> Result<Vec<AgentJobRow>>;
    /// Marks results taken in.
    async fn mark_consumed(&mut self, keys: &[String], at: Timestamp) -> Result<()>;
    /// Every job of a deployment.
    async fn jobs_of(&mut self, deployment: &str) -> Result<Vec<AgentJobRow>>;
    /// Every job of every deployment, its times only, by deployment and key.
    async fn agent_job_times(&mut self) -> Result<Vec<AgentJobTimes>>;
}

fn json(s: &str, what: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Other(format!("stored {what} is not JSON: {e}")))
}

fn rollout_row<R: Get<String> + Get<i64>>(r: &R) -> Result<RolloutRow> {
    let state: String = r.col("state")?;
    Ok(RolloutRow {
        deployment: r.col("deployment")?,
        state: json(&state, "rollout state")?,
        status: r.col("status")?,
        updated_at: from_millis(r.col("updated_at")?)?,
    })
}

fn job_row<R: Get<String> + Get<i64> + Get<Option<i64>> + Get<Option<String>>>(
    r: &R,
) -> Result<AgentJobRow> {
    let job: String = r.col("job")?;
    let result: Option<String> = r.col("result")?;
    Ok(AgentJobRow {
        key: r.col("key")?,
        deployment: r.col("deployment")?,
        asset: r.col("asset")?,
        job: json(&job, "job")?,
        leased_at: from_millis(r.col("leased_at")?)?,
        delivered_at: crate::engine::opt_ts(r.col("delivered_at")?)?,
        result: result.map(|t| json(&t, "job result")).transpose()?,
        result_at: crate::engine::opt_ts(r.col("result_at")?)?,
        consumed_at: crate::engine::opt_ts(r.col("consumed_at")?)?,
    })
}

/// The columns of an [`AgentJobRow`] (a macro so statements stay `&'static str`).
macro_rules! job_cols {
    () => {
        "key, deployment, asset, job, leased_at, delivered_at, result, result_at, consumed_at"
    };
}

#[async_trait]
impl<DB: Engine> RolloutStore for SqlTx<DB> {
    async fn put_rollout(&mut self, r: &RolloutRow) -> Result<()> {
        sqlx::query::<DB>(
            "INSERT INTO rollouts (deployment, state, status, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (deployment) DO UPDATE SET state = excluded.state, status = excluded.status, \
             updated_at = excluded.updated_at",
        )
        .arg(&r.deployment)
        .arg(r.state.to_string())
        .arg(&r.status)
        .arg(to_millis(r.updated_at))
        .exec(self.conn())
        .await?;
        Ok(())
    }

    async fn rollout(&mut self, deployment: &str) -> Result<Option<RolloutRow>> {
        sqlx::query::<DB>(
            "SELECT deployment, state, status, updated_at FROM rollouts WHERE deployment = $1",
        )
        .arg(deployment)
        .opt(self.conn())
        .await?
        .map(|r| rollout_row(&r))
        .transpose()
    }

    async fn lock_rollout(
        &mut self,
        deployment: &str,
        skip_locked: bool,
    ) -> Result<Option<RolloutRow>> {
        let sql = format!(
            "SELECT deployment, state, status, updated_at FROM rollouts WHERE deployment = $1{}",
            if skip_locked {
                DB::LOCK_SKIP_LOCKED
            } else {
                DB::LOCK
            }
        );
        // Only the engine's constant clause is spliced in; the value is bound.
        sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
            .arg(deployment)
            .opt(self.conn())
            .await?
            .map(|r| rollout_row(&r))
            .transpose()
    }

    async fn rollouts_with_status(&mut self, statuses: &[&str]) -> Result<Vec<RolloutRow>> {
        let mut out = Vec::new();
        for s in statuses {
            let rows = sqlx::query::<DB>(
                "SELECT deployment, state, status, updated_at FROM rollouts WHERE status = $1 \
                 ORDER BY deployment",
            )
            .arg(*s)
            .all(self.conn())
            .await?;
            for r in rows {
                out.push(rollout_row(&r)?);
            }
        }
        out.sort_by(|a, b| a.deployment.cmp(&b.deployment));
        Ok(out)
    }

    async fn list_rollouts(&mut self) -> Result<Vec<RolloutRow>> {
        sqlx::query::<DB>(
            "SELECT deployment, state, status, updated_at FROM rollouts ORDER BY deployment",
        )
        .all(self.conn())
        .await?
        .iter()
        .map(rollout_row)
        .collect()
    }

    async fn insert_agent_job(&mut self, j: &AgentJobRow) -> Result<bool> {
        let r = sqlx::query::<DB>(
            "INSERT INTO agent_jobs (key, deployment, asset, job, leased_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (key) DO NOTHING",
        )
        .arg(&j.key)
        .arg(&j.deployment)
        .arg(&j.asset)
        .arg(j.job.to_string())
        .arg(to_millis(j.leased_at))
        .exec(self.conn())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn open_jobs_for(&mut self, asset: &str, limit: i64) -> Result<Vec<AgentJobRow>> {
        sqlx::query::<DB>(concat!(
            "SELECT ",
            job_cols!(),
            " FROM agent_jobs WHERE asset = $1 AND result_at IS NULL \
             ORDER BY leased_at, key LIMIT $2"
        ))
        .arg(asset)
        .arg(limit)
        .all(self.conn())
        .await?
        .iter()
        .map(job_row)
        .collect()
    }

    async fn mark_delivered(&mut self, keys: &[String], at: Timestamp) -> Result<()> {
        for k in keys {
            sqlx::query::<DB>(
                "UPDATE agent_jobs SET delivered_at = $2 WHERE key = $1 AND delivered_at IS NULL",
            )
            .arg(k)
            .arg(to_millis(at))
            .exec(self.conn())
            .await?;
        }
        Ok(())
    }

    async fn store_job_result(
        &mut self,
        asset: &str,
        key: &str,
        result: &serde_json::Value,
        at: Timestamp,
    ) -> Result<Option<bool>> {
        let stored = sqlx::query::<DB>(
            "UPDATE agent_jobs SET result = $3, result_at = $4 \
             WHERE key = $1 AND asset = $2 AND result_at IS NULL",
        )
        .arg(key)
        .arg(asset)
        .arg(result.to_string())
        .arg(to_millis(at))
        .exec(self.conn())
        .await?
        .rows_affected()
            > 0;
        if stored {
            return Ok(Some(true));
        }
        let known = sqlx::query::<DB>(
            "SELECT key FROM agent_jobs WHERE key = $1 AND asset = $2 AND result_at IS NOT NULL",
        )
        .arg(key)
        .arg(asset)
        .opt(self.conn())
        .await?;
        Ok(known.map(|_| false))
    }

    async fn unconsumed_results(&mut self, deployment: &str) -> Result<Vec<AgentJobRow>> {
        sqlx::query::<DB>(concat!(
            "SELECT ",
            job_cols!(),
            " FROM agent_jobs WHERE deployment = $1 AND result_at IS NOT NULL \
             AND consumed_at IS NULL ORDER BY result_at, key"
        ))
        .arg(deployment)
        .all(self.conn())
        .await?
        .iter()
        .map(job_row)
        .collect()
    }

    async fn mark_consumed(&mut self, keys: &[String], at: Timestamp) -> Result<()> {
        for k in keys {
            sqlx::query::<DB>(
                "UPDATE agent_jobs SET consumed_at = $2 WHERE key = $1 AND consumed_at IS NULL",
            )
            .arg(k)
            .arg(to_millis(at))
            .exec(self.conn())
            .await?;
        }
        Ok(())
    }

    async fn jobs_of(&mut self, deployment: &str) -> Result<Vec<AgentJobRow>> {
        sqlx::query::<DB>(concat!(
            "SELECT ",
            job_cols!(),
            " FROM agent_jobs WHERE deployment = $1 ORDER BY leased_at, key"
        ))
        .arg(deployment)
        .all(self.conn())
        .await?
        .iter()
        .map(job_row)
        .collect()
    }

    async fn agent_job_times(&mut self) -> Result<Vec<AgentJobTimes>> {
        sqlx::query::<DB>(
            "SELECT key, deployment, leased_at, result_at FROM agent_jobs ORDER BY deployment, key",
        )
        .all(self.conn())
        .await?
        .iter()
        .map(|r| {
            Ok(AgentJobTimes {
                key: r.col("key")?,
                deployment: r.col("deployment")?,
                leased_at: from_millis(r.col("leased_at")?)?,
                result_at: crate::engine::opt_ts(r.col("result_at")?)?,
            })
        })
        .collect()
    }
}
