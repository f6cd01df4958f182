//! Message deletion: by the sender or master, leaving a tombstone.
//!
//! History keeps the message's place (`seq` stays gapless, so cursors and
//! replay are untouched) with the payload emptied and `deleted`,
//! `deleted_by`, `deleted_at` set. Members still connected get a
//! `message.deleted` event; one replaying later reads the tombstone.

use std::sync::Arc;

use clawnet_proto::guard::MessageDeletedEvent;
use clawnet_proto::methods::events;
use clawnet_proto::{Envelope, Role};
use serde_json::json;

use crate::bus::Target;
use crate::error::{Error, Result};
use crate::frames::event_frame;
use crate::hub::Hub;

impl Hub {
    /// Delete message `seq` of `room`; returns its tombstone.
    pub async fn delete_message(&self, actor: &str, room: &str, seq: u64) -> Result<Envelope> {
        if seq == 0 {
            return Err(Error::invalid("seq", "seq starts at 1"));
        }
        let me = self.agent(actor).await?;
        if room != clawnet_proto::GLOBAL_ROOM {
            self.readable_room(&me, room).await?;
        }
        let page = self.inner.store.history(room, seq - 1, 1).await?;
        let Some(env) = page.messages.first().filter(|m| m.seq == seq) else {
            return Err(Error::not_found(format!("no message {seq} in '{room}'")));
        };
        if env.from_id != me.agent_id && me.role != Role::Master {
            return self
                .refuse(
                    actor,
                    "message.delete",
                    &format!("{room}#{seq}"),
                    "only the sender or master may delete a message".into(),
                )
                .await;
        }
        if env.deleted {
            return Ok((**env).clone());
        }
        let now = self.now();
        let tomb = self
            .inner
            .store
            .delete_message(room, seq, actor, now)
            .await?
            .ok_or_else(|| Error::not_found(format!("no message {seq} in '{room}'")))?;
        let ev = MessageDeletedEvent {
            room: room.to_owned(),
            seq,
            id: tomb.id.clone(),
            deleted_by: actor.to_owned(),
            deleted_at: now,
        };
        self.publish_frame(
            Target::Room(Arc::from(room)),
            None,
            event_frame(events::MESSAGE_DELETED, Some(room), &ev),
        );
        self.audit(
            "chat",
            actor,
            "message.delete",
            &format!("{room}#{seq}"),
            None,
            json!({"id": tomb.id, "from_id": env.from_id}),
        )
        .await;
        Ok(tomb)
    }
}
