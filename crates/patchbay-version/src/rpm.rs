//! rpm labels: `[epoch:]version[-release]`.
//!
//! Mirrors rpm exactly (checked against rpm 4.18 / python3-rpm on this project's
//! Debian 12 machines, see `tests/it/oracle_rpm.rs`):
//!
//! * [`rpmvercmp`] is `rpmvercmp()` of rpm's `rpmio/rpmvercmp.c` (`.cc` in rpm ≥ 4.20),
//!   segment by segment, including `~` (sorts before everything, even the end) and
//!   `^` (sorts after the end but before anything else).
//! * **Parsing** ([`Evr::from_str`]) splits like rpm's `parseEVR()` (`lib/rpmds.c`,
//!   used by `rpmverParse()`): a leading run of ASCII digits followed by `:` is the
//!   epoch (a leading `:` alone means epoch 0, as rpm reads it), the release starts
//!   after the *last* `-` of the rest. Anything else belongs to the version, so
//!   `a:1` is version `a:1` without an epoch, as in rpm.
//! * **Ordering** ([`Evr`]'s `Ord`) is rpm's `labelCompare` / `rpmverCmp()`
//!   (rpm 4.18, `python/header-py.c` → `lib/rpmver.c`) and agrees with
//!   `rpmVersionCompare()` (`lib/psm.c`) for installed packages: epochs numerically
//!   (absent = 0), then the versions with [`rpmvercmp`], then the releases with
//!   [`rpmvercmp`], where an absent release sorts before any present one (so
//!   `1.0` < `1.0-1`, as python3-rpm's `labelCompare("1.0", "1.0-1")` says).
//!
//! What rpm would accept but is an error here, because no rpm package can carry it
//! and rpm's answer would be a guess:
//!
//! * the empty string (rpm: "invalid version") and an empty version (`1:`, `-1`);
//! * any byte outside printable ASCII (`!`..`~`): whitespace and control characters
//!   cannot be in a package's EVR, and rpmbuild rejects non-ASCII in Version and
//!   Release. `rpmvercmp` treats such bytes as separators, so it would call `1.1.α`
//!   and `1.1.β` equal (upstream's "arguably buggy" cases, disabled in
//!   `tests/rpmvercmp.at`);
//! * an epoch that does not fit in a `u64` (rpm headers store it as a 32-bit integer).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::{Scheme, VersionError};

/// rpm's `rpmvercmp()`: compares two version (or release) strings.
///
/// Both strings are split into maximal runs of ASCII digits and of ASCII letters;
/// every other byte except `~` and `^` only separates runs. Runs are compared in
/// turn: digits numerically (leading zeros ignored, any length), letters with
/// `strcmp`, and a digit run is newer than a letter run. `~` sorts before anything
/// (also before the end of the string), `^` after the end of the string but before
/// anything else. When one string runs out, the one with anything left is newer;
/// identical strings are equal. As in C, a NUL byte ends the string. Total: it never
/// panics and accepts any input.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    let a = until_nul(a.as_bytes());
    let b = until_nul(b.as_bytes());
    if a == b {
        return Ordering::Equal;
    }
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    let (mut i, mut j) = (0usize, 0usize);
    while i < a.len() || j < b.len() {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());

        // The tilde separator sorts before everything else.
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }

        // The caret separator: like tilde, except that if one string has ended (the
        // base version), the other is newer.
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }

        // If we ran to the end of either, the loop is over.
        let (Some(first), Some(_)) = (ca, cb) else {
            break;
        };

        let (si, sj) = (i, j);
        let isnum = first.is_ascii_digit();
        let class: fn(&u8) -> bool = if isnum {
            u8::is_ascii_digit
        } else {
            u8::is_ascii_alphabetic
        };
        while a.get(i).is_some_and(class) {
            i += 1;
        }
        while b.get(j).is_some_and(class) {
            j += 1;
        }
        let (mut one, mut two) = (&a[si..i], &b[sj..j]);

        // Different types of segment: a numeric one is newer than an alphabetic one.
        if two.is_empty() {
            return if isnum {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }

        if isnum {
            while let [b'0', rest @ ..] = one {
                one = rest;
            }
            while let [b'0', rest @ ..] = two {
                two = rest;
            }
            // Whichever number has more digits wins.
            match one.len().cmp(&two.len()) {
                Ordering::Equal => {}
                other => return other,
            }
        }
        match one.cmp(two) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    let (ea, eb) = (i >= a.len(), j >= b.len());
    match (ea, eb) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

fn until_nul(s: &[u8]) -> &[u8] {
    match s.iter().position(|&c| c == 0) {
        Some(n) => &s[..n],
        None => s,
    }
}

/// An rpm `[epoch:]version[-release]` label. Equality and order are rpm's
/// (`0:1.0-1` == `1.0-1` == `1.0-01`).
#[derive(Debug, Clone)]
pub struct Evr {
    epoch: Option<u64>,
    version: String,
    release: Option<String>,
}

impl Evr {
    /// Builds a label from its parts, as rpm's `labelCompare((e, v, r), …)` takes
    /// them. Errors when a part is invalid (see the module docs) or when the parts
    /// would not read back as the same label (a `-` in the version, or a version
    /// that would read as an epoch).
    pub fn new(
        epoch: Option<u64>,
        version: &str,
        release: Option<&str>,
    ) -> Result<Evr, VersionError> {
        let evr = Evr {
            epoch,
            version: version.to_owned(),
            release: release.map(str::to_owned),
        };
        let text = evr.to_string();
        check_chars(&text)?;
        let back: Evr = text.parse()?;
        if back.epoch != evr.epoch || back.version != evr.version || back.release != evr.release {
            return Err(VersionError::new(
                Scheme::Rpm,
                &text,
                "epoch, version and release do not form an unambiguous label",
            ));
        }
        Ok(evr)
    }

    /// The epoch, if the label has one (an absent epoch compares as 0).
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// The version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The release, if the label has one (`Some("")` for `1.0-`).
    pub fn release(&self) -> Option<&str> {
        self.release.as_deref()
    }
}

fn check_chars(s: &str) -> Result<(), VersionError> {
    if s.is_empty() {
        return Err(VersionError::new(Scheme::Rpm, s, "version string is empty"));
    }
    if let Some(c) = s.chars().find(|c| !c.is_ascii_graphic()) {
        let what = if c.is_ascii_whitespace() {
            "whitespace"
        } else if c.is_ascii() {
            "a control character"
        } else {
            "a non-ASCII character (rpm would compare it as a separator)"
        };
        return Err(VersionError::new(
            Scheme::Rpm,
            s,
            format!("version string contains {what} ({c:?})"),
        ));
    }
    Ok(())
}

impl FromStr for Evr {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_chars(s)?;
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let (epoch, rest) = if s.as_bytes().get(digits) == Some(&b':') {
            let e = &s[..digits];
            let epoch = if e.is_empty() {
                0
            } else {
                e.parse::<u64>()
                    .map_err(|_| VersionError::new(Scheme::Rpm, s, "epoch is too big"))?
            };
            (Some(epoch), &s[digits + 1..])
        } else {
            (None, s)
        };
        let (version, release) = match rest.rfind('-') {
            Some(h) => (&rest[..h], Some(&rest[h + 1..])),
            None => (rest, None),
        };
        if version.is_empty() {
            return Err(VersionError::new(Scheme::Rpm, s, "version is empty"));
        }
        Ok(Evr {
            epoch,
            version: version.to_owned(),
            release: release.map(str::to_owned),
        })
    }
}

impl fmt::Display for Evr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = self.epoch {
            write!(f, "{e}:")?;
        }
        f.write_str(&self.version)?;
        if let Some(r) = &self.release {
            write!(f, "-{r}")?;
        }
        Ok(())
    }
}

impl Ord for Evr {
    /// rpm's `labelCompare` (see the module docs).
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .unwrap_or(0)
            .cmp(&other.epoch.unwrap_or(0))
            .then_with(|| rpmvercmp(&self.version, &other.version))
            .then_with(|| match (&self.release, &other.release) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(a), Some(b)) => rpmvercmp(a, b),
            })
    }
}

impl PartialOrd for Evr {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Evr {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Evr {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_like_rpm() {
        let e: Evr = "1:2:3".parse().unwrap();
        assert_eq!(
            (e.epoch(), e.version(), e.release()),
            (Some(1), "2:3", None)
        );
        let e: Evr = "a:1".parse().unwrap();
        assert_eq!((e.epoch(), e.version(), e.release()), (None, "a:1", None));
        let e: Evr = "1-2-3".parse().unwrap();
        assert_eq!(
            (e.epoch(), e.version(), e.release()),
            (None, "1-2", Some("3"))
        );
        let e: Evr = ":1".parse().unwrap();
        assert_eq!((e.epoch(), e.version(), e.release()), (Some(0), "1", None));
        assert!("1:".parse::<Evr>().is_err());
        assert!("-1".parse::<Evr>().is_err());
        assert!("".parse::<Evr>().is_err());
        assert!("1 2".parse::<Evr>().is_err());
    }

    #[test]
    fn new_rejects_ambiguous_parts() {
        assert!(Evr::new(None, "1-2", None).is_err());
        assert!(Evr::new(None, "1", Some("2-3")).is_err());
        assert!(Evr::new(None, "1-2", Some("3")).is_ok());
        assert!(Evr::new(None, "1:2", None).is_err());
        assert!(Evr::new(Some(0), "1:2", None).is_ok());
    }
}
