//! Repeatable tasks on cron expressions (SPEC §5).
//!
//! Schedules are one setting (`tasks.schedules`, a JSON list), so they are
//! durable on every store without a table of their own and survive a
//! restart. The task sweep fires the ones that came due: each occurrence is
//! dispatched with the dedupe key `schedule:<id>:<occurrence>`, so two nodes
//! (or a restart in the middle) firing the same occurrence make one task.
//! An occurrence missed while the hub was down fires once at start, not once
//! per missed occurrence.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use clawnet_proto::guard::HeldItem;
use clawnet_proto::tasks::{
    DispatchParams, Schedule, ScheduleCreated, ScheduleList, ScheduleParams,
};
use clawnet_proto::Role;
use croner::Cron;
use serde_json::json;

use crate::error::{Error, Result};
use crate::hub::Hub;

const SCHEDULES_KEY: &str = "tasks.schedules";
/// Most schedules a hub keeps.
pub const MAX_SCHEDULES: usize = 1000;
const MAX_NAME_LEN: usize = 64;

fn parse_cron(expr: &str) -> Result<Cron> {
    Cron::from_str(expr).map_err(|e| {
        Error::invalid(
            "cron",
            format!("'{expr}' is not a cron expression (minute hour day month weekday): {e}"),
        )
    })
}

/// The first occurrence strictly after `after_ms`, in ms.
fn next_after(cron: &Cron, after_ms: u64) -> Result<u64> {
    let at: DateTime<Utc> = Utc
        .timestamp_millis_opt(after_ms as i64)
        .single()
        .ok_or_else(|| Error::invalid("cron", "the clock is out of range"))?;
    let next = cron
        .find_next_occurrence(&at, false)
        .map_err(|e| Error::invalid("cron", format!("no next occurrence: {e}")))?;
    Ok(next.timestamp_millis().max(0) as u64)
}

/// `s_` + 16 hex digits of SHA-256 over the target and the name.
fn schedule_id(target: &str, name: &str) -> String {
    let h = crate::tokens::hash(&format!("{target}\u{0}{name}"));
    format!("s_{}", &h[..16])
}

impl Hub {
    async fn load_schedules(&self) -> Result<Vec<Schedule>> {
        Ok(match self.inner.store.get_setting(SCHEDULES_KEY).await? {
            Some(v) => serde_json::from_value(v)
                .map_err(|e| Error::unavailable(format!("stored schedules are unreadable: {e}")))?,
            None => Vec::new(),
        })
    }

    async fn save_schedules(&self, all: &[Schedule]) -> Result<()> {
        self.inner
            .store
            .set_setting(SCHEDULES_KEY, json!(all))
            .await
    }

    /// Register a repeatable task. The same definition twice is a no-op;
    /// the same `name` for the same target replaces the definition.
    pub async fn create_schedule(&self, actor: &str, p: ScheduleParams) -> Result<ScheduleCreated> {
        self.check_payload(&p.payload)?;
        let cron = parse_cron(&p.cron)?;
        let (kind, max_attempts) = self.task_shape(p.kind, p.max_attempts)?;
        let me = self.agent(actor).await?;
        let target = self.resolve_agent(&p.target).await?;
        self.defend(actor, "schedule", &p.payload, None::<fn() -> HeldItem>)
            .await?;
        let name = match p.name {
            Some(n) => {
                if n.is_empty() || n.len() > MAX_NAME_LEN || n.chars().any(char::is_control) {
                    return Err(Error::invalid(
                        "name",
                        format!("name must be 1..={MAX_NAME_LEN} bytes without control characters"),
                    ));
                }
                n
            }
            None => {
                let def = json!([p.cron, kind, p.payload]).to_string();
                format!("auto-{}", &crate::tokens::hash(&def)[..12])
            }
        };
        let now = self.now();
        let id = schedule_id(&target.agent_id, &name);
        let _edit_guard = self.inner.queues.edit.lock().await;
        let mut all = self.load_schedules().await?;
        let wanted = Schedule {
            schedule_id: id.clone(),
            name,
            target: target.agent_id.clone(),
            cron: p.cron.trim().to_owned(),
            kind,
            payload: p.payload,
            max_attempts,
            created_by: me.agent_id.clone(),
            created_at: now,
            next_run_at: next_after(&cron, now)?,
            last_task_id: None,
        };
        if let Some(existing) = all.iter_mut().find(|s| s.schedule_id == id) {
            let same = existing.cron == wanted.cron
                && existing.kind == wanted.kind
                && existing.payload == wanted.payload
                && existing.max_attempts == wanted.max_attempts;
            if !same {
                existing.cron = wanted.cron;
                existing.kind = wanted.kind;
                existing.payload = wanted.payload;
                existing.max_attempts = wanted.max_attempts;
                existing.next_run_at = wanted.next_run_at;
                let s = existing.clone();
                self.save_schedules(&all).await?;
                self.audit(
                    "task",
                    actor,
                    "schedule.update",
                    &id,
                    None,
                    json!({"cron": s.cron}),
                )
                .await;
                return Ok(ScheduleCreated {
                    schedule: s,
                    created: false,
                });
            }
            return Ok(ScheduleCreated {
                schedule: existing.clone(),
                created: false,
            });
        }
        if all.len() >= MAX_SCHEDULES {
            return Err(Error::rate_limited(
                format!(
                    "the hub holds {} schedules (limit {MAX_SCHEDULES})",
                    all.len()
                ),
                60_000,
            ));
        }
        all.push(wanted.clone());
        all.sort_by(|a, b| a.schedule_id.cmp(&b.schedule_id));
        self.save_schedules(&all).await?;
        self.audit(
            "task",
            actor,
            "schedule.create",
            &id,
            None,
            json!({"cron": wanted.cron, "target": wanted.target}),
        )
        .await;
        Ok(ScheduleCreated {
            schedule: wanted,
            created: true,
        })
    }

    /// Schedules the caller may see: all for master and warden, those a
    /// worker created or runs otherwise.
    pub async fn schedules(&self, actor: &str) -> Result<ScheduleList> {
        let me = self.agent(actor).await?;
        let all = self.load_schedules().await?;
        Ok(ScheduleList {
            schedules: all
                .into_iter()
                .filter(|s| {
                    me.role.reads_everything()
                        || s.created_by == me.agent_id
                        || s.target == me.agent_id
                })
                .collect(),
        })
    }

    /// Remove a schedule: its creator or master.
    pub async fn delete_schedule(&self, actor: &str, schedule_id: &str) -> Result<Schedule> {
        let me = self.agent(actor).await?;
        let edit_guard = self.inner.queues.edit.lock().await;
        let mut all = self.load_schedules().await?;
        let Some(i) = all.iter().position(|s| s.schedule_id == schedule_id) else {
            return Err(Error::not_found(format!("no schedule '{schedule_id}'")));
        };
        if me.role != Role::Master && all[i].created_by != me.agent_id {
            drop(edit_guard);
            return self
                .refuse(
                    actor,
                    "schedule.delete",
                    schedule_id,
                    "only its creator or master can delete a schedule".into(),
                )
                .await;
        }
        let gone = all.remove(i);
        self.save_schedules(&all).await?;
        drop(edit_guard);
        self.audit(
            "task",
            actor,
            "schedule.delete",
            schedule_id,
            None,
            json!({}),
        )
        .await;
        Ok(gone)
    }

    /// Dispatch the occurrences that came due (called by the task sweep).
    pub(crate) async fn fire_schedules(&self) -> Result<()> {
        let now = self.now();
        let all = self.load_schedules().await?;
        if !all.iter().any(|s| s.next_run_at <= now) {
            return Ok(());
        }
        let edit_guard = self.inner.queues.edit.lock().await;
        // Read again under the lock: another call may have fired them.
        let mut all = self.load_schedules().await?;
        let mut fired = Vec::new();
        for s in all.iter_mut().filter(|s| s.next_run_at <= now) {
            let occurrence = s.next_run_at;
            let cron = parse_cron(&s.cron)?;
            s.next_run_at = next_after(&cron, now)?;
            fired.push((s.clone(), occurrence));
        }
        self.save_schedules(&all).await?;
        drop(edit_guard);
        for (s, occurrence) in fired {
            let p = DispatchParams {
                target: s.target.clone(),
                kind: Some(s.kind.clone()),
                payload: s.payload.clone(),
                dedupe_key: Some(format!("schedule:{}:{occurrence}", s.schedule_id)),
                max_attempts: Some(s.max_attempts),
                ..Default::default()
            };
            match self.dispatch_unlimited(&s.created_by, p, None).await {
                Ok(out) => {
                    self.set_last_task(&s.schedule_id, &out.task.task_id).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, schedule = s.schedule_id, "a schedule could not dispatch")
                }
            }
        }
        Ok(())
    }

    async fn set_last_task(&self, schedule_id: &str, task_id: &str) {
        let _edit_guard = self.inner.queues.edit.lock().await;
        let Ok(mut all) = self.load_schedules().await else {
            return;
        };
        if let Some(s) = all.iter_mut().find(|s| s.schedule_id == schedule_id) {
            s.last_task_id = Some(task_id.to_owned());
            if let Err(e) = self.save_schedules(&all).await {
                tracing::warn!(error = %e, "cannot record a schedule's last task");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_field_expressions_find_the_next_minute() {
        let c = parse_cron("*/5 * * * *").expect("parses");
        // 2026-01-01T00:01:00Z → 00:05:00Z
        let t0 = 1_767_225_660_000;
        assert_eq!(next_after(&c, t0).expect("next"), 1_767_225_900_000);
        assert!(parse_cron("not cron").is_err());
        assert!(parse_cron("61 * * * *").is_err());
    }

    #[test]
    fn ids_follow_target_and_name() {
        assert_eq!(schedule_id("w1", "nightly"), schedule_id("w1", "nightly"));
        assert_ne!(schedule_id("w1", "nightly"), schedule_id("w2", "nightly"));
        assert!(schedule_id("w1", "x").starts_with("s_"));
    }
}
