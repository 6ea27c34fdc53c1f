//! Validated names. Parse, don't validate: once a value is an [`AssetName`], it is
//! known to be a lowercase, DNS-label-like standard name.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("name is empty")]
    Empty,
    /// The name is longer than [`AssetName::MAX_LEN`].
    #[error("name is {0} characters long; the limit is {max}", max = AssetName::MAX_LEN)]
    TooLong(usize),
    /// The name contains a character outside `[a-z0-9._-]`.
    #[error("name contains {0:?}; allowed are lowercase letters, digits, '.', '_' and '-'")]
    BadChar(char),
    /// The name starts with a character other than a letter or digit.
    #[error("name must start with a lowercase letter or a digit")]
    BadStart,
}

/// A unique, lowercase asset name such as `prod-web-01`.
///
/// Standard names are `<env>-<role>-<nn>` by convention (see the product brief);
/// the type enforces only what every name must satisfy so that imported names from
/// CMDBs (FQDNs, for instance) still fit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AssetName(String);

impl AssetName {
    /// Longest accepted name (the DNS limit for a full name).
    pub const MAX_LEN: usize = 253;

    /// Parses a name. Upper-case ASCII letters are folded to lower case, since host
    /// names are case-insensitive and we want one spelling per asset.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let s = raw.trim().to_ascii_lowercase();
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong(s.len()));
        }
        if let Some(c) = s.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        }) {
            return Err(NameError::BadChar(c));
        }
        let first = s.as_bytes()[0];
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(NameError::BadStart);
        }
        Ok(Self(s))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Derives a valid asset name from an arbitrary host name: invalid characters
    /// become `-`, and an empty result becomes `host`.
    pub fn from_hostname(host: &str) -> Self {
        let mut s: String = host
            .trim()
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        s.truncate(Self::MAX_LEN);
        let s = s.trim_start_matches(['.', '_', '-']).to_string();
        if s.is_empty() {
            Self("host".to_string())
        } else {
            Self(s)
        }
    }
}

impl TryFrom<String> for AssetName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<AssetName> for String {
    fn from(value: AssetName) -> Self {
        value.0
    }
}

impl fmt::Display for AssetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest host name (the DNS limit for a full name).
pub const MAX_HOSTNAME_LEN: usize = 253;
/// Longest machine id (`/etc/machine-id` is 32 hex digits; SMBIOS UUIDs 36).
pub const MAX_MACHINE_ID_LEN: usize = 128;
/// Longest label of people's making (token names).
pub const MAX_LABEL_LEN: usize = 128;
/// Longest one-line text of people's making (reasons, owners, notes).
pub const MAX_TEXT_LEN: usize = 1024;

/// Checks a host name as an agent reports it: 1 to 253 characters, labels of
/// 1 to 63 characters separated by `.`, each label of ASCII letters, digits,
/// `-` and `_` (RFC 1123, plus the `_` that Windows and some clouds use),
/// starting with a letter or digit. Host names reach terminals, logs and
/// reports, so nothing else (no spaces, escapes, newlines, NUL) is accepted.
pub fn check_hostname(host: &str) -> Result<(), String> {
    if host.is_empty() || host.len() > MAX_HOSTNAME_LEN {
        return Err(format!(
            "must be 1 to {MAX_HOSTNAME_LEN} characters, got {}",
            host.len()
        ));
    }
    for label in host.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("labels between dots must be 1 to 63 characters".into());
        }
        if !label.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(format!(
                "label {label:?} must start with a letter or a digit"
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
        {
            return Err(format!(
                "contains {c:?}; allowed are ASCII letters, digits, '-', '_' and '.'"
            ));
        }
    }
    Ok(())
}

/// Checks a machine id: at most 128 ASCII letters and digits (empty when the
/// host has none).
pub fn check_machine_id(id: &str) -> Result<(), String> {
    if id.len() > MAX_MACHINE_ID_LEN || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "must be at most {MAX_MACHINE_ID_LEN} ASCII letters and digits"
        ));
    }
    Ok(())
}

/// Whether `c` must never appear in text shown to people: control characters
/// (escape sequences, newlines, NUL) and the Unicode bidirectional and
/// zero-width format characters that make text display as something else.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Checks a one-line label of people's making (a token name, a note): 1 to
/// `max` bytes after trimming, no control or bidirectional characters.
/// Returns the trimmed label.
pub fn check_label(value: &str, max: usize) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() || v.len() > max {
        return Err(format!("must be 1 to {max} characters, got {}", v.len()));
    }
    if let Some(c) = v.chars().find(|&c| is_unsafe_char(c)) {
        return Err(format!(
            "contains the control character {c:?}; control, bidirectional and zero-width characters are not allowed"
        ));
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_standard_names_and_folds_case() {
        assert_eq!(
            AssetName::parse("Prod-Web-01").unwrap().as_str(),
            "prod-web-01"
        );
        assert_eq!(
            AssetName::parse("db1.example.org").unwrap().as_str(),
            "db1.example.org"
        );
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(AssetName::parse(""), Err(NameError::Empty));
        assert_eq!(AssetName::parse("a b"), Err(NameError::BadChar(' ')));
        assert_eq!(AssetName::parse("-x"), Err(NameError::BadStart));
        assert!(matches!(
            AssetName::parse(&"a".repeat(300)),
            Err(NameError::TooLong(300))
        ));
    }

    #[test]
    fn host_names_machine_ids_and_labels() {
        for ok in ["web-01", "db1.example.org", "WIN_HOST", "chroot-host", "a"] {
            assert!(check_hostname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a\u{1b}[31mb",
            "a\nb",
            "a\0",
            "-x",
            "a..b",
            "a b",
            "x;y",
            "a".repeat(64).as_str(),
            "a.".repeat(140).as_str(),
        ] {
            assert!(check_hostname(bad).is_err(), "{bad:?}");
        }
        assert!(check_machine_id("0123abcdef").is_ok());
        assert!(check_machine_id("").is_ok());
        assert!(check_machine_id("ab\u{1b}").is_err());
        assert!(check_machine_id(&"a".repeat(129)).is_err());
        assert_eq!(check_label("  ci bot ", 128).unwrap(), "ci bot");
        assert!(check_label("x\u{1b}]0;pwned\u{7}", 128).is_err());
        assert!(check_label("evil\u{202E}txt", 128).is_err());
        assert!(check_label("", 128).is_err());
        assert!(check_label(&"x".repeat(129), 128).is_err());
    }

    #[test]
    fn hostnames_become_valid_names() {
        assert_eq!(AssetName::from_hostname("My Host!").as_str(), "my-host-");
        assert_eq!(AssetName::from_hostname("---").as_str(), "host");
        let n = AssetName::from_hostname("WEB_01");
        assert_eq!(AssetName::parse(n.as_str()).unwrap(), n);
    }
}
