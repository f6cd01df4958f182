//! The OpenAPI document: the committed `docs/openapi.json` is what the code
//! generates and what the hub serves, and it names exactly the routes of the
//! authorization matrix.
//!
//! After changing a route or a wire type, regenerate the file with
//!
//! ```text
//! UPDATE_OPENAPI=1 cargo test -p clawnet-server --test openapi
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use clawnet_core::Hub;
use clawnet_server::{openapi, policy, AppState, ServerOptions};
use serde_json::Value;
use tower::ServiceExt;

const REGENERATE: &str = "UPDATE_OPENAPI=1 cargo test -p clawnet-server --test openapi";

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[test]
fn committed_document_is_current() {
    let generated = openapi::json();
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, generated).expect("write docs/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let at = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "lengths differ".to_owned(),
                |i| format!("first difference at line {}", i + 1),
            );
        panic!(
            "docs/openapi.json is out of date with the code ({at}).\n\
             Regenerate it with:\n    {REGENERATE}"
        );
    }
}

#[tokio::test]
async fn served_document_is_the_generated_one() {
    let hub = Hub::builder().build().await.expect("hub builds");
    let app = clawnet_server::router(AppState::new(hub, ServerOptions::default()));
    let res = app
        .oneshot(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(res.status(), StatusCode::OK, "public, no token needed");
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    assert_eq!(
        std::str::from_utf8(&body).expect("utf-8"),
        openapi::json(),
        "served document differs from the generated one"
    );
}

fn documented() -> BTreeSet<(String, String)> {
    let doc: Value = serde_json::from_str(openapi::json()).expect("document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn document_and_authorization_matrix_name_the_same_routes() {
    let table: BTreeSet<(String, String)> = policy::REST
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    let doc = documented();
    let undocumented: Vec<_> = table.difference(&doc).collect();
    let unrouted: Vec<_> = doc.difference(&table).collect();
    assert!(
        undocumented.is_empty(),
        "routes in policy::REST without an operation in the OpenAPI document \
         (add a #[utoipa::path] function in crates/clawnet-server/src/openapi.rs, \
         then run {REGENERATE}): {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "operations in the OpenAPI document that policy::REST does not have: {unrouted:?}"
    );
}

#[test]
fn every_operation_documents_its_errors() {
    let doc: Value = serde_json::from_str(openapi::json()).expect("document is JSON");
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Some(rule) = policy::rest(&method.to_uppercase(), path) else {
                continue;
            };
            let responses = op["responses"].as_object().expect("responses");
            let has = |s: &str| responses.contains_key(s);
            let what = format!("{} {path}", method.to_uppercase());
            assert!(has("429"), "{what}: 429");
            assert!(
                responses.keys().any(|k| k.starts_with('2') || k == "101"),
                "{what}: a success"
            );
            let security = op["security"].as_array().expect("security");
            if rule.access == policy::Access::Public {
                assert!(security.is_empty(), "{what}: public, no security");
            } else {
                for s in ["400", "401", "403", "404"] {
                    assert!(has(s), "{what}: {s}");
                }
                assert_eq!(security.len(), 1, "{what}: bearer");
            }
            if op.get("requestBody").is_some() {
                assert!(has("413"), "{what}: 413");
            }
        }
    }
    let rl = &doc["components"]["responses"]["RateLimited"];
    assert!(rl["headers"]["Retry-After"].is_object(), "Retry-After");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}
