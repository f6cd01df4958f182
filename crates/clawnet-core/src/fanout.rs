//! This node's live connections and the rooms each is subscribed to.
//!
//! Delivery never waits on a connection: each has a bounded outbound queue,
//! and a connection whose queue is full is closed as a slow consumer (it
//! catches up by replay when it reconnects). That keeps one stuck client from
//! holding memory or slowing everyone else.
//!
//! A client that reads, only slower than the room is written, is paced
//! instead of cut off: once its queue is half full, senders to the room get
//! their ACK a little later (see [`Fanout::room_pressure`]), which slows the
//! producers down to what the consumers take. A client whose half-full queue
//! has not moved for [`STALL_MS`] is stuck, not slow, and is cut off at once
//! so it cannot hold everyone back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use clawnet_proto::methods::Disconnecting;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, Notify};

use crate::bus::{Delivery, OutFrame, Sink, Target};

/// A connection whose queue is half full and has written nothing for this
/// long is cut off as a slow consumer.
pub const STALL_MS: u64 = 2000;

/// One live connection, as the hub sees it.
#[derive(Debug)]
pub struct Conn {
    /// Unique on this node.
    pub id: u64,
    /// The authenticated agent.
    pub agent_id: Arc<str>,
    /// The token it authenticated with (revoking it closes the connection).
    pub token_id: String,
    /// Whether it receives every agent's `presence` events.
    pub presence: bool,
    /// Whether it runs tasks (`connect {"worker": true}`), set once its
    /// offer is taken: such a connection is not sent the `task.updated`
    /// events its own `task.dispatch` and `task.result` already told it.
    worker: AtomicBool,
    tx: mpsc::Sender<Arc<OutFrame>>,
    closing: Mutex<Option<Disconnecting>>,
    kill: Notify,
    /// Last frame of any kind received (heartbeat liveness), ms.
    pub last_seen: AtomicU64,
    /// Last request other than `ping`/`ack` (activity, for idle), ms.
    pub last_active: AtomicU64,
    /// Last time the connection wrote queued frames to its socket, ms.
    last_drain: AtomicU64,
    queue: usize,
}

impl Conn {
    /// A connection handle and the receiving end of its outbound queue.
    pub fn new(
        id: u64,
        agent_id: Arc<str>,
        token_id: String,
        presence: bool,
        queue: usize,
        now: u64,
    ) -> (Arc<Self>, mpsc::Receiver<Arc<OutFrame>>) {
        let queue = queue.max(1);
        let (tx, rx) = mpsc::channel(queue);
        let conn = Arc::new(Self {
            id,
            agent_id,
            token_id,
            presence,
            worker: AtomicBool::new(false),
            tx,
            closing: Mutex::new(None),
            kill: Notify::new(),
            last_seen: AtomicU64::new(now),
            last_active: AtomicU64::new(now),
            last_drain: AtomicU64::new(now),
            queue,
        });
        (conn, rx)
    }

    /// Queue a frame; a full queue closes the connection as a slow consumer.
    pub fn push(&self, frame: &Arc<OutFrame>, now: u64) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(frame.clone()) {
            self.close(
                "slow_consumer",
                "outbound queue full: the client is not reading fast enough; reconnect to resume",
                now,
            );
        }
    }

    /// Mark this connection as one that runs tasks.
    pub fn set_worker(&self) {
        self.worker.store(true, Ordering::Relaxed);
    }

    /// Whether this connection runs tasks.
    pub fn is_worker(&self) -> bool {
        self.worker.load(Ordering::Relaxed)
    }

    /// Note that queued frames were written to the socket.
    pub fn drained(&self, now: u64) {
        self.last_drain.store(now, Ordering::Relaxed);
    }

    /// Whether the queue is over half full: a stuck connection is closed
    /// here, a slow one reports pressure.
    fn pressing(&self, now: u64) -> bool {
        let backlog = self.queue - self.tx.capacity();
        if backlog * 2 < self.queue {
            return false;
        }
        let idle = now.saturating_sub(self.last_drain.load(Ordering::Relaxed));
        if idle >= STALL_MS {
            self.close(
                "slow_consumer",
                "outbound queue not drained: the client stopped reading; reconnect to resume",
                now,
            );
            return false;
        }
        true
    }

    /// Ask the connection's task to close with a reason. The first reason wins.
    pub fn close(&self, reason: &str, message: &str, now: u64) {
        let mut c = self.closing.lock();
        if c.is_none() {
            tracing::info!(agent = %self.agent_id, conn = self.id, reason, message, "closing connection");
            *c = Some(Disconnecting {
                reason: reason.to_owned(),
                message: message.to_owned(),
                ts: now,
            });
            self.kill.notify_one();
        }
    }

    /// Why the connection is closing, once [`Conn::close`] was called.
    pub fn closing(&self) -> Option<Disconnecting> {
        self.closing.lock().clone()
    }

    /// Resolves once [`Conn::close`] has been called.
    pub async fn closed(&self) {
        loop {
            if self.closing.lock().is_some() {
                return;
            }
            self.kill.notified().await;
        }
    }

    /// Note an incoming frame.
    pub fn touch(&self, now: u64, active: bool) {
        self.last_seen.store(now, Ordering::Relaxed);
        if active {
            self.last_active.store(now, Ordering::Relaxed);
        }
    }
}

/// The subscription table of this node.
#[derive(Debug, Default)]
pub struct Fanout {
    rooms: RwLock<HashMap<Arc<str>, Vec<Arc<Conn>>>>,
    agents: RwLock<HashMap<Arc<str>, Vec<Arc<Conn>>>>,
    /// Connections that asked for presence events. Presence is a
    /// subscription because broadcasting every change to every connection
    /// costs N² frames as a large fleet connects.
    presence: RwLock<Vec<Arc<Conn>>>,
    clock_ms: AtomicU64,
}

impl Fanout {
    /// Register a connection and subscribe it to `rooms`.
    pub fn add(&self, conn: &Arc<Conn>, rooms: &[String]) {
        if conn.presence {
            self.presence.write().push(conn.clone());
        }
        self.agents
            .write()
            .entry(conn.agent_id.clone())
            .or_default()
            .push(conn.clone());
        let mut r = self.rooms.write();
        for room in rooms {
            r.entry(Arc::from(room.as_str()))
                .or_default()
                .push(conn.clone());
        }
    }

    /// Unregister a connection everywhere.
    pub fn remove(&self, conn: &Conn) {
        if conn.presence {
            self.presence.write().retain(|c| c.id != conn.id);
        }
        let mut a = self.agents.write();
        if let Some(v) = a.get_mut(&conn.agent_id) {
            v.retain(|c| c.id != conn.id);
            if v.is_empty() {
                a.remove(&conn.agent_id);
            }
        }
        drop(a);
        let mut r = self.rooms.write();
        r.retain(|_, v| {
            v.retain(|c| c.id != conn.id);
            !v.is_empty()
        });
    }

    /// Subscribe every connection of `agent` to `room`.
    pub fn subscribe_agent(&self, agent: &str, room: &str) {
        let conns = self.connections_of(agent);
        if conns.is_empty() {
            return;
        }
        let mut r = self.rooms.write();
        let subs = r.entry(Arc::from(room)).or_default();
        for c in conns {
            if !subs.iter().any(|s| s.id == c.id) {
                subs.push(c);
            }
        }
    }

    /// Subscribe one connection to `room` (if it is not already).
    pub fn subscribe_conn(&self, conn: &Arc<Conn>, room: &str) {
        let mut r = self.rooms.write();
        let subs = r.entry(Arc::from(room)).or_default();
        if !subs.iter().any(|s| s.id == conn.id) {
            subs.push(conn.clone());
        }
    }

    /// Unsubscribe every connection of `agent` from `room`.
    pub fn unsubscribe_agent(&self, agent: &str, room: &str) {
        let mut r = self.rooms.write();
        if let Some(v) = r.get_mut(room) {
            v.retain(|c| &*c.agent_id != agent);
            if v.is_empty() {
                r.remove(room);
            }
        }
    }

    /// The live connections of an agent on this node.
    pub fn connections_of(&self, agent: &str) -> Vec<Arc<Conn>> {
        self.agents.read().get(agent).cloned().unwrap_or_default()
    }

    /// Number of live connections on this node.
    pub fn connection_count(&self) -> usize {
        self.agents.read().values().map(Vec::len).sum()
    }

    /// Every live connection on this node.
    pub fn all(&self) -> Vec<Arc<Conn>> {
        self.agents.read().values().flatten().cloned().collect()
    }

    /// Whether any live subscriber of `room` has a queue over half full
    /// (closing those that are stuck). Senders to the room wait while it is.
    pub fn room_pressure(&self, room: &str, now: u64) -> bool {
        self.rooms
            .read()
            .get(room)
            .is_some_and(|subs| subs.iter().filter(|c| c.pressing(now)).count() > 0)
    }

    /// Time stamp used for slow-consumer closes made inside `deliver`.
    pub fn set_now(&self, now: u64) {
        self.clock_ms.store(now, Ordering::Relaxed);
    }
}

impl Sink for Fanout {
    fn deliver(&self, d: &Delivery) {
        let now = self.clock_ms.load(Ordering::Relaxed);
        let skip = |c: &Conn| d.except_agent.as_deref() == Some(&*c.agent_id);
        match &d.target {
            Target::Room(room) => {
                if let Some(subs) = self.rooms.read().get(room) {
                    let mut n = 0;
                    for c in subs.iter().filter(|c| !skip(c)) {
                        c.push(&d.frame, now);
                        n += 1;
                    }
                    crate::metrics::delivered(n);
                }
            }
            Target::Agent(agent) => {
                if let Some(conns) = self.agents.read().get(agent) {
                    for c in conns.iter().filter(|c| !skip(c)) {
                        c.push(&d.frame, now);
                    }
                }
            }
            Target::PresenceSubscribers => {
                for c in self.presence.read().iter().filter(|c| !skip(c)) {
                    c.push(&d.frame, now);
                }
            }
        }
    }
}
