//! HTTPS end to end: `patchbay serve --tls-cert --tls-key` with a certificate
//! from a private CA; the CLI and the agent trust it with `--ca-cert` and
//! refuse it without; a plain-HTTP client is turned away without stopping the
//! server.

use crate::support::{PATCHBAY, deb_root, minbase_before, ok};
use patchbay_client::Client;
use patchbay_proto::api::{AssetSummary, CreateEnrollToken, EnrollTokenCreated, List};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
pub(crate) fn make_pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Patchbay test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
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
}

#[test]
fn https_server_agent_and_cli() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = dir.path().join("data");
    // Mismatched flags are refused before anything starts.
    let out = Command::new(PATCHBAY)
        .args(["serve", "--tls-cert"])
        .arg(dir.path().join("server.pem"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let bad = Command::new(PATCHBAY)
        .args(["serve", "--listen", "127.0.0.1:1", "--data-dir"])
        .arg(&data)
        .arg("--tls-cert")
        .arg(dir.path().join("ext.cnf"))
        .arg("--tls-key")
        .arg(dir.path().join("server.key"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("ext.cnf"),
        "the error names the file"
    );

    let mut server = Command::new(PATCHBAY)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .arg("--tls-cert")
        .arg(dir.path().join("server.pem"))
        .arg("--tls-key")
        .arg(dir.path().join("server.key"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}");
    let ca = dir.path().join("ca.pem");
    let trusted = Client::new(&url, None, Duration::from_secs(10))
        .with_ca_file(&ca)
        .unwrap();
    let start = Instant::now();
    while trusted.get_text("/healthz").is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the HTTPS server did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();

    // Over TLS every answer carries HSTS (a raw request through openssl, so
    // the headers are seen as sent).
    let mut sc = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
        ])
        .arg(&ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut sc.stdin.take().unwrap(),
        b"GET /api/v1/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let raw = String::from_utf8_lossy(&sc.wait_with_output().unwrap().stdout).to_lowercase();
    assert!(raw.starts_with("http/1.1 401"), "{raw}");
    assert!(
        raw.contains("strict-transport-security: max-age=31536000"),
        "{raw}"
    );
    assert!(raw.contains("x-content-type-options: nosniff"), "{raw}");

    // The CLI trusts the server only with the CA.
    let cli = |extra: &[&str]| {
        let mut c = Command::new(PATCHBAY);
        c.args(extra).args(["--url", &url, "--token", &admin]);
        c.env_remove("PATCHBAY_CA_CERT").output().unwrap()
    };
    let out = cli(&["assets", "list"]);
    assert!(!out.status.success(), "no CA: refused");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("certificate") || err.contains("issuer"),
        "{err}"
    );
    ok(&cli(&["assets", "list", "--ca-cert", ca.to_str().unwrap()]));

    // The agent enrols and checks in over HTTPS with the CA.
    let admin_client = Client::new(&url, Some(admin.clone()), Duration::from_secs(10))
        .with_ca_file(&ca)
        .unwrap();
    let t: EnrollTokenCreated = admin_client
        .send(
            "POST",
            "/api/v1/enroll-tokens",
            &CreateEnrollToken {
                name: Some("tls".into()),
                uses: Some(2),
                ttl_secs: None,
            },
        )
        .unwrap();
    let root = deb_root(&minbase_before());
    let state = dir.path().join("agent");
    let agent = |with_ca: bool| {
        let mut c = Command::new(crate::support::agent());
        c.args([
            "--server",
            &url,
            "--once",
            "--no-pending-updates",
            "--enroll-token",
            &t.token,
        ])
        .arg("--root")
        .arg(root.path())
        .arg("--state-dir")
        .arg(&state)
        .env_remove("PATCHBAY_CA_CERT");
        if with_ca {
            c.arg("--ca-cert").arg(&ca);
        }
        c.output().unwrap()
    };
    assert!(
        !agent(false).status.success(),
        "no CA: the agent refuses the server"
    );
    ok(&agent(true));
    let l: List<AssetSummary> = admin_client.get("/api/v1/assets").unwrap();
    assert_eq!(l.items.len(), 1);

    // A plain-HTTP client gets nothing, and the server carries on.
    let plain = Client::new(
        &format!("http://127.0.0.1:{port}"),
        None,
        Duration::from_secs(5),
    );
    assert!(plain.get_text("/healthz").is_err());
    assert_eq!(trusted.get_text("/healthz").unwrap().trim(), "ok");

    Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
}

/// The calendar feed's `?token=` never reaches the logs, even at debug level.
#[test]
fn calendar_token_is_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = dir.path().join("data");
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let mut server = Command::new(PATCHBAY)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let c = Client::new(&url, None, Duration::from_secs(10));
    let start = Instant::now();
    while c.get_text("/healthz").is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the server did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    // The feed takes a calendar token (an admin token in a URL would be a key
    // to everything).
    let cal: patchbay_proto::api::TokenCreated =
        Client::new(&url, Some(admin.clone()), Duration::from_secs(10))
            .send(
                "POST",
                "/api/v1/tokens",
                &patchbay_proto::api::CreateToken {
                    name: "calendar".into(),
                    role: patchbay_core::auth::Role::Calendar,
                    ttl_secs: None,
                    scopes: None,
                },
            )
            .unwrap();
    let ics = c
        .get_text(&format!("/calendar.ics?token={}", cal.token))
        .unwrap();
    assert!(ics.starts_with("BEGIN:VCALENDAR"));
    Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
    let logs = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(
        logs.contains("/calendar.ics"),
        "the request is logged at debug level"
    );
    assert!(!logs.contains(&admin), "the token must not be logged");
    assert!(!logs.contains(&cal.token), "the token must not be logged");
}

/// A client that opens a TCP connection to the HTTPS server and never starts
/// its TLS handshake delays nobody: handshakes run concurrently (before, the
/// accept loop waited up to the 10 s handshake timeout for each in turn).
#[test]
fn a_stalled_tls_handshake_blocks_nobody() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let server = Command::new(PATCHBAY)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(dir.path().join("server.pem"))
        .arg("--tls-key")
        .arg(dir.path().join("server.key"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed if the test fails before it stops the server.
    let mut server = Kill(server);
    let url = format!("https://127.0.0.1:{port}");
    let ca = dir.path().join("ca.pem");
    let trusted = Client::new(&url, None, Duration::from_secs(3))
        .with_ca_file(&ca)
        .unwrap();
    let start = Instant::now();
    while trusted.get_text("/healthz").is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the HTTPS server did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Three silent connections, then a real client: answered at once.
    let stalled: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // A new client: a new connection and handshake (not a pooled one).
    let fresh = Client::new(&url, None, Duration::from_secs(3))
        .with_ca_file(&ca)
        .unwrap();
    let t0 = Instant::now();
    assert_eq!(fresh.get_text("/healthz").unwrap().trim(), "ok");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    drop(stalled);
    Command::new("kill")
        .arg("-TERM")
        .arg(server.0.id().to_string())
        .status()
        .unwrap();
    assert!(server.0.wait().unwrap().success());
}
