//! `patchbay config check`: a valid file is summarised without its secret;
//! an invalid one, or a bad environment override, fails naming the file,
//! line and key (or the variable); the configuration file the Debian package
//! installs is valid.

use crate::support::PATCHBAY;
use std::process::{Command, Output};

fn check(file: &std::path::Path, env: &[(&str, &str)]) -> Output {
    Command::new(PATCHBAY)
        .args(["config", "check"])
        .arg(file)
        .env_remove("PATCHBAY_CONFIG")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn config_check_names_the_error_and_never_prints_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[smtp]\nhost = \"smtp.example.net\"\ntls = \"starttls\"\nusername = \"pb\"\npassword = \"hunter2-secret\"\nfrom = \"Patchbay <pb@example.net>\"\n",
    )
    .unwrap();
    let out = check(&good, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("[smtp] smtp.example.net:587 (starttls)"),
        "{stdout}"
    );
    assert!(stdout.contains("password (not shown)"), "{stdout}");
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "{stdout}{stderr}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[syslog]\ntransport = \"tcp\"\nhost = \"siem.example\"\nport = 70000\n",
    )
    .unwrap();
    let out = check(&bad, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bad.toml:4:8: [syslog] port: 70000: expected a port"),
        "{stderr}"
    );

    // An override from the environment is checked too, and named.
    let out = check(&good, &[("PATCHBAY_SMTP_PORT", "x")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("PATCHBAY_SMTP_PORT: \"x\""), "{stderr}");
    // A secret given badly is not echoed either.
    std::fs::write(
        &bad,
        "[smtp]\nhost = \"smtp.example.net\"\ntls = \"starttls\"\nusername = \"pb\"\npassword = 12345678\nfrom = \"pb@example.net\"\n",
    )
    .unwrap();
    let out = check(&bad, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bad.toml:5"), "{stderr}");
    assert!(!stderr.contains("12345678"), "{stderr}");

    // The file the package installs as /etc/patchbay/server.toml.
    let packaged =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/etc/server.toml");
    let out = check(&packaged, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `[[discovery_scan]]`: summarised when valid; a range that is an nmap
/// option is refused naming the file, the line and the scan.
#[test]
fn config_check_reads_discovery_scans() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("scan.toml");
    std::fs::write(
        &good,
        "[[discovery_scan]]\nname = \"dc1\"\nranges = [\"10.20.0.0/22\"]\nports = \"22,443\"\nevery = \"6h\"\n",
    )
    .unwrap();
    let out = check(&good, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("[[discovery_scan]] dc1 over 10.20.0.0/22 ports 22,443, every 6h"),
        "{stdout}"
    );
    let bad = dir.path().join("bad-scan.toml");
    std::fs::write(
        &bad,
        "\n[[discovery_scan]]\nname = \"dc1\"\nranges = [\"--script=evil\"]\n",
    )
    .unwrap();
    let out = check(&bad, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bad-scan.toml:3: [[discovery_scan]] \"dc1\": ranges:"),
        "{stderr}"
    );
}
