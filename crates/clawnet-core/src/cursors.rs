//! Acknowledged cursors, coalesced before they reach the store.
//!
//! Clients acknowledge every message they process, so a busy room produces
//! one ack per message per member. Writing each to a durable store would
//! cost more than the message itself; instead the newest ack per (agent,
//! room) is kept here and written every `cursor_flush_ms`. A crash loses at
//! most that much cursor progress: the client is then sent those messages
//! again, which at-least-once delivery allows and clients drop by `seq`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::Result;
use crate::hub::Hub;

type Key = (String, String);

/// Cursor values seen by this node and those not yet written.
#[derive(Debug, Default)]
pub struct CursorBuffer {
    inner: Mutex<Buffered>,
}

#[derive(Debug, Default)]
struct Buffered {
    known: HashMap<Key, u64>,
    dirty: HashSet<Key>,
}

impl CursorBuffer {
    /// Record an ack; returns the cursor after it (never lower than before).
    pub fn ack(&self, agent: &str, room: &str, seq: u64) -> u64 {
        let mut b = self.inner.lock();
        let key = (agent.to_owned(), room.to_owned());
        let slot = b.known.entry(key.clone()).or_insert(0);
        if seq > *slot {
            *slot = seq;
            b.dirty.insert(key);
        }
        b.known
            .get(&(agent.to_owned(), room.to_owned()))
            .copied()
            .unwrap_or(seq)
    }

    /// Merge cursors read from the store into what this node knows and
    /// return the combined view for one agent.
    pub fn merge(&self, agent: &str, stored: HashMap<String, u64>) -> HashMap<String, u64> {
        let mut b = self.inner.lock();
        for (room, seq) in stored {
            let slot = b.known.entry((agent.to_owned(), room)).or_insert(0);
            *slot = (*slot).max(seq);
        }
        b.known
            .iter()
            .filter(|((a, _), _)| a == agent)
            .map(|((_, r), s)| (r.clone(), *s))
            .collect()
    }

    fn take_dirty(&self) -> Vec<(Key, u64)> {
        let mut b = self.inner.lock();
        let dirty: Vec<Key> = b.dirty.drain().collect();
        dirty
            .into_iter()
            .map(|k| {
                let v = b.known.get(&k).copied().unwrap_or(0);
                (k, v)
            })
            .collect()
    }

    fn mark_dirty(&self, keys: impl IntoIterator<Item = Key>) {
        self.inner.lock().dirty.extend(keys);
    }
}

impl Hub {
    /// Write buffered cursors to the store. On failure they stay buffered
    /// and are written by a later flush.
    pub async fn flush_cursors(&self) -> Result<usize> {
        let pending = self.inner.cursors.take_dirty();
        let n = pending.len();
        for (i, ((agent, room), seq)) in pending.iter().enumerate() {
            if let Err(e) = self.inner.store.advance_cursor(agent, room, *seq).await {
                self.inner
                    .cursors
                    .mark_dirty(pending[i..].iter().map(|(k, _)| k.clone()));
                return Err(e);
            }
        }
        Ok(n)
    }

    /// Run [`Hub::flush_cursors`] every `cursor_flush_ms` until the hub is
    /// dropped.
    pub fn spawn_cursor_flusher(&self) -> tokio::task::JoinHandle<()> {
        let every = Duration::from_millis(self.config().cursor_flush_ms.max(1));
        self.spawn_every(every, |hub| async move {
            if let Err(e) = hub.flush_cursors().await {
                tracing::warn!(error = %e, "cursor flush failed; will retry");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_only_move_forward_and_merge_with_stored_values() {
        let b = CursorBuffer::default();
        assert_eq!(b.ack("a", "r", 5), 5);
        assert_eq!(b.ack("a", "r", 3), 5);
        let view = b.merge("a", HashMap::from([("r".into(), 4), ("s".into(), 9)]));
        assert_eq!(view.get("r"), Some(&5));
        assert_eq!(view.get("s"), Some(&9));
        let dirty = b.take_dirty();
        assert_eq!(dirty, vec![(("a".into(), "r".into()), 5)]);
        assert!(b.take_dirty().is_empty());
    }
}
