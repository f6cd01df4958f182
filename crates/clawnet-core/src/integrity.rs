//! Host integrity: the hashes of the hub's binary and configuration, taken
//! at start and checked again on an interval. A change (a replaced binary,
//! an edited config) is posted to the alert room and written to the audit
//! trail once per change; the new hash becomes the reference, so the next
//! check does not repeat the alert.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::hub::Hub;

/// What to watch and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegritySettings {
    /// Files to watch (the binary and the config file, set by `serve`).
    pub files: Vec<PathBuf>,
    /// How often they are hashed again.
    pub interval_ms: u64,
}

impl Default for IntegritySettings {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            interval_ms: 60_000,
        }
    }
}

/// SHA-256 hex of a file, or why it could not be read.
fn hash_file(p: &Path) -> String {
    match std::fs::read(p) {
        Ok(bytes) => hex::encode(Sha256::digest(&bytes)),
        Err(e) => format!("unreadable: {}", e.kind()),
    }
}

impl Hub {
    /// Hash the watched files and re-check them on the interval. The first
    /// hashing runs on the blocking pool, off the start-up path (a debug
    /// binary is hundreds of megabytes). Does nothing when no file is
    /// watched.
    pub fn spawn_integrity_watch(&self) -> Option<tokio::task::JoinHandle<()>> {
        let cfg = self.inner.cfg.integrity.clone();
        if cfg.files.is_empty() {
            return None;
        }
        let files = cfg.files.clone();
        let known: Arc<Mutex<Option<Vec<String>>>> = Arc::default();
        let every = Duration::from_millis(cfg.interval_ms.max(10));
        Some(self.spawn_every(every, move |hub| {
            let (known, files) = (known.clone(), files.clone());
            async move {
                let paths = files.clone();
                let now = tokio::task::spawn_blocking(move || {
                    paths.iter().map(|p| hash_file(p)).collect::<Vec<_>>()
                })
                .await
                .unwrap_or_default();
                let was = known.lock().replace(now.clone());
                let Some(was) = was else {
                    return;
                };
                for ((path, was), now) in files.iter().zip(&was).zip(&now) {
                    if was != now {
                        hub.integrity_changed(path, was, now).await;
                    }
                }
            }
        }))
    }

    async fn integrity_changed(&self, path: &Path, was: &str, now: &str) {
        let shown = path.display().to_string();
        tracing::warn!(file = %shown, was, now, "watched file changed");
        self.audit(
            "integrity",
            crate::hub::SYSTEM_AGENT,
            "integrity.changed",
            &shown,
            Some("the file's hash differs from the one taken at start".into()),
            json!({"was": was, "now": now}),
        )
        .await;
        let mut payload = Map::new();
        payload.insert(
            "text".into(),
            Value::String(format!(
                "integrity alert: {shown} changed since the hub started (sha256 {} → {})",
                &was.get(..12).unwrap_or(was),
                &now.get(..12).unwrap_or(now)
            )),
        );
        payload.insert("kind".into(), Value::String("integrity.changed".into()));
        payload.insert("file".into(), Value::String(shown));
        let room = self.inner.cfg.tasks.alert_room.clone();
        if let Err(e) = self.post_as_hub(&room, payload).await {
            tracing::error!(error = %e, "integrity alert not posted");
        }
    }
}
