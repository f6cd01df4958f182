//! The `Store` trait: everything the hub keeps, behind one object-safe trait.
//!
//! The hub calls the store after validating and authorizing, and acknowledges
//! a mutation only after the store returned from it; a durable backend must
//! therefore return only once the change is committed. Implementations must be
//! safe to call from many tasks at once.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod dedupe;
pub mod memory;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use clawnet_proto::{Envelope, Role, RoomKind, Task, TaskState, ToType};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Result;

pub use memory::MemoryStore;

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Stable id.
    pub agent_id: String,
    /// Current handle, stored lower-case (handles compare case-insensitively).
    pub handle: String,
    /// Role.
    pub role: Role,
    /// Registration time, ms since the epoch.
    pub created_at: u64,
    /// Who registered it (`None` for the bootstrap master).
    pub created_by: Option<String>,
}

/// One bearer token of an agent, as stored (never the token itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Short id used to revoke this token.
    pub token_id: String,
    /// Owner.
    pub agent_id: String,
    /// SHA-256 hex of the token.
    pub hash: String,
    /// Issue time, ms since the epoch.
    pub created_at: u64,
}

/// A room (named room or DM; `global` is implicit and never stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomRecord {
    /// Room key.
    pub name: String,
    /// `room` or `dm`.
    pub kind: RoomKind,
    /// Private rooms and DMs are visible to members, master and warden only.
    pub private: bool,
    /// Creator.
    pub created_by: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_at: u64,
    /// Per-room override of the retention limit (messages kept).
    pub retention: Option<u32>,
}

/// A message about to be stored; the store assigns `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageDraft {
    /// Server-assigned id.
    pub id: String,
    /// Acceptance time.
    pub ts: u64,
    /// Sender id.
    pub from_id: String,
    /// Sender handle.
    pub from_handle: String,
    /// Addressing kind.
    pub to_type: ToType,
    /// Room key.
    pub room: String,
    /// Content.
    pub payload: Map<String, Value>,
    /// Sender's idempotency key.
    pub dedupe_key: Option<String>,
    /// Thread id.
    pub thread_id: Option<String>,
    /// Replied-to message id.
    pub reply_to: Option<String>,
    /// Mentioned agent ids.
    pub mentions: Vec<String>,
}

impl MessageDraft {
    /// The envelope this draft becomes once given `seq`.
    pub fn into_envelope(self, seq: u64) -> Envelope {
        Envelope {
            id: self.id,
            seq,
            ts: self.ts,
            from_id: self.from_id,
            from_handle: self.from_handle,
            to_type: self.to_type,
            to_id: self.room,
            payload: self.payload,
            dedupe_key: self.dedupe_key,
            thread_id: self.thread_id,
            reply_to: self.reply_to,
            mentions: self.mentions,
            deleted: false,
            deleted_by: None,
            deleted_at: None,
        }
    }
}

/// Limits the store applies while appending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendLimits {
    /// A `(from_id, dedupe_key)` seen less than this long ago is a duplicate.
    pub dedupe_window_ms: u64,
    /// Most dedupe keys kept; the oldest are forgotten first beyond this.
    pub dedupe_max_entries: usize,
    /// Messages kept per room (for stores that retain by count).
    pub retention: u32,
}

/// The outcome of an append.
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    /// Stored under a new `seq`.
    New(Arc<Envelope>),
    /// A retry of an earlier send inside the dedupe window: the original.
    Duplicate(Arc<Envelope>),
}

/// One page of a room's history.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistoryPage {
    /// Messages, oldest first.
    pub messages: Vec<Arc<Envelope>>,
    /// Oldest `seq` still kept (0 when empty).
    pub first_available_seq: u64,
    /// Newest `seq` (0 when empty).
    pub last_seq: u64,
    /// Whether messages after the last returned one exist.
    pub has_more: bool,
}

/// An audit entry (SPEC §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the trail, assigned by the store (1, 2, …).
    #[serde(default)]
    pub id: u64,
    /// Time, ms since the epoch.
    pub ts: u64,
    /// Category, e.g. `identity`, `auth`, `chat`, `policy`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Who did it (agent id, or the remote address for failed logins).
    pub actor: String,
    /// What was done, e.g. `handle.change`.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// Why, if there is a reason (refusals).
    pub reason: Option<String>,
    /// Details.
    pub meta: Value,
    /// The `hash` of the entry before this one in the chain (64 zeros for
    /// the first), lower-case hex. Assigned by the audit writer.
    #[serde(default)]
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and this entry's fields
    /// (see [`crate::audit::entry_hash`]), lower-case hex.
    #[serde(default)]
    pub hash: String,
}

/// Filter for reading the audit trail.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Only this category.
    pub kind: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only entries at or after this time.
    pub since_ms: Option<u64>,
    /// Only entries with an id greater than this. When set, the *oldest*
    /// `limit` such entries are returned (so a follower pages forward
    /// without gaps); otherwise the newest `limit`.
    pub after_id: Option<u64>,
    /// At most this many, newest last.
    pub limit: usize,
}

/// A task with the fields only the hub sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task.
    pub task: Task,
    /// The lease of the running attempt (a random id given to the worker).
    pub lease_id: Option<String>,
    /// When that lease ends, ms since the epoch.
    pub lease_until: Option<u64>,
    /// Bumped by the store on every update; [`Store::update_task`] applies a
    /// change only if the stored version is still the one the change was
    /// made from, so two nodes (or a late worker and the lease sweeper)
    /// never both move a task on.
    pub version: u64,
}

/// The outcome of [`Store::insert_task`].
#[derive(Debug, Clone, PartialEq)]
pub enum TaskInsert {
    /// Stored.
    New(TaskRecord),
    /// An active task of the same target has this `dedupe_key`; nothing stored.
    Existing(TaskRecord),
}

/// Filter for [`Store::list_tasks`]; every field narrows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFilter {
    /// Only this state.
    pub state: Option<TaskState>,
    /// Only this target.
    pub target: Option<String>,
    /// Only tasks this agent dispatched or runs.
    pub involving: Option<String>,
    /// Only ids after this one.
    pub after: Option<String>,
    /// At most this many, by id (oldest first).
    pub limit: usize,
}

/// How many tasks of a target are in a state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCount {
    /// The target.
    pub target: String,
    /// The state.
    pub state: TaskState,
    /// How many.
    pub count: u64,
}

impl TaskCount {
    /// A count read back from a store, with the state as stored text;
    /// `unavailable` if the text is not a state (a corrupt row).
    pub fn from_stored(target: String, state: &str, count: u64) -> Result<Self> {
        let state = TaskState::parse(state).ok_or_else(|| {
            crate::error::Error::unavailable(format!("unknown stored task state '{state}'"))
        })?;
        Ok(Self {
            target,
            state,
            count,
        })
    }
}

/// Everything the hub keeps. See the module docs for the durability contract.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Register an agent. `conflict` if the id or the (lower-case) handle is taken.
    async fn insert_agent(&self, agent: AgentRecord) -> Result<()>;
    /// The agent with this id.
    async fn get_agent(&self, agent_id: &str) -> Result<Option<AgentRecord>>;
    /// The agent holding this handle (compared lower-case).
    async fn find_agent_by_handle(&self, handle: &str) -> Result<Option<AgentRecord>>;
    /// Every agent, sorted by id.
    async fn list_agents(&self) -> Result<Vec<AgentRecord>>;
    /// Change an agent's handle; `conflict` if another agent holds it,
    /// `not_found` if the agent does not exist. Returns the previous handle.
    async fn set_handle(&self, agent_id: &str, handle: &str) -> Result<String>;
    /// Change an agent's role. Returns the previous role, `None` if the
    /// agent does not exist (nothing changed).
    async fn set_role(&self, agent_id: &str, role: Role) -> Result<Option<Role>>;
    /// Remove an agent: its record, its tokens, its memberships and its
    /// cursors, in one transaction. Its messages stay in history. Returns
    /// `false` if there was no such agent.
    async fn remove_agent(&self, agent_id: &str) -> Result<bool>;

    /// Store a token record.
    async fn insert_token(&self, token: TokenRecord) -> Result<()>;
    /// The live token with this hash.
    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>>;
    /// The live tokens of an agent.
    async fn list_tokens(&self, agent_id: &str) -> Result<Vec<TokenRecord>>;
    /// Revoke tokens of an agent: the one named, or all when `token_id` is
    /// `None`. Returns the ids revoked.
    async fn revoke_tokens(&self, agent_id: &str, token_id: Option<&str>) -> Result<Vec<String>>;

    /// Create a room; `conflict` if the name exists.
    async fn create_room(&self, room: RoomRecord) -> Result<()>;
    /// The room with this key.
    async fn get_room(&self, name: &str) -> Result<Option<RoomRecord>>;
    /// Every stored room.
    async fn list_rooms(&self) -> Result<Vec<RoomRecord>>;
    /// Add a member; `false` if it already was one.
    async fn add_member(&self, room: &str, agent_id: &str) -> Result<bool>;
    /// Remove a member; `false` if it was not one.
    async fn remove_member(&self, room: &str, agent_id: &str) -> Result<bool>;
    /// Member ids of a room, sorted.
    async fn members(&self, room: &str) -> Result<Vec<String>>;
    /// Whether the agent is a member.
    async fn is_member(&self, room: &str, agent_id: &str) -> Result<bool>;
    /// The stored rooms the agent is a member of (not `global`).
    async fn rooms_of(&self, agent_id: &str) -> Result<Vec<String>>;
    /// Delete a stored room with its memberships, its messages, its `seq`
    /// counter and every cursor in it, in one transaction (a room created
    /// again under the name starts at `seq` 1). Returns `false` if there was
    /// no such room.
    async fn delete_room(&self, name: &str) -> Result<bool>;

    /// Append a message, assigning the next `seq` of its room, unless
    /// `(from_id, dedupe_key)` was seen within the window, in which case the
    /// original is returned and nothing is stored. Atomic: concurrent appends
    /// with the same key store exactly one message.
    async fn append_message(&self, draft: MessageDraft, limits: AppendLimits) -> Result<Appended>;
    /// Messages of a room with `seq > after_seq`, oldest first, at most `limit`.
    async fn history(&self, room: &str, after_seq: u64, limit: usize) -> Result<HistoryPage>;
    /// The newest `seq` of a room (0 when empty or unknown).
    async fn last_seq(&self, room: &str) -> Result<u64>;
    /// Replace the message at `seq` of `room` with its tombstone
    /// ([`Envelope::tombstone`]) and return it; `None` when no such message
    /// is kept. Deleting a tombstone again returns it unchanged.
    async fn delete_message(
        &self,
        room: &str,
        seq: u64,
        by: &str,
        at: u64,
    ) -> Result<Option<Envelope>>;

    /// Move an agent's cursor in a room forward to `seq` (never backwards).
    /// Returns the cursor after the call.
    async fn advance_cursor(&self, agent_id: &str, room: &str, seq: u64) -> Result<u64>;
    /// All cursors of an agent.
    async fn cursors(&self, agent_id: &str) -> Result<HashMap<String, u64>>;

    /// Delete a room's messages older than `before_ts` (ms since the epoch)
    /// and, when `keep_last` is given, all but its newest `keep_last`. The
    /// room's `last_seq` does not change, so `seq` is never reused. Returns
    /// how many messages were removed.
    async fn trim_messages(
        &self,
        room: &str,
        before_ts: u64,
        keep_last: Option<u32>,
    ) -> Result<u64>;

    /// Forget dedupe keys recorded before `before_ts`; their window has
    /// passed. Returns how many were removed.
    async fn expire_dedupe(&self, before_ts: u64) -> Result<u64>;

    /// A setting (a JSON value under a dotted key).
    async fn get_setting(&self, key: &str) -> Result<Option<Value>>;
    /// Create or replace a setting.
    async fn set_setting(&self, key: &str, value: Value) -> Result<()>;

    /// Check that the store answers; `unavailable` if not (for `/readyz`).
    async fn ping(&self) -> Result<()>;

    /// Append an audit entry; the store assigns `id`. Returns the entry stored.
    async fn append_audit(&self, entry: AuditEntry) -> Result<AuditEntry>;
    /// Append audit entries in order, in one transaction where the backend
    /// has them; the store assigns each `id`. Returns the entries stored.
    async fn append_audit_batch(&self, entries: Vec<AuditEntry>) -> Result<Vec<AuditEntry>> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            out.push(self.append_audit(e).await?);
        }
        Ok(out)
    }
    /// Read audit entries, oldest first.
    async fn list_audit(&self, filter: AuditFilter) -> Result<Vec<AuditEntry>>;

    /// Store a new task (its `version` is stored as given, normally 0),
    /// unless it has a `dedupe_key` and an active task (queued, delayed,
    /// running) of the same target has that key: then nothing is stored and
    /// that task is returned. Atomic: of concurrent inserts with one key,
    /// exactly one is stored.
    async fn insert_task(&self, task: TaskRecord) -> Result<TaskInsert>;
    /// The task with this id.
    async fn get_task(&self, task_id: &str) -> Result<Option<TaskRecord>>;
    /// Replace a task if its stored `version` equals `task.version`; the
    /// stored copy gets `version + 1` and is returned. `None` if the version
    /// moved on (someone else changed it first) or the task is unknown.
    async fn update_task(&self, task: TaskRecord) -> Result<Option<TaskRecord>>;
    /// Tasks matching the filter, by id (oldest first).
    async fn list_tasks(&self, filter: TaskFilter) -> Result<Vec<TaskRecord>>;
    /// Tasks that may start now (of one target, or all): `queued` ones, and
    /// `delayed` ones whose `run_at <= now`; highest `priority` first, then
    /// earliest `run_at`, then id. At most `limit`.
    async fn due_tasks(
        &self,
        target: Option<&str>,
        now: u64,
        limit: usize,
    ) -> Result<Vec<TaskRecord>>;
    /// `running` tasks whose `lease_until` is before `now`, at most `limit`.
    async fn expired_leases(&self, now: u64, limit: usize) -> Result<Vec<TaskRecord>>;
    /// Task counts per target and state (pairs with no task left out).
    async fn task_counts(&self) -> Result<Vec<TaskCount>>;
    /// How many tasks of `target` are in one of `states` (checked on every
    /// dispatch against the pending limit, so it must be cheap).
    async fn count_tasks(&self, target: &str, states: &[TaskState]) -> Result<u64>;
}
