//! Named counters and gauges of the guardrails, through the `metrics`
//! facade: the server installs a Prometheus recorder and serves `/metrics`;
//! without a recorder (tests, embedding) these calls cost next to nothing.

/// A request refused by a rate limiter (`scope`: per agent, per address).
pub fn rate_limited(scope: &str) {
    metrics::counter!("clawnet_rate_limited_total", "scope" => scope.to_owned()).increment(1);
}

/// A failed authentication (`reason`: missing, unknown_token).
pub fn auth_failure(reason: &'static str) {
    metrics::counter!("clawnet_auth_failures_total", "reason" => reason).increment(1);
}

/// An action refused by the authorization matrix or an ownership check.
pub fn policy_blocked() {
    metrics::counter!("clawnet_policy_blocked_total").increment(1);
}

/// A defender decision (`outcome`: allow, review, block, timeout) on an
/// item of `kind` (chat, task).
pub fn defender_decision(kind: &'static str, outcome: &'static str) {
    metrics::counter!("clawnet_defender_decisions_total", "kind" => kind, "outcome" => outcome)
        .increment(1);
}

/// Items the quarantine holds now.
pub fn quarantine_size(n: usize) {
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("clawnet_quarantine_items").set(n as f64);
}

use std::sync::atomic::{AtomicU64, Ordering};

/// Messages accepted (stored and published), all hubs of the process.
static MESSAGES: AtomicU64 = AtomicU64::new(0);
/// Frames queued to connections by fan-out.
static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// A message was stored and published. A plain atomic on the hot path; the
/// counter is exported at scrape time ([`crate::Hub::export_metrics`]).
pub(crate) fn message_accepted() {
    MESSAGES.fetch_add(1, Ordering::Relaxed);
}

/// `n` frames were queued to connections.
pub(crate) fn delivered(n: u64) {
    if n > 0 {
        DELIVERIES.fetch_add(n, Ordering::Relaxed);
    }
}

/// A task started running `wait_ms` after it became due.
pub(crate) fn task_started(wait_ms: u64) {
    #[allow(clippy::cast_precision_loss)]
    metrics::histogram!("clawnet_task_start_wait_seconds").record(wait_ms as f64 / 1000.0);
}

/// A task moved to `state` (started, completed, retried, failed, …).
pub(crate) fn task_transition(action: &str) {
    metrics::counter!("clawnet_task_transitions_total", "action" => action.to_owned()).increment(1);
}

impl crate::Hub {
    /// Bring the gauges and counters that are kept elsewhere up to date,
    /// just before `/metrics` renders: connections, messages, deliveries,
    /// tasks per state and queue depths.
    pub async fn export_metrics(&self) {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("clawnet_connections").set(self.connection_count() as f64);
        metrics::counter!("clawnet_messages_total").absolute(MESSAGES.load(Ordering::Relaxed));
        metrics::counter!("clawnet_deliveries_total").absolute(DELIVERIES.load(Ordering::Relaxed));
        let Ok(counts) = self.store().task_counts().await else {
            return;
        };
        let mut states: std::collections::BTreeMap<&'static str, u64> = Default::default();
        let mut depth: std::collections::BTreeMap<String, u64> = Default::default();
        for c in &counts {
            *states.entry(c.state.as_str()).or_default() += c.count;
            if matches!(
                c.state,
                clawnet_proto::TaskState::Queued | clawnet_proto::TaskState::Delayed
            ) {
                *depth.entry(c.target.clone()).or_default() += c.count;
            }
        }
        for s in clawnet_proto::TaskState::ALL {
            let n = states.get(s.as_str()).copied().unwrap_or(0);
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!("clawnet_tasks", "state" => s.as_str()).set(n as f64);
        }
        for (queue, n) in depth {
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!("clawnet_queue_depth", "queue" => queue).set(n as f64);
        }
    }
}
