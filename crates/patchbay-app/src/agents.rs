//! Agent enrolment and check-in.
//!
//! A check-in carries the agent's inventory hash and, only when it changed, the
//! inventory: whole, or as a delta against the inventory the server holds. The
//! server rewrites only the package rows that changed, and a check-in whose hash
//! matches writes no package row at all (only the last-seen time).
//!
//! The steady state — hash unchanged, no job results, no key refusals, no job
//! waiting — opens no write transaction: it is checked on a reader and its
//! time is recorded in memory and stored in batches ([`crate::heartbeats`]).
//! Everything else goes through one write transaction.

use crate::agent_ca::{Csr, Issued, MtlsMode};
use crate::{App, AppError, Caller, RequestCtx, fmt_ts};
use jiff::SignedDuration;
use patchbay_core::auth::Action;
use patchbay_core::inventory::{self, Inventory, PackageDelta};
use patchbay_core::names::{self, AssetName};
use patchbay_core::token::{self, TokenKind};
use patchbay_proto::AGENT_PROTOCOL_VERSION;
use patchbay_proto::agent::{
    CertificateRequest, CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse,
    InventoryPayload, IssuedCertificate,
};
use patchbay_proto::api::{EnrollmentApprovalIn, EnrollmentApprovalOut};
use patchbay_proto::error::ErrorCode;
use patchbay_store::{AssetAttrs, HostState};
use serde_json::json;

/// What a check-in did, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckinKind {
    /// Hash matched: nothing rewritten.
    Unchanged,
    /// A full inventory was sent.
    Full,
    /// A delta was sent.
    Delta,
}

/// Lifetime of an enrolment approval unless the operator gives one: long
/// enough to reinstall a host, short enough not to lie around.
pub const DEFAULT_APPROVAL_TTL_SECS: u64 = 3600;
/// Longest lifetime of an enrolment approval (a day).
pub const MAX_APPROVAL_TTL_SECS: u64 = 24 * 3600;

fn check_protocol(v: u32) -> Result<(), AppError> {
    if v != AGENT_PROTOCOL_VERSION {
        return Err(AppError::new(
            ErrorCode::UnsupportedProtocol,
            format!(
                "agent protocol {v} is not supported; this server speaks {AGENT_PROTOCOL_VERSION}"
            ),
        ));
    }
    Ok(())
}

fn mismatch(held: Option<&str>) -> AppError {
    AppError::new(
        ErrorCode::InventoryBaseMismatch,
        format!(
            "the server holds inventory {}; send the full inventory",
            held.unwrap_or("(none)")
        ),
    )
}

impl App {
    /// Enrols an agent with an enrolment token.
    ///
    /// A host that enrols again (same machine id) keeps its asset and its
    /// earlier agent credentials are revoked, but only with proof when that
    /// asset has an active agent: the current agent credential in the request
    /// (`agent_secret`), or an operator's enrolment approval of the asset
    /// (one-shot, time-limited). A new host whose name matches an imported
    /// (agentless) asset adopts it only with such an approval too. Without
    /// proof the enrolment is refused (`enrollment_needs_approval`), audited,
    /// and nothing changes: the enrolment token keeps its use and the real
    /// agent keeps working. Machine ids are readable by every API caller, so
    /// they identify a host but never authenticate one.
    pub async fn enroll(
        &self,
        req: EnrollRequest,
        ctx: &RequestCtx,
    ) -> Result<EnrollResponse, AppError> {
        check_protocol(req.protocol)?;
        names::check_hostname(&req.hostname)
            .map_err(|m| AppError::invalid(format!("hostname {:?}: {m}", req.hostname)))?;
        names::check_machine_id(&req.machine_id)
            .map_err(|m| AppError::invalid(format!("machine_id {:?}: {m}", req.machine_id)))?;
        // A certificate request is checked before the enrolment token is
        // used: a bad one costs the token nothing.
        let csr = self.enrolment_csr(req.csr.as_deref())?;
        let now = self.now();
        let mut tx = self.change_for_enrolment().await?;
        let Some(enroll) = tx
            .consume_enroll_token(&token::hash(&req.enroll_token), now)
            .await?
        else {
            drop(tx);
            self.audit_refusal(
                "anonymous",
                "agent.enroll",
                &format!("host:{}", req.hostname),
                &ctx.remote,
                json!({"reason": "invalid enrolment token", "remote": ctx.remote,
                       "token_prefix": token::display_prefix(&req.enroll_token)}),
            )
            .await;
            return Err(AppError::new(
                ErrorCode::Unauthenticated,
                "the enrolment token is unknown, expired, revoked or used up",
            ));
        };
        let actor = format!("enroll_token:{}", enroll.id);
        tx.set_actor(actor.clone());
        // Which asset is this host: a managed one with its machine id, an
        // imported one with its name, a managed one of its name that an
        // operator approved for re-enrolment (a reinstalled host has a new
        // machine id), or a new one.
        let mut proof = serde_json::Value::Null;
        let (existing, kind, free_name) = match tx.asset_by_machine_id(&req.machine_id).await? {
            Some(a) => (Some(a), "re-enrolment", String::new()),
            None => {
                let base = AssetName::from_hostname(&req.hostname);
                let mut name = base.to_string();
                let mut n = 1;
                loop {
                    match tx.asset_by_name(&name).await? {
                        // A managed asset of that name is another host, unless
                        // an operator approved this enrolment for it.
                        Some(a) if a.has_agent => {
                            if let Some((id, by)) = tx.take_enrollment_approval(a.id, now).await? {
                                proof = json!({"approval": id, "approved_by": by});
                                break (Some(a), "re-enrolment", name);
                            }
                            n += 1;
                            name = format!("{base}-{n}");
                        }
                        // An imported (unmanaged) asset of that name may be this host.
                        Some(a) => break (Some(a), "adoption", name),
                        None => break (None, "new", name),
                    }
                }
            }
        };
        let mut revoked = 0;
        let (asset_id, asset_name) = match existing {
            Some(a) => {
                let needs_proof = proof.is_null()
                    && (kind == "adoption" || tx.active_agents_of_asset(a.id).await? > 0);
                if needs_proof {
                    let by_credential = match &req.agent_secret {
                        Some(s) => tx
                            .agent_by_secret_hash(&token::hash(s))
                            .await?
                            .filter(|g| g.revoked_at.is_none() && g.asset_id == a.id),
                        None => None,
                    };
                    proof = match by_credential {
                        Some(g) => json!({"credential_of": g.id}),
                        None => match tx.take_enrollment_approval(a.id, now).await? {
                            Some((id, by)) => json!({"approval": id, "approved_by": by}),
                            None => {
                                drop(tx);
                                return Err(self
                                    .refuse_enrollment(&actor, &req, &a.name, kind, ctx)
                                    .await);
                            }
                        },
                    };
                }
                if kind == "adoption" {
                    tx.set_has_agent(a.id, true, now).await?;
                } else {
                    revoked = tx.revoke_agents_of_asset(a.id, now).await?;
                }
                (a.id, a.name)
            }
            None => {
                let id = tx
                    .insert_asset(&free_name, &AssetAttrs::default(), true, now)
                    .await?;
                (id, free_name)
            }
        };
        tx.set_machine(asset_id, &req.hostname, &req.machine_id, now)
            .await?;
        let agent_id = format!("agt_{}", &hex_id());
        let secret = token::render(TokenKind::Agent, &crate::random32());
        tx.insert_agent(
            &agent_id,
            asset_id,
            &token::hash(&secret),
            Some(enroll.id),
            now,
        )
        .await?;
        let certificate = match (&csr, &self.agent_ca) {
            (Some(csr), Some(ca)) => {
                let issued = ca
                    .issue(csr, &agent_id, now, self.config.agent_mtls.validity)
                    .map_err(|m| AppError::new(ErrorCode::Internal, m))?;
                tx.set_agent_certificate(&agent_id, &issued.sha256, issued.not_after)
                    .await?;
                Some(issued)
            }
            _ => None,
        };
        tx.audit(
            "agent.enroll",
            &format!("asset:{asset_name}"),
            json!({"agent_id": agent_id, "hostname": req.hostname, "machine_id": req.machine_id,
                   "re_enrolled": kind == "re-enrolment", "adopted": kind == "adoption",
                   "proof": proof, "revoked_agents": revoked, "remote": ctx.remote,
                   "certificate": certificate.as_ref().map(|c| json!({
                       "sha256": c.sha256, "not_after": fmt_ts(c.not_after)}))}),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(agent = %agent_id, asset = %asset_name, kind, "agent enrolled");
        Ok(EnrollResponse {
            agent_id,
            asset_name,
            agent_secret: secret,
            checkin_interval_secs: self.config.checkin_interval_secs,
            server_public_key: self.signer().map(|s| s.public_hex()),
            client_certificate: certificate.map(issued_out),
        })
    }

    /// The enrolment's certificate signing request, checked: required when
    /// the server requires agent client certificates, ignored when agent
    /// mutual TLS is off.
    fn enrolment_csr(&self, csr: Option<&str>) -> Result<Option<Csr>, AppError> {
        if self.agent_ca.is_none() {
            return Ok(None);
        }
        match csr {
            Some(pem) => Csr::parse(pem)
                .map(Some)
                .map_err(|m| AppError::invalid(format!("csr: {m}"))),
            None if self.config.agent_mtls.mode == MtlsMode::Required => Err(AppError::invalid(
                "csr: this server requires agent client certificates (mutual TLS); \
                     the enrolment must carry a certificate signing request (upgrade the agent)",
            )),
            None => Ok(None),
        }
    }

    /// Issues the calling agent a new client certificate for the key of its
    /// certificate signing request (its first on a server that turned agent
    /// mutual TLS on, or a renewal); the one before stops being accepted.
    /// Audited (`agent.certificate`).
    pub async fn issue_agent_certificate(
        &self,
        agent: &crate::AgentCaller,
        req: CertificateRequest,
        ctx: &RequestCtx,
    ) -> Result<IssuedCertificate, AppError> {
        check_protocol(req.protocol)?;
        let Some(ca) = &self.agent_ca else {
            return Err(AppError::new(
                ErrorCode::InvalidRequest,
                "this server does not issue agent client certificates (agent mutual TLS is off)",
            ));
        };
        let csr = Csr::parse(&req.csr).map_err(|m| AppError::invalid(format!("csr: {m}")))?;
        let now = self.now();
        let issued = ca
            .issue(&csr, &agent.agent_id, now, self.config.agent_mtls.validity)
            .map_err(|m| AppError::new(ErrorCode::Internal, m))?;
        let mut tx = self.change_by_agent(agent).await?;
        tx.set_agent_certificate(&agent.agent_id, &issued.sha256, issued.not_after)
            .await?;
        tx.audit(
            "agent.certificate",
            &format!("asset:{}", agent.asset_name),
            json!({"agent_id": agent.agent_id, "sha256": issued.sha256,
                   "not_after": fmt_ts(issued.not_after), "remote": ctx.remote,
                   "presented": ctx.client_cert}),
        )
        .await?;
        tx.commit().await?;
        Ok(issued_out(issued))
    }

    /// Audits a refused enrolment (in its own transaction) and builds its error.
    async fn refuse_enrollment(
        &self,
        actor: &str,
        req: &EnrollRequest,
        asset: &str,
        kind: &str,
        ctx: &RequestCtx,
    ) -> AppError {
        let (reason, message) = if kind == "adoption" {
            (
                "adoption of an imported asset without approval",
                format!(
                    "asset {asset} was imported without an agent; a host named {:?} adopts it only \
                     after an operator approves: patchbay assets approve-enrollment {asset}",
                    req.hostname
                ),
            )
        } else {
            (
                "re-enrolment of a managed asset without proof",
                format!(
                    "asset {asset} already has an active agent for machine id {}; enrolling again \
                     needs that agent's credential (patchbay-agent --re-enroll on the host) or an \
                     operator's approval: patchbay assets approve-enrollment {asset}",
                    req.machine_id
                ),
            )
        };
        self.audit_refusal(
            actor,
            "agent.enroll",
            &format!("asset:{asset}"),
            &ctx.remote,
            json!({"reason": reason, "hostname": req.hostname, "machine_id": req.machine_id,
                   "credential_presented": req.agent_secret.is_some(), "remote": ctx.remote}),
        )
        .await;
        AppError::new(ErrorCode::EnrollmentNeedsApproval, message)
    }

    /// Records an operator's approval for the next enrolment to take over (or
    /// adopt) `name` (admin, operator). One use, valid for `ttl_secs`.
    pub async fn approve_enrollment(
        &self,
        caller: &Caller,
        name: &str,
        input: &EnrollmentApprovalIn,
        ctx: &RequestCtx,
    ) -> Result<EnrollmentApprovalOut, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let ttl = input.ttl_secs.unwrap_or(DEFAULT_APPROVAL_TTL_SECS);
        if ttl == 0 || ttl > MAX_APPROVAL_TTL_SECS {
            return Err(AppError::invalid(format!(
                "ttl_secs must be between 1 and {MAX_APPROVAL_TTL_SECS}, got {ttl}"
            )));
        }
        let note = match input.note.as_deref().map(str::trim) {
            None | Some("") => String::new(),
            Some(n) => {
                names::check_label(n, 256).map_err(|m| AppError::invalid(format!("note: {m}")))?
            }
        };
        let now = self.now();
        let expires = now + SignedDuration::from_secs(ttl as i64);
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        let a = tx
            .asset_by_name(&name.trim().to_ascii_lowercase())
            .await?
            .ok_or_else(|| AppError::not_found(format!("no asset named {name:?}")))?;
        let kind = if tx.active_agents_of_asset(a.id).await? > 0 {
            "re-enrolment"
        } else {
            "adoption"
        };
        let id = tx
            .insert_enrollment_approval(a.id, &caller.actor(), &note, now, expires)
            .await?;
        tx.audit(
            "asset.approve_enrollment",
            &format!("asset:{}", a.name),
            json!({"approval": id, "kind": kind, "expires_at": fmt_ts(expires), "note": note}),
        )
        .await?;
        tx.commit().await?;
        Ok(EnrollmentApprovalOut {
            id,
            asset: a.name,
            approved_by: caller.actor(),
            approved_at: fmt_ts(now),
            expires_at: fmt_ts(expires),
            kind: kind.to_string(),
            note,
        })
    }

    /// Stores a check-in. Validation happens before any write; on error the store
    /// is unchanged.
    pub async fn checkin(
        &self,
        agent: &crate::AgentCaller,
        req: CheckinRequest,
    ) -> Result<(CheckinResponse, CheckinKind), AppError> {
        let wait = req.wait_secs.unwrap_or(0).min(MAX_LONG_POLL_SECS);
        let (mut resp, kind) = self.checkin_now(agent, req).await?;
        resp.certificate_wanted = agent.certificate_wanted;
        // Long poll: with no job at once, wait for one (answered within a
        // moment of its lease), then answer with whatever there is.
        if resp.jobs.is_empty() && wait > 0 {
            resp.jobs = self
                .wait_for_jobs(agent, std::time::Duration::from_secs(wait.into()))
                .await?;
        }
        Ok((resp, kind))
    }

    /// The steady-state check-in on a reader: `Some` when it is answered
    /// (its time recorded in memory), `None` when it needs the write path (a
    /// job to hand over; the hash mismatch is answered here too).
    async fn checkin_unchanged(
        &self,
        agent: &crate::AgentCaller,
        req: &CheckinRequest,
        now: jiff::Timestamp,
    ) -> Result<Option<CheckinResponse>, AppError> {
        // Read with the credential (one read for the whole check-in), or
        // here for a caller authenticated without it.
        let (held, open_jobs) = match &agent.checkin_held {
            Some(h) => (h.inventory_hash.clone(), h.open_jobs),
            None => {
                let state = {
                    let mut tx = self.store.read().await?;
                    tx.checkin_state(agent.asset_id).await?
                };
                let state = state.ok_or_else(|| {
                    AppError::not_found(format!("asset {} of this agent is gone", agent.asset_name))
                })?;
                (state.inventory_hash, state.open_jobs)
            }
        };
        if held.as_deref() != Some(req.inventory_hash.as_str()) {
            return Err(mismatch(held.as_deref()));
        }
        if open_jobs {
            return Ok(None);
        }
        self.heartbeats
            .record(agent.asset_id, &agent.asset_name, &agent.agent_id, now);
        Ok(Some(CheckinResponse {
            jobs: vec![],
            acked: vec![],
            stored_hash: req.inventory_hash.clone(),
            package_rows_written: 0,
            next_checkin_secs: self.config.checkin_interval_secs,
            key_announcements: self.key_announcements(),
            certificate_wanted: false,
        }))
    }

    async fn checkin_now(
        &self,
        agent: &crate::AgentCaller,
        req: CheckinRequest,
    ) -> Result<(CheckinResponse, CheckinKind), AppError> {
        check_protocol(req.protocol)?;
        let now = self.now();
        if matches!(req.inventory, InventoryPayload::Unchanged)
            && req.results.is_empty()
            && req.key_refusals.is_empty()
            && !self.config.heartbeat_flush.is_zero()
            && let Some(resp) = self.checkin_unchanged(agent, &req, now).await?
        {
            return Ok((resp, CheckinKind::Unchanged));
        }
        let mut tx = self.change_by_agent(agent).await?;
        let asset = tx.asset_by_name(&agent.asset_name).await?.ok_or_else(|| {
            AppError::not_found(format!("asset {} of this agent is gone", agent.asset_name))
        })?;
        if !req.key_refusals.is_empty() {
            // The agent refused a key announcement (not signed by the key it
            // pinned): the log, or the way to the agent, was tampered with.
            let refusals: Vec<String> = req
                .key_refusals
                .iter()
                .take(MAX_KEY_REFUSALS)
                .map(|r| r.chars().take(MAX_KEY_REFUSAL_LEN).collect())
                .collect();
            tracing::error!(asset = %asset.name, ?refusals, "an agent refused a server key announcement");
            tx.audit(
                "agent.key_announcement_refused",
                &format!("asset:{}", asset.name),
                json!({"refusals": refusals, "count": req.key_refusals.len()}),
            )
            .await?;
        }
        let held = asset.inventory_hash.clone();
        // The stored packages are read once: a delta is applied to them, and the
        // rows to write are computed against them.
        let (new_inv, kind, stored) = match req.inventory {
            InventoryPayload::Unchanged => {
                if held.as_deref() != Some(req.inventory_hash.as_str()) {
                    return Err(mismatch(held.as_deref()));
                }
                tx.touch_seen(asset.id, now).await?;
                tx.touch_agent(&agent.agent_id, now).await?;
                let (acked, jobs) = self
                    .job_exchange(&mut tx, &asset.name, &req.results, now)
                    .await?;
                // Stored results are audited (job.result); a bare heartbeat is not.
                tx.commit_unaudited("check-in heartbeat (inventory unchanged)")
                    .await?;
                return Ok((
                    CheckinResponse {
                        jobs,
                        acked,
                        stored_hash: req.inventory_hash,
                        package_rows_written: 0,
                        next_checkin_secs: self.config.checkin_interval_secs,
                        key_announcements: self.key_announcements(),
                        certificate_wanted: false,
                    },
                    CheckinKind::Unchanged,
                ));
            }
            InventoryPayload::Full { inventory } => (inventory, CheckinKind::Full, None),
            InventoryPayload::Delta {
                base_hash,
                facts,
                format,
                added,
                removed,
                pending_updates,
            } => {
                if held.as_deref() != Some(base_hash.as_str()) {
                    return Err(mismatch(held.as_deref()));
                }
                let old = tx.packages(asset.id).await?;
                let packages = PackageDelta { added, removed }
                    .apply(&old)
                    .map_err(|_| mismatch(held.as_deref()))?;
                (
                    Inventory {
                        facts,
                        format,
                        packages,
                        pending_updates,
                    },
                    CheckinKind::Delta,
                    Some(old),
                )
            }
        };
        let mut inv = new_inv;
        inv.normalize();
        inventory::validate(&inv)
            .map_err(|m| AppError::invalid(format!("inventory rejected: {m}")))?;
        let hash = inv.content_hash();
        if hash != req.inventory_hash {
            return Err(AppError::invalid(format!(
                "inventory content hashes to {hash}, but the check-in announces {}",
                req.inventory_hash
            )));
        }
        // Identity facts cannot be changed by a check-in. The machine id is the
        // one the asset was enrolled with: another one is refused (a cloned VM
        // enrols as a new host; a forged report must not make this asset look
        // like another). The host name stays the one the asset was enrolled or
        // adopted under (hosts are renamed, so a different one is not refused,
        // but ignored and recorded in the audit event).
        names::check_machine_id(&inv.facts.machine_id).map_err(|m| {
            AppError::invalid(format!(
                "inventory rejected: facts.machine_id {:?}: {m}",
                inv.facts.machine_id
            ))
        })?;
        if !inv.facts.hostname.is_empty() {
            names::check_hostname(&inv.facts.hostname).map_err(|m| {
                AppError::invalid(format!(
                    "inventory rejected: facts.hostname {:?}: {m}",
                    inv.facts.hostname
                ))
            })?;
        }
        if inv.facts.machine_id != asset.facts.machine_id {
            drop(tx);
            // No peer address here: the agent is the source the limiter counts.
            self.audit_refusal(
                &agent.actor(),
                "inventory.update",
                &format!("asset:{}", asset.name),
                &agent.actor(),
                json!({"reason": "machine id differs from the enrolled one",
                       "enrolled_machine_id": asset.facts.machine_id,
                       "reported_machine_id": inv.facts.machine_id}),
            )
            .await;
            return Err(AppError::new(
                ErrorCode::IdentityMismatch,
                format!(
                    "asset {} was enrolled with machine id {:?}, but this check-in reports {:?}; \
                     a host with another machine id must enrol as its own asset",
                    asset.name, asset.facts.machine_id, inv.facts.machine_id
                ),
            ));
        }
        let reported_hostname =
            (inv.facts.hostname != asset.facts.hostname).then(|| inv.facts.hostname.clone());
        let mut facts = inv.facts.clone();
        facts.hostname = asset.facts.hostname.clone();
        let old = match stored {
            Some(old) => old,
            None => tx.packages(asset.id).await?,
        };
        let delta = PackageDelta::between(&old, &inv.packages);
        let written = tx.apply_package_delta(asset.id, &delta).await?;
        tx.set_host_state(
            asset.id,
            &HostState {
                facts: &facts,
                package_format: inv.format.map(|f| f.as_str()),
                pending_updates: &inv.pending_updates,
                inventory_hash: &hash,
                seen_at: Some(now),
                now,
            },
        )
        .await?;
        tx.touch_agent(&agent.agent_id, now).await?;
        // Re-assess this asset now: its findings follow its inventory.
        let stored = tx
            .asset_by_name(&asset.name)
            .await?
            .ok_or_else(|| AppError::not_found(format!("asset {} is gone", asset.name)))?;
        // Only what changed is re-matched; an OS change (or the first inventory,
        // whose delta is everything) re-assesses the whole asset.
        let findings = if asset.facts.os == inv.facts.os && asset.inventory_hash.is_some() {
            let mut stats = self
                .assess_changed(&mut tx, &stored, &inv.packages, &delta)
                .await?;
            // Unmanaged software is matched on its own: only when it changed.
            if asset.facts.unmanaged != inv.facts.unmanaged {
                stats += self.assess_unmanaged_in(&mut tx, &stored).await?;
            }
            stats
        } else {
            self.assess_in(&mut tx, &stored).await?
        };
        // RHEL-family hosts are matched against Red Hat's CSAF documents too
        // (only when their packages changed).
        if !delta.is_empty() && crate::csaf::RPM_FAMILY.contains(&inv.facts.os.id.as_str()) {
            self.assess_csaf_in(&mut tx, Some(stored.id)).await?;
        }
        let mut detail = json!({"kind": format!("{kind:?}").to_lowercase(), "added": delta.added.len(),
                   "removed": delta.removed.len(), "packages": inv.packages.len(), "hash": hash,
                   "findings": findings});
        if let Some(h) = reported_hostname {
            detail["hostname_ignored"] = json!({"enrolled": asset.facts.hostname, "reported": h});
        }
        tx.audit("inventory.update", &format!("asset:{}", asset.name), detail)
            .await?;
        let (acked, jobs) = self
            .job_exchange(&mut tx, &asset.name, &req.results, now)
            .await?;
        tx.commit().await?;
        Ok((
            CheckinResponse {
                jobs,
                acked,
                stored_hash: hash,
                package_rows_written: written,
                next_checkin_secs: self.config.checkin_interval_secs,
                key_announcements: self.key_announcements(),
                certificate_wanted: false,
            },
            kind,
        ))
    }
}

fn issued_out(i: Issued) -> IssuedCertificate {
    IssuedCertificate {
        certificate: i.pem,
        not_after: fmt_ts(i.not_after),
        sha256: i.sha256,
    }
}

/// Refused key announcements one check-in may report (the rest are counted).
const MAX_KEY_REFUSALS: usize = 8;
/// Characters kept of each reported refusal.
const MAX_KEY_REFUSAL_LEN: usize = 400;

/// Longest long poll a check-in may ask for (proxies commonly cut idle
/// requests at 60 s).
pub const MAX_LONG_POLL_SECS: u32 = 55;

fn hex_id() -> String {
    let b = crate::random32();
    b[..8].iter().map(|x| format!("{x:02x}")).collect()
}
