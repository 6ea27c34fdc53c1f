//! Email against a real SMTP server on loopback (issue 15): aiosmtpd from
//! PyPI (`python3 -m aiosmtpd`, installed by scripts/test's oracle
//! section), whose Maildir handler writes each message it accepts with the
//! SMTP envelope (`X-MailFrom`, `X-RcptTo`) added. The approval request a
//! real rollout raises reaches exactly the contact that asked for it, once
//! (retried after a failure with the same Message-ID), over plain SMTP,
//! STARTTLS (required, certificate checked) and implicit TLS; a value with
//! line breaks cannot add a header or a recipient.

use crate::deploy::token;
use crate::escalations::reach_approval;
use crate::support::InProcess;
use jiff::SignedDuration;
use patchbay_app::duties::Runner;
use patchbay_app::email::{Mailer, SmtpConfig, SmtpTls};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// aiosmtpd on 127.0.0.1, writing to a Maildir.
pub(crate) struct Sink {
    child: Child,
    pub(crate) port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sink {
    /// `tls`: extra flags (`--tlscert C --tlskey K` for STARTTLS,
    /// `--smtpscert C --smtpskey K` for implicit TLS).
    pub(crate) fn start(tls: &[&str]) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(tls)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("maildir"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 -m aiosmtpd (scripts/test installs aiosmtpd from PyPI)");
        // Process start-up (not a timing of Patchbay's): wait until it listens.
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "aiosmtpd did not listen on {port} (is it installed? scripts/test installs it)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Sink { child, port, dir }
    }

    /// The messages received, each decoded by Python's `email` package (not
    /// Patchbay's code): its headers (as `messages`), its text/plain and its
    /// text/html part.
    pub(crate) fn decoded(&self) -> Vec<(BTreeMap<String, Vec<String>>, String, String)> {
        let new = self.dir.path().join("maildir").join("new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&new)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|f| {
                let (h, _) = parse(f);
                let part = |kind: &str| {
                    let out = Command::new("python3")
                        .args([
                            "-c",
                            "import email,sys\nm=email.message_from_binary_file(open(sys.argv[1],'rb'))\nfor p in m.walk():\n    if p.get_content_type()==sys.argv[2]:\n        sys.stdout.write(p.get_payload(decode=True).decode(p.get_content_charset() or 'utf-8'))",
                        ])
                        .arg(f)
                        .arg(kind)
                        .output()
                        .expect("python3");
                    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                    String::from_utf8(out.stdout).unwrap()
                };
                (h, part("text/plain"), part("text/html"))
            })
            .collect()
    }

    /// The messages received: headers (unfolded, by lower-case name, all
    /// values) and body.
    pub(crate) fn messages(&self) -> Vec<(BTreeMap<String, Vec<String>>, String)> {
        let new = self.dir.path().join("maildir").join("new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&new)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().map(|f| parse(f)).collect()
    }
}

fn parse(f: &Path) -> (BTreeMap<String, Vec<String>>, String) {
    let raw = std::fs::read_to_string(f).unwrap().replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap();
    let mut lines: Vec<String> = Vec::new();
    for l in head.lines() {
        if l.starts_with(' ') || l.starts_with('\t') {
            let last = lines.last_mut().unwrap();
            last.push(' ');
            last.push_str(l.trim_start());
        } else {
            lines.push(l.to_string());
        }
    }
    let mut h: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in lines {
        let (k, v) = l.split_once(':').unwrap();
        h.entry(k.to_ascii_lowercase())
            .or_default()
            .push(v.trim().to_string());
    }
    (h, body.to_string())
}

pub(crate) fn one(h: &BTreeMap<String, Vec<String>>, k: &str) -> String {
    let v = h.get(k).unwrap_or_else(|| panic!("no {k} header in {h:?}"));
    assert_eq!(v.len(), 1, "{k}: {v:?}");
    v[0].clone()
}

pub(crate) fn plain(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "patchbay@example.net".into(),
        ca_file: None,
    }
}

async fn approval_email_reaches_its_recipient_once(backend: &str) {
    let s = InProcess::on(backend).await;
    let ops = token(&s, "operator").await;
    let mut runner = Runner::new(s.app.clone(), "test-replica");
    for (name, events) in [
        ("alice", json!(["approval.requested"])),
        ("bob", json!(["deployment.completed"])),
        ("carol", json!([])),
    ] {
        s.ok_json(
            "POST",
            "/api/v1/contacts",
            &ops,
            json!({"name": name, "email": format!("{name}@example.net"), "events": events}),
        )
        .await;
    }
    let (id, _, _) = reach_approval(&s, &mut runner, &ops).await;
    let sink = Sink::start(&[]);
    // First through a server that is not there: a failure, retried later,
    // visible in the log.
    let down = Mailer::new(&plain(free_port()), Duration::from_secs(5)).unwrap();
    assert_eq!(s.app.emails_fan_out().await.unwrap(), 1);
    let r = s.app.emails_deliver(&down).await.unwrap();
    assert_eq!((r.sent, r.failed, r.retried, r.dead), (0, 1, 1, 0));
    let log = s
        .ok_json("GET", "/api/v1/contacts/deliveries", &ops, json!(null))
        .await;
    let d = &log["items"][0];
    assert_eq!(
        (d["contact"].as_str(), d["state"].as_str()),
        (Some("alice"), Some("pending"))
    );
    assert_eq!(d["attempts"], 1);
    assert!(!d["last_error"].as_str().unwrap().is_empty(), "{d}");
    let message_id = d["message_id"].as_str().unwrap().to_string();
    // Not due yet: nothing is sent even to a working server.
    let up = Mailer::new(&plain(sink.port), Duration::from_secs(10)).unwrap();
    assert_eq!(s.app.emails_deliver(&up).await.unwrap().sent, 0);
    s.clock.advance(SignedDuration::from_hours(1));
    assert_eq!(s.app.emails_deliver(&up).await.unwrap().sent, 1);
    // Again (a restart re-runs both halves): nothing new.
    assert_eq!(s.app.emails_fan_out().await.unwrap(), 0);
    assert_eq!(s.app.emails_deliver(&up).await.unwrap().sent, 0);

    let got = sink.messages();
    assert_eq!(got.len(), 1, "exactly one email");
    let (h, body) = &got[0];
    assert_eq!(one(h, "x-mailfrom"), "patchbay@example.net");
    assert_eq!(one(h, "x-rcptto"), "alice@example.net");
    assert_eq!(one(h, "from"), "patchbay@example.net");
    assert_eq!(one(h, "to"), "alice@example.net");
    assert_eq!(
        one(h, "subject"),
        format!("[Patchbay] Approval needed: {id} ring only")
    );
    assert_eq!(one(h, "message-id"), message_id);
    assert!(
        one(h, "content-type").starts_with("multipart/alternative"),
        "{h:?}"
    );
    assert!(
        body.contains(&format!("patchbay deploy approve {id} --ring only")),
        "{body}"
    );
    // The ring approved, the deployment completes: bob (deployment.completed)
    // gets its summary with each ring's outcomes; nobody else gets anything.
    let approver = token(&s, "approver").await;
    s.ok_json(
        "POST",
        &format!("/api/v1/deployments/{id}/approvals"),
        &approver,
        json!({"approve": true, "comment": "fine"}),
    )
    .await;
    runner.tick().await;
    // One round of the server's email loop: fan-out, send, metrics.
    let metrics = patchbay_server::metrics::Metrics::new();
    patchbay_server::mail::pump(&s.app, &metrics, &up).await;
    let m = metrics.encode();
    assert!(m.contains("patchbay_emails_sent_total 1"), "{m}");
    assert!(m.contains("patchbay_email_queue_depth 0"), "{m}");
    // A restarted server (a new service over the same database, nothing in
    // memory) sends nothing again.
    let again = patchbay_app::App::new(
        s.app.store().clone(),
        s.clock.clone(),
        patchbay_app::AppConfig::default(),
    );
    assert_eq!(again.emails_fan_out().await.unwrap(), 0);
    assert_eq!(again.emails_deliver(&up).await.unwrap().sent, 0);
    let got = sink.messages();
    assert_eq!(got.len(), 2);
    let (h, body) = got
        .iter()
        .find(|(h, _)| one(h, "x-rcptto") == "bob@example.net")
        .expect("bob's summary");
    assert_eq!(
        one(h, "subject"),
        format!("[Patchbay] Deployment {id} completed")
    );
    assert!(body.contains("Ring only: 1 succeeded"), "{body}");
    let log = s
        .ok_json("GET", "/api/v1/contacts", &ops, json!(null))
        .await;
    let alice = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "alice")
        .unwrap()
        .clone();
    assert_eq!(
        (alice["sent"].as_u64(), alice["pending"].as_u64()),
        (Some(1), Some(0))
    );
}

#[tokio::test]
async fn the_approval_email_reaches_its_recipient_once_sqlite() {
    approval_email_reaches_its_recipient_once("sqlite").await;
}

#[tokio::test]
async fn the_approval_email_reaches_its_recipient_once_postgres() {
    approval_email_reaches_its_recipient_once("postgres").await;
}

/// A CA and a certificate for `localhost` it signed, as files.
fn certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let (ca_f, cert_f, key_f) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca_f, ca_cert.pem()).unwrap();
    std::fs::write(&cert_f, leaf.pem()).unwrap();
    std::fs::write(&key_f, key.serialize_pem()).unwrap();
    (ca_f, cert_f, key_f)
}

fn hostile() -> patchbay_render::Email {
    patchbay_render::Email {
        subject: "Approval needed\r\nBcc: victim@example.org\r\nX-Injected: yes".into(),
        heading: "h".into(),
        paragraphs: vec!["line one\n.\nMAIL FROM:<evil@example.org>".into()],
        facts: vec![],
        action: None,
        footer: "test".into(),
    }
}

/// STARTTLS (required) and implicit TLS with the server's certificate
/// checked against the configured CA; without that CA the send fails
/// rather than falling back to plain text. The hostile subject stays one
/// header and adds no recipient.
#[tokio::test]
async fn starttls_and_implicit_tls_verify_the_server_and_values_add_no_header() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certs(tmp.path());
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    for (mode, flags) in [
        (SmtpTls::Starttls, ["--tlscert", cert, "--tlskey", key]),
        (SmtpTls::Implicit, ["--smtpscert", cert, "--smtpskey", key]),
    ] {
        let sink = Sink::start(&flags);
        let mut cfg = SmtpConfig {
            host: "localhost".into(),
            port: sink.port,
            tls: mode,
            username: None,
            password: None,
            from: "patchbay@example.net".into(),
            ca_file: None,
        };
        // Not trusted: refused, nothing delivered.
        let m = Mailer::new(&cfg, Duration::from_secs(10)).unwrap();
        let e = m
            .send("alice@example.net", "<x1@patchbay>", &hostile())
            .await
            .unwrap_err();
        assert!(!e.is_empty(), "{mode:?}");
        assert!(sink.messages().is_empty(), "{mode:?}");
        cfg.ca_file = Some(ca.clone());
        let m = Mailer::new(&cfg, Duration::from_secs(10)).unwrap();
        m.send("alice@example.net", "<x2@patchbay>", &hostile())
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let got = sink.messages();
        assert_eq!(got.len(), 1, "{mode:?}");
        let (h, body) = &got[0];
        assert_eq!(one(h, "x-rcptto"), "alice@example.net", "{mode:?}");
        assert_eq!(
            one(h, "subject"),
            "Approval needed Bcc: victim@example.org X-Injected: yes"
        );
        assert!(
            !h.contains_key("bcc") && !h.contains_key("x-injected"),
            "{h:?}"
        );
        // The body's lone "." line is dot-stuffed by the client, so it does
        // not end the DATA early: the line after it arrives as text.
        assert!(body.contains("MAIL FROM:<evil@example.org>"), "{body}");
    }
}

/// The weekly exception review: raised once per ISO week while there is
/// something to review, emailed to the contact that lists it.
#[tokio::test]
async fn the_weekly_exception_review_is_emailed_once_a_week() {
    let s = InProcess::new().await;
    let ops = token(&s, "operator").await;
    let approver = token(&s, "approver").await;
    let mut runner = Runner::new(s.app.clone(), "test-replica");
    s.ok_json(
        "POST",
        "/api/v1/contacts",
        &ops,
        json!({"name": "risk", "email": "risk@example.net", "events": ["exception.review"]}),
    )
    .await;
    // Nothing to review: no event.
    runner.tick().await;
    assert!(
        crate::escalations::events(&s, "exception.review")
            .await
            .is_empty()
    );
    crate::support::fleet(&s, 1, 0x7e00).await;
    crate::support::import_pb_demo_advisory(&s).await;
    let e = s
        .ok_json(
            "POST",
            "/api/v1/exceptions",
            &approver,
            json!({"advisory": "DSA-9999-1", "asset": "h1", "owner": "web-team",
                   "reason": "vendor build <pending>", "compensating_control": "WAF", "expires": "3d"}),
        )
        .await;
    let exc = e["id"].as_str().unwrap().to_string();
    // The duty checks hourly; the week's review is raised once.
    s.clock.advance(SignedDuration::from_hours(2));
    runner.tick().await;
    s.clock.advance(SignedDuration::from_hours(2));
    runner.tick().await;
    let r = crate::escalations::events(&s, "exception.review").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["expiring"][0]["id"], exc.as_str());
    let sink = Sink::start(&[]);
    let up = Mailer::new(&plain(sink.port), Duration::from_secs(10)).unwrap();
    s.app.emails_fan_out().await.unwrap();
    assert_eq!(s.app.emails_deliver(&up).await.unwrap().sent, 1);
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    let (h, body) = &got[0];
    assert_eq!(one(h, "x-rcptto"), "risk@example.net");
    assert_eq!(one(h, "subject"), "[Patchbay] Weekly exception review");
    assert!(body.contains(&exc) && body.contains("web-team"), "{body}");
    // A week later (the exception now expired: still something to review):
    // the next week's review.
    s.clock.advance(SignedDuration::from_hours(24 * 7));
    runner.tick().await;
    assert_eq!(
        crate::escalations::events(&s, "exception.review")
            .await
            .len(),
        2
    );
}
