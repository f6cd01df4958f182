//! The one error type of the client.

use clawnet_proto::{ErrorBody, ErrorCode};

/// Everything that can go wrong talking to a hub.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The hub answered a WebSocket request with an error.
    #[error("hub error: {0}")]
    Server(ErrorBody),
    /// The hub answered an HTTP request (REST, or the WebSocket upgrade) with
    /// a non-2xx status.
    #[error("HTTP {0}: {1}")]
    Http(u16, ErrorBody),
    /// The network or the WebSocket failed (connect refused, reset, bad frame).
    #[error("transport error: {0}")]
    Transport(String),
    /// No answer arrived within the request timeout.
    #[error("request timed out")]
    Timeout,
    /// The session is closed (by [`crate::Session::close`], or for good after
    /// the reconnect budget ran out).
    #[error("session closed")]
    Closed,
    /// The hub sent something this client cannot understand, or the caller
    /// gave something that cannot be sent (such as a URL with a bad scheme).
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The hub's error code, for [`ClientError::Server`] and [`ClientError::Http`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Server(body) | Self::Http(_, body) => Some(body.code),
            _ => None,
        }
    }
}

/// Decode an HTTP error body (`{"error":{…}}`); when the body is not one (a
/// proxy's HTML page, say) the status alone picks the code, so callers can
/// still branch on [`ClientError::code`].
pub(crate) fn http_error(status: u16, body: &[u8]) -> ClientError {
    #[derive(serde::Deserialize)]
    struct Wrapper {
        error: ErrorBody,
    }
    let parsed = serde_json::from_slice::<Wrapper>(body).map(|w| w.error);
    let body = parsed.unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(body);
        let message: String = text.chars().take(200).collect();
        ErrorBody::new(code_for_status(status), message)
    });
    ClientError::Http(status, body)
}

fn code_for_status(status: u16) -> ErrorCode {
    match status {
        202 => ErrorCode::Held,
        400 => ErrorCode::Invalid,
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        409 => ErrorCode::Conflict,
        413 => ErrorCode::TooLarge,
        422 => ErrorCode::Blocked,
        429 => ErrorCode::RateLimited,
        503 => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_error_reads_the_error_wrapper() {
        let e = http_error(409, br#"{"error":{"code":"conflict","message":"taken"}}"#);
        assert_eq!(
            e,
            ClientError::Http(409, ErrorBody::new(ErrorCode::Conflict, "taken"))
        );
    }

    #[test]
    fn http_error_falls_back_to_the_status() {
        let e = http_error(401, b"nope");
        assert_eq!(e.code(), Some(ErrorCode::Unauthorized));
    }
}
