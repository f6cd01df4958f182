//! The one error type of the core, carrying a stable [`ErrorCode`].

use clawnet_proto::{ErrorBody, ErrorCode};

/// Result alias for core operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A refusal or failure, with the stable code every surface maps from.
///
/// `message` is shown to clients, so it never contains internal details; for
/// `internal` and `unavailable` the cause is logged where the error is made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    /// Stable machine code.
    pub code: ErrorCode,
    /// Client-safe reason.
    pub message: String,
    /// For `rate_limited`.
    pub retry_after_ms: Option<u64>,
    /// The offending field or limit, for `invalid` and `too_large`.
    pub field: Option<String>,
    /// Structured details (`blocked`, `held`).
    pub details: Option<Box<serde_json::Value>>,
}

impl Error {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms: None,
            field: None,
            details: None,
        }
    }

    /// `held`: the defender quarantined the item for review.
    pub fn held(message: impl Into<String>, details: serde_json::Value) -> Self {
        Self {
            details: Some(Box::new(details)),
            ..Self::new(ErrorCode::Held, message)
        }
    }

    /// `blocked`: the defender refused the item.
    pub fn blocked(message: impl Into<String>, details: serde_json::Value) -> Self {
        Self {
            details: Some(Box::new(details)),
            ..Self::new(ErrorCode::Blocked, message)
        }
    }

    /// `invalid`, naming the field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(ErrorCode::Invalid, message)
        }
    }

    /// `too_large`, naming the field.
    pub fn too_large(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(ErrorCode::TooLarge, message)
        }
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// `rate_limited` with the time to wait.
    pub fn rate_limited(message: impl Into<String>, retry_after_ms: u64) -> Self {
        Self {
            retry_after_ms: Some(retry_after_ms),
            ..Self::new(ErrorCode::RateLimited, message)
        }
    }

    /// `unavailable`: the store or another dependency failed. The cause is
    /// logged here and kept out of the client-facing message.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "store unavailable");
        Self::new(
            ErrorCode::Unavailable,
            "the hub's store is unavailable, retry later",
        )
    }

    /// The wire form.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code,
            message: self.message.clone(),
            retry_after_ms: self.retry_after_ms,
            field: self.field.clone(),
            details: self.details.as_deref().cloned(),
        }
    }
}
