//! `patchbay feeds import` against a server (issue 16, item 2) and `patchbay
//! feeds mirror` into a real `patchbay serve` (item 1, air gap): the real
//! binaries, over loopback.

use crate::support::{PATCHBAY, ServeProcess, Server, fixtures, minbase_before, ok};
use patchbay_proto::api::{FeedOut, List};
use std::process::Command;
use std::time::{Duration, Instant};

const KEV_OLD: &str = "feeds/kev/known_exploited_vulnerabilities-2025.08.25.json.gz";

/// Acceptance: with `PATCHBAY_URL` set, `feeds import` uploads each file to
/// that server, which imports it (audited as the token's owner) and
/// re-assesses its fleet; nothing is written next to where it runs.
fn import_uploads_to_the_server(backend: &str) {
    let s = Server::start(backend);
    let _root = s.host_with(&minbase_before());
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(PATCHBAY)
        .current_dir(cwd.path())
        .env("PATCHBAY_URL", &s.url)
        .env("PATCHBAY_TOKEN", &s.admin)
        .env_remove("PATCHBAY_DB")
        .args(["feeds", "import"])
        .arg(fixtures().join("feeds/osv/Debian-12-derived.osv.zip"))
        .arg(fixtures().join(KEV_OLD))
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(
        text.contains("upload:Debian-12-derived.osv.zip: OSV: "),
        "{text}"
    );
    assert!(
        text.contains(
            "upload:known_exploited_vulnerabilities-2025.08.25.json.gz: KEV catalog 2025.08.25: "
        ),
        "{text}"
    );
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "nothing written where it ran"
    );
    let feeds: List<FeedOut> = s.admin().get("/api/v1/feeds").unwrap();
    let kinds: Vec<(&str, &str)> = feeds
        .items
        .iter()
        .map(|f| (f.kind.as_str(), f.source.as_str()))
        .collect();
    assert!(
        kinds.contains(&("osv", "upload:Debian-12-derived.osv.zip")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(
            "kev",
            "upload:known_exploited_vulnerabilities-2025.08.25.json.gz"
        )),
        "{kinds:?}"
    );
    assert!(
        feeds
            .items
            .iter()
            .all(|f| f.imported_by.starts_with("token:")),
        "{feeds:?}"
    );
    // The server re-assessed its fleet: the minbase host has findings.
    let findings: List<patchbay_proto::api::FindingOut> =
        s.admin().get("/api/v1/findings").unwrap();
    assert!(!findings.items.is_empty());
    assert!(
        text.contains(&format!(
            "assessed the fleet: {} findings opened",
            findings.items.len()
        )),
        "{text}"
    );
    // An auditor's token may not upload; the refusal arrives as a 403 even
    // for a file much larger than the socket buffers (the server answers
    // without reading it: a client that wrote it all first saw "Broken pipe").
    let t: patchbay_proto::api::TokenCreated = s
        .admin()
        .send(
            "POST",
            "/api/v1/tokens",
            &serde_json::json!({"name": "aud", "role": "auditor"}),
        )
        .unwrap();
    let out = Command::new(PATCHBAY)
        .env("PATCHBAY_URL", &s.url)
        .env("PATCHBAY_TOKEN", &t.token)
        .args(["feeds", "import"])
        .arg(fixtures().join("feeds/osv/Debian-12-derived.osv.zip"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403") || err.contains("forbidden"), "{err}");
}

crate::both_backends!(
    import_uploads_to_the_server,
    local_mode_refuses_an_uninitialised_database
);

/// Acceptance: with no server (`PATCHBAY_URL` / `--url`) and no `--db` /
/// `--data-dir`, it fails naming both, and creates nothing; in local mode
/// it refuses a data directory no server has initialised.
#[test]
fn import_without_a_server_or_a_database_names_both() {
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(PATCHBAY)
        .current_dir(cwd.path())
        .env_remove("PATCHBAY_URL")
        .env_remove("PATCHBAY_DB")
        .args(["feeds", "import"])
        .arg(fixtures().join(KEV_OLD))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in ["PATCHBAY_URL", "--url", "--db", "--data-dir"] {
        assert!(err.contains(want), "{want}: {err}");
    }
    // Local mode on a directory no server has initialised: refused, and
    // no database is created.
    let out = Command::new(PATCHBAY)
        .current_dir(cwd.path())
        .env_remove("PATCHBAY_URL")
        .args(["feeds", "import", "--data-dir", "pb"])
        .arg(fixtures().join(KEV_OLD))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no server has initialised"), "{err}");
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
}

/// Local mode refuses a database no server has initialised (an empty
/// PostgreSQL database, a SQLite file that is not there) and leaves it as
/// it was.
fn local_mode_refuses_an_uninitialised_database(backend: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = rt.block_on(patchbay_store::testing::fresh_url(backend));
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(PATCHBAY)
        .env_remove("PATCHBAY_URL")
        .args(["feeds", "import", "--db", &url, "--data-dir"])
        .arg(dir.path())
        .arg(fixtures().join(KEV_OLD))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no server has initialised this database"),
        "{err}"
    );
    assert!(
        !rt.block_on(patchbay_store::initialised(&url)).unwrap(),
        "left uninitialised"
    );
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Acceptance (air gap): `patchbay feeds mirror` writes the configured
/// sources and a signed manifest; a `patchbay serve` configured with the
/// mirror directory and its public key imports it, and refuses it — naming
/// the file — once a file was tampered with.
#[test]
fn a_mirror_written_by_the_cli_is_synced_and_a_tampered_one_refused() {
    let work = tempfile::tempdir().unwrap();
    let mirror = work.path().join("mirror");
    let key = work.path().join("mirror.key");
    let upstream = work.path().join("upstream.toml");
    std::fs::write(
        &upstream,
        format!(
            "[[feed_source]]\nname = \"kev\"\nkind = \"kev\"\npath = {:?}\n",
            fixtures().join(KEV_OLD).display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(PATCHBAY)
        .args(["feeds", "mirror"])
        .arg(&mirror)
        .arg("--config")
        .arg(&upstream)
        .arg("--key")
        .arg(&key)
        .output()
        .unwrap();
    let text = ok(&out);
    let public = text
        .rsplit("mirror_key): ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(public.len(), 64, "{text}");
    // The manifest verifies with the printed key, and lists the file.
    let manifest = std::fs::read(mirror.join("manifest.json")).unwrap();
    let sig = std::fs::read_to_string(mirror.join("manifest.json.sig")).unwrap();
    let vk = patchbay_core::audit::public_key(&public).unwrap();
    assert!(patchbay_core::audit::verify_bytes(&vk, &manifest, &sig));
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let file = m["files"][0]["file"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read(mirror.join(&file)).unwrap(),
        std::fs::read(fixtures().join(KEV_OLD)).unwrap()
    );
    assert_eq!(m["files"][0]["name"], "kev");

    // The air-gapped server.
    let data = work.path().join("data");
    let config = work.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[[feed_source]]\nname = \"kev\"\nkind = \"kev\"\nmirror = {:?}\nmirror_key = \"{public}\"\nevery = \"1s\"\n",
            mirror.display().to_string()
        ),
    )
    .unwrap();
    let p = ServeProcess::start(
        &data,
        &["--config", config.to_str().unwrap(), "--duty-tick", "100ms"],
        "info",
    );
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let client = patchbay_client::Client::new(&p.url, Some(admin), Duration::from_secs(30));
    wait_for("the mirror imported", || {
        let f: List<FeedOut> = client.get("/api/v1/feeds").unwrap();
        f.items
            .iter()
            .any(|f| f.kind == "kev" && f.version == "2025.08.25")
    });
    // Tampered: another byte in the file. The next attempt (every 1s, on
    // the server's real clock) is refused, naming the file.
    let mut bytes = std::fs::read(mirror.join(&file)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(mirror.join(&file), &bytes).unwrap();
    let path = mirror.join(&file).display().to_string();
    wait_for("the tampered file refused", || {
        p.lines().iter().any(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("refused"))
                && l["fields"]["error"].as_str().is_some_and(|e| {
                    e.contains(&path) && e.contains("does not match the signed manifest")
                })
        })
    });
    let f: List<FeedOut> = client.get("/api/v1/feeds").unwrap();
    let kev: Vec<&FeedOut> = f.items.iter().filter(|f| f.kind == "kev").collect();
    assert_eq!(kev.len(), 1);
    assert_eq!(kev[0].version, "2025.08.25", "the last good data stays");
}
