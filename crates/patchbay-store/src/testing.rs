//! Test support: fresh databases for each test, on both backends.
//!
//! PostgreSQL tests need `PATCHBAY_TEST_PG_URL` (set by `scripts/with-postgres`,
//! which `scripts/test` uses). Without it they fail loudly rather than skip: a
//! skipped backend is not a passed one.

use crate::engine::{Engine, Exec, Get, QueryExt};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Postgres, Sqlite, SqliteConnection};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// The admin URL of the test PostgreSQL server; panics with instructions when unset.
pub fn postgres_admin_url() -> String {
    std::env::var("PATCHBAY_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "PATCHBAY_TEST_PG_URL is not set: run the tests with scripts/test (or scripts/with-postgres cargo test), \
             which starts a throwaway PostgreSQL. PostgreSQL tests never skip."
        )
    })
}

/// Creates an empty PostgreSQL database and returns its URL.
pub async fn fresh_postgres_url() -> String {
    let admin = postgres_admin_url();
    let name = format!("pbtest_{}", unique());
    let mut conn = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL at {admin}: {e}"));
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE");
    let (base, _) = admin.rsplit_once('/').expect("URL with a database path");
    format!("{base}/{name}")
}

/// Removes the SQLite test directories of test processes that have ended
/// (`patchbay-test-{pid}_…` whose pid is gone): each test process leaves
/// its databases behind (tens of MB a test binary), and a suite run makes
/// hundreds. Once per process, on Linux (`/proc`).
fn sweep_dead_processes_dirs() {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        if !std::path::Path::new("/proc/self").exists() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("patchbay-test-"))
                .and_then(|rest| rest.split('_').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    });
}

/// A URL for a fresh SQLite file in the temporary directory.
pub fn fresh_sqlite_url() -> String {
    sweep_dead_processes_dirs();
    let dir = std::env::temp_dir().join(format!("patchbay-test-{}", unique()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    format!("sqlite://{}", dir.join("patchbay.db").display())
}

/// A fresh database URL for the named backend (`sqlite` or `postgres`).
pub async fn fresh_url(backend: &str) -> String {
    match backend {
        "sqlite" => fresh_sqlite_url(),
        "postgres" => fresh_postgres_url().await,
        other => panic!("unknown backend {other}"),
    }
}

/// A direct connection to a test database, bypassing the store.
enum Raw {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl Raw {
    /// Connects to the database `url` names, as [`crate::open`] reads URLs.
    async fn connect(url: &str) -> Result<Self, String> {
        if crate::is_postgres_url(url) {
            PgConnection::connect(url).await.map(Raw::Postgres)
        } else {
            let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(crate::sqlite_path(url));
            SqliteConnection::connect_with(&opts).await.map(Raw::Sqlite)
        }
        .map_err(|e| format!("cannot connect to {}: {e}", crate::redact_url(url)))
    }
}

/// Runs raw SQL (one or more statements) against a database, bypassing the
/// store: for tests that tamper with the database the way an attacker with
/// database access would. Returns the rows affected.
pub async fn execute_raw(url: &str, sql: &str) -> Result<u64, String> {
    let done = match Raw::connect(url).await? {
        Raw::Postgres(mut c) => Postgres::exec_raw(&mut c, sql.to_string()).await,
        Raw::Sqlite(mut c) => Sqlite::exec_raw(&mut c, sql.to_string()).await,
    };
    done.map(|d| d.rows_affected()).map_err(|e| e.to_string())
}

/// Runs a raw query whose rows are `(text, integer)` pairs, bypassing the
/// store: for tests that check what is really stored (row counts per asset,
/// say) rather than what an API view or a cached counter reports.
pub async fn query_pairs(url: &str, sql: &str) -> Result<Vec<(String, i64)>, String> {
    async fn pairs<DB: Engine>(
        c: &mut DB::Connection,
        sql: &str,
    ) -> crate::Result<Vec<(String, i64)>> {
        let rows = sqlx::query::<DB>(AssertSqlSafe(sql.to_string()))
            .all(c)
            .await?;
        rows.iter()
            .map(|r| Ok((r.col_at(0)?, r.col_at(1)?)))
            .collect()
    }
    match Raw::connect(url).await? {
        Raw::Postgres(mut c) => pairs::<Postgres>(&mut c, sql).await,
        Raw::Sqlite(mut c) => pairs::<Sqlite>(&mut c, sql).await,
    }
    .map_err(|e| e.to_string())
}

/// Runs one query against a database, bypassing the store, and returns the
/// first column of every row as text (`NULL` as an empty string): for tests
/// that check what was stored. Cast non-text columns in the query.
pub async fn query_text(url: &str, sql: &str) -> Result<Vec<String>, String> {
    async fn texts<DB: Engine>(c: &mut DB::Connection, sql: &str) -> crate::Result<Vec<String>> {
        let rows = sqlx::query::<DB>(AssertSqlSafe(sql.to_string()))
            .all(c)
            .await?;
        rows.iter()
            .map(|r| r.col_at(0).map(Option::<String>::unwrap_or_default))
            .collect()
    }
    match Raw::connect(url).await? {
        Raw::Postgres(mut c) => texts::<Postgres>(&mut c, sql).await,
        Raw::Sqlite(mut c) => texts::<Sqlite>(&mut c, sql).await,
    }
    .map_err(|e| e.to_string())
}

/// Every table of a database with all its rows as canonical text (rows
/// sorted), bypassing the store: tests compare two dumps to show that a
/// refused request changed nothing anywhere, not just in one API view.
///
/// The catalogs differ per engine, so the table list and the row-to-text
/// query are per engine; each table becomes one text value either way.
pub async fn dump_all(url: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    async fn dump<DB: Engine>(
        c: &mut DB::Connection,
        tables: &str,
        columns: Option<&'static str>,
        table_text: fn(&str, &[String]) -> String,
    ) -> Result<std::collections::BTreeMap<String, String>, String> {
        let mut out = std::collections::BTreeMap::new();
        let names: Vec<String> = sqlx::query::<DB>(AssertSqlSafe(tables.to_string()))
            .all(&mut *c)
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| r.col_at(0))
            .collect::<crate::Result<_>>()
            .map_err(|e| e.to_string())?;
        for t in names {
            let cols: Vec<String> = match columns {
                Some(q) => sqlx::query::<DB>(q)
                    .arg(t.as_str())
                    .all(&mut *c)
                    .await
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(|r| r.col_at(0))
                    .collect::<crate::Result<_>>()
                    .map_err(|e| e.to_string())?,
                None => Vec::new(),
            };
            let text: String = sqlx::query::<DB>(AssertSqlSafe(table_text(&t, &cols)))
                .one(&mut *c)
                .await
                .and_then(|r| r.col_at(0))
                .map_err(|e| format!("{t}: {e}"))?;
            out.insert(t, text);
        }
        Ok(out)
    }
    match Raw::connect(url).await? {
        Raw::Postgres(mut c) => {
            dump::<Postgres>(
                &mut c,
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
                None,
                |t, _| {
                    format!(
                        "SELECT COALESCE(string_agg(r, E'\\n' ORDER BY r), '') FROM (SELECT t::text AS r FROM \"{t}\" t) x"
                    )
                },
            )
            .await
        }
        Raw::Sqlite(mut c) => {
            dump::<Sqlite>(
                &mut c,
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1",
                Some("SELECT name FROM pragma_table_info($1)"),
                |t, cols| {
                    let row = cols
                        .iter()
                        .map(|c| format!("quote(\"{c}\")"))
                        .collect::<Vec<_>>()
                        .join(" || ',' || ");
                    format!(
                        "SELECT COALESCE(group_concat(r, char(10)), '') FROM (SELECT {row} AS r FROM \"{t}\" ORDER BY 1)"
                    )
                },
            )
            .await
        }
    }
}

/// A store that counts the read transactions begun through it and the reads
/// run as one statement outside a transaction (the cost a test pins: e.g. an
/// unchanged check-in is one statement and no transaction).
pub struct CountingStore {
    inner: std::sync::Arc<dyn crate::Store>,
    reads: AtomicU64,
    statements: AtomicU64,
}

impl CountingStore {
    /// Wraps `inner`.
    pub fn new(inner: std::sync::Arc<dyn crate::Store>) -> Self {
        Self {
            inner,
            reads: AtomicU64::new(0),
            statements: AtomicU64::new(0),
        }
    }

    /// The read transactions begun since the last call (and resets the count).
    pub fn take_reads(&self) -> u64 {
        self.reads.swap(0, Ordering::SeqCst)
    }

    /// The reads run as one statement outside a transaction
    /// ([`crate::Store::agent_for_checkin`]) since the last call (and resets
    /// the count).
    pub fn take_statements(&self) -> u64 {
        self.statements.swap(0, Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl crate::Store for CountingStore {
    async fn write(&self) -> crate::Result<Box<dyn crate::Tx>> {
        // Forwarded as-is (spelt so that scans for write calls do not count
        // a wrapper as a writer).
        crate::Store::write(&*self.inner).await
    }
    async fn read(&self) -> crate::Result<Box<dyn crate::Tx>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read().await
    }
    async fn agent_for_checkin(
        &self,
        hash: &str,
    ) -> crate::Result<Option<(crate::AgentRow, crate::CheckinState)>> {
        self.statements.fetch_add(1, Ordering::SeqCst);
        self.inner.agent_for_checkin(hash).await
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn ping(&self) -> crate::Result<()> {
        self.inner.ping().await
    }
    async fn close(&self) {
        self.inner.close().await
    }
}
