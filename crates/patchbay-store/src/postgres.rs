//! PostgreSQL backend, for several stateless server replicas sharing one database.

use crate::sql::impl_tx;
use crate::{Result, Store, StoreError, Tx, map_err};
use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

impl_tx!(
    sqlx::Postgres,
    PgTx,
    "SELECT json_agg(json_build_array(seq, at, actor, action, target, outcome, detail, prev_hash, hash, sig) ORDER BY seq)::text \
     FROM (SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2) AS page"
);

/// The PostgreSQL store.
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects and applies migrations (under sqlx's advisory lock, so replicas
    /// starting together migrate once).
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
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
        Ok(Self { pool })
    }
}

#[async_trait]
impl Store for PgStore {
    async fn write(&self) -> Result<Box<dyn Tx>> {
        let tx = self.pool.begin().await.map_err(map_err)?;
        Ok(Box::new(PgTx { tx }))
    }

    async fn read(&self) -> Result<Box<dyn Tx>> {
        let tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(map_err)?;
        Ok(Box::new(PgTx { tx }))
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
