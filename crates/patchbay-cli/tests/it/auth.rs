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
    }
}

crate::both_backends!(
    refused_requests_get_401_403_and_are_recorded,
    agent_endpoints_refuse_bad_credentials,
    security_headers_on_every_response
);
