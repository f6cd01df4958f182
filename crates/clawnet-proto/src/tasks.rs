//! Tasks (SPEC §5): the task as clients see it, dispatch parameters, and the
//! worker protocol (`task.dispatch` pushed with a lease, `task.progress`,
//! `task.result`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for its target to have a free slot.
    Queued,
    /// Waiting for `run_at` (a delayed task, or a retry in backoff).
    Delayed,
    /// Handed to a worker under a lease.
    Running,
    /// Finished with a result. Terminal.
    Succeeded,
    /// Out of attempts; kept in the dead-letter list. Terminal until retried.
    Failed,
    /// Refused by policy or the defender. Terminal.
    Blocked,
    /// Superseded or a duplicate. Terminal.
    Skipped,
    /// Cancelled before it ran. Terminal.
    Cancelled,
}

impl TaskState {
    /// Every state, in the order queues list their counts.
    pub const ALL: [TaskState; 8] = [
        Self::Queued,
        Self::Delayed,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Blocked,
        Self::Skipped,
        Self::Cancelled,
    ];

    /// The wire name (`queued`, `delayed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Delayed => "delayed",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Blocked => "blocked",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Queued, delayed or running: the task may still run, and its
    /// `dedupe_key` still dedupes.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Delayed | Self::Running)
    }
}

/// The chat message that caused a task, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskOrigin {
    /// Room the command was typed in.
    pub room: String,
    /// Id of that message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// An external account the request came through (a bridge's user id).
    /// Internal: stripped for workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// An external session or thread key. Internal: stripped for workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Whether the hub posts the task's lifecycle (queued, running,
    /// succeeded, failed) into `room` (true for slash commands).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notes: bool,
}

/// A task as the hub stores and shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    /// Server-assigned id (`t_` + sortable base32).
    pub task_id: String,
    /// The agent id that runs it.
    pub target: String,
    /// Who dispatched it (agent id).
    pub dispatched_by: String,
    /// Free-form kind, e.g. `prompt`, `shell`, `report`.
    pub kind: String,
    /// Work description; a JSON object.
    pub payload: Map<String, Value>,
    /// Idempotency key: while a task with this key is active for the same
    /// target, dispatching again returns that task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_key: Option<String>,
    /// Current state.
    pub state: TaskState,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed before the task fails for good.
    pub max_attempts: u32,
    /// Not before this time (ms since the epoch).
    pub run_at: u64,
    /// Higher runs first among due tasks of a target.
    pub priority: i32,
    /// Output of a successful run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Error of the last failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_at: u64,
    /// Last change, ms since the epoch.
    pub updated_at: u64,
    /// When the current or last attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    /// When it reached a terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    /// The chat message that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<TaskOrigin>,
    /// Backoff of retries: first delay, ms.
    pub backoff_base_ms: u64,
    /// Backoff cap, ms.
    pub backoff_cap_ms: u64,
}

impl Task {
    /// The task as a worker may see it: internal origin fields removed.
    pub fn for_worker(mut self) -> Self {
        if let Some(o) = self.origin.as_mut() {
            o.account = None;
            o.session = None;
        }
        self
    }
}

/// `task.dispatch` method parameters and `POST /api/v1/tasks` body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DispatchParams {
    /// Agent id or `@handle` of the worker.
    pub target: String,
    /// Free-form kind (default `task`).
    #[serde(default)]
    pub kind: Option<String>,
    /// A JSON object (default `{}`).
    #[serde(default)]
    pub payload: Map<String, Value>,
    /// See [`Task::dedupe_key`].
    #[serde(default)]
    pub dedupe_key: Option<String>,
    /// Start no earlier than this time, ms since the epoch.
    #[serde(default)]
    pub run_at: Option<u64>,
    /// Start no earlier than this many ms from now (ignored with `run_at`).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Default 0; higher first.
    #[serde(default)]
    pub priority: Option<i32>,
    /// Default 5.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Default 5000.
    #[serde(default)]
    pub backoff_base_ms: Option<u64>,
    /// Default 60000.
    #[serde(default)]
    pub backoff_cap_ms: Option<u64>,
}

/// Result of a dispatch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DispatchResult {
    /// The task (the existing one for a duplicate).
    pub task: Task,
    /// True when the `dedupe_key` matched an active task.
    pub duplicate: bool,
    /// Why the task will not start soon, when the hub knows: the target's
    /// queue is paused, or its circuit breaker is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Parameters naming one task (`task.get`, `task.retry`, `task.cancel`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRef {
    /// The task.
    pub task_id: String,
}

/// `task.list` parameters and `GET /api/v1/tasks` query.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskListParams {
    /// Only this state.
    #[serde(default)]
    pub state: Option<TaskState>,
    /// Only tasks for this agent id.
    #[serde(default)]
    pub target: Option<String>,
    /// Only tasks with an id after this one (pagination).
    #[serde(default)]
    pub after: Option<String>,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `task.list` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskList {
    /// Oldest first.
    pub tasks: Vec<Task>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The `task.dispatch` event: a task handed to this worker under a lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDispatchEvent {
    /// The task, stripped for workers.
    pub task: Task,
    /// Present this in `task.progress` and `task.result`.
    pub lease_id: String,
    /// The lease ends at this time (ms since the epoch) unless extended by
    /// `task.progress`; then the attempt counts as failed.
    pub lease_until: u64,
}

/// `task.progress` parameters: the worker is still at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressParams {
    /// The task.
    pub task_id: String,
    /// From `task.dispatch`.
    pub lease_id: String,
    /// Free-form progress note, shown in activity.
    #[serde(default)]
    pub note: Option<String>,
}

/// `task.progress` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressResult {
    /// The new end of the lease.
    pub lease_until: u64,
}

/// `task.result` parameters: the attempt is over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultParams {
    /// The task.
    pub task_id: String,
    /// From `task.dispatch`.
    pub lease_id: String,
    /// True for success (then `output`), false for failure (then `error`).
    pub ok: bool,
    /// Output of a success.
    #[serde(default)]
    pub output: Option<Value>,
    /// Error of a failure.
    #[serde(default)]
    pub error: Option<String>,
}

/// The `task.updated` event: a task the receiver dispatched or runs changed
/// state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskUpdatedEvent {
    /// The task after the change (stripped for workers).
    pub task: Task,
}

/// What an agent is doing, for activity views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// No live connection.
    Offline,
    /// Connected, no running task.
    Idle,
    /// Has running tasks.
    Working,
}

impl AgentStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Idle => "idle",
            Self::Working => "working",
        }
    }
}

/// State of a target's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Tasks start normally.
    Closed,
    /// Too many consecutive failures: new tasks wait in `queued`.
    Open,
    /// The reset timeout passed: one trial task may start; its outcome
    /// closes or re-opens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A target's circuit breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakerInfo {
    /// Current state.
    pub state: BreakerState,
    /// Consecutive failed attempts.
    pub failures: u32,
    /// When it opened (absent when closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<u64>,
    /// When an open breaker half-opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
}

/// One agent in `activity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityEntry {
    /// The agent.
    pub agent_id: String,
    /// Its handle.
    pub handle: String,
    /// Offline, idle or working.
    pub status: AgentStatus,
    /// Tasks running.
    pub running: u64,
    /// Tasks waiting (queued and delayed): the queue depth.
    pub queued: u64,
    /// Ids of the running tasks.
    pub working_on: Vec<String>,
    /// Whether its queue is paused.
    pub paused: bool,
    /// Its circuit breaker.
    pub breaker: BreakerInfo,
}

/// `activity` result and `GET /api/v1/activity` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityList {
    /// Agents the caller may see, by id.
    pub agents: Vec<ActivityEntry>,
}

/// A queue: the tasks of one target agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueInfo {
    /// Queue name: the target's agent id.
    pub name: String,
    /// The target's handle.
    pub handle: String,
    /// Paused queues start nothing; their tasks wait in `queued`.
    pub paused: bool,
    /// Tasks per state (every state listed, zeros included).
    pub counts: std::collections::BTreeMap<String, u64>,
    /// The target's circuit breaker.
    pub breaker: BreakerInfo,
}

/// `queue.list` result and `GET /api/v1/queues` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueList {
    /// Queues the caller may see, by name.
    pub queues: Vec<QueueInfo>,
}

/// Parameters naming a queue (`queue.pause`, `queue.resume`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRef {
    /// Agent id or `@handle` of the queue's target.
    pub name: String,
}

/// `schedule.create` parameters and `POST /api/v1/schedules` body: a task
/// dispatched on every occurrence of a cron expression (UTC).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScheduleParams {
    /// Agent id or `@handle` that runs the tasks.
    pub target: String,
    /// Five fields (minute hour day-of-month month day-of-week) or six with
    /// seconds first, in UTC.
    pub cron: String,
    /// Identifies the schedule for its target: registering the same name
    /// again replaces the definition and keeps the id. Default: derived from
    /// the cron expression, kind and payload, so registering the same
    /// schedule twice is a no-op.
    #[serde(default)]
    pub name: Option<String>,
    /// Kind of the tasks (default `task`).
    #[serde(default)]
    pub kind: Option<String>,
    /// Payload of the tasks.
    #[serde(default)]
    pub payload: Map<String, Value>,
    /// Attempts per task (default `tasks.max_attempts`).
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

/// A repeatable task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    /// `s_` + 16 hex digits, derived from the target and the name.
    pub schedule_id: String,
    /// See [`ScheduleParams::name`].
    pub name: String,
    /// Agent id that runs the tasks.
    pub target: String,
    /// The cron expression.
    pub cron: String,
    /// Kind of the tasks.
    pub kind: String,
    /// Payload of the tasks.
    pub payload: Map<String, Value>,
    /// Attempts per task.
    pub max_attempts: u32,
    /// Who registered it (dispatches as this agent).
    pub created_by: String,
    /// Registration time, ms.
    pub created_at: u64,
    /// The next occurrence, ms.
    pub next_run_at: u64,
    /// The task of the last occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_task_id: Option<String>,
}

/// `schedule.create` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleCreated {
    /// The schedule as stored.
    pub schedule: Schedule,
    /// False when it existed (the same definition, or replaced by name).
    pub created: bool,
}

/// `schedule.list` result and `GET /api/v1/schedules` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleList {
    /// Schedules the caller may see, by id.
    pub schedules: Vec<Schedule>,
}

/// Parameters naming a schedule (`schedule.delete`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRef {
    /// The schedule.
    pub schedule_id: String,
}
