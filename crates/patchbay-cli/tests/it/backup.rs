//! `patchbay backup` and `patchbay restore` end to end, on both backends: a
//! backup taken while the server runs restores into a fresh data directory
//! (and, for PostgreSQL, a fresh database) with every table equal to the
//! original's at backup time; `audit verify` passes on it; a server starts on
//! it and answers the original's admin token with the original's assets; a
//! second restore over it is refused without `--force`; an archive whose key
//! file was changed, or which lost a file, is refused naming that file, and
//! writes nothing.

use crate::support::{PATCHBAY, ServeProcess, Server, db_dump, fixtures, minbase_before, ok};
use patchbay_proto::api::{AssetSummary, List};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn patchbay(args: &[&str], extra: &[&Path]) -> Output {
    Command::new(PATCHBAY)
        .args(args)
        .args(extra)
        .env_remove("PATCHBAY_DB")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn failed(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected a failure; stdout: {}; stderr: {err}",
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

/// The archive's members, name → bytes, in order.
fn members(file: &Path) -> Vec<(String, Vec<u8>)> {
    let f = std::fs::File::open(file).unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            (name, b)
        })
        .collect()
}

/// Writes `members` as a new archive (as an attacker, or a damaged disk, would).
fn write_members(file: &Path, members: &[(String, Vec<u8>)]) {
    let f = std::fs::File::create(file).unwrap();
    let mut t = tar::Builder::new(flate2::write::GzEncoder::new(
        f,
        flate2::Compression::fast(),
    ));
    for (name, bytes) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        t.append_data(&mut h, name, bytes.as_slice()).unwrap();
    }
    t.into_inner().unwrap().finish().unwrap();
}

fn backup_then_restore_round_trips_and_refuses_tampering(backend: &str) {
    let s = Server::start(backend);
    s.import_feeds(&[
        "feeds/osv/Debian-12-derived.osv.zip",
        "feeds/kev/known_exploited_vulnerabilities-2026.08.07.json.gz",
    ]);
    let _root = s.host_with(&minbase_before());
    let assets: List<AssetSummary> = s.admin().get("/api/v1/assets").unwrap();
    assert_eq!(assets.items.len(), 1);
    let findings = crate::support::db_pairs(&s.db_url, "SELECT 'open', COUNT(*) FROM findings");
    assert!(
        findings[0].1 > 0,
        "the fixture host has findings: {findings:?}"
    );

    let before = db_dump(&s.db_url);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("patchbay.tar.gz");
    // Online: the server is running.
    let out = patchbay(
        &["backup", "--db", &s.db_url, "--data-dir"],
        &[&s.data_dir, Path::new("--out"), &file],
    );
    let said = ok(&out);
    assert!(said.contains("backup written"), "{said}");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600,
        "the backup holds private keys"
    );
    let names: Vec<String> = members(&file).into_iter().map(|(n, _)| n).collect();
    let db_member = if backend == "postgres" {
        "patchbay.pgdump"
    } else {
        "patchbay.db"
    };
    assert_eq!(names, ["MANIFEST.json", db_member, "server-signing.key"]);
    // An existing --out is not overwritten.
    let err = failed(&patchbay(
        &["backup", "--db", &s.db_url, "--data-dir"],
        &[&s.data_dir, Path::new("--out"), &file],
    ));
    assert!(err.contains("exists"), "{err}");

    // Restore into a fresh place.
    let target = work.path().join("restored");
    let target_db = match backend {
        "postgres" => Some(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(patchbay_store::testing::fresh_postgres_url()),
        ),
        _ => None,
    };
    let target_url = target_db
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", target.join("patchbay.db").display()));
    let mut restore = vec!["restore".to_string(), file.display().to_string()];
    restore.extend(["--data-dir".into(), target.display().to_string()]);
    if let Some(u) = &target_db {
        restore.extend(["--db".into(), u.clone()]);
    }
    let restore: Vec<&str> = restore.iter().map(String::as_str).collect();
    let said = ok(&patchbay(&restore, &[]));
    assert!(said.contains("audit log intact"), "{said}");
    assert_eq!(
        db_dump(&target_url),
        before,
        "every table restored as it was at backup time"
    );
    assert_eq!(
        std::fs::read(target.join("server-signing.key")).unwrap(),
        std::fs::read(s.data_dir.join("server-signing.key")).unwrap()
    );

    // `audit verify` against the restored key passes, with no unsigned tail.
    let out = Command::new(PATCHBAY)
        .args(["audit", "verify", "--db", &target_url, "--data-dir"])
        .arg(&target)
        .env_remove("PATCHBAY_DB")
        .output()
        .unwrap();
    assert!(ok(&out).contains("audit log intact"));

    // A server starts on it and knows the original's token and asset.
    let mut extra = Vec::new();
    if let Some(u) = &target_db {
        extra.extend(["--db", u.as_str()]);
    }
    let mut served = ServeProcess::start(&target, &extra, "info");
    let restored: List<AssetSummary> = patchbay_client::Client::new(
        &served.url,
        Some(s.admin.clone()),
        std::time::Duration::from_secs(30),
    )
    .get("/api/v1/assets")
    .unwrap();
    assert_eq!(
        restored.items.iter().map(|a| &a.name).collect::<Vec<_>>(),
        assets.items.iter().map(|a| &a.name).collect::<Vec<_>>()
    );
    served.kill();

    // A second restore over it is refused, naming what is in the way.
    let err = failed(&patchbay(&restore, &[]));
    if backend == "postgres" {
        assert!(err.contains("is not empty"), "{err}");
    } else {
        assert!(
            err.contains("patchbay.db") && err.contains("--force"),
            "{err}"
        );
    }

    // Tampered: the signing key replaced (a forger's key) — refused by name,
    // and nothing written.
    let mut m = members(&file);
    let key = m
        .iter_mut()
        .find(|(n, _)| n == "server-signing.key")
        .unwrap();
    key.1 = b"0000000000000000000000000000000000000000000000000000000000000001\n".to_vec();
    let tampered = work.path().join("tampered.tar.gz");
    write_members(&tampered, &m);
    let elsewhere = work.path().join("elsewhere");
    let err = failed(&patchbay(
        &["restore", tampered.to_str().unwrap(), "--data-dir"],
        &[&elsewhere],
    ));
    assert!(
        err.contains("server-signing.key does not match the manifest"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&elsewhere)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "a refused restore wrote {left:?}");

    // A member missing.
    let m: Vec<_> = members(&file)
        .into_iter()
        .filter(|(n, _)| n != db_member)
        .collect();
    write_members(&tampered, &m);
    let err = failed(&patchbay(
        &["restore", tampered.to_str().unwrap(), "--data-dir"],
        &[&elsewhere],
    ));
    assert!(
        err.contains(&format!(
            "{db_member} is listed in the manifest but missing"
        )),
        "{err}"
    );
    // Not a backup at all.
    let err = failed(&patchbay(
        &["restore", "--data-dir"],
        &[
            &elsewhere,
            &fixtures().join("feeds/osv/Debian-12-derived.osv.zip"),
        ],
    ));
    assert!(err.contains("not a Patchbay backup"), "{err}");
}

crate::both_backends!(backup_then_restore_round_trips_and_refuses_tampering);
