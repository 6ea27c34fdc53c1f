//! The planner: earliest eligible window, cutoffs, blackouts (and approved
//! out-of-band entry), ring order and soak, SLA at risk exactly when due <
//! planned, with reasons; plus a property test against a brute-force search.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use patchbay_core::plan::{
    Blackout, Plan, PlanAsset, PlanFinding, PlanOptions, RingSpec, RiskReason, Unplanned, plan,
};
use patchbay_core::window::{Recurrence, Window};
use proptest::prelude::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn hours(h: i64) -> SignedDuration {
    SignedDuration::from_hours(h)
}

/// A window `rule` from `dtstart` (local) in `tz`, lasting `dur`.
fn win(rule: &str, dtstart: &str, tz: &str, dur: SignedDuration) -> Window {
    let r: Recurrence = rule.parse().unwrap();
    let dt: DateTime = dtstart.parse().unwrap();
    Window::new(r, dt, TimeZone::get(tz).unwrap(), dur).unwrap()
}

/// Daily 02:00–04:00 UTC.
fn nightly() -> Window {
    win("FREQ=DAILY", "2026-01-01T02:00:00", "UTC", hours(2))
}

fn blackout(id: &str, start: &str, end: &str) -> Blackout {
    Blackout {
        id: id.into(),
        start: ts(start),
        end: ts(end),
        reason: "freeze".into(),
        owner: "cab".into(),
        approved_by: None,
    }
}

fn asset(name: &str, ring: Option<usize>, windows: &[usize], blackouts: &[usize]) -> PlanAsset {
    PlanAsset {
        name: name.into(),
        ring,
        windows: windows.to_vec(),
        blackouts: blackouts.to_vec(),
        findings: Vec::new(),
    }
}

fn due(mut a: PlanAsset, dues: &[&str]) -> PlanAsset {
    a.findings = dues
        .iter()
        .enumerate()
        .map(|(i, d)| PlanFinding {
            id: format!("F{i}"),
            due: ts(d),
        })
        .collect();
    a
}

fn opts(now: &str, days: i64) -> PlanOptions {
    let now = ts(now);
    PlanOptions {
        now,
        until: now.checked_add(hours(24 * days)).unwrap(),
        job_estimate: SignedDuration::ZERO,
        out_of_band: false,
    }
}

fn one_ring() -> Vec<RingSpec> {
    vec![RingSpec {
        name: "ring0".into(),
        soak: SignedDuration::ZERO,
    }]
}

fn at(p: &Plan, i: usize) -> Timestamp {
    p.assets[i].planned.as_ref().expect("planned").at
}

#[test]
fn earliest_window_after_now() {
    let p = plan(
        &one_ring(),
        &[nightly()],
        &[],
        &[asset("a", Some(0), &[0], &[])],
        &opts("2026-03-10T10:00:00Z", 30),
    );
    assert_eq!(at(&p, 0), ts("2026-03-11T02:00:00Z"));
    assert!(p.at_risk.is_empty());
}

#[test]
fn open_window_starts_now_and_cutoff_is_respected() {
    let p = plan(
        &one_ring(),
        &[nightly()],
        &[],
        &[asset("a", Some(0), &[0], &[])],
        &opts("2026-03-10T03:00:00Z", 30),
    );
    assert_eq!(at(&p, 0), ts("2026-03-10T03:00:00Z"));
    // With a 90-minute cutoff no job starts after 02:30, so 03:00 is too late.
    let w = nightly()
        .with_cutoff(SignedDuration::from_mins(90))
        .unwrap();
    let p = plan(
        &one_ring(),
        std::slice::from_ref(&w),
        &[],
        &[asset("a", Some(0), &[0], &[])],
        &opts("2026-03-10T03:00:00Z", 30),
    );
    assert_eq!(at(&p, 0), ts("2026-03-11T02:00:00Z"));
    // Exactly at the cutoff instant is still allowed.
    let p = plan(
        &one_ring(),
        &[w],
        &[],
        &[asset("a", Some(0), &[0], &[])],
        &opts("2026-03-10T02:30:00Z", 30),
    );
    assert_eq!(at(&p, 0), ts("2026-03-10T02:30:00Z"));
}

#[test]
fn the_earliest_of_several_windows_wins() {
    let weekly_sat = win(
        "FREQ=WEEKLY;BYDAY=SA",
        "2026-01-03T22:00:00",
        "UTC",
        hours(4),
    );
    let patch_tuesday_plus_2 = win(
        "FREQ=MONTHLY;BYDAY=2TU",
        "2026-01-01T20:00:00",
        "America/New_York",
        hours(4),
    )
    .with_offset_days(2)
    .unwrap();
    let p = plan(
        &one_ring(),
        &[weekly_sat, patch_tuesday_plus_2],
        &[],
        &[
            asset("both", Some(0), &[0, 1], &[]),
            asset("pt", Some(0), &[1], &[]),
        ],
        // Monday 2026-03-09; Patch Tuesday is 2026-03-10, + 2 days = Thursday
        // 2026-03-12 20:00 EDT = 2026-03-13T00:00Z; Saturday is 2026-03-14.
        &opts("2026-03-09T12:00:00Z", 60),
    );
    assert_eq!(at(&p, 0), ts("2026-03-13T00:00:00Z"));
    assert_eq!(p.assets[0].planned.as_ref().unwrap().window, 1);
    assert_eq!(at(&p, 1), ts("2026-03-13T00:00:00Z"));
}

#[test]
fn blackouts_override_windows() {
    let b = blackout("BLK-1", "2026-03-11T00:00:00Z", "2026-03-13T00:00:00Z");
    let p = plan(
        &one_ring(),
        &[nightly()],
        std::slice::from_ref(&b),
        &[
            asset("frozen", Some(0), &[0], &[0]),
            asset("free", Some(0), &[0], &[]),
        ],
        &opts("2026-03-10T10:00:00Z", 30),
    );
    assert_eq!(at(&p, 0), ts("2026-03-13T02:00:00Z"));
    assert_eq!(at(&p, 1), ts("2026-03-11T02:00:00Z"));

    // A blackout ending inside an open window: the job starts at its end.
    let b2 = blackout("BLK-2", "2026-03-10T20:00:00Z", "2026-03-11T03:00:00Z");
    let p = plan(
        &one_ring(),
        &[nightly()],
        &[b2],
        &[asset("a", Some(0), &[0], &[0])],
        &opts("2026-03-10T10:00:00Z", 30),
    );
    assert_eq!(at(&p, 0), ts("2026-03-11T03:00:00Z"));

    // With a job estimate, a job may not start if it would run into a blackout.
    let b3 = blackout("BLK-3", "2026-03-11T03:00:00Z", "2026-03-11T12:00:00Z");
    let mut o = opts("2026-03-10T10:00:00Z", 30);
    o.job_estimate = hours(1);
    let p = plan(
        &one_ring(),
        &[nightly()],
        &[b3],
        &[asset("a", Some(0), &[0], &[0])],
        &o,
    );
    assert_eq!(at(&p, 0), ts("2026-03-11T02:00:00Z"), "02:00–03:00 fits");
    o.job_estimate = SignedDuration::from_mins(61);
    let p = plan(
        &one_ring(),
        &[nightly()],
        &[blackout(
            "BLK-3",
            "2026-03-11T03:00:00Z",
            "2026-03-11T12:00:00Z",
        )],
        &[asset("a", Some(0), &[0], &[0])],
        &o,
    );
    assert_eq!(
        at(&p, 0),
        ts("2026-03-12T02:00:00Z"),
        "61 min would overlap"
    );
}

#[test]
fn out_of_band_enters_a_blackout_only_with_an_approval() {
    let mut b = blackout("BLK-1", "2026-03-11T00:00:00Z", "2026-03-13T00:00:00Z");
    let assets = [asset("a", Some(0), &[0], &[0])];
    let mut o = opts("2026-03-10T10:00:00Z", 30);
    // Out-of-band without an approval: the blackout holds.
    o.out_of_band = true;
    let p = plan(&one_ring(), &[nightly()], &[b.clone()], &assets, &o);
    assert_eq!(at(&p, 0), ts("2026-03-13T02:00:00Z"));
    // Approved but not out-of-band: the blackout holds.
    b.approved_by = Some("ciso".into());
    o.out_of_band = false;
    let p = plan(&one_ring(), &[nightly()], &[b.clone()], &assets, &o);
    assert_eq!(at(&p, 0), ts("2026-03-13T02:00:00Z"));
    // Out-of-band and approved: it enters, and the plan says so.
    o.out_of_band = true;
    let p = plan(&one_ring(), &[nightly()], &[b], &assets, &o);
    let s = p.assets[0].planned.as_ref().unwrap();
    assert_eq!(s.at, ts("2026-03-11T02:00:00Z"));
    assert_eq!(s.enters_blackouts, vec![0]);
}

#[test]
fn rings_go_in_order_with_soak() {
    let rings = vec![
        RingSpec {
            name: "ring0-staging".into(),
            soak: hours(24),
        },
        RingSpec {
            name: "ring1-pilot".into(),
            soak: hours(48),
        },
        RingSpec {
            name: "ring2-broad".into(),
            soak: SignedDuration::ZERO,
        },
    ];
    let assets = [
        // Listed out of ring order on purpose.
        asset("broad", Some(2), &[0], &[]),
        asset("staging-1", Some(0), &[0], &[]),
        asset("pilot", Some(1), &[0], &[]),
        asset("staging-2", Some(0), &[1], &[]),
        asset("loose", None, &[0], &[]),
    ];
    let weekly_wed = win(
        "FREQ=WEEKLY;BYDAY=WE",
        "2026-01-07T01:00:00",
        "UTC",
        hours(3),
    );
    let mut o = opts("2026-03-09T12:00:00Z", 90); // Monday
    o.job_estimate = hours(1);
    let p = plan(&rings, &[nightly(), weekly_wed], &[], &assets, &o);
    // Ring 0: staging-1 nightly → Tue 02:00; staging-2 Wednesdays → Wed 01:00.
    assert_eq!(at(&p, 1), ts("2026-03-10T02:00:00Z"));
    assert_eq!(at(&p, 3), ts("2026-03-11T01:00:00Z"));
    assert_eq!(p.rings[0].last, Some(ts("2026-03-11T01:00:00Z")));
    // Ring 1 waits for the last ring-0 job (01:00 + 1 h estimate) + 24 h soak
    // = Thu 02:00, which is inside Thursday's nightly window.
    assert_eq!(p.rings[1].earliest, ts("2026-03-12T02:00:00Z"));
    assert_eq!(at(&p, 2), ts("2026-03-12T02:00:00Z"));
    // Ring 2: Thu 02:00 + 1 h + 48 h = Sat 03:00, inside Saturday's window.
    assert_eq!(p.rings[2].earliest, ts("2026-03-14T03:00:00Z"));
    assert_eq!(at(&p, 0), ts("2026-03-14T03:00:00Z"));
    // Not in any ring: not planned.
    assert_eq!(p.assets[4].planned, Err(Unplanned::NoRing));
    for w in p.rings.windows(2) {
        assert!(w[1].earliest >= w[0].last.unwrap());
    }
}

#[test]
fn unplanned_assets_do_not_hold_up_later_rings() {
    let rings = vec![
        RingSpec {
            name: "r0".into(),
            soak: hours(24),
        },
        RingSpec {
            name: "r1".into(),
            soak: hours(24),
        },
    ];
    let p = plan(
        &rings,
        &[nightly()],
        &[],
        &[
            asset("nowin", Some(0), &[], &[]),
            asset("b", Some(1), &[0], &[]),
        ],
        &opts("2026-03-10T10:00:00Z", 30),
    );
    assert_eq!(p.assets[0].planned, Err(Unplanned::NoWindow));
    assert_eq!(p.rings[0].unplanned, 1);
    assert_eq!(p.rings[1].earliest, ts("2026-03-10T10:00:00Z"));
    assert_eq!(at(&p, 1), ts("2026-03-11T02:00:00Z"));
}

#[test]
fn sla_at_risk_exactly_when_due_is_before_planned() {
    let a = due(
        asset("a", Some(0), &[0], &[]),
        &[
            "2026-03-11T02:00:00Z", // == planned: in time
            "2026-03-11T01:59:59Z", // one second before: at risk
            "2026-03-20T00:00:00Z", // well after: in time
        ],
    );
    let p = plan(
        &one_ring(),
        &[nightly()],
        &[],
        &[a],
        &opts("2026-03-10T10:00:00Z", 30),
    );
    assert_eq!(at(&p, 0), ts("2026-03-11T02:00:00Z"));
    assert_eq!(p.at_risk.len(), 1);
    assert_eq!(p.at_risk[0].finding, 1);
    assert_eq!(p.at_risk[0].reasons, vec![RiskReason::NoWindowBeforeDue]);
}

#[test]
fn risk_reasons_name_the_cause() {
    let rings = vec![
        RingSpec {
            name: "r0".into(),
            soak: hours(72),
        },
        RingSpec {
            name: "r1".into(),
            soak: SignedDuration::ZERO,
        },
    ];
    let freeze = blackout("BLK-XMAS", "2026-03-10T00:00:00Z", "2026-03-12T00:00:00Z");
    let now = "2026-03-10T10:00:00Z";
    let assets = [
        // Overdue already.
        due(asset("late", Some(0), &[0], &[]), &["2026-03-09T00:00:00Z"]),
        // Blackout: nightly would be 03-11 02:00, the freeze pushes to 03-12.
        due(
            asset("frozen", Some(0), &[0], &[0]),
            &["2026-03-11T12:00:00Z"],
        ),
        // Ring soak: r0's last job is `weekly` on Sunday 03-15 02:00, + 72 h
        // soak → r1 from 03-18 02:00.
        due(
            asset("pilot", Some(1), &[0], &[]),
            &["2026-03-12T12:00:00Z"],
        ),
        // Not in any ring.
        due(asset("loose", None, &[0], &[]), &["2026-03-12T12:00:00Z"]),
        // Weekly window after the due date.
        due(
            asset("weekly", Some(0), &[1], &[]),
            &["2026-03-12T00:00:00Z"],
        ),
        // Both the blackout and the soak hold it.
        due(
            asset("both", Some(1), &[0], &[0]),
            &["2026-03-11T12:00:00Z"],
        ),
        // In time.
        due(asset("ok", Some(0), &[0], &[]), &["2026-03-30T00:00:00Z"]),
    ];
    let weekly_sun = win(
        "FREQ=WEEKLY;BYDAY=SU",
        "2026-01-04T02:00:00",
        "UTC",
        hours(2),
    );
    let p = plan(
        &rings,
        &[nightly(), weekly_sun],
        &[freeze],
        &assets,
        &opts(now, 60),
    );
    let reasons = |asset: usize| {
        p.at_risk
            .iter()
            .find(|r| r.asset == asset)
            .map(|r| r.reasons.clone())
    };
    assert_eq!(reasons(0), Some(vec![RiskReason::Overdue]));
    assert_eq!(reasons(1), Some(vec![RiskReason::Blackout(vec![0])]));
    let soak = RiskReason::RingSoak {
        ring: 1,
        earliest: p.rings[1].earliest,
    };
    assert_eq!(p.rings[1].earliest, ts("2026-03-18T02:00:00Z"));
    assert_eq!(reasons(2), Some(vec![soak.clone()]));
    assert_eq!(reasons(3), Some(vec![RiskReason::NotInRing]));
    assert_eq!(reasons(4), Some(vec![RiskReason::NoWindowBeforeDue]));
    assert_eq!(
        reasons(5),
        Some(vec![RiskReason::Blackout(vec![0]), soak.clone()])
    );
    assert_eq!(reasons(6), None);
    // Planned times are reported with the risk.
    let r = p.at_risk.iter().find(|r| r.asset == 2).unwrap();
    assert_eq!(r.planned, Some(ts("2026-03-18T02:00:00Z")));
}

#[test]
fn combined_constraints_name_both() {
    // The freeze alone leaves a slot before the due date (03-13 02:00), the
    // soak alone too (03-12 02:00), but together the asset waits to 03-14.
    let rings = vec![
        RingSpec {
            name: "r0".into(),
            soak: hours(23),
        },
        RingSpec {
            name: "r1".into(),
            soak: SignedDuration::ZERO,
        },
    ];
    let freeze = blackout("BLK-1", "2026-03-12T00:00:00Z", "2026-03-13T00:00:00Z");
    let assets = [
        asset("r0", Some(0), &[0], &[]),
        due(asset("r1", Some(1), &[0], &[0]), &["2026-03-13T12:00:00Z"]),
    ];
    let p = plan(
        &rings,
        &[nightly()],
        &[freeze],
        &assets,
        &opts("2026-03-10T10:00:00Z", 30),
    );
    // r0 at 03-11 02:00 (+23 h) → r1 from 03-12 01:00 → 03-12 02:00 frozen → 03-13 02:00.
    assert_eq!(at(&p, 1), ts("2026-03-13T02:00:00Z"));
    assert!(p.at_risk.is_empty(), "03-13 02:00 is before the due date");
    let assets = [
        asset("r0", Some(0), &[0], &[]),
        due(asset("r1", Some(1), &[0], &[0]), &["2026-03-12T12:00:00Z"]),
    ];
    let freeze = blackout("BLK-1", "2026-03-12T00:00:00Z", "2026-03-13T00:00:00Z");
    let p = plan(
        &rings,
        &[nightly()],
        &[freeze],
        &assets,
        &opts("2026-03-10T10:00:00Z", 30),
    );
    let r = &p.at_risk[0];
    // Without the freeze: 03-12 02:00 (in time); without the soak: 03-11
    // 02:00 (in time); with both: 03-13 02:00 — both are named.
    assert_eq!(
        r.reasons,
        vec![
            RiskReason::Blackout(vec![0]),
            RiskReason::RingSoak {
                ring: 1,
                earliest: ts("2026-03-12T01:00:00Z")
            }
        ]
    );
}

#[test]
fn dst_windows_plan_at_the_local_time() {
    // A Berlin 02:30 window on the spring-forward day (02:30 does not exist):
    // RFC 5545 takes the offset from before the gap, 02:30 CET = 01:30Z.
    let w = win(
        "FREQ=DAILY",
        "2026-03-01T02:30:00",
        "Europe/Berlin",
        hours(1),
    );
    let p = plan(
        &one_ring(),
        &[w],
        &[],
        &[asset("a", Some(0), &[0], &[])],
        &opts("2026-03-29T00:00:00Z", 5),
    );
    assert_eq!(at(&p, 0), ts("2026-03-29T01:30:00Z"));
}

#[test]
fn horizon_bounds_the_plan() {
    let weekly = win(
        "FREQ=WEEKLY;BYDAY=SU",
        "2026-01-04T02:00:00",
        "UTC",
        hours(2),
    );
    // Monday, 3-day horizon: no Sunday in it.
    let p = plan(
        &one_ring(),
        &[weekly],
        &[],
        &[due(
            asset("a", Some(0), &[0], &[]),
            &["2026-04-01T00:00:00Z"],
        )],
        &opts("2026-03-09T00:00:00Z", 3),
    );
    assert_eq!(p.assets[0].planned, Err(Unplanned::NoSlotBeforeHorizon));
    assert_eq!(p.at_risk.len(), 1, "unplanned assets' findings are at risk");
    assert_eq!(p.at_risk[0].planned, None);
}

// ---- property test: the plan equals a brute-force search -------------------

/// Brute force: every candidate instant is the ring start, an occurrence's
/// start or a blackout's end; the answer is the smallest eligible candidate.
fn brute(
    asset: &PlanAsset,
    windows: &[Window],
    blackouts: &[Blackout],
    t0: Timestamp,
    o: &PlanOptions,
) -> Option<Timestamp> {
    let mut cands = vec![t0];
    for &w in &asset.windows {
        for occ in windows[w].occurrences_between(o.now, o.until) {
            cands.push(occ.start);
        }
    }
    for b in blackouts {
        cands.push(b.end);
    }
    cands.sort();
    cands
        .into_iter()
        .filter(|&t| t >= t0 && t < o.until)
        .find(|&t| {
            let in_window = asset.windows.iter().any(|&w| {
                windows[w]
                    .occurrences_between(o.now, o.until)
                    .iter()
                    .any(|occ| windows[w].accepts_job_at(occ, t))
            });
            let end = t.checked_add(o.job_estimate).unwrap();
            let frozen = asset.blackouts.iter().any(|&b| {
                let b = &blackouts[b];
                let waived = o.out_of_band && b.approved_by.is_some();
                let hit = if o.job_estimate.is_zero() {
                    b.start <= t && t < b.end
                } else {
                    t < b.end && end > b.start
                };
                hit && !waived
            });
            in_window && !frozen
        })
}

fn arb_case() -> impl Strategy<Value = (Vec<Window>, Vec<Blackout>, Vec<PlanAsset>, PlanOptions)> {
    let rules = prop::sample::select(vec![
        "FREQ=DAILY",
        "FREQ=WEEKLY;BYDAY=SA,SU",
        "FREQ=WEEKLY;BYDAY=WE",
        "FREQ=MONTHLY;BYDAY=2TU",
        "FREQ=DAILY;INTERVAL=3",
    ]);
    let zones = prop::sample::select(vec![
        "UTC",
        "America/New_York",
        "Europe/Berlin",
        "Australia/Sydney",
        "Asia/Kolkata",
    ]);
    let window = (rules, zones, 0u32..24, 1i64..8, 0i64..60, 0i32..3).prop_map(
        |(rule, tz, hour, dur_h, cutoff_m, off)| {
            let w = win(
                rule,
                &format!("2026-01-01T{hour:02}:30:00"),
                tz,
                hours(dur_h),
            );
            w.with_cutoff(SignedDuration::from_mins(cutoff_m))
                .unwrap()
                .with_offset_days(off)
                .unwrap()
        },
    );
    let base = ts("2026-03-01T00:00:00Z");
    let blackout = (0i64..40 * 24, 1i64..96, any::<bool>()).prop_map(move |(s, len, approved)| {
        let start = base.checked_add(hours(s)).unwrap();
        Blackout {
            id: format!("B{s}"),
            start,
            end: start.checked_add(hours(len)).unwrap(),
            reason: "r".into(),
            owner: "o".into(),
            approved_by: approved.then(|| "x".into()),
        }
    });
    (
        prop::collection::vec(window, 1..4),
        prop::collection::vec(blackout, 0..4),
        0i64..24 * 10,
        0i64..180,
        any::<bool>(),
    )
        .prop_flat_map(move |(windows, blackouts, now_h, est_m, oob)| {
            let nw = windows.len();
            let nb = blackouts.len();
            let now = base.checked_add(hours(now_h)).unwrap();
            let o = PlanOptions {
                now,
                until: now.checked_add(hours(24 * 30)).unwrap(),
                job_estimate: SignedDuration::from_mins(est_m),
                out_of_band: oob,
            };
            let asset = (
                prop::option::weighted(0.9, 0usize..3),
                prop::collection::vec(0..nw, 0..3),
                prop::sample::subsequence((0..nb).collect::<Vec<_>>(), 0..=nb),
                prop::collection::vec(0i64..24 * 40, 0..3),
            )
                .prop_map(move |(ring, ws, bs, dues)| PlanAsset {
                    name: "a".into(),
                    ring,
                    windows: ws,
                    blackouts: bs,
                    findings: dues
                        .into_iter()
                        .enumerate()
                        .map(|(i, d)| PlanFinding {
                            id: format!("F{i}"),
                            due: base.checked_add(hours(d)).unwrap(),
                        })
                        .collect(),
                });
            (
                Just(windows),
                Just(blackouts),
                prop::collection::vec(asset, 1..8),
                Just(o),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn plan_is_the_earliest_eligible_slot((windows, blackouts, assets, o) in arb_case()) {
        let rings: Vec<RingSpec> = (0..3)
            .map(|i| RingSpec { name: format!("r{i}"), soak: hours(i * 12) })
            .collect();
        let p = plan(&rings, &windows, &blackouts, &assets, &o);
        let mut ring_start = o.now;
        for (r, rp) in p.rings.iter().enumerate() {
            prop_assert_eq!(rp.earliest, ring_start);
            let mut last: Option<Timestamp> = None;
            for (i, a) in assets.iter().enumerate() {
                if a.ring != Some(r) {
                    continue;
                }
                let expect = if a.windows.is_empty() {
                    None
                } else {
                    brute(a, &windows, &blackouts, ring_start, &o)
                };
                let got = p.assets[i].planned.as_ref().ok().map(|s| s.at);
                prop_assert_eq!(got, expect, "asset {} in ring {}", i, r);
                if let Some(t) = got {
                    last = Some(last.map_or(t, |l: Timestamp| l.max(t)));
                }
            }
            prop_assert_eq!(rp.last, last);
            if let Some(l) = last {
                ring_start = l
                    .checked_add(o.job_estimate)
                    .unwrap()
                    .checked_add(rings[r].soak)
                    .unwrap();
            }
        }
        // SLA at risk exactly when due < planned (or unplanned), each with a reason.
        let mut expected = Vec::new();
        for (i, a) in assets.iter().enumerate() {
            let planned = p.assets[i].planned.as_ref().ok().map(|s| s.at);
            for (k, f) in a.findings.iter().enumerate() {
                if planned.is_none_or(|t| f.due < t) {
                    expected.push((i, k));
                }
            }
        }
        let got: Vec<(usize, usize)> = p.at_risk.iter().map(|r| (r.asset, r.finding)).collect();
        prop_assert_eq!(got, expected);
        prop_assert!(p.at_risk.iter().all(|r| !r.reasons.is_empty()));
    }
}

/// Job slots for a server-driven rollout: occurrences from their start to
/// their cutoff, clipped to [from, until), with blackouts cut out so a job
/// never runs into one.
#[test]
fn job_slots_clip_cutoffs_and_cut_out_blackouts() {
    use patchbay_core::plan::job_slots;
    use patchbay_core::rollout::Slot;
    let slot = |o: &str, c: &str| Slot {
        opens: ts(o),
        closes: ts(c),
    };
    // Nightly 02:00–04:00 UTC with a 30 min cutoff: starts 02:00–03:30.
    let w = nightly()
        .with_cutoff(SignedDuration::from_mins(30))
        .unwrap();
    let from = ts("2026-12-07T03:00:00Z");
    let until = ts("2026-12-10T02:30:00Z");
    let est = SignedDuration::from_mins(20);
    assert_eq!(
        job_slots(&[&w], &[], from, until, est),
        vec![
            // Already open at `from`: clipped to it.
            slot("2026-12-07T03:00:00Z", "2026-12-07T03:30:00Z"),
            slot("2026-12-08T02:00:00Z", "2026-12-08T03:30:00Z"),
            slot("2026-12-09T02:00:00Z", "2026-12-09T03:30:00Z"),
            // Clipped to `until`.
            slot("2026-12-10T02:00:00Z", "2026-12-10T02:30:00Z"),
        ]
    );
    // A blackout 02:50–03:10 on the 8th: no start from 02:30 (a 20 min job
    // would run into it) until 03:10. One covering the 9th removes it.
    let bs = [
        blackout("BLK-1", "2026-12-08T02:50:00Z", "2026-12-08T03:10:00Z"),
        blackout("BLK-2", "2026-12-09T00:00:00Z", "2026-12-09T12:00:00Z"),
    ];
    let b: Vec<&Blackout> = bs.iter().collect();
    assert_eq!(
        job_slots(&[&w], &b, from, until, est),
        vec![
            slot("2026-12-07T03:00:00Z", "2026-12-07T03:30:00Z"),
            slot("2026-12-08T02:00:00Z", "2026-12-08T02:30:00Z"),
            slot("2026-12-08T03:10:00Z", "2026-12-08T03:30:00Z"),
            slot("2026-12-10T02:00:00Z", "2026-12-10T02:30:00Z"),
        ]
    );
    // Two overlapping windows merge; no window, no slot.
    let early = win("FREQ=DAILY", "2026-01-01T01:00:00", "UTC", hours(2));
    let day = ts("2026-12-11T00:00:00Z");
    assert_eq!(
        job_slots(&[&w, &early], &[], day, day + hours(24), est),
        vec![slot("2026-12-11T01:00:00Z", "2026-12-11T03:30:00Z")]
    );
    assert!(job_slots(&[], &[], from, until, est).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// Against a minute-by-minute search: `t` is in a slot exactly when it
    /// lies in [from, until), some occurrence has `start <= t < last job
    /// start`, and the job [t, t + estimate] touches no blackout.
    #[test]
    fn job_slots_match_a_minute_search(
        cutoff in 0i64..90,
        est in 0i64..120,
        bl in prop::collection::vec((0i64..4000, 1i64..600), 0..4),
        from_off in 0i64..600,
        len in 60i64..4000,
    ) {
        use patchbay_core::plan::job_slots;
        let w = nightly().with_cutoff(SignedDuration::from_mins(cutoff)).unwrap();
        let base = ts("2026-12-07T00:00:00Z");
        let m = SignedDuration::from_mins;
        let from = base + m(from_off);
        let until = from + m(len);
        let bs: Vec<Blackout> = bl
            .iter()
            .enumerate()
            .map(|(i, (s, l))| Blackout {
                id: format!("B{i}"),
                start: base + m(*s),
                end: base + m(s + l),
                reason: String::new(),
                owner: String::new(),
                approved_by: None,
            })
            .collect();
        let b: Vec<&Blackout> = bs.iter().collect();
        let slots = job_slots(&[&w], &b, from, until, m(est));
        let occs = w.occurrences_between(base - m(1440), until + m(1440));
        for k in 0..(len + 60) {
            let t = from + m(k) - m(30);
            let in_slot = slots.iter().any(|s| t >= s.opens && t < s.closes);
            let expect = t >= from
                && t < until
                && occs.iter().any(|o| o.start <= t && t < w.last_job_start(o))
                // (The instant a job would end exactly at a blackout's start
                // is given up, like the last instant before a cutoff.)
                && bs.iter().all(|b| !(t < b.end && t + m(est) >= b.start));
            prop_assert_eq!(in_slot, expect, "t = {}, slots {:?}", t, slots);
        }
    }
}
