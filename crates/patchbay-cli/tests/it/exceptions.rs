//! The exception register end to end, on both backends: an exception removes
//! exactly the findings it covers from the worklist; the review lists
//! expiring, expired and ownerless exceptions; expiry raises one event and
//! reopens exactly the excepted findings with their original SLA due dates;
//! revocation does the same at once; bad requests are refused naming the field.

use crate::support::{PATCHBAY, Server, deb_root, fixtures, minbase_before, ok};
use jiff::SignedDuration;
use patchbay_client::HttpError;
use patchbay_proto::api::{ExceptionOut, ExceptionReviewOut, ExceptionSpec, List, WorkItem};
use std::collections::BTreeMap;
use std::process::Command;

fn worklist(s: &Server) -> BTreeMap<String, String> {
    let l: List<WorkItem> = s.admin().get("/api/v1/worklist?limit=10000").unwrap();
    l.items
        .into_iter()
        .map(|w| (w.finding.id.clone(), w.due.clone()))
        .collect()
}

fn all_items(s: &Server) -> Vec<WorkItem> {
    let l: List<WorkItem> = s.admin().get("/api/v1/worklist?limit=10000").unwrap();
    l.items
}

fn review(s: &Server) -> ExceptionReviewOut {
    s.admin().get("/api/v1/exceptions/review").unwrap()
}

fn status(r: Result<ExceptionOut, HttpError>) -> (u16, String) {
    match r {
        Err(HttpError::Api {
            status, message, ..
        }) => (status, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn register_and_expiry(backend: &str) {
    let s = Server::start(backend);
    let root = deb_root(&minbase_before());
    let state = tempfile::tempdir().unwrap();
    ok(&s.agent_once(
        state.path(),
        Some(&s.enroll_token(1)),
        &[
            "--root",
            root.path().to_str().unwrap(),
            "--no-pending-updates",
        ],
    ));
    ok(&Command::new(PATCHBAY)
        .args(["feeds", "import", "--db", &s.db_url])
        .arg("--data-dir")
        .arg(&s.data_dir)
        .arg(fixtures().join("feeds/osv/Debian-12-derived.osv.zip"))
        .output()
        .unwrap());
    ok(&s.cli(&["assets", "set", "chroot-host", "--owner", "web-team"]));
    let before = worklist(&s);
    let items = all_items(&s);
    assert!(items.len() > 3);
    // Except one advisory on the host: exactly its findings leave the worklist.
    let target = items[0].finding.advisory.clone();
    let covered: Vec<String> = items
        .iter()
        .filter(|w| w.finding.advisory == target || w.finding.cves.contains(&target))
        .map(|w| w.finding.id.clone())
        .collect();
    let out = ok(&s.cli(&[
        "exceptions",
        "add",
        "--advisory",
        &target,
        "--asset",
        "chroot-host",
        "--owner",
        "web-team",
        "--reason",
        "vendor build pending",
        "--control",
        "WAF rule 942100",
        "--expires",
        "10d",
        "--format",
        "json",
    ]));
    let e: ExceptionOut = serde_json::from_str(&out).unwrap();
    assert!(
        e.id.starts_with("EXC-") && e.id.ends_with("-0001"),
        "{}",
        e.id
    );
    assert_eq!(e.status, "active");
    assert!(e.approver.starts_with("token:"));
    assert_eq!(e.covers.len(), covered.len());
    let during = worklist(&s);
    let mut expected = before.clone();
    for id in &covered {
        expected.remove(id);
    }
    assert_eq!(
        during, expected,
        "exactly the covered findings leave the worklist"
    );
    // Triage still shows them, marked with the exception.
    let cve = items[0]
        .finding
        .cves
        .first()
        .expect("the Debian fixture's findings carry CVE aliases");
    let t: patchbay_proto::api::Triage = s.admin().get(&format!("/api/v1/triage/{cve}")).unwrap();
    assert!(
        t.items
            .iter()
            .any(|w| w.exception.as_deref() == Some(e.id.as_str()))
    );

    // Refusals, naming the field; nothing is stored.
    let spec = ExceptionSpec {
        advisory: Some(target.clone()),
        asset: Some("chroot-host".into()),
        owner: "web-team".into(),
        reason: "r".into(),
        compensating_control: "c".into(),
        expires: "10d".into(),
        ..ExceptionSpec::default()
    };
    let post = |c: &patchbay_client::Client, sp: &ExceptionSpec| {
        c.send::<_, ExceptionOut>("POST", "/api/v1/exceptions", sp)
    };
    let (code, msg) = status(post(
        &s.admin(),
        &ExceptionSpec {
            advisory: None,
            ..spec.clone()
        },
    ));
    assert_eq!((code, msg.starts_with("advisory:")), (400, true), "{msg}");
    let (code, msg) = status(post(
        &s.admin(),
        &ExceptionSpec {
            group: Some("x".into()),
            ..spec.clone()
        },
    ));
    assert_eq!((code, msg.starts_with("asset:")), (400, true), "{msg}");
    let (code, msg) = status(post(
        &s.admin(),
        &ExceptionSpec {
            expires: "2001-01-01".into(),
            ..spec.clone()
        },
    ));
    assert_eq!((code, msg.starts_with("expires:")), (400, true), "{msg}");
    let (code, msg) = status(post(
        &s.admin(),
        &ExceptionSpec {
            expires: "400d".into(),
            ..spec.clone()
        },
    ));
    assert_eq!((code, msg.contains("366 days")), (400, true), "{msg}");
    let (code, msg) = status(post(
        &s.admin(),
        &ExceptionSpec {
            compensating_control: " ".into(),
            ..spec.clone()
        },
    ));
    assert_eq!(
        (code, msg.starts_with("compensating_control:")),
        (400, true),
        "{msg}"
    );
    let op: patchbay_proto::api::TokenCreated = s
        .admin()
        .send(
            "POST",
            "/api/v1/tokens",
            &patchbay_proto::api::CreateToken {
                name: "ops".into(),
                role: patchbay_core::auth::Role::Operator,
                ttl_secs: None,
                scopes: None,
            },
        )
        .unwrap();
    assert_eq!(status(post(&s.client(Some(&op.token)), &spec)).0, 403);
    let l: List<ExceptionOut> = s.admin().get("/api/v1/exceptions?all=true").unwrap();
    assert_eq!(l.items.len(), 1);

    // Review: nothing yet; 4 days later it expires within 7 days.
    let r = review(&s);
    assert!(r.expiring.is_empty() && r.expired.is_empty() && r.ownerless.is_empty());
    s.clock.advance(SignedDuration::from_hours(4 * 24));
    let r = review(&s);
    assert_eq!(
        r.expiring.iter().map(|e| &e.id).collect::<Vec<_>>(),
        vec![&e.id]
    );
    // The host changes hands: the exception's owner owns nothing in scope.
    ok(&s.cli(&["assets", "set", "chroot-host", "--owner", "platform-team"]));
    let r = review(&s);
    assert_eq!(
        r.ownerless.iter().map(|e| &e.id).collect::<Vec<_>>(),
        vec![&e.id]
    );

    // Expiry: one event, exactly the excepted findings back, same due dates.
    s.clock.advance(SignedDuration::from_hours(7 * 24));
    let expired_events = || {
        ok(&s.cli(&["audit", "list", "--limit", "10000", "--format", "json"]))
            .matches("\"exception.expired\"")
            .count()
    };
    let r = review(&s);
    assert_eq!(
        r.expired.iter().map(|e| &e.id).collect::<Vec<_>>(),
        vec![&e.id]
    );
    assert!(r.expiring.is_empty());
    assert_eq!(expired_events(), 0, "a review (a GET) writes nothing");
    let expiry = patchbay_app::duties::Duty::ExceptionExpiry;
    // The expiry sweep's runs in a tick (the rollout driver runs every tick).
    let sweeps = |t: patchbay_app::duties::TickReport| -> Vec<_> {
        t.ran.into_iter().filter(|(d, _)| *d == expiry).collect()
    };
    let t = s.run_duties();
    assert!(t.leader);
    assert_eq!(
        sweeps(t),
        vec![(expiry, Ok(1))],
        "the sweep raised the event"
    );
    // Not due again until the sweep interval has passed; then nothing to raise.
    assert_eq!(sweeps(s.run_duties()), vec![]);
    s.clock.advance(SignedDuration::from_secs(61));
    assert_eq!(sweeps(s.run_duties()), vec![(expiry, Ok(0))], "raised once");
    assert_eq!(worklist(&s), before, "reopened with the original SLA clock");
    assert_eq!(expired_events(), 1);
    let audit = ok(&s.cli(&["audit", "list", "--limit", "10000", "--format", "json"]));
    assert_eq!(audit.matches("\"exception.add\"").count(), 1);
    let shown: ExceptionOut = s
        .admin()
        .get(&format!("/api/v1/exceptions/{}", e.id))
        .unwrap();
    assert_eq!(shown.status, "expired");
    let l: List<ExceptionOut> = s.admin().get("/api/v1/exceptions").unwrap();
    assert!(l.items.is_empty(), "only exceptions in force by default");

    // A package exception for a group, then revoked: back at once.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.toml");
    std::fs::write(
        &p,
        "version = 1\n[[groups]]\nname = \"hosts\"\n[groups.match]\nname = [\"chroot-*\"]\n",
    )
    .unwrap();
    ok(&s.cli(&["policy", "apply", p.to_str().unwrap()]));
    let pkg = items[0].finding.source_package.clone();
    let out = ok(&s.cli(&[
        "exceptions",
        "add",
        "--package",
        &pkg,
        "--group",
        "hosts",
        "--owner",
        "platform-team",
        "--reason",
        "r",
        "--control",
        "c",
        "--expires",
        "30d",
        "--format",
        "json",
    ]));
    let e2: ExceptionOut = serde_json::from_str(&out).unwrap();
    assert!(e2.id.ends_with("-0002"));
    let during = worklist(&s);
    let gone: Vec<&String> = before.keys().filter(|k| !during.contains_key(*k)).collect();
    let by_pkg: Vec<&String> = items
        .iter()
        .filter(|w| w.finding.source_package == pkg || w.finding.package == pkg)
        .map(|w| &w.finding.id)
        .collect();
    assert_eq!(gone, by_pkg);
    ok(&s.cli(&[
        "exceptions",
        "revoke",
        &e2.id,
        "--reason",
        "patched instead",
    ]));
    assert_eq!(worklist(&s), before);
    let again = s.cli(&["exceptions", "revoke", &e2.id, "--reason", "again"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not in force"));
    let shown = ok(&s.cli(&["exceptions", "show", &e2.id]));
    assert!(shown.contains("revoked by token:"), "{shown}");
}

crate::both_backends!(register_and_expiry);
