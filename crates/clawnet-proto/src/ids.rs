//! Identifier rules: agent ids, handles, room names, DM keys and roles.
//!
//! The rules are checked here so a client can refuse a bad name before sending
//! it; the hub checks them again, since clients are not trusted.

use serde::{Deserialize, Serialize};

/// An agent's role. There are exactly three (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including creating agents and changing roles.
    Master,
    /// Reads everything, moderates, reviews quarantine, reads audit.
    Warden,
    /// Its own chat, rooms it belongs to, tasks it dispatched or that target it.
    Worker,
}

impl Role {
    /// The wire name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Warden => "warden",
            Self::Worker => "worker",
        }
    }

    /// Parse a wire name; `None` for anything but the three roles.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "master" => Some(Self::Master),
            "warden" => Some(Self::Warden),
            "worker" => Some(Self::Worker),
            _ => None,
        }
    }

    /// Master and warden may read every room, including private rooms and DMs.
    pub fn reads_everything(self) -> bool {
        matches!(self, Self::Master | Self::Warden)
    }
}

/// What kind of room a room key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// The `global` room: every agent is a member.
    Global,
    /// A named room, public or private.
    Room,
    /// A direct-message room between two agents, keyed `dm:<a>:<b>`.
    Dm,
}

/// Whether `s` is a valid agent id: `[a-z0-9][a-z0-9._-]{0,63}`.
pub fn valid_agent_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

/// Whether `s` is a valid handle: `[a-z0-9_-]{2,32}`, compared
/// case-insensitively. Upper-case letters are accepted on input and folded to
/// lower case by [`normalize_handle`].
pub fn valid_handle(s: &str) -> bool {
    let b = s.as_bytes();
    (2..=32).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
}

/// The canonical (lower-case, no leading `@`) form of a handle.
pub fn normalize_handle(s: &str) -> String {
    s.trim_start_matches('@').to_ascii_lowercase()
}

/// Whether `s` is a valid name for a named room: the agent-id rule, and not
/// `global` (which always exists) nor anything starting with `dm:`.
pub fn valid_room_name(s: &str) -> bool {
    s != crate::GLOBAL_ROOM && valid_agent_id(s)
}

/// The room key both sides of a direct conversation use: `dm:<a>:<b>` with the
/// two agent ids sorted, so `dm_room_key(a, b) == dm_room_key(b, a)`.
pub fn dm_room_key(a: &str, b: &str) -> String {
    if a <= b {
        format!("dm:{a}:{b}")
    } else {
        format!("dm:{b}:{a}")
    }
}

/// The two agent ids of a DM room key, if `key` is one.
pub fn dm_parties(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("dm:")?;
    let (a, b) = rest.split_once(':')?;
    (valid_agent_id(a) && valid_agent_id(b) && a < b).then_some((a, b))
}

/// Classify a room key.
pub fn room_kind(key: &str) -> RoomKind {
    if key == crate::GLOBAL_ROOM {
        RoomKind::Global
    } else if key.starts_with("dm:") {
        RoomKind::Dm
    } else {
        RoomKind::Room
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_id_rule() {
        assert!(valid_agent_id("a"));
        assert!(valid_agent_id("agent-7.b_c"));
        assert!(!valid_agent_id(""));
        assert!(!valid_agent_id("-a"));
        assert!(!valid_agent_id("Agent"));
        assert!(!valid_agent_id(&"a".repeat(65)));
        assert!(valid_agent_id(&"a".repeat(64)));
    }

    #[test]
    fn handle_rule_is_case_insensitive() {
        assert!(valid_handle("Bob"));
        assert_eq!(normalize_handle("@Bob"), "bob");
        assert!(!valid_handle("b"));
        assert!(!valid_handle("bob.smith"));
        assert!(!valid_handle(&"b".repeat(33)));
    }

    #[test]
    fn dm_key_is_symmetric_and_parses_back() {
        let k = dm_room_key("zed", "amy");
        assert_eq!(k, "dm:amy:zed");
        assert_eq!(k, dm_room_key("amy", "zed"));
        assert_eq!(dm_parties(&k), Some(("amy", "zed")));
        assert_eq!(dm_parties("dm:zed:amy"), None);
        assert_eq!(room_kind(&k), RoomKind::Dm);
        assert_eq!(room_kind("global"), RoomKind::Global);
        assert!(!valid_room_name("global"));
        assert!(!valid_room_name("dm:a:b"));
    }
}
