//! The reconnecting WebSocket session.
//!
//! A [`Session`] is a cheap handle; the socket itself is owned by one
//! background task, which connects, resumes from the client's cursors,
//! delivers events to a bounded channel, answers requests, keeps the
//! heartbeat, and reconnects with backoff whenever the connection is lost.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use clawnet_proto::methods::{
    events, AckParams, AckResult, ConnectParams, ConnectResult, Disconnecting, HistoryParams,
    HistoryResult, Pong, PresenceList, PresenceSetParams, PresenceStatus, ReportParams,
    RoomCreateParams, RoomInviteParams, RoomList, RoomParams, SendParams, SendResult, TypingParams,
};
use clawnet_proto::{Envelope, ErrorCode, EventFrame, Frame, ResponseFrame, PROTOCOL_VERSION};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{interval_at, sleep, timeout, timeout_at, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{connect_async_with_config, MaybeTlsStream, WebSocketStream};
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::cursor::CursorBook;
use crate::error::{http_error, ClientError};
use crate::urls::ws_url;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Used when a hub announces no heartbeat interval.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// How long [`Session::close`] waits for the hub to answer the close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How to connect a [`Session`] and how it behaves afterwards.
///
/// Build one with [`SessionOptions::new`] and adjust the public fields.
#[derive(Clone)]
pub struct SessionOptions {
    /// Hub base URL: `http(s)://host[:port]` or `ws(s)://…`; the WebSocket
    /// endpoint `…/ws` is derived from it (see [`crate::ws_url`]).
    pub url: String,
    /// Bearer token of the agent.
    pub token: String,
    /// Free-form client name sent in `connect`, for the hub's logs.
    pub client_name: String,
    /// Initial per-room cursors: replay starts after these. Rooms not named
    /// here resume from the cursor the hub keeps for the agent.
    pub resume: BTreeMap<String, u64>,
    /// Acknowledge each message to the hub right after handing it to the
    /// application (default true). With `false`, call [`Session::ack`].
    pub auto_ack: bool,
    /// Ask for every agent's `presence` events (default false).
    pub presence: bool,
    /// Take tasks on this connection, this many at once (`connect`
    /// `worker`/`concurrency`); `None` (the default) takes none.
    pub worker: Option<usize>,
    /// How long one request waits for its response (default 10 s). Also
    /// bounds the WebSocket handshake and the `connect` exchange.
    pub request_timeout: Duration,
    /// Delays between reconnect attempts.
    pub backoff: Backoff,
    /// Consecutive failed reconnect attempts before giving up with
    /// [`SessionEvent::Disconnected`]; `None` (the default) retries forever.
    pub max_reconnects: Option<u32>,
    /// Capacity of the event channel (default 1024). When it is full the
    /// session stops reading the socket until the application catches up.
    pub event_capacity: usize,
    /// Attempts [`Session::send`] makes before giving up (default 5).
    pub send_attempts: u32,
    /// **Fault injection for tests only.** When set, the session discards the
    /// first response it receives for this method (for example `chat.send`),
    /// as if the acknowledgement had been lost on the way, so that the retry
    /// and dedupe path can be exercised against a real hub. Leave `None` in
    /// real use.
    pub drop_first_response_of_method: Option<String>,
}

impl SessionOptions {
    /// Options with the defaults for everything but the hub URL and token.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            client_name: concat!("clawnet-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            resume: BTreeMap::new(),
            auto_ack: true,
            presence: false,
            worker: None,
            request_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            max_reconnects: None,
            event_capacity: 1024,
            send_attempts: 5,
            drop_first_response_of_method: None,
        }
    }
}

// Hand-written so the token never ends up in a log line.
impl fmt::Debug for SessionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionOptions")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("client_name", &self.client_name)
            .field("resume", &self.resume)
            .field("auto_ack", &self.auto_ack)
            .field("presence", &self.presence)
            .field("worker", &self.worker)
            .field("request_timeout", &self.request_timeout)
            .field("backoff", &self.backoff)
            .field("max_reconnects", &self.max_reconnects)
            .field("event_capacity", &self.event_capacity)
            .field("send_attempts", &self.send_attempts)
            .field(
                "drop_first_response_of_method",
                &self.drop_first_response_of_method,
            )
            .finish()
    }
}

/// What a session reports to the application, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// A connection (the first, or a reconnection) is established; replay of
    /// what was missed follows.
    Connected(ConnectResult),
    /// A chat message not delivered before. Its room is `to_id`, its position
    /// `seq`. Redeliveries after a reconnect are filtered out.
    Message(Envelope),
    /// Any other hub event: presence, typing, room.joined/left, mention,
    /// replay.gap, replay.done, and disconnecting (which is followed by a
    /// reconnect).
    Event(EventFrame),
    /// The connection was lost; the session will try again after `delay`.
    Reconnecting {
        /// 1 for the first attempt after a loss.
        attempt: u32,
        /// Wait before this attempt.
        delay: Duration,
        /// Why the previous connection (or attempt) failed.
        reason: String,
    },
    /// The session gave up (reconnect budget spent, or the hub refused the
    /// credentials). Nothing follows; requests fail with
    /// [`ClientError::Closed`].
    Disconnected {
        /// Why the last attempt failed.
        reason: String,
    },
}

/// Handle to a reconnecting WebSocket session.
///
/// Clones share the same connection. The background task ends when
/// [`Session::close`] is called, when every handle is dropped, or when it
/// gives up reconnecting.
///
/// The event channel is bounded: drain it concurrently with making requests,
/// or a full channel stalls the socket and with it the responses awaited.
#[derive(Debug, Clone)]
pub struct Session {
    cmds: mpsc::UnboundedSender<Command>,
    cursors: CursorBook,
    info: Arc<Mutex<ConnectResult>>,
    request_timeout: Duration,
    send_attempts: u32,
    backoff: Backoff,
}

impl Session {
    /// Connect to the hub and start the background task.
    ///
    /// The first connection is made before returning, so a wrong URL or a
    /// refused token is reported here (a bad token as
    /// `ClientError::Http(401, …)`) rather than retried. The receiver yields
    /// [`SessionEvent::Connected`] first, then the replay.
    pub async fn connect(
        opts: SessionOptions,
    ) -> Result<(Session, mpsc::Receiver<SessionEvent>), ClientError> {
        let (events_tx, events_rx) = mpsc::channel(opts.event_capacity.max(1));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let cursors = CursorBook::new(opts.resume.clone());
        let mut worker = Worker {
            ws_url: ws_url(&opts.url)?,
            token: opts.token,
            client_name: opts.client_name,
            auto_ack: opts.auto_ack,
            presence: opts.presence,
            worker: opts.worker,
            request_timeout: opts.request_timeout,
            backoff: opts.backoff.clone(),
            max_reconnects: opts.max_reconnects,
            drop_first: opts.drop_first_response_of_method,
            cursors: cursors.clone(),
            info: None,
            events: events_tx,
            cmds: cmd_rx,
            pending: BTreeMap::new(),
            next_id: 0,
        };
        let conn = worker.establish().await?;
        let info = Arc::new(Mutex::new(conn.info.clone()));
        worker.info = Some(info.clone());
        tokio::spawn(worker.run(conn));
        let session = Session {
            cmds: cmd_tx,
            cursors,
            info,
            request_timeout: opts.request_timeout,
            send_attempts: opts.send_attempts,
            backoff: opts.backoff,
        };
        Ok((session, events_rx))
    }

    /// The `connect` result of the current (or last) connection.
    pub fn info(&self) -> ConnectResult {
        self.info.lock().clone()
    }

    /// The highest `seq` delivered to the application, per room: what the
    /// next reconnect resumes after. Persist it to resume across restarts.
    pub fn cursors(&self) -> BTreeMap<String, u64> {
        self.cursors.snapshot()
    }

    /// Whether the background task has ended.
    pub fn is_closed(&self) -> bool {
        self.cmds.is_closed()
    }

    /// Close the connection gracefully (a close frame) and stop the task.
    /// Requests still waiting fail with [`ClientError::Closed`].
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.cmds.send(Command::Close { done }).is_ok() {
            // An error only means the task ended by itself meanwhile.
            let _ = wait.await;
        }
    }

    /// Send any request and wait for its result.
    ///
    /// If the connection drops meanwhile, the request is sent again on the
    /// next connection; it fails with [`ClientError::Timeout`] if no answer
    /// arrives within the request timeout, and with [`ClientError::Server`]
    /// if the hub refuses it.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.cmds
            .send(Command::Request {
                method: method.to_owned(),
                params,
                reply,
            })
            .map_err(|_| ClientError::Closed)?;
        match timeout(self.request_timeout, answer).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(Err(_)) => Err(ClientError::Closed),
            Ok(Ok(result)) => result,
        }
    }

    /// [`Session::request`] with typed parameters and result.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        let result = self.request(method, to_json(params)?).await?;
        from_json(result)
    }

    /// Send a chat message, exactly once.
    ///
    /// A missing `dedupe_key` is filled with a random one before the first
    /// attempt, so every retry carries the same key and the hub stores the
    /// message at most once (a retry of an already stored send comes back with
    /// `duplicate: true`). Timeouts and lost connections are retried, as are
    /// `unavailable` (after a backoff delay) and `rate_limited` (after
    /// `retry_after_ms`), up to [`SessionOptions::send_attempts`] attempts;
    /// any other hub error is returned at once.
    pub async fn send(&self, mut params: SendParams) -> Result<SendResult, ClientError> {
        if params.dedupe_key.is_none() {
            params.dedupe_key = Some(new_dedupe_key());
        }
        let params = to_json(&params)?;
        let attempts = self.send_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self.request("chat.send", params.clone()).await {
                Ok(result) => return from_json(result),
                Err(e) => e,
            };
            let wait = match send_retry_wait(&err, attempt, &self.backoff) {
                Some(wait) if attempt < attempts => wait,
                _ => return Err(err),
            };
            debug!(attempt, error = %err, "retrying chat.send with the same dedupe_key");
            sleep(wait).await;
        }
    }

    /// Create a named room (`room.create`).
    pub async fn create_room(&self, name: &str, private: bool) -> Result<Value, ClientError> {
        let params = RoomCreateParams {
            name: name.to_owned(),
            private,
            retention: None,
        };
        self.call("room.create", &params).await
    }

    /// Join a public room (`room.join`).
    pub async fn join_room(&self, room: &str) -> Result<Value, ClientError> {
        self.call("room.join", &room_params(room)).await
    }

    /// Leave a room (`room.leave`).
    pub async fn leave_room(&self, room: &str) -> Result<Value, ClientError> {
        self.call("room.leave", &room_params(room)).await
    }

    /// Add another agent (id or `@handle`) to a room (`room.invite`).
    pub async fn invite(&self, room: &str, agent: &str) -> Result<Value, ClientError> {
        let params = RoomInviteParams {
            room: room.to_owned(),
            agent: agent.to_owned(),
        };
        self.call("room.invite", &params).await
    }

    /// Rooms visible to this agent (`room.list`).
    pub async fn rooms(&self) -> Result<RoomList, ClientError> {
        self.call("room.list", &json!({})).await
    }

    /// Read a room's history (`room.history`): messages after `after_seq`,
    /// at most `limit` (hub defaults when `None`).
    pub async fn history(
        &self,
        room: &str,
        after_seq: Option<u64>,
        limit: Option<u32>,
    ) -> Result<HistoryResult, ClientError> {
        let params = HistoryParams {
            room: room.to_owned(),
            after_seq,
            limit,
        };
        self.call("room.history", &params).await
    }

    /// Acknowledge everything up to and including `seq` in `room` (`ack`),
    /// moving the cursor the hub keeps for this agent. Only needed with
    /// [`SessionOptions::auto_ack`] off.
    pub async fn ack(&self, room: &str, seq: u64) -> Result<AckResult, ClientError> {
        let params = AckParams {
            room: Some(room.to_owned()),
            seq: Some(seq),
            cursors: BTreeMap::new(),
        };
        self.call("ack", &params).await
    }

    /// Tell the room's members this agent is (or stopped) typing.
    pub async fn typing(&self, room: &str, typing: bool) -> Result<Value, ClientError> {
        let params = TypingParams {
            room: room.to_owned(),
            typing,
        };
        self.call("typing", &params).await
    }

    /// Set this agent's presence (`presence.set`): online or idle.
    pub async fn set_presence(&self, status: PresenceStatus) -> Result<Value, ClientError> {
        self.call("presence.set", &PresenceSetParams { status })
            .await
    }

    /// Report this agent's status line and activity (`report`).
    pub async fn report(&self, params: ReportParams) -> Result<Value, ClientError> {
        self.call("report", &params).await
    }

    /// Everyone's presence (`presence.list`).
    pub async fn presence(&self) -> Result<PresenceList, ClientError> {
        self.call("presence.list", &json!({})).await
    }

    /// Round trip to the hub (`ping`); the heartbeat does this by itself.
    pub async fn ping(&self) -> Result<Pong, ClientError> {
        self.call("ping", &json!({})).await
    }
}

/// A fresh idempotency key: 128 random bits in hex.
pub fn new_dedupe_key() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// How long `send` waits before retrying after `err`, or `None` if `err` is
/// not worth a retry.
fn send_retry_wait(err: &ClientError, attempt: u32, backoff: &Backoff) -> Option<Duration> {
    let backoff_delay = || backoff.delay(attempt.saturating_sub(1));
    match err {
        // The request was already re-sent on any new connection and waited
        // for; trying again at once is right.
        ClientError::Timeout | ClientError::Transport(_) => Some(Duration::ZERO),
        ClientError::Server(body) => match body.code {
            ErrorCode::RateLimited => Some(
                body.retry_after_ms
                    .map(Duration::from_millis)
                    .unwrap_or_else(backoff_delay),
            ),
            ErrorCode::Unavailable => Some(backoff_delay()),
            _ => None,
        },
        _ => None,
    }
}

fn room_params(room: &str) -> RoomParams {
    RoomParams {
        room: room.to_owned(),
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Value, ClientError> {
    serde_json::to_value(value).map_err(|e| ClientError::Protocol(format!("encode: {e}")))
}

fn from_json<T: DeserializeOwned>(value: Value) -> Result<T, ClientError> {
    serde_json::from_value(value)
        .map_err(|e| ClientError::Protocol(format!("unexpected result shape: {e}")))
}

/// What a [`Session`] handle asks of the task.
enum Command {
    Request {
        method: String,
        params: Value,
        reply: oneshot::Sender<Result<Value, ClientError>>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// A request sent (or to be sent) and not yet answered.
struct Pending {
    method: String,
    params: Value,
    reply: oneshot::Sender<Result<Value, ClientError>>,
}

/// An established connection: the `connect` exchange is done.
struct Conn {
    ws: Ws,
    info: ConnectResult,
    /// Events that arrived before the `connect` response; handled after
    /// `Connected` is reported so the application sees them in order.
    early: Vec<EventFrame>,
}

/// How serving one connection ended.
enum Outcome {
    /// The application closed the session (or dropped every handle).
    Closed(Option<oneshot::Sender<()>>),
    /// The connection failed; reconnect.
    Lost(String),
}

/// The background task's state.
struct Worker {
    ws_url: String,
    token: String,
    client_name: String,
    auto_ack: bool,
    presence: bool,
    worker: Option<usize>,
    request_timeout: Duration,
    backoff: Backoff,
    max_reconnects: Option<u32>,
    drop_first: Option<String>,
    cursors: CursorBook,
    info: Option<Arc<Mutex<ConnectResult>>>,
    events: mpsc::Sender<SessionEvent>,
    cmds: mpsc::UnboundedReceiver<Command>,
    pending: BTreeMap<u64, Pending>,
    next_id: u64,
}

impl Worker {
    async fn run(mut self, mut conn: Conn) {
        loop {
            let reason = match self.serve(conn).await {
                Outcome::Lost(reason) => reason,
                Outcome::Closed(done) => {
                    // Fail waiting requests before confirming the close.
                    self.pending.clear();
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
            };
            info!(%reason, "connection lost; reconnecting");
            conn = match self.reconnect(reason).await {
                Some(conn) => conn,
                None => return,
            };
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Hand an event to the application; false if nobody listens any more.
    async fn emit(&self, event: SessionEvent) -> bool {
        self.events.send(event).await.is_ok()
    }

    /// Open the WebSocket and do the `connect` exchange, resuming from the
    /// current cursors.
    async fn establish(&mut self) -> Result<Conn, ClientError> {
        let mut request = self
            .ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| ClientError::Protocol(format!("bad WebSocket URL: {e}")))?;
        let auth = HeaderValue::from_str(&format!("Bearer {}", self.token))
            .map_err(|_| ClientError::Protocol("token is not a valid header value".into()))?;
        request.headers_mut().insert(AUTHORIZATION, auth);
        let (mut ws, _) = match timeout(
            self.request_timeout,
            connect_async_with_config(request, None, true),
        )
        .await
        {
            Err(_) => return Err(ClientError::Timeout),
            Ok(Err(e)) => return Err(ws_error(e)),
            Ok(Ok(pair)) => pair,
        };

        let id = self.next_id();
        let params = ConnectParams {
            protocol: Some(PROTOCOL_VERSION),
            client: Some(self.client_name.clone()),
            resume: self.cursors.snapshot(),
            presence: self.presence,
            worker: self.worker.is_some(),
            concurrency: self.worker,
        };
        send_request(&mut ws, id, "connect", &to_json(&params)?).await?;

        let deadline = Instant::now() + self.request_timeout;
        let mut early = Vec::new();
        loop {
            let message = match timeout_at(deadline, ws.next()).await {
                Err(_) => return Err(ClientError::Timeout),
                Ok(None) => {
                    return Err(ClientError::Transport(
                        "connection closed during connect".into(),
                    ))
                }
                Ok(Some(Err(e))) => return Err(ws_error(e)),
                Ok(Some(Ok(message))) => message,
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Close(frame) => return Err(ClientError::Transport(close_reason(frame))),
                _ => continue,
            };
            match parse_frame(text.as_str()) {
                Some(Frame::Res(res)) if res.id.as_u64() == Some(id) => {
                    let info = from_json(response_result(res)?)?;
                    return Ok(Conn { ws, info, early });
                }
                Some(Frame::Event(event)) => early.push(event),
                Some(other) => debug!(?other, "ignoring frame before the connect response"),
                None => {}
            }
        }
    }

    /// Try to connect again until it works, the budget is spent, the failure
    /// is one a retry cannot fix, or the application closes the session.
    async fn reconnect(&mut self, mut reason: String) -> Option<Conn> {
        let mut attempt: u32 = 0;
        loop {
            if self.max_reconnects.is_some_and(|max| attempt >= max) {
                self.emit(SessionEvent::Disconnected { reason }).await;
                return None;
            }
            let delay = self.backoff.delay(attempt);
            attempt += 1;
            self.emit(SessionEvent::Reconnecting {
                attempt,
                delay,
                reason: reason.clone(),
            })
            .await;
            if !self.idle(delay).await {
                return None;
            }
            match self.establish().await {
                Ok(conn) => return Some(conn),
                Err(e) if is_fatal(&e) => {
                    warn!(error = %e, "hub refused the reconnect; giving up");
                    self.emit(SessionEvent::Disconnected {
                        reason: e.to_string(),
                    })
                    .await;
                    return None;
                }
                Err(e) => reason = e.to_string(),
            }
        }
    }

    /// Wait out a backoff delay while still taking commands: requests queue
    /// for the next connection, a close ends the session. False on close.
    async fn idle(&mut self, delay: Duration) -> bool {
        let wake = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => return true,
                cmd = self.cmds.recv() => match cmd {
                    Some(Command::Request { method, params, reply }) => {
                        let id = self.next_id();
                        self.pending.insert(id, Pending { method, params, reply });
                    }
                    Some(Command::Close { done }) => {
                        self.pending.clear();
                        let _ = done.send(());
                        return false;
                    }
                    None => return false,
                },
            }
        }
    }

    /// Run one established connection until it is lost or closed.
    async fn serve(&mut self, conn: Conn) -> Outcome {
        let Conn {
            mut ws,
            info,
            early,
        } = conn;
        let heartbeat = match info.heartbeat_interval_ms {
            0 => DEFAULT_HEARTBEAT,
            ms => Duration::from_millis(ms),
        };
        let silence_limit = match info.heartbeat_timeout_ms {
            0 => heartbeat * 3,
            ms => Duration::from_millis(ms),
        };
        if let Some(shared) = &self.info {
            *shared.lock() = info.clone();
        }
        info!(agent = %info.agent_id, session = %info.session_id, "connected");
        self.emit(SessionEvent::Connected(info)).await;

        for event in early {
            if let Err(reason) = self.on_event(&mut ws, event).await {
                return Outcome::Lost(reason);
            }
        }

        // Requests whose caller gave up (timed out) are not worth re-sending.
        self.pending.retain(|_, p| !p.reply.is_closed());
        for (&id, p) in &self.pending {
            if let Err(e) = send_request(&mut ws, id, &p.method, &p.params).await {
                return Outcome::Lost(e.to_string());
            }
        }

        let mut ticker = interval_at(Instant::now() + heartbeat, heartbeat);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                message = ws.next() => {
                    last_heard = Instant::now();
                    let message = match message {
                        None => return Outcome::Lost("connection closed".into()),
                        Some(Err(e)) => return Outcome::Lost(format!("read failed: {e}")),
                        Some(Ok(message)) => message,
                    };
                    match message {
                        Message::Text(text) => {
                            if let Err(reason) = self.on_text(&mut ws, text.as_str()).await {
                                return Outcome::Lost(reason);
                            }
                        }
                        Message::Close(frame) => return Outcome::Lost(close_reason(frame)),
                        _ => {}
                    }
                }
                cmd = self.cmds.recv() => match cmd {
                    Some(Command::Request { method, params, reply }) => {
                        let id = self.next_id();
                        let sent = send_request(&mut ws, id, &method, &params).await;
                        // Kept even if the write failed: it goes out again
                        // on the next connection.
                        self.pending.insert(id, Pending { method, params, reply });
                        if let Err(e) = sent {
                            return Outcome::Lost(e.to_string());
                        }
                    }
                    Some(Command::Close { done }) => {
                        close_gracefully(&mut ws).await;
                        return Outcome::Closed(Some(done));
                    }
                    None => {
                        close_gracefully(&mut ws).await;
                        return Outcome::Closed(None);
                    }
                },
                _ = ticker.tick() => {
                    if last_heard.elapsed() >= silence_limit {
                        return Outcome::Lost(format!(
                            "nothing heard from the hub for {} ms",
                            silence_limit.as_millis()
                        ));
                    }
                    let id = self.next_id();
                    if let Err(e) = send_request(&mut ws, id, "ping", &json!({})).await {
                        return Outcome::Lost(e.to_string());
                    }
                }
            }
        }
    }

    /// Handle one text frame; `Err` carries the reason to reconnect.
    async fn on_text(&mut self, ws: &mut Ws, text: &str) -> Result<(), String> {
        match parse_frame(text) {
            Some(Frame::Res(res)) => {
                self.on_response(res);
                Ok(())
            }
            Some(Frame::Event(event)) => self.on_event(ws, event).await,
            Some(Frame::Req(req)) => {
                debug!(method = %req.method, "ignoring a request frame from the hub");
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn on_response(&mut self, res: ResponseFrame) {
        let Some(id) = res.id.as_u64().filter(|id| self.pending.contains_key(id)) else {
            // Pings, automatic acks, and answers to requests re-sent after a
            // reconnect that were answered twice.
            if let Some(error) = &res.error {
                warn!(id = %res.id, %error, "hub refused an internal request");
            }
            return;
        };
        if let Some(method) = self.drop_first.as_deref() {
            if self.pending.get(&id).is_some_and(|p| p.method == method) {
                warn!(id, method, "fault injection: discarding this response");
                self.drop_first = None;
                return;
            }
        }
        if let Some(p) = self.pending.remove(&id) {
            // The caller may have timed out; nobody to tell then.
            let _ = p.reply.send(response_result(res));
        }
    }

    /// Handle one event; `Err` carries the reason to reconnect.
    async fn on_event(&mut self, ws: &mut Ws, event: EventFrame) -> Result<(), String> {
        match event.event.as_str() {
            events::MESSAGE => {
                let envelope = match Envelope::deserialize(&event.data) {
                    Ok(envelope) => envelope,
                    Err(e) => {
                        warn!(error = %e, "message event without a valid envelope");
                        self.emit(SessionEvent::Event(event)).await;
                        return Ok(());
                    }
                };
                let (room, seq) = (envelope.to_id.clone(), envelope.seq);
                if !self.cursors.is_new(&room, seq) {
                    debug!(%room, seq, "dropping a redelivered message");
                    return Ok(());
                }
                if !self.emit(SessionEvent::Message(envelope)).await {
                    return Ok(());
                }
                self.cursors.advance(&room, seq);
                if self.auto_ack {
                    let id = self.next_id();
                    let params = json!({ "room": room, "seq": seq });
                    send_request(ws, id, "ack", &params)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            events::REPLAY_RESET => {
                // The hub's history for this room restarted below our cursor;
                // what it replays next is new to us even if its seq is not.
                if let Some(room) = event.data.get("room").and_then(Value::as_str) {
                    self.cursors.reset(room);
                }
                self.emit(SessionEvent::Event(event)).await;
                Ok(())
            }
            events::DISCONNECTING => {
                let reason = match Disconnecting::deserialize(&event.data) {
                    Ok(d) => format!("hub disconnecting: {} ({})", d.reason, d.message),
                    Err(_) => "hub disconnecting".to_owned(),
                };
                self.emit(SessionEvent::Event(event)).await;
                Err(reason)
            }
            _ => {
                self.emit(SessionEvent::Event(event)).await;
                Ok(())
            }
        }
    }
}

async fn send_request(
    ws: &mut Ws,
    id: u64,
    method: &str,
    params: &Value,
) -> Result<(), ClientError> {
    let frame = json!({ "type": "req", "id": id, "method": method, "params": params });
    ws.send(Message::text(frame.to_string()))
        .await
        .map_err(|e| ClientError::Transport(format!("write failed: {e}")))
}

async fn close_gracefully(ws: &mut Ws) {
    if ws.close(None).await.is_ok() {
        // Wait briefly for the hub's close frame so the close is clean.
        let _ = timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }
}

fn parse_frame(text: &str) -> Option<Frame> {
    match serde_json::from_str(text) {
        Ok(frame) => Some(frame),
        Err(e) => {
            warn!(error = %e, "ignoring an unreadable frame");
            None
        }
    }
}

fn response_result(res: ResponseFrame) -> Result<Value, ClientError> {
    match (res.ok, res.result, res.error) {
        (true, result, _) => Ok(result.unwrap_or(Value::Null)),
        (false, _, Some(error)) => Err(ClientError::Server(error)),
        (false, _, None) => Err(ClientError::Protocol(
            "error response without an error body".into(),
        )),
    }
}

fn ws_error(e: tungstenite::Error) -> ClientError {
    match e {
        tungstenite::Error::Http(response) => {
            let body = response.body().as_deref().unwrap_or_default();
            http_error(response.status().as_u16(), body)
        }
        other => ClientError::Transport(other.to_string()),
    }
}

fn close_reason(frame: Option<CloseFrame>) -> String {
    match frame {
        Some(frame) => format!("closed by the hub: {frame}"),
        None => "closed by the hub".to_owned(),
    }
}

/// Failures a reconnect cannot fix: the credentials are refused, or the hub
/// speaks something this client does not.
fn is_fatal(e: &ClientError) -> bool {
    match e {
        ClientError::Protocol(_) => true,
        ClientError::Server(_) | ClientError::Http(..) => matches!(
            e.code(),
            Some(ErrorCode::Unauthorized | ErrorCode::Forbidden | ErrorCode::Invalid)
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawnet_proto::ErrorBody;

    #[test]
    fn dedupe_keys_are_128_bit_hex_and_distinct() {
        let a = new_dedupe_key();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, new_dedupe_key());
    }

    #[test]
    fn send_retries_only_transient_failures() {
        let backoff = Backoff {
            jitter: 0.0,
            ..Backoff::default()
        };
        assert_eq!(
            send_retry_wait(&ClientError::Timeout, 1, &backoff),
            Some(Duration::ZERO)
        );
        let mut limited = ErrorBody::new(ErrorCode::RateLimited, "slow down");
        limited.retry_after_ms = Some(250);
        assert_eq!(
            send_retry_wait(&ClientError::Server(limited), 1, &backoff),
            Some(Duration::from_millis(250))
        );
        let unavailable = ErrorBody::new(ErrorCode::Unavailable, "busy");
        assert_eq!(
            send_retry_wait(&ClientError::Server(unavailable), 2, &backoff),
            Some(Duration::from_millis(200))
        );
        for code in [ErrorCode::Forbidden, ErrorCode::Invalid, ErrorCode::Blocked] {
            let err = ClientError::Server(ErrorBody::new(code, "no"));
            assert_eq!(send_retry_wait(&err, 1, &backoff), None, "{code}");
        }
        assert_eq!(send_retry_wait(&ClientError::Closed, 1, &backoff), None);
    }

    #[test]
    fn response_result_maps_errors() {
        let ok = ResponseFrame::ok(json!(1), json!({"ts": 5}));
        assert_eq!(response_result(ok), Ok(json!({"ts": 5})));
        let body = ErrorBody::new(ErrorCode::NotFound, "no such room");
        let err = ResponseFrame::err(json!(1), body.clone());
        assert_eq!(response_result(err), Err(ClientError::Server(body)));
    }

    #[test]
    fn refused_credentials_are_fatal_but_outages_are_not() {
        let unauthorized = ErrorBody::new(ErrorCode::Unauthorized, "bad token");
        assert!(is_fatal(&ClientError::Http(401, unauthorized)));
        let down = ErrorBody::new(ErrorCode::Unavailable, "restarting");
        assert!(!is_fatal(&ClientError::Http(503, down)));
        assert!(!is_fatal(&ClientError::Timeout));
        assert!(!is_fatal(&ClientError::Transport("refused".into())));
    }

    #[test]
    fn options_debug_hides_the_token() {
        let opts = SessionOptions::new("http://h", "secret-token");
        let shown = format!("{opts:?}");
        assert!(!shown.contains("secret-token"));
        assert!(opts.auto_ack);
        assert_eq!(opts.request_timeout, Duration::from_secs(10));
        assert_eq!(opts.event_capacity, 1024);
    }
}
