//! Helpers the end-to-end tests of the `clawnet` binary share: the real
//! `clawnet serve` process (blocking for the CLI tests, async for the crash
//! tests), the CLI binary, agents registered over REST, raw WebSockets.
//!
//! Each test file is its own crate and uses only part of this module.
#![allow(dead_code)]

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const BIN: &str = env!("CARGO_BIN_EXE_clawnet");
/// Fixed, so a restarted hub on the same SQLite file takes the same token.
pub const MASTER: &str = "clawnet-test-master-token-0123456789abcdef";

const LISTENING: &str = "clawnet: listening on ";
const GENERATED: &str = "clawnet: generated master token (shown once): ";

/// The `CLAWNET_*` variables of the test's environment.
fn clawnet_vars() -> Vec<OsString> {
    std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| k.to_string_lossy().starts_with("CLAWNET_"))
        .collect()
}

/// Drop every `CLAWNET_*` variable of the test's environment: only what a
/// test passes may reach the binary.
pub fn clean(cmd: &mut Command) -> &mut Command {
    for k in clawnet_vars() {
        cmd.env_remove(k);
    }
    cmd
}

// ---------------------------------------------------------------------------
// Blocking: a hub, the CLI, workers.

/// A `clawnet serve` child process, killed when dropped.
pub struct Hub {
    pub child: Child,
    pub url: String,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawn `cmd` (a `serve`) and read its stdout up to the listening line; the
/// hub and the generated master token if it printed one.
fn start_hub(cmd: &mut Command) -> (Hub, Option<String>) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut token, mut url) = (None, None);
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(t) = line.strip_prefix(GENERATED) {
            token = Some(t.to_owned());
        }
        if let Some(rest) = line.strip_prefix(LISTENING) {
            url = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    // Keep reading so the hub never writes into a closed pipe.
    std::thread::spawn(move || for _ in lines {});
    let hub = Hub {
        child,
        url: url.expect("the hub printed its listening line"),
    };
    (hub, token)
}

/// Start `clawnet serve` with [`MASTER`] and `args` (on an ephemeral port
/// unless they say `--listen`) and wait for its listening line.
pub fn serve(args: &[&str]) -> Hub {
    let mut cmd = Command::new(BIN);
    clean(&mut cmd)
        .args(["serve", "--log-level", "warn"])
        .args(["--set", "tasks.dispatches_per_minute=0"])
        // A debug hub on a busy machine: more time than the release default.
        .args(["--set", "defender.timeout_ms=5000"])
        .args(args);
    if !args.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    cmd.env("CLAWNET_MASTER_TOKEN", MASTER);
    start_hub(&mut cmd).0
}

/// Start `clawnet serve` on an ephemeral port with no master token given, and
/// read the one it generates (and prints once) from its first lines.
pub fn serve_generated() -> (Hub, String) {
    let mut cmd = Command::new(BIN);
    clean(&mut cmd).args(["serve", "--listen", "127.0.0.1:0"]);
    let (hub, token) = start_hub(&mut cmd);
    (hub, token.expect("generated token printed"))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// [`serve`] on the SQLite file `db`, listening on `port`.
pub fn serve_sqlite(db: &Path, port: u16) -> Hub {
    let store = format!("sqlite://{}", db.display());
    let listen = format!("127.0.0.1:{port}");
    serve(&["--store", &store, "--listen", &listen])
}

/// The outcome of one CLI run.
pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub out: String,
    pub err: String,
}

impl Run {
    pub fn from(o: Output) -> Self {
        Self {
            ok: o.status.success(),
            code: o.status.code(),
            out: String::from_utf8_lossy(&o.stdout).into_owned(),
            err: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// The last line of stdout, as JSON.
    pub fn json(&self) -> Value {
        let line = self.out.lines().last().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.out))
    }

    /// The table's header line, split on whitespace.
    pub fn header(&self) -> Vec<&str> {
        let line = self.out.lines().next().unwrap_or_default();
        line.split_whitespace().collect()
    }

    /// The table's data row whose first column is `key`, split on
    /// whitespace.
    pub fn row(&self, key: &str) -> Vec<&str> {
        self.out
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|cells| cells.first() == Some(&key))
            .unwrap_or_else(|| panic!("no row {key}:\n{}", self.out))
    }

    /// Failed with the exit status for the hub's `code` (3 unauthorized,
    /// 4 not found, 5 unavailable, 1 any other refusal), the code in the
    /// message.
    pub fn refused(&self, code: &str) -> bool {
        let status = match code {
            "unauthorized" => 3,
            "not_found" => 4,
            "unavailable" | "internal" => 5,
            _ => 1,
        };
        self.code == Some(status) && self.err.contains(code)
    }
}

/// The CLI with `args`, pointed at `hub` as `token`.
pub fn cli_cmd(hub: &Hub, token: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    clean(&mut cmd)
        .args(args)
        .args(["--url", &hub.url, "--token", token]);
    cmd
}

pub fn cli(hub: &Hub, token: &str, args: &[&str]) -> Run {
    Run::from(cli_cmd(hub, token, args).output().expect("run clawnet"))
}

/// Run as master; must succeed.
pub fn ok(hub: &Hub, args: &[&str]) -> Run {
    let r = cli(hub, MASTER, args);
    assert!(r.ok, "{args:?}: {}", r.err);
    r
}

/// Register an agent (handle = id) with the CLI and return its token.
pub fn agent(hub: &Hub, id: &str) -> String {
    let r = ok(
        hub,
        &["agents", "create", "--id", id, "--handle", id, "--json"],
    );
    r.json()["token"].as_str().expect("token").to_owned()
}

/// Dispatch as master with `--json`; the task id.
pub fn dispatch(hub: &Hub, args: &[&str]) -> String {
    let mut all = vec!["tasks", "dispatch", "--json"];
    all.extend_from_slice(args);
    ok(hub, &all).json()["task"]["task_id"]
        .as_str()
        .expect("task_id")
        .to_owned()
}

/// `tasks status ID --json`.
pub fn status(hub: &Hub, id: &str) -> Value {
    ok(hub, &["tasks", "status", id, "--json"]).json()
}

/// Poll until the task is in `state`; the task.
pub fn wait_state(hub: &Hub, id: &str, state: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let t = status(hub, id);
        if t["state"] == state {
            return t;
        }
        assert!(Instant::now() < deadline, "{id} never became {state}: {t}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `clawnet worker --exec SCRIPT` process; its stderr lines are collected.
pub struct Worker {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    /// Start it with `extra` arguments and wait until it has connected.
    pub fn start(hub: &Hub, token: &str, script: &str, extra: &[&str]) -> Self {
        let mut child = cli_cmd(hub, token, &["worker", "--exec", script])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn worker");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        let w = Self { child, lines };
        w.wait_for("connected as", Duration::from_secs(10));
        w
    }

    pub fn log(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    pub fn count(&self, needle: &str) -> usize {
        let lines = self.lines.lock().expect("lines");
        lines.iter().filter(|l| l.contains(needle)).count()
    }

    pub fn wait_for(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while self.count(needle) == 0 {
            assert!(
                Instant::now() < deadline,
                "the worker never said {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Wait for the process to exit; its exit code.
    pub fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

// ---------------------------------------------------------------------------
// Async: the crash tests' hub, schedule, REST and WebSocket clients.

/// A small deterministic generator (xorshift64*): the schedule needs no more,
/// and a seed makes a run replayable.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough in `lo..hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

/// `CRASH_TEST_SEED`, or a random one.
pub fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    match std::env::var("CRASH_TEST_SEED") {
        Ok(s) => s.parse().expect("CRASH_TEST_SEED must be a u64"),
        Err(_) => std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish(),
    }
}

/// One `clawnet serve` process under tokio. Dropping it (also while a failed
/// assertion unwinds) kills it, so no hub outlives the test.
pub struct Server {
    pub child: tokio::process::Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

const CRASH_SETTINGS: [&str; 5] = [
    "limits.rest_per_agent=off",
    "limits.rest_per_address=off",
    "limits.ws_per_agent=off",
    "limits.ws_per_address=off",
    "defender.timeout_ms=5000",
];

impl Server {
    /// Start a hub on `db` with `--set` for each of `settings` and wait until
    /// it answers `/readyz`. This is the "file opens cleanly" check: after a
    /// crash the process must open the file (WAL recovery included), bind
    /// and serve again.
    pub async fn start(db: &Path, settings: &[&str], deadline: Instant) -> Self {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-level", "warn"])
            .arg("--store")
            .arg(format!("sqlite://{}", db.display()));
        // Crash tests load the hub far past the default rate limits; what
        // they check is the store, so the limits are off, and a debug hub
        // on a busy machine gets more than the defender's release time
        // limit (settings may still set either).
        for s in CRASH_SETTINGS.iter().chain(settings) {
            cmd.arg("--set").arg(s);
        }
        // The hub reads every CLAWNET_* variable; only ours may reach it.
        for k in clawnet_vars() {
            cmd.env_remove(k);
        }
        cmd.env("CLAWNET_MASTER_TOKEN", MASTER)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn clawnet serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Keep draining stdout after the address line so the hub never
        // writes into a closed pipe.
        tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix(LISTENING) {
                    if let (Some(tx), Some(url)) = (tx.take(), rest.split_whitespace().next()) {
                        let _ = tx.send(url.to_owned());
                    }
                }
            }
        });
        let wait = deadline.saturating_duration_since(Instant::now());
        let url = match tokio::time::timeout(wait, rx).await {
            Ok(Ok(url)) => url,
            Ok(Err(_)) => {
                let status = child.wait().await.expect("wait");
                panic!("the hub exited before listening ({status}): it could not open {db:?}")
            }
            Err(_) => panic!("the hub did not start listening within the test budget"),
        };
        let mut server = Self { child, url };
        let client = reqwest::Client::new();
        loop {
            let ready = client
                .get(format!("{}/readyz", server.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return server;
            }
            if let Some(status) = server.child.try_wait().expect("try_wait") {
                panic!("the hub exited before it was ready ({status}) on {db:?}");
            }
            assert!(
                Instant::now() < deadline,
                "the restarted hub never became ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then wait for the process to exit (at most `within`); its
    /// exit status.
    pub async fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running hub has a pid");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success(), "SIGTERM not delivered");
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.expect("wait"),
            Err(_) => {
                let _ = self.child.start_kill();
                panic!("the hub did not exit within {within:?} of SIGTERM");
            }
        }
    }

    /// SIGKILL (what `Child::start_kill` sends on Unix) and reap: no shutdown
    /// handler runs, no WAL checkpoint, no connection closes cleanly.
    pub async fn crash(mut self) {
        self.child.start_kill().expect("SIGKILL");
        let status = self.child.wait().await.expect("wait");
        assert_eq!(
            status.signal(),
            Some(9),
            "the hub should have died of SIGKILL, not {status}"
        );
    }
}

/// An HTTP client that gives up on a dead hub quickly.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

/// Register a worker agent (handle = id) over REST as master; its token.
pub async fn register(client: &reqwest::Client, url: &str, agent: &str) -> String {
    let res = client
        .post(format!("{url}/api/v1/agents"))
        .bearer_auth(MASTER)
        .json(&json!({"agent_id": agent, "handle": agent, "role": "worker"}))
        .send()
        .await
        .expect("register agent");
    assert_eq!(res.status(), 201, "register {agent}");
    let v: Value = res.json().await.expect("agent json");
    v["token"].as_str().expect("token").to_owned()
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Open `/ws` on the hub at `url` as `token`; `None` if that fails or takes
/// over two seconds.
pub async fn open_ws(url: &str, token: &str) -> Option<Ws> {
    let mut req = format!("{}/ws", url.replacen("http://", "ws://", 1))
        .into_client_request()
        .expect("ws request");
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    match tokio::time::timeout(
        Duration::from_secs(2),
        tokio_tungstenite::connect_async(req),
    )
    .await
    {
        Ok(Ok((ws, _))) => Some(ws),
        _ => None,
    }
}

/// A JSON frame as a text message.
pub fn text(v: &Value) -> Message {
    Message::Text(v.to_string().into())
}
