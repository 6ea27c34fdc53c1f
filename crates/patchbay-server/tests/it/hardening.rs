//! Server hardening through the HTTP API: API token expiry and scopes,
//! backoff on repeated authentication failures, security headers on every
//! route. Time is the app's `ManualClock`; peers are set per request
//! (`ConnectInfo`), as the real listener does.

use crate::support::InProcess;
use axum::http::StatusCode;
use jiff::SignedDuration;
use patchbay_app::backoff::BackoffConfig;
use patchbay_server::{Access, routes};
use serde_json::{Value, json};

async fn body_json(resp: axum::response::Response) -> Value {
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// The stored row of token `id` (through the store, not the API).
async fn stored_token(s: &InProcess, id: i64) -> patchbay_store::ApiTokenRow {
    let mut tx = s.app.store().read().await.unwrap();
    tx.list_api_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.id == id)
        .unwrap()
}

/// Audit entries with `action`, as (actor, detail).
async fn audit_entries(s: &InProcess, action: &str) -> Vec<(String, Value)> {
    let (status, text) = s
        .call("GET", "/api/v1/audit?limit=10000", Some(&s.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["detail"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_expired_token_is_refused_with_token_expired() {
    let s = InProcess::new().await;
    // Bounds: 0 and more than 366 days are refused, nothing stored.
    for bad in [0u64, 366 * 24 * 3600 + 1] {
        let (status, text) = s
            .call(
                "POST",
                "/api/v1/tokens",
                Some(&s.admin),
                Some(&json!({"name": "x", "role": "auditor", "ttl_secs": bad}).to_string()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(text.contains("ttl_secs"), "{text}");
    }
    let resp = s
        .send(
            "POST",
            "/api/v1/tokens",
            Some(&s.admin),
            Some(&json!({"name": "ci", "role": "auditor", "ttl_secs": 90 * 86400}).to_string()),
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    // The answer carrying the secret is never cached.
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let t = body_json(resp).await;
    let id = t["id"].as_i64().unwrap();
    let secret = t["token"].as_str().unwrap();
    assert_eq!(t["expires_at"], "2027-03-08T22:00:00Z");
    // Stored, and listed.
    let row = stored_token(&s, id).await;
    assert_eq!(
        row.expires_at,
        Some("2027-03-08T22:00:00Z".parse().unwrap())
    );
    let l = s
        .call("GET", "/api/v1/tokens", Some(&s.admin), None)
        .await
        .1;
    let l: Value = serde_json::from_str(&l).unwrap();
    let listed = l["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(listed["expires_at"], "2027-03-08T22:00:00Z");
    // The bootstrap token never expires.
    assert_eq!(l["items"][0]["expires_at"], Value::Null);

    // A second before expiry it works; at expiry it is refused.
    s.clock.advance(SignedDuration::from_secs(90 * 86400 - 1));
    let (status, _) = s.call("GET", "/api/v1/assets", Some(secret), None).await;
    assert_eq!(status, StatusCode::OK);
    s.clock.advance(SignedDuration::from_secs(1));
    let (status, text) = s.call("GET", "/api/v1/assets", Some(secret), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "token_expired");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired at 2027-03-08T22:00:00Z"),
        "{text}"
    );
    // Recorded like other refusals, naming the token.
    let denied = audit_entries(&s, "request.denied").await;
    assert!(
        denied
            .iter()
            .any(|(actor, d)| actor == &format!("token:{id}:ci") && d["reason"] == "expired token"),
        "{denied:?}"
    );
    // An unknown token still says only "unknown".
    let (status, text) = s
        .call(
            "GET",
            "/api/v1/assets",
            Some("pbt_1111111111111111111111111111111111111111111111111111111111111111"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("\"unauthenticated\""), "{text}");
}

#[tokio::test]
async fn a_scoped_token_is_refused_outside_its_scopes_and_audited() {
    let s = InProcess::new().await;
    // A scope cannot widen a role; an empty list and unknown names are refused.
    for (body, needle) in [
        (
            json!({"name": "x", "role": "auditor", "scopes": ["write"]}),
            "role 'auditor' has no 'write' permission",
        ),
        (json!({"name": "x", "role": "admin", "scopes": []}), "empty"),
        (
            json!({"name": "x", "role": "admin", "scopes": ["root"]}),
            "unknown variant",
        ),
    ] {
        let (status, text) = s
            .call(
                "POST",
                "/api/v1/tokens",
                Some(&s.admin),
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
        assert!(text.contains(needle), "{body}: {text}");
    }
    let t = s
        .ok_json(
            "POST",
            "/api/v1/tokens",
            &s.admin,
            json!({"name": "reporter", "role": "admin", "scopes": ["read", "read"]}),
        )
        .await;
    let id = t["id"].as_i64().unwrap();
    let secret = t["token"].as_str().unwrap();
    assert_eq!(t["scopes"], json!(["read"]));
    assert_eq!(stored_token(&s, id).await.scopes.as_deref(), Some("read"));
    let who = s
        .ok_json("GET", "/api/v1/whoami", secret, json!(null))
        .await;
    assert_eq!(who["scopes"], json!(["read"]));
    // Reads pass; an admin action (its role permits it) does not.
    let (status, _) = s.call("GET", "/api/v1/audit", Some(secret), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, text) = s
        .call(
            "POST",
            "/api/v1/tokens",
            Some(secret),
            Some(&json!({"name": "y", "role": "admin"}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("scopes do not include 'tokens'"), "{text}");
    let denied = audit_entries(&s, "request.denied").await;
    let (_, d) = denied
        .iter()
        .find(|(actor, _)| actor == &format!("token:{id}:reporter"))
        .expect("the scope refusal is recorded");
    assert_eq!(d["reason"], "token scopes exclude this");
    assert_eq!(d["needed_scope"], "tokens");
    assert_eq!(d["scopes"], json!(["read"]));
    // Nothing was created.
    let n = s
        .app
        .store()
        .read()
        .await
        .unwrap()
        .list_api_tokens()
        .await
        .unwrap();
    assert_eq!(n.len(), 2);
}

const ATTACKER: &str = "203.0.113.66:40000";
const OFFICE: &str = "198.51.100.7:50000";

fn random_token(i: u32) -> String {
    format!("pbt_{:064x}", 0xdead_0000u64 + i as u64)
}

#[tokio::test]
async fn brute_force_is_slowed_and_a_valid_token_elsewhere_still_works() {
    let s = InProcess::new().await;
    let cfg = BackoffConfig::default();
    let t = s
        .ok_json(
            "POST",
            "/api/v1/tokens",
            &s.admin,
            json!({"name": "victim", "role": "auditor"}),
        )
        .await;
    let victim_id = t["id"].as_i64().unwrap();
    let victim = t["token"].as_str().unwrap().to_string();

    // A brute-force loop of distinct guesses from one address.
    let mut unauthorized = 0;
    let mut first_429 = None;
    for i in 0..200 {
        let resp = s
            .send(
                "GET",
                "/api/v1/assets",
                Some(&random_token(i)),
                None,
                Some(ATTACKER),
            )
            .await;
        match resp.status() {
            StatusCode::UNAUTHORIZED => unauthorized += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                first_429.get_or_insert(resp);
            }
            other => panic!("guess {i}: {other}"),
        }
    }
    assert_eq!(
        unauthorized, cfg.source_threshold,
        "only the threshold's guesses were checked"
    );
    let resp = first_429.unwrap();
    assert_eq!(resp.headers()["retry-after"], "1");
    let v = body_json(resp).await;
    assert_eq!(v["error"]["code"], "too_many_requests");

    // The valid token from the locked address is not even checked: 429, and
    // its last use is not stamped.
    let resp = s
        .send("GET", "/api/v1/assets", Some(&victim), None, Some(ATTACKER))
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(stored_token(&s, victim_id).await.last_used_at, None);
    // From another address it works at once.
    let resp = s
        .send("GET", "/api/v1/assets", Some(&victim), None, Some(OFFICE))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(stored_token(&s, victim_id).await.last_used_at.is_some());

    // Exponential: after each lock runs out, one more failure locks twice as long.
    let mut waits = Vec::new();
    for i in 0..4 {
        let w: i64 = waits.last().copied().unwrap_or(1);
        s.clock.advance(SignedDuration::from_secs(w));
        let resp = s
            .send(
                "GET",
                "/api/v1/assets",
                Some(&random_token(1000 + i)),
                None,
                Some(ATTACKER),
            )
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "checked after the lock ran out"
        );
        let resp = s
            .send(
                "GET",
                "/api/v1/assets",
                Some(&random_token(2000 + i)),
                None,
                Some(ATTACKER),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        waits.push(
            resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap(),
        );
    }
    assert_eq!(waits, vec![2, 4, 8, 16]);

    // Throttled answers are recorded like other refusals, so boundedly: this
    // minute's were over the address's 20 entries (counted, aggregated); in
    // the next minute, one is recorded.
    assert!(audit_entries(&s, "request.throttled").await.is_empty());
    s.clock.advance(SignedDuration::from_secs(61));
    for i in 0..2 {
        s.send(
            "GET",
            "/api/v1/assets",
            Some(&random_token(3000 + i)),
            None,
            Some(ATTACKER),
        )
        .await;
    }
    let throttled = audit_entries(&s, "request.throttled").await;
    assert_eq!(throttled.len(), 1, "{throttled:?}");
    assert_eq!(throttled[0].1["remote"], ATTACKER);
    assert_eq!(throttled[0].1["retry_after_secs"], 32);
    let suppressed = audit_entries(&s, "request.denied.suppressed").await;
    assert_eq!(suppressed.len(), 1, "{suppressed:?}");

    // Quiet time forgets the address.
    s.clock.advance(cfg.quiet);
    let resp = s
        .send("GET", "/api/v1/assets", Some(&victim), None, Some(ATTACKER))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn one_bad_secret_is_throttled_everywhere_but_locks_no_other_token() {
    let s = InProcess::new().await;
    let cfg = BackoffConfig::default();
    let t = s
        .ok_json(
            "POST",
            "/api/v1/tokens",
            &s.admin,
            json!({"name": "cron", "role": "auditor"}),
        )
        .await;
    let id = t["id"].as_i64().unwrap();
    let secret = t["token"].as_str().unwrap().to_string();
    let (status, _) = s
        .call(
            "DELETE",
            &format!("/api/v1/tokens/{id}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // A script keeps sending its revoked token, from changing addresses.
    for i in 0..cfg.credential_threshold {
        let from = format!("192.0.2.{}:1000", i + 1);
        let resp = s
            .send("GET", "/api/v1/assets", Some(&secret), None, Some(&from))
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = s
        .send(
            "GET",
            "/api/v1/assets",
            Some(&secret),
            None,
            Some("192.0.2.200:1000"),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    // The same address with a valid token: fine (its own count is far from
    // the per-address threshold).
    let resp = s
        .send(
            "GET",
            "/api/v1/assets",
            Some(&s.admin),
            None,
            Some("192.0.2.200:1000"),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn agents_behind_a_brute_forcing_address_still_check_in() {
    let s = InProcess::new().await;
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
            json!({"protocol": 1, "enroll_token": et["token"], "hostname": "nat-host",
                   "machine_id": "0123456789abcdef0123456789abcdef"}),
        )
        .await;
    let agent = enrolled["agent_secret"].as_str().unwrap().to_string();
    for i in 0..=BackoffConfig::default().source_threshold {
        s.send(
            "GET",
            "/api/v1/assets",
            Some(&random_token(i)),
            None,
            Some(ATTACKER),
        )
        .await;
    }
    let resp = s
        .send(
            "GET",
            "/api/v1/assets",
            Some(&s.admin),
            None,
            Some(ATTACKER),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    // The agent's check-in from the same address passes authentication (its
    // body is not a check-in: 400, not 401/429).
    let resp = s
        .send(
            "POST",
            "/agent/v1/checkin",
            Some(&agent),
            Some("\"x\""),
            Some(ATTACKER),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

fn concrete(template: &str) -> String {
    template
        .replace("{name}", "headers-none")
        .replace("{id}", "999999")
        .replace("{cve}", "CVE-2099-0001")
        .replace("{kind}", "compliance")
}

/// Every route (from the router's own table), authorised and not, plain and
/// over the TLS router: the security headers are on every answer, HSTS only
/// when serving TLS.
#[tokio::test]
async fn security_headers_on_every_route() {
    let s = InProcess::new().await;
    let tls = patchbay_server::router::with_hsts(s.router.clone());
    let mut checked = 0;
    for r in routes() {
        let path = concrete(r.path);
        let body = (r.method != "GET").then_some("\"headers\"");
        let bearer = match r.access {
            Access::Api(_) => Some(s.admin.as_str()),
            _ => None,
        };
        for (router, hsts) in [(&s.router, false), (&tls, true)] {
            for token in [bearer, None] {
                let resp = s
                    .send_to(router, r.method, &path, token, body, Some(OFFICE))
                    .await;
                let status = resp.status();
                let h = |name: &str| {
                    resp.headers()
                        .get(name)
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_else(|| panic!("{} {path} ({status}): no {name}", r.method))
                };
                let what = format!("{} {path} ({status})", r.method);
                assert_eq!(h("x-content-type-options"), "nosniff", "{what}");
                assert_eq!(h("x-frame-options"), "DENY", "{what}");
                let page = matches!(r.access, Access::Page | Access::Session(_));
                // Dashboard pages say `same-origin` (browsers send `Origin:
                // null` on forms under `no-referrer`); it leaks nothing to
                // another site either.
                let referrer = h("referrer-policy");
                assert!(
                    referrer == "no-referrer" || (page && referrer == "same-origin"),
                    "{what}: {referrer}"
                );
                // Only the dashboard's static files may be cached.
                let cache = h("cache-control");
                if r.path.starts_with("/ui/static/") {
                    assert_eq!(cache, "public, max-age=3600", "{what}");
                } else {
                    assert_eq!(cache, "no-store", "{what}");
                }
                let csp = h("content-security-policy");
                assert!(csp.starts_with("default-src 'none'"), "{what}: {csp}");
                assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
                assert_eq!(
                    resp.headers()
                        .get("strict-transport-security")
                        .map(|v| v.to_str().unwrap()),
                    hsts.then_some("max-age=31536000"),
                    "{what}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, routes().count() * 4);
    // The HTML the server serves renders under that CSP: no external
    // resource, no script, styles inline.
    let resp = s
        .send(
            "GET",
            "/api/v1/reports/compliance?format=html",
            Some(&s.admin),
            None,
            Some(OFFICE),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .unwrap();
    let html = String::from_utf8_lossy(&bytes).to_lowercase();
    for forbidden in ["<script", "<link", "src=\"http", "href=\"http", "@import"] {
        assert!(!html.contains(forbidden), "report HTML has {forbidden}");
    }
}
