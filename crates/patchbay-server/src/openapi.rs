//! The OpenAPI 3.1 document of the REST API (ADR 0012), served at
//! `GET /api/v1/openapi.json`.
//!
//! Generated from the code: each handler carries its operation
//! (`#[utoipa::path]`: path and query parameters, request body, its answers
//! and the errors the handler itself gives), and every body is a
//! `patchbay-proto` type deriving `utoipa::ToSchema` (feature `openapi`).
//! What the router does around the handlers is added here from the route
//! table ([`crate::router::routes`]) rather than repeated per handler, so it
//! cannot drift from the router: every authenticated route can answer 401
//! (no or a bad token), 429 (authentication backoff) and 503 (database
//! unavailable), a route that needs a permission 403, a route that reads
//! a body 413 (over the body limit), and a route with parameters or a body
//! 400 (they do not decode or validate).
//!
//! One rewrite follows: a type flattened into another (`#[serde(flatten)]`,
//! an `allOf` of its schema) whose own schema is closed
//! (`deny_unknown_fields`: `additionalProperties: false`) is inlined open, or
//! no answer carrying the extra fields could validate ([`open_flattened`];
//! found by schemathesis on `WindowOut`).
//!
//! The agent protocol (`/agent/v1`) is out of scope (ADR 0012): it is
//! versioned on its own (`AGENT_PROTOCOL_VERSION`), its messages are the
//! core's inventory and signed-job types, and its one client is our agent.
//! `openapi::tests::every_route_is_documented` walks the route table and
//! fails naming any route missing from the document (or any documented path
//! that is not a route).

use crate::router::{Access, AppState, RouteSpec};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use patchbay_proto::error::{ErrorBody, ErrorCode};
use std::sync::OnceLock;
use utoipa::OpenApi as _;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HttpMethod, OpenApi, Ref, RefOr, Response as OaResponse, ResponseBuilder,
};

/// The error answer: `{"error": {"code", "message"}}`, for the errors a
/// handler declares (`(status = 404, response = crate::openapi::Error)`).
pub struct Error;

/// Name of the reusable error response in `components.responses`.
const ERROR_RESPONSE: &str = "Error";

impl<'s> utoipa::ToResponse<'s> for Error {
    fn response() -> (&'s str, RefOr<OaResponse>) {
        (
            ERROR_RESPONSE,
            ResponseBuilder::new()
                .description(
                    "An error: `{\"error\": {\"code\", \"message\"}}`; `code` is stable \
                     (see the `ErrorCode` schema), `message` names what and where",
                )
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
                .into(),
        )
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Patchbay REST API",
        description = "The REST API v1 of a Patchbay server. Every `/api/v1` route takes an API \
                       token (`Authorization: Bearer pbt_…`); what it may do is its role ∩ its \
                       scopes. Errors are `{\"error\": {\"code\", \"message\"}}`. The agent \
                       protocol (`/agent/v1`) is not described here (docs/api.md).",
    ),
    security(("bearer" = [])),
    paths(
        openapi_json,
        crate::handlers::ops::healthz,
        crate::handlers::ops::metrics,
        crate::handlers::ops::whoami,
        crate::handlers::schedule::calendar_feed,
        crate::handlers::assets::list,
        crate::handlers::assets::import,
        crate::handlers::assets::show,
        crate::handlers::assets::update,
        crate::handlers::assets::approve_enrollment,
        crate::handlers::discovery::show,
        crate::handlers::discovery::import,
        crate::handlers::discovery::adopt,
        crate::handlers::discovery::dismiss,
        crate::handlers::discovery::accept_exposure,
        crate::handlers::tokens::list,
        crate::handlers::tokens::create,
        crate::handlers::tokens::revoke,
        crate::handlers::tokens::create_enroll_token,
        crate::handlers::users::list,
        crate::handlers::users::add,
        crate::handlers::users::password,
        crate::handlers::users::disabled,
        crate::handlers::users::sessions,
        crate::handlers::users::revoke_session,
        crate::handlers::audit::list,
        crate::handlers::audit::export,
        crate::handlers::audit::rotate_key,
        crate::handlers::findings::list,
        crate::handlers::findings::feeds,
        crate::handlers::feeds::import,
        crate::handlers::csaf::matches,
        crate::handlers::prioritise::worklist,
        crate::handlers::prioritise::get_policy,
        crate::handlers::prioritise::apply_policy,
        crate::handlers::prioritise::preview_policy,
        crate::handlers::prioritise::triage,
        crate::handlers::prioritise::patches,
        crate::handlers::prioritise::oob_events,
        crate::handlers::prioritise::deployments,
        crate::handlers::deployments::create,
        crate::handlers::deployments::preview,
        crate::handlers::deployments::show,
        crate::handlers::deployments::start,
        crate::handlers::deployments::pause,
        crate::handlers::deployments::resume,
        crate::handlers::deployments::abort,
        crate::handlers::deployments::rollback,
        crate::handlers::deployments::approval,
        crate::handlers::deployments::rehearsals,
        crate::handlers::deployments::impact,
        crate::handlers::deployments::rehearse,
        crate::handlers::test_report::test_report,
        crate::handlers::test_report::backup_verifications,
        crate::handlers::schedule::list_windows,
        crate::handlers::schedule::add_window,
        crate::handlers::schedule::remove_window,
        crate::handlers::schedule::list_blackouts,
        crate::handlers::schedule::add_blackout,
        crate::handlers::schedule::remove_blackout,
        crate::handlers::schedule::approve_blackout,
        crate::handlers::schedule::plan_preview,
        crate::handlers::schedule::calendar_authed,
        crate::handlers::reports::report,
        crate::handlers::drift::drift,
        crate::handlers::drift::set_golden,
        crate::handlers::drift::clear_golden,
        crate::handlers::governance::governance,
        crate::handlers::reports::evidence,
        crate::handlers::changes::list,
        crate::handlers::changes::show,
        crate::handlers::changes::runbook,
        crate::handlers::changes::add_lesson,
        crate::handlers::changes::search_lessons,
        crate::handlers::exceptions::list,
        crate::handlers::exceptions::add,
        crate::handlers::exceptions::review,
        crate::handlers::exceptions::show,
        crate::handlers::exceptions::revoke,
        crate::handlers::webhooks::list,
        crate::handlers::webhooks::add,
        crate::handlers::webhooks::show,
        crate::handlers::webhooks::remove,
        crate::handlers::webhooks::deliveries,
        crate::handlers::webhooks::replay,
        crate::handlers::webhooks::test,
        crate::handlers::webhooks::set_auth,
        crate::handlers::escalations::contacts,
        crate::handlers::escalations::add_contact,
        crate::handlers::escalations::emails,
        crate::handlers::escalations::remove_contact,
        crate::handlers::escalations::list,
        crate::handlers::escalations::add,
        crate::handlers::escalations::show,
        crate::handlers::escalations::remove,
        crate::handlers::escalations::ack,
    ),
    components(schemas(ErrorBody, ErrorCode), responses(Error)),
)]
struct ApiDoc;

/// The agent protocol's routes, which the document leaves out (see the
/// module documentation). A route named here that the router does not
/// have fails the completeness test too.
pub const UNDOCUMENTED: &[(&str, &str)] = &[
    ("POST", "/agent/v1/enroll"),
    ("POST", "/agent/v1/checkin"),
    ("POST", "/agent/v1/certificate"),
];

/// Builds the document: the handlers' operations, then what the router
/// adds to each route (see the module documentation), then the security
/// schemes. What is served is [`json`]: this, with [`open_flattened`]
/// applied.
pub fn document() -> OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        "bearer".into(),
        RefOr::T(SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An API token (`pbt_…`)"))
                .build(),
        )),
    );
    components.security_schemes.insert(
        "calendar_token".into(),
        RefOr::T(SecurityScheme::ApiKey(ApiKey::Query(
            ApiKeyValue::with_description(
                "token",
                "A calendar token in the query, for calendar applications that cannot send headers",
            ),
        ))),
    );
    for route in crate::router::routes() {
        let Some(op) = operation_mut(&mut doc, route) else {
            continue; // the completeness test names it
        };
        // Tags by resource (the handler's module), and operation ids unique
        // across modules (`assets_show`, not `show`).
        let tag = op
            .tags
            .as_ref()
            .and_then(|t| t.first())
            .and_then(|t| t.rsplit("::").next())
            .filter(|t| !t.is_empty())
            .unwrap_or("meta")
            .to_string();
        if let Some(id) = &op.operation_id {
            op.operation_id = Some(format!("{tag}_{id}"));
        }
        op.tags = Some(vec![tag]);
        let mut statuses: Vec<&str> = Vec::new();
        if let Access::Api(action) = route.access {
            statuses.extend(["401", "429", "503"]);
            if action.is_some() {
                statuses.push("403");
            }
        }
        if op.request_body.is_some() {
            statuses.push("413");
        }
        // A path parameter, query or body that does not decode or validate
        // (a name with a character names may not have, `limit=x`).
        if op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
            statuses.push("400");
        }
        for status in statuses {
            op.responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name(ERROR_RESPONSE)));
        }
    }
    doc
}

/// The operation documented for `route`, if any.
fn operation_mut<'d>(
    doc: &'d mut OpenApi,
    route: &RouteSpec,
) -> Option<&'d mut utoipa::openapi::path::Operation> {
    let item = doc.paths.paths.get_mut(route.path)?;
    match http_method(route.method)? {
        HttpMethod::Get => item.get.as_mut(),
        HttpMethod::Post => item.post.as_mut(),
        HttpMethod::Put => item.put.as_mut(),
        HttpMethod::Patch => item.patch.as_mut(),
        HttpMethod::Delete => item.delete.as_mut(),
        HttpMethod::Head => item.head.as_mut(),
        HttpMethod::Options => item.options.as_mut(),
        HttpMethod::Trace => item.trace.as_mut(),
    }
}

fn http_method(method: &str) -> Option<HttpMethod> {
    Some(match method {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        "HEAD" => HttpMethod::Head,
        "OPTIONS" => HttpMethod::Options,
        "TRACE" => HttpMethod::Trace,
        _ => return None,
    })
}

/// The document as JSON, built once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        // A document of derived types always serialises; should it ever not,
        // the route answers an empty object rather than panicking.
        let value = serde_json::to_value(document()).map(|mut v| {
            open_flattened(&mut v);
            v
        });
        value
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "the OpenAPI document did not serialise");
                "{}".to_string()
            })
    })
}

/// Replaces each `allOf` member that refers to a closed schema
/// (`additionalProperties: false`) by a copy of it without that keyword:
/// in JSON Schema, `allOf` with a closed member refuses the other members'
/// properties, while serde's `flatten` puts them side by side.
pub fn open_flattened(doc: &mut serde_json::Value) {
    const PREFIX: &str = "#/components/schemas/";
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(|s| s.as_object_mut())
    else {
        return;
    };
    let closed: std::collections::BTreeMap<String, serde_json::Value> = schemas
        .iter()
        .filter(|(_, s)| s.get("additionalProperties") == Some(&serde_json::Value::Bool(false)))
        .map(|(name, s)| {
            let mut open = s.clone();
            if let Some(o) = open.as_object_mut() {
                o.remove("additionalProperties");
            }
            (format!("{PREFIX}{name}"), open)
        })
        .collect();
    if closed.is_empty() {
        return;
    }
    // Everywhere: generic answers (`List<WindowOut>`) inline their item's
    // schema, `allOf` and all.
    open_all_of(doc, &closed);
}

fn open_all_of(
    value: &mut serde_json::Value,
    closed: &std::collections::BTreeMap<String, serde_json::Value>,
) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Array(members)) = map.get_mut("allOf") {
                for member in members.iter_mut() {
                    let target = member.get("$ref").and_then(|r| r.as_str());
                    if let Some(open) = target.and_then(|t| closed.get(t)) {
                        *member = open.clone();
                    }
                }
            }
            for v in map.values_mut() {
                open_all_of(v, closed);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                open_all_of(v, closed);
            }
        }
        _ => {}
    }
}

/// `GET /api/v1/openapi.json`: this document (any API token).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object))
)]
pub async fn openapi_json(State(_): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn documented() -> BTreeSet<(String, String)> {
        let doc = document();
        let mut out = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
                ("HEAD", &item.head),
                ("OPTIONS", &item.options),
                ("TRACE", &item.trace),
            ] {
                if op.is_some() {
                    out.insert((method.to_string(), path.clone()));
                }
            }
        }
        out
    }

    /// The served document: OpenAPI 3.1, unique operation ids, a success
    /// answer and the bearer scheme on every operation, the error body, and
    /// no closed schema left inside an `allOf` (see [`open_flattened`]).
    #[test]
    fn the_document_is_well_formed() {
        let doc: serde_json::Value = serde_json::from_str(json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_string();
                assert!(ids.insert(id.clone()), "operationId {id} twice");
                let responses = op["responses"].as_object().unwrap();
                assert!(
                    responses.keys().any(|s| s.starts_with('2')),
                    "{method} {path}: no success answer"
                );
                if path.starts_with("/api/v1/") {
                    for s in ["401", "429"] {
                        assert!(responses.contains_key(s), "{method} {path}: no {s}");
                    }
                }
            }
        }
        let mut all_ofs = Vec::new();
        collect_all_ofs(&doc, "", &mut all_ofs);
        assert!(!all_ofs.is_empty());
        for (name, schema) in all_ofs {
            for member in schema["allOf"].as_array().into_iter().flatten() {
                assert_ne!(
                    member.get("additionalProperties"),
                    Some(&serde_json::Value::Bool(false)),
                    "{name}: a closed schema inside allOf"
                );
                assert!(
                    member.get("$ref").is_none() || {
                        let target = member["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
                        doc["components"]["schemas"][target]["additionalProperties"]
                            != serde_json::Value::Bool(false)
                    },
                    "{name}: refers to a closed schema inside allOf"
                );
            }
        }
        let window = &doc["components"]["schemas"]["WindowOut"]["allOf"][0];
        assert_eq!(window["properties"]["rrule"]["type"], "string", "{window}");
    }

    fn collect_all_ofs<'v>(
        v: &'v serde_json::Value,
        at: &str,
        out: &mut Vec<(String, &'v serde_json::Value)>,
    ) {
        match v {
            serde_json::Value::Object(m) => {
                if m.contains_key("allOf") {
                    out.push((at.to_string(), v));
                }
                for (k, x) in m {
                    collect_all_ofs(x, &format!("{at}/{k}"), out);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    collect_all_ofs(x, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    /// Every route of the one route table is in the document (the agent
    /// protocol's, named in [`UNDOCUMENTED`], excepted), and every documented
    /// operation is a route.
    #[test]
    fn every_route_is_documented() {
        let documented = documented();
        // The dashboard's pages are HTML for browsers, not the API.
        let routes: BTreeSet<(String, String)> = crate::router::routes()
            .filter(|r| !matches!(r.access, Access::Page | Access::Session(_)))
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        let excepted: BTreeSet<(String, String)> = UNDOCUMENTED
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        let missing: Vec<String> = routes
            .difference(&documented)
            .filter(|r| !excepted.contains(*r))
            .map(|(m, p)| format!("{m} {p}"))
            .collect();
        assert!(
            missing.is_empty(),
            "routes missing from the OpenAPI document: {missing:?}"
        );
        let not_routes: Vec<String> = documented
            .difference(&routes)
            .map(|(m, p)| format!("{m} {p}"))
            .collect();
        assert!(
            not_routes.is_empty(),
            "documented operations that are no route: {not_routes:?}"
        );
        let stale: Vec<String> = excepted
            .difference(&routes)
            .map(|(m, p)| format!("{m} {p}"))
            .collect();
        assert!(stale.is_empty(), "UNDOCUMENTED names no route: {stale:?}");
        let overlap: Vec<String> = excepted
            .intersection(&documented)
            .map(|(m, p)| format!("{m} {p}"))
            .collect();
        assert!(
            overlap.is_empty(),
            "UNDOCUMENTED yet documented: {overlap:?}"
        );
    }
}
