//! The web console at `/console`: plain HTML, CSS and ES modules from
//! `web-console/`, embedded in the binary at build time (no CDN, no node at
//! run time). `--console-dir` serves a directory instead, for working on
//! the console without rebuilding the agent.

use std::path::{Component, Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use super::error::{ApiError, ErrorCode};

#[derive(RustEmbed)]
#[folder = "../../web-console/"]
struct Assets;

/// Where the console's files come from.
#[derive(Debug, Clone, Default)]
pub struct ConsoleFiles {
    /// A directory to serve instead of the embedded copy.
    pub dir: Option<PathBuf>,
}

/// `/console` redirects to `/console/`, which is `index.html`; every other
/// path names a file. Unknown files answer 404 problem+json.
pub(super) fn router(files: ConsoleFiles) -> Router {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(index))
        .route("/console/{*path}", get(file))
        .with_state(files)
}

async fn index(State(files): State<ConsoleFiles>) -> Response {
    serve(&files, "index.html").await
}

async fn file(State(files): State<ConsoleFiles>, UrlPath(path): UrlPath<String>) -> Response {
    serve(&files, &path).await
}

async fn serve(files: &ConsoleFiles, path: &str) -> Response {
    let bytes = match &files.dir {
        Some(dir) => from_dir(dir, path).await,
        None => Assets::get(path).map(|f| f.data.into_owned()),
    };
    let Some(bytes) = bytes else {
        return ApiError::new(
            ErrorCode::RouteNotFound,
            format!("the console has no file {path:?}"),
        )
        .into_response();
    };
    let mut resp = (StatusCode::OK, Body::from(bytes)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_type(path)),
    );
    // Assets change only with the binary; revalidating on each load keeps
    // an upgraded agent's console consistent at the cost of small requests.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Reads `path` under `dir`, refusing anything that would leave it.
async fn from_dir(dir: &Path, path: &str) -> Option<Vec<u8>> {
    let rel = Path::new(path);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    tokio::fs::read(dir.join(rel)).await.ok()
}

fn media_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_is_embedded() {
        assert!(Assets::get("index.html").is_some());
    }

    #[tokio::test]
    async fn a_directory_never_serves_outside_itself() {
        let dir = std::env::temp_dir();
        assert!(from_dir(&dir, "../etc/passwd").await.is_none());
        assert!(from_dir(&dir, "/etc/passwd").await.is_none());
    }
}
