//! The defender's verdicts and the quarantine, as they appear on the wire.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::methods::SendParams;
use crate::tasks::{DispatchParams, TaskOrigin};

/// One signal a scorer found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DefenderSignal {
    /// Stable dotted name, e.g. `injection.instruction_override`.
    pub name: String,
    /// How much it added to the score.
    pub weight: f32,
    /// A short excerpt of what fired.
    pub evidence: String,
}

/// What the quarantine holds: the original request, replayed on approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HeldItem {
    /// A chat message (the `chat.send` parameters).
    Chat {
        /// As sent.
        params: SendParams,
    },
    /// A task dispatch.
    Task {
        /// As sent.
        params: DispatchParams,
        /// The chat message that caused it, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<TaskOrigin>,
    },
}

/// Where a quarantined item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QuarantineState {
    /// Waiting for a warden or master.
    Held,
    /// Approved and delivered (or dispatched).
    Approved,
    /// Rejected; never delivered.
    Rejected,
}

/// One quarantined item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuarantineItem {
    /// Id, `q_<sortable id>`; held items are approved in this order.
    pub id: String,
    /// When it was held, ms since the epoch.
    pub ts: u64,
    /// The agent that sent it.
    pub actor: String,
    /// The request.
    pub item: HeldItem,
    /// Injection score, 0..=1.
    pub injection_score: f32,
    /// Command-risk score, 0..=1.
    pub command_score: f32,
    /// The signals that fired.
    pub signals: Vec<DefenderSignal>,
    /// Why it is held (`review`, or `timeout` under the review policy).
    pub reason: String,
    /// Held, approved or rejected.
    pub state: QuarantineState,
    /// Who decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<u64>,
    /// What approval produced (the message or task), or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Value>,
}

/// `quarantine.list` parameters and `GET /api/v1/quarantine` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineListParams {
    /// Only items in this state (default: held).
    #[serde(default)]
    pub state: Option<QuarantineState>,
}

/// `quarantine.list` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuarantineList {
    /// Oldest first.
    pub items: Vec<QuarantineItem>,
}

/// `quarantine.approve` / `quarantine.reject` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineRef {
    /// The item.
    pub id: String,
    /// Why (kept in the ledger and the audit trail).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `chat.delete` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    /// The room key (`global`, a room name, `dm:<a>:<b>`).
    pub room: String,
    /// The message's `seq` in that room.
    pub seq: u64,
}

/// `message.deleted` event data, pushed to the room's members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDeletedEvent {
    /// Room key.
    pub room: String,
    /// The deleted message's `seq`.
    pub seq: u64,
    /// Its id.
    pub id: String,
    /// Who deleted it.
    pub deleted_by: String,
    /// When, ms since the epoch.
    pub deleted_at: u64,
}
