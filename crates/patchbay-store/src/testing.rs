//! Test support: fresh databases for each test, on both backends.
//!
//! PostgreSQL tests need `PATCHBAY_TEST_PG_URL` (set by `scripts/with-postgres`,
//! which `scripts/test` uses). Without it they fail loudly rather than skip: a
//! skipped backend is not a passed one.

use sqlx::Connection;
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
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL at {admin}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE");
    let (base, _) = admin.rsplit_once('/').expect("URL with a database path");
    format!("{base}/{name}")
}

/// A URL for a fresh SQLite file in the temporary directory.
pub fn fresh_sqlite_url() -> String {
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

/// Runs raw SQL (one or more statements) against a database, bypassing the
/// store: for tests that tamper with the database the way an attacker with
/// database access would. Returns the rows affected.
pub async fn execute_raw(url: &str, sql: &str) -> Result<u64, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut c = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        let r = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        Ok(r.rows_affected())
    } else {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
        let mut c = sqlx::SqliteConnection::connect_with(&opts)
            .await
            .map_err(|e| e.to_string())?;
        let r = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        Ok(r.rows_affected())
    }
}

/// Runs one query against a database, bypassing the store, and returns the
/// first column of every row as text (`NULL` as an empty string): for tests
/// that check what was stored. Cast non-text columns in the query.
pub async fn query_text(url: &str, sql: &str) -> Result<Vec<String>, String> {
    use sqlx::Row;
    let q = sqlx::AssertSqlSafe(sql.to_string());
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut c = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        let rows = sqlx::query(q)
            .fetch_all(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        rows.iter()
            .map(|r| {
                r.try_get::<Option<String>, _>(0)
                    .map(Option::unwrap_or_default)
                    .map_err(|e| e.to_string())
            })
            .collect()
    } else {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
        let mut c = sqlx::SqliteConnection::connect_with(&opts)
            .await
            .map_err(|e| e.to_string())?;
        let rows = sqlx::query(q)
            .fetch_all(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        rows.iter()
            .map(|r| {
                r.try_get::<Option<String>, _>(0)
                    .map(Option::unwrap_or_default)
                    .map_err(|e| e.to_string())
            })
            .collect()
    }
}
