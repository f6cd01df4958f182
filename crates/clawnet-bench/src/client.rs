//! A benchmark agent's WebSocket connection: the `connect` handshake, then a
//! reader task (counts deliveries and acks, records latencies) and a writer
//! task (sends `chat.send` when given a permit or a scheduled time stamp,
//! and a `ping` every 15 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::stats::Hist;
use crate::wswrite::{self, Next};

/// A client WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Most sends written per flush.
const WRITE_BATCH: usize = 64;

/// The measurement window, in nanoseconds since a shared `epoch` (all
/// clients live in this process, so one `Instant` is the common clock).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Common time base.
    pub epoch: Instant,
    /// Start of the measured window.
    pub start_ns: u64,
    /// End of the measured window (exclusive).
    pub end_ns: u64,
}

impl Window {
    /// Nanoseconds since the epoch.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Whether `t` falls inside the measured window.
    pub fn contains(&self, t: u64) -> bool {
        t >= self.start_ns && t < self.end_ns
    }
}

/// Open a connection with a bearer token, send `connect` and wait for
/// `replay.done`. Returns the socket and how many frames preceded
/// `replay.done` after the `connect` response.
pub async fn connect(url: &str, token: &str, timeout: Duration) -> anyhow::Result<(Ws, u64)> {
    connect_with(url, token, r#"{"protocol":2}"#, timeout).await
}

/// [`connect`] with these `connect` params (a JSON object), e.g.
/// `{"protocol":2,"worker":true,"concurrency":10}` for a task worker.
pub async fn connect_with(
    url: &str,
    token: &str,
    params: &str,
    timeout: Duration,
) -> anyhow::Result<(Ws, u64)> {
    let mut req = url.into_client_request()?;
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}"))
            .context("token is not a valid header value")?,
    );
    let fut = async {
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true)
            .await
            .context("WebSocket upgrade failed")?;
        ws.send(Message::Text(
            format!(r#"{{"type":"req","id":1,"method":"connect","params":{params}}}"#).into(),
        ))
        .await?;
        let mut connected = false;
        let mut before_done = 0u64;
        while let Some(m) = ws.next().await {
            let Message::Text(t) = m? else { continue };
            let f: Incoming<'_> = serde_json::from_str(t.as_str())
                .with_context(|| format!("unreadable frame during connect: {}", t.as_str()))?;
            match f.kind {
                "res" if f.id == Some(1) => {
                    if f.ok != Some(true) {
                        bail!("connect refused: {}", t.as_str());
                    }
                    connected = true;
                }
                "event" if f.event == Some("replay.done") => {
                    if !connected {
                        bail!("replay.done before the connect response");
                    }
                    return Ok((ws, before_done));
                }
                _ => {
                    if connected {
                        before_done += 1;
                    }
                }
            }
        }
        bail!("connection closed during connect")
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| anyhow::anyhow!("connect did not finish within {timeout:?}"))?
}

/// The fields of a server frame the benchmark reads; the rest is skipped.
#[derive(Debug, Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    id: Option<i64>,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default, borrow)]
    event: Option<&'a str>,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    result: Option<SendResult>,
}

#[derive(Debug, Deserialize)]
struct Data {
    #[serde(default)]
    payload: Option<Payload>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SendResult {
    #[serde(default)]
    message: Option<Msg>,
}

#[derive(Debug, Deserialize)]
struct Msg {
    #[serde(default)]
    payload: Option<Payload>,
}

#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(default)]
    t: Option<u64>,
}

/// What one reader saw.
#[derive(Debug, Default)]
pub struct ReaderStats {
    /// `message` events received.
    pub recv_total: u64,
    /// `message` events received inside the window.
    pub recv_in_window: u64,
    /// `message` events whose send time stamp is inside the window.
    pub recv_for_window_sends: u64,
    /// Send → receive latency of those.
    pub lat: Hist,
    /// `chat.send` responses.
    pub acks: u64,
    /// `chat.send` responses received inside the window.
    pub acks_in_window: u64,
    /// `chat.send` responses with `ok: false`.
    pub ack_errors: u64,
    /// The first error response, verbatim.
    pub first_error: Option<String>,
    /// Send → ack latency for sends inside the window.
    pub ack_lat: Hist,
    /// Other frames (presence, pongs…).
    pub other_frames: u64,
    /// Frames that did not parse.
    pub unreadable: u64,
    /// Why the connection ended before the reader was stopped, if it did.
    pub disconnect: Option<String>,
}

/// Read until `stop` (or the connection ends). With `window_sem`, every
/// `chat.send` response returns a permit to the writer (closed loop).
pub async fn reader(
    mut stream: SplitStream<Ws>,
    win: Window,
    window_sem: Option<Arc<Semaphore>>,
    mut stop: watch::Receiver<bool>,
) -> ReaderStats {
    let mut s = ReaderStats::default();
    loop {
        let m = tokio::select! {
            biased;
            _ = stop.changed() => break,
            m = stream.next() => m,
        };
        let text = match m {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(c))) => {
                let why = c.map(|c| format!("close {} {}", u16::from(c.code), c.reason.as_str()));
                if s.disconnect.is_none() {
                    s.disconnect = Some(why.unwrap_or_else(|| "close".into()));
                }
                continue; // tungstenite answers the close; the stream ends next
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                if s.disconnect.is_none() {
                    s.disconnect = Some(format!("error: {e}"));
                }
                break;
            }
            None => {
                if s.disconnect.is_none() {
                    s.disconnect = Some("closed".into());
                }
                break;
            }
        };
        let rt = win.now_ns();
        let f: Incoming<'_> = match serde_json::from_str(text.as_str()) {
            Ok(f) => f,
            Err(_) => {
                s.unreadable += 1;
                continue;
            }
        };
        match (f.kind, f.event) {
            ("event", Some("message")) => {
                s.recv_total += 1;
                if win.contains(rt) {
                    s.recv_in_window += 1;
                }
                if let Some(t) = f.data.and_then(|d| d.payload).and_then(|p| p.t) {
                    if win.contains(t) {
                        s.recv_for_window_sends += 1;
                        s.lat.record_ns(rt.saturating_sub(t));
                    }
                }
            }
            ("res", _) if f.id.is_some_and(|id| id >= 2) => {
                s.acks += 1;
                if win.contains(rt) {
                    s.acks_in_window += 1;
                }
                if f.ok == Some(true) {
                    if let Some(t) = f
                        .result
                        .and_then(|r| r.message)
                        .and_then(|m| m.payload)
                        .and_then(|p| p.t)
                    {
                        if win.contains(t) {
                            s.ack_lat.record_ns(rt.saturating_sub(t));
                        }
                    }
                } else {
                    s.ack_errors += 1;
                    if s.first_error.is_none() {
                        s.first_error = Some(text.as_str().chars().take(500).collect());
                    }
                }
                if let Some(sem) = &window_sem {
                    sem.add_permits(1);
                }
            }
            ("event", Some("disconnecting")) => {
                let reason = f.data.and_then(|d| d.reason).unwrap_or_default();
                s.disconnect = Some(format!("disconnecting: {reason}"));
            }
            _ => s.other_frames += 1,
        }
    }
    s
}

/// Where a writer's sends come from.
#[derive(Debug)]
pub enum Source {
    /// Closed loop: one send per permit (the reader returns one per ack);
    /// the send is time-stamped when written.
    Window(Arc<Semaphore>),
    /// Open loop: send time stamps chosen by the scheduler.
    Schedule(mpsc::UnboundedReceiver<u64>),
}

impl Source {
    /// Wait for at least one send; fills `buf` with time stamps (`None`:
    /// stamp now). Returns false when no more sends will come.
    pub(crate) async fn next(&mut self, buf: &mut Vec<Option<u64>>) -> bool {
        match self {
            Source::Window(sem) => {
                let Ok(p) = sem.acquire().await else {
                    return false;
                };
                p.forget();
                buf.push(None);
                while buf.len() < WRITE_BATCH {
                    match sem.try_acquire() {
                        Ok(p) => {
                            p.forget();
                            buf.push(None);
                        }
                        Err(_) => break,
                    }
                }
                true
            }
            Source::Schedule(rx) => {
                let mut v = Vec::with_capacity(WRITE_BATCH);
                let n = rx.recv_many(&mut v, WRITE_BATCH).await;
                buf.extend(v.into_iter().map(Some));
                n > 0
            }
        }
    }
}

/// What one writer did.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// `chat.send` requests written.
    pub sent: u64,
    /// Of those, time-stamped inside the window.
    pub sent_in_window: u64,
    /// Pings written.
    pub pings: u64,
    /// Write error that ended the writer, if any.
    pub error: Option<String>,
}

/// How a writer builds its `chat.send` frames.
#[derive(Debug, Clone)]
pub struct SendShape {
    /// The agent's id (used in dedupe keys).
    pub agent: String,
    /// The `payload.text`, JSON-safe (no quotes or backslashes).
    pub text: Arc<str>,
    /// Send a unique `dedupe_key` with every message.
    pub dedupe_keys: bool,
    /// Send to this room (JSON-safe id); `None`: to `global`.
    pub room: Option<String>,
}

/// Write sends from `source` (to `global` or the shape's room) until `stop`,
/// and a `ping` every 15 s.
pub async fn writer(
    sink: SplitSink<Ws, Message>,
    win: Window,
    source: Source,
    shape: SendShape,
    stop: watch::Receiver<bool>,
) -> WriterStats {
    let mut next_id: u64 = 2;
    let to = match &shape.room {
        None => r#""to_type":"global""#.to_owned(),
        Some(room) => format!(r#""to_type":"room","to_id":"{room}""#),
    };
    wswrite::source_writer(sink, win, source, WRITE_BATCH, stop, |stamp| {
        let t = stamp.unwrap_or_else(|| win.now_ns());
        let id = next_id;
        next_id += 1;
        let dk = if shape.dedupe_keys {
            format!(r#","dedupe_key":"{}-{id}""#, shape.agent)
        } else {
            String::new()
        };
        let frame = format!(
            r#"{{"type":"req","id":{id},"method":"chat.send","params":{{{to},"payload":{{"text":"{}","t":{t}}}{dk}}}}}"#,
            shape.text
        );
        Next::Frame { t, frame }
    })
    .await
}

/// Keep an idle connection alive: read (and drop) whatever arrives, ping
/// every 15 s, until `stop`. Returns the frames read and the reason the
/// connection ended early, if it did.
pub async fn idle(ws: Ws, mut stop: watch::Receiver<bool>) -> (u64, Option<String>) {
    let (mut sink, mut stream) = ws.split();
    let mut ping = wswrite::ping_interval();
    let mut frames = 0u64;
    let mut pings = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return (frames, None),
            _ = ping.tick() => {
                if let Err(e) = wswrite::ping(&mut sink, &mut pings).await {
                    return (frames, Some(format!("ping failed: {e}")));
                }
            }
            m = stream.next() => match m {
                Some(Ok(Message::Text(_))) => frames += 1,
                Some(Ok(Message::Close(c))) => {
                    return (frames, Some(c.map(|c| format!("close {}", c.reason.as_str())).unwrap_or_else(|| "close".into())));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return (frames, Some(format!("error: {e}"))),
                None => return (frames, Some("closed".into())),
            },
        }
    }
}
