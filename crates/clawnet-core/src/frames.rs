//! Building frames as text once, so fan-out shares one allocation.

use std::sync::Arc;

use bytes::Bytes;
use clawnet_proto::methods::events;
use clawnet_proto::Envelope;
use serde::Serialize;

use crate::bus::OutFrame;

/// JSON string literal of `s` (with quotes and escapes).
fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The envelope's JSON text.
pub fn envelope_json(env: &Envelope) -> String {
    serde_json::to_string(env).unwrap_or_else(|_| "{}".to_owned())
}

/// A `message` event for an envelope whose JSON is already built.
pub fn message_frame(env: &Envelope, env_json: &str) -> Arc<OutFrame> {
    let text = format!(
        r#"{{"type":"event","event":"{}","room":{},"seq":{},"data":{}}}"#,
        events::MESSAGE,
        json_str(&env.to_id),
        env.seq,
        env_json
    );
    Arc::new(OutFrame {
        room: Some(Arc::from(env.to_id.as_str())),
        seq: env.seq,
        text: Bytes::from(text),
    })
}

/// Any other event: not part of a room's history.
pub fn event_frame<T: Serialize>(event: &str, room: Option<&str>, data: &T) -> Arc<OutFrame> {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "null".to_owned());
    let text = match room {
        Some(r) => format!(
            r#"{{"type":"event","event":{},"room":{},"data":{}}}"#,
            json_str(event),
            json_str(r),
            data
        ),
        None => format!(
            r#"{{"type":"event","event":{},"data":{}}}"#,
            json_str(event),
            data
        ),
    };
    Arc::new(OutFrame {
        room: None,
        seq: 0,
        text: Bytes::from(text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawnet_proto::{Frame, ToType};

    #[test]
    fn message_frame_parses_as_an_event_with_room_and_seq() {
        let env = Envelope {
            id: "01".into(),
            seq: 7,
            ts: 1,
            from_id: "a".into(),
            from_handle: "a\"q".into(),
            to_type: ToType::Room,
            to_id: "r\"1".into(),
            payload: serde_json::Map::new(),
            dedupe_key: None,
            thread_id: None,
            reply_to: None,
            mentions: vec![],
            deleted: false,
            deleted_by: None,
            deleted_at: None,
        };
        let f = message_frame(&env, &envelope_json(&env));
        let parsed: Frame = serde_json::from_slice(&f.text).expect("valid frame");
        match parsed {
            Frame::Event(e) => {
                assert_eq!(e.room.as_deref(), Some("r\"1"));
                assert_eq!(e.seq, Some(7));
                let back: Envelope = serde_json::from_value(e.data).expect("envelope");
                assert_eq!(back, env);
            }
            other => panic!("not an event: {other:?}"),
        }
    }
}
