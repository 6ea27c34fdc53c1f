//! `POST /api/v1/feeds/import`: a feed file uploaded by `patchbay feeds
//! import` (operator or admin). The body is streamed to a file in the feeds
//! directory — never held in memory — and cut off with 413 past the
//! configured limit (`[feeds] max_upload`; a `Content-Length` over it is
//! refused before the body is read). The file is then read as `patchbay
//! feeds import` reads a local one and stored through the service layer
//! (audited `feed.import`), followed by the delta re-assessment and the
//! zero-day lane.

use crate::errors::ApiError;
use crate::extract::Authed;
use crate::router::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use patchbay_proto::api::FeedImportOut;
use patchbay_proto::error::ErrorCode;
use serde::Deserialize;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;

/// Query of the upload.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The uploaded file's name (recorded as its source; `.jsonl` tells
    /// JSON Lines).
    pub name: Option<String>,
}

/// The file name kept: letters, digits, `.`, `-`, `_` (others become `_`),
/// at most 100 characters, never starting with a dot.
fn clean_name(name: Option<&str>) -> String {
    let n: String = name
        .unwrap_or("upload")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("upload")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let n = n.trim_start_matches('.').to_string();
    if n.is_empty() { "upload".into() } else { n }
}

/// Removes the upload's file when the request ends, however it ends.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!(
            "the feed file is larger than this server accepts ({max} bytes; [feeds] max_upload in the server's configuration)"
        ),
    )
}

/// `POST /api/v1/feeds/import?name=FILE`: imports one uploaded feed file.
#[utoipa::path(
    post,
    path = "/api/v1/feeds/import",
    params(ImportQuery),
    request_body(description = "The feed file as it is: OSV JSON or JSON Lines, a zip of OSV records, the KEV catalog JSON, the EPSS CSV (gzip or not)", content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, body = FeedImportOut),
        (status = 400, response = crate::openapi::Error),
    )
)]
pub async fn import(
    State(st): State<AppState>,
    a: Authed,
    q: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<FeedImportOut>, ApiError> {
    // Through `query`: a bad query string is the API's error body, not
    // axum's plain text (`?name=a&name=b`).
    let q = crate::extract::query(q)?;
    let max = st.app.config().feeds.max_upload;
    if let Some(len) = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max
    {
        return Err(too_large(max));
    }
    let name = clean_name(q.name.as_deref());
    let dir = st
        .app
        .config()
        .feeds
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("./patchbay-data/feeds"))
        .join("uploads");
    let internal =
        |e: std::io::Error| ApiError::new(ErrorCode::Internal, format!("storing the upload: {e}"));
    tokio::fs::create_dir_all(&dir).await.map_err(internal)?;
    let r: [u8; 8] = rand::random();
    let path = dir.join(format!("{}-{name}", hex::encode(r)));
    let _cleanup = Cleanup(path.clone());
    let mut file = tokio::fs::File::create(&path).await.map_err(internal)?;
    let mut body = body;
    let mut size: u64 = 0;
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("reading the upload of {name}: {e}"),
            )
        })?;
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers
        };
        size += chunk.len() as u64;
        if size > max {
            return Err(too_large(max));
        }
        file.write_all(&chunk).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    drop(file);
    let p = path.clone();
    let parsed = tokio::task::spawn_blocking(move || patchbay_app::feed_sync::parse_path(&p))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
        .map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                e.replace(&path.display().to_string(), &name),
            )
        })?;
    let out = st
        .app
        .import_collected(&format!("upload:{name}"), &parsed, &a.caller)
        .await?;
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::clean_name;

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name(Some("kev.json")), "kev.json");
        assert_eq!(clean_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(clean_name(Some(".hidden")), "hidden");
        assert_eq!(clean_name(Some("a b\u{0}.jsonl")), "a_b_.jsonl");
        assert_eq!(clean_name(None), "upload");
        assert_eq!(clean_name(Some("..")), "upload");
    }
}
