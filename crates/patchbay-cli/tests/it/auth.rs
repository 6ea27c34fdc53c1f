//! Acceptance: requests without a token, with a revoked token, or with an auditor
//! token on a write get 401/403, and are recorded.

use crate::support::Server;
use patchbay_core::auth::Role;
use patchbay_proto::api::{AuditEventOut, CreateToken, List, TokenCreated};

fn refused_requests_get_401_403_and_are_recorded(backend: &str) {
    let s = Server::start(backend);
    let admin = s.admin();

    // No token.
    let e = s
        .client(None)
        .get::<serde_json::Value>("/api/v1/assets")
        .unwrap_err();
    assert!(
        matches!(&e, patchbay_client::HttpError::Api { status: 401, code, .. } if code == "unauthenticated"),
        "{e}"
    );
    // Garbage token.
    let e = s
        .client(Some("pbt_nope"))
        .get::<serde_json::Value>("/api/v1/assets")
        .unwrap_err();
    assert!(matches!(
        e,
        patchbay_client::HttpError::Api { status: 401, .. }
    ));

    // Revoked token.
    let ops: TokenCreated = admin
        .send(
            "POST",
            "/api/v1/tokens",
            &CreateToken {
                name: "ops".into(),
                role: Role::Operator,
                ttl_secs: None,
                scopes: None,
            },
        )
        .unwrap();
    s.client(Some(&ops.token))
        .get::<serde_json::Value>("/api/v1/assets")
        .unwrap();
    admin
        .delete(&format!("/api/v1/tokens/{}", ops.info.id))
        .unwrap();
    let e = s
        .client(Some(&ops.token))
        .get::<serde_json::Value>("/api/v1/assets")
        .unwrap_err();
    assert!(
        matches!(&e, patchbay_client::HttpError::Api { status: 401, message, .. } if message.contains("revoked")),
        "{e}"
    );

    // Auditor: reads yes, writes no.
    let aud: TokenCreated = admin
        .send(
            "POST",
            "/api/v1/tokens",
            &CreateToken {
                name: "aud".into(),
                role: Role::Auditor,
                ttl_secs: None,
                scopes: None,
            },
        )
        .unwrap();
    let auditor = s.client(Some(&aud.token));
    auditor.get::<serde_json::Value>("/api/v1/assets").unwrap();
    auditor.get::<serde_json::Value>("/api/v1/audit").unwrap();
    let e = auditor
        .send::<_, serde_json::Value>("POST", "/api/v1/enroll-tokens", &serde_json::json!({}))
        .unwrap_err();
    assert!(
        matches!(&e, patchbay_client::HttpError::Api { status: 403, code, .. } if code == "forbidden"),
        "{e}"
    );
    let e = auditor
        .send::<_, serde_json::Value>(
            "POST",
            "/api/v1/tokens",
            &CreateToken {
                name: "x".into(),
                role: Role::Admin,
                ttl_secs: None,
                scopes: None,
            },
        )
        .unwrap_err();
    assert!(matches!(
        e,
        patchbay_client::HttpError::Api { status: 403, .. }
    ));
    // Operators may not manage tokens either.
    let ops2: TokenCreated = admin
        .send(
            "POST",
            "/api/v1/tokens",
            &CreateToken {
                name: "ops2".into(),
                role: Role::Operator,
                ttl_secs: None,
                scopes: None,
            },
        )
        .unwrap();
    let e = s
        .client(Some(&ops2.token))
        .delete(&format!("/api/v1/tokens/{}", aud.info.id))
        .unwrap_err();
    assert!(matches!(
        e,
        patchbay_client::HttpError::Api { status: 403, .. }
    ));

    // Every refusal is in the audit log, with who and why.
    let log: List<AuditEventOut> = admin.get("/api/v1/audit?limit=1000").unwrap();
    let denied: Vec<&AuditEventOut> = log.items.iter().filter(|e| e.outcome == "denied").collect();
    let reasons: Vec<String> = denied
        .iter()
        .map(|e| e.detail["reason"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(denied.len(), 6, "{reasons:?}");
    assert!(denied.iter().all(|e| e.action == "request.denied"));
    assert_eq!(denied[0].actor, "anonymous");
    assert_eq!(reasons[0], "no token");
    assert_eq!(reasons[1], "unknown token");
    assert_eq!(reasons[2], "revoked token");
    assert_eq!(denied[2].actor, format!("token:{}:ops", ops.info.id));
    assert_eq!(denied[3].actor, format!("token:{}:aud", aud.info.id));
    assert_eq!(denied[3].target, "/api/v1/enroll-tokens");
    assert_eq!(denied[3].detail["role"], "auditor");
    assert_eq!(denied[5].detail["role"], "operator");
    // And the writes that were allowed are there too.
    let actions: Vec<&str> = log
        .items
        .iter()
        .filter(|e| e.outcome == "ok")
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        actions,
        vec![
            "token.create",
            "token.create",
            "token.revoke",
            "token.create",
            "token.create"
        ]
    );

    // Tokens are listed with last-use times and never with secrets.
    let raw: serde_json::Value = admin.get("/api/v1/tokens").unwrap();
    let text = raw.to_string();
    assert!(!text.contains(&ops.token) && !text.contains(&s.admin));
    assert!(
        raw["items"][0]["last_used_at"].is_string(),
        "admin token has a last-used time"
    );
}

fn agent_endpoints_refuse_bad_credentials(backend: &str) {
    let s = Server::start(backend);
    let body = serde_json::json!({"protocol": 1, "inventory_hash": "x", "inventory": {"kind": "unchanged"}});
    let e = s
        .client(Some("pba_forged"))
        .send::<_, serde_json::Value>("POST", "/agent/v1/checkin", &body)
        .unwrap_err();
    assert!(matches!(
        e,
        patchbay_client::HttpError::Api { status: 401, .. }
    ));
    // An API token is not an agent credential.
    let e = s
        .admin()
        .send::<_, serde_json::Value>("POST", "/agent/v1/checkin", &body)
        .unwrap_err();
    assert!(matches!(
        e,
        patchbay_client::HttpError::Api { status: 401, .. }
    ));
    let bad_enroll = serde_json::json!({"protocol": 1, "enroll_token": "pbe_wrong", "hostname": "h", "machine_id": "ab"});
    let e = s
        .client(None)
        .send::<_, serde_json::Value>("POST", "/agent/v1/enroll", &bad_enroll)
        .unwrap_err();
    assert!(matches!(
        e,
        patchbay_client::HttpError::Api { status: 401, .. }
    ));
    let log: List<AuditEventOut> = s.admin().get("/api/v1/audit").unwrap();
    assert_eq!(
        log.items.iter().filter(|e| e.outcome == "denied").count(),
        3
    );
}

/// Security headers on every kind of response: public, authenticated,
/// refused, not found, and the HTML reports (whose inline styles and SVG the
/// policy allows, and nothing else).
fn security_headers_on_every_response(backend: &str) {
    let s = Server::start(backend);
    let get = |path: &str, token: Option<&str>| {
        let mut r = ureq::get(format!("{}{path}", s.url))
            .config()
            .http_status_as_error(false)
            .build();
        if let Some(t) = token {
            r = r.header("Authorization", format!("Bearer {t}"));
        }
        r.call().unwrap()
    };
    let cases = [
        ("/healthz", None, 200),
        ("/api/v1/whoami", Some(s.admin.as_str()), 200),
        ("/api/v1/whoami", None, 401),
        ("/api/v1/nope", Some(s.admin.as_str()), 404),
        (
            "/api/v1/reports/compliance?format=html",
            Some(s.admin.as_str()),
            200,
        ),
    ];
    for (path, token, status) in cases {
        let resp = get(path, token);
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let h = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_else(|| panic!("{path}: no {name} header"))
        };
        assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(h("x-frame-options"), "DENY", "{path}");
        assert_eq!(h("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(h("cache-control"), "no-store", "{path}");
        let csp = h("content-security-policy");
        assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        // HSTS only when serving TLS (tls::https_server_agent_and_cli).
        assert!(
            resp.headers().get("strict-transport-security").is_none(),
            "{path}"
        );
    }
}

/// `patchbay tokens create --ttl --scope`: the expiry and scopes are stored,
/// listed, enforced (403 outside the scopes, 401 token_expired once expired,
/// by the server's clock).
fn tokens_expire_and_scopes_restrict_through_the_cli(backend: &str) {
    let s = Server::start(backend);
    let now = patchbay_app::Clock::now(&*s.clock);
    let out = s.cli(&[
        "tokens",
        "create",
        "--name",
        "reporting",
        "--role",
        "admin",
        "--ttl",
        "90d",
        "--scope",
        "read",
        "--format",
        "json",
    ]);
    let created: serde_json::Value = serde_json::from_str(&crate::support::ok(&out)).unwrap();
    let expires = (now + jiff::SignedDuration::from_hours(90 * 24)).to_string();
    assert_eq!(created["expires_at"], expires.as_str());
    assert_eq!(created["scopes"], serde_json::json!(["read"]));
    let secret = created["token"].as_str().unwrap().to_string();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("never expires"),
        "no warning with --ttl"
    );
    // Stored as given (this backend's table).
    let stored = crate::support::db_text(
        &s.db_url,
        "SELECT scopes FROM api_tokens WHERE name = 'reporting'",
    );
    assert_eq!(stored, vec!["read".to_string()]);
    // Without --ttl: a warning; too long: refused, naming the bound.
    let out = s.cli(&["tokens", "create", "--name", "forever", "--role", "auditor"]);
    crate::support::ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning: this token never expires"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.cli(&[
        "tokens", "create", "--name", "x", "--role", "auditor", "--ttl", "400d",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("366 days"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.cli(&[
        "tokens", "create", "--name", "x", "--role", "auditor", "--scope", "write",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no 'write' permission"));
    // Listing shows expiry and scopes.
    let list = crate::support::ok(&s.cli(&["tokens", "list"]));
    let line = list.lines().find(|l| l.contains("reporting")).unwrap();
    assert!(line.contains(&expires) && line.contains("read"), "{list}");
    let line = list.lines().find(|l| l.contains("forever")).unwrap();
    assert!(line.contains("never") && line.contains("(role)"), "{list}");

    let as_scoped = |args: &[&str]| {
        std::process::Command::new(crate::support::PATCHBAY)
            .args(args)
            .env("PATCHBAY_URL", &s.url)
            .env("PATCHBAY_TOKEN", &secret)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    crate::support::ok(&as_scoped(&["assets", "list"]));
    let out = as_scoped(&[
        "tokens", "create", "--name", "y", "--role", "admin", "--ttl", "1d",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scopes do not include 'tokens'"), "{err}");

    s.clock.advance(jiff::SignedDuration::from_hours(90 * 24));
    let out = as_scoped(&["assets", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expired at"), "{err}");
}

crate::both_backends!(
    refused_requests_get_401_403_and_are_recorded,
    agent_endpoints_refuse_bad_credentials,
    security_headers_on_every_response,
    tokens_expire_and_scopes_restrict_through_the_cli
);
