//! OSV records from the real feeds in `fixtures/feeds/osv/`.

use crate::common::{fixture, gunzip, import};
use patchbay_feeds::cvss::{CvssVersion, Rating};
use patchbay_feeds::osv::{self, Event, RangeKind};
use std::collections::{BTreeMap, BTreeSet};

fn ecosystems<'a>(
    advisories: impl IntoIterator<Item = &'a osv::Advisory>,
) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for a in advisories {
        for af in &a.affected {
            *out.entry(af.ecosystem.clone()).or_default() += 1;
        }
    }
    out
}

/// Every line of AlmaLinux 9's JSONL parses with the pure parser (1783 records, as
/// the shared README states); CVE ids come from the references.
#[test]
fn almalinux9_every_record() {
    let text = gunzip(&fixture("osv/almalinux9.osv.jsonl.gz"));
    let advisories: Vec<_> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| osv::parse(l).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(advisories.len(), 1783);
    let ids: BTreeSet<_> = advisories.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), 1783, "ids are unique");
    // These records have no severity and no aliases: CVEs are only in references.
    assert!(
        advisories
            .iter()
            .all(|a| a.severity.is_empty() && a.cvss.is_none())
    );
    assert!(advisories.iter().all(|a| a.aliases.is_empty()));
    let cves: BTreeSet<_> = advisories.iter().flat_map(|a| a.cves.iter()).collect();
    assert_eq!(cves.len(), 3974, "distinct CVEs named by reference URLs");
    assert_eq!(
        advisories.iter().filter(|a| !a.cves.is_empty()).count(),
        1773
    );
    // The file is AlmaLinux 9's, but some records also list AlmaLinux 8 and 10 packages.
    let eco = ecosystems(&advisories);
    assert_eq!(eco["AlmaLinux:9"], 23051);
    assert_eq!(eco["AlmaLinux:8"], 745);
    assert_eq!(eco["AlmaLinux:10"], 216);
    assert_eq!(eco.values().sum::<usize>(), 24012);

    let glibc = advisories
        .iter()
        .find(|a| a.id == "ALSA-2023:5453")
        .unwrap();
    assert_eq!(
        glibc.cves,
        [
            "CVE-2023-4527",
            "CVE-2023-4806",
            "CVE-2023-4813",
            "CVE-2023-4911"
        ]
    );
    let af = glibc
        .affected
        .iter()
        .find(|a| a.package == "glibc")
        .unwrap();
    assert_eq!(af.ecosystem, "AlmaLinux:9");
    assert_eq!(af.ecosystem_name(), "AlmaLinux");
    assert_eq!(af.ecosystem_release(), Some("9"));
    assert_eq!(af.ranges[0].kind, RangeKind::Ecosystem);
    assert_eq!(
        af.ranges[0].events,
        [
            Event::Introduced("0".into()),
            Event::Fixed("2.34-60.el9_2.7".into())
        ]
    );
}

/// The same file through the IO layer: JSONL inside gzip, detected by content.
#[test]
fn almalinux9_import() {
    let (summary, sink) = import("osv/almalinux9.osv.jsonl.gz");
    assert_eq!(
        (summary.osv.files, summary.osv.records, summary.osv.skipped),
        (1, 1783, 0)
    );
    assert!(sink.errors.is_empty());
    assert_eq!(sink.advisories.len(), 1783);
}

/// The Debian 12 subset zip (610 of the 10,464 derived records; see fixtures/README.md):
/// ecosystem `Debian:12`, package = source package, urgency kept.
#[test]
fn debian12_subset_zip() {
    let (summary, sink) = import("osv/Debian-12-derived.subset.osv.zip");
    assert_eq!(
        (summary.osv.files, summary.osv.records, summary.osv.skipped),
        (610, 610, 0)
    );
    assert!(sink.errors.is_empty() && summary.ignored.is_empty());
    assert_eq!(
        ecosystems(&sink.advisories),
        BTreeMap::from([("Debian:12".to_owned(), 828)])
    );
    assert!(
        sink.advisories
            .iter()
            .all(|a| a.id.starts_with("DEBIAN-CVE-") && a.cves.len() == 1)
    );

    let a = sink
        .advisories
        .iter()
        .find(|a| a.id == "DEBIAN-CVE-2023-4911")
        .unwrap();
    assert_eq!(a.cves, ["CVE-2023-4911"]);
    assert_eq!(a.published.unwrap().to_string(), "2023-09-30T08:31:05Z");
    let af = &a.affected[0];
    assert_eq!(
        (af.ecosystem.as_str(), af.package.as_str()),
        ("Debian:12", "glibc")
    );
    assert_eq!(
        af.ranges[0].events[1],
        Event::Fixed("2.36-9+deb12u3".into())
    );
    assert_eq!(af.ecosystem_specific.as_ref().unwrap()["urgency"], "medium");
}

/// Alpine v3.10 (derived from secdb): 1723 records in a zip; one record of the
/// source data has a placeholder id `ALPINE-CVE-????-?????`, which names no CVE.
#[test]
fn alpine_v3_10_zip() {
    let (summary, sink) = import("osv/Alpine-v3.10-derived.osv.zip");
    assert_eq!(
        (summary.osv.files, summary.osv.records, summary.osv.skipped),
        (1723, 1723, 0)
    );
    assert_eq!(
        ecosystems(&sink.advisories),
        BTreeMap::from([("Alpine:v3.10".to_owned(), 1888)])
    );
    let no_cve: Vec<_> = sink
        .advisories
        .iter()
        .filter(|a| a.cves.is_empty())
        .map(|a| a.id.as_str())
        .collect();
    assert_eq!(
        no_cve,
        [
            "ALPINE-CVE-2017-17434-1",
            "ALPINE-CVE-2017-17434-2",
            "ALPINE-CVE-????-?????"
        ]
    );
    let a = sink
        .advisories
        .iter()
        .find(|a| a.id == "ALPINE-CVE-2019-1547")
        .unwrap();
    assert_eq!(a.affected[0].package, "openssl");
    assert_eq!(
        a.affected[0].ranges[0].events[1],
        Event::Fixed("1.1.1d-r0".into())
    );
}

/// go-vulndb (every 20th record of the shared JSONL): ecosystem `Go`, SEMVER ranges.
#[test]
fn go_vulndb_subset() {
    let (summary, sink) = import("osv/go-vulndb-osv.every20th.jsonl.gz");
    assert_eq!((summary.osv.records, summary.osv.skipped), (215, 0));
    assert_eq!(
        ecosystems(&sink.advisories),
        BTreeMap::from([("Go".to_owned(), 305)])
    );
    assert!(
        sink.advisories
            .iter()
            .flat_map(|a| &a.affected)
            .flat_map(|a| &a.ranges)
            .all(|r| r.kind == RangeKind::Semver)
    );
    assert_eq!(
        sink.advisories.iter().filter(|a| a.is_withdrawn()).count(),
        1
    );
    assert_eq!(
        sink.advisories.iter().filter(|a| a.cves.is_empty()).count(),
        18
    );
    let first = &sink.advisories[0];
    assert_eq!(first.id, "GO-2020-0001");
    assert_eq!(first.cves, ["CVE-2020-36567"]);
    assert_eq!(first.aliases, ["CVE-2020-36567", "GHSA-6vm3-jj99-7229"]);
    // go-vulndb writes the zero time for `modified`.
    assert_eq!(first.modified.unwrap().to_string(), "0001-01-01T00:00:00Z");
    let imports = &first.affected[0].ecosystem_specific.as_ref().unwrap()["imports"];
    assert_eq!(imports[0]["path"], "github.com/gin-gonic/gin");
}

#[test]
fn ubuntu_cve_2023_4911() {
    let a = osv::parse(&fixture("osv/ubuntu/UBUNTU-CVE-2023-4911.json")).unwrap();
    // The CVE is in `related`, not `aliases`; it is read from the id.
    assert!(a.aliases.is_empty());
    assert_eq!(a.related, ["CVE-2023-4911", "USN-6409-1"]);
    assert_eq!(a.cves, ["CVE-2023-4911"]);
    let eco: Vec<_> = a.affected.iter().map(|a| a.ecosystem.as_str()).collect();
    assert_eq!(eco, ["Ubuntu:22.04:LTS", "Ubuntu:24.04:LTS"]);
    assert_eq!(a.affected[0].ecosystem_release(), Some("22.04:LTS"));
    assert_eq!(a.affected[0].package, "glibc");
    assert_eq!(
        a.affected[0].ranges[0].events[1],
        Event::Fixed("2.35-0ubuntu3.4".into())
    );
    assert!(
        a.affected[0]
            .versions
            .contains(&"2.35-0ubuntu3.3".to_owned())
    );
    assert!(
        a.affected[0]
            .purl
            .as_deref()
            .unwrap()
            .starts_with("pkg:deb/ubuntu/glibc")
    );
    assert_eq!(a.severity[0].kind, "CVSS_V3");
    let cvss = a.cvss.unwrap();
    assert_eq!(
        (cvss.version, cvss.base_score, cvss.rating),
        (CvssVersion::V3_1, 7.8, Rating::High)
    );
}

#[test]
fn ubuntu_cve_2024_2961() {
    let a = osv::parse(&fixture("osv/ubuntu/UBUNTU-CVE-2024-2961.json")).unwrap();
    let eco: Vec<_> = a.affected.iter().map(|a| a.ecosystem.as_str()).collect();
    assert_eq!(
        eco,
        [
            "Ubuntu:Pro:14.04:LTS",
            "Ubuntu:Pro:16.04:LTS",
            "Ubuntu:Pro:18.04:LTS",
            "Ubuntu:20.04:LTS",
            "Ubuntu:22.04:LTS",
            "Ubuntu:24.04:LTS"
        ]
    );
    let noble = a
        .affected
        .iter()
        .find(|a| a.ecosystem == "Ubuntu:24.04:LTS")
        .unwrap();
    assert_eq!(
        noble.ranges[0].events[1],
        Event::Fixed("2.39-0ubuntu8.1".into())
    );
    assert_eq!(a.cves, ["CVE-2024-2961"]);
    assert!(a.cvss.is_none());
}

/// Schema 1.7.0: `upstream`, two CVSS v3.1 vectors and an `Ubuntu` priority.
#[test]
fn ubuntu_cve_2025_32463() {
    let a = osv::parse(&fixture("osv/ubuntu/UBUNTU-CVE-2025-32463.json")).unwrap();
    assert_eq!(a.schema_version.as_deref(), Some("1.7.0"));
    assert_eq!(a.upstream, ["CVE-2025-32463"]);
    assert_eq!(a.cves, ["CVE-2025-32463"]);
    let kinds: Vec<_> = a
        .severity
        .iter()
        .map(|s| (s.kind.as_str(), s.is_cvss()))
        .collect();
    assert_eq!(
        kinds,
        [("CVSS_V3", true), ("CVSS_V3", true), ("Ubuntu", false)]
    );
    assert_eq!(a.severity[2].score, "high");
    // The higher of the two v3.1 scores (9.3 scope-changed vs 7.8).
    let cvss = a.cvss.unwrap();
    assert_eq!(cvss.vector, "CVSS:3.1/AV:L/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H");
    assert_eq!((cvss.base_score, cvss.rating), (9.3, Rating::Critical));
    assert_eq!(a.affected[1].ecosystem, "Ubuntu:25.04");
    assert_eq!(
        a.affected[0].ecosystem_specific.as_ref().unwrap()["priority_reason"],
        "Allows local privilege escalation"
    );
}

#[test]
fn osv_dev_samples() {
    let dsa = osv::parse(&fixture("osv/samples/DSA-3029-1.json")).unwrap();
    assert_eq!(dsa.id, "DSA-3029-1");
    assert_eq!(dsa.cves, ["CVE-2014-3616"]);
    assert_eq!(dsa.summary.as_deref(), Some("nginx - security update"));
    assert_eq!(dsa.affected[0].ecosystem, "Debian:7");
    assert_eq!(
        dsa.affected[0].ranges[0].events[1],
        Event::Fixed("1.2.1-2.2+wheezy3".into())
    );
    assert_eq!(dsa.references[0].kind, "ADVISORY");

    let pro = osv::parse(&fixture("osv/samples/UBUNTU-CVE-2025-38094.json")).unwrap();
    assert_eq!(pro.cves, ["CVE-2025-38094"]);
    assert_eq!(pro.affected[0].ecosystem, "Ubuntu:Pro:14.04:LTS");
    assert_eq!(pro.severity[0].kind, "Ubuntu");
    assert!(pro.cvss.is_none());
}

/// Parsing the same bytes twice gives the same value, and serialising works.
#[test]
fn deterministic_and_serialisable() {
    let bytes = fixture("osv/ubuntu/UBUNTU-CVE-2025-32463.json");
    let a = osv::parse(&bytes).unwrap();
    assert_eq!(a, osv::parse(&bytes).unwrap());
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["cvss"]["version"], "3.1");
    assert_eq!(json["cvss"]["rating"], "critical");
    assert_eq!(
        json["affected"][0]["ranges"][0]["events"][1]["fixed"],
        "1.9.15p5-3ubuntu5.24.04.1"
    );
}
