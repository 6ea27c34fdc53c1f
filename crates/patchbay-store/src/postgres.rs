//! PostgreSQL backend, for several stateless server replicas sharing one database.
//!
//! What differs from SQLite: read transactions are read-only repeatable-read
//! snapshots, the audit page aggregate, and rows claimed in write
//! transactions are locked (`FOR UPDATE [SKIP LOCKED]`).

use crate::engine::{Affected, Engine, SqlTx};
use crate::{Result, Store, StoreError, Tx, map_err};
use async_trait::async_trait;
use sqlx::Postgres;
use sqlx::postgres::{PgPool, PgPoolOptions, PgQueryResult};
use std::time::Duration;

impl Engine for Postgres {
    const AUDIT_PAGE: &'static str = "SELECT json_agg(json_build_array(seq, at, actor, action, target, outcome, \
         detail, prev_hash, hash, sig) ORDER BY seq)::text AS page \
         FROM (SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2) AS p";
    const LOCK_SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const LOCK: &'static str = " FOR UPDATE";
    const JSON_ROWS: &'static str = "jsonb_array_elements(CAST({} AS jsonb)) AS j(value)";
}

impl Affected for PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// Connections of the check-in pool ([`PgStore`]'s `checkin`), besides the
/// main pool's 16.
const CHECKIN_CONNECTIONS: u32 = 4;

/// How long `ping` (`/healthz`) waits for the database.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// The PostgreSQL store.
pub struct PgStore {
    pool: PgPool,
    /// A few connections for the check-ins' credential lookup
    /// ([`Store::agent_for_checkin`]), lent without sqlx's ping (the main
    /// pool pings before lending: a second round trip on every steady
    /// check-in). A connection that died while idle fails its lookup, which
    /// is then run once more on the main pool.
    checkin: PgPool,
}

impl PgStore {
    /// Connects and applies migrations (under sqlx's advisory lock, so replicas
    /// starting together migrate once).
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // While PostgreSQL is down sqlx retries connecting until this
            // runs out: it bounds how long a request waits before its 503.
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot connect to {}: {e}",
                    crate::redact_url(url)
                ))
            })?;
        crate::migrations::postgres()
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(format!("migrating {}: {e}", crate::redact_url(url))))?;
        let checkin = PgPoolOptions::new()
            .max_connections(CHECKIN_CONNECTIONS)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy(url)
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot connect to {}: {e}",
                    crate::redact_url(url)
                ))
            })?;
        Ok(Self { pool, checkin })
    }
}

#[async_trait]
impl Store for PgStore {
    async fn write(&self) -> Result<Box<dyn Tx>> {
        let tx = self.pool.begin().await.map_err(map_err)?;
        Ok(Box::new(SqlTx::<Postgres> { tx }))
    }

    async fn read(&self) -> Result<Box<dyn Tx>> {
        let tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(map_err)?;
        Ok(Box::new(SqlTx::<Postgres> { tx }))
    }

    async fn agent_for_checkin(
        &self,
        hash: &str,
    ) -> Result<Option<(crate::AgentRow, crate::CheckinState)>> {
        let first = async {
            let mut c = self.checkin.acquire().await.map_err(map_err)?;
            crate::role::agent_for_checkin_query::<Postgres>(&mut c, hash).await
        }
        .await;
        match first {
            // A connection lost while idle (a restarted server): sqlx drops
            // it; once more on the main pool, which checks before lending.
            Err(StoreError::Unavailable(e)) => {
                tracing::debug!(error = %e, "check-in lookup retried on the main pool");
                let mut c = self.pool.acquire().await.map_err(map_err)?;
                crate::role::agent_for_checkin_query::<Postgres>(&mut c, hash).await
            }
            r => r,
        }
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<()> {
        // A health check answers promptly: a database that cannot be reached
        // within PING_TIMEOUT is unavailable (the pool would wait longer).
        match tokio::time::timeout(PING_TIMEOUT, sqlx::query("SELECT 1").execute(&self.pool)).await
        {
            Ok(r) => {
                r.map_err(map_err)?;
                Ok(())
            }
            Err(_) => Err(StoreError::Unavailable(format!(
                "PostgreSQL did not answer within {} s",
                PING_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn close(&self) {
        self.checkin.close().await;
        self.pool.close().await;
    }
}
