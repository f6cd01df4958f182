//! Per-room delivery cursors, shared between the session task and its handle.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// The highest `seq` handed to the application, per room.
///
/// It is both the client-side dedupe filter (after a reconnect the hub replays
/// from the cursor it was given, and anything at or below what the app already
/// has is a redelivery) and the `resume` sent on the next `connect`.
#[derive(Debug, Clone, Default)]
pub(crate) struct CursorBook {
    inner: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl CursorBook {
    /// A book starting at the given cursors.
    pub(crate) fn new(initial: BTreeMap<String, u64>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(initial)),
        }
    }

    /// Whether `seq` in `room` has not been delivered yet.
    pub(crate) fn is_new(&self, room: &str, seq: u64) -> bool {
        self.inner.lock().get(room).is_none_or(|&last| seq > last)
    }

    /// Record that `seq` in `room` was delivered; never moves a cursor back.
    pub(crate) fn advance(&self, room: &str, seq: u64) {
        let mut map = self.inner.lock();
        let last = map.entry(room.to_owned()).or_insert(0);
        *last = (*last).max(seq);
    }

    /// Forget the cursor of a room (the hub's history restarted).
    pub(crate) fn reset(&self, room: &str) {
        self.inner.lock().remove(room);
    }

    /// A copy of all cursors.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, u64> {
        self.inner.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redeliveries_are_recognised() {
        let book = CursorBook::new(BTreeMap::from([("global".to_owned(), 5)]));
        assert!(!book.is_new("global", 4));
        assert!(!book.is_new("global", 5));
        assert!(book.is_new("global", 6));
        assert!(book.is_new("dev", 1));

        book.advance("global", 6);
        book.advance("dev", 3);
        assert!(!book.is_new("global", 6));
        assert!(!book.is_new("dev", 2));
    }

    #[test]
    fn cursors_never_move_back() {
        let book = CursorBook::default();
        book.advance("r", 9);
        book.advance("r", 7);
        assert_eq!(book.snapshot(), BTreeMap::from([("r".to_owned(), 9)]));
    }

    #[test]
    fn clones_share_state() {
        let a = CursorBook::default();
        let b = a.clone();
        a.advance("r", 1);
        assert_eq!(b.snapshot().get("r"), Some(&1));
    }
}
