//! The governance review report on a hand-computed fixture history (issue
//! 18, item 9). Every expected number below was worked out by hand from the
//! fixture (the comments show the arithmetic), never by calling the code.
//!
//! Period: [2026-11-01T00:00Z, 2026-11-08T00:00Z), seven days.
//!
//! Assets: web-1, web-2 (owner alice, group web), db-1 (owner bob, group
//! db), lab-1 (no owner, no group).
//!
//! | F | asset | tier | first seen | resolved | due |
//! |---|---|---|---|---|---|
//! | F0 | web-1 | P0 | 11-01 00:00 | 11-01 06:00 | 11-02 00:00 |
//! | F1 | web-2 | P1 | 10-28 00:00 | 11-03 12:00 | 11-04 00:00 |
//! | F2 | db-1 | P2 | 11-02 12:00 | 11-05 00:00 | 11-02 18:00 |
//! | F3 | db-1 | P0 | 11-02 00:00 | 11-04 00:00 | 11-03 00:00 |
//! | F4 | lab-1 | P3 | 10-01 00:00 | 10-20 00:00 | 10-31 00:00 |
//! | F5 | web-1 | P4 | 11-06 00:00 | – | 2027-01-01 |
//! | F6 | lab-1 | P2 | 10-20 00:00 | 11-05 12:00 | 11-03 00:00 |
//! | F7 | web-2 | P3 | 11-06 00:00 | 11-07 12:00 | 12-06 00:00 |
//! | F8 | web-1 | P4 | 11-07 00:00 | – | 11-07 06:00 |

use jiff::Timestamp;
use patchbay_core::report::governance::{Approval, governance};
use patchbay_core::report::{AssetRecord, DeploymentRecord, FindingRecord, History, JobRecord};
use patchbay_core::risk::Tier;
use patchbay_core::rollout::JobState;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn asset(name: &str, owner: &str, group: Option<&str>) -> AssetRecord {
    AssetRecord {
        name: name.into(),
        owner: owner.into(),
        groups: group.into_iter().map(String::from).collect(),
        managed: true,
        created_at: t("2026-01-01T00:00:00Z"),
        last_seen: None,
    }
}

fn finding(
    asset: usize,
    tier: Tier,
    first: &str,
    resolved: Option<&str>,
    due: &str,
) -> FindingRecord {
    FindingRecord {
        asset,
        advisory: format!("DSA-{first}"),
        cves: vec![],
        package: "pkg".into(),
        source_package: "pkg".into(),
        tier,
        first_seen: t(first),
        resolved_at: resolved.map(t),
        due: t(due),
        fixable: true,
    }
}

fn job(
    host: &str,
    state: JobState,
    failed: bool,
    leased: Option<&str>,
    finished: Option<&str>,
    rollback: Option<&str>,
) -> JobRecord {
    JobRecord {
        host: host.into(),
        packages: vec!["pkg".into()],
        state,
        failed,
        leased_at: leased.map(t),
        result_at: finished.map(t),
        finished_at: finished.map(t),
        rollback_at: rollback.map(t),
    }
}

fn dep(id: &str, jobs: Vec<JobRecord>) -> DeploymentRecord {
    DeploymentRecord {
        id: id.into(),
        kind: "baseline".into(),
        state: "completed".into(),
        created_at: t("2026-10-01T00:00:00Z"),
        state_at: None,
        jobs,
    }
}

fn history() -> History {
    use JobState::*;
    use Tier::*;
    History {
        assets: vec![
            asset("web-1", "alice", Some("web")),
            asset("web-2", "alice", Some("web")),
            asset("db-1", "bob", Some("db")),
            asset("lab-1", "", None),
        ],
        findings: vec![
            finding(
                0,
                P0,
                "2026-11-01T00:00:00Z",
                Some("2026-11-01T06:00:00Z"),
                "2026-11-02T00:00:00Z",
            ),
            finding(
                1,
                P1,
                "2026-10-28T00:00:00Z",
                Some("2026-11-03T12:00:00Z"),
                "2026-11-04T00:00:00Z",
            ),
            finding(
                2,
                P2,
                "2026-11-02T12:00:00Z",
                Some("2026-11-05T00:00:00Z"),
                "2026-11-02T18:00:00Z",
            ),
            finding(
                2,
                P0,
                "2026-11-02T00:00:00Z",
                Some("2026-11-04T00:00:00Z"),
                "2026-11-03T00:00:00Z",
            ),
            finding(
                3,
                P3,
                "2026-10-01T00:00:00Z",
                Some("2026-10-20T00:00:00Z"),
                "2026-10-31T00:00:00Z",
            ),
            finding(0, P4, "2026-11-06T00:00:00Z", None, "2027-01-01T00:00:00Z"),
            finding(
                3,
                P2,
                "2026-10-20T00:00:00Z",
                Some("2026-11-05T12:00:00Z"),
                "2026-11-03T00:00:00Z",
            ),
            finding(
                1,
                P3,
                "2026-11-06T00:00:00Z",
                Some("2026-11-07T12:00:00Z"),
                "2026-12-06T00:00:00Z",
            ),
            finding(0, P4, "2026-11-07T00:00:00Z", None, "2026-11-07T06:00:00Z"),
        ],
        exceptions: vec![],
        deployments: vec![
            // DEP-A: span 02:00 → 04:00 (db-1's rollback) = 2 h; three jobs
            // ran, one rollback.
            dep(
                "DEP-A",
                vec![
                    job(
                        "web-1",
                        Succeeded,
                        false,
                        Some("2026-11-01T02:00:00Z"),
                        Some("2026-11-01T02:30:00Z"),
                        None,
                    ),
                    job(
                        "web-2",
                        Succeeded,
                        false,
                        Some("2026-11-01T02:00:00Z"),
                        Some("2026-11-01T03:00:00Z"),
                        None,
                    ),
                    job(
                        "db-1",
                        RolledBack,
                        true,
                        Some("2026-11-01T03:00:00Z"),
                        Some("2026-11-01T03:20:00Z"),
                        Some("2026-11-01T04:00:00Z"),
                    ),
                ],
            ),
            // DEP-B: 10-31 23:00 → 11-01 01:00, inside the period from 00:00:
            // 1 h; one job ran (finished 01:00).
            dep(
                "DEP-B",
                vec![job(
                    "lab-1",
                    Succeeded,
                    false,
                    Some("2026-10-31T23:00:00Z"),
                    Some("2026-11-01T01:00:00Z"),
                    None,
                )],
            ),
            // DEP-C: 11-07 22:00 → 11-08 01:00, inside up to 11-08 00:00: 2 h;
            // web-1 skipped (not a job that ran); db-1 ran (23:00), its
            // rollback ended after the period (not counted).
            dep(
                "DEP-C",
                vec![
                    job(
                        "web-1",
                        Skipped,
                        false,
                        None,
                        Some("2026-11-07T20:00:00Z"),
                        None,
                    ),
                    job(
                        "db-1",
                        RollbackFailed,
                        true,
                        Some("2026-11-07T22:00:00Z"),
                        Some("2026-11-07T23:00:00Z"),
                        Some("2026-11-08T01:00:00Z"),
                    ),
                ],
            ),
            // DEP-D: all before the period.
            dep(
                "DEP-D",
                vec![job(
                    "web-2",
                    Succeeded,
                    false,
                    Some("2026-10-20T01:00:00Z"),
                    Some("2026-10-20T02:00:00Z"),
                    None,
                )],
            ),
        ],
    }
}

fn approvals() -> Vec<Approval> {
    let a = |d: &str, ring: &str, req: &str, ok: &str| Approval {
        deployment: d.into(),
        ring: ring.into(),
        requested_at: t(req),
        approved_at: t(ok),
        by: "carol".into(),
    };
    vec![
        a(
            "DEP-A",
            "pilot",
            "2026-11-01T03:00:00Z",
            "2026-11-01T03:30:00Z",
        ), // 0.5 h
        a(
            "DEP-C",
            "prod",
            "2026-11-07T10:00:00Z",
            "2026-11-07T14:00:00Z",
        ), // 4 h
        a("DEP-C", "x", "2026-11-07T15:00:00Z", "2026-11-07T16:30:00Z"), // 1.5 h
        a(
            "DEP-D",
            "prod",
            "2026-10-20T00:00:00Z",
            "2026-10-20T01:00:00Z",
        ), // outside
    ]
}

fn tiers(v: [u64; 5]) -> std::collections::BTreeMap<String, u64> {
    ["P0", "P1", "P2", "P3", "P4"]
        .into_iter()
        .map(String::from)
        .zip(v)
        .collect()
}

#[test]
fn governance_numbers_match_the_hand_computed_history() {
    let g = governance(
        &history(),
        &approvals(),
        t("2026-11-01T00:00:00Z"),
        t("2026-11-08T00:00:00Z"),
    )
    .unwrap();

    // Closed in the period: F0, F1, F2, F3, F6, F7 (F4 before it; F5, F8 open).
    assert_eq!(g.risk.closed, 6);
    // P0: F0, F3; P1: F1; P2: F2, F6; P3: F7.
    assert_eq!(g.risk.closed_by_tier, tiers([2, 1, 2, 1, 0]));
    // By the due date: F0 (06:00 ≤ 11-02), F1 (11-03 12:00 ≤ 11-04), F7.
    assert_eq!((g.risk.closed_in_sla, g.risk.closed_late), (3, 3));
    // Avoided: F0 18 h = 0.75 d; F1 12 h = 0.5 d; F7 11-07 12:00 → 12-06
    // 00:00 = 28.5 d. 0.75 + 0.5 + 28.5 = 29.75.
    assert_eq!(g.risk.exposure_days_avoided, 29.75);
    // Over: F2 11-02 18:00 → 11-05 00:00 = 2.25 d; F3 1 d; F6 11-03 00:00 →
    // 11-05 12:00 = 2.5 d. 2.25 + 1 + 2.5 = 5.75.
    assert_eq!(g.risk.exposure_days_over_sla, 5.75);

    // Effort: DEP-A 2 h + DEP-B 1 h + DEP-C 2 h = 5 h over 3 deployments.
    assert_eq!(g.effort.deployments, 3);
    assert_eq!(g.effort.window_hours, 5.0);
    // Jobs: DEP-A 3 + DEP-B 1 + DEP-C 1 (db-1) = 5; rollbacks: DEP-A db-1.
    assert_eq!((g.effort.jobs, g.effort.rollbacks), (5, 1));
    // Approvals: 0.5, 1.5, 4 h → mean 6/3 = 2, median 1.5, max 4.
    assert_eq!(g.effort.approvals, 3);
    assert_eq!(
        (
            g.effort.approval_wait.mean_hours,
            g.effort.approval_wait.median_hours,
            g.effort.approval_wait.max_hours
        ),
        (2.0, 1.5, 4.0)
    );

    // Per group: (none) = lab-1: F6 (P2, 2.5 d over), DEP-B's job.
    // db = db-1: F2, F3 (late: 2.25 + 1 = 3.25 d), jobs DEP-A + DEP-C, 1
    // rollback. web = web-1, web-2: F0, F1, F7 (avoided 29.75), jobs DEP-A ×2.
    let names: Vec<&str> = g.by_group.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["(none)", "db", "web"]);
    let none = &g.by_group[0];
    assert_eq!(
        (none.risk.closed, none.risk.exposure_days_over_sla),
        (1, 2.5)
    );
    assert_eq!((none.jobs, none.rollbacks), (1, 0));
    let db = &g.by_group[1];
    assert_eq!(db.risk.closed_by_tier, tiers([1, 0, 1, 0, 0]));
    assert_eq!(
        (
            db.risk.closed_in_sla,
            db.risk.closed_late,
            db.risk.exposure_days_over_sla
        ),
        (0, 2, 3.25)
    );
    assert_eq!((db.jobs, db.rollbacks), (2, 1));
    let web = &g.by_group[2];
    assert_eq!(web.risk.closed_by_tier, tiers([1, 1, 0, 1, 0]));
    assert_eq!(
        (web.risk.closed_in_sla, web.risk.exposure_days_avoided),
        (3, 29.75)
    );
    assert_eq!((web.jobs, web.rollbacks), (2, 0));
    // Per owner: alice = web's, bob = db's, (none) = lab-1's.
    let owners: Vec<(&str, u64, u64, u64)> = g
        .by_owner
        .iter()
        .map(|l| (l.name.as_str(), l.risk.closed, l.jobs, l.rollbacks))
        .collect();
    assert_eq!(
        owners,
        [("(none)", 1, 1, 0), ("alice", 3, 2, 0), ("bob", 2, 2, 1)]
    );

    // Wins: P0 closed F0, F3; in SLA F0 only.
    assert_eq!((g.wins.p0_closed, g.wins.p0_closed_in_sla), (2, 1));
    // Day ends 11-02 … 11-08. Overdue at an end E: detected by E, open
    // after E, due before E. F2 (due 11-02 18:00, resolved 11-05 00:00):
    // 11-03, 11-04. F6 (due 11-03, resolved 11-05 12:00): 11-04, 11-05. F8
    // (due 11-07 06:00, open): 11-08. F3 (due 11-03 00:00, resolved 11-04
    // 00:00): never (not due before 11-03 00:00, resolved by 11-04 00:00).
    // Clean: 11-02 | 11-06, 11-07 → longest 2; the last day is not clean → 0.
    assert_eq!(
        (g.wins.longest_streak_days, g.wins.current_streak_days),
        (2, 0)
    );
    // Fastest: F0 6 h, F7 36 h, F3 48 h, F2 60 h, F1 6.5 d = 156 h (F6 396 h
    // is sixth).
    let fastest: Vec<(&str, f64)> = g
        .wins
        .fastest
        .iter()
        .map(|c| (c.asset.as_str(), c.hours))
        .collect();
    assert_eq!(
        fastest,
        [
            ("web-1", 6.0),
            ("web-2", 36.0),
            ("db-1", 48.0),
            ("db-1", 60.0),
            ("web-2", 156.0)
        ]
    );
    assert_eq!(g.wins.fastest[0].tier, "P0");
}

#[test]
fn an_empty_or_inverted_period_is_refused() {
    let h = history();
    let t0 = t("2026-11-01T00:00:00Z");
    assert!(governance(&h, &[], t0, t0).is_none());
    assert!(governance(&h, &[], t("2026-11-02T00:00:00Z"), t0).is_none());
}
