//! Acceptance (issue 16, item 7): CVSS and severity enrichment. With the
//! bundled sample feeds that `patchbay dev` imports (`SAMPLE_FEEDS`, the staged
//! NVD records included) and this kind of machine's inventory (the fixture
//! `host-ci-image.dpkg-status`), the worklist spreads over at least three
//! tiers and every line's reasons name where its severity came from. Without
//! the enrichment (no NVD records, the distribution severity turned off) it is
//! one tier. The record with a v4.0 and a v3.1 score (CVE-2025-13836) uses the
//! v3.1 score (ADR 0013). Importing the scores re-tiers the open findings
//! through the service layer, audited.

use crate::support::{Server, fixtures};
use patchbay_proto::api::{List, WorkItem};
use std::collections::BTreeMap;

fn worklist(s: &Server) -> Vec<WorkItem> {
    let l: List<WorkItem> = s.admin().get("/api/v1/worklist?limit=10000").unwrap();
    l.items
}

fn tiers(items: &[WorkItem]) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for w in items {
        *t.entry(w.tier.clone()).or_default() += 1;
    }
    t
}

/// The line of `cve` on package `package`.
fn line<'a>(items: &'a [WorkItem], cve: &str, package: &str) -> &'a WorkItem {
    items
        .iter()
        .find(|w| w.finding.cves.iter().any(|c| c == cve) && w.finding.package == package)
        .unwrap_or_else(|| panic!("no line for {cve} on {package}"))
}

fn enrichment_spreads_the_worklist(backend: &str) {
    let s = Server::start(backend);
    let status =
        std::fs::read_to_string(fixtures().join("inventories/debian12/host-ci-image.dpkg-status"))
            .unwrap();
    let _root = s.host_with(&status);
    let (scores, rest): (Vec<&str>, Vec<&str>) = patchbay_cli::server::SAMPLE_FEEDS
        .iter()
        .copied()
        .partition(|f| f.starts_with("cvss/"));
    assert_eq!(
        scores,
        ["cvss/nvd"],
        "the sample feeds carry the NVD records"
    );
    let rest: Vec<String> = rest.iter().map(|f| format!("feeds/{f}")).collect();
    s.import_feeds(&rest.iter().map(String::as_str).collect::<Vec<_>>());

    // Without the enrichment: no imported scores, the distribution severity
    // turned off — every Debian finding is "unknown severity, assumed 7.0",
    // one tier.
    let assume = "version = 1\n[tiers]\nmissing_cvss = \"assume\"\n";
    let _: serde_json::Value = s
        .admin()
        .post_raw("/api/v1/policy", "application/toml", assume.as_bytes())
        .unwrap();
    let flat = worklist(&s);
    assert!(flat.len() > 1000 && flat.len() < 10000, "{}", flat.len());
    assert_eq!(tiers(&flat).len(), 1, "{:?}", tiers(&flat));
    assert!(
        flat.iter().all(|w| w
            .reasons
            .iter()
            .any(|r| r.contains("unknown severity assumed high (CVSS 7.0)"))),
        "{:?}",
        flat[0].reasons
    );

    // The distribution severity back on (the default policy): Debian urgency.
    let default = "version = 1\n";
    let _: serde_json::Value = s
        .admin()
        .post_raw("/api/v1/policy", "application/toml", default.as_bytes())
        .unwrap();
    let urgency = worklist(&s);
    let zip = line(&urgency, "CVE-2018-13410", "zip");
    assert!(zip.finding.cvss.is_none());
    assert!(
        zip.reasons.iter().any(|r| r.contains("Debian urgency")),
        "{:?}",
        zip.reasons
    );

    // A CVE JSON 5 record uploaded through the API (`feeds import` with
    // PATCHBAY_URL): the CNA's v4.0 score is the only one, so it is used.
    let cve5 = fixtures().join("feeds/cvss/cve5/CVE-2025-13836.json");
    let up = crate::support::ok(&s.cli(&["feeds", "import", cve5.to_str().unwrap()]));
    assert!(up.contains("CVSS: scores of 1 CVEs stored"), "{up}");
    let py = line(&worklist(&s), "CVE-2025-13836", "libpython3.11-stdlib").clone();
    assert_eq!(py.reasons[0], "CVSS 6.3 (CNA PSF, v4.0) >= 4.0");
    assert_eq!(py.tier, "P3");

    // The NVD records, imported like any feed: the findings re-tier (and
    // CVE-2025-13836's stored scores are replaced by NVD's record's).
    let out = s.import_feeds(&["feeds/cvss/nvd"]);
    assert!(out.contains("CVSS: scores of 24 CVEs stored"), "{out}");
    let items = worklist(&s);
    assert_eq!(items.len(), flat.len(), "scores change tiers, not findings");
    let t = tiers(&items);
    eprintln!(
        "tiers: without enrichment {:?}; Debian urgency {:?}; with the NVD records {t:?}",
        tiers(&flat),
        tiers(&urgency)
    );
    assert!(t.len() >= 3, "{t:?}");
    // Every reason names the score's source: a measured score its source and
    // version, an assumed one the distribution's severity or "unknown".
    for w in &items {
        let named = match (&w.finding.cvss, &w.finding.cvss_source) {
            (Some(_), Some(src)) => w.reasons[0].contains(&format!("({src})")),
            (None, None) => w
                .reasons
                .iter()
                .any(|r| r.contains("Debian urgency") || r.contains("unknown severity assumed")),
            _ => false,
        };
        assert!(named, "{}: {:?}", w.finding.id, w.reasons);
    }
    // Low, medium, high and critical from the staged records, each naming
    // its source.
    for (cve, package, tier, reason) in [
        ("CVE-2018-13410", "zip", "P1", "CVSS 9.8 (NVD, v3.0) >= 9.0"),
        // v4.0 (CNA, 6.3) and v3.1 (NVD, 9.1): the v3.1 score is used.
        (
            "CVE-2025-13836",
            "libpython3.11-stdlib",
            "P1",
            "CVSS 9.1 (NVD, v3.1) >= 9.0",
        ),
        (
            "CVE-2023-31484",
            "perl",
            "P2",
            "CVSS 8.1 (NVD, v3.1) >= 7.0",
        ),
        // Only a v4.0 score: it is used.
        (
            "CVE-2025-4516",
            "libpython3.11-stdlib",
            "P3",
            "CVSS 5.9 (CNA cna@python.org, v4.0) >= 4.0",
        ),
        // v4.0 (CNA, 2.1) and v3.1 (NVD, 5.5): the v3.1 score.
        (
            "CVE-2025-13837",
            "libpython3.11-stdlib",
            "P3",
            "CVSS 5.5 (NVD, v3.1) >= 4.0",
        ),
        (
            "CVE-2025-8194",
            "libpython3.11-stdlib",
            "P2",
            "CVSS 7.5 (CNA cna@python.org, v3.1) >= 7.0",
        ),
        (
            "CVE-2024-50602",
            "libexpat1",
            "P3",
            "CVSS 5.9 (CISA-ADP, v3.1) >= 4.0",
        ),
        (
            "CVE-2025-61984",
            "openssh-client",
            "P4",
            "CVSS 3.6 (CNA cve@mitre.org, v3.1) < 4.0",
        ),
    ] {
        let w = line(&items, cve, package);
        assert_eq!(w.tier, tier, "{cve}: {:?}", w.reasons);
        assert_eq!(w.reasons[0], reason, "{cve}");
    }
    // A record NVD has not analysed yet (no metrics): the Debian urgency stays.
    let k = line(&items, "CVE-2025-21635", "linux-libc-dev");
    assert_eq!(k.finding.cvss, None);
    assert!(
        k.reasons.iter().any(|r| r.contains("Debian urgency")),
        "{:?}",
        k.reasons
    );
    let py = line(&items, "CVE-2025-13836", "libpython3.11-stdlib");
    assert_eq!(
        (py.finding.cvss, py.finding.cvss_source.as_deref()),
        (Some(9.1), Some("NVD, v3.1"))
    );
    // The import went through the service layer: recorded and audited.
    let feeds: serde_json::Value = s.admin().get("/api/v1/feeds").unwrap();
    assert!(
        feeds["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "cvss" && f["records"] == 24),
        "{feeds}"
    );
    let audit: serde_json::Value = s.admin().get("/api/v1/audit?limit=1000").unwrap();
    assert!(
        audit["items"].as_array().unwrap().iter().any(|e| {
            e["action"] == "feed.import"
                && e["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("feed:cvss:"))
        }),
        "{audit}"
    );
}

crate::both_backends!(enrichment_spreads_the_worklist);
