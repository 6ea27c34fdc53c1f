//! Acceptance: `patchbay-agent --once` makes this machine appear with exactly the
//! packages `dpkg-query -W` lists.

use crate::support::{Server, dpkg_query, ok};
use patchbay_proto::api::{AssetDetail, AssetSummary, List};

fn agent_once_reports_exactly_what_dpkg_query_lists(backend: &str) {
    let s = Server::start(backend);
    let state = tempfile::tempdir().unwrap();
    let token = s.enroll_token(1);
    // With pending updates: the real apt simulation runs, read-only.
    let out = ok(&s.agent_once(state.path(), Some(&token), &[]));
    assert!(out.contains("sent full inventory"), "{out}");

    let list: List<AssetSummary> = s.admin().get("/api/v1/assets").unwrap();
    assert_eq!(list.items.len(), 1);
    let name = list.items[0].name.clone();
    assert_eq!(list.items[0].liveness, "managed");
    assert_eq!(list.items[0].os, "debian:12");

    // Through the CLI, as a user would.
    let json = ok(&s.cli(&["assets", "show", &name, "--format", "json"]));
    let detail: AssetDetail = serde_json::from_str(&json).unwrap();
    let mut got: Vec<(String, String, String)> = detail
        .packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone(), p.arch.clone()))
        .collect();
    got.sort();
    let want = dpkg_query();
    assert_eq!(got.len(), want.len(), "same count as dpkg-query -W");
    assert_eq!(got, want, "same names, versions and architectures");
    // Source packages come from the dpkg Source: field.
    let raw: serde_json::Value = serde_json::from_str(&json).unwrap();
    let first = &raw["packages"][0];
    for key in ["name", "version", "arch", "source"] {
        assert!(
            first.get(key).is_some(),
            "packages[].{key} in assets show --format json"
        );
    }
    assert!(
        detail
            .packages
            .iter()
            .any(|p| p.source.as_deref() == Some("util-linux")),
        "Source: field parsed"
    );
    assert_eq!(detail.summary.package_count as usize, want.len());
    assert!(!detail.hostname.is_empty());
    assert!(!detail.kernel.is_empty());
    assert_eq!(detail.os_codename, "bookworm");

    // The state directory keeps the identity: a second run needs no token and
    // sends nothing new.
    let out = ok(&s.agent_once(state.path(), None, &[]));
    assert!(out.contains("sent unchanged inventory"), "{out}");
    assert!(out.contains("0 rows written"), "{out}");
    let mode = std::fs::metadata(state.path().join("identity.json")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    // The server's signing key is pinned in the identity at enrolment.
    let id: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.path().join("identity.json")).unwrap())
            .unwrap();
    let key = patchbay_server::setup::load_signing_key(&s.data_dir, false)
        .unwrap()
        .unwrap()
        .public_hex();
    assert_eq!(id["server_public_key"], key.as_str());
}

fn agent_inventories_another_root(backend: &str) {
    let s = Server::start(backend);
    let root = crate::support::deb_root(&crate::support::minbase_before());
    let state = tempfile::tempdir().unwrap();
    let token = s.enroll_token(1);
    let root_arg = root.path().to_str().unwrap();
    ok(&s.agent_once(
        state.path(),
        Some(&token),
        &["--root", root_arg, "--no-pending-updates"],
    ));
    let d: AssetDetail = s.admin().get("/api/v1/assets/chroot-host").unwrap();
    assert_eq!(d.packages.len(), 88);
    assert!(
        d.packages
            .iter()
            .any(|p| p.name == "apt" && p.version == "2.6.1")
    );
    assert_eq!(d.kernel, "", "a chroot has no kernel of its own");
}

crate::both_backends!(
    agent_once_reports_exactly_what_dpkg_query_lists,
    agent_inventories_another_root
);
