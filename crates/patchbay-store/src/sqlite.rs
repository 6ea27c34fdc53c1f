//! SQLite backend: one file, WAL, one writer.
//!
//! What differs from PostgreSQL: write transactions begin with
//! `BEGIN IMMEDIATE` on a one-connection pool, and the audit page aggregate.

use crate::engine::{Affected, Engine, SqlTx};
use crate::{Result, Store, StoreError, Tx, map_err};
use async_trait::async_trait;
use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use std::path::Path;
use std::time::Duration;

impl Engine for Sqlite {
    const AUDIT_PAGE: &'static str = "SELECT json_group_array(json_array(seq, at, actor, action, target, outcome, \
         detail, prev_hash, hash, sig)) AS page \
         FROM (SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2) HAVING COUNT(*) > 0";
    // One writer at a time (BEGIN IMMEDIATE): a row read in a write
    // transaction is already the writer's alone.
    const LOCK_SKIP_LOCKED: &'static str = "";
    const LOCK: &'static str = "";
    const JSON_ROWS: &'static str = "json_each({}) AS j";
}

impl Affected for SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// The SQLite store.
pub struct SqliteStore {
    /// Exactly one connection: SQLite allows one writer at a time, and queueing
    /// writers here is cheaper and more predictable than `SQLITE_BUSY` retries.
    writer: SqlitePool,
    /// Readers run concurrently with the writer thanks to WAL.
    reader: SqlitePool,
}

/// Creates the database file readable by its owner only (0600) before SQLite
/// opens it — SQLite gives its `-wal` and `-shm` files the database file's
/// mode — and tightens an existing database and its `-wal`/`-shm` files to 0600.
fn owner_only(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let text = path.to_string_lossy();
    if text.is_empty() || text.starts_with(':') || text.starts_with("file:") || text.contains('?') {
        return Ok(()); // in-memory or URI-style names: no file of ours to create
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(StoreError::Unavailable(format!(
                "cannot create SQLite database {}: {e}",
                path.display()
            )));
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot make {} readable by its owner only: {e}",
                    p.display()
                ))
            })?;
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        owner_only(path)?;
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode: a committed transaction survives a crash of the
            // process (SIGKILL); only an OS crash/power loss may lose the last ones.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // No ping before lending a connection (sqlx's `test_before_acquire`):
        // a SQLite connection is a file handle on its own worker thread, with
        // nothing that can go stale, and the ping is one more round trip to
        // that thread on every use (a steady check-in's only read among them).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot open SQLite database {}: {e}",
                    path.display()
                ))
            })?;
        crate::migrations::sqlite()
            .run(&writer)
            .await
            .map_err(|e| StoreError::Other(format!("migrating {}: {e}", path.display())))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(opts.read_only(true))
            .await
            .map_err(map_err)?;
        Ok(Self { writer, reader })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn write(&self) -> Result<Box<dyn Tx>> {
        // IMMEDIATE takes the write lock at BEGIN, so a transaction never fails
        // later when it upgrades from read to write.
        let tx = match self.writer.begin_with("BEGIN IMMEDIATE").await {
            // A COMMIT that failed with SQLITE_FULL or SQLITE_IOERR is rolled
            // back by SQLite itself, but sqlx still counts the transaction
            // open on that connection and refuses every later BEGIN on it —
            // with one writer connection, every write until a restart. Such
            // a connection is closed and the pool opens a fresh one.
            Err(e) if e.to_string().contains("non-zero transaction depth") => {
                tracing::warn!(error = %e, "closing a SQLite writer connection left in a failed transaction");
                if let Ok(conn) = self.writer.acquire().await {
                    let _ = conn.close().await;
                }
                self.writer
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(map_err)?
            }
            r => r.map_err(map_err)?,
        };
        Ok(Box::new(SqlTx::<Sqlite> { tx }))
    }

    async fn read(&self) -> Result<Box<dyn Tx>> {
        let tx = self.reader.begin().await.map_err(map_err)?;
        Ok(Box::new(SqlTx::<Sqlite> { tx }))
    }

    async fn agent_for_checkin(
        &self,
        hash: &str,
    ) -> Result<Option<(crate::AgentRow, crate::CheckinState)>> {
        let mut c = self.reader.acquire().await.map_err(map_err)?;
        crate::role::agent_for_checkin_query::<Sqlite>(&mut c, hash).await
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}
