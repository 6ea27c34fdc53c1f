//! CSAF 2.0: the OASIS examples (`fixtures/feeds/csaf/`, provenance in its
//! README) read as the documents say; a malformed document is refused whole,
//! naming the file and the JSON path.

use crate::common::{fixture, fixture_path};
use patchbay_feeds::csaf::{self, Status};
use patchbay_feeds::source::{Collect, read_path};

#[test]
fn cisco_smi2_reads_its_ios_releases_and_workaround() {
    let d = csaf::parse(&fixture("csaf/cisco-sa-20180328-smi2.json")).unwrap();
    assert_eq!(d.id, "cisco-sa-20180328-smi2");
    assert_eq!(d.publisher, "Cisco PSIRT");
    assert_eq!(d.cves(), vec!["CVE-2018-0171".to_string()]);
    let v = &d.vulnerabilities[0];
    // Counted independently with python3 json: 259 known_affected ids.
    assert_eq!(v.status[&Status::Affected].len(), 259);
    let p = d.product("CVRFPID-103763").unwrap();
    assert_eq!(p.vendor.as_deref(), Some("Cisco"));
    assert_eq!(p.product.as_deref(), Some("IOS"));
    assert_eq!(p.version.as_deref(), Some("12.2(55)SE"));
    assert_eq!(v.status_of("CVRFPID-103763"), Some(Status::Affected));
    assert_eq!(v.remediations.len(), 1);
    assert_eq!(v.remediations[0].category, "workaround");
    assert_eq!(v.remediations[0].products.len(), 259);
    // The score is computed from the vector.
    assert_eq!(v.scores[0].base_score, 9.8);
    assert!(d.url.as_deref().unwrap().contains("cisco-sa-20180328-smi2"));
}

#[test]
fn bsi_example_has_a_vendor_fix_with_url_and_fixed_release() {
    let d = csaf::parse(&fixture("csaf/bsi-2022-0001.json")).unwrap();
    let v = &d.vulnerabilities[0];
    assert_eq!(v.cve.as_deref(), Some("CVE-2022-27193"));
    assert_eq!(v.status_of("CSAFPID-0006"), Some(Status::Fixed));
    assert_eq!(v.status_of("CSAFPID-0002"), Some(Status::Affected));
    let fix = v
        .remediations
        .iter()
        .find(|r| r.category == "vendor_fix")
        .unwrap();
    assert_eq!(
        fix.url.as_deref(),
        Some("https://github.com/csaf-tools/CVRF-CSAF-Converter/releases/tag/1.0.0-rc2")
    );
    let p = d.product("CSAFPID-0006").unwrap();
    assert_eq!(p.version.as_deref(), Some("1.0.0-rc2"));
    assert_eq!(
        p.cpe.as_deref(),
        Some("cpe:/a:csaf-tools:cvrf-csaf-converter:1.0.0-rc2")
    );
}

#[test]
fn vex_documents_carry_status_flags_and_impact() {
    let d = csaf::parse(&fixture("csaf/vex/sec-vex-2022-0001.json")).unwrap();
    assert_eq!(d.category, "csaf_vex");
    assert_eq!(d.vulnerabilities.len(), 3);
    let p = d.product("CSAFPID-0001").unwrap();
    assert_eq!(p.range.as_deref(), Some("<=1.14.0"));
    assert_eq!(p.version, None);
    for v in &d.vulnerabilities {
        assert_eq!(v.status_of("CSAFPID-0001"), Some(Status::NotAffected));
        assert_eq!(v.flags[0].label, "component_not_present");
        assert_eq!(v.threats[0].category, "impact");
    }
    let ui = csaf::parse(&fixture("csaf/vex/2022-evd-uc-01-ui-001.json")).unwrap();
    assert_eq!(
        ui.vulnerabilities[0].status_of("CSAFPID-0001"),
        Some(Status::UnderInvestigation)
    );
}

#[test]
fn rhsa_relationships_name_component_and_platform() {
    let d = csaf::parse(&fixture("csaf/rhsa-2022_0011.json")).unwrap();
    assert_eq!(d.id, "RHSA-2022:0011");
    let p = d
        .product("7Server-7.6.AUS:telnet-1:0.17-65.el7_6.x86_64")
        .unwrap();
    let r = p.relationship.as_ref().unwrap();
    assert_eq!(r.category, "default_component_of");
    assert_eq!(r.component, "telnet-1:0.17-65.el7_6.x86_64");
    assert_eq!(r.platform, "7Server-7.6.AUS");
    assert_eq!(
        d.product("7Server-7.6.AUS").unwrap().cpe.as_deref(),
        Some("cpe:/o:redhat:rhel_aus:7.6::server")
    );
    // A product-family level RHSA (no rpm list) and an informational one
    // (no vulnerabilities) read too.
    let d = csaf::parse(&fixture("csaf/rhsa-2021_5217.json")).unwrap();
    assert_eq!(
        d.vulnerabilities[0].status_of("Red Hat Single Sign-On"),
        Some(Status::Fixed)
    );
    let d = csaf::parse(&fixture("csaf/rhsa-2019_1862.json")).unwrap();
    assert_eq!(d.category, "csaf_informational_advisory");
    assert!(d.vulnerabilities.is_empty());
}

#[test]
fn the_directory_imports_every_document() {
    let mut c = Collect::default();
    let s = read_path(&fixture_path("csaf"), &mut c).unwrap();
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    // 5 advisories + 5 VEX documents; provider metadata and ROLIE are not
    // advisories and are ignored.
    assert_eq!(s.csaf.records, 10, "{s:?}");
    assert_eq!(c.csaf.len(), 10);
}

/// The real Cisco document with one product id in a status list that the
/// tree does not define: refused whole, naming the file and the JSON path.
#[test]
fn a_malformed_document_is_refused_naming_file_and_json_path() {
    let text = String::from_utf8(fixture("csaf/cisco-sa-20180328-smi2.json")).unwrap();
    let broken = text.replacen(
        "\"known_affected\": [",
        "\"known_affected\": [\"CVRFPID-999999\",",
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cisco-broken.json");
    std::fs::write(&path, &broken).unwrap();
    let mut c = Collect::default();
    let e = read_path(&path, &mut c).unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("cisco-broken.json"), "{shown}");
    assert!(
        shown.contains("vulnerabilities[0].product_status.known_affected[0]: product id \"CVRFPID-999999\" is not defined"),
        "{shown}"
    );
    assert!(c.csaf.is_empty());
    // Inside a directory: skipped whole, reported with the same path; the
    // good document beside it is read.
    std::fs::copy(
        fixture_path("csaf/bsi-2022-0001.json"),
        dir.path().join("bsi.json"),
    )
    .unwrap();
    let mut c = Collect::default();
    let s = read_path(dir.path(), &mut c).unwrap();
    assert_eq!((s.csaf.records, s.csaf.skipped), (1, 1));
    assert_eq!(c.csaf.len(), 1);
    assert!(c.errors[0].file.ends_with("cisco-broken.json"));
    assert!(
        c.errors[0]
            .message
            .starts_with("vulnerabilities[0].product_status"),
        "{}",
        c.errors[0]
    );
    // A shape error: the JSON path from serde.
    let shape = text.replacen("\"category\": \"workaround\"", "\"category\": \"magic\"", 1);
    std::fs::write(&path, &shape).unwrap();
    let e = read_path(&path, &mut Collect::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("vulnerabilities[0].remediations[0].category: unknown variant `magic`"),
        "{e}"
    );
}
