//! `patchbay serve --config FILE` sends email through the relay its
//! `[smtp]` section names (issue 15), end to end: a real server process,
//! aiosmtpd from PyPI on loopback (`python3 -m aiosmtpd`, installed by
//! scripts/test's oracle section) writing what it accepts to a Maildir with
//! the SMTP envelope, the port given by `PATCHBAY_SMTP_PORT` over the
//! file's (the environment wins). A contact that asked for `audit.recorded`
//! gets the email of a token's creation, once, from the file's sender, to
//! its address only — on SQLite and PostgreSQL.

use crate::support::ServeProcess;
use patchbay_client::Client;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Sink {
    child: Child,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The messages in `maildir/new`: (headers as (lower-case name, value)
/// lines, unfolded; body).
fn messages(maildir: &std::path::Path) -> Vec<(Vec<(String, String)>, String)> {
    let mut files: Vec<_> = std::fs::read_dir(maildir.join("new"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|f| {
            let raw = std::fs::read_to_string(f).unwrap().replace("\r\n", "\n");
            let (head, body) = raw.split_once("\n\n").unwrap();
            let mut lines: Vec<String> = Vec::new();
            for l in head.lines() {
                if l.starts_with([' ', '\t']) {
                    let last = lines.last_mut().unwrap();
                    last.push(' ');
                    last.push_str(l.trim_start());
                } else {
                    lines.push(l.to_string());
                }
            }
            let h = lines
                .iter()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            (h, body.to_string())
        })
        .collect()
}

fn header<'a>(h: &'a [(String, String)], k: &str) -> Vec<&'a str> {
    h.iter()
        .filter(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn email_through_the_configured_relay(backend: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(patchbay_store::testing::fresh_url(backend));
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let maildir = dir.path().join("maildir");
    let _sink = Sink {
        child: Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 -m aiosmtpd (scripts/test installs aiosmtpd from PyPI)"),
    };
    // Process start-up (not a timing of Patchbay's): wait until it listens.
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "aiosmtpd did not listen on {port} (is it installed? scripts/test installs it)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let config = dir.path().join("patchbay.toml");
    // A wrong port in the file: PATCHBAY_SMTP_PORT wins over it.
    std::fs::write(
        &config,
        "[smtp]\nhost = \"127.0.0.1\"\nport = 9\ntls = \"none\"\nfrom = \"Patchbay Relay Test <relay-test@example.net>\"\n",
    )
    .unwrap();
    let port_s = port.to_string();
    let server = ServeProcess::start_env(
        &dir.path().join("data"),
        &[
            "--db",
            &db,
            "--config",
            config.to_str().unwrap(),
            "--lease-ttl",
            "2s",
            "--duty-tick",
            "200ms",
        ],
        "info",
        &[("PATCHBAY_SMTP_PORT", &port_s)],
    );
    let token = std::fs::read_to_string(dir.path().join("data/admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let c = Client::new(&server.url, Some(token), Duration::from_secs(10));
    let _: Value = c
        .send(
            "POST",
            "/api/v1/contacts",
            &json!({"name": "ops", "email": "ops@example.net", "events": ["audit.recorded"]}),
        )
        .unwrap();
    let _: Value = c
        .send(
            "POST",
            "/api/v1/tokens",
            &json!({"name": "mail-probe", "role": "auditor"}),
        )
        .unwrap();
    let about_token = |m: &(Vec<(String, String)>, String)| {
        header(&m.0, "subject")
            .iter()
            .any(|s| s.contains("token.create"))
    };
    let start = Instant::now();
    while !messages(&maildir).iter().any(about_token) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no email about the token arrived: {:?}",
            messages(&maildir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Anything else queued arrives before counting.
    std::thread::sleep(Duration::from_millis(1500));
    let all = messages(&maildir);
    let mail: Vec<_> = all.iter().filter(|m| about_token(m)).collect();
    assert_eq!(mail.len(), 1, "once: {all:?}");
    let h = &mail[0].0;
    assert_eq!(header(h, "x-rcptto"), ["ops@example.net"], "{h:?}");
    assert_eq!(header(h, "x-mailfrom"), ["relay-test@example.net"], "{h:?}");
    assert_eq!(
        header(h, "from"),
        ["\"Patchbay Relay Test\" <relay-test@example.net>"],
        "{h:?}"
    );
    assert_eq!(header(h, "to"), ["ops@example.net"], "{h:?}");
    // Every message went to the contact alone.
    for (h, _) in &all {
        assert_eq!(header(h, "x-rcptto"), ["ops@example.net"], "{h:?}");
    }
    drop(server);
}

crate::both_backends!(email_through_the_configured_relay);
