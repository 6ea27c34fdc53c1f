//! apk (Alpine) versions: `digit{.digit}…{letter}{_suffix{number}}…{~hash}{-r#}`.
//!
//! Mirrors apk-tools 3 `src/version.c` exactly (the `struct token_state` tokenizer of
//! apk-tools 3.0, checked against `test/unit/version.data` and, for that file and the
//! osv-scalibr vectors, against the `apk version -t` of apk-tools 3.0.8):
//!
//! * **Validity** is `apk_version_validate()`: a version is a sequence of tokens,
//!   each allowed only after certain others:
//!   - an initial number (required, so `""`, `.1`, `a`, `_pre1` and `-r1` are invalid);
//!   - `.number` (only after a number: `0.1a.1` is invalid);
//!   - one lower-case letter, only right after a number (`1.0bc`, `0.1a1` are invalid);
//!   - `_suffix` with an optional number, any number of times, where suffix is one of
//!     `alpha beta pre rc` (pre-releases) or `cvs svn git hg p` (post-releases),
//!     exactly (`_foobar`, `_` and `_1` are invalid);
//!   - `~hash`, one or more lower-case hex digits `[0-9a-f]`, at most once, before
//!     the revision and after nothing but the above;
//!   - `-r` followed by a number, last (`-r`, `-r2_pre1`, `-r2-r3`, `-r2.1` are invalid).
//!
//!   Everything else (upper case, `+`, a `-` not followed by `r`, trailing `.`, …)
//!   is invalid, and **an invalid version is an error here**, as `apk version -t`
//!   refuses to compare it (the library's `apk_version_compare` would still return
//!   an answer for it, which the unit test data asserts for `1.0bc` and `23_foo`).
//!   Historical versions that apk-tools 2 accepted, such as `6.6.2p1-r0` or
//!   `10.2.22.r0`, are invalid in apk-tools 3 and therefore errors.
//! * **Ordering** is `apk_version_compare()`: tokens are compared pairwise while
//!   both versions have a token of the same kind; numbers numerically — except a
//!   `.number` where either side has a leading zero, which is compared as a string
//!   (Gentoo rule: `1.01` < `1.1`, `1.0` < `1.00`); letters by ASCII value; suffixes
//!   `_alpha` < `_beta` < `_pre` < `_rc` < (none) < `_cvs` < `_svn` < `_git` < `_hg`
//!   < `_p`; hashes as strings; revisions numerically. At the first difference in
//!   kind, a pre-release suffix is older; otherwise the side whose token kind comes
//!   *later* in the order number, `.number`, letter, suffix, suffix number, hash,
//!   revision, end is older: `1.0` < `1.0a` < `1.0.1`, `1.0` < `1.0-r1` < `1.0_p1`,
//!   and `1.0_rc1` < `1.0`.
//! * Numbers are accumulated in a `u64` that wraps on overflow, as apk-tools'
//!   `apk_blob_pull_uint()` does (only numbers of 20 or more digits are affected).
//!
//! Equal versions can have different spellings (`1-r01` == `1-r1`); equality is
//! apk's. Display prints the version as given.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::{Scheme, VersionError};

/// A valid apk version (as `apk_version_validate()` decides).
#[derive(Debug, Clone)]
pub struct Version(String);

impl Version {
    /// The version as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// apk's fuzzy comparison (the `~` dependency operator,
    /// `apk_version_compare_fuzzy(…, true)`): like [`Ord::cmp`], except that it is
    /// `Equal` as soon as `pattern` has run out of tokens while all its tokens
    /// matched, so `3.6.9`, `3.6_pre1` and `3.6.0` all fuzzily equal `3.6`.
    pub fn fuzzy_cmp(&self, pattern: &Version) -> Ordering {
        compare(self.0.as_bytes(), pattern.0.as_bytes(), true)
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut b = s.as_bytes();
        let mut t = Token::first(&mut b);
        while t.kind < Kind::End {
            t.next(&mut b);
        }
        if t.kind == Kind::End {
            Ok(Version(s.to_owned()))
        } else {
            let at = s.len() - b.len();
            Err(VersionError::new(
                Scheme::Apk,
                s,
                format!(
                    "not a valid apk-tools 3 version (unexpected input at byte {at}; expected \
                     digit{{.digit}}…{{letter}}{{_suffix{{#}}}}…{{~hash}}{{-r#}})"
                ),
            ))
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Ord for Version {
    /// `apk_version_compare()`.
    fn cmp(&self, other: &Self) -> Ordering {
        compare(self.0.as_bytes(), other.0.as_bytes(), false)
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

/// `enum PARTS` of version.c; the order matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    CommitHash,
    RevisionNo,
    End,
    Invalid,
}

/// Suffix values of version.c (`SUFFIX_INVALID` … `SUFFIX_P`); `NONE` is the pivot
/// between pre- and post-release suffixes.
const SUFFIX_INVALID: u8 = 0;
const SUFFIX_NONE: u8 = 5;

fn suffix_value(s: &[u8]) -> u8 {
    let (val, literal): (u8, &[u8]) = match s.first() {
        Some(b'a') => (1, b"alpha"),
        Some(b'b') => (2, b"beta"),
        Some(b'p') if s.len() > 1 => (3, b"pre"),
        Some(b'r') => (4, b"rc"),
        Some(b'c') => (6, b"cvs"),
        Some(b's') => (7, b"svn"),
        Some(b'g') => (8, b"git"),
        Some(b'h') => (9, b"hg"),
        Some(b'p') => (10, b"p"),
        _ => return SUFFIX_INVALID,
    };
    if s == literal { val } else { SUFFIX_INVALID }
}

/// `struct token_state`.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    suffix: u8,
    number: u64,
    value: &'a [u8],
}

/// `apk_blob_pull_uint(b, 10)`: decimal digits into a wrapping `u64`.
fn pull_uint(b: &mut &[u8]) -> u64 {
    let mut val: u64 = 0;
    while let [c @ b'0'..=b'9', rest @ ..] = *b {
        val = val.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        *b = rest;
    }
    val
}

/// `apk_blob_spn(…)`: the longest prefix whose bytes satisfy `class`.
fn spn<'a>(b: &mut &'a [u8], class: fn(&u8) -> bool) -> &'a [u8] {
    let n = b.iter().take_while(|c| class(c)).count();
    let (head, tail) = b.split_at(n);
    *b = tail;
    head
}

fn is_lower_hex(c: &u8) -> bool {
    matches!(c, b'0'..=b'9' | b'a'..=b'f')
}

impl<'a> Token<'a> {
    /// `token_first()`.
    fn first(b: &mut &'a [u8]) -> Token<'a> {
        let mut t = Token {
            kind: Kind::InitialDigit,
            suffix: SUFFIX_INVALID,
            number: 0,
            value: &[],
        };
        t.parse_digits(b);
        t
    }

    /// `token_parse_digits()`.
    fn parse_digits(&mut self, b: &mut &'a [u8]) {
        let start = *b;
        self.number = pull_uint(b);
        self.value = &start[..start.len() - b.len()];
        if self.value.is_empty() {
            self.kind = Kind::Invalid;
        }
    }

    /// `token_next()`: reads the next token, checking that it may follow the
    /// previous one.
    fn next(&mut self, b: &mut &'a [u8]) {
        let Some(&c) = b.first() else {
            self.kind = Kind::End;
            return;
        };
        match c {
            b'a'..=b'z' => {
                if self.kind > Kind::Digit {
                    return self.invalid();
                }
                self.value = &b[..1];
                self.kind = Kind::Letter;
                *b = &b[1..];
            }
            b'.' | b'0'..=b'9' => {
                if c == b'.' {
                    if self.kind > Kind::Digit {
                        return self.invalid();
                    }
                    *b = &b[1..];
                }
                self.kind = match self.kind {
                    Kind::InitialDigit | Kind::Digit => Kind::Digit,
                    Kind::Suffix => Kind::SuffixNo,
                    _ => return self.invalid(),
                };
                self.parse_digits(b);
            }
            b'_' => {
                if self.kind > Kind::SuffixNo {
                    return self.invalid();
                }
                *b = &b[1..];
                self.value = spn(b, u8::is_ascii_lowercase);
                self.suffix = suffix_value(self.value);
                if self.suffix == SUFFIX_INVALID {
                    return self.invalid();
                }
                self.kind = Kind::Suffix;
            }
            b'~' => {
                if self.kind >= Kind::CommitHash {
                    return self.invalid();
                }
                *b = &b[1..];
                self.value = spn(b, is_lower_hex);
                if self.value.is_empty() {
                    return self.invalid();
                }
                self.kind = Kind::CommitHash;
            }
            b'-' => {
                if self.kind >= Kind::RevisionNo || !b.starts_with(b"-r") {
                    return self.invalid();
                }
                *b = &b[2..];
                self.kind = Kind::RevisionNo;
                self.parse_digits(b);
            }
            _ => self.invalid(),
        }
    }

    fn invalid(&mut self) {
        self.kind = Kind::Invalid;
    }
}

/// `token_cmp()`, for two tokens of the same kind.
fn token_cmp(ta: &Token<'_>, tb: &Token<'_>) -> Ordering {
    match ta.kind {
        // If either number has a leading zero, compare as strings (Gentoo rule).
        Kind::Digit if ta.value.first() == Some(&b'0') || tb.value.first() == Some(&b'0') => {
            ta.value.cmp(tb.value)
        }
        Kind::Digit | Kind::InitialDigit | Kind::SuffixNo | Kind::RevisionNo => {
            ta.number.cmp(&tb.number)
        }
        Kind::Letter => ta.value.first().cmp(&tb.value.first()),
        Kind::Suffix => ta.suffix.cmp(&tb.suffix),
        // `apk_blob_sort()`: memcmp of the common length, then the shorter first.
        _ => ta.value.cmp(tb.value),
    }
}

/// `apk_version_compare_fuzzy()`.
fn compare(mut a: &[u8], mut b: &[u8], fuzzy: bool) -> Ordering {
    let mut ta = Token::first(&mut a);
    let mut tb = Token::first(&mut b);
    while ta.kind == tb.kind && ta.kind < Kind::End {
        let r = token_cmp(&ta, &tb);
        if r != Ordering::Equal {
            return r;
        }
        ta.next(&mut a);
        tb.next(&mut b);
    }
    // Both have ended (or are both invalid), or the fuzzy pattern has ended.
    if ta.kind == tb.kind || (tb.kind == Kind::End && fuzzy) {
        return Ordering::Equal;
    }
    // The leading tokens are equal: the one that goes on is newer, unless it goes
    // on with a pre-release suffix.
    if ta.kind == Kind::Suffix && ta.suffix < SUFFIX_NONE {
        return Ordering::Less;
    }
    if tb.kind == Kind::Suffix && tb.suffix < SUFFIX_NONE {
        return Ordering::Greater;
    }
    // A later kind of token is older (`End` is the latest).
    tb.kind.cmp(&ta.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn basic_order() {
        assert!(v("1.0_rc1") < v("1.0"));
        assert!(v("1.0") < v("1.0-r1"));
        assert!(v("1.0-r1") < v("1.0_p1"));
        assert!(v("1.0") < v("1.0a"));
        assert!(v("1.0a") < v("1.0.1"));
        assert!(v("1.01") < v("1.1"));
        assert!(v("1.0") < v("1.00"));
        assert_eq!(v("1-r01"), v("1-r1"));
        assert!(v("1.0~abc") > v("1.0"));
    }

    #[test]
    fn wraps_like_apk() {
        // 2^64 wraps to 0, 2^64 + 1 to 1.
        assert_eq!(v("18446744073709551617"), v("1"));
    }
}
