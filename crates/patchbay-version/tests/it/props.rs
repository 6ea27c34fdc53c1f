//! Property tests per scheme: `compare` is a total order on valid versions
//! (reflexive equality, antisymmetry, transitivity on triples), parse → display →
//! parse round trips, and arbitrary strings never panic.

use std::cmp::Ordering;

use patchbay_version::osv::{Event, Range, RangeKind, evaluate};
use patchbay_version::{Scheme, SchemeVersion, apk, compare, deb, rpm, validate};
use proptest::prelude::*;

/// dpkg versions over a small alphabet (many ties and near-ties) and a wide one.
fn deb_version() -> impl Strategy<Value = String> {
    let narrow = (
        proptest::option::of(0u32..3),
        "[0-9][01a~.+:-]{0,6}",
        proptest::option::of("[01a~.+]{1,4}"),
    );
    let wide = (
        proptest::option::of(prop_oneof![0u32..100, Just(i32::MAX as u32)]),
        "[0-9][0-9A-Za-z.+~:-]{0,10}",
        proptest::option::of("[0-9A-Za-z.+~]{1,6}"),
    );
    prop_oneof![narrow, wide].prop_map(|(epoch, upstream, revision)| {
        let epoch = epoch.or(upstream.contains(':').then_some(0));
        let revision = revision.or(upstream.contains('-').then(|| "0".to_owned()));
        let mut s = String::new();
        if let Some(e) = epoch {
            s += &format!("{e}:");
        }
        s += &upstream;
        if let Some(r) = revision {
            s += &format!("-{r}");
        }
        s
    })
}

/// rpm labels over a small alphabet (separators, `~`, `^`, `:` and `-` included) and
/// a wide printable-ASCII one; only valid labels are kept.
fn rpm_version() -> impl Strategy<Value = String> {
    prop_oneof![
        "[01a~^._:-]{1,8}",
        "[0-9]{1,3}:[0-9a-z.~^]{1,6}-[0-9a-z.~^_]{0,5}",
        "[!-~]{1,10}",
    ]
    .prop_filter("valid rpm label", |s| validate(Scheme::Rpm, s).is_ok())
}

/// apk versions built from the grammar (leading zeros, huge numbers, every suffix,
/// hashes and revisions included).
fn apk_version() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        4 => "[0-9]{1,3}",
        1 => "0[0-9]{0,2}",
        1 => "[1-9][0-9]{18,22}",
    ];
    let suffix = (
        prop::sample::select(vec![
            "alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p",
        ]),
        proptest::option::of("[0-9]{1,3}"),
    )
        .prop_map(|(s, n)| format!("_{s}{}", n.unwrap_or_default()));
    (
        number.clone(),
        prop::collection::vec(number, 0..3),
        proptest::option::of("[a-c]"),
        prop::collection::vec(suffix, 0..3),
        proptest::option::of("[0-9a-f]{1,4}"),
        proptest::option::of("[0-9]{1,2}"),
    )
        .prop_map(|(first, dots, letter, suffixes, hash, rev)| {
            let mut s = first;
            for d in dots {
                s += &format!(".{d}");
            }
            s += &letter.unwrap_or_default();
            s += &suffixes.concat();
            if let Some(h) = hash {
                s += &format!("~{h}");
            }
            if let Some(r) = rev {
                s += &format!("-r{r}");
            }
            s
        })
}

/// PEP 440 versions over every segment kind (epoch, release, pre, post, dev,
/// local) and their alternative spellings.
fn pypi_version() -> impl Strategy<Value = String> {
    (
        proptest::option::of(0u32..3),
        "(0|[1-9])(\\.(0|[1-9])){0,3}",
        proptest::option::of("(a|b|rc|c|alpha|beta|pre)[0-2]?"),
        proptest::option::of("(\\.post|-|\\.rev)[0-2]"),
        proptest::option::of("\\.dev[0-2]?"),
        proptest::option::of("\\+[a-c0-2]{1,2}(\\.[a-c0-2]{1,2})?"),
    )
        .prop_map(|(epoch, release, pre, post, dev, local)| {
            let mut s = epoch.map(|e| format!("{e}!")).unwrap_or_default();
            s += &release;
            for part in [pre, post, dev, local].into_iter().flatten() {
                s += &part;
            }
            s
        })
}

/// Go versions: module versions with and without `v`, pseudo-versions and
/// toolchain tags.
fn go_version() -> impl Strategy<Value = String> {
    prop_oneof![
        "v?(0|1)\\.(0|[1-9]|1[0-9])\\.(0|[1-9])(-(rc|beta|0)\\.[0-2])?(\\+incompatible)?",
        "go1\\.(1[0-9]|2[0-3])(\\.[0-9])?((rc|beta)[1-3])?",
    ]
}

fn semver_version() -> impl Strategy<Value = String> {
    (
        "(0|[1-9][0-9]{0,2})\\.(0|[1-9])\\.(0|[1-9])",
        proptest::option::of("(0|[1-9]|[a-c]{1,2})(\\.(0|[1-9]|[a-c]{1,2})){0,2}"),
        proptest::option::of("[0-9a-z]{1,3}"),
    )
        .prop_map(|(core, pre, build)| {
            let mut s = core;
            if let Some(p) = pre {
                s += &format!("-{p}");
            }
            if let Some(b) = build {
                s += &format!("+{b}");
            }
            s
        })
}

fn check_total_order(scheme: Scheme, a: &str, b: &str, c: &str) {
    let cmp = |x: &str, y: &str| compare(scheme, x, y).unwrap_or_else(|e| panic!("{e}"));
    for v in [a, b, c] {
        assert_eq!(cmp(v, v), Ordering::Equal, "{scheme}: {v} = {v}");
    }
    for (x, y) in [(a, b), (b, c), (a, c)] {
        assert_eq!(
            cmp(x, y),
            cmp(y, x).reverse(),
            "{scheme}: antisymmetry {x} {y}"
        );
    }
    let all = [a, b, c];
    for i in 0..3 {
        for j in 0..3 {
            for k in 0..3 {
                let (x, y, z) = (all[i], all[j], all[k]);
                let (xy, yz, xz) = (cmp(x, y), cmp(y, z), cmp(x, z));
                if xy != Ordering::Greater && yz != Ordering::Greater {
                    assert_ne!(xz, Ordering::Greater, "{scheme}: {x} <= {y} <= {z}");
                }
                if xy == Ordering::Less && yz != Ordering::Greater {
                    assert_eq!(xz, Ordering::Less, "{scheme}: {x} < {y} <= {z}");
                }
                if xy == Ordering::Equal && yz == Ordering::Equal {
                    assert_eq!(xz, Ordering::Equal, "{scheme}: {x} = {y} = {z}");
                }
            }
        }
    }
}

proptest! {
    // 512 cases unless PROPTEST_CASES says otherwise (for a deeper run).
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn deb_total_order(a in deb_version(), b in deb_version(), c in deb_version()) {
        check_total_order(Scheme::Deb, &a, &b, &c);
    }

    #[test]
    fn rpm_total_order(a in rpm_version(), b in rpm_version(), c in rpm_version()) {
        check_total_order(Scheme::Rpm, &a, &b, &c);
    }

    #[test]
    fn apk_total_order(a in apk_version(), b in apk_version(), c in apk_version()) {
        check_total_order(Scheme::Apk, &a, &b, &c);
    }

    #[test]
    fn pypi_total_order(a in pypi_version(), b in pypi_version(), c in pypi_version()) {
        check_total_order(Scheme::Pypi, &a, &b, &c);
    }

    #[test]
    fn go_total_order(a in go_version(), b in go_version(), c in go_version()) {
        check_total_order(Scheme::Go, &a, &b, &c);
    }

    #[test]
    fn semver_total_order(a in semver_version(), b in semver_version(), c in semver_version()) {
        check_total_order(Scheme::Semver, &a, &b, &c);
    }

    /// The segment algorithm alone is a total order on arbitrary strings too.
    #[test]
    fn rpmvercmp_total_order(a in "[0-9a-c~^.+é-]{0,8}", b in "[0-9a-c~^.+é-]{0,8}", c in "[0-9a-c~^.+é-]{0,8}") {
        let all = [&a, &b, &c];
        for x in all {
            prop_assert_eq!(rpm::rpmvercmp(x, x), Ordering::Equal);
            for y in all {
                prop_assert_eq!(rpm::rpmvercmp(x, y), rpm::rpmvercmp(y, x).reverse());
                for z in all {
                    if rpm::rpmvercmp(x, y) != Ordering::Greater && rpm::rpmvercmp(y, z) != Ordering::Greater {
                        prop_assert_ne!(rpm::rpmvercmp(x, z), Ordering::Greater);
                    }
                }
            }
        }
    }

    #[test]
    fn deb_round_trip(s in deb_version()) {
        let v: deb::Version = s.parse().unwrap();
        let text = v.to_string();
        let back: deb::Version = text.parse().unwrap();
        prop_assert_eq!((back.epoch(), back.upstream(), back.revision()), (v.epoch(), v.upstream(), v.revision()));
        prop_assert_eq!(back.to_string(), text);
        prop_assert_eq!(back, v);
    }

    #[test]
    fn deb_lax_round_trip(s in "[ \t]{0,2}([0-9]{1,2}:)?[!-~]{1,8}(-[!-~]{1,4})?[ \t]{0,2}") {
        if let Ok(v) = deb::Version::parse_lax(&s) {
            let text = v.to_string();
            let back = deb::Version::parse_lax(&text).unwrap();
            prop_assert_eq!((back.epoch(), back.upstream(), back.revision()), (v.epoch(), v.upstream(), v.revision()));
            prop_assert_eq!(back.to_string(), text);
        }
    }

    #[test]
    fn rpm_round_trip(s in rpm_version()) {
        let v: rpm::Evr = s.parse().unwrap();
        let text = v.to_string();
        let back: rpm::Evr = text.parse().unwrap();
        prop_assert_eq!((back.epoch(), back.version(), back.release()), (v.epoch(), v.version(), v.release()));
        prop_assert_eq!(back.to_string(), text);
        prop_assert_eq!(rpm::Evr::new(v.epoch(), v.version(), v.release()).unwrap().to_string(), v.to_string());
    }

    #[test]
    fn apk_round_trip(s in apk_version()) {
        let v: apk::Version = s.parse().unwrap();
        prop_assert_eq!(v.to_string(), s.clone());
        let back: apk::Version = v.to_string().parse().unwrap();
        prop_assert_eq!(back.as_str(), s.as_str());
    }

    #[test]
    fn semver_round_trip(s in semver_version()) {
        let v = SchemeVersion::parse(Scheme::Semver, &s).unwrap();
        prop_assert_eq!(v.to_string(), s);
    }

    /// Arbitrary strings: every scheme answers Ok or Err, never panics, and an
    /// error names one of the inputs.
    #[test]
    fn arbitrary_strings_never_panic(a in any::<String>(), b in "\\PC{0,12}", c in "[ -~\t\n\u{0}é]{0,12}") {
        for scheme in Scheme::ALL {
            for (x, y) in [(&a, &b), (&b, &c), (&c, &a)] {
                match compare(scheme, x, y) {
                    Ok(o) => prop_assert_eq!(compare(scheme, y, x).unwrap(), o.reverse()),
                    Err(e) => prop_assert!(e.version == *x || e.version == *y),
                }
                let _ = validate(scheme, x);
            }
        }
        let _ = deb::Version::parse_lax(&a);
        let _ = deb::verrevcmp(&a, &c);
        let _ = rpm::rpmvercmp(&a, &c);
    }

    /// OSV evaluation never panics; when it reports a fix, the installed version is
    /// below it.
    #[test]
    fn osv_evaluate_is_total(
        events in prop::collection::vec((0u8..4, "0|[0-3](\\.[0-3])?|[0-3]~|\\*"), 0..6),
        kind in 0u8..3,
        installed in "[0-3](\\.[0-3])?|[0-3]~|x",
    ) {
        let events: Vec<Event> = events
            .into_iter()
            .map(|(k, v)| match k {
                0 => Event::Introduced(v),
                1 => Event::Fixed(v),
                2 => Event::LastAffected(v),
                _ => Event::Limit(v),
            })
            .collect();
        let kind = [RangeKind::Ecosystem, RangeKind::Semver, RangeKind::Git][usize::from(kind)];
        let ranges = [Range { kind, events }];
        for scheme in Scheme::ALL {
            if let Ok(v) = evaluate(scheme, &ranges, &[], &installed)
                && let Some(f) = &v.fixed
            {
                prop_assert!(v.affected);
                let s = if kind == RangeKind::Semver { Scheme::Semver } else { scheme };
                prop_assert_eq!(compare(s, &installed, f).unwrap(), Ordering::Less);
            }
        }
    }
}
