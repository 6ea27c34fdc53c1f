//! `patchbay contacts` and `patchbay escalations` end to end against a real
//! server (issue 15): a chain added from the CLI starts for findings past
//! their SLA (a real host's inventory, a real feed), its steps fire on the
//! duties runner's ticks at the server's manual clock, and `escalations ack`
//! stops one escalation while the others go on.

use crate::support::{Server, minbase_before, ok};
use jiff::SignedDuration;
use patchbay_proto::api::{EscalationChainDetail, EscalationOut};

fn escalations_from_the_cli(backend: &str) {
    let s = Server::start(backend);
    let _root = s.host_with(&minbase_before());
    s.import_feeds(&["feeds/osv/Debian-12-derived.osv.zip"]);
    ok(&s.cli(&[
        "contacts",
        "add",
        "oncall",
        "--email",
        "oncall@example.net",
        "--event",
        "sla.breached",
    ]));
    let out = s.cli(&["contacts", "add", "bad", "--email", "x@y\r\nBcc: z@w"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("email"),
        "{out:?}"
    );
    // A step naming nobody is refused, naming it.
    let out = s.cli(&[
        "escalations",
        "add",
        "sla",
        "--on",
        "sla",
        "--step",
        "email:nobody",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nobody"),
        "{out:?}"
    );
    ok(&s.cli(&[
        "escalations",
        "add",
        "sla",
        "--on",
        "sla",
        "--step",
        "email:oncall",
        "--step",
        "email:oncall:1h",
    ]));
    let list = ok(&s.cli(&["escalations", "list"]));
    assert!(
        list.contains("sla") && list.contains("email:oncall:0s → email:oncall:3600s"),
        "{list}"
    );
    let show = |s: &Server| -> EscalationChainDetail {
        serde_json::from_str(&ok(&s.cli(&[
            "escalations",
            "show",
            "sla",
            "--format",
            "json",
        ])))
        .unwrap()
    };
    assert!(show(&s).escalations.is_empty());
    // A year on, every finding is past its SLA: one escalation each, its
    // first step fired at once.
    s.clock.advance(SignedDuration::from_hours(24 * 365));
    s.run_duties();
    let d = show(&s);
    assert!(d.escalations.len() >= 3, "{d:?}");
    assert!(
        d.escalations
            .iter()
            .all(|e| e.state == "open" && e.steps.len() == 1),
        "{d:?}"
    );
    let id = d.escalations[0].id.clone();
    let acked: EscalationOut = serde_json::from_str(&ok(&s.cli(&[
        "escalations",
        "ack",
        "sla",
        &id,
        "--comment",
        "patching tonight",
        "--format",
        "json",
    ])))
    .unwrap();
    assert_eq!(acked.state, "acknowledged");
    assert_eq!(acked.comment.as_deref(), Some("patching tonight"));
    // Twice: refused, naming the state.
    let out = s.cli(&["escalations", "ack", "sla", &id]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("acknowledged"),
        "{out:?}"
    );
    // An hour later the others send their second step; the acknowledged one
    // does not.
    s.clock.advance(SignedDuration::from_mins(61));
    s.run_duties();
    let d = show(&s);
    for e in &d.escalations {
        if e.id == id {
            assert_eq!((e.state.as_str(), e.steps.len()), ("acknowledged", 1));
        } else {
            assert_eq!((e.state.as_str(), e.steps.len()), ("exhausted", 2), "{e:?}");
        }
    }
    let table = ok(&s.cli(&["escalations", "show", "sla"]));
    assert!(
        table.contains(&id) && table.contains("acknowledged"),
        "{table}"
    );
    ok(&s.cli(&["escalations", "rm", "sla"]));
    assert!(!ok(&s.cli(&["escalations", "list"])).contains("oncall"));
    let contacts = ok(&s.cli(&["contacts", "list"]));
    assert!(contacts.contains("oncall@example.net"), "{contacts}");
}

#[test]
fn escalations_from_the_cli_sqlite() {
    escalations_from_the_cli("sqlite");
}

#[test]
fn escalations_from_the_cli_postgres() {
    escalations_from_the_cli("postgres");
}
