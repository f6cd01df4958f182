//! A real hub on an ephemeral port, and a raw WebSocket client that shows
//! exactly what the hub puts on the wire.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clawnet_client::{Rest, Session, SessionEvent, SessionOptions};
use clawnet_core::clock::Clock;
use clawnet_core::{Hub, HubConfig};
use clawnet_server::{AppState, ServerOptions};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const MASTER: &str = "test-master-token-0123456789abcdef0123456789";
pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestHub {
    pub addr: SocketAddr,
    pub base: String,
    pub hub: Hub,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Surface options with every rate limit off, for tests that load the hub
/// on purpose (what they check is not the limits).
pub fn unlimited() -> ServerOptions {
    use clawnet_server::limits::{Rate, RateLimits};
    ServerOptions {
        limits: RateLimits {
            rest_per_agent: Rate::OFF,
            rest_per_address: Rate::OFF,
            ws_per_agent: Rate::OFF,
            ws_per_address: Rate::OFF,
            ..RateLimits::default()
        },
        ..ServerOptions::default()
    }
}

pub async fn start() -> TestHub {
    start_with(HubConfig::default(), None).await
}

pub async fn start_with(cfg: HubConfig, clock: Option<Arc<dyn Clock>>) -> TestHub {
    start_on(cfg, clock, None).await
}

/// A hub on the given store (memory when `None`).
pub async fn start_on(
    cfg: HubConfig,
    clock: Option<Arc<dyn Clock>>,
    store: Option<Arc<dyn clawnet_core::store::Store>>,
) -> TestHub {
    start_full(cfg, clock, store, ServerOptions::default()).await
}

/// A hub with surface options too (rate limits, origins).
pub async fn start_full(
    cfg: HubConfig,
    clock: Option<Arc<dyn Clock>>,
    store: Option<Arc<dyn clawnet_core::store::Store>>,
    opts: ServerOptions,
) -> TestHub {
    let mut cfg = cfg;
    // Debug builds on a busy machine: the defender's default time limit
    // (50 ms) is for release builds. A test of the limit sets its own.
    if cfg.defender.timeout_ms == clawnet_core::defense::DefenderSettings::default().timeout_ms {
        cfg.defender.timeout_ms = 5_000;
    }
    let mut b = Hub::builder().config(cfg);
    if let Some(s) = store {
        b = b.store(s);
    }
    if let Some(c) = clock {
        b = b.clock(c);
    }
    let hub = b.build().await.expect("hub builds");
    hub.bootstrap(Some(MASTER)).await.expect("bootstrap");
    hub.spawn_cursor_flusher();
    hub.spawn_task_sweeper();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let state = AppState::new(hub.clone(), opts);
    tokio::spawn(clawnet_server::serve(listener, state, async move {
        let _ = rx.await;
    }));
    TestHub {
        addr,
        base: format!("http://{addr}"),
        hub,
        stop: Some(tx),
    }
}

impl TestHub {
    pub fn rest(&self, token: &str) -> Rest {
        Rest::new(&self.base, token).expect("rest client")
    }

    pub fn master(&self) -> Rest {
        self.rest(MASTER)
    }

    /// Register a worker with `id` as both id and handle; returns its token.
    pub async fn agent(&self, id: &str) -> String {
        let (_, token) = self
            .master()
            .create_agent(id, id, "worker")
            .await
            .expect("create agent");
        token
    }

    pub async fn session(&self, token: &str) -> (Session, mpsc::Receiver<SessionEvent>) {
        let mut o = SessionOptions::new(self.base.clone(), token);
        o.request_timeout = Duration::from_secs(2);
        Session::connect(o).await.expect("session connects")
    }

    pub async fn raw(&self, token: &str) -> Raw {
        Raw::open(self.addr, token).await.expect("upgrade")
    }

    pub async fn raw_connected(&self, token: &str, params: Value) -> Raw {
        let mut r = self.raw(token).await;
        let res = r.req("connect", params).await;
        assert_eq!(res["ok"], true, "connect failed: {res}");
        r.wait_event("replay.done").await;
        r
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A bare WebSocket client: sends requests, keeps events it sees while
/// waiting for a response.
pub struct Raw {
    pub ws: Ws,
    next_id: u64,
    pub events: VecDeque<Value>,
}

pub async fn upgrade(
    addr: SocketAddr,
    token: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{addr}/ws").into_client_request()?;
    if let Some(t) = token {
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {t}")).expect("header"),
        );
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

impl Raw {
    pub async fn open(
        addr: SocketAddr,
        token: &str,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        Ok(Self {
            ws: upgrade(addr, Some(token)).await?,
            next_id: 0,
            events: VecDeque::new(),
        })
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// Next frame, or `None` when the socket closed.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within the wait");
            match m {
                Some(Ok(Message::Text(t))) => {
                    return Some(serde_json::from_str(&t).expect("json frame"))
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    pub async fn req(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let f = json!({"type":"req","id":id,"method":method,"params":params});
        self.send_text(&f.to_string()).await;
        self.response(id).await
    }

    pub async fn response(&mut self, id: u64) -> Value {
        loop {
            let f = self
                .next()
                .await
                .expect("connection open while awaiting a response");
            if f["type"] == "res" && f["id"] == id {
                return f;
            }
            if f["type"] == "res" && f["id"].is_null() {
                return f;
            }
            self.events.push_back(f);
        }
    }

    /// The next event named `name` (earlier ones of other names are kept).
    pub async fn wait_event(&mut self, name: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["event"] == name) {
            return self.events.remove(i).expect("present");
        }
        loop {
            let f = self
                .next()
                .await
                .unwrap_or_else(|| panic!("closed while waiting for {name}"));
            if f["event"] == name {
                return f;
            }
            self.events.push_back(f);
        }
    }

    /// Collect `n` message events (buffered first, then from the socket).
    pub async fn messages(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        while out.len() < n {
            if let Some(i) = self.events.iter().position(|e| e["event"] == "message") {
                out.push(self.events.remove(i).expect("present"));
                continue;
            }
            let f = self.next().await.expect("open while collecting messages");
            if f["event"] == "message" {
                out.push(f);
            } else {
                self.events.push_back(f);
            }
        }
        out
    }

    /// Whether any message event arrives within `d`.
    pub async fn quiet_for(&mut self, d: Duration) -> bool {
        if self.events.iter().any(|e| e["event"] == "message") {
            return false;
        }
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).expect("json");
                    if v["event"] == "message" {
                        return false;
                    }
                }
                Ok(_) => return true,
            }
        }
    }
}

pub fn text(msg: &str) -> Value {
    json!({"text": msg})
}

pub fn send_params(
    to_type: &str,
    to_id: Option<&str>,
    msg: &str,
    key: Option<&str>,
) -> clawnet_proto::methods::SendParams {
    serde_json::from_value(json!({
        "to_type": to_type, "to_id": to_id, "payload": {"text": msg}, "dedupe_key": key
    }))
    .expect("send params")
}
