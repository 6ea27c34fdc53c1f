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

/// Runs a raw query whose rows are `(text, integer)` pairs, bypassing the
/// store: for tests that check what is really stored (row counts per asset,
/// say) rather than what an API view or a cached counter reports.
pub async fn query_pairs(url: &str, sql: &str) -> Result<Vec<(String, i64)>, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut c = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&mut c)
            .await
            .map_err(|e| e.to_string())
    } else {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
        let mut c = sqlx::SqliteConnection::connect_with(&opts)
            .await
            .map_err(|e| e.to_string())?;
        sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&mut c)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Every table of a database with all its rows as canonical text (rows
/// sorted), bypassing the store: tests compare two dumps to show that a
/// refused request changed nothing anywhere, not just in one API view.
pub async fn dump_all(url: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    use sqlx::Row;
    let mut out = std::collections::BTreeMap::new();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut c = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
        )
        .fetch_all(&mut c)
        .await
        .map_err(|e| e.to_string())?;
        for t in tables {
            let q = format!(
                "SELECT COALESCE(string_agg(r, E'\\n' ORDER BY r), '') FROM (SELECT t::text AS r FROM \"{t}\" t) x"
            );
            let text: String = sqlx::query_scalar(sqlx::AssertSqlSafe(q))
                .fetch_one(&mut c)
                .await
                .map_err(|e| format!("{t}: {e}"))?;
            out.insert(t, text);
        }
    } else {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
        let mut c = sqlx::SqliteConnection::connect_with(&opts)
            .await
            .map_err(|e| e.to_string())?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1",
        )
        .fetch_all(&mut c)
        .await
        .map_err(|e| e.to_string())?;
        for t in tables {
            let cols: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info($1)")
                .bind(&t)
                .fetch_all(&mut c)
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect();
            let row = cols
                .iter()
                .map(|c| format!("quote(\"{c}\")"))
                .collect::<Vec<_>>()
                .join(" || ',' || ");
            let q = format!(
                "SELECT COALESCE(group_concat(r, char(10)), '') FROM (SELECT {row} AS r FROM \"{t}\" ORDER BY 1)"
            );
            let text: String = sqlx::query_scalar(sqlx::AssertSqlSafe(q))
                .fetch_one(&mut c)
                .await
                .map_err(|e| format!("{t}: {e}"))?;
            out.insert(t, text);
        }
    }
    Ok(out)
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
