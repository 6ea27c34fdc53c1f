//! Which CVSS score prioritisation uses when a finding has several (ADR 0013).
//!
//! A finding's advisory may carry its own vector (an OSV record's `severity`),
//! and each of its CVEs may have scores imported from NVD and CVE JSON 5
//! records: NVD's own analysis, the CNA's, ADPs' such as CISA-ADP's. One rule
//! picks one:
//!
//! 1. **Per CVE**, among the advisory record's own score and that CVE's
//!    imported scores, the best **version class** wins: CVSS v3.x (3.1 and 3.0
//!    alike), then v4.0, then v2.0 — the rule of `patchbay_feeds::cvss::best`,
//!    for the same reason: the tier thresholds (9.0 / 7.0 / 4.0) and the rest
//!    of the ranking are calibrated on v3.x, which almost every CVE has, so
//!    one worklist stays comparable; v4.0 is used where no v3 score exists,
//!    v2.0 only for old CVEs.
//! 2. Within a version class, the **source** in this order: the advisory
//!    record itself (the distribution's assessment of the package it ships),
//!    NVD (`Primary`), the CNA, an ADP (CISA-ADP), any other source.
//! 3. Within the same class and source, the highest base score.
//! 4. **Across an advisory's CVEs**, the highest of their chosen scores (the
//!    cautious pick, as EPSS takes the highest of an advisory's CVEs).
//!
//! Without any score the risk model falls back to the distribution's severity
//! (Debian urgency, Ubuntu priority, Red Hat severity; `[tiers]
//! severity_cvss`), then to the assumed CVSS (`unknown_cvss`, 7.0) — see
//! [`crate::risk`].
//!
//! Pure; the result names its source for the reasons ("CVSS 9.8 (NVD, v3.1)").

use std::fmt;

/// Where a score comes from, in order of preference within a version class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The advisory record's own vector (OSV `severity`).
    Record,
    /// NVD's own analysis.
    Nvd,
    /// The CNA that assigned the CVE.
    Cna,
    /// An Authorized Data Publisher (CISA-ADP).
    Adp,
    /// Any other source.
    Other,
}

impl Source {
    /// Parses the stored kind: `record`, `nvd`, `cna`, `adp`, `other`.
    pub fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "record" => Self::Record,
            "nvd" => Self::Nvd,
            "cna" => Self::Cna,
            "adp" => Self::Adp,
            "other" => Self::Other,
            _ => return None,
        })
    }
}

/// One score to choose from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate<'a> {
    /// Who produced it.
    pub source: Source,
    /// Its name (`nvd@nist.gov`, `secalert@redhat.com`, `CISA-ADP`; the
    /// advisory id for [`Source::Record`]).
    pub name: &'a str,
    /// CVSS version: `2.0`, `3.0`, `3.1` or `4.0`.
    pub version: &'a str,
    /// Base score, 0–10.
    pub base: f64,
}

/// The version class of rule 1: higher is preferred; 0 = not a CVSS version.
pub fn version_class(version: &str) -> u8 {
    match version {
        "3.1" | "3.0" => 3,
        "4.0" => 2,
        "2.0" => 1,
        _ => 0,
    }
}

impl Candidate<'_> {
    fn usable(&self) -> bool {
        version_class(self.version) > 0 && (0.0..=10.0).contains(&self.base)
    }

    /// Whether `self` is preferred to `other` (rules 1–3).
    fn beats(&self, other: &Self) -> bool {
        let a = (version_class(self.version), std::cmp::Reverse(self.source));
        let b = (
            version_class(other.version),
            std::cmp::Reverse(other.source),
        );
        a > b || (a == b && self.base > other.base)
    }

    /// The source as people read it: `NVD`, `CNA secalert@redhat.com`,
    /// `CISA-ADP`, `advisory DSA-5514-1`.
    pub fn label(&self) -> String {
        let name = self.name.trim();
        match self.source {
            Source::Record if name.is_empty() => "advisory record".to_owned(),
            Source::Record => format!("advisory {name}"),
            Source::Nvd => "NVD".to_owned(),
            Source::Cna if name.is_empty() => "CNA".to_owned(),
            Source::Cna => format!("CNA {name}"),
            Source::Adp if name.to_ascii_uppercase().contains("ADP") => name.to_owned(),
            Source::Adp => format!("ADP {name}"),
            Source::Other if name.is_empty() => "other source".to_owned(),
            Source::Other => name.to_owned(),
        }
    }
}

/// The chosen score and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    /// Base score.
    pub base: f64,
    /// `NVD, v3.1`; with `, CVE-…` when the advisory has several CVEs.
    pub source: String,
}

impl fmt::Display for Chosen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CVSS {} ({})", crate::risk::num(self.base), self.source)
    }
}

/// The preferred candidate of one CVE (rules 1–3); unusable ones (an unknown
/// version, a score outside 0–10) are ignored.
pub fn choose_for_cve<'a>(
    candidates: impl IntoIterator<Item = Candidate<'a>>,
) -> Option<Candidate<'a>> {
    candidates
        .into_iter()
        .filter(Candidate::usable)
        .fold(None, |best: Option<Candidate<'a>>, c| match best {
            Some(b) if !c.beats(&b) => Some(b),
            _ => Some(c),
        })
}

/// The score of an advisory (rules 1–4): `record` is its own score, `cves`
/// each CVE with its imported scores. An advisory without CVEs has only its
/// own score.
pub fn choose<'a>(
    record: Option<Candidate<'a>>,
    cves: &[(&'a str, Vec<Candidate<'a>>)],
) -> Option<Chosen> {
    let label = |c: &Candidate<'_>, cve: Option<&str>| Chosen {
        base: c.base,
        source: match cve {
            Some(cve) if cves.len() > 1 && c.source != Source::Record => {
                format!("{}, v{}, {cve}", c.label(), c.version)
            }
            _ => format!("{}, v{}", c.label(), c.version),
        },
    };
    if cves.is_empty() {
        return record.filter(Candidate::usable).map(|r| label(&r, None));
    }
    let mut best: Option<(Candidate<'a>, &'a str)> = None;
    for (cve, scores) in cves {
        let Some(c) = choose_for_cve(record.into_iter().chain(scores.iter().copied())) else {
            continue;
        };
        if best.is_none_or(|(b, _)| c.base > b.base) {
            best = Some((c, cve));
        }
    }
    best.map(|(c, cve)| label(&c, Some(cve)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(
        source: Source,
        name: &'static str,
        version: &'static str,
        base: f64,
    ) -> Candidate<'static> {
        Candidate {
            source,
            name,
            version,
            base,
        }
    }

    #[test]
    fn v31_is_preferred_to_v40_of_any_source() {
        let got = choose(
            None,
            &[(
                "CVE-2024-0001",
                vec![
                    c(Source::Cna, "psirt@example.com", "4.0", 9.3),
                    c(Source::Cna, "psirt@example.com", "3.1", 7.5),
                ],
            )],
        )
        .unwrap();
        assert_eq!(got.base, 7.5);
        assert_eq!(got.source, "CNA psirt@example.com, v3.1");
        assert_eq!(got.to_string(), "CVSS 7.5 (CNA psirt@example.com, v3.1)");
    }

    #[test]
    fn within_a_version_the_source_order_decides() {
        let scores = vec![
            c(Source::Adp, "CISA-ADP", "3.1", 9.8),
            c(Source::Nvd, "nvd@nist.gov", "3.1", 5.5),
            c(Source::Cna, "x", "3.1", 7.0),
        ];
        let got = choose(None, &[("CVE-1", scores)]).unwrap();
        assert_eq!((got.base, got.source.as_str()), (5.5, "NVD, v3.1"));
    }

    #[test]
    fn v40_is_used_where_no_v3_exists_and_v2_last() {
        let got = choose(
            None,
            &[(
                "CVE-1",
                vec![
                    c(Source::Nvd, "nvd@nist.gov", "2.0", 10.0),
                    c(Source::Cna, "x", "4.0", 6.9),
                ],
            )],
        )
        .unwrap();
        assert_eq!(got.source, "CNA x, v4.0");
    }

    #[test]
    fn the_record_comes_first_and_cves_take_the_highest() {
        let rec = c(Source::Record, "ALSA-1", "3.1", 7.8);
        let cves = vec![
            ("CVE-1", vec![c(Source::Nvd, "", "3.1", 9.8)]),
            ("CVE-2", vec![]),
        ];
        let got = choose(Some(rec), &cves).unwrap();
        assert_eq!(
            (got.base, got.source.as_str()),
            (7.8, "advisory ALSA-1, v3.1")
        );
        let got = choose(
            None,
            &[
                ("CVE-1", vec![c(Source::Nvd, "", "3.1", 5.5)]),
                ("CVE-2", vec![c(Source::Cna, "y", "3.1", 8.1)]),
            ],
        )
        .unwrap();
        assert_eq!((got.base, got.source.as_str()), (8.1, "CNA y, v3.1, CVE-2"));
        // A v4.0-only record loses to a CVE's v3.1 score.
        let rec = c(Source::Record, "RUSTSEC-1", "4.0", 9.3);
        let got = choose(
            Some(rec),
            &[("CVE-1", vec![c(Source::Nvd, "", "3.1", 7.5)])],
        )
        .unwrap();
        assert_eq!(got.source, "NVD, v3.1");
        assert_eq!(choose(None, &[("CVE-1", vec![])]), None);
        assert_eq!(
            choose(Some(rec), &[]).map(|c| c.source),
            Some("advisory RUSTSEC-1, v4.0".into())
        );
    }

    use proptest::prelude::*;

    const NAMES: [&str; 3] = ["nvd@nist.gov", "CISA-ADP", "x"];
    const VERSIONS: [&str; 5] = ["2.0", "3.0", "3.1", "4.0", "5.0"];

    fn any_candidate() -> impl Strategy<Value = Candidate<'static>> {
        (0..5usize, 0..3usize, 0..5usize, -1.0f64..11.0).prop_map(|(s, n, v, base)| Candidate {
            source: [
                Source::Record,
                Source::Nvd,
                Source::Cna,
                Source::Adp,
                Source::Other,
            ][s],
            name: NAMES[n],
            version: VERSIONS[v],
            base: (base * 10.0).round() / 10.0,
        })
    }

    proptest! {
        /// For one CVE: the chosen score is a usable candidate's, of the best
        /// version class present, from the best source within it, and no
        /// candidate of that class and source scores higher. Never panics.
        #[test]
        fn one_cve_follows_the_rules(cs in proptest::collection::vec(any_candidate(), 0..8)) {
            let usable: Vec<_> = cs.iter().filter(|c| c.usable()).copied().collect();
            let got = choose(None, &[("CVE-1", cs.clone())]);
            match usable.iter().map(|c| version_class(c.version)).max() {
                None => prop_assert!(got.is_none()),
                Some(class) => {
                    let got = got.unwrap();
                    let top: Vec<_> = usable.iter().filter(|c| version_class(c.version) == class).collect();
                    let source = top.iter().map(|c| c.source).min().unwrap();
                    let best = top.iter().filter(|c| c.source == source).map(|c| c.base).fold(f64::MIN, f64::max);
                    prop_assert_eq!(got.base, best);
                    let label = top.iter().find(|c| c.source == source && c.base == best).unwrap().label();
                    prop_assert!(got.source.starts_with(&label), "{} / {}", got.source, label);
                }
            }
        }

        /// Across CVEs: the highest of each CVE's own choice.
        #[test]
        fn several_cves_take_the_highest(
            a in proptest::collection::vec(any_candidate(), 0..5),
            b in proptest::collection::vec(any_candidate(), 0..5),
        ) {
            let each: Vec<f64> = [&a, &b]
                .iter()
                .filter_map(|cs| choose(None, &[("CVE-1", (*cs).clone())]).map(|c| c.base))
                .collect();
            let got = choose(None, &[("CVE-1", a.clone()), ("CVE-2", b.clone())]);
            prop_assert_eq!(got.map(|c| c.base), each.iter().copied().reduce(f64::max));
        }
    }

    #[test]
    fn unusable_candidates_are_ignored() {
        let got = choose(
            None,
            &[(
                "CVE-1",
                vec![
                    c(Source::Nvd, "", "9.9", 5.0),
                    c(Source::Nvd, "", "3.1", 11.0),
                    c(Source::Nvd, "", "3.1", f64::NAN),
                ],
            )],
        );
        assert_eq!(got, None);
    }
}
