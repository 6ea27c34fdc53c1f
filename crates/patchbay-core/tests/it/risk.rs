//! The risk model, table-driven: every tier boundary, each modifier, the
//! missing-data rules, SLA start and KEV due dates, the reasons text, the rank
//! score; plus property tests (monotonic in CVSS and EPSS, never panics).

use jiff::civil::{Date, date};
use jiff::{SignedDuration, Timestamp};
use patchbay_core::asset::{BusinessImpact, Exposure};
use patchbay_core::risk::{
    Assessment, KevInfo, MissingCvss, RiskInput, RiskModel, Tier, kev_due_instant, summary,
};
use proptest::prelude::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const FIRST_SEEN: &str = "2026-11-20T10:00:00Z";

fn input() -> RiskInput {
    RiskInput {
        cvss: None,
        cvss_source: None,
        severity_hint: None,
        severity_source: None,
        epss: None,
        kev: None,
        business_impact: BusinessImpact::Medium,
        exposure: Exposure::Internal,
        first_seen: ts(FIRST_SEEN),
        published: None,
    }
}

fn kev(d: Date) -> Option<KevInfo> {
    Some(KevInfo { due_date: d })
}

fn assess(i: &RiskInput) -> Assessment {
    RiskModel::default().assess(i)
}

/// One row: inputs and the expected tier.
struct Case {
    name: &'static str,
    cvss: Option<f64>,
    epss: Option<f64>,
    kev: bool,
    exposure: Exposure,
    impact: BusinessImpact,
    want: Tier,
}

const INET: Exposure = Exposure::InternetFacing;
const INTERNAL: Exposure = Exposure::Internal;
const ISOLATED: Exposure = Exposure::Isolated;
const MEDIUM: BusinessImpact = BusinessImpact::Medium;
const CRITICAL: BusinessImpact = BusinessImpact::Critical;

fn case(
    name: &'static str,
    cvss: Option<f64>,
    epss: Option<f64>,
    kev: bool,
    exposure: Exposure,
    impact: BusinessImpact,
    want: Tier,
) -> Case {
    Case {
        name,
        cvss,
        epss,
        kev,
        exposure,
        impact,
        want,
    }
}

fn run(cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let mut i = input();
        i.cvss = c.cvss;
        i.epss = c.epss;
        i.kev = if c.kev { kev(date(2027, 1, 1)) } else { None };
        i.exposure = c.exposure;
        i.business_impact = c.impact;
        let a = assess(&i);
        if a.tier != c.want {
            failures.push(format!(
                "{}: want {}, got {} ({})",
                c.name,
                c.want,
                a.tier,
                summary(&a)
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn tier_boundaries() {
    use Tier::*;
    run(&[
        // P0: KEV.
        case("kev, internal", Some(1.0), None, true, INTERNAL, MEDIUM, P0),
        case("kev, no cvss", None, None, true, INTERNAL, MEDIUM, P0),
        // P0: EPSS >= 0.5 on an internet-facing asset.
        case(
            "epss 0.5 inet",
            Some(1.0),
            Some(0.5),
            false,
            INET,
            MEDIUM,
            P0,
        ),
        case(
            "epss 0.49 inet",
            Some(1.0),
            Some(0.49),
            false,
            INET,
            MEDIUM,
            P4,
        ),
        case(
            "epss 0.5 internal",
            Some(1.0),
            Some(0.5),
            false,
            INTERNAL,
            MEDIUM,
            P4,
        ),
        case(
            "epss 1.0 inet",
            Some(0.0),
            Some(1.0),
            false,
            INET,
            MEDIUM,
            P0,
        ),
        // P0: CVSS >= 9.0 on an internet-facing asset.
        case("cvss 9.0 inet", Some(9.0), None, false, INET, MEDIUM, P0),
        case("cvss 8.9 inet", Some(8.9), None, false, INET, MEDIUM, P2),
        case(
            "cvss 10 inet",
            Some(10.0),
            Some(0.0),
            false,
            INET,
            MEDIUM,
            P0,
        ),
        // privileged-data is not internet-facing.
        case(
            "privileged 9.0",
            Some(9.0),
            Some(0.9),
            false,
            Exposure::PrivilegedData,
            MEDIUM,
            P1,
        ),
        // P1: CVSS >= 9.0.
        case(
            "cvss 9.0 internal",
            Some(9.0),
            None,
            false,
            INTERNAL,
            MEDIUM,
            P1,
        ),
        case(
            "cvss 8.9 internal",
            Some(8.9),
            None,
            false,
            INTERNAL,
            MEDIUM,
            P2,
        ),
        case(
            "cvss 10 internal",
            Some(10.0),
            None,
            false,
            INTERNAL,
            MEDIUM,
            P1,
        ),
        // P1: CVSS >= 7.0 with EPSS >= 0.1.
        case(
            "cvss 7.0 epss 0.1",
            Some(7.0),
            Some(0.1),
            false,
            INTERNAL,
            MEDIUM,
            P1,
        ),
        case(
            "cvss 6.9 epss 0.1",
            Some(6.9),
            Some(0.1),
            false,
            INTERNAL,
            MEDIUM,
            P3,
        ),
        case(
            "cvss 7.0 epss 0.09",
            Some(7.0),
            Some(0.09),
            false,
            INTERNAL,
            MEDIUM,
            P2,
        ),
        case(
            "cvss 8.9 epss 0.49 inet",
            Some(8.9),
            Some(0.49),
            false,
            INET,
            MEDIUM,
            P1,
        ),
        case(
            "cvss 7.0 no epss",
            Some(7.0),
            None,
            false,
            INTERNAL,
            MEDIUM,
            P2,
        ),
        // P2: CVSS >= 7.0.
        case(
            "cvss 7.0",
            Some(7.0),
            Some(0.0),
            false,
            INTERNAL,
            MEDIUM,
            P2,
        ),
        case(
            "cvss 6.9",
            Some(6.9),
            Some(0.0),
            false,
            INTERNAL,
            MEDIUM,
            P3,
        ),
        // P3: CVSS >= 4.0.
        case(
            "cvss 4.0",
            Some(4.0),
            Some(0.0),
            false,
            INTERNAL,
            MEDIUM,
            P3,
        ),
        case(
            "cvss 3.9",
            Some(3.9),
            Some(0.0),
            false,
            INTERNAL,
            MEDIUM,
            P4,
        ),
        case(
            "cvss 3.9 epss 0.9 internal",
            Some(3.9),
            Some(0.9),
            false,
            INTERNAL,
            MEDIUM,
            P4,
        ),
        // P4: everything else.
        case("cvss 0", Some(0.0), Some(0.0), false, INTERNAL, MEDIUM, P4),
    ]);
}

#[test]
fn modifiers() {
    use Tier::*;
    run(&[
        // Critical business impact: one tier up.
        case(
            "critical P2 -> P1",
            Some(7.5),
            None,
            false,
            INTERNAL,
            CRITICAL,
            P1,
        ),
        case(
            "critical P1 -> P0",
            Some(9.5),
            None,
            false,
            INTERNAL,
            CRITICAL,
            P0,
        ),
        case(
            "critical P4 -> P3",
            Some(3.9),
            None,
            false,
            INTERNAL,
            CRITICAL,
            P3,
        ),
        case(
            "critical P3 -> P2",
            Some(4.0),
            None,
            false,
            INTERNAL,
            CRITICAL,
            P2,
        ),
        case("critical P0 ceiling", None, None, true, INET, CRITICAL, P0),
        // Isolated exposure: one tier down.
        case(
            "isolated P1 -> P2",
            Some(9.0),
            None,
            false,
            ISOLATED,
            MEDIUM,
            P2,
        ),
        case(
            "isolated P0 (kev) -> P1",
            None,
            None,
            true,
            ISOLATED,
            MEDIUM,
            P1,
        ),
        case(
            "isolated P3 -> P4",
            Some(5.0),
            None,
            false,
            ISOLATED,
            MEDIUM,
            P4,
        ),
        case(
            "isolated P4 floor",
            Some(1.0),
            None,
            false,
            ISOLATED,
            MEDIUM,
            P4,
        ),
        // Isolated assets are not internet-facing: 9.0 is P1 before the shift.
        case(
            "isolated cvss 9.8 epss 0.9",
            Some(9.8),
            Some(0.9),
            false,
            ISOLATED,
            MEDIUM,
            P2,
        ),
        // Both: they cancel out, at the ends too.
        case("both P2", Some(7.5), None, false, ISOLATED, CRITICAL, P2),
        case("both P0", None, None, true, ISOLATED, CRITICAL, P0),
        case("both P4", Some(1.0), None, false, ISOLATED, CRITICAL, P4),
        // Other impacts do nothing.
        case(
            "high impact",
            Some(7.5),
            None,
            false,
            INTERNAL,
            BusinessImpact::High,
            P2,
        ),
        case(
            "low impact",
            Some(7.5),
            None,
            false,
            INTERNAL,
            BusinessImpact::Low,
            P2,
        ),
    ]);
}

#[test]
fn modifier_reasons_and_base_tier() {
    let mut i = input();
    i.cvss = Some(7.5);
    i.epss = Some(0.01);
    i.business_impact = CRITICAL;
    let a = assess(&i);
    assert_eq!((a.base_tier, a.tier), (Tier::P2, Tier::P1));
    assert_eq!(
        summary(&a),
        "P1: CVSS 7.5 >= 7.0; business impact critical: raised from P2"
    );

    i.business_impact = MEDIUM;
    i.exposure = ISOLATED;
    let a = assess(&i);
    assert_eq!((a.base_tier, a.tier), (Tier::P2, Tier::P3));
    assert_eq!(
        summary(&a),
        "P3: CVSS 7.5 >= 7.0; asset isolated: lowered from P2"
    );

    i.business_impact = CRITICAL;
    let a = assess(&i);
    assert_eq!(
        summary(&a),
        "P2: CVSS 7.5 >= 7.0; business impact critical and asset isolated cancel out"
    );

    i.cvss = Some(1.0);
    i.business_impact = MEDIUM;
    assert_eq!(
        summary(&assess(&i)),
        "P4: CVSS 1.0 < 4.0; asset isolated: already P4"
    );

    let mut i = input();
    i.kev = kev(date(2027, 1, 1));
    i.epss = Some(0.2);
    i.cvss = Some(9.8);
    i.business_impact = CRITICAL;
    assert_eq!(
        summary(&assess(&i)),
        "P0: in CISA KEV (due 2027-01-01); business impact critical: already P0"
    );
}

#[test]
fn modifiers_can_be_switched_off() {
    let model = RiskModel {
        critical_impact_raises: false,
        isolated_lowers: false,
        ..RiskModel::default()
    };
    let mut i = input();
    i.cvss = Some(7.5);
    i.epss = Some(0.0);
    i.business_impact = CRITICAL;
    let a = model.assess(&i);
    assert_eq!(a.tier, Tier::P2);
    assert_eq!(summary(&a), "P2: CVSS 7.5 >= 7.0");
    i.business_impact = MEDIUM;
    i.exposure = ISOLATED;
    assert_eq!(model.assess(&i).tier, Tier::P2);
}

/// Missing CVSS: (severity hint, rule, expected tier, expected reasons).
#[test]
fn missing_cvss_rules() {
    let distro = RiskModel::default();
    let assume = RiskModel {
        missing_cvss: MissingCvss::Assume,
        ..RiskModel::default()
    };
    let assume_critical = RiskModel {
        missing_cvss: MissingCvss::Assume,
        unknown_cvss: 9.0,
        ..RiskModel::default()
    };
    let cases: &[(&RiskModel, Option<&str>, Tier, &str)] = &[
        (
            &distro,
            Some("high"),
            Tier::P2,
            "P2: assumed CVSS 7.5 >= 7.0; no CVSS score; distro severity \"high\" taken as CVSS 7.5; no EPSS score",
        ),
        (
            &distro,
            Some("Important"),
            Tier::P2,
            "P2: assumed CVSS 7.5 >= 7.0; no CVSS score; distro severity \"important\" taken as CVSS 7.5; no EPSS score",
        ),
        (
            &distro,
            Some("critical"),
            Tier::P1,
            "P1: assumed CVSS 9.0 >= 9.0; no CVSS score; distro severity \"critical\" taken as CVSS 9.0; no EPSS score",
        ),
        (
            &distro,
            Some("medium"),
            Tier::P3,
            "P3: assumed CVSS 5.0 >= 4.0; no CVSS score; distro severity \"medium\" taken as CVSS 5.0; no EPSS score",
        ),
        (
            &distro,
            Some("low"),
            Tier::P4,
            "P4: assumed CVSS 2.0 < 4.0; no CVSS score; distro severity \"low\" taken as CVSS 2.0; no EPSS score",
        ),
        (
            &distro,
            Some(" unimportant "),
            Tier::P4,
            "P4: assumed CVSS 2.0 < 4.0; no CVSS score; distro severity \"unimportant\" taken as CVSS 2.0; no EPSS score",
        ),
        (
            &distro,
            Some("untriaged"),
            Tier::P2,
            "P2: assumed CVSS 7.0 >= 7.0; no CVSS score; distro severity \"untriaged\" not recognised; unknown severity assumed high (CVSS 7.0); no EPSS score",
        ),
        (
            &distro,
            None,
            Tier::P2,
            "P2: assumed CVSS 7.0 >= 7.0; no CVSS score and no distro severity; unknown severity assumed high (CVSS 7.0); no EPSS score",
        ),
        (
            &distro,
            Some("  "),
            Tier::P2,
            "P2: assumed CVSS 7.0 >= 7.0; no CVSS score and no distro severity; unknown severity assumed high (CVSS 7.0); no EPSS score",
        ),
        (
            &assume,
            Some("low"),
            Tier::P2,
            "P2: assumed CVSS 7.0 >= 7.0; no CVSS score; unknown severity assumed high (CVSS 7.0); no EPSS score",
        ),
        (
            &assume_critical,
            None,
            Tier::P1,
            "P1: assumed CVSS 9.0 >= 9.0; no CVSS score; unknown severity assumed critical (CVSS 9.0); no EPSS score",
        ),
    ];
    for (model, hint, tier, text) in cases {
        let mut i = input();
        i.severity_hint = hint.map(str::to_owned);
        let a = model.assess(&i);
        assert_eq!(a.tier, *tier, "{hint:?}");
        assert_eq!(summary(&a), *text, "{hint:?}");
    }
}

/// Reasons name where the severity came from (ADR 0013): a measured score its
/// source and version, an assumed one whose severity it was.
#[test]
fn reasons_name_the_source() {
    let model = RiskModel::default();
    let mut i = input();
    i.cvss = Some(9.8);
    i.cvss_source = Some("NVD, v3.1".into());
    let a = model.assess(&i);
    assert_eq!(a.reasons[0], "CVSS 9.8 (NVD, v3.1) >= 9.0");
    i.kev = Some(KevInfo {
        due_date: date(2026, 12, 1),
    });
    let a = model.assess(&i);
    assert_eq!(a.reasons[0], "in CISA KEV (due 2026-12-01)");
    assert_eq!(a.reasons[1], "CVSS 9.8 (NVD, v3.1)");
    i.kev = None;
    i.cvss = Some(3.6);
    i.cvss_source = Some("CNA cve@mitre.org, v3.1".into());
    assert_eq!(
        model.assess(&i).reasons[0],
        "CVSS 3.6 (CNA cve@mitre.org, v3.1) < 4.0"
    );
    i.cvss = None;
    i.cvss_source = None;
    i.severity_hint = Some("medium".into());
    i.severity_source = Some("Debian urgency".into());
    let a = model.assess(&i);
    assert_eq!(a.tier, Tier::P3);
    assert_eq!(a.reasons[0], "assumed CVSS 5.0 >= 4.0");
    assert!(
        a.reasons
            .contains(&"no CVSS score; Debian urgency \"medium\" taken as CVSS 5.0".to_string())
    );
    i.severity_hint = None;
    assert!(
        model
            .assess(&i)
            .reasons
            .iter()
            .any(|r| r.contains("unknown severity assumed high (CVSS 7.0)"))
    );
}

#[test]
fn a_measured_cvss_wins_over_the_severity_hint() {
    let mut i = input();
    i.cvss = Some(3.0);
    i.severity_hint = Some("critical".into());
    i.epss = Some(0.0);
    assert_eq!(summary(&assess(&i)), "P4: CVSS 3.0 < 4.0");
}

#[test]
fn the_severity_map_is_configurable() {
    let mut model = RiskModel::default();
    model.severity_cvss.insert("untriaged".into(), 9.5);
    let mut i = input();
    i.severity_hint = Some("untriaged".into());
    assert_eq!(model.assess(&i).tier, Tier::P1);
}

#[test]
fn assumed_cvss_takes_part_in_the_epss_rules() {
    let mut i = input();
    i.epss = Some(0.2);
    let a = assess(&i);
    assert_eq!(a.tier, Tier::P1);
    assert_eq!(a.reasons[0], "assumed CVSS 7.0 >= 7.0 with EPSS 0.2 >= 0.1");
}

#[test]
fn missing_and_invalid_epss() {
    // No EPSS: the EPSS conditions do not fire, and the reasons say so.
    let mut i = input();
    i.cvss = Some(7.0);
    i.exposure = INET;
    let a = assess(&i);
    assert_eq!(a.tier, Tier::P2);
    assert_eq!(
        summary(&a),
        "P2: CVSS 7.0 >= 7.0; asset internet-facing; no EPSS score"
    );
    // Out of range: ignored, said so, and treated as missing.
    i.epss = Some(1.5);
    let a = assess(&i);
    assert_eq!(a.tier, Tier::P2);
    assert!(
        a.reasons
            .contains(&"EPSS 1.5 out of range 0-1, ignored".to_owned())
    );
    i.epss = Some(f64::NAN);
    assert_eq!(assess(&i).tier, Tier::P2);
}

#[test]
fn invalid_cvss_is_treated_as_missing() {
    let mut i = input();
    i.cvss = Some(11.0);
    i.epss = Some(0.0);
    i.severity_hint = Some("low".into());
    assert_eq!(
        summary(&assess(&i)),
        "P4: assumed CVSS 2.0 < 4.0; CVSS 11.0 out of range 0-10, ignored; distro severity \"low\" taken as CVSS 2.0"
    );
    i.cvss = Some(f64::NAN);
    i.severity_hint = None;
    let a = assess(&i);
    assert_eq!(a.tier, Tier::P2);
    assert!(a.reasons[1].starts_with("CVSS NaN out of range 0-10, ignored"));
}

#[test]
fn reasons_text() {
    // The example of the issue, exactly.
    let mut i = input();
    i.kev = kev(date(2026, 12, 1));
    i.exposure = INET;
    i.cvss = Some(9.8);
    i.epss = Some(0.3);
    let a = assess(&i);
    assert_eq!(
        summary(&a),
        "P0: in CISA KEV (due 2026-12-01); asset internet-facing"
    );
    assert_eq!(
        a.reasons,
        vec!["in CISA KEV (due 2026-12-01)", "asset internet-facing"]
    );

    let rows: &[(Option<f64>, Option<f64>, Exposure, &str)] = &[
        (
            Some(1.0),
            Some(0.62),
            INET,
            "P0: EPSS 0.62 >= 0.5; asset internet-facing",
        ),
        (
            Some(9.1),
            Some(0.0),
            INET,
            "P0: CVSS 9.1 >= 9.0; asset internet-facing",
        ),
        (Some(9.1), Some(0.0), INTERNAL, "P1: CVSS 9.1 >= 9.0"),
        (
            Some(7.5),
            Some(0.12345),
            INTERNAL,
            "P1: CVSS 7.5 >= 7.0 with EPSS 0.12345 >= 0.1",
        ),
        (Some(8.0), Some(0.05), INTERNAL, "P2: CVSS 8.0 >= 7.0"),
        (Some(5.0), Some(0.05), INTERNAL, "P3: CVSS 5.0 >= 4.0"),
        (Some(3.9), Some(0.05), INTERNAL, "P4: CVSS 3.9 < 4.0"),
        (
            Some(3.9),
            None,
            INTERNAL,
            "P4: CVSS 3.9 < 4.0; no EPSS score",
        ),
    ];
    for (cvss, epss, exposure, want) in rows {
        let mut i = input();
        i.cvss = *cvss;
        i.epss = *epss;
        i.exposure = *exposure;
        assert_eq!(summary(&assess(&i)), *want);
    }
}

#[test]
fn sla_start_is_the_later_of_first_seen_and_published() {
    let mut i = input();
    i.cvss = Some(7.5);
    // Not published: first seen.
    assert_eq!(assess(&i).sla_start, ts(FIRST_SEEN));
    // Published earlier: first seen.
    i.published = Some(ts("2026-01-01T00:00:00Z"));
    assert_eq!(assess(&i).sla_start, ts(FIRST_SEEN));
    // Published later: published.
    i.published = Some(ts("2026-11-25T08:00:00Z"));
    let a = assess(&i);
    assert_eq!(a.sla_start, ts("2026-11-25T08:00:00Z"));
    assert_eq!(a.due, ts("2026-12-09T08:00:00Z"));
    // Equal.
    i.published = Some(ts(FIRST_SEEN));
    assert_eq!(assess(&i).sla_start, ts(FIRST_SEEN));
}

#[test]
fn due_dates_per_tier() {
    let rows: &[(Option<f64>, Exposure, Tier, &str)] = &[
        (Some(9.8), INET, Tier::P0, "2026-11-23T10:00:00Z"),
        (Some(9.8), INTERNAL, Tier::P1, "2026-11-27T10:00:00Z"),
        (Some(7.5), INTERNAL, Tier::P2, "2026-12-04T10:00:00Z"),
        (Some(5.0), INTERNAL, Tier::P3, "2026-12-20T10:00:00Z"),
        (Some(1.0), INTERNAL, Tier::P4, "2027-02-18T10:00:00Z"),
    ];
    for (cvss, exposure, tier, due) in rows {
        let mut i = input();
        i.cvss = *cvss;
        i.exposure = *exposure;
        let a = assess(&i);
        assert_eq!(a.tier, *tier);
        assert_eq!(a.due, ts(due), "{tier}");
        assert!(!a.is_overdue(ts(due)));
        assert!(a.is_overdue(ts(due) + SignedDuration::from_secs(1)));
    }
    // A policy's SLA is used.
    let model = RiskModel {
        sla: [SignedDuration::from_hours(24); 5],
        ..RiskModel::default()
    };
    let mut i = input();
    i.cvss = Some(1.0);
    assert_eq!(model.assess(&i).due, ts("2026-11-21T10:00:00Z"));
}

#[test]
fn kev_due_dates_are_honoured() {
    // KEV due date earlier than the 72h SLA: it governs, at the end of its day UTC.
    let mut i = input();
    i.kev = kev(date(2026, 11, 21));
    i.cvss = Some(9.8);
    i.epss = Some(0.9);
    let a = assess(&i);
    assert_eq!(a.tier, Tier::P0);
    assert_eq!(a.due, ts("2026-11-21T23:59:59Z"));
    assert_eq!(
        summary(&a),
        "P0: in CISA KEV (due 2026-11-21); due 2026-11-21 by the CISA KEV due date, before the 72h SLA"
    );

    // Later than the SLA: the SLA governs, and nothing more is said.
    i.kev = kev(date(2026, 12, 31));
    let a = assess(&i);
    assert_eq!(a.due, ts("2026-11-23T10:00:00Z"));
    assert_eq!(summary(&a), "P0: in CISA KEV (due 2026-12-31)");

    // Equal: the SLA.
    let mut j = i.clone();
    j.first_seen = ts("2026-11-18T23:59:59Z");
    j.kev = kev(date(2026, 11, 21));
    let a = assess(&j);
    assert_eq!(a.due, ts("2026-11-21T23:59:59Z"));
    assert_eq!(a.reasons.len(), 1);

    // Lowered by isolation to P1 (7 days), the KEV date still caps the due date.
    i.exposure = ISOLATED;
    i.kev = kev(date(2026, 11, 22));
    let a = assess(&i);
    assert_eq!(a.tier, Tier::P1);
    assert_eq!(a.due, ts("2026-11-22T23:59:59Z"));
    assert!(a.reasons.last().unwrap().ends_with("before the 7d SLA"));

    // A KEV due date already past: overdue at once.
    i.kev = kev(date(2026, 1, 15));
    let a = assess(&i);
    assert_eq!(a.due, ts("2026-01-15T23:59:59Z"));
    assert!(a.is_overdue(ts(FIRST_SEEN)));

    // With the KEV rule off, the entry still caps the due date.
    let model = RiskModel {
        kev_is_p0: false,
        ..RiskModel::default()
    };
    let mut i = input();
    i.cvss = Some(5.0);
    i.epss = Some(0.0);
    i.kev = kev(date(2026, 11, 30));
    let a = model.assess(&i);
    assert_eq!(a.tier, Tier::P3);
    assert_eq!(a.due, ts("2026-11-30T23:59:59Z"));
    assert_eq!(
        summary(&a),
        "P3: CVSS 5.0 >= 4.0; due 2026-11-30 by the CISA KEV due date, before the 30d SLA"
    );
}

#[test]
fn kev_due_instant_is_the_end_of_the_day_utc() {
    assert_eq!(
        kev_due_instant(date(2026, 12, 1)),
        ts("2026-12-01T23:59:59Z")
    );
    // The last representable days do not panic.
    let _ = kev_due_instant(Date::MAX);
    let _ = kev_due_instant(Date::MIN);
}

#[test]
fn score_formula() {
    // 40 × 9.8/10 + 25 × 0.5 + 15 + 10 + 10
    let mut i = input();
    i.cvss = Some(9.8);
    i.epss = Some(0.5);
    i.kev = kev(date(2027, 1, 1));
    i.business_impact = CRITICAL;
    i.exposure = INET;
    assert_eq!(assess(&i).score, 86.7);
    // The maximum.
    i.cvss = Some(10.0);
    i.epss = Some(1.0);
    assert_eq!(assess(&i).score, 100.0);
    // The minimum.
    let mut i = input();
    i.cvss = Some(0.0);
    i.business_impact = BusinessImpact::Low;
    i.exposure = ISOLATED;
    assert_eq!(assess(&i).score, 2.0);
    // Assumed CVSS counts; missing EPSS counts 0: 40 × 0.7 + 4 + 4.
    assert_eq!(assess(&input()).score, 36.0);
}

#[test]
fn score_ranks_within_a_tier() {
    let mut a = input();
    a.cvss = Some(7.2);
    a.epss = Some(0.01);
    let mut b = a.clone();
    b.epss = Some(0.05);
    let mut c = a.clone();
    c.cvss = Some(8.8);
    let (sa, sb, sc) = (assess(&a), assess(&b), assess(&c));
    assert!([sa.tier, sb.tier, sc.tier].iter().all(|t| *t == Tier::P2));
    assert!(sa.score < sb.score && sb.score < sc.score);
}

#[test]
fn tier_basics() {
    assert!(Tier::P0 < Tier::P1 && Tier::P3 < Tier::P4);
    let mut v = vec![Tier::P3, Tier::P0, Tier::P4, Tier::P1];
    v.sort();
    assert_eq!(v, [Tier::P0, Tier::P1, Tier::P3, Tier::P4]);
    for (i, t) in Tier::ALL.into_iter().enumerate() {
        assert_eq!(t.to_string().parse::<Tier>().unwrap(), t);
        assert_eq!(Tier::from_index(i), Some(t));
        assert_eq!(t.index(), i);
    }
    assert_eq!(Tier::P0.raised(), Tier::P0);
    assert_eq!(Tier::P4.lowered(), Tier::P4);
    assert_eq!(Tier::P2.raised(), Tier::P1);
    assert_eq!(Tier::P2.lowered(), Tier::P3);
    assert!("p0".parse::<Tier>().is_err());
    assert!("P5".parse::<Tier>().unwrap_err().contains("P0, P1"));
    assert_eq!(Tier::from_index(5), None);
}

#[test]
fn durations() {
    use patchbay_core::when::format_duration;
    let parse_duration = |s| patchbay_core::when::sla_duration("", s);
    for (text, hours) in [("72h", 72), ("7d", 168), ("1h", 1), ("3650d", 87600)] {
        assert_eq!(
            parse_duration(text).unwrap(),
            SignedDuration::from_hours(hours),
            "{text}"
        );
    }
    for bad in [
        "",
        "h",
        "7",
        "7x",
        "0h",
        "0d",
        "-1d",
        "+1d",
        "1.5d",
        "7 d",
        "3651d",
        "99999999999999999999d",
        // Found by the policy_toml fuzz target: a multi-byte last character
        // made the parser slice inside it and panic.
        "2\u{313}",
        "7\u{e9}",
        "\u{e9}",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        parse_duration("7x").unwrap_err().to_string(),
        "invalid duration \"7x\" (use e.g. 72h or 7d)"
    );
    let shown: Vec<String> = patchbay_core::risk::DEFAULT_SLA
        .iter()
        .map(|d| format_duration(*d))
        .collect();
    assert_eq!(shown, ["72h", "7d", "14d", "30d", "90d"]);
    assert_eq!(format_duration(SignedDuration::from_hours(36)), "36h");
    assert_eq!(format_duration(SignedDuration::from_hours(96)), "4d");
    assert_eq!(format_duration(SignedDuration::from_hours(48)), "48h");
}

fn any_exposure() -> impl Strategy<Value = Exposure> {
    prop::sample::select(Exposure::ALL.to_vec())
}

fn any_impact() -> impl Strategy<Value = BusinessImpact> {
    prop::sample::select(BusinessImpact::ALL.to_vec())
}

proptest! {
    /// More severe or more likely never makes a finding less urgent.
    #[test]
    fn monotonic_in_cvss_and_epss(
        c1 in 0.0f64..=10.0, c2 in 0.0f64..=10.0,
        e1 in 0.0f64..=1.0, e2 in 0.0f64..=1.0,
        kev_on in any::<bool>(),
        exposure in any_exposure(), impact in any_impact(),
    ) {
        let mut lo = input();
        lo.exposure = exposure;
        lo.business_impact = impact;
        lo.kev = if kev_on { kev(date(2027, 1, 1)) } else { None };
        lo.cvss = Some(c1.min(c2));
        lo.epss = Some(e1.min(e2));
        let mut hi = lo.clone();
        hi.cvss = Some(c1.max(c2));
        hi.epss = Some(e1.max(e2));
        let (a, b) = (assess(&lo), assess(&hi));
        prop_assert!(b.tier <= a.tier);
        prop_assert!(b.score >= a.score);
        prop_assert!((2.0..=100.0).contains(&a.score));
    }

    /// Any input, however strange, gives an assessment whose due date is at most
    /// the SLA after its start, and a reason for its tier.
    #[test]
    fn never_panics(
        cvss in prop::option::of(prop::num::f64::ANY),
        epss in prop::option::of(prop::num::f64::ANY),
        hint in prop::option::of(".{0,12}"),
        kev_day in prop::option::of(-3000i32..3000),
        first in -10_000_000_000i64..10_000_000_000,
        published in prop::option::of(-10_000_000_000i64..10_000_000_000),
        exposure in any_exposure(), impact in any_impact(),
    ) {
        let base = date(2026, 6, 1);
        let i = RiskInput {
            cvss,
            cvss_source: None,
            severity_hint: hint,
            severity_source: None,
            epss,
            kev: kev_day.map(|d| KevInfo {
                due_date: base.checked_add(jiff::Span::new().days(d)).unwrap(),
            }),
            business_impact: impact,
            exposure,
            first_seen: Timestamp::from_second(first).unwrap(),
            published: published.map(|p| Timestamp::from_second(p).unwrap()),
        };
        let model = RiskModel::default();
        let a = model.assess(&i);
        prop_assert!(!a.reasons.is_empty());
        prop_assert!(a.score.is_finite());
        prop_assert!(a.sla_start >= i.first_seen);
        prop_assert!(a.due <= a.sla_start + model.sla_for(a.tier));
        prop_assert!(summary(&a).starts_with(a.tier.as_str()));
    }
}

mod classify_agrees_with_assess {
    use jiff::{SignedDuration, Timestamp};
    use patchbay_core::asset::{BusinessImpact, Exposure};
    use patchbay_core::risk::{KevInfo, RiskInput, RiskModel};
    use proptest::prelude::*;

    fn impact() -> impl Strategy<Value = BusinessImpact> {
        prop::sample::select(BusinessImpact::ALL.to_vec())
    }
    fn exposure() -> impl Strategy<Value = Exposure> {
        prop::sample::select(Exposure::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn same_tier_score_and_due(
            cvss in prop::option::of(-1.0f64..11.0),
            hint in prop::option::of(prop::sample::select(vec!["High", "critical", "moderate", "unimportant", "weird", "", " LOW* "])),
            epss in prop::option::of(-0.2f64..1.2),
            kev in prop::option::of(0i64..400),
            impact in impact(),
            exposure in exposure(),
            seen in 0i64..10_000,
            published in prop::option::of(0i64..10_000),
            assume in any::<bool>(),
        ) {
            let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
            let mut model = RiskModel::default();
            if assume {
                model.missing_cvss = patchbay_core::risk::MissingCvss::Assume;
            }
            let input = RiskInput {
                cvss,
                cvss_source: None,
                severity_hint: hint.map(str::to_string),
                severity_source: None,
                epss,
                kev: kev.map(|d| KevInfo { due_date: "2026-01-01".parse::<jiff::civil::Date>().unwrap() + jiff::Span::new().days(d) }),
                business_impact: impact,
                exposure,
                first_seen: t0 + SignedDuration::from_hours(seen),
                published: published.map(|p| t0 + SignedDuration::from_hours(p)),
            };
            let a = model.assess(&input);
            let c = model.classify(&input);
            prop_assert_eq!(c.tier, a.tier);
            prop_assert_eq!(c.due, a.due);
            prop_assert_eq!(c.score, a.score);
        }
    }
}
