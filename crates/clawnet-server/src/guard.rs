//! REST routes of the guardrails: message deletion and quarantine review.

use axum::extract::State;
use axum::Json;
use clawnet_proto::guard::{QuarantineList, QuarantineListParams};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::errors::{ApiResult, OptionalBody, Params, PathArgs};
use crate::AppState;

/// `DELETE /api/v1/rooms/{room}/messages/{seq}`: the sender or master.
pub async fn delete_message(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs((room, seq)): PathArgs<(String, u64)>,
) -> ApiResult<Json<Value>> {
    let tomb = app.hub.delete_message(caller.id(), &room, seq).await?;
    Ok(Json(json!({ "message": tomb })))
}

/// `GET /api/v1/quarantine?state=held|approved|rejected`.
pub async fn list_quarantine(
    State(app): State<AppState>,
    caller: Caller,
    Params(q): Params<QuarantineListParams>,
) -> ApiResult<Json<QuarantineList>> {
    Ok(Json(app.hub.quarantine_list(caller.id(), q).await?))
}

/// Optional body of an approval or rejection.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/v1/quarantine/{id}/approve`: deliver (or dispatch) it now.
pub async fn approve(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
    body: OptionalBody<Decision>,
) -> ApiResult<Json<Value>> {
    decide(&app, &caller, &id, body.0, true).await
}

/// `POST /api/v1/quarantine/{id}/reject`: never deliver it.
pub async fn reject(
    State(app): State<AppState>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
    body: OptionalBody<Decision>,
) -> ApiResult<Json<Value>> {
    decide(&app, &caller, &id, body.0, false).await
}

async fn decide(
    app: &AppState,
    caller: &Caller,
    id: &str,
    body: Option<Decision>,
    approve: bool,
) -> ApiResult<Json<Value>> {
    let reason = body.and_then(|d| d.reason);
    let item = if approve {
        app.hub.quarantine_approve(caller.id(), id, reason).await?
    } else {
        app.hub.quarantine_reject(caller.id(), id, reason).await?
    };
    Ok(Json(json!({ "item": item })))
}
