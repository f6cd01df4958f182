//! A small helper for the hub's REST surface (`/api/v1/…`).

use std::fmt;
use std::time::Duration;

use clawnet_proto::methods::{HistoryResult, PresenceList, RoomList, SendParams, SendResult};
use clawnet_proto::tasks::{
    ActivityList, DispatchParams, DispatchResult, QueueInfo, QueueList, Schedule, ScheduleCreated,
    ScheduleList, ScheduleParams, Task, TaskList, TaskListParams,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{http_error, ClientError};
use crate::urls::http_base;

/// The API prefix every REST route lives under.
pub const API_PREFIX: &str = "/api/v1";

/// A REST client bound to one hub and one agent token.
#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    base: String,
    token: String,
}

// Hand-written so the token never ends up in a log line.
impl fmt::Debug for Rest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rest")
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Rest {
    /// A client for the hub at `base_url` (`http(s)://host[:port]`; a
    /// `ws(s)://` URL is accepted too), authenticating with `token`.
    pub fn new(base_url: &str, token: impl Into<String>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(Self {
            http,
            base: http_base(base_url)?,
            token: token.into(),
        })
    }

    /// The full URL of `path`: a path starting with `/api/` is taken as it is,
    /// anything else is relative to `/api/v1` (so `/rooms` and
    /// `/api/v1/rooms` are the same).
    pub fn url(&self, path: &str) -> String {
        let path = path.trim_start_matches('/');
        if path.starts_with("api/") {
            format!("{}/{path}", self.base)
        } else {
            format!("{}{API_PREFIX}/{path}", self.base)
        }
    }

    /// `GET path`, decoding a 2xx body as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let request = self.http.get(self.url(path));
        let (_, value) = self.execute(request).await?;
        Ok(value)
    }

    /// `POST path` with a JSON body, returning the status (201 and 200 can
    /// mean different things, such as a new message versus a duplicate) and
    /// the decoded body.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<(u16, T), ClientError> {
        let request = self.http.post(self.url(path)).json(body);
        self.execute(request).await
    }

    /// `PUT path` with a JSON body, decoding a 2xx body as `T`.
    pub async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T, ClientError> {
        let request = self.http.put(self.url(path)).json(body);
        let (_, value) = self.execute(request).await?;
        Ok(value)
    }

    /// `DELETE path`, decoding a 2xx body as `T`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let request = self.http.delete(self.url(path));
        let (_, value) = self.execute(request).await?;
        Ok(value)
    }

    /// `POST /agents`: create an agent (master only). Returns the agent as
    /// the hub shows it and its new token (shown only this once).
    pub async fn create_agent(
        &self,
        agent_id: &str,
        handle: &str,
        role: &str,
    ) -> Result<(Value, String), ClientError> {
        #[derive(Deserialize)]
        struct Created {
            agent: Value,
            token: String,
        }
        let body = json!({ "agent_id": agent_id, "handle": handle, "role": role });
        let (_, created): (u16, Created) = self.post("/agents", &body).await?;
        Ok((created.agent, created.token))
    }

    /// `POST /messages`: send a chat message. The status is 201 for a new
    /// message and 200 for a recognised retry (`duplicate: true`).
    pub async fn send(&self, params: &SendParams) -> Result<(u16, SendResult), ClientError> {
        self.post("/messages", params).await
    }

    /// `GET /rooms/{room}/history`.
    pub async fn history(
        &self,
        room: &str,
        after_seq: Option<u64>,
        limit: Option<u32>,
    ) -> Result<HistoryResult, ClientError> {
        let path = history_path(
            format!("/rooms/{}/history", encode_segment(room)),
            after_seq,
            limit,
        );
        self.get(&path).await
    }

    /// `GET /rooms`: rooms visible to this agent.
    pub async fn rooms(&self) -> Result<RoomList, ClientError> {
        self.get("/rooms").await
    }

    /// `POST /rooms`: create a named room.
    pub async fn create_room(&self, name: &str, private: bool) -> Result<Value, ClientError> {
        let body = json!({ "name": name, "private": private });
        let (_, value) = self.post("/rooms", &body).await?;
        Ok(value)
    }

    /// `POST /rooms/{room}/join`.
    pub async fn join_room(&self, room: &str) -> Result<Value, ClientError> {
        let path = format!("/rooms/{}/join", encode_segment(room));
        let (_, value) = self.post(&path, &json!({})).await?;
        Ok(value)
    }

    /// `POST /rooms/{room}/leave`.
    pub async fn leave_room(&self, room: &str) -> Result<Value, ClientError> {
        let path = format!("/rooms/{}/leave", encode_segment(room));
        let (_, value) = self.post(&path, &json!({})).await?;
        Ok(value)
    }

    /// `GET /presence`: everyone's presence.
    pub async fn presence(&self) -> Result<PresenceList, ClientError> {
        self.get("/presence").await
    }

    /// `POST /handles`: change an agent's handle.
    pub async fn set_handle(&self, agent_id: &str, handle: &str) -> Result<Value, ClientError> {
        let body = json!({ "agent_id": agent_id, "handle": handle });
        let (_, value) = self.post("/handles", &body).await?;
        Ok(value)
    }

    /// `POST /tasks`: dispatch a task. The status is 201 for a new task and
    /// 200 when the `dedupe_key` matched an active task (`duplicate: true`,
    /// and the task returned is that one).
    pub async fn dispatch_task(
        &self,
        params: &DispatchParams,
    ) -> Result<(u16, DispatchResult), ClientError> {
        self.post("/tasks", params).await
    }

    /// `GET /tasks/{id}`: one task.
    pub async fn task(&self, task_id: &str) -> Result<Task, ClientError> {
        self.get(&format!("/tasks/{}", encode_segment(task_id)))
            .await
    }

    /// `GET /tasks?state=&target=&after=&limit=`: tasks the caller may see,
    /// in id order; pass `next` of the result as `after` for the next page.
    pub async fn tasks(&self, params: &TaskListParams) -> Result<TaskList, ClientError> {
        self.get(&task_list_path(params)).await
    }

    /// `POST /tasks/{id}/retry`: put a failed task back in its queue with
    /// fresh attempts (master only).
    pub async fn retry_task(&self, task_id: &str) -> Result<Task, ClientError> {
        let path = format!("/tasks/{}/retry", encode_segment(task_id));
        let (_, task) = self.post(&path, &json!({})).await?;
        Ok(task)
    }

    /// `POST /tasks/{id}/cancel`: cancel a queued or delayed task (its
    /// dispatcher or master).
    pub async fn cancel_task(&self, task_id: &str) -> Result<Task, ClientError> {
        let path = format!("/tasks/{}/cancel", encode_segment(task_id));
        let (_, task) = self.post(&path, &json!({})).await?;
        Ok(task)
    }

    /// `GET /queues`: the queues the caller may see (a worker: its own),
    /// with counts per state and the circuit breaker.
    pub async fn queues(&self) -> Result<QueueList, ClientError> {
        self.get("/queues").await
    }

    /// `POST /queues/{name}/pause`: start nothing more from this target's
    /// queue (master only). `name` is an agent id or `@handle`.
    pub async fn pause_queue(&self, name: &str) -> Result<QueueInfo, ClientError> {
        let path = format!("/queues/{}/pause", encode_segment(name));
        let (_, queue) = self.post(&path, &json!({})).await?;
        Ok(queue)
    }

    /// `POST /queues/{name}/resume`: start the queue's due tasks again
    /// (master only).
    pub async fn resume_queue(&self, name: &str) -> Result<QueueInfo, ClientError> {
        let path = format!("/queues/{}/resume", encode_segment(name));
        let (_, queue) = self.post(&path, &json!({})).await?;
        Ok(queue)
    }

    /// `GET /schedules`: the caller's schedules (master and warden: all).
    pub async fn schedules(&self) -> Result<ScheduleList, ClientError> {
        self.get("/schedules").await
    }

    /// `POST /schedules`: register a cron schedule. The status is 201 for a
    /// new schedule and 200 when it existed (`created: false`; a new
    /// definition under an existing name replaces the old one).
    pub async fn create_schedule(
        &self,
        params: &ScheduleParams,
    ) -> Result<(u16, ScheduleCreated), ClientError> {
        self.post("/schedules", params).await
    }

    /// `DELETE /schedules/{id}`: remove a schedule (its creator or master);
    /// returns it as it was.
    pub async fn delete_schedule(&self, schedule_id: &str) -> Result<Schedule, ClientError> {
        self.delete(&format!("/schedules/{}", encode_segment(schedule_id)))
            .await
    }

    /// `GET /activity`: per agent, offline, idle or working, with queue depth
    /// and breaker (a worker sees itself only).
    pub async fn activity(&self) -> Result<ActivityList, ClientError> {
        self.get("/activity").await
    }

    /// `GET /agents/{id}/inbox`: how an agent is activated and what happens
    /// to messages arriving while it is busy (the agent itself, master,
    /// warden). `agent` is an agent id or `@handle`.
    pub async fn inbox(&self, agent: &str) -> Result<InboxSettings, ClientError> {
        self.get(&format!("/agents/{}/inbox", encode_segment(agent)))
            .await
    }

    /// `PUT /agents/{id}/inbox`: replace an agent's inbox settings (the agent
    /// itself or master). Both fields are sent; read them first with
    /// [`Rest::inbox`] to change only one.
    pub async fn set_inbox(
        &self,
        agent: &str,
        settings: &InboxSettings,
    ) -> Result<InboxSettings, ClientError> {
        self.put(
            &format!("/agents/{}/inbox", encode_segment(agent)),
            settings,
        )
        .await
    }

    /// `PATCH path` with a JSON body, decoding a 2xx body as `T`.
    pub async fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T, ClientError> {
        let request = self.http.patch(self.url(path)).json(body);
        let (_, value) = self.execute(request).await?;
        Ok(value)
    }

    /// `PATCH /agents/{id}`: change an agent's role (`master`, `warden`,
    /// `worker`; master only). Returns the agent as the hub shows it.
    pub async fn set_role(&self, agent: &str, role: &str) -> Result<Value, ClientError> {
        let v: Value = self
            .patch(
                &format!("/agents/{}", encode_segment(agent)),
                &json!({ "role": role }),
            )
            .await?;
        Ok(v["agent"].clone())
    }

    /// `DELETE /agents/{id}`: remove an agent (master only). Its tokens are
    /// revoked, its connections closed, its messages kept. Returns the
    /// removed agent.
    pub async fn remove_agent(&self, agent: &str) -> Result<Value, ClientError> {
        let v: Value = self
            .delete(&format!("/agents/{}", encode_segment(agent)))
            .await?;
        Ok(v["agent"].clone())
    }

    /// `DELETE /rooms/{room}`: delete a named room with its messages
    /// (master or its creator). Returns `{"room","deleted","members"}`.
    pub async fn delete_room(&self, room: &str) -> Result<Value, ClientError> {
        self.delete(&format!("/rooms/{}", encode_segment(room)))
            .await
    }

    /// `GET /dms`: the caller's DMs, or with `all` every DM (master and
    /// warden). Returns `{"dms":[{"room","with":{"agent_id","handle"},"agents","last_seq"}],"next"?}`.
    pub async fn dms(&self, all: bool) -> Result<Value, ClientError> {
        self.get(if all { "/dms?all=true" } else { "/dms" }).await
    }

    /// `GET /dms/{agent}/history`: the caller's DM with `agent` (id or
    /// `@handle`).
    pub async fn dm_history(
        &self,
        agent: &str,
        after_seq: Option<u64>,
        limit: Option<u32>,
    ) -> Result<HistoryResult, ClientError> {
        let path = history_path(
            format!("/dms/{}/history", encode_segment(agent)),
            after_seq,
            limit,
        );
        self.get(&path).await
    }

    /// `GET /settings`: the runtime settings (master and warden), by name.
    pub async fn settings(&self) -> Result<serde_json::Map<String, Value>, ClientError> {
        let v: Value = self.get("/settings").await?;
        Ok(v["settings"].as_object().cloned().unwrap_or_default())
    }

    /// `PATCH /settings`: change runtime settings (master), e.g.
    /// `{"tasks.max_pending": 10}`. All or nothing; returns every setting
    /// after the change.
    pub async fn change_settings(
        &self,
        changes: &Value,
    ) -> Result<serde_json::Map<String, Value>, ClientError> {
        let v: Value = self.patch("/settings", changes).await?;
        Ok(v["settings"].as_object().cloned().unwrap_or_default())
    }

    async fn execute<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, T), ClientError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        // 202 is `held`: accepted into the quarantine, not done; an error
        // body like any refusal, so callers see the code and the id.
        if !(200..300).contains(&status) || status == 202 {
            return Err(http_error(status, &body));
        }
        // An empty 2xx body (204) reads as JSON null, so `Value` and `()`
        // callers work.
        let body: &[u8] = if body.is_empty() { b"null" } else { &body };
        let value = serde_json::from_slice(body).map_err(|e| {
            ClientError::Protocol(format!("unexpected response body (HTTP {status}): {e}"))
        })?;
        Ok((status, value))
    }
}

/// An agent's inbox settings (`GET/PUT /api/v1/agents/{id}/inbox`), kept as
/// the wire strings so a hub with more modes still reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxSettings {
    /// `mention` (only @mentions and DMs activate the agent) or `always`
    /// (every message in its rooms).
    pub activation: String,
    /// For activations arriving while it is busy: `followup` (queue each),
    /// `steer` (keep only the newest) or `collect` (merge into the waiting
    /// one).
    pub mode: String,
}

/// The path of a task list query; absent parameters are left out.
fn task_list_path(p: &TaskListParams) -> String {
    let mut query = Vec::new();
    if let Some(state) = p.state {
        query.push(format!("state={}", state.as_str()));
    }
    if let Some(target) = &p.target {
        query.push(format!("target={}", encode_segment(target)));
    }
    if let Some(after) = &p.after {
        query.push(format!("after={}", encode_segment(after)));
    }
    if let Some(limit) = p.limit {
        query.push(format!("limit={limit}"));
    }
    if query.is_empty() {
        "/tasks".to_owned()
    } else {
        format!("/tasks?{}", query.join("&"))
    }
}

/// Percent-encode one path segment. Room keys are mostly plain, but DM keys
/// contain `:`, which is legal in a path yet best not left to chance.
/// A history route with its optional `after_seq` and `limit`.
fn history_path(base: String, after_seq: Option<u64>, limit: Option<u32>) -> String {
    let query: Vec<String> = after_seq
        .map(|a| format!("after_seq={a}"))
        .into_iter()
        .chain(limit.map(|l| format!("limit={l}")))
        .collect();
    if query.is_empty() {
        base
    } else {
        format!("{base}?{}", query.join("&"))
    }
}

fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_the_api_prefix() {
        let rest = Rest::new("http://h:3000/", "t").expect("client");
        assert_eq!(rest.url("/rooms"), "http://h:3000/api/v1/rooms");
        assert_eq!(rest.url("rooms"), "http://h:3000/api/v1/rooms");
        assert_eq!(rest.url("/api/v1/rooms"), "http://h:3000/api/v1/rooms");
        assert_eq!(rest.url("/api/v2/x"), "http://h:3000/api/v2/x");
    }

    #[test]
    fn dm_keys_are_encoded_in_paths() {
        assert_eq!(encode_segment("dm:amy:zed"), "dm%3Aamy%3Azed");
        assert_eq!(encode_segment("dev-room.1"), "dev-room.1");
    }

    #[test]
    fn task_list_queries_leave_out_absent_parameters() {
        use clawnet_proto::tasks::TaskState;
        assert_eq!(task_list_path(&TaskListParams::default()), "/tasks");
        let p = TaskListParams {
            state: Some(TaskState::Failed),
            target: Some("w1".into()),
            after: Some("t_01abc".into()),
            limit: Some(5),
        };
        assert_eq!(
            task_list_path(&p),
            "/tasks?state=failed&target=w1&after=t_01abc&limit=5"
        );
    }

    #[test]
    fn debug_hides_the_token() {
        let rest = Rest::new("http://h", "secret-token").expect("client");
        assert!(!format!("{rest:?}").contains("secret-token"));
    }
}
