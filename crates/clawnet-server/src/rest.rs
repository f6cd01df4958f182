//! REST v1 under `/api/v1`, plus the predecessor's `/api/logs`, and health.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use clawnet_core::inbox::InboxSettings;
use clawnet_core::store::AuditFilter;
use clawnet_proto::methods::{
    PresenceList, RoomCreateParams, RoomInviteParams, RoomList, SendParams,
};
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

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/ws", get(crate::ws::upgrade))
        .route("/readyz", get(readyz))
        .route("/api/v1/agents", get(list_agents).post(create_agent))
        .route("/api/v1/agents/{id}", get(get_agent))
        .route(
            "/api/v1/agents/{id}/tokens",
            get(list_tokens).post(issue_token),
        )
        .route("/api/v1/agents/{id}/tokens/rotate", post(rotate_tokens))
        .route(
            "/api/v1/agents/{id}/tokens/{token_id}",
            delete(revoke_token),
        )
        .route("/api/v1/handles", post(set_handle))
        .route("/api/v1/rooms", get(list_rooms).post(create_room))
        .route("/api/v1/rooms/{room}", get(get_room))
        .route("/api/v1/rooms/{room}/members", get(room_members))
        .route("/api/v1/rooms/{room}/join", post(join_room))
        .route("/api/v1/rooms/{room}/leave", post(leave_room))
        .route("/api/v1/rooms/{room}/invite", post(invite))
        .route("/api/v1/rooms/{room}/history", get(history))
        .route("/api/v1/messages", post(send))
        .route("/api/v1/presence", get(presence))
        .route("/api/v1/tasks", get(list_tasks).post(dispatch))
        .route("/api/v1/tasks/{id}", get(get_task))
        .route("/api/v1/tasks/{id}/retry", post(retry_task))
        .route("/api/v1/tasks/{id}/cancel", post(cancel_task))
        .route("/api/v1/queues", get(list_queues))
        .route("/api/v1/queues/{name}/pause", post(pause_queue))
        .route("/api/v1/queues/{name}/resume", post(resume_queue))
        .route(
            "/api/v1/schedules",
            get(list_schedules).post(create_schedule),
        )
        .route("/api/v1/schedules/{id}", delete(delete_schedule))
        .route("/api/v1/activity", get(activity))
        .route("/api/v1/agents/{id}/inbox", get(get_inbox).put(put_inbox))
        .route("/api/v1/logs", get(logs))
        .route("/api/logs", get(logs))
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

async fn list_agents(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"agents": app.hub.list_agents(caller.id()).await?}),
    ))
}

async fn get_agent(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> ApiResult<Json<Value>> {
    app.hub.agent(caller.id()).await?;
    let a = app.hub.agent(&id).await?;
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

async fn list_rooms(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<RoomList>> {
    Ok(Json(RoomList {
        rooms: app.hub.list_rooms(caller.id()).await?,
    }))
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
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"room": room, "members": app.hub.room_members(caller.id(), &room).await?}),
    ))
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
