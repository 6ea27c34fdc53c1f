//! Dashboard users and their sessions (`users`, `user_sessions`).

use crate::engine::{Engine, Get, QueryExt, SqlTx, opt_ts};
use crate::{Result, StoreError, from_millis, to_millis};
use async_trait::async_trait;
use jiff::Timestamp;

/// A stored user (the password hash is a PHC string, never the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Id.
    pub id: i64,
    /// Sign-in name.
    pub name: String,
    /// Role name.
    pub role: String,
    /// argon2id hash, PHC string format.
    pub password_hash: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Creator.
    pub created_by: String,
    /// Last password change.
    pub password_changed_at: Timestamp,
    /// When the user was disabled.
    pub disabled_at: Option<Timestamp>,
    /// Failed sign-ins since the last success.
    pub failed_logins: i64,
    /// Sign-ins are refused until then.
    pub locked_until: Option<Timestamp>,
    /// Last successful sign-in.
    pub last_login_at: Option<Timestamp>,
}

/// A new user.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Sign-in name.
    pub name: String,
    /// Role name.
    pub role: String,
    /// argon2id hash, PHC string format.
    pub password_hash: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Creator.
    pub created_by: String,
}

/// A stored session (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Id.
    pub id: i64,
    /// Whose.
    pub user_id: i64,
    /// That user's name.
    pub user_name: String,
    /// Start.
    pub created_at: Timestamp,
    /// Last request (one-minute resolution).
    pub last_seen_at: Timestamp,
    /// Absolute end.
    pub expires_at: Timestamp,
    /// When it was ended (sign-out, revocation, user disabled).
    pub revoked_at: Option<Timestamp>,
    /// Peer address at sign-in.
    pub remote: String,
    /// Browser's `User-Agent` at sign-in (bounded).
    pub user_agent: String,
}

/// A new session.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Whose.
    pub user_id: i64,
    /// SHA-256 of the secret.
    pub token_hash: String,
    /// Start.
    pub created_at: Timestamp,
    /// Absolute end.
    pub expires_at: Timestamp,
    /// Peer address.
    pub remote: String,
    /// `User-Agent`.
    pub user_agent: String,
}

/// Users and sessions.
#[async_trait]
pub trait UserStore {
    /// Inserts a user; `Conflict` if the name is taken.
    async fn insert_user(&mut self, u: &NewUser) -> Result<UserRow>;
    /// A user by name.
    async fn user_by_name(&mut self, name: &str) -> Result<Option<UserRow>>;
    /// All users, by name.
    async fn list_users(&mut self) -> Result<Vec<UserRow>>;
    /// Replaces a user's password hash (and clears the lockout).
    async fn set_user_password(&mut self, id: i64, hash: &str, at: Timestamp) -> Result<()>;
    /// Disables (`Some`) or re-enables (`None`) a user.
    async fn set_user_disabled(&mut self, id: i64, at: Option<Timestamp>) -> Result<()>;
    /// Records a failed sign-in: the new count and lock.
    async fn record_login_failure(
        &mut self,
        id: i64,
        failed_logins: i64,
        locked_until: Option<Timestamp>,
    ) -> Result<()>;
    /// Records a successful sign-in (clears the count and lock).
    async fn record_login_success(&mut self, id: i64, at: Timestamp) -> Result<()>;
    /// Inserts a session.
    async fn insert_session(&mut self, s: &NewSession) -> Result<SessionRow>;
    /// A session by its secret's hash, with its user (revoked and expired
    /// sessions included: the caller decides).
    async fn session_by_hash(&mut self, hash: &str) -> Result<Option<(SessionRow, UserRow)>>;
    /// Records a request on a session.
    async fn touch_session(&mut self, id: i64, at: Timestamp) -> Result<()>;
    /// Ends one session; `NotFound` if absent, `Conflict` if already ended.
    async fn revoke_session(&mut self, id: i64, at: Timestamp) -> Result<SessionRow>;
    /// Ends every open session of a user; returns how many.
    async fn revoke_user_sessions(&mut self, user_id: i64, at: Timestamp) -> Result<u64>;
    /// Sessions, newest first: open ones only unless `all`; one user's if given.
    async fn list_sessions(
        &mut self,
        user_id: Option<i64>,
        all: bool,
        now: Timestamp,
    ) -> Result<Vec<SessionRow>>;
}

macro_rules! user_cols {
    () => {
        "u.id, u.name, u.role, u.password_hash, u.created_at, u.created_by, \
         u.password_changed_at, u.disabled_at, u.failed_logins, u.locked_until, u.last_login_at"
    };
}
macro_rules! session_cols {
    () => {
        "s.id AS s_id, s.user_id, u.name AS user_name, s.created_at AS s_created_at, \
         s.last_seen_at, s.expires_at, s.revoked_at, s.remote, s.user_agent"
    };
}

fn row_to_user<DB: Engine>(r: &DB::Row) -> Result<UserRow> {
    Ok(UserRow {
        id: r.col("id")?,
        name: r.col("name")?,
        role: r.col("role")?,
        password_hash: r.col("password_hash")?,
        created_at: from_millis(r.col("created_at")?)?,
        created_by: r.col("created_by")?,
        password_changed_at: from_millis(r.col("password_changed_at")?)?,
        disabled_at: opt_ts(r.col("disabled_at")?)?,
        failed_logins: r.col("failed_logins")?,
        locked_until: opt_ts(r.col("locked_until")?)?,
        last_login_at: opt_ts(r.col("last_login_at")?)?,
    })
}

fn row_to_session<DB: Engine>(r: &DB::Row) -> Result<SessionRow> {
    Ok(SessionRow {
        id: r.col("s_id")?,
        user_id: r.col("user_id")?,
        user_name: r.col("user_name")?,
        created_at: from_millis(r.col("s_created_at")?)?,
        last_seen_at: from_millis(r.col("last_seen_at")?)?,
        expires_at: from_millis(r.col("expires_at")?)?,
        revoked_at: opt_ts(r.col("revoked_at")?)?,
        remote: r.col("remote")?,
        user_agent: r.col("user_agent")?,
    })
}

fn one_row(affected: u64, what: String) -> Result<()> {
    if affected == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound(what))
    }
}

#[async_trait]
impl<DB: Engine> UserStore for SqlTx<DB> {
    async fn insert_user(&mut self, u: &NewUser) -> Result<UserRow> {
        let taken = sqlx::query::<DB>("SELECT id FROM users WHERE name = $1")
            .arg(&u.name)
            .opt(self.conn())
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!(
                "a user named {:?} exists",
                u.name
            )));
        }
        sqlx::query::<DB>(
            "INSERT INTO users (name, role, password_hash, created_at, created_by, password_changed_at) \
             VALUES ($1, $2, $3, $4, $5, $4)",
        )
        .arg(&u.name)
        .arg(&u.role)
        .arg(&u.password_hash)
        .arg(to_millis(u.created_at))
        .arg(&u.created_by)
        .exec(self.conn())
        .await?;
        self.user_by_name(&u.name)
            .await?
            .ok_or_else(|| StoreError::Other("inserted user vanished".into()))
    }

    async fn user_by_name(&mut self, name: &str) -> Result<Option<UserRow>> {
        let row = sqlx::query::<DB>(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users u WHERE u.name = $1"
        ))
        .arg(name)
        .opt(self.conn())
        .await?;
        row.as_ref().map(row_to_user::<DB>).transpose()
    }

    async fn list_users(&mut self) -> Result<Vec<UserRow>> {
        let rows = sqlx::query::<DB>(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users u ORDER BY u.name"
        ))
        .all(self.conn())
        .await?;
        rows.iter().map(row_to_user::<DB>).collect()
    }

    async fn set_user_password(&mut self, id: i64, hash: &str, at: Timestamp) -> Result<()> {
        let r = sqlx::query::<DB>(
            "UPDATE users SET password_hash = $2, password_changed_at = $3, failed_logins = 0, \
             locked_until = NULL WHERE id = $1",
        )
        .arg(id)
        .arg(hash)
        .arg(to_millis(at))
        .exec(self.conn())
        .await?;
        one_row(r.rows_affected(), format!("user {id}"))
    }

    async fn set_user_disabled(&mut self, id: i64, at: Option<Timestamp>) -> Result<()> {
        let r = sqlx::query::<DB>("UPDATE users SET disabled_at = $2 WHERE id = $1")
            .arg(id)
            .arg(at.map(to_millis))
            .exec(self.conn())
            .await?;
        one_row(r.rows_affected(), format!("user {id}"))
    }

    async fn record_login_failure(
        &mut self,
        id: i64,
        failed_logins: i64,
        locked_until: Option<Timestamp>,
    ) -> Result<()> {
        let r = sqlx::query::<DB>(
            "UPDATE users SET failed_logins = $2, locked_until = $3 WHERE id = $1",
        )
        .arg(id)
        .arg(failed_logins)
        .arg(locked_until.map(to_millis))
        .exec(self.conn())
        .await?;
        one_row(r.rows_affected(), format!("user {id}"))
    }

    async fn record_login_success(&mut self, id: i64, at: Timestamp) -> Result<()> {
        let r = sqlx::query::<DB>(
            "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = $2 WHERE id = $1",
        )
        .arg(id)
        .arg(to_millis(at))
        .exec(self.conn())
        .await?;
        one_row(r.rows_affected(), format!("user {id}"))
    }

    async fn insert_session(&mut self, s: &NewSession) -> Result<SessionRow> {
        sqlx::query::<DB>(
            "INSERT INTO user_sessions (user_id, token_hash, created_at, last_seen_at, expires_at, \
             remote, user_agent) VALUES ($1, $2, $3, $3, $4, $5, $6)",
        )
        .arg(s.user_id)
        .arg(&s.token_hash)
        .arg(to_millis(s.created_at))
        .arg(to_millis(s.expires_at))
        .arg(&s.remote)
        .arg(&s.user_agent)
        .exec(self.conn())
        .await?;
        self.session_by_hash(&s.token_hash)
            .await?
            .map(|(s, _)| s)
            .ok_or_else(|| StoreError::Other("inserted session vanished".into()))
    }

    async fn session_by_hash(&mut self, hash: &str) -> Result<Option<(SessionRow, UserRow)>> {
        let row = sqlx::query::<DB>(concat!(
            "SELECT ",
            session_cols!(),
            ", ",
            user_cols!(),
            " FROM user_sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1"
        ))
        .arg(hash)
        .opt(self.conn())
        .await?;
        row.as_ref()
            .map(|r| Ok((row_to_session::<DB>(r)?, row_to_user::<DB>(r)?)))
            .transpose()
    }

    async fn touch_session(&mut self, id: i64, at: Timestamp) -> Result<()> {
        sqlx::query::<DB>("UPDATE user_sessions SET last_seen_at = $2 WHERE id = $1")
            .arg(id)
            .arg(to_millis(at))
            .exec(self.conn())
            .await?;
        Ok(())
    }

    async fn revoke_session(&mut self, id: i64, at: Timestamp) -> Result<SessionRow> {
        let r = sqlx::query::<DB>(
            "UPDATE user_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .arg(id)
        .arg(to_millis(at))
        .exec(self.conn())
        .await?;
        let row = sqlx::query::<DB>(concat!(
            "SELECT ",
            session_cols!(),
            " FROM user_sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1"
        ))
        .arg(id)
        .opt(self.conn())
        .await?;
        match (r.rows_affected(), row) {
            (1, Some(row)) => row_to_session::<DB>(&row),
            (_, Some(_)) => Err(StoreError::Conflict(format!(
                "session {id} has already ended"
            ))),
            (_, None) => Err(StoreError::NotFound(format!("session {id}"))),
        }
    }

    async fn revoke_user_sessions(&mut self, user_id: i64, at: Timestamp) -> Result<u64> {
        let r = sqlx::query::<DB>(
            "UPDATE user_sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .arg(user_id)
        .arg(to_millis(at))
        .exec(self.conn())
        .await?;
        Ok(r.rows_affected())
    }

    async fn list_sessions(
        &mut self,
        user_id: Option<i64>,
        all: bool,
        now: Timestamp,
    ) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query::<DB>(concat!(
            "SELECT ",
            session_cols!(),
            " FROM user_sessions s JOIN users u ON u.id = s.user_id \
             WHERE ($1 OR (s.revoked_at IS NULL AND s.expires_at > $2)) \
             AND ($3 IS NULL OR s.user_id = $3) ORDER BY s.id DESC LIMIT 1000"
        ))
        .arg(all)
        .arg(to_millis(now))
        .arg(user_id)
        .all(self.conn())
        .await?;
        rows.iter().map(row_to_session::<DB>).collect()
    }
}
