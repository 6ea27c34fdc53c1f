//! PEP 440 versions (PyPI), ordered as the Python packaging ecosystem orders them.
//!
//! Parsing and ordering are [`pep440_rs`]'s (the implementation `uv` resolves
//! with), which follows the PEP 440 specification and `packaging.version`:
//! epochs, release segments of any length with trailing zeros ignored
//! (`1.0 == 1.0.0`), pre-releases `a`/`b`/`rc` (with their alternative spellings
//! `alpha`, `c`, `pre`, `preview`), post-releases (`.post1`, `-1`), dev releases,
//! local versions (`+ubuntu1`, greater than the same public version), a leading
//! `v` and surrounding whitespace, all normalised as PEP 440 says. Checked
//! against `packaging.version` on this machine (`tests/it/oracle_pypi.rs`).
//!
//! What PEP 440 does not define is an error, never a guess: a legacy version
//! such as `2004d` or `1.0-foo` is invalid.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::{Scheme, VersionError};

/// Longest version text accepted: real versions are short, and the parser's
/// work must stay bounded whatever an agent or a feed sends.
const MAX_LEN: usize = 256;

/// A valid PEP 440 version.
#[derive(Debug, Clone)]
pub struct Version(pep440_rs::Version);

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_LEN {
            return Err(VersionError::new(
                Scheme::Pypi,
                &s[..s.floor_char_boundary(MAX_LEN)],
                format!("longer than {MAX_LEN} bytes"),
            ));
        }
        pep440_rs::Version::from_str(s)
            .map(Version)
            .map_err(|e| VersionError::new(Scheme::Pypi, s, e.to_string()))
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
        self.0.cmp(&other.0)
    }
}

impl fmt::Display for Version {
    /// The normalised form (`1.0.0a1` for `1.0.0-alpha.1`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// PEP 503 name normalisation: runs of `-`, `_` and `.` become one `-`, and the
/// name is lower-cased (`Foo.Bar__baz` → `foo-bar-baz`). PyPI treats names that
/// normalise alike as one project, and so do its advisories.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise_as_pep_503() {
        assert_eq!(normalize_name("Foo.Bar__baz"), "foo-bar-baz");
        assert_eq!(normalize_name("requests"), "requests");
        assert_eq!(normalize_name("PyYAML"), "pyyaml");
        assert_eq!(normalize_name("zope.interface"), "zope-interface");
    }

    #[test]
    fn overlong_versions_are_refused_without_panicking() {
        let long = "1.".repeat(200) + "0";
        assert!(long.parse::<Version>().is_err());
        let wide = "é".repeat(200);
        assert!(wide.parse::<Version>().is_err());
    }
}
