//! The rehearsal gate's pure part: which rings require a rehearsal, each
//! host's verdict, the applies held back, and the observations it owes the
//! state machine. No IO; [`crate::rehearsals`] carries its decisions out (see
//! there for the rules).

use jiff::Timestamp;
use patchbay_core::rollout::{JobState, Observation, RingState, Rollout};
use patchbay_proto::agent::{JobOutcome, JobResult};
use serde::{Deserialize, Serialize};
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
                    // Every host of the ring decided — or unreachable or
                    // skipped: an offline host's rehearsal must not hold
                    // the others' applies until their deadlines.
                    let ring_done = rollout.rings[h.ring].jobs.iter().all(|j| {
                        matches!(
                            self.hosts.get(&j.spec.host),
                            Some(Verdict::Passed | Verdict::Failed { .. })
                        ) || !j.online
                            || j.state == JobState::Skipped
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

/// The rehearsals among a deployment's job rows, newest run first (then by
/// host), each with its result when reported.
pub(crate) fn rehearsals_of(
    jobs: Vec<patchbay_store::AgentJobRow>,
) -> Vec<patchbay_proto::api::RehearsalOut> {
    use patchbay_core::job::JobKind;
    use patchbay_proto::agent::{JobOutcome, JobResult};
    use patchbay_proto::api::RehearsalOut;
    use serde::Deserialize;
    let mut rehearsals: Vec<RehearsalOut> = jobs
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
                leased_at: crate::fmt_ts(j.leased_at),
                result_at: j.result_at.map(crate::fmt_ts),
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
    rehearsals
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchbay_core::rollout::{JobSpec, RingSpec, RollbackPolicy};

    struct StoredRollout {
        rollout: Rollout,
        gate: Gate,
    }

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
            gate: Gate::new([0].into()),
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
            privilege: vec![],
            snapshot: None,
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
    fn an_offline_host_does_not_hold_the_ring() {
        let t: Timestamp = "2026-12-08T22:10:00Z".parse().unwrap();
        let mut s = stored(&["a", "b"]);
        for j in &mut s.rollout.rings[0].jobs {
            j.online = true;
        }
        let mut g = s.gate.clone();
        g.asked("a");
        g.asked("b");
        s.rollout.rings[0].jobs[0].state = JobState::Leased;
        g.hold("DEP-X/a", 0, "a", t);
        g.take_result("a", &res(true));
        assert!(
            g.release(&s.rollout).is_empty(),
            "b is online and has not reported"
        );
        s.rollout.rings[0].jobs[1].online = false;
        assert_eq!(g.release(&s.rollout).len(), 1);
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
