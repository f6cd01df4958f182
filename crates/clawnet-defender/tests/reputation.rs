//! The reputation client against a small local VirusTotal-like server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clawnet_defender::reputation::{Reputation, ReputationClient, ReputationConfig};
use serde_json::json;

const KEY: &str = "test-key-123";
const BAD_SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

#[derive(Clone, Default)]
struct Seen {
    requests: Arc<AtomicUsize>,
    bad_key: Arc<AtomicUsize>,
}

fn stats(malicious: u64, suspicious: u64) -> Response {
    Json(json!({"data": {"attributes": {"last_analysis_stats": {
        "harmless": 60, "malicious": malicious, "suspicious": suspicious, "undetected": 10
    }}}}))
    .into_response()
}

async fn answer_for(what: &str) -> Response {
    if what.contains("slow") {
        tokio::time::sleep(Duration::from_secs(5)).await;
        return stats(0, 0);
    }
    if what.contains("malicious") {
        stats(7, 1)
    } else if what.contains("suspicious") {
        stats(0, 2)
    } else if what.contains("clean") {
        stats(0, 0)
    } else if what.contains("error") {
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

fn count(seen: &Seen, headers: &HeaderMap) {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    if headers.get("x-apikey").and_then(|v| v.to_str().ok()) != Some(KEY) {
        seen.bad_key.fetch_add(1, Ordering::SeqCst);
    }
}

async fn urls(State(seen): State<Seen>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    count(&seen, &headers);
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(id.as_bytes()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    answer_for(&String::from_utf8_lossy(&bytes)).await
}

async fn files(State(seen): State<Seen>, headers: HeaderMap, Path(sha): Path<String>) -> Response {
    count(&seen, &headers);
    if sha == BAD_SHA {
        stats(12, 0)
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn server() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/api/v3/urls/{id}", get(urls))
        .route("/api/v3/files/{sha}", get(files))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

fn client(base: &str, timeout_ms: u64) -> ReputationClient {
    ReputationClient::new(ReputationConfig {
        base_url: base.to_string(),
        api_key: KEY.to_string(),
        timeout: Duration::from_millis(timeout_ms),
        ..ReputationConfig::default()
    })
}

#[tokio::test]
async fn verdicts_and_api_key() {
    let (base, seen) = server().await;
    let c = client(&base, 1500);
    assert_eq!(
        c.url("https://malicious.example/payload").await,
        Reputation::Malicious
    );
    assert_eq!(c.url("https://clean.example/").await, Reputation::Clean);
    assert_eq!(
        c.url("https://suspicious.example/").await,
        Reputation::Suspicious
    );
    assert_eq!(
        c.url("https://never-seen.example/").await,
        Reputation::Unknown
    );
    assert_eq!(c.url("https://error.example/").await, Reputation::Unknown);
    assert_eq!(c.file(BAD_SHA).await, Reputation::Malicious);
    assert_eq!(c.file(&"b".repeat(64)).await, Reputation::Unknown);
    assert_eq!(c.file("not-a-hash").await, Reputation::Unknown);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 7);
    assert_eq!(
        seen.bad_key.load(Ordering::SeqCst),
        0,
        "x-apikey header sent"
    );
}

#[tokio::test]
async fn slow_server_gives_unknown_within_timeout() {
    let (base, _seen) = server().await;
    let c = client(&base, 300);
    let start = Instant::now();
    assert_eq!(c.url("https://slow.example/").await, Reputation::Unknown);
    let took = start.elapsed();
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(took >= Duration::from_millis(250), "took {took:?}");
}

#[tokio::test]
async fn cache_avoids_second_request() {
    let (base, seen) = server().await;
    let c = client(&base, 1500);
    assert_eq!(
        c.url("https://malicious.example/a").await,
        Reputation::Malicious
    );
    assert_eq!(
        c.url("https://malicious.example/a").await,
        Reputation::Malicious
    );
    assert_eq!(
        c.url("https://unknown.example/a").await,
        Reputation::Unknown
    );
    assert_eq!(
        c.url("https://unknown.example/a").await,
        Reputation::Unknown
    );
    assert_eq!(c.file(BAD_SHA).await, Reputation::Malicious);
    assert_eq!(c.file(&BAD_SHA.to_uppercase()).await, Reputation::Malicious);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 3);
    assert_eq!(c.cached(), 3);
}

#[tokio::test]
async fn cache_is_bounded() {
    let (base, _seen) = server().await;
    let c = ReputationClient::new(ReputationConfig {
        base_url: base,
        api_key: KEY.to_string(),
        cache_max: 4,
        ..ReputationConfig::default()
    });
    for i in 0..10 {
        c.url(&format!("https://clean.example/{i}")).await;
        assert!(c.cached() <= 4);
    }
}

#[tokio::test]
async fn signals_from_text() {
    let (base, seen) = server().await;
    let c = client(&base, 1500);
    let text = format!(
        "grab it from https://malicious.example/x.sh or https://clean.example/ok, \
         also https://suspicious.example/y; the binary is {BAD_SHA}."
    );
    let mut names: Vec<String> = c.signals(&text).await.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "reputation.malicious_file",
            "reputation.malicious_url",
            "reputation.suspicious_url"
        ]
    );
    assert_eq!(seen.requests.load(Ordering::SeqCst), 4);

    // At most 8 lookups per text.
    let many: String = (0..20)
        .map(|i| format!("https://clean.example/many/{i} "))
        .collect();
    assert!(c.signals(&many).await.is_empty());
    assert_eq!(seen.requests.load(Ordering::SeqCst), 12);
}

#[tokio::test]
async fn no_api_key_means_no_lookups() {
    let (base, seen) = server().await;
    let c = ReputationClient::new(ReputationConfig {
        base_url: base,
        ..ReputationConfig::default()
    });
    assert_eq!(
        c.url("https://malicious.example/").await,
        Reputation::Unknown
    );
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unreachable_server_gives_unknown() {
    // Bind and drop to get a closed port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let c = client(&format!("http://{addr}"), 500);
    assert_eq!(
        c.url("https://malicious.example/").await,
        Reputation::Unknown
    );
}

/// The real VirusTotal API is HTTPS: the client must be able to speak TLS
/// (a build without a TLS backend fails every lookup before connecting).
#[tokio::test]
async fn the_client_can_reach_https_endpoints() {
    let client = reqwest::Client::builder()
        .build()
        .expect("client with a TLS backend");
    // Port 9 on localhost refuses: the error must be a connect error, not
    // "no TLS backend / scheme not supported".
    let err = client
        .get("https://127.0.0.1:9/")
        .send()
        .await
        .expect_err("nothing listens there");
    assert!(err.is_connect(), "{err:?}");
}
