//! The HTTP and WebSocket surfaces of the hub.
//!
//! [`router`] builds the axum app over an [`AppState`]; [`serve`] runs it on
//! a listener until a shutdown signal, then closes agent connections with a
//! `disconnecting` event. The binary only parses configuration, binds and
//! calls these, so tests run the same server on an ephemeral port.

mod auth;
pub mod dashboard;
pub mod errors;
mod guard;
pub mod limits;
mod methods;
pub mod metrics;
pub mod openapi;
pub mod policy;
mod rest;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use clawnet_core::Hub;
use tokio::net::TcpListener;

/// Settings of the surfaces (the hub has its own, in [`clawnet_core::HubConfig`]).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Browser origins (the `Origin` header) allowed to open `/ws`, besides
    /// the hub's own. Requests without `Origin` (non-browser agents) pass.
    pub allowed_origins: Vec<String>,
    /// Largest WebSocket message or REST body accepted, in bytes. A larger
    /// REST body gets 413; a larger WebSocket message gets `too_large` and
    /// the connection lives, up to twice this size, beyond which the
    /// connection is closed with code 1009.
    pub max_frame_bytes: usize,
    /// Rate limits of REST and WebSocket requests.
    pub limits: limits::RateLimits,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            max_frame_bytes: 64 * 1024 + 16 * 1024,
            limits: limits::RateLimits::default(),
        }
    }
}

/// What every handler gets.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The hub.
    pub hub: Hub,
    /// Surface settings.
    pub opts: Arc<ServerOptions>,
    /// The rate limiters built from `opts.limits`.
    pub limiters: Arc<limits::Limiters>,
}

impl AppState {
    /// State for a hub with these options.
    pub fn new(hub: Hub, opts: ServerOptions) -> Self {
        metrics::handle();
        Self {
            hub,
            limiters: Arc::new(limits::Limiters::new(&opts.limits)),
            opts: Arc::new(opts),
        }
    }
}

/// The whole HTTP app: REST v1, the predecessor's aliases, `/ws`, health,
/// and the dashboard's static files (outside the gate: they hold no data).
/// Every matched route passes the policy gate (rate limits, credential,
/// the authorization matrix) before its handler.
pub fn router(state: AppState) -> Router {
    let body_limit = state.opts.max_frame_bytes;
    rest::routes()
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::gate,
        ))
        .merge(dashboard::routes())
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Serve until `shutdown` resolves, then ask every agent connection to
/// reconnect elsewhere and wait for the connections to finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let hub = state.hub.clone();
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // Small frames (ACKs, single events) must leave at once; Nagle's
    // algorithm would hold them for the peer's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let closing = hub.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            closing.close_all("shutdown", "the hub is shutting down; reconnect shortly");
        })
        .await?;
    // Upgraded WebSocket connections are not tracked by the HTTP server:
    // wait until each has answered what it was doing and said goodbye.
    // (The caller bounds the whole shutdown with its deadline.)
    while hub.connection_count() > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(())
}
