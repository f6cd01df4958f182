//! Queue control and visibility: pausing a target's queue, queue counts,
//! per-agent activity, and the per-target circuit breaker.
//!
//! A queue is the set of tasks of one target agent, named by its id. The
//! paused set is one setting (`tasks.paused`, a list of queue names) so it is
//! durable on every store; each node re-reads it on its task sweep. Breakers
//! live in this node's memory: after a restart every breaker starts closed.

use std::collections::{BTreeMap, HashMap, HashSet};

use clawnet_proto::tasks::{
    ActivityEntry, ActivityList, AgentStatus, BreakerInfo, BreakerState, QueueInfo, QueueList,
};
use clawnet_proto::{Role, TaskState};
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::hub::{Hub, SYSTEM_AGENT};
use crate::store::TaskFilter;

const PAUSED_KEY: &str = "tasks.paused";

/// One target's breaker.
#[derive(Debug, Clone, Copy, Default)]
struct Breaker {
    failures: u32,
    opened_at: Option<u64>,
    /// A half-open breaker lets one trial task start.
    trial_running: bool,
}

/// Paused queues and breakers of this node.
#[derive(Debug, Default)]
pub(crate) struct QueueState {
    /// Serializes read-modify-write of the task settings (paused set,
    /// schedules) on this node.
    pub(crate) edit: tokio::sync::Mutex<()>,
    paused: RwLock<HashSet<String>>,
    breakers: Mutex<HashMap<String, Breaker>>,
}

impl QueueState {
    pub(crate) fn is_paused(&self, target: &str) -> bool {
        self.paused.read().contains(target)
    }

    fn info(b: &Breaker, now: u64, reset_ms: u64) -> BreakerInfo {
        let state = match b.opened_at {
            None => BreakerState::Closed,
            Some(at) if now < at + reset_ms => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        };
        BreakerInfo {
            state,
            failures: b.failures,
            opened_at: b.opened_at,
            retry_at: b.opened_at.map(|at| at + reset_ms),
        }
    }

    pub(crate) fn breaker(&self, target: &str, now: u64, reset_ms: u64) -> BreakerInfo {
        let b = self
            .breakers
            .lock()
            .get(target)
            .copied()
            .unwrap_or_default();
        Self::info(&b, now, reset_ms)
    }

    /// Whether a task of `target` may start now; a half-open breaker admits
    /// one trial at a time.
    pub(crate) fn admit(&self, target: &str, now: u64, reset_ms: u64) -> bool {
        let mut all = self.breakers.lock();
        let Some(b) = all.get_mut(target) else {
            return true;
        };
        match Self::info(b, now, reset_ms).state {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen if b.trial_running => false,
            BreakerState::HalfOpen => {
                b.trial_running = true;
                true
            }
        }
    }

    /// A claim that was admitted did not happen after all.
    pub(crate) fn unadmit(&self, target: &str) {
        if let Some(b) = self.breakers.lock().get_mut(target) {
            b.trial_running = false;
        }
    }

    /// An attempt succeeded: the breaker closes.
    pub(crate) fn succeeded(&self, target: &str) {
        self.breakers.lock().remove(target);
    }

    /// An attempt failed: count it; at `threshold` (0 = never) the breaker
    /// opens, and a failed trial re-opens it. Returns true when it opened now.
    pub(crate) fn failed(&self, target: &str, now: u64, threshold: u32) -> bool {
        if threshold == 0 {
            return false;
        }
        let mut all = self.breakers.lock();
        let b = all.entry(target.to_owned()).or_default();
        b.failures += 1;
        let reopen = b.trial_running;
        b.trial_running = false;
        if reopen || (b.opened_at.is_none() && b.failures >= threshold) {
            b.opened_at = Some(now);
            return true;
        }
        false
    }
}

impl Hub {
    /// Read the paused set from the store (at start and on every sweep, so
    /// a pause on another node takes effect here too).
    pub(crate) async fn load_paused(&self) -> Result<()> {
        let names: Vec<String> = match self.inner.store.get_setting(PAUSED_KEY).await? {
            Some(v) => serde_json::from_value(v).unwrap_or_default(),
            None => Vec::new(),
        };
        *self.inner.queues.paused.write() = names.into_iter().collect();
        Ok(())
    }

    /// Pause (or resume) the queue of target `name`: master only (SPEC §6).
    pub async fn set_queue_paused(
        &self,
        actor: &str,
        name: &str,
        paused: bool,
    ) -> Result<QueueInfo> {
        let action = if paused {
            "queue.pause"
        } else {
            "queue.resume"
        };
        let me = self.agent(actor).await?;
        let target = self.resolve_agent(name).await?;
        if me.role != Role::Master {
            return self
                .refuse(
                    actor,
                    action,
                    &target.agent_id,
                    format!("{action} needs the master role"),
                )
                .await;
        }
        // Read-modify-write of one setting; serialized on this node.
        let edit_guard = self.inner.queues.edit.lock().await;
        self.load_paused().await?;
        let mut set: Vec<String> = self.inner.queues.paused.read().iter().cloned().collect();
        set.retain(|n| n != &target.agent_id);
        if paused {
            set.push(target.agent_id.clone());
        }
        set.sort();
        self.inner.store.set_setting(PAUSED_KEY, json!(set)).await?;
        *self.inner.queues.paused.write() = set.into_iter().collect();
        drop(edit_guard);
        self.audit("task", actor, action, &target.agent_id, None, Value::Null)
            .await;
        if !paused {
            self.start_due(&target.agent_id).await;
        }
        let queues = self.queues(actor).await?;
        queues
            .queues
            .into_iter()
            .find(|q| q.name == target.agent_id)
            .ok_or_else(|| Error::not_found(format!("no queue '{name}'")))
    }

    /// Queues with counts per state: every agent that has tasks or a worker
    /// connection. Workers see only their own queue.
    pub async fn queues(&self, actor: &str) -> Result<QueueList> {
        let me = self.agent(actor).await?;
        let now = self.now();
        let reset = self.inner.cfg.tasks.breaker_reset_ms;
        let mut by: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for c in self.inner.store.task_counts().await? {
            *by.entry(c.target)
                .or_default()
                .entry(c.state.as_str().to_owned())
                .or_default() += c.count;
        }
        for a in self.inner.workers.connected_agents() {
            by.entry(a).or_default();
        }
        for p in self.inner.queues.paused.read().iter() {
            by.entry(p.clone()).or_default();
        }
        let mut out = Vec::new();
        for (name, mut counts) in by {
            if !me.role.reads_everything() && name != me.agent_id {
                continue;
            }
            for s in TaskState::ALL {
                counts.entry(s.as_str().to_owned()).or_insert(0);
            }
            let handle = self
                .agent(&name)
                .await
                .map_or(name.clone(), |a| a.handle.clone());
            out.push(QueueInfo {
                paused: self.inner.queues.is_paused(&name),
                breaker: self.inner.queues.breaker(&name, now, reset),
                name,
                handle,
                counts,
            });
        }
        Ok(QueueList { queues: out })
    }

    /// Per agent: offline, idle or working, with queue depth and breaker.
    /// Master and warden see every agent; a worker sees itself.
    pub async fn activity(&self, actor: &str) -> Result<ActivityList> {
        let me = self.agent(actor).await?;
        let all = me.role.reads_everything();
        self.activity_where(|a| all || a == me.agent_id).await
    }

    /// Activity of the agents `show` accepts (no visibility check).
    pub(crate) async fn activity_where(&self, show: impl Fn(&str) -> bool) -> Result<ActivityList> {
        let now = self.now();
        let reset = self.inner.cfg.tasks.breaker_reset_ms;
        let mut waiting: HashMap<String, u64> = HashMap::new();
        let mut running: HashMap<String, u64> = HashMap::new();
        for c in self.inner.store.task_counts().await? {
            match c.state {
                TaskState::Queued | TaskState::Delayed => {
                    *waiting.entry(c.target).or_default() += c.count
                }
                TaskState::Running => *running.entry(c.target).or_default() += c.count,
                _ => {}
            }
        }
        let mut out = Vec::new();
        for a in self.inner.store.list_agents().await? {
            if a.agent_id == SYSTEM_AGENT || !show(&a.agent_id) {
                continue;
            }
            let n_running = running.get(&a.agent_id).copied().unwrap_or(0);
            let working_on = if n_running > 0 {
                self.inner
                    .store
                    .list_tasks(TaskFilter {
                        state: Some(TaskState::Running),
                        target: Some(a.agent_id.clone()),
                        limit: 20,
                        ..Default::default()
                    })
                    .await?
                    .into_iter()
                    .map(|t| t.task.task_id)
                    .collect()
            } else {
                Vec::new()
            };
            let connected = !self.inner.fanout.connections_of(&a.agent_id).is_empty();
            let status = if n_running > 0 {
                AgentStatus::Working
            } else if connected {
                AgentStatus::Idle
            } else {
                AgentStatus::Offline
            };
            out.push(ActivityEntry {
                status,
                running: n_running,
                queued: waiting.get(&a.agent_id).copied().unwrap_or(0),
                working_on,
                paused: self.inner.queues.is_paused(&a.agent_id),
                breaker: self.inner.queues.breaker(&a.agent_id, now, reset),
                agent_id: a.agent_id,
                handle: a.handle,
            });
        }
        Ok(ActivityList { agents: out })
    }
}
