//! Rotation of the server's signing key (ADR 0007) end to end, on both
//! backends: `patchbay keys rotate` against a running server announces the
//! new key in the audit log under the old one and switches signing; `audit
//! verify` pinned to the old key follows the announcement over the whole
//! chain (and pinned to the new key accepts the chain before it); a
//! signature by the retired key after the rotation, and a forged
//! announcement inserted into the database by hand, fail verification. A
//! real `patchbay-agent` enrolled before the rotation re-pins from the
//! announcement in its next check-in answer, and a refusal it reports is
//! recorded in the audit log. An evidence bundle signed after the rotation
//! verifies from the old key through the rotations it carries; one whose
//! rotation is forged does not.

use crate::audit_chain::{exported, insert_sql, sql, verify};
use crate::support::{Server, deb_root, ok};
use patchbay_core::audit::{KeyAnnouncement, ROTATE_ACTION, Signer, entry_hash};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn hash_of(h: &Option<String>) -> [u8; 32] {
    hex::decode(h.as_ref().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

/// Appends a rotation entry to the log by hand (as an attacker with write
/// access to the database would): announcing `mallory`'s key, claiming to
/// come from `claimed_old`, signed (announcement and head) by `mallory`.
fn append_forged_announcement(s: &Server, claimed_old: &str, mallory: &Signer) -> i64 {
    let entries = exported(s);
    let last = entries.last().unwrap();
    let at = last.at_millis + 1;
    let fake = mallory.announce(mallory, at);
    let ann = KeyAnnouncement {
        old_public_key: claimed_old.to_string(),
        ..fake
    };
    let mut e = last.clone();
    e.seq = last.seq + 1;
    e.at_millis = at;
    e.actor = "token:1:admin".into();
    e.action = ROTATE_ACTION.into();
    e.target = format!("server_key:{}", ann.new_public_key);
    e.outcome = "ok".into();
    e.detail = serde_json::to_string(&ann).unwrap();
    let prev = hash_of(&last.hash);
    let h = entry_hash(
        &patchbay_core::audit::EntryFields {
            seq: e.seq,
            at_millis: e.at_millis,
            actor: &e.actor,
            action: &e.action,
            target: &e.target,
            outcome: &e.outcome,
            detail: &e.detail,
        },
        &prev,
    );
    e.prev_hash = Some(hex::encode(prev));
    e.hash = Some(hex::encode(h));
    e.sig = Some(mallory.sign_head(e.seq, &h));
    sql(
        s,
        &format!(
            "{}; UPDATE audit_head SET seq = {}, hash = '{}'",
            insert_sql(&e),
            e.seq,
            hex::encode(h)
        ),
    );
    e.seq
}

fn rotation_is_announced_and_followed(backend: &str) {
    let s = Server::start(backend);
    for name in ["ops", "ops2"] {
        ok(&s.cli(&["tokens", "create", "--name", name, "--role", "operator"]));
    }
    let old = patchbay_server::setup::load_signing_key(&s.data_dir, false)
        .unwrap()
        .unwrap();
    let old_hex = old.public_hex();
    ok(&verify(&s, &["--public-key", &old_hex]));
    // A real agent enrols and pins the old key.
    let root = deb_root("");
    let state = tempfile::tempdir().unwrap();
    let agent_args = [
        "--root",
        root.path().to_str().unwrap(),
        "--no-pending-updates",
    ];
    let token = s.enroll_token(1);
    ok(&s.agent_once(state.path(), Some(&token), &agent_args));
    let pin = || -> String {
        let id: serde_json::Value =
            serde_json::from_slice(&std::fs::read(state.path().join("identity.json")).unwrap())
                .unwrap();
        id["server_public_key"].as_str().unwrap().to_owned()
    };
    assert_eq!(pin(), old_hex);

    let bundles = tempfile::tempdir().unwrap();
    let before_zip = bundles.path().join("before.zip");
    ok(&s.cli(&["evidence", "export", "--out", before_zip.to_str().unwrap()]));

    // Rotate on the running server.
    let out = ok(&s.cli(&["keys", "rotate", "--format", "json"]));
    let rotated: patchbay_app::keys::KeyRotated = serde_json::from_str(&out).unwrap();
    let ann = rotated.announcement;
    assert_eq!(ann.old_public_key, old_hex);
    assert_ne!(ann.new_public_key, old_hex);
    // The key file holds the new key; the old private key is gone.
    let new = patchbay_server::setup::load_signing_key(&s.data_dir, false)
        .unwrap()
        .unwrap();
    assert_eq!(new.public_hex(), ann.new_public_key);
    let leftovers: Vec<_> = std::fs::read_dir(&s.data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("server-signing.key"))
        .collect();
    assert_eq!(leftovers, vec!["server-signing.key".to_string()]);
    // The server publishes and uses the new key.
    let who: serde_json::Value =
        serde_json::from_str(&ok(&s.cli(&["whoami", "--format", "json"]))).unwrap();
    assert_eq!(who["server_public_key"], ann.new_public_key.as_str());
    for name in ["after1", "after2"] {
        ok(&s.cli(&["tokens", "create", "--name", name, "--role", "auditor"]));
    }
    // The agent's next check-in answer carries the announcement: it re-pins
    // (persisted in its state directory). A refusal it keeps there (as after
    // a forged announcement) goes with that check-in and is audited.
    std::fs::write(
        state.path().join("key-refusals.json"),
        r#"["the announcement of key abc is forged"]"#,
    )
    .unwrap();
    ok(&s.agent_once(state.path(), None, &agent_args));
    assert_eq!(pin(), ann.new_public_key, "the agent re-pinned");
    assert!(!state.path().join("key-refusals.json").exists(), "reported");

    // Evidence: a bundle signed by the new key verifies pinned to the old
    // one (following the rotation it carries) and to the new one; the bundle
    // from before the rotation still verifies with the old key.
    let after_zip = bundles.path().join("after.zip");
    ok(&s.cli(&["evidence", "export", "--out", after_zip.to_str().unwrap()]));
    let evidence_verify = |zip: &std::path::Path, key: &str| {
        s.cli(&[
            "evidence",
            "verify",
            zip.to_str().unwrap(),
            "--public-key",
            key,
        ])
    };
    let out = ok(&evidence_verify(&after_zip, &old_hex));
    assert!(
        out.contains(&format!(
            "followed the server's key rotation to key {}",
            ann.new_public_key
        )),
        "{out}"
    );
    ok(&evidence_verify(&after_zip, &ann.new_public_key));
    ok(&evidence_verify(&before_zip, &old_hex));
    let other = Signer::from_seed(&[9; 32]).public_hex();
    assert_eq!(evidence_verify(&after_zip, &other).status.code(), Some(1));
    // A bundle re-signed by another key that carries a forged rotation from
    // the old key is refused, naming the forgery.
    let mallory = Signer::from_seed(&[8; 32]);
    let forged = vec![KeyAnnouncement {
        old_public_key: old_hex.clone(),
        ..mallory.announce(&mallory, 0)
    }];
    let bytes = patchbay_app::evidence::write_bundle(
        &[(
            patchbay_app::evidence::KEY_ANNOUNCEMENTS.to_string(),
            serde_json::to_vec(&forged).unwrap(),
        )],
        jiff::Timestamp::now(),
        jiff::Timestamp::now(),
        &mallory,
    )
    .unwrap();
    let forged_zip = bundles.path().join("forged.zip");
    std::fs::write(&forged_zip, bytes).unwrap();
    let out = evidence_verify(&forged_zip, &old_hex);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("(forged)"), "{}", stderr(&out));

    // Stored: the rotation entry carries the announcement, signed by the old
    // key; the entry before it is the old key's, it and those after are the
    // new key's.
    let entries = exported(&s);
    let rot = entries
        .iter()
        .position(|e| e.action == ROTATE_ACTION)
        .expect("a rotation entry");
    let stored: KeyAnnouncement = serde_json::from_str(&entries[rot].detail).unwrap();
    assert_eq!(stored, ann);
    assert!(stored.signed_by(&old.verifying_key()));
    assert!(!stored.signed_by(&new.verifying_key()));
    let signed_by = |k: &Signer, e: &patchbay_app::evidence::ExportedEntry| {
        k.signed_head(e.seq, &hash_of(&e.hash), e.sig.as_deref())
    };
    assert!(signed_by(&old, &entries[rot - 1]));
    for e in &entries[rot..] {
        assert!(signed_by(&new, e) && !signed_by(&old, e), "entry {}", e.seq);
    }
    assert!(entries.len() > rot + 2, "entries after the rotation");
    let reported = entries
        .iter()
        .find(|e| e.action == "agent.key_announcement_refused")
        .expect("the agent's refusal is audited");
    assert!(
        reported
            .detail
            .contains("the announcement of key abc is forged"),
        "{}",
        reported.detail
    );
    let rot_seq = entries[rot].seq;

    // Pinned to the old key only: the whole chain verifies, following the
    // announcement (with every signature checked, and with the default
    // sampling).
    for every in ["1", "1024"] {
        let out = ok(&verify(&s, &["--public-key", &old_hex, "--every", every]));
        assert!(
            out.contains(&format!(
                "followed the key rotation in entry {rot_seq} to key {}",
                ann.new_public_key
            )),
            "{out}"
        );
    }
    // Pinned to the new key (explicitly, or the key file by default).
    let out = ok(&verify(
        &s,
        &["--public-key", &ann.new_public_key, "--every", "1"],
    ));
    assert!(
        out.contains(&format!("the pinned key was announced in entry {rot_seq}")),
        "{out}"
    );
    ok(&verify(&s, &[]));
    // Some other key pinned: refused.
    let stranger = Signer::from_seed(&[9; 32]).public_hex();
    assert_eq!(
        verify(&s, &["--public-key", &stranger]).status.code(),
        Some(1)
    );

    // The retired key signs nothing after its rotation: an entry after it
    // re-signed with the old key fails verification from the old key.
    let last = entries.last().unwrap();
    let forged_sig = old.sign_head(last.seq, &hash_of(&last.hash));
    sql(
        &s,
        &format!(
            "UPDATE audit_events SET sig = '{forged_sig}' WHERE seq = {}",
            last.seq
        ),
    );
    let out = verify(&s, &["--public-key", &old_hex]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "entry {}: the server signature does not verify",
            last.seq
        )),
        "{}",
        stderr(&out)
    );
    sql(
        &s,
        &format!(
            "UPDATE audit_events SET sig = '{}' WHERE seq = {}",
            last.sig.as_ref().unwrap(),
            last.seq
        ),
    );
    ok(&verify(&s, &["--public-key", &old_hex]));

    // A forged announcement inserted by hand (signed by another key,
    // claiming to come from the key in force) fails verification from either
    // pinned key, naming it; the server does not sign on top of it.
    let mallory = Signer::from_seed(&[7; 32]);
    let forged = append_forged_announcement(&s, &ann.new_public_key, &mallory);
    for pin in [&old_hex, &ann.new_public_key] {
        let out = verify(&s, &["--public-key", pin]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!(
                "entry {forged}: key rotation announcing {} is not signed by the key in force",
                mallory.public_hex()
            )),
            "{}",
            stderr(&out)
        );
    }
    let refused = s.cli(&[
        "tokens",
        "create",
        "--name",
        "on-forgery",
        "--role",
        "auditor",
    ]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not signed by this server's key"),
        "{}",
        stderr(&refused)
    );
}

crate::both_backends!(rotation_is_announced_and_followed);
