//! A cache of room records and memberships in front of the store.
//!
//! Every send, ack and history read checks the room and the caller's
//! membership; with a durable store each check was a database read, three per
//! send. Room records never change once created (rooms are not deleted in
//! this version), so they are cached for good. Member sets are cached per
//! room, dropped whenever this node changes them, and reloaded after
//! [`MEMBERS_TTL_MS`] so that changes made by another node sharing the store
//! are seen within that time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::store::RoomRecord;

/// How long a cached member set is trusted.
pub const MEMBERS_TTL_MS: u64 = 2000;

/// A member set and when it was loaded (ms).
type Members = (u64, Arc<HashSet<String>>);

/// Cached room records and member sets.
#[derive(Debug, Default)]
pub struct Directory {
    rooms: RwLock<HashMap<String, Arc<RoomRecord>>>,
    members: RwLock<HashMap<String, Members>>,
}

impl Directory {
    /// A cached room record.
    pub fn room(&self, name: &str) -> Option<Arc<RoomRecord>> {
        self.rooms.read().get(name).cloned()
    }

    /// Remember a room record.
    pub fn put_room(&self, rec: RoomRecord) -> Arc<RoomRecord> {
        let rec = Arc::new(rec);
        self.rooms.write().insert(rec.name.clone(), rec.clone());
        rec
    }

    /// A member set loaded no earlier than `now - MEMBERS_TTL_MS`.
    pub fn members(&self, room: &str, now: u64) -> Option<Arc<HashSet<String>>> {
        let m = self.members.read();
        let (at, set) = m.get(room)?;
        (now.saturating_sub(*at) < MEMBERS_TTL_MS).then(|| set.clone())
    }

    /// Remember a member set loaded at `now`.
    pub fn put_members(&self, room: &str, set: HashSet<String>, now: u64) -> Arc<HashSet<String>> {
        let set = Arc::new(set);
        self.members
            .write()
            .insert(room.to_owned(), (now, set.clone()));
        set
    }

    /// Forget a room, record and members (it was deleted).
    pub fn forget_room(&self, room: &str) {
        self.rooms.write().remove(room);
        self.members.write().remove(room);
    }

    /// Forget a room's member set (it changed).
    pub fn forget_members(&self, room: &str) {
        self.members.write().remove(room);
    }
}
