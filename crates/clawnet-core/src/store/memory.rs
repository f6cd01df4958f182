//! The default store: everything in process memory, nothing to install.
//!
//! Locks are `parking_lot` mutexes held for a few map operations and never
//! across an `.await`. Room logs have a lock each so sends to different rooms
//! do not contend; the dedupe table is sharded for the same reason.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use clawnet_proto::{Envelope, Role, TaskState};
use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use super::dedupe::{DedupeKey, DedupeWindow};
use super::{
    AgentRecord, AppendLimits, Appended, AuditEntry, AuditFilter, HistoryPage, MessageDraft,
    RoomRecord, Store, TaskCount, TaskFilter, TaskInsert, TaskRecord, TokenRecord,
};
use crate::error::{Error, Result};

const DEDUPE_SHARDS: usize = 16;
/// The memory store keeps this many audit entries; older ones fall off (the
/// durable stores keep them all).
const AUDIT_KEEP: usize = 100_000;

#[derive(Debug, Default)]
struct Identity {
    agents: BTreeMap<String, AgentRecord>,
    handles: HashMap<String, String>,
    tokens: HashMap<String, TokenRecord>,
}

#[derive(Debug, Default)]
struct RoomLog {
    msgs: VecDeque<Arc<Envelope>>,
    last_seq: u64,
}

impl RoomLog {
    fn first_seq(&self) -> u64 {
        self.msgs.front().map_or(0, |m| m.seq)
    }
}

#[derive(Debug, Default)]
struct Membership {
    by_room: HashMap<String, BTreeSet<String>>,
    by_agent: HashMap<String, BTreeSet<String>>,
}

/// The original of each key is kept serialized: an `Envelope` costs several
/// times its JSON, and up to `dedupe_max_entries` of them outlive the room
/// log.
type DedupeShard = DedupeWindow<Box<str>>;

/// In-memory [`Store`]. Retention is by count per room.
#[derive(Debug)]
pub struct MemoryStore {
    identity: RwLock<Identity>,
    rooms: RwLock<BTreeMap<String, RoomRecord>>,
    logs: RwLock<HashMap<String, Arc<Mutex<RoomLog>>>>,
    members: RwLock<Membership>,
    dedupe: Vec<Mutex<DedupeShard>>,
    cursors: Mutex<HashMap<String, HashMap<String, u64>>>,
    audit: Mutex<(u64, VecDeque<AuditEntry>)>,
    settings: Mutex<BTreeMap<String, Value>>,
    /// Tasks by id (ids sort by creation time).
    tasks: Mutex<BTreeMap<String, TaskRecord>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            identity: RwLock::default(),
            rooms: RwLock::default(),
            logs: RwLock::default(),
            members: RwLock::default(),
            dedupe: (0..DEDUPE_SHARDS).map(|_| Mutex::default()).collect(),
            cursors: Mutex::default(),
            audit: Mutex::default(),
            settings: Mutex::default(),
            tasks: Mutex::default(),
        }
    }

    fn log(&self, room: &str) -> Arc<Mutex<RoomLog>> {
        if let Some(l) = self.logs.read().get(room) {
            return l.clone();
        }
        self.logs
            .write()
            .entry(room.to_owned())
            .or_default()
            .clone()
    }

    fn shard(&self, key: &DedupeKey) -> &Mutex<DedupeShard> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.dedupe[(h.finish() as usize) % DEDUPE_SHARDS]
    }

    fn push(log: &Mutex<RoomLog>, draft: MessageDraft, retention: u32) -> Arc<Envelope> {
        let mut log = log.lock();
        log.last_seq += 1;
        let env = Arc::new(draft.into_envelope(log.last_seq));
        log.msgs.push_back(env.clone());
        while log.msgs.len() > retention.max(1) as usize {
            log.msgs.pop_front();
        }
        env
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn insert_agent(&self, agent: AgentRecord) -> Result<()> {
        let mut id = self.identity.write();
        if id.agents.contains_key(&agent.agent_id) {
            return Err(Error::conflict(format!(
                "agent id '{}' is taken",
                agent.agent_id
            )));
        }
        let handle = agent.handle.to_ascii_lowercase();
        if id.handles.contains_key(&handle) {
            return Err(Error::conflict(format!("handle '{handle}' is taken")));
        }
        id.handles.insert(handle, agent.agent_id.clone());
        id.agents.insert(agent.agent_id.clone(), agent);
        Ok(())
    }

    async fn get_agent(&self, agent_id: &str) -> Result<Option<AgentRecord>> {
        Ok(self.identity.read().agents.get(agent_id).cloned())
    }

    async fn find_agent_by_handle(&self, handle: &str) -> Result<Option<AgentRecord>> {
        let id = self.identity.read();
        Ok(id
            .handles
            .get(&handle.to_ascii_lowercase())
            .and_then(|a| id.agents.get(a))
            .cloned())
    }

    async fn list_agents(&self) -> Result<Vec<AgentRecord>> {
        Ok(self.identity.read().agents.values().cloned().collect())
    }

    async fn set_handle(&self, agent_id: &str, handle: &str) -> Result<String> {
        let handle = handle.to_ascii_lowercase();
        let mut id = self.identity.write();
        let Some(old) = id.agents.get(agent_id).map(|a| a.handle.clone()) else {
            return Err(Error::not_found(format!("no agent '{agent_id}'")));
        };
        match id.handles.get(&handle) {
            Some(holder) if holder != agent_id => {
                return Err(Error::conflict(format!("handle '{handle}' is taken")))
            }
            _ => {}
        }
        id.handles.remove(&old);
        id.handles.insert(handle.clone(), agent_id.to_owned());
        if let Some(a) = id.agents.get_mut(agent_id) {
            a.handle = handle;
        }
        Ok(old)
    }

    async fn set_role(&self, agent_id: &str, role: Role) -> Result<Option<Role>> {
        let mut id = self.identity.write();
        Ok(id
            .agents
            .get_mut(agent_id)
            .map(|a| std::mem::replace(&mut a.role, role)))
    }

    async fn remove_agent(&self, agent_id: &str) -> Result<bool> {
        {
            let mut id = self.identity.write();
            let Some(a) = id.agents.remove(agent_id) else {
                return Ok(false);
            };
            id.handles.remove(&a.handle.to_ascii_lowercase());
            id.tokens.retain(|_, t| t.agent_id != agent_id);
        }
        {
            let mut m = self.members.write();
            if let Some(rooms) = m.by_agent.remove(agent_id) {
                for r in rooms {
                    if let Some(s) = m.by_room.get_mut(&r) {
                        s.remove(agent_id);
                    }
                }
            }
        }
        self.cursors.lock().remove(agent_id);
        Ok(true)
    }

    async fn insert_token(&self, token: TokenRecord) -> Result<()> {
        self.identity
            .write()
            .tokens
            .insert(token.hash.clone(), token);
        Ok(())
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        Ok(self.identity.read().tokens.get(hash).cloned())
    }

    async fn list_tokens(&self, agent_id: &str) -> Result<Vec<TokenRecord>> {
        let mut v: Vec<_> = self
            .identity
            .read()
            .tokens
            .values()
            .filter(|t| t.agent_id == agent_id)
            .cloned()
            .collect();
        v.sort_by_key(|t| t.created_at);
        Ok(v)
    }

    async fn revoke_tokens(&self, agent_id: &str, token_id: Option<&str>) -> Result<Vec<String>> {
        let mut id = self.identity.write();
        let mut revoked = Vec::new();
        id.tokens.retain(|_, t| {
            let hit = t.agent_id == agent_id && token_id.is_none_or(|tid| tid == t.token_id);
            if hit {
                revoked.push(t.token_id.clone());
            }
            !hit
        });
        Ok(revoked)
    }

    async fn create_room(&self, room: RoomRecord) -> Result<()> {
        let mut rooms = self.rooms.write();
        if rooms.contains_key(&room.name) {
            return Err(Error::conflict(format!("room '{}' exists", room.name)));
        }
        rooms.insert(room.name.clone(), room);
        Ok(())
    }

    async fn get_room(&self, name: &str) -> Result<Option<RoomRecord>> {
        Ok(self.rooms.read().get(name).cloned())
    }

    async fn list_rooms(&self) -> Result<Vec<RoomRecord>> {
        Ok(self.rooms.read().values().cloned().collect())
    }

    async fn add_member(&self, room: &str, agent_id: &str) -> Result<bool> {
        let mut m = self.members.write();
        let added = m
            .by_room
            .entry(room.to_owned())
            .or_default()
            .insert(agent_id.to_owned());
        m.by_agent
            .entry(agent_id.to_owned())
            .or_default()
            .insert(room.to_owned());
        Ok(added)
    }

    async fn remove_member(&self, room: &str, agent_id: &str) -> Result<bool> {
        let mut m = self.members.write();
        let removed = m.by_room.get_mut(room).is_some_and(|s| s.remove(agent_id));
        if let Some(s) = m.by_agent.get_mut(agent_id) {
            s.remove(room);
        }
        Ok(removed)
    }

    async fn members(&self, room: &str) -> Result<Vec<String>> {
        Ok(self
            .members
            .read()
            .by_room
            .get(room)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn is_member(&self, room: &str, agent_id: &str) -> Result<bool> {
        Ok(self
            .members
            .read()
            .by_room
            .get(room)
            .is_some_and(|s| s.contains(agent_id)))
    }

    async fn rooms_of(&self, agent_id: &str) -> Result<Vec<String>> {
        Ok(self
            .members
            .read()
            .by_agent
            .get(agent_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn delete_room(&self, name: &str) -> Result<bool> {
        if self.rooms.write().remove(name).is_none() {
            return Ok(false);
        }
        self.logs.write().remove(name);
        {
            let mut m = self.members.write();
            if let Some(agents) = m.by_room.remove(name) {
                for a in agents {
                    if let Some(s) = m.by_agent.get_mut(&a) {
                        s.remove(name);
                    }
                }
            }
        }
        for c in self.cursors.lock().values_mut() {
            c.remove(name);
        }
        Ok(true)
    }

    async fn append_message(&self, draft: MessageDraft, limits: AppendLimits) -> Result<Appended> {
        let log = self.log(&draft.room);
        let Some(key) = draft.dedupe_key.clone() else {
            return Ok(Appended::New(Self::push(&log, draft, limits.retention)));
        };
        let key = (draft.from_id.clone(), key);
        let now = draft.ts;
        let cap = (limits.dedupe_max_entries / DEDUPE_SHARDS).max(1);
        // The shard lock is held across the append so two concurrent retries
        // with the same key cannot both store.
        let mut shard = self.shard(&key).lock();
        shard.expire(now, limits.dedupe_window_ms, cap);
        if let Some(json) = shard.get(&key) {
            let env: Envelope = serde_json::from_str(json)
                .map_err(|e| Error::unavailable(format!("dedupe entry unreadable: {e}")))?;
            return Ok(Appended::Duplicate(Arc::new(env)));
        }
        let env = Self::push(&log, draft, limits.retention);
        let json = serde_json::to_string(&*env).map_err(Error::unavailable)?;
        shard.insert(key, now, json.into_boxed_str());
        shard.expire(now, limits.dedupe_window_ms, cap);
        Ok(Appended::New(env))
    }

    async fn history(&self, room: &str, after_seq: u64, limit: usize) -> Result<HistoryPage> {
        let Some(log) = self.logs.read().get(room).cloned() else {
            return Ok(HistoryPage::default());
        };
        let log = log.lock();
        let first = log.first_seq();
        let start = if first == 0 {
            log.msgs.len()
        } else {
            (after_seq + 1).saturating_sub(first) as usize
        };
        let messages: Vec<_> = log.msgs.iter().skip(start).take(limit).cloned().collect();
        let has_more = start.saturating_add(messages.len()) < log.msgs.len();
        Ok(HistoryPage {
            messages,
            first_available_seq: first,
            last_seq: log.last_seq,
            has_more,
        })
    }

    async fn last_seq(&self, room: &str) -> Result<u64> {
        Ok(self.logs.read().get(room).map_or(0, |l| l.lock().last_seq))
    }

    async fn delete_message(
        &self,
        room: &str,
        seq: u64,
        by: &str,
        at: u64,
    ) -> Result<Option<Envelope>> {
        let Some(log) = self.logs.read().get(room).cloned() else {
            return Ok(None);
        };
        let mut log = log.lock();
        let first = log.first_seq();
        if first == 0 || seq < first {
            return Ok(None);
        }
        let Some(slot) = usize::try_from(seq - first)
            .ok()
            .and_then(|i| log.msgs.get_mut(i))
        else {
            return Ok(None);
        };
        if !slot.deleted {
            let mut env = (**slot).clone();
            env.tombstone(by, at);
            *slot = Arc::new(env);
        }
        Ok(Some((**slot).clone()))
    }

    async fn advance_cursor(&self, agent_id: &str, room: &str, seq: u64) -> Result<u64> {
        let mut c = self.cursors.lock();
        let slot = c
            .entry(agent_id.to_owned())
            .or_default()
            .entry(room.to_owned())
            .or_insert(0);
        *slot = (*slot).max(seq);
        Ok(*slot)
    }

    async fn cursors(&self, agent_id: &str) -> Result<HashMap<String, u64>> {
        Ok(self
            .cursors
            .lock()
            .get(agent_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn trim_messages(
        &self,
        room: &str,
        before_ts: u64,
        keep_last: Option<u32>,
    ) -> Result<u64> {
        let Some(log) = self.logs.read().get(room).cloned() else {
            return Ok(0);
        };
        let mut log = log.lock();
        let before = log.msgs.len();
        while log.msgs.front().is_some_and(|m| m.ts < before_ts) {
            log.msgs.pop_front();
        }
        if let Some(keep) = keep_last {
            while log.msgs.len() > keep as usize {
                log.msgs.pop_front();
            }
        }
        Ok((before - log.msgs.len()) as u64)
    }

    async fn expire_dedupe(&self, before_ts: u64) -> Result<u64> {
        Ok(self
            .dedupe
            .iter()
            .map(|s| s.lock().expire_before(before_ts))
            .sum())
    }

    async fn get_setting(&self, key: &str) -> Result<Option<Value>> {
        Ok(self.settings.lock().get(key).cloned())
    }

    async fn set_setting(&self, key: &str, value: Value) -> Result<()> {
        self.settings.lock().insert(key.to_owned(), value);
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn append_audit(&self, mut entry: AuditEntry) -> Result<AuditEntry> {
        let mut a = self.audit.lock();
        a.0 += 1;
        entry.id = a.0;
        a.1.push_back(entry.clone());
        while a.1.len() > AUDIT_KEEP {
            a.1.pop_front();
        }
        Ok(entry)
    }

    async fn list_audit(&self, filter: AuditFilter) -> Result<Vec<AuditEntry>> {
        let a = self.audit.lock();
        let hits: Vec<_> =
            a.1.iter()
                .filter(|e| filter.kind.as_ref().is_none_or(|k| &e.kind == k))
                .filter(|e| filter.actor.as_ref().is_none_or(|k| &e.actor == k))
                .filter(|e| filter.since_ms.is_none_or(|s| e.ts >= s))
                .filter(|e| filter.after_id.is_none_or(|id| e.id > id))
                .collect();
        if filter.after_id.is_some() {
            return Ok(hits.into_iter().take(filter.limit).cloned().collect());
        }
        let skip = hits.len().saturating_sub(filter.limit);
        Ok(hits.into_iter().skip(skip).cloned().collect())
    }

    async fn insert_task(&self, task: TaskRecord) -> Result<TaskInsert> {
        let mut tasks = self.tasks.lock();
        if let Some(key) = &task.task.dedupe_key {
            let active = tasks.values().find(|t| {
                t.task.state.is_active()
                    && t.task.target == task.task.target
                    && t.task.dedupe_key.as_ref() == Some(key)
            });
            if let Some(t) = active {
                return Ok(TaskInsert::Existing(t.clone()));
            }
        }
        if tasks.contains_key(&task.task.task_id) {
            return Err(Error::conflict("a task with this id exists"));
        }
        tasks.insert(task.task.task_id.clone(), task.clone());
        Ok(TaskInsert::New(task))
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<TaskRecord>> {
        Ok(self.tasks.lock().get(task_id).cloned())
    }

    async fn update_task(&self, mut task: TaskRecord) -> Result<Option<TaskRecord>> {
        let mut tasks = self.tasks.lock();
        match tasks.get_mut(&task.task.task_id) {
            Some(stored) if stored.version == task.version => {
                task.version += 1;
                *stored = task.clone();
                Ok(Some(task))
            }
            _ => Ok(None),
        }
    }

    async fn list_tasks(&self, f: TaskFilter) -> Result<Vec<TaskRecord>> {
        let tasks = self.tasks.lock();
        let from = match &f.after {
            Some(a) => std::ops::Bound::Excluded(a.clone()),
            None => std::ops::Bound::Unbounded,
        };
        Ok(tasks
            .range((from, std::ops::Bound::Unbounded))
            .map(|(_, t)| t)
            .filter(|t| f.state.is_none_or(|s| t.task.state == s))
            .filter(|t| f.target.as_ref().is_none_or(|x| &t.task.target == x))
            .filter(|t| {
                f.involving
                    .as_ref()
                    .is_none_or(|x| &t.task.target == x || &t.task.dispatched_by == x)
            })
            .take(f.limit)
            .cloned()
            .collect())
    }

    async fn due_tasks(
        &self,
        target: Option<&str>,
        now: u64,
        limit: usize,
    ) -> Result<Vec<TaskRecord>> {
        let tasks = self.tasks.lock();
        let mut due: Vec<&TaskRecord> = tasks
            .values()
            .filter(|t| target.is_none_or(|x| t.task.target == x))
            .filter(|t| match t.task.state {
                TaskState::Queued => true,
                TaskState::Delayed => t.task.run_at <= now,
                _ => false,
            })
            .collect();
        due.sort_by(|a, b| {
            b.task
                .priority
                .cmp(&a.task.priority)
                .then(a.task.run_at.cmp(&b.task.run_at))
                .then(a.task.task_id.cmp(&b.task.task_id))
        });
        Ok(due.into_iter().take(limit).cloned().collect())
    }

    async fn expired_leases(&self, now: u64, limit: usize) -> Result<Vec<TaskRecord>> {
        Ok(self
            .tasks
            .lock()
            .values()
            .filter(|t| {
                t.task.state == TaskState::Running && t.lease_until.is_some_and(|u| u < now)
            })
            .take(limit)
            .cloned()
            .collect())
    }

    async fn count_tasks(&self, target: &str, states: &[TaskState]) -> Result<u64> {
        Ok(self
            .tasks
            .lock()
            .values()
            .filter(|t| t.task.target == target && states.contains(&t.task.state))
            .count() as u64)
    }

    async fn task_counts(&self) -> Result<Vec<TaskCount>> {
        let mut counts: BTreeMap<(String, &'static str), (TaskState, u64)> = BTreeMap::new();
        for t in self.tasks.lock().values() {
            counts
                .entry((t.task.target.clone(), t.task.state.as_str()))
                .or_insert((t.task.state, 0))
                .1 += 1;
        }
        Ok(counts
            .into_iter()
            .map(|((target, _), (state, count))| TaskCount {
                target,
                state,
                count,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::conformance::{self, draft};

    #[tokio::test]
    async fn memory_store_passes_the_conformance_suite() {
        conformance::run_all(|| async { Arc::new(MemoryStore::new()) as Arc<dyn Store> }).await;
    }

    #[tokio::test]
    async fn memory_store_keeps_the_newest_messages_up_to_the_retention_count() {
        let s = MemoryStore::new();
        let limits = AppendLimits {
            dedupe_window_ms: 1000,
            dedupe_max_entries: 10,
            retention: 3,
        };
        for ts in 0..5 {
            s.append_message(draft("global", "a", ts, None), limits)
                .await
                .expect("append");
        }
        let h = s.history("global", 0, 10).await.expect("history");
        assert_eq!(
            h.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(h.first_available_seq, 3);
    }
}
