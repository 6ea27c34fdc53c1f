//! The dashboard over HTTP (issue 17), both engines: sign-in, the session
//! cookie's attributes, CSRF and cross-site refusals, lockout, the ways a
//! session ends, and an overview that never counts a host without fresh
//! data as patched. Assertions read the stored sessions and the audit log
//! through the API, not the pages' own claims. The real-browser test is
//! `patchbay-cli`'s `dashboard_browser`.

use crate::support::{InProcess, fleet, full_checkin, import_pb_demo_advisory, pb_demo_inventory};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use jiff::SignedDuration;
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";

/// A browser's request: optional cookie, optional form body, extra headers.
pub(crate) async fn browse(
    s: &InProcess,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
    extra: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "127.0.0.1:8080");
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, format!("pb_session={c}"));
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let req = match form {
        Some(f) => req
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(f.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = s.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn form(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

pub(crate) async fn add_user(s: &InProcess, name: &str, role: &str) {
    s.ok_json(
        "POST",
        "/api/v1/users",
        &s.admin,
        json!({"name": name, "role": role, "password": PASSWORD}),
    )
    .await;
}

/// Signs in; returns the cookie's value.
pub(crate) async fn sign_in(s: &InProcess, name: &str) -> String {
    let (status, headers, body) = browse(
        s,
        "POST",
        "/ui/login",
        None,
        Some(&form(&[
            ("name", name),
            ("password", PASSWORD),
            ("next", "/ui/assets"),
        ])),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(headers[header::LOCATION], "/ui/assets");
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_string();
    cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("pb_session=")
        .unwrap()
        .to_string()
}

/// The CSRF token a page put in its forms.
fn csrf_of(page: &str) -> String {
    let at = page
        .find(r#"name="csrf" value=""#)
        .expect("a form with a CSRF token")
        + 19;
    page[at..at + 32].to_string()
}

async fn sessions(s: &InProcess, all: bool) -> Vec<Value> {
    let path = if all {
        "/api/v1/sessions?all=true"
    } else {
        "/api/v1/sessions"
    };
    let (status, text) = s.call("GET", path, Some(&s.admin), None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn audit_actions(s: &InProcess) -> Vec<(String, String, String)> {
    let (_, text) = s
        .call("GET", "/api/v1/audit?limit=10000", Some(&s.admin), None)
        .await;
    let v: Value = serde_json::from_str(&text).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn sign_in_sessions_and_csrf(backend: &str) {
    let s = InProcess::on(backend).await;
    // Users are checked before anything is stored.
    for (body, needle) in [
        (
            json!({"name": "bob", "role": "operator", "password": "short"}),
            "password: must be at least 12",
        ),
        (
            json!({"name": "bob", "role": "calendar", "password": PASSWORD}),
            "role: 'calendar'",
        ),
        (
            json!({"name": "b\u{1b}[31m", "role": "operator", "password": PASSWORD}),
            "name: may hold only",
        ),
    ] {
        let (status, text) = s
            .call(
                "POST",
                "/api/v1/users",
                Some(&s.admin),
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(text.contains(needle), "{text}");
    }
    add_user(&s, "alice", "operator").await;
    let (_, text) = s.call("GET", "/api/v1/users", Some(&s.admin), None).await;
    assert!(
        !text.contains(PASSWORD) && !text.contains("argon2"),
        "{text}"
    );

    // Signed out: sent to the sign-in page, with the way back.
    let (status, headers, _) = browse(&s, "GET", "/ui/worklist", None, None, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/ui/login?next=%2Fui%2Fworklist");
    // An API token opens no page.
    let (status, _, _) = browse(
        &s,
        "GET",
        "/ui/",
        None,
        None,
        &[("authorization", &format!("Bearer {}", s.admin))],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // A wrong password: the same answer as an unknown user, audited.
    for name in ["alice", "nobody"] {
        let (status, _, body) = browse(
            &s,
            "POST",
            "/ui/login",
            None,
            Some(&form(&[("name", name), ("password", "not the password")])),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("wrong user name or password"), "{body}");
    }
    // The way back after signing in never leaves the dashboard.
    let (status, headers, _) = browse(
        &s,
        "POST",
        "/ui/login",
        None,
        Some(&form(&[
            ("name", "alice"),
            ("password", PASSWORD),
            ("next", "//evil.example/"),
        ])),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/ui/");
    let set = headers[header::SET_COOKIE].to_str().unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "cookie without {attr}: {set}");
    }
    let first = set
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("pb_session=")
        .unwrap()
        .to_string();

    let cookie = sign_in(&s, "alice").await;
    let open = sessions(&s, false).await;
    assert_eq!(open.len(), 2, "{open:?}");
    assert!(open.iter().all(|x| x["user"] == "alice"));
    // The secret is not what the server keeps or shows.
    assert!(!serde_json::to_string(&open).unwrap().contains(&cookie));

    let (status, headers, page) = browse(&s, "GET", "/ui/sessions", Some(&cookie), None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("form-action 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(!page.contains("<script"), "no script on a page");
    let csrf = csrf_of(&page);
    let first_id = open
        .iter()
        .map(|x| x["id"].as_i64().unwrap())
        .min()
        .unwrap();

    // A form without the token, with another session's token, or from another site changes nothing.
    let other_csrf = patchbay_app::users::csrf_token(&first);
    for (fields, extra) in [
        (form(&[("id", &first_id.to_string())]), vec![]),
        (
            form(&[("id", &first_id.to_string()), ("csrf", &other_csrf)]),
            vec![],
        ),
        (
            form(&[("id", &first_id.to_string()), ("csrf", &csrf)]),
            vec![("origin", "http://evil.example")],
        ),
        (
            form(&[("id", &first_id.to_string()), ("csrf", &csrf)]),
            vec![("sec-fetch-site", "cross-site")],
        ),
    ] {
        let (status, _, body) = browse(
            &s,
            "POST",
            "/ui/sessions/revoke",
            Some(&cookie),
            Some(&fields),
            &extra,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(
            sessions(&s, false).await.len(),
            2,
            "a refused form ended a session"
        );
    }
    // A sign-in from another site is refused too (login CSRF).
    let (status, _, _) = browse(
        &s,
        "POST",
        "/ui/login",
        None,
        Some(&form(&[("name", "alice"), ("password", PASSWORD)])),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(sessions(&s, false).await.len(), 2);
    // `Origin: null` (a strict referrer policy) is trusted only with the
    // browser's own `Sec-Fetch-Site: same-origin`.
    let creds = form(&[("name", "alice"), ("password", PASSWORD)]);
    let (status, _, _) = browse(
        &s,
        "POST",
        "/ui/login",
        None,
        Some(&creds),
        &[("origin", "null")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(sessions(&s, false).await.len(), 2);
    let (status, headers, _) = browse(
        &s,
        "POST",
        "/ui/login",
        None,
        Some(&creds),
        &[("origin", "null"), ("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let third = headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("pb_session=")
        .unwrap()
        .to_string();
    assert_eq!(sessions(&s, false).await.len(), 3);
    let (status, _, _) = browse(
        &s,
        "POST",
        "/ui/logout",
        Some(&third),
        Some(&form(&[("csrf", &patchbay_app::users::csrf_token(&third))])),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(sessions(&s, false).await.len(), 2);

    // With the token: the first session ends, and its cookie opens nothing.
    let (status, _, body) = browse(
        &s,
        "POST",
        "/ui/sessions/revoke",
        Some(&cookie),
        Some(&form(&[("id", &first_id.to_string()), ("csrf", &csrf)])),
        &[("origin", "http://127.0.0.1:8080")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(sessions(&s, false).await.len(), 1);
    let (status, _, _) = browse(&s, "GET", "/ui/", Some(&first), None, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // Signing out ends this one.
    let (status, headers, _) = browse(
        &s,
        "POST",
        "/ui/logout",
        Some(&cookie),
        Some(&form(&[("csrf", &csrf)])),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert!(sessions(&s, false).await.is_empty());
    let all = sessions(&s, true).await;
    assert!(all.iter().all(|x| !x["revoked_at"].is_null()), "{all:?}");
    let (status, _, _) = browse(&s, "GET", "/ui/", Some(&cookie), None, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let audit = audit_actions(&s).await;
    let has = |action: &str, actor_prefix: &str| {
        audit
            .iter()
            .any(|(a, who, _)| a == action && who.starts_with(actor_prefix))
    };
    assert!(has("user.add", "token:"), "{audit:?}");
    assert!(has("login.failed", "user:alice"), "{audit:?}");
    assert!(has("login.failed", "user:nobody"), "{audit:?}");
    assert!(has("user.login", "user:"), "{audit:?}");
    assert!(has("session.revoke", "user:"), "{audit:?}");
    assert!(has("user.logout", "user:"), "{audit:?}");
}

async fn set_password(s: &InProcess, password: &str) {
    let (status, text) = s
        .call(
            "POST",
            "/api/v1/users/carol/password",
            Some(&s.admin),
            Some(&json!({ "password": password }).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
}

async fn lockout_and_session_ends(backend: &str) {
    let s = InProcess::on(backend).await;
    add_user(&s, "carol", "approver").await;
    for _ in 0..5 {
        let (status, _, _) = browse(
            &s,
            "POST",
            "/ui/login",
            None,
            Some(&form(&[
                ("name", "carol"),
                ("password", "guess guess guess"),
            ])),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Locked: even the right password is refused, with the wait.
    let (status, headers, body) = browse(
        &s,
        "POST",
        "/ui/login",
        None,
        Some(&form(&[("name", "carol"), ("password", PASSWORD)])),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(headers[header::RETRY_AFTER], "30");
    let (_, text) = s.call("GET", "/api/v1/users", Some(&s.admin), None).await;
    let users: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(users["items"][0]["failed_logins"], 5);
    assert!(!users["items"][0]["locked_until"].is_null());
    assert!(
        audit_actions(&s)
            .await
            .iter()
            .any(|(a, _, _)| a == "login.locked")
    );
    s.clock.advance(SignedDuration::from_secs(31));
    let cookie = sign_in(&s, "carol").await;
    let (_, text) = s.call("GET", "/api/v1/users", Some(&s.admin), None).await;
    let users: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(users["items"][0]["failed_logins"], 0);

    // Idle for two hours: the session has ended.
    let (status, _, _) = browse(&s, "GET", "/ui/", Some(&cookie), None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    s.clock.advance(SignedDuration::from_hours(2));
    let (status, _, _) = browse(&s, "GET", "/ui/", Some(&cookie), None, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // A password change ends every session of the user.
    let cookie = sign_in(&s, "carol").await;
    set_password(&s, "a brand new passphrase").await;
    let (status, _, _) = browse(&s, "GET", "/ui/", Some(&cookie), None, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = browse(
        &s,
        "POST",
        "/ui/login",
        None,
        Some(&form(&[("name", "carol"), ("password", PASSWORD)])),
        &[],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old password still works"
    );

    // Disabling a user ends its sessions and refuses its sign-ins.
    set_password(&s, PASSWORD).await;
    let cookie = sign_in(&s, "carol").await;
    s.ok_json(
        "POST",
        "/api/v1/users/carol/disabled",
        &s.admin,
        json!({"disabled": true}),
    )
    .await;
    let (status, _, _) = browse(&s, "GET", "/ui/", Some(&cookie), None, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = browse(
        &s,
        "POST",
        "/ui/login",
        None,
        Some(&form(&[("name", "carol"), ("password", PASSWORD)])),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(sessions(&s, false).await.is_empty());
}

/// The number on the overview card of `bucket`.
fn card(page: &str, bucket: &str) -> u64 {
    let at = page
        .find(&format!(r#"data-bucket="{bucket}""#))
        .unwrap_or_else(|| panic!("no {bucket} card in {page}"));
    let rest = &page[at..];
    let num = rest.find(r#"class="num">"#).unwrap() + 12;
    rest[num..num + rest[num..].find('<').unwrap()]
        .parse()
        .unwrap()
}

async fn overview_counts_no_host_without_fresh_data_as_patched(backend: &str) {
    let s = InProcess::on(backend).await;
    add_user(&s, "dana", "auditor").await;
    let hosts = fleet(&s, 3, 0x0d50).await;
    let cookie = sign_in(&s, "dana").await;
    let overview = |c: String| {
        let s = &s;
        async move {
            let (status, _, page) = browse(s, "GET", "/ui/", Some(&c), None, &[]).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page
        }
    };
    // No advisories yet: nobody is patched, everybody is unknown.
    let page = overview(cookie.clone()).await;
    assert_eq!(card(&page, "patched"), 0);
    assert_eq!(card(&page, "unknown"), 3);
    assert!(page.contains("No advisory feed has been imported"));

    import_pb_demo_advisory(&s).await;
    // Compliance honesty: every host has an open finding, none overdue.
    let page = overview(cookie.clone()).await;
    assert!(
        page.contains("0 of 3 assets fully patched (0 %") && page.contains("100 % within SLA"),
        "{page}"
    );
    assert_eq!(card(&page, "exposed"), 3);
    assert_eq!(card(&page, "patched"), 0);
    // h1 upgrades: patched. A day later h1 and h2 check in, h3 is silent.
    let checkin = |h: &crate::support::Host, v: &str| {
        full_checkin(pb_demo_inventory(&h.name, &h.mid, v), json!([]))
    };
    s.ok_json(
        "POST",
        "/agent/v1/checkin",
        &hosts[0].secret,
        checkin(&hosts[0], "1.1"),
    )
    .await;
    s.clock.advance(SignedDuration::from_hours(25));
    s.ok_json(
        "POST",
        "/agent/v1/checkin",
        &hosts[0].secret,
        checkin(&hosts[0], "1.1"),
    )
    .await;
    s.ok_json(
        "POST",
        "/agent/v1/checkin",
        &hosts[1].secret,
        checkin(&hosts[1], "1.0"),
    )
    .await;
    // An appliance imported without any inventory.
    s.ok_json(
        "POST",
        "/api/v1/assets/import",
        &s.admin,
        json!([{"name": "fw-1", "kind": "network-device"}]),
    )
    .await;
    let cookie = sign_in(&s, "dana").await;
    let page = overview(cookie).await;
    assert_eq!(card(&page, "patched"), 1, "{page}");
    assert_eq!(card(&page, "exposed"), 1, "{page}");
    // h3's last data said "exposed", but it is a day old: stale, not counted either way.
    assert_eq!(card(&page, "stale"), 1, "{page}");
    assert_eq!(card(&page, "unknown"), 1, "{page}");
    // Every number names the age of its data.
    assert!(page.contains("check-in 0 s ago"), "{page}");
    assert!(page.contains("check-in 1 d ago"), "{page}");
    assert!(
        page.contains("Assessed now from advisories imported: osv"),
        "{page}"
    );
    // The tier chart is server-side SVG, and no host name reaches a page unescaped.
    assert!(page.contains("<svg"), "{page}");
}

macro_rules! both {
    ($($name:ident),*) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name("sqlite").await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name("postgres").await } )*
        }
    };
}

both!(
    sign_in_sessions_and_csrf,
    lockout_and_session_ends,
    overview_counts_no_host_without_fresh_data_as_patched,
    rollout_board_and_live_stream,
    every_page_answers_a_signed_in_reader,
    forms_create_deployments_and_keep_the_exception_register
);

async fn count_deployments(s: &InProcess, token: &str) -> usize {
    s.ok_json("GET", "/api/v1/deployments", token, json!(null))
        .await["items"]
        .as_array()
        .unwrap()
        .len()
}

/// The value of a hidden field on a page.
fn hidden_of(page: &str, name: &str) -> Option<String> {
    let key = format!(r#"<input type="hidden" name="{name}" value=""#);
    let at = page.find(&key)? + key.len();
    let raw = &page[at..at + page[at..].find('"')?];
    Some(
        raw.replace("&#10;", "\n")
            .replace("&#13;", "")
            .replace("&#x2b;", "+")
            .replace("&#43;", "+")
            .replace("&#61;", "=")
            .replace("&amp;", "&"),
    )
}

/// The dashboard's forms change things only through the service layer:
/// a deployment previewed (nothing created), then created from the
/// preview's own hidden fields, exactly as the form said; a bad line is
/// named; an exception added and revoked by an approver and shown in the
/// register; an auditor sees neither form nor link and is refused (403)
/// when posting them directly, and an operator cannot add an exception.
async fn forms_create_deployments_and_keep_the_exception_register(backend: &str) {
    use crate::deploy::token;
    let s = InProcess::on(backend).await;
    let hosts = fleet(&s, 2, 0x0f0f).await;
    import_pb_demo_advisory(&s).await;
    let ops = token(&s, "operator").await;
    add_user(&s, "olga", "operator").await;
    add_user(&s, "abe", "approver").await;
    add_user(&s, "aud", "auditor").await;
    let olga = sign_in(&s, "olga").await;
    let abe = sign_in(&s, "abe").await;
    let aud = sign_in(&s, "aud").await;

    // The list links to the form for an operator, not for an auditor.
    let (_, _, list) = browse(&s, "GET", "/ui/deployments", Some(&olga), None, &[]).await;
    assert!(list.contains(r#"href="/ui/deployments/new""#), "{list}");
    let (_, _, list) = browse(&s, "GET", "/ui/deployments", Some(&aud), None, &[]).await;
    assert!(!list.contains("/ui/deployments/new"), "{list}");
    let (status, _, _) = browse(&s, "GET", "/ui/deployments/new", Some(&aud), None, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, _, page) = browse(
        &s,
        "GET",
        "/ui/deployments/new?packages=pb-demo%3D1.1",
        Some(&olga),
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(">pb-demo=1.1</textarea>"), "{page}");
    let csrf = csrf_of(&page);
    let fields = [
        ("csrf", csrf.as_str()),
        ("packages", "pb-demo=1.1"),
        ("assets", "h1 h2"),
        ("canary", "h1"),
        ("approval", "on"),
        ("max_concurrent", "100%"),
    ];
    let (status, _, preview) = browse(
        &s,
        "POST",
        "/ui/deployments/preview",
        Some(&olga),
        Some(&form(&fields)),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert!(preview.contains("pb-demo 1.0 → 1.1"), "{preview}");
    assert!(preview.contains("Hosts (2)"), "{preview}");
    assert_eq!(
        count_deployments(&s, &ops).await,
        0,
        "a preview created something"
    );
    // Create from the preview's own hidden fields.
    let mut create: Vec<(String, String)> = vec![("csrf".into(), csrf.clone())];
    for k in ["packages", "assets", "canary", "approval", "max_concurrent"] {
        create.push((k.into(), hidden_of(&preview, k).unwrap_or_default()));
    }
    let pairs: Vec<(&str, &str)> = create
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, headers, body) = browse(
        &s,
        "POST",
        "/ui/deployments/create",
        Some(&olga),
        Some(&form(&pairs)),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let location = headers[header::LOCATION].to_str().unwrap().to_string();
    let id = location
        .strip_prefix("/ui/deployments/")
        .unwrap()
        .to_string();
    let d = s
        .ok_json(
            "GET",
            &format!("/api/v1/deployments/{id}"),
            &ops,
            json!(null),
        )
        .await;
    assert_eq!(d["deployment"]["status"], "draft", "{d}");
    assert!(
        d["deployment"]["created_by"]
            .as_str()
            .unwrap()
            .ends_with(":olga"),
        "{d}"
    );
    let mut assets: Vec<String> =
        serde_json::from_value(d["deployment"]["assets"].clone()).unwrap();
    assets.sort();
    assert_eq!(assets, ["h1", "h2"]);
    let (status, _, board) = browse(&s, "GET", &location, Some(&olga), None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(board.contains(r#"name="action" value="start""#), "{board}");
    // The rings as the form said: a canary, then "rest" needing an approval.
    let rings = d["rollout"]["rings"].as_array().unwrap();
    assert_eq!(rings.len(), 2, "{d}");
    assert_eq!(rings[0]["spec"]["name"], "canary");
    assert_eq!(rings[0]["jobs"][0]["spec"]["host"], "h1");
    assert_eq!(rings[1]["spec"]["name"], "rest");
    assert_eq!(rings[1]["spec"]["approval"], true, "{d}");
    assert_eq!(rings[0]["spec"]["approval"], false, "{d}");
    assert_eq!(count_deployments(&s, &ops).await, 1);

    // A bad line is named, and nothing is created.
    let (status, _, page) = browse(
        &s,
        "POST",
        "/ui/deployments/create",
        Some(&olga),
        Some(&form(&[("csrf", &csrf), ("packages", "pb-demo=1.1\njunk")])),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("line 2"), "{page}");
    assert_eq!(count_deployments(&s, &ops).await, 1);

    // An auditor posting the forms directly: refused, nothing created.
    let aud_csrf = {
        let (_, _, p) = browse(&s, "GET", "/ui/exceptions", Some(&aud), None, &[]).await;
        assert!(!p.contains(r#"action="/ui/exceptions""#), "{p}");
        assert!(!p.contains("/ui/exceptions/revoke"), "{p}");
        csrf_of(&p)
    };
    for path in ["/ui/deployments/preview", "/ui/deployments/create"] {
        let (status, _, _) = browse(
            &s,
            "POST",
            path,
            Some(&aud),
            Some(&form(&[("csrf", &aud_csrf), ("packages", "pb-demo=1.1")])),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(count_deployments(&s, &ops).await, 1);

    // Exceptions: an approver adds one through the form …
    let (_, _, page) = browse(&s, "GET", "/ui/exceptions", Some(&abe), None, &[]).await;
    assert!(page.contains(r#"action="/ui/exceptions""#), "{page}");
    let abe_csrf = csrf_of(&page);
    let exception = [
        ("advisory", "CVE-2026-99999"),
        ("asset", "h2"),
        ("owner", "team-web"),
        ("reason", "vendor build pending"),
        ("compensating_control", "WAF rule 942100"),
        ("expires", "30d"),
        ("kind", "deferred"),
        ("justification", ""),
    ];
    for who in [(&aud, &aud_csrf), (&olga, &csrf)] {
        let mut f = vec![("csrf", who.1.as_str())];
        f.extend(exception);
        let (status, _, _) = browse(
            &s,
            "POST",
            "/ui/exceptions",
            Some(who.0),
            Some(&form(&f)),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let none = s
        .ok_json("GET", "/api/v1/exceptions", &ops, json!(null))
        .await;
    assert_eq!(none["items"].as_array().unwrap().len(), 0, "{none}");
    let mut f = vec![("csrf", abe_csrf.as_str())];
    f.extend(exception);
    let (status, _, body) = browse(
        &s,
        "POST",
        "/ui/exceptions",
        Some(&abe),
        Some(&form(&f)),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let list = s
        .ok_json("GET", "/api/v1/exceptions", &ops, json!(null))
        .await;
    let x = &list["items"][0];
    assert!(x["approver"].as_str().unwrap().ends_with(":abe"), "{list}");
    assert_eq!(x["asset"], "h2");
    assert_eq!(x["covers"].as_array().unwrap().len(), 1, "{x}");
    let xid = x["id"].as_str().unwrap().to_string();
    let (_, _, page) = browse(&s, "GET", "/ui/exceptions", Some(&abe), None, &[]).await;
    assert!(
        page.contains(&xid) && page.contains("WAF rule 942100"),
        "{page}"
    );
    // … and revokes it, with a reason.
    let (status, _, body) = browse(
        &s,
        "POST",
        "/ui/exceptions/revoke",
        Some(&abe),
        Some(&form(&[
            ("csrf", &abe_csrf),
            ("id", &xid),
            ("reason", "fixed build shipped"),
        ])),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let x = s
        .ok_json(
            "GET",
            &format!("/api/v1/exceptions/{xid}"),
            &ops,
            json!(null),
        )
        .await;
    assert_eq!(x["status"], "revoked", "{x}");
    assert!(x["revoked_by"].as_str().unwrap().ends_with(":abe"), "{x}");
    assert_eq!(x["revoke_reason"], "fixed build shipped", "{x}");

    // The asset page: the windows and blackouts that cover it, the
    // deployments that targeted it, and its resolved findings.
    s.ok_json(
        "POST",
        "/api/v1/windows",
        &s.admin,
        json!({"name": "h2-nights", "rrule": "FREQ=DAILY", "dtstart": "2026-01-01T02:00",
               "tz": "Europe/Berlin", "duration": "2h", "assets": ["h2"]}),
    )
    .await;
    s.ok_json(
        "POST",
        "/api/v1/windows",
        &s.admin,
        json!({"name": "h1-only", "rrule": "FREQ=DAILY", "dtstart": "2026-01-01T02:00",
               "tz": "UTC", "duration": "1h", "assets": ["h1"]}),
    )
    .await;
    s.ok_json(
        "POST",
        "/agent/v1/checkin",
        &hosts[1].secret,
        full_checkin(pb_demo_inventory("h2", &hosts[1].mid, "1.1"), json!([])),
    )
    .await;
    let (status, _, page) = browse(&s, "GET", "/ui/assets/h2", Some(&aud), None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Maintenance windows (1)"), "{page}");
    assert!(
        page.contains("h2-nights") && !page.contains("h1-only"),
        "{page}"
    );
    assert!(
        page.contains(&format!(r#"href="/ui/deployments/{id}""#)),
        "{page}"
    );
    assert!(page.contains("History: resolved findings (1)"), "{page}");
    assert!(page.contains("DSA-9999-1"), "{page}");
    let (_, _, page) = browse(&s, "GET", "/ui/assets/h1", Some(&aud), None, &[]).await;
    assert!(
        page.contains("h1-only") && !page.contains("h2-nights"),
        "{page}"
    );
    assert!(page.contains("History: resolved findings (0)"), "{page}");
}

/// The live rollout board and its event stream: the board's counts equal
/// the rollout the API shows; a ring awaiting approval is approved through
/// the dashboard by a different user (four eyes: the creator cannot); the
/// stream carries the deployment's events with their ids, and a browser
/// reconnecting with `Last-Event-ID` gets exactly the events after it.
async fn rollout_board_and_live_stream(backend: &str) {
    use crate::deploy::{checkin, result, token};
    use http_body_util::BodyExt;
    let s = InProcess::on(backend).await;
    let hosts = fleet(&s, 3, 0x0b0a).await;
    import_pb_demo_advisory(&s).await;
    add_user(&s, "olga", "operator").await;
    add_user(&s, "abe", "approver").await;
    let ops = token(&s, "operator").await;
    let spec = json!({"packages": [{"name": "pb-demo", "version": "1.1"}],
    "rings": [
        {"name": "canary", "assets": ["h1"], "approval": true},
        {"name": "rest", "max_concurrent": "100%", "error_budget": "1"}
    ]});
    let d = s.ok_json("POST", "/api/v1/deployments", &ops, spec).await;
    let id = d["deployment"]["id"].as_str().unwrap().to_string();

    let olga = sign_in(&s, "olga").await;
    let page_of = |c: String| {
        let s = &s;
        let path = format!("/ui/deployments/{id}");
        async move {
            let (status, _, page) = browse(s, "GET", &path, Some(&c), None, &[]).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page
        }
    };
    // The list links to it; a draft offers "start".
    let (_, _, list) = browse(&s, "GET", "/ui/deployments", Some(&olga), None, &[]).await;
    assert!(list.contains(&format!("/ui/deployments/{id}")), "{list}");
    let page = page_of(olga.clone()).await;
    assert!(page.contains(r#"name="action" value="start""#), "{page}");
    let cursor: i64 = {
        let at = page.find("data-cursor=\"").unwrap() + 13;
        page[at..at + page[at..].find('"').unwrap()]
            .parse()
            .unwrap()
    };

    // The live stream from the page's cursor.
    let req = Request::builder()
        .uri(format!("/ui/events?after={cursor}"))
        .header(header::COOKIE, format!("pb_session={olga}"))
        .body(Body::empty())
        .unwrap();
    let resp = s.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut stream = resp.into_body();

    // Start through the dashboard's form.
    let csrf = csrf_of(&page);
    let (status, _, body) = browse(
        &s,
        "POST",
        &format!("/ui/deployments/{id}/action"),
        Some(&olga),
        Some(&form(&[("csrf", &csrf), ("action", "start")])),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    // The canary runs and succeeds.
    s.app.drive_rollouts().await.unwrap();
    let (jobs, _) = checkin(&s, &hosts[0], json!([])).await;
    assert_eq!(jobs.len(), 1);
    checkin(&s, &hosts[0], json!([result(&jobs[0].job.key, "h1", true)])).await;
    s.app.drive_rollouts().await.unwrap();

    // Within a second, the stream carries the deployment's events, in order, with ids.
    let mut seen: Vec<(i64, Value)> = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut text = String::new();
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(std::time::Duration::from_millis(1500), stream.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    text.push_str(&String::from_utf8_lossy(&data));
                }
            }
            _ => break,
        }
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let mut ev_id = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    ev_id = v.trim().parse::<i64>().ok();
                }
                if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str::<Value>(v.trim()).ok();
                }
            }
            if let (Some(i), Some(d)) = (ev_id, data) {
                seen.push((i, d));
            }
        }
    }
    assert!(!seen.is_empty(), "no event on the stream");
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "ids not increasing: {seen:?}"
    );
    assert!(seen.iter().all(|(i, _)| *i > cursor));
    let ours: Vec<&str> = seen
        .iter()
        .filter(|(_, d)| d["deployment"] == id.as_str())
        .map(|(_, d)| d["kind"].as_str().unwrap_or(""))
        .collect();
    assert!(ours.contains(&"deployment.started"), "{ours:?}");

    // The board equals the rollout the API shows.
    let api = s
        .ok_json(
            "GET",
            &format!("/api/v1/deployments/{id}"),
            &ops,
            json!(null),
        )
        .await;
    let page = page_of(olga.clone()).await;
    let canary = &api["rollout"]["rings"][0];
    assert_eq!(canary["state"], "awaiting_approval", "{api}");
    assert!(
        page.contains(r#"<span data-ring-state>awaiting_approval</span>"#),
        "{page}"
    );
    let section = &page[page.find(r#"data-ring="canary""#).unwrap()..];
    assert!(
        section.contains(r#"data-count="succeeded">1<"#),
        "{section}"
    );
    assert!(section.contains(r#"data-count="failed">0<"#), "{section}");
    assert!(section.contains(r#"data-budget>"#), "{section}");
    // The ring-progress chart: the canary's one job succeeded, the rest has not run.
    assert!(
        page.contains(r#"aria-label="Ring progress (jobs succeeded)""#),
        "{page}"
    );
    assert!(page.contains(">100 %<"), "{page}");
    assert!(page.contains(">0 %<"), "{page}");

    // Four eyes: approving needs the approve permission (olga, an operator,
    // has none) and never the creator; abe approves through the form.
    let approve = |c: &str, p: &str| {
        form(&[
            ("csrf", &csrf_of(p)),
            ("ring", "canary"),
            ("approve", "true"),
            ("comment", c),
        ])
    };
    let (status, _, _) = browse(
        &s,
        "POST",
        &format!("/ui/deployments/{id}/approval"),
        Some(&olga),
        Some(&approve("mine", &page)),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let abe = sign_in(&s, "abe").await;
    let abe_page = page_of(abe.clone()).await;
    assert!(abe_page.contains("Approval of ring canary"), "{abe_page}");
    let (status, _, body) = browse(
        &s,
        "POST",
        &format!("/ui/deployments/{id}/approval"),
        Some(&abe),
        Some(&approve("canary healthy", &abe_page)),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let api = s
        .ok_json(
            "GET",
            &format!("/api/v1/deployments/{id}"),
            &ops,
            json!(null),
        )
        .await;
    assert!(
        api["rollout"]["rings"][0]["approved_by"]
            .as_str()
            .unwrap()
            .starts_with("user:"),
        "{api}"
    );

    // An auditor sees the board but no button, and every action posted
    // directly is refused (403) and changes nothing.
    add_user(&s, "aud", "auditor").await;
    let aud = sign_in(&s, "aud").await;
    let aud_page = page_of(aud.clone()).await;
    assert!(aud_page.contains("data-ring=\"canary\""), "{aud_page}");
    assert!(!aud_page.contains("/action\""), "{aud_page}");
    assert!(!aud_page.contains("/approval\""), "{aud_page}");
    assert!(!aud_page.contains("Approval of ring"), "{aud_page}");
    let aud_csrf = csrf_of(&aud_page);
    let before = s
        .ok_json(
            "GET",
            &format!("/api/v1/deployments/{id}"),
            &ops,
            json!(null),
        )
        .await;
    for action in ["start", "pause", "resume", "abort", "rollback"] {
        let (status, _, _) = browse(
            &s,
            "POST",
            &format!("/ui/deployments/{id}/action"),
            Some(&aud),
            Some(&form(&[
                ("csrf", &aud_csrf),
                ("action", action),
                ("comment", "x"),
            ])),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}");
    }
    let after = s
        .ok_json(
            "GET",
            &format!("/api/v1/deployments/{id}"),
            &ops,
            json!(null),
        )
        .await;
    assert_eq!(
        before["rollout"], after["rollout"],
        "an auditor's post changed the rollout"
    );

    // Reconnecting with Last-Event-ID: exactly the events after it.
    let resume_after = seen[0].0;
    let req = Request::builder()
        .uri(format!("/ui/events?after={cursor}"))
        .header(header::COOKIE, format!("pb_session={abe}"))
        .header("last-event-id", resume_after.to_string())
        .body(Body::empty())
        .unwrap();
    let resp = s.router.clone().oneshot(req).await.unwrap();
    let mut stream = resp.into_body();
    let frame = tokio::time::timeout(std::time::Duration::from_secs(3), stream.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first = String::from_utf8_lossy(&frame.into_data().unwrap()).into_owned();
    let first_id: i64 = first
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(first_id, seen[1].0, "{first}");
    // A stream without a session is no stream.
    let (status, _, _) = browse(&s, "GET", "/ui/events", None, None, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

/// Every dashboard page (every `Session` GET route of the route table, so a
/// new page is covered when it is added) answers a signed-in auditor with a
/// page of its own, on a fleet with findings, a deployment and its change
/// record; report downloads come as their formats.
async fn every_page_answers_a_signed_in_reader(backend: &str) {
    use crate::deploy::token;
    let s = InProcess::on(backend).await;
    fleet(&s, 2, 0x0e0e).await;
    import_pb_demo_advisory(&s).await;
    let ops = token(&s, "operator").await;
    let d = s
        .ok_json(
            "POST",
            "/api/v1/deployments",
            &ops,
            json!({"packages": [{"name": "pb-demo", "version": "1.1"}],
                   "rings": [{"name": "all", "assets": ["h1", "h2"]}]}),
        )
        .await;
    let dep = d["deployment"]["id"].as_str().unwrap().to_string();
    let changes = s.ok_json("GET", "/api/v1/changes", &ops, json!(null)).await;
    let change = changes["items"][0]["id"].as_str().unwrap().to_string();
    add_user(&s, "ava", "auditor").await;
    let cookie = sign_in(&s, "ava").await;
    let mut checked = 0;
    for r in patchbay_server::routes() {
        if r.method != "GET"
            || !matches!(r.access, patchbay_server::Access::Session(_))
            || r.path == "/ui/events"
            || r.path == "/ui/evidence"
        {
            continue;
        }
        let path = r
            .path
            .replace("{name}", "h1")
            .replace(
                "{id}",
                if r.path.starts_with("/ui/changes") {
                    &change
                } else {
                    &dep
                },
            )
            .replace("{kind}", "compliance");
        let path = if path == "/ui/triage" {
            "/ui/triage?cve=CVE-2026-99999".to_string()
        } else {
            path
        };
        let (status, headers, page) = browse(&s, "GET", &path, Some(&cookie), None, &[]).await;
        if path == "/ui/deployments/new" {
            // A form for those who may create deployments only.
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {page}");
            continue;
        }
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(page.contains("</html>"), "{path}");
        checked += 1;
    }
    assert!(checked >= 15, "{checked} pages");
    // Triage names the affected assets; the overview draws its charts.
    let (_, _, page) = browse(
        &s,
        "GET",
        "/ui/triage?cve=CVE-2026-99999",
        Some(&cookie),
        None,
        &[],
    )
    .await;
    assert!(
        page.contains("the fleet is affected") && page.contains(">h1<") && page.contains(">h2<"),
        "{page}"
    );
    let (_, _, page) = browse(&s, "GET", "/ui/", Some(&cookie), None, &[]).await;
    for title in [
        "Open findings by tier",
        "Resolved within SLA, by week",
        "Median time to patch, by tier",
    ] {
        assert!(
            page.contains(&format!(r#"aria-label="{title}"#)),
            "{title}: {page}"
        );
    }
    // Downloads.
    for (format, ctype) in [
        ("csv", "text/csv"),
        ("json", "application/json"),
        ("html", "text/html"),
    ] {
        for kind in ["compliance", "ttp", "sla", "coverage", "deployments"] {
            let path = format!("/ui/reports/{kind}?format={format}");
            let (status, headers, body) = browse(&s, "GET", &path, Some(&cookie), None, &[]).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            assert!(
                headers[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with(ctype),
                "{path}"
            );
            if format != "html" {
                let cd = headers[header::CONTENT_DISPOSITION].to_str().unwrap();
                assert!(
                    cd.starts_with("attachment;") && cd.contains(&format!(".{format}")),
                    "{cd}"
                );
            }
        }
    }
    let (status, _, _) = browse(&s, "GET", "/ui/reports/nope", Some(&cookie), None, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The evidence bundle: a zip, and its export is in the audit log as the user's.
    let (status, headers, body) = browse(&s, "GET", "/ui/evidence", Some(&cookie), None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/zip");
    assert!(body.as_bytes().starts_with(b"PK"), "not a zip");
    assert!(
        audit_actions(&s)
            .await
            .iter()
            .any(|(a, who, _)| a == "evidence.export"
                && who.starts_with("user:")
                && who.ends_with(":ava")),
        "the export is not recorded as ava's"
    );

    // The calendar: December 2026 holds the Saturday window's occurrences
    // (the clock is 2026-12-08), in UTC; a bad month is refused.
    s.ok_json(
        "POST",
        "/api/v1/windows",
        &s.admin,
        json!({"name": "sat-night", "rrule": "FREQ=WEEKLY;BYDAY=SA", "dtstart": "2026-01-03T02:00:00",
               "tz": "Europe/Berlin", "duration": "4h"}),
    )
    .await;
    let (_, _, page) = browse(&s, "GET", "/ui/calendar", Some(&cookie), None, &[]).await;
    assert!(page.contains("December 2026 (UTC)"), "{page}");
    // Saturdays of December 2026 at 02:00 Berlin = 01:00 UTC.
    for day in ["05", "12", "19", "26"] {
        assert!(
            page.contains(&format!("2026-12-{day}T01:00:00Z")),
            "{day}: {page}"
        );
    }
    assert!(
        page.contains("?month=2027-01") && page.contains("?month=2026-11"),
        "{page}"
    );
    let (_, _, page) = browse(
        &s,
        "GET",
        "/ui/calendar?month=2027-01",
        Some(&cookie),
        None,
        &[],
    )
    .await;
    assert!(
        page.contains("2027-01-02T01:00:00Z") && !page.contains("2026-12-26T01"),
        "{page}"
    );
    let (status, _, _) = browse(
        &s,
        "GET",
        "/ui/calendar?month=2026-13",
        Some(&cookie),
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The catalog lists the patch; the audit page verifies the chain on request.
    let (_, _, page) = browse(&s, "GET", "/ui/catalog", Some(&cookie), None, &[]).await;
    assert!(
        page.contains("<td>pb-demo</td>") && page.contains("<td>1.1</td>"),
        "{page}"
    );
    let (_, _, page) = browse(&s, "GET", "/ui/audit", Some(&cookie), None, &[]).await;
    assert!(page.contains("Not verified on this page load"), "{page}");
    let (_, _, page) = browse(&s, "GET", "/ui/audit?verify=1", Some(&cookie), None, &[]).await;
    assert!(page.contains("Chain verified now: intact:"), "{page}");
    // An entry edited in the database: the page says where the chain breaks.
    patchbay_store::testing::execute_raw(
        &s.db_url,
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3",
    )
    .await
    .unwrap();
    let (_, _, page) = browse(&s, "GET", "/ui/audit?verify=1", Some(&cookie), None, &[]).await;
    assert!(page.contains("Chain verified now: BROKEN:"), "{page}");
}
