//! Configuration drift and converging a group to its baseline (issue 18,
//! item 4), through the API, `/metrics` and the agent protocol, on SQLite
//! and PostgreSQL.
//!
//! Three Debian hosts of the policy group `web` (h1–h3), each with its own
//! versions (below). The modal baseline, worked out by hand: a package is in
//! it when 2 or 3 of the 3 hosts have it, at the version most of them have.
//!
//! | package | h1 | h2 | h3 | baseline |
//! |---|---|---|---|---|
//! | openssl | 3.0.11-1 | 3.0.11-1 | 3.0.9-1 | 3.0.11-1 (2 of 3) |
//! | curl | 7.88.1-10 | 7.88.1-9 | 7.88.1-10 | 7.88.1-10 (2 of 3) |
//! | libfoo | 1.0 | 1.0 | – | 1.0 (2 of 3 have it) |
//! | pb-demo | 1.0 | 1.0 | 1.1 | 1.0 |
//! | vim | 9.0 | – | – | not in it (1 of 3) |
//! | nginx | – | 1.22 | – | not in it (1 of 3) |
//!
//! So: h1 has `vim` extra; h2 `curl` older and `nginx` extra; h3 `libfoo`
//! missing, `openssl` older and `pb-demo` newer — 6 drifted packages.
//! Converging installs exactly the older ones: `curl` 7.88.1-10 on h2 and
//! `openssl` 3.0.11-1 on h3, nothing on h1.
//!
//! h4, alone in the group `stage`, stands for `web` in a staging ring: it has
//! `curl` 7.88.1-9 (older), `nginx` (extra) and no `libfoo` (missing) against
//! `web`'s baseline — 3 packages, beyond a tolerance of 2.

use crate::support::{Host, InProcess, full_checkin};
use patchbay_core::job::{JobKind, SignedJob};
use serde_json::{Value, json};

fn inventory(h: &Host, pkgs: &[(&str, &str)]) -> patchbay_core::inventory::Inventory {
    let mut inv = crate::support::pb_demo_inventory(&h.name, &h.mid, "1.0");
    inv.packages = pkgs
        .iter()
        .map(|(n, v)| patchbay_core::inventory::Package {
            name: (*n).into(),
            version: (*v).into(),
            arch: "amd64".into(),
            source: None,
            source_version: None,
        })
        .collect();
    inv
}

async fn checkin(s: &InProcess, h: &Host, pkgs: &[(&str, &str)], results: Value) -> Vec<SignedJob> {
    let r = s
        .ok_json(
            "POST",
            "/agent/v1/checkin",
            &h.secret,
            full_checkin(inventory(h, pkgs), results),
        )
        .await;
    serde_json::from_value(r["jobs"].clone()).unwrap_or_default()
}

const H1: &[(&str, &str)] = &[
    ("curl", "7.88.1-10"),
    ("libfoo", "1.0"),
    ("openssl", "3.0.11-1"),
    ("pb-demo", "1.0"),
    ("vim", "9.0"),
];
const H2: &[(&str, &str)] = &[
    ("curl", "7.88.1-9"),
    ("libfoo", "1.0"),
    ("nginx", "1.22"),
    ("openssl", "3.0.11-1"),
    ("pb-demo", "1.0"),
];
const H4: &[(&str, &str)] = &[
    ("curl", "7.88.1-9"),
    ("nginx", "1.22"),
    ("openssl", "3.0.11-1"),
    ("pb-demo", "1.0"),
];
const H3: &[(&str, &str)] = &[
    ("curl", "7.88.1-10"),
    ("openssl", "3.0.9-1"),
    ("pb-demo", "1.1"),
];

/// (asset, package, kind, installed, baseline) of every difference.
fn differences(d: &Value) -> Vec<(String, String, String, String, String)> {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    d["groups"][0]["assets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| {
            h["differences"].as_array().unwrap().iter().map(move |x| {
                (
                    s(&h["asset"]),
                    s(&x["name"]),
                    s(&x["kind"]),
                    s(&x["installed"]),
                    s(&x["baseline"]),
                )
            })
        })
        .collect()
}

fn t(a: &str, p: &str, k: &str, i: &str, b: &str) -> (String, String, String, String, String) {
    (a.into(), p.into(), k.into(), i.into(), b.into())
}

async fn drift_and_converge(backend: &str) {
    let s = InProcess::on(backend).await;
    let mut hosts = crate::support::fleet(&s, 4, 0xd1f0).await;
    let h4 = hosts.pop().unwrap();
    let policy = "version = 1\n[[groups]]\nname = \"web\"\nmatch = { name = [\"h1\", \"h2\", \"h3\"] }\n\
                  [[groups]]\nname = \"stage\"\nmatch = { name = [\"h4\"] }\n";
    let (st, text) = s
        .call_typed(
            "POST",
            "/api/v1/policy",
            Some(&s.admin),
            "application/toml",
            Some(policy),
        )
        .await;
    assert!(st.is_success(), "{st} {text}");
    for (h, p) in hosts.iter().zip([H1, H2, H3]) {
        checkin(&s, h, p, json!([])).await;
    }
    checkin(&s, &h4, H4, json!([])).await;

    let d = s
        .ok_json("GET", "/api/v1/drift?target=web", &s.admin, json!(null))
        .await;
    let g = &d["groups"][0];
    assert_eq!(g["group"], "web");
    assert_eq!(g["baseline_source"], "modal");
    let base: Vec<(&str, &str)> = g["baseline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["version"].as_str().unwrap()))
        .collect();
    assert_eq!(
        base,
        vec![
            ("curl", "7.88.1-10"),
            ("libfoo", "1.0"),
            ("openssl", "3.0.11-1"),
            ("pb-demo", "1.0")
        ]
    );
    assert_eq!(
        differences(&d),
        vec![
            t("h1", "vim", "extra", "9.0", "-"),
            t("h2", "curl", "older", "7.88.1-9", "7.88.1-10"),
            t("h2", "nginx", "extra", "1.22", "-"),
            t("h3", "libfoo", "missing", "-", "1.0"),
            t("h3", "openssl", "older", "3.0.9-1", "3.0.11-1"),
            t("h3", "pb-demo", "newer", "1.1", "1.0"),
        ]
    );
    assert_eq!(g["drifted_packages"], 6);

    // The asset page shows the asset's own differences from its group.
    crate::dashboard::add_user(&s, "noc", "auditor").await;
    let cookie = crate::dashboard::sign_in(&s, "noc").await;
    let (status, _, page) =
        crate::dashboard::browse(&s, "GET", "/ui/assets/h3", Some(&cookie), None, &[]).await;
    assert_eq!(status.as_u16(), 200, "{page}");
    assert!(
        page.contains("Drift from group web&#39;s baseline (the modal version over 3 hosts): 1 newer, 1 older, 0 differ, 1 missing, 0 extra"),
        "{page}"
    );
    let drift_part = &page[page.find("Drift from group").unwrap()..];
    for row in [
        "<td>libfoo</td><td>amd64</td><td>missing</td><td>1.0</td><td></td>",
        "<td>openssl</td><td>amd64</td><td>older</td><td>3.0.11-1</td><td>3.0.9-1</td>",
        "<td>pb-demo</td><td>amd64</td><td>newer</td><td>1.0</td><td>1.1</td>",
    ] {
        assert!(drift_part.contains(row), "{row} in {drift_part}");
    }
    assert!(!drift_part.contains("<td>curl</td>"), "{drift_part}");

    // One asset: its own line only.
    let one = s
        .ok_json("GET", "/api/v1/drift?target=h2", &s.admin, json!(null))
        .await;
    let lines: Vec<&str> = one["groups"][0]["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["asset"].as_str().unwrap())
        .collect();
    assert_eq!(lines, vec!["h2"]);
    // A golden host: h3's packages are the baseline; h3 itself has no drift.
    let golden = s
        .ok_json(
            "GET",
            "/api/v1/drift?target=web&golden=h3",
            &s.admin,
            json!(null),
        )
        .await;
    assert_eq!(golden["groups"][0]["baseline_source"], "golden");
    let h3 = golden["groups"][0]["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["asset"] == "h3")
        .unwrap()
        .clone();
    assert_eq!(h3["differences"], json!([]));
    // Pinned as the group's golden host (stored, audited), the same answer
    // without asking; unpinned, the modal baseline again.
    let (st, body) = s
        .call(
            "PUT",
            "/api/v1/drift/web/golden",
            Some(&s.admin),
            Some(r#"{"asset": "h3"}"#),
        )
        .await;
    assert_eq!(st.as_u16(), 204, "{body}");
    let pinned = s
        .ok_json("GET", "/api/v1/drift?target=web", &s.admin, json!(null))
        .await;
    assert_eq!(pinned["groups"][0]["baseline_source"], "golden");
    assert_eq!(pinned["groups"][0]["golden"], "h3");
    assert_eq!(
        pinned["groups"][0]["baseline"],
        golden["groups"][0]["baseline"]
    );
    let audit = s
        .ok_json("GET", "/api/v1/audit?limit=1000", &s.admin, json!(null))
        .await
        .to_string();
    assert!(audit.contains("drift.golden_set"), "{audit}");
    let (st, body) = s
        .call("DELETE", "/api/v1/drift/web/golden", Some(&s.admin), None)
        .await;
    assert_eq!(st.as_u16(), 204, "{body}");
    let (st, _) = s
        .call("DELETE", "/api/v1/drift/web/golden", Some(&s.admin), None)
        .await;
    assert_eq!(st.as_u16(), 404);
    let (st, body) = s
        .call(
            "PUT",
            "/api/v1/drift/web/golden",
            Some(&s.admin),
            Some(r#"{"asset": "nope"}"#),
        )
        .await;
    assert_eq!(st.as_u16(), 404, "{body}");
    assert!(body.contains("nope"), "{body}");
    let modal = s
        .ok_json("GET", "/api/v1/drift?target=web", &s.admin, json!(null))
        .await;
    assert_eq!(modal["groups"][0]["baseline_source"], "modal");
    // Unknown names are refused naming what.
    let (st, body) = s
        .call("GET", "/api/v1/drift?target=nope", Some(&s.admin), None)
        .await;
    assert_eq!(st.as_u16(), 404, "{body}");
    assert!(body.contains("nope"), "{body}");

    // The metric.
    let (_, metrics) = s.call("GET", "/metrics", None, None).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "patchbay_drifted_packages{group=\"web\"} 6"),
        "{metrics}"
    );

    // Converge: the preview and the created jobs pin exactly the older ones.
    let spec = json!({"converge": "web",
        "rings": [{"name": "all", "max_concurrent": "100%", "error_budget": "1"}]});
    let p = s
        .ok_json(
            "POST",
            "/api/v1/deployments/preview",
            &s.admin,
            spec.clone(),
        )
        .await;
    // (Hosts come in shard order: sorted here.)
    let mut planned: Vec<(String, String, String, String)> = p["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| {
            h["packages"].as_array().unwrap().iter().map(move |x| {
                (
                    h["asset"].as_str().unwrap().to_string(),
                    x["name"].as_str().unwrap().to_string(),
                    x["from"].as_str().unwrap().to_string(),
                    x["to"].as_str().unwrap().to_string(),
                )
            })
        })
        .collect();
    planned.sort();
    let q = |a: &str, n: &str, f: &str, to: &str| (a.into(), n.into(), f.into(), to.into());
    assert_eq!(
        planned,
        vec![
            q("h2", "curl", "7.88.1-9", "7.88.1-10"),
            q("h3", "openssl", "3.0.9-1", "3.0.11-1"),
        ]
    );
    let (st, body) = s
        .call(
            "POST",
            "/api/v1/deployments/preview",
            Some(&s.admin),
            Some(r#"{"converge": "web", "tier": "P1"}"#),
        )
        .await;
    assert_eq!(st.as_u16(), 400, "{body}");
    assert!(body.contains("converge"), "{body}");

    let dep = s
        .ok_json("POST", "/api/v1/deployments", &s.admin, spec)
        .await;
    let id = dep["deployment"]["id"].as_str().unwrap().to_string();
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/start"),
        &s.admin,
        json!({}),
    )
    .await;
    // Hosts check in (a check-in leases a job whose turn it is), the driver
    // steps, they check in again: every job handed over is collected.
    let mut handed = Vec::new();
    for _ in 0..2 {
        for (h, p) in hosts.iter().zip([H1, H2, H3]) {
            for j in checkin(&s, h, p, json!([])).await {
                handed.push((h.clone(), j));
            }
        }
        s.app.drive_rollouts().await.unwrap();
    }
    // A job in flight is handed over again at each check-in: once each.
    handed.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    handed.dedup_by(|a, b| a.1.job.key == b.1.job.key);
    let mut pins = Vec::new();
    let mut keys = Vec::new();
    for (h, j) in &handed {
        {
            let JobKind::Apply { packages } = &j.job.kind else {
                panic!("{h:?}: not an apply job", h = h.name)
            };
            for x in packages {
                pins.push((h.name.clone(), x.name.clone(), x.version.clone()));
            }
            keys.push((h.name.clone(), j.job.key.clone()));
        }
    }
    let r = |a: &str, n: &str, v: &str| (a.to_string(), n.to_string(), v.to_string());
    assert_eq!(
        pins,
        vec![r("h2", "curl", "7.88.1-10"), r("h3", "openssl", "3.0.11-1")]
    );

    // The agents apply them and report; the older packages are gone from the
    // drift, what converging never touches is still reported.
    let after2: Vec<(&str, &str)> = H2
        .iter()
        .map(|&(n, v)| {
            if n == "curl" {
                (n, "7.88.1-10")
            } else {
                (n, v)
            }
        })
        .collect();
    let after3: Vec<(&str, &str)> = H3
        .iter()
        .map(|&(n, v)| {
            if n == "openssl" {
                (n, "3.0.11-1")
            } else {
                (n, v)
            }
        })
        .collect();
    for ((name, key), (pkgs, from, to, pkg)) in keys.iter().zip([
        (&after2, "7.88.1-9", "7.88.1-10", "curl"),
        (&after3, "3.0.9-1", "3.0.11-1", "openssl"),
    ]) {
        let h = hosts.iter().find(|h| &h.name == name).unwrap();
        checkin(
            &s,
            h,
            pkgs,
            json!([{"key": key, "outcome": "succeeded",
                    "changed": [{"name": pkg, "before": from, "after": to}],
                    "finished_at": "2026-12-09T00:00:00Z"}]),
        )
        .await;
    }
    let d = s
        .ok_json("GET", "/api/v1/drift?target=web", &s.admin, json!(null))
        .await;
    assert_eq!(
        differences(&d),
        vec![
            t("h1", "vim", "extra", "9.0", "-"),
            t("h2", "nginx", "extra", "1.22", "-"),
            t("h3", "libfoo", "missing", "-", "1.0"),
            t("h3", "pb-demo", "newer", "1.1", "1.0"),
        ]
    );
    assert!(
        d["groups"][0]["assets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["older"] == 0),
        "{d}"
    );

    // A staging ring standing for `web`: compared at creation, stored, shown
    // on the deployment.
    let spec = json!({"packages": [{"name": "pb-demo", "version": "1.1"}],
        "rings": [
            {"name": "staging", "assets": ["h4"], "stands_for": "web", "drift_tolerance": 2},
            {"name": "prod", "assets": ["h1"]}]});
    let d = s
        .ok_json("POST", "/api/v1/deployments", &s.admin, spec)
        .await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();
    let shown = s
        .ok_json(
            "GET",
            &format!("/api/v1/deployments/{id}"),
            &s.admin,
            json!(null),
        )
        .await;
    let f = &shown["fidelity"][0];
    assert_eq!(f["ring"], "staging", "{shown}");
    assert_eq!(f["stands_for"], "web");
    assert_eq!(f["differing_packages"], 3);
    assert_eq!(f["beyond_tolerance"], true);
    assert_eq!(f["note"], "staging differs from production: 3 packages");
    assert_eq!(
        f["packages"],
        json!([
            "curl:amd64 (older)",
            "libfoo:amd64 (missing)",
            "nginx:amd64 (extra)"
        ])
    );
    assert_eq!(shown["fidelity"].as_array().unwrap().len(), 1);
    // An unknown production group is refused naming it.
    let (st, body) = s
        .call(
            "POST",
            "/api/v1/deployments",
            Some(&s.admin),
            Some(r#"{"packages": [{"name": "pb-demo", "version": "1.1"}], "rings": [{"name": "staging", "assets": ["h4"], "stands_for": "nope"}]}"#),
        )
        .await;
    assert_eq!(st.as_u16(), 400, "{body}");
    assert!(body.contains("nope"), "{body}");
}

#[tokio::test]
async fn drift_and_converge_on_sqlite() {
    drift_and_converge("sqlite").await;
}

#[tokio::test]
async fn drift_and_converge_on_postgres() {
    drift_and_converge("postgres").await;
}
