//! CVSS base scores of vector strings (v2.0, v3.0, v3.1, v4.0), computed with the
//! `cvss` crate, and the choice of one score per advisory.
//!
//! # Which score when an advisory has several
//!
//! [`best`] prefers **CVSS v3.x** (3.1 and 3.0 alike), then **v4.0**, then **v2.0**;
//! within the preferred version it takes the **highest** base score. v3.x first
//! because it is what the other inputs of prioritisation use: NVD base scores, the
//! KEV/EPSS companion data and most distributor feeds publish v3.1, so one ranking
//! stays comparable across advisories; v4.0 is used only where no v3 vector exists
//! (e.g. some RustSec entries), and v2.0 only for old records. The highest score of
//! the chosen version is the cautious pick when a record carries several (Ubuntu
//! publishes NVD's and its own v3.1 vectors).
//!
//! # Base score
//!
//! `base_score` is always the *base* score: v2 and v3 ignore temporal and
//! environmental metrics; for v4.0 the threat, environmental and supplemental
//! metrics are removed before scoring, so the value is CVSS-B.

use crate::error::FeedError;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// The CVSS version of a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum CvssVersion {
    /// CVSS v2.0 (vectors without a `CVSS:` prefix).
    #[serde(rename = "2.0")]
    V2_0,
    /// `CVSS:3.0/…`
    #[serde(rename = "3.0")]
    V3_0,
    /// `CVSS:3.1/…`
    #[serde(rename = "3.1")]
    V3_1,
    /// `CVSS:4.0/…`
    #[serde(rename = "4.0")]
    V4_0,
}

impl CvssVersion {
    /// `"2.0"`, `"3.0"`, `"3.1"` or `"4.0"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2_0 => "2.0",
            Self::V3_0 => "3.0",
            Self::V3_1 => "3.1",
            Self::V4_0 => "4.0",
        }
    }

    /// Rank used by [`best`]: higher is preferred (v3.x, then v4.0, then v2.0).
    fn preference(self) -> u8 {
        match self {
            Self::V3_0 | Self::V3_1 => 3,
            Self::V4_0 => 2,
            Self::V2_0 => 1,
        }
    }
}

impl fmt::Display for CvssVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Qualitative rating of a base score. v3.x and v4.0 use the FIRST scale
/// (None 0.0, Low 0.1–3.9, Medium 4.0–6.9, High 7.0–8.9, Critical 9.0–10.0); v2.0
/// uses NVD's (Low 0.0–3.9, Medium 4.0–6.9, High 7.0–10.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    /// 0.0 (v3/v4 only).
    None,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical (v3/v4 only).
    Critical,
}

impl Rating {
    /// `"none"`, `"low"`, `"medium"`, `"high"` or `"critical"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    fn of(version: CvssVersion, score: f64) -> Self {
        match version {
            CvssVersion::V2_0 if score < 4.0 => Self::Low,
            CvssVersion::V2_0 if score < 7.0 => Self::Medium,
            CvssVersion::V2_0 => Self::High,
            _ if score < 0.1 => Self::None,
            _ if score < 4.0 => Self::Low,
            _ if score < 7.0 => Self::Medium,
            _ if score < 9.0 => Self::High,
            _ => Self::Critical,
        }
    }
}

impl fmt::Display for Rating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scored CVSS vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CvssScore {
    /// The CVSS version of the vector.
    pub version: CvssVersion,
    /// The vector as given (trimmed).
    pub vector: String,
    /// The base score, 0.0–10.0, one decimal.
    pub base_score: f64,
    /// The qualitative rating of `base_score`.
    pub rating: Rating,
}

/// Scores one vector string: `CVSS:3.1/AV:N/…`, `CVSS:3.0/…`, `CVSS:4.0/…`, or a
/// v2.0 vector `AV:N/AC:L/Au:N/C:P/I:P/A:P` (also accepted with NVD's parentheses or
/// a `CVSS:2.0/` prefix).
///
/// ```
/// let s = patchbay_feeds::cvss::score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").unwrap();
/// assert_eq!(s.base_score, 9.8);
/// assert_eq!(s.rating.as_str(), "critical");
/// ```
pub fn score(vector: &str) -> Result<CvssScore, FeedError> {
    let trimmed = vector.trim();
    let bad = |e: &dyn fmt::Display| {
        FeedError::malformed(format!("invalid CVSS vector {trimmed:?}: {e}"))
    };
    let v2 = trimmed
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .or_else(|| trimmed.strip_prefix("CVSS:2.0/"));
    let (version, base_score) = if let Some(v2) = v2 {
        let v = ::cvss::v2::Vector::from_str(v2).map_err(|e| bad(&e))?;
        (CvssVersion::V2_0, v.score().value())
    } else {
        match ::cvss::Cvss::from_str(trimmed).map_err(|e| bad(&e))? {
            ::cvss::Cvss::CvssV20(v) => (CvssVersion::V2_0, v.score().value()),
            ::cvss::Cvss::CvssV30(v) => {
                require_v3_base(trimmed).map_err(|e| bad(&e))?;
                (CvssVersion::V3_0, v.base_score().value())
            }
            ::cvss::Cvss::CvssV31(v) => {
                require_v3_base(trimmed).map_err(|e| bad(&e))?;
                (CvssVersion::V3_1, v.base_score().value())
            }
            ::cvss::Cvss::CvssV40(_) => {
                let base = v4_base_only(trimmed);
                let v = ::cvss::v4::Vector::from_str(&base).map_err(|e| bad(&e))?;
                (CvssVersion::V4_0, v.score().value())
            }
            _ => return Err(bad(&"unsupported CVSS version")),
        }
    };
    if !(0.0..=10.0).contains(&base_score) {
        return Err(bad(&format!("score {base_score} out of range")));
    }
    Ok(CvssScore {
        version,
        vector: trimmed.to_owned(),
        base_score,
        rating: Rating::of(version, base_score),
    })
}

/// The `cvss` crate scores a v3 vector with missing base metrics as if they were
/// zero; the specification requires all eight.
fn require_v3_base(vector: &str) -> Result<(), String> {
    const BASE: [&str; 8] = ["AV", "AC", "PR", "UI", "S", "C", "I", "A"];
    let missing: Vec<&str> = BASE
        .into_iter()
        .filter(|m| {
            !vector.split('/').skip(1).any(|part| {
                part.split(':')
                    .next()
                    .is_some_and(|k| k.eq_ignore_ascii_case(m))
            })
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing base metric(s) {}", missing.join(", ")))
    }
}

/// The vector with only the v4.0 base metrics (and the `CVSS:4.0` prefix).
fn v4_base_only(vector: &str) -> String {
    const BASE: [&str; 11] = [
        "AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA",
    ];
    let mut parts = vector.split('/');
    let mut out = String::with_capacity(vector.len());
    out.push_str(parts.next().unwrap_or_default());
    for part in parts {
        let key = part.split(':').next().unwrap_or_default();
        if BASE.iter().any(|b| b.eq_ignore_ascii_case(key)) {
            out.push('/');
            out.push_str(part);
        }
    }
    out
}

/// The preferred score among `vectors` (see the module docs): v3.x, then v4.0, then
/// v2.0; the highest base score within that version. Vectors that do not score are
/// ignored; `None` when none scores.
pub fn best<'a>(vectors: impl IntoIterator<Item = &'a str>) -> Option<CvssScore> {
    vectors
        .into_iter()
        .filter_map(|v| score(v).ok())
        .max_by(|a, b| {
            (a.version.preference(), a.base_score)
                .partial_cmp(&(b.version.preference(), b.base_score))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_scores() {
        for (v, want, version) in [
            (
                "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                9.8,
                CvssVersion::V3_1,
            ),
            (
                "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                9.8,
                CvssVersion::V3_0,
            ),
            (
                "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H",
                7.8,
                CvssVersion::V3_1,
            ),
            ("AV:N/AC:L/Au:N/C:C/I:C/A:C", 10.0, CvssVersion::V2_0),
            ("(AV:N/AC:L/Au:N/C:P/I:P/A:P)", 7.5, CvssVersion::V2_0),
            (
                "CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P",
                7.5,
                CvssVersion::V2_0,
            ),
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
                9.3,
                CvssVersion::V4_0,
            ),
        ] {
            let s = score(v).unwrap();
            assert_eq!(s.base_score, want, "{v}");
            assert_eq!(s.version, version, "{v}");
        }
    }

    #[test]
    fn v4_threat_metrics_do_not_change_the_base_score() {
        let base =
            score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N").unwrap();
        let bt =
            score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:U").unwrap();
        assert_eq!(base.base_score, bt.base_score);
        assert!(bt.vector.ends_with("/E:U"));
    }

    #[test]
    fn preference() {
        let b = best([
            "AV:N/AC:L/Au:N/C:C/I:C/A:C",
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.1/AV:L/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H",
            "garbage",
        ])
        .unwrap();
        assert_eq!(b.vector, "CVSS:3.1/AV:L/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H");
        assert_eq!(b.base_score, 9.3);
        assert_eq!(best(["nope"]), None);
    }

    #[test]
    fn v3_needs_every_base_metric() {
        let e = score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H").unwrap_err();
        assert!(e.to_string().contains("missing base metric(s) A"), "{e}");
    }

    #[test]
    fn errors_name_the_vector() {
        let e = score("CVSS:3.1/AV:X").unwrap_err();
        assert!(e.to_string().contains("CVSS:3.1/AV:X"), "{e}");
    }
}
