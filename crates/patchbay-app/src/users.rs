//! People who sign in to the dashboard: local users, their passwords, their
//! server-side sessions, and the lockout on repeated failures (issue 17).
//!
//! - **Passwords** are stored only as argon2id hashes (RFC 9106, the argon2
//!   crate's defaults: m = 19 MiB, t = 2, p = 1) in PHC string form. 12 to
//!   1024 characters; an unknown user name costs the same hash as a known one
//!   (a dummy verification), so timing does not tell which names exist.
//! - **Sessions** are random 256-bit secrets held only in the browser's
//!   cookie; the database keeps their SHA-256, like API tokens. A session ends
//!   at the first of: sign-out, revocation (by an admin or its user), the
//!   user being disabled or changing password, [`SESSION_IDLE`] without a
//!   request, or [`SESSION_LIFETIME`] after sign-in.
//! - **CSRF**: every form carries [`csrf_token`] of the session (a keyed
//!   hash of the session secret, so nothing more is stored and another site,
//!   which cannot read the cookie, cannot compute it); the server compares it
//!   in constant time.
//! - **Lockout**: [`LOCK_AFTER`] consecutive failures lock the user for
//!   [`lock_for`] (30 s, doubling, at most 15 min), stored on the user row so
//!   every replica honours it; per source address the in-memory backoff of
//!   [`crate::backoff`] applies too. Every sign-in, failure, lockout, sign-out
//!   and revocation is in the audit log.

use crate::backoff::Realm;
use crate::{App, AppError, Caller, RequestCtx, fmt_ts, random32};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jiff::{SignedDuration, Timestamp};
use patchbay_core::auth::{Action, Role, Scopes};
use patchbay_proto::api::{AddUser, SessionInfo, UserInfo};
use patchbay_proto::error::ErrorCode;
use patchbay_store::{NewSession, NewUser, SessionRow, UserRow};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (argon2 takes any length; this bounds the work).
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// Longest user name.
pub const MAX_USER_NAME: usize = 64;
/// A session ends this long after sign-in, whatever happens.
pub const SESSION_LIFETIME: SignedDuration = SignedDuration::from_hours(12);
/// A session ends after this long without a request (a wall screen's
/// auto-refresh keeps its session alive).
pub const SESSION_IDLE: SignedDuration = SignedDuration::from_hours(2);
/// Consecutive failures after which a user is locked.
pub const LOCK_AFTER: i64 = 5;
/// `last_seen_at` is written at most this often per session.
const SEEN_RESOLUTION: SignedDuration = SignedDuration::from_secs(60);
/// Longest `User-Agent` kept with a session.
const MAX_USER_AGENT: usize = 256;

/// How long a user is locked after `failures` consecutive failures:
/// nothing below [`LOCK_AFTER`], then 30 s doubling per further failure, at
/// most 15 minutes.
pub fn lock_for(failures: i64) -> Option<SignedDuration> {
    if failures < LOCK_AFTER {
        return None;
    }
    let doublings = (failures - LOCK_AFTER).min(5) as u32;
    Some(SignedDuration::from_secs((30i64 << doublings).min(15 * 60)))
}

/// The CSRF token of a session: a keyed hash of its secret (hex, 32
/// characters). Pages put it in every form; a POST without it is refused.
pub fn csrf_token(session_secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"patchbay-csrf-v1\0");
    h.update(session_secret.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Whether `offered` is the CSRF token of `session_secret` (constant time).
pub fn csrf_ok(session_secret: &str, offered: &str) -> bool {
    use subtle::ConstantTimeEq;
    let want = csrf_token(session_secret);
    want.len() == offered.len() && bool::from(want.as_bytes().ct_eq(offered.as_bytes()))
}

fn session_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Checks a user name: 1–64 of `A-Z a-z 0-9 . _ @ -`.
pub fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_USER_NAME {
        return Err(format!(
            "must be 1 to {MAX_USER_NAME} characters, got {}",
            name.chars().count()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')))
    {
        return Err(format!(
            "may hold only letters, digits, '.', '_', '@' and '-', not {c:?}"
        ));
    }
    Ok(())
}

/// Checks a new password's length (characters, not bytes).
pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(format!(
            "must be at least {MIN_PASSWORD_CHARS} characters, got {n}"
        ));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(format!(
            "must be at most {MAX_PASSWORD_CHARS} characters, got {n}"
        ));
    }
    Ok(())
}

/// Hashes a password with argon2id and a fresh 16-byte salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, AppError> {
    let seed = random32();
    let salt = SaltString::encode_b64(&seed[..16])
        .map_err(|e| AppError::new(ErrorCode::Internal, format!("password salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::new(ErrorCode::Internal, format!("password hash: {e}")))
}

/// Whether `password` matches the stored PHC hash. A hash that does not
/// parse matches nothing.
pub fn verify_password(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash verified when the user name is unknown, so the answer takes as
/// long as for a known one.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("patchbay-no-such-user").unwrap_or_default())
}

/// A new session: its secret goes into the cookie, once.
#[derive(Clone)]
pub struct SessionCreated {
    /// The cookie value.
    pub secret: String,
    /// When it ends at the latest.
    pub expires_at: Timestamp,
    /// The user.
    pub user: String,
}

impl std::fmt::Debug for SessionCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCreated")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .finish()
    }
}

/// A signed-in person, as a caller of the service layer, with the session
/// behind it.
#[derive(Debug, Clone)]
pub struct SessionCaller {
    /// The caller (principal [`crate::auth::Principal::User`]).
    pub caller: Caller,
    /// The session's id.
    pub session_id: i64,
    /// The user's name.
    pub user: String,
}

fn user_info(r: &UserRow) -> Result<UserInfo, AppError> {
    Ok(UserInfo {
        name: r.name.clone(),
        role: parse_role(r)?,
        created_at: fmt_ts(r.created_at),
        created_by: r.created_by.clone(),
        password_changed_at: fmt_ts(r.password_changed_at),
        disabled_at: r.disabled_at.map(fmt_ts),
        last_login_at: r.last_login_at.map(fmt_ts),
        failed_logins: r.failed_logins,
        locked_until: r.locked_until.map(fmt_ts),
    })
}

fn session_info(r: &SessionRow) -> SessionInfo {
    SessionInfo {
        id: r.id,
        user: r.user_name.clone(),
        created_at: fmt_ts(r.created_at),
        last_seen_at: fmt_ts(r.last_seen_at),
        expires_at: fmt_ts(r.expires_at),
        revoked_at: r.revoked_at.map(fmt_ts),
        remote: r.remote.clone(),
        user_agent: r.user_agent.clone(),
    }
}

fn parse_role(r: &UserRow) -> Result<Role, AppError> {
    r.role.parse().map_err(|e: String| {
        AppError::new(ErrorCode::Internal, format!("stored user {}: {e}", r.name))
    })
}

fn user_caller(r: &UserRow) -> Result<Caller, AppError> {
    Ok(Caller {
        principal: crate::auth::Principal::User {
            id: r.id,
            name: r.name.clone(),
        },
        role: parse_role(r)?,
        scopes: Scopes::UNRESTRICTED,
    })
}

fn bounded(s: &str, max: usize) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).collect();
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

impl App {
    async fn user_named(&self, name: &str) -> Result<UserRow, AppError> {
        let mut tx = self.store.read().await?;
        tx.user_by_name(name)
            .await?
            .ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no user named {name:?}")))
    }

    /// Adds a dashboard user (admin only).
    pub async fn add_user(
        &self,
        caller: &Caller,
        req: AddUser,
        ctx: &RequestCtx,
    ) -> Result<UserInfo, AppError> {
        self.require(caller, Action::ManageTokens, ctx).await?;
        check_user_name(&req.name).map_err(|m| AppError::invalid(format!("name: {m}")))?;
        if req.role == Role::Calendar {
            return Err(AppError::invalid(
                "role: 'calendar' is for calendar feed tokens, not people; pick auditor, operator, approver or admin",
            ));
        }
        check_password(&req.password).map_err(|m| AppError::invalid(format!("password: {m}")))?;
        let hash = hash_password(&req.password)?;
        let mut tx = self.change(caller, Action::ManageTokens, ctx).await?;
        let row = tx
            .insert_user(&NewUser {
                name: req.name.clone(),
                role: req.role.as_str().to_string(),
                password_hash: hash,
                created_at: self.now(),
                created_by: caller.actor(),
            })
            .await?;
        tx.audit(
            "user.add",
            &format!("user:{}", row.name),
            json!({"role": row.role}),
        )
        .await?;
        tx.commit().await?;
        user_info(&row)
    }

    /// Lists users (never their hashes).
    pub async fn list_users(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Vec<UserInfo>, AppError> {
        self.require(caller, Action::ReadTokens, ctx).await?;
        let mut tx = self.store.read().await?;
        tx.list_users().await?.iter().map(user_info).collect()
    }

    /// Sets a user's password: an admin for anyone, a signed-in user for
    /// itself. Every session of that user ends (a changed password is often
    /// a suspected leak), and the lockout is cleared.
    pub async fn set_user_password(
        &self,
        caller: &Caller,
        name: &str,
        password: &str,
        ctx: &RequestCtx,
    ) -> Result<u64, AppError> {
        let own =
            matches!(&caller.principal, crate::auth::Principal::User { name: n, .. } if n == name);
        if !own {
            self.require(caller, Action::ManageTokens, ctx).await?;
        }
        check_password(password).map_err(|m| AppError::invalid(format!("password: {m}")))?;
        let user = self.user_named(name).await?;
        let hash = hash_password(password)?;
        let now = self.now();
        let mut tx = if own {
            self.open_change(caller.actor()).await?
        } else {
            self.change(caller, Action::ManageTokens, ctx).await?
        };
        tx.set_user_password(user.id, &hash, now).await?;
        let ended = tx.revoke_user_sessions(user.id, now).await?;
        tx.audit(
            "user.password",
            &format!("user:{}", user.name),
            json!({"sessions_ended": ended, "by_self": own}),
        )
        .await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Disables (ending every session) or re-enables a user (admin only). An
    /// admin cannot disable itself (the last way in could be lost).
    pub async fn set_user_disabled(
        &self,
        caller: &Caller,
        name: &str,
        disabled: bool,
        ctx: &RequestCtx,
    ) -> Result<UserInfo, AppError> {
        self.require(caller, Action::ManageTokens, ctx).await?;
        if disabled
            && matches!(&caller.principal, crate::auth::Principal::User { name: n, .. } if n == name)
        {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "you cannot disable yourself; another admin can",
            ));
        }
        let user = self.user_named(name).await?;
        let now = self.now();
        let mut tx = self.change(caller, Action::ManageTokens, ctx).await?;
        let ended = if disabled {
            tx.set_user_disabled(user.id, Some(user.disabled_at.unwrap_or(now)))
                .await?;
            tx.revoke_user_sessions(user.id, now).await?
        } else {
            tx.set_user_disabled(user.id, None).await?;
            0
        };
        tx.audit(
            if disabled {
                "user.disable"
            } else {
                "user.enable"
            },
            &format!("user:{}", user.name),
            json!({"sessions_ended": ended}),
        )
        .await?;
        let row = tx
            .user_by_name(name)
            .await?
            .ok_or_else(|| AppError::new(ErrorCode::Internal, "user vanished"))?;
        tx.commit().await?;
        user_info(&row)
    }

    /// Lists sessions, newest first: open ones unless `all`; one user's if
    /// named. Admins and auditors (who read tokens) see everyone's; a
    /// signed-in user sees its own.
    pub async fn list_sessions(
        &self,
        caller: &Caller,
        user: Option<&str>,
        all: bool,
        ctx: &RequestCtx,
    ) -> Result<Vec<SessionInfo>, AppError> {
        let own = match &caller.principal {
            crate::auth::Principal::User { id, name } if !caller.permits(Action::ReadTokens) => {
                if user.is_some_and(|u| u != name) {
                    self.require(caller, Action::ReadTokens, ctx).await?;
                }
                Some(*id)
            }
            _ => {
                self.require(caller, Action::ReadTokens, ctx).await?;
                None
            }
        };
        let user_id = match (own, user) {
            (Some(id), _) => Some(id),
            (None, Some(name)) => Some(self.user_named(name).await?.id),
            (None, None) => None,
        };
        let mut tx = self.store.read().await?;
        Ok(tx
            .list_sessions(user_id, all, self.now())
            .await?
            .iter()
            .map(session_info)
            .collect())
    }

    /// Ends a session: an admin any, a signed-in user its own.
    pub async fn revoke_session(
        &self,
        caller: &Caller,
        id: i64,
        ctx: &RequestCtx,
    ) -> Result<(), AppError> {
        let own_user = match &caller.principal {
            crate::auth::Principal::User { id: uid, .. } => Some(*uid),
            _ => None,
        };
        let mine = if let Some(uid) = own_user {
            let mut tx = self.store.read().await?;
            tx.list_sessions(Some(uid), true, self.now())
                .await?
                .iter()
                .any(|s| s.id == id)
        } else {
            false
        };
        let mut tx = if mine {
            self.open_change(caller.actor()).await?
        } else {
            self.change(caller, Action::ManageTokens, ctx).await?
        };
        let row = tx.revoke_session(id, self.now()).await?;
        tx.audit(
            "session.revoke",
            &format!("user:{}", row.user_name),
            json!({"session": id}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Signs a user in: checks the source's backoff, the user's lockout and
    /// the password, then starts a session. Every outcome is audited; a
    /// failure says only "wrong name or password" (or that sign-in is
    /// locked, and for how long), never which part was wrong.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        user_agent: &str,
        ctx: &RequestCtx,
    ) -> Result<SessionCreated, AppError> {
        let source = crate::refusal_source(&ctx.remote);
        self.throttle(Realm::Login, &source, None, ctx).await?;
        let now = self.now();
        let row = if check_user_name(name).is_ok() {
            let mut tx = self.store.read().await?;
            tx.user_by_name(name).await?
        } else {
            None
        };
        let bad = || AppError::new(ErrorCode::Unauthenticated, "wrong user name or password");
        let Some(user) = row else {
            // Same work as for a known name.
            let _ = verify_password(dummy_hash(), password);
            self.backoff_lock().fail(Realm::Login, &source, None, now);
            self.audit_refusal(
                &format!("user:{}", crate::bounded_text(name)),
                "login.failed",
                &ctx.path,
                &ctx.remote,
                ctx.detail("unknown user"),
            )
            .await;
            return Err(bad());
        };
        if let Some(until) = user.locked_until.filter(|u| *u > now) {
            let wait = until.duration_since(now).as_secs().max(1);
            self.audit_refusal(
                &format!("user:{}", user.name),
                "login.locked",
                &ctx.path,
                &ctx.remote,
                ctx.detail("user locked after repeated failures"),
            )
            .await;
            return Err(AppError::new(
                ErrorCode::TooManyRequests,
                format!("too many failed sign-ins for this user: retry in {wait} s"),
            )
            .with_retry_after(wait as u64));
        }
        let verified = verify_password(&user.password_hash, password);
        if !verified || user.disabled_at.is_some() {
            let failures = user.failed_logins + 1;
            let locked_until = lock_for(failures).map(|d| now + d);
            let mut tx = self
                .change_by_system(crate::system::SystemActor::Authenticator)
                .await?;
            tx.record_login_failure(user.id, failures, locked_until)
                .await?;
            tx.commit_unaudited("failed sign-in count").await?;
            self.backoff_lock().fail(Realm::Login, &source, None, now);
            let mut detail = ctx.detail(if verified {
                "user disabled"
            } else {
                "wrong password"
            });
            detail["failures"] = json!(failures);
            detail["locked_until"] = json!(locked_until.map(fmt_ts));
            self.audit_refusal(
                &format!("user:{}", user.name),
                "login.failed",
                &ctx.path,
                &ctx.remote,
                detail,
            )
            .await;
            return Err(bad());
        }
        let secret = format!("pbs_{}", hex::encode(random32()));
        let expires_at = now + SESSION_LIFETIME;
        let caller = user_caller(&user)?;
        let mut tx = self.open_change(caller.actor()).await?;
        tx.record_login_success(user.id, now).await?;
        let session = tx
            .insert_session(&NewSession {
                user_id: user.id,
                token_hash: session_hash(&secret),
                created_at: now,
                expires_at,
                remote: crate::refusal_source(&ctx.remote),
                user_agent: bounded(user_agent, MAX_USER_AGENT),
            })
            .await?;
        tx.audit(
            "user.login",
            &format!("user:{}", user.name),
            json!({"session": session.id, "remote": ctx.remote, "role": user.role}),
        )
        .await?;
        tx.commit().await?;
        Ok(SessionCreated {
            secret,
            expires_at,
            user: user.name,
        })
    }

    /// The signed-in person behind a session cookie, or 401 (sign in again).
    pub async fn authenticate_session(
        &self,
        secret: &str,
        ctx: &RequestCtx,
    ) -> Result<SessionCaller, AppError> {
        let source = crate::refusal_source(&ctx.remote);
        let hash = session_hash(secret);
        self.throttle(Realm::Login, &source, Some(&hash), ctx)
            .await?;
        let found = {
            let mut tx = self.store.read().await?;
            tx.session_by_hash(&hash).await?
        };
        let now = self.now();
        let expired = || {
            AppError::new(
                ErrorCode::Unauthenticated,
                "your session has ended: sign in again",
            )
        };
        let Some((session, user)) = found else {
            self.backoff_lock()
                .fail(Realm::Login, &source, Some(&hash), now);
            return Err(expired());
        };
        let ended = session.revoked_at.is_some()
            || now >= session.expires_at
            || now.duration_since(session.last_seen_at) >= SESSION_IDLE
            || user.disabled_at.is_some();
        if ended {
            return Err(expired());
        }
        if now.duration_since(session.last_seen_at) >= SEEN_RESOLUTION {
            let mut tx = self
                .change_by_system(crate::system::SystemActor::Authenticator)
                .await?;
            tx.touch_session(session.id, now).await?;
            tx.commit_unaudited("session last-seen stamp").await?;
        }
        Ok(SessionCaller {
            caller: user_caller(&user)?,
            session_id: session.id,
            user: user.name,
        })
    }

    /// Signs out: ends the session behind `secret` (audited). An unknown or
    /// already ended session is not an error (the cookie is cleared anyway).
    pub async fn logout(&self, secret: &str) -> Result<(), AppError> {
        let found = {
            let mut tx = self.store.read().await?;
            tx.session_by_hash(&session_hash(secret)).await?
        };
        let Some((session, user)) = found else {
            return Ok(());
        };
        if session.revoked_at.is_some() {
            return Ok(());
        }
        let caller = user_caller(&user)?;
        let mut tx = self.open_change(caller.actor()).await?;
        tx.revoke_session(session.id, self.now()).await?;
        tx.audit(
            "user.logout",
            &format!("user:{}", user.name),
            json!({"session": session.id}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_doubles_and_is_capped() {
        assert_eq!(lock_for(4), None);
        assert_eq!(lock_for(5), Some(SignedDuration::from_secs(30)));
        assert_eq!(lock_for(6), Some(SignedDuration::from_secs(60)));
        assert_eq!(lock_for(9), Some(SignedDuration::from_secs(480)));
        assert_eq!(lock_for(10), Some(SignedDuration::from_secs(900)));
        assert_eq!(lock_for(1000), Some(SignedDuration::from_secs(900)));
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse batterY"));
        assert!(!verify_password("not a hash", "anything at all"));
        // A fresh salt each time.
        assert_ne!(h, hash_password("correct horse battery").unwrap());
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let t = csrf_token("pbs_a");
        assert_eq!(t.len(), 32);
        assert!(csrf_ok("pbs_a", &t));
        assert!(!csrf_ok("pbs_b", &t));
        assert!(!csrf_ok("pbs_a", ""));
        assert!(!csrf_ok("pbs_a", &t[..31]));
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_user_name("alice.noc@example-1").is_ok());
        assert!(check_user_name("").is_err());
        assert!(check_user_name("a b").is_err());
        assert!(check_user_name("a\u{1b}[31m").is_err());
        assert!(check_user_name(&"a".repeat(65)).is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("twelve chars").is_ok());
        assert!(check_password(&"é".repeat(12)).is_ok());
        assert!(check_password(&"x".repeat(1025)).is_err());
    }
}
