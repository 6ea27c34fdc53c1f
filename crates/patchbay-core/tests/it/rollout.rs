//! The rollout state machine: worked examples (a good rollout passes every
//! ring, a bad one halts in the first ring within its budget and rolls the
//! failed hosts back, the hard cap), and property tests of the rules in
//! `../shared/design/rollout-and-agent.md` over random deployments and random
//! histories (agents succeeding, failing, going silent and offline; operators
//! pausing, resuming, aborting, approving, rolling back).

use jiff::{SignedDuration, Timestamp};
use patchbay_core::canary::{CheckSample, Verdict};
use patchbay_core::rollout::{
    Command, DeploymentState, JobSpec, JobState, Observation, RebootPolicy, RingSpec, RingState,
    RollbackPolicy, Rollout, Slot, step,
};
use proptest::prelude::*;

fn t0() -> Timestamp {
    "2026-12-08T22:00:00Z".parse().unwrap()
}

fn mins(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

fn ring(name: &str, conc: usize, budget: usize) -> RingSpec {
    RingSpec {
        name: name.into(),
        max_concurrent: conc,
        error_budget: budget,
        success_threshold: 0.95,
        soak: mins(30),
        approval: false,
        rollback: RollbackPolicy::FailedHosts,
        reboot: RebootPolicy::IfRequired,
    }
}

fn jobs(prefix: &str, n: usize) -> Vec<JobSpec> {
    (0..n)
        .map(|i| JobSpec {
            host: format!("{prefix}-{i}"),
            key: format!("DEP-2026-12-001/{prefix}-{i}"),
            not_before: t0(),
            cutoff: t0() + SignedDuration::from_hours(4),
            run_timeout: mins(30),
            slots: vec![],
        })
        .collect()
}

fn health(host: &str, pass: bool) -> Vec<CheckSample> {
    vec![CheckSample {
        host: host.into(),
        check: "web".into(),
        pass,
        value: None,
        critical: false,
    }]
}

fn leases(cmds: &[Command]) -> Vec<String> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Lease { key, .. } => Some(key.clone()),
            _ => None,
        })
        .collect()
}

fn result(key: &str, ok: bool) -> Observation {
    let host = key.rsplit('/').next().unwrap();
    Observation::Result {
        key: key.into(),
        ok,
        error: (!ok).then(|| "verify.health: web failed".into()),
        baseline: health(host, true),
        after: health(host, ok),
        reboot_required: false,
    }
}

/// 1 canary, 2 pilot, 2 broad — the acceptance test's shape.
fn five_hosts() -> Rollout {
    Rollout::new(
        "DEP-2026-12-001",
        "token:2:ops",
        vec![
            (ring("ring0-canary", 1, 0), jobs("canary", 1)),
            (ring("ring1-pilot", 2, 0), jobs("pilot", 2)),
            (ring("ring2-broad", 2, 1), jobs("broad", 2)),
        ],
    )
}

#[test]
fn a_good_rollout_passes_every_ring_with_recorded_verdicts() {
    let mut d = five_hosts();
    let mut now = t0();
    let mut cmds = step(
        &mut d,
        &[Observation::Start {
            by: "token:2:ops".into(),
        }],
        now,
    );
    let mut leased_order = vec![];
    for _ in 0..100 {
        leased_order.extend(leases(&cmds));
        // Every agent reports five minutes after its lease.
        let obs: Vec<Observation> = d
            .rings
            .iter()
            .flat_map(|r| r.jobs.iter())
            .filter(|j| j.state.in_flight())
            .map(|j| result(&j.spec.key, true))
            .collect();
        now += mins(5);
        cmds = step(&mut d, &obs, now);
        if d.state == DeploymentState::Completed {
            break;
        }
    }
    assert_eq!(d.state, DeploymentState::Completed, "{:?}", d.reason);
    assert_eq!(leased_order.len(), 5);
    assert!(leased_order[0].ends_with("canary-0"));
    for r in &d.rings {
        assert_eq!(r.state, RingState::Passed);
        let gates: Vec<(&str, Verdict)> = r
            .gates
            .iter()
            .map(|g| (g.gate.as_str(), g.verdict))
            .collect();
        assert_eq!(
            gates,
            vec![
                ("success_rate", Verdict::Pass),
                ("health", Verdict::Pass),
                ("soak", Verdict::Pass)
            ],
            "{}",
            r.spec.name
        );
    }
}

#[test]
fn a_bad_rollout_halts_in_the_first_ring_and_rolls_the_failed_host_back() {
    let mut d = five_hosts();
    let now = t0();
    let cmds = step(
        &mut d,
        &[Observation::Start {
            by: "token:2:ops".into(),
        }],
        now,
    );
    let keys = leases(&cmds);
    assert_eq!(keys, vec!["DEP-2026-12-001/canary-0".to_string()]);
    let cmds = step(&mut d, &[result(&keys[0], false)], now + mins(5));
    assert_eq!(d.state, DeploymentState::Halted);
    assert!(
        d.reason.as_deref().unwrap().contains("error budget"),
        "{:?}",
        d.reason
    );
    assert!(leases(&cmds).is_empty());
    assert!(cmds.contains(&Command::Rollback {
        ring: 0,
        host: "canary-0".into(),
        key: keys[0].clone()
    }));
    // Later rings never got a job, and their jobs are skipped.
    for r in &d.rings[1..] {
        assert!(r.jobs.iter().all(|j| j.state == JobState::Skipped));
        assert_eq!(r.state, RingState::Pending);
    }
    // The rollback reports; nothing else is ever leased.
    let cmds = step(
        &mut d,
        &[Observation::RollbackResult {
            key: keys[0].clone(),
            ok: true,
            error: None,
        }],
        now + mins(10),
    );
    assert!(leases(&cmds).is_empty());
    assert_eq!(d.rings[0].jobs[0].state, JobState::RolledBack);
    let cmds = step(&mut d, &[], now + SignedDuration::from_hours(48));
    assert!(leases(&cmds).is_empty());
}

#[test]
fn in_flight_jobs_can_never_overshoot_the_budget() {
    // Ten hosts, five at a time, two failures tolerated: at most three jobs
    // may ever fail, however the agents answer.
    let mut d = Rollout::new(
        "DEP-2026-12-002",
        "token:2:ops",
        vec![(ring("broad", 5, 2), jobs("h", 10))],
    );
    let mut now = t0();
    let mut cmds = step(&mut d, &[Observation::Start { by: "ops".into() }], now);
    let mut leased = 0;
    for _ in 0..10 {
        let keys = leases(&cmds);
        leased += keys.len();
        assert!(d.rings[0].failures() + d.rings[0].in_flight() <= 3);
        now += mins(5);
        cmds = step(
            &mut d,
            &keys.iter().map(|k| result(k, false)).collect::<Vec<_>>(),
            now,
        );
    }
    assert_eq!(d.state, DeploymentState::Halted);
    assert_eq!(leased, 3, "budget 2 + the one that exhausts it");
    assert_eq!(d.rings[0].failures(), 3);
}

#[test]
fn budget_zero_is_one_host_at_a_time() {
    let mut d = Rollout::new(
        "DEP-2026-12-003",
        "ops",
        vec![(ring("r", 10, 0), jobs("h", 4))],
    );
    let mut now = t0();
    let mut cmds = step(&mut d, &[Observation::Start { by: "ops".into() }], now);
    for _ in 0..4 {
        let keys = leases(&cmds);
        assert_eq!(keys.len(), 1);
        now += mins(5);
        cmds = step(&mut d, &[result(&keys[0], true)], now);
    }
    assert!(
        d.rings[0]
            .jobs
            .iter()
            .all(|j| j.state == JobState::Succeeded)
    );
}

#[test]
fn an_agent_that_never_reports_fails_at_its_deadline_and_a_late_result_counts_once() {
    let mut d = Rollout::new(
        "DEP-2026-12-004",
        "ops",
        vec![(ring("r", 1, 1), jobs("h", 2))],
    );
    let cmds = step(&mut d, &[Observation::Start { by: "ops".into() }], t0());
    let k = leases(&cmds)[0].clone();
    step(&mut d, &[], t0() + mins(30));
    assert_eq!(d.rings[0].jobs[0].state, JobState::Failed);
    assert_eq!(d.rings[0].failures(), 1);
    // The agent comes back with a success: the job stays failed, counted once.
    step(&mut d, &[result(&k, true)], t0() + mins(40));
    assert_eq!(d.rings[0].jobs[0].state, JobState::Failed);
    assert_eq!(d.rings[0].failures(), 1);
}

#[test]
fn offline_hosts_are_skipped_not_counted() {
    let mut d = Rollout::new(
        "DEP-2026-12-005",
        "ops",
        vec![(ring("r", 2, 0), jobs("h", 2))],
    );
    let cmds = step(
        &mut d,
        &[
            Observation::Online {
                host: "h-1".into(),
                online: false,
            },
            Observation::Start { by: "ops".into() },
        ],
        t0(),
    );
    let keys = leases(&cmds);
    assert_eq!(keys, vec!["DEP-2026-12-001/h-0".to_string()]);
    step(&mut d, &[result(&keys[0], true)], t0() + mins(5));
    step(&mut d, &[], t0() + SignedDuration::from_hours(5));
    let j = &d.rings[0].jobs[1];
    assert_eq!(j.state, JobState::Skipped);
    assert!(j.error.as_deref().unwrap().contains("offline"));
    assert_eq!(d.rings[0].failures(), 0);
}

#[test]
fn four_eyes_and_inconclusive_health_pause_for_a_human() {
    let mut spec = ring("r", 1, 0);
    spec.approval = true;
    let mut d = Rollout::new("DEP-2026-12-006", "alice", vec![(spec, jobs("h", 1))]);
    let cmds = step(&mut d, &[Observation::Start { by: "bob".into() }], t0());
    let k = leases(&cmds)[0].clone();
    // Health reported after but not before: inconclusive.
    step(
        &mut d,
        &[Observation::Result {
            key: k,
            ok: true,
            error: None,
            baseline: vec![],
            after: health("h-0", true),
            reboot_required: false,
        }],
        t0() + mins(5),
    );
    assert_eq!(d.state, DeploymentState::Paused);
    assert!(d.reason.as_deref().unwrap().contains("inconclusive"));
    // Neither the creator nor the starter may approve.
    for by in ["alice", "bob"] {
        let obs = Observation::Approve {
            ring: 0,
            by: by.into(),
        };
        assert!(d.check(&obs).is_err(), "{by}");
        step(&mut d, &[obs], t0() + mins(6));
        assert!(d.rings[0].approved_by.is_none());
    }
    step(
        &mut d,
        &[
            Observation::Approve {
                ring: 0,
                by: "carol".into(),
            },
            Observation::Resume { by: "bob".into() },
        ],
        t0() + SignedDuration::from_hours(1),
    );
    assert_eq!(d.state, DeploymentState::Completed, "{:?}", d.reason);
}

// ---- property tests ------------------------------------------------------

#[derive(Debug, Clone)]
struct Gen {
    rings: Vec<(usize, usize, usize, u8, i64, bool, u8)>, // hosts, conc, budget, threshold, soak min, approval, rollback
    windows: Vec<(i64, i64)>,                             // per host: start offset min, length min
    events: Vec<(u8, u8, u8, i64)>,                       // kind, a, b, minutes forward
}

fn histories() -> impl Strategy<Value = Gen> {
    (
        prop::collection::vec(
            (
                1usize..6,
                1usize..4,
                0usize..3,
                0u8..3,
                0i64..120,
                any::<bool>(),
                0u8..3,
            ),
            1..4,
        ),
        prop::collection::vec((0i64..180, 30i64..360), 20),
        prop::collection::vec((0u8..12, any::<u8>(), any::<u8>(), 0i64..40), 1..120),
    )
        .prop_map(|(rings, windows, events)| Gen {
            rings,
            windows,
            events,
        })
}

fn build(g: &Gen) -> Rollout {
    let mut n = 0;
    let rings = g
        .rings
        .iter()
        .enumerate()
        .map(|(r, &(hosts, conc, budget, thr, soak, approval, rb))| {
            let spec = RingSpec {
                name: format!("ring{r}"),
                max_concurrent: conc,
                error_budget: budget,
                success_threshold: [0.5, 0.95, 1.0][thr as usize],
                soak: mins(soak),
                approval,
                rollback: [
                    RollbackPolicy::FailedHosts,
                    RollbackPolicy::Ring,
                    RollbackPolicy::None,
                ][rb as usize],
                reboot: if approval {
                    RebootPolicy::Never
                } else {
                    RebootPolicy::IfRequired
                },
            };
            let jobs = (0..hosts)
                .map(|_| {
                    let (start, len) = g.windows[n % g.windows.len()];
                    // Every other host has two maintenance-window slots inside
                    // its window (the first third and the last third).
                    let slots = if n % 2 == 1 {
                        vec![
                            Slot {
                                opens: t0() + mins(start),
                                closes: t0() + mins(start + len / 3),
                            },
                            Slot {
                                opens: t0() + mins(start + 2 * len / 3),
                                closes: t0() + mins(start + len),
                            },
                        ]
                    } else {
                        vec![]
                    };
                    n += 1;
                    JobSpec {
                        host: format!("h{n}"),
                        key: format!("DEP-P/h{n}"),
                        not_before: t0() + mins(start),
                        cutoff: t0() + mins(start + len),
                        run_timeout: mins(30),
                        slots,
                    }
                })
                .collect();
            (spec, jobs)
        })
        .collect();
    Rollout::new("DEP-P", "creator", rings)
}

/// Turns a generated event into observations against the current state.
fn observations(d: &Rollout, (kind, a, b, _): (u8, u8, u8, i64)) -> Vec<Observation> {
    let flying: Vec<(String, JobState)> = d
        .rings
        .iter()
        .flat_map(|r| r.jobs.iter())
        .filter(|j| j.state.in_flight() || j.state == JobState::RollingBack)
        .map(|j| (j.spec.key.clone(), j.state))
        .collect();
    let pick = |v: &[(String, JobState)]| v.get(a as usize % v.len().max(1)).cloned();
    let host = format!("h{}", 1 + a as usize % 20);
    let who = ["creator", "starter", "approver"][b as usize % 3].to_string();
    match kind {
        0 => vec![Observation::Start {
            by: "starter".into(),
        }],
        1..=4 => match pick(&flying) {
            Some((key, JobState::RollingBack)) => vec![Observation::RollbackResult {
                key,
                ok: b % 4 != 0,
                error: None,
            }],
            Some((key, JobState::Rebooting)) => vec![Observation::RebootResult {
                key,
                ok: b % 4 != 0,
                error: None,
                after: vec![],
            }],
            Some((key, _)) if kind == 4 => vec![Observation::Progress {
                key,
                state: JobState::Applying,
            }],
            Some((key, _)) => {
                let host = key.rsplit('/').next().unwrap().to_string();
                let ok = b % 5 != 0;
                vec![Observation::Result {
                    key,
                    ok,
                    error: None,
                    baseline: health(&host, true),
                    after: health(&host, ok || b % 2 == 0),
                    // Some hosts need a reboot after their job.
                    reboot_required: b % 3 == 0,
                }]
            }
            None => vec![],
        },
        5 => vec![Observation::Online {
            host,
            online: b % 2 == 0,
        }],
        6 => vec![Observation::Pause { by: who }],
        7 => vec![Observation::Resume { by: who }],
        8 if b % 8 == 0 => vec![Observation::Abort { by: who }],
        9 => vec![Observation::Approve {
            ring: a as usize % 4,
            by: who,
        }],
        10 if b % 16 == 0 => vec![Observation::RollbackAll { by: who }],
        _ => vec![],
    }
}

/// Checks the rules after a step that emitted `cmds` at `now`.
fn check_rules(d: &Rollout, cmds: &[Command], now: Timestamp) -> Result<(), TestCaseError> {
    for (r, ring) in d.rings.iter().enumerate() {
        // 1. A ring starts only after the previous ring passed.
        if ring.state != RingState::Pending && r > 0 {
            prop_assert_eq!(
                d.rings[r - 1].state,
                RingState::Passed,
                "ring {} started early",
                r
            );
        }
        // 2. Concurrency.
        prop_assert!(ring.in_flight() <= ring.spec.max_concurrent);
        // 3. The hard cap.
        prop_assert!(
            ring.failures() + ring.in_flight() <= ring.spec.error_budget + 1,
            "ring {}: {} failures + {} in flight > budget {} + 1",
            r,
            ring.failures(),
            ring.in_flight(),
            ring.spec.error_budget
        );
        // Four eyes.
        if let Some(by) = &ring.approved_by {
            prop_assert!(by != "creator" && by != "starter");
        }
    }
    for c in cmds {
        // A reboot only where the ring reboots, inside the job's window, and
        // the job waits for it in flight.
        if let Command::Reboot { ring, key, .. } = c {
            let r = &d.rings[*ring];
            prop_assert_eq!(r.spec.reboot, RebootPolicy::IfRequired);
            let j = r.jobs.iter().find(|j| &j.spec.key == key).unwrap();
            prop_assert!(now >= j.spec.not_before && now < j.spec.cutoff);
            prop_assert!(
                j.spec.slots.is_empty()
                    || j.spec
                        .slots
                        .iter()
                        .any(|s| now >= s.opens && now < s.closes)
            );
            prop_assert!(
                matches!(
                    j.state,
                    JobState::Rebooting | JobState::Failed | JobState::RollingBack
                ),
                "{:?}",
                j.state
            );
        }
        if let Command::Lease { ring, key, .. } = c {
            // Leases only while running, inside the job's window.
            prop_assert_eq!(d.state, DeploymentState::Running);
            let j = d.rings[*ring]
                .jobs
                .iter()
                .find(|j| &j.spec.key == key)
                .unwrap();
            prop_assert!(now >= j.spec.not_before && now < j.spec.cutoff);
            // And inside one of its maintenance-window slots, when it has any.
            prop_assert!(
                j.spec.slots.is_empty()
                    || j.spec
                        .slots
                        .iter()
                        .any(|s| now >= s.opens && now < s.closes),
                "leased at {} outside its slots {:?}",
                now,
                j.spec.slots
            );
        }
    }
    Ok(())
}

fn run(g: &Gen) -> Result<(Rollout, Vec<Vec<Command>>), TestCaseError> {
    let mut d = build(g);
    let mut now = t0();
    let mut all = vec![];
    for &ev in &g.events {
        let obs = observations(&d, ev);
        now += mins(ev.3);
        let cmds = step(&mut d, &obs, now);
        check_rules(&d, &cmds, now)?;
        all.push(cmds);
    }
    Ok((d, all))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_rules_hold_on_any_history(g in histories()) {
        run(&g)?;
    }

    #[test]
    fn replaying_the_same_observations_gives_the_same_state(g in histories()) {
        let (a, ca) = run(&g)?;
        let (b, cb) = run(&g)?;
        prop_assert_eq!(a, b);
        prop_assert_eq!(ca, cb);
    }

    /// After any history, agents that report everything and humans that
    /// approve and resume bring every job to a terminal state; an aborted or
    /// halted deployment leases nothing more.
    #[test]
    fn every_job_ends_terminal(g in histories()) {
        let (mut d, _) = run(&g)?;
        let ended_before = d.state.is_final();
        let mut now = t0() + SignedDuration::from_hours(24 * 30);
        for _ in 0..40 {
            let mut obs = vec![];
            for ring in &d.rings {
                for j in &ring.jobs {
                    if j.state.in_flight() {
                        let host = j.spec.host.clone();
                        if j.state == JobState::Rebooting {
                            obs.push(Observation::RebootResult { key: j.spec.key.clone(), ok: true,
                                error: None, after: vec![] });
                        } else {
                            obs.push(Observation::Result { key: j.spec.key.clone(), ok: true, error: None,
                                baseline: health(&host, true), after: health(&host, true),
                                reboot_required: false });
                        }
                    } else if j.state == JobState::RollingBack {
                        obs.push(Observation::RollbackResult { key: j.spec.key.clone(), ok: true, error: None });
                    }
                }
            }
            for r in 0..d.rings.len() {
                obs.push(Observation::Approve { ring: r, by: "approver".into() });
            }
            if d.state == DeploymentState::Draft {
                obs.push(Observation::Start { by: "starter".into() });
            }
            if d.state == DeploymentState::Paused {
                obs.push(Observation::Resume { by: "approver".into() });
            }
            now += SignedDuration::from_hours(1);
            let cmds = step(&mut d, &obs, now);
            check_rules(&d, &cmds, now)?;
            if ended_before {
                prop_assert!(leases(&cmds).is_empty(), "a finished deployment leased a job");
            }
        }
        prop_assert!(d.state.is_final(), "{:?} {:?}", d.state, d.reason);
        for ring in &d.rings {
            for j in &ring.jobs {
                prop_assert!(j.state.is_terminal(), "{} is {:?}", j.spec.key, j.state);
            }
        }
    }
}

#[test]
fn shares_have_one_grammar() {
    use patchbay_core::rollout::{Share, ShareError};
    assert_eq!(Share::parse("3"), Ok(Share::Count(3)));
    assert_eq!(Share::parse("2.5%"), Ok(Share::Percent(2.5)));
    assert_eq!(Share::parse("101%"), Err(ShareError::Over100));
    for bad in ["", "%", "ten", "-1", "1.5", "1e2%", "1.2.3%", "+3"] {
        assert_eq!(Share::parse(bad), Err(ShareError::Malformed), "{bad:?}");
    }
    assert_eq!(Share::Percent(25.0).of(10, true), 3);
    assert_eq!(Share::Percent(25.0).of(10, false), 2);
    assert_eq!(Share::Count(4).of(10, true), 4);
}

/// Maintenance-window slots from the planner: a job is leased only inside
/// one, and a job that could not start in any is skipped when the last one
/// closes — before the deployment's cutoff, not counted as a failure.
#[test]
fn slots_bound_leases_and_a_missed_last_slot_skips_the_job() {
    let mut specs = jobs("w", 2);
    for s in &mut specs {
        s.slots = vec![
            Slot {
                opens: t0() + mins(60),
                closes: t0() + mins(90),
            },
            Slot {
                opens: t0() + mins(180),
                closes: t0() + mins(200),
            },
        ];
    }
    let mut ring_spec = ring("r", 2, 0);
    ring_spec.soak = SignedDuration::ZERO;
    let mut d = Rollout::new("DEP-S", "creator", vec![(ring_spec, specs)]);
    let host1 = d.rings[0].jobs[1].spec.host.clone();
    let c = step(
        &mut d,
        &[
            Observation::Start {
                by: "starter".into(),
            },
            Observation::Online {
                host: host1.clone(),
                online: false,
            },
        ],
        t0(),
    );
    assert!(leases(&c).is_empty(), "before the first slot: {c:?}");
    assert!(leases(&step(&mut d, &[], t0() + mins(59))).is_empty());
    // The first slot opens: the online host is leased, the offline one not.
    let c = step(&mut d, &[], t0() + mins(60));
    assert_eq!(leases(&c), vec![d.rings[0].jobs[0].spec.key.clone()]);
    let key0 = d.rings[0].jobs[0].spec.key.clone();
    step(
        &mut d,
        &[Observation::Result {
            key: key0,
            ok: true,
            error: None,
            baseline: vec![],
            after: vec![],
            reboot_required: false,
        }],
        t0() + mins(70),
    );
    // Between the slots the offline host comes back: still nothing.
    let c = step(
        &mut d,
        &[Observation::Online {
            host: host1.clone(),
            online: true,
        }],
        t0() + mins(120),
    );
    assert!(leases(&c).is_empty(), "between slots: {c:?}");
    assert_eq!(d.rings[0].jobs[1].state, JobState::Pending);
    // It goes away again before the second slot and misses it: skipped when
    // the last slot closes (t0+200), well before the cutoff (t0+240).
    step(
        &mut d,
        &[Observation::Online {
            host: host1,
            online: false,
        }],
        t0() + mins(170),
    );
    step(&mut d, &[], t0() + mins(199));
    assert_eq!(d.rings[0].jobs[1].state, JobState::Pending);
    step(&mut d, &[], t0() + mins(200));
    let j = &d.rings[0].jobs[1];
    assert_eq!(j.state, JobState::Skipped);
    assert!(!j.failed, "a skipped job does not count against the budget");
}

#[test]
fn next_open_is_the_first_usable_moment() {
    let mut j = jobs("n", 1).remove(0);
    assert_eq!(j.next_open(t0() - mins(5)), Some(t0()));
    j.slots = vec![
        Slot {
            opens: t0() - mins(30),
            closes: t0() + mins(10),
        },
        Slot {
            opens: t0() + mins(100),
            closes: t0() + mins(400),
        },
    ];
    // Clipped to not_before, then the next slot, then clipped to the cutoff.
    assert_eq!(j.next_open(t0() - mins(60)), Some(t0()));
    assert_eq!(j.next_open(t0() + mins(10)), Some(t0() + mins(100)));
    assert_eq!(j.next_open(t0() + mins(239)), Some(t0() + mins(239)));
    assert_eq!(j.next_open(t0() + mins(240)), None);
    assert!(!j.open_at(t0() + mins(50)));
    assert!(j.open_at(t0() + mins(5)));
}

/// Reboots: a host that needs one after its job gets a reboot job while its
/// window is open (the job stays in flight until the reboot reports); not
/// when the deployment does not reboot or the window has closed — then the
/// job succeeds with a note saying why.
#[test]
fn a_required_reboot_runs_in_the_window_and_is_noted_otherwise() {
    let reboot_result = |key: &str| Observation::Result {
        key: key.into(),
        ok: true,
        error: None,
        baseline: health("r-0", true),
        after: health("r-0", true),
        reboot_required: true,
    };
    let mut spec = ring("r", 1, 0);
    spec.soak = SignedDuration::ZERO;
    let mut d = Rollout::new("DEP-R", "alice", vec![(spec.clone(), jobs("r", 2))]);
    let c = step(&mut d, &[Observation::Start { by: "bob".into() }], t0());
    let k0 = leases(&c)[0].clone();
    let c = step(&mut d, &[reboot_result(&k0)], t0() + mins(5));
    assert!(
        c.iter()
            .any(|c| matches!(c, Command::Reboot { key, .. } if *key == k0)),
        "{c:?}"
    );
    assert_eq!(d.rings[0].jobs[0].state, JobState::Rebooting);
    assert_eq!(d.rings[0].jobs[0].finished_at, None);
    // In flight: concurrency 1 holds the second host back.
    assert!(leases(&c).is_empty());
    // A re-sent apply result changes nothing; the reboot's result finishes it.
    step(&mut d, &[reboot_result(&k0)], t0() + mins(6));
    assert_eq!(d.rings[0].jobs[0].state, JobState::Rebooting);
    let c = step(
        &mut d,
        &[Observation::RebootResult {
            key: k0.clone(),
            ok: true,
            error: None,
            after: health("r-0", true),
        }],
        t0() + mins(9),
    );
    assert_eq!(d.rings[0].jobs[0].state, JobState::Succeeded);
    let k1 = leases(&c)[0].clone();
    // A reboot that does not report by the deadline is a failure (budget 0:
    // the deployment halts and the failed host is rolled back).
    step(&mut d, &[reboot_result(&k1)], t0() + mins(10));
    assert_eq!(d.rings[0].jobs[1].state, JobState::Rebooting);
    step(&mut d, &[], t0() + mins(40));
    assert!(d.rings[0].jobs[1].failed);
    assert_eq!(d.rings[0].jobs[1].state, JobState::RollingBack);
    assert_eq!(
        d.rings[0].jobs[1].error.as_deref(),
        Some("no report of the reboot by its deadline")
    );
    assert_eq!(d.state, DeploymentState::Halted);

    // The window has closed when the result arrives (reported late but before
    // the deadline): no reboot, a note.
    let mut late = jobs("l", 1);
    late[0].cutoff = t0() + mins(10);
    let mut d = Rollout::new("DEP-L", "alice", vec![(spec.clone(), late)]);
    let c = step(&mut d, &[Observation::Start { by: "bob".into() }], t0());
    let k = leases(&c)[0].clone();
    let c = step(&mut d, &[reboot_result(&k)], t0() + mins(12));
    assert!(
        !c.iter().any(|c| matches!(c, Command::Reboot { .. })),
        "{c:?}"
    );
    let j = &d.rings[0].jobs[0];
    assert_eq!(j.state, JobState::Succeeded);
    assert_eq!(
        j.note.as_deref(),
        Some("a reboot is required but was not done: the host's window had closed")
    );
    // A ring that never reboots.
    spec.reboot = RebootPolicy::Never;
    let mut d = Rollout::new("DEP-N", "alice", vec![(spec, jobs("n", 1))]);
    let c = step(&mut d, &[Observation::Start { by: "bob".into() }], t0());
    let k = leases(&c)[0].clone();
    let c = step(&mut d, &[reboot_result(&k)], t0() + mins(2));
    assert!(!c.iter().any(|c| matches!(c, Command::Reboot { .. })));
    assert!(
        d.rings[0].jobs[0]
            .note
            .as_deref()
            .unwrap()
            .contains("does not reboot")
    );
}
