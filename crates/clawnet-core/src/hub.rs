//! The hub handle and identity operations (agents, handles, tokens).
//!
//! Every operation takes the acting agent's id and follows the same order:
//! validate → authorize → persist → publish → audit. Surfaces (REST, `/ws`,
//! CLI) only decode, call and encode.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use clawnet_proto::ids::{normalize_handle, valid_agent_id, valid_handle};
use clawnet_proto::methods::Disconnecting;
use clawnet_proto::{Role, GLOBAL_ROOM};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde_json::{json, Value};

use crate::bus::{Bus, Delivery, LocalBus, OutFrame, Target};
use crate::clock::{Clock, SystemClock};
use crate::config::HubConfig;
use crate::error::{Error, Result};
use crate::fanout::Fanout;
use crate::msgid::IdGen;
use crate::presence::PresenceTable;
use crate::store::{AgentRecord, AuditEntry, AuditFilter, MemoryStore, Store, TokenRecord};
use crate::tokens;

/// Id and handle of the agent created at first start.
pub const MASTER_AGENT: &str = "master";
/// The hub's own agent: it posts alerts and task lifecycle messages. It has
/// no token, so nobody can connect as it.
pub const SYSTEM_AGENT: &str = "clawnet";

/// A cheap, clonable handle to the hub.
#[derive(Clone, Debug)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

/// Publish order per room: events leave in `seq` order even when concurrent
/// appends return from the store out of order.
#[derive(Debug, Default)]
pub(crate) struct Sequencer {
    next: u64,
    pending: std::collections::BTreeMap<u64, Arc<OutFrame>>,
}

impl Sequencer {
    fn starting_at(next: u64) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self {
            next,
            pending: Default::default(),
        }))
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) cfg: HubConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) fanout: Arc<Fanout>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: IdGen,
    /// Agent records by id, so the send path does not read the store for the
    /// sender's handle; invalidated on every change made through the hub.
    pub(crate) identities: RwLock<HashMap<String, Arc<AgentRecord>>>,
    pub(crate) sequencers: RwLock<HashMap<String, Arc<Mutex<Sequencer>>>>,
    pub(crate) presence: PresenceTable,
    /// Last typing event per (agent, room); entries expire in the sweep.
    pub(crate) typing: Mutex<HashMap<(String, String), u64>>,
    /// Why each agent's last connection was closed by the hub (one per agent).
    pub(crate) last_disconnect: Mutex<HashMap<String, Disconnecting>>,
    pub(crate) next_conn: AtomicU64,
    pub(crate) cursors: crate::cursors::CursorBuffer,
    pub(crate) directory: crate::directory::Directory,
    pub(crate) workers: crate::tasks::Workers,
    pub(crate) queues: crate::queues::QueueState,
    pub(crate) slash: crate::slash::SlashRegistry,
    pub(crate) notes: std::sync::OnceLock<crate::slash::Notes>,
    pub(crate) activations: std::sync::OnceLock<crate::inbox::Activations>,
    /// The audit trail's one writer (see `audit.rs`).
    pub(crate) audit: crate::audit::AuditWriter,
    /// Inbox settings recently read, with when (see `inbox::stored_inbox`).
    pub(crate) inbox_cache: Mutex<HashMap<String, (u64, crate::inbox::InboxSettings)>>,
    /// The defender, its slots and the quarantine (see `defense.rs`).
    pub(crate) guard: crate::defense::Guard,
    /// Settings a master may change while the hub runs (see `runtime.rs`).
    pub(crate) runtime: crate::runtime::RuntimeSettings,
}

/// A freshly issued credential. The token is shown once and never stored.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    /// The bearer token.
    pub token: String,
    /// Its id, for revocation.
    pub token_id: String,
}

/// Builder for a [`Hub`].
#[derive(Debug, Default)]
pub struct HubBuilder {
    cfg: HubConfig,
    store: Option<Arc<dyn Store>>,
    bus: Option<Arc<dyn Bus>>,
    clock: Option<Arc<dyn Clock>>,
}

impl HubBuilder {
    /// Use these settings.
    pub fn config(mut self, cfg: HubConfig) -> Self {
        self.cfg = cfg;
        self
    }

    /// Use this store (default: memory).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Use this bus (default: in process).
    pub fn bus(mut self, bus: Arc<dyn Bus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Use this clock (default: system).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Build the hub and attach it to the bus.
    pub async fn build(self) -> Result<Hub> {
        let fanout = Arc::new(Fanout::default());
        let bus = self.bus.unwrap_or_else(|| Arc::new(LocalBus::default()));
        bus.attach(fanout.clone());
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let audit =
            crate::audit::AuditWriter::start(store.clone(), self.cfg.audit_file.clone()).await?;
        let guard = crate::defense::Guard::start(&self.cfg.defender)?;
        let runtime = crate::runtime::RuntimeSettings::from_config(&self.cfg);
        runtime.load(&*store).await?;
        let hub = Hub {
            inner: Arc::new(Inner {
                cfg: self.cfg,
                store,
                bus,
                fanout,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                ids: IdGen::default(),
                identities: RwLock::default(),
                sequencers: RwLock::default(),
                presence: PresenceTable::default(),
                typing: Mutex::default(),
                last_disconnect: Mutex::default(),
                next_conn: AtomicU64::new(1),
                cursors: Default::default(),
                directory: Default::default(),
                workers: Default::default(),
                queues: Default::default(),
                slash: crate::slash::SlashRegistry::with_builtins(),
                notes: std::sync::OnceLock::new(),
                activations: std::sync::OnceLock::new(),
                audit,
                inbox_cache: Mutex::default(),
                guard,
                runtime,
            }),
        };
        let _ = hub.inner.notes.set(hub.spawn_note_poster());
        let _ = hub.inner.activations.set(hub.spawn_activator());
        hub.init_sequencer(GLOBAL_ROOM).await?;
        for room in hub.inner.store.list_rooms().await? {
            hub.init_sequencer(&room.name).await?;
        }
        Ok(hub)
    }
}

impl Hub {
    /// Start building a hub.
    pub fn builder() -> HubBuilder {
        HubBuilder::default()
    }

    /// The settings in force.
    pub fn config(&self) -> &HubConfig {
        &self.inner.cfg
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Now, by the hub's clock.
    pub fn now(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// Number of live connections on this node.
    pub fn connection_count(&self) -> usize {
        self.inner.fanout.connection_count()
    }

    pub(crate) async fn init_sequencer(&self, room: &str) -> Result<()> {
        let last = self.inner.store.last_seq(room).await?;
        self.inner
            .sequencers
            .write()
            .entry(room.to_owned())
            .or_insert_with(|| Sequencer::starting_at(last + 1));
        Ok(())
    }

    /// The newest `seq` published in a room by this node's sequencer, if it
    /// has one; saves a store read on the ack path.
    pub(crate) fn published_seq(&self, room: &str) -> Option<u64> {
        let s = self.inner.sequencers.read().get(room).cloned()?;
        let next = s.lock().next;
        Some(next.saturating_sub(1))
    }

    /// Publish a room's history event in `seq` order.
    pub(crate) fn publish_ordered(&self, room: &str, frame: Arc<OutFrame>) {
        let seqr = self.inner.sequencers.read().get(room).cloned();
        let seqr = seqr.unwrap_or_else(|| {
            // A room no creation path registered (should not happen): start
            // its order at this frame.
            self.inner
                .sequencers
                .write()
                .entry(room.to_owned())
                .or_insert_with(|| Sequencer::starting_at(frame.seq))
                .clone()
        });
        let target = Target::Room(Arc::from(room));
        self.inner.fanout.set_now(self.now());
        let mut s = seqr.lock();
        if frame.seq < s.next {
            self.publish_frame(target, None, frame);
            return;
        }
        s.pending.insert(frame.seq, frame);
        loop {
            let next = s.next;
            let Some(f) = s.pending.remove(&next) else {
                break;
            };
            s.next += 1;
            self.publish_frame(target.clone(), None, f);
        }
    }

    pub(crate) fn publish_frame(
        &self,
        target: Target,
        except_agent: Option<Arc<str>>,
        frame: Arc<OutFrame>,
    ) {
        self.inner.bus.publish(Delivery {
            target,
            except_agent,
            frame,
        });
    }

    /// Run `tick` on the hub every `period` until the hub is dropped; the
    /// background loops (presence sweep, retention, cursor flush) share it.
    pub(crate) fn spawn_every<F, Fut>(
        &self,
        period: std::time::Duration,
        tick: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: Fn(Hub) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut timer = tokio::time::interval(period);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                timer.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                tick(Hub { inner }).await;
            }
        })
    }

    /// Queue an audit entry for the audit writer, which chains it and writes
    /// it to the store and the audit file (see `audit.rs`). Waits only while
    /// the writer's queue is full. A failure to audit is logged, not
    /// returned: the action it describes has already been persisted and
    /// acknowledged.
    pub async fn audit(
        &self,
        kind: &str,
        actor: &str,
        action: &str,
        target: &str,
        reason: Option<String>,
        meta: Value,
    ) {
        let entry = AuditEntry {
            id: 0,
            ts: self.now(),
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            reason,
            meta,
            prev_hash: String::new(),
            hash: String::new(),
        };
        self.inner.audit.append(entry).await;
    }

    /// Wait until every audit entry queued so far is written (reads,
    /// tests, shutdown).
    pub async fn flush_audit(&self) {
        self.inner.audit.flush().await;
    }

    /// Read the audit trail (master and warden only).
    pub async fn audit_log(&self, actor: &str, filter: AuditFilter) -> Result<Vec<AuditEntry>> {
        let me = self.agent(actor).await?;
        if !me.role.reads_everything() {
            return Err(Error::forbidden(
                "reading the audit log needs master or warden",
            ));
        }
        // So a read right after an action sees its entry.
        self.flush_audit().await;
        self.inner.store.list_audit(filter).await
    }

    /// The agent with this id (cached).
    pub async fn agent(&self, agent_id: &str) -> Result<Arc<AgentRecord>> {
        if let Some(a) = self.inner.identities.read().get(agent_id) {
            return Ok(a.clone());
        }
        let rec = self
            .inner
            .store
            .get_agent(agent_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no agent '{agent_id}'")))?;
        let rec = Arc::new(rec);
        self.inner
            .identities
            .write()
            .insert(agent_id.to_owned(), rec.clone());
        Ok(rec)
    }

    /// Resolve an agent by id or `@handle`.
    pub async fn resolve_agent(&self, who: &str) -> Result<Arc<AgentRecord>> {
        if let Some(h) = who.strip_prefix('@') {
            let rec = self
                .inner
                .store
                .find_agent_by_handle(&normalize_handle(h))
                .await?
                .ok_or_else(|| Error::not_found(format!("no agent with handle '@{h}'")))?;
            return Ok(Arc::new(rec));
        }
        self.agent(who).await
    }

    pub(crate) fn forget_identity(&self, agent_id: &str) {
        self.inner.identities.write().remove(agent_id);
    }

    /// Every agent.
    pub async fn list_agents(&self, actor: &str) -> Result<Vec<AgentRecord>> {
        self.agent(actor).await?;
        self.inner.store.list_agents().await
    }

    /// Create the master agent on a fresh store, and register `master_token`
    /// (from `CLAWNET_MASTER_TOKEN`) if given. Returns a generated token when
    /// the store was fresh and none was given: the caller prints it once.
    pub async fn bootstrap(&self, master_token: Option<&str>) -> Result<Option<String>> {
        let store = &self.inner.store;
        let fresh = store.get_agent(MASTER_AGENT).await?.is_none();
        if fresh {
            store
                .insert_agent(AgentRecord {
                    agent_id: MASTER_AGENT.to_owned(),
                    handle: MASTER_AGENT.to_owned(),
                    role: Role::Master,
                    created_at: self.now(),
                    created_by: None,
                })
                .await?;
            self.audit(
                "identity",
                "system",
                "agent.create",
                MASTER_AGENT,
                None,
                json!({"role":"master"}),
            )
            .await;
        }
        self.ensure_system_agent().await?;
        match master_token {
            Some(t) => {
                let hash = tokens::hash(t);
                if store.find_token(&hash).await?.is_none() {
                    store
                        .insert_token(TokenRecord {
                            token_id: tokens::new_token_id(),
                            agent_id: MASTER_AGENT.to_owned(),
                            hash,
                            created_at: self.now(),
                        })
                        .await?;
                }
                Ok(None)
            }
            None if fresh => {
                let issued = self.issue_token_unchecked(MASTER_AGENT).await?;
                Ok(Some(issued.token))
            }
            None => Ok(None),
        }
    }

    /// Check a bearer token; `unauthorized` for unknown or revoked tokens.
    /// `addr` names the caller in the audit entry of a failure.
    pub async fn authenticate(
        &self,
        token: &str,
        addr: &str,
    ) -> Result<(Arc<AgentRecord>, String)> {
        let found = self.inner.store.find_token(&tokens::hash(token)).await?;
        // Comparing hashes in constant time keeps the lookup itself the only
        // timing signal, and that reveals nothing about a valid token.
        let rec = match found {
            Some(rec) if tokens::equal(&rec.hash, &tokens::hash(token)) => rec,
            _ => {
                crate::metrics::auth_failure("unknown_token");
                self.audit(
                    "auth",
                    addr,
                    "auth.failed",
                    "token",
                    Some("unknown or revoked token".into()),
                    Value::Null,
                )
                .await;
                return Err(Error::unauthorized("unknown or revoked token"));
            }
        };
        let agent = self.agent(&rec.agent_id).await?;
        Ok((agent, rec.token_id))
    }

    /// Register an agent (master only). `agent_id` is generated when absent.
    pub async fn register_agent(
        &self,
        actor: &str,
        agent_id: Option<String>,
        handle: &str,
        role: Role,
    ) -> Result<(AgentRecord, IssuedToken)> {
        let agent_id = match agent_id {
            Some(id) => id,
            None => format!("agent-{}", &tokens::new_token_id()[4..]),
        };
        if !valid_agent_id(&agent_id) {
            return Err(Error::invalid(
                "agent_id",
                "agent_id must match [a-z0-9][a-z0-9._-]{0,63}",
            ));
        }
        if !valid_handle(handle) {
            return Err(Error::invalid(
                "handle",
                "handle must match [a-z0-9_-]{2,32}",
            ));
        }
        self.require_master(actor, "agent.create", &agent_id)
            .await?;
        if self.id_was_removed(&agent_id).await? {
            return Err(Error::conflict(format!(
                "agent id '{agent_id}' belonged to a removed agent and stays reserved"
            )));
        }
        let rec = AgentRecord {
            agent_id: agent_id.clone(),
            handle: normalize_handle(handle),
            role,
            created_at: self.now(),
            created_by: Some(actor.to_owned()),
        };
        self.inner.store.insert_agent(rec.clone()).await?;
        // New agents start reading `global` from now, not from its oldest kept message.
        let last = self.inner.store.last_seq(GLOBAL_ROOM).await?;
        self.inner
            .store
            .advance_cursor(&agent_id, GLOBAL_ROOM, last)
            .await?;
        let issued = self.issue_token_unchecked(&agent_id).await?;
        self.audit(
            "identity",
            actor,
            "agent.create",
            &agent_id,
            None,
            json!({"handle": rec.handle, "role": role.as_str()}),
        )
        .await;
        self.audit(
            "identity",
            actor,
            "token.issue",
            &agent_id,
            None,
            json!({"token_id": issued.token_id}),
        )
        .await;
        Ok((rec, issued))
    }

    /// Change a handle: master for anyone, an agent for itself.
    pub async fn set_handle(
        &self,
        actor: &str,
        agent_id: &str,
        handle: &str,
    ) -> Result<AgentRecord> {
        if !valid_handle(handle.trim_start_matches('@')) {
            return Err(Error::invalid(
                "handle",
                "handle must match [a-z0-9_-]{2,32}",
            ));
        }
        self.require_self_or_master(actor, agent_id, "handle.change")
            .await?;
        let new = normalize_handle(handle);
        let old = self.inner.store.set_handle(agent_id, &new).await?;
        self.forget_identity(agent_id);
        self.audit(
            "identity",
            actor,
            "handle.change",
            agent_id,
            None,
            json!({"from": old, "to": new}),
        )
        .await;
        Ok((*self.agent(agent_id).await?).clone())
    }

    /// Issue an additional token (self or master).
    pub async fn issue_token(&self, actor: &str, agent_id: &str) -> Result<IssuedToken> {
        self.require_self_or_master(actor, agent_id, "token.issue")
            .await?;
        self.agent(agent_id).await?;
        let issued = self.issue_token_unchecked(agent_id).await?;
        self.audit(
            "identity",
            actor,
            "token.issue",
            agent_id,
            None,
            json!({"token_id": issued.token_id}),
        )
        .await;
        Ok(issued)
    }

    /// Revoke every token of the agent and issue a new one (self or master).
    /// Connections made with the old tokens are closed.
    pub async fn rotate_tokens(&self, actor: &str, agent_id: &str) -> Result<IssuedToken> {
        self.require_self_or_master(actor, agent_id, "token.rotate")
            .await?;
        self.agent(agent_id).await?;
        let revoked = self.inner.store.revoke_tokens(agent_id, None).await?;
        let issued = self.issue_token_unchecked(agent_id).await?;
        self.close_token_connections(agent_id, &revoked);
        self.audit(
            "identity",
            actor,
            "token.rotate",
            agent_id,
            None,
            json!({"revoked": revoked, "token_id": issued.token_id}),
        )
        .await;
        Ok(issued)
    }

    /// Revoke one token, or all of them (self or master). Returns the ids
    /// revoked; connections made with them are closed.
    pub async fn revoke_tokens(
        &self,
        actor: &str,
        agent_id: &str,
        token_id: Option<&str>,
    ) -> Result<Vec<String>> {
        self.require_self_or_master(actor, agent_id, "token.revoke")
            .await?;
        let revoked = self.inner.store.revoke_tokens(agent_id, token_id).await?;
        if revoked.is_empty() {
            return Err(Error::not_found("no such token"));
        }
        self.close_token_connections(agent_id, &revoked);
        self.audit(
            "identity",
            actor,
            "token.revoke",
            agent_id,
            None,
            json!({"revoked": revoked}),
        )
        .await;
        Ok(revoked)
    }

    /// The token ids of an agent (self, master or warden).
    pub async fn list_tokens(&self, actor: &str, agent_id: &str) -> Result<Vec<TokenRecord>> {
        let me = self.agent(actor).await?;
        if me.agent_id != agent_id && !me.role.reads_everything() {
            return Err(Error::forbidden(
                "only the agent itself, master or warden may list its tokens",
            ));
        }
        // An unknown agent is `not_found`, not an empty list.
        self.agent(agent_id).await?;
        let mut t = self.inner.store.list_tokens(agent_id).await?;
        for rec in &mut t {
            rec.hash.clear();
        }
        Ok(t)
    }

    pub(crate) fn close_token_connections(&self, agent_id: &str, revoked: &[String]) {
        let now = self.now();
        for c in self.inner.fanout.connections_of(agent_id) {
            if revoked.contains(&c.token_id) {
                c.close(
                    "token_revoked",
                    "the token of this connection was revoked",
                    now,
                );
            }
        }
    }

    async fn issue_token_unchecked(&self, agent_id: &str) -> Result<IssuedToken> {
        let token = tokens::generate();
        let token_id = tokens::new_token_id();
        self.inner
            .store
            .insert_token(TokenRecord {
                token_id: token_id.clone(),
                agent_id: agent_id.to_owned(),
                hash: tokens::hash(&token),
                created_at: self.now(),
            })
            .await?;
        Ok(IssuedToken { token, token_id })
    }

    pub(crate) async fn require_master(
        &self,
        actor: &str,
        action: &str,
        target: &str,
    ) -> Result<()> {
        let me = self.agent(actor).await?;
        if me.role == Role::Master {
            return Ok(());
        }
        self.refuse(
            actor,
            action,
            target,
            format!("{action} needs the master role"),
        )
        .await
    }

    async fn require_self_or_master(&self, actor: &str, target: &str, action: &str) -> Result<()> {
        let me = self.agent(actor).await?;
        if me.role == Role::Master || me.agent_id == target {
            return Ok(());
        }
        self.refuse(
            actor,
            action,
            target,
            format!("{action} on another agent needs the master role"),
        )
        .await
    }

    /// Refuse an action (an ownership check here, or the authorization
    /// matrix of a surface): audited as `policy.blocked`, answered
    /// `forbidden`.
    pub async fn refuse<T>(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        reason: String,
    ) -> Result<T> {
        self.audit(
            "policy",
            actor,
            "policy.blocked",
            target,
            Some(reason.clone()),
            json!({"action": action}),
        )
        .await;
        crate::metrics::policy_blocked();
        Err(Error::forbidden(reason))
    }
}
