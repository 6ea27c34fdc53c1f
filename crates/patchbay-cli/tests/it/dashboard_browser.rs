//! The dashboard in a real browser (issue 17): `patchbay dev` (the main job)
//! prints the dashboard's URL and a fresh password; Debian's chromium,
//! driven by playwright-core (`tests/browser/dashboard.mjs`), signs in with
//! the keyboard, reads the overview, visits every page with an axe-core
//! accessibility check, tampers with a form and signs out. This test judges
//! what the browser saw against the API (the oracle), not the page's claims.
//!
//! Needs `/usr/bin/chromium` and `tests/browser/node_modules` (`npm ci`),
//! which `scripts/test` installs; it fails, naming them, when they are
//! missing.

use patchbay_client::Client;
use patchbay_proto::api::{AssetSummary, List, WorkItem};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_dashboard_in_a_real_browser() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `npm ci` in {} (scripts/test does)",
        browser_dir.display()
    );
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "/usr/bin/chromium is missing: apt-get install chromium (scripts/test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // This machine's read-only agent, and a simulated fleet of four that runs
    // the jobs it is leased (checking in every second).
    let (child, banner, _) = crate::support::start_dev(
        &data,
        &["--interval", "1h", "--sim", "4", "--sim-interval", "1s"],
    );
    // Stopped (SIGTERM, then waited for) however the test ends, a panic included.
    let child = Stop(child);
    let url = crate::support::banner_value(&banner, "Dashboard:")
        .map(|u| u.trim_end_matches("/ui/").to_string())
        .unwrap_or_else(|| panic!("no Dashboard line in:\n{banner}"));
    let password = crate::support::banner_value(&banner, "sign in as \"dev\" with password")
        .unwrap_or_else(|| panic!("no password in:\n{banner}"));
    let token = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let c = Client::new(&url, Some(token), Duration::from_secs(30));
    // Wait for the local agent's inventory and its assessment.
    let start = Instant::now();
    let asset = loop {
        let l: List<AssetSummary> = c.get("/api/v1/assets").unwrap();
        if let Some(a) = l
            .items
            .iter()
            .find(|a| !a.name.starts_with("sim-") && a.package_count > 0)
        {
            break a.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the local agent did not report"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let work: List<WorkItem> = c
        .get(&format!("/api/v1/worklist?asset={}&limit=10", asset.name))
        .unwrap();
    // A started deployment of one of this machine's fixes, for the live
    // board (the read-only agent will never run it: it stays running).
    let fix = work
        .items
        .iter()
        .find(|w| w.finding.fixed_version.is_some())
        .expect("a finding with a fixed version on this machine");
    let d: serde_json::Value = c
        .send(
            "POST",
            "/api/v1/deployments",
            &serde_json::json!({
                "packages": [{"name": fix.finding.package, "version": fix.finding.fixed_version}],
                "rings": [{"name": "all", "assets": [asset.name]}]
            }),
        )
        .unwrap();
    let dep = d["deployment"]["id"].as_str().unwrap().to_string();
    let _: serde_json::Value = c
        .send(
            "POST",
            &format!("/api/v1/deployments/{dep}/start"),
            &serde_json::json!({}),
        )
        .unwrap();

    // The simulated fleet's deployment, made in the browser: a fix that the
    // canary and at least one other virtual host need, as the
    // API's own preview says (the oracle for the page's preview).
    let sims: Vec<String> = (0..4).map(|i| format!("sim-{i:05}")).collect();
    // The canary: the first virtual host with something to fix (the
    // fleet's Ubuntu and Alpine hosts have no advisories in the sample feeds).
    let (canary, sim_work) = sims
        .iter()
        .find_map(|h| {
            let w: List<WorkItem> = c
                .get(&format!("/api/v1/worklist?asset={h}&limit=500"))
                .unwrap();
            (!w.items.is_empty()).then(|| (h.clone(), w))
        })
        .expect("a virtual host with findings");
    let (sim_package, sim_version, sim_hosts) = sim_work
        .items
        .iter()
        .filter_map(|w| Some((w.finding.package.clone(), w.finding.fixed_version.clone()?)))
        .find_map(|(p, v)| {
            let preview: serde_json::Value = c
                .send(
                    "POST",
                    "/api/v1/deployments/preview",
                    &serde_json::json!({"packages": [{"name": p, "version": v}], "assets": sims}),
                )
                .ok()?;
            let mut hosts: Vec<String> = preview["hosts"]
                .as_array()?
                .iter()
                .map(|h| h["asset"].as_str().unwrap().to_string())
                .collect();
            hosts.sort();
            (hosts.len() >= 2 && hosts.contains(&canary)).then_some((p, v, hosts))
        })
        .expect("a fix that the canary and another virtual host need");
    for (name, role) in [("abe", "approver"), ("aud", "auditor")] {
        let _: serde_json::Value = c
            .send(
                "POST",
                "/api/v1/users",
                &serde_json::json!({"name": name, "role": role, "password": "a long enough password"}),
            )
            .unwrap();
    }
    let expected_buckets = {
        let assets: List<AssetSummary> = c.get("/api/v1/assets").unwrap();
        let mut exposed = 0u64;
        let mut patched = 0u64;
        for a in assets.items.iter().filter(|a| a.package_count > 0) {
            let w: List<WorkItem> = c
                .get(&format!("/api/v1/worklist?asset={}&limit=1", a.name))
                .unwrap();
            if w.items.is_empty() {
                patched += 1;
            } else {
                exposed += 1;
            }
        }
        (exposed, patched)
    };

    // An appliance whose owner is markup (imported, no inventory: unknown).
    let _: serde_json::Value = c
        .send(
            "POST",
            "/api/v1/assets/import",
            &serde_json::json!([{"name": "fw-xss", "kind": "network-device",
                "owner": "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">"}]),
        )
        .unwrap();
    // Screenshots of every page, kept under target/ (a CI artifact).
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../browser-artifacts");
    std::fs::create_dir_all(&shots).unwrap();
    let run = Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .env("PB_URL", &url)
        .env("PB_USER", "dev")
        .env("PB_PASSWORD", &password)
        .env("PB_DEPLOYMENT", &dep)
        .env("PB_ARTIFACTS", &shots)
        .env("PB_ASSET", &asset.name)
        .env("PB_SIM_PACKAGE", &sim_package)
        .env("PB_SIM_VERSION", &sim_version)
        .env("PB_SIM_TARGETS", sims.join(" "))
        .env("PB_SIM_CANARY", &canary)
        .env("PB_APPROVER", "abe")
        .env("PB_APPROVER_PASSWORD", "a long enough password")
        .env("PB_AUDITOR", "aud")
        .env("PB_AUDITOR_PASSWORD", "a long enough password")
        .env(
            "PB_TOKEN",
            std::fs::read_to_string(data.join("admin.token"))
                .unwrap()
                .trim(),
        )
        .output()
        .unwrap();
    // What the server holds once the browser is done (the oracle for the board).
    let api_after: serde_json::Value = c.get(&format!("/api/v1/deployments/{dep}")).unwrap();
    let deployments: serde_json::Value = c.get("/api/v1/deployments").unwrap();
    let made_in_browser: Vec<serde_json::Value> = deployments["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["id"] != dep.as_str())
        .cloned()
        .collect();
    let sim_dep: Option<serde_json::Value> = made_in_browser.first().map(|d| {
        c.get(&format!(
            "/api/v1/deployments/{}",
            d["id"].as_str().unwrap()
        ))
        .unwrap()
    });
    let sim_versions: Vec<Option<String>> = sim_hosts
        .iter()
        .map(|h| {
            let d: serde_json::Value = c.get(&format!("/api/v1/assets/{h}")).unwrap();
            d["packages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == sim_package.as_str())
                .and_then(|p| p["version"].as_str().map(str::to_string))
        })
        .collect();
    let audit: serde_json::Value = c.get("/api/v1/audit?limit=10000").unwrap();
    drop(child);
    assert!(
        run.status.success(),
        "the browser run failed: {}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let saw: Value = serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&run.stdout)));
    eprintln!("browser saw: {saw:#}");

    // Signed out → the sign-in page; keyboard-only sign-in lands on the overview.
    assert_eq!(saw["redirectedTo"], "/ui/login");
    assert_eq!(saw["focusedAtStart"], "name");
    assert_eq!(saw["focusedAfterTab"], "password");
    assert_eq!(saw["afterLogin"], "/ui/");
    assert_eq!(saw["firstTab"], "Skip to content");
    // The cookie: HttpOnly (no script sees it), Secure, SameSite=Strict.
    assert_eq!(saw["cookie"]["httpOnly"], true);
    assert_eq!(saw["cookie"]["secure"], true);
    assert_eq!(saw["cookie"]["sameSite"], "Strict");
    assert_eq!(saw["cookieVisibleToScript"], false);

    // The overview's buckets against the API: this one machine, fresh, is
    // exposed exactly when its worklist has lines; nothing is unknown or stale.
    let count = |b: &str| saw["cards"][b]["count"].as_u64().unwrap();
    let exposed = !work.items.is_empty();
    assert_eq!(count("exposed"), expected_buckets.0, "{}", saw["cards"]);
    assert_eq!(count("patched"), expected_buckets.1, "{}", saw["cards"]);
    assert_eq!(
        expected_buckets.0 + expected_buckets.1,
        5,
        "this machine and four virtual hosts"
    );
    assert_eq!(count("stale"), 0);
    // fw-xss: imported, no inventory.
    assert_eq!(count("unknown"), 1);
    // Its markup owner is shown as text and never runs.
    assert_eq!(saw["xss"]["ran"], false, "{}", saw["xss"]);
    assert_eq!(saw["xss"]["shown"], true, "{}", saw["xss"]);
    let bucket = if exposed { "exposed" } else { "patched" };
    assert!(
        saw["cards"][bucket]["age"]
            .as_str()
            .unwrap()
            .contains("s ago"),
        "{}",
        saw["cards"]
    );
    assert_eq!(saw["overviewHasSvg"], true);
    let text = saw["overviewText"].as_str().unwrap();
    assert!(
        text.contains("Assessed now from advisories imported"),
        "{text}"
    );

    // Every page: 200, and no accessibility violation axe-core knows of.
    for (path, page) in saw["pages"].as_object().unwrap() {
        assert_eq!(page["status"], 200, "{path}: {page}");
        assert_eq!(
            page["axe"],
            serde_json::json!([]),
            "{path}: accessibility: {page}"
        );
    }
    assert_eq!(saw["pages"].as_object().unwrap().len(), 15);
    assert!(
        saw["linksChecked"].as_u64().unwrap() >= 15,
        "{}",
        saw["linksChecked"]
    );
    // The live rollout board: paused elsewhere, shown within a second or two
    // without a reload; resumed from its own form.
    let b = &saw["board"];
    assert_eq!(b["before"], "running", "{b}");
    assert_eq!(b["apiStatus"], 200, "{b}");
    assert_eq!(b["after"], "paused", "{b}");
    assert_eq!(b["notReloaded"], true, "{b}");
    assert!(b["msToShow"].as_u64().unwrap() < 3000, "{b}");
    assert!(
        b["liveState"]
            .as_str()
            .unwrap()
            .starts_with("live: updated"),
        "{b}"
    );
    assert_eq!(b["afterResume"], "running", "{b}");
    assert_eq!(b["axeStatus"], 200, "{b}");
    assert_eq!(b["axe"], serde_json::json!([]), "{b}");
    assert_eq!(api_after["deployment"]["status"], "running", "{api_after}");
    assert_eq!(
        saw["assetPage"]["path"],
        format!("/ui/assets/{}", asset.name),
        "{}",
        saw["assetPage"]
    );
    assert!(
        saw["assetPage"]["packagesHeading"]
            .as_str()
            .unwrap()
            .contains(&asset.package_count.to_string()),
        "{}",
        saw["assetPage"]
    );
    // No script error, no content-security-policy violation, on any page.
    assert_eq!(
        saw["consoleBeforeTamper"],
        serde_json::json!([]),
        "{}",
        saw["console"]
    );

    // Wall screen: refreshing (and pausable), dark, large type.
    assert_eq!(saw["wall"]["state"], "refreshes every 30 s");
    assert_eq!(saw["wall"]["reloaded"], true);
    assert_eq!(saw["wall"]["paused"], "refresh paused");
    assert_eq!(saw["wall"]["background"], "rgb(11, 15, 20)");
    assert_eq!(saw["wall"]["fontSize"], "22px");

    // A tampered CSRF token: refused, and no session ended.
    assert_eq!(saw["tamperedStatus"], 403);
    assert_eq!(saw["sessionsAfter"], saw["sessionsBefore"]);
    // The simulated fleet's deployment, from the form to done, watched live.
    let f = &saw["flow"];
    assert_eq!(f["formPath"], "/ui/deployments/new", "{f}");
    let mut previewed: Vec<String> = serde_json::from_value(f["previewHosts"].clone()).unwrap();
    previewed.sort();
    assert_eq!(previewed, sim_hosts, "the page's preview is the API's");
    assert_eq!(made_in_browser.len(), 1, "{deployments}");
    let sim_dep = sim_dep.unwrap();
    assert!(
        sim_dep["deployment"]["created_by"]
            .as_str()
            .unwrap()
            .ends_with(":dev"),
        "{sim_dep}"
    );
    assert_eq!(f["created"], "draft", "{f}");
    assert_eq!(f["canaryNotReloaded"], true, "{f}");
    // The overview open in another tab listed the start without a reload.
    assert_eq!(f["overviewLive"]["notReloaded"], true, "{f}");
    assert!(
        f["overviewLive"]["msToShow"].as_u64().unwrap() < 3000,
        "{f}"
    );
    assert!(f["awaiting"].as_str().unwrap().contains("approval"), "{f}");
    // Four eyes: the creator's own approval refused, and a token-less post too.
    assert_eq!(f["ownApprovalStatus"], 409, "{f}");
    assert!(
        f["ownApprovalText"].as_str().unwrap().contains("four eyes"),
        "{f}"
    );
    assert_eq!(f["noCsrfStatus"], 403, "{f}");
    assert_eq!(f["approvalStatus"], 200, "{f}");
    assert_eq!(f["restNotReloaded"], true, "{f}");
    assert!(f["approvedBy"].as_str().unwrap().contains("abe"), "{f}");
    // The board's last counts are the stored rollout's: every host succeeded.
    assert_eq!(sim_dep["deployment"]["status"], "completed", "{sim_dep}");
    let rings = sim_dep["rollout"]["rings"].as_array().unwrap();
    for r in rings {
        let name = r["spec"]["name"].as_str().unwrap();
        let jobs = r["jobs"].as_array().unwrap();
        let ok = jobs.iter().filter(|j| j["state"] == "succeeded").count();
        assert_eq!(ok, jobs.len(), "{name}: {sim_dep}");
        assert_eq!(f["final"][name]["succeeded"], ok as u64, "{name}: {f}");
        assert_eq!(f["final"][name]["failed"], 0, "{name}: {f}");
    }
    assert_eq!(rings[0]["jobs"][0]["spec"]["host"], canary.as_str());
    assert!(
        rings[1]["approved_by"].as_str().unwrap().ends_with(":abe"),
        "{sim_dep}"
    );
    // The virtual hosts run what they were leased: each now has the version.
    for (h, v) in sim_hosts.iter().zip(&sim_versions) {
        assert_eq!(v.as_deref(), Some(sim_version.as_str()), "{h}");
    }
    // The refused approval is in the audit trail as denied.
    assert!(
        audit["items"].as_array().unwrap().iter().any(|e| e["actor"]
            .as_str()
            .unwrap_or("")
            .ends_with(":dev")
            && e["outcome"] == "denied"
            && e["action"].as_str().unwrap_or("").contains("approv")),
        "no denied approval by dev in the audit log"
    );
    // An auditor: no button, no form, and every action URL refused.
    let a = &f["auditor"];
    assert_eq!(a["buttons"], 0, "{a}");
    assert_eq!(a["newLink"], false, "{a}");
    assert_eq!(a["exceptionForms"], 0, "{a}");
    let posts = a["posts"].as_object().unwrap();
    assert_eq!(posts.len(), 10, "{a}");
    for (what, status) in posts {
        assert_eq!(status, 403, "auditor {what}: {a}");
    }
    // The downloaded report: the CSV the API serves for the same report.
    assert_eq!(f["download"]["name"], "patchbay-compliance.csv", "{f}");
    let csv = f["download"]["text"].as_str().unwrap();
    for h in &sims {
        assert!(
            csv.contains(h.as_str()),
            "{h} missing from the downloaded report"
        );
    }
    assert_eq!(f["console"], serde_json::json!([]), "{f}");

    // Signing out closes the dashboard again.
    assert_eq!(saw["afterLogout"], "/ui/login");
    assert_eq!(saw["afterLogoutVisit"], "/ui/login");
}

/// A `patchbay dev` process stopped when dropped.
struct Stop(std::process::Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}
