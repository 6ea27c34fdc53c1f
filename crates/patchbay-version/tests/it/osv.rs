//! OSV range evaluation: the schema's examples and pseudocode semantics, event
//! sorting, limits, `versions`, SEMVER/GIT ranges, errors.

use patchbay_version::osv::{Event, Range, RangeKind, Verdict, evaluate};
use patchbay_version::{Scheme, VersionError};

fn intro(s: &str) -> Event {
    Event::Introduced(s.into())
}
fn fixed(s: &str) -> Event {
    Event::Fixed(s.into())
}
fn last(s: &str) -> Event {
    Event::LastAffected(s.into())
}
fn limit(s: &str) -> Event {
    Event::Limit(s.into())
}
fn eco(events: Vec<Event>) -> Range {
    Range {
        kind: RangeKind::Ecosystem,
        events,
    }
}
fn semver(events: Vec<Event>) -> Range {
    Range {
        kind: RangeKind::Semver,
        events,
    }
}

fn eval(scheme: Scheme, ranges: &[Range], installed: &str) -> Verdict {
    evaluate(scheme, ranges, &[], installed).unwrap_or_else(|e| panic!("{e}"))
}

fn affected(fix: Option<&str>) -> Verdict {
    Verdict {
        affected: true,
        fixed: fix.map(str::to_owned),
    }
}

fn unaffected() -> Verdict {
    Verdict::default()
}

/// The schema's examples ("Unfixed", "Fixed", "Multiple range").
#[test]
fn schema_examples() {
    let all = [semver(vec![intro("0")])];
    assert_eq!(eval(Scheme::Semver, &all, "0.0.0"), affected(None));
    assert_eq!(eval(Scheme::Semver, &all, "99.0.0"), affected(None));

    let fixed_102 = [semver(vec![intro("0"), fixed("1.0.2")])];
    assert_eq!(
        eval(Scheme::Semver, &fixed_102, "1.0.1"),
        affected(Some("1.0.2"))
    );
    assert_eq!(
        eval(Scheme::Semver, &fixed_102, "1.0.2-rc.1"),
        affected(Some("1.0.2"))
    );
    assert_eq!(eval(Scheme::Semver, &fixed_102, "1.0.2"), unaffected());

    let multi = [semver(vec![
        intro("1.0.0"),
        fixed("1.0.2"),
        intro("3.0.0"),
        fixed("3.2.5"),
    ])];
    for (v, want) in [
        ("0.9.0", unaffected()),
        ("1.0.0", affected(Some("1.0.2"))),
        ("1.0.1", affected(Some("1.0.2"))),
        ("1.0.2", unaffected()),
        ("2.9.9", unaffected()),
        ("3.0.0", affected(Some("3.2.5"))),
        ("3.2.4", affected(Some("3.2.5"))),
        ("3.2.5", unaffected()),
    ] {
        assert_eq!(eval(Scheme::Semver, &multi, v), want, "{v}");
    }
}

/// Events may be in any order: they are sorted by the scheme's order first (a
/// string sort would put `1.10` before `1.9`).
#[test]
fn events_are_sorted_by_scheme_order() {
    let shuffled = [eco(vec![
        fixed("1.10-1"),
        intro("1.9-1"),
        fixed("1.2-1"),
        intro("0"),
    ])];
    assert_eq!(
        eval(Scheme::Deb, &shuffled, "1.1-1"),
        affected(Some("1.2-1"))
    );
    assert_eq!(eval(Scheme::Deb, &shuffled, "1.2-1"), unaffected());
    assert_eq!(eval(Scheme::Deb, &shuffled, "1.8-1"), unaffected());
    assert_eq!(
        eval(Scheme::Deb, &shuffled, "1.9-1"),
        affected(Some("1.10-1"))
    );
    assert_eq!(
        eval(Scheme::Deb, &shuffled, "1.10~rc1-1"),
        affected(Some("1.10-1"))
    );
    assert_eq!(eval(Scheme::Deb, &shuffled, "1.10-1"), unaffected());
}

/// `introduced: "0"` is before every version in every scheme, even dpkg's `0~`
/// and apk's `0_alpha`, and even though `0` is not valid SemVer.
#[test]
fn introduced_zero_is_the_bottom() {
    let r = [eco(vec![intro("0"), fixed("1")])];
    assert_eq!(eval(Scheme::Deb, &r, "0~~"), affected(Some("1")));
    assert_eq!(eval(Scheme::Rpm, &r, "0~1"), affected(Some("1")));
    assert_eq!(eval(Scheme::Apk, &r, "0_alpha"), affected(Some("1")));
    let s = [semver(vec![intro("0"), fixed("1.0.0")])];
    assert_eq!(eval(Scheme::Semver, &s, "0.0.0-0"), affected(Some("1.0.0")));
}

/// `last_affected` includes its version, `fixed` excludes it.
#[test]
fn last_affected_is_inclusive() {
    let r = [eco(vec![intro("1.0-r0"), last("1.2-r3")])];
    assert_eq!(eval(Scheme::Apk, &r, "0.9-r0"), unaffected());
    assert_eq!(eval(Scheme::Apk, &r, "1.0-r0"), affected(None));
    assert_eq!(eval(Scheme::Apk, &r, "1.2-r3"), affected(None));
    assert_eq!(eval(Scheme::Apk, &r, "1.2-r4"), unaffected());
    assert_eq!(eval(Scheme::Apk, &r, "1.2_p1-r0"), unaffected());
}

/// `limit` caps a range; `*` is infinity; several limits: below any of them.
#[test]
fn limits() {
    let r = [eco(vec![intro("0"), limit("2.0")])];
    assert_eq!(eval(Scheme::Rpm, &r, "1.9-1"), affected(None));
    assert_eq!(eval(Scheme::Rpm, &r, "2.0"), unaffected());
    assert_eq!(eval(Scheme::Rpm, &r, "2.0-1"), unaffected());
    let star = [eco(vec![intro("1.0"), limit("*")])];
    assert_eq!(eval(Scheme::Rpm, &star, "100"), affected(None));
    let two = [eco(vec![
        intro("0"),
        fixed("5.0"),
        limit("1.0"),
        limit("3.0"),
    ])];
    assert_eq!(eval(Scheme::Rpm, &two, "2.0"), affected(Some("5.0")));
    assert_eq!(eval(Scheme::Rpm, &two, "3.0"), unaffected());
}

/// The `versions` list makes a version affected (by the scheme's equality, so
/// `1.0` matches the listed `1.0-0` in dpkg), without a fixed version.
#[test]
fn versions_list() {
    let listed = vec!["1.0-0".to_owned(), "not a version".to_owned()];
    let v = evaluate(Scheme::Deb, &[], &listed, "1.0").unwrap();
    assert_eq!(v, affected(None));
    let v = evaluate(Scheme::Deb, &[], &listed, "1.0-1").unwrap();
    assert_eq!(v, unaffected());
    // Listed and in a range: the range gives the fix.
    let r = [eco(vec![intro("0"), fixed("2.0")])];
    let v = evaluate(Scheme::Deb, &r, &listed, "1.0").unwrap();
    assert_eq!(v, affected(Some("2.0")));
}

/// GIT ranges are skipped, whatever their events.
#[test]
fn git_ranges_are_ignored() {
    let g = [Range {
        kind: RangeKind::Git,
        events: vec![intro("0"), fixed("deadbeef")],
    }];
    assert_eq!(eval(Scheme::Deb, &g, "1.0"), unaffected());
    let listed = vec!["1.0".to_owned()];
    assert_eq!(
        evaluate(Scheme::Deb, &g, &listed, "1.0").unwrap(),
        affected(None)
    );
}

/// A SEMVER range in a non-SemVer package compares the installed version as
/// SemVer: it must be valid SemVer (strict: no `v`, no missing components).
#[test]
fn semver_ranges_use_semver() {
    let r = [semver(vec![intro("1.2.0"), fixed("1.10.0")])];
    assert_eq!(eval(Scheme::Apk, &r, "1.9.0"), affected(Some("1.10.0")));
    assert_eq!(eval(Scheme::Apk, &r, "1.10.0"), unaffected());
    let e = evaluate(Scheme::Apk, &r, &[], "1.9").unwrap_err();
    assert_eq!((e.scheme, e.version.as_str()), (Scheme::Semver, "1.9"));
    let bad = [semver(vec![intro("v1.2.0")])];
    let e = evaluate(Scheme::Semver, &bad, &[], "1.2.0").unwrap_err();
    assert_eq!(e.version, "v1.2.0");
    // Build metadata does not take part in precedence.
    let b = [semver(vec![intro("0"), fixed("1.0.0+build.5")])];
    assert_eq!(eval(Scheme::Semver, &b, "1.0.0+build.1"), unaffected());
}

/// Invalid versions are errors naming them: the installed version, any event
/// version of an ECOSYSTEM range (even one that would not matter).
#[test]
fn invalid_versions_are_errors() {
    let r = [eco(vec![intro("0"), fixed("1.0-r0")])];
    let e: VersionError = evaluate(Scheme::Apk, &r, &[], "1.0-r0-r1").unwrap_err();
    assert_eq!(e.version, "1.0-r0-r1");
    assert!(e.to_string().contains("\"1.0-r0-r1\""), "{e}");

    let r = [eco(vec![
        intro("0"),
        fixed("1.0"),
        intro("2.0"),
        fixed("2.1bc"),
    ])];
    let e = evaluate(Scheme::Apk, &r, &[], "0.5").unwrap_err();
    assert_eq!((e.scheme, e.version.as_str()), (Scheme::Apk, "2.1bc"));

    let r = [eco(vec![last("1.0 beta")])];
    assert_eq!(
        evaluate(Scheme::Deb, &r, &[], "1.0").unwrap_err().version,
        "1.0 beta"
    );
    let r = [eco(vec![limit("")])];
    assert_eq!(
        evaluate(Scheme::Rpm, &r, &[], "1.0").unwrap_err().version,
        ""
    );
}

/// Events at equal versions keep their order in the record (stable sort), as
/// the schema's reference evaluation does.
#[test]
fn ties_keep_record_order() {
    // introduced and fixed at the same version, in that order: an empty interval.
    let empty = [eco(vec![intro("1.0"), fixed("1.0")])];
    assert_eq!(eval(Scheme::Rpm, &empty, "1.0"), unaffected());
    assert_eq!(eval(Scheme::Rpm, &empty, "1.5"), unaffected());
    // fixed then re-introduced at the same version: 1.0 is affected again.
    let again = [eco(vec![
        intro("0"),
        fixed("1.0"),
        intro("1.0"),
        fixed("2.0"),
    ])];
    assert_eq!(eval(Scheme::Rpm, &again, "1.0"), affected(Some("2.0")));
    // Equal under rpm's order but spelled differently still counts as a tie.
    let spelled = [eco(vec![
        intro("0"),
        fixed("1.01"),
        intro("1.1"),
        fixed("2.0"),
    ])];
    assert_eq!(eval(Scheme::Rpm, &spelled, "1.1"), affected(Some("2.0")));
}

/// Several ranges containing the version: the greatest fix, or none if any of
/// them has no fix.
#[test]
fn several_containing_ranges() {
    let r = [
        eco(vec![intro("0"), fixed("1.5")]),
        eco(vec![intro("1.0"), fixed("2.0")]),
    ];
    assert_eq!(eval(Scheme::Rpm, &r, "1.2"), affected(Some("2.0")));
    assert_eq!(eval(Scheme::Rpm, &r, "1.7"), affected(Some("2.0")));
    assert_eq!(eval(Scheme::Rpm, &r, "0.5"), affected(Some("1.5")));
    let open = [eco(vec![intro("0"), fixed("1.5")]), eco(vec![intro("1.0")])];
    assert_eq!(eval(Scheme::Rpm, &open, "1.2"), affected(None));
}

/// The intervals are built from the sorted events: a fixed version closes the
/// interval of the last introduced version before it; a stray `fixed` before any
/// `introduced` does nothing.
#[test]
fn interval_structure() {
    let r = [eco(vec![
        fixed("0.5"),
        intro("1.0"),
        intro("1.2"),
        fixed("1.4"),
    ])];
    assert_eq!(eval(Scheme::Deb, &r, "0.1"), unaffected());
    assert_eq!(eval(Scheme::Deb, &r, "1.1"), affected(Some("1.4")));
    assert_eq!(eval(Scheme::Deb, &r, "1.3"), affected(Some("1.4")));
    assert_eq!(eval(Scheme::Deb, &r, "1.4"), unaffected());
}

/// Ranges deserialise from OSV JSON (`type`, `events`, extra fields ignored).
#[test]
fn ranges_from_osv_json() {
    let json = r#"[{"type": "ECOSYSTEM", "repo": "ignored",
        "events": [{"introduced": "0"}, {"fixed": "2.36-9+deb12u3"}]},
        {"type": "GIT", "repo": "https://example.invalid/glibc",
        "events": [{"introduced": "0"}, {"last_affected": "abc"}, {"limit": "*"}]}]"#;
    let ranges: Vec<Range> = serde_json::from_str(json).unwrap();
    assert_eq!(ranges[0].events, vec![intro("0"), fixed("2.36-9+deb12u3")]);
    assert_eq!(ranges[1].kind, RangeKind::Git);
    assert_eq!(
        eval(Scheme::Deb, &ranges, "2.36-9+deb12u2"),
        affected(Some("2.36-9+deb12u3"))
    );
    assert_eq!(eval(Scheme::Deb, &ranges, "2.36-9+deb12u3"), unaffected());
    let back = serde_json::to_value(&ranges[0]).unwrap();
    assert_eq!(back["events"][1]["fixed"], "2.36-9+deb12u3");
    assert_eq!(back["type"], "ECOSYSTEM");
}

/// A real record: UBUNTU-CVE-2023-4911 (glibc, "Looney Tunables") as published in
/// canonical/ubuntu-security-notices, the `Ubuntu:22.04:LTS` range.
#[test]
fn real_ubuntu_record_shape() {
    let r = [eco(vec![intro("0"), fixed("2.35-0ubuntu3.4")])];
    assert_eq!(
        eval(Scheme::Deb, &r, "2.35-0ubuntu3.3"),
        affected(Some("2.35-0ubuntu3.4"))
    );
    assert_eq!(eval(Scheme::Deb, &r, "2.35-0ubuntu3.4"), unaffected());
    assert_eq!(eval(Scheme::Deb, &r, "2.35-0ubuntu3.10"), unaffected());
    assert_eq!(
        eval(Scheme::Deb, &r, "2.35-0ubuntu3.4~esm1"),
        affected(Some("2.35-0ubuntu3.4"))
    );
}
