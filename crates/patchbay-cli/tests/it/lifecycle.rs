//! Enrolment tokens (uses, TTL), re-enrolment, stale and unmanaged assets,
//! agentless imports — with the server's clock under test control.

use crate::support::{Server, deb_root, minbase_before, ok};
use jiff::SignedDuration;
use patchbay_client::{Client, HttpError};
use patchbay_proto::agent::EnrollResponse;
use patchbay_proto::api::{AssetDetail, AssetSummary, EnrollTokenCreated, List};
use std::time::Duration;

fn enrol(
    s: &Server,
    token: &str,
    host: &str,
    machine_id: &str,
) -> Result<EnrollResponse, HttpError> {
    Client::new(&s.url, None, Duration::from_secs(10)).send(
        "POST",
        "/agent/v1/enroll",
        &serde_json::json!({"protocol": 1, "enroll_token": token, "hostname": host, "machine_id": machine_id}),
    )
}

fn asset(s: &Server, name: &str) -> AssetSummary {
    let l: List<AssetSummary> = s.admin().get("/api/v1/assets").unwrap();
    l.items
        .into_iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no asset {name}"))
}

fn enrolment_tokens_honour_uses_and_ttl(backend: &str) {
    let s = Server::start(backend);
    let two = s.enroll_token(2);
    enrol(&s, &two, "web-1", "aa01").unwrap();
    enrol(&s, &two, "web-2", "aa02").unwrap();
    let e = enrol(&s, &two, "web-3", "aa03").unwrap_err();
    assert!(
        matches!(&e, HttpError::Api { status: 401, message, .. } if message.contains("used up")),
        "{e}"
    );

    let t: EnrollTokenCreated = s
        .admin()
        .send(
            "POST",
            "/api/v1/enroll-tokens",
            &serde_json::json!({"uses": 5, "ttl_secs": 60}),
        )
        .unwrap();
    enrol(&s, &t.token, "db-1", "bb01").unwrap();
    s.clock.advance(SignedDuration::from_secs(61));
    assert!(enrol(&s, &t.token, "db-2", "bb02").is_err(), "expired");

    let e = s
        .admin()
        .send::<_, serde_json::Value>(
            "POST",
            "/api/v1/enroll-tokens",
            &serde_json::json!({"uses": 0}),
        )
        .unwrap_err();
    assert!(matches!(e, HttpError::Api { status: 400, .. }));
}

fn same_machine_re_enrols_into_its_asset_and_old_credential_dies(backend: &str) {
    let s = Server::start(backend);
    let tok = s.enroll_token(3);
    let first = enrol(&s, &tok, "app-1", "cc01").unwrap();
    // Enrolling again needs proof (security issue, hole 2): the agent's
    // current credential.
    let second: EnrollResponse = Client::new(&s.url, None, Duration::from_secs(10))
        .send(
            "POST",
            "/agent/v1/enroll",
            &serde_json::json!({"protocol": 1, "enroll_token": tok, "hostname": "app-1",
                                "machine_id": "cc01", "agent_secret": first.agent_secret}),
        )
        .unwrap();
    assert_eq!(first.asset_name, second.asset_name);
    let old = Client::new(&s.url, Some(first.agent_secret), Duration::from_secs(10));
    let body = serde_json::json!({"protocol": 1, "inventory_hash": "x", "inventory": {"kind": "unchanged"}});
    assert!(matches!(
        old.send::<_, serde_json::Value>("POST", "/agent/v1/checkin", &body),
        Err(HttpError::Api { status: 401, .. })
    ));
    // Another machine with the same host name gets a distinct name.
    let other = enrol(&s, &tok, "app-1", "cc02").unwrap();
    assert_eq!(other.asset_name, "app-1-2");
}

fn managed_assets_go_stale_and_imports_are_unmanaged(backend: &str) {
    let s = Server::start(backend);
    let root = deb_root(&minbase_before());
    let state = tempfile::tempdir().unwrap();
    ok(&s.agent_once(
        state.path(),
        Some(&s.enroll_token(1)),
        &[
            "--root",
            root.path().to_str().unwrap(),
            "--no-pending-updates",
        ],
    ));
    assert_eq!(asset(&s, "chroot-host").liveness, "managed");
    s.clock.advance(SignedDuration::from_hours(24));
    assert_eq!(
        asset(&s, "chroot-host").liveness,
        "managed",
        "exactly the stale period is not stale yet"
    );
    s.clock.advance(SignedDuration::from_secs(1));
    assert_eq!(asset(&s, "chroot-host").liveness, "stale");
    ok(&s.agent_once(
        state.path(),
        None,
        &[
            "--root",
            root.path().to_str().unwrap(),
            "--no-pending-updates",
        ],
    ));
    assert_eq!(
        asset(&s, "chroot-host").liveness,
        "managed",
        "a check-in revives it"
    );

    // Agentless assets from CSV: unmanaged, with their versions.
    let csv = "name,kind,owner,business_impact,exposure,environment,tags,os,packages\n\
               core-sw-01,network-device,neteng,critical,internal,prod,dc1;core,ios-xe:17.9,ios-xe=17.9.4a\n\
               fw-edge-01,appliance,secops,high,internet-facing,prod,edge,panos:11.1,pan-os=11.1.2-h3;globalprotect=6.2.1\n";
    let r: serde_json::Value = s
        .admin()
        .post_raw("/api/v1/assets/import", "text/csv", csv.as_bytes())
        .unwrap();
    assert_eq!(r["created"], 2);
    let sw = asset(&s, "core-sw-01");
    assert_eq!(
        (sw.liveness.as_str(), sw.kind.as_str(), sw.os.as_str()),
        ("unmanaged", "network-device", "ios-xe:17.9")
    );
    assert_eq!(sw.tags, vec!["core", "dc1"]);
    let fw: AssetDetail = s.admin().get("/api/v1/assets/fw-edge-01").unwrap();
    let versions: Vec<(String, String)> = fw
        .packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();
    assert_eq!(
        versions,
        vec![
            ("globalprotect".into(), "6.2.1".into()),
            ("pan-os".into(), "11.1.2-h3".into())
        ]
    );
    assert_eq!(fw.summary.exposure, "internet-facing");
    assert!(
        fw.summary.last_seen.is_none(),
        "an import is not a check-in"
    );
    // Re-importing updates in place.
    let json =
        serde_json::json!([{"name": "core-sw-01", "kind": "network-device", "owner": "noc"}]);
    let r: serde_json::Value = s
        .admin()
        .send("POST", "/api/v1/assets/import", &json)
        .unwrap();
    assert_eq!(
        (r["created"].as_u64(), r["updated"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(asset(&s, "core-sw-01").owner, "noc");
    // An agent on an imported host adopts the asset, once an operator approves.
    ok(&s.cli(&["assets", "approve-enrollment", "fw-edge-01"]));
    let e = enrol(&s, &s.enroll_token(1), "fw-edge-01", "dd01").unwrap();
    assert_eq!(e.asset_name, "fw-edge-01");
}

crate::both_backends!(
    enrolment_tokens_honour_uses_and_ttl,
    same_machine_re_enrols_into_its_asset_and_old_credential_dies,
    managed_assets_go_stale_and_imports_are_unmanaged,
);
