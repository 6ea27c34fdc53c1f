//! `patchbay serve --config FILE` end to end (issue 15): the `[syslog]`
//! sink forwards the running server's audit entries (to a UDP socket of the
//! test), an environment variable overrides the file, `/metrics` shows the
//! SIEM counters, the SMTP password never reaches the log; and a bad file
//! stops the start with its name, line and key — on SQLite and PostgreSQL.

use crate::support::{PATCHBAY, ServeProcess};
use patchbay_client::Client;
use patchbay_core::siem;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn serve_with_a_config_file(backend: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(patchbay_store::testing::fresh_url(backend));
    let dir = tempfile::tempdir().unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let port = udp.local_addr().unwrap().port();
    let config = dir.path().join("patchbay.toml");
    // The file names a wrong port; PATCHBAY_SYSLOG_PORT (the environment)
    // wins over it.
    std::fs::write(
        &config,
        "[syslog]\ntransport = \"udp\"\nhost = \"127.0.0.1\"\nport = 9\nformat = \"cef\"\nhostname = \"pb-e2e\"\n\n\
         [smtp]\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"pb\"\npassword = \"s3cret-smtp-pw\"\nfrom = \"Patchbay <pb@example.net>\"\n",
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
        &[("PATCHBAY_SYSLOG_PORT", &port_s)],
    );
    let token = std::fs::read_to_string(dir.path().join("data/admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let c = Client::new(&server.url, Some(token), Duration::from_secs(10));
    // Once the sink runs (it leads and has stored its cursor at the head),
    // a change is forwarded.
    let start = Instant::now();
    let mut buf = vec![0u8; 65536];
    let mut seen: Option<siem::Cef> = None;
    let mut n = 0;
    while seen.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no token.create forwarded"
        );
        n += 1;
        let _: Value = c
            .send(
                "POST",
                "/api/v1/tokens",
                &json!({"name": format!("e2e-{n}"), "role": "auditor"}),
            )
            .unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        while let Ok(len) = udp.recv(&mut buf) {
            let p = siem::parse_5424(std::str::from_utf8(&buf[..len]).unwrap()).unwrap();
            assert_eq!(p.hostname, "pb-e2e");
            assert_eq!(p.app_name, "patchbay");
            if p.msgid == "token.create" {
                seen = Some(siem::parse_cef(&p.msg).unwrap());
            }
        }
    }
    let cef = seen.unwrap();
    assert_eq!(cef.header[4], "210");
    assert!(cef.get("cs2").unwrap().contains("e2e-"), "{cef:?}");
    let metrics = ureq::get(format!("{}/metrics", server.url))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let sent: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("patchbay_siem_sent_total "))
        .expect("the SIEM counter is exported")
        .parse()
        .unwrap();
    assert!(sent >= 1, "{metrics}");
    assert!(metrics.contains("patchbay_siem_connected 1"), "{metrics}");
    assert!(
        metrics.contains("patchbay_siem_dropped_total 0"),
        "{metrics}"
    );
    let log = server.log.lock().unwrap().join("\n");
    assert!(log.contains("SMTP relay configured"), "{log}");
    assert!(
        !log.contains("s3cret-smtp-pw"),
        "the SMTP password reached the log"
    );
}

#[test]
fn serve_with_a_config_file_sqlite() {
    serve_with_a_config_file("sqlite");
}

#[test]
fn serve_with_a_config_file_postgres() {
    serve_with_a_config_file("postgres");
}

/// A bad value stops `serve` before it listens, naming file, line and key;
/// a bad secret is not echoed.
#[test]
fn a_bad_config_file_stops_the_start_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str, env: &[(&str, &str)]| {
        let f = dir.path().join("bad.toml");
        std::fs::write(&f, text).unwrap();
        let out = std::process::Command::new(PATCHBAY)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&f)
            .env_remove("PATCHBAY_DB")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let e = run(
        "[syslog]\ntransport = \"tcp\"\nhost = \"siem\"\nport = 70000\n",
        &[],
    );
    assert!(
        e.contains("bad.toml:4:8: [syslog] port: 70000: expected a port"),
        "{e}"
    );
    let e = run(
        "[smtp]\nhost = \"m\"\ntls = \"none\"\nfrom = \"a@b\"\nusername = \"u\"\npassword = [\"hunter2-pw\"]\n",
        &[],
    );
    assert!(
        e.contains("bad.toml:6:12: [smtp] password: invalid value (not shown"),
        "{e}"
    );
    assert!(!e.contains("hunter2-pw"), "{e}");
    // The file's [smtp] becomes the mailer: plain SMTP to a host that is not
    // loopback is refused at start, naming the section.
    let e = run(
        "[smtp]\nhost = \"mail.example.net\"\ntls = \"none\"\nfrom = \"a@example.net\"\n",
        &[],
    );
    assert!(e.contains("configuration: [smtp]:"), "{e}");
    let e = run(
        "",
        &[
            ("PATCHBAY_SYSLOG_TRANSPORT", "carrier-pigeon"),
            ("PATCHBAY_SYSLOG_HOST", "h"),
        ],
    );
    assert!(
        e.contains("PATCHBAY_SYSLOG_TRANSPORT (environment, overriding [syslog] transport)"),
        "{e}"
    );
}
