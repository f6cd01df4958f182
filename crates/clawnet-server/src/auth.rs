//! Who is calling: bearer tokens on REST, header or `?token=` on `/ws`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use clawnet_core::store::AgentRecord;
use clawnet_core::Error;

use crate::errors::ApiError;
use crate::AppState;

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
        let Some(token) = bearer(&parts.headers) else {
            return Err(ApiError(Error::unauthorized(
                "missing credential: send Authorization: Bearer <token>",
            )));
        };
        let (agent, _) = state.hub.authenticate(token, &peer(parts)).await?;
        Ok(Self(agent))
    }
}
