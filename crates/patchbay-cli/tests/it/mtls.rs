//! Agent mutual TLS end to end, on SQLite and PostgreSQL: a real
//! `patchbay serve` over HTTPS taken from `--agent-mtls off` to `optional` to
//! `required` on one data directory, the real `patchbay-agent`, and openssl as
//! the independent judge of what the agent CA issued.
//!
//! Attacks tried through the public surfaces (the agent protocol over TLS):
//! a stolen agent credential without the agent's certificate; a credential
//! with another agent's valid certificate; a certificate from a CA the server
//! does not trust; the certificate an agent had before it renewed.

use crate::support::{PATCHBAY, deb_root, minbase_before, ok};
use patchbay_client::{Client, HttpError};
use patchbay_proto::agent::{
    CertificateRequest, CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse,
    InventoryPayload, IssuedCertificate,
};
use patchbay_proto::api::{AuditEventOut, CreateEnrollToken, EnrollTokenCreated, List};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

struct Setup {
    dir: tempfile::TempDir,
    data: PathBuf,
    db: String,
    port: u16,
}

impl Setup {
    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
    fn serve(&self, mode: &str) -> Serve {
        let child = Command::new(PATCHBAY)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--db", &self.db, "--agent-mtls", mode])
            .arg("--tls-cert")
            .arg(self.dir.path().join("server.pem"))
            .arg("--tls-key")
            .arg(self.dir.path().join("server.key"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Serve(child);
        let probe = self.client(None);
        let start = Instant::now();
        while probe.get_text("/healthz").is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the server did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }
    fn client(&self, token: Option<String>) -> Client {
        Client::new(&self.url(), token, Duration::from_secs(10))
            .with_ca_file(&self.ca())
            .unwrap()
    }
    fn admin(&self) -> Client {
        let t = std::fs::read_to_string(self.data.join("admin.token")).unwrap();
        self.client(Some(t.trim().to_string()))
    }
    fn enroll_token(&self, uses: u32) -> String {
        let t: EnrollTokenCreated = self
            .admin()
            .send(
                "POST",
                "/api/v1/enroll-tokens",
                &CreateEnrollToken {
                    name: Some("mtls".into()),
                    uses: Some(uses),
                    ttl_secs: None,
                },
            )
            .unwrap();
        t.token
    }
    fn audit(&self, action: &str) -> Vec<AuditEventOut> {
        let l: List<AuditEventOut> = self.admin().get("/api/v1/audit?limit=1000").unwrap();
        l.items.into_iter().filter(|e| e.action == action).collect()
    }
}

fn openssl(dir: &Path, args: &[&str]) -> String {
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An agent run (`--once`) on `root` with state in `state`.
fn agent(s: &Setup, root: &Path, state: &Path, token: Option<&str>) -> Output {
    let mut c = Command::new(crate::support::agent());
    c.args(["--server", &s.url(), "--once", "--no-pending-updates"])
        .arg("--ca-cert")
        .arg(s.ca())
        .arg("--root")
        .arg(root)
        .arg("--state-dir")
        .arg(state);
    if let Some(t) = token {
        c.args(["--enroll-token", t]);
    }
    c.output().unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A check-in with the agent's credential from a client of our own making.
fn checkin(c: &Client, hash: &str) -> Result<CheckinResponse, HttpError> {
    c.send(
        "POST",
        "/agent/v1/checkin",
        &CheckinRequest {
            protocol: 1,
            inventory_hash: hash.into(),
            inventory: InventoryPayload::Unchanged,
            results: vec![],
            wait_secs: None,
            key_refusals: vec![],
        },
    )
}

/// A key and CSR made by openssl (an attacker's tool, not ours).
fn openssl_csr(dir: &Path, name: &str) -> (String, String) {
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            "/CN=whatever-i-like",
        ],
    );
    (
        std::fs::read_to_string(dir.join(format!("{name}.key"))).unwrap(),
        std::fs::read_to_string(dir.join(format!("{name}.csr"))).unwrap(),
    )
}

fn agent_mutual_tls(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    crate::tls::make_pki(dir.path());
    let db = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(patchbay_store::testing::fresh_url(backend));
    let s = Setup {
        data: dir.path().join("data"),
        port: std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
        dir,
        db,
    };
    let tmp = s.dir.path();

    // mTLS needs TLS: refused before anything starts, naming the flags.
    let out = Command::new(PATCHBAY)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:1",
            "--agent-mtls",
            "required",
        ])
        .arg("--data-dir")
        .arg(&s.data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--tls-cert"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 1. Off: the agent enrols over HTTPS and gets no certificate.
    let root_a = deb_root(&minbase_before());
    let state_a = tmp.join("agent-a");
    {
        let _srv = s.serve("off");
        let t = s.enroll_token(5);
        ok(&agent(&s, root_a.path(), &state_a, Some(&t)));
        assert!(!state_a.join("client-cert.json").exists());
        assert!(!s.data.join("agent-ca.pem").exists(), "no CA while off");
    }

    // 2. Optional: the CA is made; the enrolled agent picks its certificate
    // up at its next check-in (the server asks for it).
    let _srv = s.serve("optional");
    let ca_key = s.data.join("agent-ca.key");
    assert_eq!(
        std::fs::metadata(&ca_key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    ok(&agent(&s, root_a.path(), &state_a, None));
    let cc = json(&state_a.join("client-cert.json"));
    let id_a = json(&state_a.join("identity.json"));
    let agent_a = id_a["agent_id"].as_str().unwrap().to_string();
    let secret_a = id_a["secret"].as_str().unwrap().to_string();
    std::fs::write(tmp.join("a.pem"), cc["cert_pem"].as_str().unwrap()).unwrap();
    std::fs::write(tmp.join("a.key"), cc["key_pem"].as_str().unwrap()).unwrap();
    // openssl judges the certificate: it chains to the agent CA, is for
    // client authentication only, names the agent, and its key is the
    // agent's own.
    let agent_ca = s.data.join("agent-ca.pem");
    let verify = openssl(
        tmp,
        &[
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            agent_ca.to_str().unwrap(),
            "a.pem",
        ],
    );
    assert!(verify.contains("a.pem: OK"), "{verify}");
    let text = openssl(tmp, &["x509", "-in", "a.pem", "-noout", "-text"]);
    assert!(text.contains(&format!("CN = {agent_a}")), "{text}");
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(!text.contains("TLS Web Server Authentication"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    let cert_pub = openssl(tmp, &["x509", "-in", "a.pem", "-noout", "-pubkey"]);
    let key_pub = openssl(tmp, &["pkey", "-in", "a.key", "-pubout"]);
    assert_eq!(cert_pub, key_pub);
    let der_sha = {
        let out = Command::new("sh")
            .arg("-c")
            .arg("openssl x509 -in a.pem -outform DER | sha256sum")
            .current_dir(tmp)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(cc["sha256"].as_str().unwrap(), der_sha);
    // Stored and audited with that fingerprint.
    let issued = s.audit("agent.certificate");
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(issued[0].detail["sha256"], der_sha.as_str());
    assert_eq!(issued[0].actor, format!("agent:{agent_a}"));

    // A certificate from a CA the server does not trust fails the handshake
    // (here: the test CA's own server certificate, presented as a client's).
    let foreign = s
        .client(Some(secret_a.clone()))
        .with_client_cert(
            &std::fs::read_to_string(tmp.join("server.pem")).unwrap(),
            &std::fs::read_to_string(tmp.join("server.key")).unwrap(),
            "foreign",
        )
        .unwrap();
    let hash_a = json(&state_a.join("last-inventory.json"))["hash"]
        .as_str()
        .unwrap()
        .to_string();
    match checkin(&foreign, &hash_a) {
        Err(HttpError::Transport(m)) => assert!(!m.is_empty()),
        other => panic!("a foreign certificate must fail the handshake: {other:?}"),
    }
    drop(_srv);

    // 3. Required.
    let _srv = s.serve("required");
    ok(&agent(&s, root_a.path(), &state_a, None));
    let with_a = s
        .client(Some(secret_a.clone()))
        .with_client_cert(
            cc["cert_pem"].as_str().unwrap(),
            cc["key_pem"].as_str().unwrap(),
            "a",
        )
        .unwrap();
    checkin(&with_a, &hash_a).unwrap();

    // A stolen credential alone is refused, and the refusal audited.
    let bare = s.client(Some(secret_a.clone()));
    match checkin(&bare, &hash_a) {
        Err(HttpError::Api {
            status, message, ..
        }) => {
            assert_eq!(status, 401);
            assert!(message.contains("no client certificate"), "{message}");
        }
        other => panic!("a credential without its certificate must be refused: {other:?}"),
    }
    let denied = s.audit("request.denied");
    assert!(
        denied.iter().any(|e| e.actor == format!("agent:{agent_a}")
            && e.detail["reason"]
                .as_str()
                .unwrap_or("")
                .contains("no client certificate")),
        "{denied:?}"
    );

    // An enrolment without a certificate request is refused and costs the
    // token nothing (the one-use token still enrols afterwards).
    let one = s.enroll_token(1);
    let root_b = deb_root(&minbase_before());
    let machine_b = std::fs::read_to_string(root_b.path().join("etc/machine-id"))
        .unwrap()
        .trim()
        .to_string();
    let enrol = |csr: Option<String>| -> Result<EnrollResponse, HttpError> {
        s.client(None).send(
            "POST",
            "/agent/v1/enroll",
            &EnrollRequest {
                protocol: 1,
                enroll_token: one.clone(),
                hostname: "host-b".into(),
                machine_id: machine_b.clone(),
                agent_secret: None,
                csr,
            },
        )
    };
    match enrol(None) {
        Err(HttpError::Api {
            status, message, ..
        }) => {
            assert_eq!(status, 400);
            assert!(message.contains("csr"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match enrol(Some(
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".into(),
    )) {
        Err(HttpError::Api {
            status, message, ..
        }) => {
            assert_eq!(status, 400);
            assert!(message.contains("csr"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Agent B: its own key, from openssl; a subject it chose is ignored.
    let (key_b, csr_b) = openssl_csr(tmp, "b");
    let b = enrol(Some(csr_b)).unwrap();
    let cert_b = b.client_certificate.expect("a certificate for B");
    std::fs::write(tmp.join("b.pem"), &cert_b.certificate).unwrap();
    let text_b = openssl(tmp, &["x509", "-in", "b.pem", "-noout", "-subject"]);
    assert!(text_b.contains(&b.agent_id), "{text_b}");
    assert!(!text_b.contains("whatever-i-like"), "{text_b}");

    // A's credential with B's (valid, same CA) certificate: refused.
    let a_with_b = s
        .client(Some(secret_a.clone()))
        .with_client_cert(&cert_b.certificate, &key_b, "b")
        .unwrap();
    match checkin(&a_with_b, &hash_a) {
        Err(HttpError::Api {
            status, message, ..
        }) => {
            assert_eq!(status, 401);
            assert!(message.contains("not the one issued"), "{message}");
        }
        other => panic!("another agent's certificate must be refused: {other:?}"),
    }

    // Renewal: A gets a new certificate (presenting the current one); the
    // old one stops working at once.
    let (key_a2, csr_a2) = openssl_csr(tmp, "a2");
    let renewed: IssuedCertificate = with_a
        .send(
            "POST",
            "/agent/v1/certificate",
            &CertificateRequest {
                protocol: 1,
                csr: csr_a2,
            },
        )
        .unwrap();
    assert_ne!(renewed.sha256, cc["sha256"].as_str().unwrap());
    let old = s
        .client(Some(secret_a.clone()))
        .with_client_cert(
            cc["cert_pem"].as_str().unwrap(),
            cc["key_pem"].as_str().unwrap(),
            "old",
        )
        .unwrap();
    assert!(matches!(
        checkin(&old, &hash_a),
        Err(HttpError::Api { status: 401, .. })
    ));
    let new = s
        .client(Some(secret_a.clone()))
        .with_client_cert(&renewed.certificate, &key_a2, "new")
        .unwrap();
    checkin(&new, &hash_a).unwrap();
    assert_eq!(s.audit("agent.certificate").len(), 2);

    // The real agent's stored certificate is now the old one: refused (401),
    // and with an enrolment token it recovers by re-enrolling (its old
    // credential as proof) with a new key, then checks in.
    let t = s.enroll_token(2);
    let before = s.audit("agent.enroll").len();
    ok(&agent(&s, root_a.path(), &state_a, Some(&t)));
    assert_eq!(s.audit("agent.enroll").len(), before + 1);
    let cc2 = json(&state_a.join("client-cert.json"));
    assert_ne!(cc2["sha256"], cc["sha256"]);
    assert_ne!(cc2["key_pem"], cc["key_pem"]);
    let enrolled = s.audit("agent.enroll");
    let last = enrolled.last().unwrap();
    assert_eq!(last.detail["certificate"]["sha256"], cc2["sha256"]);
    assert_eq!(last.detail["re_enrolled"], true);
    // And it keeps checking in with it.
    ok(&agent(&s, root_a.path(), &state_a, None));
}

crate::both_backends!(agent_mutual_tls);
