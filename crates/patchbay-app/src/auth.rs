//! Authentication of API tokens and agents, and the role and scope check.
//!
//! Order of checks for an API token: the backoff table ([`crate::backoff`]:
//! a locked source or credential is answered 429 before any lookup) → the
//! token by hash → revoked → expired (401 `token_expired`) → the caller, with
//! its role and scopes. [`App::require`] then admits an action only when the
//! role permits it and the token's scopes include the action's scope.

use crate::agent_ca;
use crate::backoff::Realm;
use crate::{App, AppError, fmt_ts, random32};
use jiff::SignedDuration;
use patchbay_core::auth::{Action, Role, Scopes};
use patchbay_core::token::{self, TokenKind};
use patchbay_proto::api::{TokenCreated, TokenInfo};
use patchbay_proto::error::ErrorCode;
use patchbay_store::{ApiTokenRow, NewApiToken};
use serde_json::json;

/// Who is calling the service layer, and with which role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who: an API token, a local tool, or a named system actor.
    pub principal: Principal,
    /// Role.
    pub role: Role,
    /// The token's restriction below its role ([`Scopes::UNRESTRICTED`] for
    /// everyone but scoped API tokens).
    pub scopes: Scopes,
}

/// The identity behind a [`Caller`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An API token (authenticated by its secret).
    Token {
        /// Token id.
        id: i64,
        /// Token label.
        name: String,
    },
    /// A tool run next to the database by an operating-system user (who can
    /// read the database and the signing key, and so is an administrator).
    Local {
        /// The user name.
        user: String,
    },
    /// Patchbay's own work ([`crate::system`]).
    System(crate::system::SystemActor),
    /// A person signed in to the dashboard ([`crate::users`]).
    User {
        /// User id.
        id: i64,
        /// Sign-in name.
        name: String,
    },
}

impl crate::system::SystemActor {
    /// This actor as a caller of the service layer (crate-private: no request
    /// can claim to be the system).
    pub(crate) fn caller(self) -> Caller {
        Caller {
            principal: Principal::System(self),
            role: self.role(),
            scopes: Scopes::UNRESTRICTED,
        }
    }
}

impl Caller {
    /// The audit actor string.
    pub fn actor(&self) -> String {
        match &self.principal {
            Principal::Token { id, name } => format!("token:{id}:{name}"),
            Principal::Local { user } => format!("local:{user}"),
            Principal::System(a) => a.name().to_string(),
            Principal::User { id, name } => format!("user:{id}:{name}"),
        }
    }

    /// A tool run next to the database by `user` (`feeds import --db`).
    pub fn local(user: &str) -> Self {
        Caller {
            principal: Principal::Local {
                user: crate::bounded_text(user),
            },
            role: Role::Admin,
            scopes: Scopes::UNRESTRICTED,
        }
    }

    /// Whether this caller may perform `action`: its role permits it and its
    /// scopes include the action's scope.
    pub fn permits(&self, action: Action) -> bool {
        patchbay_core::auth::permits(self.role, &self.scopes, action)
    }

    /// The API token's id and label, when the caller is one.
    pub fn token(&self) -> Option<(i64, &str)> {
        match &self.principal {
            Principal::Token { id, name } => Some((*id, name)),
            _ => None,
        }
    }
}

/// An enrolled agent, authenticated by its credential: the identity a
/// check-in acts as (the service's own type, not a storage row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCaller {
    /// Agent id.
    pub agent_id: String,
    /// The asset it reports for.
    pub asset_id: i64,
    /// That asset's name.
    pub asset_name: String,
    /// The server wants the agent to get a (new) client certificate
    /// ([`crate::agent_ca::certificate_wanted`]).
    pub certificate_wanted: bool,
    /// What the credential lookup of a check-in read of the asset
    /// ([`App::authenticate_agent_checkin`]), carried to the check-in so an
    /// unchanged one needs no second read; `None` from
    /// [`App::authenticate_agent`] (the check-in then reads it itself).
    pub checkin_held: Option<CheckinHeld>,
}

/// The asset's check-in state as the credential lookup read it, in the same
/// query: valid for the one request it was read for (authenticate each
/// check-in; a caller kept across check-ins would carry an old hash and miss
/// new jobs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckinHeld {
    /// The inventory hash the server holds.
    pub inventory_hash: Option<String>,
    /// Whether the asset has a job without a result.
    pub open_jobs: bool,
}

impl AgentCaller {
    /// The audit actor string.
    pub fn actor(&self) -> String {
        format!("agent:{}", self.agent_id)
    }
}

/// Request facts recorded with refusals.
#[derive(Debug, Clone, Default)]
pub struct RequestCtx {
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Peer address.
    pub remote: String,
    /// SHA-256 (hex) of the client certificate the TLS layer verified, if
    /// the client presented one.
    pub client_cert: Option<String>,
}

impl RequestCtx {
    /// The detail of a refusal. The path is the entry's target (bounded), not
    /// repeated here: an unbounded path must not be stored twice.
    pub(crate) fn detail(&self, reason: &str) -> serde_json::Value {
        json!({"method": crate::bounded_text(&self.method), "remote": crate::bounded_text(&self.remote), "reason": reason})
    }
}

/// `last_used_at` resolution: a token used many times a minute is written once.
const LAST_USED_RESOLUTION: SignedDuration = SignedDuration::from_secs(60);

/// A stored token's scopes; a value that does not parse is an internal error
/// naming the token (never a wider permission).
fn stored_scopes(r: &ApiTokenRow) -> Result<Scopes, AppError> {
    Scopes::from_stored(r.scopes.as_deref()).map_err(|e| {
        AppError::new(
            ErrorCode::Internal,
            format!("stored token {} scopes: {e}", r.id),
        )
    })
}

pub(crate) fn token_info(r: &ApiTokenRow) -> Result<TokenInfo, AppError> {
    Ok(TokenInfo {
        expires_at: r.expires_at.map(fmt_ts),
        scopes: stored_scopes(r)?.list(),
        id: r.id,
        name: r.name.clone(),
        role: r.role.parse().map_err(|e: String| {
            AppError::new(ErrorCode::Internal, format!("stored token {}: {e}", r.id))
        })?,
        prefix: r.prefix.clone(),
        created_at: fmt_ts(r.created_at),
        created_by: r.created_by.clone(),
        last_used_at: r.last_used_at.map(fmt_ts),
        revoked_at: r.revoked_at.map(fmt_ts),
    })
}

fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, rest) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

impl App {
    /// Authenticates an API request from its `Authorization` header. Refusals are
    /// recorded in the audit log and answered with 401.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        ctx: &RequestCtx,
    ) -> Result<Caller, AppError> {
        let Some(secret) = bearer(authorization) else {
            let reason = if authorization.is_some() {
                "malformed Authorization header"
            } else {
                "no token"
            };
            self.audit_refusal(
                "anonymous",
                "request.denied",
                &ctx.path,
                &ctx.remote,
                ctx.detail(reason),
            )
            .await;
            return Err(AppError::new(
                ErrorCode::Unauthenticated,
                "an API token is required: send 'Authorization: Bearer <token>'",
            ));
        };
        let hash = token::hash(secret);
        let source = crate::refusal_source(&ctx.remote);
        self.throttle(Realm::Api, &source, Some(&hash), ctx).await?;
        let row = {
            let mut tx = self.store.read().await?;
            tx.api_token_by_hash(&hash).await?
        };
        let now = self.now();
        let refused = match &row {
            None => Some((
                format!("unknown:{}", token::display_prefix(secret)),
                "unknown token",
                AppError::new(ErrorCode::Unauthenticated, "unknown API token"),
            )),
            Some(r) if r.revoked_at.is_some() => Some((
                format!("token:{}:{}", r.id, r.name),
                "revoked token",
                AppError::new(
                    ErrorCode::Unauthenticated,
                    "this API token has been revoked",
                ),
            )),
            Some(r) if r.expires_at.is_some_and(|e| now >= e) => Some((
                format!("token:{}:{}", r.id, r.name),
                "expired token",
                // The caller holds the secret: telling it the token expired
                // (and when) reveals nothing it could not learn from a listing.
                AppError::new(
                    ErrorCode::TokenExpired,
                    format!(
                        "this API token expired at {}: create a new one (`patchbay tokens create`)",
                        r.expires_at.map(fmt_ts).unwrap_or_default()
                    ),
                ),
            )),
            Some(_) => None,
        };
        if let Some((actor, reason, err)) = refused {
            self.backoff_lock()
                .fail(Realm::Api, &source, Some(&hash), now);
            self.audit_refusal(
                &actor,
                "request.denied",
                &ctx.path,
                &ctx.remote,
                ctx.detail(reason),
            )
            .await;
            return Err(err);
        }
        let Some(row) = row else {
            return Err(AppError::new(ErrorCode::Internal, "token row vanished"));
        };
        self.backoff_lock().succeed(Realm::Api, &source, &hash, now);
        let stale = row
            .last_used_at
            .is_none_or(|t| now.duration_since(t) >= LAST_USED_RESOLUTION);
        if stale {
            let mut tx = self
                .change_by_system(crate::system::SystemActor::Authenticator)
                .await?;
            tx.touch_api_token(row.id, now).await?;
            tx.commit_unaudited("token last-use stamp").await?;
        }
        let role: Role = row.role.parse().map_err(|e: String| {
            AppError::new(ErrorCode::Internal, format!("stored token {}: {e}", row.id))
        })?;
        let scopes = stored_scopes(&row)?;
        Ok(Caller {
            principal: Principal::Token {
                id: row.id,
                name: row.name,
            },
            role,
            scopes,
        })
    }

    pub(crate) fn backoff_lock(&self) -> std::sync::MutexGuard<'_, crate::backoff::AuthBackoff> {
        self.backoff.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers 429 (recorded like other refusals, so bounded per source) when
    /// the source or the presented credential is locked by the backoff table;
    /// nothing is looked up.
    pub(crate) async fn throttle(
        &self,
        realm: Realm,
        source: &str,
        credential: Option<&str>,
        ctx: &RequestCtx,
    ) -> Result<(), AppError> {
        let now = self.now();
        let Some(wait) = self.backoff_lock().locked(realm, source, credential, now) else {
            return Ok(());
        };
        let mut detail = ctx.detail("too many failed authentications");
        detail["retry_after_secs"] = json!(wait);
        self.audit_refusal(
            "anonymous",
            "request.throttled",
            &ctx.path,
            &ctx.remote,
            detail,
        )
        .await;
        Err(AppError::new(
            ErrorCode::TooManyRequests,
            format!(
                "too many failed authentications from this address or with this credential: retry in {wait} s"
            ),
        )
        .with_retry_after(wait))
    }

    /// Authenticates a request to the subscribable calendar feed
    /// (`/calendar.ics`): only a calendar token (role `calendar`) is accepted
    /// there, from the query or the header — any other token in a calendar URL
    /// would leak a key to everything. Refusals are recorded (401/403).
    pub async fn authenticate_calendar(
        &self,
        authorization: Option<&str>,
        ctx: &RequestCtx,
    ) -> Result<Caller, AppError> {
        let caller = self.authenticate(authorization, ctx).await?;
        if caller.role == Role::Calendar {
            return Ok(caller);
        }
        let mut detail = ctx.detail("not a calendar token");
        detail["role"] = json!(caller.role.as_str());
        self.audit_refusal(
            &caller.actor(),
            "request.denied",
            &ctx.path,
            &ctx.remote,
            detail,
        )
        .await;
        Err(AppError::new(
            ErrorCode::Forbidden,
            format!(
                "the calendar feed takes only a calendar token, not a '{}' token: create one with `patchbay tokens create --name NAME --role calendar`",
                caller.role
            ),
        ))
    }

    /// Checks that `caller` may perform `action`; a refusal is recorded and
    /// answered with 403.
    pub async fn require(
        &self,
        caller: &Caller,
        action: Action,
        ctx: &RequestCtx,
    ) -> Result<(), AppError> {
        if caller.permits(action) {
            return Ok(());
        }
        let by_role = !caller.role.permits(action);
        let mut detail = ctx.detail(if by_role {
            "role lacks permission"
        } else {
            "token scopes exclude this"
        });
        detail["role"] = json!(caller.role.as_str());
        detail["needed"] = json!(format!("{action:?}"));
        if let Some(scopes) = caller.scopes.list() {
            detail["scopes"] = json!(scopes);
            detail["needed_scope"] = json!(action.scope().as_str());
        }
        self.audit_refusal(
            &caller.actor(),
            "request.denied",
            &ctx.path,
            &ctx.remote,
            detail,
        )
        .await;
        let message = if by_role {
            format!("role '{}' may not do this ({action:?})", caller.role)
        } else {
            format!(
                "this token's scopes do not include '{}' ({action:?})",
                action.scope()
            )
        };
        Err(AppError::new(ErrorCode::Forbidden, message))
    }

    /// Authenticates an agent by its credential. Refusals are recorded.
    pub async fn authenticate_agent(
        &self,
        authorization: Option<&str>,
        ctx: &RequestCtx,
    ) -> Result<AgentCaller, AppError> {
        self.authenticate_agent_as(authorization, ctx, false).await
    }

    /// [`App::authenticate_agent`] for a check-in (`POST /agent/v1/checkin`):
    /// the same checks in the same order (backoff, credential, revocation,
    /// certificate binding, refusals audited), from one query that also
    /// reads the asset's held inventory hash and open jobs
    /// ([`AgentCaller::checkin_held`]), so that an unchanged check-in costs
    /// this one read transaction and nothing else.
    pub async fn authenticate_agent_checkin(
        &self,
        authorization: Option<&str>,
        ctx: &RequestCtx,
    ) -> Result<AgentCaller, AppError> {
        self.authenticate_agent_as(authorization, ctx, true).await
    }

    async fn authenticate_agent_as(
        &self,
        authorization: Option<&str>,
        ctx: &RequestCtx,
        checkin: bool,
    ) -> Result<AgentCaller, AppError> {
        let secret = bearer(authorization);
        let hash = secret.map(token::hash);
        let source = crate::refusal_source(&ctx.remote);
        if hash.is_some() {
            self.throttle(Realm::Agent, &source, hash.as_deref(), ctx)
                .await?;
        }
        let (row, held) = match &hash {
            // A check-in's lookup is one statement outside a transaction
            // (`Store::agent_for_checkin`): the steady check-in's only read.
            Some(h) if checkin => match self.store.agent_for_checkin(h).await? {
                Some((a, st)) => (
                    Some(a),
                    Some(CheckinHeld {
                        inventory_hash: st.inventory_hash,
                        open_jobs: st.open_jobs,
                    }),
                ),
                None => (None, None),
            },
            Some(h) => (
                self.store.read().await?.agent_by_secret_hash(h).await?,
                None,
            ),
            None => (None, None),
        };
        match row {
            Some(a)
                if a.revoked_at.is_none()
                    && agent_ca::certificate_refusal(
                        self.config.agent_mtls.mode,
                        ctx.client_cert.as_deref(),
                        a.cert_sha256.as_deref(),
                    )
                    .is_none() =>
            {
                let now = self.now();
                if let Some(h) = &hash {
                    self.backoff_lock().succeed(Realm::Agent, &source, h, now);
                }
                let presented_own = ctx.client_cert.is_some();
                Ok(AgentCaller {
                    certificate_wanted: self.agent_ca.is_some()
                        && agent_ca::certificate_wanted(
                            &self.config.agent_mtls,
                            presented_own,
                            a.cert_not_after,
                            now,
                        ),
                    agent_id: a.id,
                    asset_id: a.asset_id,
                    asset_name: a.asset_name,
                    checkin_held: held,
                })
            }
            other => {
                if let Some(h) = &hash {
                    let now = self.now();
                    self.backoff_lock()
                        .fail(Realm::Agent, &source, Some(h), now);
                }
                let reason = match (&secret, &other) {
                    (None, _) => "no agent credential",
                    (Some(_), Some(a)) if a.revoked_at.is_some() => "revoked agent credential",
                    (Some(_), Some(a)) => agent_ca::certificate_refusal(
                        self.config.agent_mtls.mode,
                        ctx.client_cert.as_deref(),
                        a.cert_sha256.as_deref(),
                    )
                    .unwrap_or("refused"),
                    (Some(_), None) => "unknown agent credential",
                };
                let actor = other
                    .map(|a| format!("agent:{}", a.id))
                    .unwrap_or_else(|| "anonymous".into());
                self.audit_refusal(
                    &actor,
                    "request.denied",
                    &ctx.path,
                    &ctx.remote,
                    ctx.detail(reason),
                )
                .await;
                Err(AppError::new(
                    ErrorCode::Unauthenticated,
                    format!("{reason}: enrol the agent again"),
                ))
            }
        }
    }

    /// On first start (no API token exists), creates an admin token and returns its
    /// secret so the caller can write it to the data directory. Returns `None` when
    /// tokens exist already.
    pub async fn bootstrap_admin_token(&self) -> Result<Option<TokenCreated>, AppError> {
        let mut tx = self
            .change_by_system(crate::system::SystemActor::Bootstrap)
            .await?;
        if !tx.list_api_tokens().await?.is_empty() {
            return Ok(None);
        }
        let secret = token::render(TokenKind::Api, &random32());
        let row = tx
            .insert_api_token(&NewApiToken {
                name: "bootstrap-admin".into(),
                role: Role::Admin.as_str().into(),
                token_hash: token::hash(&secret),
                prefix: token::display_prefix(&secret),
                created_at: self.now(),
                created_by: "system".into(),
                expires_at: None,
                scopes: None,
            })
            .await?;
        tx.audit(
            "token.create",
            &format!("token:{}", row.id),
            json!({"role": "admin", "name": row.name}),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(TokenCreated {
            info: token_info(&row)?,
            token: secret,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer   abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
