//! The sender dedupe window kept in memory: `(from_id, dedupe_key)` to what
//! the original send became, forgetting keys past the window or beyond a size
//! bound, oldest first. Shared by stores that keep their dedupe state in
//! process (memory, and SQLite, which rebuilds it from its messages at open).

use std::collections::{HashMap, VecDeque};

/// `(from_id, dedupe_key)`.
pub type DedupeKey = (String, String);

/// Keys seen recently and what they map to.
#[derive(Debug)]
pub struct DedupeWindow<V> {
    map: HashMap<DedupeKey, (u64, V)>,
    order: VecDeque<(u64, DedupeKey)>,
}

impl<V> Default for DedupeWindow<V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<V> DedupeWindow<V> {
    /// Forget keys older than `window_ms` before `now`, and the oldest keys
    /// beyond `cap`.
    pub fn expire(&mut self, now: u64, window_ms: u64, cap: usize) {
        while let Some((ts, _)) = self.order.front() {
            let old = now.saturating_sub(*ts) >= window_ms;
            if !old && self.order.len() <= cap {
                break;
            }
            if let Some((ts, key)) = self.order.pop_front() {
                // Drop the map entry only if this order slot made it.
                if self.map.get(&key).is_some_and(|(t, _)| *t == ts) {
                    self.map.remove(&key);
                }
            }
        }
    }

    /// What `key` maps to, if remembered.
    pub fn get(&self, key: &DedupeKey) -> Option<&V> {
        self.map.get(key).map(|(_, v)| v)
    }

    /// Remember `key` as seen at `ts`.
    pub fn insert(&mut self, key: DedupeKey, ts: u64, value: V) {
        self.order.push_back((ts, key.clone()));
        self.map.insert(key, (ts, value));
    }

    /// Forget `key`.
    pub fn remove(&mut self, key: &DedupeKey) {
        self.map.remove(key);
    }

    /// Forget every key seen before `before_ts`; returns how many.
    pub fn expire_before(&mut self, before_ts: u64) -> u64 {
        let before = self.map.len();
        self.map.retain(|_, (ts, _)| *ts >= before_ts);
        self.order.retain(|(ts, _)| *ts >= before_ts);
        (before - self.map.len()) as u64
    }

    /// Number of keys remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> DedupeKey {
        ("a".into(), s.into())
    }

    #[test]
    fn keys_expire_by_age_and_by_count() {
        let mut w = DedupeWindow::default();
        w.insert(k("1"), 0, 1);
        w.insert(k("2"), 50, 2);
        w.insert(k("3"), 90, 3);
        w.expire(100, 60, 10);
        assert!(w.get(&k("1")).is_none(), "older than the window");
        assert_eq!(w.get(&k("2")), Some(&2));
        w.expire(100, 60, 1);
        assert!(w.get(&k("2")).is_none(), "beyond the size bound");
        assert_eq!(w.get(&k("3")), Some(&3));
        assert_eq!(w.expire_before(95), 1);
        assert!(w.is_empty());
    }
}
