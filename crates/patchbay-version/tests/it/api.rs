//! The crate-level API: schemes, errors, `compare`, `validate`, `SchemeVersion`.

use std::cmp::Ordering;

use patchbay_version::{Scheme, SchemeVersion, VersionError, compare, validate};

#[test]
fn scheme_names() {
    for (s, want) in [
        ("deb", Scheme::Deb),
        ("dpkg", Scheme::Deb),
        ("debian", Scheme::Deb),
        ("rpm", Scheme::Rpm),
        ("apk", Scheme::Apk),
        ("alpine", Scheme::Apk),
        ("semver", Scheme::Semver),
        ("Debian", Scheme::Deb),
        ("pypi", Scheme::Pypi),
        ("pep440", Scheme::Pypi),
        ("go", Scheme::Go),
    ] {
        assert_eq!(s.parse::<Scheme>().unwrap(), want, "{s}");
    }
    assert!("npm".parse::<Scheme>().is_err());
    for s in Scheme::ALL {
        assert_eq!(s.as_str().parse::<Scheme>().unwrap(), s);
        assert_eq!(s.to_string(), s.as_str());
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{}\"", s.as_str()));
        assert_eq!(serde_json::from_str::<Scheme>(&json).unwrap(), s);
    }
    assert_eq!(
        serde_json::from_str::<Scheme>("\"dpkg\"").unwrap(),
        Scheme::Deb
    );
}

#[test]
fn osv_ecosystems() {
    assert_eq!(Scheme::for_osv_ecosystem("Debian:12"), Some(Scheme::Deb));
    assert_eq!(
        Scheme::for_osv_ecosystem("Ubuntu:Pro:18.04:LTS"),
        Some(Scheme::Deb)
    );
    assert_eq!(Scheme::for_osv_ecosystem("AlmaLinux:9"), Some(Scheme::Rpm));
    assert_eq!(
        Scheme::for_osv_ecosystem("Rocky Linux:8"),
        Some(Scheme::Rpm)
    );
    assert_eq!(Scheme::for_osv_ecosystem("Alpine:v3.20"), Some(Scheme::Apk));
    assert_eq!(Scheme::for_osv_ecosystem("PyPI"), Some(Scheme::Pypi));
    assert_eq!(Scheme::for_osv_ecosystem("Go"), Some(Scheme::Go));
    assert_eq!(Scheme::for_osv_ecosystem("npm"), Some(Scheme::Semver));
    assert_eq!(Scheme::for_osv_ecosystem("crates.io"), Some(Scheme::Semver));
    assert_eq!(Scheme::for_osv_ecosystem("Packagist"), None);
    assert_eq!(Scheme::for_osv_ecosystem("pypi"), None);
}

/// `compare` on an invalid version is an error naming it (the first invalid one),
/// with a reason.
#[test]
fn compare_errors_name_the_version() {
    for (scheme, bad) in [
        (Scheme::Deb, "1.0-"),
        (Scheme::Deb, "a1.0"),
        (Scheme::Rpm, ""),
        (Scheme::Rpm, "1.0 1"),
        (Scheme::Apk, "1.0-1"),
        (Scheme::Semver, "v1.2.3"),
        (Scheme::Semver, "1.2"),
    ] {
        let e: VersionError = compare(scheme, bad, "1").unwrap_err();
        assert_eq!((e.scheme, e.version.as_str()), (scheme, bad));
        assert!(!e.reason.is_empty());
        assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        assert!(e.to_string().contains(scheme.as_str()), "{e}");
        let good = match scheme {
            Scheme::Semver => "1.0.0",
            _ => "1",
        };
        let e = compare(scheme, good, bad).unwrap_err();
        assert_eq!(e.version, bad);
        assert!(validate(scheme, bad).is_err());
        assert!(validate(scheme, good).is_ok());
    }
    let e = compare(Scheme::Deb, "1.0-", "2.0-").unwrap_err();
    assert_eq!(e.version, "1.0-");
    assert_eq!(
        e.to_string(),
        "invalid deb version \"1.0-\": revision number is empty"
    );
}

#[test]
fn scheme_versions() {
    let a = SchemeVersion::parse(Scheme::Rpm, "1:1.0-1").unwrap();
    let b = SchemeVersion::parse(Scheme::Rpm, "1:1.0-01").unwrap();
    assert_eq!(a, b);
    assert_eq!(a.scheme(), Scheme::Rpm);
    assert_eq!(a.to_string(), "1:1.0-1");
    let d = SchemeVersion::parse(Scheme::Deb, "1:1.0-1").unwrap();
    assert_eq!(a.partial_cmp(&d), None);
    assert_ne!(a, d);
    assert_eq!(
        compare(Scheme::Semver, "1.0.0+a", "1.0.0+b").unwrap(),
        Ordering::Equal
    );
    assert_eq!(
        compare(Scheme::Semver, "1.0.0-alpha.10", "1.0.0-alpha.9").unwrap(),
        Ordering::Greater
    );
    assert_eq!(
        compare(Scheme::Semver, "1.0.0-alpha", "1.0.0").unwrap(),
        Ordering::Less
    );
}

/// SemVer is strict SemVer 2.0.0, as OSV `SEMVER` ranges require.
#[test]
fn semver_is_strict() {
    for bad in [
        "v1.0.0", "1.0", "01.0.0", "1.0.0-01", " 1.0.0", "1.0.0 ", "1.0.0-", "1.0.0+", "",
    ] {
        assert!(validate(Scheme::Semver, bad).is_err(), "{bad:?}");
    }
    for good in [
        "0.0.0",
        "1.0.0-0A.is.legal",
        "1.0.0-alpha-a.b-c-somethinglong+build.1-aef.1-its-okay",
        "1.0.0+0.build.1-rc.10000aaa-kk-0.1",
    ] {
        assert!(validate(Scheme::Semver, good).is_ok(), "{good:?}");
    }
}
