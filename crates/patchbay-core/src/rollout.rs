//! The rollout state machine: `step(state, observations, now) -> commands`.
//!
//! A deployment is a list of rings; a ring is a set of hosts; each host has
//! one job. The driver (the service layer, run as a duty on one replica)
//! feeds what happened — operator actions, agents' progress and results,
//! hosts going on- and offline, the passage of time — into [`step`], which
//! moves the state and says what to do ([`Command`]: lease a job, roll a host
//! back, tell people). The driver persists the new state and the commands in
//! one transaction *before* sending anything, so a crash re-sends and never
//! skips or doubles (jobs carry idempotency keys the agents honour).
//!
//! States (`../shared/design/rollout-and-agent.md`):
//! ```text
//! deployment: draft -> scheduled -> running -> (paused <-> running) -> completed | halted | aborted
//! ring:       pending -> waiting_window -> running -> soaking -> awaiting_approval -> passed | failed
//! job:        pending -> leased -> preflight -> applying -> verifying -> [rebooting ->] succeeded
//!                                       \-> failed -> rolling_back -> rolled_back | rollback_failed
//!             (any non-terminal) -> skipped (window closed, host offline, halted, aborted)
//! ```
//!
//! Rules this module makes impossible to break (property-tested in
//! `tests/it/rollout.rs`):
//! 1. A ring starts only after the previous ring passed.
//! 2. Jobs in flight in a ring never exceed its concurrency limit; no job is
//!    leased outside its window (before it opens, or at or after its cutoff)
//!    nor, when the planner gave the host maintenance-window slots, outside
//!    one of them.
//! 3. **Hard cap:** a job is leased only while the ring's failures plus its
//!    jobs in flight stay within the error budget plus one, so the failure
//!    that exhausts the budget is the last one possible — in-flight jobs can
//!    never overshoot it (budget 0 means one host at a time). When failures
//!    exceed the budget the deployment halts: nothing new is leased anywhere,
//!    and the ring's rollback policy runs.
//! 4. Every job ends terminal; after an abort nothing is leased and, once the
//!    agents have reported, nothing is in flight.
//! 5. Pure and deterministic: the same observations at the same times give the
//!    same state and commands.
//!
//! Failure accounting: a job counts against the budget when its pre-flight,
//! apply or post-checks failed, or when its agent did not report by the job's
//! deadline after leasing it. A host offline before its job was leased is
//! `skipped` (reported, not counted).

use crate::canary::{self, CanaryInput, CanaryVerdict, CheckSample, Verdict};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// A ring's size, concurrency or error budget as people write it: `N`, or
/// `N%` of the ring (decimals allowed, at most 100). The one grammar the API
/// and the CLI both check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Share {
    /// An absolute count.
    Count(u64),
    /// A percentage, 0–100.
    Percent(f64),
}

/// Why a [`Share`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareError {
    /// Not `N` or `N%`.
    Malformed,
    /// A percentage above 100.
    Over100,
}

impl Share {
    /// Parses `N` or `N%` (digits only; a percentage may have one dot).
    pub fn parse(s: &str) -> Result<Share, ShareError> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            let ok = !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                && p.bytes().filter(|b| *b == b'.').count() <= 1;
            let x: f64 = p.parse().ok().filter(|_| ok).ok_or(ShareError::Malformed)?;
            if x > 100.0 {
                return Err(ShareError::Over100);
            }
            Ok(Share::Percent(x))
        } else if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            t.parse()
                .map(Share::Count)
                .map_err(|_| ShareError::Malformed)
        } else {
            Err(ShareError::Malformed)
        }
    }

    /// The count for a ring of `n` hosts (a percentage rounds up when
    /// `round_up`, as concurrency does, else down, as budgets do).
    pub fn of(self, n: usize, round_up: bool) -> usize {
        match self {
            Share::Count(c) => usize::try_from(c).unwrap_or(usize::MAX),
            Share::Percent(p) => {
                let x = p / 100.0 * n as f64;
                (if round_up { x.ceil() } else { x.floor() }) as usize
            }
        }
    }
}

/// What a failed host gets when its ring fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackPolicy {
    /// Roll back the hosts whose job failed (default).
    #[default]
    FailedHosts,
    /// Roll back every host of the ring whose job ran.
    Ring,
    /// Leave hosts as they are.
    None,
}

impl RollbackPolicy {
    /// Its name in policies and requests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailedHosts => "failed-hosts",
            Self::Ring => "ring",
            Self::None => "none",
        }
    }

    /// Parses `failed-hosts`, `ring` or `none`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "failed-hosts" => Some(Self::FailedHosts),
            "ring" => Some(Self::Ring),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// A ring's rules, resolved to counts for its hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RingSpec {
    /// Name (`ring1-pilot`).
    pub name: String,
    /// Jobs in flight at most (≥ 1).
    pub max_concurrent: usize,
    /// Failures tolerated; one more halts the deployment.
    pub error_budget: usize,
    /// Share of jobs that ran that must succeed (0–1; default 0.95).
    pub success_threshold: f64,
    /// Time after the ring's last job before the next ring may start.
    pub soak: SignedDuration,
    /// Whether a human approval (not by the deployment's creator or starter)
    /// is needed before the ring passes.
    pub approval: bool,
    /// What a failed ring rolls back.
    pub rollback: RollbackPolicy,
    /// Whether a host that reports it needs a reboot after its job gets a
    /// reboot job (while its window is open and the deployment runs).
    #[serde(default)]
    pub reboot: RebootPolicy,
}

/// Whether hosts are rebooted after their job when they need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RebootPolicy {
    /// Reboot when the host reports it is required and the host's window is
    /// still open (default).
    #[default]
    IfRequired,
    /// Never reboot; a host that needs one is reported.
    Never,
}

impl RebootPolicy {
    /// Its name in requests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IfRequired => "if-required",
            Self::Never => "never",
        }
    }

    /// Parses `if-required` or `never`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "if-required" => Some(Self::IfRequired),
            "never" => Some(Self::Never),
            _ => None,
        }
    }
}

/// A host's job, as planned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The host (asset name).
    pub host: String,
    /// Idempotency key (`DEP-…/host`): an agent runs a key at most once.
    pub key: String,
    /// The host's window: not before this.
    pub not_before: Timestamp,
    /// The window's cutoff: no job is leased at or after it.
    pub cutoff: Timestamp,
    /// How long the agent has to report after a lease.
    pub run_timeout: SignedDuration,
    /// The host's maintenance-window occurrences inside `[not_before,
    /// cutoff)`, from the planner: when any is given a job is leased only
    /// inside one of them; none means anywhere in `[not_before, cutoff)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<Slot>,
}

/// One maintenance-window occurrence a job may start in: `[opens, closes)`,
/// `closes` being the occurrence's cutoff (the last moment a job may start,
/// leaving time for it to finish before the window ends), already clipped
/// by blackouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// When jobs may start.
    pub opens: Timestamp,
    /// When they may no longer start (exclusive).
    pub closes: Timestamp,
}

impl JobSpec {
    /// Whether the job may be leased at `now`: inside `[not_before, cutoff)`
    /// and, when it has slots, inside one of them.
    pub fn open_at(&self, now: Timestamp) -> bool {
        now >= self.not_before
            && now < self.cutoff
            && (self.slots.is_empty()
                || self.slots.iter().any(|s| now >= s.opens && now < s.closes))
    }

    /// When the job's next slot (or its window) opens at or after `now`;
    /// `None` when none will before the cutoff.
    pub fn next_open(&self, now: Timestamp) -> Option<Timestamp> {
        if now >= self.cutoff {
            return None;
        }
        if self.slots.is_empty() {
            return Some(now.max(self.not_before));
        }
        self.slots
            .iter()
            .filter_map(|s| {
                let from = s.opens.max(now).max(self.not_before);
                (from < s.closes.min(self.cutoff)).then_some(from)
            })
            .min()
    }
}

/// A deployment's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// Created, not started.
    Draft,
    /// Started: its rings run in their windows.
    Running,
    /// Paused by an operator or an inconclusive gate: nothing new is leased.
    Paused,
    /// Every ring passed.
    Completed,
    /// Stopped by a failed gate, an exhausted budget or an operator's
    /// rollback: nothing new is leased; rollbacks run.
    Halted,
    /// Stopped by an operator: nothing new is leased, pending jobs skipped.
    Aborted,
}

impl DeploymentState {
    /// Whether the deployment can change no more (apart from in-flight jobs
    /// reporting).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Halted | Self::Aborted)
    }
}

/// A ring's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingState {
    /// Waiting for the previous ring.
    Pending,
    /// Started; no host's window is open yet.
    WaitingWindow,
    /// Leasing and running jobs.
    Running,
    /// Every job ended and the gates passed; soak time runs.
    Soaking,
    /// Soaked; waiting for a human approval.
    AwaitingApproval,
    /// Passed: the next ring may start.
    Passed,
    /// A gate failed or the budget ran out.
    Failed,
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Not leased yet.
    Pending,
    /// Leased to the agent, not acknowledged.
    Leased,
    /// The agent runs its pre-flight.
    Preflight,
    /// The agent applies.
    Applying,
    /// The agent verifies.
    Verifying,
    /// Applied and verified; the host reported that it needs a reboot, the
    /// window allowed one, and a reboot job is out (in flight until it
    /// reports).
    Rebooting,
    /// Done, verified.
    Succeeded,
    /// Failed (pre-flight, apply, verification, or no report by the deadline).
    Failed,
    /// A rollback job is out.
    RollingBack,
    /// Rolled back to the recorded versions.
    RolledBack,
    /// The rollback failed too: a human must look.
    RollbackFailed,
    /// Not run (host offline, window closed, halted, aborted).
    Skipped,
}

impl JobState {
    /// Leased and not yet reported: counts against concurrency and budget.
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            Self::Leased | Self::Preflight | Self::Applying | Self::Verifying | Self::Rebooting
        )
    }
    /// Nothing more will happen to it.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded
                | Self::Failed
                | Self::RolledBack
                | Self::RollbackFailed
                | Self::Skipped
        )
    }
}

/// One host's job and what happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The plan.
    pub spec: JobSpec,
    /// Where it is.
    pub state: JobState,
    /// Whether the host's agent is reachable (as last observed).
    pub online: bool,
    /// When it was leased.
    pub leased_at: Option<Timestamp>,
    /// When it reached a terminal state (or failed, before a rollback).
    pub finished_at: Option<Timestamp>,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// Health before the job (from the agent's report).
    pub baseline: Vec<CheckSample>,
    /// Health after the job.
    pub after: Vec<CheckSample>,
    /// Whether it ran (a result was reported, success or not).
    pub ran: bool,
    /// Whether it failed (counts against the budget, also once rolled back).
    pub failed: bool,
    /// Something people should know about a job that did not fail (a reboot
    /// required but not done, and why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A gate decision, stored with its inputs and reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateDecision {
    /// When.
    pub at: Timestamp,
    /// Which gate: `success_rate`, `health`, `budget`, `soak`, `approval`.
    pub gate: String,
    /// Pass, fail or inconclusive.
    pub verdict: Verdict,
    /// Why, with the numbers.
    pub reason: String,
    /// The canary analysis, for the health gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryVerdict>,
}

/// A ring and its jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ring {
    /// Its rules.
    pub spec: RingSpec,
    /// Where it is.
    pub state: RingState,
    /// Its hosts' jobs.
    pub jobs: Vec<Job>,
    /// When its jobs all ended (soak runs from here).
    pub done_at: Option<Timestamp>,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// Gate decisions, in order.
    pub gates: Vec<GateDecision>,
    /// Samples of not-yet-patched hosts of the same group, for the canary.
    #[serde(default)]
    pub control: Vec<CheckSample>,
}

impl Ring {
    /// Failures so far (counting against the budget).
    pub fn failures(&self) -> usize {
        self.jobs.iter().filter(|j| j.failed).count()
    }
    /// Jobs in flight.
    pub fn in_flight(&self) -> usize {
        self.jobs.iter().filter(|j| j.state.in_flight()).count()
    }
}

/// A deployment in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// `DEP-…`.
    pub id: String,
    /// Who created it (may not approve it).
    pub created_by: String,
    /// Who started it (may not approve it either).
    pub started_by: Option<String>,
    /// Where it is.
    pub state: DeploymentState,
    /// Why it paused, halted or was aborted.
    pub reason: Option<String>,
    /// The rings, in order.
    pub rings: Vec<Ring>,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observation {
    /// An operator started the deployment.
    Start {
        /// Who.
        by: String,
    },
    /// An operator paused it.
    Pause {
        /// Who.
        by: String,
    },
    /// An operator resumed it.
    Resume {
        /// Who.
        by: String,
    },
    /// An operator aborted it.
    Abort {
        /// Who.
        by: String,
    },
    /// An operator asked to roll the whole deployment back.
    RollbackAll {
        /// Who.
        by: String,
    },
    /// A human approved a ring (four eyes: not the creator or starter).
    Approve {
        /// Ring index.
        ring: usize,
        /// Who.
        by: String,
    },
    /// A host's agent became reachable or unreachable.
    Online {
        /// Host.
        host: String,
        /// Reachable?
        online: bool,
    },
    /// The agent acknowledged a job and reported its step.
    Progress {
        /// Job key.
        key: String,
        /// Preflight, Applying or Verifying.
        state: JobState,
    },
    /// The agent reported a job's result.
    Result {
        /// Job key.
        key: String,
        /// Whether it succeeded.
        ok: bool,
        /// The failing step and message, when it failed.
        error: Option<String>,
        /// Health before.
        baseline: Vec<CheckSample>,
        /// Health after.
        after: Vec<CheckSample>,
        /// Whether the host needs a reboot now.
        #[serde(default)]
        reboot_required: bool,
    },
    /// The agent reported a reboot job's result.
    RebootResult {
        /// The job key the reboot completes.
        key: String,
        /// Whether the host rebooted (or needed none after all) and its
        /// checks pass.
        ok: bool,
        /// Why not.
        error: Option<String>,
        /// Health after the reboot, when reported.
        after: Vec<CheckSample>,
    },
    /// The agent reported a rollback's result.
    RollbackResult {
        /// Job key.
        key: String,
        /// Whether the host is back on its recorded versions.
        ok: bool,
        /// Why not.
        error: Option<String>,
    },
    /// Health of not-yet-patched hosts of a ring's group (control samples).
    Control {
        /// Ring index.
        ring: usize,
        /// Samples.
        samples: Vec<CheckSample>,
    },
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Command {
    /// Lease the job to its host's agent (deliver, signed).
    Lease {
        /// Ring index.
        ring: usize,
        /// Host.
        host: String,
        /// Job key.
        key: String,
        /// Report by then.
        deadline: Timestamp,
    },
    /// Send the host a reboot job for its key (it needs one after the job).
    Reboot {
        /// Ring index.
        ring: usize,
        /// Host.
        host: String,
        /// The job key the reboot completes.
        key: String,
    },
    /// Send the host a rollback job for its key (back to recorded versions).
    Rollback {
        /// Ring index.
        ring: usize,
        /// Host.
        host: String,
        /// The job key being rolled back.
        key: String,
    },
    /// Tell people (an event in the outbox).
    Notify {
        /// Event kind (`deployment.halted`, `deployment.ring_passed`, …).
        event: String,
        /// What happened.
        message: String,
    },
}

/// An observation the state machine refuses (the caller answers with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Rollout {
    /// A new deployment in `Draft`.
    pub fn new(id: &str, created_by: &str, rings: Vec<(RingSpec, Vec<JobSpec>)>) -> Self {
        Rollout {
            id: id.to_string(),
            created_by: created_by.to_string(),
            started_by: None,
            state: DeploymentState::Draft,
            reason: None,
            rings: rings
                .into_iter()
                .map(|(spec, jobs)| Ring {
                    spec,
                    state: RingState::Pending,
                    jobs: jobs
                        .into_iter()
                        .map(|spec| Job {
                            spec,
                            state: JobState::Pending,
                            online: true,
                            leased_at: None,
                            finished_at: None,
                            error: None,
                            baseline: vec![],
                            after: vec![],
                            ran: false,
                            failed: false,
                            note: None,
                        })
                        .collect(),
                    done_at: None,
                    approved_by: None,
                    gates: vec![],
                    control: vec![],
                })
                .collect(),
        }
    }

    /// Whether nothing more can happen: the deployment ended and every job
    /// is terminal (no job in flight still to report).
    pub fn is_settled(&self) -> bool {
        self.state.is_final()
            && self
                .rings
                .iter()
                .all(|r| r.jobs.iter().all(|j| j.state.is_terminal()))
    }

    fn find(&self, key: &str) -> Option<(usize, usize)> {
        self.rings.iter().enumerate().find_map(|(r, ring)| {
            ring.jobs
                .iter()
                .position(|j| j.spec.key == key)
                .map(|j| (r, j))
        })
    }

    /// Checks an observation without applying it: operator actions that do
    /// not fit the state, and approvals by the creator or starter, are refused.
    pub fn check(&self, obs: &Observation) -> Result<(), Refused> {
        use DeploymentState as D;
        let bad = |m: String| Err(Refused(m));
        match obs {
            Observation::Start { .. } if self.state != D::Draft => bad(format!(
                "{} is {:?}, not a draft: it cannot start",
                self.id, self.state
            )),
            Observation::Pause { .. } if self.state != D::Running => {
                bad(format!("{} is not running", self.id))
            }
            Observation::Resume { .. } if self.state != D::Paused => {
                bad(format!("{} is not paused", self.id))
            }
            Observation::Abort { .. } | Observation::RollbackAll { .. }
                if self.state.is_final() && self.state != D::Halted =>
            {
                bad(format!("{} has ended ({:?})", self.id, self.state))
            }
            Observation::Abort { .. } if self.state == D::Halted => {
                bad(format!("{} has halted already", self.id))
            }
            Observation::Approve { .. } if !matches!(self.state, D::Running | D::Paused) => {
                bad(format!(
                    "{} is {:?}: rings are approved while it runs",
                    self.id, self.state
                ))
            }
            Observation::Approve { ring, by } => {
                if *by == self.created_by || self.started_by.as_deref() == Some(by) {
                    return bad(format!(
                        "four eyes: {by} created or started {} and cannot approve it",
                        self.id
                    ));
                }
                match self.rings.get(*ring) {
                    None => bad(format!("{} has no ring {ring}", self.id)),
                    Some(r) if r.approved_by.is_some() => {
                        bad(format!("ring {} is approved already", r.spec.name))
                    }
                    Some(r) if matches!(r.state, RingState::Passed | RingState::Failed) => {
                        bad(format!("ring {} has ended", r.spec.name))
                    }
                    Some(_) => Ok(()),
                }
            }
            Observation::Progress { key, .. }
            | Observation::Result { key, .. }
            | Observation::RebootResult { key, .. }
            | Observation::RollbackResult { key, .. }
                if self.find(key).is_none() =>
            {
                bad(format!("{} has no job {key}", self.id))
            }
            _ => Ok(()),
        }
    }
}

/// Applies observations (each checked; refused ones are skipped) and then the
/// passage of time up to `now`; returns the commands to carry out, in order.
pub fn step(state: &mut Rollout, observations: &[Observation], now: Timestamp) -> Vec<Command> {
    let mut out = Vec::new();
    for obs in observations {
        if state.check(obs).is_ok() {
            apply(state, obs, now, &mut out);
        }
    }
    advance(state, now, &mut out);
    out
}

fn notify(out: &mut Vec<Command>, event: &str, message: String) {
    out.push(Command::Notify {
        event: event.into(),
        message,
    });
}

fn apply(st: &mut Rollout, obs: &Observation, now: Timestamp, out: &mut Vec<Command>) {
    match obs {
        Observation::Start { by } => {
            st.started_by = Some(by.clone());
            st.state = DeploymentState::Running;
            notify(
                out,
                "deployment.started",
                format!("{} started by {by}", st.id),
            );
        }
        Observation::Pause { by } => {
            st.state = DeploymentState::Paused;
            st.reason = Some(format!("paused by {by}"));
            notify(
                out,
                "deployment.paused",
                format!("{} paused by {by}", st.id),
            );
        }
        Observation::Resume { by } => {
            st.state = DeploymentState::Running;
            st.reason = None;
            notify(
                out,
                "deployment.resumed",
                format!("{} resumed by {by}", st.id),
            );
        }
        Observation::Abort { by } => {
            st.state = DeploymentState::Aborted;
            st.reason = Some(format!("aborted by {by}"));
            for ring in &mut st.rings {
                for j in &mut ring.jobs {
                    if j.state == JobState::Pending {
                        j.state = JobState::Skipped;
                        j.error = Some("aborted".into());
                        j.finished_at = Some(now);
                    }
                }
            }
            notify(
                out,
                "deployment.aborted",
                format!("{} aborted by {by}", st.id),
            );
        }
        Observation::RollbackAll { by } => {
            halt(
                st,
                now,
                format!("rollback of the whole deployment requested by {by}"),
                out,
            );
            for r in 0..st.rings.len() {
                roll_back(st, r, RollbackPolicy::Ring, now, out);
            }
        }
        Observation::Approve { ring, by } => {
            st.rings[*ring].approved_by = Some(by.clone());
        }
        Observation::Online { host, online } => {
            for ring in &mut st.rings {
                for j in ring.jobs.iter_mut().filter(|j| &j.spec.host == host) {
                    j.online = *online;
                }
            }
        }
        Observation::Progress { key, state } => {
            let Some((r, i)) = st.find(key) else { return };
            let j = &mut st.rings[r].jobs[i];
            // Only forward, and only while in flight (a late report of a job
            // that timed out does not revive it).
            if j.state.in_flight()
                && state.in_flight()
                && *state != JobState::Rebooting
                && j.state != JobState::Rebooting
                && *state as u8 > j.state as u8
            {
                j.state = *state;
            }
        }
        Observation::Result {
            key,
            ok,
            error,
            baseline,
            after,
            reboot_required,
        } => {
            let Some((r, i)) = st.find(key) else { return };
            let running = st.state == DeploymentState::Running;
            let reboot = st.rings[r].spec.reboot;
            let j = &mut st.rings[r].jobs[i];
            // One result per key: a re-sent result changes nothing (nor does
            // an apply result arriving while its reboot is out).
            if !j.state.in_flight() || j.state == JobState::Rebooting {
                return;
            }
            j.ran = true;
            j.baseline = baseline.clone();
            j.after = after.clone();
            j.finished_at = Some(now);
            if *ok && *reboot_required {
                // Reboot only when required, the deployment runs and the
                // host's window is still open; otherwise say why not.
                let why_not = if reboot == RebootPolicy::Never {
                    Some("the deployment does not reboot hosts")
                } else if !running {
                    Some("the deployment is no longer running")
                } else if !j.spec.open_at(now) {
                    Some("the host's window had closed")
                } else {
                    None
                };
                match why_not {
                    None => {
                        j.state = JobState::Rebooting;
                        // Not finished until the reboot reports.
                        j.finished_at = None;
                        // The reboot has the same time to report as the job.
                        j.leased_at = Some(now);
                        out.push(Command::Reboot {
                            ring: r,
                            host: j.spec.host.clone(),
                            key: j.spec.key.clone(),
                        });
                    }
                    Some(why) => {
                        j.state = JobState::Succeeded;
                        j.note = Some(format!("a reboot is required but was not done: {why}"));
                    }
                }
            } else if *ok {
                j.state = JobState::Succeeded;
            } else {
                j.state = JobState::Failed;
                j.failed = true;
                j.error = Some(error.clone().unwrap_or_else(|| "failed".into()));
                if st.state == DeploymentState::Halted {
                    // Halted already: this late failure is rolled back under
                    // the ring's policy too.
                    let policy = st.rings[r].spec.rollback;
                    if policy != RollbackPolicy::None {
                        roll_back_job(st, r, i, now, out);
                    }
                }
            }
        }
        Observation::RebootResult {
            key,
            ok,
            error,
            after,
        } => {
            let Some((r, i)) = st.find(key) else { return };
            let j = &mut st.rings[r].jobs[i];
            if j.state != JobState::Rebooting {
                return;
            }
            j.finished_at = Some(now);
            if !after.is_empty() {
                j.after = after.clone();
            }
            if *ok {
                j.state = JobState::Succeeded;
            } else {
                j.state = JobState::Failed;
                j.failed = true;
                j.error = Some(format!(
                    "reboot: {}",
                    error.clone().unwrap_or_else(|| "failed".into())
                ));
                if st.state == DeploymentState::Halted
                    && st.rings[r].spec.rollback != RollbackPolicy::None
                {
                    roll_back_job(st, r, i, now, out);
                }
            }
        }
        Observation::RollbackResult { key, ok, error } => {
            let Some((r, i)) = st.find(key) else { return };
            let j = &mut st.rings[r].jobs[i];
            if j.state != JobState::RollingBack {
                return;
            }
            if *ok {
                j.state = JobState::RolledBack;
            } else {
                j.state = JobState::RollbackFailed;
                j.error = Some(format!(
                    "rollback failed: {}",
                    error.clone().unwrap_or_default()
                ));
                notify(
                    out,
                    "deployment.rollback_failed",
                    format!(
                        "{}: rollback of {} failed: a human must look",
                        st.id, j.spec.host
                    ),
                );
            }
        }
        Observation::Control { ring, samples } => {
            if let Some(r) = st.rings.get_mut(*ring) {
                r.control = samples.clone();
            }
        }
    }
}

fn halt(st: &mut Rollout, now: Timestamp, reason: String, out: &mut Vec<Command>) {
    if st.state == DeploymentState::Halted {
        return;
    }
    st.state = DeploymentState::Halted;
    for ring in &mut st.rings {
        for j in &mut ring.jobs {
            if j.state == JobState::Pending {
                j.state = JobState::Skipped;
                j.error = Some("deployment halted".into());
                j.finished_at = Some(now);
            }
        }
    }
    notify(
        out,
        "deployment.halted",
        format!("{} halted: {reason}", st.id),
    );
    st.reason = Some(reason);
}

fn roll_back_job(st: &mut Rollout, r: usize, i: usize, now: Timestamp, out: &mut Vec<Command>) {
    let j = &mut st.rings[r].jobs[i];
    j.state = JobState::RollingBack;
    // The rollback has the same time to report as the job had.
    j.leased_at = Some(now);
    out.push(Command::Rollback {
        ring: r,
        host: j.spec.host.clone(),
        key: j.spec.key.clone(),
    });
}

fn roll_back(
    st: &mut Rollout,
    r: usize,
    policy: RollbackPolicy,
    now: Timestamp,
    out: &mut Vec<Command>,
) {
    for i in 0..st.rings[r].jobs.len() {
        let s = st.rings[r].jobs[i].state;
        let take = match policy {
            RollbackPolicy::None => false,
            RollbackPolicy::FailedHosts => s == JobState::Failed,
            RollbackPolicy::Ring => matches!(s, JobState::Failed | JobState::Succeeded),
        };
        if take {
            roll_back_job(st, r, i, now, out);
        }
    }
}

fn gate(ring: &mut Ring, now: Timestamp, gate: &str, verdict: Verdict, reason: String) {
    ring.gates.push(GateDecision {
        at: now,
        gate: gate.into(),
        verdict,
        reason,
        canary: None,
    });
}

/// Moves time forward: deadlines, windows, leasing, gates, soak, approvals.
fn advance(st: &mut Rollout, now: Timestamp, out: &mut Vec<Command>) {
    // Deadlines apply in every state: an agent that never reports is a
    // failure whether or not the deployment still runs.
    for r in 0..st.rings.len() {
        for i in 0..st.rings[r].jobs.len() {
            let j = &mut st.rings[r].jobs[i];
            let overdue = j.leased_at.is_some_and(|t| now >= t + j.spec.run_timeout);
            if j.state.in_flight() && overdue {
                j.error = Some(if j.state == JobState::Rebooting {
                    "no report of the reboot by its deadline".into()
                } else {
                    "no report from the agent by the job's deadline".into()
                });
                j.state = JobState::Failed;
                j.failed = true;
                j.finished_at = Some(now);
                if st.state == DeploymentState::Halted
                    && st.rings[r].spec.rollback != RollbackPolicy::None
                {
                    // The host may have applied: roll it back when it returns.
                    roll_back_job(st, r, i, now, out);
                }
            } else if j.state == JobState::RollingBack && overdue {
                j.state = JobState::RollbackFailed;
                j.error = Some("no report of the rollback by its deadline".into());
                let host = j.spec.host.clone();
                notify(
                    out,
                    "deployment.rollback_failed",
                    format!(
                        "{}: rollback of {host} not reported: a human must look",
                        st.id
                    ),
                );
            }
        }
    }
    // The hard budget: a ring whose failures exceed its budget halts the
    // deployment at once, paused or not.
    if matches!(st.state, DeploymentState::Running | DeploymentState::Paused) {
        for r in 0..st.rings.len() {
            let ring = &mut st.rings[r];
            let failures = ring.failures();
            if failures > ring.spec.error_budget {
                let reason = format!(
                    "ring {}: {failures} failure(s) exceed its error budget of {}",
                    ring.spec.name, ring.spec.error_budget
                );
                gate(ring, now, "budget", Verdict::Fail, reason.clone());
                ring.state = RingState::Failed;
                let policy = ring.spec.rollback;
                halt(st, now, reason, out);
                roll_back(st, r, policy, now, out);
                return;
            }
        }
    }
    if st.state != DeploymentState::Running {
        return;
    }
    for r in 0..st.rings.len() {
        match st.rings[r].state {
            RingState::Passed => continue,
            RingState::Failed => return,
            RingState::Pending => {
                st.rings[r].state = RingState::WaitingWindow;
            }
            _ => {}
        }
        advance_ring(st, r, now, out);
        if st.state != DeploymentState::Running {
            return;
        }
        // Rule 1: the next ring starts only once this one passed.
        if st.rings[r].state != RingState::Passed {
            return;
        }
        notify(
            out,
            "deployment.ring_passed",
            format!("{}: ring {} passed", st.id, st.rings[r].spec.name),
        );
    }
    if st.rings.iter().all(|r| r.state == RingState::Passed) {
        st.state = DeploymentState::Completed;
        st.reason = None;
        notify(out, "deployment.completed", format!("{} completed", st.id));
    }
}

fn advance_ring(st: &mut Rollout, r: usize, now: Timestamp, out: &mut Vec<Command>) {
    let ring = &mut st.rings[r];
    if matches!(ring.state, RingState::WaitingWindow | RingState::Running) {
        // Pending jobs whose window has closed, or whose host is offline when
        // it closes, are skipped (reported, not counted).
        for j in &mut ring.jobs {
            if j.state == JobState::Pending && j.spec.next_open(now).is_none() {
                j.state = JobState::Skipped;
                j.finished_at = Some(now);
                j.error = Some(if j.online && !j.spec.slots.is_empty() {
                    "the host's maintenance windows closed before its job could start".into()
                } else if j.online {
                    "the window closed before the job could start".into()
                } else {
                    "host offline until the window closed".into()
                });
            }
        }
        // Lease within concurrency and the hard budget cap, in plan order.
        let cap = ring.spec.error_budget + 1;
        let mut leased_any = false;
        for i in 0..ring.jobs.len() {
            let in_flight = ring.in_flight();
            if in_flight >= ring.spec.max_concurrent.max(1) || ring.failures() + in_flight >= cap {
                break;
            }
            let j = &mut ring.jobs[i];
            if j.state != JobState::Pending || !j.online || !j.spec.open_at(now) {
                continue;
            }
            j.state = JobState::Leased;
            j.leased_at = Some(now);
            leased_any = true;
            out.push(Command::Lease {
                ring: r,
                host: j.spec.host.clone(),
                key: j.spec.key.clone(),
                deadline: now + j.spec.run_timeout,
            });
        }
        let started = ring.jobs.iter().any(|j| j.state != JobState::Pending);
        if leased_any || started {
            ring.state = RingState::Running;
        }
        if ring.jobs.iter().all(|j| j.state.is_terminal()) {
            ring.done_at = Some(
                ring.jobs
                    .iter()
                    .filter_map(|j| j.finished_at)
                    .max()
                    .unwrap_or(now),
            );
            // Gates: success rate, then health.
            let ran = ring.jobs.iter().filter(|j| j.ran).count();
            let ok = ring
                .jobs
                .iter()
                .filter(|j| j.state == JobState::Succeeded)
                .count();
            let rate = if ran == 0 {
                0.0
            } else {
                ok as f64 / ran as f64
            };
            if ran == 0 {
                // Nothing to judge: a human decides, as for inconclusive health.
                let reason = format!(
                    "ring {}: no job ran (all skipped); approve the ring to go on, or abort",
                    ring.spec.name
                );
                gate(
                    ring,
                    now,
                    "success_rate",
                    Verdict::Inconclusive,
                    reason.clone(),
                );
                ring.state = RingState::Soaking;
                if ring.approved_by.is_none() {
                    pause(st, reason, out);
                }
                return;
            }
            if rate + 1e-12 < ring.spec.success_threshold {
                let reason = format!(
                    "ring {}: success rate {ok}/{ran} = {:.1} % below the threshold of {:.1} %",
                    ring.spec.name,
                    rate * 100.0,
                    ring.spec.success_threshold * 100.0
                );
                gate(ring, now, "success_rate", Verdict::Fail, reason.clone());
                ring.state = RingState::Failed;
                let policy = ring.spec.rollback;
                halt(st, now, reason, out);
                roll_back(st, r, policy, now, out);
                return;
            }
            gate(
                ring,
                now,
                "success_rate",
                Verdict::Pass,
                format!(
                    "{ok}/{ran} = {:.1} % ≥ {:.1} %",
                    rate * 100.0,
                    ring.spec.success_threshold * 100.0
                ),
            );
            let input = CanaryInput {
                baseline: ring
                    .jobs
                    .iter()
                    .filter(|j| j.state == JobState::Succeeded)
                    .flat_map(|j| j.baseline.clone())
                    .collect(),
                after: ring
                    .jobs
                    .iter()
                    .filter(|j| j.state == JobState::Succeeded)
                    .flat_map(|j| j.after.clone())
                    .collect(),
                control: ring.control.clone(),
                hosts: ok,
            };
            let v = canary::judge(&input);
            ring.gates.push(GateDecision {
                at: now,
                gate: "health".into(),
                verdict: v.verdict,
                reason: v.reason.clone(),
                canary: Some(v.clone()),
            });
            match v.verdict {
                Verdict::Pass => ring.state = RingState::Soaking,
                Verdict::Fail => {
                    let reason = format!("ring {}: health worse: {}", ring.spec.name, v.reason);
                    ring.state = RingState::Failed;
                    let policy = ring.spec.rollback;
                    halt(st, now, reason, out);
                    roll_back(st, r, policy, now, out);
                    return;
                }
                Verdict::Inconclusive => {
                    // A human decides: the ring soaks, then needs an approval
                    // (never by the creator or starter) to pass.
                    ring.state = RingState::Soaking;
                    if ring.approved_by.is_none() {
                        let reason = format!(
                            "ring {}: health inconclusive ({}); approve the ring to accept it, or abort",
                            ring.spec.name, v.reason
                        );
                        pause(st, reason, out);
                        return;
                    }
                }
            }
        }
    }
    let ring = &mut st.rings[r];
    if ring.state == RingState::Soaking {
        let done = ring.done_at.unwrap_or(now);
        if now < done + ring.spec.soak {
            return;
        }
        gate(
            ring,
            now,
            "soak",
            Verdict::Pass,
            format!("soaked {} since the last job", ring.spec.soak),
        );
        ring.state = RingState::AwaitingApproval;
    }
    if ring.state == RingState::AwaitingApproval {
        let inconclusive = ring
            .gates
            .iter()
            .any(|g| g.verdict == Verdict::Inconclusive);
        if (ring.spec.approval || inconclusive) && ring.approved_by.is_none() {
            return;
        }
        if let Some(by) = &ring.approved_by {
            let by = by.clone();
            gate(
                ring,
                now,
                "approval",
                Verdict::Pass,
                format!("approved by {by}"),
            );
        }
        ring.state = RingState::Passed;
    }
}

fn pause(st: &mut Rollout, reason: String, out: &mut Vec<Command>) {
    st.state = DeploymentState::Paused;
    notify(out, "deployment.paused", format!("{}: {reason}", st.id));
    st.reason = Some(reason);
}
