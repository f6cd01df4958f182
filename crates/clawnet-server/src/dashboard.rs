//! The web dashboard: static files compiled into the binary.
//!
//! `cargo build` embeds `web/` with `include_bytes!`, so the hub serves its
//! own dashboard with no Node build and no files beside the binary. The
//! pages hold no data: everything they show comes from the REST API and
//! `/ws` with the token the person logs in with, so these routes sit
//! outside the policy gate (like `/healthz`) and need no credential.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file.
struct Asset {
    path: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

/// Every file the dashboard ships. A file added to `web/` must be listed
/// here; `tests/dashboard.rs` checks the total size budget.
macro_rules! asset {
    ($file:literal, $mime:literal) => {
        Asset {
            path: $file,
            mime: $mime,
            body: include_bytes!(concat!("../web/", $file)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

/// Total bytes of the embedded dashboard (for the size budget).
pub fn shipped_bytes() -> usize {
    ASSETS.iter().map(|a| a.body.len()).sum()
}

/// A strict policy: nothing but the hub's own scripts, styles, images and
/// sockets, so a message that smuggles markup cannot load or send anything
/// elsewhere even if it were ever rendered as HTML.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn serve(path: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mut res = asset.body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change only with the binary; revalidating is cheap and an
    // upgraded hub never serves a stale script.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// `/` (the page) and `/ui/{file}` (its script, style and icon).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { serve("index.html") }))
        .route(
            "/ui/{file}",
            get(|axum::extract::Path(file): axum::extract::Path<String>| async move {
                serve(&file)
            }),
        )
}
