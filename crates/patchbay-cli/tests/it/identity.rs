//! Security issue, hole 2: an enrolment token is not a licence to take over a
//! managed asset. Machine ids are readable by every auditor, so a second
//! enrolment with a victim's machine id needs proof (the victim agent's
//! credential or an operator's one-shot approval), a check-in cannot change
//! the identity facts of its asset, and a host name alone does not adopt an
//! imported asset. Every refusal is audited and changes nothing.

use crate::support::{Server, deb_root, fixtures, minbase_before, ok};
use patchbay_client::{Client, HttpError};
use patchbay_core::inventory::{HostFacts, Inventory, OsRelease, PackageFormat, dpkg};
use patchbay_proto::agent::EnrollResponse;
use patchbay_proto::api::{AssetDetail, AssetSummary, AuditEventOut, List};
use std::time::Duration;

fn enrol(
    s: &Server,
    token: &str,
    host: &str,
    machine_id: &str,
    secret: Option<&str>,
) -> Result<EnrollResponse, HttpError> {
    let mut body = serde_json::json!({"protocol": 1, "enroll_token": token, "hostname": host,
                                      "machine_id": machine_id});
    if let Some(x) = secret {
        body["agent_secret"] = x.into();
    }
    Client::new(&s.url, None, Duration::from_secs(30)).send("POST", "/agent/v1/enroll", &body)
}

fn code(e: &HttpError) -> (u16, Option<&str>) {
    match e {
        HttpError::Api { status, .. } => (*status, e.code()),
        _ => panic!("not an API error: {e}"),
    }
}

fn audit(s: &Server) -> Vec<AuditEventOut> {
    let l: List<AuditEventOut> = s.admin().get("/api/v1/audit?limit=10000").unwrap();
    l.items
}

fn assets(s: &Server) -> Vec<AssetSummary> {
    let l: List<AssetSummary> = s.admin().get("/api/v1/assets").unwrap();
    l.items
}

fn open_findings(s: &Server, asset: &str) -> Vec<serde_json::Value> {
    let l: List<serde_json::Value> = s
        .admin()
        .get(&format!("/api/v1/findings?asset={asset}"))
        .unwrap();
    l.items
}

fn agent_checks_in(s: &Server, secret: &str) -> Result<serde_json::Value, HttpError> {
    let body = serde_json::json!({"protocol": 1, "inventory_hash": "x", "inventory": {"kind": "unchanged"}});
    s.client(Some(secret))
        .send("POST", "/agent/v1/checkin", &body)
}

fn inventory(host: &str, machine_id: &str) -> Inventory {
    let mut inv = Inventory {
        facts: HostFacts {
            hostname: host.into(),
            machine_id: machine_id.into(),
            os: OsRelease {
                id: "debian".into(),
                version_id: "12".into(),
                ..Default::default()
            },
            ..Default::default()
        },
        format: Some(PackageFormat::Deb),
        packages: dpkg::parse_status(&minbase_before()).unwrap(),
        pending_updates: vec![],
    };
    inv.normalize();
    inv
}

use crate::support::full_checkin as full;

fn takeover_by_enrolling_with_the_victims_machine_id_is_refused(backend: &str) {
    let s = Server::start(backend);
    // The victim: a real agent on a Debian root with open findings.
    let root = deb_root(&minbase_before());
    let state = tempfile::tempdir().unwrap();
    let root_arg = root.path().to_str().unwrap();
    let agent_args = ["--root", root_arg, "--no-pending-updates"];
    ok(&s.agent_once(state.path(), Some(&s.enroll_token(1)), &agent_args));
    ok(&std::process::Command::new(crate::support::PATCHBAY)
        .args(["feeds", "import", "--db", &s.db_url])
        .arg("--data-dir")
        .arg(&s.data_dir)
        .arg(fixtures().join("feeds/osv/Debian-12-derived.osv.zip"))
        .output()
        .unwrap());
    let findings_before = open_findings(&s, "chroot-host");
    assert!(!findings_before.is_empty(), "the victim has open findings");
    let victim_before: AssetDetail = s.admin().get("/api/v1/assets/chroot-host").unwrap();

    // The attacker holds a valid enrolment token and, like any auditor, can
    // read the victim's machine id.
    let auditor: patchbay_proto::api::TokenCreated = s
        .admin()
        .send(
            "POST",
            "/api/v1/tokens",
            &serde_json::json!({"name": "aud", "role": "auditor"}),
        )
        .unwrap();
    let seen: AssetDetail = s
        .client(Some(&auditor.token))
        .get("/api/v1/assets/chroot-host")
        .unwrap();
    let token = s.enroll_token(1);
    let e = enrol(&s, &token, "attacker", &seen.machine_id, None).unwrap_err();
    assert_eq!(code(&e), (409, Some("enrollment_needs_approval")), "{e}");
    assert!(e.to_string().contains("approve-enrollment"), "{e}");
    // A made-up or foreign credential proves nothing either.
    let e = enrol(&s, &token, "attacker", &seen.machine_id, Some("pba_forged")).unwrap_err();
    assert_eq!(code(&e), (409, Some("enrollment_needs_approval")), "{e}");

    // Nothing changed: the victim's agent still checks in, its asset keeps
    // its identity and every finding, and no asset was added.
    let out = ok(&s.agent_once(state.path(), None, &agent_args));
    assert!(out.contains("sent unchanged inventory"), "{out}");
    let victim_after: AssetDetail = s.admin().get("/api/v1/assets/chroot-host").unwrap();
    assert_eq!(
        (
            &victim_after.hostname,
            &victim_after.machine_id,
            &victim_after.inventory_hash,
            victim_after.packages.len()
        ),
        (
            &victim_before.hostname,
            &victim_before.machine_id,
            &victim_before.inventory_hash,
            victim_before.packages.len()
        )
    );
    assert_eq!(open_findings(&s, "chroot-host"), findings_before);
    assert_eq!(assets(&s).len(), 1);
    // The refused enrolment did not use up the token: it still enrols a host
    // of its own.
    let own = enrol(&s, &token, "new-host", "ee01", None).unwrap();
    assert_eq!(own.asset_name, "new-host");

    // Both refusals are in the audit trail, against the victim's asset.
    let denied: Vec<_> = audit(&s)
        .into_iter()
        .filter(|a| a.action == "agent.enroll" && a.outcome == "denied")
        .collect();
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert!(denied.iter().all(|a| a.target == "asset:chroot-host"));
    assert_eq!(denied[1].detail["credential_presented"], true);
}

fn re_enrolment_with_the_old_credential_works_and_revokes_it(backend: &str) {
    let s = Server::start(backend);
    let root = deb_root(&minbase_before());
    let state = tempfile::tempdir().unwrap();
    let root_arg = root.path().to_str().unwrap();
    let agent_args = ["--root", root_arg, "--no-pending-updates"];
    ok(&s.agent_once(state.path(), Some(&s.enroll_token(1)), &agent_args));
    let identity = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p.join("identity.json")).unwrap()).unwrap()
    };
    let old = identity(state.path());

    // The agent enrols again and presents its credential as the proof.
    let mut args = agent_args.to_vec();
    args.push("--re-enroll");
    ok(&s.agent_once(state.path(), Some(&s.enroll_token(1)), &args));
    let new = identity(state.path());
    assert_eq!(new["asset_name"], "chroot-host");
    assert_ne!(new["secret"], old["secret"]);
    assert_ne!(new["agent_id"], old["agent_id"]);
    let e = agent_checks_in(&s, old["secret"].as_str().unwrap()).unwrap_err();
    assert_eq!(code(&e).0, 401, "the old credential is revoked");
    let out = ok(&s.agent_once(state.path(), None, &agent_args));
    assert!(out.contains("sent unchanged inventory"), "{out}");
    assert_eq!(assets(&s).len(), 1);
    let ok_enrol = audit(&s)
        .into_iter()
        .rfind(|a| a.action == "agent.enroll" && a.outcome == "ok")
        .unwrap();
    assert_eq!(ok_enrol.detail["proof"]["credential_of"], old["agent_id"]);
    assert_eq!(ok_enrol.detail["revoked_agents"], 1);

    // Another asset's credential is no proof for this one.
    let other = enrol(&s, &s.enroll_token(1), "other", "ab02", None).unwrap();
    let machine = s
        .admin()
        .get::<AssetDetail>("/api/v1/assets/chroot-host")
        .unwrap()
        .machine_id;
    let e = enrol(
        &s,
        &s.enroll_token(1),
        "x",
        &machine,
        Some(&other.agent_secret),
    )
    .unwrap_err();
    assert_eq!(code(&e), (409, Some("enrollment_needs_approval")));
}

fn operator_approved_re_enrolment_works_once_and_expires(backend: &str) {
    let s = Server::start(backend);
    let first = enrol(&s, &s.enroll_token(1), "app-1", "cc01", None).unwrap();

    // Auditors cannot approve.
    let auditor: patchbay_proto::api::TokenCreated = s
        .admin()
        .send(
            "POST",
            "/api/v1/tokens",
            &serde_json::json!({"name": "aud", "role": "auditor"}),
        )
        .unwrap();
    let e = s
        .client(Some(&auditor.token))
        .send::<_, serde_json::Value>(
            "POST",
            "/api/v1/assets/app-1/enrollment-approvals",
            &serde_json::json!({}),
        )
        .unwrap_err();
    assert_eq!(code(&e).0, 403);
    let e = s
        .admin()
        .send::<_, serde_json::Value>(
            "POST",
            "/api/v1/assets/app-1/enrollment-approvals",
            &serde_json::json!({"ttl_secs": 200000}),
        )
        .unwrap_err();
    assert_eq!(code(&e).0, 400);

    // An operator approves: the host, reinstalled without its state directory,
    // enrols again into its asset and the old credential dies.
    let out = ok(&s.cli(&[
        "assets",
        "approve-enrollment",
        "app-1",
        "--ttl",
        "10m",
        "--note",
        "reinstalled",
    ]));
    assert!(
        out.contains("re-enrolment") && out.contains("app-1"),
        "{out}"
    );
    let second = enrol(&s, &s.enroll_token(1), "app-1", "cc01", None).unwrap();
    assert_eq!(second.asset_name, "app-1");
    assert_eq!(
        code(&agent_checks_in(&s, &first.agent_secret).unwrap_err()).0,
        401
    );
    // One use only.
    let e = enrol(&s, &s.enroll_token(1), "app-1", "cc01", None).unwrap_err();
    assert_eq!(code(&e), (409, Some("enrollment_needs_approval")));
    let inv = inventory("app-1", "cc01");
    full(&s.client(Some(&second.agent_secret)), &inv).unwrap();

    // Time-limited: an approval past its lifetime is no approval.
    ok(&s.cli(&["assets", "approve-enrollment", "app-1", "--ttl", "60s"]));
    s.clock.advance(jiff::SignedDuration::from_secs(61));
    let e = enrol(&s, &s.enroll_token(1), "app-1", "cc01", None).unwrap_err();
    assert_eq!(code(&e), (409, Some("enrollment_needs_approval")));
    full(&s.client(Some(&second.agent_secret)), &inv).unwrap();

    // A reinstalled host has a new machine id: the approval lets the host of
    // that name take the asset over too.
    ok(&s.cli(&["assets", "approve-enrollment", "app-1"]));
    let third = enrol(&s, &s.enroll_token(1), "app-1", "cc99", None).unwrap();
    assert_eq!(third.asset_name, "app-1");
    let d: AssetDetail = s.admin().get("/api/v1/assets/app-1").unwrap();
    assert_eq!(d.machine_id, "cc99");
    assert_eq!(assets(&s).len(), 1);

    let trail = audit(&s);
    let approvals: Vec<_> = trail
        .iter()
        .filter(|a| a.action == "asset.approve_enrollment")
        .collect();
    assert_eq!(approvals.len(), 3);
    assert_eq!(approvals[0].target, "asset:app-1");
    assert_eq!(approvals[0].detail["note"], "reinstalled");
    let used: Vec<_> = trail
        .iter()
        .filter(|a| a.action == "agent.enroll" && a.outcome == "ok" && !a.detail["proof"].is_null())
        .collect();
    assert_eq!(used.len(), 2);
    assert_eq!(
        used[0].detail["proof"]["approval"],
        approvals[0].detail["approval"]
    );
}

fn a_check_in_cannot_change_its_machine_id_or_host_name(backend: &str) {
    let s = Server::start(backend);
    let e = enrol(&s, &s.enroll_token(1), "proto-host", "0123abcd", None).unwrap();
    let agent = s.client(Some(&e.agent_secret));
    let inv = inventory("proto-host", "0123abcd");
    full(&agent, &inv).unwrap();

    // Another host's machine id: refused, audited, nothing stored.
    let forged = inventory("proto-host", "feedbeef");
    let err = full(&agent, &forged).unwrap_err();
    assert_eq!(code(&err), (409, Some("identity_mismatch")), "{err}");
    let d: AssetDetail = s.admin().get("/api/v1/assets/proto-host").unwrap();
    assert_eq!(d.machine_id, "0123abcd");
    assert_eq!(
        d.inventory_hash.as_deref(),
        Some(inv.content_hash().as_str())
    );
    let denied = audit(&s)
        .into_iter()
        .find(|a| a.action == "inventory.update" && a.outcome == "denied")
        .expect("the refused check-in is audited");
    assert_eq!(denied.target, "asset:proto-host");
    assert_eq!(denied.detail["reported_machine_id"], "feedbeef");

    // Another host name: the check-in is stored, the host name is not; the
    // mismatch is in the audit event.
    let mut renamed = inventory("victim-host", "0123abcd");
    renamed.packages.pop();
    full(&agent, &renamed).unwrap();
    let d: AssetDetail = s.admin().get("/api/v1/assets/proto-host").unwrap();
    assert_eq!(d.hostname, "proto-host");
    assert_eq!(d.packages.len(), renamed.packages.len());
    let upd = audit(&s)
        .into_iter()
        .rfind(|a| a.action == "inventory.update" && a.outcome == "ok")
        .unwrap();
    assert_eq!(upd.detail["hostname_ignored"]["reported"], "victim-host");
    assert_eq!(upd.detail["hostname_ignored"]["enrolled"], "proto-host");
    // And so the asset cannot be made to look like another for a later
    // enrolment: the real machine id still names this asset only.
    let e = enrol(&s, &s.enroll_token(1), "x", "feedbeef", None).unwrap();
    assert_eq!(e.asset_name, "x");
}

fn a_host_name_does_not_adopt_an_imported_asset_without_approval(backend: &str) {
    let s = Server::start(backend);
    let csv = "name,kind,os,packages\nfw-edge-01,appliance,panos:11.1,pan-os=11.1.2-h3\n";
    let _: serde_json::Value = s
        .admin()
        .post_raw("/api/v1/assets/import", "text/csv", csv.as_bytes())
        .unwrap();
    let token = s.enroll_token(1);
    let e = enrol(&s, &token, "fw-edge-01", "dd01", None).unwrap_err();
    assert_eq!(code(&e), (409, Some("enrollment_needs_approval")), "{e}");
    assert!(e.to_string().contains("imported"), "{e}");
    let d: AssetDetail = s.admin().get("/api/v1/assets/fw-edge-01").unwrap();
    assert_eq!(d.summary.liveness, "unmanaged");
    assert_eq!(d.packages.len(), 1);
    assert_eq!(d.machine_id, "");
    assert_eq!(assets(&s).len(), 1);
    assert!(audit(&s).iter().any(|a| a.action == "agent.enroll"
        && a.outcome == "denied"
        && a.target == "asset:fw-edge-01"));

    let out = ok(&s.cli(&["assets", "approve-enrollment", "fw-edge-01"]));
    assert!(out.contains("adoption"), "{out}");
    let e = enrol(&s, &token, "fw-edge-01", "dd01", None).unwrap();
    assert_eq!(e.asset_name, "fw-edge-01");
    let d: AssetDetail = s.admin().get("/api/v1/assets/fw-edge-01").unwrap();
    // Managed now (stale until its first check-in), with the host's machine id.
    assert_eq!(
        (d.summary.liveness.as_str(), d.machine_id.as_str()),
        ("stale", "dd01")
    );
    let adopted = audit(&s)
        .into_iter()
        .rfind(|a| a.action == "agent.enroll" && a.outcome == "ok")
        .unwrap();
    assert_eq!(adopted.detail["adopted"], true);
    assert!(adopted.detail["proof"]["approval"].is_number());
}

crate::both_backends!(
    takeover_by_enrolling_with_the_victims_machine_id_is_refused,
    re_enrolment_with_the_old_credential_works_and_revokes_it,
    operator_approved_re_enrolment_works_once_and_expires,
    a_check_in_cannot_change_its_machine_id_or_host_name,
    a_host_name_does_not_adopt_an_imported_asset_without_approval,
);
