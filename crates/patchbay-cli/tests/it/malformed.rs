//! Acceptance: malformed input gets a clear 4xx (or a clear agent error) naming
//! the problem and leaves the store unchanged.

use crate::support::{Server, deb_root, minbase_before};
use patchbay_client::{Client, HttpError};
use patchbay_proto::agent::EnrollResponse;
use patchbay_proto::api::AssetDetail;
use std::time::Duration;

/// Every table of the server's database, every row: what "unchanged" means.
fn snapshot(s: &Server) -> std::collections::BTreeMap<String, String> {
    crate::support::db_dump(&s.db_url)
}

/// POSTs `len` bytes of spaces with a raw socket; returns the status and the
/// whole answer (head and body) as text.
fn oversized_post(base: &str, path: &str, token: &str, len: usize) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b' '; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            if w.write_all(&chunk[..n]).is_err() {
                break; // the server answered and closed: expected
            }
            left -= n;
        }
    });
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let _ = writer.join();
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn raw_post(url: &str, token: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let mut resp = ureq::post(url)
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .config()
        .http_status_as_error(false)
        .build()
        .send(body)
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

fn malformed_input_is_refused_and_changes_nothing(backend: &str) {
    let s = Server::start(backend);
    // A host with a stored inventory.
    let root = deb_root(&minbase_before());
    let state = tempfile::tempdir().unwrap();
    let root_arg = root.path().to_str().unwrap().to_string();
    crate::support::ok(&s.agent_once(
        state.path(),
        Some(&s.enroll_token(1)),
        &["--root", &root_arg, "--no-pending-updates"],
    ));
    let identity: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.path().join("identity.json")).unwrap())
            .unwrap();
    let secret = identity["secret"].as_str().unwrap().to_string();
    let before = snapshot(&s);
    let checkin = format!("{}/agent/v1/checkin", s.url);

    // Garbage JSON.
    let (st, body) = raw_post(&checkin, &secret, b"{\"protocol\": 1, \"inventory_hash\": ");
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request");
    // The message names where the body broke: it ends after 34 characters.
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("invalid JSON body") && msg.contains("line 1 column 34"),
        "{body}"
    );
    // Line 3 is `  "inventory_hash": "x"x`: its 24th character is wrong.
    let (st, body) = raw_post(
        &checkin,
        &secret,
        b"{\n  \"protocol\": 1,\n  \"inventory_hash\": \"x\"x\n}",
    );
    assert_eq!(st, 400, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("expected `,` or `}` at line 3 column 24"),
        "{body}"
    );
    let (st, body) = raw_post(&checkin, &secret, b"\xff\xfe garbage");
    assert_eq!(st, 400, "{body}");

    // Oversized body (over 32 MiB). The server may answer and close before
    // the client has sent it all, so write from another thread, ignore write
    // errors, and read the answer off the socket.
    let (status, text) = oversized_post(&s.url, "/agent/v1/checkin", &secret, 33 * 1024 * 1024);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("payload_too_large"), "{text}");

    // An unknown OS.
    let mut inv = patchbay_core::inventory::Inventory {
        facts: patchbay_core::inventory::HostFacts {
            os: patchbay_core::inventory::OsRelease {
                id: "plan9".into(),
                version_id: "4".into(),
                ..Default::default()
            },
            ..Default::default()
        },
        format: None,
        packages: vec![],
        pending_updates: vec![],
    };
    inv.normalize();
    let req = serde_json::json!({"protocol": 1, "inventory_hash": inv.content_hash(), "inventory": {"kind": "full", "inventory": inv}});
    let (st, body) = raw_post(&checkin, &secret, req.to_string().as_bytes());
    assert_eq!(st, 400, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("unknown OS") && msg.contains("plan9"), "{msg}");

    // Unmanaged software (issue 20, item 5) is held to its rules too: a
    // relative path, or a name with a newline, is refused naming the item.
    for (bad, want) in [
        (
            ("urllib3", "1.26.4", "usr/local/lib/x.dist-info"),
            "path is not absolute",
        ),
        (("evil\nname", "1", "/usr/local/bin/x"), "unmanaged item #0"),
    ] {
        let mut inv = patchbay_core::inventory::Inventory {
            facts: patchbay_core::inventory::HostFacts {
                os: patchbay_core::inventory::OsRelease {
                    id: "debian".into(),
                    version_id: "12".into(),
                    ..Default::default()
                },
                unmanaged: vec![patchbay_core::inventory::unmanaged::Unmanaged {
                    ecosystem: patchbay_core::inventory::unmanaged::Ecosystem::Pypi,
                    name: bad.0.into(),
                    version: bad.1.into(),
                    path: bad.2.into(),
                }],
                ..Default::default()
            },
            format: Some(patchbay_core::inventory::PackageFormat::Deb),
            packages: vec![],
            pending_updates: vec![],
        };
        inv.normalize();
        let req = serde_json::json!({"protocol": 1, "inventory_hash": inv.content_hash(), "inventory": {"kind": "full", "inventory": inv}});
        let (st, body) = raw_post(&checkin, &secret, req.to_string().as_bytes());
        assert_eq!(st, 400, "{body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(want) && msg.contains("unmanaged"), "{msg}");
    }

    // Wrong field types, unknown protocol, a duplicate package.
    let (st, body) = raw_post(&checkin, &secret, br#"{"protocol": "one"}"#);
    assert_eq!(st, 400, "{body}");
    let (st, body) = raw_post(
        &checkin,
        &secret,
        br#"{"protocol": 9, "inventory_hash": "x", "inventory": {"kind": "unchanged"}}"#,
    );
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("unsupported_protocol")),
        "{body}"
    );

    // API bodies too.
    let c = s.admin();
    let err = c
        .send::<_, serde_json::Value>(
            "PATCH",
            "/api/v1/assets/chroot-host",
            &serde_json::json!({"exposure": "dmz"}),
        )
        .unwrap_err();
    assert!(
        matches!(&err, HttpError::Api { status: 400, message, .. } if message.contains("exposure")),
        "{err}"
    );
    let err = c
        .send::<_, serde_json::Value>(
            "PATCH",
            "/api/v1/assets/chroot-host",
            &serde_json::json!({"colour": "red"}),
        )
        .unwrap_err();
    assert!(
        matches!(&err, HttpError::Api { status: 400, message, .. } if message.contains("colour")),
        "{err}"
    );
    let err = c
        .post_raw::<serde_json::Value>(
            "/api/v1/assets/import",
            "text/csv",
            b"name,kind\nok-1,server\nbad name,server\n",
        )
        .unwrap_err();
    assert!(
        matches!(&err, HttpError::Api { status: 400, message, .. } if message.contains("bad name")),
        "{err}"
    );
    let err = c
        .get::<serde_json::Value>("/api/v1/assets/nope")
        .unwrap_err();
    assert!(matches!(&err, HttpError::Api { status: 404, .. }), "{err}");

    let after = snapshot(&s);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (table, rows) in &before {
        assert_eq!(
            &after[table], rows,
            "table {table} is unchanged after refused input"
        );
    }
    assert!(
        before["asset_packages"].lines().count() >= 88,
        "the dump sees the stored rows"
    );
    let d: AssetDetail = s.admin().get("/api/v1/assets/chroot-host").unwrap();
    assert_eq!(d.packages.len(), 88);
}

fn agent_reports_a_truncated_dpkg_status_and_sends_nothing(backend: &str) {
    let s = Server::start(backend);
    let status = minbase_before();
    // Cut right after a Package: line, in the middle of a stanza.
    let cut = status.find("Package: libc6\n").unwrap() + "Package: libc6\n".len();
    let root = deb_root(&status[..cut]);
    let state = tempfile::tempdir().unwrap();
    let token = s.enroll_token(1);
    let out = s.agent_once(
        state.path(),
        Some(&token),
        &[
            "--root",
            root.path().to_str().unwrap(),
            "--no-pending-updates",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("var/lib/dpkg/status") && err.contains("line"),
        "{err}"
    );
    let assets: serde_json::Value = s.admin().get("/api/v1/assets").unwrap();
    assert_eq!(
        assets["items"].as_array().unwrap().len(),
        0,
        "nothing was enrolled or stored"
    );
    // The enrolment token was not consumed either.
    let c = Client::new(&s.url, None, Duration::from_secs(10));
    let e: EnrollResponse = c
        .send(
            "POST",
            "/agent/v1/enroll",
            &serde_json::json!({"protocol": 1, "enroll_token": token, "hostname": "h", "machine_id": "ab12"}),
        )
        .unwrap();
    assert_eq!(e.asset_name, "h");
}

crate::both_backends!(
    malformed_input_is_refused_and_changes_nothing,
    agent_reports_a_truncated_dpkg_status_and_sends_nothing
);
