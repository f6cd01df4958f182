//! `/ws`: authenticate before the upgrade, then one task per connection that
//! waits for `connect`, replays, and then interleaves live frames with
//! requests.
//!
//! One task (not a reader and a writer) keeps an idle connection small.
//! Requests are answered in the order they came. Most are carried out one at
//! a time; a run of task requests (`task.dispatch`, `task.progress`,
//! `task.result`) is carried out together, so a worker's results or a
//! dispatcher's burst share store commits instead of waiting for one commit
//! each (decision 0014).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use clawnet_core::bus::OutFrame;
use clawnet_core::fanout::Conn;
use clawnet_core::sessions::OpenSession;
use clawnet_core::store::AgentRecord;
use clawnet_core::{Error, Hub};
use clawnet_proto::methods::{events, ConnectParams, Disconnecting, Method, ReplayDone};
use clawnet_proto::{ErrorBody, ErrorCode, Frame, ResponseFrame};
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::auth::{bearer, limited, Peer};
use crate::errors::ApiError;
use crate::limits::{self, Limiters};
use crate::methods::{call, resolve, Params, Reply};
use crate::policy;
use crate::AppState;

/// Most queued frames written per flush.
const BATCH: usize = 256;
/// How long a closing handshake may take before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Most task requests of one connection carried out at once; the socket is
/// not read while this many are unanswered.
const PIPELINE: usize = 64;

/// A request being carried out; yields its `res` frame.
type Pending = Pin<Box<dyn Future<Output = String> + Send>>;

/// Whether consecutive requests of this method may be carried out together.
/// Their order among themselves does not matter to the hub: each names its
/// own task, and a dispatch takes its id (the queue's tie-break) before its
/// first wait, so pipelined dispatches still queue in arrival order.
fn pipelines(m: Method) -> bool {
    matches!(
        m,
        Method::TaskDispatch | Method::TaskProgress | Method::TaskResult
    )
}

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let own = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| o == host);
    own || allowed.iter().any(|a| a == origin || a == "*")
}

/// `GET /ws`: refuse before upgrading unless the token is valid.
pub async fn upgrade(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
    Peer(addr): Peer,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return ApiError(Error::invalid(
            "upgrade",
            "/ws takes a WebSocket upgrade (GET with Upgrade: websocket)",
        ))
        .into_response();
    };
    if !origin_allowed(&headers, &app.opts.allowed_origins) {
        return ApiError(Error::forbidden("origin not allowed")).into_response();
    }
    let token = bearer(&headers).map(str::to_owned).or(q.token);
    let Some(token) = token else {
        return ApiError(Error::unauthorized(
            "missing credential: Authorization: Bearer <token> or ?token=",
        ))
        .into_response();
    };
    let (agent, token_id) = match app.hub.authenticate(&token, &addr).await {
        Ok(v) => v,
        Err(e) => return ApiError(e).into_response(),
    };
    let max = app.opts.max_frame_bytes;
    // Messages up to twice the limit are read and refused with `too_large`
    // (the connection lives); beyond that the socket is closed with 1009,
    // so a hostile client cannot make the hub buffer without bound.
    // The read buffer starts small and grows for a larger message. The write
    // buffer (tungstenite writes once this much is queued) is a trade: 32 KiB
    // is about a hundred chat frames per syscall, and only connections that
    // had a burst keep that capacity; an idle connection never grows it.
    ws.read_buffer_size(1024)
        .write_buffer_size(32 * 1024)
        .max_message_size(max * 2)
        .max_frame_size(max * 2)
        .on_upgrade(move |socket| {
            let ip = addr
                .rsplit_once(':')
                .map_or(addr.as_str(), |(ip, _)| ip)
                .to_owned();
            let limits = Limits {
                limiters: app.limiters,
                ip,
            };
            drive(app.hub, socket, agent, token_id, max, limits)
        })
}

fn res_ok(id: &Value, result: Reply) -> String {
    let result = match result {
        Reply::Raw(s) => s,
        Reply::Value(v) => serde_json::to_string(&v).unwrap_or_else(|_| "null".into()),
    };
    let id = serde_json::to_string(id).unwrap_or_else(|_| "null".into());
    format!(r#"{{"type":"res","id":{id},"ok":true,"result":{result}}}"#)
}

fn res_err(id: Value, e: ErrorBody) -> String {
    serde_json::to_string(&Frame::Res(ResponseFrame::err(id, e))).unwrap_or_default()
}

/// A request frame as a connection reads it: `params` stays JSON text for
/// the method to decode (see [`Params`]). `type` borrows, so a frame that
/// spells it with escapes takes the general path below.
#[derive(Deserialize)]
struct Req<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    id: Value,
    method: String,
    #[serde(default)]
    params: Option<Box<RawValue>>,
}

/// Parse a text frame as a request; a bad frame yields the error to answer.
fn parse(text: &str) -> Result<(Value, String, Params), (Value, Error)> {
    if let Ok(r) = serde_json::from_str::<Req<'_>>(text) {
        if r.kind == "req" {
            return Ok((r.id, r.method, Params::raw(r.params)));
        }
    }
    // Anything else is read the general way, which also words the error.
    match serde_json::from_str::<Frame>(text) {
        Ok(Frame::Req(r)) => Ok((r.id, r.method, Params::value(r.params))),
        other => {
            // Answer with the frame's id when it has a readable one.
            let id = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("id").cloned())
                .unwrap_or(Value::Null);
            let e = match other {
                Err(e) => Error::invalid("frame", format!("malformed frame: {e}")),
                Ok(_) => Error::invalid("type", "clients send frames of type req"),
            };
            Err((id, e))
        }
    }
}

async fn send_text(socket: &mut WebSocket, text: String) -> bool {
    socket
        .send(Message::Text(Utf8Bytes::from(text)))
        .await
        .is_ok()
}

/// Wait for `connect`, answering anything else with an error, until the
/// handshake timeout.
async fn handshake(
    hub: &Hub,
    socket: &mut WebSocket,
    agent: &AgentRecord,
    token_id: &str,
) -> Option<OpenSession> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(hub.config().handshake_timeout_ms);
    loop {
        let msg = match tokio::time::timeout_at(deadline, socket.recv()).await {
            Err(_) => {
                let reason = Disconnecting {
                    reason: "handshake_timeout".into(),
                    message: "send connect first".into(),
                    ts: hub.now(),
                };
                goodbye(socket, &reason).await;
                return None;
            }
            Ok(None | Some(Err(_))) => return None,
            Ok(Some(Ok(m))) => m,
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => return None,
            Message::Binary(_) => {
                let e = Error::invalid("frame", "frames are JSON text");
                send_text(socket, res_err(Value::Null, e.body())).await;
                continue;
            }
            _ => continue,
        };
        let (id, method, params) = match parse(&text) {
            Ok(v) => v,
            Err((id, e)) => {
                send_text(socket, res_err(id, e.body())).await;
                continue;
            }
        };
        if Method::parse(&method) != Some(Method::Connect) {
            let e = Error::invalid("method", "the first request must be connect");
            send_text(socket, res_err(id, e.body())).await;
            continue;
        }
        let p: ConnectParams = match params.decode() {
            Ok(p) => p,
            Err(e) => {
                send_text(socket, res_err(id, e.body())).await;
                continue;
            }
        };
        match hub.open_session(agent, token_id, p).await {
            Ok(s) => {
                let body = serde_json::to_value(&s.result).unwrap_or(Value::Null);
                if !send_text(socket, res_ok(&id, Reply::Value(body))).await {
                    hub.close_session(&s.conn);
                    return None;
                }
                return Some(s);
            }
            Err(e) => {
                send_text(socket, res_err(id, e.body())).await;
            }
        }
    }
}

/// What this connection already sent per room, so live frames that replay
/// covered are dropped.
#[derive(Debug, Default)]
struct Sent(HashMap<Arc<str>, u64>);

impl Sent {
    /// Whether to send `f`, recording it if so.
    fn admit(&mut self, f: &OutFrame) -> bool {
        let Some(room) = &f.room else { return true };
        match self.0.get_mut(room) {
            Some(last) if f.seq <= *last => false,
            Some(last) => {
                *last = f.seq;
                true
            }
            None => {
                self.0.insert(room.clone(), f.seq);
                true
            }
        }
    }
}

fn text_of(f: &OutFrame) -> Option<Message> {
    Utf8Bytes::try_from(f.text.clone()).ok().map(Message::Text)
}

async fn replay(
    hub: &Hub,
    socket: &mut WebSocket,
    s: &OpenSession,
    sent: &mut Sent,
) -> Result<(), Error> {
    let mut done = ReplayDone {
        rooms: Default::default(),
        replayed: 0,
    };
    for reset in &s.resets {
        let f = clawnet_core::frames::event_frame(events::REPLAY_RESET, Some(&reset.room), reset);
        feed(socket, &f).await?;
    }
    for (room, from) in &s.replay_from {
        let mut after = *from;
        loop {
            let (frames, last) = hub.replay_page(room, after).await?;
            let n = frames.iter().filter(|f| f.room.is_some()).count();
            for f in &frames {
                sent.admit(f);
                feed(socket, f).await?;
            }
            done.replayed += n as u64;
            if n == 0 {
                break;
            }
            after = last;
        }
        sent.0.entry(Arc::from(room.as_str())).or_insert(after);
        done.rooms.insert(room.clone(), after);
    }
    let f = clawnet_core::frames::event_frame(events::REPLAY_DONE, None, &done);
    feed(socket, &f).await?;
    socket
        .flush()
        .await
        .map_err(|_| Error::new(ErrorCode::Unavailable, "socket closed"))
}

/// Queue one frame on the socket (written at the next flush or when the
/// write buffer fills).
async fn feed(socket: &mut WebSocket, f: &OutFrame) -> Result<(), Error> {
    match text_of(f) {
        Some(m) => socket
            .feed(m)
            .await
            .map_err(|_| Error::new(ErrorCode::Unavailable, "socket closed")),
        None => Ok(()),
    }
}

/// Send `disconnecting` with the reason, then a close frame, within a grace
/// period (a stuck peer must not hold the task).
async fn goodbye(socket: &mut WebSocket, reason: &Disconnecting) {
    let code = match reason.reason.as_str() {
        "shutdown" => 1012,
        "frame_too_large" => 1009,
        "handshake_timeout" => 4008,
        _ => 1008,
    };
    let f = clawnet_core::frames::event_frame(events::DISCONNECTING, None, reason);
    let bye = async {
        if let Some(m) = text_of(&f) {
            socket.send(m).await?;
        }
        socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.reason.clone().into(),
            })))
            .await
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, bye).await;
}

/// The rate limiters a connection's requests pass, and its address.
struct Limits {
    limiters: Arc<Limiters>,
    ip: String,
}

async fn drive(
    hub: Hub,
    mut socket: WebSocket,
    agent: Arc<AgentRecord>,
    token_id: String,
    max_text: usize,
    limits: Limits,
) {
    let Some(mut session) = handshake(&hub, &mut socket, &agent, &token_id).await else {
        return;
    };
    let limits = Arc::new(limits);
    let conn = session.conn.clone();
    let mut sent = Sent::default();
    let replayed = tokio::select! {
        r = replay(&hub, &mut socket, &session, &mut sent) => r.is_ok(),
        _ = conn.closed() => true,
    };
    if replayed {
        if let Some(concurrency) = session.worker {
            hub.worker_ready(&conn, concurrency).await;
        }
        let mut io = Io {
            socket: &mut socket,
            conn: &conn,
            sent: &mut sent,
            max_text,
            limits: &limits,
            inflight: FuturesOrdered::new(),
        };
        io.run(&hub, &mut session.outbound).await;
        io.finish_detached();
    }
    if let Some(reason) = conn.closing() {
        goodbye(&mut socket, &reason).await;
    }
    hub.close_session(&conn);
}

/// The live phase of a connection.
struct Io<'a> {
    socket: &'a mut WebSocket,
    conn: &'a Arc<Conn>,
    sent: &'a mut Sent,
    max_text: usize,
    limits: &'a Arc<Limits>,
    /// Pipelined task requests, answered in the order they came.
    inflight: FuturesOrdered<Pending>,
}

/// What became of one request frame.
enum Step {
    /// Answer this now.
    Reply(String),
    /// Carried out in the pipeline; answered when it finishes.
    Queued,
    /// Nothing to answer (a ping frame).
    Nothing,
    /// The socket failed while answering earlier requests.
    Closed,
}

impl Io<'_> {
    async fn run(&mut self, hub: &Hub, outbound: &mut mpsc::Receiver<Arc<OutFrame>>) {
        let mut batch = Vec::with_capacity(16);
        loop {
            tokio::select! {
                _ = self.conn.closed() => {
                    // Requests already under way are answered, as a request
                    // being carried out was before (a shutdown drains ACKs),
                    // within the close grace; the rest finish unanswered.
                    let _ = tokio::time::timeout(CLOSE_GRACE, self.in_turn(Step::Nothing)).await;
                    return;
                }
                n = outbound.recv_many(&mut batch, BATCH) => {
                    if n == 0 || !self.write_batch(&mut batch).await {
                        return;
                    }
                    self.conn.drained(hub.now());
                }
                Some(first) = self.inflight.next(), if !self.inflight.is_empty() => {
                    if !self.answer(first).await {
                        return;
                    }
                }
                msg = self.socket.recv(), if self.inflight.len() < PIPELINE => {
                    let msg = match msg {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => {
                            if is_too_large(e) {
                                let limit = self.max_text * 2;
                                let why = format!("message larger than {limit} bytes");
                                self.conn.close("frame_too_large", &why, hub.now());
                            }
                            return;
                        }
                        None => return,
                    };
                    let step = match msg {
                        Message::Text(t) => self.handle(hub, &t).await,
                        Message::Binary(_) => {
                            self.conn.touch(hub.now(), false);
                            let e = Error::invalid("frame", "frames are JSON text");
                            self.in_turn(Step::Reply(res_err(Value::Null, e.body()))).await
                        }
                        Message::Close(_) => return,
                        Message::Ping(_) | Message::Pong(_) => {
                            self.conn.touch(hub.now(), false);
                            Step::Nothing
                        }
                    };
                    let text = match step {
                        Step::Reply(text) => text,
                        Step::Queued | Step::Nothing => continue,
                        Step::Closed => return,
                    };
                    // The answer to a request already carried out is sent
                    // even when the connection is closing (a shutdown drains
                    // ACKs), within the close grace.
                    let ok = tokio::time::timeout(CLOSE_GRACE, send_text(self.socket, text))
                        .await
                        .unwrap_or(false);
                    if !ok {
                        return;
                    }
                }
            }
        }
    }

    /// Write queued frames with one flush; false when the socket failed or
    /// the connection is being closed.
    async fn write_batch(&mut self, batch: &mut Vec<Arc<OutFrame>>) -> bool {
        let (socket, sent) = (&mut *self.socket, &mut *self.sent);
        let write = async {
            for f in batch.drain(..) {
                if sent.admit(&f) {
                    if let Some(m) = text_of(&f) {
                        socket.feed(m).await?;
                    }
                }
            }
            socket.flush().await
        };
        tokio::select! {
            r = write => r.is_ok(),
            _ = self.conn.closed() => false,
        }
    }

    /// Answer finished pipelined requests: `first`, and every other one
    /// already done, with one flush.
    async fn answer(&mut self, first: String) -> bool {
        let mut ready = vec![first];
        while let Some(Some(next)) = self.inflight.next().now_or_never() {
            ready.push(next);
        }
        let socket = &mut *self.socket;
        let write = async {
            for text in ready {
                socket.feed(Message::Text(Utf8Bytes::from(text))).await?;
            }
            socket.flush().await
        };
        tokio::time::timeout(CLOSE_GRACE, write)
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// `step`, once every pipelined request before it is answered: an
    /// answer never overtakes an earlier request's.
    async fn in_turn(&mut self, step: Step) -> Step {
        while let Some(first) = self.inflight.next().await {
            if !self.answer(first).await {
                return Step::Closed;
            }
        }
        step
    }

    /// Let pipelined requests the connection can no longer answer finish
    /// anyway: each may have stored its change already, and its audit entry
    /// and events must follow.
    fn finish_detached(&mut self) {
        let mut rest = std::mem::take(&mut self.inflight);
        if !rest.is_empty() {
            tokio::spawn(async move { while rest.next().await.is_some() {} });
        }
    }

    async fn handle(&mut self, hub: &Hub, text: &str) -> Step {
        let (id, method, params) = match parse(text) {
            Ok(v) => v,
            Err((id, e)) => {
                self.conn.touch(hub.now(), false);
                return self.in_turn(Step::Reply(res_err(id, e.body()))).await;
            }
        };
        let method = resolve(&method);
        let active = !matches!(method, Ok(Method::Ping | Method::Ack));
        self.conn.touch(hub.now(), active);
        if text.len() > self.max_text {
            let e = Error::too_large(
                "frame",
                format!(
                    "message is {} bytes; the limit is {}",
                    text.len(),
                    self.max_text
                ),
            );
            return self.in_turn(Step::Reply(res_err(id, e.body()))).await;
        }
        let method = match method {
            Ok(m) => m,
            Err(e) => return self.in_turn(Step::Reply(res_err(id, e.body()))).await,
        };
        let conn_id = self.conn.id;
        if pipelines(method) {
            // Owned, since it outlives this frame; the rest (the chat send
            // path among them) borrow and clone nothing.
            let (hub, limits, agent) =
                (hub.clone(), self.limits.clone(), self.conn.agent_id.clone());
            self.inflight.push_back(Box::pin(async move {
                carry_out(&hub, &limits, &agent, conn_id, method, id, params).await
            }));
            return Step::Queued;
        }
        match self.in_turn(Step::Queued).await {
            Step::Queued => Step::Reply(
                carry_out(
                    hub,
                    self.limits,
                    &self.conn.agent_id,
                    conn_id,
                    method,
                    id,
                    params,
                )
                .await,
            ),
            other => other,
        }
    }
}

/// Admit and carry out one request; its `res` frame.
async fn carry_out(
    hub: &Hub,
    limits: &Limits,
    agent_id: &str,
    conn_id: u64,
    method: Method,
    id: Value,
    params: Params,
) -> String {
    if let Err(e) = admit(limits, agent_id, hub, method).await {
        return res_err(id, e.body());
    }
    match call(hub, agent_id, conn_id, method, params).await {
        Ok(r) => res_ok(&id, r),
        Err(e) => res_err(id, e.body()),
    }
}

/// Rate limits (heartbeats and ACKs are free) and the authorization
/// matrix, before a method runs.
async fn admit(limits: &Limits, agent_id: &str, hub: &Hub, method: Method) -> Result<(), Error> {
    if !matches!(method, Method::Ping | Method::Ack) {
        let l = &limits.limiters;
        limits::check(l.ws_address.as_ref(), &limits.ip)
            .map_err(|ms| limited("per address", ms))?;
        limits::check(l.ws_agent.as_ref(), agent_id).map_err(|ms| limited("per agent", ms))?;
    }
    let access = policy::ws(method);
    if access == policy::Access::Agent {
        return Ok(());
    }
    let me = hub.agent(agent_id).await?;
    if access.allows(me.role, false) {
        return Ok(());
    }
    hub.refuse(
        &me.agent_id,
        method.name(),
        method.name(),
        format!("{} {}", method.name(), access.refusal()),
    )
    .await
}

/// Whether a read failed because the message exceeded the hard size limit.
fn is_too_large(e: axum::Error) -> bool {
    matches!(
        e.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}
