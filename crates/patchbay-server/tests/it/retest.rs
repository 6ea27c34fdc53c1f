//! Re-test after a real apply (issue 18, item 3), on SQLite and PostgreSQL.
//!
//! Two Debian 12 hosts report the real `debootstrap --variant=minbase
//! bookworm` status file (`fixtures/inventories/debian12/…before…`); the
//! real Debian 12 OSV feed is imported and the fleet assessed. Then:
//!
//! - DEP-1 pins on h1 exactly the six packages the real security upgrade
//!   changed (the difference between the before and after status files), and
//!   h1's agent reports success with the real after status. Its change record
//!   must list as closed exactly the CVEs an **independent oracle**
//!   (`fixtures/oracles/osv_retest.py`: the OSV JSON read by Python, versions
//!   ordered by `dpkg --compare-versions`, not our matcher) says the upgrade
//!   closes, and none open.
//! - DEP-2 pins on h2 `perl-base` 5.36.0-7+deb12u3+b1 — above the installed
//!   +deb12u3, below the +deb12u4 that fixes perl's CVEs. h2 reports success
//!   with that version installed: the job is flagged not remediated, the
//!   oracle's open CVEs are listed open, and the `deployments` report counts
//!   it as not remediated rather than succeeded.

use crate::support::{Host, InProcess, full_checkin};
use patchbay_core::inventory::{Inventory, Package};
use patchbay_core::job::SignedJob;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn status(which: &str) -> (PathBuf, Vec<Package>) {
    let path = fixtures().join(format!(
        "inventories/debian12/debootstrap-minbase-{which}-security-upgrade.dpkg-status"
    ));
    let text = std::fs::read_to_string(&path).unwrap();
    (
        path,
        patchbay_core::inventory::dpkg::parse_status(&text).unwrap(),
    )
}

fn inventory(h: &Host, packages: Vec<Package>) -> Inventory {
    let mut inv = crate::support::pb_demo_inventory(&h.name, &h.mid, "1.0");
    inv.packages = packages;
    inv
}

async fn checkin(s: &InProcess, h: &Host, pkgs: &[Package], results: Value) -> Vec<SignedJob> {
    let r = s
        .ok_json(
            "POST",
            "/agent/v1/checkin",
            &h.secret,
            full_checkin(inventory(h, pkgs.to_vec()), results),
        )
        .await;
    serde_json::from_value(r["jobs"].clone()).unwrap_or_default()
}

struct Sink(Vec<patchbay_feeds::osv::Advisory>, BTreeSet<String>);
impl patchbay_feeds::source::FeedSink for Sink {
    fn on_advisory(&mut self, a: patchbay_feeds::osv::Advisory) {
        // Only the records about the hosts' source packages: the others
        // cannot match, and importing 10,000 records per engine is slow.
        if a.affected
            .iter()
            .any(|x| x.ecosystem == "Debian:12" && self.1.contains(&x.package))
        {
            self.0.push(a);
        }
    }
    fn on_error(&mut self, e: patchbay_feeds::RecordError) {
        panic!("the fixture feed has a bad record: {e:?}");
    }
}

/// The oracle's (closed, open) CVEs for `pkgs` going from the before status
/// to `after`.
fn oracle(after: &std::path::Path, pkgs: &[&str]) -> (Vec<String>, Vec<String>) {
    let (before, _) = status("before");
    let out = std::process::Command::new("python3")
        .arg(fixtures().join("oracles/osv_retest.py"))
        .arg(fixtures().join("feeds/osv/Debian-12-derived.osv.zip"))
        .arg(&before)
        .arg(after)
        .arg("Debian:12")
        .args(pkgs)
        .output()
        .expect("python3 runs the re-test oracle (it is part of the test toolchain)");
    assert!(
        out.status.success(),
        "oracle: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    (list("closed"), list("open"))
}

/// Creates and starts a deployment of `pins` on `host`, has the host take
/// its job and report success with `after` installed; returns the
/// deployment id.
async fn apply(
    s: &InProcess,
    h: &Host,
    before: &[Package],
    pins: &[(String, String)],
    after: &[Package],
) -> String {
    let spec = json!({"assets": [h.name],
        "packages": pins.iter().map(|(n, v)| json!({"name": n, "version": v})).collect::<Vec<_>>()});
    let d = s
        .ok_json("POST", "/api/v1/deployments", &s.admin, spec)
        .await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        &s.admin,
        json!({}),
    )
    .await;
    let mut jobs = checkin(s, h, before, json!([])).await;
    if jobs.is_empty() {
        s.app.drive_rollouts().await.unwrap();
        jobs = checkin(s, h, before, json!([])).await;
    }
    assert_eq!(jobs.len(), 1, "{id}: one job for {}", h.name);
    let key = jobs[0].job.key.clone();
    let changed: Vec<Value> = pins
        .iter()
        .map(|(n, v)| {
            let from = before.iter().find(|p| &p.name == n).unwrap();
            json!({"name": n, "before": from.version, "after": v})
        })
        .collect();
    checkin(
        s,
        h,
        after,
        json!([{"key": key, "outcome": "succeeded", "changed": changed,
                "finished_at": "2026-12-09T00:00:00Z"}]),
    )
    .await;
    s.app.drive_rollouts().await.unwrap();
    id
}

/// (closed, open) CVEs of the change record's host line.
fn retest_of(change: &Value) -> (Vec<String>, Vec<String>, bool) {
    let h = &change["hosts"][0];
    let mut closed = vec![];
    let mut open = vec![];
    for v in h["retest"].as_array().unwrap() {
        let cve = v["cve"].as_str().unwrap().to_string();
        if v["closed"].as_bool().unwrap() {
            closed.push(cve);
        } else {
            open.push(cve);
        }
    }
    closed.sort();
    open.sort();
    (closed, open, h["not_remediated"].as_bool().unwrap())
}

async fn retest_after_apply(backend: &str) {
    let s = InProcess::on(backend).await;
    let hosts = crate::support::fleet(&s, 2, 0x7e50).await;
    let (_, before) = status("before");
    let (after_path, after) = status("after");
    for h in &hosts {
        checkin(&s, h, &before, json!([])).await;
    }
    let sources: BTreeSet<String> = before
        .iter()
        .map(|p| p.source.clone().unwrap_or_else(|| p.name.clone()))
        .collect();
    let mut sink = Sink(vec![], sources);
    patchbay_feeds::source::read_path(
        &fixtures().join("feeds/osv/Debian-12-derived.osv.zip"),
        &mut sink,
    )
    .unwrap();
    s.app
        .import_advisories("test", &sink.0, 0, &patchbay_app::Caller::local("test"))
        .await
        .unwrap();
    s.app.assess_fleet(&|_, _| {}).await.unwrap();

    // DEP-1: the real upgrade on h1.
    let pins: Vec<(String, String)> = after
        .iter()
        .filter(|a| {
            before
                .iter()
                .any(|b| b.name == a.name && b.version != a.version)
        })
        .map(|a| (a.name.clone(), a.version.clone()))
        .collect();
    let names: Vec<&str> = pins.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "apt",
            "libapt-pkg6.0",
            "liblzma5",
            "libpcre2-8-0",
            "perl-base",
            "tzdata"
        ],
        "the fixture's documented upgrade"
    );
    let dep1 = apply(&s, &hosts[0], &before, &pins, &after).await;
    let (want_closed, want_open) = oracle(&after_path, &names);
    assert!(
        want_closed.len() >= 10 && want_open.is_empty(),
        "{want_closed:?} {want_open:?}"
    );
    let c1 = s
        .ok_json(
            "GET",
            &format!("/api/v1/changes/{dep1}"),
            &s.admin,
            json!(null),
        )
        .await;
    let (closed, open, flagged) = retest_of(&c1);
    assert_eq!(closed, want_closed, "closed CVEs against the oracle");
    assert_eq!(open, want_open);
    assert!(!flagged, "{c1}");

    // DEP-2: perl-base pinned below the fix on h2.
    let below = "5.36.0-7+deb12u3+b1";
    let after2: Vec<Package> = before
        .iter()
        .cloned()
        .map(|mut p| {
            if p.name == "perl-base" {
                p.version = below.into();
                if p.source_version.is_some() {
                    p.source_version = Some(below.into());
                }
            }
            p
        })
        .collect();
    let after2_path = std::env::temp_dir().join(format!(
        "patchbay-retest-{}-{backend}.status",
        std::process::id()
    ));
    let (before_path, _) = status("before");
    // The oracle reads the same change as a status file.
    let text = rewrite_version(
        &std::fs::read_to_string(&before_path).unwrap(),
        "perl-base",
        below,
    );
    std::fs::write(&after2_path, text).unwrap();
    let dep2 = apply(
        &s,
        &hosts[1],
        &before,
        &[("perl-base".into(), below.into())],
        &after2,
    )
    .await;
    let (want_closed2, want_open2) = oracle(&after2_path, &["perl-base"]);
    std::fs::remove_file(&after2_path).unwrap();
    assert!(want_closed2.is_empty() && !want_open2.is_empty());
    let c2 = s
        .ok_json(
            "GET",
            &format!("/api/v1/changes/{dep2}"),
            &s.admin,
            json!(null),
        )
        .await;
    let (closed2, open2, flagged2) = retest_of(&c2);
    assert_eq!(closed2, want_closed2);
    assert_eq!(open2, want_open2, "open CVEs against the oracle");
    assert!(flagged2, "pinned below the fix: not remediated: {c2}");
    assert_eq!(c2["hosts"][0]["state"], "succeeded");

    // The rollout-outcomes report: one success, one not remediated.
    let r = s
        .ok_json("GET", "/api/v1/reports/deployments", &s.admin, json!(null))
        .await;
    assert_eq!(r["all"]["ran"], 2, "{r}");
    assert_eq!(r["all"]["succeeded"], 1, "{r}");
    assert_eq!(r["all"]["not_remediated"], 1, "{r}");
    assert_eq!(r["all"]["success_pct"], 50.0, "{r}");
    // The runbook says so too.
    let (_, md) = s
        .call(
            "GET",
            &format!("/api/v1/changes/{dep2}/runbook?format=md"),
            Some(&s.admin),
            None,
        )
        .await;
    assert!(md.contains("**Not remediated:** h2"), "{md}");
}

/// `text` with `package`'s `Version:` set to `version`.
fn rewrite_version(text: &str, package: &str, version: &str) -> String {
    text.split("\n\n")
        .map(|stanza| {
            if stanza.lines().any(|l| l == format!("Package: {package}")) {
                stanza
                    .lines()
                    .map(|l| {
                        if l.starts_with("Version: ") {
                            format!("Version: {version}")
                        } else {
                            l.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                stanza.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[tokio::test]
async fn retest_after_apply_on_sqlite() {
    retest_after_apply("sqlite").await;
}

#[tokio::test]
async fn retest_after_apply_on_postgres() {
    retest_after_apply("postgres").await;
}
