//! Rehearsals on the server side (issue 18, ADR 0018, `docs/rehearsal.md`):
//! the rehearsal gate of rings that require one, and on-demand rehearsals of
//! a deployment (`patchbay deploy rehearse DEP`).
//!
//! # The gate
//! A ring with `require_rehearsal` holds its applies. When the state machine
//! leases a job of such a ring, the driver does not hand the apply to the
//! agent: it records the lease as *held* ([`Gate::hold`]) and gives every
//! host of the ring a `rehearse` job (`DEP/rehearse/gate/HOST`, the host's
//! exact pins). A held apply is released — leased to the agent, with the
//! deadline the state machine gave it — once **every** host of its ring has
//! reported its rehearsal and its own host's passed. A host whose rehearsal
//! failed (or was refused) never gets its apply: its job is reported to the
//! state machine as failed (`rehearsal failed: STEP: MESSAGE`), a pre-flight
//! failure like any other, so the ring's error budget decides whether the
//! ring halts (design notes, "Counting failures"); its rollback, if the
//! policy orders one, has nothing to undo and is answered at once instead of
//! being sent. A rehearsal counts against its job's run timeout (the state
//! machine's deadline runs from the lease).
//!
//! The gate lives in the stored rollout ([`crate::deployments::StoredRollout`]),
//! written in the driver's step transaction with the jobs it leases; the
//! rehearsals' results are agent job rows like every other job's, per host
//! per deployment.

use crate::deployments::StoredRollout;
use crate::{App, AppError, Caller, RequestCtx, fmt_ts};
use jiff::Timestamp;
use patchbay_core::auth::Action;
use patchbay_core::job::{Job, JobKind};
use patchbay_core::rollout::{JobState, Observation, RingState, Rollout};
use patchbay_proto::agent::{JobOutcome, JobResult};
use patchbay_proto::api::{RehearsalOut, RehearsalsOut};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// The key of a host's gate rehearsal.
pub fn gate_key(deployment: &str, host: &str) -> String {
    format!("{deployment}/rehearse/gate/{host}")
}

/// The key of an on-demand rehearsal (run `n`).
pub fn run_key(deployment: &str, n: u32, host: &str) -> String {
    format!("{deployment}/rehearse/{n}/{host}")
}

/// Whether `key` is a rehearsal's (gate or on demand).
pub fn is_rehearsal(key: &str) -> bool {
    key.contains("/rehearse/")
}

/// A gate rehearsal's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Leased, not reported yet.
    Asked,
    /// The rehearsal passed.
    Passed,
    /// It failed (or was refused): why.
    Failed {
        /// `STEP: MESSAGE`.
        reason: String,
    },
}

/// An apply the state machine leased and the gate holds back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Ring index.
    pub ring: usize,
    /// Host.
    pub host: String,
    /// The deadline the state machine gave the job.
    pub deadline: Timestamp,
}

/// The rehearsal gate of one deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// Rings (by index) that require a passing rehearsal.
    #[serde(default)]
    pub rings: BTreeSet<usize>,
    /// Per host: its gate rehearsal's verdict.
    #[serde(default)]
    pub hosts: BTreeMap<String, Verdict>,
    /// Held applies, by job key.
    #[serde(default)]
    pub held: BTreeMap<String, Held>,
    /// Job keys whose apply was never leased (their host's rehearsal failed).
    #[serde(default)]
    pub never_applied: BTreeSet<String>,
    /// Observations for the state machine's next step (failed jobs, answered
    /// rollbacks).
    #[serde(default)]
    pub pending: Vec<Observation>,
    /// On-demand rehearsal runs so far.
    #[serde(default)]
    pub runs: u32,
}

impl Gate {
    /// A gate for these rings.
    pub fn new(rings: BTreeSet<usize>) -> Gate {
        Gate {
            rings,
            ..Gate::default()
        }
    }

    /// Whether ring `ring` requires a passing rehearsal.
    pub fn requires(&self, ring: usize) -> bool {
        self.rings.contains(&ring)
    }

    /// Holds the apply `key` the state machine leased.
    pub fn hold(&mut self, key: &str, ring: usize, host: &str, deadline: Timestamp) {
        self.held.insert(
            key.to_owned(),
            Held {
                ring,
                host: host.to_owned(),
                deadline,
            },
        );
    }

    /// A rollback of `key`: `true` when its apply was never leased (the
    /// rollback is answered at the next step, nothing is sent).
    pub fn absorb_rollback(&mut self, key: &str) -> bool {
        if !self.never_applied.contains(key) {
            return false;
        }
        self.pending.push(Observation::RollbackResult {
            key: key.to_owned(),
            ok: true,
            error: None,
        });
        true
    }

    /// Takes in the result of host `host`'s gate rehearsal; returns the
    /// verdict when it is new.
    pub fn take_result(&mut self, host: &str, r: &JobResult) -> Option<Verdict> {
        let v = verdict_of(r);
        match self.hosts.get(host) {
            Some(Verdict::Asked) | None => {
                self.hosts.insert(host.to_owned(), v.clone());
                Some(v)
            }
            Some(_) => None,
        }
    }

    /// Hosts of gated rings that need a rehearsal now: those of every gated
    /// ring that is running, not asked yet.
    pub fn to_ask(&self, rollout: &Rollout) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for &r in &self.rings {
            let Some(ring) = rollout.rings.get(r) else {
                continue;
            };
            let held_here = self.held.values().any(|h| h.ring == r);
            if ring.state != RingState::Running && !held_here {
                continue;
            }
            for j in &ring.jobs {
                if !self.hosts.contains_key(&j.spec.host) {
                    out.push((r, j.spec.host.clone()));
                }
            }
        }
        out
    }

    /// Marks `host` asked.
    pub fn asked(&mut self, host: &str) {
        self.hosts.insert(host.to_owned(), Verdict::Asked);
    }

    /// Decides the held applies: returns those to lease now (their ring's
    /// rehearsals all reported, their host's passed); a held apply whose host
    /// failed becomes a failed job at the next step and is never leased; one
    /// the state machine no longer waits for (timed out, aborted) is dropped.
    pub fn release(&mut self, rollout: &Rollout) -> Vec<(String, Held)> {
        let mut out = Vec::new();
        let keys: Vec<String> = self.held.keys().cloned().collect();
        for key in keys {
            let h = self.held[&key].clone();
            let waiting = rollout
                .rings
                .get(h.ring)
                .and_then(|r| r.jobs.iter().find(|j| j.spec.key == key))
                .is_some_and(|j| j.state == JobState::Leased);
            if !waiting {
                self.held.remove(&key);
                continue;
            }
            match self.hosts.get(&h.host) {
                Some(Verdict::Failed { reason }) => {
                    self.pending.push(Observation::Result {
                        key: key.clone(),
                        ok: false,
                        error: Some(format!("rehearsal failed: {reason}")),
                        baseline: vec![],
                        after: vec![],
                        reboot_required: false,
                    });
                    self.never_applied.insert(key.clone());
                    self.held.remove(&key);
                }
                Some(Verdict::Passed) => {
                    let ring_done = rollout.rings[h.ring].jobs.iter().all(|j| {
                        matches!(
                            self.hosts.get(&j.spec.host),
                            Some(Verdict::Passed | Verdict::Failed { .. })
                        )
                    });
                    if ring_done {
                        self.held.remove(&key);
                        out.push((key, h));
                    }
                }
                _ => {}
            }
        }
        out
    }
}

/// A rehearsal result's verdict.
pub fn verdict_of(r: &JobResult) -> Verdict {
    if r.outcome == JobOutcome::Succeeded {
        return Verdict::Passed;
    }
    let reason = match (&r.refusal, &r.step, &r.message) {
        (Some(code), _, m) => format!("refused ({code}): {}", m.as_deref().unwrap_or("")),
        (None, Some(s), Some(m)) => format!("{s}: {m}"),
        (None, Some(s), None) => s.clone(),
        (None, None, Some(m)) => m.clone(),
        (None, None, None) => "failed".into(),
    };
    Verdict::Failed { reason }
}

impl App {
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
                .map_or(crate::deployments::DEFAULT_JOB_TIMEOUT, |j| {
                    j.spec.run_timeout
                });
            let job = Job {
                deployment: id.clone(),
                key: gate_key(&id, &host),
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
        if key != gate_key(&id, asset) {
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
        });
        if let Some(v) = stored.gate.take_result(asset, &res) {
            let (action, reason) = match &v {
                Verdict::Failed { reason } => ("deployment.rehearsal_failed", Some(reason.clone())),
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

    /// Runs a rehearsal now on every host of deployment `id` (its exact
    /// pins), whatever its state: `rehearse` jobs `DEP/rehearse/N/HOST`.
    /// Read-only on the hosts; audited (`deployment.rehearse`).
    pub async fn deploy_rehearse(
        &self,
        caller: &Caller,
        id: &str,
        ctx: &RequestCtx,
    ) -> Result<RehearsalsOut, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let now = self.now();
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        let row = tx
            .lock_rollout(id, false)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no deployment {id}")))?;
        let mut stored = crate::deployments::stored_of(&row)?;
        stored.gate.runs += 1;
        let n = stored.gate.runs;
        let mut hosts = Vec::new();
        for ring in &stored.rollout.rings {
            for j in &ring.jobs {
                let job = Job {
                    deployment: id.to_owned(),
                    key: run_key(id, n, &j.spec.host),
                    asset: j.spec.host.clone(),
                    not_before: now,
                    deadline: now + j.spec.run_timeout,
                    kind: JobKind::Rehearse {
                        packages: stored.pins.get(&j.spec.host).cloned().unwrap_or_default(),
                    },
                    checks: vec![],
                };
                self.lease_job(&mut tx, job, now).await?;
                hosts.push(j.spec.host.clone());
            }
        }
        tx.audit(
            "deployment.rehearse",
            &format!("deployment:{id}"),
            json!({"run": n, "hosts": hosts}),
        )
        .await?;
        tx.put_rollout(&crate::deployments::rollout_row(&stored, now)?)
            .await?;
        tx.commit().await?;
        self.job_bell.notify_waiters();
        let mut out = self.deploy_rehearsals(caller, id, ctx).await?;
        out.run = Some(n);
        Ok(out)
    }

    /// Every rehearsal of deployment `id` (gate and on demand), newest run
    /// first, with its result when reported.
    pub async fn deploy_rehearsals(
        &self,
        caller: &Caller,
        id: &str,
        ctx: &RequestCtx,
    ) -> Result<RehearsalsOut, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut tx = self.store.read().await?;
        if tx.rollout(id).await?.is_none() {
            return Err(AppError::not_found(format!("no deployment {id}")));
        }
        let mut rehearsals: Vec<RehearsalOut> = tx
            .jobs_of(id)
            .await?
            .into_iter()
            .filter(|j| is_rehearsal(&j.key))
            .map(|j| {
                let run = j
                    .key
                    .rsplit_once('/')
                    .and_then(|(head, _)| head.rsplit_once('/'))
                    .map(|(_, r)| r.to_owned())
                    .unwrap_or_default();
                let packages = serde_json::from_value::<patchbay_core::job::SignedJob>(j.job)
                    .ok()
                    .and_then(|s| match s.job.kind {
                        JobKind::Rehearse { packages } => Some(packages),
                        _ => None,
                    })
                    .unwrap_or_default();
                let result = j.result.and_then(|v| JobResult::deserialize(&v).ok());
                let status = match &result {
                    None => "pending",
                    Some(r) if r.outcome == JobOutcome::Succeeded => "passed",
                    Some(_) => "failed",
                };
                RehearsalOut {
                    key: j.key,
                    host: j.asset,
                    run,
                    packages,
                    status: status.into(),
                    leased_at: fmt_ts(j.leased_at),
                    result_at: j.result_at.map(fmt_ts),
                    step: result.as_ref().and_then(|r| r.step.clone()),
                    message: result.as_ref().and_then(|r| r.message.clone()),
                    rehearsal: result.and_then(|r| r.rehearsal),
                }
            })
            .collect();
        rehearsals.sort_by(|a, b| {
            let n = |r: &RehearsalOut| r.run.parse::<u32>().unwrap_or(0);
            n(b).cmp(&n(a)).then(a.host.cmp(&b.host))
        });
        Ok(RehearsalsOut {
            deployment: id.to_owned(),
            run: None,
            rehearsals,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchbay_core::rollout::{JobSpec, RingSpec, RollbackPolicy};

    fn stored(hosts: &[&str]) -> StoredRollout {
        let t: Timestamp = "2026-12-08T22:00:00Z".parse().unwrap();
        let spec = RingSpec {
            name: "canary".into(),
            max_concurrent: 1,
            error_budget: 0,
            success_threshold: 0.95,
            soak: jiff::SignedDuration::ZERO,
            approval: false,
            rollback: RollbackPolicy::FailedHosts,
            reboot: Default::default(),
        };
        let jobs = hosts
            .iter()
            .map(|h| JobSpec {
                host: (*h).into(),
                key: format!("DEP-X/{h}"),
                not_before: t,
                cutoff: t + jiff::SignedDuration::from_hours(1),
                run_timeout: jiff::SignedDuration::from_mins(30),
                slots: vec![],
            })
            .collect();
        let mut r = Rollout::new("DEP-X", "me", vec![(spec, jobs)]);
        r.rings[0].state = RingState::Running;
        StoredRollout {
            rollout: r,
            pins: BTreeMap::new(),
            checks: vec![],
            ring_checks: vec![],
            control_asked: BTreeSet::new(),
            gate: Gate::new([0].into()),
            created_at: t,
        }
    }

    fn res(ok: bool) -> JobResult {
        JobResult {
            key: "k".into(),
            outcome: if ok {
                JobOutcome::Succeeded
            } else {
                JobOutcome::Failed
            },
            step: (!ok).then(|| "rehearse.apply".into()),
            message: (!ok).then(|| "pb-demo postinst exited with 7".into()),
            refusal: None,
            baseline: vec![],
            after: vec![],
            changed: vec![],
            reboot_required: false,
            finished_at: String::new(),
            rehearsal: None,
        }
    }

    #[test]
    fn no_apply_leaves_before_every_rehearsal_reported_and_a_failed_host_never_gets_one() {
        let t: Timestamp = "2026-12-08T22:10:00Z".parse().unwrap();
        let mut s = stored(&["a", "b"]);
        assert_eq!(
            s.gate.to_ask(&s.rollout),
            vec![(0, "a".into()), (0, "b".into())]
        );
        let mut g = s.gate.clone();
        g.asked("a");
        g.asked("b");
        assert!(g.to_ask(&s.rollout).is_empty());
        s.rollout.rings[0].jobs[0].state = JobState::Leased;
        g.hold("DEP-X/a", 0, "a", t);
        // Nothing reported: held.
        assert!(g.release(&s.rollout).is_empty());
        // a passed, b not yet: still held (the ring has not reported whole).
        assert_eq!(g.take_result("a", &res(true)), Some(Verdict::Passed));
        assert!(g.release(&s.rollout).is_empty());
        assert_eq!(g.held.len(), 1);
        // b failed: a's apply goes; b's never will.
        assert!(matches!(
            g.take_result("b", &res(false)),
            Some(Verdict::Failed { .. })
        ));
        assert_eq!(g.take_result("b", &res(true)), None, "a verdict is final");
        let out = g.release(&s.rollout);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "DEP-X/a");
        // The state machine leases b: the gate fails it instead of sending it.
        s.rollout.rings[0].jobs[1].state = JobState::Leased;
        g.hold("DEP-X/b", 0, "b", t);
        assert!(g.release(&s.rollout).is_empty());
        assert!(g.held.is_empty());
        match &g.pending[..] {
            [
                Observation::Result {
                    key,
                    ok: false,
                    error: Some(e),
                    ..
                },
            ] => {
                assert_eq!(key, "DEP-X/b");
                assert!(
                    e.contains("rehearsal failed: rehearse.apply: pb-demo postinst"),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
        // Its rollback has nothing to undo; a's would be sent.
        assert!(g.absorb_rollback("DEP-X/b"));
        assert!(!g.absorb_rollback("DEP-X/a"));
    }

    #[test]
    fn a_held_apply_the_state_machine_gave_up_is_dropped() {
        let t: Timestamp = "2026-12-08T22:10:00Z".parse().unwrap();
        let mut s = stored(&["a"]);
        let mut g = s.gate.clone();
        g.hold("DEP-X/a", 0, "a", t);
        s.rollout.rings[0].jobs[0].state = JobState::Failed;
        g.take_result("a", &res(true));
        assert!(g.release(&s.rollout).is_empty());
        assert!(g.held.is_empty());
    }
}
