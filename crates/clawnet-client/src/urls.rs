//! Deriving the WebSocket and REST endpoints from the one base URL a user gives.

use crate::ClientError;

/// Split a base URL into whether it is secure (`https`/`wss`) and the rest
/// after `://` (no trailing slash), refusing other schemes and empty hosts.
fn split(base: &str) -> Result<(bool, &str), ClientError> {
    let base = base.trim().trim_end_matches('/');
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| ClientError::Protocol(format!("URL without a scheme: {base:?}")))?;
    let secure = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => false,
        "https" | "wss" => true,
        other => {
            return Err(ClientError::Protocol(format!(
                "unsupported URL scheme {other:?} (want http, https, ws or wss)"
            )))
        }
    };
    if rest.is_empty() {
        return Err(ClientError::Protocol(format!(
            "URL without a host: {base:?}"
        )));
    }
    Ok((secure, rest))
}

/// The WebSocket endpoint for a hub base URL.
///
/// `http://h:3000` becomes `ws://h:3000/ws`, `https://…` becomes `wss://…`;
/// a `ws(s)://` URL is taken as the base too, and one already ending in `/ws`
/// is used as it is. A path prefix (a hub behind a reverse proxy) is kept.
pub fn ws_url(base: &str) -> Result<String, ClientError> {
    let (secure, rest) = split(base)?;
    let scheme = if secure { "wss" } else { "ws" };
    if rest.contains('/') && rest.ends_with("/ws") {
        Ok(format!("{scheme}://{rest}"))
    } else {
        Ok(format!("{scheme}://{rest}/ws"))
    }
}

/// The HTTP base (`http(s)://host[/prefix]`, no trailing slash) for a hub
/// base URL, accepting `ws(s)://` (and a trailing `/ws`) as well.
pub fn http_base(base: &str) -> Result<String, ClientError> {
    let (secure, rest) = split(base)?;
    let scheme = if secure { "https" } else { "http" };
    let rest = match rest.strip_suffix("/ws") {
        Some(r) if !r.is_empty() => r,
        _ => rest,
    };
    Ok(format!("{scheme}://{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_url_from_http_and_ws_bases() {
        let cases = [
            ("http://127.0.0.1:3000", "ws://127.0.0.1:3000/ws"),
            ("http://127.0.0.1:3000/", "ws://127.0.0.1:3000/ws"),
            ("https://hub.example", "wss://hub.example/ws"),
            ("ws://h:1", "ws://h:1/ws"),
            ("ws://h:1/ws", "ws://h:1/ws"),
            ("wss://h/ws/", "wss://h/ws"),
            ("http://h/clawnet", "ws://h/clawnet/ws"),
            ("HTTP://h", "ws://h/ws"),
        ];
        for (input, want) in cases {
            assert_eq!(ws_url(input).expect(input), want, "{input}");
        }
    }

    #[test]
    fn ws_url_refuses_other_schemes() {
        assert!(ws_url("ftp://h").is_err());
        assert!(ws_url("h:3000").is_err());
        assert!(ws_url("http://").is_err());
    }

    #[test]
    fn http_base_normalises() {
        assert_eq!(http_base("http://h:3000/").expect("ok"), "http://h:3000");
        assert_eq!(http_base("ws://h:3000/ws").expect("ok"), "http://h:3000");
        assert_eq!(http_base("wss://h/p").expect("ok"), "https://h/p");
    }
}
