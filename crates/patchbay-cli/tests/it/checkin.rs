//! Acceptance: an unchanged re-check-in writes no package rows; a changed one
//! writes only the delta.

use crate::support::{Server, deb_root, metric, minbase_after, minbase_before, ok};
use patchbay_client::{Client, HttpError};
use patchbay_core::inventory::{Inventory, PackageDelta, dpkg};
use patchbay_proto::agent::{
    CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse, InventoryPayload,
};
use patchbay_proto::api::AssetDetail;
use std::time::Duration;

fn rows_written(s: &Server) -> f64 {
    metric(s, "patchbay_inventory_package_rows_written_total", "")
}

fn agent_binary_sends_nothing_when_unchanged_and_a_delta_when_changed(backend: &str) {
    let s = Server::start(backend);
    let root = deb_root(&minbase_before());
    let state = tempfile::tempdir().unwrap();
    let token = s.enroll_token(1);
    let args = [
        "--root",
        root.path().to_str().unwrap(),
        "--no-pending-updates",
    ];

    let out = ok(&s.agent_once(state.path(), Some(&token), &args));
    assert!(
        out.contains("sent full inventory (88 packages, 88 rows written)"),
        "{out}"
    );
    assert_eq!(rows_written(&s), 88.0);
    let before: AssetDetail = s.admin().get("/api/v1/assets/chroot-host").unwrap();

    // Unchanged: no package row is written (server metric counts DB-reported rows).
    let out = ok(&s.agent_once(state.path(), None, &args));
    assert!(
        out.contains("sent unchanged inventory (88 packages, 0 rows written)"),
        "{out}"
    );
    assert_eq!(
        rows_written(&s),
        88.0,
        "an unchanged check-in writes no package rows"
    );
    let after: AssetDetail = s.admin().get("/api/v1/assets/chroot-host").unwrap();
    assert_eq!(before.packages, after.packages);
    assert!(after.summary.last_seen >= before.summary.last_seen);

    // The security upgrade of 6 packages: a delta of 6 removals + 6 insertions.
    std::fs::write(root.path().join("var/lib/dpkg/status"), minbase_after()).unwrap();
    let out = ok(&s.agent_once(state.path(), None, &args));
    assert!(
        out.contains("sent delta inventory (88 packages, 12 rows written)"),
        "{out}"
    );
    assert_eq!(rows_written(&s), 100.0);
    let d: AssetDetail = s.admin().get("/api/v1/assets/chroot-host").unwrap();
    assert!(
        d.packages
            .iter()
            .any(|p| p.name == "apt" && p.version == "2.6.2")
    );
    assert!(
        !d.packages
            .iter()
            .any(|p| p.name == "apt" && p.version == "2.6.1")
    );
    let expected = dpkg::parse_status(&minbase_after()).unwrap();
    assert_eq!(d.packages.len(), expected.len());
    assert_eq!(
        metric(&s, "patchbay_agent_checkins_total", "kind=\"delta\""),
        1.0
    );
    assert_eq!(
        metric(&s, "patchbay_agent_checkins_total", "kind=\"unchanged\""),
        1.0
    );
}

fn inventory(status: &str) -> Inventory {
    let mut inv = Inventory {
        facts: patchbay_core::inventory::HostFacts {
            hostname: "proto-host".into(),
            machine_id: "0123abcd".into(),
            os: patchbay_core::inventory::OsRelease {
                id: "debian".into(),
                version_id: "12".into(),
                ..Default::default()
            },
            ..Default::default()
        },
        format: Some(patchbay_core::inventory::PackageFormat::Deb),
        packages: dpkg::parse_status(status).unwrap(),
        pending_updates: vec![],
    };
    inv.normalize();
    inv
}

fn protocol_delta_against_a_wrong_base_is_refused_and_full_resend_works(backend: &str) {
    let s = Server::start(backend);
    let c = Client::new(&s.url, None, Duration::from_secs(30));
    let e: EnrollResponse = c
        .send(
            "POST",
            "/agent/v1/enroll",
            &EnrollRequest {
                protocol: 1,
                enroll_token: s.enroll_token(1),
                hostname: "proto-host".into(),
                machine_id: "0123abcd".into(),
                agent_secret: None,
                csr: None,
            },
        )
        .unwrap();
    let agent = Client::new(&s.url, Some(e.agent_secret), Duration::from_secs(30));
    let v1 = inventory(&minbase_before());
    let v2 = inventory(&minbase_after());
    let h1 = v1.content_hash();
    let h2 = v2.content_hash();

    // Unchanged before anything is stored: the server asks for the full inventory.
    let err = agent
        .send::<_, CheckinResponse>(
            "POST",
            "/agent/v1/checkin",
            &CheckinRequest {
                results: vec![],
                wait_secs: None,
                key_refusals: Vec::new(),
                protocol: 1,
                inventory_hash: h1.clone(),
                inventory: InventoryPayload::Unchanged,
            },
        )
        .unwrap_err();
    assert_eq!(err.code(), Some("inventory_base_mismatch"), "{err}");

    let r: CheckinResponse = agent
        .send(
            "POST",
            "/agent/v1/checkin",
            &CheckinRequest {
                results: vec![],
                wait_secs: None,
                key_refusals: Vec::new(),
                protocol: 1,
                inventory_hash: h1.clone(),
                inventory: InventoryPayload::Full {
                    inventory: v1.clone(),
                },
            },
        )
        .unwrap();
    assert_eq!(
        (r.stored_hash.as_str(), r.package_rows_written),
        (h1.as_str(), 88)
    );

    // A full re-send of an identical inventory also writes nothing.
    let r: CheckinResponse = agent
        .send(
            "POST",
            "/agent/v1/checkin",
            &CheckinRequest {
                results: vec![],
                wait_secs: None,
                key_refusals: Vec::new(),
                protocol: 1,
                inventory_hash: h1.clone(),
                inventory: InventoryPayload::Full {
                    inventory: v1.clone(),
                },
            },
        )
        .unwrap();
    assert_eq!(r.package_rows_written, 0);

    let d = PackageDelta::between(&v1.packages, &v2.packages);
    let delta = |base: &str| InventoryPayload::Delta {
        base_hash: base.to_string(),
        facts: v2.facts.clone(),
        format: v2.format,
        added: d.added.clone(),
        removed: d.removed.clone(),
        pending_updates: vec![],
    };
    let err = agent
        .send::<_, CheckinResponse>(
            "POST",
            "/agent/v1/checkin",
            &CheckinRequest {
                results: vec![],
                wait_secs: None,
                key_refusals: Vec::new(),
                protocol: 1,
                inventory_hash: h2.clone(),
                inventory: delta("not-the-base"),
            },
        )
        .unwrap_err();
    assert!(matches!(&err, HttpError::Api { status: 409, .. }), "{err}");
    // A delta that does not produce the announced hash is refused, nothing stored.
    let err = agent
        .send::<_, CheckinResponse>(
            "POST",
            "/agent/v1/checkin",
            &CheckinRequest {
                results: vec![],
                wait_secs: None,
                key_refusals: Vec::new(),
                protocol: 1,
                inventory_hash: "f00".into(),
                inventory: delta(&h1),
            },
        )
        .unwrap_err();
    assert!(
        matches!(&err, HttpError::Api { status: 400, message, .. } if message.contains("hashes to")),
        "{err}"
    );
    let r: CheckinResponse = agent
        .send(
            "POST",
            "/agent/v1/checkin",
            &CheckinRequest {
                results: vec![],
                wait_secs: None,
                key_refusals: Vec::new(),
                protocol: 1,
                inventory_hash: h2.clone(),
                inventory: delta(&h1),
            },
        )
        .unwrap();
    assert_eq!(
        (r.stored_hash.as_str(), r.package_rows_written),
        (h2.as_str(), 12)
    );
    let detail: AssetDetail = s.admin().get("/api/v1/assets/proto-host").unwrap();
    assert_eq!(detail.inventory_hash.as_deref(), Some(h2.as_str()));
    assert_eq!(detail.packages.len(), v2.packages.len());
}

crate::both_backends!(
    agent_binary_sends_nothing_when_unchanged_and_a_delta_when_changed,
    protocol_delta_against_a_wrong_base_is_refused_and_full_resend_works,
);
