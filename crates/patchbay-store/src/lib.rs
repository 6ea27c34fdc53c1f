//! Patchbay storage: role-sized traits and their SQLite and PostgreSQL
//! implementations.
//!
//! Every operation runs inside a transaction ([`Tx`]) obtained from a [`Store`]:
//! the service layer opens one write transaction per state change and appends the
//! audit event inside it, so a change and its audit record commit or vanish
//! together. Driver errors never leave this crate: they become [`StoreError`].
//!
//! # Layout
//! - this file: errors, times, [`Tx`], [`Store`], [`open`] (backend chosen by URL).
//! - `role/*.rs`: one file per role (`assets`, `inventory`, `tokens`, `agents`,
//!   `audit`, `feeds`, `findings`, `plan`, `schedule`, `exceptions`, `changes`,
//!   `leases`, `events`), each with its trait, its row types and its one
//!   implementation, written once for both engines. A new role is a new file.
//! - `engine.rs`: the transaction type the roles are implemented for
//!   (`SqlTx<DB>`), generic over the engine, and the `Engine` trait naming what
//!   the roles need of one; the SQL is shared because both engines accept `$n`
//!   placeholders, `RETURNING` and `ON CONFLICT`.
//! - `sqlite.rs`, `postgres.rs`: each makes its sqlx database an `Engine` (the
//!   few per-engine statements), and holds pools, pragmas, migrations.
//! - `migrations/{sqlite,postgres}/NNNN_*.sql`: append-only, versions in lock-step.
//!
//! **Invariant:** SQLite has exactly one writer (a one-connection write pool whose
//! transactions start with `BEGIN IMMEDIATE`), so writers queue instead of failing
//! with `SQLITE_BUSY`.
#![forbid(unsafe_code)]

mod engine;
mod migrations;
mod postgres;
mod role;
mod sqlite;
pub mod testing;

use async_trait::async_trait;
use jiff::Timestamp;
use std::sync::Arc;

pub use migrations::MIGRATION_VERSIONS;
pub use postgres::PgStore;
pub use role::*;
pub use sqlite::SqliteStore;

/// Storage errors, free of driver types.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A uniqueness or state conflict.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or is overloaded.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else (corrupt data, bad SQL: bugs).
    #[error("storage error: {0}")]
    Other(String),
    /// Stored evidence fails an integrity check (the audit chain's head is not
    /// signed by this server's key): the write is refused, nothing changed.
    #[error("integrity: {0}")]
    Integrity(String),
}

/// Result alias.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Converts a timestamp to the stored form (milliseconds since the epoch).
pub fn to_millis(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// Converts the stored form back.
pub fn from_millis(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms)
        .map_err(|e| StoreError::Other(format!("bad timestamp {ms}: {e}")))
}

/// A transaction over every role store. Dropping it without [`Tx::commit`] rolls back.
#[async_trait]
pub trait Tx:
    AssetStore
    + InventoryStore
    + TokenStore
    + AgentStore
    + AuditStore
    + FeedStore
    + FindingStore
    + FindingSeqStore
    + PlanStore
    + ScheduleStore
    + ExceptionStore
    + ChangeStore
    + LeaseStore
    + EventStore
    + RolloutStore
    + WebhookStore
    + SiemStore
    + ContactStore
    + EscalationStore
    + DiscoveryStore
    + CsafStore
    + UserStore
    + DriftStore
    + ImpactStore
    + BackupStore
    + Send
{
    /// Commits.
    async fn commit(self: Box<Self>) -> Result<()>;
}

/// A database.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Begins a write transaction (serialised on SQLite).
    async fn write(&self) -> Result<Box<dyn Tx>>;
    /// Begins a read transaction (a consistent snapshot).
    async fn read(&self) -> Result<Box<dyn Tx>>;
    /// A check-in's credential lookup ([`AgentStore::agent_for_checkin`]) as
    /// one statement on a pooled connection, outside any transaction: the
    /// hot path of every steady check-in. One statement reads one consistent
    /// snapshot on both engines, so nothing is lost against a read
    /// transaction, and on PostgreSQL it is one round trip instead of three
    /// (`BEGIN`, the query, the `ROLLBACK` of dropping the transaction).
    /// The default runs it in a read transaction.
    async fn agent_for_checkin(&self, hash: &str) -> Result<Option<(AgentRow, CheckinState)>> {
        self.read().await?.agent_for_checkin(hash).await
    }
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
    /// Closes the pools.
    async fn close(&self);
}

/// Opens the database named by `url` and applies pending migrations.
///
/// `postgres://…` and `postgresql://…` select PostgreSQL; `sqlite://PATH`,
/// `sqlite:PATH` or a bare path select SQLite (the file is created if missing).
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if is_postgres_url(url) {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        Ok(Arc::new(
            SqliteStore::open(std::path::Path::new(sqlite_path(url))).await?,
        ))
    }
}

/// Writes a consistent copy of the SQLite database `url` names to `dest`
/// with `VACUUM INTO` (an online backup: it reads one snapshot while the
/// server goes on writing, and the copy is compacted). `dest` must not exist.
pub async fn sqlite_snapshot(url: &str, dest: &std::path::Path) -> Result<()> {
    use sqlx::Connection;
    let path = sqlite_path(url);
    if !std::path::Path::new(path).is_file() {
        return Err(StoreError::NotFound(format!(
            "no SQLite database at {path}"
        )));
    }
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(30));
    let mut c = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .map_err(map_err)?;
    let dest = dest
        .to_str()
        .ok_or_else(|| StoreError::Other(format!("{}: not UTF-8", dest.display())))?;
    sqlx::query("VACUUM INTO ?")
        .bind(dest)
        .execute(&mut c)
        .await
        .map_err(map_err)?;
    c.close().await.map_err(map_err)?;
    Ok(())
}

/// Whether a server has initialised the database at `url` (its migrations
/// have run), without creating or changing anything: tools that write next
/// to the database (`feeds import --db`) refuse one that no server made.
pub async fn initialised(url: &str) -> Result<bool> {
    if is_postgres_url(url) {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot connect to {}: {e}", redact_url(url)))
            })?;
        let found: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
                .fetch_one(&pool)
                .await
                .map_err(|e| StoreError::Other(e.to_string()))?;
        pool.close().await;
        Ok(found.is_some())
    } else {
        Ok(std::path::Path::new(sqlite_path(url)).exists())
    }
}

/// Whether `url` names a PostgreSQL database (else it names a SQLite file).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The file of a SQLite URL: `sqlite://PATH`, `sqlite:PATH` or a bare path.
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

/// Redacts the password of a database URL for logs.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((creds, host)) = rest.rsplit_once('@')
    {
        let user = creds.split(':').next().unwrap_or("");
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(d.message().to_string())
        }
        sqlx::Error::Database(d) if d.message().contains("database is locked") => {
            StoreError::Unavailable(d.message().to_string())
        }
        sqlx::Error::Database(d) if is_disk_full(d.code().as_deref(), d.message()) => {
            StoreError::Unavailable(format!("{DISK_FULL}: {}", d.message()))
        }
        // PostgreSQL going away under a pooled connection: class 08
        // (connection exception) and 57P01–57P03 (admin shutdown, crash
        // shutdown, cannot connect now) are outages, not bugs.
        sqlx::Error::Database(d)
            if d.code().is_some_and(|c| {
                c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
            }) =>
        {
            StoreError::Unavailable(d.message().to_string())
        }
        _ if is_disk_full(None, &e.to_string()) => {
            StoreError::Unavailable(format!("{DISK_FULL}: {e}"))
        }
        _ => StoreError::Other(e.to_string()),
    }
}

/// The prefix of a [`StoreError::Unavailable`] whose cause is a full disk
/// (the HTTP layer names it: writes are refused until space is freed).
pub const DISK_FULL: &str = "disk full";

/// SQLite's `SQLITE_FULL` (13), PostgreSQL's `disk_full` (53100), or an
/// operating-system `ENOSPC` in the message.
fn is_disk_full(code: Option<&str>, message: &str) -> bool {
    matches!(code, Some("13" | "53100"))
        || message.contains("database or disk is full")
        || message.contains("No space left on device")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
