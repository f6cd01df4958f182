//! `clawnet bench store`: durable acknowledged sends per second, and the
//! send → ACK latency, on each durable store (SQLite, SQLite with
//! `synchronous=full`, PostgreSQL), for comparison with NATS JetStream's
//! file-storage stream (`../shared/bench/peers/nats`, `bench/store-compare.sh`).
//!
//! Per backend, scenario and repetition: a fresh store (a new SQLite file, or
//! a new PostgreSQL schema), a fresh `clawnet serve --set store=URL` child,
//! `--senders` agents registered by the master through REST, each creating
//! its own room (so a message is delivered once, to its sender: the store is
//! measured, not fan-out), connected over WebSocket and posting `chat.send`
//! with a unique `dedupe_key` and a ~100-byte payload to that room.
//!
//! * `closed`: each sender keeps `--window` sends unacknowledged; acked
//!   sends/s and ACK latency inside the measured window.
//! * `open`: a fixed aggregate send rate, round-robin over the senders (each
//!   `--rate`: a number, or `half` = half of this backend's closed-loop
//!   median); ACK latency from the scheduled send time.
//!
//! The load keeps running for `--drain-ms` after the window (so the window's
//! late ACKs arrive under the same load), then the hub is killed with SIGKILL
//! while sends are in flight, and the store is read directly (rusqlite /
//! tokio-postgres, not through the hub): every room must hold at least as
//! many messages as its sender received successful ACKs for, no more than it
//! sent, with `seq` 1..=count and no gap. That is the ACK-after-commit
//! guarantee: an ACKed message survives the process being killed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_postgres::NoTls;

use crate::client::{self, ReaderStats, SendShape, Source, WriterStats};
use crate::harness::{self, f, fs_type, remove_sqlite_files, sleep_until_ns, RepPlan, Summary};
use crate::hub::HubProcess;
use crate::procfs::{self, Usage};
use crate::stall::StallProbe;
use crate::stats::{over_reps, Hist, Pick};

/// How long the hub's connections get to report the kill before the readers
/// are stopped.
const AFTER_KILL: Duration = Duration::from_millis(300);

/// A durable store to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// `sqlite://FILE` (WAL, `synchronous=NORMAL`: survives a process kill).
    #[value(name = "sqlite")]
    Sqlite,
    /// `sqlite://FILE?synchronous=full` (fsync per commit: survives power loss).
    #[value(name = "sqlite-full", alias = "sqlite_full")]
    SqliteFull,
    /// `postgres://…` in a fresh schema.
    #[value(name = "postgres", alias = "postgresql", alias = "pg")]
    Postgres,
    /// `memory`: a baseline without durability (not in the defaults; no
    /// check after the kill).
    #[value(name = "memory")]
    Memory,
}

impl Backend {
    /// The name used in the result JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::SqliteFull => "sqlite-full",
            Self::Postgres => "postgres",
            Self::Memory => "memory",
        }
    }
}

/// A scenario of the store benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreScenario {
    /// Each sender keeps `--window` sends unacknowledged: throughput.
    #[value(name = "closed", alias = "closed_loop", alias = "closed-loop")]
    Closed,
    /// Fixed aggregate send rates (`--rate`): ACK latency.
    #[value(name = "open", alias = "open_loop", alias = "latency")]
    Open,
}

/// An open-loop rate: fixed, or half of the closed-loop median just measured
/// for the same backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenRate {
    /// Sends per second.
    Fixed(u64),
    /// Half of the backend's closed-loop median (acked sends/s).
    HalfClosed,
}

impl FromStr for OpenRate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "half" => Ok(Self::HalfClosed),
            n => match n.parse::<u64>() {
                Ok(0) | Err(_) => Err(format!(
                    "'{s}' is not a rate: a positive number of sends/s, or 'half'"
                )),
                Ok(r) => Ok(Self::Fixed(r)),
            },
        }
    }
}

impl std::fmt::Display for OpenRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(r) => write!(f, "{r}"),
            Self::HalfClosed => f.write_str("half"),
        }
    }
}

/// Options of `clawnet bench store`.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreBenchOptions {
    /// The `clawnet` binary to run as the hub [default: this executable].
    #[arg(long, value_name = "PATH")]
    pub hub_bin: Option<PathBuf>,
    /// Stores to measure, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [Backend::Sqlite, Backend::SqliteFull, Backend::Postgres]
    )]
    pub backends: Vec<Backend>,
    /// PostgreSQL server; each run gets a fresh schema in it, dropped
    /// afterwards. Unreachable: the backend is skipped (noted in the JSON).
    #[arg(
        long,
        env = "CLAWNET_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test",
        value_name = "URL"
    )]
    pub postgres_url: String,
    /// Sender agents, each posting to a room of its own.
    #[arg(long, default_value_t = 20)]
    pub senders: usize,
    /// Closed loop: unacknowledged `chat.send` kept in flight per sender.
    #[arg(long, default_value_t = 2)]
    pub window: usize,
    /// Open loop: aggregate send rates, comma-separated; `half` is half of the
    /// backend's closed-loop median.
    #[arg(long = "rate", value_delimiter = ',', default_values = ["16000", "half"], value_name = "RATE")]
    pub rates: Vec<OpenRate>,
    /// Scenarios to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [StoreScenario::Closed, StoreScenario::Open]
    )]
    pub scenarios: Vec<StoreScenario>,
    /// Warm-up before the measured window, ms.
    #[arg(long, default_value_t = 2000)]
    pub warmup_ms: u64,
    /// Measured window, ms.
    #[arg(long, default_value_t = 15000)]
    pub duration_ms: u64,
    /// Load kept running after the window, for its last ACKs to arrive, before
    /// the hub is killed (SIGKILL), ms.
    #[arg(long, default_value_t = 2000)]
    pub drain_ms: u64,
    /// Repetitions of every scenario (fresh store and hub each time).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Size of `payload.text` in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,
    /// Send without a `dedupe_key` (by default every send carries a unique
    /// one, as a client that retries does).
    #[arg(long)]
    pub no_dedupe_keys: bool,
    /// Extra hub configuration, passed as `clawnet serve --set KEY=VALUE`.
    #[arg(long = "hub-set", value_name = "KEY=VALUE")]
    pub hub_set: Vec<String>,
    /// Directory for the hub logs [default: <tmp>/clawnet-bench].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Directory for the SQLite files (deleted after each run; use a disk,
    /// not tmpfs) [default: <tmp>/clawnet-bench-store].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Repeat a repetition (up to this many extra times) when something
    /// outside the benchmark (and the database server) used more than
    /// `--noise-threshold-pct` of a core during its window.
    #[arg(long, default_value_t = 0)]
    pub noise_retries: usize,
    /// CPU (% of one core) used outside the hub, the clients, the database
    /// server and interrupts above which a window counts as disturbed.
    #[arg(long, default_value_t = 25.0)]
    pub noise_threshold_pct: f64,
}

impl Default for StoreBenchOptions {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            o: StoreBenchOptions,
        }
        <Wrap as clap::Parser>::parse_from(["store"]).o
    }
}

/// Run the benchmark; returns the result document (the caller prints it).
/// One human-readable line per backend, scenario and repetition goes to
/// stderr. SIGINT/SIGTERM stop the hub and end the run with an error.
pub async fn run(opts: StoreBenchOptions) -> anyhow::Result<Value> {
    crate::interrupt::until_interrupted(run_inner(opts)).await
}

/// [`run`] on a runtime of its own, for callers that are not async.
pub fn run_blocking(opts: StoreBenchOptions) -> anyhow::Result<Value> {
    crate::interrupt::block_on(run(opts))
}

#[derive(Debug)]
struct Ctx {
    opts: StoreBenchOptions,
    hub_bin: PathBuf,
    log_dir: PathBuf,
    data_dir: PathBuf,
    probe: StallProbe,
    text: Arc<str>,
    http: reqwest::Client,
    /// Numbers schemas and files apart within this process.
    seq: AtomicUsize,
}

fn check(opts: &StoreBenchOptions) -> anyhow::Result<()> {
    if opts.senders == 0 || opts.window == 0 || opts.reps == 0 || opts.duration_ms == 0 {
        bail!("--senders, --window, --reps and --duration-ms must be at least 1");
    }
    if opts.backends.is_empty() || opts.scenarios.is_empty() {
        bail!("no backend or no scenario selected");
    }
    if opts.scenarios.contains(&StoreScenario::Open) && opts.rates.is_empty() {
        bail!("the open scenario needs at least one --rate");
    }
    let need = opts.senders as u64 + 64;
    harness::check_nofile(need, "")
}

async fn run_inner(opts: StoreBenchOptions) -> anyhow::Result<Value> {
    check(&opts)?;
    let hub_bin = harness::hub_bin(&opts.hub_bin)?;
    let (log_dir, data_dir) =
        harness::log_and_data_dirs(&opts.log_dir, &opts.data_dir, "clawnet-bench-store")?;
    let ctx = Ctx {
        text: Arc::from("x".repeat(opts.payload_bytes)),
        probe: StallProbe::start(Instant::now()),
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()?,
        hub_bin,
        log_dir,
        data_dir,
        seq: AtomicUsize::new(0),
        opts,
    };
    let version = harness::hub_version(&ctx.hub_bin);

    let mut pg_env = Value::Null;
    let mut backends = Map::new();
    for b in ctx.opts.backends.clone() {
        if b == Backend::Postgres {
            match pg_info(&ctx.opts.postgres_url).await {
                Ok(v) => pg_env = v,
                Err(e) => {
                    let why = format!(
                        "PostgreSQL at {} is unreachable: {e:#}",
                        redact(&ctx.opts.postgres_url)
                    );
                    eprintln!("{}: skipped: {why}", b.name());
                    backends.insert(b.name().into(), json!({ "skipped": why }));
                    continue;
                }
            }
        }
        let r = backend(&ctx, b)
            .await
            .with_context(|| format!("backend {}", b.name()))?;
        backends.insert(b.name().into(), r);
    }

    let o = &ctx.opts;
    let mut env =
        harness::environment_with_data(&ctx.hub_bin, &version, &ctx.log_dir, &ctx.data_dir);
    if let Some(m) = env.as_object_mut() {
        m.insert("postgres".into(), pg_env);
    }
    Ok(json!({
        "system": "clawnet-store",
        "env": env,
        "config": {
            "backends": o.backends.iter().map(|b| b.name()).collect::<Vec<_>>(),
            "postgres_url": redact(&o.postgres_url),
            "senders": o.senders,
            "window": o.window,
            "inflight_total": o.senders * o.window,
            "rates": o.rates.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            "scenarios": o.scenarios.iter().map(|s| match s {
                StoreScenario::Closed => "closed",
                StoreScenario::Open => "open",
            }).collect::<Vec<_>>(),
            "warmup_ms": o.warmup_ms,
            "duration_ms": o.duration_ms,
            "drain_ms": o.drain_ms,
            "reps": o.reps,
            "payload_bytes": o.payload_bytes,
            "dedupe_keys": !o.no_dedupe_keys,
            "hub_set": o.hub_set,
            "noise_retries": o.noise_retries,
            "noise_threshold_pct": o.noise_threshold_pct,
            "end_of_run": "SIGKILL with sends in flight, then the store is read directly",
        },
        "backends": backends,
    }))
}

/// What a run offers the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Closed,
    Open(u64),
}

/// All scenarios and repetitions of one backend.
async fn backend(ctx: &Ctx, b: Backend) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let mut runs: Vec<(String, Vec<Value>)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut open_rates = Map::new();
    let mut closed_median = None;
    if o.scenarios.contains(&StoreScenario::Closed) {
        let reps = reps_of(ctx, b, Load::Closed, "closed").await?;
        let acked: Vec<&Value> = reps.iter().filter_map(|r| r.get("acked_per_sec")).collect();
        closed_median = over_reps(&acked, Pick::Median).and_then(|v| v.as_f64());
        runs.push(("closed".into(), reps));
    }
    if o.scenarios.contains(&StoreScenario::Open) {
        for rate in &o.rates {
            let (key, r) = match rate {
                OpenRate::Fixed(r) => (format!("open_{r}"), *r),
                OpenRate::HalfClosed => match closed_median {
                    Some(m) if m >= 2.0 => ("open_half".to_owned(), (m / 2.0).round() as u64),
                    _ => {
                        notes.push(
                            "open at 'half' skipped: no closed-loop median (run the closed scenario too)"
                                .into(),
                        );
                        continue;
                    }
                },
            };
            if runs.iter().any(|(k, _)| *k == key) {
                continue;
            }
            open_rates.insert(key.clone(), json!(r));
            let reps = reps_of(ctx, b, Load::Open(r), &key).await?;
            runs.push((key, reps));
        }
    }
    let Summary {
        median,
        min,
        max,
        reps,
    } = harness::summarize(runs);
    Ok(json!({
        "store": store_url_shape(ctx, b),
        "closed_median_acked_per_sec": closed_median,
        "open_rates": open_rates,
        "notes": notes,
        "median": median,
        "min": min,
        "max": max,
        "reps": reps,
    }))
}

/// Every repetition of one scenario, with the noise retries.
async fn reps_of(ctx: &Ctx, b: Backend, load: Load, key: &str) -> anyhow::Result<Vec<Value>> {
    let o = &ctx.opts;
    let plan = RepPlan {
        reps: o.reps,
        retries: o.noise_retries,
        threshold_pct: o.noise_threshold_pct,
        backend: b.name(),
        key,
    };
    harness::every_rep(
        plan,
        |rep| one(ctx, b, rep, load, key),
        |r| brief(key, r),
        |r: &Value| (f(r, &["usage", "other_cpu_pct"]) - f(r, &["db_cpu_pct"]).max(0.0)).max(0.0),
    )
    .await
}

/// One repetition of one scenario on a fresh store and hub.
async fn one(ctx: &Ctx, b: Backend, rep: usize, load: Load, key: &str) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let n = o.senders;
    let tag = format!("{}-r{rep}-{key}", b.name());
    let mut db = Db::create(ctx, b, &tag).await?;
    let mut set = o.hub_set.clone();
    set.push(format!("store={}", db.url(b)));
    let mut hub = HubProcess::start(
        &ctx.hub_bin,
        ctx.log_dir.join(format!("hub-store-{tag}.log")),
        &set,
    )
    .await?;
    let agents = hub.create_agents("s", n, 10).await?;
    let rooms: Vec<String> = (0..n).map(|i| format!("bench-{i}")).collect();
    {
        let mut set = tokio::task::JoinSet::new();
        for (a, room) in agents.iter().zip(&rooms) {
            let url = format!("http://{}/api/v1/rooms", hub.addr);
            let (http, token, room) = (ctx.http.clone(), a.token.clone(), room.clone());
            set.spawn(async move {
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({ "name": room }))
                    .send()
                    .await
                    .with_context(|| format!("POST {url}"))?;
                let status = r.status();
                if status.as_u16() != 201 {
                    let body = r.text().await.unwrap_or_default();
                    bail!("creating room {room}: HTTP {status}: {body}");
                }
                Ok::<_, anyhow::Error>(())
            });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }
    }

    let t0 = Instant::now();
    let url = hub.ws_url();
    let mut conns = Vec::with_capacity(n);
    {
        let mut set = tokio::task::JoinSet::new();
        for (i, a) in agents.iter().enumerate() {
            let (url, token) = (url.clone(), a.token.clone());
            set.spawn(async move {
                (
                    i,
                    client::connect(&url, &token, Duration::from_secs(20)).await,
                )
            });
        }
        while let Some(r) = set.join_next().await {
            let (i, c) = r?;
            let (ws, _) = c.with_context(|| format!("sender {i} could not connect"))?;
            conns.push((i, ws));
        }
        conns.sort_by_key(|(i, _)| *i);
    }
    let connect_ms = t0.elapsed().as_secs_f64() * 1000.0;

    let (start_ns, win) = harness::window(ctx.probe.epoch(), o.warmup_ms, o.duration_ms);
    let (m_start, m_end) = (win.start_ns, win.end_ns);
    let kill_ns = m_end + o.drain_ms * 1_000_000;
    let (wstop_tx, wstop) = watch::channel(false);
    let (rstop_tx, rstop) = watch::channel(false);
    let mut readers = Vec::with_capacity(n);
    let mut writers = Vec::with_capacity(n);
    let mut sems = Vec::new();
    let mut sched = Vec::new();
    for (i, ws) in conns {
        let (sink, stream) = ws.split();
        let (feed, back) = match load {
            Load::Closed => {
                let sem = Arc::new(Semaphore::new(0));
                sems.push(sem.clone());
                (Source::Window(sem.clone()), Some(sem))
            }
            Load::Open(_) => {
                let (tx, rx) = mpsc::unbounded_channel();
                sched.push(tx);
                (Source::Schedule(rx), None)
            }
        };
        readers.push(tokio::spawn(client::reader(
            stream,
            win,
            back,
            rstop.clone(),
        )));
        let shape = SendShape {
            agent: agents[i].agent_id.clone(),
            text: ctx.text.clone(),
            dedupe_keys: !o.no_dedupe_keys,
            room: Some(rooms[i].clone()),
        };
        writers.push(tokio::spawn(client::writer(
            sink,
            win,
            feed,
            shape,
            wstop.clone(),
        )));
    }

    // CPU/RSS over the measured window; PostgreSQL's own processes apart.
    let pid = hub.pid;
    let pg = b == Backend::Postgres;
    let usage = tokio::spawn(async move {
        sleep_until_ns(&win, m_start).await;
        let db0 = pg.then(|| procs_cpu("postgres"));
        let t = Instant::now();
        let u = Usage::start(pid);
        sleep_until_ns(&win, m_end).await;
        let db_pct = db0.map(|db0| {
            let db1 = procs_cpu("postgres");
            let used: f64 = db1
                .iter()
                .filter_map(|(p, c1)| db0.get(p).map(|c0| c1 - c0))
                .sum();
            100.0 * used / t.elapsed().as_secs_f64()
        });
        (u.stop().await, db_pct)
    });

    sleep_until_ns(&win, start_ns).await;
    let mut backlog_max = 0u64;
    match load {
        Load::Closed => {
            for s in &sems {
                s.add_permits(o.window);
            }
        }
        Load::Open(rate) => {
            // The schedule catches up after late ticks, so the offered rate
            // does not depend on the hub's answers; it runs until the kill.
            let total = rate * (o.warmup_ms + o.duration_ms + o.drain_ms) / 1000;
            backlog_max = harness::open_loop(&win, &sched, start_ns, rate, total, kill_ns).await;
        }
    }
    sleep_until_ns(&win, kill_ns).await;

    // Kill the hub with sends in flight.
    let early_disconnects = readers.iter().filter(|r| r.is_finished()).count();
    let hub_alive = hub.alive();
    let killed = tokio::process::Command::new("kill")
        .arg("-KILL")
        .arg(hub.pid.to_string())
        .status()
        .await
        .map(|s| s.success())
        .unwrap_or(false);
    let _ = wstop_tx.send(true);
    tokio::time::sleep(AFTER_KILL).await;
    let _ = rstop_tx.send(true);
    let mut ws_stats: Vec<WriterStats> = Vec::with_capacity(n);
    for w in writers {
        ws_stats.push(w.await?);
    }
    let mut rs_stats: Vec<ReaderStats> = Vec::with_capacity(n);
    for r in readers {
        rs_stats.push(r.await?);
    }
    let (usage, db_cpu_pct) = usage.await?;
    let stalls = ctx.probe.window(m_start, m_end, 50.0);
    // Shorter gaps too: they line up with ACK maxima of 20–40 ms.
    let stalls_25ms = ctx.probe.window(m_start, m_end, 25.0);
    let log = hub.log.clone();
    let stopped = hub.shutdown().await;

    // The store, read directly: ACKed ≤ stored ≤ sent, seq 1..=stored.
    let durability = match db
        .counts()
        .await
        .context("reading the store after the kill")?
    {
        Some(counts) => durability(&counts, &rooms, &rs_stats, &ws_stats, killed),
        None => json!({ "killed_with_sigkill": killed, "ok": null,
                        "note": "memory store: nothing survives the kill, nothing to check" }),
    };
    db.cleanup().await;

    let secs = o.duration_ms as f64 / 1000.0;
    let sum_w = |f: fn(&WriterStats) -> u64| ws_stats.iter().map(f).sum::<u64>();
    let sum_r = |f: fn(&ReaderStats) -> u64| rs_stats.iter().map(f).sum::<u64>();
    let mut lat = Hist::default();
    let mut ack_lat = Hist::default();
    for r in &rs_stats {
        lat.merge(&r.lat);
        ack_lat.merge(&r.ack_lat);
    }
    let sent_in_window = sum_w(|w| w.sent_in_window);
    let write_errors: Vec<Value> = ws_stats
        .iter()
        .enumerate()
        .filter_map(|(i, w)| {
            w.error
                .as_ref()
                .map(|e| json!({"sender": agents[i].agent_id, "error": e}))
        })
        .collect();
    Ok(json!({
        "backend": b.name(),
        "senders": n,
        "window": (load == Load::Closed).then_some(o.window),
        "inflight_total": (load == Load::Closed).then_some(o.window * n),
        "offered_rate": match load { Load::Open(r) => Some(r), Load::Closed => None },
        "connect_ms": connect_ms,
        "sends_per_sec": sent_in_window as f64 / secs,
        "acked_per_sec": sum_r(|r| r.acks_in_window) as f64 / secs,
        "deliveries_per_sec": sum_r(|r| r.recv_in_window) as f64 / secs,
        "sent_in_window": sent_in_window,
        // Sends of the window whose ACK did not come before the kill: their
        // latency is missing from ack_latency_ms (which is then a lower bound).
        "window_sends_without_ok_ack": sent_in_window.saturating_sub(ack_lat.len()),
        "ack_errors": sum_r(|r| r.ack_errors),
        "first_ack_error": rs_stats.iter().find_map(|r| r.first_error.clone()),
        "ack_latency_ms": ack_lat.stats(),
        "delivery_latency_ms": lat.stats(),
        "max_schedule_backlog_msgs": backlog_max,
        "disconnects_before_kill": early_disconnects,
        "write_errors_count": write_errors.len(),
        "write_errors": write_errors.into_iter().take(5).collect::<Vec<_>>(),
        "usage": usage,
        "db_cpu_pct": db_cpu_pct,
        "stalls": stalls,
        "stalls_25ms": stalls_25ms,
        "durability": durability,
        "hub_alive_before_kill": hub_alive,
        "hub_stop": stopped,
        "hub_log": log.display().to_string(),
    }))
}

/// The ACK-after-commit check of one run from the messages per room found in
/// the store after the kill: (count, highest seq).
fn durability(
    counts: &BTreeMap<String, (u64, u64)>,
    rooms: &[String],
    rs_stats: &[ReaderStats],
    ws_stats: &[WriterStats],
    killed: bool,
) -> Value {
    let mut acked_ok = 0u64;
    let mut stored = 0u64;
    let mut lost_acked = 0u64;
    let mut seq_gaps = 0u64;
    let mut beyond_sent = 0u64;
    let mut rooms_missing = 0u64;
    let mut examples = Vec::new();
    for (i, room) in rooms.iter().enumerate() {
        let ok = rs_stats[i].acks.saturating_sub(rs_stats[i].ack_errors);
        let sent = ws_stats[i].sent;
        let (count, max_seq) = match counts.get(room) {
            Some(c) => *c,
            None => {
                rooms_missing += 1;
                (0, 0)
            }
        };
        acked_ok += ok;
        stored += count;
        let lost = ok.saturating_sub(count);
        let gaps = max_seq.saturating_sub(count);
        let beyond = count.saturating_sub(sent);
        lost_acked += lost;
        seq_gaps += gaps;
        beyond_sent += beyond;
        if (lost > 0 || gaps > 0 || beyond > 0) && examples.len() < 5 {
            examples.push(json!({
                "room": room, "sent": sent, "acked_ok": ok, "stored": count, "max_seq": max_seq,
            }));
        }
    }
    let other_rooms: Vec<&String> = counts.keys().filter(|k| !rooms.contains(*k)).collect();
    let sent_total: u64 = ws_stats.iter().map(|w| w.sent).sum();
    json!({
        "killed_with_sigkill": killed,
        "sent": sent_total,
        "acked_ok": acked_ok,
        "stored": stored,
        "in_flight_at_kill": sent_total.saturating_sub(rs_stats.iter().map(|r| r.acks).sum::<u64>()),
        "stored_not_acked": stored.saturating_sub(acked_ok),
        "lost_acked": lost_acked,
        "seq_gaps": seq_gaps,
        "stored_beyond_sent": beyond_sent,
        "rooms_missing": rooms_missing,
        "other_rooms_with_messages": other_rooms,
        "violations": examples,
        "ok": killed && lost_acked == 0 && seq_gaps == 0 && beyond_sent == 0 && rooms_missing == 0,
    })
}

/// The store of one run: a fresh SQLite file or PostgreSQL schema, removed
/// by [`Db::cleanup`] (or, failing that, on drop).
#[derive(Debug)]
enum Db {
    Memory,
    Sqlite {
        path: PathBuf,
    },
    Postgres {
        server: String,
        schema: String,
        dropped: bool,
    },
}

impl Db {
    async fn create(ctx: &Ctx, b: Backend, tag: &str) -> anyhow::Result<Self> {
        let n = ctx.seq.fetch_add(1, Ordering::SeqCst);
        match b {
            Backend::Memory => Ok(Self::Memory),
            Backend::Sqlite | Backend::SqliteFull => {
                let path = ctx
                    .data_dir
                    .join(format!("store-{}-{n}-{tag}.db", std::process::id()));
                remove_sqlite_files(&path);
                Ok(Self::Sqlite { path })
            }
            Backend::Postgres => {
                let schema = format!("cnbench_{}_{n}", std::process::id());
                let c = pg_connect(&ctx.opts.postgres_url).await?;
                c.batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
                ))
                .await
                .with_context(|| format!("creating schema {schema}"))?;
                Ok(Self::Postgres {
                    server: ctx.opts.postgres_url.clone(),
                    schema,
                    dropped: false,
                })
            }
        }
    }

    fn url(&self, b: Backend) -> String {
        match self {
            Self::Memory => "memory".into(),
            Self::Sqlite { path } => {
                let full = if b == Backend::SqliteFull {
                    "?synchronous=full"
                } else {
                    ""
                };
                format!("sqlite://{}{full}", path.display())
            }
            Self::Postgres { server, schema, .. } => {
                let sep = if server.contains('?') { '&' } else { '?' };
                format!("{server}{sep}options=-c%20search_path%3D{schema}")
            }
        }
    }

    /// Messages per room: (count, highest seq); `None` for the memory store.
    async fn counts(&self) -> anyhow::Result<Option<BTreeMap<String, (u64, u64)>>> {
        match self {
            Self::Memory => Ok(None),
            Self::Sqlite { path } => {
                let path = path.clone();
                tokio::task::spawn_blocking(
                    move || -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
                        let c = rusqlite::Connection::open(&path)
                            .with_context(|| format!("opening {}", path.display()))?;
                        let mut st = c.prepare(
                        "SELECT room, count(*), coalesce(max(seq), 0) FROM message_log GROUP BY room",
                    )?;
                        let rows = st.query_map([], |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, i64>(1)?,
                                r.get::<_, i64>(2)?,
                            ))
                        })?;
                        let mut m = BTreeMap::new();
                        for row in rows {
                            let (room, n, max) = row?;
                            m.insert(room, (n.max(0) as u64, max.max(0) as u64));
                        }
                        Ok(m)
                    },
                )
                .await?
                .map(Some)
            }
            Self::Postgres { server, schema, .. } => {
                let c = pg_connect(server).await?;
                let rows = c
                    .query(
                        &format!(
                            "SELECT room, count(*)::BIGINT, coalesce(max(seq), 0)::BIGINT \
                             FROM {schema}.messages GROUP BY room"
                        ),
                        &[],
                    )
                    .await?;
                let mut m = BTreeMap::new();
                for row in rows {
                    let (room, n, max): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
                    m.insert(room, (n.max(0) as u64, max.max(0) as u64));
                }
                Ok(Some(m))
            }
        }
    }

    async fn cleanup(&mut self) {
        match self {
            Self::Memory => {}
            Self::Sqlite { path } => {
                remove_sqlite_files(path);
            }
            Self::Postgres {
                server,
                schema,
                dropped,
            } => {
                if let Ok(c) = pg_connect(server).await {
                    if c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .await
                        .is_ok()
                    {
                        *dropped = true;
                    }
                }
            }
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        match self {
            Self::Memory => {}
            Self::Sqlite { path } => {
                remove_sqlite_files(path);
            }
            Self::Postgres {
                server,
                schema,
                dropped: false,
            } => {
                // Maybe on a runtime thread: a thread with its own runtime.
                let (server, schema) = (server.clone(), schema.clone());
                let _ = std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    rt.block_on(async {
                        if let Ok(c) = pg_connect(&server).await {
                            let _ = c
                                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                                .await;
                        }
                    });
                })
                .join();
            }
            Self::Postgres { .. } => {}
        }
    }
}

async fn pg_connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) =
        tokio::time::timeout(Duration::from_secs(5), tokio_postgres::connect(url, NoTls))
            .await
            .map_err(|_| anyhow!("no answer within 5 s"))??;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Server version and durability settings, or why the server is unreachable.
async fn pg_info(url: &str) -> anyhow::Result<Value> {
    let c = pg_connect(url).await?;
    let row = c
        .query_one(
            "SELECT current_setting('server_version'), current_setting('synchronous_commit'), \
             current_setting('fsync'), current_setting('wal_sync_method')",
            &[],
        )
        .await?;
    // Readable by superusers and pg_read_all_settings only.
    let data_dir: Option<String> = c
        .query_one("SELECT current_setting('data_directory')", &[])
        .await
        .ok()
        .map(|r| r.get(0));
    Ok(json!({
        "server_version": row.get::<_, String>(0),
        "synchronous_commit": row.get::<_, String>(1),
        "fsync": row.get::<_, String>(2),
        "wal_sync_method": row.get::<_, String>(3),
        "data_directory": data_dir,
        "data_directory_fs": data_dir.as_deref().map(|d| fs_type(Path::new(d))),
    }))
}

/// `scheme://user:***@…` for a URL with a password.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn store_url_shape(ctx: &Ctx, b: Backend) -> String {
    match b {
        Backend::Memory => "memory".into(),
        Backend::Sqlite => format!("sqlite://{}/store-*.db", ctx.data_dir.display()),
        Backend::SqliteFull => format!(
            "sqlite://{}/store-*.db?synchronous=full",
            ctx.data_dir.display()
        ),
        Backend::Postgres => {
            let u = redact(&ctx.opts.postgres_url);
            let sep = if u.contains('?') { '&' } else { '?' };
            format!("{u}{sep}options=-c%20search_path%3Dcnbench_*")
        }
    }
}

/// CPU seconds of every process whose `comm` is `name`, by PID.
fn procs_cpu(name: &str) -> std::collections::HashMap<u32, f64> {
    let mut m = std::collections::HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim_end() == name {
                if let Some(c) = procfs::cpu_secs(&pid.to_string()) {
                    m.insert(pid, c);
                }
            }
        }
    }
    m
}

/// One line per backend, scenario and repetition, for stderr.
fn brief(key: &str, r: &Value) -> String {
    let db = f(r, &["db_cpu_pct"]);
    format!(
        "{key}{}: acked/s={:.0} ack p50={:.2} p90={:.2} p99={:.2} max={:.1}ms ackErr={} \
         unackedWindowSends={} hubCPU={:.0}%{} lgCPU={:.0}% outsideCPU={:.0}% hubRSS={:.1}MiB \
         kill: acked={} stored={} lost={} gaps={} ok={} vmStalls>=50ms={} (max {:.0}ms)",
        match r.get("offered_rate").and_then(Value::as_u64) {
            Some(rate) => format!(" @{rate}/s"),
            None => format!(" w={}", f(r, &["window"])),
        },
        f(r, &["acked_per_sec"]),
        f(r, &["ack_latency_ms", "p50"]),
        f(r, &["ack_latency_ms", "p90"]),
        f(r, &["ack_latency_ms", "p99"]),
        f(r, &["ack_latency_ms", "max"]),
        f(r, &["ack_errors"]),
        f(r, &["window_sends_without_ok_ack"]),
        f(r, &["usage", "hub_cpu_pct"]),
        if db.is_finite() {
            format!(" dbCPU={db:.0}%")
        } else {
            String::new()
        },
        f(r, &["usage", "loadgen_cpu_pct"]),
        (f(r, &["usage", "other_cpu_pct"]) - if db.is_finite() { db } else { 0.0 }).max(0.0),
        f(r, &["usage", "hub_peak_rss_kib"]) / 1024.0,
        f(r, &["durability", "acked_ok"]),
        f(r, &["durability", "stored"]),
        f(r, &["durability", "lost_acked"]),
        f(r, &["durability", "seq_gaps"]),
        r.pointer("/durability/ok")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        f(r, &["stalls", "count"]),
        f(r, &["stalls", "max_ms"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        o: StoreBenchOptions,
    }

    #[test]
    fn defaults() {
        let o = <Wrap as clap::Parser>::parse_from(["store"]).o;
        assert_eq!(
            o.backends,
            vec![Backend::Sqlite, Backend::SqliteFull, Backend::Postgres]
        );
        assert_eq!(o.senders, 20);
        assert_eq!(o.window, 2);
        assert_eq!(o.rates, vec![OpenRate::Fixed(16000), OpenRate::HalfClosed]);
        assert_eq!(
            o.scenarios,
            vec![StoreScenario::Closed, StoreScenario::Open]
        );
        assert_eq!((o.warmup_ms, o.duration_ms, o.reps), (2000, 15000, 3));
    }

    #[test]
    fn flags_parse() {
        let o = <Wrap as clap::Parser>::parse_from([
            "store",
            "--backends",
            "sqlite-full,postgres",
            "--rate",
            "16000",
            "--window",
            "4",
        ])
        .o;
        assert_eq!(o.backends, vec![Backend::SqliteFull, Backend::Postgres]);
        assert_eq!(o.rates, vec![OpenRate::Fixed(16000)]);
        assert_eq!(o.window, 4);
        assert!("0".parse::<OpenRate>().is_err());
        assert!("fast".parse::<OpenRate>().is_err());
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("postgres://u:pw@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(redact("postgres://u@h/d"), "postgres://u@h/d");
    }
}
