//! Go versions as the Go vulnerability database compares them: module versions
//! (`v1.2.3`, pseudo-versions `v0.0.0-20210101000000-abcdef123456`,
//! `v2.0.0+incompatible`) and Go toolchain versions (`go1.21.3`), both mapped
//! onto SemVer 2.0.0 precedence.
//!
//! The mapping mirrors `golang.org/x/vulndb/internal/version` and the OSV
//! records the database publishes:
//!
//! * a module version drops its leading `v` (`v1.2.3` → `1.2.3`); the records'
//!   own events carry no `v`, and bare versions are accepted as they are;
//! * a toolchain version `goX.Y[.Z][(beta|rc)N]` — what a binary's build info
//!   names as its Go version, i.e. the `stdlib` and `toolchain` packages —
//!   becomes `X.Y.Z[-(beta|rc).N]` (`go1.21` → `1.21.0`, `go1.21rc2` →
//!   `1.21.0-rc.2`, `go1.19.8` → `1.19.8`), as the database's `GoTagToSemver`
//!   does; anything after a space (`go1.22.0 X:nocoverageredesign`, an
//!   experiment tag) is not part of the version;
//! * then SemVer 2.0.0 precedence: build metadata (`+incompatible`) is ignored.
//!
//! Anything else (`(devel)`, `v1.2`, `go1`) is an error, never a guess: a
//! binary built from a working tree has no version to compare.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::{Scheme, VersionError};

/// Longest version text accepted (real versions are short).
const MAX_LEN: usize = 256;

/// A Go module or toolchain version, as its SemVer equivalent.
#[derive(Debug, Clone)]
pub struct Version {
    semver: semver::Version,
}

impl Version {
    /// The SemVer equivalent (`1.21.0-rc.2` for `go1.21rc2`).
    pub fn semver(&self) -> &semver::Version {
        &self.semver
    }
}

fn err(s: &str, why: impl Into<String>) -> VersionError {
    VersionError::new(Scheme::Go, s, why)
}

/// `goX.Y[.Z][(beta|rc)N]` → `X.Y.Z[-(beta|rc).N]`.
fn toolchain_to_semver(s: &str, tag: &str) -> Result<String, VersionError> {
    let (release, pre) = match tag.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&tag[..i], Some(&tag[i..])),
        None => (tag, None),
    };
    let parts: Vec<&str> = release.split('.').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(err(s, "not a Go toolchain version goX.Y[.Z][(beta|rc)N]"));
    }
    let patch = parts.get(2).copied().unwrap_or("0");
    let mut out = format!("{}.{}.{patch}", parts[0], parts[1]);
    if let Some(pre) = pre {
        let (kind, n) = if let Some(n) = pre.strip_prefix("beta") {
            ("beta", n)
        } else if let Some(n) = pre.strip_prefix("rc") {
            ("rc", n)
        } else {
            return Err(err(s, "a Go pre-release is betaN or rcN"));
        };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(s, "a Go pre-release is betaN or rcN"));
        }
        out.push_str(&format!("-{kind}.{n}"));
    }
    Ok(out)
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_LEN {
            return Err(err(
                &s[..s.floor_char_boundary(MAX_LEN)],
                format!("longer than {MAX_LEN} bytes"),
            ));
        }
        let text = if let Some(tag) = s.strip_prefix("go") {
            let tag = tag.split(' ').next().unwrap_or(tag);
            toolchain_to_semver(s, tag)?
        } else {
            s.strip_prefix('v').unwrap_or(s).to_owned()
        };
        semver::Version::parse(&text)
            .map(|semver| Version { semver })
            .map_err(|e| err(s, e.to_string()))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.semver.cmp_precedence(&other.semver)
    }
}

impl fmt::Display for Version {
    /// The SemVer equivalent, as the Go vulnerability database writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.semver.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sv(s: &str) -> String {
        s.parse::<Version>().unwrap().to_string()
    }

    #[test]
    fn toolchain_tags_map_as_the_vulndb_does() {
        // golang.org/x/vulndb internal/version TestGoTagToSemver cases.
        assert_eq!(sv("go1.19"), "1.19.0");
        assert_eq!(sv("go1.19.8"), "1.19.8");
        assert_eq!(sv("go1.21rc2"), "1.21.0-rc.2");
        assert_eq!(sv("go1.21beta1"), "1.21.0-beta.1");
        assert_eq!(sv("go1.22.0 X:nocoverageredesign"), "1.22.0");
        assert_eq!(sv("v1.2.3"), "1.2.3");
        assert_eq!(sv("1.2.3"), "1.2.3");
        assert_eq!(
            sv("v0.0.0-20210101000000-abcdef123456"),
            "0.0.0-20210101000000-abcdef123456"
        );
        for bad in [
            "(devel)",
            "go1",
            "go1.x",
            "go1.2.3.4",
            "v1.2",
            "go1.21alpha1",
            "go1.21rc",
            "",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?}");
        }
    }
}
