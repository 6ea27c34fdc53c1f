//! CISA's Known Exploited Vulnerabilities catalog
//! (`known_exploited_vulnerabilities.json`, schema in CISA's `kev-data` repository).
//!
//! The catalog header (`catalogVersion`, `dateReleased`, the `vulnerabilities`
//! array) must be valid, or nothing is imported. Each entry is then checked on its
//! own: an entry with a bad CVE id, a missing required field or a date that is not
//! `YYYY-MM-DD` is reported and skipped, and the others are kept.

use crate::cve;
use crate::error::{FeedError, RecordError};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// A KEV catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Catalog {
    /// `catalogVersion`, e.g. `2026.08.07`.
    pub version: String,
    /// `dateReleased`.
    pub released: Timestamp,
    /// `title`, when given.
    pub title: Option<String>,
    /// The valid entries, in the order of the file.
    pub entries: Vec<KevEntry>,
}

impl Catalog {
    /// The entry for a CVE id (any case), if the catalog lists it.
    pub fn get(&self, cve: &str) -> Option<&KevEntry> {
        let cve = cve::normalize(cve)?;
        self.entries.iter().find(|e| e.cve == cve)
    }
}

/// One known exploited vulnerability.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct KevEntry {
    /// `cveID`, upper-case `CVE-`.
    pub cve: String,
    /// `vendorProject`.
    pub vendor: String,
    /// `product`.
    pub product: String,
    /// `vulnerabilityName`.
    pub name: String,
    /// `dateAdded`.
    pub date_added: Date,
    /// `dueDate`: when US federal agencies must have remediated.
    pub due_date: Date,
    /// `knownRansomwareCampaignUse` is `Known` (absent or `Unknown` → false).
    pub known_ransomware: bool,
    /// `shortDescription`.
    pub description: String,
    /// `requiredAction`.
    pub required_action: String,
    /// `notes` (empty when absent).
    pub notes: String,
    /// `cwes` (empty when absent).
    pub cwes: Vec<String>,
}

#[derive(Deserialize)]
struct RawCatalog {
    #[serde(default)]
    title: Option<String>,
    #[serde(rename = "catalogVersion", default)]
    catalog_version: Option<String>,
    #[serde(rename = "dateReleased", default)]
    date_released: Option<String>,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    vulnerabilities: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(rename = "cveID", default)]
    cve_id: Option<String>,
    #[serde(rename = "vendorProject", default)]
    vendor_project: Option<String>,
    #[serde(default)]
    product: Option<String>,
    #[serde(rename = "vulnerabilityName", default)]
    vulnerability_name: Option<String>,
    #[serde(rename = "dateAdded", default)]
    date_added: Option<String>,
    #[serde(rename = "shortDescription", default)]
    short_description: Option<String>,
    #[serde(rename = "requiredAction", default)]
    required_action: Option<String>,
    #[serde(rename = "dueDate", default)]
    due_date: Option<String>,
    #[serde(rename = "knownRansomwareCampaignUse", default)]
    known_ransomware: Option<String>,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    cwes: Option<Vec<String>>,
}

/// Parses a KEV catalog. Returns the catalog with its valid entries and one
/// [`RecordError`] per skipped entry (record = its `cveID` when readable, otherwise
/// `vulnerabilities[i]`), plus one if `count` disagrees with the number of entries.
///
/// Fails when the document is not JSON, or `catalogVersion`, `dateReleased` or the
/// `vulnerabilities` array is missing or invalid.
pub fn parse(bytes: &[u8]) -> Result<(Catalog, Vec<RecordError>), FeedError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let raw: RawCatalog = serde_json::from_slice(bytes)
        .map_err(|e| FeedError::malformed(format!("invalid KEV catalog JSON: {e}")))?;
    let version = raw
        .catalog_version
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| FeedError::malformed("KEV catalog has no catalogVersion"))?;
    let header = |m: String| FeedError::malformed(format!("KEV catalog {version}: {m}"));
    let released = raw
        .date_released
        .ok_or_else(|| header("no dateReleased".into()))?;
    let released = released
        .trim()
        .parse::<Timestamp>()
        .map_err(|e| header(format!("dateReleased {released:?} is not a timestamp: {e}")))?;
    let vulnerabilities = raw
        .vulnerabilities
        .ok_or_else(|| header("no vulnerabilities array".into()))?;

    let mut errors = Vec::new();
    if let Some(count) = raw.count
        && count != vulnerabilities.len() as u64
    {
        errors.push(RecordError::new(
            None,
            None,
            format!(
                "KEV catalog {version}: count says {count} but the catalog lists {} entries",
                vulnerabilities.len()
            ),
        ));
    }
    let mut entries = Vec::with_capacity(vulnerabilities.len());
    for (i, value) in vulnerabilities.iter().enumerate() {
        match entry(value) {
            Ok(e) => entries.push(e),
            Err((record, message)) => errors.push(RecordError::new(
                Some(record.unwrap_or_else(|| format!("vulnerabilities[{i}]"))),
                None,
                message,
            )),
        }
    }
    Ok((
        Catalog {
            version,
            released,
            title: raw.title,
            entries,
        },
        errors,
    ))
}

fn entry(value: &serde_json::Value) -> Result<KevEntry, (Option<String>, String)> {
    let raw = RawEntry::deserialize(value).map_err(|e| {
        let id = value
            .get("cveID")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        (id, format!("invalid KEV entry: {e}"))
    })?;
    let id = raw.cve_id.clone();
    let fail = |m: String| (id.clone(), m);
    let cve = raw
        .cve_id
        .as_deref()
        .map(str::trim)
        .ok_or_else(|| fail("no cveID".into()))
        .and_then(|c| {
            cve::normalize(c).ok_or_else(|| fail(format!("cveID {c:?} is not a CVE id")))
        })?;
    let required = |name: &str, v: Option<String>| v.ok_or_else(|| fail(format!("no {name}")));
    let date = |name: &str, v: Option<String>| {
        let s = required(name, v)?;
        s.trim()
            .parse::<Date>()
            .map_err(|e| fail(format!("{name} {s:?} is not a YYYY-MM-DD date: {e}")))
    };
    let known_ransomware = match raw.known_ransomware.as_deref().map(str::trim) {
        None => false,
        Some(s) if s.eq_ignore_ascii_case("known") => true,
        Some(s) if s.eq_ignore_ascii_case("unknown") || s.is_empty() => false,
        Some(s) => {
            return Err(fail(format!(
                "knownRansomwareCampaignUse {s:?} is neither Known nor Unknown"
            )));
        }
    };
    Ok(KevEntry {
        cve,
        vendor: required("vendorProject", raw.vendor_project)?,
        product: required("product", raw.product)?,
        name: required("vulnerabilityName", raw.vulnerability_name)?,
        date_added: date("dateAdded", raw.date_added)?,
        due_date: date("dueDate", raw.due_date)?,
        known_ransomware,
        description: required("shortDescription", raw.short_description)?,
        required_action: required("requiredAction", raw.required_action)?,
        notes: raw.notes.unwrap_or_default(),
        cwes: raw.cwes.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: &str = r#"{"cveID":"CVE-2023-4911","vendorProject":"GNU","product":"GNU C Library",
        "vulnerabilityName":"n","dateAdded":"2023-11-21","shortDescription":"d","requiredAction":"a",
        "dueDate":"2023-12-12","knownRansomwareCampaignUse":"Unknown","notes":"","cwes":["CWE-122"]}"#;

    fn catalog(entries: &str) -> String {
        format!(
            r#"{{"catalogVersion":"1","dateReleased":"2026-08-07T16:45:47.0648Z","vulnerabilities":[{entries}]}}"#
        )
    }

    #[test]
    fn one_entry() {
        let (c, errors) = parse(catalog(ENTRY).as_bytes()).unwrap();
        assert!(errors.is_empty());
        assert_eq!(c.entries[0].due_date, jiff::civil::date(2023, 12, 12));
        assert!(c.get("cve-2023-4911").is_some());
    }

    #[test]
    fn bad_entry_is_skipped_alone() {
        let bad = ENTRY
            .replace("CVE-2023-4911", "CVE-2023-0001")
            .replace("2023-12-12", "2023-13-45");
        let (c, errors) = parse(catalog(&format!("{ENTRY},{bad},42")).as_bytes()).unwrap();
        assert_eq!(c.entries.len(), 1);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].record.as_deref(), Some("CVE-2023-0001"));
        assert!(errors[0].message.contains("dueDate"), "{}", errors[0]);
        assert_eq!(errors[1].record.as_deref(), Some("vulnerabilities[2]"));
    }

    #[test]
    fn header_errors() {
        assert!(parse(br#"{"dateReleased":"2026-08-07T00:00:00Z","vulnerabilities":[]}"#).is_err());
        assert!(parse(br#"{"catalogVersion":"1","vulnerabilities":[]}"#).is_err());
        assert!(parse(br#"{"catalogVersion":"1","dateReleased":"2026-08-07T00:00:00Z"}"#).is_err());
    }
}
