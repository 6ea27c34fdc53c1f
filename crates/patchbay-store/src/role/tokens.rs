//! API and enrolment tokens (`api_tokens`, `enroll_tokens`).

use crate::engine::{Engine, Get, QueryExt, SqlTx, opt_ts};
use crate::{Result, StoreError, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// A stored API token (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRow {
    /// Id.
    pub id: i64,
    /// Label.
    pub name: String,
    /// Role name.
    pub role: String,
    /// Display prefix.
    pub prefix: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Creator.
    pub created_by: String,
    /// Last use (one-minute resolution).
    pub last_used_at: Option<Timestamp>,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
    /// Expiry (`None`: never).
    pub expires_at: Option<Timestamp>,
    /// Scopes, comma-separated (`None`: everything the role permits).
    pub scopes: Option<String>,
}

/// A new API token.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    /// Label.
    pub name: String,
    /// Role name.
    pub role: String,
    /// SHA-256 of the secret.
    pub token_hash: String,
    /// Display prefix.
    pub prefix: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Creator.
    pub created_by: String,
    /// Expiry (`None`: never).
    pub expires_at: Option<Timestamp>,
    /// Scopes, comma-separated (`None`: everything the role permits).
    pub scopes: Option<String>,
}

/// A stored enrolment token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollTokenRow {
    /// Id.
    pub id: i64,
    /// Label.
    pub name: String,
    /// Display prefix.
    pub prefix: String,
    /// Uses allowed in all.
    pub uses_total: i64,
    /// Uses left.
    pub uses_left: i64,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Creation time.
    pub created_at: Timestamp,
    /// Creator.
    pub created_by: String,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
}

/// A new enrolment token.
#[derive(Debug, Clone)]
pub struct NewEnrollToken {
    /// Label.
    pub name: String,
    /// SHA-256 of the secret.
    pub token_hash: String,
    /// Display prefix.
    pub prefix: String,
    /// Uses allowed.
    pub uses: i64,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Creation time.
    pub created_at: Timestamp,
    /// Creator.
    pub created_by: String,
}

/// API and enrolment tokens.
#[async_trait]
pub trait TokenStore {
    /// Inserts an API token.
    async fn insert_api_token(&mut self, t: &NewApiToken) -> Result<ApiTokenRow>;
    /// Finds an API token by hash (revoked ones included; the caller checks).
    async fn api_token_by_hash(&mut self, hash: &str) -> Result<Option<ApiTokenRow>>;
    /// Records a use.
    async fn touch_api_token(&mut self, id: i64, at: Timestamp) -> Result<()>;
    /// All API tokens.
    async fn list_api_tokens(&mut self) -> Result<Vec<ApiTokenRow>>;
    /// Revokes a token; `NotFound` if absent, `Conflict` if already revoked.
    async fn revoke_api_token(&mut self, id: i64, at: Timestamp) -> Result<()>;
    /// Inserts an enrolment token.
    async fn insert_enroll_token(&mut self, t: &NewEnrollToken) -> Result<EnrollTokenRow>;
    /// Consumes one use of a valid (unexpired, unrevoked, uses left) enrolment token.
    async fn consume_enroll_token(
        &mut self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<EnrollTokenRow>>;
    /// All enrolment tokens.
    async fn list_enroll_tokens(&mut self) -> Result<Vec<EnrollTokenRow>>;
}

fn row_to_api_token<DB: Engine>(r: &DB::Row) -> Result<ApiTokenRow> {
    Ok(ApiTokenRow {
        id: r.col("id")?,
        name: r.col("name")?,
        role: r.col("role")?,
        prefix: r.col("prefix")?,
        created_at: from_millis(r.col("created_at")?)?,
        created_by: r.col("created_by")?,
        last_used_at: opt_ts(r.col("last_used_at")?)?,
        revoked_at: opt_ts(r.col("revoked_at")?)?,
        expires_at: opt_ts(r.col("expires_at")?)?,
        scopes: r.col("scopes")?,
    })
}

fn row_to_enroll<DB: Engine>(r: &DB::Row) -> Result<EnrollTokenRow> {
    Ok(EnrollTokenRow {
        id: r.col("id")?,
        name: r.col("name")?,
        prefix: r.col("prefix")?,
        uses_total: r.col("uses_total")?,
        uses_left: r.col("uses_left")?,
        expires_at: from_millis(r.col("expires_at")?)?,
        created_at: from_millis(r.col("created_at")?)?,
        created_by: r.col("created_by")?,
        revoked_at: opt_ts(r.col("revoked_at")?)?,
    })
}

#[async_trait]
impl<DB: Engine> TokenStore for SqlTx<DB> {
    async fn insert_api_token(&mut self, t: &NewApiToken) -> Result<ApiTokenRow> {
        let row = sqlx::query::<DB>(
            "INSERT INTO api_tokens (name, role, token_hash, prefix, created_at, created_by, \
             expires_at, scopes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             RETURNING id, name, role, prefix, created_at, created_by, last_used_at, revoked_at, expires_at, scopes",
        )
        .arg(&t.name)
        .arg(&t.role)
        .arg(&t.token_hash)
        .arg(&t.prefix)
        .arg(to_millis(t.created_at))
        .arg(&t.created_by)
        .arg(t.expires_at.map(to_millis))
        .arg(&t.scopes)
        .one(self.conn())
        .await?;
        row_to_api_token::<DB>(&row)
    }

    async fn api_token_by_hash(&mut self, hash: &str) -> Result<Option<ApiTokenRow>> {
        let row = sqlx::query::<DB>(
            "SELECT id, name, role, prefix, created_at, created_by, last_used_at, revoked_at, expires_at, scopes \
             FROM api_tokens WHERE token_hash = $1",
        )
        .arg(hash)
        .opt(self.conn())
        .await?;
        row.as_ref().map(row_to_api_token::<DB>).transpose()
    }

    async fn touch_api_token(&mut self, id: i64, at: Timestamp) -> Result<()> {
        sqlx::query::<DB>("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
            .arg(id)
            .arg(to_millis(at))
            .exec(self.conn())
            .await?;
        Ok(())
    }

    async fn list_api_tokens(&mut self) -> Result<Vec<ApiTokenRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT id, name, role, prefix, created_at, created_by, last_used_at, revoked_at, expires_at, scopes \
             FROM api_tokens ORDER BY id",
        )
        .all(self.conn())
        .await?;
        rows.iter().map(row_to_api_token::<DB>).collect()
    }

    async fn revoke_api_token(&mut self, id: i64, at: Timestamp) -> Result<()> {
        let r = sqlx::query::<DB>(
            "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .arg(id)
        .arg(to_millis(at))
        .exec(self.conn())
        .await?;
        if r.rows_affected() == 1 {
            return Ok(());
        }
        let exists = sqlx::query::<DB>("SELECT id FROM api_tokens WHERE id = $1")
            .arg(id)
            .opt(self.conn())
            .await?;
        Err(match exists {
            Some(_) => StoreError::Conflict(format!("token {id} is already revoked")),
            None => StoreError::NotFound(format!("token {id}")),
        })
    }

    async fn insert_enroll_token(&mut self, t: &NewEnrollToken) -> Result<EnrollTokenRow> {
        let row = sqlx::query::<DB>(
            "INSERT INTO enroll_tokens (name, token_hash, prefix, uses_total, uses_left, expires_at, \
             created_at, created_by) VALUES ($1, $2, $3, $4, $4, $5, $6, $7) \
             RETURNING id, name, prefix, uses_total, uses_left, expires_at, created_at, created_by, revoked_at",
        )
        .arg(&t.name)
        .arg(&t.token_hash)
        .arg(&t.prefix)
        .arg(t.uses)
        .arg(to_millis(t.expires_at))
        .arg(to_millis(t.created_at))
        .arg(&t.created_by)
        .one(self.conn())
        .await?;
        row_to_enroll::<DB>(&row)
    }

    async fn consume_enroll_token(
        &mut self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<EnrollTokenRow>> {
        // One statement decides and decrements, so two agents racing for
        // the last use cannot both win.
        let row = sqlx::query::<DB>(
            "UPDATE enroll_tokens SET uses_left = uses_left - 1 \
             WHERE token_hash = $1 AND uses_left > 0 AND revoked_at IS NULL AND expires_at > $2 \
             RETURNING id, name, prefix, uses_total, uses_left, expires_at, created_at, created_by, revoked_at",
        )
        .arg(hash)
        .arg(to_millis(now))
        .opt(self.conn())
        .await?;
        row.as_ref().map(row_to_enroll::<DB>).transpose()
    }

    async fn list_enroll_tokens(&mut self) -> Result<Vec<EnrollTokenRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT id, name, prefix, uses_total, uses_left, expires_at, created_at, created_by, revoked_at \
             FROM enroll_tokens ORDER BY id",
        )
        .all(self.conn())
        .await?;
        rows.iter().map(row_to_enroll::<DB>).collect()
    }
}
