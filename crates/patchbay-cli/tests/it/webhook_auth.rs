//! Issue 15: a subscription's auth headers (the credential Jira, ServiceNow
//! or any receiver behind authentication needs) reach the receiver and are
//! never printed.
//!
//! A real `patchbay serve` delivers to `webhook_receiver.py` configured to
//! refuse (401) any request whose `Authorization` is not the expected
//! `Basic …`. The subscription is added with a wrong credential read from a
//! file (`--header-file`): the delivery is refused and retried. The
//! credential is rotated with `patchbay webhooks auth --basic-auth-from-env`
//! (the value from the environment, never an argument): the retry is
//! accepted, once. Then neither credential appears in `webhooks list`,
//! `show`, `deliveries` (table or JSON), the audit log, or the server's log
//! (at debug level).

use crate::support::{PATCHBAY, ServeProcess, db_text};
use crate::webhooks::{PyReceiver, wait_for};
use base64::Engine;
use serde_json::{Value, json};
use std::process::{Command, Output};
use std::time::Duration;

const RIGHT: &str = "ops@example.net:jira-API-t0ken-right";
const WRONG: &str = "Basic d3Jvbmc6V1JPTkctc2VjcmV0LXZhbHVl";

fn cli(server: &ServeProcess, token: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(PATCHBAY)
        .args(args)
        .env("PATCHBAY_URL", &server.url)
        .env("PATCHBAY_TOKEN", token)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn auth_headers_reach_the_receiver_and_are_never_printed(backend: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(patchbay_store::testing::fresh_url(backend));
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(
        dir.path(),
        &["--db", &db, "--lease-ttl", "2s", "--duty-tick", "200ms"],
        "debug",
    );
    let token = std::fs::read_to_string(dir.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let right = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(RIGHT)
    );
    let rx = PyReceiver::start();
    let wrong_file = dir.path().join("wrong-auth");
    std::fs::write(&wrong_file, format!("{WRONG}\n")).unwrap();
    let header_file = format!("Authorization={}", wrong_file.display());
    let url = format!("{}/hook", rx.url);
    let added: Value = serde_json::from_str(&ok(cli(
        &server,
        &token,
        &[
            "webhooks",
            "add",
            "jira",
            "--receiver",
            &url,
            "--event",
            "webhook.test",
            "--header-file",
            &header_file,
            "--format",
            "json",
        ],
        &[],
    )))
    .unwrap();
    assert_eq!(added["webhook"]["auth_headers"], json!(["Authorization"]));
    rx.config(json!({"secret": added["secret"], "auth": right}));

    // The wrong credential is refused (and retried with backoff).
    ok(cli(&server, &token, &["webhooks", "test", "jira"], &[]));
    wait_for("a refused attempt", Duration::from_secs(30), || {
        rx.stats()["unauthorized"].as_u64() >= Some(1)
    });
    wait_for("the 401 stored", Duration::from_secs(30), || {
        db_text(
            &db,
            "SELECT CAST(last_status AS TEXT) FROM webhook_deliveries",
        ) == ["401"]
    });
    assert_eq!(rx.stats()["accepted"], json!({}), "nothing accepted yet");

    // Rotated from the environment: the retry is accepted, once.
    let said = ok(cli(
        &server,
        &token,
        &[
            "webhooks",
            "auth",
            "jira",
            "--basic-auth-from-env",
            "PB_TEST_JIRA",
        ],
        &[("PB_TEST_JIRA", RIGHT)],
    ));
    assert_eq!(said.trim(), "jira sends Authorization");
    wait_for("the retry accepted", Duration::from_secs(30), || {
        rx.stats()["accepted"].as_object().unwrap().len() == 1
    });
    let st = rx.stats();
    assert_eq!(st["rejected"], 0, "signed as usual: {st}");
    wait_for("delivered stored", Duration::from_secs(30), || {
        db_text(&db, "SELECT state FROM webhook_deliveries") == ["delivered"]
    });

    // Nothing prints either credential (nor the base64 of the right one).
    let secrets = [
        RIGHT,
        right.as_str(),
        WRONG,
        "WRONG-secret-value",
        "jira-API-t0ken",
    ];
    let mut outputs = Vec::new();
    for args in [
        &["webhooks", "list"][..],
        &["webhooks", "list", "--format", "json"],
        &["webhooks", "show", "jira"],
        &["webhooks", "show", "jira", "--format", "json"],
        &["webhooks", "deliveries", "jira", "--format", "json"],
        &["audit", "list", "--format", "json"],
    ] {
        outputs.push((args.join(" "), ok(cli(&server, &token, args, &[]))));
    }
    let audit = &outputs.last().unwrap().1;
    assert!(
        audit.contains("webhook.auth") && audit.contains("Authorization"),
        "the rotation is audited, by header name: {audit}"
    );
    assert!(outputs[2].1.contains("Authorization"), "{}", outputs[2].1);
    outputs.push(("server log".into(), server.log.lock().unwrap().join("\n")));
    assert!(outputs.last().unwrap().1.len() > 1000, "the log was kept");
    for (what, text) in &outputs {
        for s in secrets {
            assert!(
                !text.contains(s),
                "{what} prints a credential ({s}):\n{text}"
            );
        }
    }
}

crate::both_backends!(auth_headers_reach_the_receiver_and_are_never_printed);
