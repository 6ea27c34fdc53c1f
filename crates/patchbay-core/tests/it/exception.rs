//! The exception register: lifetimes at their boundaries, what an exception
//! covers, and the review lists.

use jiff::{SignedDuration, Timestamp};
use patchbay_core::exception::{
    Exception, FindingFacts, Scope, Status, check_expiry, excepting, review,
};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn exc(id: &str, advisory: &str, package: &str, scope: Scope) -> Exception {
    Exception {
        id: id.into(),
        advisory: advisory.into(),
        package: package.into(),
        scope,
        created_at: ts("2026-11-01T00:00:00Z"),
        expires_at: ts("2026-12-01T00:00:00Z"),
        revoked_at: None,
    }
}

fn facts<'a>(asset: &'a str, groups: &'a [String], cves: &'a [String]) -> FindingFacts<'a> {
    FindingFacts {
        asset,
        groups,
        advisory: "DSA-5678-1",
        cves,
        package: "libssl3",
        source_package: "openssl",
    }
}

#[test]
fn lifetime_boundaries() {
    let mut e = exc(
        "EXC-2026-0001",
        "CVE-2024-1",
        "",
        Scope::Asset("web-1".into()),
    );
    assert_eq!(e.status(ts("2026-10-31T23:59:59Z")), Status::Future);
    assert_eq!(e.status(ts("2026-11-01T00:00:00Z")), Status::Active);
    assert_eq!(e.status(ts("2026-11-30T23:59:59Z")), Status::Active);
    assert_eq!(e.status(ts("2026-12-01T00:00:00Z")), Status::Expired);
    e.revoked_at = Some(ts("2026-11-10T00:00:00Z"));
    assert_eq!(e.status(ts("2026-11-09T23:59:59Z")), Status::Active);
    assert_eq!(e.status(ts("2026-11-10T00:00:00Z")), Status::Revoked);
    assert_eq!(e.status(ts("2026-12-05T00:00:00Z")), Status::Revoked);
    assert_eq!(e.ends_at(), ts("2026-11-10T00:00:00Z"));
    // Revoked after it had expired: it expired.
    e.revoked_at = Some(ts("2026-12-02T00:00:00Z"));
    assert_eq!(e.status(ts("2026-12-03T00:00:00Z")), Status::Expired);
    assert_eq!(e.ends_at(), ts("2026-12-01T00:00:00Z"));
}

#[test]
fn what_an_exception_covers() {
    let groups = vec!["web-prod".to_string()];
    let cves = vec!["CVE-2024-1".to_string(), "CVE-2024-2".to_string()];
    let f = facts("web-1", &groups, &cves);
    let cases: &[(&str, &str, Scope, bool)] = &[
        ("CVE-2024-1", "", Scope::Asset("web-1".into()), true),
        ("cve-2024-2", "", Scope::Asset("WEB-1".into()), true),
        ("DSA-5678-1", "", Scope::Asset("web-1".into()), true),
        ("CVE-2024-9", "", Scope::Asset("web-1".into()), false),
        ("CVE-2024-1", "", Scope::Asset("web-2".into()), false),
        ("CVE-2024-1", "", Scope::Group("web-prod".into()), true),
        ("CVE-2024-1", "", Scope::Group("db".into()), false),
        ("", "openssl", Scope::Group("web-prod".into()), true),
        ("", "libssl3", Scope::Asset("web-1".into()), true),
        ("", "nginx", Scope::Asset("web-1".into()), false),
        ("CVE-2024-1", "openssl", Scope::Asset("web-1".into()), true),
        ("CVE-2024-1", "nginx", Scope::Asset("web-1".into()), false),
    ];
    for (adv, pkg, scope, want) in cases {
        let e = exc("E", adv, pkg, scope.clone());
        assert_eq!(e.covers(&f), *want, "{adv} {pkg} {scope:?}");
    }
    let list = vec![
        exc("A", "CVE-2024-9", "", Scope::Asset("web-1".into())),
        exc("B", "CVE-2024-1", "", Scope::Asset("web-1".into())),
    ];
    assert_eq!(
        excepting(&list, &f, ts("2026-11-15T00:00:00Z")).map(|e| e.id.as_str()),
        Some("B")
    );
    assert!(excepting(&list, &f, ts("2026-12-15T00:00:00Z")).is_none());
}

#[test]
fn expiry_checks_name_the_field() {
    let now = ts("2026-11-24T00:00:00Z");
    assert!(check_expiry(now, now + SignedDuration::from_hours(24)).is_ok());
    assert!(check_expiry(now, now).unwrap_err().starts_with("expires:"));
    assert!(
        check_expiry(now, now + SignedDuration::from_hours(367 * 24))
            .unwrap_err()
            .contains("366 days")
    );
}

#[test]
fn review_lists() {
    let now = ts("2026-11-24T00:00:00Z");
    let mut soon = exc("SOON", "CVE-1", "", Scope::Asset("a".into()));
    soon.expires_at = now + SignedDuration::from_hours(7 * 24);
    let mut later = exc("LATER", "CVE-1", "", Scope::Asset("a".into()));
    later.expires_at = now + SignedDuration::from_hours(7 * 24 + 1);
    let mut gone = exc("GONE", "CVE-1", "", Scope::Asset("a".into()));
    gone.expires_at = now;
    let mut revoked = exc("REV", "CVE-1", "", Scope::Asset("a".into()));
    revoked.revoked_at = Some(now - SignedDuration::from_hours(1));
    let mut orphan = exc("ORPHAN", "CVE-1", "", Scope::Group("g".into()));
    orphan.expires_at = now + SignedDuration::from_hours(30 * 24);
    let items = [
        (&soon, "team-a"),
        (&later, "team-a"),
        (&gone, "team-a"),
        (&revoked, "team-a"),
        (&orphan, "team-x"),
    ];
    let r = review(items, now, |e| match &e.scope {
        Scope::Asset(_) => vec!["team-a".into()],
        Scope::Group(_) => vec!["team-b".into(), "team-c".into()],
    });
    assert_eq!(r.expiring, vec!["SOON"]);
    assert_eq!(r.expired, vec!["GONE"]);
    assert_eq!(r.ownerless, vec!["ORPHAN"]);
}
