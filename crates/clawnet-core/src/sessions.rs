//! Connections: opening a session (subscriptions, presence, the replay plan),
//! closing it, presence requests, and the periodic sweep that turns silence
//! into `idle` and missed heartbeats into `offline`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clawnet_proto::methods::{
    events, ConnectParams, ConnectResult, Disconnecting, PresenceEntry, PresenceStatus, ReplayGap,
    ReplayReset,
};
use clawnet_proto::{GLOBAL_ROOM, PROTOCOL_VERSION};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::bus::{OutFrame, Target};
use crate::error::{Error, Result};
use crate::fanout::Conn;
use crate::frames::{envelope_json, event_frame, message_frame};
use crate::hub::Hub;
use crate::store::AgentRecord;

/// Longest `report.activity`, in characters.
pub const MAX_ACTIVITY_CHARS: usize = 200;
/// Largest `report.meta`, serialized.
pub const MAX_REPORT_META_BYTES: usize = 4096;
/// Messages read per store call while replaying.
pub const REPLAY_PAGE: usize = 500;

/// A session just opened: the connection, its outbound queue, the `connect`
/// result, and where replay starts in each room.
#[derive(Debug)]
pub struct OpenSession {
    /// The registered connection.
    pub conn: Arc<Conn>,
    /// Frames published to it from now on (live traffic).
    pub outbound: mpsc::Receiver<Arc<OutFrame>>,
    /// The `connect` result to send first.
    pub result: ConnectResult,
    /// Room to the `seq` replay starts after.
    pub replay_from: BTreeMap<String, u64>,
    /// Rooms whose presented cursor was beyond their history; announced
    /// with `replay.reset` before replay.
    pub resets: Vec<ReplayReset>,
    /// Tasks this connection takes at once, if it offered to work
    /// (pass to [`Hub::worker_ready`] once replay is done).
    pub worker: Option<usize>,
}

impl Hub {
    /// Open a session for an authenticated agent. The connection is subscribed
    /// before the replay plan is read, so a message committed in between is
    /// in the live queue and none falls between replay and live (the
    /// connection drops live frames that replay already sent).
    pub async fn open_session(
        &self,
        agent: &AgentRecord,
        token_id: &str,
        p: ConnectParams,
    ) -> Result<OpenSession> {
        if let Some(v) = p.protocol {
            if v != PROTOCOL_VERSION {
                return Err(Error::invalid(
                    "protocol",
                    format!("protocol {v} is not spoken here; use {PROTOCOL_VERSION}"),
                ));
            }
        }
        let store = &self.inner.store;
        let mut rooms = vec![GLOBAL_ROOM.to_owned()];
        rooms.extend(store.rooms_of(&agent.agent_id).await?);
        let now = self.now();
        let id = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let (conn, outbound) = Conn::new(
            id,
            Arc::from(agent.agent_id.as_str()),
            token_id.to_owned(),
            p.presence,
            self.inner.cfg.outbound_queue,
            now,
        );
        self.inner.fanout.add(&conn, &rooms);
        // A join between reading the room list and subscribing would be
        // missed by this connection: read the list again now that it listens.
        for room in store.rooms_of(&agent.agent_id).await? {
            if !rooms.contains(&room) {
                self.inner.fanout.subscribe_conn(&conn, &room);
                rooms.push(room);
            }
        }
        if self.inner.presence.connected(&agent.agent_id, now) {
            self.publish_presence(&agent.agent_id, &agent.handle);
        }
        let cursors = self
            .inner
            .cursors
            .merge(&agent.agent_id, store.cursors(&agent.agent_id).await?);
        let mut replay_from = BTreeMap::new();
        let mut resets = Vec::new();
        for r in &rooms {
            let mut from = p
                .resume
                .get(r)
                .or_else(|| cursors.get(r))
                .copied()
                .unwrap_or(0);
            let last = store.last_seq(r).await?;
            if from > last {
                // The cursor is from a history that no longer exists (a
                // memory hub restarted): say so and replay what there is.
                resets.push(ReplayReset {
                    room: r.clone(),
                    resume_seq: from,
                    last_seq: last,
                });
                from = 0;
            }
            replay_from.insert(r.clone(), from);
        }
        let last_disconnect = self.inner.last_disconnect.lock().remove(&agent.agent_id);
        let cfg = &self.inner.cfg;
        let worker = p.worker.then(|| {
            p.concurrency
                .unwrap_or(cfg.tasks.worker_concurrency)
                .clamp(1, 1024)
        });
        Ok(OpenSession {
            result: ConnectResult {
                agent_id: agent.agent_id.clone(),
                handle: agent.handle.clone(),
                role: agent.role,
                session_id: format!("s{id}"),
                protocol: PROTOCOL_VERSION,
                rooms,
                heartbeat_interval_ms: cfg.heartbeat_interval_ms,
                heartbeat_timeout_ms: cfg.heartbeat_timeout_ms,
                last_disconnect,
            },
            conn,
            outbound,
            replay_from,
            resets,
            worker,
        })
    }

    /// The next replay frames of a room after `after_seq`: a `replay.gap`
    /// event first if history from `after_seq + 1` is gone, then up to
    /// [`REPLAY_PAGE`] message events. Returns the frames and the last `seq`
    /// covered; an empty list means the room is caught up.
    pub async fn replay_page(
        &self,
        room: &str,
        after_seq: u64,
    ) -> Result<(Vec<Arc<OutFrame>>, u64)> {
        let page = self
            .inner
            .store
            .history(room, after_seq, REPLAY_PAGE)
            .await?;
        let mut frames = Vec::with_capacity(page.messages.len() + 1);
        if page.first_available_seq > after_seq + 1 {
            let gap = ReplayGap {
                room: room.to_owned(),
                after_seq,
                first_available_seq: page.first_available_seq,
            };
            frames.push(event_frame(events::REPLAY_GAP, Some(room), &gap));
        }
        let mut last = after_seq;
        for m in &page.messages {
            last = m.seq;
            frames.push(message_frame(m, &envelope_json(m)));
        }
        Ok((frames, last))
    }

    /// Close a session: unsubscribe, presence, and remember why the hub cut
    /// it (shown in the agent's next `connect` result).
    pub fn close_session(&self, conn: &Conn) {
        self.inner.fanout.remove(conn);
        self.worker_gone(conn);
        let now = self.now();
        if let Some(reason) = conn.closing() {
            self.inner
                .last_disconnect
                .lock()
                .insert(conn.agent_id.to_string(), reason);
        }
        if self.inner.presence.disconnected(&conn.agent_id, now) {
            let handle = self
                .inner
                .identities
                .read()
                .get(&*conn.agent_id)
                .map(|a| a.handle.clone())
                .unwrap_or_default();
            self.publish_presence(&conn.agent_id, &handle);
        }
    }

    fn publish_presence(&self, agent: &str, handle: &str) {
        let entry = self.inner.presence.get(agent, handle);
        self.publish_frame(
            Target::PresenceSubscribers,
            None,
            event_frame(events::PRESENCE, None, &entry),
        );
    }

    /// Set own presence (`online` or `idle`).
    pub async fn set_presence(&self, actor: &str, status: PresenceStatus) -> Result<PresenceEntry> {
        if status == PresenceStatus::Offline {
            return Err(Error::invalid(
                "status",
                "status must be online or idle; disconnect to go offline",
            ));
        }
        let me = self.agent(actor).await?;
        if self
            .inner
            .presence
            .set(actor, Some(status), None, self.now())
        {
            self.publish_presence(actor, &me.handle);
        }
        Ok(self.inner.presence.get(actor, &me.handle))
    }

    /// Report own status line (activity and details), optionally with a
    /// presence change.
    pub async fn report(
        &self,
        actor: &str,
        status: Option<PresenceStatus>,
        activity: Option<String>,
        meta: Option<Map<String, Value>>,
    ) -> Result<PresenceEntry> {
        if status == Some(PresenceStatus::Offline) {
            return Err(Error::invalid("status", "status must be online or idle"));
        }
        if activity
            .as_ref()
            .is_some_and(|a| a.chars().count() > MAX_ACTIVITY_CHARS)
        {
            return Err(Error::too_large(
                "activity",
                format!("activity is limited to {MAX_ACTIVITY_CHARS} characters"),
            ));
        }
        if let Some(m) = &meta {
            let size = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
            if size > MAX_REPORT_META_BYTES {
                return Err(Error::too_large(
                    "meta",
                    format!("meta is limited to {MAX_REPORT_META_BYTES} bytes"),
                ));
            }
        }
        let me = self.agent(actor).await?;
        if self
            .inner
            .presence
            .set(actor, status, Some((activity, meta)), self.now())
        {
            self.publish_presence(actor, &me.handle);
        }
        Ok(self.inner.presence.get(actor, &me.handle))
    }

    /// Presence of every agent, sorted by handle.
    pub async fn presence(&self, actor: &str) -> Result<Vec<PresenceEntry>> {
        self.agent(actor).await?;
        let mut out: Vec<_> = self
            .inner
            .store
            .list_agents()
            .await?
            .iter()
            .map(|a| self.inner.presence.get(&a.agent_id, &a.handle))
            .collect();
        out.sort_by(|a, b| a.handle.cmp(&b.handle));
        Ok(out)
    }

    /// One pass of the periodic checks: close connections that missed their
    /// heartbeats, move quiet agents to `idle` (and active ones back), and
    /// expire typing rate-limit entries.
    pub fn sweep(&self) {
        let now = self.now();
        let cfg = &self.inner.cfg;
        let mut last_active: HashMap<String, u64> = HashMap::new();
        for c in self.inner.fanout.all() {
            let seen = c.last_seen.load(Ordering::Relaxed);
            if now.saturating_sub(seen) >= cfg.heartbeat_timeout_ms {
                c.close(
                    "heartbeat_timeout",
                    &format!("no frame for {} ms", now.saturating_sub(seen)),
                    now,
                );
                continue;
            }
            let active = c.last_active.load(Ordering::Relaxed);
            let slot = last_active.entry(c.agent_id.to_string()).or_insert(0);
            *slot = (*slot).max(active);
        }
        for agent in self
            .inner
            .presence
            .sweep(&last_active, cfg.idle_after_ms, now)
        {
            let handle = self
                .inner
                .identities
                .read()
                .get(&agent)
                .map(|a| a.handle.clone())
                .unwrap_or_default();
            self.publish_presence(&agent, &handle);
        }
        let keep = self.inner.runtime.typing_min_interval_ms().max(1000);
        self.inner
            .typing
            .lock()
            .retain(|_, t| now.saturating_sub(*t) < keep);
    }

    /// Run [`Hub::sweep`] every `sweep_interval_ms` until the hub is dropped.
    pub fn spawn_sweeper(&self) -> tokio::task::JoinHandle<()> {
        let every = Duration::from_millis(self.inner.cfg.sweep_interval_ms.max(10));
        self.spawn_every(every, |hub| async move { hub.sweep() })
    }

    /// Close every connection with `reason` (graceful shutdown).
    pub fn close_all(&self, reason: &str, message: &str) {
        let now = self.now();
        for c in self.inner.fanout.all() {
            c.close(reason, message, now);
        }
    }

    /// Why the hub last closed this agent's connection, without consuming it.
    pub fn last_disconnect(&self, agent: &str) -> Option<Disconnecting> {
        self.inner.last_disconnect.lock().get(agent).cloned()
    }
}
