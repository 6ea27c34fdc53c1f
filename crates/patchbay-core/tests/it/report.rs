//! Reports on a hand-computed fixture history: the figures below were worked
//! out by hand from the table in `history()`.

use jiff::Timestamp;
use patchbay_core::exception::{Exception, Scope};
use patchbay_core::report::{
    AssetRecord, FindingRecord, History, State, compliance, controls, coverage, sla_adherence,
    state, stats, time_to_patch,
};
use patchbay_core::risk::Tier;

fn ts(s: &str) -> Timestamp {
    format!("{s}T00:00:00Z").parse().unwrap()
}

const AS_OF: &str = "2026-06-01";

/// (asset, tier, first seen, resolved, due, cve)
type Row = (
    usize,
    Tier,
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
);

fn history() -> History {
    let asset = |name: &str,
                 owner: &str,
                 group: &str,
                 managed: bool,
                 created: &str,
                 seen: Option<Timestamp>| AssetRecord {
        name: name.into(),
        owner: owner.into(),
        groups: if group.is_empty() {
            vec![]
        } else {
            vec![group.into()]
        },
        managed,
        created_at: ts(created),
        last_seen: seen,
    };
    let as_of = ts(AS_OF);
    let assets = vec![
        asset(
            "web-1",
            "web-team",
            "web",
            true,
            "2026-01-01",
            Some(as_of - jiff::SignedDuration::from_hours(1)),
        ),
        asset(
            "db-1",
            "data",
            "db",
            true,
            "2026-01-01",
            Some(as_of - jiff::SignedDuration::from_hours(30)),
        ),
        asset("sw-1", "", "", false, "2026-01-02", Some(ts("2026-01-02"))),
        asset("late-1", "web-team", "web", true, "2026-07-01", None),
    ];
    // (asset, tier, first seen, resolved, due, cve)
    let rows: &[Row] = &[
        (
            0,
            Tier::P1,
            "2026-05-01",
            Some("2026-05-03"),
            "2026-05-08",
            "CVE-1",
        ), // 48 h, in SLA
        (
            0,
            Tier::P1,
            "2026-05-01",
            Some("2026-05-11"),
            "2026-05-08",
            "CVE-2",
        ), // 240 h, late
        (
            1,
            Tier::P1,
            "2026-05-01",
            Some("2026-05-02"),
            "2026-05-08",
            "CVE-3",
        ), // 24 h
        (
            1,
            Tier::P1,
            "2026-05-01",
            Some("2026-05-05"),
            "2026-05-08",
            "CVE-4",
        ), // 96 h
        (1, Tier::P1, "2026-05-20", None, "2026-05-27", "CVE-5"), // overdue
        (0, Tier::P2, "2026-05-25", None, "2026-06-08", "CVE-6"), // within SLA
        (
            1,
            Tier::P2,
            "2026-04-01",
            Some("2026-06-05"),
            "2026-04-15",
            "CVE-7",
        ), // excepted
        (
            0,
            Tier::P2,
            "2026-05-10",
            Some("2026-05-12"),
            "2026-05-24",
            "CVE-8",
        ), // 48 h
        (0, Tier::P3, "2026-07-01", None, "2026-07-31", "CVE-9"), // not yet
    ];
    let findings = rows
        .iter()
        .map(|(a, tier, first, res, due, cve)| FindingRecord {
            asset: *a,
            advisory: format!("DSA-{cve}"),
            cves: vec![cve.to_string()],
            package: "pkg".into(),
            source_package: "pkg".into(),
            tier: *tier,
            first_seen: ts(first),
            resolved_at: res.map(ts),
            due: ts(due),
            fixable: true,
        })
        .collect();
    let exceptions = vec![Exception {
        id: "EXC-2026-0001".into(),
        advisory: "CVE-7".into(),
        package: String::new(),
        scope: Scope::Asset("db-1".into()),
        created_at: ts("2026-05-01"),
        expires_at: ts("2026-07-01"),
        revoked_at: None,
    }];
    History {
        assets,
        findings,
        exceptions,
        deployments: vec![],
    }
}

#[test]
fn finding_states() {
    let h = history();
    let t = ts(AS_OF);
    let got: Vec<State> = h.findings.iter().map(|f| state(&h, f, t)).collect();
    use State::*;
    assert_eq!(
        got,
        vec![
            Patched, Patched, Patched, Patched, Overdue, WithinSla, Excepted, Patched, Unknown
        ]
    );
    // Before the exception, finding 7 was simply overdue.
    assert_eq!(state(&h, &h.findings[6], ts("2026-04-20")), Overdue);
}

#[test]
fn time_to_patch_by_hand() {
    let r = time_to_patch(&history(), ts(AS_OF));
    let p1 = r.by_tier["P1"];
    // 24, 48, 96, 240 h: mean 102, median (48 + 96) / 2 = 72, p90 = 4th of 4 = 240.
    assert_eq!(
        (p1.count, p1.mean_hours, p1.median_hours, p1.p90_hours),
        (4, 102.0, 72.0, 240.0)
    );
    let p2 = r.by_tier["P2"];
    // Only CVE-8 (48 h): CVE-7 was resolved after the date.
    assert_eq!((p2.count, p2.median_hours), (1, 48.0));
    assert_eq!(r.by_tier["P0"].count, 0);
    // All: 24, 48, 48, 96, 240: mean 91.2, median 48, p90 = ⌈4.5⌉ = 5th = 240.
    assert_eq!(
        (
            r.all.count,
            r.all.mean_hours,
            r.all.median_hours,
            r.all.p90_hours
        ),
        (5, 91.2, 48.0, 240.0)
    );
    // As of 2026-05-09 CVE-2 was not patched yet: 24, 48, 96 → median 48.
    let early = time_to_patch(&history(), ts("2026-05-09"));
    assert_eq!(early.by_tier["P1"].median_hours, 48.0);
    // Nearest rank on ten values: p90 is the 9th.
    let mut v: Vec<i64> = (1..=10).map(|h| h * 3600).collect();
    assert_eq!(stats(&mut v).p90_hours, 9.0);
}

#[test]
fn sla_adherence_by_hand() {
    let r = sla_adherence(&history(), ts(AS_OF));
    let p1 = r.by_tier["P1"];
    assert_eq!(
        (p1.resolved, p1.resolved_in_sla, p1.resolved_in_sla_pct),
        (4, 3, 75.0)
    );
    assert_eq!((p1.open, p1.open_overdue, p1.excepted), (1, 1, 0));
    let p2 = r.by_tier["P2"];
    assert_eq!(
        (
            p2.resolved,
            p2.resolved_in_sla,
            p2.open,
            p2.open_overdue,
            p2.excepted
        ),
        (1, 1, 1, 0, 1)
    );
    assert_eq!(
        (
            r.all.resolved,
            r.all.resolved_in_sla,
            r.all.resolved_in_sla_pct
        ),
        (5, 4, 80.0)
    );
    assert_eq!((r.all.open, r.all.open_overdue, r.all.excepted), (2, 1, 1));
}

#[test]
fn compliance_by_hand() {
    let r = compliance(&history(), ts(AS_OF));
    // late-1 did not exist yet.
    assert_eq!(
        (
            r.total.assets,
            r.total.compliant_assets,
            r.total.compliant_pct
        ),
        (3, 2, 66.7)
    );
    let f = r.total.findings;
    assert_eq!(
        (f.patched, f.within_sla, f.overdue, f.excepted),
        (5, 1, 1, 1)
    );
    let by = |v: &Vec<patchbay_core::report::ComplianceLine>, n: &str| {
        v.iter().find(|l| l.name == n).cloned().unwrap()
    };
    let db = by(&r.by_asset, "db-1");
    assert_eq!(
        (
            db.compliant_assets,
            db.findings.overdue,
            db.findings.excepted,
            db.findings.patched
        ),
        (0, 1, 1, 2)
    );
    let web = by(&r.by_asset, "web-1");
    assert_eq!(
        (
            web.compliant_assets,
            web.findings.within_sla,
            web.findings.patched
        ),
        (1, 1, 3)
    );
    assert_eq!(by(&r.by_owner, "(no owner)").assets, 1);
    assert_eq!(by(&r.by_owner, "data").compliant_pct, 0.0);
    assert_eq!(by(&r.by_owner, "web-team").compliant_pct, 100.0);
    assert_eq!(by(&r.by_group, "db").compliant_assets, 0);
    assert_eq!(by(&r.by_group, "web").assets, 1);
    // On 2026-05-09, CVE-2 (due 05-08) was open on web-1: not compliant then.
    let early = compliance(&history(), ts("2026-05-09"));
    assert_eq!(by(&early.by_asset, "web-1").compliant_assets, 0);
    // What each asset's data says: web-1 (fresh, CVE-6 open within SLA)
    // misses a patch; db-1 (stale, CVE-5 overdue) is overdue; sw-1 (imported,
    // nothing ever found) is unknown; nobody is fully patched.
    let s = r.total.status;
    assert_eq!(
        (
            s.fully_patched,
            s.missing_within_sla,
            s.overdue,
            s.excepted,
            s.unknown
        ),
        (0, 1, 1, 0, 1)
    );
    assert_eq!(r.total.fully_patched_pct, 0.0);
    assert_eq!(by(&r.by_asset, "sw-1").status.unknown, 1);
}

/// Compliance honesty (issue 17): open findings none of which is overdue
/// give 0 % fully patched and 100 % within SLA; a host that stopped
/// reporting is unknown, not patched; one with fresh data and nothing open is
/// fully patched; one whose only open finding is excepted is "excepted".
#[test]
fn compliance_says_what_is_patched_and_what_is_not() {
    let as_of = ts(AS_OF);
    let seen = |h: i64| Some(as_of - jiff::SignedDuration::from_hours(h));
    let asset = |name: &str, seen: Option<Timestamp>| AssetRecord {
        name: name.into(),
        owner: "noc".into(),
        groups: vec![],
        managed: true,
        created_at: ts("2026-01-01"),
        last_seen: seen,
    };
    let open = |a: usize, cve: &str, due: &str| FindingRecord {
        asset: a,
        advisory: format!("DSA-{cve}"),
        cves: vec![cve.to_string()],
        package: "pkg".into(),
        source_package: "pkg".into(),
        tier: Tier::P2,
        first_seen: ts("2026-05-25"),
        resolved_at: None,
        due: ts(due),
        fixable: true,
    };
    let mut h = History {
        assets: vec![asset("a", seen(1)), asset("b", seen(2))],
        findings: vec![
            open(0, "CVE-10", "2026-06-08"),
            open(1, "CVE-11", "2026-06-09"),
        ],
        exceptions: vec![],
        deployments: vec![],
    };
    let r = compliance(&h, as_of);
    assert_eq!(r.total.fully_patched_pct, 0.0);
    assert_eq!(r.total.compliant_pct, 100.0);
    assert_eq!(r.total.status.missing_within_sla, 2);
    // A silent host (last seen 2 days ago) with nothing open is not patched.
    h.assets.push(asset("silent", seen(48)));
    // A fresh host with nothing open is; one whose only finding is excepted is not.
    h.assets.push(asset("clean", seen(1)));
    h.assets.push(asset("waived", seen(1)));
    let mut waived = open(4, "CVE-12", "2026-05-30");
    waived.first_seen = ts("2026-05-20");
    h.findings.push(waived);
    h.exceptions.push(Exception {
        id: "EXC-2026-0002".into(),
        advisory: "CVE-12".into(),
        package: String::new(),
        scope: Scope::Asset("waived".into()),
        created_at: ts("2026-05-21"),
        expires_at: ts("2026-07-01"),
        revoked_at: None,
    });
    let r = compliance(&h, as_of);
    let s = r.total.status;
    assert_eq!(
        (
            s.fully_patched,
            s.missing_within_sla,
            s.overdue,
            s.excepted,
            s.unknown
        ),
        (1, 2, 0, 1, 1)
    );
    assert_eq!(r.total.fully_patched_pct, 20.0);
    assert_eq!(r.total.compliant_pct, 100.0);
}

#[test]
fn coverage_by_hand() {
    let c = coverage(&history(), ts(AS_OF));
    assert_eq!(
        (c.known, c.managed, c.unmanaged, c.seen_24h, c.seen_24h_pct),
        (3, 2, 1, 1, 33.3)
    );
    assert_eq!(c.stale, vec!["db-1".to_string()]);
}

#[test]
fn every_report_names_its_controls() {
    for r in [
        "compliance",
        "ttp",
        "sla",
        "coverage",
        "exceptions",
        "audit",
        "changes",
    ] {
        assert!(!controls(r).is_empty(), "{r}");
    }
    let ids: Vec<&str> = [
        "compliance",
        "ttp",
        "sla",
        "coverage",
        "exceptions",
        "audit",
        "changes",
    ]
    .iter()
    .flat_map(|r| controls(r).iter().map(|c| c.id))
    .collect();
    for want in [
        "SI-2",
        "RA-5",
        "7.1",
        "A.8.8",
        "A.8.32",
        "6.3.3",
        "CC7.1",
        "CC8.1",
        "KEV due dates",
    ] {
        assert!(ids.contains(&want), "{want} is mapped");
    }
}
