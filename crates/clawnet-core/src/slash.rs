//! Slash commands typed in chat (`/task @handle …`, `/status`, `/help`) and
//! the task lifecycle notes the hub posts back into the room a task came from.
//!
//! Commands live in a registry so more can be added (by the binary, a plugin,
//! a test) without touching the chat code: implement [`SlashCommand`] and call
//! [`Hub::register_command`]. A command runs after its message is stored, so
//! the command itself stays in the timeline, and its reply (if any) is posted
//! by the hub's own agent `clawnet` right after it.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use clawnet_proto::methods::SendParams;
use clawnet_proto::tasks::{DispatchParams, TaskOrigin};
use clawnet_proto::{Envelope, Task, TaskState, ToType};
use parking_lot::RwLock;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::error::Result;
use crate::hub::{Hub, SYSTEM_AGENT};

/// Notes waiting to be posted; beyond this, notes are dropped (and logged)
/// rather than queued without bound.
const NOTE_QUEUE: usize = 4096;
/// Longest task result quoted in a note, in characters.
const RESULT_CHARS: usize = 2000;

/// Where and by whom a command was typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashContext {
    /// The sender's agent id.
    pub sender: String,
    /// The room it was typed in.
    pub room: String,
    /// The stored message's id.
    pub message_id: String,
    /// Everything after the command word, trimmed.
    pub args: String,
}

/// A command of the registry.
#[async_trait]
pub trait SlashCommand: Send + Sync {
    /// One line for `/help`, e.g. `/task @handle <text>: hand work to an agent`.
    fn help(&self) -> String;
    /// Run it. `Ok(Some(text))` is posted into the room as the reply; an
    /// error's message is posted as `/<name>: <message>`.
    async fn run(&self, hub: &Hub, ctx: &SlashContext) -> Result<Option<String>>;
}

/// The registered commands, by name (without the slash).
#[derive(Default)]
pub struct SlashRegistry {
    commands: RwLock<BTreeMap<String, Arc<dyn SlashCommand>>>,
}

impl std::fmt::Debug for SlashRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.commands.read().keys()).finish()
    }
}

/// A task lifecycle note or a command reply, posted in order by one task.
#[derive(Debug)]
pub(crate) struct Note {
    room: String,
    payload: Map<String, Value>,
}

/// The sending half of the note poster (see [`Hub::spawn_note_poster`]).
pub(crate) type Notes = mpsc::Sender<Note>;

struct TaskCommand;
struct StatusCommand;
struct HelpCommand;

#[async_trait]
impl SlashCommand for TaskCommand {
    fn help(&self) -> String {
        "/task @handle <text>: hand work to an agent; its progress is posted here".into()
    }

    async fn run(&self, hub: &Hub, ctx: &SlashContext) -> Result<Option<String>> {
        let (target, text) = ctx
            .args
            .split_once(char::is_whitespace)
            .map_or((ctx.args.as_str(), ""), |(a, b)| (a, b.trim()));
        if !target.starts_with('@') || text.is_empty() {
            return Ok(Some("usage: /task @handle <what to do>".into()));
        }
        let mut payload = Map::new();
        payload.insert("text".into(), text.into());
        hub.dispatch(
            &ctx.sender,
            DispatchParams {
                target: target.to_owned(),
                kind: Some("prompt".into()),
                payload,
                ..Default::default()
            },
            Some(TaskOrigin {
                room: ctx.room.clone(),
                message_id: Some(ctx.message_id.clone()),
                account: None,
                session: None,
                notes: true,
            }),
        )
        .await?;
        // The lifecycle notes say the rest.
        Ok(None)
    }
}

#[async_trait]
impl SlashCommand for StatusCommand {
    fn help(&self) -> String {
        "/status: who in this room is online, working, and how deep their queues are".into()
    }

    async fn run(&self, hub: &Hub, ctx: &SlashContext) -> Result<Option<String>> {
        // The room's members: everyone who can read the room may know them.
        let members: std::collections::HashSet<String> = if ctx.room == clawnet_proto::GLOBAL_ROOM {
            hub.inner
                .store
                .list_agents()
                .await?
                .into_iter()
                .map(|a| a.agent_id)
                .collect()
        } else {
            hub.inner
                .store
                .members(&ctx.room)
                .await?
                .into_iter()
                .collect()
        };
        let rows = hub.activity_where(|a| members.contains(a)).await?;
        let mut lines = vec!["status:".to_owned()];
        for a in rows.agents.iter().filter(|a| a.agent_id != SYSTEM_AGENT) {
            let mut line = format!(
                "@{} {} ({} running, {} waiting)",
                a.handle,
                a.status.as_str(),
                a.running,
                a.queued
            );
            if a.paused {
                line.push_str(", queue paused");
            }
            if a.breaker.state != clawnet_proto::tasks::BreakerState::Closed {
                line.push_str(&format!(", breaker {}", a.breaker.state.as_str()));
            }
            lines.push(line);
        }
        Ok(Some(lines.join("\n")))
    }
}

#[async_trait]
impl SlashCommand for HelpCommand {
    fn help(&self) -> String {
        "/help: this list".into()
    }

    async fn run(&self, hub: &Hub, _ctx: &SlashContext) -> Result<Option<String>> {
        let cmds: Vec<Arc<dyn SlashCommand>> =
            hub.inner.slash.commands.read().values().cloned().collect();
        Ok(Some(
            cmds.iter().map(|c| c.help()).collect::<Vec<_>>().join("\n"),
        ))
    }
}

impl SlashRegistry {
    /// The built-in commands: `/task`, `/status`, `/help`.
    pub(crate) fn with_builtins() -> Self {
        let r = Self::default();
        r.insert("task", Arc::new(TaskCommand));
        r.insert("status", Arc::new(StatusCommand));
        r.insert("help", Arc::new(HelpCommand));
        r
    }

    fn insert(&self, name: &str, cmd: Arc<dyn SlashCommand>) {
        self.commands.write().insert(name.to_owned(), cmd);
    }

    fn get(&self, name: &str) -> Option<Arc<dyn SlashCommand>> {
        self.commands.read().get(name).cloned()
    }
}

/// The command word and the rest, if `text` starts with `/word`.
fn parse_command(text: &str) -> Option<(&str, &str)> {
    let rest = text.trim_start().strip_prefix('/')?;
    let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    ok.then_some((name, args.trim()))
}

/// A task result as text for a note: its `text` field when it has one,
/// otherwise compact JSON; cut to [`RESULT_CHARS`].
fn result_text(v: Option<&Value>) -> String {
    let s = match v {
        None | Some(Value::Null) => return String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => match v.get("text").and_then(Value::as_str) {
            Some(t) => t.to_owned(),
            None => v.to_string(),
        },
    };
    if s.chars().count() > RESULT_CHARS {
        let mut cut: String = s.chars().take(RESULT_CHARS).collect();
        cut.push('…');
        cut
    } else {
        s
    }
}

impl Hub {
    /// Add (or replace) a slash command. `name` is the word after the slash.
    pub fn register_command(&self, name: &str, cmd: Arc<dyn SlashCommand>) {
        self.inner.slash.insert(name, cmd);
    }

    /// Start the task that posts notes in order (one per hub).
    pub(crate) fn spawn_note_poster(&self) -> Notes {
        let (tx, mut rx) = mpsc::channel::<Note>(NOTE_QUEUE);
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            while let Some(note) = rx.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                let hub = Hub { inner };
                let sent = hub
                    .send(
                        SYSTEM_AGENT,
                        SendParams {
                            to_type: if note.room == clawnet_proto::GLOBAL_ROOM {
                                ToType::Global
                            } else {
                                ToType::Room
                            },
                            to_id: Some(note.room.clone()),
                            payload: note.payload,
                            dedupe_key: None,
                            thread_id: None,
                            reply_to: None,
                        },
                    )
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, room = note.room, "cannot post a hub note");
                }
            }
        });
        tx
    }

    /// Queue a note from the hub into `room`.
    pub(crate) fn post_note(&self, room: &str, payload: Map<String, Value>) {
        let Some(notes) = self.inner.notes.get() else {
            return;
        };
        let note = Note {
            room: room.to_owned(),
            payload,
        };
        if notes.try_send(note).is_err() {
            tracing::warn!(room, "hub notes are backed up; a note was dropped");
        }
    }

    /// After a message is stored: run it as a command if it is one.
    pub(crate) fn after_message(&self, env: &Envelope) {
        if env.from_id == SYSTEM_AGENT {
            return;
        }
        let command = (env.to_type != ToType::Dm)
            .then(|| env.payload.get("text").and_then(Value::as_str))
            .flatten()
            .and_then(parse_command)
            .and_then(|(name, args)| Some((name, args, self.inner.slash.get(name)?)));
        let Some((name, args, cmd)) = command else {
            // Plain chat (or an unknown command): it may activate workers.
            if self.inner.workers.has_workers() {
                self.queue_activation(env);
            }
            return;
        };
        let ctx = SlashContext {
            sender: env.from_id.clone(),
            room: env.to_id.clone(),
            message_id: env.id.clone(),
            args: args.to_owned(),
        };
        let hub = self.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            let reply = match cmd.run(&hub, &ctx).await {
                Ok(r) => r,
                Err(e) => Some(format!("/{name}: {}", e.message)),
            };
            if let Some(text) = reply {
                let mut p = Map::new();
                p.insert("text".into(), text.into());
                p.insert("reply_to_command".into(), ctx.message_id.clone().into());
                hub.post_note(&ctx.room, p);
            }
        });
    }

    /// Post a task's new state into the room its command came from.
    pub(crate) async fn note_task(&self, t: &Task) {
        let Some(origin) = t.origin.as_ref().filter(|o| o.notes) else {
            return;
        };
        let handle = match self.agent(&t.target).await {
            Ok(a) => a.handle.clone(),
            Err(_) => t.target.clone(),
        };
        let err = t.error.as_deref().unwrap_or("");
        let text = match t.state {
            TaskState::Queued => format!("task {} queued for @{handle}", t.task_id),
            TaskState::Running => format!(
                "task {} running on @{handle} (attempt {}/{})",
                t.task_id, t.attempts, t.max_attempts
            ),
            TaskState::Succeeded => {
                let r = result_text(t.result.as_ref());
                if r.is_empty() {
                    format!("task {} succeeded", t.task_id)
                } else {
                    format!("task {} succeeded: {r}", t.task_id)
                }
            }
            TaskState::Delayed if t.attempts > 0 => format!(
                "task {} attempt {}/{} failed: {}; retrying",
                t.task_id,
                t.attempts,
                t.max_attempts,
                crate::redact::redact_alert(err)
            ),
            TaskState::Delayed => format!("task {} scheduled for @{handle}", t.task_id),
            TaskState::Failed => format!(
                "task {} failed after {} attempts: {}",
                t.task_id,
                t.attempts,
                crate::redact::redact_alert(err)
            ),
            TaskState::Cancelled => format!("task {} cancelled", t.task_id),
            TaskState::Skipped => format!("task {} skipped", t.task_id),
            TaskState::Blocked => format!("task {} blocked", t.task_id),
        };
        let mut p = Map::new();
        p.insert("text".into(), text.into());
        p.insert("task_id".into(), t.task_id.clone().into());
        p.insert("task_state".into(), t.state.as_str().into());
        self.post_note(&origin.room, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_a_slash_and_a_word() {
        assert_eq!(
            parse_command("/task @w1 do it"),
            Some(("task", "@w1 do it"))
        );
        assert_eq!(parse_command("  /status"), Some(("status", "")));
        assert_eq!(parse_command("/"), None);
        assert_eq!(parse_command("path /usr/bin"), None);
        assert_eq!(parse_command("/usr/bin/env"), None);
        assert_eq!(parse_command("/Task x"), None);
    }

    #[test]
    fn results_quote_their_text_and_are_cut() {
        assert_eq!(result_text(Some(&serde_json::json!({"text": "hi"}))), "hi");
        assert_eq!(
            result_text(Some(&serde_json::json!({"n": 1}))),
            r#"{"n":1}"#
        );
        assert_eq!(result_text(None), "");
        let long = "x".repeat(3000);
        assert_eq!(
            result_text(Some(&Value::String(long))).chars().count(),
            2001
        );
    }
}
