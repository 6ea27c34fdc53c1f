//! Prioritisation: risk tiers with due dates and reasons, the worklist, policy
//! preview/apply, and CVE triage.
//!
//! Tiers are computed when asked, from the findings, the asset's attributes, KEV,
//! EPSS and the policy in force — so a new policy or a new feed takes effect
//! immediately, and a preview is the same computation as the apply. The
//! ranking itself is `crate::ranking` (shared with the schedule, exceptions
//! and reports); each answer reads through one `crate::snapshot`.

use crate::ranking::{Ranked, explain};
use crate::snapshot::parse_policy;
use crate::{App, AppError, Caller, RequestCtx, fmt_ts};
use jiff::Timestamp;
use patchbay_core::asset::AssetKind;
use patchbay_core::auth::Action;
use patchbay_core::policy::{self, Policy};
use patchbay_core::risk::Tier;
use patchbay_proto::api::{FindingOut, PolicyEffect, Triage, WorkItem};
use patchbay_store::PolicyRow;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Filters of the worklist.
#[derive(Debug, Clone, Default)]
pub struct WorkFilter {
    /// Only this asset.
    pub asset: Option<String>,
    /// Only assets of this owner.
    pub owner: Option<String>,
    /// Only assets in this policy group.
    pub group: Option<String>,
    /// Only this tier.
    pub tier: Option<Tier>,
    /// At most this many lines (default [`DEFAULT_WORKLIST_LIMIT`]).
    pub limit: Option<usize>,
}

impl WorkFilter {
    /// The filter as the one ranking applies it.
    fn wanted(&self) -> crate::ranking::Wanted<'_> {
        crate::ranking::Wanted {
            asset: self.asset.as_deref(),
            owner: self.owner.as_deref(),
            group: self.group.as_deref(),
            tier: self.tier,
        }
    }
}

/// Lines a worklist returns unless asked otherwise: what a team can act on; the
/// ranking itself always covers every finding.
pub const DEFAULT_WORKLIST_LIMIT: usize = 1000;
/// Most lines one worklist request may ask for (`limit` is `1..=` this).
pub const MAX_WORKLIST_LIMIT: usize = 10_000;

/// Checks a list endpoint's `limit` (`1..=max`), naming the field.
pub fn check_limit(limit: u64, max: u64) -> Result<(), AppError> {
    if limit == 0 || limit > max {
        return Err(AppError::invalid(format!(
            "limit: must be between 1 and {max}, got {limit}"
        )));
    }
    Ok(())
}

/// The creator of the deployments the zero-day lane proposes: a named system
/// caller, never a person, so its approval always takes a human approver
/// (four-eyes: the creator may not approve, and no token acts as the system).
pub const ZERO_DAY_LANE_ACTOR: &str = crate::SystemActor::ZeroDayLane.name();

pub use crate::snapshot::DEFAULT_POLICY;

impl App {
    /// The policy in force, for a caller who may read the inventory.
    pub async fn policy(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<patchbay_proto::api::PolicyOut, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let (p, row) = self.policy_in_force().await?;
        Ok(patchbay_proto::api::PolicyOut {
            fingerprint: p.fingerprint(),
            text: row
                .as_ref()
                .map(|r| r.text.clone())
                .unwrap_or_else(|| DEFAULT_POLICY.into()),
            applied_by: row.as_ref().map(|r| r.applied_by.clone()),
            applied_at: row.as_ref().map(|r| fmt_ts(r.applied_at)),
        })
    }

    /// What to patch next: open findings that are neither excluded by the policy
    /// nor excepted, overdue first, then by tier, due time and score.
    pub async fn worklist(
        &self,
        caller: &Caller,
        filter: &WorkFilter,
        ctx: &RequestCtx,
    ) -> Result<Vec<WorkItem>, AppError> {
        self.worklist_by(caller, filter, ctx, true).await
    }

    /// The worklist as [`App::worklist`] gives it, computed the reference
    /// way: every open finding read and ranked (`Snapshot::top_open`), not
    /// through the projection — for the test that compares the two and the
    /// bench's baseline. Same permission and filters.
    pub async fn worklist_reference(
        &self,
        caller: &Caller,
        filter: &WorkFilter,
        ctx: &RequestCtx,
    ) -> Result<Vec<WorkItem>, AppError> {
        self.worklist_by(caller, filter, ctx, false).await
    }

    /// The worklist through the projection or the reference way (the same
    /// checks, filters and explanations either way).
    async fn worklist_by(
        &self,
        caller: &Caller,
        filter: &WorkFilter,
        ctx: &RequestCtx,
        projection: bool,
    ) -> Result<Vec<WorkItem>, AppError> {
        if let Some(l) = filter.limit {
            check_limit(l as u64, MAX_WORKLIST_LIMIT as u64)?;
        }
        self.require(caller, Action::ReadInventory, ctx).await?;
        // The projection's lock before the snapshot (see `projection`).
        let mut open = if projection {
            Some(self.open_findings.lock().await)
        } else {
            None
        };
        let mut snap = self.snapshot().await?;
        let (policy, _) = snap.policy_in_force().await?;
        let limit = filter.limit.unwrap_or(DEFAULT_WORKLIST_LIMIT);
        let wanted = filter.wanted();
        let mut ranked = match open.as_mut() {
            Some(open) => open.top_open(&mut snap, &policy, &wanted, limit).await?,
            None => snap.top_open(&policy, &wanted, limit).await?,
        };
        drop(snap);
        drop(open);
        explain(&policy, &mut ranked);
        Ok(ranked.into_iter().map(|r| r.item).collect())
    }

    /// The open findings the worklist's projection holds and an estimate of
    /// its resident bytes (for the bench and operations).
    pub async fn worklist_projection_size(&self) -> (usize, usize) {
        let p = self.open_findings.lock().await;
        (p.len(), p.resident_bytes())
    }

    fn effect_of(
        &self,
        old: &[Ranked],
        new: &[Ranked],
        old_p: &Policy,
        new_p: &Policy,
        fingerprint: String,
        no_op: bool,
    ) -> PolicyEffect {
        let changing = old
            .iter()
            .zip(new)
            .filter(|(a, b)| a.tier != b.tier)
            .count() as u64;
        let newly_excluded = old
            .iter()
            .zip(new)
            .filter(|(a, b)| !a.excluded && b.excluded)
            .count() as u64;
        let today = self.now().to_zoned(jiff::tz::TimeZone::UTC).date();
        let approvals = |p: &Policy, rs: &[Ranked]| -> BTreeMap<(String, String, String), bool> {
            let mut best: BTreeMap<(String, String, String), (Tier, Option<Timestamp>)> =
                BTreeMap::new();
            for r in rs.iter().filter(|r| !r.excluded && !r.patch.2.is_empty()) {
                let e = best.entry(r.patch.clone()).or_insert((r.tier, r.published));
                e.0 = e.0.min(r.tier);
                e.1 = match (e.1, r.published) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            best.into_iter()
                .map(|(k, (tier, released))| {
                    let released = released
                        .unwrap_or(self.now())
                        .to_zoned(jiff::tz::TimeZone::UTC)
                        .date();
                    (k, p.approval(tier, released, today).approved)
                })
                .collect()
        };
        let a_old = approvals(old_p, old);
        let a_new = approvals(new_p, new);
        let became = a_new
            .iter()
            .filter(|(k, v)| **v && !a_old.get(*k).copied().unwrap_or(false))
            .count() as u64;
        let lost = a_old
            .iter()
            .filter(|(k, v)| **v && !a_new.get(*k).copied().unwrap_or(false))
            .count() as u64;
        let summary = if no_op {
            "this policy is already in force: nothing changes".to_string()
        } else {
            format!(
                "{changing} findings change tier, {newly_excluded} become excluded, {became} patches become approved, {lost} lose approval"
            )
        };
        PolicyEffect {
            fingerprint,
            no_op,
            findings: new.len() as u64,
            findings_changing_tier: changing,
            findings_newly_excluded: newly_excluded,
            patches_becoming_approved: became,
            patches_losing_approval: lost,
            summary,
        }
    }

    async fn policy_effect(
        &self,
        caller: &Caller,
        text: &str,
        ctx: &RequestCtx,
    ) -> Result<(PolicyEffect, Policy, Policy), AppError> {
        let new_p = parse_policy(text)?;
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut snap = self.snapshot().await?;
        let (old_p, row) = snap.policy_in_force().await?;
        let fingerprint = new_p.fingerprint();
        let no_op = row
            .as_ref()
            .map(|r| r.fingerprint == fingerprint)
            .unwrap_or(fingerprint == old_p.fingerprint());
        let findings = snap.open_findings().await?;
        let old = snap.rank(&old_p, findings.clone()).await?;
        let new = snap.rank(&new_p, findings).await?;
        drop(snap);
        Ok((
            self.effect_of(&old, &new, &old_p, &new_p, fingerprint, no_op),
            new_p,
            old_p,
        ))
    }

    /// Exclusions take findings out of the worklist like exceptions do, so a new
    /// or widened exclusion rule needs the approve permission (admin, approver),
    /// as an exception does: an operator alone cannot exclude a package (let
    /// alone every package with `package = "*"`). Changing only a rule's reason,
    /// or removing rules, needs no approval. A refusal is recorded and answered
    /// with 403 naming the rule.
    async fn require_approval_of_exclusions(
        &self,
        caller: &Caller,
        old_p: &Policy,
        new_p: &Policy,
        effect: &PolicyEffect,
        ctx: &RequestCtx,
    ) -> Result<(), AppError> {
        if caller.permits(Action::Approve) {
            return Ok(());
        }
        let key = |e: &policy::Exclusion| (e.package.clone(), e.asset.clone(), e.group.clone());
        let had: HashSet<_> = old_p.exclusions.iter().map(key).collect();
        let added: Vec<(usize, &policy::Exclusion)> = new_p
            .exclusions
            .iter()
            .enumerate()
            .filter(|(_, e)| !had.contains(&key(e)))
            .collect();
        let (rule, what) = match added
            .iter()
            .find(|(_, e)| is_glob(&e.package))
            .or_else(|| added.first())
        {
            Some(&(i, e)) => {
                let mut rule = format!("exclusions[{i}] (package = {:?}", e.package);
                if let Some(a) = &e.asset {
                    rule.push_str(&format!(", asset = {a:?}"));
                }
                if let Some(g) = &e.group {
                    rule.push_str(&format!(", group = {g:?}"));
                }
                rule.push(')');
                let what = if is_glob(&e.package) {
                    "is a wildcard exclusion: it takes every matching package out of patching"
                } else {
                    "is a new exclusion: it takes that package out of patching"
                };
                (rule, what)
            }
            // Same rules, but changed groups put more assets under them.
            None if effect.findings_newly_excluded > 0 => (
                "exclusions".to_string(),
                "reach more assets through the changed groups",
            ),
            None => return Ok(()),
        };
        let message = format!(
            "{rule} {what} ({} findings newly excluded); exclusions need the approve permission, \
             like exceptions: have an admin or approver apply this policy",
            effect.findings_newly_excluded
        );
        self.audit_refusal(
            &caller.actor(),
            "policy.apply",
            "policy",
            &ctx.remote,
            json!({"method": crate::bounded_text(&ctx.method), "remote": crate::bounded_text(&ctx.remote),
                   "reason": "exclusion needs the approve permission", "role": caller.role.as_str(),
                   "rule": crate::bounded_text(&rule), "findings_newly_excluded": effect.findings_newly_excluded}),
        )
        .await;
        Err(AppError::new(
            patchbay_proto::error::ErrorCode::Forbidden,
            message,
        ))
    }

    /// Shows what applying `text` would change, without changing anything.
    pub async fn policy_preview(
        &self,
        caller: &Caller,
        text: &str,
        ctx: &RequestCtx,
    ) -> Result<PolicyEffect, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        Ok(self.policy_effect(caller, text, ctx).await?.0)
    }

    /// Applies a policy (admin, operator): records who applied it and its effect.
    /// Applying the policy in force again is a no-op.
    pub async fn policy_apply(
        &self,
        caller: &Caller,
        text: &str,
        ctx: &RequestCtx,
    ) -> Result<PolicyEffect, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let (effect, new_p, old_p) = self.policy_effect(caller, text, ctx).await?;
        if effect.no_op {
            return Ok(effect);
        }
        self.require_approval_of_exclusions(caller, &old_p, &new_p, &effect, ctx)
            .await?;
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        let id = tx
            .insert_policy(&PolicyRow {
                id: 0,
                fingerprint: effect.fingerprint.clone(),
                text: text.to_string(),
                applied_by: caller.actor(),
                applied_at: self.now(),
                effect: serde_json::to_value(&effect).unwrap_or_default(),
            })
            .await?;
        tx.audit(
            "policy.apply",
            &format!("policy:{id}"),
            json!({"fingerprint": effect.fingerprint, "effect": effect.summary}),
        )
        .await?;
        tx.commit().await?;
        Ok(effect)
    }

    /// One screen on one CVE: are we affected, where, what fixes it, by when.
    pub async fn triage(
        &self,
        caller: &Caller,
        cve: &str,
        ctx: &RequestCtx,
    ) -> Result<Triage, AppError> {
        let cve = cve.trim().to_ascii_uppercase();
        if !cve.starts_with("CVE-") {
            return Err(AppError::invalid(format!(
                "{cve:?} is not a CVE id (CVE-YYYY-NNNN)"
            )));
        }
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut snap = self.snapshot().await?;
        let (policy, _) = snap.policy_in_force().await?;
        // The advisories naming the CVE are found by the store; the filter
        // below keeps the enriched CVE list the one authority.
        let findings: Vec<FindingOut> = snap
            .open_findings_naming(&cve)
            .await?
            .into_iter()
            .filter(|f| f.cves.contains(&cve))
            .collect();
        let mut ranked = snap.rank(&policy, findings).await?;
        let exceptions = snap.exceptions().await?;
        crate::ranking::mark(&mut ranked, &exceptions, self.now());
        // A VEX exception shows its justification and who stated it.
        if ranked.iter().any(|r| r.item.exception.is_some()) {
            let rows = snap.tx().list_exceptions().await?;
            for r in &mut ranked {
                if let Some(id) = &r.item.exception {
                    r.item.vex = rows
                        .iter()
                        .find(|e| &e.id == id)
                        .and_then(crate::ranking::vex_note);
                }
            }
        }
        ranked.sort_by(|a, b| {
            (a.tier, a.due)
                .cmp(&(b.tier, b.due))
                .then(b.item.score.total_cmp(&a.item.score))
        });
        let (kev_due_date, epss, index) = {
            let index = snap.index().await?;
            let tx = snap.tx();
            let kev = tx
                .all_kev()
                .await?
                .into_iter()
                .find(|k| k.cve == cve)
                .map(|k| k.due_date);
            let epss = tx
                .epss_for(std::slice::from_ref(&cve))
                .await?
                .first()
                .map(|e| e.epss);
            (kev, epss, index)
        };
        let advisories: Vec<String> = (0..index.len())
            .map(|i| index.advisory(i))
            .filter(|a| a.cves.contains(&cve))
            .map(|a| a.id.clone())
            .collect();
        let mut fixes: Vec<String> = ranked
            .iter()
            .map(|r| {
                let f = &r.item.finding;
                format!(
                    "{} {} -> {}",
                    f.package,
                    f.installed_version,
                    f.fixed_version.as_deref().unwrap_or("(no fix yet)")
                )
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        fixes.sort();
        Ok(Triage {
            affected: !ranked.is_empty(),
            cve,
            advisories,
            kev_due_date,
            epss,
            items: ranked.into_iter().map(|r| r.item).collect(),
            fixes,
        })
    }
}

/// Whether a name pattern is a glob (matches more than one name).
fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// The compact OS name of a patch: `debian:12` → `debian12`, `ubuntu:24.04` → `ubuntu2404`.
pub fn os_compact(os: &str) -> String {
    os.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// A patch's standard name `PB-<yyyy>-<mm>-<os>-<package>-<version>`.
pub fn patch_name(released: jiff::civil::Date, os: &str, package: &str, version: &str) -> String {
    format!(
        "PB-{:04}-{:02}-{}-{package}-{version}",
        released.year(),
        released.month(),
        os_compact(os)
    )
}

impl App {
    pub(crate) async fn patches_from(
        &self,
        policy: &Policy,
        ranked: &[Ranked],
    ) -> Vec<patchbay_proto::api::PatchOut> {
        use patchbay_proto::api::PatchOut;
        struct Acc {
            family: &'static str,
            tier: Tier,
            released: Option<Timestamp>,
            cves: std::collections::BTreeSet<String>,
            advisories: std::collections::BTreeSet<String>,
            assets: std::collections::BTreeSet<String>,
            findings: u64,
            first_seen: Option<Timestamp>,
        }
        let mut acc: BTreeMap<(String, String, String), Acc> = BTreeMap::new();
        for r in ranked
            .iter()
            .filter(|r| !r.excluded && !r.patch.2.is_empty())
        {
            let a = acc.entry(r.patch.clone()).or_insert(Acc {
                family: match r.kind {
                    AssetKind::NetworkDevice => "network-device",
                    AssetKind::Application => "application",
                    _ => "os",
                },
                tier: r.tier,
                released: None,
                cves: Default::default(),
                advisories: Default::default(),
                assets: Default::default(),
                findings: 0,
                first_seen: None,
            });
            a.tier = a.tier.min(r.tier);
            a.released = match (a.released, r.published) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
            let fs: Option<Timestamp> = r.item.finding.first_seen.parse().ok();
            a.first_seen = match (a.first_seen, fs) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
            a.cves.extend(r.item.finding.cves.iter().cloned());
            a.advisories.insert(r.item.finding.advisory.clone());
            a.assets.insert(r.item.finding.asset.clone());
            a.findings += 1;
        }
        let now = self.now();
        let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
        acc.into_iter()
            .map(|((os, package, version), a)| {
                let released = a
                    .released
                    .or(a.first_seen)
                    .unwrap_or(now)
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .date();
                let approval = policy.approval(a.tier, released, today);
                PatchOut {
                    name: patch_name(released, &os, &package, &version),
                    family: a.family.into(),
                    os,
                    package,
                    fixed_version: version,
                    cves: a.cves.into_iter().collect(),
                    advisories: a.advisories.into_iter().collect(),
                    findings: a.findings,
                    assets: a.assets.into_iter().collect(),
                    highest_tier: a.tier.to_string(),
                    released: released.to_string(),
                    approved: approval.approved,
                    approval_reason: approval.reason,
                }
            })
            .collect()
    }

    /// The patch catalog: open findings grouped into patches (package → fixed
    /// version per OS release), most urgent first.
    pub async fn patches(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Vec<patchbay_proto::api::PatchOut>, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut snap = self.snapshot().await?;
        let (policy, _) = snap.policy_in_force().await?;
        let findings = snap.open_findings().await?;
        let ranked = snap.rank(&policy, findings).await?;
        drop(snap);
        let mut p = self.patches_from(&policy, &ranked).await;
        p.sort_by(|a, b| (&a.highest_tier, &a.name).cmp(&(&b.highest_tier, &b.name)));
        Ok(p)
    }

    /// The zero-day lane: after a feed import that added CVEs to KEV, the open
    /// findings those CVEs now make P0 are recorded as an out-of-band event, and an
    /// out-of-band deployment of their (policy-approved) patches is proposed for the
    /// rollout engine. Returns `None` when no finding is raised.
    ///
    /// The deployment is created by [`ZERO_DAY_LANE_ACTOR`]; `by` (who ran the
    /// import that triggered it) is recorded as `triggered_by`.
    pub async fn zero_day_lane(
        &self,
        source: &str,
        added_cves: &[String],
        triggered_by: &Caller,
    ) -> Result<Option<patchbay_store::OobEventRow>, AppError> {
        let by = triggered_by.actor();
        let by = by.as_str();
        let creator = ZERO_DAY_LANE_ACTOR;
        if added_cves.is_empty() {
            return Ok(None);
        }
        let added: HashSet<&str> = added_cves.iter().map(String::as_str).collect();
        let system = crate::system::SystemActor::ZeroDayLane.caller();
        self.require(&system, Action::ReadInventory, &RequestCtx::default())
            .await?;
        let mut snap = self.snapshot().await?;
        let findings: Vec<FindingOut> = snap
            .open_findings()
            .await?
            .into_iter()
            .filter(|f| f.cves.iter().any(|c| added.contains(c.as_str())))
            .collect();
        let (policy, _) = snap.policy_in_force().await?;
        let ranked: Vec<Ranked> = snap
            .rank(&policy, findings)
            .await?
            .into_iter()
            .filter(|r| r.tier == Tier::P0 && !r.excluded)
            .collect();
        drop(snap);
        if ranked.is_empty() {
            return Ok(None);
        }
        let patches: Vec<String> = self
            .patches_from(&policy, &ranked)
            .await
            .into_iter()
            .filter(|p| p.approved)
            .map(|p| p.name)
            .collect();
        let mut cves: Vec<String> = ranked
            .iter()
            .flat_map(|r| {
                r.item
                    .finding
                    .cves
                    .iter()
                    .filter(|c| added.contains(c.as_str()))
                    .cloned()
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        cves.sort();
        let assets: Vec<String> = ranked
            .iter()
            .map(|r| r.item.finding.asset.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let now = self.now();
        let month = now.to_zoned(jiff::tz::TimeZone::UTC).date();
        let mut tx = self
            .change_by_system(crate::system::SystemActor::ZeroDayLane)
            .await?;
        let prefix = format!("DEP-OOB-{:04}-{:02}-", month.year(), month.month());
        let seq = tx
            .list_deployments()
            .await?
            .iter()
            .filter(|d| d.id.starts_with(&prefix))
            .count()
            + 1;
        let dep = format!("{prefix}{seq:03}");
        tx.insert_deployment(&patchbay_store::DeploymentRow {
            id: dep.clone(),
            kind: "oob".into(),
            status: "proposed".into(),
            reason: format!(
                "{} CVE(s) newly in CISA KEV raise {} finding(s) to P0: {}",
                cves.len(),
                ranked.len(),
                cves.join(", ")
            ),
            patches,
            assets,
            created_at: now,
            created_by: creator.to_string(),
        })
        .await?;
        let mut ev = patchbay_store::OobEventRow {
            id: 0,
            at: now,
            source: source.to_string(),
            cves,
            findings: ranked.len() as i64,
            deployment: Some(dep.clone()),
        };
        ev.id = tx.insert_oob_event(&ev).await?;
        let (change, _) = tx.ensure_change_record(&dep, now, creator).await?;
        tx.audit(
            "oob.raise",
            &format!("deployment:{dep}"),
            json!({"source": source, "cves": ev.cves, "findings": ev.findings, "change": change.id,
                   "triggered_by": by}),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(ev))
    }

    /// Out-of-band events, newest first.
    pub async fn oob_events(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Vec<patchbay_proto::api::OobEventOut>, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut tx = self.store.read().await?;
        Ok(tx
            .list_oob_events()
            .await?
            .into_iter()
            .map(|e| patchbay_proto::api::OobEventOut {
                at: fmt_ts(e.at),
                source: e.source,
                cves: e.cves,
                findings: e.findings,
                deployment: e.deployment,
            })
            .collect())
    }

    /// Deployments, newest first.
    pub async fn deployments(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Vec<patchbay_proto::api::DeploymentOut>, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut tx = self.store.read().await?;
        // A started deployment's status is its rollout's (running, halted,
        // completed, …), read in the same snapshot.
        let rollouts: HashMap<String, String> = tx
            .list_rollouts()
            .await?
            .into_iter()
            .map(|r| (r.deployment, r.status))
            .collect();
        Ok(tx
            .list_deployments()
            .await?
            .into_iter()
            .map(|d| patchbay_proto::api::DeploymentOut {
                status: rollouts.get(&d.id).cloned().unwrap_or(d.status),
                id: d.id,
                kind: d.kind,
                reason: d.reason,
                patches: d.patches,
                assets: d.assets,
                created_at: fmt_ts(d.created_at),
                created_by: d.created_by,
            })
            .collect())
    }
}
