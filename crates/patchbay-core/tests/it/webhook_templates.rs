//! Every payload template, rendered from typed events, validates against the
//! receiving service's documented schema (`fixtures/webhook-schemas`, written
//! from each service's public documentation; see its README), checked by
//! Python's `jsonschema` (Draft 2020-12), not by Patchbay's code.

use jiff::Timestamp;
use patchbay_core::event::Event;
use patchbay_core::webhook::{Template, TemplateOptions, render, route};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};

const VALIDATE: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
cases = json.load(sys.stdin)
bad = []
for c in cases:
    schema = json.load(open(c["schema"]))
    Draft202012Validator.check_schema(schema)
    for e in Draft202012Validator(schema).iter_errors(c["body"]):
        bad.append(f'{c["name"]}: {"/".join(map(str, e.absolute_path))}: {e.message[:200]}')
print("\n".join(bad))
sys.exit(1 if bad else 0)
"#;

fn events() -> Vec<Event> {
    let at: Timestamp = "2026-12-06T17:00:00Z".parse().unwrap();
    let long = "x".repeat(5000);
    let mut v = Vec::new();
    for (i, (action, payload)) in [
        (
            "deployment.created",
            json!({"packages": ["openssl"], "hosts": 40, "skipped": 0, "rings": []}),
        ),
        (
            "deployment.started",
            json!({"message": "DEP-1 started by ops"}),
        ),
        (
            "deployment.ring_passed",
            json!({"message": "DEP-1: ring canary passed"}),
        ),
        ("deployment.halted", json!({"message": long})),
        (
            "deployment.completed",
            json!({"message": "DEP-1 completed"}),
        ),
        (
            "deployment.rollback",
            json!({"comment": "bad", "observation": {}}),
        ),
        (
            "deployment.rollback_failed",
            json!({"message": "rollback of h1 failed"}),
        ),
        ("exception.expired", json!({"owner": "db"})),
        ("window.add", json!({"n": 1})),
        (
            "sla.breached",
            json!({"asset": "web-1", "advisory": "DSA-1", "package": "openssl",
                   "tier": "P0", "due": "2026-12-01T00:00:00Z", "group": "web",
                   "owner": null, "message": "SLA breached: DSA-1 on web-1"}),
        ),
        (
            "sla.at_risk",
            json!({"asset": "web-1", "tier": "P1", "group": null, "message": "SLA at risk"}),
        ),
        (
            "sla.resolved",
            json!({"asset": "web-1", "advisory": "DSA-1", "package": "openssl", "tier": "P0",
                   "group": "web", "reason": "fixed", "message": "SLA breach ended: fixed"}),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let subject = if action.starts_with("deployment") {
            "deployment:DEP-2026-0001".to_string()
        } else if action.starts_with("sla.") {
            "finding:FND-00000000000000000000000000000001".to_string()
        } else {
            "exception:EXC-2026-0001".to_string()
        };
        v.push(Event::from_outbox(
            i as i64 + 1,
            at,
            action,
            &"token:1:a-very-long-actor-name".repeat(40),
            &subject,
            &payload,
        ));
    }
    v
}

#[test]
fn every_template_matches_its_services_documented_schema() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/webhook-schemas");
    let opts = TemplateOptions {
        routing_key: Some("0123456789abcdef0123456789abcdef".into()),
        project: Some("OPS".into()),
    };
    let mut cases = Vec::new();
    let mut rendered = std::collections::HashMap::<&str, usize>::new();
    for t in Template::ALL {
        if t == Template::Generic {
            continue;
        }
        for e in events() {
            if let Some(body) = render(t, &e, &opts) {
                *rendered.entry(t.as_str()).or_default() += 1;
                // Jira / ServiceNow follow-ups (a comment, a change update)
                // have their own schemas.
                let follow_up = route(t, &e, Some("OPS-1")).is_some_and(|r| !r.unwrap().creates);
                let schema = match (t, follow_up) {
                    (Template::Jira, true) => "jira-comment".to_string(),
                    (Template::Servicenow, true) => "servicenow-update".to_string(),
                    _ => t.as_str().to_string(),
                };
                cases.push(json!({
                    "name": format!("{} / {}", t.as_str(), e.kind),
                    "schema": dir.join(format!("{schema}.schema.json")),
                    "body": body,
                }));
            }
        }
    }
    // Each template rendered something (PagerDuty: 2 deployment triggers,
    // 2 resolves, 1 SLA-breach trigger, 1 SLA resolve).
    assert_eq!(rendered.get("pagerduty"), Some(&6), "{rendered:?}");
    // Jira / ServiceNow: the create, then ring passed, halted, completed,
    // rolled back.
    assert_eq!(rendered.get("jira"), Some(&5));
    assert_eq!(rendered.get("servicenow"), Some(&5));
    assert_eq!(rendered.get("slack"), Some(&12));
    assert_eq!(rendered.get("teams"), Some(&12));
    let mut child = Command::new("python3")
        .args(["-c", VALIDATE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with jsonschema (pip install jsonschema) validates the templates");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Array(cases).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "templates off their schemas:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
