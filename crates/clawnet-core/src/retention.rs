//! The retention sweep: messages older than the retention age (and beyond a
//! room's own count limit) are removed, and dedupe keys past their window are
//! forgotten. Durable stores depend on it; the memory store also trims by
//! count on every append.

use std::time::Duration;

use clawnet_proto::GLOBAL_ROOM;

use crate::error::Result;
use crate::hub::Hub;

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Messages removed.
    pub messages: u64,
    /// Dedupe keys forgotten.
    pub dedupe_keys: u64,
}

impl Hub {
    /// One retention pass over every room.
    pub async fn sweep_retention(&self) -> Result<Swept> {
        let now = self.now();
        let cfg = self.config();
        let before = now.saturating_sub(cfg.retention_ms);
        let store = self.store();
        let mut swept = Swept::default();
        swept.messages += store.trim_messages(GLOBAL_ROOM, before, None).await?;
        for room in store.list_rooms().await? {
            swept.messages += store
                .trim_messages(&room.name, before, room.retention)
                .await?;
        }
        swept.dedupe_keys = store
            .expire_dedupe(now.saturating_sub(cfg.dedupe_window_ms))
            .await?;
        Ok(swept)
    }

    /// Run [`Hub::sweep_retention`] every `retention_sweep_ms` until the hub
    /// is dropped. A failed pass is logged and retried at the next tick.
    pub fn spawn_retention_sweeper(&self) -> tokio::task::JoinHandle<()> {
        let every = Duration::from_millis(self.config().retention_sweep_ms.max(100));
        self.spawn_every(every, |hub| async move {
            match hub.sweep_retention().await {
                Ok(s) if s.messages > 0 => tracing::info!(messages = s.messages, "retention sweep"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
            }
        })
    }
}
