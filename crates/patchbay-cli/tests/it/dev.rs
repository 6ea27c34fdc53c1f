//! The main job: `patchbay dev` starts the server on SQLite, enrols a read-only
//! local agent, and prints where to find the API and the admin token.

use crate::support::dpkg_query;
use patchbay_client::Client;
use patchbay_proto::api::{AssetSummary, List, WorkItem};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn dev_mode_serves_and_inventories_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, banner, url) = crate::support::start_dev(&data, &["--interval", "1h"]);
    assert!(banner.contains("admin.token"), "{banner}");
    assert!(banner.contains("sample feeds: imported from"), "{banner}");

    let token_path = data.join("admin.token");
    assert_eq!(
        std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_string();
    let c = Client::new(&url, Some(token), Duration::from_secs(10));
    assert_eq!(
        ureq::get(format!("{url}/healthz"))
            .call()
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    let want = dpkg_query().len() as u64;
    let start = Instant::now();
    loop {
        let l: List<AssetSummary> = c.get("/api/v1/assets").unwrap();
        if let Some(a) = l.items.first()
            && a.package_count == want
        {
            assert_eq!(a.liveness, "managed");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the local agent did not report"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // The bundled sample feeds were imported on first start.
    let feeds: List<serde_json::Value> = c.get("/api/v1/feeds").unwrap();
    let kinds: Vec<&str> = feeds
        .items
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "osv").count(),
        3,
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"kev") && kinds.contains(&"epss") && kinds.contains(&"cvss"),
        "{kinds:?}"
    );
    // Issue 16, item 7: with the staged CVSS records and the Debian urgencies,
    // this machine's worklist spreads over at least three tiers, and every
    // line's reasons name where its severity came from.
    let items: List<WorkItem> = c.get("/api/v1/worklist?limit=10000").unwrap();
    let tiers: std::collections::BTreeSet<&str> =
        items.items.iter().map(|w| w.tier.as_str()).collect();
    eprintln!("dev worklist: {} lines, tiers {tiers:?}", items.items.len());
    assert!(tiers.len() >= 3, "{tiers:?}");
    for w in &items.items {
        let named = match &w.finding.cvss_source {
            Some(src) => w.reasons.iter().any(|r| r.contains(&format!("({src})"))),
            None => w
                .reasons
                .iter()
                .any(|r| r.contains("Debian urgency") || r.contains("unknown severity assumed")),
        };
        assert!(named, "{}: {:?}", w.finding.id, w.reasons);
    }
    // SIGTERM stops it cleanly.
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(data.join("patchbay.db").exists());
    assert!(data.join("agent/identity.json").exists());
}

/// `patchbay dev --sim N`: a simulated fleet of N hosts with real
/// inventories is enrolled on the first start (assessed: the worklist has
/// lines on them), and not again on the next start.
#[test]
fn dev_mode_enrols_a_simulated_fleet_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let start = |data: &std::path::Path| {
        let (child, banner, url) = crate::support::start_dev(data, &["--no-agent", "--sim", "12"]);
        (child, url, banner)
    };
    let (mut child, url, banner) = start(&data);
    assert!(
        banner.contains("Simulated:    12 virtual hosts"),
        "{banner}"
    );
    let token = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let c = Client::new(&url, Some(token), Duration::from_secs(30));
    let assets: List<AssetSummary> = c.get("/api/v1/assets").unwrap();
    let sims: Vec<&AssetSummary> = assets
        .items
        .iter()
        .filter(|a| a.name.starts_with("sim-"))
        .collect();
    assert_eq!(
        sims.len(),
        12,
        "{:?}",
        assets.items.iter().map(|a| &a.name).collect::<Vec<_>>()
    );
    assert!(
        sims.iter()
            .all(|a| a.package_count > 0 && a.liveness == "managed")
    );
    let work: List<WorkItem> = c.get("/api/v1/worklist?limit=10000").unwrap();
    assert!(
        work.items
            .iter()
            .any(|w| w.finding.asset.starts_with("sim-")),
        "no finding on the simulated fleet"
    );
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    // Its credentials are kept for the next start, readable by the owner only.
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(data.join("sim-fleet.json")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(data.join("sim-fleet.json")).unwrap()).unwrap();
        assert_eq!(saved.as_array().unwrap().len(), 12);
    }
    // The second start finds the fleet and enrols nobody.
    let (mut child, url, banner) = start(&data);
    assert!(
        banner.contains("12 virtual hosts enrolled at an earlier start"),
        "{banner}"
    );
    let token = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let c = Client::new(&url, Some(token), Duration::from_secs(30));
    let assets: List<AssetSummary> = c.get("/api/v1/assets").unwrap();
    assert_eq!(
        assets
            .items
            .iter()
            .filter(|a| a.name.starts_with("sim-"))
            .count(),
        12
    );
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}
