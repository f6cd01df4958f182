//! Sending, reading and acknowledging messages; typing indicators.

use std::collections::BTreeMap;
use std::sync::Arc;

use clawnet_proto::guard::HeldItem;
use clawnet_proto::ids::dm_room_key;
use clawnet_proto::methods::{events, HistoryResult, MentionEvent, SendParams, TypingEvent};
use clawnet_proto::{Envelope, RoomKind, ToType, GLOBAL_ROOM};
use serde_json::{json, Map, Value};

use crate::bus::Target;
use crate::error::{Error, Result};
use crate::frames::{envelope_json, event_frame, message_frame};
use crate::hub::Hub;
use crate::mentions;
use crate::store::{AppendLimits, Appended, MessageDraft};

/// Longest a send's ACK is held back for a slow reader of its room.
pub const MAX_PACE: std::time::Duration = std::time::Duration::from_millis(50);

/// Longest accepted `dedupe_key`, `thread_id` or `reply_to`.
pub const MAX_KEY_LEN: usize = 128;

/// The result of a send.
#[derive(Debug, Clone)]
pub struct SendOutcome {
    /// The stored envelope (the original one for a duplicate).
    pub message: Arc<Envelope>,
    /// Its JSON text, built once and reused by every surface.
    pub json: String,
    /// Whether this send was a retry of an earlier one.
    pub duplicate: bool,
}

/// Depth of a JSON value (a scalar is 0, `{}` is 1).
fn json_depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(json_depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

pub(crate) fn check_key(field: &str, v: &Option<String>) -> Result<()> {
    match v {
        Some(s) if s.is_empty() || s.len() > MAX_KEY_LEN || s.chars().any(char::is_control) => {
            Err(Error::invalid(
                field,
                format!("{field} must be 1..={MAX_KEY_LEN} bytes without control characters"),
            ))
        }
        _ => Ok(()),
    }
}

impl Hub {
    pub(crate) fn check_payload(&self, payload: &Map<String, Value>) -> Result<()> {
        let cfg = &self.inner.cfg;
        let depth = 1 + payload.values().map(json_depth).max().unwrap_or(0);
        if depth > cfg.max_json_depth {
            return Err(Error::invalid(
                "payload",
                format!(
                    "payload nests {depth} levels deep; the limit is {}",
                    cfg.max_json_depth
                ),
            ));
        }
        // Counted as it is written, without keeping the text.
        let mut size = ByteCount(0);
        let size = serde_json::to_writer(&mut size, payload)
            .map(|()| size.0)
            .unwrap_or(usize::MAX);
        if size > cfg.max_payload_bytes {
            return Err(Error::too_large(
                "payload",
                format!(
                    "payload is {size} bytes; the limit is {} bytes",
                    cfg.max_payload_bytes
                ),
            ));
        }
        if let Some(t) = payload.get("text") {
            if !t.is_string() {
                return Err(Error::invalid(
                    "payload.text",
                    "payload.text must be a string",
                ));
            }
        }
        Ok(())
    }

    /// Send a message. The outcome is returned only after the store accepted
    /// it; a retry with the same `dedupe_key` inside the window returns the
    /// original and stores nothing.
    pub async fn send(&self, actor: &str, p: SendParams) -> Result<SendOutcome> {
        self.send_as(actor, p, true).await
    }

    /// [`Hub::send`] without the defend step: a quarantined message a
    /// reviewer approved.
    pub(crate) async fn send_screened(&self, actor: &str, p: SendParams) -> Result<SendOutcome> {
        self.send_as(actor, p, false).await
    }

    async fn send_as(&self, actor: &str, p: SendParams, defend: bool) -> Result<SendOutcome> {
        self.check_payload(&p.payload)?;
        check_key("dedupe_key", &p.dedupe_key)?;
        check_key("thread_id", &p.thread_id)?;
        check_key("reply_to", &p.reply_to)?;
        let me = self.agent(actor).await?;

        let room = match p.to_type {
            ToType::Global => GLOBAL_ROOM.to_owned(),
            ToType::Room => {
                let name = p
                    .to_id
                    .as_deref()
                    .ok_or_else(|| Error::invalid("to_id", "to_id names the room"))?;
                let r = self.readable_room(&me, name).await?;
                if r.kind != RoomKind::Room {
                    return Err(Error::invalid(
                        "to_type",
                        format!("'{name}' is not a named room; use to_type global or dm"),
                    ));
                }
                if !self.may_post(&me, &r).await? {
                    return self
                        .refuse(
                            actor,
                            "chat.send",
                            name,
                            format!("join room '{name}' before posting to it"),
                        )
                        .await;
                }
                r.name
            }
            ToType::Dm => {
                let who = p.to_id.as_deref().ok_or_else(|| {
                    Error::invalid("to_id", "to_id names the other agent (id or @handle)")
                })?;
                let other = self.resolve_agent(who).await?;
                if other.agent_id == me.agent_id {
                    return Err(Error::invalid("to_id", "a DM needs another agent"));
                }
                let key = dm_room_key(&me.agent_id, &other.agent_id);
                self.ensure_dm(&key, &me.agent_id, &other.agent_id).await?;
                key
            }
        };

        let mut mentions = Vec::new();
        if let Some(text) = p.payload.get("text").and_then(Value::as_str) {
            for h in mentions::parse(text) {
                if let Some(a) = self.inner.store.find_agent_by_handle(&h).await? {
                    mentions.push(a.agent_id);
                }
            }
        }

        if defend {
            self.defend(
                actor,
                "chat",
                &p.payload,
                Some(|| HeldItem::Chat { params: p.clone() }),
            )
            .await?;
        }

        let retention = match p.to_type {
            ToType::Room => self
                .room_record(&room)
                .await?
                .and_then(|r| r.retention)
                .unwrap_or(self.inner.cfg.retention_messages),
            _ => self.inner.cfg.retention_messages,
        };
        let now = self.now();
        let draft = MessageDraft {
            id: self.inner.ids.next(now),
            ts: now,
            from_id: me.agent_id.clone(),
            from_handle: me.handle.clone(),
            to_type: p.to_type,
            room: room.clone(),
            payload: p.payload,
            dedupe_key: p.dedupe_key,
            thread_id: p.thread_id,
            reply_to: p.reply_to,
            mentions,
        };
        let limits = AppendLimits {
            dedupe_window_ms: self.inner.cfg.dedupe_window_ms,
            dedupe_max_entries: self.inner.cfg.dedupe_max_entries,
            retention,
        };
        match self.inner.store.append_message(draft, limits).await? {
            Appended::Duplicate(env) => Ok(SendOutcome {
                json: envelope_json(&env),
                message: env,
                duplicate: true,
            }),
            Appended::New(env) => {
                let json = envelope_json(&env);
                self.publish_ordered(&room, message_frame(&env, &json));
                self.pace(&room).await;
                crate::metrics::message_accepted();
                self.notify_mentions(&env).await?;
                self.after_message(&env);
                self.audit(
                    "chat",
                    actor,
                    "chat.send",
                    &room,
                    None,
                    json!({"id": env.id, "seq": env.seq}),
                )
                .await;
                Ok(SendOutcome {
                    message: env,
                    json,
                    duplicate: false,
                })
            }
        }
    }

    /// Hold the sender's ACK while a subscriber of the room is behind, for
    /// at most [`MAX_PACE`]: flow control for readers that are slow but
    /// moving (see [`crate::fanout`]).
    async fn pace(&self, room: &str) {
        let start = tokio::time::Instant::now();
        while self.inner.fanout.room_pressure(room, self.now()) && start.elapsed() < MAX_PACE {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    async fn notify_mentions(&self, env: &Envelope) -> Result<()> {
        for agent in &env.mentions {
            // Only members receive the room's messages, so only they get the
            // mention; anyone else learns nothing about the room.
            let member = self.is_member_of(&env.to_id, agent).await?;
            if agent == &env.from_id || !member {
                continue;
            }
            let ev = MentionEvent {
                room: env.to_id.clone(),
                seq: env.seq,
                message_id: env.id.clone(),
                from_id: env.from_id.clone(),
                from_handle: env.from_handle.clone(),
            };
            self.publish_frame(
                Target::Agent(Arc::from(agent.as_str())),
                None,
                event_frame(events::MENTION, Some(&env.to_id), &ev),
            );
        }
        Ok(())
    }

    /// Read a room's history: messages with `seq > after_seq`, oldest first.
    pub async fn history(
        &self,
        actor: &str,
        room: &str,
        after_seq: u64,
        limit: Option<u32>,
    ) -> Result<HistoryResult> {
        let me = self.agent(actor).await?;
        self.readable_room(&me, room).await?;
        let max = self.inner.cfg.history_max_limit;
        let limit = limit.unwrap_or(100);
        if limit == 0 || limit > max {
            return Err(Error::invalid("limit", format!("limit must be 1..={max}")));
        }
        let page = self
            .inner
            .store
            .history(room, after_seq, limit as usize)
            .await?;
        Ok(HistoryResult {
            messages: page.messages.iter().map(|m| (**m).clone()).collect(),
            first_available_seq: page.first_available_seq,
            last_seq: page.last_seq,
            has_more: page.has_more,
        })
    }

    /// Acknowledge everything up to `seq` in `room` as processed (cumulative;
    /// an older ack does not move the cursor back).
    pub async fn ack(&self, actor: &str, room: &str, seq: u64) -> Result<u64> {
        let done = self
            .ack_many(actor, BTreeMap::from([(room.to_owned(), seq)]))
            .await?;
        Ok(done.get(room).copied().unwrap_or(seq))
    }

    /// Acknowledge several rooms at once. Every entry is checked before any
    /// cursor moves, so a refused ack changes nothing. Cursors reach the
    /// store within `cursor_flush_ms` (see [`crate::cursors`]).
    pub async fn ack_many(
        &self,
        actor: &str,
        acks: BTreeMap<String, u64>,
    ) -> Result<BTreeMap<String, u64>> {
        let me = self.agent(actor).await?;
        for (room, &seq) in &acks {
            self.readable_room(&me, room).await?;
            // Other nodes may have published further; only then ask the store.
            let last = match self.published_seq(room) {
                Some(l) if l >= seq => l,
                _ => self.inner.store.last_seq(room).await?,
            };
            if seq > last {
                return Err(Error::invalid(
                    "seq",
                    format!("seq {seq} in '{room}' is beyond the room's last seq {last}"),
                ));
            }
        }
        Ok(acks
            .into_iter()
            .map(|(room, seq)| {
                let now = self.inner.cursors.ack(actor, &room, seq);
                (room, now)
            })
            .collect())
    }

    /// Tell the other members of a room that `actor` is (not) typing.
    /// Ephemeral: never stored, never replayed.
    pub async fn typing(&self, actor: &str, room: &str, typing: bool) -> Result<()> {
        let me = self.agent(actor).await?;
        let r = self.readable_room(&me, room).await?;
        if !self.is_member(&r, actor).await? {
            return Err(Error::forbidden(format!("not a member of '{room}'")));
        }
        let now = self.now();
        {
            let mut t = self.inner.typing.lock();
            let key = (actor.to_owned(), room.to_owned());
            let min = self.inner.runtime.typing_min_interval_ms();
            if let Some(&last) = t.get(&key) {
                let since = now.saturating_sub(last);
                if since < min {
                    return Err(Error::rate_limited(
                        "typing events are limited per room",
                        min - since,
                    ));
                }
            }
            t.insert(key, now);
        }
        let ev = TypingEvent {
            room: room.to_owned(),
            from_id: me.agent_id.clone(),
            from_handle: me.handle.clone(),
            typing,
        };
        self.publish_frame(
            Target::Room(Arc::from(room)),
            Some(Arc::from(actor)),
            event_frame(events::TYPING, Some(room), &ev),
        );
        Ok(())
    }
}

/// An `io::Write` that only counts the bytes written to it.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_size_is_the_length_of_its_json_text() {
        let payload =
            serde_json::json!({"text": "héllo \"x\"\n", "n": [1, 2.5, null], "o": {"k": true}});
        let text = serde_json::to_vec(&payload).expect("json");
        let mut n = ByteCount(0);
        serde_json::to_writer(&mut n, &payload).expect("count");
        assert_eq!(n.0, text.len());
    }

    #[test]
    fn depth_counts_nesting() {
        assert_eq!(json_depth(&serde_json::json!(1)), 0);
        assert_eq!(json_depth(&serde_json::json!({"a":[{"b":1}]})), 3);
    }
}
