//! The `Bus` trait: fan-out of events to every node's local connections.
//!
//! The hub publishes each event once; the bus carries it to every node
//! (including this one), where it is handed to the local sink, which delivers
//! to the connections subscribed there. In process, [`LocalBus`] calls the sink
//! directly; a multi-node bus (Redis pub/sub) serializes the [`Delivery`].

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

/// Who an event is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every connection subscribed to this room.
    Room(Arc<str>),
    /// Every connection of this agent.
    Agent(Arc<str>),
    /// Every connection that subscribed to presence events.
    PresenceSubscribers,
}

/// One serialized frame, shared by every connection it is delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFrame {
    /// The room of a history event, used by connections to drop what replay
    /// already sent.
    pub room: Option<Arc<str>>,
    /// Its `seq` (0 for events outside a room's history).
    pub seq: u64,
    /// The JSON text of the whole frame (always valid UTF-8).
    pub text: Bytes,
}

/// A frame on its way to a set of connections.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Who receives it.
    pub target: Target,
    /// Connections of this agent are skipped (an agent does not need its own
    /// typing indicator).
    pub except_agent: Option<Arc<str>>,
    /// The frame.
    pub frame: Arc<OutFrame>,
}

/// Receives every delivery published on the bus, on every node.
pub trait Sink: Send + Sync {
    /// Deliver to local connections. Must not block: it runs on the
    /// publisher's task (in process) or the bus reader's task.
    fn deliver(&self, delivery: &Delivery);
}

/// Fan-out between nodes. Implementations must deliver the deliveries of one
/// publisher in the order it published them.
pub trait Bus: Send + Sync + std::fmt::Debug {
    /// Send a delivery to every node's sink.
    fn publish(&self, delivery: Delivery);
    /// Install this node's sink. Called once at hub start.
    fn attach(&self, sink: Arc<dyn Sink>);
}

/// The single-node bus: publishing is a direct call of the local sink.
#[derive(Default)]
pub struct LocalBus {
    sink: RwLock<Option<Arc<dyn Sink>>>,
}

impl std::fmt::Debug for LocalBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBus").finish_non_exhaustive()
    }
}

impl Bus for LocalBus {
    fn publish(&self, delivery: Delivery) {
        if let Some(sink) = self.sink.read().as_ref() {
            sink.deliver(&delivery);
        }
    }

    fn attach(&self, sink: Arc<dyn Sink>) {
        *self.sink.write() = Some(sink);
    }
}
