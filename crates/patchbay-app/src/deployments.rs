//! Deployments driven by the server: preview, create, act, and the rollout
//! driver.
//!
//! A deployment names exact package versions and its targets; its rings come
//! from the request (explicit canary hosts, or shares of the rest chosen by a
//! stable hash of each host's machine id). The rollout itself is the pure
//! state machine of [`patchbay_core::rollout`]; this module feeds it (operator
//! actions, stored job results, which agents are reachable, the clock) and
//! carries out its commands, **in one transaction with the new state**: a
//! leased job is a signed row in `agent_jobs` that the agent's next check-in
//! (a long poll) takes, a rollback is another such job, a notification is an
//! audit entry with its outbox event. A crash between deciding and sending
//! therefore re-sends (the agent's journal runs each key at most once) and
//! never skips.
//!
//! The driver runs as a duty ([`crate::duties`]) on the lease holder only.

use crate::system::SystemActor;
use crate::{App, AppError, Caller, RequestCtx, fmt_ts};
use jiff::{SignedDuration, Timestamp};
use patchbay_core::auth::Action;
use patchbay_core::job::{self, Job, JobKind, PackagePin};
use patchbay_core::rollout::{
    Command, DeploymentState, JobSpec, Observation, RingSpec, RollbackPolicy, Rollout, step,
};
use patchbay_proto::agent::{JobOutcome, JobResult};
use patchbay_proto::api::{
    DeployApprovalIn, DeploymentDetail, DeploymentOut, DeploymentPreview, DeploymentSpec,
    PreviewHost, PreviewPackage, PreviewSkip, RingIn,
};
use patchbay_store::{AgentJobRow, AssetRow, DeploymentRow, RolloutRow, Tx};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Default time after the start during which jobs may begin.
pub const DEFAULT_WINDOW: SignedDuration = SignedDuration::from_hours(24);
/// Default time an agent has to report a job.
pub const DEFAULT_JOB_TIMEOUT: SignedDuration = SignedDuration::from_mins(30);
/// Jobs handed to one agent per check-in.
const JOBS_PER_CHECKIN: i64 = 16;
/// Not-yet-patched hosts asked for control samples per ring, at most.
const CONTROL_HOSTS: usize = 20;

/// The ring a control-sample job's key (`DEP…/control/RING/HOST`) is for.
fn control_ring(key: &str) -> Option<usize> {
    let (_, rest) = key.split_once("/control/")?;
    rest.split('/').next()?.parse().ok()
}

/// What is stored per deployment: the state machine's state and what its
/// jobs carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRollout {
    /// The rollout.
    pub rollout: Rollout,
    /// Per host: the exact versions its job installs.
    pub pins: BTreeMap<String, Vec<PackagePin>>,
    /// Health checks run before and after each job.
    pub checks: Vec<String>,
    /// Per ring (by index): its own health checks (from the policy's
    /// `[[rings]] health_checks`), run in addition to `checks`.
    #[serde(default)]
    pub ring_checks: Vec<Vec<String>>,
    /// Rings (by index) whose control samples were asked for: health checks
    /// run on not-yet-patched hosts of later rings while the ring runs.
    #[serde(default)]
    pub control_asked: BTreeSet<usize>,
    /// Rehearsals: which rings require one, their state per host, applies
    /// held until they pass ([`crate::rehearsal_gate`]).
    #[serde(default)]
    pub gate: crate::rehearsal_gate::Gate,
    /// Signatures of the jobs that failed ([`crate::signatures`]).
    #[serde(default)]
    pub signatures: Vec<crate::signatures::FailureSignature>,
    /// When it was created.
    pub created_at: Timestamp,
    /// Staging rings compared with the production group they stand for, at
    /// creation (issue 18, item 4).
    #[serde(default)]
    pub fidelity: Vec<patchbay_proto::api::RingFidelityOut>,
    /// Backup verification: per ring, how many hosts verify their snapshot,
    /// and the rings sampled ([`crate::backups`]).
    #[serde(default)]
    pub backup: crate::backups::Policy,
}

impl StoredRollout {
    /// How long job `key` of ring `ring` has to report (a reboot or rollback
    /// following it gets as long).
    fn timeout_of(&self, ring: usize, key: &str) -> SignedDuration {
        self.rollout
            .rings
            .get(ring)
            .and_then(|r| r.jobs.iter().find(|j| j.spec.key == key))
            .map_or(DEFAULT_JOB_TIMEOUT, |j| j.spec.run_timeout)
    }

    /// The health checks of ring `ring`'s jobs: the deployment's, then the
    /// ring's own, each once.
    pub fn checks_of(&self, ring: usize) -> Vec<String> {
        let mut out = self.checks.clone();
        for c in self.ring_checks.get(ring).into_iter().flatten() {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
        out
    }
}

pub(crate) fn status_name(s: DeploymentState) -> &'static str {
    match s {
        DeploymentState::Draft => "draft",
        DeploymentState::Running => "running",
        DeploymentState::Paused => "paused",
        DeploymentState::Completed => "completed",
        DeploymentState::Halted => "halted",
        DeploymentState::Aborted => "aborted",
    }
}

/// `N` or `N%` of `n` (percentages round up for concurrency, down for
/// budgets: `round_up`).
pub fn parse_count(field: &str, s: &str, n: usize, round_up: bool) -> Result<usize, AppError> {
    use patchbay_core::rollout::{Share, ShareError};
    match Share::parse(s) {
        Ok(share) => Ok(share.of(n, round_up)),
        Err(ShareError::Over100) => Err(AppError::invalid(format!(
            "{field}: {s:?} must be between 0% and 100%"
        ))),
        Err(ShareError::Malformed) => Err(AppError::invalid(format!(
            "{field}: {s:?} is not a count or a percentage (e.g. 2 or 10%)"
        ))),
    }
}

fn parse_policy(field: &str, s: Option<&str>) -> Result<RollbackPolicy, AppError> {
    let text = s.unwrap_or("failed-hosts");
    RollbackPolicy::parse(text).ok_or_else(|| {
        AppError::invalid(format!(
            "{field}: unknown rollback {text:?} (failed-hosts, ring or none)"
        ))
    })
}

/// A ring as asked for — by the request (`rings`) or by the policy in force
/// (`[[rings]]`) — before its shares are resolved against its hosts.
struct RingReq {
    name: String,
    assets: Vec<String>,
    size: Option<String>,
    max_concurrent: Option<String>,
    error_budget: Option<String>,
    success_threshold: Option<f64>,
    soak: SignedDuration,
    approval: bool,
    rollback: RollbackPolicy,
    checks: Vec<String>,
    rehearse: bool,
}

impl RingReq {
    fn from_request(r: &RingIn) -> Result<RingReq, AppError> {
        let field = |k: &str| format!("rings: {}: {k}", r.name);
        Ok(RingReq {
            name: r.name.clone(),
            assets: r.assets.clone(),
            size: r.size.clone(),
            max_concurrent: r.max_concurrent.clone(),
            error_budget: r.error_budget.clone(),
            success_threshold: r.success_threshold,
            soak: r
                .soak
                .as_deref()
                .map(|s| patchbay_core::when::span(&field("soak"), s))
                .transpose()?
                .unwrap_or(SignedDuration::ZERO),
            approval: r.approval,
            rollback: parse_policy(&field("rollback"), r.rollback.as_deref())?,
            checks: vec![],
            rehearse: r.require_rehearsal,
        })
    }

    fn from_policy(r: &patchbay_core::policy::Ring, members: Vec<String>) -> RingReq {
        RingReq {
            name: r.name.clone(),
            assets: members,
            size: None,
            max_concurrent: r.max_concurrent.clone(),
            error_budget: r.error_budget.clone(),
            success_threshold: r.success_threshold,
            soak: r.soak,
            approval: r.approval,
            rollback: r.rollback,
            checks: r.health_checks.clone(),
            rehearse: false,
        }
    }

    fn everything() -> RingReq {
        RingReq {
            name: "all".into(),
            assets: vec![],
            size: None,
            max_concurrent: None,
            error_budget: None,
            success_threshold: None,
            soak: SignedDuration::ZERO,
            approval: false,
            rollback: RollbackPolicy::FailedHosts,
            checks: vec![],
            rehearse: false,
        }
    }
}

/// How a deployment uses the maintenance windows (`windows` in the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WindowMode {
    /// A host covered by windows runs in their occurrences; one covered by
    /// none any time before the deadline (default).
    Planner,
    /// A host covered by no window is left alone.
    Required,
    /// Windows are not looked at: any time before the deadline.
    Ignore,
}

fn window_mode(s: Option<&str>) -> Result<WindowMode, AppError> {
    match s.unwrap_or("planner") {
        "planner" => Ok(WindowMode::Planner),
        "required" => Ok(WindowMode::Required),
        "ignore" => Ok(WindowMode::Ignore),
        other => Err(AppError::invalid(format!(
            "windows: unknown mode {other:?} (planner, required or ignore)"
        ))),
    }
}

/// Whether `a` orders before `b` in the format's version ordering (an
/// unparsable version counts as not lower: the host is then planned and the
/// agent's simulation decides).
fn is_lower(format: patchbay_core::inventory::PackageFormat, a: &str, b: &str) -> bool {
    use patchbay_core::inventory::PackageFormat as F;
    use patchbay_version::Scheme;
    let scheme = match format {
        F::Deb => Scheme::Deb,
        F::Rpm => Scheme::Rpm,
        F::Apk => Scheme::Apk,
        F::Other => return false,
    };
    patchbay_version::compare(scheme, a, b).ok() == Some(std::cmp::Ordering::Less)
}

/// A stable shard order: SHA-256 of the machine id.
fn shard_key(machine_id: &str) -> [u8; 32] {
    Sha256::digest(machine_id.as_bytes()).into()
}

/// Machine ids that are placeholders (images never given an id): ringing by
/// them would pile every such host into one ring.
fn placeholder(machine_id: &str) -> bool {
    let m = machine_id.trim();
    m.is_empty() || m.chars().all(|c| c == '0') || m.eq_ignore_ascii_case("uninitialized")
}

/// Patches selected from the catalog (`patches`, `tier`), resolved to what
/// each host is to get.
#[derive(Debug, Default)]
struct Selection {
    /// Whether the request selected patches at all.
    given: bool,
    /// The selected patches' names.
    names: Vec<String>,
    /// Per asset: the findings' packages at the patches' fixed versions.
    pins: BTreeMap<String, Vec<PackagePin>>,
}

/// When a host's job may start, given the maintenance windows (by name)
/// and blackouts covering it: its slots (none: any time before the
/// deadline) and the preview's words for them — or why the host is left
/// alone. A job never starts where it would run (for `estimate`) into a
/// blackout.
fn host_slots(
    windows: &[(&str, &patchbay_core::window::Window)],
    blackouts: &[&patchbay_core::plan::Blackout],
    mode: WindowMode,
    now: Timestamp,
    deadline: Timestamp,
    estimate: SignedDuration,
) -> Result<(Vec<patchbay_core::rollout::Slot>, String), String> {
    use patchbay_core::plan::{job_slots, without_blackouts};
    let note = if blackouts.is_empty() {
        String::new()
    } else {
        let ids: Vec<&str> = blackouts.iter().map(|b| b.id.as_str()).collect();
        format!("; outside blackout(s) {}", ids.join(", "))
    };
    let until = fmt_ts(deadline);
    if windows.is_empty() || mode == WindowMode::Ignore {
        if mode == WindowMode::Required {
            return Err("no maintenance window covers it (windows = required)".into());
        }
        let why = if mode == WindowMode::Ignore {
            "windows ignored"
        } else {
            "no maintenance window covers it"
        };
        let text = format!("any time until {until} ({why}){note}");
        if blackouts.is_empty() {
            return Ok((vec![], text));
        }
        let whole = patchbay_core::rollout::Slot {
            opens: now,
            closes: deadline,
        };
        let free = without_blackouts(vec![whole], blackouts, estimate);
        if free.is_empty() {
            return Err(format!(
                "blackouts cover the whole time until the deadline {until}{note}"
            ));
        }
        return Ok((free, text));
    }
    let names: Vec<&str> = windows.iter().map(|(n, _)| *n).collect();
    let ws: Vec<&patchbay_core::window::Window> = windows.iter().map(|(_, w)| *w).collect();
    let free = job_slots(&ws, blackouts, now, deadline, estimate);
    let Some(first) = free.first() else {
        return Err(format!(
            "no occurrence of its maintenance window(s) {} lets a job start before the deadline {until}{note}",
            names.join(", ")
        ));
    };
    let text = format!(
        "{}: {} slot(s) before {until}, first {} – {}{note}",
        names.join(", "),
        free.len(),
        fmt_ts(first.opens),
        fmt_ts(first.closes)
    );
    Ok((free, text))
}

/// A planned deployment: the preview, and the rings with their hosts.
struct Planned {
    preview: DeploymentPreview,
    rings: Vec<(RingSpec, Vec<String>)>,
    /// Per ring: the policy ring's own health checks.
    ring_checks: Vec<Vec<String>>,
    /// Rings (by index) that require a passing rehearsal.
    rehearse_rings: BTreeSet<usize>,
    pins: BTreeMap<String, Vec<PackagePin>>,
    /// Per host: when its job may start (empty: any time before the deadline).
    slots: BTreeMap<String, Vec<patchbay_core::rollout::Slot>>,
    deadline: Timestamp,
    job_timeout: SignedDuration,
}

impl App {
    /// Resolves `patches` and `tier` against the patch catalog, read in one
    /// snapshot: each selected patch must be approved by the policy in force;
    /// every open, not excluded, not excepted finding it fixes gives its
    /// asset the finding's package at the patch's fixed version.
    async fn select_patches(&self, spec: &DeploymentSpec) -> Result<Selection, AppError> {
        use patchbay_core::risk::Tier;
        if let Some(group) = spec.converge.as_deref() {
            if !spec.patches.is_empty() || spec.tier.is_some() {
                return Err(AppError::invalid(
                    "converge: a convergence deployment selects its own versions; leave patches and tier out",
                ));
            }
            let mut snap = self.snapshot().await?;
            let (policy, _) = snap.policy_in_force().await?;
            let pins = crate::drift::converge_pins(snap.tx(), &policy, group).await?;
            return Ok(Selection {
                given: true,
                names: vec![format!("converge:{group}")],
                pins,
            });
        }
        if spec.patches.is_empty() && spec.tier.is_none() {
            return Ok(Selection::default());
        }
        let tier: Option<Tier> = spec
            .tier
            .as_deref()
            .map(|t| t.trim().parse::<Tier>())
            .transpose()
            .map_err(|e| AppError::invalid(format!("tier: {e}")))?;
        let mut snap = self.snapshot().await?;
        let (policy, _) = snap.policy_in_force().await?;
        let ranked = snap.ranked_open(&policy).await?;
        drop(snap);
        let catalog = self.patches_from(&policy, &ranked).await;
        let mut chosen: BTreeSet<(String, String, String)> = BTreeSet::new();
        let mut names = BTreeSet::new();
        for name in &spec.patches {
            let p = catalog.iter().find(|p| &p.name == name).ok_or_else(|| {
                AppError::not_found(format!(
                    "patches: no patch {name:?} in the catalog (it lists the patches of open findings: `patchbay patches`)"
                ))
            })?;
            if !p.approved {
                return Err(AppError::invalid(format!(
                    "patches: {name} is not approved by the policy in force: {}",
                    p.approval_reason
                )));
            }
            chosen.insert((p.os.clone(), p.package.clone(), p.fixed_version.clone()));
            names.insert(p.name.clone());
        }
        if let Some(t) = tier {
            let before = chosen.len();
            for p in &catalog {
                let urgent = p.highest_tier.parse::<Tier>().is_ok_and(|pt| pt <= t);
                if urgent && p.approved {
                    chosen.insert((p.os.clone(), p.package.clone(), p.fixed_version.clone()));
                    names.insert(p.name.clone());
                }
            }
            if chosen.len() == before && spec.patches.is_empty() {
                return Err(AppError::invalid(format!(
                    "tier: no approved patch of the catalog fixes a {t} finding or a more urgent one"
                )));
            }
        }
        let mut pins: BTreeMap<String, Vec<PackagePin>> = BTreeMap::new();
        for r in ranked
            .iter()
            .filter(|r| !r.excluded && r.item.exception.is_none() && chosen.contains(&r.patch))
        {
            let f = &r.item.finding;
            let mine = pins.entry(f.asset.clone()).or_default();
            if !mine.iter().any(|p| p.name == f.package) {
                mine.push(PackagePin {
                    name: f.package.clone(),
                    version: r.patch.2.clone(),
                });
            }
        }
        Ok(Selection {
            given: true,
            names: names.into_iter().collect(),
            pins,
        })
    }

    /// Plans `spec` against the inventory: which hosts get what, in which
    /// ring, and what is left alone and why. Validation names the field.
    async fn plan_deployment(
        &self,
        tx: &mut Box<dyn Tx>,
        spec: &DeploymentSpec,
        selection: &Selection,
        now: Timestamp,
    ) -> Result<Planned, AppError> {
        if spec.packages.is_empty() && !selection.given {
            return Err(AppError::invalid(
                "packages: name at least one package and exact version (NAME=VERSION), or select patches (patches, tier)",
            ));
        }
        let mut names = BTreeSet::new();
        for p in &spec.packages {
            if p.name.trim().is_empty() || p.version.trim().is_empty() {
                return Err(AppError::invalid(format!(
                    "packages: {:?}={:?} needs a name and an exact version",
                    p.name, p.version
                )));
            }
            if !names.insert(p.name.as_str()) {
                return Err(AppError::invalid(format!(
                    "packages: {} is named twice",
                    p.name
                )));
            }
            // The ecosystem rules are applied per host below (format known).
        }
        let parse_d = |field: &str, v: &Option<String>, d: SignedDuration| {
            v.as_deref()
                .map(|s| patchbay_core::when::span(field, s))
                .transpose()
                .map(|x| x.unwrap_or(d))
        };
        let window = parse_d("window", &spec.window, DEFAULT_WINDOW)?;
        let job_timeout = parse_d("job_timeout", &spec.job_timeout, DEFAULT_JOB_TIMEOUT)?;
        if job_timeout.is_zero() || window.is_zero() {
            return Err(AppError::invalid(
                "window and job_timeout must be longer than 0",
            ));
        }
        let mode = window_mode(spec.windows.as_deref())?;
        let reboot = match spec.reboot.as_deref() {
            None => patchbay_core::rollout::RebootPolicy::IfRequired,
            Some(t) => patchbay_core::rollout::RebootPolicy::parse(t).ok_or_else(|| {
                AppError::invalid(format!(
                    "reboot: unknown policy {t:?} (if-required or never)"
                ))
            })?,
        };
        let deadline = now
            .checked_add(window)
            .map_err(|e| AppError::invalid(format!("window: {e}")))?;
        // Through `tx`: in `deploy_create` it is the change's, and a second
        // connection here could deadlock the pool.
        let (policy, _) = crate::snapshot::policy_in(tx).await?;
        let all = tx.list_assets().await?;
        let by_name: BTreeMap<&str, &AssetRow> = all.iter().map(|a| (a.name.as_str(), a)).collect();
        for a in &spec.assets {
            if !by_name.contains_key(a.as_str()) {
                return Err(AppError::not_found(format!("assets: no asset named {a:?}")));
            }
        }
        for g in &spec.groups {
            if !policy.groups.iter().any(|x| &x.name == g) {
                return Err(AppError::invalid(format!(
                    "groups: no policy group named {g:?}"
                )));
            }
        }
        let mut candidates: Vec<&AssetRow> = all
            .iter()
            .filter(|a| {
                if selection.given
                    && !selection.pins.contains_key(&a.name)
                    && spec.packages.is_empty()
                {
                    return false;
                }
                (spec.assets.is_empty() && spec.groups.is_empty())
                    || spec.assets.contains(&a.name)
                    || crate::ranking::groups_of(&policy, a)
                        .iter()
                        .any(|g| spec.groups.contains(g))
            })
            .collect();
        candidates.sort_by(|a, b| a.name.cmp(&b.name));
        let mut skipped = Vec::new();
        let mut pins: BTreeMap<String, Vec<PackagePin>> = BTreeMap::new();
        let mut from: BTreeMap<String, Vec<PreviewPackage>> = BTreeMap::new();
        let mut seen_ids: BTreeMap<String, String> = BTreeMap::new();
        for a in candidates {
            if !a.has_agent {
                skipped.push(PreviewSkip {
                    asset: a.name.clone(),
                    reason: "no agent (imported asset): patch it by hand".into(),
                });
                continue;
            }
            let mid = a.facts.machine_id.clone();
            if placeholder(&mid) {
                return Err(AppError::invalid(format!(
                    "asset {}: machine id {mid:?} is a placeholder; give the host a real /etc/machine-id before ringing it",
                    a.name
                )));
            }
            if let Some(other) = seen_ids.insert(mid.clone(), a.name.clone()) {
                return Err(AppError::invalid(format!(
                    "assets {other} and {} share machine id {mid:?}: cloned images must get their own ids before ringing",
                    a.name
                )));
            }
            let installed = tx.packages(a.id).await?;
            use patchbay_core::inventory::PackageFormat;
            let format = match a.package_format.as_deref() {
                Some("rpm") => PackageFormat::Rpm,
                Some("apk") => PackageFormat::Apk,
                Some("other") => PackageFormat::Other,
                _ => PackageFormat::Deb,
            };
            let mut mine = Vec::new();
            let mut changes = Vec::new();
            let mut downgrades = Vec::new();
            let mut unavailable = Vec::new();
            // What this host is to get: the explicit pins, then what the
            // selected patches give it (for a package named twice, the higher
            // version).
            let mut wanted: Vec<PackagePin> = spec.packages.clone();
            for p in selection.pins.get(&a.name).into_iter().flatten() {
                match wanted.iter_mut().find(|w| w.name == p.name) {
                    Some(w) if is_lower(format, &w.version, &p.version) => *w = p.clone(),
                    Some(_) => {}
                    None => wanted.push(p.clone()),
                }
            }
            for p in &wanted {
                use patchbay_core::inventory::rules;
                if !rules::valid_name(format, &p.name) || !rules::valid_version(format, &p.version)
                {
                    return Err(AppError::invalid(format!(
                        "packages: {:?}={:?} is not a valid {} package name and version ({}; {})",
                        p.name,
                        p.version,
                        format.as_str(),
                        rules::name_rule(format),
                        rules::version_rule(format)
                    )));
                }
                let now = installed
                    .iter()
                    .find(|x| x.name == p.name)
                    .map(|x| x.version.clone());
                match now {
                    None => {}
                    Some(v) if v == p.version => {}
                    Some(v) if is_lower(format, &p.version, &v) => {
                        downgrades.push(format!("{} {v} -> {}", p.name, p.version));
                    }
                    Some(v) => {
                        // What the host's own repositories offer, as its agent
                        // last reported (pending updates): a pin above that
                        // cannot be installed there.
                        let offered = a
                            .pending_updates
                            .iter()
                            .find(|u| u.name == p.name && !u.available_version.is_empty())
                            .map(|u| u.available_version.clone());
                        if let Some(o) = &offered
                            && is_lower(format, o, &p.version)
                        {
                            unavailable.push(format!(
                                "{} {} (its repositories offer {o} at most)",
                                p.name, p.version
                            ));
                            continue;
                        }
                        mine.push(p.clone());
                        changes.push(PreviewPackage {
                            name: p.name.clone(),
                            from: Some(v),
                            to: p.version.clone(),
                            available: offered,
                        });
                    }
                }
            }
            if !unavailable.is_empty() {
                skipped.push(PreviewSkip {
                    asset: a.name.clone(),
                    reason: format!(
                        "not available to the host: {} — as its agent last reported",
                        unavailable.join(", ")
                    ),
                });
                continue;
            }
            if !downgrades.is_empty() {
                // A deployment only moves versions up; going back is what a
                // rollback (to the journalled versions) is for.
                skipped.push(PreviewSkip {
                    asset: a.name.clone(),
                    reason: format!(
                        "would downgrade ({}): deployments only upgrade; use a rollback",
                        downgrades.join(", ")
                    ),
                });
                continue;
            }
            if mine.is_empty() {
                skipped.push(PreviewSkip {
                    asset: a.name.clone(),
                    reason: "none of the packages is installed at another version (not installed, or already there)".into(),
                });
                continue;
            }
            pins.insert(a.name.clone(), mine);
            from.insert(a.name.clone(), changes);
        }
        // Windows: when each host's job may start — the occurrences of the
        // maintenance windows covering it up to the deadline, to each one's
        // cutoff, minus the blackouts covering it (a job never runs into a
        // freeze); a host no window covers runs any time before the
        // deadline, outside blackouts (or is left alone: `required`).
        let window_rows = tx.list_windows().await?;
        let windows: Vec<patchbay_core::window::Window> = window_rows
            .iter()
            .map(crate::schedule::window_from_row)
            .collect::<Result<_, _>>()?;
        let blackout_rows = tx.list_blackouts().await?;
        let blackouts: Vec<patchbay_core::plan::Blackout> = blackout_rows
            .iter()
            .map(|b| patchbay_core::plan::Blackout {
                id: b.name.clone(),
                start: b.starts_at,
                end: b.ends_at,
                reason: b.reason.clone(),
                owner: b.owner.clone(),
                approved_by: None,
            })
            .collect();
        let mut slots: BTreeMap<String, Vec<patchbay_core::rollout::Slot>> = BTreeMap::new();
        let mut window_of: BTreeMap<String, String> = BTreeMap::new();
        for host in pins.keys().cloned().collect::<Vec<_>>() {
            let a = by_name[host.as_str()];
            let groups = crate::ranking::groups_of(&policy, a);
            let covering: Vec<usize> = window_rows
                .iter()
                .enumerate()
                .filter(|(_, w)| crate::schedule::covers(&w.groups, &w.assets, &host, &groups))
                .map(|(i, _)| i)
                .collect();
            let bs: Vec<&patchbay_core::plan::Blackout> = blackout_rows
                .iter()
                .zip(&blackouts)
                .filter(|(r, _)| crate::schedule::covers(&r.groups, &r.assets, &host, &groups))
                .map(|(_, b)| b)
                .collect();
            let ws: Vec<(&str, &patchbay_core::window::Window)> = covering
                .iter()
                .map(|i| (window_rows[*i].name.as_str(), &windows[*i]))
                .collect();
            match host_slots(&ws, &bs, mode, now, deadline, job_timeout) {
                Ok((mine, text)) => {
                    slots.insert(host.clone(), mine);
                    window_of.insert(host, text);
                }
                Err(reason) => {
                    skipped.push(PreviewSkip {
                        asset: host.clone(),
                        reason,
                    });
                    pins.remove(&host);
                }
            }
        }
        // Rings: from the request, else the policy's `[[rings]]` (a host in
        // none of them is left alone), else one ring of everything.
        let ring_ins: Vec<RingReq> = if !spec.rings.is_empty() {
            spec.rings
                .iter()
                .map(RingReq::from_request)
                .collect::<Result<_, _>>()?
        } else if !policy.rings.is_empty() {
            let mut members: Vec<Vec<String>> = vec![vec![]; policy.rings.len()];
            for host in pins.keys().cloned().collect::<Vec<_>>() {
                let a = by_name[host.as_str()];
                let at = crate::ranking::with_facts(a, |af| {
                    let groups = policy.groups_of(af);
                    policy
                        .ring_of(af, &groups)
                        .and_then(|r| policy.rings.iter().position(|x| x.name == r.name))
                });
                match at {
                    Some(i) => members[i].push(host),
                    None => {
                        skipped.push(PreviewSkip {
                            asset: host.clone(),
                            reason: "in no ring of the policy in force (add it to a ring's groups or match, or name the rings in the request)".into(),
                        });
                        pins.remove(&host);
                        slots.remove(&host);
                    }
                }
            }
            policy
                .rings
                .iter()
                .zip(members)
                .filter(|(_, m)| !m.is_empty())
                .map(|(r, m)| RingReq::from_policy(r, m))
                .collect()
        } else {
            vec![RingReq::everything()]
        };
        let mut ring_names = BTreeSet::new();
        for r in &ring_ins {
            patchbay_core::names::check_label(&r.name, 64)
                .map_err(|m| AppError::invalid(format!("rings: name {:?}: {m}", r.name)))?;
            if !ring_names.insert(r.name.as_str()) {
                return Err(AppError::invalid(format!(
                    "rings: {} is named twice",
                    r.name
                )));
            }
            if !r.assets.is_empty() && r.size.is_some() {
                return Err(AppError::invalid(format!(
                    "rings: {}: give either assets or a size, not both",
                    r.name
                )));
            }
        }
        let mut remaining: Vec<String> = pins.keys().cloned().collect();
        let mut assigned: Vec<Vec<String>> = vec![vec![]; ring_ins.len()];
        for (i, r) in ring_ins.iter().enumerate() {
            for a in &r.assets {
                if !by_name.contains_key(a.as_str()) {
                    return Err(AppError::not_found(format!(
                        "rings: {}: no asset named {a:?}",
                        r.name
                    )));
                }
                if let Some(pos) = remaining.iter().position(|x| x == a) {
                    assigned[i].push(remaining.remove(pos));
                } else if !pins.contains_key(a) {
                    // Named but nothing to do there: reported as skipped.
                } else {
                    return Err(AppError::invalid(format!("rings: {a} is in two rings")));
                }
            }
        }
        remaining.sort_by_key(|a| shard_key(&by_name[a.as_str()].facts.machine_id));
        let total = remaining.len();
        let last_sized = ring_ins
            .iter()
            .rposition(|r| r.assets.is_empty())
            .unwrap_or(usize::MAX);
        for (i, r) in ring_ins.iter().enumerate() {
            if !r.assets.is_empty() {
                continue;
            }
            let n = if i == last_sized {
                remaining.len()
            } else {
                match &r.size {
                    Some(s) => parse_count(&format!("rings: {}: size", r.name), s, total, true)?
                        .min(remaining.len()),
                    None => remaining.len(),
                }
            };
            assigned[i].extend(remaining.drain(..n));
        }
        let mut rings = Vec::new();
        let mut ring_checks = Vec::new();
        let mut rehearse_rings = BTreeSet::new();
        let mut hosts = Vec::new();
        for (r, members) in ring_ins.iter().zip(assigned) {
            let n = members.len();
            let field = |k: &str| format!("rings: {}: {k}", r.name);
            let spec = RingSpec {
                name: r.name.clone(),
                max_concurrent: r
                    .max_concurrent
                    .as_deref()
                    .map(|s| parse_count(&field("max_concurrent"), s, n, true))
                    .transpose()?
                    .unwrap_or(1)
                    .max(1),
                error_budget: r
                    .error_budget
                    .as_deref()
                    .map(|s| parse_count(&field("error_budget"), s, n, false))
                    .transpose()?
                    .unwrap_or(0),
                success_threshold: match r.success_threshold {
                    Some(t) if (0.0..=1.0).contains(&t) => t,
                    Some(t) => {
                        return Err(AppError::invalid(format!(
                            "{}: {t} is not between 0 and 1",
                            field("success_threshold")
                        )));
                    }
                    None => 0.95,
                },
                soak: r.soak,
                approval: r.approval,
                rollback: r.rollback,
                reboot,
            };
            for m in &members {
                hosts.push(PreviewHost {
                    asset: m.clone(),
                    ring: r.name.clone(),
                    packages: from.get(m).cloned().unwrap_or_default(),
                    window: window_of.get(m).cloned().unwrap_or_default(),
                });
            }
            if r.rehearse {
                rehearse_rings.insert(rings.len());
            }
            rings.push((spec, members));
            ring_checks.push(r.checks.clone());
        }
        if rings.iter().all(|(_, m)| m.is_empty()) {
            return Err(AppError::invalid(
                "no target has any of the packages installed at another version: nothing to deploy",
            ));
        }
        let rules = rings
            .iter()
            .enumerate()
            .map(|(i, (s, m))| {
                format!(
                    "{}: {} host(s), at most {} at a time; {} failure(s) tolerated, and failures plus jobs in flight never exceed {} (the next failure halts everything); success ≥ {:.0} %; soak {:#}; {}; rollback {}{}",
                    s.name,
                    m.len(),
                    s.max_concurrent,
                    s.error_budget,
                    s.error_budget + 1,
                    s.success_threshold * 100.0,
                    s.soak,
                    if s.approval { "human approval (not the creator or starter)" } else { "no approval" },
                    s.rollback.as_str(),
                    if rehearse_rings.contains(&i) {
                        "; every host rehearses first (no apply before all rehearsals reported; a failed rehearsal fails its host's job, which never gets the apply)"
                    } else {
                        ""
                    }
                )
            })
            .chain([
                "a job fails when its pre-flight, apply or post-checks fail, when the agent refuses it, or when no report arrives by its deadline".to_string(),
                "a host offline until its window closes is skipped: reported, not counted against the budget".to_string(),
            ])
            .collect();
        // Known failure signatures (every deployment's): a host about to get
        // a version that failed on the same OS release and architecture is
        // named (`crate::signatures`).
        let mut known = Vec::new();
        for r in tx.list_rollouts().await? {
            if let Ok(s) = stored_of(&r) {
                known.extend(s.signatures);
            }
        }
        let mut warnings = Vec::new();
        for h in &hosts {
            let Some(a) = by_name.get(h.asset.as_str()) else {
                continue;
            };
            let os = crate::signatures::os_of(&a.facts);
            let pins: Vec<PackagePin> = h
                .packages
                .iter()
                .map(|p| PackagePin {
                    name: p.name.clone(),
                    version: p.to.clone(),
                })
                .collect();
            for sig in &known {
                if crate::signatures::matches(sig, &os, &a.facts.arch, &pins) {
                    warnings.push(crate::signatures::warning(&h.asset, sig));
                }
            }
        }
        Ok(Planned {
            preview: DeploymentPreview {
                hosts,
                skipped,
                rules,
                warnings,
            },
            rings,
            ring_checks,
            rehearse_rings,
            pins,
            slots,
            deadline,
            job_timeout,
        })
    }

    /// What `spec` would do, host by host (nothing is stored).
    pub async fn deploy_preview(
        &self,
        caller: &Caller,
        spec: &DeploymentSpec,
        ctx: &RequestCtx,
    ) -> Result<DeploymentPreview, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let selection = self.select_patches(spec).await?;
        let mut tx = self.store.read().await?;
        Ok(self
            .plan_deployment(&mut tx, spec, &selection, self.now())
            .await?
            .preview)
    }

    /// Creates a deployment (`DEP-…`, draft) with its change record.
    pub async fn deploy_create(
        &self,
        caller: &Caller,
        spec: &DeploymentSpec,
        ctx: &RequestCtx,
    ) -> Result<DeploymentDetail, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        for c in &spec.checks {
            patchbay_core::names::check_label(c, 128)
                .map_err(|m| AppError::invalid(format!("checks: {c:?}: {m}")))?;
        }
        let now = self.now();
        // The catalog is read before the change opens (one connection at a
        // time: a snapshot inside the write transaction could wait on the pool).
        let selection = self.select_patches(spec).await?;
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        let planned = self.plan_deployment(&mut tx, spec, &selection, now).await?;
        let prefix = format!("DEP-{}-", now.strftime("%Y-%m"));
        let seq = tx
            .list_deployments()
            .await?
            .iter()
            .filter(|d| d.id.starts_with(&prefix))
            .count()
            + 1;
        let id = format!("{prefix}{seq:03}");
        let rings = planned
            .rings
            .iter()
            .map(|(s, hosts)| {
                let jobs = hosts
                    .iter()
                    .map(|h| JobSpec {
                        host: h.clone(),
                        key: format!("{id}/{h}"),
                        not_before: now,
                        cutoff: planned.deadline,
                        run_timeout: planned.job_timeout,
                        slots: planned.slots.get(h).cloned().unwrap_or_default(),
                    })
                    .collect();
                (s.clone(), jobs)
            })
            .collect();
        let rollout = Rollout::new(&id, &caller.actor(), rings);
        let stored = StoredRollout {
            rollout,
            pins: planned.pins.clone(),
            checks: spec.checks.clone(),
            ring_checks: planned.ring_checks.clone(),
            control_asked: BTreeSet::new(),
            gate: crate::rehearsal_gate::Gate::new(planned.rehearse_rings.clone()),
            signatures: vec![],
            created_at: now,
            fidelity: crate::drift::staging_fidelity(&mut tx, spec, &planned.rings, now).await?,
            backup: crate::backups::policy_of(spec)?,
        };
        let row = DeploymentRow {
            id: id.clone(),
            kind: "baseline".into(),
            status: "draft".into(),
            reason: format!(
                "{} package(s) to {} host(s)",
                spec.packages.len(),
                planned.pins.len()
            ),
            patches: spec
                .packages
                .iter()
                .map(|p| format!("{}={}", p.name, p.version))
                .chain(selection.names.iter().cloned())
                .collect(),
            assets: planned.pins.keys().cloned().collect(),
            created_at: now,
            created_by: caller.actor(),
        };
        tx.insert_deployment(&row).await?;
        tx.put_rollout(&rollout_row(&stored, now)?).await?;
        tx.ensure_change_record(&id, now, &caller.actor()).await?;
        tx.audit(
            "deployment.created",
            &format!("deployment:{id}"),
            json!({"packages": row.patches, "hosts": row.assets, "skipped": planned.preview.skipped.len(),
                   "rings": planned.rings.iter().map(|(s, h)| json!({"name": s.name, "hosts": h})).collect::<Vec<_>>()}),
        )
        .await?;
        tx.commit().await?;
        self.deploy_show(caller, &id, ctx).await
    }

    /// A deployment with its rollout and its jobs' results.
    pub async fn deploy_show(
        &self,
        caller: &Caller,
        id: &str,
        ctx: &RequestCtx,
    ) -> Result<DeploymentDetail, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut tx = self.store.read().await?;
        let Some(d) = tx
            .list_deployments()
            .await?
            .into_iter()
            .find(|d| d.id == id)
        else {
            return Err(AppError::not_found(format!("no deployment {id}")));
        };
        let stored = match tx.rollout(id).await? {
            Some(r) => Some(stored_of(&r)?),
            None => None,
        };
        let results = tx
            .jobs_of(id)
            .await?
            .into_iter()
            .filter_map(|j| j.result)
            .collect();
        let backup_verifications = tx
            .backup_verifications_of(id)
            .await?
            .into_iter()
            .map(crate::backups::out)
            .collect();
        let status = stored
            .as_ref()
            .map(|s| status_name(s.rollout.state).to_string())
            .unwrap_or(d.status.clone());
        Ok(DeploymentDetail {
            deployment: DeploymentOut {
                id: d.id,
                kind: d.kind,
                status,
                reason: d.reason,
                patches: d.patches,
                assets: d.assets,
                created_at: fmt_ts(d.created_at),
                created_by: d.created_by,
            },
            fidelity: stored
                .as_ref()
                .map(|s| s.fidelity.clone())
                .unwrap_or_default(),
            rollout: stored.map(|s| s.rollout),
            results,
            backup_verifications,
        })
    }

    /// An operator's action: `start`, `pause`, `resume`, `abort`, `rollback`.
    pub async fn deploy_action(
        &self,
        caller: &Caller,
        id: &str,
        action: &str,
        comment: Option<&str>,
        ctx: &RequestCtx,
    ) -> Result<DeploymentDetail, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let by = caller.actor();
        let obs = match action {
            "start" => Observation::Start { by },
            "pause" => Observation::Pause { by },
            "resume" => Observation::Resume { by },
            "abort" => Observation::Abort { by },
            "rollback" => Observation::RollbackAll { by },
            other => {
                return Err(AppError::invalid(format!(
                    "unknown action {other:?} (start, pause, resume, abort, rollback)"
                )));
            }
        };
        let comment = comment.map(str::trim).filter(|c| !c.is_empty());
        if matches!(action, "abort" | "rollback") && comment.is_none() {
            return Err(AppError::invalid(format!(
                "comment: say why you {action} {id}"
            )));
        }
        self.observe(caller, id, obs, Action::WriteAssets, comment, ctx)
            .await?;
        self.deploy_show(caller, id, ctx).await
    }

    /// Approves (or rejects, which aborts) a ring; four eyes: never the
    /// deployment's creator or starter.
    pub async fn deploy_approval(
        &self,
        caller: &Caller,
        id: &str,
        input: &DeployApprovalIn,
        ctx: &RequestCtx,
    ) -> Result<DeploymentDetail, AppError> {
        self.require(caller, Action::Approve, ctx).await?;
        let comment = input.comment.trim();
        if comment.is_empty() {
            return Err(AppError::invalid(
                "comment: an approval or rejection says why",
            ));
        }
        let obs = if input.approve {
            let stored = {
                let mut tx = self.store.read().await?;
                let r = tx
                    .rollout(id)
                    .await?
                    .ok_or_else(|| AppError::not_found(format!("no deployment {id}")))?;
                stored_of(&r)?
            };
            let rings = &stored.rollout.rings;
            let ring = match &input.ring {
                Some(name) => rings
                    .iter()
                    .position(|r| &r.spec.name == name)
                    .ok_or_else(|| AppError::not_found(format!("{id} has no ring {name}")))?,
                None => rings
                    .iter()
                    .position(|r| {
                        r.approved_by.is_none()
                            && !matches!(
                                r.state,
                                patchbay_core::rollout::RingState::Passed
                                    | patchbay_core::rollout::RingState::Failed
                            )
                    })
                    .ok_or_else(|| {
                        AppError::invalid(format!("{id} has no ring waiting for approval"))
                    })?,
            };
            Observation::Approve {
                ring,
                by: caller.actor(),
            }
        } else {
            Observation::Abort { by: caller.actor() }
        };
        self.observe(caller, id, obs, Action::Approve, Some(comment), ctx)
            .await?;
        self.deploy_show(caller, id, ctx).await
    }

    /// Applies one operator observation and steps the rollout, all in one
    /// audited change. A refused observation is a 409 naming why.
    async fn observe(
        &self,
        caller: &Caller,
        id: &str,
        obs: Observation,
        action: Action,
        comment: Option<&str>,
        ctx: &RequestCtx,
    ) -> Result<(), AppError> {
        let now = self.now();
        let mut tx = self.change(caller, action, ctx).await?;
        // Locked until commit: the driver (on whichever replica leads) waits
        // for this change or steps the state it leaves, never the one before.
        let row = tx
            .lock_rollout(id, false)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no deployment {id}")))?;
        let mut stored = stored_of(&row)?;
        if let Err(r) = stored.rollout.check(&obs) {
            // Refused by the rollout's own rules (four eyes, a state that
            // does not allow it): nothing changes, and the attempt is on the
            // record, in its own transaction once this one is given up.
            drop(tx);
            let mut detail = ctx.detail(&r.0);
            detail["observation"] = json!(obs);
            self.audit_refusal(
                &caller.actor(),
                observation_kind(&obs),
                &format!("deployment:{id}"),
                &ctx.remote,
                detail,
            )
            .await;
            return Err(AppError::new(
                patchbay_proto::error::ErrorCode::Conflict,
                r.0,
            ));
        }
        if matches!(obs, Observation::Start { .. }) {
            // The immediate window opens at the start.
            for ring in &mut stored.rollout.rings {
                for j in &mut ring.jobs {
                    let w = j.spec.cutoff.duration_since(j.spec.not_before);
                    j.spec.not_before = now;
                    j.spec.cutoff = now + w;
                }
            }
        }
        let kind = observation_kind(&obs);
        tx.audit(
            kind,
            &format!("deployment:{id}"),
            json!({"comment": comment, "observation": obs}),
        )
        .await?;
        let before = stored.rollout.clone();
        let cmds = step(&mut stored.rollout, &[obs], now);
        self.carry_out(&mut tx, &mut stored, &cmds, now).await?;
        self.rehearsal_gate(&mut tx, &mut stored, now).await?;
        self.request_approvals(&mut tx, &before, &stored.rollout)
            .await?;
        if !before.is_settled() && stored.rollout.is_settled() {
            let state = serde_json::to_value(&stored).map_err(|e| {
                AppError::new(patchbay_proto::error::ErrorCode::Internal, e.to_string())
            })?;
            self.announce_test_report(&mut tx, &stored.rollout.id, &state, now)
                .await?;
        }
        tx.put_rollout(&rollout_row(&stored, now)?).await?;
        tx.commit().await?;
        self.job_bell.notify_waiters();
        Ok(())
    }

    /// Raises `approval.requested` (audited, in the step's change) for each
    /// ring that started waiting for a human approval in this step.
    async fn request_approvals(
        &self,
        tx: &mut crate::change::Change<'_>,
        before: &patchbay_core::rollout::Rollout,
        after: &patchbay_core::rollout::Rollout,
    ) -> Result<(), AppError> {
        for ring in crate::escalations::rings_awaiting_approval(before, after) {
            let id = &after.id;
            tx.audit(
                "approval.requested",
                &format!("deployment:{id}"),
                json!({
                    "ring": ring,
                    "message": format!("{id}: ring {ring} waits for approval"),
                }),
            )
            .await?;
        }
        Ok(())
    }

    /// Carries out a step's commands inside the change that stores the new
    /// state: leased and rollback jobs become signed rows, notifications
    /// audit entries with their events.
    async fn carry_out(
        &self,
        tx: &mut crate::change::Change<'_>,
        stored: &mut StoredRollout,
        cmds: &[Command],
        now: Timestamp,
    ) -> Result<(), AppError> {
        let id = &stored.rollout.id.clone();
        for c in cmds {
            // Each job command is one signed job row; only its key, kind and
            // deadline differ.
            let (ring, host, key, kind, deadline) = match c {
                Command::Lease {
                    host,
                    key,
                    deadline,
                    ring,
                } if stored.gate.requires(*ring) => {
                    // Held until the ring's rehearsals reported
                    // (`crate::rehearsals`).
                    stored.gate.hold(key, *ring, host, *deadline);
                    continue;
                }
                Command::Rollback { key, .. } if stored.gate.absorb_rollback(key) => {
                    // Never applied (its rehearsal failed): nothing to undo.
                    continue;
                }
                Command::Lease {
                    host,
                    key,
                    deadline,
                    ring,
                } => (
                    *ring,
                    host,
                    key.clone(),
                    JobKind::Apply {
                        packages: stored.pins.get(host).cloned().unwrap_or_default(),
                    },
                    *deadline,
                ),
                Command::Reboot { host, key, ring } => (
                    *ring,
                    host,
                    format!("{key}/reboot"),
                    JobKind::Reboot,
                    now + stored.timeout_of(*ring, key),
                ),
                Command::Rollback { host, key, ring } => (
                    *ring,
                    host,
                    format!("{key}/rollback"),
                    JobKind::Rollback { of: key.clone() },
                    now + stored.timeout_of(*ring, key),
                ),
                Command::Notify { event, message } => {
                    tx.audit(
                        event,
                        &format!("deployment:{id}"),
                        json!({"message": message}),
                    )
                    .await?;
                    continue;
                }
            };
            let job = Job {
                deployment: id.clone(),
                key,
                asset: host.clone(),
                not_before: now,
                deadline,
                kind,
                checks: stored.checks_of(ring),
            };
            self.lease_job(tx, job, now).await?;
        }
        Ok(())
    }

    /// For each ring that started running with health checks to judge and
    /// no control samples asked for yet: a `run_check` job to up to
    /// [`CONTROL_HOSTS`] reachable, not-yet-patched hosts of later rings —
    /// the canary analysis compares the ring's hosts after their change
    /// against them. Read-only on the hosts; their results arrive as
    /// `Observation::Control`.
    async fn ask_control(
        &self,
        tx: &mut crate::change::Change<'_>,
        stored: &mut StoredRollout,
        now: Timestamp,
    ) -> Result<(), AppError> {
        if stored.rollout.state != DeploymentState::Running {
            return Ok(());
        }
        let id = stored.rollout.id.clone();
        for r in 0..stored.rollout.rings.len() {
            let ring = &stored.rollout.rings[r];
            let checks = stored.checks_of(r);
            if ring.state != patchbay_core::rollout::RingState::Running
                || stored.control_asked.contains(&r)
                || checks.is_empty()
            {
                continue;
            }
            // Reachability as this step observed it.
            let later: Vec<(String, SignedDuration)> = stored.rollout.rings[r + 1..]
                .iter()
                .flat_map(|g| g.jobs.iter())
                .filter(|j| j.state == patchbay_core::rollout::JobState::Pending && j.online)
                .map(|j| (j.spec.host.clone(), j.spec.run_timeout))
                .take(CONTROL_HOSTS)
                .collect();
            stored.control_asked.insert(r);
            for (host, timeout) in later {
                // The first check by name, the others as the job's checks: the
                // result's `after` holds each check once (the agent runs the
                // job's checks before and after the named one).
                let job = Job {
                    deployment: id.clone(),
                    key: format!("{id}/control/{r}/{host}"),
                    asset: host,
                    not_before: now,
                    deadline: now + timeout,
                    kind: JobKind::RunCheck {
                        name: checks[0].clone(),
                    },
                    checks: checks[1..].to_vec(),
                };
                self.lease_job(tx, job, now).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn lease_job(
        &self,
        tx: &mut crate::change::Change<'_>,
        job: Job,
        now: Timestamp,
    ) -> Result<(), AppError> {
        let signer = self.signer().ok_or_else(|| {
            AppError::new(
                patchbay_proto::error::ErrorCode::Unavailable,
                "this server has no signing key (DATA_DIR/server-signing.key): it cannot issue jobs",
            )
        })?;
        let signed = job::sign(job, &signer);
        tx.insert_agent_job(&AgentJobRow {
            key: signed.job.key.clone(),
            deployment: signed.job.deployment.clone(),
            asset: signed.job.asset.clone(),
            job: serde_json::to_value(&signed).map_err(|e| {
                AppError::new(patchbay_proto::error::ErrorCode::Internal, e.to_string())
            })?,
            leased_at: now,
            delivered_at: None,
            result: None,
            result_at: None,
            consumed_at: None,
        })
        .await?;
        Ok(())
    }

    /// The rollout driver (a duty): for every deployment still moving, takes
    /// in the stored results and which agents are reachable, steps the state
    /// machine, and stores the new state with its commands — one change per
    /// deployment. Returns how many deployments it stepped.
    pub async fn drive_rollouts(&self) -> Result<usize, AppError> {
        // Which rollouts may move: running or paused ones, and ended ones with
        // a job still out or a result waiting. Read without decoding the
        // rollouts (each is decoded once, in its own step's transaction), so
        // old halted deployments cost a glance, not a write transaction.
        let active: Vec<String> = {
            let mut tx = self.store.read().await?;
            let mut out = Vec::new();
            for r in tx
                .rollouts_with_status(&["running", "paused", "halted", "aborted"])
                .await?
            {
                if !settled_in(&r.state) || !tx.unconsumed_results(&r.deployment).await?.is_empty()
                {
                    out.push(r.deployment);
                }
            }
            out
        };
        let mut n = 0;
        for id in active {
            if self.drive_one(&id).await? {
                n += 1;
            }
        }
        if n > 0 {
            self.job_bell.notify_waiters();
        }
        Ok(n)
    }

    /// One step of one rollout; `false` when it had settled (ended, every
    /// job terminal, no result waiting) and nothing was done.
    async fn drive_one(&self, id: &str) -> Result<bool, AppError> {
        let now = self.now();
        let mut tx = self.change_by_system(SystemActor::RolloutDriver).await?;
        // Claimed for this step (`FOR UPDATE SKIP LOCKED` on PostgreSQL): if
        // another transaction is changing it — an operator's action, or a
        // previous leader still finishing a step at a handover — this tick
        // leaves it alone and the next one steps the state that left.
        let Some(row) = tx.lock_rollout(id, true).await? else {
            tx.commit_unaudited("rollout vanished, or being changed by another transaction")
                .await?;
            return Ok(false);
        };
        let mut stored = stored_of(&row)?;
        let snapshot = stored.clone();
        let results = tx.unconsumed_results(id).await?;
        if stored.rollout.is_settled() && results.is_empty() {
            tx.commit_unaudited("settled rollout: nothing to do")
                .await?;
            return Ok(false);
        }
        let mut obs = Vec::new();
        // Which agents are reachable: checked in within three intervals.
        let recent = SignedDuration::from_secs(3 * self.config.checkin_interval_secs as i64)
            .max(SignedDuration::from_mins(2));
        let hosts: BTreeSet<String> = stored
            .rollout
            .rings
            .iter()
            .flat_map(|r| r.jobs.iter().map(|j| j.spec.host.clone()))
            .collect();
        // Stored times, or this replica's later ones not yet stored
        // (another replica's are at most one heartbeat flush behind).
        let pending = self.heartbeats.by_name();
        let seen: BTreeMap<String, Option<Timestamp>> = tx
            .asset_last_seen()
            .await?
            .into_iter()
            .map(|(name, t)| {
                let t = t.max(pending.get(&name).copied());
                (name, t)
            })
            .collect();
        for h in &hosts {
            let online = seen
                .get(h)
                .copied()
                .flatten()
                .is_some_and(|t| now.duration_since(t) <= recent);
            obs.push(Observation::Online {
                host: h.clone(),
                online,
            });
        }
        let mut consumed = Vec::new();
        let mut control: BTreeMap<usize, Vec<patchbay_core::canary::CheckSample>> = BTreeMap::new();
        for r in &results {
            consumed.push(r.key.clone());
            if crate::rehearsal_gate::is_rehearsal(&r.key) {
                self.take_rehearsal(&mut tx, &mut stored, &r.key, &r.asset, r.result.as_ref())
                    .await?;
                continue;
            }
            let Some(v) = &r.result else { continue };
            let res = JobResult::deserialize(v);
            if let Some(ring) = control_ring(&r.key) {
                // A control sample: each check once, as the not-yet-patched
                // host ran it (`after`; a refusal or a failure to run gives
                // none).
                if let Ok(res) = res
                    && res.refusal.is_none()
                {
                    control
                        .entry(ring)
                        .or_default()
                        .extend(res.after.into_iter().map(|mut s| {
                            s.host = r.asset.clone();
                            s
                        }));
                }
                continue;
            }
            let Ok(res) = res else {
                tracing::warn!(key = %r.key, "a stored job result does not decode; counted as a failure");
                obs.push(Observation::Result {
                    key: r.key.clone(),
                    ok: false,
                    error: Some("the agent's result could not be read".into()),
                    baseline: vec![],
                    after: vec![],
                    reboot_required: false,
                });
                continue;
            };
            obs.push(observation_of(&r.key, res));
        }
        for (ring, samples) in control {
            if let Some(rg) = stored.rollout.rings.get(ring) {
                let mut all = rg.control.clone();
                all.extend(samples);
                obs.insert(0, Observation::Control { ring, samples: all });
            }
        }
        // What the rehearsal gate decided since the last step (failed jobs,
        // rollbacks with nothing to undo).
        obs.append(&mut stored.gate.pending);
        let before = stored.rollout.clone();
        let cmds = step(&mut stored.rollout, &obs, now);
        tx.mark_consumed(&consumed, now).await?;
        self.carry_out(&mut tx, &mut stored, &cmds, now).await?;
        self.rehearsal_gate(&mut tx, &mut stored, now).await?;
        self.record_signatures(&mut tx, &mut stored, &before, now)
            .await?;
        self.sample_backups(&mut tx, &mut stored, now).await?;
        self.request_approvals(&mut tx, &before, &stored.rollout)
            .await?;
        if !before.is_settled() && stored.rollout.is_settled() {
            let state = serde_json::to_value(&stored).map_err(|e| {
                AppError::new(patchbay_proto::error::ErrorCode::Internal, e.to_string())
            })?;
            self.announce_test_report(&mut tx, &stored.rollout.id, &state, now)
                .await?;
        }
        self.ask_control(&mut tx, &mut stored, now).await?;
        if stored != snapshot {
            tx.put_rollout(&rollout_row(&stored, now)?).await?;
        }
        // Leases and state changes are recorded as their notifications and
        // the jobs' rows; a tick that changed nothing audits nothing.
        tx.commit_unaudited("rollout driver step (its notifications are audited)")
            .await?;
        Ok(true)
    }

    /// The job half of a check-in, inside its transaction: stores the
    /// agent's results (once per key) and hands it its open jobs.
    pub(crate) async fn job_exchange(
        &self,
        tx: &mut crate::change::Change<'_>,
        asset: &str,
        results: &[JobResult],
        now: Timestamp,
    ) -> Result<(Vec<String>, Vec<job::SignedJob>), AppError> {
        let mut acked = Vec::new();
        for r in results {
            let v = serde_json::to_value(r).map_err(|e| {
                AppError::new(patchbay_proto::error::ErrorCode::Internal, e.to_string())
            })?;
            match tx.store_job_result(asset, &r.key, &v, now).await? {
                Some(true) => {
                    tx.audit(
                        "job.result",
                        &format!("job:{}", r.key),
                        json!({"outcome": r.outcome, "step": r.step, "refusal": r.refusal,
                               "message": r.message, "changed": r.changed}),
                    )
                    .await?;
                    acked.push(r.key.clone());
                    crate::backups::take_result(tx, r, now).await?;
                    // Wake the rollout driver (after this commits, it reads
                    // the result; a permit is kept if it is busy).
                    self.driver_bell.notify_one();
                }
                Some(false) => acked.push(r.key.clone()),
                // Not a job of this agent's: never acknowledged, so a forged
                // or misdirected result is neither stored nor silently dropped
                // by the agent (it keeps it and the operator sees it there).
                None => {}
            }
        }
        let jobs = self.open_jobs(tx, asset, now).await?;
        Ok((acked, jobs))
    }

    async fn open_jobs(
        &self,
        tx: &mut crate::change::Change<'_>,
        asset: &str,
        now: Timestamp,
    ) -> Result<Vec<job::SignedJob>, AppError> {
        let rows = tx.open_jobs_for(asset, JOBS_PER_CHECKIN).await?;
        let keys: Vec<String> = rows.iter().map(|r| r.key.clone()).collect();
        tx.mark_delivered(&keys, now).await?;
        rows.into_iter()
            .map(|r| {
                serde_json::from_value(r.job).map_err(|e| {
                    AppError::new(
                        patchbay_proto::error::ErrorCode::Internal,
                        format!("stored job {} does not decode: {e}", r.key),
                    )
                })
            })
            .collect()
    }

    /// Waits (long poll) until `asset` has an open job or `wait` passes;
    /// returns the jobs handed over.
    pub(crate) async fn wait_for_jobs(
        &self,
        agent: &crate::AgentCaller,
        wait: std::time::Duration,
    ) -> Result<Vec<job::SignedJob>, AppError> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let bell = self.job_bell.notified();
            let drain = self.draining.1.notified();
            // A replica shutting down answers at once (no jobs): the agent's
            // next check-in goes to a replica that stays, and the shutdown
            // does not wait out every long poll.
            if self.draining.0.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(vec![]);
            }
            let has = {
                let mut tx = self.store.read().await?;
                !tx.open_jobs_for(&agent.asset_name, 1).await?.is_empty()
            };
            if has {
                let now = self.now();
                let mut tx = self.change_by_agent(agent).await?;
                let jobs = self.open_jobs(&mut tx, &agent.asset_name, now).await?;
                tx.commit_unaudited("job delivery stamp").await?;
                return Ok(jobs);
            }
            // Woken by a lease on this replica, or re-checked every 250 ms
            // (leases made by another replica).
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(vec![]);
            }
            let nap = left.min(std::time::Duration::from_millis(250));
            tokio::select! {
                _ = tokio::time::timeout(nap, bell) => {}
                _ = drain => {}
            }
        }
    }
}

/// The rehearsal gate's effects (its rules: [`crate::rehearsal_gate`] and
/// `crate::rehearsals`), here because the driver step calls them.
impl App {
    /// Records the signature of every job that failed in this step (its
    /// pins, step, error, the host's OS release and architecture now), audits
    /// it (`deployment.failure_signature`) and adds a lessons-learned entry
    /// naming it to the deployment's change record.
    async fn record_signatures(
        &self,
        tx: &mut crate::change::Change<'_>,
        stored: &mut StoredRollout,
        before: &Rollout,
        now: Timestamp,
    ) -> Result<(), AppError> {
        let was_failed: BTreeSet<&str> = before
            .rings
            .iter()
            .flat_map(|r| r.jobs.iter())
            .filter(|j| j.failed)
            .map(|j| j.spec.key.as_str())
            .collect();
        let new: Vec<(String, String)> = stored
            .rollout
            .rings
            .iter()
            .flat_map(|r| r.jobs.iter())
            .filter(|j| j.failed && !was_failed.contains(j.spec.key.as_str()))
            .map(|j| (j.spec.host.clone(), j.error.clone().unwrap_or_default()))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let id = stored.rollout.id.clone();
        let actor = crate::system::SystemActor::RolloutDriver.name();
        for (host, error) in new {
            let facts = tx.asset_by_name(&host).await?.map(|a| a.facts);
            let sig = crate::signatures::signature_of(
                &id,
                &host,
                stored.pins.get(&host).map(Vec::as_slice).unwrap_or(&[]),
                &error,
                &facts
                    .as_ref()
                    .map(crate::signatures::os_of)
                    .unwrap_or_default(),
                &facts.map(|f| f.arch).unwrap_or_default(),
                now,
            );
            let (change, _) = tx.ensure_change_record(&id, now, actor).await?;
            let lesson = tx
                .add_lesson(&change.id, &crate::signatures::lesson(&sig), actor, now)
                .await?;
            tx.audit(
                "deployment.failure_signature",
                &format!("deployment:{id}"),
                json!({"signature": sig, "change": change.id, "lesson": lesson}),
            )
            .await?;
            stored.signatures.retain(|s| s.id != sig.id);
            stored.signatures.push(sig);
        }
        Ok(())
    }

    /// The gate's part of a driver step (or of an operator's action), after
    /// the state machine's commands were carried out: asks the rehearsals
    /// gated rings need, and leases the held applies that may go.
    pub(crate) async fn rehearsal_gate(
        &self,
        tx: &mut crate::change::Change<'_>,
        stored: &mut StoredRollout,
        now: Timestamp,
    ) -> Result<(), AppError> {
        if stored.gate.rings.is_empty() {
            return Ok(());
        }
        let id = stored.rollout.id.clone();
        for (ring, host) in stored.gate.to_ask(&stored.rollout) {
            let timeout = stored.rollout.rings[ring]
                .jobs
                .iter()
                .find(|j| j.spec.host == host)
                .map_or(DEFAULT_JOB_TIMEOUT, |j| j.spec.run_timeout);
            let job = Job {
                deployment: id.clone(),
                key: crate::rehearsal_gate::gate_key(&id, &host),
                asset: host.clone(),
                not_before: now,
                deadline: now + timeout,
                kind: JobKind::Rehearse {
                    packages: stored.pins.get(&host).cloned().unwrap_or_default(),
                },
                checks: vec![],
            };
            self.lease_job(tx, job, now).await?;
            stored.gate.asked(&host);
        }
        let release = stored.gate.release(&stored.rollout);
        for (key, h) in release {
            let job = Job {
                deployment: id.clone(),
                key,
                asset: h.host.clone(),
                not_before: now,
                deadline: h.deadline,
                kind: JobKind::Apply {
                    packages: stored.pins.get(&h.host).cloned().unwrap_or_default(),
                },
                checks: stored.checks_of(h.ring),
            };
            self.lease_job(tx, job, now).await?;
        }
        Ok(())
    }

    /// In the driver's step: asks the snapshot verifications now due
    /// ([`crate::backups::due`]): a pending row and a signed
    /// `verify_snapshot` job (`DEP/verify/HOST`) each.
    async fn sample_backups(
        &self,
        tx: &mut crate::change::Change<'_>,
        stored: &mut StoredRollout,
        now: Timestamp,
    ) -> Result<(), AppError> {
        if stored.backup.rings.is_empty() {
            return Ok(());
        }
        let id = stored.rollout.id.clone();
        let results: BTreeMap<String, JobResult> = tx
            .jobs_of(&id)
            .await?
            .into_iter()
            .filter_map(|j| Some((j.key, serde_json::from_value(j.result?).ok()?)))
            .collect();
        for d in crate::backups::due(&stored.rollout, &mut stored.backup, &results) {
            let row = crate::backups::pending_row(&id, &d, now);
            if !tx.add_backup_verification(&row).await? {
                continue;
            }
            let job = Job {
                deployment: id.clone(),
                key: row.key,
                asset: d.host,
                not_before: now,
                deadline: now + d.timeout,
                kind: JobKind::VerifySnapshot {
                    snapshot: d.snapshot,
                },
                checks: vec![],
            };
            self.lease_job(tx, job, now).await?;
        }
        Ok(())
    }

    /// Takes in a gate rehearsal's stored result (in the driver's step):
    /// records the verdict and audits it (`deployment.rehearsal_passed` /
    /// `deployment.rehearsal_failed`).
    pub(crate) async fn take_rehearsal(
        &self,
        tx: &mut crate::change::Change<'_>,
        stored: &mut StoredRollout,
        key: &str,
        asset: &str,
        result: Option<&serde_json::Value>,
    ) -> Result<(), AppError> {
        let id = stored.rollout.id.clone();
        if key != crate::rehearsal_gate::gate_key(&id, asset) {
            // An on-demand rehearsal: read by `deploy_rehearsals`, nothing to decide.
            return Ok(());
        }
        let res = result.and_then(|v| JobResult::deserialize(v).ok());
        let res = res.unwrap_or_else(|| JobResult {
            key: key.to_owned(),
            outcome: JobOutcome::Failed,
            step: Some("server".into()),
            message: Some("the agent's rehearsal result could not be read".into()),
            refusal: None,
            baseline: vec![],
            after: vec![],
            changed: vec![],
            reboot_required: false,
            finished_at: String::new(),
            rehearsal: None,
            privilege: vec![],
            snapshot: None,
        });
        if let Some(v) = stored.gate.take_result(asset, &res) {
            let (action, reason) = match &v {
                crate::rehearsal_gate::Verdict::Failed { reason } => {
                    ("deployment.rehearsal_failed", Some(reason.clone()))
                }
                _ => ("deployment.rehearsal_passed", None),
            };
            let r = res.rehearsal.as_ref();
            tx.audit(
                action,
                &format!("deployment:{id}"),
                json!({
                    "host": asset,
                    "key": key,
                    "message": match &reason {
                        Some(why) => format!("{id}: rehearsal on {asset} failed: {why}"),
                        None => format!("{id}: rehearsal on {asset} passed"),
                    },
                    "mode": r.map(|r| r.mode.as_str()),
                    "scripts": r.map(|r| r.scripts.len()).unwrap_or(0),
                    "conflicts": r.map(|r| r.conflicts.len()).unwrap_or(0),
                    "privilege": r.map(|r| r.privilege.len()).unwrap_or(0),
                }),
            )
            .await?;
        }
        Ok(())
    }
}

/// An agent's result as an observation of the state machine.
pub fn observation_of(key: &str, r: JobResult) -> Observation {
    let error = match (&r.refusal, &r.step, &r.message) {
        (Some(code), _, m) => Some(format!(
            "refused ({code}): {}",
            m.as_deref().unwrap_or_default()
        )),
        (None, Some(s), Some(m)) => Some(format!("{s}: {m}")),
        (None, None, Some(m)) => Some(m.clone()),
        (None, Some(s), None) => Some(s.clone()),
        (None, None, None) => None,
    };
    if let Some(base) = key.strip_suffix("/reboot") {
        return Observation::RebootResult {
            key: base.to_string(),
            ok: r.outcome == JobOutcome::Succeeded,
            error,
            after: r.after,
        };
    }
    if let Some(base) = key.strip_suffix("/rollback") {
        return Observation::RollbackResult {
            key: base.to_string(),
            ok: r.outcome == JobOutcome::RolledBack || r.outcome == JobOutcome::Succeeded,
            error,
        };
    }
    Observation::Result {
        key: key.to_string(),
        ok: r.outcome == JobOutcome::Succeeded,
        error,
        baseline: r.baseline,
        after: r.after,
        reboot_required: r.reboot_required,
    }
}

/// A rollout's summary for its change record.
pub fn summary_of(r: &RolloutRow) -> Result<patchbay_proto::api::RolloutSummary, AppError> {
    use patchbay_core::rollout::JobState as J;
    let s = stored_of(r)?;
    fn json_name(v: &impl Serialize) -> String {
        serde_json::to_value(v)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
    Ok(patchbay_proto::api::RolloutSummary {
        status: status_name(s.rollout.state).to_string(),
        reason: s.rollout.reason.clone(),
        rings: s
            .rollout
            .rings
            .iter()
            .map(|ring| {
                let count = |f: &dyn Fn(J) -> bool| ring.jobs.iter().filter(|j| f(j.state)).count();
                patchbay_proto::api::RingSummary {
                    name: ring.spec.name.clone(),
                    state: json_name(&ring.state),
                    succeeded: count(&|s| s == J::Succeeded),
                    failed: count(&|s| matches!(s, J::Failed | J::RollbackFailed)),
                    rolled_back: count(&|s| s == J::RolledBack),
                    skipped: count(&|s| s == J::Skipped),
                    approved_by: ring.approved_by.clone(),
                    gates: ring
                        .gates
                        .iter()
                        .map(|g| (g.gate.clone(), json_name(&g.verdict), g.reason.clone()))
                        .collect(),
                }
            })
            .collect(),
    })
}

/// [`Rollout::is_settled`] of a stored rollout, read from its JSON without
/// decoding it (anything unexpected: not settled, so
/// the driver looks properly).
fn settled_in(v: &serde_json::Value) -> bool {
    const TERMINAL: [&str; 5] = [
        "succeeded",
        "failed",
        "rolled_back",
        "rollback_failed",
        "skipped",
    ];
    let r = &v["rollout"];
    let ended = matches!(
        r["state"].as_str(),
        Some("completed" | "halted" | "aborted")
    );
    ended
        && r["rings"].as_array().is_some_and(|rings| {
            rings.iter().all(|ring| {
                ring["jobs"].as_array().is_some_and(|jobs| {
                    jobs.iter()
                        .all(|j| j["state"].as_str().is_some_and(|s| TERMINAL.contains(&s)))
                })
            })
        })
}

pub(crate) fn stored_of(r: &RolloutRow) -> Result<StoredRollout, AppError> {
    serde_json::from_value(r.state.clone()).map_err(|e| {
        AppError::new(
            patchbay_proto::error::ErrorCode::Internal,
            format!("stored rollout {} does not decode: {e}", r.deployment),
        )
    })
}

pub(crate) fn rollout_row(s: &StoredRollout, now: Timestamp) -> Result<RolloutRow, AppError> {
    Ok(RolloutRow {
        deployment: s.rollout.id.clone(),
        state: serde_json::to_value(s).map_err(|e| {
            AppError::new(patchbay_proto::error::ErrorCode::Internal, e.to_string())
        })?,
        status: status_name(s.rollout.state).to_string(),
        updated_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentages() {
        assert_eq!(parse_count("x", "3", 10, true).unwrap(), 3);
        assert_eq!(parse_count("x", "25%", 10, true).unwrap(), 3);
        assert_eq!(parse_count("x", "25%", 10, false).unwrap(), 2);
        assert!(parse_count("x", "ten", 10, true).is_err());
        assert!(parse_count("x", "150%", 10, true).is_err());
    }

    #[test]
    fn placeholders_are_recognised() {
        assert!(placeholder("00000000000000000000000000000000"));
        assert!(placeholder("uninitialized"));
        assert!(!placeholder("0123456789abcdef0123456789abcdef"));
    }
}

#[cfg(test)]
mod settled_tests {
    use super::*;
    use patchbay_core::rollout::{JobState, RingSpec};

    /// `settled_in` (a glance at the JSON) agrees with the decoded rollout,
    /// so a wire name changed in core cannot make the driver forget a job.
    #[test]
    fn settled_in_agrees_with_the_decoded_rollout() {
        let t: Timestamp = "2026-12-08T22:00:00Z".parse().unwrap();
        let spec = RingSpec {
            name: "r".into(),
            max_concurrent: 1,
            error_budget: 0,
            success_threshold: 0.95,
            soak: SignedDuration::ZERO,
            approval: false,
            rollback: RollbackPolicy::FailedHosts,
            reboot: Default::default(),
        };
        let job = JobSpec {
            host: "h".into(),
            key: "DEP-X/h".into(),
            not_before: t,
            cutoff: t,
            run_timeout: SignedDuration::from_mins(1),
            slots: vec![],
        };
        let states = [
            JobState::Pending,
            JobState::Leased,
            JobState::Preflight,
            JobState::Applying,
            JobState::Verifying,
            JobState::Rebooting,
            JobState::Succeeded,
            JobState::Failed,
            JobState::RollingBack,
            JobState::RolledBack,
            JobState::RollbackFailed,
            JobState::Skipped,
        ];
        for d in [
            DeploymentState::Draft,
            DeploymentState::Running,
            DeploymentState::Paused,
            DeploymentState::Completed,
            DeploymentState::Halted,
            DeploymentState::Aborted,
        ] {
            for js in states {
                let mut r = Rollout::new("DEP-X", "me", vec![(spec.clone(), vec![job.clone()])]);
                r.state = d;
                r.rings[0].jobs[0].state = js;
                let stored = StoredRollout {
                    rollout: r,
                    pins: BTreeMap::new(),
                    checks: vec![],
                    ring_checks: vec![],
                    control_asked: BTreeSet::new(),
                    gate: Default::default(),
                    signatures: vec![],
                    created_at: t,
                    fidelity: vec![],
                    backup: Default::default(),
                };
                let v = serde_json::to_value(&stored).unwrap();
                assert_eq!(settled_in(&v), stored.rollout.is_settled(), "{d:?} {js:?}");
                assert_eq!(settled_in(&v), d.is_final() && js.is_terminal());
            }
        }
    }
}

/// The audit action of an operator's observation of a rollout.
fn observation_kind(obs: &Observation) -> &'static str {
    match obs {
        Observation::Start { .. } => "deployment.start",
        Observation::Pause { .. } => "deployment.pause",
        Observation::Resume { .. } => "deployment.resume",
        Observation::Abort { .. } => "deployment.abort",
        Observation::RollbackAll { .. } => "deployment.rollback",
        Observation::Approve { .. } => "deployment.approve",
        _ => "deployment.observe",
    }
}
