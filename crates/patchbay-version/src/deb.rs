//! dpkg versions: `[epoch:]upstream_version[-debian_revision]`.
//!
//! Mirrors dpkg exactly (checked against dpkg 1.21.22 and libapt on this project's
//! Debian 12 machines, see `tests/it/oracle_dpkg.rs`):
//!
//! * **Parsing** follows `parseversion()` in dpkg's `lib/dpkg/parsehelp.c`: leading
//!   and trailing blanks (space, tab) are ignored; an empty or blank string, embedded
//!   blanks, an empty epoch, a non-numeric, negative or too big (> `INT_MAX`) epoch,
//!   nothing after the epoch colon, an empty revision (`1.0-`) and an empty upstream
//!   version (`-1`, `0:-1`) are errors. The epoch ends at the first `:`, the revision
//!   starts after the last `-`.
//! * **What dpkg only warns about is an error here** (strict parsing, what
//!   `dpkg-deb --build` and every archive enforce): an upstream version that does
//!   not start with a digit, a character other than `[A-Za-z0-9.+~:-]` in the
//!   upstream version, a character other than `[A-Za-z0-9.+~]` in the revision
//!   (so a `:` in the revision too). [`Version::parse_lax`] accepts these, as
//!   `dpkg --compare-versions` does after printing its warning.
//! * **Stricter than dpkg's `strtol`**: the epoch must be plain ASCII digits (dpkg's
//!   `strtol` would also take `+1:`, `-0:` or leading `\n`); a NUL byte and (in lax
//!   mode) non-ASCII bytes are errors (dpkg would stop at a NUL, and orders
//!   non-ASCII bytes differently on signed-`char` and unsigned-`char` platforms).
//! * **Ordering** is `dpkg_version_compare()` of `lib/dpkg/version.c`: epochs
//!   numerically, then the upstream versions and then the revisions with `verrevcmp()`
//!   (see [`verrevcmp`]). An absent revision equals an empty one, so `1.0` = `1.0-0`.
//!
//! Display prints what dpkg's `varbufversion(…, vdew_nonambig)` prints: the epoch
//! only when it is non-zero or when the rest contains a `:`, and `-revision` only when
//! the revision is non-empty.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::{Scheme, VersionError};

/// A parsed dpkg version. Equality and order are dpkg's (`1.0` == `1.00` == `1.0-0`).
#[derive(Debug, Clone)]
pub struct Version {
    epoch: u32,
    /// The upstream version followed by the revision, in one allocation
    /// (versions are parsed by the thousand when a host is matched).
    parts: String,
    /// Where the revision starts in `parts`.
    split: usize,
}

impl Version {
    /// Parses like dpkg but accepts what dpkg only warns about (upstream not starting
    /// with a digit, unusual characters), as `dpkg --compare-versions` does. Errors
    /// are still errors; NUL and non-ASCII bytes are rejected.
    pub fn parse_lax(s: &str) -> Result<Version, VersionError> {
        parse(s, false)
    }

    /// The epoch (0 when absent).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The upstream version.
    pub fn upstream(&self) -> &str {
        &self.parts[..self.split]
    }

    /// The Debian revision (empty when absent).
    pub fn revision(&self) -> &str {
        &self.parts[self.split..]
    }
}

impl FromStr for Version {
    type Err = VersionError;

    /// Strict parsing: dpkg's errors and warnings are both errors.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s, true)
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn parse(s: &str, strict: bool) -> Result<Version, VersionError> {
    let err = |reason: &str| VersionError::new(Scheme::Deb, s, reason);
    if s.contains('\0') {
        return Err(err("version string contains a NUL byte"));
    }
    if !s.is_ascii() {
        return Err(err(
            "version string contains non-ASCII characters (dpkg rejects them in the upstream \
             version and the revision, and orders them differently on different platforms)",
        ));
    }
    let t = s.trim_start_matches(is_blank);
    if t.is_empty() {
        return Err(err("version string is empty"));
    }
    let end = t.find(is_blank).unwrap_or(t.len());
    let (body, rest) = t.split_at(end);
    if !rest.trim_start_matches(is_blank).is_empty() {
        return Err(err("version string has embedded spaces"));
    }

    let (epoch, rest) = match body.find(':') {
        Some(colon) => {
            let e = &body[..colon];
            if e.is_empty() {
                return Err(err("epoch in version is empty"));
            }
            if !e.bytes().all(|b| b.is_ascii_digit()) {
                let negative = e.len() > 1
                    && e.starts_with('-')
                    && e[1..].bytes().all(|b| b.is_ascii_digit())
                    && e[1..].bytes().any(|b| b != b'0');
                return Err(err(if negative {
                    "epoch in version is negative"
                } else {
                    "epoch in version is not number"
                }));
            }
            let epoch = e
                .parse::<u64>()
                .ok()
                .filter(|&n| n <= i32::MAX as u64)
                .ok_or_else(|| err("epoch in version is too big"))?;
            let rest = &body[colon + 1..];
            if rest.is_empty() {
                return Err(err("nothing after colon in version number"));
            }
            // Checked against i32::MAX above.
            (u32::try_from(epoch).unwrap_or(u32::MAX), rest)
        }
        None => (0, body),
    };

    let (upstream, revision) = match rest.rfind('-') {
        Some(h) => {
            let revision = &rest[h + 1..];
            if revision.is_empty() {
                return Err(err("revision number is empty"));
            }
            (&rest[..h], revision)
        }
        None => (rest, ""),
    };
    if upstream.is_empty() {
        return Err(err("version number is empty"));
    }
    if strict {
        if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(err("version number does not start with digit"));
        }
        if !upstream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-+~:".contains(&b))
        {
            return Err(err("invalid character in version number"));
        }
        if !revision
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+~".contains(&b))
        {
            return Err(err("invalid character in revision number"));
        }
    }
    let mut parts = String::with_capacity(upstream.len() + revision.len());
    parts.push_str(upstream);
    parts.push_str(revision);
    Ok(Version {
        epoch,
        parts,
        split: upstream.len(),
    })
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch != 0 || self.parts.contains(':') {
            write!(f, "{}:", self.epoch)?;
        }
        f.write_str(self.upstream())?;
        if !self.revision().is_empty() {
            write!(f, "-{}", self.revision())?;
        }
        Ok(())
    }
}

impl Ord for Version {
    /// `dpkg_version_compare()`.
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream(), other.upstream()))
            .then_with(|| verrevcmp(self.revision(), other.revision()))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// dpkg's `order()`: the weight of a character in a non-digit run. Digits and the
/// end of the string weigh 0, letters their ASCII value, `~` −1 (before everything,
/// even the end), anything else its value + 256 (after all letters). Bytes ≥ 0x80
/// are taken as signed `char`, as dpkg does on amd64.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c as i8) + 256,
    }
}

/// dpkg's `verrevcmp()` (`lib/dpkg/version.c`), used for both the upstream version
/// and the revision: alternately compare a run of non-digits character by character
/// with dpkg's `order()` weights (`~` < end < letters < other characters), then a run of
/// digits numerically (any length: leading zeros are skipped, then the longer run
/// wins, then the first differing digit).
pub fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0usize, 0usize);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        let mut first_diff = 0i32;
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        while digit(a, i) && digit(b, j) {
            if first_diff == 0 {
                first_diff = i32::from(a[i]) - i32::from(b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return first_diff.cmp(&0);
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_sorts_before_end() {
        assert_eq!(verrevcmp("1~", "1"), Ordering::Less);
        assert_eq!(verrevcmp("1~~", "1~"), Ordering::Less);
        assert_eq!(verrevcmp("1+", "1"), Ordering::Greater);
        assert_eq!(verrevcmp("1a", "1+"), Ordering::Less);
    }

    #[test]
    fn display_is_nonambiguous() {
        let v: Version = "0:1:2-3".parse().unwrap();
        assert_eq!(v.to_string(), "0:1:2-3");
        let v = Version::parse_lax("0:0-0:0").unwrap();
        assert_eq!(v.revision(), "0:0");
        assert_eq!(v.to_string(), "0:0-0:0");
        let v: Version = " 0:1.0-0 ".parse().unwrap();
        assert_eq!(v.to_string(), "1.0-0");
    }
}
