//! The OpenAPI document as the router serves it (ADR 0012), and the bad
//! inputs found while checking the document's media types: every error
//! answer of `/api/v1` is the JSON error body, including a path parameter
//! that is not UTF-8 and a query string that does not decode.

use crate::support::InProcess;
use axum::http::{StatusCode, header};
use serde_json::Value;

async fn served_document(backend: &str) {
    let s = InProcess::on(backend).await;
    let resp = s
        .send("GET", "/api/v1/openapi.json", Some(&s.admin), None, None)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "application/json",
        "{:?}",
        resp.headers()
    );
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // The routes, as the router has them, with the bodies of proto types.
    assert_eq!(
        doc["paths"]["/api/v1/assets/{name}"]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/AssetDetail"
    );
    assert_eq!(
        doc["paths"]["/api/v1/evidence"]["get"]["responses"]["200"]["content"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["application/zip"]
    );
    let whoami = &doc["components"]["schemas"]["WhoAmI"]["properties"];
    assert!(whoami["server_public_key"].is_object(), "{whoami}");

    // Any API token; none is a 401 with the error body.
    let (status, body) = s.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["code"], "unauthenticated");
}

#[tokio::test]
async fn the_document_is_served_to_an_api_token_sqlite() {
    served_document("sqlite").await;
}

#[tokio::test]
async fn the_document_is_served_to_an_api_token_postgres() {
    // Never skipped: without PATCHBAY_TEST_PG_URL (scripts/with-postgres) it fails.
    served_document("postgres").await;
}

async fn error_bodies(backend: &str) {
    let s = InProcess::on(backend).await;
    for (method, path) in [
        ("GET", "/api/v1/assets/%FF"),
        ("GET", "/api/v1/webhooks/%FF/deliveries"),
        ("DELETE", "/api/v1/windows/%C3%28"),
        ("POST", "/api/v1/feeds/import?name=a&name=b"),
        ("GET", "/api/v1/audit?limit=x"),
    ] {
        let resp = s.send(method, path, Some(&s.admin), None, None).await;
        let status = resp.status();
        let content_type = resp.headers()[header::CONTENT_TYPE].clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {text}");
        assert_eq!(content_type, "application/json", "{method} {path}: {text}");
        let err: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(err["error"]["code"], "invalid_request", "{method} {path}");
        assert!(
            !err["error"]["message"].as_str().unwrap().is_empty(),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn bad_paths_and_queries_answer_the_error_body_sqlite() {
    error_bodies("sqlite").await;
}

#[tokio::test]
async fn bad_paths_and_queries_answer_the_error_body_postgres() {
    // Never skipped: without PATCHBAY_TEST_PG_URL (scripts/with-postgres) it fails.
    error_bodies("postgres").await;
}
