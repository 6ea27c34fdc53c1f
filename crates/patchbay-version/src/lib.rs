//! Exact version ordering for the package schemes Patchbay assesses, and OSV range
//! evaluation on top of it (issue 3, "Assessment").
//!
//! One wrong comparison is a missed critical, so every scheme mirrors its upstream
//! implementation exactly and every invalid version is an error, never a guess:
//!
//! | scheme | module | upstream it mirrors |
//! | --- | --- | --- |
//! | [`Scheme::Deb`] | [`deb`] | dpkg `lib/dpkg/version.c` (`verrevcmp`), `lib/dpkg/parsehelp.c` (`parseversion`) |
//! | [`Scheme::Rpm`] | [`rpm`] | rpm `rpmio/rpmvercmp.c` (`rpmvercmp`), EVR parsing and `labelCompare` |
//! | [`Scheme::Apk`] | [`apk`] | apk-tools 3 `src/version.c` (`apk_version_validate`, `apk_version_compare`) |
//! | [`Scheme::Semver`] | (the `semver` crate) | SemVer 2.0.0 precedence (section 11; build metadata ignored); also npm and crates.io |
//! | [`Scheme::Pypi`] | [`pypi`] (the `pep440_rs` crate) | PEP 440, as `packaging.version` orders it |
//! | [`Scheme::Go`] | [`go`] | the Go vulnerability database: module versions `v1.2.3` and toolchains `go1.21.3` as SemVer |
//!
//! [`osv`] evaluates OSV `affected[].ranges` / `versions` against an installed version.
//!
//! The crate is pure: no IO, no clock. Every public function is total: it returns
//! `Ok` or `Err` and never panics, whatever the input (property-tested).
//!
//! ```
//! use std::cmp::Ordering;
//! use patchbay_version::{compare, Scheme};
//!
//! assert_eq!(compare(Scheme::Deb, "1.0~rc1-1", "1.0-1").unwrap(), Ordering::Less);
//! assert_eq!(compare(Scheme::Rpm, "1:1.0-1.el9", "2.0-1.el9").unwrap(), Ordering::Greater);
//! assert_eq!(compare(Scheme::Apk, "1.0_rc1-r0", "1.0-r0").unwrap(), Ordering::Less);
//! assert!(compare(Scheme::Apk, "1.0bc", "1.0").is_err());
//! assert_eq!(compare(Scheme::Pypi, "2.0rc1", "2.0.post1").unwrap(), Ordering::Less);
//! assert_eq!(compare(Scheme::Go, "go1.21.3", "1.21.4").unwrap(), Ordering::Less);
//! ```

pub mod apk;
pub mod deb;
pub mod go;
pub mod osv;
pub mod pypi;
pub mod rpm;

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use osv::{Event, Range, RangeKind, Verdict, evaluate};

/// Version schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Debian / Ubuntu packages, ordered as dpkg orders them.
    #[serde(alias = "dpkg", alias = "debian")]
    Deb,
    /// RPM packages (RHEL, AlmaLinux, Rocky, Fedora, SUSE, …), ordered as rpm orders
    /// `[epoch:]version[-release]` labels.
    Rpm,
    /// Alpine packages, ordered as apk-tools 3 orders them.
    #[serde(alias = "alpine")]
    Apk,
    /// Semantic Versioning 2.0.0 (OSV `SEMVER` ranges; the npm and crates.io
    /// ecosystems).
    Semver,
    /// PEP 440 (the PyPI ecosystem).
    #[serde(alias = "pep440")]
    Pypi,
    /// Go modules and toolchains (the Go ecosystem: `v1.2.3`, `go1.21.3`).
    Go,
}

impl Scheme {
    /// All schemes, in declaration order.
    pub const ALL: [Scheme; 6] = [
        Scheme::Deb,
        Scheme::Rpm,
        Scheme::Apk,
        Scheme::Semver,
        Scheme::Pypi,
        Scheme::Go,
    ];

    /// The canonical lower-case name: `deb`, `rpm`, `apk`, `semver`, `pypi` or `go`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Deb => "deb",
            Scheme::Rpm => "rpm",
            Scheme::Apk => "apk",
            Scheme::Semver => "semver",
            Scheme::Pypi => "pypi",
            Scheme::Go => "go",
        }
    }

    /// The scheme of an OSV `affected[].package.ecosystem` string, for the
    /// ecosystems whose version ordering is one of ours. The `:<release>` suffix is
    /// ignored (`"Debian:12"`, `"AlmaLinux:9"`, `"Alpine:v3.20"`,
    /// `"Ubuntu:Pro:18.04:LTS"`). The language ecosystems: `PyPI` (PEP 440),
    /// `Go` (module and toolchain versions), `npm` and `crates.io` (SemVer). Returns `None` for any other ecosystem: the caller
    /// must not guess an ordering.
    pub fn for_osv_ecosystem(ecosystem: &str) -> Option<Scheme> {
        let base = ecosystem.split(':').next().unwrap_or("");
        match base {
            "Debian" | "Ubuntu" => Some(Scheme::Deb),
            "AlmaLinux" | "Rocky Linux" | "Red Hat" => Some(Scheme::Rpm),
            "Alpine" => Some(Scheme::Apk),
            "PyPI" => Some(Scheme::Pypi),
            "Go" => Some(Scheme::Go),
            "npm" | "crates.io" => Some(Scheme::Semver),
            _ => None,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of [`Scheme::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown version scheme {0:?} (expected deb, dpkg, debian, rpm, apk, alpine, semver, pypi, pep440 or go)"
)]
pub struct UnknownScheme(pub String);

impl FromStr for Scheme {
    type Err = UnknownScheme;

    /// Accepts `deb`, `dpkg`, `debian`, `rpm`, `apk`, `alpine`, `semver`,
    /// `pypi`, `pep440` and `go`,
    /// ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "deb" | "dpkg" | "debian" => Ok(Scheme::Deb),
            "rpm" => Ok(Scheme::Rpm),
            "apk" | "alpine" => Ok(Scheme::Apk),
            "semver" => Ok(Scheme::Semver),
            "pypi" | "pep440" => Ok(Scheme::Pypi),
            "go" => Ok(Scheme::Go),
            _ => Err(UnknownScheme(s.to_owned())),
        }
    }
}

/// A version string that is not valid in its scheme.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {scheme} version {version:?}: {reason}")]
pub struct VersionError {
    /// The scheme the version was parsed in.
    pub scheme: Scheme,
    /// The offending version string, as given.
    pub version: String,
    /// Why it is invalid (for dpkg, dpkg's own message).
    pub reason: String,
}

impl VersionError {
    /// A new error for `version` in `scheme`.
    pub fn new(scheme: Scheme, version: &str, reason: impl Into<String>) -> Self {
        VersionError {
            scheme,
            version: version.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A version parsed in one of the schemes.
///
/// Versions of the same scheme are totally ordered; versions of different schemes
/// are not comparable (`partial_cmp` returns `None`, `==` is `false`).
#[derive(Debug, Clone)]
pub enum SchemeVersion {
    /// A dpkg version.
    Deb(deb::Version),
    /// An rpm `[epoch:]version[-release]` label.
    Rpm(rpm::Evr),
    /// An apk version.
    Apk(apk::Version),
    /// A SemVer 2.0.0 version.
    Semver(semver::Version),
    /// A PEP 440 version.
    Pypi(pypi::Version),
    /// A Go module or toolchain version.
    Go(go::Version),
}

impl SchemeVersion {
    /// Parses `s` in `scheme`; invalid versions are errors.
    pub fn parse(scheme: Scheme, s: &str) -> Result<SchemeVersion, VersionError> {
        Ok(match scheme {
            Scheme::Deb => SchemeVersion::Deb(s.parse()?),
            Scheme::Rpm => SchemeVersion::Rpm(s.parse()?),
            Scheme::Apk => SchemeVersion::Apk(s.parse()?),
            Scheme::Semver => SchemeVersion::Semver(parse_semver(s)?),
            Scheme::Pypi => SchemeVersion::Pypi(s.parse()?),
            Scheme::Go => SchemeVersion::Go(s.parse()?),
        })
    }

    /// The scheme this version belongs to.
    pub fn scheme(&self) -> Scheme {
        match self {
            SchemeVersion::Deb(_) => Scheme::Deb,
            SchemeVersion::Rpm(_) => Scheme::Rpm,
            SchemeVersion::Apk(_) => Scheme::Apk,
            SchemeVersion::Semver(_) => Scheme::Semver,
            SchemeVersion::Pypi(_) => Scheme::Pypi,
            SchemeVersion::Go(_) => Scheme::Go,
        }
    }
}

impl PartialEq for SchemeVersion {
    fn eq(&self, other: &Self) -> bool {
        self.partial_cmp(other) == Some(Ordering::Equal)
    }
}

impl PartialOrd for SchemeVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (SchemeVersion::Deb(a), SchemeVersion::Deb(b)) => Some(a.cmp(b)),
            (SchemeVersion::Rpm(a), SchemeVersion::Rpm(b)) => Some(a.cmp(b)),
            (SchemeVersion::Apk(a), SchemeVersion::Apk(b)) => Some(a.cmp(b)),
            (SchemeVersion::Semver(a), SchemeVersion::Semver(b)) => Some(a.cmp_precedence(b)),
            (SchemeVersion::Pypi(a), SchemeVersion::Pypi(b)) => Some(a.cmp(b)),
            (SchemeVersion::Go(a), SchemeVersion::Go(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

impl fmt::Display for SchemeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemeVersion::Deb(v) => v.fmt(f),
            SchemeVersion::Rpm(v) => v.fmt(f),
            SchemeVersion::Apk(v) => v.fmt(f),
            SchemeVersion::Semver(v) => v.fmt(f),
            SchemeVersion::Pypi(v) => v.fmt(f),
            SchemeVersion::Go(v) => v.fmt(f),
        }
    }
}

/// Parses a SemVer 2.0.0 version strictly (no leading `v`, no surrounding space, no
/// missing components, no leading zeros), as OSV `SEMVER` ranges require.
fn parse_semver(s: &str) -> Result<semver::Version, VersionError> {
    semver::Version::parse(s).map_err(|e| VersionError::new(Scheme::Semver, s, e.to_string()))
}

/// Compares two versions in `scheme`.
///
/// Both must be valid; the error names the first invalid one. SemVer versions are
/// compared by precedence (build metadata ignored), so `1.0.0+a` equals `1.0.0+b`.
pub fn compare(scheme: Scheme, a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(match scheme {
        Scheme::Deb => a.parse::<deb::Version>()?.cmp(&b.parse()?),
        Scheme::Rpm => a.parse::<rpm::Evr>()?.cmp(&b.parse()?),
        Scheme::Apk => a.parse::<apk::Version>()?.cmp(&b.parse()?),
        Scheme::Semver => parse_semver(a)?.cmp_precedence(&parse_semver(b)?),
        Scheme::Pypi => a.parse::<pypi::Version>()?.cmp(&b.parse()?),
        Scheme::Go => a.parse::<go::Version>()?.cmp(&b.parse()?),
    })
}

/// Checks that `v` is a valid version in `scheme`.
pub fn validate(scheme: Scheme, v: &str) -> Result<(), VersionError> {
    SchemeVersion::parse(scheme, v).map(|_| ())
}
