//! Who is calling: bearer tokens on REST, header or `?token=` on `/ws`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use clawnet_core::store::AgentRecord;
use clawnet_core::Error;

use crate::errors::ApiError;
use crate::policy::{self, Access};
use crate::{limits, AppState};

/// The authenticated caller of a REST route.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<AgentRecord>);

impl Caller {
    /// The caller's agent id.
    pub fn id(&self) -> &str {
        &self.0.agent_id
    }
}

/// The bearer token of the `Authorization` header, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The peer address, when the server was started with connect info.
pub fn peer(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.to_string())
}

/// The peer IP address (without the port), the key of per-address limits.
pub fn peer_ip(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

/// A refusal by a rate limiter.
pub fn limited(scope: &str, retry_after_ms: u64) -> Error {
    clawnet_core::metrics::rate_limited(scope);
    Error::rate_limited(
        format!("too many requests ({scope}); retry after {retry_after_ms} ms"),
        retry_after_ms,
    )
}

/// The policy gate in front of every route: the per-address limit, the
/// credential, the per-agent limit, then the authorization matrix. A
/// refusal by the matrix is audited as `policy.blocked`. The caller it
/// authenticated is handed to the handler, so a request is authenticated
/// once.
pub async fn gate(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    match admit(&app, &mut req).await {
        Ok(()) => next.run(req).await,
        Err(e) => ApiError(e).into_response(),
    }
}

async fn admit(app: &AppState, req: &mut Request) -> Result<(), Error> {
    let Some(template) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        return Ok(());
    };
    let method = req.method().as_str().to_owned();
    let Some(rule) = policy::rest(&method, &template) else {
        // Every registered method of a route has an entry (the router
        // builder asserts it), so this method is not routed here: the
        // router answers 405.
        return Ok(());
    };
    let ip = peer_ip(req.extensions());
    limits::check(app.limiters.rest_address.as_ref(), &ip)
        .map_err(|ms| limited("per address", ms))?;
    if rule.access == Access::Public {
        return Ok(());
    }
    let Some(token) = bearer(req.headers()) else {
        clawnet_core::metrics::auth_failure("missing");
        return Err(Error::unauthorized(
            "missing credential: send Authorization: Bearer <token>",
        ));
    };
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.to_string());
    let (agent, _) = app.hub.authenticate(token, &addr).await?;
    limits::check(app.limiters.rest_agent.as_ref(), &agent.agent_id)
        .map_err(|ms| limited("per agent", ms))?;
    let is_self = policy::names_self(&template, req.uri().path(), &agent.agent_id, &agent.handle);
    if !rule.access.allows(agent.role, is_self) {
        let reason = format!("{method} {template} {}", rule.access.refusal());
        return app
            .hub
            .refuse(
                &agent.agent_id,
                &format!("{method} {template}"),
                req.uri().path(),
                reason,
            )
            .await;
    }
    req.extensions_mut().insert(Caller(agent));
    Ok(())
}

/// The peer address as a string, for audit entries.
#[derive(Debug, Clone)]
pub struct Peer(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(peer(parts)))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(c.clone());
        }
        let Some(token) = bearer(&parts.headers) else {
            return Err(ApiError(Error::unauthorized(
                "missing credential: send Authorization: Bearer <token>",
            )));
        };
        let (agent, _) = state.hub.authenticate(token, &peer(parts)).await?;
        Ok(Self(agent))
    }
}
