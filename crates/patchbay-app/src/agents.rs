//! Agent enrolment and check-in.
//!
//! A check-in carries the agent's inventory hash and, only when it changed, the
//! inventory: whole, or as a delta against the inventory the server holds. The
//! server rewrites only the package rows that changed, and a check-in whose hash
//! matches writes no package row at all (only the last-seen time).

use crate::{App, AppError, RequestCtx};
use patchbay_core::inventory::{self, Inventory, PackageDelta};
use patchbay_core::names::AssetName;
use patchbay_core::token::{self, TokenKind};
use patchbay_proto::AGENT_PROTOCOL_VERSION;
use patchbay_proto::agent::{
    CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse, InventoryPayload,
};
use patchbay_proto::error::ErrorCode;
use patchbay_store::{AgentRow, AssetAttrs, HostState};
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
    /// Enrols an agent with an enrolment token. A host that enrols again (same
    /// machine id) keeps its asset, and its earlier agent credentials are revoked.
    pub async fn enroll(
        &self,
        req: EnrollRequest,
        ctx: &RequestCtx,
    ) -> Result<EnrollResponse, AppError> {
        check_protocol(req.protocol)?;
        if req.hostname.len() > 253
            || req.machine_id.len() > 128
            || req.machine_id.chars().any(|c| !c.is_ascii_alphanumeric())
        {
            return Err(AppError::invalid(
                "hostname must be at most 253 characters and machine_id at most 128 alphanumeric characters",
            ));
        }
        let now = self.now();
        let mut tx = self.store.write().await?;
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
        let (asset_id, asset_name, re_enrolled) =
            match tx.asset_by_machine_id(&req.machine_id).await? {
                Some(a) => {
                    tx.revoke_agents_of_asset(a.id, now).await?;
                    (a.id, a.name, true)
                }
                None => {
                    let base = AssetName::from_hostname(&req.hostname);
                    let mut name = base.to_string();
                    let mut n = 1;
                    while let Some(existing) = tx.asset_by_name(&name).await? {
                        // An imported (unmanaged) asset of the same name is this host:
                        // the agent adopts it.
                        if !existing.has_agent {
                            break;
                        }
                        n += 1;
                        name = format!("{base}-{n}");
                    }
                    match tx.asset_by_name(&name).await? {
                        Some(existing) => {
                            tx.set_has_agent(existing.id, true, now).await?;
                            (existing.id, name, false)
                        }
                        None => {
                            let id = tx
                                .insert_asset(&name, &AssetAttrs::default(), true, now)
                                .await?;
                            (id, name, false)
                        }
                    }
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
        self.audit_in(
            &mut tx,
            &format!("enroll_token:{}", enroll.id),
            "agent.enroll",
            &format!("asset:{asset_name}"),
            json!({"agent_id": agent_id, "hostname": req.hostname, "machine_id": req.machine_id,
                   "re_enrolled": re_enrolled, "remote": ctx.remote}),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(agent = %agent_id, asset = %asset_name, "agent enrolled");
        Ok(EnrollResponse {
            agent_id,
            asset_name,
            agent_secret: secret,
            checkin_interval_secs: self.config.checkin_interval_secs,
            server_public_key: self.signer().map(|s| s.public_hex()),
        })
    }

    /// Stores a check-in. Validation happens before any write; on error the store
    /// is unchanged.
    pub async fn checkin(
        &self,
        agent: &AgentRow,
        req: CheckinRequest,
    ) -> Result<(CheckinResponse, CheckinKind), AppError> {
        check_protocol(req.protocol)?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let asset = tx.asset_by_name(&agent.asset_name).await?.ok_or_else(|| {
            AppError::not_found(format!("asset {} of this agent is gone", agent.asset_name))
        })?;
        let held = asset.inventory_hash.clone();
        // The stored packages are read once: a delta is applied to them, and the
        // rows to write are computed against them.
        let (new_inv, kind, stored) = match req.inventory {
            InventoryPayload::Unchanged => {
                if held.as_deref() != Some(req.inventory_hash.as_str()) {
                    return Err(mismatch(held.as_deref()));
                }
                tx.touch_seen(asset.id, now).await?;
                tx.touch_agent(&agent.id, now).await?;
                tx.commit().await?;
                return Ok((
                    CheckinResponse {
                        stored_hash: req.inventory_hash,
                        package_rows_written: 0,
                        next_checkin_secs: self.config.checkin_interval_secs,
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
        let old = match stored {
            Some(old) => old,
            None => tx.packages(asset.id).await?,
        };
        let delta = PackageDelta::between(&old, &inv.packages);
        let written = tx.apply_package_delta(asset.id, &delta).await?;
        tx.set_host_state(
            asset.id,
            &HostState {
                facts: &inv.facts,
                package_format: inv.format.map(|f| f.as_str()),
                pending_updates: &inv.pending_updates,
                inventory_hash: &hash,
                seen_at: Some(now),
                now,
            },
        )
        .await?;
        tx.touch_agent(&agent.id, now).await?;
        // Re-assess this asset now: its findings follow its inventory.
        let stored = tx
            .asset_by_name(&asset.name)
            .await?
            .ok_or_else(|| AppError::not_found(format!("asset {} is gone", asset.name)))?;
        // Only what changed is re-matched; an OS change (or the first inventory,
        // whose delta is everything) re-assesses the whole asset.
        let findings = if asset.facts.os == inv.facts.os && asset.inventory_hash.is_some() {
            self.assess_changed(&mut tx, &stored, &inv.packages, &delta)
                .await?
        } else {
            self.assess_in(&mut tx, &stored).await?
        };
        self.audit_in(
            &mut tx,
            &format!("agent:{}", agent.id),
            "inventory.update",
            &format!("asset:{}", asset.name),
            json!({"kind": format!("{kind:?}").to_lowercase(), "added": delta.added.len(),
                   "removed": delta.removed.len(), "packages": inv.packages.len(), "hash": hash,
                   "findings": findings}),
        )
        .await?;
        tx.commit().await?;
        Ok((
            CheckinResponse {
                stored_hash: hash,
                package_rows_written: written,
                next_checkin_secs: self.config.checkin_interval_secs,
            },
            kind,
        ))
    }
}

fn hex_id() -> String {
    let b = crate::random32();
    b[..8].iter().map(|x| format!("{x:02x}")).collect()
}
