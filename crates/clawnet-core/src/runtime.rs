//! Runtime settings: the few limits a master may change while the hub runs
//! (`GET`/`PATCH /api/v1/settings`), without a restart.
//!
//! [`HubConfig`] is fixed once the hub is built. The values here start from
//! it, are overridden at build by what the store keeps under
//! `runtime.<name>` (so a change survives a restart), and are read live by
//! the code that applies them (dispatch limits, typing, the defender). Each
//! value is an atomic: a read on a hot path costs one load.
//!
//! A change is validated in full before anything is written, so a bad value
//! leaves every setting as it was (see [`Hub::change_settings`]).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use serde_json::{json, Map, Value};

use crate::config::HubConfig;
use crate::defense::DefenderMode;
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::store::Store;

/// Prefix of the store keys runtime settings are kept under.
pub const STORE_PREFIX: &str = "runtime.";

/// The names of the runtime settings, in the order they are shown.
pub const NAMES: &[&str] = &[
    "tasks.dispatches_per_minute",
    "tasks.max_pending",
    "chat.typing_min_interval_ms",
    "defender.mode",
];

/// Largest `tasks.dispatches_per_minute` and `tasks.max_pending`.
pub const MAX_TASK_LIMIT: u64 = 1_000_000;
/// Largest `chat.typing_min_interval_ms` (one minute).
pub const MAX_TYPING_INTERVAL_MS: u64 = 60_000;

/// The live values (see the module docs).
#[derive(Debug)]
pub struct RuntimeSettings {
    dispatches_per_minute: AtomicU32,
    max_pending: AtomicU32,
    typing_min_interval_ms: AtomicU64,
    defender_mode: AtomicU8,
}

/// One validated value, ready to apply.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Setting {
    DispatchesPerMinute(u32),
    MaxPending(u32),
    TypingMinIntervalMs(u64),
    DefenderMode(DefenderMode),
}

fn mode_code(m: DefenderMode) -> u8 {
    match m {
        DefenderMode::Off => 0,
        DefenderMode::AuditOnly => 1,
        DefenderMode::Enforce => 2,
    }
}

fn mode_of(code: u8) -> DefenderMode {
    match code {
        0 => DefenderMode::Off,
        1 => DefenderMode::AuditOnly,
        _ => DefenderMode::Enforce,
    }
}

/// The wire name of a defender mode.
pub fn mode_name(m: DefenderMode) -> &'static str {
    match m {
        DefenderMode::Off => "off",
        DefenderMode::AuditOnly => "audit",
        DefenderMode::Enforce => "enforce",
    }
}

fn int_in(key: &str, v: &Value, max: u64) -> Result<u64> {
    match v.as_u64() {
        Some(n) if n <= max => Ok(n),
        _ => Err(Error::invalid(
            key,
            format!("{key} must be an integer in 0..={max}"),
        )),
    }
}

impl Setting {
    /// Validate one `key: value` pair.
    fn parse(key: &str, v: &Value) -> Result<Self> {
        Ok(match key {
            "tasks.dispatches_per_minute" => {
                Self::DispatchesPerMinute(int_in(key, v, MAX_TASK_LIMIT)? as u32)
            }
            "tasks.max_pending" => Self::MaxPending(int_in(key, v, MAX_TASK_LIMIT)? as u32),
            "chat.typing_min_interval_ms" => {
                Self::TypingMinIntervalMs(int_in(key, v, MAX_TYPING_INTERVAL_MS)?)
            }
            "defender.mode" => {
                let m = v.as_str().and_then(DefenderMode::parse).ok_or_else(|| {
                    Error::invalid(key, "defender.mode must be off, audit or enforce")
                })?;
                Self::DefenderMode(m)
            }
            _ => {
                return Err(Error::invalid(
                    key,
                    format!(
                        "unknown setting '{key}'; runtime settings are {}",
                        NAMES.join(", ")
                    ),
                ))
            }
        })
    }
}

impl RuntimeSettings {
    /// The values of a configuration.
    pub fn from_config(cfg: &HubConfig) -> Self {
        Self {
            dispatches_per_minute: AtomicU32::new(cfg.tasks.dispatches_per_minute),
            max_pending: AtomicU32::new(cfg.tasks.max_pending),
            typing_min_interval_ms: AtomicU64::new(cfg.typing_min_interval_ms),
            defender_mode: AtomicU8::new(mode_code(cfg.defender.mode)),
        }
    }

    /// Apply what the store keeps under `runtime.<name>`. A stored value
    /// that no longer validates is ignored with a warning (the configured
    /// value stays), so a bad row never stops the hub from starting.
    pub(crate) async fn load(&self, store: &dyn Store) -> Result<()> {
        for name in NAMES {
            let Some(v) = store.get_setting(&format!("{STORE_PREFIX}{name}")).await? else {
                continue;
            };
            match Setting::parse(name, &v) {
                Ok(s) => self.apply(s),
                Err(e) => {
                    tracing::warn!(setting = name, error = %e.message, "stored runtime setting ignored")
                }
            }
        }
        Ok(())
    }

    fn apply(&self, s: Setting) {
        match s {
            Setting::DispatchesPerMinute(n) => {
                self.dispatches_per_minute.store(n, Ordering::Relaxed)
            }
            Setting::MaxPending(n) => self.max_pending.store(n, Ordering::Relaxed),
            Setting::TypingMinIntervalMs(n) => {
                self.typing_min_interval_ms.store(n, Ordering::Relaxed)
            }
            Setting::DefenderMode(m) => self.defender_mode.store(mode_code(m), Ordering::Relaxed),
        }
    }

    /// Dispatches per minute per dispatcher; 0 = unlimited.
    pub fn dispatches_per_minute(&self) -> u32 {
        self.dispatches_per_minute.load(Ordering::Relaxed)
    }

    /// Queued plus delayed tasks per target at most; 0 = unlimited.
    pub fn max_pending(&self) -> u32 {
        self.max_pending.load(Ordering::Relaxed)
    }

    /// One typing event per agent and room per this interval.
    pub fn typing_min_interval_ms(&self) -> u64 {
        self.typing_min_interval_ms.load(Ordering::Relaxed)
    }

    /// Whether and how the defender screens content.
    pub fn defender_mode(&self) -> DefenderMode {
        mode_of(self.defender_mode.load(Ordering::Relaxed))
    }

    /// Every setting by name, as shown by `GET /api/v1/settings`.
    pub fn snapshot(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for name in NAMES {
            m.insert((*name).to_owned(), self.value(name));
        }
        m
    }

    fn value(&self, name: &str) -> Value {
        match name {
            "tasks.dispatches_per_minute" => json!(self.dispatches_per_minute()),
            "tasks.max_pending" => json!(self.max_pending()),
            "chat.typing_min_interval_ms" => json!(self.typing_min_interval_ms()),
            "defender.mode" => json!(mode_name(self.defender_mode())),
            _ => Value::Null,
        }
    }
}

impl Hub {
    /// The live runtime settings.
    pub fn runtime(&self) -> &RuntimeSettings {
        &self.inner.runtime
    }

    /// The runtime settings (master and warden).
    pub async fn settings(&self, actor: &str) -> Result<Map<String, Value>> {
        let me = self.agent(actor).await?;
        if !me.role.reads_everything() {
            return self
                .refuse(
                    actor,
                    "settings.read",
                    "settings",
                    "reading settings needs master or warden".into(),
                )
                .await;
        }
        Ok(self.inner.runtime.snapshot())
    }

    /// Change runtime settings (master). Every pair is validated before any
    /// is written: an unknown key or a bad value is `invalid` naming the key
    /// and changes nothing. Each changed value is stored under
    /// `runtime.<name>`, applied, and audited (`settings.change`, with the
    /// old and new values). Returns every setting after the change.
    pub async fn change_settings(
        &self,
        actor: &str,
        changes: Map<String, Value>,
    ) -> Result<Map<String, Value>> {
        let parsed = changes
            .iter()
            .map(|(k, v)| Setting::parse(k, v).map(|s| (k.as_str(), s)))
            .collect::<Result<Vec<_>>>()?;
        self.require_master(actor, "settings.change", "settings")
            .await?;
        let rt = &self.inner.runtime;
        let mut old = Map::new();
        let mut new = Map::new();
        for (key, s) in parsed {
            let before = rt.value(key);
            // Stored first: a store failure leaves the live value alone.
            self.inner
                .store
                .set_setting(&format!("{STORE_PREFIX}{key}"), changes[key].clone())
                .await?;
            rt.apply(s);
            let after = rt.value(key);
            if before != after {
                old.insert(key.to_owned(), before);
                new.insert(key.to_owned(), after);
            }
        }
        if !new.is_empty() {
            self.audit(
                "settings",
                actor,
                "settings.change",
                "settings",
                None,
                json!({"old": old, "new": new}),
            )
            .await;
        }
        Ok(rt.snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_by_key() {
        assert!(Setting::parse("tasks.max_pending", &json!(5)).is_ok());
        assert!(Setting::parse("tasks.max_pending", &json!(-1)).is_err());
        assert!(Setting::parse("tasks.max_pending", &json!("5")).is_err());
        assert!(Setting::parse("chat.typing_min_interval_ms", &json!(60_001)).is_err());
        assert_eq!(
            Setting::parse("defender.mode", &json!("audit")).ok(),
            Some(Setting::DefenderMode(DefenderMode::AuditOnly))
        );
        let e = Setting::parse("nope", &json!(1)).expect_err("unknown");
        assert_eq!(e.code.as_str(), "invalid");
        assert!(e.message.contains("nope"));
    }

    #[test]
    fn the_snapshot_starts_from_the_config() {
        let rt = RuntimeSettings::from_config(&HubConfig::default());
        let s = rt.snapshot();
        assert_eq!(s["tasks.dispatches_per_minute"], 10);
        assert_eq!(s["tasks.max_pending"], 50);
        assert_eq!(s["chat.typing_min_interval_ms"], 500);
        assert_eq!(s.len(), NAMES.len());
    }
}
