//! The OpenAPI 3.1 description of the REST surface, generated from the code
//! with utoipa and served at `GET /api/v1/openapi.json`.
//!
//! Each route is described by a small doc-only function below (the handlers
//! live in `rest.rs` and `guard.rs`); the wire types come from
//! `clawnet-proto` (its `openapi` feature), and the few bodies the handlers
//! build by hand are mirrored here. [`Common`] then adds what every route
//! shares, from the authorization matrix ([`crate::policy::REST`]): the
//! bearer requirement (none on public routes), who may call, and the error
//! answers (401, 403, 404, 400, 413, 429 with `Retry-After`, 503), all with
//! the one `Error` schema.
//!
//! `docs/openapi.json` is this document, pretty-printed; the test
//! `crates/clawnet-server/tests/openapi.rs` fails when they differ, and
//! `UPDATE_OPENAPI=1 cargo test -p clawnet-server --test openapi` rewrites
//! the file. The same test checks that the document and the matrix name the
//! same routes.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use clawnet_proto::guard::{
    DefenderSignal, HeldItem, QuarantineItem, QuarantineList, QuarantineState,
};
use clawnet_proto::methods::{
    HistoryResult, PresenceEntry, PresenceList, PresenceStatus, RoomCreateParams, RoomInfo,
    RoomList, SendParams, SendResult,
};
use clawnet_proto::tasks::{
    ActivityEntry, ActivityList, AgentStatus, BreakerInfo, BreakerState, DispatchParams,
    DispatchResult, QueueInfo, QueueList, Schedule, ScheduleCreated, ScheduleList, ScheduleParams,
    Task, TaskList, TaskOrigin, TaskState,
};
use clawnet_proto::{Envelope, ErrorBody, ErrorCode, Role, RoomKind, ToType};
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::policy::{self, Access};

use schemas::*;

/// Bodies that the handlers build by hand (`json!`) or that live in
/// `clawnet-core`, mirrored for the document. They are never constructed.
#[allow(dead_code)]
mod schemas {
    use clawnet_proto::Role;
    use clawnet_proto::{Envelope, ErrorBody};
    use serde::Deserialize;
    use serde_json::Value;
    use utoipa::ToSchema;

    /// The error answer of every route: `{"error":{…}}` (PROTOCOL.md §7).
    #[derive(Debug, Deserialize, ToSchema)]
    #[schema(as = Error)]
    pub struct ErrorResponse {
        /// What went wrong.
        pub error: ErrorBody,
    }

    /// `/healthz` and `/readyz`.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct Health {
        /// `ok` (`/healthz`) or `ready` (`/readyz`).
        pub status: String,
    }

    /// A registered agent.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct Agent {
        /// Stable id, `[a-z0-9][a-z0-9._-]{0,63}`.
        pub agent_id: String,
        /// Current handle, lower case.
        pub handle: String,
        /// Role.
        pub role: Role,
        /// Registration time, ms since the epoch.
        pub created_at: u64,
        /// Who registered it (`null` for the bootstrap master).
        pub created_by: Option<String>,
    }

    /// `GET /api/v1/agents`: one page, by agent id.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct AgentList {
        /// Agents, sorted by id.
        pub agents: Vec<Agent>,
        /// Pass as `after` for the next page; absent on the last page.
        #[serde(default)]
        pub next: Option<String>,
    }

    /// `GET /api/v1/rooms`: one page, by name.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct RoomPage {
        /// Visible rooms, sorted by name.
        pub rooms: Vec<clawnet_proto::methods::RoomInfo>,
        /// Pass as `after` for the next page; absent on the last page.
        #[serde(default)]
        pub next: Option<String>,
    }

    /// `PATCH /api/v1/agents/{id}` body.
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct SetRole {
        /// The new role.
        pub role: Role,
    }

    /// `DELETE /api/v1/agents/{id}`.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct AgentRemoved {
        /// The agent as it was.
        pub agent: Agent,
        /// Always true.
        pub removed: bool,
    }

    /// `DELETE /api/v1/rooms/{room}`.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct RoomDeleted {
        /// Room key.
        pub room: String,
        /// Always true.
        pub deleted: bool,
        /// Who were its members.
        pub members: Vec<String>,
    }

    /// The other side of a DM.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct DmPeer {
        /// Its id.
        pub agent_id: String,
        /// Its handle (empty if the agent was removed).
        pub handle: String,
    }

    /// One DM.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct DmInfo {
        /// The room key, `dm:<a>:<b>`.
        pub room: String,
        /// The other agent (with `?all=true`, in a DM the caller is not in:
        /// the first party).
        pub with: DmPeer,
        /// Both parties, sorted.
        #[schema(min_items = 2, max_items = 2)]
        pub agents: Vec<String>,
        /// The newest `seq` (0 when empty).
        pub last_seq: u64,
    }

    /// `GET /api/v1/dms`: one page, by room key.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct DmList {
        /// DMs, sorted by room key.
        pub dms: Vec<DmInfo>,
        /// Pass as `after` for the next page; absent on the last page.
        #[serde(default)]
        pub next: Option<String>,
    }

    /// Runtime settings: setting name to value.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct Settings {
        /// Every runtime setting and its current value.
        pub settings: serde_json::Map<String, Value>,
    }

    /// One agent.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct AgentResult {
        /// The agent.
        pub agent: Agent,
    }

    /// `POST /api/v1/agents` body.
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CreateAgent {
        /// Agent id (generated as `agent-<12 hex>` when absent).
        #[serde(default)]
        #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
        pub agent_id: Option<String>,
        /// Handle, `[A-Za-z0-9_-]{2,32}`.
        #[schema(pattern = "^[A-Za-z0-9_-]{2,32}$")]
        pub handle: String,
        /// Role (default `worker`).
        #[serde(default)]
        pub role: Option<Role>,
    }

    /// `POST /api/v1/agents` result: the agent and its first token.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct AgentCreated {
        /// The new agent.
        pub agent: Agent,
        /// Its bearer token, shown once.
        pub token: String,
        /// The token's id, for revocation.
        pub token_id: String,
    }

    /// A freshly issued token, shown once.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct IssuedToken {
        /// The bearer token, `cn_` + 64 hex digits.
        pub token: String,
        /// Its id, `tok_` + 12 hex digits.
        pub token_id: String,
    }

    /// One token of an agent (never the token itself).
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct TokenInfo {
        /// Its id.
        pub token_id: String,
        /// Issue time, ms since the epoch.
        pub created_at: u64,
    }

    /// `GET /api/v1/agents/{id}/tokens`.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct TokenList {
        /// The agent's live tokens.
        pub tokens: Vec<TokenInfo>,
    }

    /// `DELETE /api/v1/agents/{id}/tokens/{token_id}`.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct Revoked {
        /// Ids of the revoked tokens.
        pub revoked: Vec<String>,
    }

    /// How an agent is activated in rooms.
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum Activation {
        /// Only messages that @mention it (and DMs).
        Mention,
        /// Every message in its rooms.
        Always,
    }

    /// What happens to activations that arrive while the agent is busy.
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum InboxMode {
        /// Keep every follow-up, in order.
        Followup,
        /// Keep only the newest waiting one; the others become `skipped`.
        Steer,
        /// Merge waiting follow-ups into one task.
        Collect,
    }

    /// An agent's inbox settings.
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct InboxSettings {
        /// How it is activated in rooms (default `mention`).
        #[serde(default)]
        pub activation: Option<Activation>,
        /// What happens to follow-ups while it is busy (default `followup`).
        #[serde(default)]
        pub mode: Option<InboxMode>,
    }

    /// `POST /api/v1/handles` body.
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct SetHandle {
        /// The agent whose handle changes.
        pub agent_id: String,
        /// The new handle (a leading `@` is accepted).
        #[schema(pattern = "^@?[A-Za-z0-9_-]{2,32}$")]
        pub handle: String,
    }

    /// `GET /api/v1/rooms/{room}/members`: one page, by agent id.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct RoomMembers {
        /// Room key.
        pub room: String,
        /// Agent ids of its members, sorted.
        pub members: Vec<String>,
        /// Pass as `after` for the next page; absent on the last page.
        #[serde(default)]
        pub next: Option<String>,
    }

    /// `POST /api/v1/rooms/{room}/leave`.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct RoomLeft {
        /// Room key.
        pub room: String,
        /// Whether the caller was a member.
        pub left: bool,
    }

    /// `POST /api/v1/rooms/{room}/invite` body.
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Invite {
        /// The agent to add: its id or `@handle`.
        pub agent: String,
    }

    /// `DELETE /api/v1/rooms/{room}/messages/{seq}`: the tombstone.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct DeletedMessage {
        /// The message as it now stands in history.
        pub message: Envelope,
    }

    /// One entry of the audit trail.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct AuditEntry {
        /// Position in the trail (1, 2, …).
        pub id: u64,
        /// Time, ms since the epoch.
        pub ts: u64,
        /// Category, e.g. `identity`, `auth`, `chat`, `policy`.
        #[serde(rename = "type")]
        pub kind: String,
        /// Who did it (agent id, or the remote address for failed logins).
        pub actor: String,
        /// What was done, e.g. `handle.change`.
        pub action: String,
        /// What it was done to.
        pub target: String,
        /// Why, if refused.
        pub reason: Option<String>,
        /// Details.
        pub meta: Value,
        /// The previous entry's `hash` (64 zeros for the first; empty before
        /// the chain existed).
        pub prev_hash: String,
        /// Lower-case hex SHA-256 of `prev_hash` and this entry.
        pub hash: String,
    }

    /// `GET /api/v1/logs`.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct AuditLog {
        /// Oldest first.
        pub entries: Vec<AuditEntry>,
    }

    /// Optional body of a quarantine approval or rejection.
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Decision {
        /// Why (kept in the ledger and the audit trail).
        #[serde(default)]
        pub reason: Option<String>,
    }

    /// A quarantine decision's result.
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct QuarantineDecision {
        /// The item after the decision.
        pub item: clawnet_proto::guard::QuarantineItem,
    }
}

/// The document, generated once per process.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as committed in `docs/openapi.json`: pretty-printed, keys
/// in a stable order, one trailing newline.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
        s.push('\n');
        s
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "clawnet hub REST API",
        description = "REST v1 of the clawnet hub (docs/PROTOCOL.md §10). Every error is \
            `{\"error\":{\"code\",\"message\",\"field\"?,\"retry_after_ms\"?,\"details\"?}}` \
            with the statuses of PROTOCOL.md §7. Bodies are JSON; unknown keys are refused \
            with 400. An unknown route is 404 `not_found`; a wrong method on a known route \
            is 405 `invalid`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        healthz, readyz, metrics, ws, openapi_json,
        whoami, list_agents, create_agent, get_agent, set_role, remove_agent, list_tokens, issue_token, rotate_tokens,
        revoke_token, get_inbox, put_inbox, set_handle,
        list_rooms, create_room, get_room, room_members, join_room, leave_room, invite,
        history, delete_message, delete_room, list_dms, dm_history, send, presence,
        list_tasks, dispatch, get_task, retry_task, cancel_task,
        list_queues, pause_queue, resume_queue,
        list_schedules, create_schedule, delete_schedule,
        activity, logs, logs_alias,
        get_settings, patch_settings, get_settings_alias, patch_settings_alias,
        post_settings_alias,
        list_quarantine, approve, reject,
    ),
    components(schemas(
        ErrorResponse, ErrorBody, ErrorCode, Health,
        Agent, AgentList, AgentResult, CreateAgent, AgentCreated, Role,
        IssuedToken, TokenInfo, TokenList, Revoked,
        Activation, InboxMode, InboxSettings, SetHandle,
        RoomCreateParams, RoomInfo, RoomKind, RoomList, RoomPage, RoomMembers, RoomLeft, Invite,
        SetRole, AgentRemoved, RoomDeleted, DmPeer, DmInfo, DmList, Settings,
        HistoryResult, Envelope, ToType, SendParams, SendResult, DeletedMessage,
        PresenceList, PresenceEntry, PresenceStatus,
        Task, TaskState, TaskOrigin, TaskList, DispatchParams, DispatchResult,
        QueueInfo, QueueList, BreakerInfo, BreakerState,
        Schedule, ScheduleParams, ScheduleCreated, ScheduleList,
        ActivityEntry, ActivityList, AgentStatus,
        AuditEntry, AuditLog,
        QuarantineItem, QuarantineList, QuarantineState, HeldItem, DefenderSignal,
        Decision, QuarantineDecision,
    )),
    modifiers(&Common),
    tags(
        (name = "health", description = "Liveness, readiness, metrics, this document"),
        (name = "agents", description = "Agents, tokens, handles, inbox settings"),
        (name = "rooms", description = "Rooms, membership and history"),
        (name = "messages", description = "Chat messages"),
        (name = "presence", description = "Presence and activity"),
        (name = "tasks", description = "Tasks, queues and schedules"),
        (name = "audit", description = "The audit trail"),
        (name = "settings", description = "Runtime settings"),
        (name = "quarantine", description = "The defender's quarantine"),
        (name = "websocket", description = "The WebSocket upgrade"),
    ),
)]
struct ApiDoc;

/// The name of the bearer security scheme.
const BEARER: &str = "bearer";

/// Shared error answers, in `components.responses`: (name, status, text).
const ERRORS: &[(&str, &str, &str)] = &[
    (
        "Invalid",
        "400",
        "`invalid`: a malformed body, query or path parameter, an unknown key, or a field \
         breaking its rule (`field` names it)",
    ),
    (
        "Unauthorized",
        "401",
        "`unauthorized`: no bearer token, or an unknown or revoked one",
    ),
    (
        "Forbidden",
        "403",
        "`forbidden`: the caller's role or membership does not allow it",
    ),
    (
        "NotFound",
        "404",
        "`not_found`: no such agent, room, token, task, queue, schedule or item, or one the \
         caller cannot see",
    ),
    (
        "TooLarge",
        "413",
        "`too_large`: the body is over `ws.max_frame_bytes` (`field` `body`), or a field over \
         its limit",
    ),
    (
        "RateLimited",
        "429",
        "`rate_limited`: too many requests; `retry_after_ms` and the `Retry-After` header \
         (seconds) say how long to wait",
    ),
    (
        "Unavailable",
        "503",
        "`unavailable`: the store failed; retry later",
    ),
];

/// Adds what every operation shares, from the authorization matrix.
#[derive(Debug)]
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(
            BEARER.to_owned(),
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("cn_<64 hex digits>")
                    .description(Some(
                        "An agent token (`Authorization: Bearer <token>`); the bootstrap master's \
                     is `CLAWNET_MASTER_TOKEN`.",
                    ))
                    .build(),
            ),
        );
        for (name, _, text) in ERRORS {
            let mut b = ResponseBuilder::new().description(*text).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Error")))
                    .build(),
            );
            if *name == "RateLimited" {
                b = b.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(
                            utoipa::openapi::ObjectBuilder::new()
                                .schema_type(utoipa::openapi::schema::Type::Integer)
                                .minimum(Some(1)),
                        )
                        .description(Some("Seconds to wait, rounded up, at least 1"))
                        .build(),
                );
            }
            components
                .responses
                .insert((*name).to_owned(), RefOr::T(b.build()));
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops = [
                (HttpMethod::Get, &mut item.get),
                (HttpMethod::Post, &mut item.post),
                (HttpMethod::Put, &mut item.put),
                (HttpMethod::Delete, &mut item.delete),
                (HttpMethod::Patch, &mut item.patch),
            ];
            for (method, op) in ops {
                let Some(op) = op.as_mut() else { continue };
                let method = method_name(&method);
                let Some(rule) = policy::rest(method, path) else {
                    continue;
                };
                annotate(op, rule.access);
            }
        }
    }
}

fn method_name(m: &HttpMethod) -> &'static str {
    match m {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
        HttpMethod::Put => "PUT",
        HttpMethod::Delete => "DELETE",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Head => "HEAD",
        HttpMethod::Options => "OPTIONS",
        HttpMethod::Trace => "TRACE",
    }
}

/// Who may call, in words, for the operation's description.
fn who(access: Access) -> &'static str {
    match access {
        Access::Public => "anyone, without a token",
        Access::Agent => "any agent (the operation limits a worker to what it may see)",
        Access::SelfOrStaff => "the agent named by `{id}` itself, master, warden",
        Access::SelfOrMaster => "the agent named by `{id}` itself, master",
        Access::Staff => "master, warden",
        Access::Master => "master",
    }
}

fn annotate(op: &mut Operation, access: Access) {
    let line = format!("Who may call: {}.", who(access));
    op.description = Some(match op.description.take() {
        Some(d) if !d.is_empty() => format!("{d}\n\n{line}"),
        _ => line,
    });
    let mut errors = vec!["429"];
    if access == Access::Public {
        op.security = Some(Vec::new());
    } else {
        op.security = Some(vec![SecurityRequirement::new::<_, _, &str>(BEARER, [])]);
        errors.extend(["400", "401", "403", "404", "503"]);
    }
    if op.request_body.is_some() {
        errors.extend(["400", "413"]);
    }
    for status in errors {
        let Some((name, _, _)) = ERRORS.iter().find(|(_, s, _)| *s == status) else {
            continue;
        };
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
    }
    if let Some(body) = op.request_body.as_mut() {
        if body.required.is_none() {
            body.required = Some(Required::True);
        }
    }
}

// ---- health -------------------------------------------------------------

/// Liveness
///
/// Always `{"status":"ok"}` while the process serves.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn healthz() {}

/// Readiness
///
/// `{"status":"ready"}` when the store answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "`unavailable`: the store does not answer",
            body = ErrorResponse),
    ))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn readyz() {}

/// Prometheus metrics
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format",
        body = String, content_type = "text/plain")))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn metrics() {}

/// WebSocket upgrade
///
/// Opens a C2CP v2 session (PROTOCOL.md §1–§5). The token goes in
/// `Authorization: Bearer` or, for browsers, `?token=`. A request that is
/// not a WebSocket upgrade is refused with 400 (`field` `upgrade`); a
/// browser `Origin` that is not allowed, with 403.
#[utoipa::path(get, path = "/ws", tag = "websocket",
    params(("token" = Option<String>, Query,
        description = "The bearer token, for clients that cannot set headers")),
    responses(
        (status = 101, description = "Switching Protocols: the WebSocket session starts"),
        (status = 400, description = "`invalid`: not a WebSocket upgrade (`field` `upgrade`)",
            body = ErrorResponse),
        (status = 401, description = "`unauthorized`: no token, or an unknown or revoked one",
            body = ErrorResponse),
        (status = 403, description = "`forbidden`: the `Origin` is not allowed",
            body = ErrorResponse),
        (status = 503, description = "`unavailable`: the store failed", body = ErrorResponse),
    ))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn ws() {}

/// This document
///
/// The OpenAPI 3.1 description of the REST surface (`docs/openapi.json`).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn openapi_json() {}

// ---- agents -------------------------------------------------------------

/// List agents
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents",
    params(
        ("after" = Option<String>, Query, description = "Only items after this agent id (paging)"),
        ("limit" = Option<u32>, Query, description = "At most this many (1–1000, default 100)"),
    ),
    responses((status = 200, description = "One page of agents", body = AgentList)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn list_agents() {}

/// Register an agent
///
/// Creates the agent and its first token (shown once).
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", request_body = CreateAgent,
    responses(
        (status = 201, description = "Registered", body = AgentCreated),
        (status = 409, description = "`conflict`: the agent id or handle is taken",
            body = ErrorResponse),
    ))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn create_agent() {}

/// Who am I
///
/// The caller's own agent record (id, handle, role): how a client that
/// holds only a token learns who it is.
#[utoipa::path(get, path = "/api/v1/me", tag = "agents",
    responses((status = 200, description = "The caller", body = AgentResult)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn whoami() {}

/// Get an agent
#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "Agent id or `@handle`")),
    responses((status = 200, description = "The agent", body = AgentResult)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn get_agent() {}

/// List an agent's tokens
#[utoipa::path(get, path = "/api/v1/agents/{id}/tokens", tag = "agents",
    params(("id" = String, Path, description = "Agent id or `@handle`")),
    responses((status = 200, description = "Its live tokens (ids only)", body = TokenList)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn list_tokens() {}

/// Issue a token
#[utoipa::path(post, path = "/api/v1/agents/{id}/tokens", tag = "agents",
    params(("id" = String, Path, description = "Agent id or `@handle`")),
    responses((status = 201, description = "The new token, shown once", body = IssuedToken)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn issue_token() {}

/// Rotate tokens
///
/// Revokes all the agent's tokens, closes their connections
/// (`token_revoked`) and issues a new one.
#[utoipa::path(post, path = "/api/v1/agents/{id}/tokens/rotate", tag = "agents",
    params(("id" = String, Path, description = "Agent id or `@handle`")),
    responses((status = 201, description = "The new token, shown once", body = IssuedToken)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn rotate_tokens() {}

/// Revoke a token
///
/// Closes that token's connections.
#[utoipa::path(delete, path = "/api/v1/agents/{id}/tokens/{token_id}", tag = "agents",
    params(
        ("id" = String, Path, description = "Agent id or `@handle`"),
        ("token_id" = String, Path, description = "Token id, `tok_` + 12 hex digits"),
    ),
    responses((status = 200, description = "Revoked", body = Revoked)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn revoke_token() {}

/// Get inbox settings
#[utoipa::path(get, path = "/api/v1/agents/{id}/inbox", tag = "agents",
    params(("id" = String, Path, description = "Agent id or `@handle`")),
    responses((status = 200, description = "Its inbox settings", body = InboxSettings)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn get_inbox() {}

/// Set inbox settings
#[utoipa::path(put, path = "/api/v1/agents/{id}/inbox", tag = "agents",
    params(("id" = String, Path, description = "Agent id or `@handle`")),
    request_body = InboxSettings,
    responses((status = 200, description = "The settings now in force", body = InboxSettings)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn put_inbox() {}

/// Change a handle
///
/// An agent for itself; master for anyone.
#[utoipa::path(post, path = "/api/v1/handles", tag = "agents", request_body = SetHandle,
    responses(
        (status = 200, description = "The agent with its new handle", body = AgentResult),
        (status = 409, description = "`conflict`: the handle is taken", body = ErrorResponse),
    ))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn set_handle() {}

// ---- rooms --------------------------------------------------------------

/// List rooms
///
/// The rooms visible to the caller, as `room.list`.
#[utoipa::path(get, path = "/api/v1/rooms", tag = "rooms",
    params(
        ("after" = Option<String>, Query, description = "Only items after this name (paging)"),
        ("limit" = Option<u32>, Query, description = "At most this many (1–1000, default 100)"),
    ),
    responses((status = 200, description = "One page of visible rooms", body = RoomPage)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn list_rooms() {}

/// Create a room
#[utoipa::path(post, path = "/api/v1/rooms", tag = "rooms", request_body = RoomCreateParams,
    responses(
        (status = 201, description = "Created", body = RoomInfo),
        (status = 409, description = "`conflict`: the name is taken", body = ErrorResponse),
    ))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn create_room() {}

/// Get a room
#[utoipa::path(get, path = "/api/v1/rooms/{room}", tag = "rooms",
    params(("room" = String, Path, description = "Room key: `global`, a name, `dm:<a>:<b>`")),
    responses((status = 200, description = "The room", body = RoomInfo)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn get_room() {}

/// List a room's members
#[utoipa::path(get, path = "/api/v1/rooms/{room}/members", tag = "rooms",
    params(
        ("room" = String, Path, description = "Room key"),
        ("after" = Option<String>, Query, description = "Only items after this agent id (paging)"),
        ("limit" = Option<u32>, Query, description = "At most this many (1–1000, default 100)"),
    ),
    responses((status = 200, description = "One page of its members", body = RoomMembers)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn room_members() {}

/// Join a room
#[utoipa::path(post, path = "/api/v1/rooms/{room}/join", tag = "rooms",
    params(("room" = String, Path, description = "Room key")),
    responses((status = 200, description = "The room after joining", body = RoomInfo)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn join_room() {}

/// Leave a room
#[utoipa::path(post, path = "/api/v1/rooms/{room}/leave", tag = "rooms",
    params(("room" = String, Path, description = "Room key")),
    responses((status = 200, description = "Left (or was not a member)", body = RoomLeft)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn leave_room() {}

/// Invite an agent
#[utoipa::path(post, path = "/api/v1/rooms/{room}/invite", tag = "rooms",
    params(("room" = String, Path, description = "Room key")),
    request_body = Invite,
    responses((status = 200, description = "The room after the invite", body = RoomInfo)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn invite() {}

/// Read history
#[utoipa::path(get, path = "/api/v1/rooms/{room}/history", tag = "rooms",
    params(
        ("room" = String, Path, description = "Room key"),
        ("after_seq" = Option<u64>, Query,
            description = "Messages with `seq` greater than this (default 0)"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 100)"),
    ),
    responses((status = 200, description = "One page, oldest first", body = HistoryResult)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn history() {}

/// Delete a message
///
/// As `chat.delete`: its sender or master. History keeps a tombstone.
#[utoipa::path(delete, path = "/api/v1/rooms/{room}/messages/{seq}", tag = "messages",
    params(
        ("room" = String, Path, description = "Room key"),
        ("seq" = u64, Path, description = "The message's `seq`"),
    ),
    responses((status = 200, description = "The tombstone", body = DeletedMessage)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn delete_message() {}

// ---- messages and presence ----------------------------------------------

/// Send a message
///
/// As `chat.send`. A retry with the same `dedupe_key` inside the dedupe
/// window answers 200 with the original message.
#[utoipa::path(post, path = "/api/v1/messages", tag = "messages", request_body = SendParams,
    responses(
        (status = 201, description = "Stored", body = SendResult),
        (status = 200, description = "A duplicate: the original message", body = SendResult),
        (status = 202, description = "`held`: the defender holds it for review \
            (`details.quarantine_id`); do not retry", body = ErrorResponse),
        (status = 422, description = "`blocked`: refused by the defender \
            (`details.signals`)", body = ErrorResponse),
    ))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn send() {}

/// List presence
#[utoipa::path(get, path = "/api/v1/presence", tag = "presence",
    responses((status = 200, description = "Every agent's presence", body = PresenceList)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn presence() {}

/// Activity
///
/// Per agent: offline, idle or working, queue depth and breaker.
#[utoipa::path(get, path = "/api/v1/activity", tag = "presence",
    responses((status = 200, description = "Agents the caller may see", body = ActivityList)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn activity() {}

// ---- tasks --------------------------------------------------------------

/// List tasks
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks",
    params(
        ("state" = Option<TaskState>, Query, description = "Only this state"),
        ("target" = Option<String>, Query, description = "Only tasks for this agent id"),
        ("after" = Option<String>, Query, description = "Only tasks after this id (paging)"),
        ("limit" = Option<u32>, Query, description = "At most this many (1–1000, default 100)"),
    ),
    responses((status = 200, description = "One page, oldest first", body = TaskList)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn list_tasks() {}

/// Dispatch a task
///
/// As `task.dispatch`. While a task with the same `dedupe_key` is active
/// for the target, answers 200 with it.
#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", request_body = DispatchParams,
    responses(
        (status = 201, description = "Queued", body = DispatchResult),
        (status = 200, description = "A duplicate: the active task", body = DispatchResult),
        (status = 202, description = "`held`: the defender holds it for review \
            (`details.quarantine_id`); do not retry", body = ErrorResponse),
        (status = 422, description = "`blocked`: refused by the defender \
            (`details.signals`)", body = ErrorResponse),
    ))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn dispatch() {}

/// Get a task
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    responses((status = 200, description = "The task", body = Task)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn get_task() {}

/// Retry a failed task
#[utoipa::path(post, path = "/api/v1/tasks/{id}/retry", tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    responses(
        (status = 200, description = "The task, queued again", body = Task),
        (status = 409, description = "`conflict`: the task is not failed, or changed \
            meanwhile", body = ErrorResponse),
    ))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn retry_task() {}

/// Cancel a task
///
/// The dispatcher or master; a queued or delayed task only.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/cancel", tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    responses(
        (status = 200, description = "The cancelled task", body = Task),
        (status = 409, description = "`conflict`: the task already started or ended",
            body = ErrorResponse),
    ))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn cancel_task() {}

/// List queues
#[utoipa::path(get, path = "/api/v1/queues", tag = "tasks",
    responses((status = 200, description = "Queues the caller may see", body = QueueList)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn list_queues() {}

/// Pause a queue
#[utoipa::path(post, path = "/api/v1/queues/{name}/pause", tag = "tasks",
    params(("name" = String, Path, description = "Agent id or `@handle` of the target")),
    responses((status = 200, description = "The queue", body = QueueInfo)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn pause_queue() {}

/// Resume a queue
#[utoipa::path(post, path = "/api/v1/queues/{name}/resume", tag = "tasks",
    params(("name" = String, Path, description = "Agent id or `@handle` of the target")),
    responses((status = 200, description = "The queue", body = QueueInfo)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn resume_queue() {}

/// List schedules
#[utoipa::path(get, path = "/api/v1/schedules", tag = "tasks",
    responses((status = 200, description = "Schedules the caller may see", body = ScheduleList)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn list_schedules() {}

/// Register a schedule
///
/// Idempotent: 200 when the same schedule (or one of the same name) exists.
#[utoipa::path(post, path = "/api/v1/schedules", tag = "tasks", request_body = ScheduleParams,
    responses(
        (status = 201, description = "Registered", body = ScheduleCreated),
        (status = 200, description = "It existed (kept or replaced by name)",
            body = ScheduleCreated),
        (status = 422, description = "`blocked`: its payload would need review",
            body = ErrorResponse),
    ))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn create_schedule() {}

/// Delete a schedule
#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "tasks",
    params(("id" = String, Path, description = "Schedule id")),
    responses((status = 200, description = "The deleted schedule", body = Schedule)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn delete_schedule() {}

// ---- audit --------------------------------------------------------------

/// Read the audit trail
///
/// The newest `limit` matching entries, oldest first; with `after_id`, the
/// oldest `limit` entries whose id is greater.
#[utoipa::path(get, path = "/api/v1/logs", tag = "audit",
    params(
        ("type" = Option<String>, Query, description = "Only this category"),
        ("actor" = Option<String>, Query, description = "Only this actor"),
        ("since" = Option<u64>, Query, description = "Only entries at or after (ms)"),
        ("after_id" = Option<u64>, Query, description = "Only entries with a larger id"),
        ("limit" = Option<u32>, Query, description = "1–1000, default 100"),
    ),
    responses((status = 200, description = "Entries, oldest first", body = AuditLog)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn logs() {}

/// Read the audit trail (predecessor alias)
///
/// The same as `GET /api/v1/logs`.
#[utoipa::path(get, path = "/api/logs", tag = "audit",
    params(
        ("type" = Option<String>, Query, description = "Only this category"),
        ("actor" = Option<String>, Query, description = "Only this actor"),
        ("since" = Option<u64>, Query, description = "Only entries at or after (ms)"),
        ("after_id" = Option<u64>, Query, description = "Only entries with a larger id"),
        ("limit" = Option<u32>, Query, description = "1–1000, default 100"),
    ),
    responses((status = 200, description = "Entries, oldest first", body = AuditLog)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn logs_alias() {}

// ---- quarantine ---------------------------------------------------------

/// List quarantined items
#[utoipa::path(get, path = "/api/v1/quarantine", tag = "quarantine",
    params(("state" = Option<QuarantineState>, Query, description = "Default `held`")),
    responses((status = 200, description = "Items, oldest first", body = QuarantineList)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn list_quarantine() {}

/// Approve a held item
///
/// Delivers (or dispatches) it now, as its sender.
#[utoipa::path(post, path = "/api/v1/quarantine/{id}/approve", tag = "quarantine",
    params(("id" = String, Path, description = "Item id, `q_…`")),
    request_body(content = Option<Decision>, description = "Optional"),
    responses(
        (status = 200, description = "The item after the decision", body = QuarantineDecision),
        (status = 409, description = "`conflict`: the item was already decided",
            body = ErrorResponse),
    ))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn approve() {}

/// Reject a held item
///
/// It is never delivered.
#[utoipa::path(post, path = "/api/v1/quarantine/{id}/reject", tag = "quarantine",
    params(("id" = String, Path, description = "Item id, `q_…`")),
    request_body(content = Option<Decision>, description = "Optional"),
    responses(
        (status = 200, description = "The item after the decision", body = QuarantineDecision),
        (status = 409, description = "`conflict`: the item was already decided",
            body = ErrorResponse),
    ))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn reject() {}

/// Change an agent's role
///
/// The last master cannot be demoted; the new role applies from the
/// agent's next request.
#[utoipa::path(patch, path = "/api/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "Agent id or `@handle`")),
    request_body = SetRole,
    responses((status = 200, description = "The agent after the change", body = AgentResult)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn set_role() {}

/// Remove an agent
///
/// Takes its tokens (closing their connections), memberships and cursors;
/// its messages stay, and its id stays reserved.
#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "Agent id or `@handle`")),
    responses((status = 200, description = "Removed", body = AgentRemoved)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn remove_agent() {}

/// Delete a room
#[utoipa::path(delete, path = "/api/v1/rooms/{room}", tag = "rooms",
    params(("room" = String, Path, description = "Room key")),
    responses((status = 200, description = "Deleted", body = RoomDeleted)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn delete_room() {}

/// List DMs
#[utoipa::path(get, path = "/api/v1/dms", tag = "messages",
    params(
        ("all" = Option<bool>, Query,
            description = "Every DM on the hub, not only the caller's (master, warden)"),
        ("after" = Option<String>, Query, description = "Only items after this room key (paging)"),
        ("limit" = Option<u32>, Query, description = "At most this many (1–1000, default 100)"),
    ),
    responses((status = 200, description = "One page of DMs", body = DmList)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn list_dms() {}

/// Read a DM's history
#[utoipa::path(get, path = "/api/v1/dms/{id}/history", tag = "messages",
    params(
        ("id" = String, Path, description = "The other agent: id or `@handle`"),
        ("after_seq" = Option<u64>, Query,
            description = "Messages with `seq` greater than this (default 0)"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 100)"),
    ),
    responses((status = 200, description = "One page, oldest first", body = HistoryResult)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn dm_history() {}

/// Read runtime settings
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings",
    responses((status = 200, description = "Every runtime setting", body = Settings)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn get_settings() {}

/// Change runtime settings
///
/// All or nothing: an unknown name or a bad value changes nothing (400).
#[utoipa::path(patch, path = "/api/v1/settings", tag = "settings",
    request_body(content = Object, description = "`{\"<name>\": value, …}`, or the same \
        inside `{\"settings\": …}`"),
    responses((status = 200, description = "Every setting after the change", body = Settings)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn patch_settings() {}

/// Read runtime settings (predecessor alias)
#[utoipa::path(get, path = "/api/settings", tag = "settings",
    responses((status = 200, description = "Every runtime setting", body = Settings)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn get_settings_alias() {}

/// Change runtime settings (predecessor alias)
#[utoipa::path(patch, path = "/api/settings", tag = "settings",
    request_body(content = Object, description = "`{\"<name>\": value, …}`, or the same \
        inside `{\"settings\": …}`"),
    responses((status = 200, description = "Every setting after the change", body = Settings)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn patch_settings_alias() {}

/// Change runtime settings (predecessor alias, POST)
#[utoipa::path(post, path = "/api/settings", tag = "settings",
    request_body(content = Object, description = "`{\"<name>\": value, …}`, or the same \
        inside `{\"settings\": …}`"),
    responses((status = 200, description = "Every setting after the change", body = Settings)))]
#[allow(dead_code)] // doc-only: the handler is elsewhere
fn post_settings_alias() {}
