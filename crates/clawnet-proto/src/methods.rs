//! Methods a client may call, their parameters and results, and the events the
//! hub pushes.
//!
//! Parameter structs reject unknown fields, so a typo in a client is an
//! `invalid` error rather than a silently ignored option.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{Role, RoomKind};
use crate::message::{Envelope, ToType};

/// A method of C2CP v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `connect`: start the session and (optionally) present resume cursors.
    Connect,
    /// `chat.send` (alias `chat_send`): send a message.
    ChatSend,
    /// `room.create`: create a named room.
    RoomCreate,
    /// `room.join` (alias `room_join`): join a public room.
    RoomJoin,
    /// `room.leave` (alias `room_leave`): leave a room.
    RoomLeave,
    /// `room.invite`: add another agent to a room the caller may manage.
    RoomInvite,
    /// `room.list`: rooms visible to the caller.
    RoomList,
    /// `room.history`: read a room's history.
    RoomHistory,
    /// `typing`: tell room members the caller is (not) typing.
    Typing,
    /// `presence.set` (alias `presence_update`): set own presence.
    PresenceSet,
    /// `presence.list`: everyone's presence.
    PresenceList,
    /// `report`: report own status and activity (predecessor event).
    Report,
    /// `ack` (alias `chat_ack`): acknowledge processed messages, cumulative.
    Ack,
    /// `ping`: heartbeat; answered with the server time.
    Ping,
    /// `task.dispatch` (alias `task_dispatch`): hand a task to an agent.
    TaskDispatch,
    /// `task.progress`: a worker extends the lease of a task it runs.
    TaskProgress,
    /// `task.result` (alias `task_result`): a worker reports an attempt's outcome.
    TaskResult,
    /// `task.release`: a worker hands a task back untried (it is stopping).
    TaskRelease,
    /// `task.get`: one task.
    TaskGet,
    /// `task.list`: tasks the caller may see, by state and target.
    TaskList,
    /// `task.retry`: put a failed task back in its queue.
    TaskRetry,
    /// `task.cancel`: cancel a queued or delayed task.
    TaskCancel,
    /// `queue.list`: queues with counts per state.
    QueueList,
    /// `queue.pause`: stop starting a queue's tasks (master).
    QueuePause,
    /// `queue.resume`: start a paused queue's tasks again (master).
    QueueResume,
    /// `schedule.create`: register a repeatable task (idempotent).
    ScheduleCreate,
    /// `schedule.list`: repeatable tasks.
    ScheduleList,
    /// `schedule.delete`: remove a repeatable task.
    ScheduleDelete,
    /// `activity`: per agent offline/idle/working with queue depth and breaker.
    Activity,
    /// `chat.delete`: delete a message (its sender, or master), leaving a
    /// tombstone in history.
    ChatDelete,
    /// `quarantine.list`: items the defender holds for review (master, warden).
    QuarantineList,
    /// `quarantine.approve`: deliver or dispatch a held item (master, warden).
    QuarantineApprove,
    /// `quarantine.reject`: drop a held item for good (master, warden).
    QuarantineReject,
}

impl Method {
    /// Resolve a wire name, canonical or alias.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "connect" => Self::Connect,
            "chat.send" | "chat_send" => Self::ChatSend,
            "room.create" => Self::RoomCreate,
            "room.join" | "room_join" => Self::RoomJoin,
            "room.leave" | "room_leave" => Self::RoomLeave,
            "room.invite" => Self::RoomInvite,
            "room.list" => Self::RoomList,
            "room.history" => Self::RoomHistory,
            "typing" => Self::Typing,
            "presence.set" | "presence_update" => Self::PresenceSet,
            "presence.list" => Self::PresenceList,
            "report" => Self::Report,
            "ack" | "chat_ack" => Self::Ack,
            "ping" => Self::Ping,
            "task.dispatch" | "task_dispatch" => Self::TaskDispatch,
            "task.progress" => Self::TaskProgress,
            "task.result" | "task_result" => Self::TaskResult,
            "task.release" => Self::TaskRelease,
            "task.get" => Self::TaskGet,
            "task.list" => Self::TaskList,
            "task.retry" => Self::TaskRetry,
            "task.cancel" => Self::TaskCancel,
            "queue.list" => Self::QueueList,
            "queue.pause" => Self::QueuePause,
            "queue.resume" => Self::QueueResume,
            "schedule.create" => Self::ScheduleCreate,
            "schedule.list" => Self::ScheduleList,
            "schedule.delete" => Self::ScheduleDelete,
            "activity" => Self::Activity,
            "chat.delete" | "chat_delete" => Self::ChatDelete,
            "quarantine.list" => Self::QuarantineList,
            "quarantine.approve" => Self::QuarantineApprove,
            "quarantine.reject" => Self::QuarantineReject,
            _ => return None,
        })
    }

    /// The canonical wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::ChatSend => "chat.send",
            Self::RoomCreate => "room.create",
            Self::RoomJoin => "room.join",
            Self::RoomLeave => "room.leave",
            Self::RoomInvite => "room.invite",
            Self::RoomList => "room.list",
            Self::RoomHistory => "room.history",
            Self::Typing => "typing",
            Self::PresenceSet => "presence.set",
            Self::PresenceList => "presence.list",
            Self::Report => "report",
            Self::Ack => "ack",
            Self::Ping => "ping",
            Self::TaskDispatch => "task.dispatch",
            Self::TaskProgress => "task.progress",
            Self::TaskResult => "task.result",
            Self::TaskRelease => "task.release",
            Self::TaskGet => "task.get",
            Self::TaskList => "task.list",
            Self::TaskRetry => "task.retry",
            Self::TaskCancel => "task.cancel",
            Self::QueueList => "queue.list",
            Self::QueuePause => "queue.pause",
            Self::QueueResume => "queue.resume",
            Self::ScheduleCreate => "schedule.create",
            Self::ScheduleList => "schedule.list",
            Self::ScheduleDelete => "schedule.delete",
            Self::Activity => "activity",
            Self::ChatDelete => "chat.delete",
            Self::QuarantineList => "quarantine.list",
            Self::QuarantineApprove => "quarantine.approve",
            Self::QuarantineReject => "quarantine.reject",
        }
    }

    /// Every method, in declaration order (for tables that must cover all).
    pub const ALL: [Self; 33] = [
        Self::Connect,
        Self::ChatSend,
        Self::RoomCreate,
        Self::RoomJoin,
        Self::RoomLeave,
        Self::RoomInvite,
        Self::RoomList,
        Self::RoomHistory,
        Self::Typing,
        Self::PresenceSet,
        Self::PresenceList,
        Self::Report,
        Self::Ack,
        Self::Ping,
        Self::TaskDispatch,
        Self::TaskProgress,
        Self::TaskResult,
        Self::TaskRelease,
        Self::TaskGet,
        Self::TaskList,
        Self::TaskRetry,
        Self::TaskCancel,
        Self::QueueList,
        Self::QueuePause,
        Self::QueueResume,
        Self::ScheduleCreate,
        Self::ScheduleList,
        Self::ScheduleDelete,
        Self::Activity,
        Self::ChatDelete,
        Self::QuarantineList,
        Self::QuarantineApprove,
        Self::QuarantineReject,
    ];
}

/// Event names pushed by the hub.
pub mod events {
    /// A chat message (`data` is the [`crate::Envelope`]); carries `room` and `seq`.
    pub const MESSAGE: &str = "message";
    /// The receiving agent was @mentioned (`data` is a [`crate::methods::MentionEvent`]).
    pub const MENTION: &str = "mention";
    /// An agent's presence changed (`data` is a [`crate::methods::PresenceEntry`]).
    pub const PRESENCE: &str = "presence";
    /// Someone is typing in a room (`data` is a [`crate::methods::TypingEvent`]).
    pub const TYPING: &str = "typing";
    /// An agent joined a room (`data` is a [`crate::methods::MembershipEvent`]).
    pub const ROOM_JOINED: &str = "room.joined";
    /// An agent left a room (`data` is a [`crate::methods::MembershipEvent`]).
    pub const ROOM_LEFT: &str = "room.left";
    /// Replay cannot start where asked: the history before `first_available_seq`
    /// is gone (`data` is a [`crate::methods::ReplayGap`]).
    pub const REPLAY_GAP: &str = "replay.gap";
    /// The cursor presented for a room is beyond its newest `seq` (the hub's
    /// history was reset, e.g. a memory store restarted): the client must
    /// forget its cursor for the room; replay restarts from the oldest kept
    /// message (`data` is a [`crate::methods::ReplayReset`]).
    pub const REPLAY_RESET: &str = "replay.reset";
    /// Replay is complete; what follows is live (`data` is a
    /// [`crate::methods::ReplayDone`]).
    pub const REPLAY_DONE: &str = "replay.done";
    /// The hub is about to close this connection (`data` is a
    /// [`crate::methods::Disconnecting`]).
    pub const DISCONNECTING: &str = "disconnecting";
    /// A message was deleted; history keeps its tombstone.
    pub const MESSAGE_DELETED: &str = "message.deleted";
    /// A task handed to this worker under a lease (`data` is a
    /// [`crate::tasks::TaskDispatchEvent`]).
    pub const TASK_DISPATCH: &str = "task.dispatch";
    /// A task the receiver dispatched or runs changed state (`data` is a
    /// [`crate::tasks::TaskUpdatedEvent`]).
    pub const TASK_UPDATED: &str = "task.updated";
}

/// `connect` parameters; all optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectParams {
    /// Protocol version the client speaks; must be 2 when present.
    #[serde(default)]
    pub protocol: Option<u32>,
    /// Free-form client name, for logs.
    #[serde(default)]
    pub client: Option<String>,
    /// Last processed `seq` per room; overrides the server-kept cursors for
    /// these rooms. Replay starts right after each.
    #[serde(default)]
    pub resume: BTreeMap<String, u64>,
    /// Receive a `presence` event whenever any agent's presence changes
    /// (default false; `presence.list` answers at any time). Off by default
    /// because in a large fleet every connection would receive every
    /// change; dashboards and small fleets turn it on.
    #[serde(default)]
    pub presence: bool,
    /// Take tasks on this connection: the hub pushes `task.dispatch` events
    /// to it (default false, so a dashboard or CLI session of an agent never
    /// receives its work).
    #[serde(default)]
    pub worker: bool,
    /// Tasks this connection runs at once (with `worker`; default from the
    /// hub's `tasks.worker_concurrency`, 1 unless configured).
    #[serde(default)]
    pub concurrency: Option<usize>,
}

/// `connect` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectResult {
    /// The authenticated agent.
    pub agent_id: String,
    /// Its current handle.
    pub handle: String,
    /// Its role.
    pub role: Role,
    /// Id of this connection, unique on the hub.
    pub session_id: String,
    /// Protocol version the hub speaks.
    pub protocol: u32,
    /// Rooms the agent belongs to (replay covers each of them).
    pub rooms: Vec<String>,
    /// Send a frame (`ping` will do) at least this often; the hub marks the
    /// agent offline and closes the connection after `heartbeat_timeout_ms`
    /// without any frame.
    pub heartbeat_interval_ms: u64,
    /// See `heartbeat_interval_ms`.
    pub heartbeat_timeout_ms: u64,
    /// Why this agent's previous connection was closed by the hub, if it was
    /// (for example `slow_consumer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_disconnect: Option<Disconnecting>,
}

/// `chat.send` parameters, the same shape as the REST body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendParams {
    /// `global`, `room` or `dm`.
    pub to_type: ToType,
    /// Room name for `room`; the other agent's id or `@handle` for `dm`;
    /// ignored (may be omitted) for `global`.
    #[serde(default)]
    pub to_id: Option<String>,
    /// A JSON object; chat text goes in `text`.
    pub payload: Map<String, Value>,
    /// Idempotency key: a retry with the same key inside the dedupe window
    /// returns the original envelope and stores nothing new.
    #[serde(default)]
    pub dedupe_key: Option<String>,
    /// Thread id, free-form.
    #[serde(default)]
    pub thread_id: Option<String>,
    /// Id of the message this one answers.
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// `chat.send` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendResult {
    /// The stored envelope (the original one for a duplicate).
    pub message: Envelope,
    /// True when this send was recognised as a retry of an earlier one.
    pub duplicate: bool,
}

/// `room.create` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RoomCreateParams {
    /// Room name, `[a-z0-9][a-z0-9._-]{0,63}`, not `global`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$"))]
    pub name: String,
    /// Private rooms are visible only to members, master and warden.
    #[serde(default)]
    pub private: bool,
    /// Keep at most this many messages in memory for this room, instead of the
    /// hub default.
    #[serde(default)]
    pub retention: Option<u32>,
}

/// Parameters naming one room (`room.join`, `room.leave`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomParams {
    /// Room key.
    pub room: String,
}

/// `room.invite` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomInviteParams {
    /// Room key.
    pub room: String,
    /// The agent to add: its id or `@handle`.
    pub agent: String,
}

/// `room.history` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Room key.
    pub room: String,
    /// Return messages with `seq` greater than this (default 0: the oldest kept).
    #[serde(default)]
    pub after_seq: Option<u64>,
    /// At most this many (default 100, maximum 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `room.history` result, also the REST history body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryResult {
    /// Messages, oldest first.
    pub messages: Vec<Envelope>,
    /// The oldest `seq` still kept (0 when the room is empty). If it is greater
    /// than `after_seq + 1`, messages in between are gone.
    pub first_available_seq: u64,
    /// The newest `seq` in the room (0 when empty).
    pub last_seq: u64,
    /// Whether more messages follow the last one returned.
    pub has_more: bool,
}

/// A room as listed to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomInfo {
    /// Room key.
    pub name: String,
    /// `global`, `room` or `dm`.
    pub kind: RoomKind,
    /// Private rooms (and DMs) are visible to members, master and warden.
    pub private: bool,
    /// Creator's agent id (`null` for `global`).
    #[serde(default)]
    pub created_by: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_at: u64,
    /// Number of members.
    pub member_count: usize,
    /// Whether the caller is a member.
    pub member: bool,
    /// Newest `seq`.
    pub last_seq: u64,
}

/// `room.list` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomList {
    /// Visible rooms, sorted by name.
    pub rooms: Vec<RoomInfo>,
}

/// `typing` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypingParams {
    /// Room key.
    pub room: String,
    /// True while typing; false to clear (default true).
    #[serde(default = "default_true")]
    pub typing: bool,
}

fn default_true() -> bool {
    true
}

/// `typing` event data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypingEvent {
    /// Room key.
    pub room: String,
    /// Who is typing.
    pub from_id: String,
    /// Their handle.
    pub from_handle: String,
    /// True while typing.
    pub typing: bool,
}

/// Presence states (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    /// Connected and active.
    Online,
    /// Connected, but inactive for a while or by its own request.
    Idle,
    /// No live connection.
    Offline,
}

/// `presence.set` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceSetParams {
    /// `online` or `idle` (`offline` is what disconnecting does).
    pub status: PresenceStatus,
}

/// `report` parameters: the agent's own status line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// Optional presence change (`online` or `idle`).
    #[serde(default)]
    pub status: Option<PresenceStatus>,
    /// What the agent is doing, shown in presence lists (at most 200 chars).
    #[serde(default)]
    pub activity: Option<String>,
    /// Free-form details (at most 4 KiB serialized).
    #[serde(default)]
    pub meta: Option<Map<String, Value>>,
}

/// One agent's presence, the `presence` event data and a `presence.list` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PresenceEntry {
    /// Agent id.
    pub agent_id: String,
    /// Handle.
    pub handle: String,
    /// Current state.
    pub status: PresenceStatus,
    /// Number of live connections.
    pub connections: usize,
    /// Last reported activity, if any.
    #[serde(default)]
    pub activity: Option<String>,
    /// Last reported details, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// When the state last changed, ms since the epoch (0 if never seen).
    pub since: u64,
}

/// `presence.list` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PresenceList {
    /// Every agent, sorted by handle.
    pub agents: Vec<PresenceEntry>,
}

/// `ack` parameters: either one room and seq, or several at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckParams {
    /// Room key (with `seq`).
    #[serde(default)]
    pub room: Option<String>,
    /// Everything up to and including this `seq` in `room` is processed.
    #[serde(default)]
    pub seq: Option<u64>,
    /// Several rooms at once: room key to last processed `seq`.
    #[serde(default)]
    pub cursors: BTreeMap<String, u64>,
}

/// `ack` result: the server-kept cursors after applying the ack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckResult {
    /// Room key to acknowledged `seq`, for the rooms named in the request.
    pub cursors: BTreeMap<String, u64>,
}

/// `mention` event data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MentionEvent {
    /// Room of the message.
    pub room: String,
    /// Its `seq`.
    pub seq: u64,
    /// Its id.
    pub message_id: String,
    /// Who mentioned the receiver.
    pub from_id: String,
    /// Their handle.
    pub from_handle: String,
}

/// `room.joined` / `room.left` event data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipEvent {
    /// Room key.
    pub room: String,
    /// The agent that joined or left.
    pub agent_id: String,
    /// Its handle.
    pub handle: String,
    /// Who caused it (differs from `agent_id` for an invite).
    pub by: String,
}

/// `replay.gap` event data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayGap {
    /// Room key.
    pub room: String,
    /// The cursor replay was asked to start after.
    pub after_seq: u64,
    /// The oldest `seq` still kept; replay continues from here, and the
    /// messages from `after_seq + 1` to `first_available_seq - 1` are lost to
    /// this client.
    pub first_available_seq: u64,
}

/// `replay.reset` event data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayReset {
    /// Room key.
    pub room: String,
    /// The cursor the client presented.
    pub resume_seq: u64,
    /// The room's newest `seq`, lower than the cursor.
    pub last_seq: u64,
}

/// `replay.done` event data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayDone {
    /// Room key to the last `seq` replayed (or the cursor, if nothing was).
    pub rooms: BTreeMap<String, u64>,
    /// Number of messages replayed in all.
    pub replayed: u64,
}

/// `disconnecting` event data, and the reason of a previous disconnect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disconnecting {
    /// Stable reason: `slow_consumer`, `heartbeat_timeout`, `token_revoked`,
    /// `shutdown`, `handshake_timeout`, `frame_too_large`.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// When, ms since the epoch.
    pub ts: u64,
}

/// `ping` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    /// Server time, ms since the epoch.
    pub ts: u64,
}

/// Convert any serializable value to a JSON value; used for results.
pub fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_to_canonical_methods() {
        assert_eq!(Method::parse("chat_send"), Some(Method::ChatSend));
        assert_eq!(Method::parse("chat_ack"), Some(Method::Ack));
        assert_eq!(Method::parse("presence_update"), Some(Method::PresenceSet));
        assert_eq!(Method::parse("room_join"), Some(Method::RoomJoin));
        assert_eq!(Method::parse("room_leave"), Some(Method::RoomLeave));
        assert_eq!(Method::parse("chat.nope"), None);
        assert_eq!(Method::ChatSend.name(), "chat.send");
    }

    #[test]
    fn send_params_refuse_unknown_fields() {
        let r: Result<SendParams, _> = serde_json::from_value(serde_json::json!({
            "to_type":"global","payload":{"text":"hi"},"colour":"red"
        }));
        assert!(r.is_err());
    }
}
