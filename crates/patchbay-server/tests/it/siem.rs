//! The SIEM sink against **real rsyslog** (Debian's `rsyslogd`, with
//! `rsyslog-gnutls` for TLS) on loopback (issue 15), on SQLite and
//! PostgreSQL.
//!
//! Each test writes its own rsyslog configuration — `imtcp` plain, or
//! `imtcp` with the `gtls` stream driver and a certificate this test makes
//! with `openssl` — and reads the file rsyslog writes
//! (`MSGID|HOSTNAME|APP-NAME|PRI|MSG` per line). Audit entries come from
//! real changes through the API: a token whose name carries `|`, `=` and
//! `\`, a change record's lesson whose text carries line breaks, and a
//! refused request; every CEF field is parsed back (by
//! `patchbay_core::siem::parse_cef`) and compared with the stored audit
//! entry. UDP goes to a plain socket of the test. A receiver that is down
//! while entries arrive makes the sink drop what its bounded queue cannot
//! hold (counted in the Prometheus counter) and reconnect with backoff when
//! it comes up; the stored cursor resumes a restarted sink without loss.

use crate::support::{InProcess, fleet};
use patchbay_core::siem::{self, Format};
use patchbay_server::siem::{Overflow, SinkConfig, SinkState, Transport};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA and a server certificate for `localhost` / 127.0.0.1, by openssl.
struct Certs {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_certs(dir: &Path) -> Certs {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=patchbay test SIEM CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// One rsyslogd (`-n`, its own configuration, work directory and pid file).
struct Rsyslog {
    child: Child,
    out: PathBuf,
    port: u16,
}

impl Rsyslog {
    fn start(dir: &Path, port: u16, tls: Option<&Certs>) -> Rsyslog {
        std::fs::create_dir_all(dir).unwrap();
        let out = dir.join("out.log");
        let (global, module) = match tls {
            Some(c) => (
                format!(
                    "global(workDirectory=\"{d}\" maxMessageSize=\"64k\" defaultNetstreamDriver=\"gtls\" \
                     defaultNetstreamDriverCAFile=\"{ca}\" defaultNetstreamDriverCertFile=\"{cert}\" \
                     defaultNetstreamDriverKeyFile=\"{key}\")",
                    d = dir.display(),
                    ca = c.ca.display(),
                    cert = c.cert.display(),
                    key = c.key.display()
                ),
                "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")"
                    .to_string(),
            ),
            None => (
                format!("global(workDirectory=\"{}\" maxMessageSize=\"64k\")", dir.display()),
                "module(load=\"imtcp\")".to_string(),
            ),
        };
        let conf = format!(
            "{global}\n{module}\n\
             input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
             template(name=\"t\" type=\"string\" string=\"%msgid%|%hostname%|%app-name%|%pri%|%msg%\\n\")\n\
             action(type=\"omfile\" file=\"{out}\" template=\"t\")\n",
            out = out.display()
        );
        std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
        let child = Command::new("/usr/sbin/rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsyslogd runs (scripts/test installs rsyslog and rsyslog-gnutls)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "rsyslogd did not listen on {port}; config:\n{}",
                std::fs::read_to_string(dir.join("rsyslog.conf")).unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Rsyslog { child, out, port }
    }

    /// The lines received so far: (msgid, hostname, app-name, pri, msg
    /// without the BOM).
    fn lines(&self) -> Vec<[String; 5]> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .map(|l| {
                let mut p = l.splitn(5, '|').map(str::to_string);
                let mut f: [String; 5] = Default::default();
                for x in f.iter_mut() {
                    *x = p.next().unwrap_or_default();
                }
                f[4] = f[4].trim_start_matches('\u{FEFF}').to_string();
                f
            })
            .collect()
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn wait_async(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A running sink: its stop switch, shared state and task.
struct Sink {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    state: Arc<SinkState>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    async fn start(
        s: &InProcess,
        cfg: SinkConfig,
        metrics: &Arc<patchbay_server::metrics::Metrics>,
    ) -> Sink {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let state = Arc::new(SinkState::default());
        let task = tokio::spawn(patchbay_server::siem::run(
            s.app.clone(),
            cfg,
            metrics.clone(),
            Arc::new(AtomicBool::new(true)),
            state.clone(),
            rx,
        ));
        Sink {
            stop: Some(tx),
            state,
            task,
        }
    }
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }
}

fn sink(name: &str, transport: Transport, port: u16, format: Format) -> SinkConfig {
    let mut c = SinkConfig::new(transport, "127.0.0.1", port, format);
    c.name = name.into();
    c.hostname = "pb-test host".into();
    c.backoff_base = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(400);
    c.poll = Duration::from_millis(50);
    c.commit_every = Duration::from_millis(100);
    c
}

/// The audit entries after `after`, as the SIEM should see them.
async fn audit_after(s: &InProcess, after: i64) -> Vec<siem::Entry> {
    s.app.siem_entries(after, 5000).await.unwrap()
}

/// Makes the entries the test checks: a token with `|`, `=`, `\` in its
/// name, which then (so its name is the actor, in the CEF header's Name and
/// `suser`) writes a change record's lesson with line breaks; a refused
/// request.
async fn make_entries(s: &InProcess) {
    let ops = s
        .ok_json(
            "POST",
            "/api/v1/tokens",
            &s.admin,
            json!({"name": "ci|deploy=x\\y", "role": "operator"}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = s
        .call("GET", "/api/v1/assets", Some("pbt_not-a-token"), None)
        .await;
    assert_eq!(status.as_u16(), 401);
    let changes = s
        .ok_json("GET", "/api/v1/changes", &s.admin, json!(null))
        .await;
    let id = changes["items"][0]["id"].as_str().unwrap().to_string();
    s.ok_json(
        "POST",
        &format!("/api/v1/changes/{id}/lessons"),
        &ops,
        json!({"text": "restart the | pool\nthen check a=b \\ c\nand done"}),
    )
    .await;
}

/// A deployment (so a change record exists for the lesson).
async fn a_change_record(s: &InProcess) {
    fleet(s, 1, 0x51e0).await;
    s.ok_json(
        "POST",
        "/api/v1/deployments",
        &s.admin,
        json!({"packages": [{"name": "pb-demo", "version": "1.1"}],
               "rings": [{"name": "all", "assets": ["h1"]}]}),
    )
    .await;
}

/// Checks received CEF lines against the stored entries, field by field.
fn check_cef(received: &[[String; 5]], expected: &[siem::Entry]) {
    assert_eq!(
        received.len(),
        expected.len(),
        "every audit entry once: {received:#?}"
    );
    for (r, e) in received.iter().zip(expected) {
        let sig = siem::signature(&e.action, &e.outcome);
        assert_eq!(r[0], siem::msgid(e), "MSGID");
        assert_eq!(r[1], "pb-test_host", "HOSTNAME");
        assert_eq!(r[2], "patchbay");
        assert_eq!(
            r[3],
            (13 * 8 + u32::from(siem::syslog_severity(sig.severity))).to_string()
        );
        let c = siem::parse_cef(&r[4]).unwrap_or_else(|err| panic!("{err}: {}", r[4]));
        assert_eq!(c.header[1], "Patchbay");
        assert_eq!(c.header[4], sig.id.to_string());
        assert_eq!(c.header[5], siem::summary(e).replace('\n', " "));
        assert_eq!(c.get("externalId"), Some(e.seq.to_string().as_str()));
        assert_eq!(c.get("suser"), Some(e.actor.as_str()));
        assert_eq!(c.get("act"), Some(e.action.as_str()));
        assert_eq!(c.get("cs1"), Some(e.target.as_str()));
        assert_eq!(c.get("outcome"), Some(e.outcome.as_str()));
        let detail: Value = serde_json::from_str(c.get("cs2").unwrap()).unwrap();
        assert_eq!(detail, e.detail);
        assert_eq!(
            c.get("rt"),
            Some(e.at.as_millisecond().to_string().as_str())
        );
    }
}

async fn to_rsyslog_over_tcp_and_tls(backend: &str) {
    let s = InProcess::on(backend).await;
    a_change_record(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let plain = Rsyslog::start(&dir.path().join("plain"), free_port(), None);
    let tls = Rsyslog::start(&dir.path().join("tls"), free_port(), Some(&certs));
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let metrics = patchbay_server::metrics::Metrics::new();

    let mut tls_cfg = sink("tls", Transport::Tls, tls.port, Format::Cef);
    tls_cfg.tls = Some(patchbay_server::config::client_config(&certs.ca).unwrap());
    tls_cfg.server_name = Some("localhost".into());
    let udp_cfg = sink(
        "udp",
        Transport::Udp,
        udp.local_addr().unwrap().port(),
        Format::Json,
    );
    // Cursors start at the audit log's head: what comes next is forwarded.
    let head = s.app.siem_cursor("tcp").await.unwrap();
    assert_eq!(s.app.siem_cursor("tls").await.unwrap(), head);
    assert_eq!(s.app.siem_cursor("udp").await.unwrap(), head);
    let sinks = vec![
        Sink::start(
            &s,
            sink("tcp", Transport::Tcp, plain.port, Format::Cef),
            &metrics,
        )
        .await,
        Sink::start(&s, tls_cfg, &metrics).await,
        Sink::start(&s, udp_cfg, &metrics).await,
    ];
    make_entries(&s).await;
    let expected = audit_after(&s, head).await;
    let actions: Vec<&str> = expected.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"token.create"), "{actions:?}");
    assert!(actions.contains(&"request.denied"), "{actions:?}");
    assert!(actions.contains(&"change.lesson"), "{actions:?}");

    wait_for(
        "rsyslog (tcp) received every entry",
        Duration::from_secs(20),
        || plain.lines().len() >= expected.len(),
    );
    wait_for(
        "rsyslog (tls) received every entry",
        Duration::from_secs(20),
        || tls.lines().len() >= expected.len(),
    );
    check_cef(&plain.lines(), &expected);
    check_cef(&tls.lines(), &expected);
    // The special characters made it through rsyslog and back, exactly.
    let lines = plain.lines();
    let token = lines.iter().find(|l| l[0] == "token.create").unwrap();
    let c = siem::parse_cef(&token[4]).unwrap();
    let detail: Value = serde_json::from_str(c.get("cs2").unwrap()).unwrap();
    assert_eq!(detail["name"], "ci|deploy=x\\y");
    let lesson = lines.iter().find(|l| l[0] == "change.lesson").unwrap();
    let c = siem::parse_cef(&lesson[4]).unwrap();
    assert!(
        c.get("suser").unwrap().ends_with(":ci|deploy=x\\y"),
        "{lesson:?}"
    );
    assert!(
        c.header[5].ends_with(" by token:2:ci|deploy=x\\y"),
        "{lesson:?}"
    );
    assert!(
        lesson[4].contains(r"by token:2:ci\|deploy=x\\y|"),
        "header escaped: {}",
        lesson[4]
    );
    assert!(
        lesson[4].contains(r"suser=token:2:ci|deploy\=x\\y "),
        "extension escaped: {}",
        lesson[4]
    );
    assert_eq!(c.get("cs3Label"), Some("text"));
    assert_eq!(
        c.get("cs3"),
        Some("restart the | pool\nthen check a=b \\ c\nand done")
    );
    assert!(!lesson[4].contains('\n'));
    let denied = lines.iter().find(|l| l[0] == "request.denied").unwrap();
    let c = siem::parse_cef(&denied[4]).unwrap();
    assert_eq!(c.header[4], "200");
    assert_eq!(c.get("outcome"), Some("denied"));

    // UDP: one JSON message per datagram.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while got.len() < expected.len() {
        let n = tokio::time::timeout(Duration::from_secs(10), udp.recv(&mut buf))
            .await
            .expect("a UDP datagram")
            .unwrap();
        got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    for (d, e) in got.iter().zip(&expected) {
        let p = siem::parse_5424(d).unwrap();
        let v: Value = serde_json::from_str(&p.msg).unwrap();
        assert_eq!(v["seq"], e.seq);
        assert_eq!(v["target"], e.target.as_str());
        assert_eq!(v["detail"], e.detail);
    }

    for k in sinks {
        k.stop().await;
    }
    // Each sink's cursor is stored at the last entry written.
    let last = expected.last().unwrap().seq;
    for name in ["tcp", "tls", "udp"] {
        assert_eq!(s.app.siem_cursor(name).await.unwrap(), last, "{name}");
    }
    let m = metrics.encode();
    assert!(
        m.contains(&format!("patchbay_siem_sent_total {}", 3 * expected.len())),
        "{m}"
    );
    assert!(m.contains("patchbay_siem_dropped_total 0"), "{m}");

    // A receiver whose certificate the configured CA did not sign is never
    // sent anything (an impersonated SIEM learns nothing).
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    openssl(
        &other,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=some other CA",
        ],
    );
    let before = tls.lines().len();
    let mut wrong = sink("tls-wrong-ca", Transport::Tls, tls.port, Format::Cef);
    wrong.tls = Some(patchbay_server::config::client_config(&other.join("ca.pem")).unwrap());
    wrong.server_name = Some("localhost".into());
    s.app.siem_cursor("tls-wrong-ca").await.unwrap();
    let k = Sink::start(&s, wrong, &metrics).await;
    s.ok_json(
        "POST",
        "/api/v1/tokens",
        &s.admin,
        json!({"name": "unseen", "role": "auditor"}),
    )
    .await;
    let st = k.state.clone();
    wait_async(
        "the handshake refused",
        Duration::from_secs(20),
        async || st.down.load(Ordering::SeqCst),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!st.connected.load(Ordering::SeqCst));
    k.stop().await;
    assert_eq!(tls.lines().len(), before, "nothing reached the receiver");
    plain.stop();
    tls.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_rsyslog_over_tcp_and_tls_sqlite() {
    to_rsyslog_over_tcp_and_tls("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_rsyslog_over_tcp_and_tls_postgres() {
    to_rsyslog_over_tcp_and_tls("postgres").await;
}

/// The receiver is down while entries arrive: the bounded queue (4) holds
/// what it can, the rest is dropped and counted; the sink retries with
/// backoff and, when rsyslog comes up, delivers what the queue held and
/// everything after. A restarted sink resumes from its stored cursor.
async fn down_then_up(backend: &str) {
    let s = InProcess::on(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics = patchbay_server::metrics::Metrics::new();
    let mut cfg = sink("down", Transport::Tcp, port, Format::Cef);
    cfg.queue = 4;
    cfg.overflow = Overflow::Drop;
    let head = s.app.siem_cursor("down").await.unwrap();
    for i in 0..12 {
        s.ok_json(
            "POST",
            "/api/v1/tokens",
            &s.admin,
            json!({"name": format!("t{i}"), "role": "auditor"}),
        )
        .await;
    }
    let all = audit_after(&s, head).await;
    assert_eq!(all.len(), 12);
    let k = Sink::start(&s, cfg.clone(), &metrics).await;
    // The writer holds one entry while it retries, the queue 4 more; the
    // rest is dropped and counted.
    let st = k.state.clone();
    let dropped = || -> u64 {
        let m = metrics.encode();
        m.lines()
            .find_map(|l| l.strip_prefix("patchbay_siem_dropped_total "))
            .unwrap()
            .parse()
            .unwrap()
    };
    wait_async("drops counted", Duration::from_secs(20), async || {
        st.down.load(Ordering::SeqCst) && dropped() > 0
    })
    .await;
    // Nothing more changes while the receiver stays down (backoff retries).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d = dropped() as usize;
    // 12 entries: the writer holds 1 while it retries, the queue 4.
    assert_eq!(d, 7, "dropped");
    assert!(!st.connected.load(Ordering::SeqCst));
    assert!(metrics.encode().contains("patchbay_siem_connected 0"));
    let held = 12 - d;
    let rs = Rsyslog::start(&dir.path().join("rs"), port, None);
    wait_for(
        "the held entries delivered",
        Duration::from_secs(20),
        || rs.lines().len() >= held,
    );
    // Then new entries flow at once.
    s.ok_json(
        "POST",
        "/api/v1/tokens",
        &s.admin,
        json!({"name": "after", "role": "auditor"}),
    )
    .await;
    wait_for("the new entry delivered", Duration::from_secs(20), || {
        rs.lines().len() > held
    });
    let lines = rs.lines();
    let seqs: Vec<i64> = lines
        .iter()
        .map(|l| {
            siem::parse_cef(&l[4])
                .unwrap()
                .get("externalId")
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    // The oldest ones (the writer's and the queue's), in order, then the new
    // one; the dropped ones are the newest of the outage.
    let mut want: Vec<i64> = all[..held].iter().map(|e| e.seq).collect();
    let newest = audit_after(&s, all[11].seq).await;
    want.push(newest[0].seq);
    assert_eq!(seqs, want);
    assert!(metrics.encode().contains("patchbay_siem_connected 1"));
    assert!(
        metrics
            .encode()
            .contains(&format!("patchbay_siem_sent_total {}", held + 1))
    );
    assert_eq!(dropped() as usize, d, "no drop once connected");
    k.stop().await;
    assert_eq!(s.app.siem_cursor("down").await.unwrap(), newest[0].seq);

    // Entries made while no sink runs are sent by the next one (the stored
    // cursor), none twice.
    for i in 0..3 {
        s.ok_json(
            "POST",
            "/api/v1/tokens",
            &s.admin,
            json!({"name": format!("later{i}"), "role": "auditor"}),
        )
        .await;
    }
    let k = Sink::start(&s, cfg.clone(), &metrics).await;
    wait_for("the backlog delivered", Duration::from_secs(20), || {
        rs.lines().len() >= held + 4
    });
    k.stop().await;
    let lines = rs.lines();
    assert_eq!(lines.len(), held + 4, "nothing twice");
    let later = audit_after(&s, newest[0].seq).await;
    let seqs: Vec<i64> = lines[held + 1..]
        .iter()
        .map(|l| {
            siem::parse_cef(&l[4])
                .unwrap()
                .get("externalId")
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, later.iter().map(|e| e.seq).collect::<Vec<_>>());

    // The receiver restarts under a connected sink: the sink notices the
    // closed connection before its next write and reconnects, so nothing
    // vanishes into the dead socket.
    let k = Sink::start(&s, cfg, &metrics).await;
    s.ok_json(
        "POST",
        "/api/v1/tokens",
        &s.admin,
        json!({"name": "warm", "role": "auditor"}),
    )
    .await;
    wait_for("the connection in use", Duration::from_secs(20), || {
        rs.lines().len() > held + 4
    });
    let mark = audit_after(&s, later.last().unwrap().seq).await[0].seq;
    rs.stop();
    let rs = Rsyslog::start(&dir.path().join("rs2"), port, None);
    for i in 0..3 {
        s.ok_json(
            "POST",
            "/api/v1/tokens",
            &s.admin,
            json!({"name": format!("again{i}"), "role": "auditor"}),
        )
        .await;
    }
    let again = audit_after(&s, mark).await;
    wait_for(
        "entries after the receiver's restart",
        Duration::from_secs(20),
        || rs.lines().len() >= again.len(),
    );
    k.stop().await;
    let seqs: Vec<i64> = rs
        .lines()
        .iter()
        .map(|l| {
            siem::parse_cef(&l[4])
                .unwrap()
                .get("externalId")
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, again.iter().map(|e| e.seq).collect::<Vec<_>>());
    rs.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_then_up_sqlite() {
    down_then_up("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_then_up_postgres() {
    down_then_up("postgres").await;
}

/// `overflow = "wait"`: with the receiver down and a queue of 2, nothing is
/// dropped; when it comes up every entry arrives, in order, once.
async fn wait_mode(backend: &str) {
    let s = InProcess::on(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics = patchbay_server::metrics::Metrics::new();
    let mut cfg = sink("wait", Transport::Tcp, port, Format::Json);
    cfg.queue = 2;
    cfg.overflow = Overflow::Wait;
    let head = s.app.siem_cursor("wait").await.unwrap();
    let k = Sink::start(&s, cfg, &metrics).await;
    for i in 0..8 {
        s.ok_json(
            "POST",
            "/api/v1/tokens",
            &s.admin,
            json!({"name": format!("w{i}"), "role": "auditor"}),
        )
        .await;
    }
    let st = k.state.clone();
    wait_async(
        "the receiver known down",
        Duration::from_secs(20),
        async || st.down.load(Ordering::SeqCst),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(metrics.encode().contains("patchbay_siem_dropped_total 0"));
    let all = audit_after(&s, head).await;
    let rs = Rsyslog::start(&dir.path().join("rs"), port, None);
    wait_for("every entry", Duration::from_secs(20), || {
        rs.lines().len() >= all.len()
    });
    k.stop().await;
    let seqs: Vec<i64> = rs
        .lines()
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(&l[4]).unwrap();
            v["seq"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(seqs, all.iter().map(|e| e.seq).collect::<Vec<_>>());
    assert!(metrics.encode().contains("patchbay_siem_dropped_total 0"));
    rs.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_mode_drops_nothing_sqlite() {
    wait_mode("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_mode_drops_nothing_postgres() {
    wait_mode("postgres").await;
}
