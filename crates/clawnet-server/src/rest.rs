//! REST v1 under `/api/v1`, plus the predecessor's `/api/logs`, and health.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{on, MethodFilter};
use axum::{Json, Router};
use clawnet_core::admin::{page, page_json, page_limit};
use clawnet_core::inbox::InboxSettings;
use clawnet_core::store::AuditFilter;
use clawnet_proto::methods::{PresenceList, RoomCreateParams, RoomInviteParams, SendParams};
use clawnet_proto::tasks::{
    ActivityList, DispatchParams, DispatchResult, QueueInfo, QueueList, Schedule, ScheduleCreated,
    ScheduleList, ScheduleParams, Task, TaskList, TaskListParams,
};
use clawnet_proto::Role;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::errors::{no_route, wrong_method, ApiError, ApiResult, Body, Params, PathArgs};
use crate::AppState;

/// Registers routes only with an entry in the authorization matrix
/// ([`crate::policy::REST`]): a route without one fails every test at
/// router construction.
struct Api(Router<AppState>);

impl Api {
    fn on<H, T>(self, method: &'static str, path: &'static str, h: H) -> Self
    where
        H: axum::handler::Handler<T, AppState>,
        T: 'static,
    {
        assert!(
            crate::policy::rest(method, path).is_some(),
            "{method} {path} has no entry in the authorization matrix (policy::REST)"
        );
        let filter = match method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            "DELETE" => MethodFilter::DELETE,
            "PATCH" => MethodFilter::PATCH,
            other => panic!("unsupported method {other}"),
        };
        Self(self.0.route(path, on(filter, h)))
    }
}

pub fn routes() -> Router<AppState> {
    Api(Router::new())
        .on("GET", "/healthz", healthz)
        .on("GET", "/readyz", readyz)
        .on("GET", "/metrics", crate::metrics::render)
        .on("GET", "/ws", crate::ws::upgrade)
        .on("GET", "/api/v1/openapi.json", crate::openapi::serve)
        .on("GET", "/api/v1/me", whoami)
        .on("GET", "/api/v1/agents", list_agents)
        .on("POST", "/api/v1/agents", create_agent)
        .on("GET", "/api/v1/agents/{id}", get_agent)
        .on("PATCH", "/api/v1/agents/{id}", set_role)
        .on("DELETE", "/api/v1/agents/{id}", remove_agent)
        .on("GET", "/api/v1/agents/{id}/tokens", list_tokens)
        .on("POST", "/api/v1/agents/{id}/tokens", issue_token)
        .on("POST", "/api/v1/agents/{id}/tokens/rotate", rotate_tokens)
        .on(
            "DELETE",
            "/api/v1/agents/{id}/tokens/{token_id}",
            revoke_token,
        )
        .on("GET", "/api/v1/agents/{id}/inbox", get_inbox)
        .on("PUT", "/api/v1/agents/{id}/inbox", put_inbox)
        .on("POST", "/api/v1/handles", set_handle)
        .on("GET", "/api/v1/rooms", list_rooms)
        .on("POST", "/api/v1/rooms", create_room)
        .on("GET", "/api/v1/rooms/{room}", get_room)
        .on("DELETE", "/api/v1/rooms/{room}", delete_room)
        .on("GET", "/api/v1/rooms/{room}/members", room_members)
        .on("POST", "/api/v1/rooms/{room}/join", join_room)
        .on("POST", "/api/v1/rooms/{room}/leave", leave_room)
        .on("POST", "/api/v1/rooms/{room}/invite", invite)
        .on("GET", "/api/v1/rooms/{room}/history", history)
        .on(
            "DELETE",
            "/api/v1/rooms/{room}/messages/{seq}",
            crate::guard::delete_message,
        )
        .on("POST", "/api/v1/messages", send)
        .on("GET", "/api/v1/dms", list_dms)
        .on("GET", "/api/v1/dms/{id}/history", dm_history)
        .on("GET", "/api/v1/presence", presence)
        .on("GET", "/api/v1/tasks", list_tasks)
        .on("POST", "/api/v1/tasks", dispatch)
        .on("GET", "/api/v1/tasks/{id}", get_task)
        .on("POST", "/api/v1/tasks/{id}/retry", retry_task)
        .on("POST", "/api/v1/tasks/{id}/cancel", cancel_task)
        .on("GET", "/api/v1/queues", list_queues)
        .on("POST", "/api/v1/queues/{name}/pause", pause_queue)
        .on("POST", "/api/v1/queues/{name}/resume", resume_queue)
        .on("GET", "/api/v1/schedules", list_schedules)
        .on("POST", "/api/v1/schedules", create_schedule)
        .on("DELETE", "/api/v1/schedules/{id}", delete_schedule)
        .on("GET", "/api/v1/activity", activity)
        .on("GET", "/api/v1/logs", logs)
        .on("GET", "/api/logs", logs)
        .on("GET", "/api/v1/settings", get_settings)
        .on("PATCH", "/api/v1/settings", patch_settings)
        .on("GET", "/api/settings", get_settings)
        .on("PATCH", "/api/settings", patch_settings)
        .on("POST", "/api/settings", patch_settings)
        .on("GET", "/api/v1/quarantine", crate::guard::list_quarantine)
        .on(
            "POST",
            "/api/v1/quarantine/{id}/approve",
            crate::guard::approve,
        )
        .on(
            "POST",
            "/api/v1/quarantine/{id}/reject",
            crate::guard::reject,
        )
        .0
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(app): State<AppState>) -> ApiResult<Json<Value>> {
    app.hub.store().last_seq(clawnet_proto::GLOBAL_ROOM).await?;
    Ok(Json(json!({"status": "ready"})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAgent {
    #[serde(default)]
    agent_id: Option<String>,
    handle: String,
    #[serde(default = "worker")]
    role: Role,
}

fn worker() -> Role {
    Role::Worker
}

async fn create_agent(
    State(app): State<AppState>,
    caller: Caller,
    Body(b): Body<CreateAgent>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (agent, issued) = app
        .hub
        .register_agent(caller.id(), b.agent_id, &b.handle, b.role)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"agent": agent, "token": issued.token, "token_id": issued.token_id})),
    ))
}

/// `?after=&limit=` of the lists paged by key (agents, rooms, members, DMs).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    after: Option<String>,
    limit: Option<u32>,
}

async fn list_agents(
    State(app): State<AppState>,
    caller: Caller,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<Value>> {
    let (agents, next) = app
        .hub
        .agents_page(caller.id(), q.after.as_deref(), q.limit)
        .await?;
    Ok(Json(page_json("agents", json!(agents), next)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetRole {
    role: Role,
}

async fn set_role(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
    Body(b): Body<SetRole>,
) -> ApiResult<Json<Value>> {
    let a = app.hub.set_role(caller.id(), &id, b.role).await?;
    Ok(Json(json!({ "agent": a })))
}

async fn remove_agent(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> ApiResult<Json<Value>> {
    let a = app.hub.remove_agent(caller.id(), &id).await?;
    Ok(Json(json!({ "agent": a, "removed": true })))
}

/// The caller's own record: how a client holding only a token (the
/// dashboard at login) learns its id, handle and role.
async fn whoami(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let a = app.hub.agent(caller.id()).await?;
    Ok(Json(json!({"agent": *a})))
}

async fn get_agent(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> ApiResult<Json<Value>> {
    app.hub.agent(caller.id()).await?;
    // By id or `@handle`, like every other place that names an agent.
    let a = app.hub.resolve_agent(&id).await?;
    Ok(Json(json!({"agent": *a})))
}

async fn list_tokens(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> ApiResult<Json<Value>> {
    let tokens: Vec<Value> = app
        .hub
        .list_tokens(caller.id(), &id)
        .await?
        .into_iter()
        .map(|t| json!({"token_id": t.token_id, "created_at": t.created_at}))
        .collect();
    Ok(Json(json!({ "tokens": tokens })))
}

async fn issue_token(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let t = app.hub.issue_token(caller.id(), &id).await?;
    Ok((StatusCode::CREATED, Json(json!(t))))
}

async fn rotate_tokens(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let t = app.hub.rotate_tokens(caller.id(), &id).await?;
    Ok((StatusCode::CREATED, Json(json!(t))))
}

async fn revoke_token(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs((id, token_id)): PathArgs<(String, String)>,
) -> ApiResult<Json<Value>> {
    let revoked = app
        .hub
        .revoke_tokens(caller.id(), &id, Some(&token_id))
        .await?;
    Ok(Json(json!({ "revoked": revoked })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetHandle {
    agent_id: String,
    handle: String,
}

async fn set_handle(
    State(app): State<AppState>,
    caller: Caller,
    Body(b): Body<SetHandle>,
) -> ApiResult<Json<Value>> {
    let a = app
        .hub
        .set_handle(caller.id(), &b.agent_id, &b.handle)
        .await?;
    Ok(Json(json!({ "agent": a })))
}

async fn list_rooms(
    State(app): State<AppState>,
    caller: Caller,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit)?;
    let all = app.hub.list_rooms(caller.id()).await?;
    let (rooms, next) = page(all, |r| r.name.as_str(), q.after.as_deref(), limit);
    Ok(Json(page_json("rooms", json!(rooms), next)))
}

async fn delete_room(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(room): PathArgs<String>,
) -> ApiResult<Json<Value>> {
    let members = app.hub.delete_room(caller.id(), &room).await?;
    Ok(Json(
        json!({"room": room, "deleted": true, "members": members}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DmQuery {
    #[serde(default)]
    all: bool,
    after: Option<String>,
    limit: Option<u32>,
}

async fn list_dms(
    State(app): State<AppState>,
    caller: Caller,
    Params(q): Params<DmQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit)?;
    let all = app.hub.list_dms(caller.id(), q.all).await?;
    let (dms, next) = page(all, |d| d.room.as_str(), q.after.as_deref(), limit);
    Ok(Json(page_json("dms", json!(dms), next)))
}

async fn dm_history(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(other): PathArgs<String>,
    Params(q): Params<HistoryQuery>,
) -> ApiResult<Json<Value>> {
    let h = app
        .hub
        .dm_history(caller.id(), &other, q.after_seq.unwrap_or(0), q.limit)
        .await?;
    Ok(Json(json!(h)))
}

async fn get_settings(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let s = app.hub.settings(caller.id()).await?;
    Ok(Json(json!({ "settings": s })))
}

/// Body: `{"<name>": value, …}` (flat), or the same inside `{"settings": …}`.
async fn patch_settings(
    State(app): State<AppState>,
    caller: Caller,
    Body(mut b): Body<serde_json::Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    if b.len() == 1 {
        if let Some(Value::Object(inner)) = b.get("settings") {
            b = inner.clone();
        }
    }
    let s = app.hub.change_settings(caller.id(), b).await?;
    Ok(Json(json!({ "settings": s })))
}

async fn create_room(
    State(app): State<AppState>,
    caller: Caller,
    Body(b): Body<RoomCreateParams>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let r = app.hub.create_room(caller.id(), b).await?;
    Ok((StatusCode::CREATED, Json(json!(r))))
}

async fn get_room(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(room): PathArgs<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(app.hub.get_room(caller.id(), &room).await?)))
}

async fn room_members(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(room): PathArgs<String>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit)?;
    let all = app.hub.room_members(caller.id(), &room).await?;
    let (members, next) = page(all, |m| m.as_str(), q.after.as_deref(), limit);
    let mut body = json!({"room": room, "members": members});
    if let Some(n) = next {
        body["next"] = Value::String(n);
    }
    Ok(Json(body))
}

async fn join_room(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(room): PathArgs<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(app.hub.join_room(caller.id(), &room).await?)))
}

async fn leave_room(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(room): PathArgs<String>,
) -> ApiResult<Json<Value>> {
    let left = app.hub.leave_room(caller.id(), &room).await?;
    Ok(Json(json!({"room": room, "left": left})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Invite {
    agent: String,
}

async fn invite(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(room): PathArgs<String>,
    Body(b): Body<Invite>,
) -> ApiResult<Json<Value>> {
    let p = RoomInviteParams {
        room,
        agent: b.agent,
    };
    Ok(Json(json!(
        app.hub.invite(caller.id(), &p.room, &p.agent).await?
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    after_seq: Option<u64>,
    limit: Option<u32>,
}

async fn history(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(room): PathArgs<String>,
    Params(q): Params<HistoryQuery>,
) -> ApiResult<Json<Value>> {
    let h = app
        .hub
        .history(caller.id(), &room, q.after_seq.unwrap_or(0), q.limit)
        .await?;
    Ok(Json(json!(h)))
}

async fn send(
    State(app): State<AppState>,
    caller: Caller,
    Body(b): Body<SendParams>,
) -> ApiResult<(StatusCode, axum::response::Response)> {
    use axum::response::IntoResponse;
    let out = app.hub.send(caller.id(), b).await?;
    let status = if out.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = format!(
        r#"{{"message":{},"duplicate":{}}}"#,
        out.json, out.duplicate
    );
    let res = (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    Ok((status, res))
}

async fn presence(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<PresenceList>> {
    Ok(Json(PresenceList {
        agents: app.hub.presence(caller.id()).await?,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    actor: Option<String>,
    since: Option<u64>,
    /// Only entries with a larger id, oldest first (`clawnet logs --follow`).
    after_id: Option<u64>,
    limit: Option<usize>,
}

async fn logs(
    State(app): State<AppState>,
    caller: Caller,
    Params(q): Params<LogsQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError(clawnet_core::Error::invalid(
            "limit",
            "limit must be 1..=1000",
        )));
    }
    let entries = app
        .hub
        .audit_log(
            caller.id(),
            AuditFilter {
                kind: q.kind,
                actor: q.actor,
                since_ms: q.since,
                after_id: q.after_id,
                limit,
            },
        )
        .await?;
    Ok(Json(json!({ "entries": entries })))
}

async fn dispatch(
    State(app): State<AppState>,
    caller: Caller,
    Body(b): Body<DispatchParams>,
) -> ApiResult<(StatusCode, Json<DispatchResult>)> {
    let out = app.hub.dispatch(caller.id(), b, None).await?;
    let status = if out.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(out)))
}

async fn get_task(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> ApiResult<Json<Task>> {
    Ok(Json(app.hub.task(caller.id(), &id).await?))
}

async fn list_tasks(
    State(app): State<AppState>,
    caller: Caller,
    Params(q): Params<TaskListParams>,
) -> ApiResult<Json<TaskList>> {
    Ok(Json(app.hub.tasks(caller.id(), q).await?))
}

async fn retry_task(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> ApiResult<Json<Task>> {
    Ok(Json(app.hub.retry_task(caller.id(), &id).await?))
}

async fn cancel_task(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> ApiResult<Json<Task>> {
    Ok(Json(app.hub.cancel_task(caller.id(), &id).await?))
}

async fn list_queues(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<QueueList>> {
    Ok(Json(app.hub.queues(caller.id()).await?))
}

async fn pause_queue(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(name): PathArgs<String>,
) -> ApiResult<Json<QueueInfo>> {
    Ok(Json(
        app.hub.set_queue_paused(caller.id(), &name, true).await?,
    ))
}

async fn resume_queue(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(name): PathArgs<String>,
) -> ApiResult<Json<QueueInfo>> {
    Ok(Json(
        app.hub.set_queue_paused(caller.id(), &name, false).await?,
    ))
}

async fn list_schedules(
    State(app): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ScheduleList>> {
    Ok(Json(app.hub.schedules(caller.id()).await?))
}

async fn create_schedule(
    State(app): State<AppState>,
    caller: Caller,
    Body(b): Body<ScheduleParams>,
) -> ApiResult<(StatusCode, Json<ScheduleCreated>)> {
    let out = app.hub.create_schedule(caller.id(), b).await?;
    let status = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(out)))
}

async fn delete_schedule(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> ApiResult<Json<Schedule>> {
    Ok(Json(app.hub.delete_schedule(caller.id(), &id).await?))
}

async fn activity(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<ActivityList>> {
    Ok(Json(app.hub.activity(caller.id()).await?))
}

async fn get_inbox(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> ApiResult<Json<InboxSettings>> {
    Ok(Json(app.hub.inbox_settings(caller.id(), &id).await?))
}

async fn put_inbox(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
    Body(b): Body<InboxSettings>,
) -> ApiResult<Json<InboxSettings>> {
    Ok(Json(app.hub.set_inbox_settings(caller.id(), &id, b).await?))
}
