//! API tokens, enrolment tokens and the audit listing.

use crate::auth::token_info;
use crate::{App, AppError, Caller, RequestCtx, fmt_ts, random32};
use jiff::SignedDuration;
use patchbay_core::auth::{Action, Scopes};
use patchbay_core::names::{MAX_LABEL_LEN, check_label};
use patchbay_core::token::{self, TokenKind};
use patchbay_proto::api::{
    AuditEventOut, CreateEnrollToken, CreateToken, EnrollTokenCreated, TokenCreated, TokenInfo,
};
use patchbay_store::{NewApiToken, NewEnrollToken};
use serde_json::json;

/// Default lifetime of an enrolment token.
pub const DEFAULT_ENROLL_TTL: SignedDuration = SignedDuration::from_hours(24);
/// Longest allowed enrolment-token lifetime: a year. Longer-lived enrolment
/// secrets end up in images and wikis.
pub const MAX_ENROLL_TTL_SECS: u64 = 366 * 24 * 3600;
/// Longest allowed API-token lifetime: 366 days (a yearly rotation). A token
/// created without a lifetime does not expire (kept for compatibility with
/// scripts written before expiry existed; `patchbay tokens create` warns).
pub const MAX_TOKEN_TTL_SECS: u64 = 366 * 24 * 3600;
/// Most audit events one listing request may ask for.
pub const MAX_AUDIT_LIMIT: i64 = 10_000;
/// Most uses of one enrolment token (a fleet roll-out of 100k hosts).
pub const MAX_ENROLL_USES: u32 = 100_000;

impl App {
    /// Creates an API token (admin only).
    pub async fn create_token(
        &self,
        caller: &Caller,
        req: CreateToken,
        ctx: &RequestCtx,
    ) -> Result<TokenCreated, AppError> {
        self.require(caller, Action::ManageTokens, ctx).await?;
        let name = check_label(&req.name, MAX_LABEL_LEN)
            .map_err(|m| AppError::invalid(format!("name: {m}")))?;
        let name = name.as_str();
        // Calendar tokens end up in calendar URLs: their own prefix makes them
        // recognisable (and they open nothing but the feed).
        let kind = if req.role == patchbay_core::auth::Role::Calendar {
            TokenKind::Calendar
        } else {
            TokenKind::Api
        };
        let now = self.now();
        let expires_at = match req.ttl_secs {
            None => None,
            Some(s) if s == 0 || s > MAX_TOKEN_TTL_SECS => {
                return Err(AppError::invalid(format!(
                    "ttl_secs: must be between 1 second and {MAX_TOKEN_TTL_SECS} seconds (366 days), got {s}"
                )));
            }
            Some(s) => Some(now + SignedDuration::from_secs(s as i64)),
        };
        let scopes = match &req.scopes {
            None => Scopes::UNRESTRICTED,
            Some(l) if l.is_empty() => {
                return Err(AppError::invalid(
                    "scopes: an empty list would permit nothing; omit it for everything the role permits",
                ));
            }
            Some(l) => {
                if let Some(s) = l.iter().find(|s| !s.within(req.role)) {
                    return Err(AppError::invalid(format!(
                        "scopes: role '{}' has no '{s}' permission; a scope restricts a role, it cannot widen it",
                        req.role
                    )));
                }
                Scopes::only(l.iter().copied())
            }
        };
        let secret = token::render(kind, &random32());
        let mut tx = self.change(caller, Action::ManageTokens, ctx).await?;
        let row = tx
            .insert_api_token(&NewApiToken {
                name: name.to_string(),
                role: req.role.as_str().to_string(),
                token_hash: token::hash(&secret),
                prefix: token::display_prefix(&secret),
                created_at: now,
                created_by: caller.actor(),
                expires_at,
                scopes: scopes.to_stored(),
            })
            .await?;
        tx.audit(
            "token.create",
            &format!("token:{}", row.id),
            json!({"name": row.name, "role": row.role,
                   "expires_at": row.expires_at.map(fmt_ts), "scopes": scopes.list()}),
        )
        .await?;
        tx.commit().await?;
        Ok(TokenCreated {
            info: token_info(&row)?,
            token: secret,
        })
    }

    /// Lists API tokens (never the secrets).
    pub async fn list_tokens(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Vec<TokenInfo>, AppError> {
        self.require(caller, Action::ReadTokens, ctx).await?;
        let mut tx = self.store.read().await?;
        tx.list_api_tokens().await?.iter().map(token_info).collect()
    }

    /// Revokes an API token (admin only).
    pub async fn revoke_token(
        &self,
        caller: &Caller,
        id: i64,
        ctx: &RequestCtx,
    ) -> Result<(), AppError> {
        self.require(caller, Action::ManageTokens, ctx).await?;
        let mut tx = self.change(caller, Action::ManageTokens, ctx).await?;
        tx.revoke_api_token(id, self.now()).await?;
        tx.audit("token.revoke", &format!("token:{id}"), json!({}))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates an agent enrolment token.
    pub async fn create_enroll_token(
        &self,
        caller: &Caller,
        req: CreateEnrollToken,
        ctx: &RequestCtx,
    ) -> Result<EnrollTokenCreated, AppError> {
        self.require(caller, Action::CreateEnrollToken, ctx).await?;
        let uses = req.uses.unwrap_or(1);
        if uses == 0 || uses > MAX_ENROLL_USES {
            return Err(AppError::invalid(format!(
                "uses must be between 1 and {MAX_ENROLL_USES}, got {uses}"
            )));
        }
        let ttl = match req.ttl_secs {
            None => DEFAULT_ENROLL_TTL,
            Some(s) if s == 0 || s > MAX_ENROLL_TTL_SECS => {
                return Err(AppError::invalid(format!(
                    "ttl must be between 1 second and {MAX_ENROLL_TTL_SECS} seconds, got {s}"
                )));
            }
            Some(s) => SignedDuration::from_secs(s as i64),
        };
        let now = self.now();
        let secret = token::render(TokenKind::Enroll, &random32());
        let name = match req.name.as_deref() {
            None => "enrolment".to_string(),
            Some(n) => check_label(n, MAX_LABEL_LEN)
                .map_err(|m| AppError::invalid(format!("name: {m}")))?,
        };
        let mut tx = self.change(caller, Action::CreateEnrollToken, ctx).await?;
        let row = tx
            .insert_enroll_token(&NewEnrollToken {
                name,
                token_hash: token::hash(&secret),
                prefix: token::display_prefix(&secret),
                uses: uses as i64,
                expires_at: now + ttl,
                created_at: now,
                created_by: caller.actor(),
            })
            .await?;
        tx.audit(
            "enroll_token.create",
            &format!("enroll_token:{}", row.id),
            json!({"uses": uses, "expires_at": fmt_ts(row.expires_at)}),
        )
        .await?;
        tx.commit().await?;
        Ok(EnrollTokenCreated {
            id: row.id,
            token: secret,
            uses,
            expires_at: fmt_ts(row.expires_at),
        })
    }

    /// Lists audit events after `after`, at most `limit` (`1..=`[`MAX_AUDIT_LIMIT`]).
    pub async fn list_audit(
        &self,
        caller: &Caller,
        after: i64,
        limit: i64,
        ctx: &RequestCtx,
    ) -> Result<Vec<AuditEventOut>, AppError> {
        self.require(caller, Action::ReadAudit, ctx).await?;
        if limit < 1 {
            return Err(AppError::invalid(format!(
                "limit: must be between 1 and {MAX_AUDIT_LIMIT}, got {limit}"
            )));
        }
        crate::prioritise::check_limit(limit as u64, MAX_AUDIT_LIMIT as u64)?;
        let mut tx = self.store.read().await?;
        Ok(tx
            .list_audit(after, limit)
            .await?
            .into_iter()
            .map(|e| AuditEventOut {
                seq: e.seq,
                at: fmt_ts(e.record.at),
                actor: e.record.actor,
                action: e.record.action,
                target: e.record.target,
                outcome: e.record.outcome,
                detail: e.record.detail,
            })
            .collect())
    }
}
