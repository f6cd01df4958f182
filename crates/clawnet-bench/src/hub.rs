//! The hub under test, run as a child process (`clawnet serve`) on a free
//! loopback port with a generated master token; ended by PID (SIGTERM, then
//! SIGKILL after 5 s) when dropped.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Value};

/// How long the hub may take to answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// SIGTERM grace before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running hub child process. Dropping it stops the process.
#[derive(Debug)]
pub struct HubProcess {
    child: Option<Child>,
    /// The hub's PID (the shell wrapper `exec`s into it, so the PID is kept).
    pub pid: u32,
    /// `127.0.0.1:<port>`.
    pub addr: SocketAddr,
    /// The master token the hub was started with.
    pub master: String,
    /// Where the hub's stdout and stderr go.
    pub log: PathBuf,
    http: reqwest::Client,
}

/// An agent created for the benchmark.
#[derive(Debug, Clone)]
pub struct BenchAgent {
    /// Its agent id.
    pub agent_id: String,
    /// Its bearer token.
    pub token: String,
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot bind a probe socket on 127.0.0.1")?;
    Ok(l.local_addr()?.port())
}

fn random_token() -> String {
    let s: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(48)
        .map(char::from)
        .collect();
    format!("bench-master-{s}")
}

/// The last `n` bytes of a file, for error messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b[b.len().saturating_sub(n)..]).into_owned(),
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Rate limits for benchmark hubs (see `bench/README.md`).
const BENCH_LIMITS: [&str; 4] = [
    "limits.rest_per_agent=10000000/10000000",
    "limits.rest_per_address=10000000/10000000",
    "limits.ws_per_agent=10000000/10000000",
    "limits.ws_per_address=10000000/10000000",
];

impl HubProcess {
    /// Start `bin serve` on a free port; `set` are extra `KEY=VALUE` config
    /// flags. Returns once `/healthz` answers 200.
    pub async fn start(bin: &Path, log: PathBuf, set: &[String]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let master = random_token();
        let out = File::create(&log)
            .with_context(|| format!("cannot create hub log {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new("sh");
        // Raise the open-files limit for the hub (1000+ sockets) as far as the
        // hard limit allows, then become the hub (same PID).
        cmd.arg("-c")
            .arg(r#"ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@""#)
            .arg("sh")
            .arg(bin)
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string());
        // Load generators send thousands of requests a second per agent and
        // from one address: the limits stay on (their cost is measured) but
        // far above the load. `set` comes after, so a run can override.
        for s in BENCH_LIMITS
            .iter()
            .copied()
            .map(str::to_owned)
            .chain(set.iter().cloned())
        {
            cmd.arg("--set").arg(s);
        }
        // Only the settings given here: no CLAWNET_* from the caller's environment.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CLAWNET_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("CLAWNET_MASTER_TOKEN", &master)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start the hub {}", bin.display()))?;
        let pid = child.id();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()?;
        let mut hub = Self {
            child: Some(child),
            pid,
            addr,
            master,
            log,
            http,
        };
        hub.wait_healthy().await?;
        Ok(hub)
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let url = format!("http://{}/healthz", self.addr);
        let t0 = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    self.child = None;
                    bail!(
                        "the hub exited during start-up ({status}); log {}:\n{}",
                        self.log.display(),
                        log_tail(&self.log, 2000)
                    );
                }
            }
            if let Ok(r) = self
                .http
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await
            {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if t0.elapsed() > START_TIMEOUT {
                bail!(
                    "the hub did not answer {url} within {START_TIMEOUT:?}; log {}:\n{}",
                    self.log.display(),
                    log_tail(&self.log, 2000)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `ws://127.0.0.1:<port>/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Create agents `<prefix>0..<prefix>{n-1}` (role worker) through REST,
    /// `parallel` requests at a time.
    pub async fn create_agents(
        &self,
        prefix: &str,
        n: usize,
        parallel: usize,
    ) -> anyhow::Result<Vec<BenchAgent>> {
        let mut out = Vec::with_capacity(n);
        let mut i = 0;
        while i < n {
            let mut set = tokio::task::JoinSet::new();
            for j in i..(i + parallel.max(1)).min(n) {
                let http = self.http.clone();
                let url = format!("http://{}/api/v1/agents", self.addr);
                let master = self.master.clone();
                let id = format!("{prefix}{j}");
                set.spawn(async move {
                    let r = http
                        .post(&url)
                        .bearer_auth(&master)
                        .json(&json!({"agent_id": id, "handle": id, "role": "worker"}))
                        .send()
                        .await
                        .with_context(|| format!("POST {url}"))?;
                    let status = r.status();
                    let body: Value = r
                        .json()
                        .await
                        .context("agent creation: response is not JSON")?;
                    if status.as_u16() != 201 {
                        bail!("creating agent {id}: HTTP {status}: {body}");
                    }
                    let token = body
                        .get("token")
                        .and_then(Value::as_str)
                        .context("agent creation: no token in the response")?
                        .to_owned();
                    Ok::<_, anyhow::Error>((
                        j,
                        BenchAgent {
                            agent_id: id,
                            token,
                        },
                    ))
                });
            }
            let mut batch = Vec::new();
            while let Some(r) = set.join_next().await {
                batch.push(r??);
            }
            batch.sort_by_key(|(j, _)| *j);
            out.extend(batch.into_iter().map(|(_, a)| a));
            i += parallel.max(1);
        }
        Ok(out)
    }

    /// Stop the process: SIGTERM, then SIGKILL after 5 s. Idempotent.
    /// Returns a description of how it ended.
    pub fn stop(&mut self) -> Option<String> {
        let mut child = self.child.take()?;
        if let Ok(Some(s)) = child.try_wait() {
            return Some(format!("had already exited ({s})"));
        }
        // `kill` the command: no libc binding needed for a signal by PID.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < STOP_GRACE {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(format!("exited on SIGTERM ({s})"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let s = child.wait().map(|s| s.to_string()).unwrap_or_default();
        Some(format!("killed with SIGKILL after {STOP_GRACE:?} ({s})"))
    }

    /// Stop without blocking the async runtime.
    pub async fn shutdown(mut self) -> Option<String> {
        tokio::task::spawn_blocking(move || self.stop())
            .await
            .ok()
            .flatten()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
