//! The hash-chained audit trail end to end, on both backends: an untouched
//! database passes `patchbay audit verify`; editing, deleting, inserting or
//! reordering one row directly in the database fails it, naming that entry;
//! an audit append that fails rolls the write back; the export carries what a
//! segment needs to be re-checked.

use crate::support::{PATCHBAY, Server, ok};
use patchbay_proto::api::List;
use std::process::{Command, Output};

pub(crate) fn verify(s: &Server, extra: &[&str]) -> Output {
    Command::new(PATCHBAY)
        .args(["audit", "verify", "--db", &s.db_url, "--data-dir"])
        .arg(&s.data_dir)
        .args(extra)
        .env_remove("PATCHBAY_DB")
        .output()
        .unwrap()
}

fn broken(s: &Server, needle: &str) {
    let out = verify(s, &["--every", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
}

pub(crate) fn sql(s: &Server, q: &str) -> u64 {
    crate::support::db_exec(&s.db_url, q)
}

pub(crate) fn exported(s: &Server) -> Vec<patchbay_app::evidence::ExportedEntry> {
    let text = ok(&s.cli(&[
        "audit",
        "export",
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
    ]));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn q(v: &Option<String>) -> String {
    match v {
        Some(s) => format!("'{}'", s.replace('\'', "''")),
        None => "NULL".into(),
    }
}

pub(crate) fn insert_sql(e: &patchbay_app::evidence::ExportedEntry) -> String {
    format!(
        "INSERT INTO audit_events (seq, at, actor, action, target, outcome, detail, prev_hash, hash, sig) \
         VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
        e.seq,
        e.at_millis,
        q(&Some(e.actor.clone())),
        q(&Some(e.action.clone())),
        q(&Some(e.target.clone())),
        q(&Some(e.outcome.clone())),
        q(&Some(e.detail.clone())),
        q(&e.prev_hash),
        q(&e.hash),
        q(&e.sig)
    )
}

fn tamper_is_detected_and_named(backend: &str) {
    let s = Server::start(backend);
    // Some history: tokens, an enrolment, a window, a refused request.
    let _ = s.enroll_token(2);
    ok(&s.cli(&["tokens", "create", "--name", "ops", "--role", "operator"]));
    ok(&s.cli(&[
        "windows",
        "add",
        "nightly",
        "--rrule",
        "FREQ=DAILY",
        "--dtstart",
        "2026-01-01T02:00",
        "--duration",
        "2h",
    ]));
    let _ = s
        .client(Some("pba_bogus"))
        .get::<serde_json::Value>("/api/v1/assets");
    ok(&s.cli(&["tokens", "create", "--name", "auditor", "--role", "auditor"]));

    let out = ok(&verify(&s, &["--every", "1"]));
    assert!(out.contains("audit log intact"), "{out}");
    let entries = exported(&s);
    let n = entries.len() as i64;
    assert!(n >= 5, "{n}");
    assert!(
        entries.iter().all(|e| e.sig.is_some()),
        "the server signs every entry"
    );
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );
    let e3 = entries[2].clone();
    let e4 = entries[3].clone();

    // Edit one field of entry 3.
    sql(
        &s,
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3",
    );
    broken(&s, "entry 3 was edited");
    sql(
        &s,
        &format!(
            "UPDATE audit_events SET actor = {} WHERE seq = 3",
            q(&Some(e3.actor.clone()))
        ),
    );
    ok(&verify(&s, &[]));

    // Edit the detail JSON (a different but equivalent text is an edit too).
    sql(
        &s,
        "UPDATE audit_events SET detail = detail || ' ' WHERE seq = 4",
    );
    broken(&s, "entry 4 was edited");
    sql(
        &s,
        &format!(
            "UPDATE audit_events SET detail = {} WHERE seq = 4",
            q(&Some(e4.detail.clone()))
        ),
    );
    ok(&verify(&s, &[]));

    // Delete entry 3.
    sql(&s, "DELETE FROM audit_events WHERE seq = 3");
    broken(&s, "entry 3 is missing");
    sql(&s, &insert_sql(&e3));
    ok(&verify(&s, &[]));

    // Delete the last entry (and leave the head alone).
    let last = entries.last().unwrap().clone();
    sql(&s, &format!("DELETE FROM audit_events WHERE seq = {n}"));
    broken(
        &s,
        &format!(
            "the chain head names entry {n} as the last, but the log ends at entry {}",
            n - 1
        ),
    );
    sql(&s, &insert_sql(&last));
    ok(&verify(&s, &[]));

    // Insert an entry after the last one.
    let mut forged = last.clone();
    forged.seq = n + 1;
    forged.actor = "mallory".into();
    forged.prev_hash = last.hash.clone();
    sql(&s, &insert_sql(&forged));
    broken(
        &s,
        &format!(
            "entry {} lies beyond the chain head (entry {n}): inserted",
            n + 1
        ),
    );
    // … and move the head to cover it: its hash does not match its content.
    sql(&s, &format!("UPDATE audit_head SET seq = {}", n + 1));
    broken(&s, &format!("entry {} was edited", n + 1));
    sql(
        &s,
        &format!(
            "DELETE FROM audit_events WHERE seq = {}; UPDATE audit_head SET seq = {n}",
            n + 1
        ),
    );
    ok(&verify(&s, &[]));

    // Reorder entries 3 and 4.
    sql(
        &s,
        "UPDATE audit_events SET seq = -3 WHERE seq = 3; UPDATE audit_events SET seq = 3 WHERE seq = 4; \
         UPDATE audit_events SET seq = 4 WHERE seq = -3",
    );
    broken(&s, "entry 3 does not follow entry 2");
    sql(
        &s,
        "UPDATE audit_events SET seq = -3 WHERE seq = 3; UPDATE audit_events SET seq = 3 WHERE seq = 4; \
         UPDATE audit_events SET seq = 4 WHERE seq = -3",
    );
    ok(&verify(&s, &[]));

    // A signature from another key fails; the right key pinned passes.
    sql(
        &s,
        &format!(
            "UPDATE audit_events SET sig = '{}' WHERE seq = {n}",
            "00".repeat(64)
        ),
    );
    broken(
        &s,
        &format!("entry {n}: the server signature does not verify"),
    );
    sql(
        &s,
        &format!(
            "UPDATE audit_events SET sig = {} WHERE seq = {n}",
            q(&last.sig)
        ),
    );
    let key = patchbay_server::setup::load_signing_key(&s.data_dir, false)
        .unwrap()
        .unwrap()
        .public_hex();
    let out = ok(&verify(&s, &["--public-key", &key]));
    assert!(out.contains("against the given public key"), "{out}");
    let other = patchbay_core::audit::Signer::from_seed(&[1; 32]).public_hex();
    let out = verify(&s, &["--public-key", &other]);
    assert_eq!(out.status.code(), Some(1));
}

/// An audit append that fails rolls the write back: with the chain head gone,
/// adding a window fails and stores nothing; once the head is back the log
/// verifies and the window was never created.
fn failed_audit_append_rolls_back_the_write(backend: &str) {
    let s = Server::start(backend);
    ok(&s.cli(&["tokens", "create", "--name", "ops", "--role", "operator"]));
    let (seq, hash): (i64, String) = {
        let e = exported(&s);
        let l = e.last().unwrap();
        (l.seq, l.hash.clone().unwrap())
    };
    sql(&s, "DELETE FROM audit_head");
    let out = s.cli(&[
        "windows",
        "add",
        "nightly",
        "--rrule",
        "FREQ=DAILY",
        "--dtstart",
        "2026-01-01T02:00",
        "--duration",
        "2h",
    ]);
    assert!(!out.status.success());
    sql(
        &s,
        &format!("INSERT INTO audit_head (id, seq, hash) VALUES (1, {seq}, '{hash}')"),
    );
    let l: List<patchbay_proto::api::WindowOut> = s.admin().get("/api/v1/windows").unwrap();
    assert!(
        l.items.is_empty(),
        "the write was rolled back with its audit entry"
    );
    let window_events = || {
        crate::support::db_pairs(
            &s.db_url,
            "SELECT kind, audit_seq FROM events WHERE kind = 'window.add'",
        )
    };
    assert!(window_events().is_empty(), "and with its outbox event");
    ok(&verify(&s, &["--every", "1"]));
    // And the next write works and is chained.
    ok(&s.cli(&[
        "windows",
        "add",
        "nightly",
        "--rrule",
        "FREQ=DAILY",
        "--dtstart",
        "2026-01-01T02:00",
        "--duration",
        "2h",
    ]));
    let e = exported(&s);
    assert_eq!(e.last().unwrap().action, "window.add");
    assert_eq!(e.last().unwrap().seq, seq + 1);
    // The committed change has its event, naming its audit entry.
    assert_eq!(window_events(), vec![("window.add".to_string(), seq + 1)]);
    ok(&verify(&s, &["--every", "1"]));
}

/// Rewrites the log from entry `from` on the way an attacker without the key
/// would: `edit` the entry, re-hash it and every later one, drop their
/// signatures (or re-sign them with `key`), and move the head.
fn rewrite_from(
    s: &Server,
    entries: &[patchbay_app::evidence::ExportedEntry],
    from: usize,
    edit: impl Fn(&mut patchbay_app::evidence::ExportedEntry),
    key: Option<&patchbay_core::audit::Signer>,
) {
    let mut prev: [u8; 32] = hex::decode(entries[from - 2].hash.as_ref().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let mut stmts = Vec::new();
    for (i, e) in entries.iter().enumerate().skip(from - 1) {
        let mut e = e.clone();
        if i == from - 1 {
            edit(&mut e);
        }
        let h = patchbay_core::audit::entry_hash(
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
        stmts.push(format!(
            "UPDATE audit_events SET actor = {}, prev_hash = '{}', hash = '{}', sig = {} WHERE seq = {}",
            q(&Some(e.actor.clone())),
            hex::encode(prev),
            hex::encode(h),
            q(&key.map(|k| k.sign_head(e.seq, &h))),
            e.seq
        ));
        prev = h;
    }
    stmts.push(format!(
        "UPDATE audit_head SET hash = '{}'",
        hex::encode(prev)
    ));
    sql(s, &stmts.join("; "));
}

/// Security issue, hole 1: the history rewritten without the signing key (an
/// entry edited, every later entry re-hashed, their signatures dropped, the
/// head moved) must fail verification against the pinned key, and the server
/// must not sign on top of the forgery.
fn history_rewritten_without_the_key_is_refused(backend: &str) {
    let s = Server::start(backend);
    let _ = s.enroll_token(2);
    for name in ["ops", "ops2", "ops3"] {
        ok(&s.cli(&["tokens", "create", "--name", name, "--role", "operator"]));
    }
    let entries = exported(&s);
    let n = entries.len() as i64;
    assert!(n >= 5, "{n}");
    let key = patchbay_server::setup::load_signing_key(&s.data_dir, false)
        .unwrap()
        .unwrap();
    let pinned = ["--public-key", &key.public_hex()];
    ok(&verify(&s, &pinned));

    rewrite_from(&s, &entries, 3, |e| e.actor = "mallory".into(), None);
    let tail = format!("entries 3 to {n} are not covered by any server signature");
    for every in ["1", "1024"] {
        let out = verify(&s, &[pinned[0], pinned[1], "--every", every]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&tail), "{err}");
    }
    // The server refuses to sign on top of it: the write fails, nothing is
    // appended, and the forgery stays uncovered.
    let refused = s.cli(&["tokens", "create", "--name", "after", "--role", "auditor"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not signed by this server's key"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let after = exported(&s);
    assert_eq!(after.len() as i64, n, "nothing appended over the forgery");
    assert_eq!(after[2].actor, "mallory");
    let out = verify(&s, &pinned);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&tail));
    // An unsigned tail passes only when explicitly allowed, and only as long
    // as the bound covers it.
    let short = (n - 3).to_string();
    let out = verify(&s, &[pinned[0], pinned[1], "--allow-unsigned-tail", &short]);
    assert_eq!(out.status.code(), Some(1));
    let enough = (n - 2).to_string();
    let out = ok(&verify(
        &s,
        &[pinned[0], pinned[1], "--allow-unsigned-tail", &enough],
    ));
    assert!(out.contains("WARNING"), "{out}");

    // Re-signed with the attacker's own key, recorded in the database as a
    // "server key": the pinned key refuses it; only the loudly named
    // insecure flag would trust the database's keys.
    let mallory = patchbay_core::audit::Signer::from_seed(&[6; 32]);
    rewrite_from(
        &s,
        &entries,
        3,
        |e| e.actor = "mallory".into(),
        Some(&mallory),
    );
    sql(
        &s,
        &format!(
            "INSERT INTO server_keys (public_key, created_at) VALUES ('{}', 0)",
            mallory.public_hex()
        ),
    );
    let out = verify(&s, &pinned);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the server signature does not verify"));
    // The server's key file is the default pin.
    assert_eq!(verify(&s, &[]).status.code(), Some(1));
    let out = verify(&s, &["--insecure-trust-recorded-keys"]);
    assert!(
        out.status.success(),
        "the insecure mode trusts what the database says"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARNING"));
    // With neither a pinned key nor the key file, verification refuses to
    // guess.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(PATCHBAY)
        .args(["audit", "verify", "--db", &s.db_url, "--data-dir"])
        .arg(empty.path())
        .env_remove("PATCHBAY_DB")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--public-key"));
}

crate::both_backends!(
    tamper_is_detected_and_named,
    failed_audit_append_rolls_back_the_write,
    history_rewritten_without_the_key_is_refused,
);
