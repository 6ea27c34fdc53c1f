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
    fn hostnames_become_valid_names() {
        assert_eq!(AssetName::from_hostname("My Host!").as_str(), "my-host-");
        assert_eq!(AssetName::from_hostname("---").as_str(), "host");
        let n = AssetName::from_hostname("WEB_01");
        assert_eq!(AssetName::parse(n.as_str()).unwrap(), n);
    }
}
