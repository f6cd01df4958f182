//! Rooms: `global`, named rooms (public or private) and DMs; membership and
//! who may see what.
//!
//! Visibility rule: `global` and public rooms are readable by every agent;
//! private rooms and DMs only by their members, master and warden. A private
//! room is `not_found` to anyone else, so its existence does not leak.

use std::sync::Arc;

use clawnet_proto::ids::{room_kind, valid_room_name};
use clawnet_proto::methods::{events, MembershipEvent, RoomCreateParams, RoomInfo};
use clawnet_proto::{Role, RoomKind, GLOBAL_ROOM};
use serde_json::json;

use crate::bus::Target;
use crate::error::{Error, Result};
use crate::frames::event_frame;
use crate::hub::Hub;
use crate::store::{AgentRecord, RoomRecord};

/// Most messages a room may be configured to keep.
pub const MAX_ROOM_RETENTION: u32 = 1_000_000;

impl Hub {
    /// The record of a room, `global` included.
    pub(crate) async fn room_record(&self, room: &str) -> Result<Option<RoomRecord>> {
        if room == GLOBAL_ROOM {
            return Ok(Some(RoomRecord {
                name: GLOBAL_ROOM.to_owned(),
                kind: RoomKind::Global,
                private: false,
                created_by: None,
                created_at: 0,
                retention: None,
            }));
        }
        if let Some(r) = self.inner.directory.room(room) {
            return Ok(Some((*r).clone()));
        }
        // Absent rooms are not cached: another node may create one.
        Ok(self
            .inner
            .store
            .get_room(room)
            .await?
            .map(|r| (*self.inner.directory.put_room(r)).clone()))
    }

    pub(crate) async fn is_member(&self, room: &RoomRecord, agent: &str) -> Result<bool> {
        self.is_member_of(&room.name, agent).await
    }

    /// Membership through the directory cache (`global` holds everyone).
    pub(crate) async fn is_member_of(&self, room: &str, agent: &str) -> Result<bool> {
        if room == GLOBAL_ROOM {
            return Ok(true);
        }
        let now = self.now();
        let set = match self.inner.directory.members(room, now) {
            Some(s) => s,
            None => {
                let loaded = self.inner.store.members(room).await?.into_iter().collect();
                self.inner.directory.put_members(room, loaded, now)
            }
        };
        Ok(set.contains(agent))
    }

    /// The room if `me` may read it, else `not_found` (never `forbidden`, so
    /// private rooms stay invisible).
    pub(crate) async fn readable_room(&self, me: &AgentRecord, room: &str) -> Result<RoomRecord> {
        let rec = self.room_record(room).await?;
        match rec {
            Some(r)
                if !r.private
                    || me.role.reads_everything()
                    || self.is_member(&r, &me.agent_id).await? =>
            {
                Ok(r)
            }
            _ => Err(Error::not_found(format!("no room '{room}'"))),
        }
    }

    async fn room_info(&self, me: &AgentRecord, r: &RoomRecord) -> Result<RoomInfo> {
        let (member_count, member) = if r.kind == RoomKind::Global {
            (self.inner.store.list_agents().await?.len(), true)
        } else {
            let m = self.inner.store.members(&r.name).await?;
            let member = m.iter().any(|a| a == &me.agent_id);
            (m.len(), member)
        };
        Ok(RoomInfo {
            name: r.name.clone(),
            kind: r.kind,
            private: r.private,
            created_by: r.created_by.clone(),
            created_at: r.created_at,
            member_count,
            member,
            last_seq: self.inner.store.last_seq(&r.name).await?,
        })
    }

    /// Rooms visible to `actor`, sorted by name.
    pub async fn list_rooms(&self, actor: &str) -> Result<Vec<RoomInfo>> {
        let me = self.agent(actor).await?;
        let mine = self.inner.store.rooms_of(actor).await?;
        let mut out = Vec::new();
        if let Some(g) = self.room_record(GLOBAL_ROOM).await? {
            out.push(self.room_info(&me, &g).await?);
        }
        for r in self.inner.store.list_rooms().await? {
            if !r.private || me.role.reads_everything() || mine.contains(&r.name) {
                out.push(self.room_info(&me, &r).await?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One room, if visible.
    pub async fn get_room(&self, actor: &str, room: &str) -> Result<RoomInfo> {
        let me = self.agent(actor).await?;
        let r = self.readable_room(&me, room).await?;
        self.room_info(&me, &r).await
    }

    /// Member ids of a visible room.
    pub async fn room_members(&self, actor: &str, room: &str) -> Result<Vec<String>> {
        let me = self.agent(actor).await?;
        let r = self.readable_room(&me, room).await?;
        if r.kind == RoomKind::Global {
            return Ok(self
                .inner
                .store
                .list_agents()
                .await?
                .into_iter()
                .map(|a| a.agent_id)
                .collect());
        }
        self.inner.store.members(room).await
    }

    /// Create a named room; the creator becomes its first member.
    pub async fn create_room(&self, actor: &str, p: RoomCreateParams) -> Result<RoomInfo> {
        if !valid_room_name(&p.name) {
            return Err(Error::invalid(
                "name",
                "room name must match [a-z0-9][a-z0-9._-]{0,63} and not be 'global'",
            ));
        }
        if let Some(r) = p.retention {
            if r == 0 || r > MAX_ROOM_RETENTION {
                return Err(Error::invalid(
                    "retention",
                    format!("retention must be 1..={MAX_ROOM_RETENTION}"),
                ));
            }
        }
        let me = self.agent(actor).await?;
        let rec = RoomRecord {
            name: p.name.clone(),
            kind: RoomKind::Room,
            private: p.private,
            created_by: Some(actor.to_owned()),
            created_at: self.now(),
            retention: p.retention,
        };
        self.inner.store.create_room(rec.clone()).await?;
        self.init_sequencer(&rec.name).await?;
        self.add_member(&me, &rec.name, actor).await?;
        self.audit(
            "chat",
            actor,
            "room.create",
            &rec.name,
            None,
            json!({"private": rec.private}),
        )
        .await;
        self.room_info(&me, &rec).await
    }

    /// Join a room. Public rooms are open to all; private rooms only to master
    /// and warden (others need an invite). Joining twice is not an error.
    pub async fn join_room(&self, actor: &str, room: &str) -> Result<RoomInfo> {
        let me = self.agent(actor).await?;
        let r = self.readable_room(&me, room).await?;
        match r.kind {
            RoomKind::Global => {}
            RoomKind::Dm => return Err(Error::invalid("room", "DM rooms cannot be joined")),
            RoomKind::Room => {
                if r.private && !me.role.reads_everything() && !self.is_member(&r, actor).await? {
                    return Err(Error::not_found(format!("no room '{room}'")));
                }
                self.add_member(&me, room, actor).await?;
            }
        }
        self.room_info(&me, &r).await
    }

    /// Leave a room. Leaving one you are not in is not an error; `global` and
    /// DMs cannot be left.
    pub async fn leave_room(&self, actor: &str, room: &str) -> Result<bool> {
        let me = self.agent(actor).await?;
        let r = self.readable_room(&me, room).await?;
        if r.kind != RoomKind::Room {
            return Err(Error::invalid("room", "global and DM rooms cannot be left"));
        }
        let left = self.inner.store.remove_member(room, actor).await?;
        self.inner.directory.forget_members(room);
        if left {
            self.inner.fanout.unsubscribe_agent(actor, room);
            let ev = MembershipEvent {
                room: room.to_owned(),
                agent_id: actor.to_owned(),
                handle: me.handle.clone(),
                by: actor.to_owned(),
            };
            self.publish_frame(
                Target::Room(Arc::from(room)),
                None,
                event_frame(events::ROOM_LEFT, Some(room), &ev),
            );
            self.audit(
                "chat",
                actor,
                "room.leave",
                room,
                None,
                serde_json::Value::Null,
            )
            .await;
        }
        Ok(left)
    }

    /// Add another agent to a room: any member of a public room, a member of a
    /// private room, or master/warden.
    pub async fn invite(&self, actor: &str, room: &str, who: &str) -> Result<RoomInfo> {
        let me = self.agent(actor).await?;
        let r = self.readable_room(&me, room).await?;
        if r.kind != RoomKind::Room {
            return Err(Error::invalid("room", "only named rooms take invites"));
        }
        if !me.role.reads_everything() && !self.is_member(&r, actor).await? {
            return self
                .refuse(
                    actor,
                    "room.invite",
                    room,
                    "only members may invite to a room".into(),
                )
                .await;
        }
        let target = self.resolve_agent(who).await?;
        self.add_member(&me, room, &target.agent_id).await?;
        self.room_info(&me, &r).await
    }

    /// Make `agent` a member (if new: cursor at the room's end, live
    /// subscription, `room.joined` event, audit).
    pub(crate) async fn add_member(&self, by: &AgentRecord, room: &str, agent: &str) -> Result<()> {
        let added = self.inner.store.add_member(room, agent).await?;
        self.inner.directory.forget_members(room);
        if !added {
            return Ok(());
        }
        // Subscribe before reading the room's end: a message published after
        // this is delivered live, one committed before it is behind the cursor.
        self.inner.fanout.subscribe_agent(agent, room);
        let last = self.inner.store.last_seq(room).await?;
        self.inner.store.advance_cursor(agent, room, last).await?;
        let handle = self.agent(agent).await?.handle.clone();
        let ev = MembershipEvent {
            room: room.to_owned(),
            agent_id: agent.to_owned(),
            handle,
            by: by.agent_id.clone(),
        };
        self.publish_frame(
            Target::Room(Arc::from(room)),
            None,
            event_frame(events::ROOM_JOINED, Some(room), &ev),
        );
        self.audit(
            "chat",
            &by.agent_id,
            "room.join",
            room,
            None,
            json!({"agent_id": agent}),
        )
        .await;
        Ok(())
    }

    /// The DM room between two agents, created on first use with both as
    /// members whose cursors start at 0 (so the first message is replayed to
    /// a recipient that was offline).
    pub(crate) async fn ensure_dm(&self, key: &str, a: &str, b: &str) -> Result<()> {
        if self.room_record(key).await?.is_some() {
            return Ok(());
        }
        let rec = RoomRecord {
            name: key.to_owned(),
            kind: RoomKind::Dm,
            private: true,
            created_by: Some(a.to_owned()),
            created_at: self.now(),
            retention: None,
        };
        match self.inner.store.create_room(rec).await {
            Ok(()) => {}
            // Both sides may open the DM at once; the loser uses the winner's.
            Err(e) if e.code == clawnet_proto::ErrorCode::Conflict => {}
            Err(e) => return Err(e),
        }
        self.init_sequencer(key).await?;
        for who in [a, b] {
            if self.inner.store.add_member(key, who).await? {
                self.inner.fanout.subscribe_agent(who, key);
            }
        }
        self.inner.directory.forget_members(key);
        Ok(())
    }

    /// Whether `me` may post into the room `r`.
    pub(crate) async fn may_post(&self, me: &AgentRecord, r: &RoomRecord) -> Result<bool> {
        Ok(r.kind == RoomKind::Global
            || me.role == Role::Master
            || self.is_member(r, &me.agent_id).await?)
    }
}

/// Whether a room key names a DM, for surfaces that list rooms.
pub fn is_dm(room: &str) -> bool {
    room_kind(room) == RoomKind::Dm
}
