//! Tasks (SPEC §5): dispatch, leases, results, retries with backoff, dead
//! letters with a redacted alert, and the worker slots of this node.
//!
//! Every transition is a compare-and-set on the task's `version`
//! ([`Store::update_task`]), so a late worker, the lease sweeper and another
//! node can race without moving a task twice. Claiming is driven by events
//! (a dispatch, a freed slot, a worker connecting) and by a sweep that picks
//! up delayed tasks that came due and leases that ran out.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use clawnet_proto::guard::HeldItem;
use clawnet_proto::methods::events;
use clawnet_proto::methods::{RoomCreateParams, SendParams};
use clawnet_proto::tasks::{
    DispatchParams, DispatchResult, ProgressParams, ProgressResult, ResultParams,
    TaskDispatchEvent, TaskList, TaskListParams, TaskOrigin, TaskUpdatedEvent,
};
use clawnet_proto::{Role, Task, TaskState, ToType};
use parking_lot::Mutex;
use serde_json::json;

use crate::backoff::retry_delay;
use crate::error::{Error, Result};
use crate::fanout::Conn;
use crate::frames::event_frame;
use crate::hub::{Hub, SYSTEM_AGENT};
use crate::store::{AuditEntry, TaskFilter, TaskInsert, TaskRecord};

/// Most tasks a list returns.
pub const MAX_LIST: usize = 1000;
const MAX_KIND_LEN: usize = 64;

/// One connection that takes tasks.
#[derive(Debug)]
struct Slot {
    conn: Arc<Conn>,
    concurrency: usize,
    running: usize,
}

/// A running attempt handed out by this node: where it runs and the task as
/// last written, so a result needs no store read.
#[derive(Debug)]
struct Leased {
    agent: String,
    conn: u64,
    rec: TaskRecord,
}

/// This node's worker connections, running leases and dispatch counters.
#[derive(Debug, Default)]
pub(crate) struct Workers {
    /// Agent id → its worker connections.
    slots: Mutex<HashMap<String, Vec<Slot>>>,
    /// Task id → (agent, connection id) running it here.
    leases: Mutex<HashMap<String, Leased>>,
    /// Dispatcher → times of its dispatches in the last minute.
    recent: Mutex<HashMap<String, VecDeque<u64>>>,
    /// Targets a claimer runs for on this node → whether it must look again.
    claiming: Mutex<HashMap<String, bool>>,
    /// Targets that may have queued tasks this node has not claimed. A
    /// finished attempt reads the queue only for these; the sweep reads
    /// every target with a free slot, which covers what this node cannot
    /// know (another node's dispatches, delayed tasks coming due).
    /// The value is a generation, bumped on every mark, so a reader that
    /// found the queue empty clears the mark only if nobody marked it since
    /// the read began.
    maybe_backlog: Mutex<HashMap<String, u64>>,
}

impl Workers {
    /// A connection with a free slot of `agent`, taken.
    fn take_slot(&self, agent: &str) -> Option<Arc<Conn>> {
        let mut slots = self.slots.lock();
        let list = slots.get_mut(agent)?;
        let s = list
            .iter_mut()
            .filter(|s| s.running < s.concurrency && s.conn.closing().is_none())
            .min_by_key(|s| s.running)?;
        s.running += 1;
        Some(s.conn.clone())
    }

    fn free_slot(&self, agent: &str, conn_id: u64) {
        if let Some(list) = self.slots.lock().get_mut(agent) {
            if let Some(s) = list.iter_mut().find(|s| s.conn.id == conn_id) {
                s.running = s.running.saturating_sub(1);
            }
        }
    }

    fn free_slots(&self, agent: &str) -> usize {
        self.slots.lock().get(agent).map_or(0, |l| {
            l.iter()
                .filter(|s| s.conn.closing().is_none())
                .map(|s| s.concurrency.saturating_sub(s.running))
                .sum()
        })
    }

    fn has_free_slot(&self, agent: &str) -> bool {
        self.slots
            .lock()
            .get(agent)
            .is_some_and(|l| l.iter().any(|s| s.running < s.concurrency))
    }

    fn mark_backlog(&self, target: &str) {
        *self
            .maybe_backlog
            .lock()
            .entry(target.to_owned())
            .or_default() += 1;
    }

    /// The current mark generation (0 when unmarked).
    fn backlog_generation(&self, target: &str) -> u64 {
        self.maybe_backlog.lock().get(target).copied().unwrap_or(0)
    }

    /// Clear the mark if it is still at `generation`.
    fn clear_backlog(&self, target: &str, generation: u64) {
        let mut all = self.maybe_backlog.lock();
        if all.get(target).copied().unwrap_or(0) == generation {
            all.remove(target);
        }
    }

    fn has_backlog(&self, target: &str) -> bool {
        self.maybe_backlog.lock().contains_key(target)
    }

    pub(crate) fn has_workers(&self) -> bool {
        !self.slots.lock().is_empty()
    }

    pub(crate) fn connected_agents(&self) -> Vec<String> {
        self.slots.lock().keys().cloned().collect()
    }

    fn agents_with_free_slots(&self) -> Vec<String> {
        self.slots
            .lock()
            .iter()
            .filter(|(_, l)| l.iter().any(|s| s.running < s.concurrency))
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// Record a dispatch by `who` at `now` unless `limit` per minute is
    /// reached; returns the count in the last minute when refused.
    fn admit_dispatch(
        &self,
        who: &str,
        now: u64,
        limit: u32,
    ) -> std::result::Result<(), (usize, u64)> {
        if limit == 0 {
            return Ok(());
        }
        let mut recent = self.recent.lock();
        let q = recent.entry(who.to_owned()).or_default();
        while q.front().is_some_and(|t| *t + 60_000 <= now) {
            q.pop_front();
        }
        if q.len() >= limit as usize {
            let retry = q.front().map_or(1000, |t| (t + 60_000).saturating_sub(now));
            return Err((q.len(), retry.max(1)));
        }
        q.push_back(now);
        Ok(())
    }

    /// Forget dispatchers idle for a minute (keeps the map bounded).
    fn prune(&self, now: u64) {
        self.recent
            .lock()
            .retain(|_, q| q.back().is_some_and(|t| *t + 60_000 > now));
    }
}

/// A list's `limit`: 1..=[`MAX_LIST`], 100 when absent; `invalid` otherwise.
fn list_limit(limit: Option<usize>) -> Result<usize> {
    crate::admin::page_limit(limit.map(|l| u32::try_from(l).unwrap_or(u32::MAX)))
}

impl Hub {
    /// A task's kind (default `task`; 1–64 bytes without control
    /// characters) and attempts (default `tasks.max_attempts`; 1–100), as
    /// dispatches and schedules give them.
    pub(crate) fn task_shape(
        &self,
        kind: Option<String>,
        max_attempts: Option<u32>,
    ) -> Result<(String, u32)> {
        let kind = kind.unwrap_or_else(|| "task".to_owned());
        if kind.is_empty() || kind.len() > MAX_KIND_LEN || kind.chars().any(char::is_control) {
            return Err(Error::invalid(
                "kind",
                format!("kind must be 1..={MAX_KIND_LEN} bytes without control characters"),
            ));
        }
        let max_attempts = max_attempts.unwrap_or(self.inner.cfg.tasks.max_attempts);
        if !(1..=100).contains(&max_attempts) {
            return Err(Error::invalid(
                "max_attempts",
                "max_attempts must be 1..=100",
            ));
        }
        Ok((kind, max_attempts))
    }
}

impl Hub {
    /// Dispatch a task to an agent. The result leaves after the task is
    /// stored; a `dedupe_key` of an active task of the same target returns
    /// that task instead.
    pub async fn dispatch(
        &self,
        actor: &str,
        p: DispatchParams,
        origin: Option<TaskOrigin>,
    ) -> Result<DispatchResult> {
        self.dispatch_as(actor, p, origin, true, true, None).await
    }

    /// [`Hub::dispatch`] sent on the connection `conn_id`: that connection
    /// is not sent the task's `queued` event, which would only repeat the
    /// answer it gets.
    pub async fn dispatch_via(
        &self,
        actor: &str,
        conn_id: u64,
        p: DispatchParams,
    ) -> Result<DispatchResult> {
        self.dispatch_as(actor, p, None, true, true, Some(conn_id))
            .await
    }

    /// [`Hub::dispatch`] without the defend step: a quarantined dispatch a
    /// reviewer approved.
    pub(crate) async fn dispatch_screened(
        &self,
        actor: &str,
        p: DispatchParams,
        origin: Option<TaskOrigin>,
    ) -> Result<DispatchResult> {
        self.dispatch_as(actor, p, origin, true, false, None).await
    }

    /// A dispatch by the hub on an agent's behalf (a schedule firing): not
    /// counted against the agent's dispatches per minute.
    pub(crate) async fn dispatch_unlimited(
        &self,
        actor: &str,
        p: DispatchParams,
        origin: Option<TaskOrigin>,
    ) -> Result<DispatchResult> {
        // The schedule's payload was screened when it was registered.
        self.dispatch_as(actor, p, origin, false, false, None).await
    }

    async fn dispatch_as(
        &self,
        actor: &str,
        p: DispatchParams,
        origin: Option<TaskOrigin>,
        rate_limited: bool,
        defend: bool,
        via: Option<u64>,
    ) -> Result<DispatchResult> {
        // The id orders equal-priority tasks that are due at once, so it is
        // taken before the first wait: dispatches a connection pipelines
        // (`ws.rs`) queue in the order they arrived.
        let arrived = self.now();
        let task_id = format!("t_{}", self.inner.ids.next(arrived));
        self.check_payload(&p.payload)?;
        crate::chat::check_key("dedupe_key", &p.dedupe_key)?;
        let (kind, max_attempts) = self.task_shape(p.kind.clone(), p.max_attempts)?;
        let cfg = &self.inner.cfg.tasks;
        let me = self.agent(actor).await?;
        let target = self.resolve_agent(&p.target).await?;
        if defend {
            self.defend(
                actor,
                "task",
                &p.payload,
                Some(|| HeldItem::Task {
                    params: p.clone(),
                    origin: origin.clone(),
                }),
            )
            .await?;
        }
        let now = arrived;
        let per_minute = self.inner.runtime.dispatches_per_minute();
        let max_pending = self.inner.runtime.max_pending();
        let limit = if rate_limited { per_minute } else { 0 };
        if let Err((count, retry)) = self.inner.workers.admit_dispatch(actor, now, limit) {
            return Err(Error::rate_limited(
                format!(
                    "dispatch limit reached: {count} dispatches in the last minute (limit {per_minute} per minute)"
                ),
                retry,
            ));
        }
        if max_pending > 0 {
            let pending = self
                .inner
                .store
                .count_tasks(&target.agent_id, &[TaskState::Queued, TaskState::Delayed])
                .await?;
            if pending >= u64::from(max_pending) {
                return Err(Error::rate_limited(
                    format!(
                        "{} has {pending} pending tasks (limit {max_pending} per target)",
                        target.handle
                    ),
                    1000,
                ));
            }
        }
        let run_at = p
            .run_at
            .or_else(|| p.delay_ms.map(|d| now.saturating_add(d)))
            .unwrap_or(now);
        let task = Task {
            task_id,
            target: target.agent_id.clone(),
            dispatched_by: me.agent_id.clone(),
            kind,
            payload: p.payload,
            dedupe_key: p.dedupe_key,
            state: if run_at > now {
                TaskState::Delayed
            } else {
                TaskState::Queued
            },
            attempts: 0,
            max_attempts,
            run_at,
            priority: p.priority.unwrap_or(0),
            result: None,
            error: None,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
            origin,
            backoff_base_ms: p.backoff_base_ms.unwrap_or(cfg.backoff_base_ms),
            backoff_cap_ms: p.backoff_cap_ms.unwrap_or(cfg.backoff_cap_ms),
        };
        let rec = TaskRecord {
            task,
            lease_id: None,
            lease_until: None,
            version: 0,
        };
        match self.inner.store.insert_task(rec).await? {
            TaskInsert::Existing(t) => Ok(DispatchResult {
                task: self.visible(&me.role, t.task),
                duplicate: true,
                note: None,
            }),
            TaskInsert::New(t) => {
                self.job_event(actor, "task.queued", &t.task).await;
                self.announce_except(&t.task, via).await;
                let note = self.hold_note(&t.task.target, &target.handle);
                if t.task.state == TaskState::Queued {
                    // Off the dispatcher's path: its ACK waits for the
                    // insert's commit only, not for the claim's as well
                    // (which capped a dispatching connection at half the
                    // rate).
                    let (hub, rec) = (self.clone(), t.clone());
                    tokio::spawn(async move {
                        let target = rec.task.target.clone();
                        if !hub.start_due_with(&target, Some(rec)).await {
                            hub.inner.workers.mark_backlog(&target);
                        }
                    });
                }
                Ok(DispatchResult {
                    task: self.visible(&me.role, t.task),
                    duplicate: false,
                    note,
                })
            }
        }
    }

    /// Why a new task of `target` will not start soon, if something holds it.
    fn hold_note(&self, target: &str, handle: &str) -> Option<String> {
        if self.inner.queues.is_paused(target) {
            return Some(format!(
                "the queue of {handle} is paused; the task waits in it until resumed"
            ));
        }
        let b =
            self.inner
                .queues
                .breaker(target, self.now(), self.inner.cfg.tasks.breaker_reset_ms);
        (b.state == clawnet_proto::tasks::BreakerState::Open).then(|| {
            format!(
                "the circuit breaker of {handle} is open after {} consecutive failures; \
                 the task waits in the queue until {} (then one trial runs)",
                b.failures,
                b.retry_at.unwrap_or(0)
            )
        })
    }

    /// One task, if the caller may see it.
    pub async fn task(&self, actor: &str, task_id: &str) -> Result<Task> {
        let (me, rec) = self.readable_task(actor, task_id).await?;
        Ok(self.visible(&me, rec.task))
    }

    /// Tasks the caller may see, by id.
    pub async fn tasks(&self, actor: &str, p: TaskListParams) -> Result<TaskList> {
        let me = self.agent(actor).await?;
        let limit = list_limit(p.limit)?;
        let recs = self
            .inner
            .store
            .list_tasks(TaskFilter {
                state: p.state,
                target: p.target,
                involving: (!me.role.reads_everything()).then(|| me.agent_id.clone()),
                after: p.after,
                limit: limit + 1,
            })
            .await?;
        let more = recs.len() > limit;
        let tasks: Vec<Task> = recs
            .into_iter()
            .take(limit)
            .map(|r| self.visible(&me.role, r.task))
            .collect();
        let next = more
            .then(|| tasks.last().map(|t| t.task_id.clone()))
            .flatten();
        Ok(TaskList { tasks, next })
    }

    /// Put a failed (dead-lettered) task back in its queue with fresh
    /// attempts. Master only (SPEC §6).
    pub async fn retry_task(&self, actor: &str, task_id: &str) -> Result<Task> {
        let me = self.agent(actor).await?;
        if me.role != Role::Master {
            return self
                .refuse(
                    actor,
                    "task.retry",
                    task_id,
                    "retrying a task needs the master role".into(),
                )
                .await;
        }
        let rec = self.stored_task(task_id).await?;
        if rec.task.state != TaskState::Failed {
            return Err(Error::conflict(format!(
                "only failed tasks can be retried; this one is {}",
                rec.task.state.as_str()
            )));
        }
        let now = self.now();
        let mut next = rec.clone();
        next.task.state = TaskState::Queued;
        next.task.attempts = 0;
        next.task.run_at = now;
        next.task.updated_at = now;
        next.task.finished_at = None;
        let t = self.transition(next).await?;
        self.job_event(actor, "task.requeued", &t.task).await;
        self.announce(&t.task).await;
        self.inner.workers.mark_backlog(&t.task.target);
        self.start_due(&t.task.target).await;
        Ok(t.task)
    }

    /// Cancel a queued or delayed task: its dispatcher or master.
    pub async fn cancel_task(&self, actor: &str, task_id: &str) -> Result<Task> {
        let (me, rec) = self.readable_task(actor, task_id).await?;
        if me != Role::Master && rec.task.dispatched_by != actor {
            return self
                .refuse(
                    actor,
                    "task.cancel",
                    task_id,
                    "only the dispatcher or master can cancel a task".into(),
                )
                .await;
        }
        if !matches!(rec.task.state, TaskState::Queued | TaskState::Delayed) {
            return Err(Error::conflict(format!(
                "only queued or delayed tasks can be cancelled; this one is {}",
                rec.task.state.as_str()
            )));
        }
        let now = self.now();
        let mut next = rec;
        next.task.state = TaskState::Cancelled;
        next.task.updated_at = now;
        next.task.finished_at = Some(now);
        let t = self.transition(next).await?;
        self.job_event(actor, "task.cancelled", &t.task).await;
        self.announce(&t.task).await;
        Ok(self.visible(&me, t.task))
    }

    /// A worker is still at a task: extend its lease.
    pub async fn task_progress(&self, actor: &str, p: ProgressParams) -> Result<ProgressResult> {
        let rec = self.leased(actor, &p.task_id, &p.lease_id).await?;
        let until = self.now() + self.inner.cfg.tasks.lease_ms;
        let mut next = rec;
        next.lease_until = Some(until);
        let t = self.transition(next).await?;
        if let Some(l) = self.inner.workers.leases.lock().get_mut(&t.task.task_id) {
            l.rec = t;
        }
        Ok(ProgressResult { lease_until: until })
    }

    /// A worker hands a task back without running it (it is shutting
    /// down): the task is queued again, and the attempt does not count.
    pub async fn task_release(&self, actor: &str, p: ProgressParams) -> Result<Task> {
        let rec = self.leased(actor, &p.task_id, &p.lease_id).await?;
        let now = self.now();
        let mut next = rec;
        next.task.state = TaskState::Queued;
        next.task.attempts = next.task.attempts.saturating_sub(1);
        next.task.updated_at = now;
        next.task.run_at = now;
        next.lease_id = None;
        next.lease_until = None;
        let t = self.transition(next).await?;
        self.inner.queues.unadmit(&t.task.target);
        self.job_event(actor, "task.released", &t.task).await;
        self.release(&t.task);
        self.announce(&t.task).await;
        self.inner.workers.mark_backlog(&t.task.target);
        self.start_due(&t.task.target).await;
        Ok(t.task.for_worker())
    }

    /// A worker reports the outcome of its attempt.
    pub async fn task_result(&self, actor: &str, p: ResultParams) -> Result<Task> {
        let rec = self.leased(actor, &p.task_id, &p.lease_id).await?;
        let now = self.now();
        let t = if p.ok {
            let mut next = rec;
            next.task.state = TaskState::Succeeded;
            next.task.result = Some(p.output.unwrap_or(serde_json::Value::Null));
            next.task.error = None;
            next.task.updated_at = now;
            next.task.finished_at = Some(now);
            next.lease_id = None;
            next.lease_until = None;
            let t = self.transition(next).await?;
            self.inner.queues.succeeded(&t.task.target);
            self.job_event(actor, "task.completed", &t.task).await;
            t
        } else {
            let error = p
                .error
                .unwrap_or_else(|| "the worker reported a failure".into());
            self.fail_attempt(rec, error, actor).await?
        };
        self.release(&t.task);
        self.announce(&t.task).await;
        if self.inner.workers.has_backlog(&t.task.target) {
            // Off the worker's path, so its next result is not held up.
            let (hub, target) = (self.clone(), t.task.target.clone());
            tokio::spawn(async move { hub.start_due(&target).await });
        }
        Ok(self.visible(&Role::Worker, t.task))
    }

    /// Take a connection's offer to run tasks (`connect {"worker": true}`),
    /// after its connect result and replay went out.
    pub async fn worker_ready(&self, conn: &Arc<Conn>, concurrency: usize) {
        conn.set_worker();
        let agent = conn.agent_id.to_string();
        self.inner
            .workers
            .slots
            .lock()
            .entry(agent.clone())
            .or_default()
            .push(Slot {
                conn: conn.clone(),
                concurrency: concurrency.max(1),
                running: 0,
            });
        self.start_due(&agent).await;
    }

    /// Forget a closed connection's slots. Its running tasks keep their
    /// leases: a worker that reconnects in time may still report them, and
    /// the lease sweep retries them otherwise.
    pub(crate) fn worker_gone(&self, conn: &Conn) {
        let mut slots = self.inner.workers.slots.lock();
        if let Some(list) = slots.get_mut(conn.agent_id.as_ref()) {
            list.retain(|s| s.conn.id != conn.id);
            if list.is_empty() {
                slots.remove(conn.agent_id.as_ref());
            }
        }
    }

    /// Background work: expired leases become failed attempts; delayed
    /// tasks that came due start where a slot is free.
    pub(crate) async fn sweep_tasks(&self) {
        let now = self.now();
        self.inner.workers.prune(now);
        if let Err(e) = self.load_paused().await {
            tracing::warn!(error = %e, "task sweep: cannot read paused queues");
        }
        if let Err(e) = self.fire_schedules().await {
            tracing::warn!(error = %e, "task sweep: cannot fire schedules");
        }
        match self.inner.store.expired_leases(now, 256).await {
            Ok(expired) => {
                for rec in expired {
                    let target = rec.task.target.clone();
                    match self
                        .fail_attempt(rec, "the lease expired before a result came".into(), "hub")
                        .await
                    {
                        Ok(t) => {
                            self.release(&t.task);
                            self.announce(&t.task).await;
                        }
                        Err(e) => tracing::debug!(error = %e, "lease expiry lost a race"),
                    }
                    self.start_due(&target).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "task sweep: cannot read leases"),
        }
        for agent in self.inner.workers.agents_with_free_slots() {
            self.start_due(&agent).await;
        }
    }

    /// Claim due tasks of `target` for its free worker slots on this node,
    /// unless its queue is paused or its breaker holds them.
    pub(crate) async fn start_due(&self, target: &str) {
        self.start_due_with(target, None).await;
    }

    /// [`Self::start_due`], trying `fresh` (a task just stored) first
    /// without reading the queue.
    ///
    /// One claimer per target runs on this node at a time; a call that
    /// finds one running asks it to look again and returns, so claims never
    /// wait on a lock and a burst of dispatches costs one claimer.
    ///
    /// Returns whether `fresh` was claimed.
    async fn start_due_with(&self, target: &str, fresh: Option<TaskRecord>) -> bool {
        let w = &self.inner.workers;
        if !w.has_free_slot(target) || self.inner.queues.is_paused(target) {
            return false;
        }
        {
            let mut claiming = w.claiming.lock();
            match claiming.get_mut(target) {
                Some(again) => {
                    *again = true;
                    // The running claimer reads the queue again and finds it.
                    return false;
                }
                None => {
                    claiming.insert(target.to_owned(), false);
                }
            }
        }
        let mut fresh = fresh;
        let mut fresh_claimed = false;
        loop {
            fresh_claimed |= self.claim_rounds(target, fresh.take()).await;
            let mut claiming = w.claiming.lock();
            match claiming.get_mut(target) {
                Some(again) if *again => *again = false,
                _ => {
                    claiming.remove(target);
                    return fresh_claimed;
                }
            }
        }
    }

    /// Claim due tasks while there are free slots; the claims of one round
    /// go to the store together, so they share a commit. Returns whether
    /// `fresh` was claimed.
    async fn claim_rounds(&self, target: &str, mut fresh: Option<TaskRecord>) -> bool {
        let w = &self.inner.workers;
        let reset = self.inner.cfg.tasks.breaker_reset_ms;
        let mut fresh_claimed = false;
        loop {
            let free = w.free_slots(target);
            if free == 0 || self.inner.queues.is_paused(target) {
                return fresh_claimed;
            }
            let now = self.now();
            let is_fresh = fresh.is_some();
            let due = match fresh.take() {
                Some(rec) => vec![rec],
                None => {
                    let want = free.min(64);
                    let generation = w.backlog_generation(target);
                    match self.inner.store.due_tasks(Some(target), now, want).await {
                        Ok(d) => {
                            if d.len() < want {
                                w.clear_backlog(target, generation);
                            }
                            d
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, target, "cannot read due tasks");
                            return fresh_claimed;
                        }
                    }
                }
            };
            if due.is_empty() {
                return fresh_claimed;
            }
            let mut claims = Vec::with_capacity(due.len());
            for rec in due {
                if !self.inner.queues.admit(target, now, reset) {
                    break;
                }
                let Some(conn) = w.take_slot(target) else {
                    self.inner.queues.unadmit(target);
                    break;
                };
                claims.push(self.claim(rec, conn, now));
            }
            if claims.is_empty() {
                return fresh_claimed;
            }
            let won = futures_util::future::join_all(claims).await;
            if is_fresh {
                fresh_claimed = won.first().copied().unwrap_or(false);
            }
            if !won.into_iter().any(|w| w) {
                // Every task went elsewhere (another node) or the store
                // failed; the next event or sweep looks again.
                return fresh_claimed;
            }
            if is_fresh && !w.has_backlog(target) {
                // Claimed what was just dispatched; nothing else is known
                // to wait.
                return fresh_claimed;
            }
        }
    }

    /// Move `rec` to running under a new lease and hand it to `conn`; false
    /// if the task moved on meanwhile (the slot is given back).
    async fn claim(&self, rec: TaskRecord, conn: Arc<Conn>, now: u64) -> bool {
        let w = &self.inner.workers;
        let target = rec.task.target.clone();
        let lease_id = crate::tokens::new_token_id();
        let mut next = rec;
        next.task.state = TaskState::Running;
        next.task.attempts += 1;
        next.task.started_at = Some(now);
        next.task.updated_at = now;
        next.lease_id = Some(lease_id.clone());
        next.lease_until = Some(now + self.inner.cfg.tasks.lease_ms);
        match self.inner.store.update_task(next).await {
            Ok(Some(t)) => {
                w.leases.lock().insert(
                    t.task.task_id.clone(),
                    Leased {
                        agent: target,
                        conn: conn.id,
                        rec: t.clone(),
                    },
                );
                let ev = TaskDispatchEvent {
                    task: t.task.clone().for_worker(),
                    lease_id,
                    lease_until: t.lease_until.unwrap_or(now),
                };
                conn.push(&event_frame(events::TASK_DISPATCH, None, &ev), now);
                self.job_event("hub", "task.started", &t.task).await;
                self.announce(&t.task).await;
                true
            }
            Ok(None) => {
                w.free_slot(&target, conn.id);
                self.inner.queues.unadmit(&target);
                false
            }
            Err(e) => {
                w.free_slot(&target, conn.id);
                self.inner.queues.unadmit(&target);
                tracing::warn!(error = %e, target, "cannot claim a task");
                false
            }
        }
    }

    /// A failed attempt: back to `delayed` with backoff, or `failed` for
    /// good (dead letter, alert) when the attempts are used up.
    async fn fail_attempt(
        &self,
        rec: TaskRecord,
        error: String,
        actor: &str,
    ) -> Result<TaskRecord> {
        let now = self.now();
        let target = rec.task.target.clone();
        let mut next = rec;
        next.task.error = Some(error);
        next.task.updated_at = now;
        next.lease_id = None;
        next.lease_until = None;
        let opened = self
            .inner
            .queues
            .failed(&target, now, self.inner.cfg.tasks.breaker_failures);
        if opened {
            self.audit(
                "task",
                actor,
                "breaker.open",
                &target,
                next.task.error.clone(),
                json!({"reset_ms": self.inner.cfg.tasks.breaker_reset_ms}),
            )
            .await;
        }
        if next.task.attempts < next.task.max_attempts {
            next.task.state = TaskState::Delayed;
            next.task.run_at = now
                + retry_delay(
                    next.task.attempts,
                    next.task.backoff_base_ms,
                    next.task.backoff_cap_ms,
                );
            let t = self.transition(next).await?;
            self.job_event(actor, "task.retried", &t.task).await;
            Ok(t)
        } else {
            next.task.state = TaskState::Failed;
            next.task.finished_at = Some(now);
            let t = self.transition(next).await?;
            self.job_event(actor, "task.failed", &t.task).await;
            self.alert_dead_letter(&t.task).await;
            Ok(t)
        }
    }

    /// Create the hub's own agent and the private alert room if they are
    /// missing (at start).
    pub(crate) async fn ensure_system_agent(&self) -> Result<()> {
        let store = &self.inner.store;
        if store.get_agent(SYSTEM_AGENT).await?.is_none() {
            store
                .insert_agent(crate::store::AgentRecord {
                    agent_id: SYSTEM_AGENT.to_owned(),
                    handle: SYSTEM_AGENT.to_owned(),
                    // Master, so it can post task notes into any room a
                    // command came from; it has no token.
                    role: Role::Master,
                    created_at: self.now(),
                    created_by: None,
                })
                .await?;
        }
        self.load_paused().await?;
        let room = self.inner.cfg.tasks.alert_room.clone();
        if store.get_room(&room).await?.is_none() {
            self.create_room(
                SYSTEM_AGENT,
                RoomCreateParams {
                    name: room,
                    private: true,
                    retention: None,
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Post a message as the hub's own agent.
    pub(crate) async fn post_as_hub(
        &self,
        room: &str,
        payload: serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        self.send(
            SYSTEM_AGENT,
            SendParams {
                to_type: ToType::Room,
                to_id: Some(room.to_owned()),
                payload,
                dedupe_key: None,
                thread_id: None,
                reply_to: None,
            },
        )
        .await
        .map(|_| ())
    }

    /// Run [`Hub::sweep_tasks`] every `tasks.sweep_ms` until the hub is dropped.
    pub fn spawn_task_sweeper(&self) -> tokio::task::JoinHandle<()> {
        let every = std::time::Duration::from_millis(self.inner.cfg.tasks.sweep_ms.max(10));
        self.spawn_every(every, |hub| async move { hub.sweep_tasks().await })
    }

    /// Post a redacted alert about a dead-lettered task to the alert room.
    async fn alert_dead_letter(&self, t: &Task) {
        let room = self.inner.cfg.tasks.alert_room.clone();
        let content = serde_json::to_string(&t.payload).unwrap_or_default();
        let text = format!(
            "task {} ({}) for {} failed after {} attempts: {}",
            t.task_id,
            t.kind,
            t.target,
            t.attempts,
            crate::redact::redact_alert(t.error.as_deref().unwrap_or("")),
        );
        let mut payload = serde_json::Map::new();
        payload.insert("text".into(), text.into());
        payload.insert("task_id".into(), t.task_id.clone().into());
        payload.insert("alert".into(), "task.failed".into());
        payload.insert(
            "content".into(),
            crate::redact::redact_alert(&content).into(),
        );
        if let Err(e) = self.post_as_hub(&room, payload).await {
            tracing::warn!(error = %e, room, "cannot post a task alert");
        }
    }

    /// The stored task, or `not_found`.
    async fn stored_task(&self, task_id: &str) -> Result<TaskRecord> {
        self.inner
            .store
            .get_task(task_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no task '{task_id}'")))
    }

    /// The caller's role and the task, if the caller may see it: master and
    /// warden always, a worker if it dispatched or runs it.
    async fn readable_task(&self, actor: &str, task_id: &str) -> Result<(Role, TaskRecord)> {
        let me = self.agent(actor).await?;
        let rec = self.stored_task(task_id).await?;
        if me.role.reads_everything() || rec.task.target == actor || rec.task.dispatched_by == actor
        {
            return Ok((me.role, rec));
        }
        self.refuse(
            actor,
            "task.get",
            task_id,
            "a worker sees only tasks it dispatched or runs".into(),
        )
        .await
    }

    /// The task `actor` holds the lease `lease_id` of, running.
    async fn leased(&self, actor: &str, task_id: &str, lease_id: &str) -> Result<TaskRecord> {
        let cached = self
            .inner
            .workers
            .leases
            .lock()
            .get(task_id)
            .filter(|l| l.rec.lease_id.as_deref() == Some(lease_id) && l.agent == actor)
            .map(|l| l.rec.clone());
        // A stale copy (another node moved the task) fails its
        // compare-and-set, which answers `conflict` as a store read would.
        let rec = match cached {
            Some(r) => r,
            None => self.stored_task(task_id).await?,
        };
        if rec.task.target != actor {
            return self
                .refuse(
                    actor,
                    "task.result",
                    task_id,
                    "this task is not yours".into(),
                )
                .await;
        }
        if rec.task.state != TaskState::Running || rec.lease_id.as_deref() != Some(lease_id) {
            return Err(Error::conflict(
                "this lease is over (expired, or the task moved on); the result is not recorded",
            ));
        }
        Ok(rec)
    }

    /// Store a transition made from `next.version`; `conflict` if the task
    /// moved on meanwhile.
    async fn transition(&self, next: TaskRecord) -> Result<TaskRecord> {
        self.inner
            .store
            .update_task(next)
            .await?
            .ok_or_else(|| Error::conflict("the task changed meanwhile; read it again"))
    }

    /// Free the worker slot a finished attempt held on this node.
    fn release(&self, t: &Task) {
        let held = self.inner.workers.leases.lock().remove(&t.task_id);
        if let Some(l) = held {
            self.inner.workers.free_slot(&l.agent, l.conn);
        }
    }

    /// Tell the dispatcher and the target that a task changed, and the room
    /// its command came from.
    pub(crate) async fn announce(&self, t: &Task) {
        self.announce_except(t, None).await;
    }

    /// [`Self::announce`], skipping the connection `except` (the one whose
    /// request caused the change and whose answer says so).
    async fn announce_except(&self, t: &Task, except: Option<u64>) {
        self.note_task(t).await;
        let mut to = vec![t.target.as_str()];
        if t.dispatched_by != t.target {
            to.push(t.dispatched_by.as_str());
        }
        // A worker connection of the target learns `running` from its
        // `task.dispatch`, `succeeded` from the answer to its own
        // `task.result`, and `queued` from the `task.dispatch` that follows:
        // those three would be a third of the frames per task. It still
        // hears `delayed`/`failed` (a lease that expired under it) and
        // `cancelled`.
        let echo = matches!(
            t.state,
            TaskState::Queued | TaskState::Running | TaskState::Succeeded
        );
        let mut listeners = Vec::new();
        for agent in to {
            let skip_workers = echo && agent == t.target && t.dispatched_by != t.target;
            listeners.extend(
                self.inner
                    .fanout
                    .connections_of(agent)
                    .into_iter()
                    .filter(|c| !(skip_workers && c.is_worker()) && Some(c.id) != except),
            );
        }
        // Most transitions of a busy queue have nobody to tell (the worker
        // knows, the dispatcher is gone): serialize the task only when
        // someone listens.
        if listeners.is_empty() {
            return;
        }
        let ev = TaskUpdatedEvent {
            task: t.clone().for_worker(),
        };
        let frame = event_frame(events::TASK_UPDATED, None, &ev);
        let now = self.now();
        for c in listeners {
            c.push(&frame, now);
        }
    }

    /// The task as `role` may see it.
    fn visible(&self, role: &Role, t: Task) -> Task {
        if role.reads_everything() {
            t
        } else {
            t.for_worker()
        }
    }

    /// A job event in the audit trail (`type` = `task`).
    ///
    /// Handed to the audit writer like every other entry (see `audit.rs`):
    /// a transition waits for a place in its queue, not for a commit, which
    /// would halve the task throughput.
    async fn job_event(&self, actor: &str, action: &str, t: &Task) {
        crate::metrics::task_transition(action);
        if action == "task.started" {
            crate::metrics::task_started(self.now().saturating_sub(t.run_at.max(t.created_at)));
        }
        let entry = AuditEntry {
            id: 0,
            ts: self.now(),
            kind: "task".into(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: t.task_id.clone(),
            reason: t.error.clone().filter(|_| action != "task.completed"),
            meta: json!({
                "target": t.target,
                "dispatched_by": t.dispatched_by,
                "kind": t.kind,
                "state": t.state.as_str(),
                "attempts": t.attempts,
            }),
            prev_hash: String::new(),
            hash: String::new(),
        };
        self.inner.audit.append(entry).await;
    }
}
