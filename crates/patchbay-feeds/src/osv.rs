//! OSV records (<https://ossf.github.io/osv-schema/>): one JSON document → one
//! validated [`Advisory`].
//!
//! Parsing is two steps: serde reads `Raw*` structs that accept anything
//! JSON-shaped the schema allows (absent, `null` and empty lists alike), then
//! [`Advisory`] is built and checked. Unknown fields are ignored. An ecosystem is
//! kept exactly as written (`Debian:12`, `Ubuntu:24.04:LTS`, `AlmaLinux:9`,
//! `Alpine:v3.20`, `Go`, or one this crate has never heard of): deciding what an
//! ecosystem means is the matcher's job, so an unknown one never fails a record.
//!
//! # What makes a record invalid
//! - no `id`, or an empty one;
//! - a timestamp (`published`, `modified`, `withdrawn`) that is not RFC 3339;
//! - an `affected` entry with a `package` that lacks `ecosystem` or `name`;
//! - a range without `type` or without events, or an event that is not exactly
//!   one of `introduced`, `fixed`, `last_affected`, `limit`;
//! - a `severity` entry without `type` or `score`;
//! - JSON of the wrong shape (e.g. `aliases` that is not a list of strings).
//!
//! `affected` entries without a `package` (GIT-only ranges) are dropped: nothing in
//! an inventory can match them. A `severity` whose vector does not score is kept in
//! [`Advisory::severity`] but not used for [`Advisory::cvss`].

use crate::cve;
use crate::cvss::{self, CvssScore};
use crate::error::FeedError;
use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeSet;

/// One OSV advisory, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advisory {
    /// The record id (`DSA-3029-1`, `UBUNTU-CVE-2023-4911`, `ALSA-2023:5453`, `GO-2020-0001`).
    pub id: String,
    /// `schema_version`, when given.
    pub schema_version: Option<String>,
    /// `aliases` as written.
    pub aliases: Vec<String>,
    /// `upstream` as written (OSV 1.7: the upstream records this one derives from).
    pub upstream: Vec<String>,
    /// `related` as written (not used for [`Advisory::cves`]: related is not "the same").
    pub related: Vec<String>,
    /// The CVE ids this advisory is about, sorted and deduplicated, upper-case `CVE-`:
    /// from the id itself (`CVE-…`, or a `…-CVE-YYYY-N` suffix as in `UBUNTU-CVE-…`),
    /// `aliases`, `upstream`, and reference URLs whose last path segment or a query
    /// value is a CVE id (AlmaLinux names its CVEs only there:
    /// `https://access.redhat.com/security/cve/CVE-…`).
    pub cves: Vec<String>,
    /// `summary`.
    pub summary: Option<String>,
    /// `details`.
    pub details: Option<String>,
    /// `published`.
    pub published: Option<Timestamp>,
    /// `modified` (required by the schema, but tolerated when absent).
    pub modified: Option<Timestamp>,
    /// `withdrawn`: when set, the advisory has been retracted.
    pub withdrawn: Option<Timestamp>,
    /// Top-level `severity` entries as written.
    pub severity: Vec<Severity>,
    /// The preferred CVSS score of the record (see [`crate::cvss`] for the rule),
    /// from the top-level `severity`, or else from the `affected[].severity` entries.
    pub cvss: Option<CvssScore>,
    /// `affected` entries that name a package.
    pub affected: Vec<Affected>,
    /// `references`.
    pub references: Vec<Reference>,
}

impl Advisory {
    /// Whether the advisory is withdrawn (retracted).
    pub fn is_withdrawn(&self) -> bool {
        self.withdrawn.is_some()
    }

    /// The distribution's own severity of this record, where the feed gives one
    /// (ADR 0013):
    /// - **Ubuntu** priority: a `severity` entry of type `Ubuntu` (top-level or
    ///   in `affected[]`), or `affected[].ecosystem_specific.ubuntu_priority`;
    /// - **Debian** urgency: `affected[].ecosystem_specific.urgency` of a
    ///   `Debian…` ecosystem (the changelog or security-tracker urgency);
    /// - **Red Hat** family severity: the `Critical:`/`Important:`/`Moderate:`/
    ///   `Low:` prefix of the summary of an `AlmaLinux…`/`Rocky…`/`Red Hat…`
    ///   record (Red Hat's errata severity, which AlmaLinux and Rocky copy).
    ///
    /// The level is lower case, as written otherwise (`high`, `not yet
    /// assigned`); several entries: the most severe known level, else the first.
    pub fn distro_severity(&self) -> Option<DistroSeverity> {
        let mut found: Vec<DistroSeverity> = Vec::new();
        let mut push = |source: &str, level: &str| {
            // Of the feed's making, shown in reasons: no control characters,
            // one short word or phrase.
            let level: String = level
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
                .trim()
                .to_lowercase()
                .chars()
                .take(40)
                .collect();
            if !level.is_empty() {
                found.push(DistroSeverity {
                    source: source.to_owned(),
                    level,
                });
            }
        };
        let ubuntu = |s: &Severity| s.kind.eq_ignore_ascii_case("ubuntu");
        for s in self.severity.iter().filter(|s| ubuntu(s)) {
            push("Ubuntu priority", &s.score);
        }
        for a in &self.affected {
            for s in a.severity.iter().filter(|s| ubuntu(s)) {
                push("Ubuntu priority", &s.score);
            }
            let specific = |key: &str| {
                a.ecosystem_specific
                    .as_ref()
                    .and_then(|e| e.get(key))
                    .and_then(|v| v.as_str())
            };
            if let Some(p) = specific("ubuntu_priority") {
                push("Ubuntu priority", p);
            }
            if a.ecosystem.starts_with("Debian")
                && let Some(u) = specific("urgency")
            {
                push("Debian urgency", u);
            }
        }
        let redhat = self.affected.iter().any(|a| {
            ["AlmaLinux", "Rocky", "Red Hat"]
                .iter()
                .any(|p| a.ecosystem.starts_with(p))
        });
        if redhat && let Some((level, _)) = self.summary.as_deref().and_then(|s| s.split_once(':'))
        {
            let level = level.trim();
            if ["critical", "important", "moderate", "low"]
                .iter()
                .any(|l| level.eq_ignore_ascii_case(l))
            {
                push("Red Hat severity", level);
            }
        }
        const ORDER: [&str; 8] = [
            "critical",
            "high",
            "important",
            "medium",
            "moderate",
            "low",
            "negligible",
            "unimportant",
        ];
        let rank = |d: &DistroSeverity| ORDER.iter().position(|l| *l == d.level);
        let best = found
            .iter()
            .filter(|d| rank(d).is_some())
            .min_by_key(|d| rank(d))
            .cloned();
        best.or_else(|| found.into_iter().next())
    }
}

/// A distribution's own severity of an advisory (see
/// [`Advisory::distro_severity`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct DistroSeverity {
    /// `Debian urgency`, `Ubuntu priority` or `Red Hat severity`.
    pub source: String,
    /// The level, lower case (`high`, `medium`, `important`, …).
    pub level: String,
}

/// A `severity` entry: a type and a score string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Severity {
    /// `CVSS_V2`, `CVSS_V3`, `CVSS_V4`, `Ubuntu`, … as written.
    pub kind: String,
    /// The vector (for `CVSS_*`) or the value (`high` for `Ubuntu`).
    pub score: String,
}

impl Severity {
    /// Whether `kind` is a CVSS type (`CVSS_V2`, `CVSS_V3`, `CVSS_V4`).
    pub fn is_cvss(&self) -> bool {
        self.kind.to_ascii_uppercase().starts_with("CVSS")
    }
}

/// One `affected` entry: a package of an ecosystem and its affected versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Affected {
    /// The ecosystem as written: `Debian:12`, `Ubuntu:22.04:LTS`, `AlmaLinux:9`,
    /// `Alpine:v3.10`, `Go`, ….
    pub ecosystem: String,
    /// The package name (for Debian, Ubuntu and Alpine: the source package).
    pub package: String,
    /// `package.purl`, when given.
    pub purl: Option<String>,
    /// `ranges`.
    pub ranges: Vec<Range>,
    /// `versions`: explicitly listed affected versions.
    pub versions: Vec<String>,
    /// `affected[].severity` (OSV 1.5+).
    pub severity: Vec<Severity>,
    /// `ecosystem_specific` kept as JSON (Debian `urgency`, Ubuntu `binaries`,
    /// Go `imports`, …).
    pub ecosystem_specific: Option<serde_json::Value>,
    /// `database_specific` kept as JSON.
    pub database_specific: Option<serde_json::Value>,
}

impl Affected {
    /// The ecosystem name before the first `:` (`Debian` for `Debian:12`).
    pub fn ecosystem_name(&self) -> &str {
        self.ecosystem.split(':').next().unwrap_or_default()
    }

    /// What follows the first `:` of the ecosystem (`12` for `Debian:12`,
    /// `22.04:LTS` for `Ubuntu:22.04:LTS`), if anything.
    pub fn ecosystem_release(&self) -> Option<&str> {
        self.ecosystem.split_once(':').map(|(_, r)| r)
    }
}

/// A range of affected versions: a type and an ordered list of events.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Range {
    /// `type`.
    pub kind: RangeKind,
    /// `repo` (GIT ranges).
    pub repo: Option<String>,
    /// `events`, in the order written.
    pub events: Vec<Event>,
}

/// The `type` of a range.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum RangeKind {
    /// `ECOSYSTEM`: versions ordered by the ecosystem's own rules.
    Ecosystem,
    /// `SEMVER`.
    Semver,
    /// `GIT`: commit hashes.
    Git,
    /// A type this crate does not know, as written; the matcher skips it.
    Other(String),
}

impl RangeKind {
    fn parse(s: &str) -> Self {
        match s {
            "ECOSYSTEM" => Self::Ecosystem,
            "SEMVER" => Self::Semver,
            "GIT" => Self::Git,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// A range event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// `introduced` (`"0"` means "from the beginning").
    Introduced(String),
    /// `fixed`: the first version without the vulnerability.
    Fixed(String),
    /// `last_affected`: the last version with it.
    LastAffected(String),
    /// `limit` (GIT ranges).
    Limit(String),
}

impl Event {
    /// The version (or commit) of the event.
    pub fn version(&self) -> &str {
        match self {
            Self::Introduced(v) | Self::Fixed(v) | Self::LastAffected(v) | Self::Limit(v) => v,
        }
    }
}

/// A `references` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Reference {
    /// `type` (`ADVISORY`, `REPORT`, `WEB`, `FIX`, …), empty when absent.
    pub kind: String,
    /// `url`.
    pub url: String,
}

/// Parses one OSV JSON document.
///
/// Errors name the record id when it can be read, and the JSON line and column
/// for syntax errors. A UTF-8 byte order mark is ignored.
///
/// ```
/// let a = patchbay_feeds::osv::parse(br#"{"id":"DSA-1-1","aliases":["CVE-2014-3616"],
///   "affected":[{"package":{"ecosystem":"Debian:7","name":"nginx"},
///   "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.2"}]}]}]}"#).unwrap();
/// assert_eq!(a.cves, ["CVE-2014-3616"]);
/// assert_eq!(a.affected[0].ecosystem, "Debian:7");
/// ```
pub fn parse(bytes: &[u8]) -> Result<Advisory, FeedError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let raw: RawAdvisory = serde_json::from_slice(bytes).map_err(|e| {
        FeedError::malformed(format!("invalid OSV JSON: {e}")).with_record(probe_id(bytes))
    })?;
    raw.validate()
}

/// [`parse`] over a string.
pub fn parse_str(text: &str) -> Result<Advisory, FeedError> {
    parse(text.as_bytes())
}

/// The `id` of a JSON object whose full parse failed, if it can be read: the
/// object's entries are read in order until `id`, so the id of a truncated
/// document is found when it comes before the cut (as OSV writers put it first).
pub(crate) fn probe_id(bytes: &[u8]) -> Option<String> {
    use serde::de::{Error, IgnoredAny, MapAccess, Visitor};

    struct IdVisitor<'a>(&'a mut Option<String>);

    impl<'de> Visitor<'de> for IdVisitor<'_> {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                if key == "id" {
                    *self.0 = map.next_value::<String>().ok();
                    // Stop here: the rest may be truncated or invalid.
                    return Err(A::Error::custom("id found"));
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(())
        }
    }

    let mut id = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let _ = serde::Deserializer::deserialize_map(&mut de, IdVisitor(&mut id));
    id.map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct RawAdvisory {
    #[serde(default)]
    schema_version: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    modified: Option<String>,
    #[serde(default)]
    published: Option<String>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    aliases: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    upstream: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    related: Vec<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    severity: Vec<RawSeverity>,
    #[serde(default, deserialize_with = "null_default")]
    affected: Vec<RawAffected>,
    #[serde(default, deserialize_with = "null_default")]
    references: Vec<RawReference>,
}

#[derive(Deserialize)]
struct RawSeverity {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    score: Option<String>,
}

#[derive(Deserialize)]
struct RawAffected {
    #[serde(default)]
    package: Option<RawPackage>,
    #[serde(default, deserialize_with = "null_default")]
    severity: Vec<RawSeverity>,
    #[serde(default, deserialize_with = "null_default")]
    ranges: Vec<RawRange>,
    #[serde(default, deserialize_with = "null_default")]
    versions: Vec<String>,
    #[serde(default)]
    ecosystem_specific: Option<serde_json::Value>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawPackage {
    #[serde(default)]
    ecosystem: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    purl: Option<String>,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    repo: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(default)]
    introduced: Option<String>,
    #[serde(default)]
    fixed: Option<String>,
    #[serde(default)]
    last_affected: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

#[derive(Deserialize)]
struct RawReference {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

fn timestamp(field: &str, value: Option<String>) -> Result<Option<Timestamp>, String> {
    match value {
        None => Ok(None),
        Some(s) => s
            .trim()
            .parse::<Timestamp>()
            .map(Some)
            .map_err(|e| format!("{field}: {s:?} is not an RFC 3339 timestamp: {e}")),
    }
}

fn severities(raw: Vec<RawSeverity>, at: &str) -> Result<Vec<Severity>, String> {
    raw.into_iter()
        .enumerate()
        .map(|(i, s)| match (s.kind, s.score) {
            (Some(kind), Some(score)) if !kind.trim().is_empty() => Ok(Severity { kind, score }),
            _ => Err(format!("{at}severity[{i}] needs a type and a score")),
        })
        .collect()
}

impl RawAffected {
    fn validate(self, index: usize) -> Result<Option<Affected>, String> {
        let Some(package) = self.package else {
            return Ok(None);
        };
        let at = format!("affected[{index}]: ");
        let ecosystem = package
            .ecosystem
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| format!("{at}package has no ecosystem"))?;
        let name = package
            .name
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| format!("{at}package has no name"))?;
        let ranges = self
            .ranges
            .into_iter()
            .enumerate()
            .map(|(r, range)| {
                let kind = range
                    .kind
                    .filter(|k| !k.trim().is_empty())
                    .ok_or_else(|| format!("{at}range {r} has no type"))?;
                if range.events.is_empty() {
                    return Err(format!("{at}range {r} has no events"));
                }
                let events = range
                    .events
                    .into_iter()
                    .enumerate()
                    .map(|(e, ev)| ev.validate().ok_or_else(|| {
                        format!("{at}range {r} event {e} must have exactly one of introduced, fixed, last_affected, limit")
                    }))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Range {
                    kind: RangeKind::parse(&kind),
                    repo: range.repo,
                    events,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Affected {
            ecosystem,
            package: name,
            purl: package.purl,
            ranges,
            versions: self.versions,
            severity: severities(self.severity, &at)?,
            ecosystem_specific: self.ecosystem_specific,
            database_specific: self.database_specific,
        }))
    }
}

impl RawEvent {
    fn validate(self) -> Option<Event> {
        let mut events = [
            self.introduced.map(Event::Introduced),
            self.fixed.map(Event::Fixed),
            self.last_affected.map(Event::LastAffected),
            self.limit.map(Event::Limit),
        ]
        .into_iter()
        .flatten();
        let first = events.next()?;
        events.next().is_none().then_some(first)
    }
}

impl RawAdvisory {
    fn validate(self) -> Result<Advisory, FeedError> {
        let id = self
            .id
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| FeedError::malformed("OSV record has no id"))?;
        let fail = |message: String| FeedError::malformed(message).with_record(Some(id.clone()));
        let published = timestamp("published", self.published).map_err(fail)?;
        let modified = timestamp("modified", self.modified).map_err(fail)?;
        let withdrawn = timestamp("withdrawn", self.withdrawn).map_err(fail)?;
        let severity = severities(self.severity, "").map_err(fail)?;
        let mut affected = Vec::with_capacity(self.affected.len());
        for (i, a) in self.affected.into_iter().enumerate() {
            if let Some(a) = a.validate(i).map_err(fail)? {
                affected.push(a);
            }
        }
        let references: Vec<Reference> = self
            .references
            .into_iter()
            .filter_map(|r| {
                r.url.map(|url| Reference {
                    kind: r.kind.unwrap_or_default(),
                    url,
                })
            })
            .collect();

        let mut cves = BTreeSet::new();
        cves.extend(cve::from_record_id(&id));
        cves.extend(
            self.aliases
                .iter()
                .chain(&self.upstream)
                .filter_map(|a| cve::normalize(a.trim())),
        );
        cves.extend(references.iter().filter_map(|r| cve::from_url(&r.url)));

        let cvss = cvss::best(
            severity
                .iter()
                .filter(|s| s.is_cvss())
                .map(|s| s.score.as_str()),
        )
        .or_else(|| {
            cvss::best(
                affected
                    .iter()
                    .flat_map(|a| &a.severity)
                    .filter(|s| s.is_cvss())
                    .map(|s| s.score.as_str()),
            )
        });

        Ok(Advisory {
            id,
            schema_version: self.schema_version,
            aliases: self.aliases,
            upstream: self.upstream,
            related: self.related,
            cves: cves.into_iter().collect(),
            summary: self.summary,
            details: self.details,
            published,
            modified,
            withdrawn,
            severity,
            cvss,
            affected,
            references,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal() {
        let a = parse(br#"{"id":"X-1"}"#).unwrap();
        assert_eq!(a.id, "X-1");
        assert!(a.affected.is_empty() && a.cves.is_empty() && a.cvss.is_none());
    }

    #[test]
    fn byte_order_mark() {
        assert_eq!(parse(b"\xef\xbb\xbf{\"id\":\"X-1\"}").unwrap().id, "X-1");
    }

    #[test]
    fn nulls_are_empty() {
        let a = parse(br#"{"id":"X-1","aliases":null,"affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":null,"versions":null}]}"#).unwrap();
        assert!(a.aliases.is_empty());
        assert!(a.affected[0].ranges.is_empty());
    }

    #[test]
    fn missing_id() {
        let e = parse(br#"{"affected":[]}"#).unwrap_err();
        assert!(e.to_string().contains("no id"), "{e}");
        let e = parse(br#"{"id":"  "}"#).unwrap_err();
        assert!(e.to_string().contains("no id"), "{e}");
    }

    #[test]
    fn bad_event_names_record_and_place() {
        let e = parse(br#"{"id":"X-2","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0","fixed":"1"}]}]}]}"#).unwrap_err();
        assert_eq!(e.record(), Some("X-2"));
        assert!(e.message().contains("affected[0]: range 0 event 0"), "{e}");
    }

    #[test]
    fn wrong_shape_keeps_the_id() {
        let e = parse(br#"{"id":"X-3","aliases":"CVE-2020-1234"}"#).unwrap_err();
        assert_eq!(e.record(), Some("X-3"));
    }

    #[test]
    fn bad_timestamp() {
        let e = parse(br#"{"id":"X-4","modified":"yesterday"}"#).unwrap_err();
        assert_eq!(e.record(), Some("X-4"));
        assert!(e.message().contains("modified"), "{e}");
    }

    #[test]
    fn id_of_a_truncated_document() {
        assert_eq!(
            probe_id(br#"{"id": "DSA-1-1", "affected": [{"pack"#).as_deref(),
            Some("DSA-1-1")
        );
        assert_eq!(
            probe_id(br#"{"summary": "s", "id": "X-1"}"#).as_deref(),
            Some("X-1")
        );
        assert_eq!(probe_id(br#"{"summary": "s", "affec"#), None);
        assert_eq!(probe_id(b"[1]"), None);
        let e = parse(br#"{"id": "DSA-1-1", "affected": [{"pack"#).unwrap_err();
        assert_eq!(e.record(), Some("DSA-1-1"));
    }

    #[test]
    fn package_less_affected_is_dropped() {
        let a = parse(br#"{"id":"X-5","affected":[{"ranges":[{"type":"GIT","repo":"r","events":[{"introduced":"abc"}]}]}]}"#).unwrap();
        assert!(a.affected.is_empty());
    }
}
