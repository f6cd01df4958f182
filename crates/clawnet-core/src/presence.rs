//! Presence: one state per agent however many connections it has.
//!
//! `online` on the first connection, `idle` after a quiet period or on
//! request, `offline` when the last connection goes (closed, or cut for missed
//! heartbeats). Each operation says whether the state changed, so the hub publishes
//! a `presence` event only for real transitions.

use std::collections::HashMap;

use clawnet_proto::methods::{PresenceEntry, PresenceStatus};
use parking_lot::Mutex;
use serde_json::{Map, Value};

#[derive(Debug, Clone)]
struct State {
    status: PresenceStatus,
    connections: usize,
    /// Idle because the agent asked; only the agent's own request ends it.
    manual_idle: bool,
    activity: Option<String>,
    meta: Option<Map<String, Value>>,
    since: u64,
}

impl State {
    fn entry(&self, agent_id: &str, handle: &str) -> PresenceEntry {
        PresenceEntry {
            agent_id: agent_id.to_owned(),
            handle: handle.to_owned(),
            status: self.status,
            connections: self.connections,
            activity: self.activity.clone(),
            meta: self.meta.clone(),
            since: self.since,
        }
    }
}

/// A `report`: the agent's activity line and details; a part left out keeps
/// its previous value.
pub type Report = (Option<String>, Option<Map<String, Value>>);

/// Presence of every agent seen since start (bounded by the number of agents).
#[derive(Debug, Default)]
pub struct PresenceTable {
    states: Mutex<HashMap<String, State>>,
}

impl PresenceTable {
    /// A connection opened.
    pub fn connected(&self, agent: &str, now: u64) -> bool {
        let mut m = self.states.lock();
        let s = m.entry(agent.to_owned()).or_insert(State {
            status: PresenceStatus::Offline,
            connections: 0,
            manual_idle: false,
            activity: None,
            meta: None,
            since: now,
        });
        s.connections += 1;
        if s.status == PresenceStatus::Offline {
            s.status = PresenceStatus::Online;
            s.manual_idle = false;
            s.since = now;
            return true;
        }
        false
    }

    /// A connection closed.
    pub fn disconnected(&self, agent: &str, now: u64) -> bool {
        let mut m = self.states.lock();
        let Some(s) = m.get_mut(agent) else {
            return false;
        };
        s.connections = s.connections.saturating_sub(1);
        if s.connections == 0 && s.status != PresenceStatus::Offline {
            s.status = PresenceStatus::Offline;
            s.manual_idle = false;
            s.since = now;
            return true;
        }
        false
    }

    /// The agent asked for `status` (`online` or `idle`); `report` may also
    /// change activity and details, which always counts as a change.
    pub fn set(
        &self,
        agent: &str,
        status: Option<PresenceStatus>,
        report: Option<Report>,
        now: u64,
    ) -> bool {
        let mut m = self.states.lock();
        let Some(s) = m.get_mut(agent) else {
            return false;
        };
        let mut changed = false;
        if let Some(st) = status {
            if s.connections > 0 && st != PresenceStatus::Offline && st != s.status {
                s.status = st;
                s.since = now;
                changed = true;
            }
            s.manual_idle = st == PresenceStatus::Idle;
        }
        if let Some((activity, meta)) = report {
            if activity.is_some() && activity != s.activity {
                s.activity = activity;
                changed = true;
            }
            if meta.is_some() && meta != s.meta {
                s.meta = meta;
                changed = true;
            }
        }
        changed
    }

    /// Apply inactivity: `last_active` is the agent's most recent request
    /// over all its connections. Returns the agents whose state changed.
    pub fn sweep(
        &self,
        last_active: &HashMap<String, u64>,
        idle_after_ms: u64,
        now: u64,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let mut m = self.states.lock();
        for (agent, s) in m.iter_mut() {
            let Some(&active) = last_active.get(agent) else {
                continue;
            };
            let quiet = now.saturating_sub(active) >= idle_after_ms;
            let next = match (s.status, quiet, s.manual_idle) {
                (PresenceStatus::Online, true, _) => PresenceStatus::Idle,
                (PresenceStatus::Idle, false, false) => PresenceStatus::Online,
                _ => continue,
            };
            s.status = next;
            s.since = now;
            out.push(agent.clone());
        }
        out
    }

    /// The entry of one agent (offline if never seen).
    pub fn get(&self, agent: &str, handle: &str) -> PresenceEntry {
        match self.states.lock().get(agent) {
            Some(s) => s.entry(agent, handle),
            None => PresenceEntry {
                agent_id: agent.to_owned(),
                handle: handle.to_owned(),
                status: PresenceStatus::Offline,
                connections: 0,
                activity: None,
                meta: None,
                since: 0,
            },
        }
    }
}
