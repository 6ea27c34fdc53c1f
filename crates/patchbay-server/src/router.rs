//! The router: every route, who may call it, and the middleware around it.
//!
//! Routes are declared once, in the tables of [`routes!`] invocations below,
//! with the access each needs ([`Access`]). The same declaration builds the
//! axum router *and* the public [`ROUTES`] list, so a route cannot exist
//! without saying who may call it, and the authorisation-matrix test (which
//! has its own, independent expectation per route) fails for a route it has
//! no row for.
//!
//! Order of checks on `/api/v1`: authentication (middleware, before the body
//! is read) → the route's permission ([`Access::Api`], a route layer, still
//! before the body is read) → the handler, which decodes and calls one [`App`]
//! method (which checks the role again: the service layer is the authority,
//! the route layer answers early so a refused caller never gets its body
//! parsed or validated). A refused request's body is read and dropped,
//! bounded in bytes and time, before the answer goes, so that a client
//! writing a large body sees its 401/403 rather than a reset ([`refuse`]).

use crate::errors::ApiError;
use crate::extract::{Authed, request_ctx};
use crate::handlers::{
    agent, assets, audit, changes, csaf, deployments, discovery, drift, escalations, exceptions,
    feeds, findings, governance, ops, prioritise, reports, schedule, test_report, tokens, ui,
    ui_act, users, webhooks,
};
use crate::metrics::{HttpLabels, Metrics};
use crate::{MAX_AGENT_BODY, MAX_API_BODY};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use axum::{Router, middleware::from_fn_with_state};
use patchbay_app::App;
use patchbay_core::auth::Action;
use std::sync::Arc;
use std::time::Instant;

/// Shared handler state.
#[derive(Clone)]
pub struct AppState {
    /// The service layer.
    pub app: App,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, metrics).
    Public,
    /// Anyone with an enrolment token in the body (checked by the service).
    Enrol,
    /// An enrolled agent's credential.
    Agent,
    /// Only a calendar token, in the header or the `token` query parameter.
    CalendarToken,
    /// An API token whose role permits the action; `None`: any API token.
    Api(Option<Action>),
    /// A dashboard page or form anyone may load (sign-in, the stylesheet).
    Page,
    /// A dashboard page or form for a signed-in person (session cookie;
    /// forms also need the session's CSRF token) whose role permits the
    /// action; `None`: anyone signed in. Checked by the handler's
    /// `UiUser`/`UiForm` extractor and the service layer.
    Session(Option<Action>),
}

/// One route: method, full path template, access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// HTTP method (upper case).
    pub method: &'static str,
    /// Path template as the router matches it (`{name}` for a parameter).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

/// Declares a group of routes: builds `fn $build(&AppState) -> Router` and
/// the `const $table: &[RouteSpec]` from one list, so the two cannot differ.
macro_rules! routes {
    ($table:ident, $build:ident, $prefix:literal, { $( $method:ident $path:literal => $handler:path, $access:expr; )* }) => {
        const $table: &[RouteSpec] = &[
            $( RouteSpec { method: stringify!($method), path: concat!($prefix, $path), access: $access }, )*
        ];
        fn $build(state: &AppState) -> Router<AppState> {
            let router = Router::new();
            $(
                let router = router.route(
                    $path,
                    with_access(state, $access, on(MethodFilter::$method, $handler)),
                );
            )*
            router
        }
    };
}

use Access::{Agent, Api, CalendarToken, Enrol, Page, Public, Session};
use Action::{
    Approve, CreateEnrollToken, ImportAssets, ImportFeeds, ManageTokens, ReadAudit, ReadCalendar,
    ReadInventory, ReadTokens, WriteAssets,
};

routes!(API_ROUTES, api_routes, "/api/v1", {
    GET "/whoami" => ops::whoami, Api(None);
    GET "/openapi.json" => crate::openapi::openapi_json, Api(None);
    GET "/assets" => assets::list, Api(Some(ReadInventory));
    POST "/assets/import" => assets::import, Api(Some(ImportAssets));
    GET "/assets/{name}" => assets::show, Api(Some(ReadInventory));
    PATCH "/assets/{name}" => assets::update, Api(Some(WriteAssets));
    POST "/assets/{name}/enrollment-approvals" => assets::approve_enrollment, Api(Some(WriteAssets));
    GET "/discovery" => discovery::show, Api(Some(ReadInventory));
    POST "/discovery/import" => discovery::import, Api(Some(ImportAssets));
    POST "/discovery/adopt" => discovery::adopt, Api(Some(ImportAssets));
    POST "/discovery/dismiss" => discovery::dismiss, Api(Some(WriteAssets));
    POST "/discovery/exposure" => discovery::accept_exposure, Api(Some(WriteAssets));
    GET "/tokens" => tokens::list, Api(Some(ReadTokens));
    POST "/tokens" => tokens::create, Api(Some(ManageTokens));
    DELETE "/tokens/{id}" => tokens::revoke, Api(Some(ManageTokens));
    POST "/enroll-tokens" => tokens::create_enroll_token, Api(Some(CreateEnrollToken));
    GET "/users" => users::list, Api(Some(ReadTokens));
    POST "/users" => users::add, Api(Some(ManageTokens));
    POST "/users/{name}/password" => users::password, Api(Some(ManageTokens));
    POST "/users/{name}/disabled" => users::disabled, Api(Some(ManageTokens));
    GET "/sessions" => users::sessions, Api(Some(ReadTokens));
    DELETE "/sessions/{id}" => users::revoke_session, Api(Some(ManageTokens));
    GET "/audit" => audit::list, Api(Some(ReadAudit));
    GET "/audit/export" => audit::export, Api(Some(ReadAudit));
    POST "/keys/rotate" => audit::rotate_key, Api(Some(ManageTokens));
    GET "/findings" => findings::list, Api(Some(ReadInventory));
    GET "/feeds" => findings::feeds, Api(Some(ReadInventory));
    POST "/feeds/import" => feeds::import, Api(Some(ImportFeeds));
    GET "/csaf/matches/{asset}" => csaf::matches, Api(Some(ReadInventory));
    GET "/worklist" => prioritise::worklist, Api(Some(ReadInventory));
    GET "/policy" => prioritise::get_policy, Api(Some(ReadInventory));
    POST "/policy" => prioritise::apply_policy, Api(Some(WriteAssets));
    POST "/policy/preview" => prioritise::preview_policy, Api(Some(ReadInventory));
    GET "/triage/{cve}" => prioritise::triage, Api(Some(ReadInventory));
    GET "/patches" => prioritise::patches, Api(Some(ReadInventory));
    GET "/oob-events" => prioritise::oob_events, Api(Some(ReadInventory));
    GET "/deployments" => prioritise::deployments, Api(Some(ReadInventory));
    POST "/deployments" => deployments::create, Api(Some(WriteAssets));
    POST "/deployments/preview" => deployments::preview, Api(Some(ReadInventory));
    GET "/deployments/{id}" => deployments::show, Api(Some(ReadInventory));
    POST "/deployments/{id}/start" => deployments::start, Api(Some(WriteAssets));
    POST "/deployments/{id}/pause" => deployments::pause, Api(Some(WriteAssets));
    POST "/deployments/{id}/resume" => deployments::resume, Api(Some(WriteAssets));
    POST "/deployments/{id}/abort" => deployments::abort, Api(Some(WriteAssets));
    POST "/deployments/{id}/rollback" => deployments::rollback, Api(Some(WriteAssets));
    POST "/deployments/{id}/approvals" => deployments::approval, Api(Some(Approve));
    GET "/deployments/{id}/rehearsals" => deployments::rehearsals, Api(Some(ReadInventory));
    GET "/deployments/{id}/impact" => deployments::impact, Api(Some(ReadInventory));
    POST "/deployments/{id}/rehearsals" => deployments::rehearse, Api(Some(WriteAssets));
    GET "/deployments/{id}/test-report" => test_report::test_report, Api(Some(ReadInventory));
    GET "/backup-verifications" => test_report::backup_verifications, Api(Some(ReadInventory));
    GET "/windows" => schedule::list_windows, Api(Some(ReadInventory));
    POST "/windows" => schedule::add_window, Api(Some(WriteAssets));
    DELETE "/windows/{name}" => schedule::remove_window, Api(Some(WriteAssets));
    GET "/blackouts" => schedule::list_blackouts, Api(Some(ReadInventory));
    POST "/blackouts" => schedule::add_blackout, Api(Some(WriteAssets));
    DELETE "/blackouts/{name}" => schedule::remove_blackout, Api(Some(WriteAssets));
    POST "/blackouts/{name}/approvals" => schedule::approve_blackout, Api(Some(Approve));
    POST "/plan/preview" => schedule::plan_preview, Api(Some(ReadInventory));
    GET "/calendar.ics" => schedule::calendar_authed, Api(Some(ReadCalendar));
    GET "/reports/{kind}" => reports::report, Api(Some(ReadInventory));
    GET "/drift" => drift::drift, Api(Some(ReadInventory));
    PUT "/drift/{name}/golden" => drift::set_golden, Api(Some(WriteAssets));
    DELETE "/drift/{name}/golden" => drift::clear_golden, Api(Some(WriteAssets));
    GET "/governance" => governance::governance, Api(Some(ReadInventory));
    GET "/evidence" => reports::evidence, Api(Some(ReadAudit));
    GET "/changes" => changes::list, Api(Some(ReadInventory));
    GET "/changes/{id}" => changes::show, Api(Some(ReadInventory));
    GET "/changes/{id}/runbook" => changes::runbook, Api(Some(ReadInventory));
    POST "/changes/{id}/lessons" => changes::add_lesson, Api(Some(WriteAssets));
    GET "/lessons" => changes::search_lessons, Api(Some(ReadInventory));
    GET "/exceptions" => exceptions::list, Api(Some(ReadInventory));
    POST "/exceptions" => exceptions::add, Api(Some(Approve));
    GET "/exceptions/review" => exceptions::review, Api(Some(ReadInventory));
    GET "/exceptions/{id}" => exceptions::show, Api(Some(ReadInventory));
    POST "/exceptions/{id}/revoke" => exceptions::revoke, Api(Some(Approve));
    GET "/webhooks" => webhooks::list, Api(Some(WriteAssets));
    POST "/webhooks" => webhooks::add, Api(Some(WriteAssets));
    GET "/webhooks/{name}" => webhooks::show, Api(Some(WriteAssets));
    DELETE "/webhooks/{name}" => webhooks::remove, Api(Some(WriteAssets));
    GET "/webhooks/{name}/deliveries" => webhooks::deliveries, Api(Some(WriteAssets));
    POST "/webhooks/{name}/replay" => webhooks::replay, Api(Some(WriteAssets));
    POST "/webhooks/{name}/test" => webhooks::test, Api(Some(WriteAssets));
    POST "/webhooks/{name}/auth" => webhooks::set_auth, Api(Some(WriteAssets));
    GET "/contacts" => escalations::contacts, Api(Some(WriteAssets));
    POST "/contacts" => escalations::add_contact, Api(Some(WriteAssets));
    GET "/contacts/deliveries" => escalations::emails, Api(Some(WriteAssets));
    DELETE "/contacts/{name}" => escalations::remove_contact, Api(Some(WriteAssets));
    GET "/escalations" => escalations::list, Api(Some(WriteAssets));
    POST "/escalations" => escalations::add, Api(Some(WriteAssets));
    GET "/escalations/{name}" => escalations::show, Api(Some(WriteAssets));
    DELETE "/escalations/{name}" => escalations::remove, Api(Some(WriteAssets));
    POST "/escalations/{name}/ack" => escalations::ack, Api(Some(WriteAssets));
});

routes!(ENROL_ROUTES, enrol_routes, "/agent/v1", {
    POST "/enroll" => agent::enroll, Enrol;
});

routes!(AGENT_ROUTES, agent_routes, "/agent/v1", {
    POST "/checkin" => agent::checkin, Agent;
    POST "/certificate" => agent::certificate, Agent;
});

routes!(UI_ROUTES, ui_routes, "", {
    GET "/" => ui::root, Page;
    GET "/ui/login" => ui::login_form, Page;
    POST "/ui/login" => ui::login, Page;
    GET "/ui/static/app.css" => ui::stylesheet, Page;
    GET "/ui/static/wall.js" => ui::wall_script, Page;
    GET "/ui/static/live.js" => ui::live_script, Page;
    POST "/ui/logout" => ui::logout, Session(None);
    GET "/ui/" => ui::overview, Session(Some(ReadInventory));
    GET "/ui/assets" => ui::assets, Session(Some(ReadInventory));
    GET "/ui/assets/{name}" => ui::asset, Session(Some(ReadInventory));
    GET "/ui/worklist" => ui::worklist, Session(Some(ReadInventory));
    GET "/ui/audit" => ui::audit, Session(Some(ReadAudit));
    GET "/ui/deployments" => ui::deployments, Session(Some(ReadInventory));
    GET "/ui/deployments/new" => ui_act::new_deployment, Session(Some(WriteAssets));
    POST "/ui/deployments/preview" => ui_act::preview_deployment, Session(Some(WriteAssets));
    POST "/ui/deployments/create" => ui_act::create_deployment, Session(Some(WriteAssets));
    GET "/ui/deployments/{id}" => ui::deployment, Session(Some(ReadInventory));
    GET "/ui/deployments/{id}/impact" => ui::deployment_impact, Session(Some(ReadInventory));
    GET "/ui/deployments/{id}/test-report" => test_report::ui_test_report, Session(Some(ReadInventory));
    POST "/ui/deployments/{id}/action" => ui::deployment_action, Session(Some(WriteAssets));
    POST "/ui/deployments/{id}/approval" => ui::deployment_approval, Session(Some(Approve));
    GET "/ui/events" => ui::events, Session(Some(ReadInventory));
    GET "/ui/triage" => ui::triage, Session(Some(ReadInventory));
    GET "/ui/catalog" => ui::catalog, Session(Some(ReadInventory));
    GET "/ui/calendar" => ui::calendar, Session(Some(ReadInventory));
    GET "/ui/exceptions" => ui::exceptions, Session(Some(ReadInventory));
    POST "/ui/exceptions" => ui_act::add_exception, Session(Some(Approve));
    POST "/ui/exceptions/revoke" => ui_act::revoke_exception, Session(Some(Approve));
    GET "/ui/changes" => ui::changes, Session(Some(ReadInventory));
    GET "/ui/changes/{id}" => ui::change, Session(Some(ReadInventory));
    GET "/ui/feeds" => ui::feeds, Session(Some(ReadInventory));
    GET "/ui/lessons" => ui::lessons, Session(Some(ReadInventory));
    GET "/ui/reports" => ui::reports, Session(Some(ReadInventory));
    GET "/ui/reports/{kind}" => ui::report, Session(Some(ReadInventory));
    GET "/ui/evidence" => ui::evidence, Session(Some(ReadAudit));
    GET "/ui/sessions" => ui::sessions, Session(None);
    POST "/ui/sessions/revoke" => ui::revoke_session, Session(None);
});

routes!(ROOT_ROUTES, root_routes, "", {
    GET "/healthz" => ops::healthz, Public;
    GET "/metrics" => ops::metrics, Public;
    GET "/calendar.ics" => schedule::calendar_feed, CalendarToken;
});

/// Every route the server answers, with who may call it.
pub const ROUTES: &[&[RouteSpec]] = &[
    ROOT_ROUTES,
    UI_ROUTES,
    ENROL_ROUTES,
    AGENT_ROUTES,
    API_ROUTES,
];

/// Every route, flattened.
pub fn routes() -> impl Iterator<Item = &'static RouteSpec> {
    ROUTES.iter().flat_map(|g| g.iter())
}

/// Wraps a route's handler in its permission check (API routes that need a
/// particular action); other kinds of access are checked by their group's
/// middleware or by the service.
fn with_access(
    state: &AppState,
    access: Access,
    method_router: axum::routing::MethodRouter<AppState>,
) -> axum::routing::MethodRouter<AppState> {
    match access {
        Access::Api(Some(action)) => method_router.route_layer(from_fn_with_state(
            (state.clone(), action),
            require_permission,
        )),
        Access::Session(Some(action)) => method_router.route_layer(from_fn_with_state(
            (state.clone(), action),
            crate::handlers::ui::require_session_permission,
        )),
        _ => method_router,
    }
}

/// Builds the whole router.
pub fn router(app: App, metrics: Arc<Metrics>) -> Router {
    let state = AppState { app, metrics };
    let api = api_routes(&state)
        .fallback(ops::not_found)
        .layer(DefaultBodyLimit::max(MAX_API_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), api_auth));
    let agent_authed = agent_routes(&state)
        .layer(DefaultBodyLimit::max(MAX_AGENT_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), agent_auth));
    let agent = enrol_routes(&state)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .merge(agent_authed);
    let ui = ui_routes(&state).layer(DefaultBodyLimit::max(64 * 1024));
    let router = root_routes(&state)
        .merge(ui)
        .nest("/api/v1", api)
        .nest("/agent/v1", agent)
        .fallback(ops::not_found);
    // A panicking handler answers 500 and is logged, instead of dropping the
    // connection with nothing said (a client saw "peer disconnected"). Inside
    // `track`, so the 500 is counted in the request metrics.
    let mut router =
        catch_panics(router).layer(middleware::from_fn_with_state(state.clone(), track));
    for (name, value) in SECURITY_HEADERS {
        router = router.layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                axum::http::HeaderName::from_static(name),
                axum::http::HeaderValue::from_static(value),
            ),
        );
    }
    router
        // Spans record the path, never the query: `/calendar.ics?token=…`
        // carries a secret.
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request| {
                tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(state)
}

/// Wraps `router` so that a handler's panic becomes a logged `500` with a
/// generic JSON error body (the panic message is logged, never sent: it may
/// name internals) instead of a dropped connection.
pub fn catch_panics<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(tower_http::catch_panic::CatchPanicLayer::custom(
        |panic: Box<dyn std::any::Any + Send + 'static>| {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(a panic without a message)");
            tracing::error!(panic = %message, "a request handler panicked; answered 500");
            let body = r#"{"error":{"code":"internal","message":"internal server error (see the server log)"}}"#;
            axum::http::Response::builder()
                .status(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
                .header(header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(body))
                .expect("a static response is valid")
        },
    ))
}

/// Headers on every response: nothing is sniffed, framed, cached or sent on as
/// a referrer, and HTML (reports, runbooks) may load nothing from anywhere —
/// inline styles and inline SVG only. A handler's own value wins.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("cache-control", "no-store"),
];

/// `Strict-Transport-Security` on every answer of a server serving TLS
/// (`--tls-cert`): browsers that saw it refuse plain HTTP to this host for a
/// year. Not sent over plain HTTP (browsers ignore it there, and a server
/// behind a TLS-terminating proxy leaves it to the proxy).
pub const HSTS: &str = "max-age=31536000";

/// The router with [`HSTS`] on every response (for serving TLS).
pub fn with_hsts(router: Router) -> Router {
    router.layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
        header::STRICT_TRANSPORT_SECURITY,
        axum::http::HeaderValue::from_static(HSTS),
    ))
}

/// The `Authorization` header's value (non-ASCII is kept as a marker, never
/// guessed at).
pub(crate) fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("<non-ASCII>"))
}

/// Records request counts and latencies by route template.
async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let labels = HttpLabels {
        method,
        route,
        status: resp.status().as_u16(),
    };
    st.metrics.http_requests.get_or_create(&labels).inc();
    st.metrics
        .http_duration
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// Authenticates an API token before anything else (the body is not read).
async fn api_auth(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let ctx = request_ctx(&req);
    match st
        .app
        .authenticate(authorization(req.headers()), &ctx)
        .await
    {
        Ok(caller) => {
            req.extensions_mut().insert(Authed { caller, ctx });
            next.run(req).await
        }
        Err(e) => refuse(req, ApiError(e)).await,
    }
}

/// The most of a refused request's body read (and dropped) before the
/// refusal is sent — the API's body limit: see [`refuse`].
pub const REFUSED_BODY_DRAIN: usize = MAX_API_BODY;

/// How long a refused request's body is read for, at most.
const REFUSED_BODY_DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Answers a request refused before its handler (no or a bad credential, a
/// role without the permission) — after reading and dropping up to
/// [`REFUSED_BODY_DRAIN`] bytes of its body, for at most two seconds (a
/// client that sends more, or slower, is cut off: an unauthenticated caller
/// cannot hold the server longer than that).
///
/// Why: the server closes a connection whose request body was not read,
/// and a close with unread bytes in the socket makes the kernel reset it.
/// A client that writes its whole body before reading the answer (most do:
/// ureq, the agent, scripts) then fails mid-write with "Broken pipe" or
/// "Connection reset", and never sees the 401 or 403 that says what is
/// wrong — an agent whose credential was revoked could not tell it from a
/// network fault. The body is never decoded or kept; a body larger than the
/// bound, or slower than the time, is cut off as before. A client that sent
/// `Expect: 100-continue` has not sent its body: nothing is read (reading it
/// would invite it), and the answer goes at once.
/// `keep_alive::a_refused_body_gets_its_answer_not_a_reset` in
/// crates/patchbay-cli/tests/it guards it.
async fn refuse(req: Request, e: ApiError) -> Response {
    let expects_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let too_long = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > REFUSED_BODY_DRAIN);
    if !expects_continue && !too_long {
        let body = req.into_body();
        let drain = async {
            let mut body = body;
            let mut read = 0usize;
            while let Some(Ok(frame)) = http_body_util::BodyExt::frame(&mut body).await {
                if let Some(data) = frame.data_ref() {
                    read += data.len();
                }
                if read > REFUSED_BODY_DRAIN {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(REFUSED_BODY_DRAIN_TIME, drain).await;
    }
    e.into_response()
}

/// The route's permission, checked (and a refusal recorded) before the body is
/// read or decoded.
async fn require_permission(
    State((st, action)): State<(AppState, Action)>,
    req: Request,
    next: Next,
) -> Response {
    let Some(authed) = req.extensions().get::<Authed>() else {
        return crate::extract::missing_auth().into_response();
    };
    match st.app.require(&authed.caller, action, &authed.ctx).await {
        Ok(()) => next.run(req).await,
        Err(e) => refuse(req, ApiError(e)).await,
    }
}

/// Authenticates an agent's credential before the body is read. A check-in
/// is authenticated by the query that also reads its asset's state
/// ([`patchbay_app::App::authenticate_agent_checkin`]): an unchanged
/// check-in is then one read transaction.
async fn agent_auth(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let ctx = request_ctx(&req);
    let auth = authorization(req.headers());
    let authed = if is_checkin(&req) {
        st.app.authenticate_agent_checkin(auth, &ctx).await
    } else {
        st.app.authenticate_agent(auth, &ctx).await
    };
    match authed {
        Ok(agent) => {
            req.extensions_mut().insert(agent);
            next.run(req).await
        }
        Err(e) => refuse(req, ApiError(e)).await,
    }
}

/// `POST /agent/v1/checkin` (the path as the nested agent router sees it,
/// or whole).
fn is_checkin(req: &Request) -> bool {
    let path = req.uri().path();
    req.method() == axum::http::Method::POST && (path == "/checkin" || path == "/agent/v1/checkin")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_route_is_declared_once() {
        let mut seen = HashSet::new();
        for r in routes() {
            assert!(
                seen.insert((r.method, r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
            assert!(r.path.starts_with('/'), "{}", r.path);
        }
        assert!(seen.len() > 40, "{}", seen.len());
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_without_its_message() {
        use tower::ServiceExt;
        let r: Router = catch_panics(Router::new().route(
            "/boom",
            axum::routing::get(|| async {
                panic!("secret detail {}", 42);
                #[allow(unreachable_code)]
                ""
            }),
        ));
        let res = r
            .oneshot(
                Request::builder()
                    .uri("/boom")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("internal server error"), "{body}");
        assert!(!body.contains("secret detail"), "{body}");
    }
}
