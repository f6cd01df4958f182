//! Administration: role changes, agent removal, room deletion, the DM list,
//! and the one pagination rule of the lists that had none.
//!
//! Each operation follows the hub's order: validate → authorize → persist →
//! publish → audit (see `hub.rs`). The choices (a removed agent's id stays
//! reserved; who may delete a room) are in
//! `docs/decisions/0012-runtime-settings-and-removal.md`.

use std::sync::Arc;

use clawnet_proto::ids::{dm_parties, dm_room_key};
use clawnet_proto::methods::{events, HistoryResult, MembershipEvent};
use clawnet_proto::{Role, RoomKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::bus::Target;
use crate::error::{Error, Result};
use crate::frames::event_frame;
use crate::hub::{Hub, MASTER_AGENT, SYSTEM_AGENT};
use crate::store::AgentRecord;

/// Largest `limit` of the paged lists (agents, rooms, members, DMs, tasks,
/// audit log).
pub const MAX_PAGE: u32 = 1000;
/// `limit` of a paged list when none is given.
pub const DEFAULT_PAGE: u32 = 100;
/// Store key (under settings) marking an agent id as used by a removed agent.
pub const REMOVED_PREFIX: &str = "agents.removed.";

/// Check a list's `limit`: `1..=MAX_PAGE`, [`DEFAULT_PAGE`] when absent.
pub fn page_limit(limit: Option<u32>) -> Result<usize> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        n @ 1..=MAX_PAGE => Ok(n as usize),
        _ => Err(Error::invalid(
            "limit",
            format!("limit must be 1..={MAX_PAGE}"),
        )),
    }
}

/// One page of a list sorted by `key`: the items whose key is greater than
/// `after` (exclusive), at most `limit`, and the cursor of the next page
/// (the last key returned) when more follow.
pub fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> &str,
    after: Option<&str>,
    limit: usize,
) -> (Vec<T>, Option<String>) {
    let mut out: Vec<T> = items
        .into_iter()
        .filter(|i| after.is_none_or(|a| key(i) > a))
        .take(limit + 1)
        .collect();
    let more = out.len() > limit;
    out.truncate(limit);
    let next = more
        .then(|| out.last().map(|i| key(i).to_owned()))
        .flatten();
    (out, next)
}

/// The other side of a DM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DmPeer {
    /// Its id.
    pub agent_id: String,
    /// Its handle (empty if the agent was removed).
    pub handle: String,
}

/// One DM as listed by `GET /api/v1/dms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DmInfo {
    /// The room key, `dm:<a>:<b>`.
    pub room: String,
    /// The other agent (in a DM the caller is not in, listed with
    /// `?all=true`: the first party).
    pub with: DmPeer,
    /// Both parties, sorted.
    pub agents: [String; 2],
    /// The newest `seq` (0 when empty).
    pub last_seq: u64,
}

impl Hub {
    /// Change an agent's role (master). The last master cannot be demoted,
    /// and the hub's own agent keeps its role. The new role applies from the
    /// agent's next request. Returns the agent after the change.
    pub async fn set_role(&self, actor: &str, agent_id: &str, role: Role) -> Result<AgentRecord> {
        if agent_id == SYSTEM_AGENT {
            return Err(Error::invalid(
                "agent_id",
                "the hub's own agent keeps its role",
            ));
        }
        self.require_master(actor, "role.change", agent_id).await?;
        let target = self.resolve_agent(agent_id).await?;
        let id = target.agent_id.clone();
        if target.role == role {
            return Ok((*target).clone());
        }
        if target.role == Role::Master && self.masters_other_than(&id).await? == 0 {
            return Err(Error::conflict(format!(
                "'{id}' is the last master; make another agent master first"
            )));
        }
        let old = self
            .inner
            .store
            .set_role(&id, role)
            .await?
            .ok_or_else(|| Error::not_found(format!("no agent '{id}'")))?;
        self.forget_identity(&id);
        self.audit(
            "identity",
            actor,
            "role.change",
            &id,
            None,
            json!({"from": old.as_str(), "to": role.as_str()}),
        )
        .await;
        Ok((*self.agent(&id).await?).clone())
    }

    async fn masters_other_than(&self, agent_id: &str) -> Result<usize> {
        Ok(self
            .inner
            .store
            .list_agents()
            .await?
            .iter()
            // The hub's own agent has no token: it cannot act as master.
            .filter(|a| a.role == Role::Master && a.agent_id != agent_id)
            .filter(|a| a.agent_id != SYSTEM_AGENT)
            .count())
    }

    /// Remove an agent (master): its tokens are revoked and its connections
    /// closed (`token_revoked`), its memberships end (`room.left` in each
    /// room), its messages stay. The bootstrap master and the hub's own
    /// agent cannot be removed, nor the last master. The id stays reserved:
    /// registering it again is a `conflict`. Returns the removed record.
    pub async fn remove_agent(&self, actor: &str, agent_id: &str) -> Result<AgentRecord> {
        if agent_id == MASTER_AGENT || agent_id == SYSTEM_AGENT {
            return Err(Error::invalid(
                "agent_id",
                format!("'{agent_id}' belongs to the hub and cannot be removed"),
            ));
        }
        self.require_master(actor, "agent.remove", agent_id).await?;
        let target = self.resolve_agent(agent_id).await?;
        let id = target.agent_id.clone();
        if id == MASTER_AGENT || id == SYSTEM_AGENT {
            return Err(Error::invalid(
                "agent_id",
                format!("'{id}' belongs to the hub and cannot be removed"),
            ));
        }
        if target.role == Role::Master && self.masters_other_than(&id).await? == 0 {
            return Err(Error::conflict(format!("'{id}' is the last master")));
        }
        let tokens: Vec<String> = self
            .inner
            .store
            .list_tokens(&id)
            .await?
            .into_iter()
            .map(|t| t.token_id)
            .collect();
        let rooms = self.inner.store.rooms_of(&id).await?;
        // Reserved before the record goes, so a concurrent registration of
        // the id cannot slip in between.
        self.inner
            .store
            .set_setting(
                &format!("{REMOVED_PREFIX}{id}"),
                json!({"at": self.now(), "by": actor}),
            )
            .await?;
        if !self.inner.store.remove_agent(&id).await? {
            return Err(Error::not_found(format!("no agent '{id}'")));
        }
        self.forget_identity(&id);
        self.inner.inbox_cache.lock().remove(&id);
        let now = self.now();
        for c in self.inner.fanout.connections_of(&id) {
            c.close("token_revoked", "this agent was removed", now);
        }
        for room in &rooms {
            self.inner.directory.forget_members(room);
            self.inner.fanout.unsubscribe_agent(&id, room);
            let ev = MembershipEvent {
                room: room.clone(),
                agent_id: id.clone(),
                handle: target.handle.clone(),
                by: actor.to_owned(),
            };
            self.publish_frame(
                Target::Room(Arc::from(room.as_str())),
                None,
                event_frame(events::ROOM_LEFT, Some(room), &ev),
            );
        }
        self.audit(
            "identity",
            actor,
            "agent.remove",
            &id,
            None,
            json!({"handle": target.handle, "role": target.role.as_str(),
                   "revoked": tokens, "rooms": rooms}),
        )
        .await;
        Ok((*target).clone())
    }

    /// Whether an agent id was used by a removed agent (and so stays
    /// reserved).
    pub async fn id_was_removed(&self, agent_id: &str) -> Result<bool> {
        Ok(self
            .inner
            .store
            .get_setting(&format!("{REMOVED_PREFIX}{agent_id}"))
            .await?
            .is_some())
    }

    /// Delete a named room (master, or its creator) with its memberships
    /// and messages. Not `global`, not DMs, not the alert room. Members get
    /// `room.left` first. Returns the members it had.
    pub async fn delete_room(&self, actor: &str, room: &str) -> Result<Vec<String>> {
        let me = self.agent(actor).await?;
        let r = self.readable_room(&me, room).await?;
        match r.kind {
            RoomKind::Global => return Err(Error::invalid("room", "global cannot be deleted")),
            RoomKind::Dm => return Err(Error::invalid("room", "DM rooms cannot be deleted")),
            RoomKind::Room => {}
        }
        if room == self.inner.cfg.tasks.alert_room {
            return Err(Error::invalid(
                "room",
                format!("'{room}' is the hub's alert room and cannot be deleted"),
            ));
        }
        if me.role != Role::Master && r.created_by.as_deref() != Some(actor) {
            return self
                .refuse(
                    actor,
                    "room.delete",
                    room,
                    "deleting a room needs master or its creator".into(),
                )
                .await;
        }
        let members = self.inner.store.members(room).await?;
        let last_seq = self.inner.store.last_seq(room).await?;
        if !self.inner.store.delete_room(room).await? {
            return Err(Error::not_found(format!("no room '{room}'")));
        }
        for m in &members {
            let handle = match self.agent(m).await {
                Ok(a) => a.handle.clone(),
                Err(_) => String::new(),
            };
            let ev = MembershipEvent {
                room: room.to_owned(),
                agent_id: m.clone(),
                handle,
                by: actor.to_owned(),
            };
            // To each member's own connections: the room's subscriptions
            // end just below.
            self.publish_frame(
                Target::Agent(Arc::from(m.as_str())),
                None,
                event_frame(events::ROOM_LEFT, Some(room), &ev),
            );
            self.inner.fanout.unsubscribe_agent(m, room);
        }
        self.inner.directory.forget_room(room);
        self.inner.sequencers.write().remove(room);
        self.audit(
            "chat",
            actor,
            "room.delete",
            room,
            None,
            json!({"members": members, "last_seq": last_seq, "private": r.private}),
        )
        .await;
        Ok(members)
    }

    /// DMs: the caller's own; with `all`, every DM (master and warden only).
    /// Sorted by room key.
    pub async fn list_dms(&self, actor: &str, all: bool) -> Result<Vec<DmInfo>> {
        let me = self.agent(actor).await?;
        if all && !me.role.reads_everything() {
            return self
                .refuse(
                    actor,
                    "dm.list_all",
                    "dms",
                    "listing every DM needs master or warden".into(),
                )
                .await;
        }
        let keys: Vec<String> = if all {
            self.inner
                .store
                .list_rooms()
                .await?
                .into_iter()
                .filter(|r| r.kind == RoomKind::Dm)
                .map(|r| r.name)
                .collect()
        } else {
            self.inner
                .store
                .rooms_of(actor)
                .await?
                .into_iter()
                .filter(|r| crate::rooms::is_dm(r))
                .collect()
        };
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let Some((a, b)) = dm_parties(&key) else {
                continue;
            };
            let other = if a == actor { b } else { a };
            let handle = match self.agent(other).await {
                Ok(r) => r.handle.clone(),
                Err(e) if e.code == clawnet_proto::ErrorCode::NotFound => String::new(),
                Err(e) => return Err(e),
            };
            out.push(DmInfo {
                last_seq: self.inner.store.last_seq(&key).await?,
                with: DmPeer {
                    agent_id: other.to_owned(),
                    handle,
                },
                agents: [a.to_owned(), b.to_owned()],
                room: key,
            });
        }
        out.sort_by(|x, y| x.room.cmp(&y.room));
        Ok(out)
    }

    /// History of the caller's DM with `other` (id or `@handle`), as
    /// [`Hub::history`]. `not_found` if they have no DM yet.
    pub async fn dm_history(
        &self,
        actor: &str,
        other: &str,
        after_seq: u64,
        limit: Option<u32>,
    ) -> Result<HistoryResult> {
        self.agent(actor).await?;
        let peer = self.resolve_agent(other).await?;
        let key = dm_room_key(actor, &peer.agent_id);
        if self.room_record(&key).await?.is_none() {
            return Err(Error::not_found(format!(
                "no DM between '{actor}' and '{}'",
                peer.agent_id
            )));
        }
        self.history(actor, &key, after_seq, limit).await
    }

    /// Agents, paged by id.
    pub async fn agents_page(
        &self,
        actor: &str,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<(Vec<AgentRecord>, Option<String>)> {
        let limit = page_limit(limit)?;
        let all = self.list_agents(actor).await?;
        Ok(page(all, |a| a.agent_id.as_str(), after, limit))
    }
}

/// The JSON of a page: `{<name>: items, "next"?: cursor}`.
pub fn page_json(name: &str, items: Value, next: Option<String>) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(name.to_owned(), items);
    if let Some(n) = next {
        m.insert("next".into(), Value::String(n));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_exclusive_and_say_when_more_follow() {
        let items: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let (p, next) = page(items.clone(), |s| s.as_str(), None, 2);
        assert_eq!(p, vec!["a", "b"]);
        assert_eq!(next.as_deref(), Some("b"));
        let (p, next) = page(items.clone(), |s| s.as_str(), Some("b"), 2);
        assert_eq!(p, vec!["c", "d"]);
        assert_eq!(next, None);
        let (p, _) = page(items, |s| s.as_str(), Some("d"), 2);
        assert!(p.is_empty());
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(1001)).is_err());
        assert_eq!(page_limit(None).ok(), Some(100));
    }
}
