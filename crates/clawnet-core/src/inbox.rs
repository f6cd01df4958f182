//! Activation and inbox modes (SPEC §5, from the gateway rewrite).
//!
//! A chat message *activates* an agent that is in the room and has a worker
//! connection: every message (`always`) or only when it is @mentioned
//! (`mention`, the default); a DM always activates its recipient. Activation
//! is a task of kind `message` for that agent, with the message in its
//! payload. While the agent is busy (a task running), further activations
//! follow its inbox mode: `followup` keeps each in order, `steer` keeps only
//! the newest waiting one (the others become `skipped`), `collect` merges
//! them into the one waiting task.
//!
//! Agents without a worker connection are never activated: they read chat
//! themselves, and a queue nobody drains would only fill up.

use clawnet_proto::tasks::{DispatchParams, TaskOrigin};
use clawnet_proto::{Envelope, Role, TaskState, ToType};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::hub::{Hub, SYSTEM_AGENT};
use crate::store::TaskFilter;
use tokio::sync::mpsc;

/// Kind of the tasks activation creates.
pub const MESSAGE_KIND: &str = "message";

/// How an agent is activated in rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Only messages that @mention it (and DMs).
    #[default]
    Mention,
    /// Every message in its rooms.
    Always,
}

/// What happens to activations that arrive while the agent is busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxMode {
    /// Keep every follow-up, in order.
    #[default]
    Followup,
    /// Keep only the newest waiting one; the others become `skipped`.
    Steer,
    /// Merge waiting follow-ups into one task.
    Collect,
}

/// An agent's inbox settings (`GET/PUT /api/v1/agents/{id}/inbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxSettings {
    /// How it is activated in rooms.
    #[serde(default)]
    pub activation: Activation,
    /// What happens to follow-ups while it is busy.
    #[serde(default)]
    pub mode: InboxMode,
}

/// Messages waiting for activation; beyond this they are dropped (and
/// logged) rather than queued without bound.
const ACTIVATION_QUEUE: usize = 4096;

/// The sending half of the activation queue (see [`Hub::spawn_activator`]).
pub(crate) type Activations = mpsc::Sender<Envelope>;

fn key(agent: &str) -> String {
    format!("agent.{agent}.inbox")
}

impl Hub {
    /// Start the task that activates agents, one message at a time and in
    /// order, so inbox modes see each follow-up after the previous one.
    pub(crate) fn spawn_activator(&self) -> Activations {
        let (tx, mut rx) = mpsc::channel::<Envelope>(ACTIVATION_QUEUE);
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            while let Some(env) = rx.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = (Hub { inner }).activate(&env).await {
                    tracing::warn!(error = %e, "activation failed");
                }
            }
        });
        tx
    }

    /// Queue a stored message for activation.
    pub(crate) fn queue_activation(&self, env: &Envelope) {
        if let Some(q) = self.inner.activations.get() {
            if q.try_send(env.clone()).is_err() {
                tracing::warn!(
                    room = env.to_id,
                    "activations are backed up; one was dropped"
                );
            }
        }
    }

    /// An agent's inbox settings: the agent itself, master and warden.
    pub async fn inbox_settings(&self, actor: &str, agent: &str) -> Result<InboxSettings> {
        let me = self.agent(actor).await?;
        let target = self.resolve_agent(agent).await?;
        if !me.role.reads_everything() && me.agent_id != target.agent_id {
            return Err(Error::forbidden(
                "an agent reads only its own inbox settings",
            ));
        }
        self.stored_inbox(&target.agent_id).await
    }

    /// Change an agent's inbox settings: the agent itself or master.
    pub async fn set_inbox_settings(
        &self,
        actor: &str,
        agent: &str,
        s: InboxSettings,
    ) -> Result<InboxSettings> {
        let me = self.agent(actor).await?;
        let target = self.resolve_agent(agent).await?;
        if me.role != Role::Master && me.agent_id != target.agent_id {
            return self
                .refuse(
                    actor,
                    "inbox.set",
                    &target.agent_id,
                    "changing another agent's inbox needs the master role".into(),
                )
                .await;
        }
        self.inner
            .store
            .set_setting(&key(&target.agent_id), json!(s))
            .await?;
        self.inner
            .inbox_cache
            .lock()
            .insert(target.agent_id.clone(), (self.now(), s));
        self.audit("task", actor, "inbox.set", &target.agent_id, None, json!(s))
            .await;
        Ok(s)
    }

    /// An agent's settings, read through a cache: activation needs them
    /// for every worker agent on every chat message. A change on this node
    /// replaces the cached copy at once; one made on another node is seen
    /// within [`crate::directory::MEMBERS_TTL_MS`], like membership.
    async fn stored_inbox(&self, agent: &str) -> Result<InboxSettings> {
        let now = self.now();
        let ttl = crate::directory::MEMBERS_TTL_MS;
        if let Some((at, s)) = self.inner.inbox_cache.lock().get(agent) {
            if now.saturating_sub(*at) < ttl {
                return Ok(*s);
            }
        }
        let s = match self.inner.store.get_setting(&key(agent)).await? {
            Some(v) => serde_json::from_value(v).unwrap_or_default(),
            None => InboxSettings::default(),
        };
        let mut cache = self.inner.inbox_cache.lock();
        // Bounded by the number of agents; stale entries go on the way.
        cache.retain(|_, (at, _)| now.saturating_sub(*at) < ttl);
        cache.insert(agent.to_owned(), (now, s));
        Ok(s)
    }

    /// Activate the agents a stored message concerns (runs off the send path).
    pub(crate) async fn activate(&self, env: &Envelope) -> Result<()> {
        let workers = self.inner.workers.connected_agents();
        if workers.is_empty() || env.from_id == SYSTEM_AGENT {
            return Ok(());
        }
        for agent in workers {
            if agent == env.from_id {
                continue;
            }
            let addressed = match env.to_type {
                ToType::Dm => env.to_id.split(':').skip(1).any(|a| a == agent),
                _ => env.mentions.contains(&agent),
            };
            let settings = self.stored_inbox(&agent).await?;
            let wanted = addressed
                || (settings.activation == Activation::Always
                    && env.to_type != ToType::Dm
                    && self.is_member_of(&env.to_id, &agent).await?);
            if wanted {
                self.deliver_to_inbox(&agent, settings.mode, env).await?;
            }
        }
        Ok(())
    }

    async fn deliver_to_inbox(&self, agent: &str, mode: InboxMode, env: &Envelope) -> Result<()> {
        let entry = json!({
            "text": env.payload.get("text").cloned().unwrap_or(Value::Null),
            "from_id": env.from_id,
            "from_handle": env.from_handle,
            "room": env.to_id,
            "message_id": env.id,
        });
        let busy = mode != InboxMode::Followup
            && !self
                .inner
                .store
                .list_tasks(TaskFilter {
                    state: Some(TaskState::Running),
                    target: Some(agent.to_owned()),
                    limit: 1,
                    ..Default::default()
                })
                .await?
                .is_empty();
        if busy {
            let waiting: Vec<_> = self
                .inner
                .store
                .list_tasks(TaskFilter {
                    state: Some(TaskState::Queued),
                    target: Some(agent.to_owned()),
                    limit: 1000,
                    ..Default::default()
                })
                .await?
                .into_iter()
                .filter(|t| t.task.kind == MESSAGE_KIND)
                .collect();
            match mode {
                InboxMode::Steer => {
                    for t in waiting {
                        self.skip_superseded(t).await;
                    }
                }
                InboxMode::Collect => {
                    if let Some(t) = waiting.into_iter().last() {
                        let mut next = t;
                        let msgs = next
                            .task
                            .payload
                            .entry("messages")
                            .or_insert_with(|| json!([]));
                        if let Some(a) = msgs.as_array_mut() {
                            a.push(entry.clone());
                        }
                        let text = next
                            .task
                            .payload
                            .get("messages")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(|m| m["text"].as_str())
                                    .collect::<Vec<_>>()
                                    .join("\n")
                            })
                            .unwrap_or_default();
                        next.task.payload.insert("text".into(), text.into());
                        next.task.updated_at = self.now();
                        // Lost the race with a claim: fall through to a new task.
                        if self.inner.store.update_task(next).await?.is_some() {
                            return Ok(());
                        }
                    }
                }
                InboxMode::Followup => {}
            }
        }
        let mut payload = Map::new();
        payload.insert("text".into(), entry["text"].clone());
        payload.insert("messages".into(), json!([entry]));
        self.dispatch_unlimited(
            &env.from_id,
            DispatchParams {
                target: agent.to_owned(),
                kind: Some(MESSAGE_KIND.into()),
                payload,
                ..Default::default()
            },
            Some(origin_of(env)),
        )
        .await
        .map(|_| ())
        .or_else(|e| {
            tracing::debug!(error = %e, agent, "activation not queued");
            Ok(())
        })
    }
}

impl Hub {
    /// A waiting activation superseded by a newer one (`steer`).
    async fn skip_superseded(&self, t: crate::store::TaskRecord) {
        let now = self.now();
        let mut next = t;
        next.task.state = TaskState::Skipped;
        next.task.updated_at = now;
        next.task.finished_at = Some(now);
        next.task.error = Some("superseded by a newer message (inbox mode steer)".into());
        // Lost the race with a claim: it runs, and that is fine.
        if let Ok(Some(t)) = self.inner.store.update_task(next).await {
            self.audit(
                "task",
                "hub",
                "task.skipped",
                &t.task.task_id,
                t.task.error.clone(),
                json!({"target": t.task.target}),
            )
            .await;
            self.announce(&t.task).await;
        }
    }
}

/// Activation origin: the room and message (no lifecycle notes: the agent
/// answers in the room itself).
pub(crate) fn origin_of(env: &Envelope) -> TaskOrigin {
    TaskOrigin {
        room: env.to_id.clone(),
        message_id: Some(env.id.clone()),
        account: None,
        session: None,
        notes: false,
    }
}
