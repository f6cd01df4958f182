//! The chat message envelope (SPEC §3).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a message is addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ToType {
    /// The `global` room.
    Global,
    /// A named room.
    Room,
    /// A direct message to one other agent.
    Dm,
}

impl ToType {
    /// Parse the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "global" => Some(Self::Global),
            "room" => Some(Self::Room),
            "dm" => Some(Self::Dm),
            _ => None,
        }
    }
}

/// A stored chat message as every surface shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Envelope {
    /// Server-assigned id, unique and lexicographically sortable by time.
    pub id: String,
    /// Position in the room's history: strictly increasing by one, no gaps.
    pub seq: u64,
    /// Server time of acceptance, milliseconds since the Unix epoch.
    pub ts: u64,
    /// Sender's stable agent id.
    pub from_id: String,
    /// Sender's handle at the time of sending.
    pub from_handle: String,
    /// `global`, `room` or `dm`.
    pub to_type: ToType,
    /// The room key: `global`, a room name, or `dm:<a>:<b>`.
    pub to_id: String,
    /// The content; chat text is in `payload.text`.
    pub payload: Map<String, Value>,
    /// The sender's idempotency key, if it gave one.
    #[serde(default)]
    pub dedupe_key: Option<String>,
    /// Thread this message belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// Id of the message this one answers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Agent ids resolved from `@handle` mentions in `payload.text`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// The message was deleted: its payload is emptied, and history keeps
    /// this tombstone in its place so `seq` stays gapless.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Who deleted it (its sender or master).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<String>,
    /// When it was deleted, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<u64>,
}

impl Envelope {
    /// This message as a tombstone: payload, mentions and thread links
    /// dropped, `deleted` set with who and when.
    pub fn tombstone(&mut self, by: &str, at: u64) {
        self.payload.clear();
        self.mentions.clear();
        self.deleted = true;
        self.deleted_by = Some(by.to_owned());
        self.deleted_at = Some(at);
    }

    /// The message's text, if its payload has a string `text`.
    pub fn text(&self) -> Option<&str> {
        self.payload.get("text").and_then(Value::as_str)
    }
}
