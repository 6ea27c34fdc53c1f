//! The authorisation matrix: every route × every role × no token × a wrong
//! token × an agent credential × two scoped admin tokens (scopes `read`;
//! scopes `approve`), whose permission is role ∩ scopes.
//!
//! The expectation table below is written from the product brief's roles
//! (admin: everything; operator: day-to-day operations; approver: approvals,
//! otherwise read-only; auditor: read-only; calendar: only the calendar feed),
//! not from the code. The route list comes from the server
//! ([`patchbay_server::routes`], the same declaration that builds the router),
//! so a route added without a row here — or a row for a route that is gone —
//! fails this test.
//!
//! Every request carries a body that is not valid for any route (`"matrix"`)
//! and path parameters that name nothing, so a permitted request changes
//! nothing (it answers 400 or 404), and a refused one must be refused *before*
//! its body is read: a 400 where a 403 is due fails the test.

use crate::support::InProcess;
use axum::http::StatusCode;
use patchbay_core::auth::Role::{Admin, Approver, Auditor, Calendar, Operator};
use patchbay_core::auth::{Role, Scope};
use patchbay_server::{Access, routes};
use serde_json::json;
use std::collections::BTreeSet;

/// Who may call a route, per the product brief.
#[derive(Debug, Clone, Copy)]
enum Who {
    /// Anyone, without credentials.
    Public,
    /// Anyone: the enrolment token is in the body.
    Enrol,
    /// Only an enrolled agent's credential.
    Agent,
    /// Only a calendar token.
    CalendarOnly,
    /// API tokens of these roles.
    Roles(&'static [Role]),
    /// A dashboard page anyone loads: this status whatever the credential.
    Page(StatusCode),
    /// A dashboard page for a signed-in person: no API token opens it (a
    /// request without a session cookie is sent to the sign-in page).
    SignedIn,
}

const EVERY_ROLE: &[Role] = &[Admin, Operator, Approver, Auditor, Calendar];
const READERS: &[Role] = &[Admin, Operator, Approver, Auditor];
const AUDIT_READERS: &[Role] = &[Admin, Operator, Approver, Auditor];
const OPERATORS: &[Role] = &[Admin, Operator];
const APPROVERS: &[Role] = &[Admin, Approver];
const ADMINS: &[Role] = &[Admin];

/// The expected matrix: (method, path template, who).
const EXPECTED: &[(&str, &str, Who)] = &[
    ("GET", "/healthz", Who::Public),
    ("GET", "/", Who::Page(StatusCode::SEE_OTHER)),
    ("GET", "/ui/login", Who::Page(StatusCode::OK)),
    // The body names no user: a failed sign-in, whoever sends it.
    ("POST", "/ui/login", Who::Page(StatusCode::UNAUTHORIZED)),
    ("GET", "/ui/static/app.css", Who::Page(StatusCode::OK)),
    ("GET", "/ui/static/wall.js", Who::Page(StatusCode::OK)),
    ("GET", "/ui/static/live.js", Who::Page(StatusCode::OK)),
    ("GET", "/ui/deployments", Who::SignedIn),
    ("GET", "/ui/deployments/new", Who::SignedIn),
    ("POST", "/ui/deployments/preview", Who::SignedIn),
    ("POST", "/ui/deployments/create", Who::SignedIn),
    ("GET", "/ui/deployments/{id}", Who::SignedIn),
    ("GET", "/ui/deployments/{id}/impact", Who::SignedIn),
    ("GET", "/ui/deployments/{id}/test-report", Who::SignedIn),
    ("POST", "/ui/deployments/{id}/action", Who::SignedIn),
    ("POST", "/ui/deployments/{id}/approval", Who::SignedIn),
    ("GET", "/ui/events", Who::SignedIn),
    ("GET", "/ui/triage", Who::SignedIn),
    ("GET", "/ui/catalog", Who::SignedIn),
    ("GET", "/ui/calendar", Who::SignedIn),
    ("GET", "/ui/exceptions", Who::SignedIn),
    ("POST", "/ui/exceptions", Who::SignedIn),
    ("POST", "/ui/exceptions/revoke", Who::SignedIn),
    ("GET", "/ui/changes", Who::SignedIn),
    ("GET", "/ui/changes/{id}", Who::SignedIn),
    ("GET", "/ui/feeds", Who::SignedIn),
    ("GET", "/ui/lessons", Who::SignedIn),
    ("GET", "/ui/reports", Who::SignedIn),
    ("GET", "/ui/reports/{kind}", Who::SignedIn),
    ("GET", "/ui/evidence", Who::SignedIn),
    ("POST", "/ui/logout", Who::SignedIn),
    ("GET", "/ui/", Who::SignedIn),
    ("GET", "/ui/assets", Who::SignedIn),
    ("GET", "/ui/assets/{name}", Who::SignedIn),
    ("GET", "/ui/worklist", Who::SignedIn),
    ("GET", "/ui/audit", Who::SignedIn),
    ("GET", "/ui/sessions", Who::SignedIn),
    ("POST", "/ui/sessions/revoke", Who::SignedIn),
    ("GET", "/metrics", Who::Public),
    ("GET", "/calendar.ics", Who::CalendarOnly),
    ("POST", "/agent/v1/enroll", Who::Enrol),
    ("POST", "/agent/v1/checkin", Who::Agent),
    ("POST", "/agent/v1/certificate", Who::Agent),
    ("GET", "/api/v1/whoami", Who::Roles(EVERY_ROLE)),
    // The API's description: no secret, any API token (ADR 0012).
    ("GET", "/api/v1/openapi.json", Who::Roles(EVERY_ROLE)),
    ("GET", "/api/v1/assets", Who::Roles(READERS)),
    ("POST", "/api/v1/assets/import", Who::Roles(OPERATORS)),
    ("GET", "/api/v1/assets/{name}", Who::Roles(READERS)),
    ("GET", "/api/v1/csaf/matches/{asset}", Who::Roles(READERS)),
    ("PATCH", "/api/v1/assets/{name}", Who::Roles(OPERATORS)),
    (
        "POST",
        "/api/v1/assets/{name}/enrollment-approvals",
        Who::Roles(OPERATORS),
    ),
    ("GET", "/api/v1/discovery", Who::Roles(READERS)),
    ("POST", "/api/v1/discovery/import", Who::Roles(OPERATORS)),
    ("POST", "/api/v1/discovery/adopt", Who::Roles(OPERATORS)),
    ("POST", "/api/v1/discovery/dismiss", Who::Roles(OPERATORS)),
    ("POST", "/api/v1/discovery/exposure", Who::Roles(OPERATORS)),
    ("GET", "/api/v1/tokens", Who::Roles(READERS)),
    ("POST", "/api/v1/tokens", Who::Roles(ADMINS)),
    ("DELETE", "/api/v1/tokens/{id}", Who::Roles(ADMINS)),
    ("POST", "/api/v1/enroll-tokens", Who::Roles(OPERATORS)),
    ("GET", "/api/v1/users", Who::Roles(READERS)),
    ("POST", "/api/v1/users", Who::Roles(ADMINS)),
    ("POST", "/api/v1/users/{name}/password", Who::Roles(ADMINS)),
    ("POST", "/api/v1/users/{name}/disabled", Who::Roles(ADMINS)),
    ("GET", "/api/v1/sessions", Who::Roles(READERS)),
    ("DELETE", "/api/v1/sessions/{id}", Who::Roles(ADMINS)),
    ("GET", "/api/v1/audit", Who::Roles(AUDIT_READERS)),
    ("GET", "/api/v1/audit/export", Who::Roles(AUDIT_READERS)),
    ("POST", "/api/v1/keys/rotate", Who::Roles(ADMINS)),
    ("GET", "/api/v1/findings", Who::Roles(READERS)),
    ("GET", "/api/v1/feeds", Who::Roles(READERS)),
    ("POST", "/api/v1/feeds/import", Who::Roles(OPERATORS)),
    ("GET", "/api/v1/worklist", Who::Roles(READERS)),
    ("GET", "/api/v1/policy", Who::Roles(READERS)),
    ("POST", "/api/v1/policy", Who::Roles(OPERATORS)),
    ("POST", "/api/v1/policy/preview", Who::Roles(READERS)),
    ("GET", "/api/v1/triage/{cve}", Who::Roles(READERS)),
    ("GET", "/api/v1/patches", Who::Roles(READERS)),
    ("GET", "/api/v1/oob-events", Who::Roles(READERS)),
    ("GET", "/api/v1/deployments", Who::Roles(READERS)),
    ("POST", "/api/v1/deployments", Who::Roles(OPERATORS)),
    ("POST", "/api/v1/deployments/preview", Who::Roles(READERS)),
    ("GET", "/api/v1/deployments/{id}", Who::Roles(READERS)),
    (
        "POST",
        "/api/v1/deployments/{id}/start",
        Who::Roles(OPERATORS),
    ),
    (
        "POST",
        "/api/v1/deployments/{id}/pause",
        Who::Roles(OPERATORS),
    ),
    (
        "POST",
        "/api/v1/deployments/{id}/resume",
        Who::Roles(OPERATORS),
    ),
    (
        "POST",
        "/api/v1/deployments/{id}/abort",
        Who::Roles(OPERATORS),
    ),
    (
        "POST",
        "/api/v1/deployments/{id}/rollback",
        Who::Roles(OPERATORS),
    ),
    (
        "POST",
        "/api/v1/deployments/{id}/approvals",
        Who::Roles(APPROVERS),
    ),
    (
        "GET",
        "/api/v1/deployments/{id}/rehearsals",
        Who::Roles(READERS),
    ),
    (
        "POST",
        "/api/v1/deployments/{id}/rehearsals",
        Who::Roles(OPERATORS),
    ),
    (
        "GET",
        "/api/v1/deployments/{id}/impact",
        Who::Roles(READERS),
    ),
    (
        "GET",
        "/api/v1/deployments/{id}/test-report",
        Who::Roles(READERS),
    ),
    ("GET", "/api/v1/backup-verifications", Who::Roles(READERS)),
    ("GET", "/api/v1/windows", Who::Roles(READERS)),
    ("POST", "/api/v1/windows", Who::Roles(OPERATORS)),
    ("DELETE", "/api/v1/windows/{name}", Who::Roles(OPERATORS)),
    ("GET", "/api/v1/blackouts", Who::Roles(READERS)),
    ("POST", "/api/v1/blackouts", Who::Roles(OPERATORS)),
    ("DELETE", "/api/v1/blackouts/{name}", Who::Roles(OPERATORS)),
    (
        "POST",
        "/api/v1/blackouts/{name}/approvals",
        Who::Roles(APPROVERS),
    ),
    ("POST", "/api/v1/plan/preview", Who::Roles(READERS)),
    ("GET", "/api/v1/calendar.ics", Who::Roles(EVERY_ROLE)),
    ("GET", "/api/v1/reports/{kind}", Who::Roles(READERS)),
    ("GET", "/api/v1/drift", Who::Roles(READERS)),
    ("PUT", "/api/v1/drift/{name}/golden", Who::Roles(OPERATORS)),
    (
        "DELETE",
        "/api/v1/drift/{name}/golden",
        Who::Roles(OPERATORS),
    ),
    ("GET", "/api/v1/governance", Who::Roles(READERS)),
    ("GET", "/api/v1/evidence", Who::Roles(AUDIT_READERS)),
    ("GET", "/api/v1/changes", Who::Roles(READERS)),
    ("GET", "/api/v1/changes/{id}", Who::Roles(READERS)),
    ("GET", "/api/v1/changes/{id}/runbook", Who::Roles(READERS)),
    (
        "POST",
        "/api/v1/changes/{id}/lessons",
        Who::Roles(OPERATORS),
    ),
    ("GET", "/api/v1/lessons", Who::Roles(READERS)),
    ("GET", "/api/v1/exceptions", Who::Roles(READERS)),
    ("POST", "/api/v1/exceptions", Who::Roles(APPROVERS)),
    ("GET", "/api/v1/exceptions/review", Who::Roles(READERS)),
    ("GET", "/api/v1/exceptions/{id}", Who::Roles(READERS)),
    (
        "POST",
        "/api/v1/exceptions/{id}/revoke",
        Who::Roles(APPROVERS),
    ),
    // Webhooks carry receiver URLs and send data out of Patchbay: the
    // operators who run integrations (admin, operator), reads included.
    ("GET", "/api/v1/webhooks", Who::Roles(OPERATORS)),
    ("POST", "/api/v1/webhooks", Who::Roles(OPERATORS)),
    ("GET", "/api/v1/webhooks/{name}", Who::Roles(OPERATORS)),
    ("DELETE", "/api/v1/webhooks/{name}", Who::Roles(OPERATORS)),
    (
        "GET",
        "/api/v1/webhooks/{name}/deliveries",
        Who::Roles(OPERATORS),
    ),
    (
        "POST",
        "/api/v1/webhooks/{name}/replay",
        Who::Roles(OPERATORS),
    ),
    (
        "POST",
        "/api/v1/webhooks/{name}/test",
        Who::Roles(OPERATORS),
    ),
    (
        "POST",
        "/api/v1/webhooks/{name}/auth",
        Who::Roles(OPERATORS),
    ),
    // Contacts (email addresses) and escalation chains send data out of
    // Patchbay like webhooks: the operators who run integrations. An
    // approver answers an approval escalation by deciding the approval,
    // which resolves it; acknowledging is the operators'.
    ("GET", "/api/v1/contacts", Who::Roles(OPERATORS)),
    ("POST", "/api/v1/contacts", Who::Roles(OPERATORS)),
    ("GET", "/api/v1/contacts/deliveries", Who::Roles(OPERATORS)),
    ("DELETE", "/api/v1/contacts/{name}", Who::Roles(OPERATORS)),
    ("GET", "/api/v1/escalations", Who::Roles(OPERATORS)),
    ("POST", "/api/v1/escalations", Who::Roles(OPERATORS)),
    ("GET", "/api/v1/escalations/{name}", Who::Roles(OPERATORS)),
    (
        "DELETE",
        "/api/v1/escalations/{name}",
        Who::Roles(OPERATORS),
    ),
    (
        "POST",
        "/api/v1/escalations/{name}/ack",
        Who::Roles(OPERATORS),
    ),
];

/// A caller of the matrix.
#[derive(Debug, Clone)]
enum Principal {
    NoToken,
    WrongToken,
    Agent(String),
    Role(Role, String),
    /// An admin token restricted to one scope.
    Scoped(Scope, String),
}

impl Principal {
    fn bearer(&self) -> Option<&str> {
        match self {
            Principal::NoToken => None,
            Principal::WrongToken => {
                Some("pbt_0000000000000000000000000000000000000000000000000000000000000000")
            }
            Principal::Agent(s) | Principal::Role(_, s) | Principal::Scoped(_, s) => Some(s),
        }
    }
}

/// A concrete path for a template: parameters name nothing that exists.
fn concrete(template: &str) -> String {
    template
        .replace("{name}", "matrix-none")
        .replace("{id}", "999999")
        .replace("{cve}", "CVE-2099-0001")
        .replace("{kind}", "compliance")
}

/// The outcome a principal must get.
fn expected(who: Who, template: &str, p: &Principal) -> Expect {
    match (who, p) {
        (Who::Page(status), _) => Expect::Status(status),
        (Who::SignedIn, _) => Expect::Status(StatusCode::SEE_OTHER),
        // Read-scoped admin: exactly what the read-only auditor may do.
        (Who::Roles(roles), Principal::Scoped(Scope::Read, _)) if roles.contains(&Auditor) => {
            Expect::Permitted
        }
        // Approve-scoped admin: the approvals, and whoami and the OpenAPI
        // document (which need no permission at all).
        (Who::Roles(roles), Principal::Scoped(Scope::Approve, _))
            if roles == APPROVERS
                || template == "/api/v1/whoami"
                || template == "/api/v1/openapi.json" =>
        {
            Expect::Permitted
        }
        (Who::Roles(_), Principal::Scoped(..)) => Expect::Status(StatusCode::FORBIDDEN),
        (Who::CalendarOnly, Principal::Scoped(..)) => Expect::Status(StatusCode::FORBIDDEN),
        (Who::Public, _) => Expect::Status(StatusCode::OK),
        // The body is not an enrolment request: refused as invalid, whoever sends it.
        (Who::Enrol, _) => Expect::Status(StatusCode::BAD_REQUEST),
        (Who::Agent, Principal::Agent(_)) => Expect::Status(StatusCode::BAD_REQUEST),
        (Who::Agent, _) => Expect::Status(StatusCode::UNAUTHORIZED),
        (Who::CalendarOnly, Principal::Role(Calendar, _)) => Expect::Status(StatusCode::OK),
        (Who::CalendarOnly, Principal::Role(..)) => Expect::Status(StatusCode::FORBIDDEN),
        (Who::CalendarOnly, _) => Expect::Status(StatusCode::UNAUTHORIZED),
        (Who::Roles(roles), Principal::Role(r, _)) if roles.contains(r) => Expect::Permitted,
        (Who::Roles(_), Principal::Role(..)) => Expect::Status(StatusCode::FORBIDDEN),
        (Who::Roles(_), _) => Expect::Status(StatusCode::UNAUTHORIZED),
    }
}

#[derive(Debug, PartialEq)]
enum Expect {
    Status(StatusCode),
    /// Past authentication and authorisation: anything but 401, 403 or 5xx.
    Permitted,
}

async fn principals(s: &InProcess) -> Vec<Principal> {
    let mut out = vec![Principal::NoToken, Principal::WrongToken];
    let et = s
        .ok_json(
            "POST",
            "/api/v1/enroll-tokens",
            &s.admin,
            json!({"uses": 1, "ttl_secs": 3600}),
        )
        .await;
    let enrolled = s
        .ok_json(
            "POST",
            "/agent/v1/enroll",
            "unused",
            json!({"protocol": 1, "enroll_token": et["token"], "hostname": "matrix-host",
                   "machine_id": "0123456789abcdef0123456789abcdef"}),
        )
        .await;
    out.push(Principal::Agent(
        enrolled["agent_secret"].as_str().unwrap().to_string(),
    ));
    for role in Role::ALL {
        let secret = if role == Admin {
            s.admin.clone()
        } else {
            let t = s
                .ok_json(
                    "POST",
                    "/api/v1/tokens",
                    &s.admin,
                    json!({"name": format!("matrix-{role}"), "role": role}),
                )
                .await;
            t["token"].as_str().unwrap().to_string()
        };
        out.push(Principal::Role(role, secret));
    }
    for scope in [Scope::Read, Scope::Approve] {
        let t = s
            .ok_json(
                "POST",
                "/api/v1/tokens",
                &s.admin,
                json!({"name": format!("matrix-admin-{scope}"), "role": "admin", "scopes": [scope]}),
            )
            .await;
        out.push(Principal::Scoped(
            scope,
            t["token"].as_str().unwrap().to_string(),
        ));
    }
    out
}

/// Reads that are recorded on purpose: issuing an evidence bundle is itself
/// evidence (who took which bundle, with its SHA-256). Every other permitted
/// request of the matrix must record nothing: GETs never write, and a
/// rejected body changes nothing.
const AUDITED_READS: &[(&str, &str, &str)] = &[("GET", "/api/v1/evidence", "evidence.export")];

/// The actions of the audited changes so far (refusals excluded).
async fn audited_changes(s: &InProcess) -> Vec<String> {
    let (status, text) = s
        .call("GET", "/api/v1/audit?limit=10000", Some(&s.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "ok")
        .map(|e| e["action"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn every_route_has_a_row_and_every_row_a_route() {
    let served: BTreeSet<(&str, &str)> = routes().map(|r| (r.method, r.path)).collect();
    let rows: BTreeSet<(&str, &str)> = EXPECTED.iter().map(|(m, p, _)| (*m, *p)).collect();
    let without_row: Vec<_> = served.difference(&rows).collect();
    let without_route: Vec<_> = rows.difference(&served).collect();
    assert!(
        without_row.is_empty(),
        "routes without a row in the authorisation matrix (add one to EXPECTED): {without_row:?}"
    );
    assert!(
        without_route.is_empty(),
        "matrix rows for routes the server does not serve: {without_route:?}"
    );
    assert_eq!(rows.len(), EXPECTED.len(), "a row appears twice");
    // The declared access agrees with the brief's table.
    for r in routes() {
        let (_, _, who) = EXPECTED
            .iter()
            .find(|(m, p, _)| (*m, *p) == (r.method, r.path))
            .unwrap();
        let consistent = match (who, r.access) {
            (Who::Public, Access::Public)
            | (Who::Enrol, Access::Enrol)
            | (Who::Agent, Access::Agent)
            | (Who::CalendarOnly, Access::CalendarToken)
            | (Who::Page(_), Access::Page)
            | (Who::SignedIn, Access::Session(_)) => true,
            (Who::Roles(roles), Access::Api(action)) => Role::ALL
                .iter()
                .all(|role| roles.contains(role) == action.is_none_or(|a| role.permits(a))),
            _ => false,
        };
        assert!(
            consistent,
            "{} {}: declared {:?}, the brief says {:?}",
            r.method, r.path, r.access, who
        );
    }
}

#[tokio::test]
async fn every_route_answers_every_principal_as_the_brief_says() {
    // The matrix sends the same wrong token to every route on purpose: the
    // authentication backoff (tested in `hardening`) would answer 429 there.
    let s = InProcess::with_config(patchbay_app::AppConfig {
        auth_backoff: patchbay_app::backoff::BackoffConfig::disabled(),
        ..Default::default()
    })
    .await;
    let principals = principals(&s).await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for (method, template, who) in EXPECTED {
        let path = concrete(template);
        for p in &principals {
            let want = expected(*who, template, p);
            let before = if want == Expect::Permitted {
                Some(audited_changes(&s).await)
            } else {
                None
            };
            let body = (*method != "GET").then_some("\"matrix\"");
            let (status, text) = s.call(method, &path, p.bearer(), body).await;
            checked += 1;
            let ok = match &want {
                Expect::Status(code) => status == *code,
                Expect::Permitted => {
                    status != StatusCode::UNAUTHORIZED
                        && status != StatusCode::FORBIDDEN
                        && !status.is_server_error()
                }
            };
            let who = match p {
                Principal::Role(r, _) => r.to_string(),
                Principal::Scoped(sc, _) => format!("admin scoped to {sc}"),
                other => format!("{other:?}")
                    .split('(')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            };
            if !ok {
                let snippet: String = text.chars().take(160).collect();
                failures.push(format!(
                    "{method} {path} as {who}: got {status}, want {want:?} ({snippet})"
                ));
            }
            if let Some(before) = before {
                let after = audited_changes(&s).await;
                let added = &after[before.len().min(after.len())..];
                let allowed: Vec<&str> = AUDITED_READS
                    .iter()
                    .filter(|(m, p, _)| (m, p) == (method, template))
                    .map(|(_, _, action)| *action)
                    .collect();
                if added != allowed.as_slice() {
                    failures.push(format!(
                        "{method} {path} as {who}: recorded {added:?}, expected {allowed:?}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, EXPECTED.len() * 10);
}
