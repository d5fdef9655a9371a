//! The web console: the single-page app built from `web/` (see `build.rs`), embedded in
//! the binary and served at `/` (`index.html`) and `/assets/{file}`. It needs no key to
//! load; everything it shows comes from the API with the key the user signs in with.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

mod files {
    include!(concat!(env!("OUT_DIR"), "/console_files.rs"));
}

/// Scripts and styles only from this origin, no framing, no inline script: a key pasted
/// into the console cannot be read by injected code from elsewhere. Media may come from
/// `blob:` URLs: the Speech tab plays back the recording it sent, held in the page.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   media-src 'self' blob:; \
                   connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(asset))
}

#[utoipa::path(
    get,
    path = "/",
    tag = "console",
    summary = "The web console (a single-page app over this API)",
    responses((status = 200, description = "the console", body = String, content_type = "text/html")),
    security(),
)]
async fn index() -> Response {
    serve("index.html", "no-cache")
}

#[utoipa::path(
    get,
    path = "/assets/{file}",
    tag = "console",
    summary = "The web console's scripts and styles",
    params(("file" = String, Path)),
    responses((status = 200, description = "a script or style sheet", body = String)),
    security(),
)]
async fn asset(Path(file): Path<String>) -> Response {
    // Asset names carry a content hash: cache them for good.
    serve(
        &format!("assets/{file}"),
        "public, max-age=31536000, immutable",
    )
}

fn serve(path: &str, cache: &'static str) -> Response {
    let Some((_, bytes, kind)) = files::FILES.iter().find(|(p, _, _)| *p == path) else {
        return (StatusCode::NOT_FOUND, "no such console file").into_response();
    };
    let mut resp = (*bytes).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// The console's size as served (for the README's figure and a test's bound).
pub fn total_bytes() -> usize {
    files::FILES.iter().map(|(_, b, _)| b.len()).sum()
}
