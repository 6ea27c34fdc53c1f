//! CVSS scores per CVE, each with where it came from: **NVD API 2.0** CVE
//! records and **CVE JSON 5** records (the CVE Program's format, with the CNA's
//! and the ADPs' metrics).
//!
//! # Inputs
//! - one NVD CVE object per file, as in `fkie-cad/nvd-json-data-feeds`
//!   (`{"id": "CVE-…", "sourceIdentifier": …, "metrics": {…}}`);
//! - an NVD API 2.0 page, `{"format": "NVD_CVE", "vulnerabilities": [{"cve": {…}}]}`;
//! - one CVE JSON 5 record, `{"dataType": "CVE_RECORD", "cveMetadata": {…},
//!   "containers": {"cna": {…}, "adp": [{…}]}}`.
//!
//! NVD's `metrics.cvssMetricV40/V31/V30/V2` entries carry a `source` and a
//! `type`: `Primary` is NVD's own analysis; a `Secondary` entry whose source is
//! the record's `sourceIdentifier` is the CNA's; CISA's ADP appears under its
//! UUID. CVE JSON 5 puts the CNA's metrics in `containers.cna.metrics` and each
//! ADP's in `containers.adp[].metrics` (`cvssV4_0`, `cvssV3_1`, `cvssV3_0`,
//! `cvssV2_0`), named by `providerMetadata.shortName`.
//!
//! # Trust
//! The score kept is the one computed from `vectorString` ([`crate::cvss::score`]),
//! never the `baseScore` written beside it. A metric whose vector does not score
//! is reported (record = the CVE id, with the metric's path) and skipped alone;
//! the record's other metrics are kept. A record without a CVE id is skipped.
//! A rejected record (`vulnStatus: Rejected`, `state: REJECTED`) is kept with no
//! scores, so importing it removes the scores stored before.
//!
//! Which of a CVE's scores prioritisation uses is decided in
//! `patchbay_core::severity` (ADR 0013), not here.

use crate::cve;
use crate::cvss::{self, CvssScore};
use crate::error::{FeedError, RecordError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who produced a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// NVD's own analysis (`type: Primary`, source `nvd@nist.gov`).
    Nvd,
    /// The CVE Numbering Authority that assigned the CVE (CVE 5 `containers.cna`,
    /// or an NVD `Secondary` entry from the record's `sourceIdentifier`).
    Cna,
    /// An Authorized Data Publisher (CVE 5 `containers.adp[]`, e.g. CISA-ADP, or
    /// CISA-ADP's UUID in an NVD record).
    Adp,
    /// Any other `Secondary` entry of an NVD record.
    Other,
}

impl SourceKind {
    /// `nvd`, `cna`, `adp` or `other` (as stored).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nvd => "nvd",
            Self::Cna => "cna",
            Self::Adp => "adp",
            Self::Other => "other",
        }
    }
}

/// One CVSS score of a CVE and its source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourcedScore {
    /// Who produced it.
    pub kind: SourceKind,
    /// Its name as the record gives it: `nvd@nist.gov`, the CNA's e-mail or
    /// short name (`secalert@redhat.com`, `redhat`), `CISA-ADP`.
    pub source: String,
    /// The scored vector.
    pub score: CvssScore,
}

/// The CVSS scores of one CVE.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CveScores {
    /// The CVE id, upper-case `CVE-`.
    pub cve: String,
    /// `lastModified` (NVD) or `cveMetadata.dateUpdated` (CVE 5), as written.
    pub modified: Option<String>,
    /// Every score that scored, in the record's order.
    pub scores: Vec<SourcedScore>,
}

/// The UUID under which NVD records name CISA's ADP ("CISA-ADP").
pub const CISA_ADP_UUID: &str = "134c704f-9b21-4f2e-91b3-4a467353bcc0";
/// NVD's own source identifier.
pub const NVD_SOURCE: &str = "nvd@nist.gov";

/// The shapes a document can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One NVD CVE object.
    NvdRecord,
    /// An NVD API 2.0 page (`vulnerabilities[].cve`).
    NvdPage,
    /// One CVE JSON 5 record.
    Cve5,
}

/// The keys that tell the shapes apart (and from OSV and KEV documents).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Keys {
    #[serde(rename = "dataType")]
    data_type: Option<Value>,
    #[serde(rename = "cveMetadata")]
    cve_metadata: Option<serde::de::IgnoredAny>,
    #[serde(rename = "sourceIdentifier")]
    source_identifier: Option<serde::de::IgnoredAny>,
    #[serde(rename = "vulnStatus")]
    vuln_status: Option<serde::de::IgnoredAny>,
    format: Option<Value>,
    #[serde(rename = "resultsPerPage")]
    results_per_page: Option<serde::de::IgnoredAny>,
    #[serde(rename = "dateReleased")]
    date_released: Option<serde::de::IgnoredAny>,
    vulnerabilities: Option<serde::de::IgnoredAny>,
}

impl Keys {
    pub(crate) fn shape(&self) -> Option<Shape> {
        let is = |v: &Option<Value>, s: &str| v.as_ref().and_then(Value::as_str) == Some(s);
        if is(&self.data_type, "CVE_RECORD") || self.cve_metadata.is_some() {
            Some(Shape::Cve5)
        } else if self.vulnerabilities.is_some()
            && self.date_released.is_none()
            && (is(&self.format, "NVD_CVE") || self.results_per_page.is_some())
        {
            Some(Shape::NvdPage)
        } else if self.source_identifier.is_some() || self.vuln_status.is_some() {
            Some(Shape::NvdRecord)
        } else {
            None
        }
    }
}

/// The shape of a JSON document, when it is one of these.
pub fn shape(bytes: &[u8]) -> Option<Shape> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    serde_json::from_slice::<Keys>(bytes).ok()?.shape()
}

/// Parses a document of any of the three shapes: the CVEs with their scores,
/// and one [`RecordError`] per skipped record or metric. Fails when the
/// document is not JSON or of none of the shapes.
pub fn parse(bytes: &[u8]) -> Result<(Vec<CveScores>, Vec<RecordError>), FeedError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        FeedError::malformed(format!("invalid CVE record JSON: {e}")).with_record(id_in_text(bytes))
    })?;
    let keys = Keys::deserialize(&value).unwrap_or_default();
    let mut errors = Vec::new();
    let mut out = Vec::new();
    match keys.shape() {
        Some(Shape::NvdRecord) => {
            if let Some(s) = nvd_record(&value, None, &mut errors) {
                out.push(s);
            }
        }
        Some(Shape::NvdPage) => {
            let Some(items) = value.get("vulnerabilities").and_then(Value::as_array) else {
                return Err(FeedError::malformed(
                    "NVD page: vulnerabilities is not an array",
                ));
            };
            for (i, item) in items.iter().enumerate() {
                let at = format!("vulnerabilities[{i}]");
                match item.get("cve") {
                    Some(cve) if cve.is_object() => {
                        if let Some(s) = nvd_record(cve, Some(&at), &mut errors) {
                            out.push(s);
                        }
                    }
                    _ => errors.push(RecordError::new(
                        Some(at),
                        None,
                        "NVD page entry has no cve object",
                    )),
                }
            }
        }
        Some(Shape::Cve5) => {
            if let Some(s) = cve5_record(&value, &mut errors) {
                out.push(s);
            }
        }
        None => {
            return Err(FeedError::malformed(
                "neither an NVD CVE record, an NVD API 2.0 page nor a CVE JSON 5 record",
            ));
        }
    }
    Ok((out, errors))
}

/// The CVE id a document that is not valid JSON names first (`"id"` or
/// `"cveId"`), so the error can name the record.
fn id_in_text(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(4096)];
    let text = String::from_utf8_lossy(head);
    ["\"id\"", "\"cveId\""].iter().find_map(|key| {
        let rest = &text[text.find(key)? + key.len()..];
        let rest = rest.trim_start().strip_prefix(':')?.trim_start();
        let rest = rest.strip_prefix('"')?;
        cve::normalize(&rest[..rest.find('"')?])
    })
}

/// The longest source name kept (characters); CNA e-mails and short names
/// are far shorter.
const MAX_NAME: usize = 100;

/// A source name as stored and shown: control characters dropped, trimmed, at
/// most [`MAX_NAME`] characters — the name is of the feed's making and ends
/// up in reasons, tables and pages.
pub fn clean_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_NAME)
        .collect()
}

fn str_at<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// The CVE id of a record, or the error naming it by `at`.
fn cve_id(raw: Option<&str>, at: &str, errors: &mut Vec<RecordError>) -> Option<String> {
    match raw.map(str::trim) {
        Some(id) => match cve::normalize(id) {
            Some(c) => Some(c),
            None => {
                errors.push(RecordError::new(
                    Some(id.to_owned()),
                    None,
                    format!("{at}: {id:?} is not a CVE id"),
                ));
                None
            }
        },
        None => {
            errors.push(RecordError::new(
                Some(at.to_owned()),
                None,
                "record has no CVE id",
            ));
            None
        }
    }
}

/// Scores one `cvssData`/`cvssV3_1` object's `vectorString`; the error names
/// the record and the metric.
fn scored(
    data: Option<&Value>,
    cve: &str,
    at: &str,
    errors: &mut Vec<RecordError>,
) -> Option<CvssScore> {
    let Some(vector) = data.and_then(|d| str_at(d, "vectorString")) else {
        errors.push(RecordError::new(
            Some(cve.to_owned()),
            None,
            format!("{at}: no vectorString"),
        ));
        return None;
    };
    match cvss::score(vector) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.push(RecordError::new(
                Some(cve.to_owned()),
                None,
                format!("{at}: {}", e.message()),
            ));
            None
        }
    }
}

const NVD_METRICS: [&str; 4] = [
    "cvssMetricV40",
    "cvssMetricV31",
    "cvssMetricV30",
    "cvssMetricV2",
];

fn nvd_record(v: &Value, at: Option<&str>, errors: &mut Vec<RecordError>) -> Option<CveScores> {
    let cve = cve_id(str_at(v, "id"), at.unwrap_or("id"), errors)?;
    let modified = str_at(v, "lastModified").map(str::to_owned);
    let cna = str_at(v, "sourceIdentifier").unwrap_or_default();
    let mut scores = Vec::new();
    if str_at(v, "vulnStatus").is_some_and(|s| s.eq_ignore_ascii_case("rejected")) {
        return Some(CveScores {
            cve,
            modified,
            scores,
        });
    }
    let metrics = v.get("metrics");
    for key in NVD_METRICS {
        let Some(list) = metrics.and_then(|m| m.get(key)) else {
            continue;
        };
        let Some(list) = list.as_array() else {
            errors.push(RecordError::new(
                Some(cve.clone()),
                None,
                format!("metrics.{key} is not a list"),
            ));
            continue;
        };
        for (i, m) in list.iter().enumerate() {
            let path = format!("metrics.{key}[{i}]");
            let Some(score) = scored(m.get("cvssData"), &cve, &path, errors) else {
                continue;
            };
            let source = str_at(m, "source").unwrap_or_default().trim();
            let primary = str_at(m, "type").is_some_and(|t| t.eq_ignore_ascii_case("primary"));
            let (kind, name) = if primary && (source.is_empty() || source == NVD_SOURCE) {
                (SourceKind::Nvd, NVD_SOURCE)
            } else if source == CISA_ADP_UUID {
                (SourceKind::Adp, "CISA-ADP")
            } else if !source.is_empty() && source == cna {
                (SourceKind::Cna, source)
            } else if source == NVD_SOURCE {
                (SourceKind::Nvd, NVD_SOURCE)
            } else {
                (SourceKind::Other, source)
            };
            scores.push(SourcedScore {
                kind,
                source: clean_name(name),
                score,
            });
        }
    }
    Some(CveScores {
        cve,
        modified,
        scores,
    })
}

const CVE5_METRICS: [&str; 4] = ["cvssV4_0", "cvssV3_1", "cvssV3_0", "cvssV2_0"];

fn container_metrics(
    c: &Value,
    kind: SourceKind,
    default_name: &str,
    cve: &str,
    at: &str,
    errors: &mut Vec<RecordError>,
    out: &mut Vec<SourcedScore>,
) {
    let name = c
        .get("providerMetadata")
        .and_then(|p| str_at(p, "shortName").or_else(|| str_at(p, "orgId")))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(default_name);
    let Some(metrics) = c.get("metrics") else {
        return;
    };
    let Some(metrics) = metrics.as_array() else {
        errors.push(RecordError::new(
            Some(cve.to_owned()),
            None,
            format!("{at}.metrics is not a list"),
        ));
        return;
    };
    for (i, m) in metrics.iter().enumerate() {
        for key in CVE5_METRICS {
            if let Some(data) = m.get(key) {
                let path = format!("{at}.metrics[{i}].{key}");
                if let Some(score) = scored(Some(data), cve, &path, errors) {
                    out.push(SourcedScore {
                        kind,
                        source: clean_name(name),
                        score,
                    });
                }
            }
        }
    }
}

fn cve5_record(v: &Value, errors: &mut Vec<RecordError>) -> Option<CveScores> {
    let meta = v.get("cveMetadata");
    let cve = cve_id(meta.and_then(|m| str_at(m, "cveId")), "cveMetadata", errors)?;
    let modified = meta
        .and_then(|m| str_at(m, "dateUpdated"))
        .map(str::to_owned);
    let mut scores = Vec::new();
    let rejected = meta
        .and_then(|m| str_at(m, "state"))
        .is_some_and(|s| s.eq_ignore_ascii_case("rejected"));
    if !rejected && let Some(containers) = v.get("containers") {
        let assigner = meta
            .and_then(|m| str_at(m, "assignerShortName"))
            .unwrap_or("CNA");
        if let Some(cna) = containers.get("cna") {
            container_metrics(
                cna,
                SourceKind::Cna,
                assigner,
                &cve,
                "containers.cna",
                errors,
                &mut scores,
            );
        }
        match containers.get("adp") {
            None | Some(Value::Null) => {}
            Some(Value::Array(adps)) => {
                for (i, adp) in adps.iter().enumerate() {
                    container_metrics(
                        adp,
                        SourceKind::Adp,
                        "ADP",
                        &cve,
                        &format!("containers.adp[{i}]"),
                        errors,
                        &mut scores,
                    );
                }
            }
            Some(_) => errors.push(RecordError::new(
                Some(cve.clone()),
                None,
                "containers.adp is not a list",
            )),
        }
    }
    Some(CveScores {
        cve,
        modified,
        scores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cvss::CvssVersion;

    const NVD: &str = r#"{"id":"CVE-2024-0001","sourceIdentifier":"psirt@example.com",
      "lastModified":"2024-05-01T00:00:00.000","vulnStatus":"Analyzed",
      "metrics":{
        "cvssMetricV40":[{"source":"psirt@example.com","type":"Secondary","cvssData":{"version":"4.0",
           "vectorString":"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N","baseScore":9.3}}],
        "cvssMetricV31":[
          {"source":"nvd@nist.gov","type":"Primary","cvssData":{"version":"3.1",
           "vectorString":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H","baseScore":1.0}},
          {"source":"134c704f-9b21-4f2e-91b3-4a467353bcc0","type":"Secondary","cvssData":{"version":"3.1",
           "vectorString":"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H","baseScore":7.8}},
          {"source":"psirt@example.com","type":"Secondary","cvssData":{"version":"3.1",
           "vectorString":"CVSS:3.1/AV:X"}}],
        "cvssMetricV2":[{"source":"nvd@nist.gov","type":"Primary","cvssData":{"version":"2.0",
           "vectorString":"AV:N/AC:L/Au:N/C:P/I:P/A:P","baseScore":7.5}}]}}"#;

    #[test]
    fn nvd_record_sources_and_computed_scores() {
        assert_eq!(shape(NVD.as_bytes()), Some(Shape::NvdRecord));
        let (s, errors) = parse(NVD.as_bytes()).unwrap();
        assert_eq!(s.len(), 1);
        let s = &s[0];
        assert_eq!(s.cve, "CVE-2024-0001");
        let got: Vec<(SourceKind, &str, CvssVersion, f64)> = s
            .scores
            .iter()
            .map(|x| {
                (
                    x.kind,
                    x.source.as_str(),
                    x.score.version,
                    x.score.base_score,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (SourceKind::Cna, "psirt@example.com", CvssVersion::V4_0, 9.3),
                // The written baseScore (1.0) is not trusted: the vector says 9.8.
                (SourceKind::Nvd, "nvd@nist.gov", CvssVersion::V3_1, 9.8),
                (SourceKind::Adp, "CISA-ADP", CvssVersion::V3_1, 7.8),
                (SourceKind::Nvd, "nvd@nist.gov", CvssVersion::V2_0, 7.5),
            ]
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].record.as_deref(), Some("CVE-2024-0001"));
        assert!(
            errors[0].message.contains("metrics.cvssMetricV31[2]"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn nvd_page_and_bad_entries() {
        let page = format!(
            r#"{{"resultsPerPage":3,"format":"NVD_CVE","version":"2.0","vulnerabilities":[{{"cve":{NVD}}},{{"nope":1}},{{"cve":{{"id":"CVE-XX"}}}}]}}"#
        );
        assert_eq!(shape(page.as_bytes()), Some(Shape::NvdPage));
        let (s, errors) = parse(page.as_bytes()).unwrap();
        assert_eq!(s.len(), 1);
        let records: Vec<_> = errors.iter().filter_map(|e| e.record.as_deref()).collect();
        assert!(records.contains(&"vulnerabilities[1]"), "{errors:?}");
        assert!(records.contains(&"CVE-XX"), "{errors:?}");
    }

    #[test]
    fn cve5_cna_and_adp() {
        let doc = r#"{"dataType":"CVE_RECORD","dataVersion":"5.1",
          "cveMetadata":{"cveId":"CVE-2024-0002","assignerShortName":"redhat","state":"PUBLISHED","dateUpdated":"2024-06-01T00:00:00Z"},
          "containers":{
            "cna":{"providerMetadata":{"orgId":"x","shortName":"redhat"},"metrics":[
              {"format":"CVSS","cvssV3_1":{"version":"3.1","vectorString":"CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N","baseScore":5.9}},
              {"other":{"type":"Red Hat severity rating","content":{"value":"Moderate"}}}]},
            "adp":[{"providerMetadata":{"shortName":"CISA-ADP"},"metrics":[
              {"cvssV3_1":{"vectorString":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}}]}]}}"#;
        assert_eq!(shape(doc.as_bytes()), Some(Shape::Cve5));
        let (s, errors) = parse(doc.as_bytes()).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let got: Vec<_> = s[0]
            .scores
            .iter()
            .map(|x| (x.kind, x.source.as_str(), x.score.base_score))
            .collect();
        assert_eq!(
            got,
            vec![
                (SourceKind::Cna, "redhat", 5.9),
                (SourceKind::Adp, "CISA-ADP", 7.5)
            ]
        );
    }

    #[test]
    fn source_names_lose_control_characters() {
        let nvd = NVD.replace("psirt@example.com", "evil\\u001b[31m\\r\\nX");
        let (s, _) = parse(nvd.as_bytes()).unwrap();
        assert_eq!(s[0].scores[0].source, "evil[31mX");
        assert_eq!(clean_name(&"a".repeat(500)).len(), 100);
    }

    #[test]
    fn rejected_records_have_no_scores() {
        let nvd = NVD.replace("\"Analyzed\"", "\"Rejected\"");
        let (s, _) = parse(nvd.as_bytes()).unwrap();
        assert!(s[0].scores.is_empty());
    }

    #[test]
    fn other_documents_are_refused() {
        assert!(parse(b"{\"id\":\"DSA-1\",\"affected\":[]}").is_err());
        assert!(parse(b"[1,2").is_err());
        assert_eq!(
            shape(br#"{"catalogVersion":"1","dateReleased":"x","vulnerabilities":[]}"#),
            None
        );
    }
}
