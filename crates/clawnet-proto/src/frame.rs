//! The three frame kinds of C2CP v2, carried as JSON text WebSocket frames.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorBody;

/// Any frame on the wire, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// A client's request (`"type":"req"`).
    Req(RequestFrame),
    /// The hub's answer to one request (`"type":"res"`).
    Res(ResponseFrame),
    /// Something that happened, pushed by the hub (`"type":"event"`).
    Event(EventFrame),
}

/// `{"type":"req","id":…,"method":…,"params":{…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestFrame {
    /// Chosen by the client (string or number) and echoed in the response, so
    /// a client can match answers to requests with several in flight.
    pub id: Value,
    /// Method name; canonical (`chat.send`) or a predecessor alias (`chat_send`).
    pub method: String,
    /// Method parameters; an absent `params` is the same as `{}`.
    #[serde(default)]
    pub params: Value,
}

/// `{"type":"res","id":…,"ok":true,"result":…}` or `{…,"ok":false,"error":{…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseFrame {
    /// The request's `id`, or `null` when the request was too malformed to read one.
    pub id: Value,
    /// Whether the request succeeded.
    pub ok: bool,
    /// The method's result when `ok` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl ResponseFrame {
    /// A successful response.
    pub fn ok(id: Value, result: Value) -> Self {
        Self {
            id,
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    /// A failed response.
    pub fn err(id: Value, error: ErrorBody) -> Self {
        Self {
            id,
            ok: false,
            result: None,
            error: Some(error),
        }
    }
}

/// `{"type":"event","event":…,"room":…,"seq":…,"data":{…}}`.
///
/// `room` and `seq` are present on events that belong to a room's ordered
/// history (messages), so a client can keep its per-room cursor from the frame
/// alone; ephemeral events (typing, presence) carry `room` at most.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventFrame {
    /// Event name, see [`crate::methods::events`].
    pub event: String,
    /// The room the event belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The room sequence number, for events that are part of its history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Event data.
    #[serde(default)]
    pub data: Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_without_params_reads_as_null_params() {
        let f: Frame =
            serde_json::from_value(json!({"type":"req","id":1,"method":"ping"})).expect("parse");
        match f {
            Frame::Req(r) => {
                assert_eq!(r.method, "ping");
                assert!(r.params.is_null());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn error_response_omits_result() {
        let r = ResponseFrame::err(json!("a"), ErrorBody::new(crate::ErrorCode::Invalid, "bad"));
        let v = serde_json::to_value(Frame::Res(r)).expect("serialize");
        assert_eq!(
            v,
            json!({"type":"res","id":"a","ok":false,"error":{"code":"invalid","message":"bad"}})
        );
    }
}
