//! The NOC dashboard (issue 17): server-rendered pages for people signed in
//! with a user name and password (`patchbay users add`), never an API token.
//!
//! - **Sessions**: the cookie `pb_session` (`HttpOnly; Secure;
//!   SameSite=Strict; Path=/`) holds the session secret; the server keeps its
//!   hash ([`patchbay_app::users`]). Browsers keep `Secure` cookies over
//!   HTTPS and on `localhost`/`127.0.0.1` only, so the dashboard is for a
//!   server with `--tls-cert`, behind a TLS-terminating proxy, or on this
//!   machine.
//! - **CSRF**: every form carries the session's CSRF token ([`UiForm`]
//!   refuses a POST without the right one), and a POST whose `Origin` is
//!   another site, or that the browser marks `Sec-Fetch-Site: cross-site`,
//!   is refused before anything else ([`same_origin`]) — the sign-in form
//!   included (login CSRF).
//! - **Headers**: every page is sent with a content security policy that
//!   allows only this server's stylesheet and script and forms posting to
//!   this server ([`UI_CSP`]); the one script is wall-screen mode's pausable
//!   refresh; nothing comes from a CDN.
//! - A signed-out visitor asking for a page is sent to the sign-in page, and
//!   back to the page after signing in (only a local path is followed).

use crate::extract::Ctx;
use crate::router::AppState;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use patchbay_app::rollup::Got;
use patchbay_app::users::{SessionCaller, csrf_ok, csrf_token};
use patchbay_app::{AppError, RequestCtx};
use patchbay_render::dashboard::{self as view, Cell, Page, Table};
use serde::Deserialize;
use std::collections::HashMap;

/// The session cookie's name.
pub const COOKIE: &str = "pb_session";

/// The content security policy of dashboard pages: this server's
/// stylesheet, forms to this server, nothing else.
pub const UI_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// What a path segment of a dashboard link escapes (RFC 3986: everything
/// but unreserved characters and a few sub-delimiters).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@')
    .remove(b':');

/// `s` as one path segment of a link.
pub(crate) fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// Largest form body read (a sign-in or a one-button form).
const MAX_FORM: usize = 16 * 1024;

fn session_cookie(secret: &str, max_age: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={secret}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("pb_session=; Path=/; Max-Age=0"))
}

fn cookie_secret(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.starts_with("pbs_") && v.len() < 200)
}

/// A page answer: HTML with the dashboard's headers.
fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, Html(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(UI_CSP),
    );
    // `no-referrer` (the API's) makes browsers send `Origin: null` on the
    // forms' POSTs; `same-origin` still tells no other site anything.
    r.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

pub(crate) fn message(status: StatusCode, title: &str, text: &str, back: &str) -> Response {
    match view::message(title, text, back) {
        Ok(b) => html(status, b),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// An error of the service layer as a page a person reads.
pub(crate) fn app_error(e: AppError) -> Response {
    let status =
        StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let title = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
        s if s.is_client_error() => "Cannot do that",
        _ => "Something went wrong",
    };
    message(status, title, &e.message, "/ui/")
}

pub(crate) fn render(r: Result<String, patchbay_render::Error>) -> Response {
    match r {
        Ok(b) => html(StatusCode::OK, b),
        Err(e) => message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            &e.to_string(),
            "/ui/",
        ),
    }
}

/// Refuses a cross-site POST: `Sec-Fetch-Site` other than `same-origin` or
/// `none` (a person typing), or an `Origin` that is not this host. An
/// `Origin: null` (sent under a strict referrer policy, or from a sandboxed
/// frame) is accepted only with `Sec-Fetch-Site: same-origin`.
fn same_origin(headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if fetch_site.is_some_and(|v| v != "same-origin" && v != "none") {
        return false;
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some("null") => fetch_site == Some("same-origin"),
        Some(origin) => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            origin.split_once("://").map(|(_, h)| h) == Some(host)
        }
    }
}

/// The answer to a cross-site POST.
fn cross_site() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Refused",
        "This form was sent from another site.",
        "/ui/",
    )
}

/// A local path to return to after signing in (never another site).
fn local_next(next: &str) -> &str {
    let ok = next.starts_with("/ui/")
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control());
    if ok { next } else { "/ui/" }
}

/// The signed-in person making the request, with the request's facts. A
/// request without a live session is sent to the sign-in page.
pub struct UiUser {
    /// Who.
    pub who: SessionCaller,
    /// The request, for the audit trail.
    pub ctx: RequestCtx,
    /// The session secret (to check forms' CSRF tokens).
    secret: String,
    /// Wall-screen mode asked for (`?wall=1`).
    wall: bool,
}

impl UiUser {
    pub(crate) fn page(&self, title: &str, nav: &str, now: &str) -> Page {
        Page {
            title: title.to_string(),
            user: self.who.user.clone(),
            role: self.who.caller.role.to_string(),
            csrf: csrf_token(&self.secret),
            now: now.to_string(),
            wall: self.wall,
            nav: view::nav(nav),
        }
    }
}

/// A dashboard route's declared permission ([`crate::router::Access::Session`]),
/// checked before the handler runs: a signed-in person without it gets a
/// 403 page (the refusal is audited by the service layer), whatever the
/// handler would do — a form page with no service call behind it included.
/// The session found is handed to [`UiUser`] so it is read once. Without a
/// live session the request goes on, and [`UiUser`] sends it to sign in.
pub(crate) async fn require_session_permission(
    State((st, action)): State<(AppState, patchbay_core::auth::Action)>,
    mut req: Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(secret) = cookie_secret(req.headers()) else {
        return next.run(req).await;
    };
    let ctx = crate::extract::request_ctx(&req);
    match st.app.authenticate_session(&secret, &ctx).await {
        Ok(who) => {
            if let Err(e) = st.app.require(&who.caller, action, &ctx).await {
                return app_error(e);
            }
            req.extensions_mut().insert(who);
            next.run(req).await
        }
        Err(_) => next.run(req).await,
    }
}

impl FromRequestParts<AppState> for UiUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        let Ctx(ctx) = Ctx::from_request_parts(parts, st)
            .await
            .map_err(|e| match e {})?;
        let to_login = || {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/ui/");
            let target = format!(
                "/ui/login?next={}",
                percent_encoding::utf8_percent_encode(
                    local_next(next),
                    percent_encoding::NON_ALPHANUMERIC
                )
            );
            Redirect::to(&target).into_response()
        };
        let Some(secret) = cookie_secret(&parts.headers) else {
            return Err(to_login());
        };
        let checked = parts.extensions.get::<SessionCaller>().cloned();
        let who = match checked {
            Some(who) => Ok(who),
            None => st.app.authenticate_session(&secret, &ctx).await,
        };
        match who {
            Ok(who) => Ok(UiUser {
                who,
                ctx,
                secret,
                wall: parts
                    .uri
                    .query()
                    .is_some_and(|q| q.split('&').any(|kv| kv == "wall=1")),
            }),
            Err(e) if e.code.http_status() == 401 => Err(to_login()),
            Err(e) => Err(app_error(e)),
        }
    }
}

/// A form posted by a signed-in person: same origin, the session's CSRF
/// token in its `csrf` field, at most 16 KiB.
pub struct UiForm {
    /// The person.
    pub user: UiUser,
    /// The form's fields (the last value of each name).
    pub fields: HashMap<String, String>,
}

fn parse_form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

impl FromRequest<AppState> for UiForm {
    type Rejection = Response;

    async fn from_request(req: Request, st: &AppState) -> Result<Self, Response> {
        if !same_origin(req.headers()) {
            return Err(cross_site());
        }
        let (mut parts, body) = req.into_parts();
        let user = UiUser::from_request_parts(&mut parts, st).await?;
        let req = Request::from_parts(parts, body);
        let bytes = Bytes::from_request(req, st).await.map_err(|e| {
            message(
                StatusCode::BAD_REQUEST,
                "Cannot read the form",
                &e.body_text(),
                "/ui/",
            )
        })?;
        if bytes.len() > MAX_FORM {
            return Err(message(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Form too large",
                "The form is larger than 16 KiB.",
                "/ui/",
            ));
        }
        let fields = parse_form(&bytes);
        let offered = fields.get("csrf").map(String::as_str).unwrap_or("");
        if !csrf_ok(&user.secret, offered) {
            return Err(message(
                StatusCode::FORBIDDEN,
                "Refused",
                "This form is out of date or was not sent from this dashboard: reload the page and try again.",
                "/ui/",
            ));
        }
        Ok(UiForm { user, fields })
    }
}

/// `GET /`: to the dashboard.
pub async fn root() -> Response {
    Redirect::to("/ui/").into_response()
}

/// `GET /ui/static/app.css`.
pub async fn stylesheet() -> Response {
    static_file("text/css; charset=utf-8", view::STYLESHEET)
}

/// One of the dashboard's static files (compiled in), cacheable for an hour.
fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// `GET /ui/static/live.js`.
pub async fn live_script() -> Response {
    static_file("text/javascript; charset=utf-8", view::LIVE_SCRIPT)
}

/// `GET /ui/static/wall.js`.
pub async fn wall_script() -> Response {
    static_file("text/javascript; charset=utf-8", view::WALL_SCRIPT)
}

/// Query of the sign-in page.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// Where to go after signing in.
    #[serde(default)]
    next: String,
}

/// `GET /ui/login`.
pub async fn login_form(q: Result<Query<LoginQuery>, QueryRejection>) -> Response {
    let next = q.map(|Query(q)| q.next).unwrap_or_default();
    render(view::login("", "", local_next(&next)))
}

/// `POST /ui/login`: name, password, next.
pub async fn login(
    State(st): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let Ok(body) = body else {
        return message(
            StatusCode::BAD_REQUEST,
            "Cannot read the form",
            "",
            "/ui/login",
        );
    };
    if body.len() > MAX_FORM {
        return message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Form too large",
            "The form is larger than 16 KiB.",
            "/ui/login",
        );
    }
    let f = parse_form(&body);
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let next = local_next(get("next")).to_string();
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match st
        .app
        .login(get("name"), get("password"), agent, &ctx)
        .await
    {
        Ok(s) => {
            let max_age = (s.expires_at.as_second() - st.app.now().as_second()).max(0);
            let mut r = Redirect::to(&next).into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, session_cookie(&s.secret, max_age));
            r
        }
        Err(e) => {
            let status =
                StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
            let mut r = match view::login(&e.message, get("name"), &next) {
                Ok(b) => html(status, b),
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
            };
            if let Some(s) = e.retry_after {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(s));
            }
            r
        }
    }
}

/// `POST /ui/logout`.
pub async fn logout(State(st): State<AppState>, form: UiForm) -> Response {
    if let Err(e) = st.app.logout(&form.user.secret).await {
        return app_error(e);
    }
    let mut r = Redirect::to("/ui/login").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", 0));
    r
}

pub(crate) fn now_text(st: &AppState) -> String {
    patchbay_app::fmt_ts(st.app.now())
}

/// `GET /ui/`: the overview.
pub async fn overview(State(st): State<AppState>, u: UiUser) -> Response {
    let page = u.page("Overview", "/ui/", &now_text(&st));
    match st.app.dashboard_overview(&u.who.caller, &u.ctx).await {
        Ok(Got::Ready(o)) => render(view::overview(&page, &o.value)),
        Ok(Got::Pending { since, last_took }) => pending(&st, &page, since, last_took),
        Err(e) => app_error(e),
    }
}

/// Seconds between loads of a page whose figures are being computed.
const PENDING_RETRY_S: u64 = 5;

/// The page that says its figures are being computed, and since when.
fn pending(
    st: &AppState,
    page: &view::Page,
    since: jiff::Timestamp,
    last_took: Option<std::time::Duration>,
) -> Response {
    let text = patchbay_app::dashboard::pending_note(since, last_took, st.app.now());
    render(view::pending(page, &text, PENDING_RETRY_S))
}

/// Filters of the assets page.
#[derive(Debug, Default, Deserialize)]
pub struct AssetsQuery {
    /// Text searched in name, owner, OS, kind and tags.
    #[serde(default)]
    q: String,
    /// `any`, `managed`, `stale` or `unmanaged`.
    #[serde(default)]
    liveness: String,
}

/// `GET /ui/assets`.
pub async fn assets(
    State(st): State<AppState>,
    u: UiUser,
    q: Result<Query<AssetsQuery>, QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let now = st.app.now().as_second();
    let liveness = if q.liveness.is_empty() {
        "any"
    } else {
        q.liveness.as_str()
    };
    let (matching, n_matching, n_total) = match st
        .app
        .asset_list_page(&u.who.caller, &q.q, liveness, ASSET_PAGE_ROWS, &u.ctx)
        .await
    {
        Ok(l) => l,
        Err(e) => return app_error(e),
    };
    let rows: Vec<view::AssetLine> = matching
        .iter()
        .map(|a| view::AssetLine {
            href: seg(&a.name),
            name: a.name.clone(),
            kind: a.kind.clone(),
            os: a.os.clone(),
            owner: a.owner.clone(),
            liveness: a.liveness.clone(),
            last_seen: a
                .last_seen
                .as_deref()
                .map(|s| {
                    let ago = s
                        .parse::<jiff::Timestamp>()
                        .map(|t| view::age(now, t.as_second()))
                        .unwrap_or_default();
                    format!("{s} ({ago})")
                })
                .unwrap_or_else(|| "never".into()),
            packages: a.package_count,
        })
        .collect();
    render(view::assets(
        &u.page("Assets", "/ui/assets", &now_text(&st)),
        &q.q,
        liveness,
        &rows,
        usize::try_from(n_matching).unwrap_or(usize::MAX),
        usize::try_from(n_total).unwrap_or(usize::MAX),
    ))
}

/// Assets one page lists (a fleet of 50,000 is searched, not scrolled).
const ASSET_PAGE_ROWS: usize = 1000;

/// `GET /ui/assets/{name}`: facts, findings, packages.
pub async fn asset(State(st): State<AppState>, u: UiUser, Path(name): Path<String>) -> Response {
    let detail = match st.app.show_asset(&u.who.caller, &name, &u.ctx).await {
        Ok(d) => d,
        Err(e) => return app_error(e),
    };
    let work = match st
        .app
        .worklist(
            &u.who.caller,
            &patchbay_app::prioritise::WorkFilter {
                asset: Some(name.clone()),
                limit: Some(patchbay_app::prioritise::MAX_WORKLIST_LIMIT),
                ..Default::default()
            },
            &u.ctx,
        )
        .await
    {
        Ok(w) => w,
        Err(e) => return app_error(e),
    };
    let schedule = match st.app.asset_schedule(&u.who.caller, &name, &u.ctx).await {
        Ok(x) => x,
        Err(e) => return app_error(e),
    };
    let deployments = match st.app.deployments(&u.who.caller, &u.ctx).await {
        Ok(l) => l,
        Err(e) => return app_error(e),
    };
    let resolved = match st
        .app
        .list_findings(&u.who.caller, Some(&name), true, &u.ctx)
        .await
    {
        Ok(mut l) => {
            l.retain(|f| f.resolved_at.is_some());
            l.sort_by(|a, b| b.resolved_at.cmp(&a.resolved_at));
            l
        }
        Err(e) => return app_error(e),
    };
    // Drift from each of its policy groups' baseline (issue 18's drift).
    let mut drift = Vec::new();
    for g in &schedule.groups {
        match st.app.dashboard_group_drift(&u.who.caller, g, &u.ctx).await {
            Ok(got) => drift.push(drift_table(&st, g, &name, got)),
            Err(e) => return app_error(e),
        }
    }
    let s = &detail.summary;
    let facts = Table {
        caption: "Facts".into(),
        head: vec!["Fact", "Value"],
        rows: [
            ("Kind", s.kind.clone()),
            ("Owner", s.owner.clone()),
            ("Environment", s.environment.clone()),
            ("Business impact", s.business_impact.clone()),
            ("Exposure", s.exposure.clone()),
            ("Liveness", s.liveness.clone()),
            (
                "Last seen",
                s.last_seen.clone().unwrap_or_else(|| "never".into()),
            ),
            ("OS", detail.os_pretty_name.clone()),
            ("Kernel", detail.kernel.clone()),
            ("Host name", detail.hostname.clone()),
            ("Addresses", detail.ip_addresses.join(", ")),
            ("Tags", s.tags.join(", ")),
            ("Policy groups", schedule.groups.join(", ")),
            (
                "Reboot required",
                if detail.reboot_required {
                    "yes".into()
                } else {
                    "no".into()
                },
            ),
        ]
        .into_iter()
        .map(|(k, v)| vec![Cell::from(k), Cell::from(v)])
        .collect(),
        empty: String::new(),
    };
    let findings = work_table("Open findings", &work, false);
    let packages = Table {
        caption: format!("Packages ({})", detail.packages.len()),
        head: vec!["Package", "Version", "Architecture", "Source"],
        rows: detail
            .packages
            .iter()
            .map(|p| {
                vec![
                    Cell::from(p.name.as_str()),
                    Cell::from(p.version.as_str()),
                    Cell::from(p.arch.as_str()),
                    Cell::from(p.source.clone().unwrap_or_default()),
                ]
            })
            .collect(),
        empty: "No inventory reported.".into(),
    };
    let windows = Table {
        caption: format!("Maintenance windows ({})", schedule.windows.len()),
        head: vec!["Window", "Rule", "Time zone", "Length", "Next openings (UTC)"],
        rows: schedule
            .windows
            .iter()
            .map(|w| {
                vec![
                    Cell::from(w.spec.name.as_str()),
                    Cell::from(w.spec.rrule.as_str()),
                    Cell::from(w.spec.tz.as_str()),
                    Cell::from(w.spec.duration.as_str()),
                    Cell::from(
                        w.next
                            .iter()
                            .map(|o| o.start.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                ]
            })
            .collect(),
        empty: "No maintenance window covers this asset: its jobs may run any time before a deployment's deadline.".into(),
    };
    let blackouts = Table {
        caption: format!("Blackouts ({})", schedule.blackouts.len()),
        head: vec!["Blackout", "From", "Until", "Why", "Owner"],
        rows: schedule
            .blackouts
            .iter()
            .map(|b| {
                vec![
                    Cell::from(b.name.as_str()),
                    Cell::from(b.start.as_str()),
                    Cell::from(b.end.as_str()),
                    Cell::from(b.reason.as_str()),
                    Cell::from(b.owner.as_str()),
                ]
            })
            .collect(),
        empty: "No blackout covers this asset.".into(),
    };
    let history = Table {
        caption: "History: deployments".into(),
        head: vec!["Deployment", "Status", "Patches", "Created", "By"],
        rows: deployments
            .iter()
            .filter(|d| d.assets.iter().any(|a| a == &name))
            .map(|d| {
                vec![
                    Cell {
                        text: d.id.clone(),
                        href: Some(format!("/ui/deployments/{}", seg(&d.id))),
                    },
                    Cell::from(d.status.as_str()),
                    Cell::from(d.patches.join(", ")),
                    Cell::from(d.created_at.as_str()),
                    Cell::from(d.created_by.as_str()),
                ]
            })
            .collect(),
        empty: "No deployment has targeted this asset.".into(),
    };
    const SHOWN_RESOLVED: usize = 100;
    let closed = Table {
        caption: format!(
            "History: resolved findings ({}{})",
            resolved.len(),
            if resolved.len() > SHOWN_RESOLVED {
                format!(", the newest {SHOWN_RESOLVED} shown")
            } else {
                String::new()
            }
        ),
        head: vec!["Resolved", "Advisory", "Package", "Was", "First seen"],
        rows: resolved
            .iter()
            .take(SHOWN_RESOLVED)
            .map(|f| {
                vec![
                    Cell::from(f.resolved_at.clone().unwrap_or_default()),
                    Cell::from(f.advisory.as_str()),
                    Cell::from(f.package.as_str()),
                    Cell::from(f.installed_version.as_str()),
                    Cell::from(f.first_seen.as_str()),
                ]
            })
            .collect(),
        empty: "No finding of this asset has been resolved yet.".into(),
    };
    render(view::tables(
        &u.page(&format!("Asset {name}"), "/ui/assets", &now_text(&st)),
        "",
        &[
            facts, findings, packages, windows, blackouts, history, closed,
        ]
        .into_iter()
        .chain(drift)
        .collect::<Vec<_>>(),
        &[],
    ))
}

/// The asset page's table of its drift from a policy group's baseline.
fn drift_table(
    st: &AppState,
    group: &str,
    asset: &str,
    got: Got<patchbay_proto::api::GroupDriftOut>,
) -> Table {
    let head = vec![
        "Package",
        "Architecture",
        "Difference",
        "Baseline",
        "Installed",
    ];
    let r = match got {
        Got::Pending { since, last_took } => {
            return Table {
                caption: format!("Drift from group {group}'s baseline"),
                head,
                rows: vec![],
                empty: patchbay_app::dashboard::pending_note(since, last_took, st.app.now()),
            };
        }
        Got::Ready(r) => r,
    };
    let g = &*r.value;
    let basis = match &g.golden {
        Some(h) => format!("golden host {h}"),
        None => format!("the modal version over {} hosts", g.hosts),
    };
    let note = patchbay_app::dashboard::rolled_note(r.stored, st.app.now());
    let (caption, rows, empty) = match g.assets.iter().find(|h| h.asset == asset) {
        Some(h) => (
            format!(
                "Drift from group {group}'s baseline ({basis}): {} newer, {} older, {} differ, {} missing, {} extra",
                h.newer, h.older, h.differs, h.missing, h.extra
            ),
            h.differences
                .iter()
                .map(|d| {
                    vec![
                        Cell::from(d.name.as_str()),
                        Cell::from(d.arch.as_str()),
                        Cell::from(d.kind.as_str()),
                        Cell::from(d.baseline.clone().unwrap_or_default()),
                        Cell::from(d.installed.clone().unwrap_or_default()),
                    ]
                })
                .collect(),
            "No drift: every package is at the baseline.".to_string(),
        ),
        None => {
            let why = g
                .skipped
                .iter()
                .find(|s| s.asset == asset)
                .map(|s| s.reason.clone())
                .unwrap_or_else(|| "it has no inventory yet".into());
            (
                format!("Drift from group {group}'s baseline ({basis})"),
                vec![],
                format!("Not compared: {why}."),
            )
        }
    };
    Table {
        caption: if note.is_empty() {
            caption
        } else {
            format!("{caption}. {note}")
        },
        head,
        rows,
        empty,
    }
}

fn work_table(caption: &str, work: &[patchbay_proto::api::WorkItem], with_asset: bool) -> Table {
    let mut head = vec!["Tier", "Due", "Advisory", "Package", "Fixed in", "Reasons"];
    if with_asset {
        head.insert(0, "Asset");
    }
    Table {
        caption: format!("{caption} ({})", work.len()),
        head,
        rows: work
            .iter()
            .map(|w| {
                let f = &w.finding;
                let mut row = vec![
                    Cell::from(w.tier.as_str()),
                    Cell::from(if w.overdue {
                        format!("{} (overdue)", w.due)
                    } else {
                        w.due.clone()
                    }),
                    Cell::from(format!("{} {}", f.advisory, f.cves.join(" "))),
                    Cell::from(format!("{} {}", f.package, f.installed_version)),
                    Cell::from(f.fixed_version.clone().unwrap_or_else(|| "no fix".into())),
                    Cell::from(w.reasons.join("; ")),
                ];
                if with_asset {
                    row.insert(
                        0,
                        Cell {
                            text: f.asset.clone(),
                            href: Some(format!("/ui/assets/{}", seg(&f.asset))),
                        },
                    );
                }
                row
            })
            .collect(),
        empty: "Nothing to patch.".into(),
    }
}

/// `GET /ui/worklist`: what to patch next (the first 500).
pub async fn worklist(State(st): State<AppState>, u: UiUser) -> Response {
    let page = u.page("Worklist", "/ui/worklist", &now_text(&st));
    let work = match st.app.dashboard_worklist(&u.who.caller, &u.ctx).await {
        Ok(Got::Ready(w)) => w,
        Ok(Got::Pending { since, last_took }) => return pending(&st, &page, since, last_took),
        Err(e) => return app_error(e),
    };
    let intro = format!(
        "Open findings that are neither excepted nor excluded by the policy: overdue first, then by tier, due date and score. {}",
        patchbay_app::dashboard::rolled_note(work.stored, st.app.now())
    );
    render(view::tables(
        &page,
        intro.trim_end(),
        &[work_table("Findings", &work.value, true)],
        &[],
    ))
}

/// Query of the audit page.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// `1`: verify the whole chain first.
    #[serde(default)]
    verify: String,
}

/// `GET /ui/audit`: the newest 200 entries; `?verify=1` verifies the whole
/// chain against this server's key first.
pub async fn audit(
    State(st): State<AppState>,
    u: UiUser,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let verify = q.is_ok_and(|Query(q)| q.verify == "1");
    let entries = match st.app.recent_audit(&u.who.caller, 200, &u.ctx).await {
        Ok(e) => e,
        Err(e) => return app_error(e),
    };
    let status = if verify {
        match st.app.audit_verify_line(&u.who.caller, &u.ctx).await {
            Ok(l) => format!("Chain verified now: {l}."),
            Err(e) => return app_error(e),
        }
    } else {
        "Not verified on this page load: follow \"Verify the chain\" (reads the whole log).".into()
    };
    let t = Table {
        caption: "Newest entries".into(),
        head: vec!["#", "At", "Actor", "Action", "Target", "Outcome"],
        rows: entries
            .iter()
            .map(|e| {
                vec![
                    Cell::from(e.seq.to_string()),
                    Cell::from(e.at.as_str()),
                    Cell::from(e.actor.as_str()),
                    Cell::from(e.action.as_str()),
                    Cell::from(e.target.as_str()),
                    Cell::from(e.outcome.as_str()),
                ]
            })
            .collect(),
        empty: "The audit log is empty.".into(),
    };
    let verify_link = Table {
        caption: "Verification".into(),
        head: vec!["Status", "Action"],
        rows: vec![vec![
            Cell::from(status),
            Cell {
                text: "Verify the chain".into(),
                href: Some("/ui/audit?verify=1".into()),
            },
        ]],
        empty: String::new(),
    };
    render(view::tables(
        &u.page("Audit log", "/ui/audit", &now_text(&st)),
        "Every state change, sign-in and refusal, hash-chained and signed. An auditor pins the key: `patchbay audit verify --public-key KEY`.",
        &[verify_link, t],
        &[],
    ))
}

/// `GET /ui/sessions`: the user's own open sessions (everyone's for admins
/// and auditors), each with a button to end it.
pub async fn sessions(State(st): State<AppState>, u: UiUser) -> Response {
    let list = match st
        .app
        .list_sessions(&u.who.caller, None, false, &u.ctx)
        .await
    {
        Ok(l) => l,
        Err(e) => return app_error(e),
    };
    let t = Table {
        caption: "Open sessions".into(),
        head: vec![
            "Id",
            "User",
            "Signed in",
            "Last request",
            "Ends",
            "From",
            "Browser",
        ],
        rows: list
            .iter()
            .map(|s| {
                let mut id = s.id.to_string();
                if s.id == u.who.session_id {
                    id.push_str(" (this one)");
                }
                vec![
                    Cell::from(id),
                    Cell::from(s.user.as_str()),
                    Cell::from(s.created_at.as_str()),
                    Cell::from(s.last_seen_at.as_str()),
                    Cell::from(s.expires_at.as_str()),
                    Cell::from(s.remote.as_str()),
                    Cell::from(s.user_agent.as_str()),
                ]
            })
            .collect(),
        empty: "No open session.".into(),
    };
    let forms: Vec<view::Action> = list
        .iter()
        .map(|s| view::Action {
            action: "/ui/sessions/revoke".into(),
            label: format!("End session {} ({})", s.id, s.user),
            hidden: vec![("id".into(), s.id.to_string())],
        })
        .collect();
    render(view::tables(
        &u.page("Sessions", "/ui/sessions", &now_text(&st)),
        "",
        &[t],
        &forms,
    ))
}

/// `POST /ui/sessions/revoke`: ends one session.
pub async fn revoke_session(State(st): State<AppState>, form: UiForm) -> Response {
    let Some(id) = form.fields.get("id").and_then(|v| v.parse::<i64>().ok()) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Cannot do that",
            "id: a session id is needed",
            "/ui/sessions",
        );
    };
    match st
        .app
        .revoke_session(&form.user.who.caller, id, &form.user.ctx)
        .await
    {
        Ok(()) => Redirect::to("/ui/sessions").into_response(),
        Err(e) => app_error(e),
    }
}

/// `GET /ui/deployments`: newest first.
pub async fn deployments(State(st): State<AppState>, u: UiUser) -> Response {
    let list = match st.app.deployments(&u.who.caller, &u.ctx).await {
        Ok(l) => l,
        Err(e) => return app_error(e),
    };
    let t = Table {
        caption: String::new(),
        head: vec![
            "Deployment",
            "Kind",
            "Status",
            "Hosts",
            "Patches",
            "Created",
            "By",
        ],
        rows: list
            .iter()
            .map(|d| {
                vec![
                    Cell {
                        text: d.id.clone(),
                        href: Some(format!("/ui/deployments/{}", seg(&d.id))),
                    },
                    Cell::from(d.kind.as_str()),
                    Cell::from(d.status.as_str()),
                    Cell::from(d.assets.len().to_string()),
                    Cell::from(d.patches.join(", ")),
                    Cell::from(d.created_at.as_str()),
                    Cell::from(d.created_by.as_str()),
                ]
            })
            .collect(),
        empty: "No deployment yet.".into(),
    };
    render(view::tables_with_link(
        &u.page("Deployments", "/ui/deployments", &now_text(&st)),
        "Newest first.",
        u.who
            .caller
            .permits(patchbay_core::auth::Action::WriteAssets)
            .then_some(("/ui/deployments/new", "New deployment")),
        &[t],
    ))
}

/// `GET /ui/deployments/{id}`: the live rollout board.
pub async fn deployment(State(st): State<AppState>, u: UiUser, Path(id): Path<String>) -> Response {
    match st.app.dashboard_board(&u.who.caller, &id, &u.ctx).await {
        Ok(mut b) => {
            if let Ok(i) = st.app.deploy_impact(&u.who.caller, &id, &u.ctx).await {
                b.impact = impact_lines(&i);
            }
            render(view::board(
                &u.page(
                    &format!("Deployment {id}"),
                    "/ui/deployments",
                    &now_text(&st),
                ),
                &b,
            ))
        }
        Err(e) => app_error(e),
    }
}

/// When an owner's notice or summary was sent, or "not yet".
fn sent_at(i: &patchbay_proto::api::DeploymentImpactOut, owner: &str, kind: &str) -> String {
    i.notices
        .iter()
        .find(|n| n.owner == owner && n.kind == kind)
        .map_or("not yet".to_string(), |n| {
            format!("sent {} (contact {})", n.at, n.contact)
        })
}

/// Per owner, one line: hosts, first window, reboots, the interruption
/// estimate, and the notice and summary sent.
fn impact_lines(i: &patchbay_proto::api::DeploymentImpactOut) -> Vec<(String, String)> {
    i.owners
        .iter()
        .map(|o| {
            (
                o.owner.clone(),
                format!(
                    "{} host(s), first window {}, {} reboot(s), ≈{} s interruption (estimate); notice: {}; summary: {}",
                    o.assets.len(),
                    o.first_window,
                    o.reboots,
                    o.interruption_seconds,
                    sent_at(i, &o.owner, "notice"),
                    sent_at(i, &o.owner, "summary"),
                ),
            )
        })
        .collect()
}

/// `GET /ui/deployments/{id}/impact`: the expected impact per owner — per
/// asset its window (local and UTC), packages, services, reboot and the
/// interruption estimate — and the notices sent.
pub async fn deployment_impact(
    State(st): State<AppState>,
    u: UiUser,
    Path(id): Path<String>,
) -> Response {
    let i = match st.app.deploy_impact(&u.who.caller, &id, &u.ctx).await {
        Ok(i) => i,
        Err(e) => return app_error(e),
    };
    let mut tables: Vec<Table> = i
        .owners
        .iter()
        .map(|o| Table {
            caption: format!(
                "Owner {} — notice {}; summary {}",
                o.owner,
                sent_at(&i, &o.owner, "notice"),
                sent_at(&i, &o.owner, "summary")
            ),
            head: vec![
                "Asset",
                "Ring",
                "Window (local)",
                "Window (UTC)",
                "Packages",
                "Services restarting",
                "Reboot",
                "Interruption (estimate)",
            ],
            rows: o
                .assets
                .iter()
                .map(|a| {
                    let pk: Vec<String> = a
                        .packages
                        .iter()
                        .map(|p| {
                            format!(
                                "{} {} → {}",
                                p.name,
                                p.from.as_deref().unwrap_or("(none)"),
                                p.to.as_deref().unwrap_or("(removed)")
                            )
                        })
                        .collect();
                    vec![
                        Cell {
                            text: a.asset.clone(),
                            href: Some(format!("/ui/assets/{}", seg(&a.asset))),
                        },
                        Cell::from(a.ring.as_str()),
                        Cell::from(format!(
                            "{}: {} – {}",
                            a.window.name.as_deref().unwrap_or("any time"),
                            a.window.opens_local,
                            a.window.closes_local
                        )),
                        Cell::from(format!("{} – {}", a.window.opens_utc, a.window.closes_utc)),
                        Cell::from(format!("{} ({})", pk.join(", "), a.packages_source)),
                        Cell::from(if a.services.known {
                            if a.services.names.is_empty() {
                                "none".to_string()
                            } else {
                                a.services.names.join(", ")
                            }
                        } else {
                            a.services.source.clone()
                        }),
                        Cell::from(format!(
                            "{}: {}",
                            if a.reboot.needed { "yes" } else { "no" },
                            a.reboot.source
                        )),
                        Cell::from(format!(
                            "≈{} s ({})",
                            a.interruption.seconds, a.interruption.basis
                        )),
                    ]
                })
                .collect(),
            empty: "No host.".into(),
        })
        .collect();
    tables.push(Table {
        caption: "Notices sent".into(),
        head: vec!["Owner", "Kind", "At", "Contact", "Assets"],
        rows: i
            .notices
            .iter()
            .map(|n| {
                vec![
                    Cell::from(n.owner.as_str()),
                    Cell::from(n.kind.as_str()),
                    Cell::from(n.at.as_str()),
                    Cell::from(n.contact.as_str()),
                    Cell::from(n.assets.join(", ")),
                ]
            })
            .collect(),
        empty: "None yet.".into(),
    });
    render(view::tables(
        &u.page(
            &format!("Deployment {id}: expected impact"),
            "/ui/deployments",
            &now_text(&st),
        ),
        &format!(
            "Each owner is notified {} h before their first window (email to the contact named like the owner, `unowned` for hosts without one; chat through webhooks), and gets a summary once the deployment is over. Interruptions are estimates, with their basis.",
            i.lead_secs / 3600
        ),
        &tables,
        &[],
    ))
}

fn back_to(id: &str) -> String {
    format!("/ui/deployments/{}", seg(id))
}

/// `POST /ui/deployments/{id}/action`: start, pause, resume, abort,
/// rollback (the last two with a comment).
pub async fn deployment_action(
    State(st): State<AppState>,
    Path(id): Path<String>,
    form: UiForm,
) -> Response {
    let action = form.fields.get("action").map(String::as_str).unwrap_or("");
    let comment = form.fields.get("comment").map(String::as_str);
    match st
        .app
        .deploy_action(&form.user.who.caller, &id, action, comment, &form.user.ctx)
        .await
    {
        Ok(_) => Redirect::to(&back_to(&id)).into_response(),
        Err(e) => app_error(e),
    }
}

/// `POST /ui/deployments/{id}/approval`: approve or reject a ring (four
/// eyes: never by the deployment's creator or starter).
pub async fn deployment_approval(
    State(st): State<AppState>,
    Path(id): Path<String>,
    form: UiForm,
) -> Response {
    let get = |k: &str| form.fields.get(k).cloned().unwrap_or_default();
    let input = patchbay_proto::api::DeployApprovalIn {
        ring: Some(get("ring")).filter(|r| !r.is_empty()),
        approve: get("approve") == "true",
        comment: get("comment"),
    };
    match st
        .app
        .deploy_approval(&form.user.who.caller, &id, &input, &form.user.ctx)
        .await
    {
        Ok(_) => Redirect::to(&back_to(&id)).into_response(),
        Err(e) => app_error(e),
    }
}

/// Query of the live stream.
#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    /// Resume after this outbox id (a page's cursor); `Last-Event-ID` wins.
    #[serde(default)]
    after: i64,
}

/// How often the live stream looks for new events.
const LIVE_POLL: std::time::Duration = std::time::Duration::from_millis(400);

/// `GET /ui/events`: server-sent events, one per outbox event after the
/// cursor (`Last-Event-ID` when the browser reconnects, else `?after=`),
/// oldest first, each with its outbox id as the SSE id. A read every 400 ms
/// (new events reach a screen within a second); a comment every 15 s keeps
/// proxies from closing the stream. The session is checked again at every
/// read: a stream ends when its session does.
pub async fn events(
    State(st): State<AppState>,
    u: UiUser,
    headers: HeaderMap,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or_else(|| q.map(|Query(q)| q.after).unwrap_or(0));
    let state = (
        st,
        u.secret.clone(),
        u.ctx.clone(),
        after,
        Vec::<Event>::new(),
    );
    let stream = futures_util::stream::unfold(
        state,
        |(st, secret, ctx, mut after, mut queue)| async move {
            loop {
                if let Some(e) = queue.pop() {
                    return Some((
                        Ok::<_, std::convert::Infallible>(e),
                        (st, secret, ctx, after, queue),
                    ));
                }
                let who = st.app.authenticate_session(&secret, &ctx).await.ok()?;
                match st.app.live_events(&who.caller, after, &ctx).await {
                    Ok(batch) if !batch.is_empty() => {
                        after = batch.last().map(|e| e.id).unwrap_or(after);
                        queue = batch
                            .iter()
                            .rev()
                            .map(|e| {
                                Event::default()
                                    .id(e.id.to_string())
                                    .data(serde_json::to_string(&e.event).unwrap_or_default())
                            })
                            .collect();
                    }
                    Ok(_) => tokio::time::sleep(LIVE_POLL).await,
                    Err(_) => return None,
                }
            }
        },
    );
    let mut r = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(UI_CSP),
    );
    r
}

/// Query of the triage page.
#[derive(Debug, Default, Deserialize)]
pub struct TriageQuery {
    /// A CVE id.
    #[serde(default)]
    cve: String,
}

/// `GET /ui/triage?cve=…`: is the fleet affected, where, and what fixes it.
pub async fn triage(
    State(st): State<AppState>,
    u: UiUser,
    q: Result<Query<TriageQuery>, QueryRejection>,
) -> Response {
    let cve = q.map(|Query(q)| q.cve).unwrap_or_default();
    let page = u.page("Triage", "/ui/triage", &now_text(&st));
    let search = view::Search {
        action: "/ui/triage",
        label: "CVE",
        field: "cve",
        value: &cve,
    };
    if cve.trim().is_empty() {
        return render(view::search_tables(
            &page,
            search,
            "Search a CVE (CVE-2024-3094) to see whether any asset is affected.",
            &[],
        ));
    }
    let t = match st.app.triage(&u.who.caller, &cve, &u.ctx).await {
        Ok(t) => t,
        Err(e) => return app_error(e),
    };
    let intro = format!(
        "{}: {}. Advisories: {}. KEV due date: {}. EPSS: {}. Fixes: {}.",
        t.cve,
        if t.affected {
            "the fleet is affected"
        } else {
            "no asset is affected"
        },
        if t.advisories.is_empty() {
            "none known".to_string()
        } else {
            t.advisories.join(", ")
        },
        t.kev_due_date
            .clone()
            .unwrap_or_else(|| "not in KEV".into()),
        t.epss
            .map(|e| format!("{e:.3}"))
            .unwrap_or_else(|| "unknown".into()),
        if t.fixes.is_empty() {
            "none known".to_string()
        } else {
            t.fixes.join(", ")
        },
    );
    render(view::search_tables(
        &page,
        search,
        &intro,
        &[work_table("Affected", &t.items, true)],
    ))
}

fn exception_rows(list: &[patchbay_proto::api::ExceptionOut]) -> Vec<Vec<Cell>> {
    list.iter()
        .map(|x| {
            let scope = [&x.advisory, &x.package, &x.asset, &x.group]
                .iter()
                .filter(|v| !v.is_empty())
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(" / ");
            let why = if x.justification.is_empty() {
                x.reason.clone()
            } else {
                format!("{} ({})", x.reason, x.justification.replace('_', " "))
            };
            vec![
                Cell::from(x.id.as_str()),
                Cell::from(x.kind.as_str()),
                Cell::from(scope),
                Cell::from(x.owner.as_str()),
                Cell::from(why),
                Cell::from(x.compensating_control.as_str()),
                Cell::from(x.approver.as_str()),
                Cell::from(x.expires_at.as_str()),
                Cell::from(x.covers.len().to_string()),
            ]
        })
        .collect()
}

const EXCEPTION_HEAD: [&str; 9] = [
    "Id",
    "Kind",
    "Scope",
    "Owner",
    "Reason",
    "Compensating control",
    "Approver",
    "Expires",
    "Findings covered",
];

/// `GET /ui/exceptions`: the register in force, what needs a review
/// (expiring within 7 days, expired, owner gone), and — for approvers — the
/// forms to add and revoke.
pub async fn exceptions(State(st): State<AppState>, u: UiUser) -> Response {
    let page = match st.app.dashboard_exceptions(&u.who.caller, &u.ctx).await {
        Ok(p) => p,
        Err(e) => return app_error(e),
    };
    let list: Vec<patchbay_proto::api::ExceptionOut> =
        page.in_force.iter().map(|(e, _)| e.clone()).collect();
    let mut in_force = exception_rows(&list);
    for (row, (_, n)) in in_force.iter_mut().zip(&page.in_force) {
        if let Some(last) = row.last_mut() {
            *last = Cell::from(n.map_or_else(|| "being counted".to_string(), |n| n.to_string()));
        }
    }
    let table = |caption: &str, l: &[patchbay_proto::api::ExceptionOut], empty: &str| Table {
        caption: caption.into(),
        head: EXCEPTION_HEAD.to_vec(),
        rows: exception_rows(l),
        empty: empty.into(),
    };
    let pending = page.review.is_none();
    let review = page
        .review
        .unwrap_or(patchbay_proto::api::ExceptionReviewOut {
            expiring: vec![],
            expired: vec![],
            ownerless: vec![],
        });
    let or_pending = |empty: &str| {
        if pending {
            page.note.clone()
        } else {
            empty.to_string()
        }
    };
    let tables = [
        Table {
            caption: "In force".into(),
            head: EXCEPTION_HEAD.to_vec(),
            rows: in_force,
            empty: "No exception is in force.".into(),
        },
        table(
            "Review: expiring within 7 days",
            &review.expiring,
            &or_pending("None expires within 7 days."),
        ),
        table(
            "Review: expired (their findings are open again)",
            &review.expired,
            &or_pending("None has expired."),
        ),
        table(
            "Review: the owner owns none of the assets any more",
            &review.ownerless,
            &or_pending("Every owner still owns an asset in scope."),
        ),
    ];
    let mut forms = Vec::new();
    if u.who.caller.permits(patchbay_core::auth::Action::Approve) {
        forms.push(crate::handlers::ui_act::exception_form());
        let ids: Vec<String> = list.iter().map(|x| x.id.clone()).collect();
        if !ids.is_empty() {
            forms.push(crate::handlers::ui_act::revoke_form(&ids));
        }
    }
    let intro = format!(
        "Deferred findings with an owner, a reason, a compensating control and an expiry, and operators' not-affected (VEX) statements. {}",
        if pending { "" } else { page.note.as_str() }
    );
    render(view::form_page(
        &u.page("Exceptions", "/ui/exceptions", &now_text(&st)),
        intro.trim_end(),
        &tables,
        &forms,
    ))
}

/// `GET /ui/changes`: change records.
pub async fn changes(State(st): State<AppState>, u: UiUser) -> Response {
    let (list, note) = match st.app.dashboard_changes(&u.who.caller, &u.ctx).await {
        Ok(l) => l,
        Err(e) => return app_error(e),
    };
    let t = Table {
        caption: String::new(),
        head: vec![
            "Change",
            "Deployment",
            "Kind",
            "Status",
            "Highest tier",
            "Assets",
            "Created",
        ],
        rows: list
            .iter()
            .map(|c| {
                vec![
                    Cell {
                        text: c.id.clone(),
                        href: Some(format!("/ui/changes/{}", seg(&c.id))),
                    },
                    Cell {
                        text: c.deployment.clone(),
                        href: Some(format!("/ui/deployments/{}", seg(&c.deployment))),
                    },
                    Cell::from(c.kind.as_str()),
                    Cell::from(c.status.as_str()),
                    Cell::from(c.highest_tier.as_str()),
                    Cell::from(c.assets.to_string()),
                    Cell::from(c.created_at.as_str()),
                ]
            })
            .collect(),
        empty: "No change record yet: each deployment makes one.".into(),
    };
    render(view::tables(
        &u.page("Change records", "/ui/changes", &now_text(&st)),
        format!(
            "Each change's runbook: roles, timeline, steps, gates, back-out, approvals, lessons learned. {note}"
        )
        .trim_end(),
        &[t],
        &[],
    ))
}

/// `GET /ui/changes/{id}`: the runbook, as its printable page.
pub async fn change(State(st): State<AppState>, u: UiUser, Path(id): Path<String>) -> Response {
    let runbook = match st.app.runbook(&u.who.caller, &id, &u.ctx).await {
        Ok(r) => r,
        Err(e) => return app_error(e),
    };
    // The printable runbook page (inline styles, no form, no script): sent
    // with the API's content security policy, not the dashboard's.
    match patchbay_render::runbook::html(&runbook) {
        Ok(b) => Html(b).into_response(),
        Err(e) => message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            &e.to_string(),
            "/ui/changes",
        ),
    }
}

/// `GET /ui/feeds`: every import, newest first.
pub async fn feeds(State(st): State<AppState>, u: UiUser) -> Response {
    let mut list = match st.app.list_feeds(&u.who.caller, &u.ctx).await {
        Ok(l) => l,
        Err(e) => return app_error(e),
    };
    list.reverse();
    let now = st.app.now().as_second();
    let t = Table {
        caption: String::new(),
        head: vec![
            "Kind", "Version", "Records", "Skipped", "Imported", "By", "Source",
        ],
        rows: list
            .iter()
            .map(|f| {
                let ago = f
                    .imported_at
                    .parse::<jiff::Timestamp>()
                    .map(|t| view::age(now, t.as_second()))
                    .unwrap_or_default();
                vec![
                    Cell::from(f.kind.as_str()),
                    Cell::from(f.version.as_str()),
                    Cell::from(f.records.to_string()),
                    Cell::from(f.skipped.to_string()),
                    Cell::from(format!("{} ({ago})", f.imported_at)),
                    Cell::from(f.imported_by.as_str()),
                    Cell::from(f.source.as_str()),
                ]
            })
            .collect(),
        empty: "No feed has been imported: every host's exposure is unknown.".into(),
    };
    render(view::tables(
        &u.page("Feeds", "/ui/feeds", &now_text(&st)),
        "Advisory imports (OSV, KEV, EPSS, CVSS), newest first, with the malformed records each skipped.",
        &[t],
        &[],
    ))
}

/// `GET /ui/lessons?q=…`: lessons learned, searched by words.
pub async fn lessons(
    State(st): State<AppState>,
    u: UiUser,
    q: Result<Query<AssetsQuery>, QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q.q).unwrap_or_default();
    let list = match st.app.search_lessons(&u.who.caller, &q, &u.ctx).await {
        Ok(l) => l,
        Err(e) => return app_error(e),
    };
    let t = Table {
        caption: String::new(),
        head: vec!["Change", "At", "Author", "Lesson"],
        rows: list
            .iter()
            .map(|l| {
                vec![
                    Cell {
                        text: l.change_id.clone(),
                        href: Some(format!("/ui/changes/{}", seg(&l.change_id))),
                    },
                    Cell::from(l.at.as_str()),
                    Cell::from(l.author.as_str()),
                    Cell::from(l.text.as_str()),
                ]
            })
            .collect(),
        empty: "No lesson matches.".into(),
    };
    render(view::search_tables(
        &u.page("Lessons learned", "/ui/changes", &now_text(&st)),
        view::Search {
            action: "/ui/lessons",
            label: "Words",
            field: "q",
            value: &q,
        },
        "",
        &[t],
    ))
}

/// The reports the dashboard offers, with what each answers.
const REPORTS: &[(&str, &str)] = &[
    (
        "compliance",
        "Compliance: assets without overdue findings, by owner, group and asset",
    ),
    (
        "ttp",
        "Time to patch: hours from first seen to fixed, by tier",
    ),
    (
        "sla",
        "SLA adherence: findings resolved within their SLA, by tier",
    ),
    ("coverage", "Coverage: assets seen, stale, shadow and ghost"),
    (
        "deployments",
        "Deployments: outcomes, rollback and success rates, by week",
    ),
];

/// `GET /ui/reports`: every report, to view or download.
pub async fn reports(State(st): State<AppState>, u: UiUser) -> Response {
    let t = Table {
        caption: String::new(),
        head: vec!["Report", "View", "Download"],
        rows: REPORTS
            .iter()
            .map(|(kind, what)| {
                vec![
                    Cell::from(*what),
                    Cell {
                        text: "HTML".into(),
                        href: Some(format!("/ui/reports/{kind}?format=html")),
                    },
                    Cell {
                        text: "CSV".into(),
                        href: Some(format!("/ui/reports/{kind}?format=csv")),
                    },
                ]
            })
            .chain(std::iter::once(vec![
                Cell::from("Evidence bundle: every report, the exception register, change records, the audit segment and its verification, signed"),
                Cell::from("—"),
                Cell {
                    text: "zip".into(),
                    href: Some("/ui/evidence".into()),
                },
            ]))
            .collect(),
        empty: String::new(),
    };
    render(view::tables(
        &u.page("Reports", "/ui/reports", &now_text(&st)),
        "Reports as of now, each naming the controls it evidences. `patchbay report KIND --as-of DATE` gives them as of any date; `patchbay evidence export` the signed evidence bundle.",
        &[t],
        &[],
    ))
}

/// Query of a report download.
#[derive(Debug, Default, Deserialize)]
pub struct ReportFormat {
    /// `html` (the default), `csv` or `json`.
    #[serde(default)]
    format: String,
}

/// `GET /ui/reports/{kind}?format=html|csv|json`.
pub async fn report(
    State(st): State<AppState>,
    u: UiUser,
    Path(kind): Path<String>,
    q: Result<Query<ReportFormat>, QueryRejection>,
) -> Response {
    let format = q.map(|Query(q)| q.format).unwrap_or_default();
    let format: patchbay_render::Format =
        match if format.is_empty() { "html" } else { &format }.parse() {
            Ok(f) => f,
            Err(m) => return message(StatusCode::BAD_REQUEST, "Cannot do that", &m, "/ui/reports"),
        };
    // A report states its own as-of time; on a large fleet it is the last
    // computation's (see `patchbay_app::rollup`).
    // The HTML page says when the report is still being computed; a
    // download (CSV, JSON) waits for it.
    let wait =
        (format.content_type().starts_with("text/html")).then_some(patchbay_app::rollup::PAGE_WAIT);
    let report = match st
        .app
        .dashboard_report(&u.who.caller, &kind, wait, &u.ctx)
        .await
    {
        Ok(Got::Ready(r)) => r.value,
        Ok(Got::Pending { since, last_took }) => {
            let page = u.page(&format!("Report: {kind}"), "/ui/reports", &now_text(&st));
            return pending(&st, &page, since, last_took);
        }
        Err(e) => return app_error(e),
    };
    let body = match patchbay_render::report::render(&report, format) {
        Ok(b) => b,
        Err(e) => {
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                &e.to_string(),
                "/ui/reports",
            );
        }
    };
    // The printable HTML report (inline styles, no form, no script) keeps the
    // API's content security policy; CSV and JSON are downloads.
    let mut r = ([(header::CONTENT_TYPE, format.content_type())], body).into_response();
    let download = match format.content_type() {
        t if t.starts_with("text/csv") => Some("csv"),
        t if t.starts_with("application/json") => Some("json"),
        _ => None,
    };
    if let Some(ext) = download
        && let Ok(v) = HeaderValue::from_str(&format!(
            "attachment; filename=\"patchbay-{}.{ext}\"",
            report.kind()
        ))
    {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// `GET /ui/catalog`: the patch catalog (open findings grouped into
/// patches), most urgent first.
pub async fn catalog(State(st): State<AppState>, u: UiUser) -> Response {
    let rolled = match st.app.dashboard_patches(&u.who.caller, &u.ctx).await {
        Ok(Got::Ready(l)) => l,
        Ok(Got::Pending { since, last_took }) => {
            let page = u.page("Patch catalog", "/ui/catalog", &now_text(&st));
            return pending(&st, &page, since, last_took);
        }
        Err(e) => return app_error(e),
    };
    let note = patchbay_app::dashboard::rolled_note(rolled.stored, st.app.now());
    let list = &*rolled.value;
    let t = Table {
        caption: String::new(),
        head: vec![
            "Patch",
            "Family",
            "OS",
            "Package",
            "Fixed in",
            "Highest tier",
            "Assets",
            "Findings",
        ],
        rows: list
            .iter()
            .map(|p| {
                vec![
                    Cell::from(p.name.as_str()),
                    Cell::from(p.family.as_str()),
                    Cell::from(p.os.as_str()),
                    Cell::from(p.package.as_str()),
                    Cell::from(p.fixed_version.as_str()),
                    Cell::from(p.highest_tier.as_str()),
                    Cell::from(p.assets.len().to_string()),
                    Cell::from(p.findings.to_string()),
                ]
            })
            .collect(),
        empty: "Nothing to patch.".into(),
    };
    render(view::tables(
        &u.page("Patch catalog", "/ui/catalog", &now_text(&st)),
        format!(
            "Open findings grouped into patches (a package's fixed version per OS release). {note}"
        )
        .trim_end(),
        &[t],
        &[],
    ))
}

/// Query of the calendar page.
#[derive(Debug, Default, Deserialize)]
pub struct CalendarQuery {
    /// `YYYY-MM` (UTC); the current month when absent.
    #[serde(default)]
    month: String,
}

/// `GET /ui/calendar?month=YYYY-MM`: the month's window occurrences and
/// blackouts (UTC), with links to the months around it.
pub async fn calendar(
    State(st): State<AppState>,
    u: UiUser,
    q: Result<Query<CalendarQuery>, QueryRejection>,
) -> Response {
    use jiff::civil::Date;
    let month = q.map(|Query(q)| q.month).unwrap_or_default();
    let today = st.app.now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let first = if month.is_empty() {
        today.first_of_month()
    } else {
        match format!("{month}-01").parse::<Date>() {
            Ok(d) => d,
            Err(_) => {
                return message(
                    StatusCode::BAD_REQUEST,
                    "Cannot do that",
                    &format!("month: {month:?} is not YYYY-MM"),
                    "/ui/calendar",
                );
            }
        }
    };
    let next = first.last_of_month().tomorrow().unwrap_or(first);
    let prev = first
        .yesterday()
        .map(|d| d.first_of_month())
        .unwrap_or(first);
    let at = |d: Date| {
        d.to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .unwrap_or_default()
    };
    let entries = match st
        .app
        .calendar_entries(&u.who.caller, at(first), at(next), &u.ctx)
        .await
    {
        Ok(e) => e,
        Err(e) => return app_error(e),
    };
    let t = Table {
        caption: format!("{} (UTC)", first.strftime("%B %Y")),
        head: vec!["Starts", "Ends", "Kind", "What"],
        rows: entries
            .iter()
            .map(|(what, start, end, kind)| {
                vec![
                    Cell::from(patchbay_app::fmt_ts(*start)),
                    Cell::from(patchbay_app::fmt_ts(*end)),
                    Cell::from(if *kind == "BLACKOUT" {
                        "blackout"
                    } else {
                        "window"
                    }),
                    Cell::from(what.as_str()),
                ]
            })
            .collect(),
        empty: "No window occurs and no blackout holds this month.".into(),
    };
    let nav = Table {
        caption: String::new(),
        head: vec!["Earlier", "Later"],
        rows: vec![vec![
            Cell {
                text: prev.strftime("%B %Y").to_string(),
                href: Some(format!("/ui/calendar?month={}", prev.strftime("%Y-%m"))),
            },
            Cell {
                text: next.strftime("%B %Y").to_string(),
                href: Some(format!("/ui/calendar?month={}", next.strftime("%Y-%m"))),
            },
        ]],
        empty: String::new(),
    };
    render(view::tables(
        &u.page("Calendar", "/ui/calendar", &now_text(&st)),
        "Maintenance windows and blackouts (change freezes); subscribe to them with a calendar token: `patchbay calendar url`.",
        &[t, nav],
        &[],
    ))
}

/// `GET /ui/evidence`: the signed evidence bundle as of now (a zip; the
/// export itself is recorded in the audit log, as through the API).
pub async fn evidence(State(st): State<AppState>, u: UiUser) -> Response {
    match st
        .app
        .evidence_bundle(&u.who.caller, st.app.now(), &u.ctx)
        .await
    {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/zip"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"patchbay-evidence.zip\"",
                ),
            ],
            body,
        )
            .into_response(),
        Err(e) => app_error(e),
    }
}
