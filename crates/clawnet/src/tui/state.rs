//! What the chat screen shows, kept apart from the terminal and the network
//! so it can be tested on its own: the rooms with their timelines and unread
//! counts, who is online, the input line and the status line.

use std::collections::{BTreeMap, BTreeSet};

use clawnet_proto::methods::{PresenceEntry, PresenceStatus, RoomInfo};
use clawnet_proto::tasks::Task;
use clawnet_proto::{Envelope, RoomKind, ToType};
use serde_json::Value;

/// How many lines of history a room loads when it is first shown.
pub const HISTORY: u32 = 50;

/// The DM room key of two agents: `dm:<a>:<b>`, ids sorted bytewise.
pub fn dm_key(a: &str, b: &str) -> String {
    clawnet_proto::dm_room_key(a, b)
}

/// The other party of a DM room key, seen from `me`.
pub fn dm_peer<'a>(key: &'a str, me: &str) -> Option<&'a str> {
    let rest = key.strip_prefix("dm:")?;
    let (a, b) = rest.split_once(':')?;
    Some(if a == me { b } else { a })
}

/// One line of a timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Sort key: the message's `seq`; a note gets the `seq` of the newest
    /// message it follows.
    pub seq: u64,
    /// Milliseconds since the epoch.
    pub ts: u64,
    /// Who said it (`None` for notes of this client, such as task updates).
    pub from: Option<String>,
    /// What was said.
    pub text: String,
    /// Whether this is a stored message (else a local note).
    pub stored: bool,
}

/// One room in the room list, with its timeline.
#[derive(Debug, Clone, Default)]
pub struct Room {
    /// Room key: `global`, a name, or `dm:<a>:<b>`.
    pub key: String,
    /// Messages and notes, oldest first.
    pub entries: Vec<Entry>,
    /// Stored messages seen, by `seq` (to drop the live copy of a message
    /// history already showed, and the other way round).
    seen: BTreeSet<u64>,
    /// Messages that arrived while another room was selected.
    pub unread: usize,
    /// Whether its history has been loaded.
    pub loaded: bool,
}

impl Room {
    fn new(key: &str) -> Self {
        Self {
            key: key.to_owned(),
            ..Self::default()
        }
    }

    /// The newest stored `seq` shown.
    pub fn last_seq(&self) -> u64 {
        self.seen.iter().next_back().copied().unwrap_or(0)
    }

    /// Add a stored message; false if it was already there.
    fn add_message(&mut self, m: &Envelope) -> bool {
        if !self.seen.insert(m.seq) {
            return false;
        }
        let text = if m.deleted {
            "(deleted)".to_owned()
        } else {
            m.text()
                .map(str::to_owned)
                .unwrap_or_else(|| Value::Object(m.payload.clone()).to_string())
        };
        let e = Entry {
            seq: m.seq,
            ts: m.ts,
            from: Some(m.from_handle.clone()),
            text,
            stored: true,
        };
        // Usually the newest; history loaded late goes in its place.
        let at = self.entries.partition_point(|x| x.seq <= m.seq);
        self.entries.insert(at, e);
        true
    }

    fn add_note(&mut self, ts: u64, text: String) {
        self.entries.push(Entry {
            seq: self.last_seq(),
            ts,
            from: None,
            text,
            stored: false,
        });
    }
}

/// The whole screen's state.
#[derive(Debug, Default)]
pub struct State {
    /// Own agent id.
    pub me: String,
    /// Own handle.
    pub handle: String,
    /// Hub URL, for the status line.
    pub url: String,
    /// Rooms in list order: `global`, named rooms, DMs.
    pub rooms: Vec<Room>,
    /// Index of the selected room.
    pub selected: usize,
    /// Lines scrolled up from the bottom of the timeline.
    pub scroll: usize,
    /// Everyone's presence, by agent id.
    pub presence: BTreeMap<String, PresenceEntry>,
    /// The input line.
    pub input: String,
    /// Cursor position in `input`, in chars.
    pub cursor: usize,
    /// Connection state for the status line.
    pub conn: String,
    /// The last error or notice, shown after the connection state.
    pub notice: Option<String>,
    /// Who is typing, per room.
    pub typing: BTreeMap<String, BTreeSet<String>>,
    /// Last state shown per task, so a repeated update is not shown twice.
    tasks: BTreeMap<String, String>,
}

impl State {
    /// A state for agent `me` (`handle`) on the hub at `url`, with `global`.
    pub fn new(me: &str, handle: &str, url: &str) -> Self {
        let mut s = Self {
            me: me.to_owned(),
            handle: handle.to_owned(),
            url: url.to_owned(),
            ..Self::default()
        };
        s.ensure_room("global");
        s.set_connected();
        s
    }

    /// The status line says connected.
    pub fn set_connected(&mut self) {
        self.conn = format!("connected as @{} to {}", self.handle, self.url);
    }

    /// Add the rooms of a room list this agent is a member of (and
    /// `global`).
    pub fn add_rooms(&mut self, rooms: &[RoomInfo]) {
        for r in rooms {
            if r.member || r.kind == RoomKind::Global {
                self.ensure_room(&r.name);
            }
        }
    }

    /// The index of room `key`, added in its place in the list if new.
    /// The selection stays on the room it was on.
    pub fn ensure_room(&mut self, key: &str) -> usize {
        if let Some(i) = self.index(key) {
            return i;
        }
        let selected = self.rooms.get(self.selected).map(|r| r.key.clone());
        self.rooms.push(Room::new(key));
        self.rooms.sort_by_key(|r| (rank(&r.key), r.key.clone()));
        if let Some(sel) = selected {
            self.selected = self.index(&sel).unwrap_or(0);
        }
        self.index(key).unwrap_or(0)
    }

    /// The index of room `key`, if listed.
    pub fn index(&self, key: &str) -> Option<usize> {
        self.rooms.iter().position(|r| r.key == key)
    }

    /// The selected room.
    pub fn current(&self) -> &Room {
        &self.rooms[self.selected.min(self.rooms.len().saturating_sub(1))]
    }

    /// The selected room's key.
    pub fn current_key(&self) -> String {
        self.current().key.clone()
    }

    /// Select room `key` (adding it if needed): its unread count clears and
    /// the timeline goes back to the bottom.
    pub fn select(&mut self, key: &str) {
        let i = self.ensure_room(key);
        self.select_index(i);
    }

    fn select_index(&mut self, i: usize) {
        self.selected = i;
        self.scroll = 0;
        if let Some(r) = self.rooms.get_mut(i) {
            r.unread = 0;
        }
    }

    /// Select the next room (`step` 1) or the previous one (`step` -1),
    /// wrapping around.
    pub fn cycle(&mut self, step: isize) {
        let n = self.rooms.len() as isize;
        if n == 0 {
            return;
        }
        let i = (self.selected as isize + step).rem_euclid(n);
        self.select_index(i as usize);
    }

    /// Scroll the timeline up (positive) or down (negative) by `lines`.
    pub fn scroll_by(&mut self, lines: isize) {
        self.scroll = (self.scroll as isize + lines).max(0) as usize;
    }

    /// A message (live or from history). Counts as unread when it is new,
    /// not our own, and its room is not selected. Returns whether it was new.
    pub fn on_message(&mut self, m: &Envelope) -> bool {
        let i = self.ensure_room(&m.to_id);
        let selected = i == self.selected;
        let mine = m.from_id == self.me;
        let room = &mut self.rooms[i];
        let new = room.add_message(m);
        if new && !selected && !mine {
            room.unread += 1;
        }
        if let Some(t) = self.typing.get_mut(&m.to_id) {
            t.remove(&m.from_handle);
        }
        new
    }

    /// History of `room` arrived (older messages; none counts as unread).
    pub fn on_history(&mut self, room: &str, messages: &[Envelope]) {
        let i = self.ensure_room(room);
        let r = &mut self.rooms[i];
        for m in messages {
            r.add_message(m);
        }
        r.loaded = true;
    }

    /// A presence change or a row of the presence list.
    pub fn on_presence(&mut self, p: PresenceEntry) {
        self.presence.insert(p.agent_id.clone(), p);
    }

    /// Someone started or stopped typing in a room.
    pub fn on_typing(&mut self, room: &str, handle: &str, typing: bool) {
        let set = self.typing.entry(room.to_owned()).or_default();
        if typing {
            set.insert(handle.to_owned());
        } else {
            set.remove(handle);
        }
    }

    /// A `task.updated` event: for tasks this agent dispatched, a note in
    /// the task's origin room (the selected room if it has none listed).
    /// Returns whether a note was added.
    pub fn on_task(&mut self, t: &Task, now: u64) -> bool {
        if t.dispatched_by != self.me {
            return false;
        }
        let state = t.state.as_str();
        if self.tasks.get(&t.task_id).map(String::as_str) == Some(state) {
            return false;
        }
        self.tasks.insert(t.task_id.clone(), state.to_owned());
        let target = self.handle_of(&t.target);
        let mut text = format!("task {} {state} (@{target})", t.task_id);
        if let Some(e) = &t.error {
            text.push_str(&format!(": {e}"));
        } else if let Some(r) = &t.result {
            let r = r
                .get("text")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| r.to_string());
            text.push_str(&format!(": {r}"));
        }
        let room = t
            .origin
            .as_ref()
            .map(|o| o.room.clone())
            .filter(|r| self.index(r).is_some())
            .unwrap_or_else(|| self.current_key());
        let i = self.ensure_room(&room);
        self.rooms[i].add_note(now, text);
        true
    }

    /// A local note in the selected room.
    pub fn note(&mut self, now: u64, text: String) {
        let i = self.selected;
        if let Some(r) = self.rooms.get_mut(i) {
            r.add_note(now, text);
        }
    }

    /// The handle of agent `id` as presence knows it (else the id).
    pub fn handle_of(&self, id: &str) -> String {
        self.presence
            .get(id)
            .map(|p| p.handle.clone())
            .unwrap_or_else(|| id.to_owned())
    }

    /// The agent id of `@handle` (or of a plain id) as presence knows it.
    pub fn agent_of(&self, who: &str) -> Option<String> {
        let h = who.strip_prefix('@').unwrap_or(who);
        self.presence
            .values()
            .find(|p| p.handle == h)
            .or_else(|| self.presence.get(h))
            .map(|p| p.agent_id.clone())
    }

    /// How a room appears in the list: DMs as `@peer`.
    pub fn label(&self, key: &str) -> String {
        match dm_peer(key, &self.me) {
            Some(peer) => format!("@{}", self.handle_of(peer)),
            None => format!("#{key}"),
        }
    }

    /// Where a message to room `key` goes: `to_type` and `to_id`.
    pub fn address(&self, key: &str) -> (ToType, Option<String>) {
        if key == "global" {
            (ToType::Global, None)
        } else if let Some(peer) = dm_peer(key, &self.me) {
            let to = match self.presence.get(peer) {
                Some(p) => format!("@{}", p.handle),
                None => peer.to_owned(),
            };
            (ToType::Dm, Some(to))
        } else {
            (ToType::Room, Some(key.to_owned()))
        }
    }

    /// Presence rows to show: online, then idle, then offline, by handle.
    pub fn presence_rows(&self) -> Vec<&PresenceEntry> {
        let mut rows: Vec<_> = self.presence.values().collect();
        rows.sort_by_key(|p| (status_rank(p.status), p.handle.clone()));
        rows
    }
}

fn rank(key: &str) -> u8 {
    if key == "global" {
        0
    } else if key.starts_with("dm:") {
        2
    } else {
        1
    }
}

fn status_rank(s: PresenceStatus) -> u8 {
    match s {
        PresenceStatus::Online => 0,
        PresenceStatus::Idle => 1,
        PresenceStatus::Offline => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map};

    fn msg(room: &str, seq: u64, from: &str, text: &str) -> Envelope {
        let mut payload = Map::new();
        payload.insert("text".into(), json!(text));
        Envelope {
            id: format!("m{seq}"),
            seq,
            ts: 0,
            from_id: from.into(),
            from_handle: from.into(),
            to_type: ToType::Room,
            to_id: room.into(),
            payload,
            dedupe_key: None,
            thread_id: None,
            reply_to: None,
            mentions: vec![],
            deleted: false,
            deleted_by: None,
            deleted_at: None,
        }
    }

    #[test]
    fn dm_keys_sort_the_ids() {
        assert_eq!(dm_key("zed", "amy"), "dm:amy:zed");
        assert_eq!(dm_key("amy", "zed"), "dm:amy:zed");
        assert_eq!(dm_peer("dm:amy:zed", "amy"), Some("zed"));
        assert_eq!(dm_peer("dm:amy:zed", "zed"), Some("amy"));
        assert_eq!(dm_peer("global", "zed"), None);
    }

    #[test]
    fn rooms_keep_their_order_and_the_selection() {
        let mut s = State::new("w1", "w1", "http://h");
        s.select("beta");
        s.ensure_room("dm:w1:w2");
        s.ensure_room("alpha");
        let keys: Vec<_> = s.rooms.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["global", "alpha", "beta", "dm:w1:w2"]);
        assert_eq!(s.current_key(), "beta");
        s.cycle(1);
        assert_eq!(s.current_key(), "dm:w1:w2");
        s.cycle(1);
        assert_eq!(s.current_key(), "global");
        s.cycle(-1);
        assert_eq!(s.current_key(), "dm:w1:w2");
    }

    #[test]
    fn messages_dedupe_sort_and_count_unread() {
        let mut s = State::new("w1", "w1", "http://h");
        assert!(s.on_message(&msg("global", 3, "w2", "c")));
        assert!(!s.on_message(&msg("global", 3, "w2", "c")));
        s.on_history(
            "global",
            &[msg("global", 1, "w2", "a"), msg("global", 3, "w2", "c")],
        );
        let texts: Vec<_> = s
            .current()
            .entries
            .iter()
            .map(|e| e.text.as_str())
            .collect();
        assert_eq!(texts, ["a", "c"]);
        assert_eq!(s.current().unread, 0);
        s.on_message(&msg("alpha", 1, "w2", "x"));
        s.on_message(&msg("alpha", 2, "w1", "mine"));
        assert_eq!(s.rooms[s.index("alpha").expect("alpha")].unread, 1);
        s.select("alpha");
        assert_eq!(s.current().unread, 0);
    }

    #[test]
    fn dms_are_addressed_by_handle() {
        let mut s = State::new("w1", "w1", "http://h");
        s.on_presence(PresenceEntry {
            agent_id: "a2".into(),
            handle: "bob".into(),
            status: PresenceStatus::Online,
            connections: 1,
            activity: None,
            meta: None,
            since: 0,
        });
        assert_eq!(s.agent_of("@bob").as_deref(), Some("a2"));
        let key = dm_key("w1", "a2");
        assert_eq!(s.label(&key), "@bob");
        assert_eq!(s.address(&key), (ToType::Dm, Some("@bob".into())));
        assert_eq!(s.address("global"), (ToType::Global, None));
        assert_eq!(s.address("alpha"), (ToType::Room, Some("alpha".into())));
    }
}
