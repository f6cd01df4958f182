//! Limits and timings of the hub, with the defaults of SPEC §3–4.

/// Hub settings. Loaded and validated by the binary; tests build it directly.
#[derive(Debug, Clone, PartialEq)]
pub struct HubConfig {
    /// Largest chat payload, as serialized JSON, in bytes.
    pub max_payload_bytes: usize,
    /// Deepest JSON nesting accepted in a payload.
    pub max_json_depth: usize,
    /// Messages kept per room by the in-memory store.
    pub retention_messages: u32,
    /// A retried send with the same dedupe key inside this window is answered
    /// with the original.
    pub dedupe_window_ms: u64,
    /// Most dedupe keys remembered at once (oldest forgotten first).
    pub dedupe_max_entries: usize,
    /// Frames queued per connection before it is cut off as a slow consumer.
    pub outbound_queue: usize,
    /// No request for this long makes an agent `idle`.
    pub idle_after_ms: u64,
    /// Clients should send a frame at least this often.
    pub heartbeat_interval_ms: u64,
    /// No frame for this long closes the connection (agent goes `offline`).
    pub heartbeat_timeout_ms: u64,
    /// A connection must send `connect` within this time.
    pub handshake_timeout_ms: u64,
    /// One typing event per agent and room per this interval.
    pub typing_min_interval_ms: u64,
    /// Largest `limit` accepted by history reads.
    pub history_max_limit: u32,
    /// How often presence, heartbeats and expiring state are checked.
    pub sweep_interval_ms: u64,
    /// Messages older than this are removed by the retention sweep.
    pub retention_ms: u64,
    /// How often the retention sweep runs.
    pub retention_sweep_ms: u64,
    /// How often acknowledged cursors are written to the store.
    pub cursor_flush_ms: u64,
    /// Task defaults and limits.
    pub tasks: TaskConfig,
    /// The audit trail's JSONL file (appended; its directories are created).
    /// `None`: the audit trail goes to the store only.
    pub audit_file: Option<std::path::PathBuf>,
    /// The defender and its quarantine.
    pub defender: crate::defense::DefenderSettings,
    /// Files whose hashes are re-checked while the hub runs (the binary,
    /// the configuration); a change raises an alert.
    pub integrity: crate::integrity::IntegritySettings,
}

/// Task defaults and limits (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskConfig {
    /// A running attempt without `task.progress` or `task.result` for this
    /// long has failed.
    pub lease_ms: u64,
    /// Attempts before a task fails for good (per-task overridable).
    pub max_attempts: u32,
    /// First retry delay (doubles per failed attempt).
    pub backoff_base_ms: u64,
    /// Longest retry delay.
    pub backoff_cap_ms: u64,
    /// Dispatches per minute per dispatcher; 0 = unlimited.
    pub dispatches_per_minute: u32,
    /// Queued plus delayed tasks per target at most; 0 = unlimited.
    pub max_pending: u32,
    /// Tasks a worker connection runs at once unless it asks for another number.
    pub worker_concurrency: usize,
    /// How often expired leases and due delayed tasks are looked for.
    pub sweep_ms: u64,
    /// Room that dead-letter alerts are posted to (private; created at start).
    pub alert_room: String,
    /// Consecutive failed attempts that open a target's circuit breaker
    /// (0 = never).
    pub breaker_failures: u32,
    /// How long an open breaker waits before letting one trial task start.
    pub breaker_reset_ms: u64,
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self {
            lease_ms: 30_000,
            max_attempts: 5,
            backoff_base_ms: 5_000,
            backoff_cap_ms: 60_000,
            dispatches_per_minute: 10,
            max_pending: 50,
            worker_concurrency: 1,
            sweep_ms: 250,
            alert_room: "alerts".into(),
            breaker_failures: 5,
            breaker_reset_ms: 30_000,
        }
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: 64 * 1024,
            max_json_depth: 32,
            retention_messages: 1000,
            dedupe_window_ms: 10 * 60 * 1000,
            dedupe_max_entries: 100_000,
            outbound_queue: 8192,
            idle_after_ms: 5 * 60 * 1000,
            heartbeat_interval_ms: 15_000,
            heartbeat_timeout_ms: 45_000,
            handshake_timeout_ms: 10_000,
            typing_min_interval_ms: 500,
            history_max_limit: 1000,
            sweep_interval_ms: 1000,
            retention_ms: 30 * 24 * 3600 * 1000,
            retention_sweep_ms: 60_000,
            cursor_flush_ms: 100,
            tasks: TaskConfig::default(),
            audit_file: None,
            defender: crate::defense::DefenderSettings::default(),
            integrity: crate::integrity::IntegritySettings::default(),
        }
    }
}
