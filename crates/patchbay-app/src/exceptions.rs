//! The exception register: add, list, show, revoke, review, and the expiry
//! sweep that raises an event when an exception ends on its own.
//!
//! Creating or revoking an exception needs the `approve` permission (admin or
//! approver); the caller is recorded as the approver. Matching and lifetimes
//! are `patchbay_core::exception`.

use crate::ranking::{Ranked, core_of, facts_of, groups_of};
use crate::snapshot::Snapshot;
use crate::{App, AppError, Caller, RequestCtx, fmt_ts};
use jiff::{SignedDuration, Timestamp};
use patchbay_core::auth::Action;
use patchbay_core::exception::{self, Exception, Scope, Status};
use patchbay_proto::api::{ExceptionOut, ExceptionReviewOut, ExceptionSpec};
use patchbay_store::ExceptionRow;
use serde_json::json;

/// The actor of events the server raises on its own.
pub const SYSTEM_ACTOR: &str = crate::SystemActor::ExceptionExpiry.name();

fn status_str(s: Status) -> &'static str {
    match s {
        Status::Active | Status::Future => "active",
        Status::Expired => "expired",
        Status::Revoked => "revoked",
    }
}

fn out(r: &ExceptionRow, now: Timestamp, ranked: &[Ranked]) -> ExceptionOut {
    let core = core_of(r);
    let mut covers: Vec<String> = if core.active_at(now) {
        ranked
            .iter()
            .filter(|x| core.covers(&facts_of(x)))
            .map(|x| {
                let f = &x.item.finding;
                format!("{} {} {}", f.asset, f.package, f.advisory)
            })
            .collect()
    } else {
        Vec::new()
    };
    covers.sort();
    ExceptionOut {
        id: r.id.clone(),
        status: status_str(core.status(now)).into(),
        advisory: r.advisory.clone(),
        package: r.package.clone(),
        asset: r.asset.clone(),
        group: r.group.clone(),
        owner: r.owner.clone(),
        reason: r.reason.clone(),
        compensating_control: r.compensating_control.clone(),
        approver: r.approver.clone(),
        created_at: fmt_ts(r.created_at),
        expires_at: fmt_ts(r.expires_at),
        revoked_at: r.revoked_at.map(fmt_ts),
        revoked_by: r.revoked_by.clone(),
        revoke_reason: r.revoke_reason.clone(),
        covers,
        kind: r.kind.clone(),
        justification: r.justification.clone(),
        origin: r.origin.clone(),
    }
}

pub use crate::ranking::{DEFERRED, NOT_AFFECTED};

/// The VEX justifications (CSAF 2.0 flag labels, the same as CISA's VEX
/// status justifications).
pub const JUSTIFICATIONS: [&str; 5] = [
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
];

/// Inserts `row` under the next free `EXC-<yyyy>-<nnnn>` id of `now`'s year
/// (inside `tx`); returns the id.
pub(crate) async fn insert_numbered(
    tx: &mut crate::change::Change<'_>,
    mut row: ExceptionRow,
    now: Timestamp,
) -> Result<ExceptionRow, AppError> {
    let year = now.to_zoned(jiff::tz::TimeZone::UTC).year();
    let prefix = format!("EXC-{year:04}-");
    let seq = tx
        .list_exceptions()
        .await?
        .iter()
        .filter(|e| e.id.starts_with(&prefix))
        .count()
        + 1;
    row.id = format!("{prefix}{seq:04}");
    if !tx.insert_exception(&row).await? {
        return Err(AppError::new(
            patchbay_proto::error::ErrorCode::Conflict,
            format!("{} exists; retry", row.id),
        ));
    }
    Ok(row)
}

fn required<'a>(field: &str, v: &'a str) -> Result<&'a str, AppError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(AppError::invalid(format!("{field}: required")));
    }
    patchbay_core::names::check_label(v, patchbay_core::names::MAX_TEXT_LEN)
        .map_err(|m| AppError::invalid(format!("{field}: {m}")))?;
    Ok(v)
}

/// Every open, non-excluded finding ranked, marked with its exception.
async fn ranked_open(snap: &mut Snapshot<'_>) -> Result<Vec<Ranked>, AppError> {
    let (policy, _) = snap.policy_in_force().await?;
    Ok(snap
        .ranked_open(&policy)
        .await?
        .into_iter()
        .filter(|r| !r.excluded)
        .collect())
}

impl App {
    /// Adds an exception (admin, approver); the caller is the approver.
    pub async fn add_exception(
        &self,
        caller: &Caller,
        spec: &ExceptionSpec,
        ctx: &RequestCtx,
    ) -> Result<ExceptionOut, AppError> {
        self.require(caller, Action::Approve, ctx).await?;
        let now = self.now();
        let advisory = spec.advisory.as_deref().unwrap_or("").trim().to_string();
        let package = spec.package.as_deref().unwrap_or("").trim().to_string();
        if advisory.is_empty() && package.is_empty() {
            return Err(AppError::invalid(
                "advisory: name an advisory or CVE, a package, or both (blanket exceptions are not allowed)",
            ));
        }
        let asset = spec.asset.as_deref().unwrap_or("").trim().to_string();
        let group = spec.group.as_deref().unwrap_or("").trim().to_string();
        let (asset, group) = match (asset.is_empty(), group.is_empty()) {
            (false, true) => {
                let n = patchbay_core::names::AssetName::parse(&asset)
                    .map_err(|e| AppError::invalid(format!("asset: {e}")))?;
                let mut tx = self.store.read().await?;
                if tx.asset_by_name(n.as_str()).await?.is_none() {
                    return Err(AppError::invalid(format!("asset: unknown asset {asset:?}")));
                }
                (n.as_str().to_string(), String::new())
            }
            (true, false) => {
                let (policy, _) = self.policy_in_force().await?;
                if !policy.groups.iter().any(|g| g.name == group) {
                    return Err(AppError::invalid(format!(
                        "group: unknown group {group:?} in the policy in force"
                    )));
                }
                (String::new(), group)
            }
            _ => {
                return Err(AppError::invalid(
                    "asset: give exactly one of asset or group",
                ));
            }
        };
        let owner = required("owner", &spec.owner)?.to_string();
        let reason = required("reason", &spec.reason)?.to_string();
        let kind = spec
            .kind
            .as_deref()
            .map(|k| k.trim().replace('-', "_"))
            .unwrap_or_else(|| DEFERRED.into());
        let (kind, justification, control) = match kind.as_str() {
            DEFERRED => {
                if spec.justification.is_some() {
                    return Err(AppError::invalid(
                        "justification: only a not_affected (VEX) exception has one",
                    ));
                }
                let control =
                    required("compensating_control", &spec.compensating_control)?.to_string();
                (DEFERRED, String::new(), control)
            }
            NOT_AFFECTED => {
                let j = spec.justification.as_deref().unwrap_or("").trim();
                if !JUSTIFICATIONS.contains(&j) {
                    return Err(AppError::invalid(format!(
                        "justification: a not_affected (VEX) exception needs one of {}; got {j:?}",
                        JUSTIFICATIONS.join(", ")
                    )));
                }
                // Not affected: nothing to compensate for; kept if given.
                let control = spec.compensating_control.trim();
                if !control.is_empty() {
                    required("compensating_control", control)?;
                }
                (NOT_AFFECTED, j.to_string(), control.to_string())
            }
            other => {
                return Err(AppError::invalid(format!(
                    "kind: {other:?} is not deferred or not_affected"
                )));
            }
        };
        let expires_at = patchbay_core::when::expiry("expires", &spec.expires, now)?;
        exception::check_expiry(now, expires_at).map_err(AppError::invalid)?;
        // Open SLA breaches end when the exception covers their finding: the
        // findings are ranked (a read of its own, before the write opens)
        // only when a breach is open.
        let breached = !self
            .store
            .read()
            .await?
            .noted_without("sla.breached", "sla.resolved")
            .await?
            .is_empty();
        let open = if breached {
            ranked_open(&mut self.snapshot().await?).await?
        } else {
            Vec::new()
        };
        let mut tx = self.change(caller, Action::Approve, ctx).await?;
        let row = ExceptionRow {
            id: String::new(),
            advisory,
            package,
            asset,
            group,
            owner,
            reason,
            compensating_control: control,
            approver: caller.actor(),
            created_at: now,
            created_by: caller.actor(),
            expires_at,
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
            expired_noted_at: None,
            kind: kind.into(),
            justification,
            origin: String::new(),
        };
        let row = insert_numbered(&mut tx, row, now).await?;
        tx.audit(
            "exception.add",
            &format!("exception:{}", row.id),
            json!({"advisory": row.advisory, "package": row.package, "asset": row.asset,
                   "group": row.group, "owner": row.owner, "reason": row.reason,
                   "compensating_control": row.compensating_control,
                   "expires_at": fmt_ts(row.expires_at),
                   "kind": row.kind, "justification": row.justification}),
        )
        .await?;
        let granted = [core_of(&row)];
        let covered: std::collections::HashSet<String> = open
            .iter()
            .filter(|r| exception::excepting(&granted, &facts_of(r), now).is_some())
            .map(|r| r.item.finding.id.clone())
            .collect();
        crate::breaches::end_breaches(
            &mut tx,
            &covered,
            &crate::breaches::Ended::Exception(row.id.clone()),
            now,
        )
        .await?;
        tx.commit().await?;
        self.rollups.exceptions_changed();
        self.require(caller, Action::ReadInventory, ctx).await?;
        let ranked = ranked_open(&mut self.snapshot().await?).await?;
        Ok(out(&row, self.now(), &ranked))
    }

    /// Exceptions (in force only unless `all`), with the findings each covers.
    pub async fn exceptions(
        &self,
        caller: &Caller,
        all: bool,
        ctx: &RequestCtx,
    ) -> Result<Vec<ExceptionOut>, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut snap = self.snapshot().await?;
        let rows = snap.tx().list_exceptions().await?;
        let now = self.now();
        let shown: Vec<_> = rows
            .iter()
            .filter(|r| all || core_of(r).active_at(now))
            .collect();
        if shown.is_empty() {
            // Nothing to count findings for: no read of every open finding.
            return Ok(vec![]);
        }
        let ranked = ranked_open(&mut snap).await?;
        Ok(shown.into_iter().map(|r| out(r, now, &ranked)).collect())
    }

    /// The exceptions in force as stored, read now, without the findings
    /// each covers (`covers` empty): the dashboard's live list, whose counts
    /// come from a rollup ([`crate::dashboard`]).
    pub(crate) async fn exceptions_in_force_uncounted(
        &self,
    ) -> Result<Vec<ExceptionOut>, AppError> {
        let mut tx = self.store.read().await?;
        let rows = tx.list_exceptions().await?;
        let now = self.now();
        Ok(rows
            .iter()
            .filter(|r| core_of(r).active_at(now))
            .map(|r| out(r, now, &[]))
            .collect())
    }

    /// One exception.
    pub async fn exception(
        &self,
        caller: &Caller,
        id: &str,
        ctx: &RequestCtx,
    ) -> Result<ExceptionOut, AppError> {
        self.exceptions(caller, true, ctx)
            .await?
            .into_iter()
            .find(|e| e.id.eq_ignore_ascii_case(id.trim()))
            .ok_or_else(|| AppError::not_found(format!("no exception {id:?}")))
    }

    /// Revokes an exception in force (admin, approver): its findings are back
    /// at once, with their original SLA clock.
    pub async fn revoke_exception(
        &self,
        caller: &Caller,
        id: &str,
        reason: &str,
        ctx: &RequestCtx,
    ) -> Result<ExceptionOut, AppError> {
        self.require(caller, Action::Approve, ctx).await?;
        let reason = required("reason", reason)?;
        let id = id.trim().to_ascii_uppercase();
        let mut tx = self.change(caller, Action::Approve, ctx).await?;
        if !tx
            .revoke_exception(&id, self.now(), &caller.actor(), reason)
            .await?
        {
            let exists = tx.list_exceptions().await?.iter().any(|e| e.id == id);
            return Err(if exists {
                AppError::new(
                    patchbay_proto::error::ErrorCode::Conflict,
                    format!("{id} is not in force (expired or revoked already)"),
                )
            } else {
                AppError::not_found(format!("no exception {id:?}"))
            });
        }
        tx.audit(
            "exception.revoke",
            &format!("exception:{id}"),
            json!({"reason": reason}),
        )
        .await?;
        tx.commit().await?;
        self.rollups.exceptions_changed();
        self.exception(caller, &id, ctx).await
    }

    /// Raises the expiry event (an audit entry `exception.expired`) once for
    /// every exception that has run out; returns their ids. The duties
    /// runner's `exception-expiry` duty runs this (every minute by default).
    pub async fn sweep_exceptions(&self) -> Result<Vec<String>, AppError> {
        let now = self.now();
        let due: Vec<ExceptionRow> = {
            let mut tx = self.store.read().await?;
            tx.list_exceptions()
                .await?
                .into_iter()
                .filter(|r| {
                    r.expired_noted_at.is_none() && core_of(r).status(now) == Status::Expired
                })
                .collect()
        };
        let mut raised = Vec::new();
        for r in due {
            let mut tx = self
                .change_by_system(crate::system::SystemActor::ExceptionExpiry)
                .await?;
            if !tx.note_exception_expired(&r.id, now).await? {
                continue; // another replica raised it
            }
            tx.audit(
                "exception.expired",
                &format!("exception:{}", r.id),
                json!({"expired_at": fmt_ts(r.expires_at), "owner": r.owner,
                       "advisory": r.advisory, "package": r.package,
                       "asset": r.asset, "group": r.group}),
            )
            .await?;
            tx.commit().await?;
            tracing::info!(exception = %r.id, "exception expired: its findings are back in the worklist");
            raised.push(r.id);
        }
        Ok(raised)
    }

    /// The review: expiring within 7 days, expired, ownerless. A read: the
    /// expiry events are raised by the duties runner's sweep.
    pub async fn review_exceptions(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<ExceptionReviewOut, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        Ok(self.exception_register().await?.1)
    }

    /// Every exception (with the findings it covers) and the review lists,
    /// from one read of the open findings (the dashboard's rollup asks for
    /// both; two reads cost twice at fleet scale).
    pub(crate) async fn exception_register(
        &self,
    ) -> Result<(Vec<ExceptionOut>, ExceptionReviewOut), AppError> {
        let now = self.now();
        let mut snap = self.snapshot().await?;
        let rows = snap.tx().list_exceptions().await?;
        if rows.is_empty() {
            // An empty register: nothing to review, nothing else to read.
            return Ok((
                vec![],
                ExceptionReviewOut {
                    expiring: vec![],
                    expired: vec![],
                    ownerless: vec![],
                },
            ));
        }
        let assets = snap.assets().await?;
        let (policy, _) = snap.policy_in_force().await?;
        // Each asset's groups once, not once per exception.
        let groups: Vec<Vec<String>> = assets.iter().map(|a| groups_of(&policy, a)).collect();
        let owners_in = |e: &Exception| -> Vec<String> {
            assets
                .iter()
                .zip(&groups)
                .filter(|(a, gs)| match &e.scope {
                    Scope::Asset(n) => a.name.eq_ignore_ascii_case(n),
                    Scope::Group(g) => gs.contains(g),
                })
                .map(|(a, _)| a.attrs.owner.clone())
                .collect()
        };
        let cores: Vec<Exception> = rows.iter().map(core_of).collect();
        let r = exception::review(
            cores.iter().zip(rows.iter().map(|r| r.owner.as_str())),
            now,
            owners_in,
        );
        let ranked = ranked_open(&mut snap).await?;
        drop(snap);
        let all: Vec<ExceptionOut> = rows.iter().map(|r| out(r, now, &ranked)).collect();
        let pick = |ids: &[String]| -> Vec<ExceptionOut> {
            all.iter()
                .filter(|e| ids.contains(&e.id))
                .cloned()
                .collect()
        };
        let review = ExceptionReviewOut {
            expiring: pick(&r.expiring),
            expired: pick(&r.expired),
            ownerless: pick(&r.ownerless),
        };
        Ok((all, review))
    }
}

/// How long the server waits between expiry sweeps.
pub const SWEEP_EVERY: SignedDuration = SignedDuration::from_secs(60);
