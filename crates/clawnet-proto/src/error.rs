//! Stable machine error codes and the error body carried by both surfaces.

use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code.
///
/// Codes are part of the contract: clients branch on them, so a code is never
/// renamed or reused for another meaning once released. The same code is used
/// in a WebSocket `res` frame and in a REST `{"error":{…}}` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No credential, or a credential that is unknown or revoked.
    Unauthorized,
    /// The caller is known but its role or membership does not allow this.
    Forbidden,
    /// The named agent, room, message or token does not exist (or is not
    /// visible to the caller, which is deliberately indistinguishable).
    NotFound,
    /// The request collides with existing state (a taken handle or id).
    Conflict,
    /// The request is malformed or a field breaks its rule.
    Invalid,
    /// A payload, frame or field is larger than the configured limit.
    TooLarge,
    /// Too many requests; retry after `retry_after_ms`.
    RateLimited,
    /// The content was refused by policy or the defender.
    Blocked,
    /// The defender holds the item in quarantine for review: accepted, not
    /// delivered; it is delivered (or dispatched) if a warden or master
    /// approves it. Do not retry. `details` carries `quarantine_id` and the
    /// signals that fired.
    Held,
    /// The hub cannot serve the request right now (store down, shutting down).
    Unavailable,
    /// The method or route does not exist.
    UnknownMethod,
    /// The connection fell too far behind and is being closed; reconnect and
    /// resume to catch up by replay.
    SlowConsumer,
    /// An unexpected fault inside the hub; details are in the server log only.
    Internal,
}

impl ErrorCode {
    /// The snake_case wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Invalid => "invalid",
            Self::TooLarge => "too_large",
            Self::RateLimited => "rate_limited",
            Self::Blocked => "blocked",
            Self::Held => "held",
            Self::Unavailable => "unavailable",
            Self::UnknownMethod => "unknown_method",
            Self::SlowConsumer => "slow_consumer",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status the REST surface answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound | Self::UnknownMethod => 404,
            Self::Conflict => 409,
            Self::Invalid => 400,
            Self::TooLarge => 413,
            Self::RateLimited => 429,
            Self::Blocked => 422,
            Self::Held => 202,
            Self::Unavailable | Self::SlowConsumer => 503,
            Self::Internal => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error object: `{"code":…,"message":…}` plus optional details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Stable machine code.
    pub code: ErrorCode,
    /// Human-readable reason, safe to show (never contains internal details).
    pub message: String,
    /// For `rate_limited`: how long to wait before retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// For `invalid` and `too_large`: the field or limit concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `blocked` and `held`: the defender's signals (and the quarantine
    /// id of a held item).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl ErrorBody {
    /// An error body with just a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms: None,
            field: None,
            details: None,
        }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorBody {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_stable_names() {
        for code in [
            ErrorCode::Unauthorized,
            ErrorCode::NotFound,
            ErrorCode::RateLimited,
            ErrorCode::SlowConsumer,
        ] {
            let json = serde_json::to_string(&code).expect("serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
