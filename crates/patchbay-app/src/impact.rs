//! Expected-impact notices before a deployment's window and a summary after
//! it, per owner (issue 18, item 8; ADR 0021; `docs/impact-notices.md`).
//!
//! [`App::deploy_impact`] gathers, per host of a deployment, its owner, the
//! first maintenance-window slot its job may start in (with the window's
//! zone), its pins against the installed versions, its latest rehearsal and
//! what its agent last reported, and hands them to the pure model
//! ([`patchbay_core::impact`]). The duty ([`App::run_impact_notices`], in the
//! duties runner) raises, per owner and deployment, **once**:
//!
//! - `deployment.impact_notice` when the owner's first window opens within
//!   [`ImpactConfig::lead`] (at once when it is sooner), while the
//!   deployment is not finished;
//! - `deployment.impact_summary` once the deployment is final and no job of
//!   it is in flight: per asset what changed, failures, rollbacks, reboots
//!   done and the targeted CVEs closed.
//!
//! "Once" is a row in `impact_notices` (migration 0120) inserted in the same
//! transaction as the audit entry and its outbox event: a second run, a
//! restart or another replica finds the row and raises nothing. The events
//! reach email (the contact named like the owner, `unowned` for hosts without
//! one, and any contact listing the kind) and webhooks (the Slack and Teams
//! templates render the hosts) through the outbox.

use crate::system::SystemActor;
use crate::{App, AppError, Caller, RequestCtx, fmt_ts};
use jiff::{SignedDuration, Timestamp};
use patchbay_core::auth::Action;
use patchbay_core::impact::{
    Estimates, HostIn, OwnerImpact, PackageChange, RehearsalIn, SlotIn, contact_of, impact,
    notice_due,
};
use patchbay_core::rollout::{JobState, RebootPolicy};
use patchbay_proto::agent::{JobOutcome, JobResult};
use patchbay_proto::api::{DeploymentImpactOut, ImpactNoticeOut};
use patchbay_store::{ImpactNoticeRow, Tx};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

/// Settings of the impact notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImpactConfig {
    /// How long before an owner's first window its notice is raised.
    pub lead: SignedDuration,
    /// The interruption estimates.
    pub estimates: Estimates,
}

impl Default for ImpactConfig {
    fn default() -> Self {
        Self {
            lead: SignedDuration::from_hours(24),
            estimates: Estimates::default(),
        }
    }
}

/// How often the duty looks.
pub const CHECK_EVERY: SignedDuration = SignedDuration::from_mins(1);

/// `notice` / `summary` rows of `impact_notices`.
pub mod notice_kind {
    /// Before the window.
    pub const NOTICE: &str = "notice";
    /// After the deployment.
    pub const SUMMARY: &str = "summary";
}

/// A deployment's rollout and its impact per owner, as of now.
struct Gathered {
    stored: crate::deployments::StoredRollout,
    owners: Vec<OwnerImpact>,
}

fn in_flight(s: JobState) -> bool {
    matches!(
        s,
        JobState::Leased
            | JobState::Preflight
            | JobState::Applying
            | JobState::Verifying
            | JobState::Rebooting
            | JobState::RollingBack
    )
}

fn change_of(v: &patchbay_proto::agent::VersionChange) -> PackageChange {
    PackageChange {
        name: v.name.clone(),
        from: v.before.clone(),
        to: v.after.clone(),
    }
}

/// The reboot time measured per host: from the lease of its latest
/// reported reboot job (`…/HOST/reboot`) to its result.
fn measured_reboots(times: &[patchbay_store::AgentJobTimes]) -> BTreeMap<String, SignedDuration> {
    let mut out: BTreeMap<String, (Timestamp, SignedDuration)> = BTreeMap::new();
    for t in times {
        let Some(head) = t.key.strip_suffix("/reboot") else {
            continue;
        };
        let Some((_, host)) = head.rsplit_once('/') else {
            continue;
        };
        let Some(done) = t.result_at else { continue };
        let took = done.duration_since(t.leased_at);
        if took.is_negative() {
            continue;
        }
        let newer = out.get(host).is_none_or(|(at, _)| done > *at);
        if newer {
            out.insert(host.to_string(), (done, took));
        }
    }
    out.into_iter().map(|(h, (_, d))| (h, d)).collect()
}

impl App {
    async fn gather_impact(
        &self,
        tx: &mut Box<dyn Tx>,
        id: &str,
        now: Timestamp,
        measured: Option<&BTreeMap<String, SignedDuration>>,
    ) -> Result<Option<Gathered>, AppError> {
        let Some(row) = tx.rollout(id).await? else {
            return Ok(None);
        };
        let stored = crate::deployments::stored_of(&row)?;
        let names: Vec<String> = stored
            .rollout
            .rings
            .iter()
            .flat_map(|r| r.jobs.iter().map(|j| j.spec.host.clone()))
            .collect();
        let assets = tx.assets_by_names(&names).await?;
        let by_name: BTreeMap<&str, &patchbay_store::AssetRow> =
            assets.iter().map(|a| (a.name.as_str(), a)).collect();
        let ids: Vec<i64> = assets.iter().map(|a| a.id).collect();
        let mut installed: BTreeMap<i64, BTreeMap<String, String>> = BTreeMap::new();
        for (aid, p) in tx.packages_of_assets(&ids).await? {
            installed.entry(aid).or_default().insert(p.name, p.version);
        }
        let window_rows = tx.list_windows().await?;
        let (policy, _) = crate::snapshot::policy_in(tx).await?;
        let jobs = tx.jobs_of(id).await?;
        let read;
        let measured = match measured {
            Some(m) => m,
            None => {
                read = measured_reboots(&tx.agent_job_times().await?);
                &read
            }
        };
        // The latest reported rehearsal per host.
        let mut rehearsals: BTreeMap<String, (Timestamp, JobResult)> = BTreeMap::new();
        for j in &jobs {
            if !crate::rehearsal_gate::is_rehearsal(&j.key) {
                continue;
            }
            let (Some(v), Some(at)) = (&j.result, j.result_at) else {
                continue;
            };
            let Ok(r) = JobResult::deserialize(v) else {
                continue;
            };
            if rehearsals.get(&j.asset).is_none_or(|(t, _)| at >= *t) {
                rehearsals.insert(j.asset.clone(), (at, r));
            }
        }
        let mut hosts = Vec::new();
        for ring in &stored.rollout.rings {
            for job in &ring.jobs {
                let host = &job.spec.host;
                let a = by_name.get(host.as_str()).copied();
                let slot = job
                    .spec
                    .slots
                    .iter()
                    .find(|s| s.closes > now)
                    .or(job.spec.slots.first())
                    .copied();
                let slot = match slot {
                    Some(s) => {
                        let groups = a
                            .map(|a| crate::ranking::groups_of(&policy, a))
                            .unwrap_or_default();
                        let w = window_rows
                            .iter()
                            .filter(|w| {
                                crate::schedule::covers(&w.groups, &w.assets, host, &groups)
                            })
                            .find(|w| {
                                crate::schedule::window_from_row(w).is_ok_and(|win| {
                                    win.occurrences(s.opens, 1)
                                        .first()
                                        .is_some_and(|o| o.start <= s.opens && s.opens < o.end)
                                })
                            });
                        SlotIn {
                            window: w.map(|w| w.name.clone()),
                            zone: w.map(|w| w.tz.clone()),
                            opens: s.opens,
                            closes: s.closes,
                        }
                    }
                    None => SlotIn {
                        window: None,
                        zone: None,
                        opens: job.spec.not_before,
                        closes: job.spec.cutoff,
                    },
                };
                let inst = a.and_then(|a| installed.get(&a.id));
                // A package already at its pin (its job ran) changes no more.
                let planned = stored
                    .pins
                    .get(host)
                    .into_iter()
                    .flatten()
                    .map(|p| PackageChange {
                        name: p.name.clone(),
                        from: inst.and_then(|i| i.get(&p.name).cloned()),
                        to: Some(p.version.clone()),
                    })
                    .filter(|c| c.from != c.to)
                    .collect();
                let rehearsal = rehearsals.get(host).and_then(|(_, r)| {
                    r.rehearsal.as_ref().map(|x| RehearsalIn {
                        mode: x.mode.as_str().to_string(),
                        passed: r.outcome == JobOutcome::Succeeded,
                        changed: x.changed.iter().map(change_of).collect(),
                        services: x.services.clone(),
                    })
                });
                hosts.push(HostIn {
                    asset: host.clone(),
                    owner: a.map(|a| a.attrs.owner.clone()).unwrap_or_default(),
                    ring: ring.spec.name.clone(),
                    planned,
                    slot,
                    rehearsal,
                    reboot_pending: a.is_some_and(|a| a.facts.reboot_required),
                    ring_reboots: ring.spec.reboot == RebootPolicy::IfRequired,
                    measured_reboot: measured.get(host).copied(),
                });
            }
        }
        let owners = impact(&hosts, &self.config().impact.estimates);
        Ok(Some(Gathered { stored, owners }))
    }

    /// A deployment's expected impact per owner, and the notices raised
    /// (`GET /api/v1/deployments/{id}/impact`, `patchbay deploy impact`).
    pub async fn deploy_impact(
        &self,
        caller: &Caller,
        id: &str,
        ctx: &RequestCtx,
    ) -> Result<DeploymentImpactOut, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let now = self.now();
        let mut tx = self.store.read().await?;
        let g = self
            .gather_impact(&mut tx, id, now, None)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no deployment {id}")))?;
        let notices = tx
            .impact_notices(id)
            .await?
            .into_iter()
            .map(|n| ImpactNoticeOut {
                owner: n.owner,
                kind: n.kind,
                at: fmt_ts(n.at),
                contact: n.contact,
                assets: n.assets,
            })
            .collect();
        Ok(DeploymentImpactOut {
            deployment: id.to_string(),
            status: crate::deployments::status_name(g.stored.rollout.state).to_string(),
            computed_at: fmt_ts(now),
            lead_secs: self.config().impact.lead.as_secs(),
            owners: g.owners,
            notices,
        })
    }

    /// The duty: raises each owner's notice when due and each owner's
    /// summary once the deployment is over, each once. Returns how many it
    /// raised. Finished deployments last written more than
    /// [`SUMMARY_HORIZON`] ago are not looked at again.
    pub async fn run_impact_notices(&self) -> Result<usize, AppError> {
        let now = self.now();
        let lead = self.config().impact.lead;
        let ids: Vec<String> = {
            let mut r = self.store.read().await?;
            r.list_rollouts()
                .await?
                .into_iter()
                .filter(|r| {
                    !matches!(r.status.as_str(), "completed" | "halted" | "aborted")
                        || r.updated_at + SUMMARY_HORIZON > now
                })
                .map(|r| r.deployment)
                .collect()
        };
        let mut raised = 0;
        if ids.is_empty() {
            return Ok(0);
        }
        // Every host's measured reboot, read once for the run.
        let measured = {
            let mut r = self.store.read().await?;
            measured_reboots(&r.agent_job_times().await?)
        };
        for id in ids {
            // Decide in a read; write only what is due (the insert decides
            // the race: a row already there raises nothing).
            let (g, already, jobs) = {
                let mut r = self.store.read().await?;
                let Some(g) = self
                    .gather_impact(&mut r, &id, now, Some(&measured))
                    .await?
                else {
                    continue;
                };
                let already: Vec<(String, String)> = r
                    .impact_notices(&id)
                    .await?
                    .into_iter()
                    .map(|n| (n.owner, n.kind))
                    .collect();
                (g, already, r.jobs_of(&id).await?)
            };
            let has = |o: &str, k: &str| already.iter().any(|(a, b)| a == o && b == k);
            let done = g.stored.rollout.state.is_final();
            let settled = done
                && g.stored
                    .rollout
                    .rings
                    .iter()
                    .all(|r| r.jobs.iter().all(|j| !in_flight(j.state)));
            let notices: Vec<&OwnerImpact> = g
                .owners
                .iter()
                .filter(|o| !done && !has(&o.owner, notice_kind::NOTICE))
                .filter(|o| o.first_opens().is_some_and(|f| notice_due(f, now, lead)))
                .collect();
            let summaries: Vec<&OwnerImpact> = g
                .owners
                .iter()
                .filter(|o| settled && !has(&o.owner, notice_kind::SUMMARY))
                .collect();
            if notices.is_empty() && summaries.is_empty() {
                continue;
            }
            let hosts = if summaries.is_empty() {
                vec![]
            } else {
                // The hosts' outcomes and re-tests as the change record has them.
                let caller = SystemActor::Duties.caller();
                self.change_record(&caller, &id, &RequestCtx::default())
                    .await?
                    .hosts
            };
            let outcome = crate::deployments::status_name(g.stored.rollout.state);
            let mut tx = self.change_by_system(SystemActor::Duties).await?;
            let mut wrote = 0;
            let lists = [
                (notice_kind::NOTICE, &notices),
                (notice_kind::SUMMARY, &summaries),
            ];
            for (kind, owners) in lists {
                for o in owners.iter() {
                    let row = ImpactNoticeRow {
                        deployment: id.clone(),
                        owner: o.owner.clone(),
                        kind: kind.into(),
                        at: now,
                        contact: contact_of(o).to_string(),
                        assets: o.assets.iter().map(|a| a.asset.clone()).collect(),
                    };
                    if !tx.note_impact(&row).await? {
                        continue;
                    }
                    let (action, payload) = if kind == notice_kind::NOTICE {
                        ("deployment.impact_notice", notice_payload(&id, o))
                    } else {
                        (
                            "deployment.impact_summary",
                            summary_payload(&id, outcome, o, &hosts, &jobs),
                        )
                    };
                    tx.audit(action, &format!("deployment:{id}"), payload)
                        .await?;
                    wrote += 1;
                }
            }
            if wrote > 0 {
                tx.commit().await?;
                raised += wrote;
            }
        }
        Ok(raised)
    }
}

/// Finished deployments are looked at for summaries this long after their
/// last change.
pub const SUMMARY_HORIZON: SignedDuration = SignedDuration::from_hours(24 * 7);

/// The notice's event payload (`docs/events.md`).
fn notice_payload(id: &str, o: &OwnerImpact) -> serde_json::Value {
    let reboots = o.reboots;
    json!({
        "message": format!(
            "{id}: expected impact on {}'s {} host(s), first window {}: {} reboot(s), ≈{} s interruption (estimate)",
            o.owner, o.assets.len(), o.first_window, reboots, o.interruption_seconds
        ),
        "deployment": id,
        "owner": o.owner,
        "contact": contact_of(o),
        "first_window": o.first_window,
        "reboots": reboots,
        "interruption_seconds": o.interruption_seconds,
        "assets": o.assets,
    })
}

/// The summary's event payload: per asset what its job did.
fn summary_payload(
    id: &str,
    outcome: &str,
    o: &OwnerImpact,
    hosts: &[patchbay_proto::api::HostOutcome],
    jobs: &[patchbay_store::AgentJobRow],
) -> serde_json::Value {
    let rebooted = |host: &str| {
        jobs.iter().any(|j| {
            j.key == format!("{id}/{host}/reboot")
                && j.result
                    .as_ref()
                    .and_then(|v| JobResult::deserialize(v).ok())
                    .is_some_and(|r| r.outcome == JobOutcome::Succeeded)
        })
    };
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let assets: Vec<serde_json::Value> = o
        .assets
        .iter()
        .map(|a| {
            let h = hosts.iter().find(|h| h.host == a.asset);
            let state = h.map_or("unknown".to_string(), |h| h.state.clone());
            *counts.entry(state.clone()).or_default() += 1;
            json!({
                "asset": a.asset,
                "state": state,
                "changed": h.map(|h| h.packages.iter()
                    .filter(|p| p.before != p.after && (p.before.is_some() || p.after.is_some()))
                    .map(|p| json!({"name": p.name, "from": p.before, "to": p.after}))
                    .collect::<Vec<_>>()).unwrap_or_default(),
                "error": h.and_then(|h| h.error.clone()),
                "rollback": h.and_then(|h| h.rollback.clone()),
                "rebooted": rebooted(&a.asset),
                "closed": h.map(|h| h.retest.iter().filter(|r| r.closed).map(|r| r.cve.clone()).collect::<Vec<_>>()).unwrap_or_default(),
                "still_open": h.map(|h| h.retest.iter().filter(|r| !r.closed).map(|r| r.cve.clone()).collect::<Vec<_>>()).unwrap_or_default(),
            })
        })
        .collect();
    let tally: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    json!({
        "message": format!("{id} {outcome}: on {}'s {} host(s): {}", o.owner, o.assets.len(), tally.join(", ")),
        "deployment": id,
        "outcome": outcome,
        "owner": o.owner,
        "contact": contact_of(o),
        "assets": assets,
    })
}

/// Whether impact event `e` is addressed to the contact named `name` (the
/// owner's contact: `data.contact`).
pub fn addressed_to(e: &patchbay_core::event::Event, name: &str) -> bool {
    use patchbay_core::event::Kind;
    matches!(
        e.kind,
        Kind::DeploymentImpactNotice | Kind::DeploymentImpactSummary
    ) && e.data.get("contact").and_then(|v| v.as_str()) == Some(name)
}

fn text(v: &serde_json::Value, k: &str) -> String {
    match v.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(x) => x.to_string(),
    }
}

fn changes_text(list: Option<&serde_json::Value>, from: &str, to: &str) -> String {
    let parts: Vec<String> = list
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "{} {} → {}",
                text(p, "name"),
                p.get(from).and_then(|v| v.as_str()).unwrap_or("(none)"),
                p.get(to).and_then(|v| v.as_str()).unwrap_or("(removed)")
            )
        })
        .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

/// The email of an impact notice or summary (values are escaped by the
/// renderer; the subject is made one line there).
pub fn compose_email(
    e: &patchbay_core::event::Event,
    mut facts: Vec<(String, String)>,
    footer: String,
) -> patchbay_render::email::Email {
    use patchbay_core::event::Kind;
    let dep = e.deployment.clone().unwrap_or_default();
    let owner = text(&e.data, "owner");
    facts.insert(0, ("Deployment".into(), dep.clone()));
    facts.insert(1, ("Owner".into(), owner.clone()));
    let assets: Vec<serde_json::Value> = e
        .data
        .get("assets")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    let mut paragraphs = vec![e.summary.clone()];
    if e.kind == Kind::DeploymentImpactNotice {
        for a in &assets {
            let w = a.get("window").cloned().unwrap_or_default();
            let window = format!(
                "{} {} – {} ({}; UTC {} – {})",
                w.get("name")
                    .and_then(|v| v.as_str())
                    .unwrap_or("any time in the deployment's window"),
                text(&w, "opens_local"),
                text(&w, "closes_local"),
                text(&w, "zone"),
                text(&w, "opens_utc"),
                text(&w, "closes_utc"),
            );
            let services = a.get("services").cloned().unwrap_or_default();
            let services = if services["known"].as_bool() == Some(true) {
                let names: Vec<&str> = services["names"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str())
                    .collect();
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            } else {
                text(&services, "source")
            };
            let reboot = a.get("reboot").cloned().unwrap_or_default();
            let reboot = format!(
                "{} ({})",
                if reboot["needed"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                },
                text(&reboot, "source")
            );
            let int = a.get("interruption").cloned().unwrap_or_default();
            paragraphs.push(format!(
                "{} (ring {})\n  Window: {window}\n  Packages: {}\n  Services restarting: {services}\n  Reboot: {reboot}\n  Expected interruption: about {} s (estimate: {})",
                text(a, "asset"),
                text(a, "ring"),
                changes_text(a.get("packages"), "from", "to"),
                text(&int, "seconds"),
                text(&int, "basis"),
            ));
        }
        facts.insert(2, ("First window".into(), text(&e.data, "first_window")));
        patchbay_render::email::Email {
            subject: format!(
                "[Patchbay] {dep}: expected impact on {owner}'s {} host(s), first window {}",
                assets.len(),
                text(&e.data, "first_window")
            ),
            heading: format!("Deployment {dep}: what will change on your hosts"),
            paragraphs,
            facts,
            action: Some(format!(
                "patchbay deploy impact {dep}   (the impact per owner; the interruption is an estimate)"
            )),
            footer,
        }
    } else {
        for a in &assets {
            let list = |k: &str| -> String {
                let v: Vec<&str> = a
                    .get(k)
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str())
                    .collect();
                if v.is_empty() {
                    "none".into()
                } else {
                    v.join(", ")
                }
            };
            let mut lines = vec![format!("{}: {}", text(a, "asset"), text(a, "state"))];
            lines.push(format!(
                "  Changed: {}",
                changes_text(a.get("changed"), "from", "to")
            ));
            if let Some(err) = a.get("error").and_then(|v| v.as_str()) {
                lines.push(format!("  Failure: {err}"));
            }
            if let Some(rb) = a.get("rollback").and_then(|v| v.as_str()) {
                lines.push(format!("  Rollback: {rb}"));
            }
            lines.push(format!(
                "  Rebooted: {}",
                if a["rebooted"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                }
            ));
            lines.push(format!("  Findings closed: {}", list("closed")));
            lines.push(format!("  Still open: {}", list("still_open")));
            paragraphs.push(lines.join("\n"));
        }
        let outcome = text(&e.data, "outcome");
        facts.insert(2, ("Outcome".into(), outcome.clone()));
        patchbay_render::email::Email {
            subject: format!(
                "[Patchbay] {dep} {outcome}: summary for {owner}'s {} host(s)",
                assets.len()
            ),
            heading: format!("Deployment {dep} {outcome}: what happened on your hosts"),
            paragraphs,
            facts,
            action: Some(format!(
                "patchbay changes show {dep}   (the change record, with each host's detail)"
            )),
            footer,
        }
    }
}
