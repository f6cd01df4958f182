//! `clawnet bench tasks`: task throughput (dispatch → worker → result →
//! `succeeded`) and dispatch → start latency, for comparison with BullMQ on
//! Redis (`../shared/bench/peers/bullmq`, `bench/tasks-compare.sh`).
//!
//! Per backend, scenario and repetition: a fresh store (a new SQLite file, or
//! `memory`), a fresh `clawnet serve --set store=URL` child with the dispatch
//! limits off (`tasks.dispatches_per_minute=0`, `tasks.max_pending=0`),
//! `--workers` worker agents and `--dispatchers` dispatcher agents registered
//! by the master through REST. Workers connect over WebSocket with
//! `{"worker": true, "concurrency": C}` and answer every `task.dispatch` at
//! once with `task.result {"ok": true}` (no-op jobs, like the peer's
//! processor); dispatchers send pipelined `task.dispatch` requests, round-robin
//! over the workers, payload `{"text": 100 × "x", "t": <send time>}`.
//!
//! * `closed_c<C>`: end to end. At most `--inflight` tasks are dispatched and
//!   not yet `succeeded` (the worker's `task.result` response gives the slot
//!   back); completed tasks/s inside the measured window.
//! * `drain_c<C>`: the peer's scenario. `--drain-total` tasks are dispatched
//!   first (`--prefill-inflight` unacknowledged dispatches; the dispatchers
//!   then disconnect), then the workers connect: completions/s from the first
//!   completion until all are done or `--drain-max-ms` have passed.
//! * `open_<R>`: a fixed dispatch rate (open loop, 1 ms ticks that catch up),
//!   workers with `--open-concurrency`: dispatch → start (the worker receives
//!   `task.dispatch`) p50/p90/p99/max, and dispatch → ACK, → `succeeded`
//!   (the `task.result` response) and → the dispatcher's `task.updated`
//!   `succeeded` event (the peer's "completed event").
//!
//! All clients live in this process: every time stamp is nanoseconds since
//! one `Instant`. After each run the hub is stopped (SIGTERM) and, for
//! SQLite, the `tasks` table is read directly: every task a worker saw
//! `succeeded` must be stored as `succeeded`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Source, Window, WriterStats, Ws};
use crate::harness::{self, f, remove_sqlite_files, sleep_until_ns, RepPlan, Summary};
use crate::hub::{BenchAgent, HubProcess};
use crate::procfs::Usage;
use crate::stall::StallProbe;
use crate::stats::Hist;
use crate::wswrite::{self, Next};

/// Most `task.result` frames written per flush.
const RESULT_BATCH: usize = 256;
/// How long the drain scenario waits for the first completion.
const FIRST_COMPLETION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the prefill of the drain scenario may take.
const PREFILL_TIMEOUT: Duration = Duration::from_secs(900);
/// `task.updated` frames start with this (`event_frame` in clawnet-core):
/// workers count them without parsing.
const UPDATED_PREFIX: &str = r#"{"type":"event","event":"task.updated""#;
/// The hub settings every run gets: no dispatch limits.
const NO_LIMITS: [&str; 2] = ["tasks.dispatches_per_minute=0", "tasks.max_pending=0"];

/// A store to run the tasks on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskBackend {
    /// `sqlite://FILE` (WAL, `synchronous=NORMAL`: a committed transition
    /// survives a process kill).
    #[value(name = "sqlite")]
    Sqlite,
    /// `sqlite://FILE?synchronous=full` (fsync per group commit).
    #[value(name = "sqlite-full", alias = "sqlite_full")]
    SqliteFull,
    /// `memory`: a baseline without durability.
    #[value(name = "memory")]
    Memory,
}

impl TaskBackend {
    /// The name used in the result JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::SqliteFull => "sqlite-full",
            Self::Memory => "memory",
        }
    }
}

/// A scenario of the task benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskScenario {
    /// Dispatch and process at once, `--inflight` tasks not yet succeeded:
    /// end-to-end tasks/s.
    #[value(
        name = "closed",
        alias = "closed_loop",
        alias = "closed-loop",
        alias = "e2e"
    )]
    Closed,
    /// Prefill `--drain-total` tasks, then connect the workers: tasks/s
    /// (BullMQ's processing scenario).
    #[value(name = "drain")]
    Drain,
    /// Fixed dispatch rates (`--rate`): dispatch → start latency.
    #[value(name = "open", alias = "open_loop", alias = "latency")]
    Open,
}

impl TaskScenario {
    fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Drain => "drain",
            Self::Open => "open",
        }
    }
}

/// Options of `clawnet bench tasks`.
#[derive(Debug, Clone, clap::Args)]
pub struct TasksBenchOptions {
    /// The `clawnet` binary to run as the hub [default: this executable].
    #[arg(long, value_name = "PATH")]
    pub hub_bin: Option<PathBuf>,
    /// Stores to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [TaskBackend::Sqlite])]
    pub backends: Vec<TaskBackend>,
    /// Worker agents, one WebSocket connection each.
    #[arg(long, default_value_t = 20)]
    pub workers: usize,
    /// Dispatcher agents, one WebSocket connection each.
    #[arg(long, default_value_t = 4)]
    pub dispatchers: usize,
    /// Closed loop and drain: tasks each worker connection runs at once
    /// (`connect` `concurrency`), comma-separated; one run per value.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 10, 50])]
    pub concurrency: Vec<usize>,
    /// Closed loop: tasks dispatched and not yet succeeded, in total
    /// [default (0): max(200, 2 × workers × concurrency)].
    #[arg(long, default_value_t = 0)]
    pub inflight: usize,
    /// Open loop: aggregate dispatch rates, comma-separated.
    #[arg(long = "rate", value_delimiter = ',', default_values_t = [500u64], value_name = "RATE")]
    pub rates: Vec<u64>,
    /// Open loop: worker connection concurrency (the peer's
    /// `LIVE_CONCURRENCY`).
    #[arg(long, default_value_t = 10)]
    pub open_concurrency: usize,
    /// Drain: tasks dispatched before the workers connect (the peer's
    /// `DRAIN_TOTAL`).
    #[arg(long, default_value_t = 100_000)]
    pub drain_total: u64,
    /// Drain: longest measured time from the first completion, ms (the
    /// peer's `DRAIN_MAX_MS`).
    #[arg(long, default_value_t = 15_000)]
    pub drain_max_ms: u64,
    /// Drain: unacknowledged dispatches while prefilling (the peer's
    /// `ADD_CONCURRENCY` for `queue.add`).
    #[arg(long, default_value_t = 50)]
    pub prefill_inflight: usize,
    /// Scenarios to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [TaskScenario::Closed, TaskScenario::Drain, TaskScenario::Open]
    )]
    pub scenarios: Vec<TaskScenario>,
    /// Closed and open loops: warm-up before the measured window, ms.
    #[arg(long, default_value_t = 2000)]
    pub warmup_ms: u64,
    /// Closed and open loops: measured window, ms.
    #[arg(long, default_value_t = 15000)]
    pub duration_ms: u64,
    /// Closed and open loops: time after the last dispatch for the window's
    /// tasks to finish, ms.
    #[arg(long, default_value_t = 2000)]
    pub tail_ms: u64,
    /// Repetitions of every scenario (fresh store and hub each time).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Size of `payload.text` in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,
    /// Extra hub configuration, passed as `clawnet serve --set KEY=VALUE`
    /// (after the benchmark's own, so it can override them).
    #[arg(long = "hub-set", value_name = "KEY=VALUE")]
    pub hub_set: Vec<String>,
    /// Directory for the hub logs [default: <tmp>/clawnet-bench].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Directory for the SQLite files (deleted after each run; use a disk,
    /// not tmpfs) [default: <tmp>/clawnet-bench-tasks].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Repeat a repetition (up to this many extra times) when something
    /// outside the benchmark used more than `--noise-threshold-pct` of a core
    /// during its window.
    #[arg(long, default_value_t = 0)]
    pub noise_retries: usize,
    /// CPU (% of one core) used outside the hub, the clients and interrupts
    /// above which a window counts as disturbed.
    #[arg(long, default_value_t = 25.0)]
    pub noise_threshold_pct: f64,
}

impl Default for TasksBenchOptions {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            o: TasksBenchOptions,
        }
        <Wrap as clap::Parser>::parse_from(["tasks"]).o
    }
}

impl TasksBenchOptions {
    /// Closed-loop tasks in flight at worker concurrency `c`.
    pub fn inflight_for(&self, c: usize) -> usize {
        if self.inflight > 0 {
            self.inflight
        } else {
            (2 * self.workers * c).max(200)
        }
    }
}

/// Run the benchmark; returns the result document (the caller prints it).
/// One human-readable line per backend, scenario and repetition goes to
/// stderr. SIGINT/SIGTERM stop the hub and end the run with an error.
pub async fn run(opts: TasksBenchOptions) -> anyhow::Result<Value> {
    crate::interrupt::until_interrupted(run_inner(opts)).await
}

/// [`run`] on a runtime of its own, for callers that are not async.
pub fn run_blocking(opts: TasksBenchOptions) -> anyhow::Result<Value> {
    crate::interrupt::block_on(run(opts))
}

#[derive(Debug)]
struct Ctx {
    opts: TasksBenchOptions,
    hub_bin: PathBuf,
    log_dir: PathBuf,
    data_dir: PathBuf,
    probe: StallProbe,
    text: Arc<str>,
    /// Numbers files apart within this process.
    seq: AtomicUsize,
}

fn check(opts: &TasksBenchOptions) -> anyhow::Result<()> {
    if opts.workers == 0 || opts.dispatchers == 0 || opts.reps == 0 || opts.duration_ms == 0 {
        bail!("--workers, --dispatchers, --reps and --duration-ms must be at least 1");
    }
    if opts.backends.is_empty() || opts.scenarios.is_empty() {
        bail!("no backend or no scenario selected");
    }
    let loops = opts.scenarios.contains(&TaskScenario::Closed)
        || opts.scenarios.contains(&TaskScenario::Drain);
    if loops && opts.concurrency.is_empty() {
        bail!("the closed and drain scenarios need at least one --concurrency");
    }
    let mut all = opts.concurrency.clone();
    all.push(opts.open_concurrency);
    if all.iter().any(|c| !(1..=1024).contains(c)) {
        bail!("--concurrency and --open-concurrency must be 1..=1024 (the hub's limit)");
    }
    if opts.scenarios.contains(&TaskScenario::Open)
        && (opts.rates.is_empty() || opts.rates.contains(&0))
    {
        bail!("the open scenario needs positive --rate values");
    }
    if opts.scenarios.contains(&TaskScenario::Drain)
        && (opts.drain_total == 0 || opts.drain_max_ms == 0 || opts.prefill_inflight == 0)
    {
        bail!("--drain-total, --drain-max-ms and --prefill-inflight must be at least 1");
    }
    let need = (opts.workers + opts.dispatchers) as u64 + 64;
    harness::check_nofile(need, "")
}

async fn run_inner(opts: TasksBenchOptions) -> anyhow::Result<Value> {
    check(&opts)?;
    let hub_bin = harness::hub_bin(&opts.hub_bin)?;
    let (log_dir, data_dir) =
        harness::log_and_data_dirs(&opts.log_dir, &opts.data_dir, "clawnet-bench-tasks")?;
    let ctx = Ctx {
        text: Arc::from("x".repeat(opts.payload_bytes)),
        probe: StallProbe::start(Instant::now()),
        hub_bin,
        log_dir,
        data_dir,
        seq: AtomicUsize::new(0),
        opts,
    };
    let version = harness::hub_version(&ctx.hub_bin);

    let mut backends = Map::new();
    for b in ctx.opts.backends.clone() {
        let r = backend(&ctx, b)
            .await
            .with_context(|| format!("backend {}", b.name()))?;
        backends.insert(b.name().into(), r);
    }

    let o = &ctx.opts;
    let env = harness::environment_with_data(&ctx.hub_bin, &version, &ctx.log_dir, &ctx.data_dir);
    let mut hub_set: Vec<String> = NO_LIMITS.iter().map(|s| (*s).to_owned()).collect();
    hub_set.extend(o.hub_set.iter().cloned());
    Ok(json!({
        "system": "clawnet-tasks",
        "env": env,
        "config": {
            "backends": o.backends.iter().map(|b| b.name()).collect::<Vec<_>>(),
            "workers": o.workers,
            "dispatchers": o.dispatchers,
            "concurrency": o.concurrency,
            "inflight": o.concurrency.iter().map(|c| o.inflight_for(*c)).collect::<Vec<_>>(),
            "rates": o.rates,
            "open_concurrency": o.open_concurrency,
            "drain_total": o.drain_total,
            "drain_max_ms": o.drain_max_ms,
            "prefill_inflight": o.prefill_inflight,
            "scenarios": o.scenarios.iter().map(|s| s.name()).collect::<Vec<_>>(),
            "warmup_ms": o.warmup_ms,
            "duration_ms": o.duration_ms,
            "tail_ms": o.tail_ms,
            "reps": o.reps,
            "payload_bytes": o.payload_bytes,
            "hub_set": hub_set,
            "noise_retries": o.noise_retries,
            "noise_threshold_pct": o.noise_threshold_pct,
            "worker": "answers every task.dispatch at once with task.result {ok: true} (no-op)",
        },
        "backends": backends,
    }))
}

/// What a run offers the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// End to end, workers at this concurrency.
    Closed(usize),
    /// Prefilled queue, workers at this concurrency.
    Drain(usize),
    /// Fixed dispatch rate.
    Open(u64),
}

/// All scenarios and repetitions of one backend.
async fn backend(ctx: &Ctx, b: TaskBackend) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let mut runs: Vec<(String, Vec<Value>)> = Vec::new();
    for s in [
        TaskScenario::Closed,
        TaskScenario::Drain,
        TaskScenario::Open,
    ] {
        if !o.scenarios.contains(&s) {
            continue;
        }
        let loads: Vec<(String, Load)> = match s {
            TaskScenario::Closed => o
                .concurrency
                .iter()
                .map(|c| (format!("closed_c{c}"), Load::Closed(*c)))
                .collect(),
            TaskScenario::Drain => o
                .concurrency
                .iter()
                .map(|c| (format!("drain_c{c}"), Load::Drain(*c)))
                .collect(),
            TaskScenario::Open => o
                .rates
                .iter()
                .map(|r| (format!("open_{r}"), Load::Open(*r)))
                .collect(),
        };
        for (key, load) in loads {
            if runs.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let reps = reps_of(ctx, b, load, &key).await?;
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
        "median": median,
        "min": min,
        "max": max,
        "reps": reps,
    }))
}

/// Every repetition of one scenario, with the noise retries.
async fn reps_of(ctx: &Ctx, b: TaskBackend, load: Load, key: &str) -> anyhow::Result<Vec<Value>> {
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
        |r: &Value| f(r, &["usage", "other_cpu_pct"]).max(0.0),
    )
    .await
}

// ---------------------------------------------------------------------------
// Frames read by the clients.

/// The fields of a server frame the benchmark reads; the rest is skipped.
#[derive(Debug, Deserialize)]
struct In<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    id: Option<i64>,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default, borrow)]
    event: Option<&'a str>,
    #[serde(default, borrow)]
    data: Option<EvData<'a>>,
    #[serde(default, borrow)]
    result: Option<ResData<'a>>,
}

/// `data` of `task.dispatch`, `task.updated` and `disconnecting`.
#[derive(Debug, Deserialize)]
struct EvData<'a> {
    #[serde(default, borrow)]
    task: Option<TaskLite<'a>>,
    #[serde(default, borrow)]
    lease_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    reason: Option<String>,
}

/// `result` of `task.dispatch` (`{"duplicate", "task"}`) and of
/// `task.result` (the task itself).
#[derive(Debug, Deserialize)]
struct ResData<'a> {
    #[serde(default, borrow)]
    task: Option<TaskLite<'a>>,
    #[serde(default, borrow)]
    state: Option<&'a str>,
    #[serde(default)]
    payload: Option<PayloadT>,
}

#[derive(Debug, Deserialize)]
struct TaskLite<'a> {
    #[serde(default, borrow)]
    task_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    state: Option<&'a str>,
    #[serde(default)]
    payload: Option<PayloadT>,
}

#[derive(Debug, Deserialize)]
struct PayloadT {
    #[serde(default)]
    t: Option<u64>,
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A message read from a socket, or why there was none.
#[derive(Debug)]
enum Read {
    Text(tokio_tungstenite::tungstenite::Utf8Bytes),
    Skip,
    End,
}

fn read_frame(
    m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    disconnect: &mut Option<String>,
) -> Read {
    match m {
        Some(Ok(Message::Text(t))) => Read::Text(t),
        Some(Ok(Message::Close(c))) => {
            let why = c.map(|c| format!("close {} {}", u16::from(c.code), c.reason.as_str()));
            if disconnect.is_none() {
                *disconnect = Some(why.unwrap_or_else(|| "close".into()));
            }
            Read::Skip // tungstenite answers the close; the stream ends next
        }
        Some(Ok(_)) => Read::Skip,
        Some(Err(e)) => {
            if disconnect.is_none() {
                *disconnect = Some(format!("error: {e}"));
            }
            Read::End
        }
        None => {
            if disconnect.is_none() {
                *disconnect = Some("closed".into());
            }
            Read::End
        }
    }
}

/// The next text frame, or `None` at `stop` or when the connection ends
/// (why: in `disconnect`).
async fn next_text(
    stream: &mut SplitStream<Ws>,
    stop: &mut watch::Receiver<bool>,
    disconnect: &mut Option<String>,
) -> Option<tokio_tungstenite::tungstenite::Utf8Bytes> {
    loop {
        let m = tokio::select! {
            biased;
            _ = stop.changed() => return None,
            m = stream.next() => m,
        };
        match read_frame(m, disconnect) {
            Read::Text(t) => return Some(t),
            Read::Skip => {}
            Read::End => return None,
        }
    }
}

// ---------------------------------------------------------------------------
// Workers.

/// Drain progress shared by the workers: the peer's rule, completions from
/// the first one until `total` or `max_ns` after it.
#[derive(Debug)]
struct DrainProgress {
    total: u64,
    max_ns: u64,
    done: AtomicU64,
    /// Time of the first completion (0: none yet).
    first: AtomicU64,
    last: AtomicU64,
}

impl DrainProgress {
    fn complete(&self, t: u64) {
        let t = t.max(1);
        let first = match self
            .first
            .compare_exchange(0, t, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => t,
            Err(f) => f,
        };
        if t <= first + self.max_ns {
            self.done.fetch_add(1, Ordering::SeqCst);
            self.last.fetch_max(t, Ordering::SeqCst);
        }
    }
}

/// What a worker's reader shares with the run.
#[derive(Debug, Clone, Default)]
struct WorkerShared {
    /// Closed loop: a slot back per `task.result` response.
    release: Option<Arc<Semaphore>>,
    /// Drain: completions.
    drain: Option<Arc<DrainProgress>>,
}

/// What one worker connection saw.
#[derive(Debug, Default)]
struct WorkerStats {
    /// `task.dispatch` events received.
    pickups: u64,
    pickups_in_window: u64,
    /// Dispatch → `task.dispatch` received, for tasks dispatched in the window.
    start_lat: Hist,
    /// `task.result` requests written (via the writer).
    results_sent: u64,
    /// `task.result` responses: ok with state `succeeded`.
    results_ok: u64,
    results_ok_in_window: u64,
    /// Dispatch → `task.result` response, for tasks dispatched in the window.
    succeeded_lat: Hist,
    result_errors: u64,
    first_error: Option<String>,
    /// Most leases held at once (dispatches not yet answered by the hub).
    max_outstanding: u64,
    updated_events: u64,
    other_frames: u64,
    unreadable: u64,
    disconnect: Option<String>,
}

async fn worker_reader(
    mut stream: SplitStream<Ws>,
    win: Window,
    out: mpsc::UnboundedSender<String>,
    shared: WorkerShared,
    mut stop: watch::Receiver<bool>,
) -> WorkerStats {
    let mut s = WorkerStats::default();
    let mut next_id: u64 = 2;
    let mut responses = 0u64;
    loop {
        let Some(text) = next_text(&mut stream, &mut stop, &mut s.disconnect).await else {
            break;
        };
        let raw = text.as_str();
        if raw.starts_with(UPDATED_PREFIX) {
            s.updated_events += 1;
            continue;
        }
        let rt = win.now_ns();
        let f: In<'_> = match serde_json::from_str(raw) {
            Ok(f) => f,
            Err(_) => {
                s.unreadable += 1;
                continue;
            }
        };
        match (f.kind, f.event) {
            ("event", Some("task.dispatch")) => {
                let Some(d) = f.data else {
                    s.unreadable += 1;
                    continue;
                };
                let (Some(task), Some(lease)) = (d.task, d.lease_id) else {
                    s.unreadable += 1;
                    continue;
                };
                let Some(task_id) = task.task_id else {
                    s.unreadable += 1;
                    continue;
                };
                s.pickups += 1;
                if win.contains(rt) {
                    s.pickups_in_window += 1;
                }
                if let Some(t) = task.payload.and_then(|p| p.t) {
                    if win.contains(t) {
                        s.start_lat.record_ns(rt.saturating_sub(t));
                    }
                }
                let id = next_id;
                next_id += 1;
                let frame = format!(
                    r#"{{"type":"req","id":{id},"method":"task.result","params":{{"task_id":{},"lease_id":{},"ok":true}}}}"#,
                    json_str(&task_id),
                    json_str(&lease)
                );
                if out.send(frame).is_err() {
                    s.disconnect.get_or_insert_with(|| "writer ended".into());
                    break;
                }
                s.results_sent += 1;
                s.max_outstanding = s.max_outstanding.max(s.results_sent - responses);
            }
            ("res", _) if f.id.is_some_and(|id| id >= 2) => {
                responses += 1;
                let res = f.result;
                let succeeded =
                    f.ok == Some(true) && res.as_ref().and_then(|r| r.state) == Some("succeeded");
                if succeeded {
                    s.results_ok += 1;
                    if win.contains(rt) {
                        s.results_ok_in_window += 1;
                    }
                    if let Some(t) = res.and_then(|r| r.payload).and_then(|p| p.t) {
                        if win.contains(t) {
                            s.succeeded_lat.record_ns(rt.saturating_sub(t));
                        }
                    }
                    if let Some(d) = &shared.drain {
                        d.complete(rt);
                    }
                } else {
                    s.result_errors += 1;
                    if s.first_error.is_none() {
                        s.first_error = Some(raw.chars().take(500).collect());
                    }
                }
                if let Some(sem) = &shared.release {
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

/// What a writer did: requests written (`task.result` or `task.dispatch`),
/// dispatches time-stamped inside the window, pings, the error that ended it.
type WriteStats = WriterStats;

/// Write the reader's `task.result` frames as they come, and a `ping` every
/// 15 s, until `stop` or the reader is gone.
async fn worker_writer(
    mut sink: SplitSink<Ws, Message>,
    mut rx: mpsc::UnboundedReceiver<String>,
    mut stop: watch::Receiver<bool>,
) -> WriteStats {
    let mut s = WriteStats::default();
    let mut ping = wswrite::ping_interval();
    let mut buf = Vec::with_capacity(RESULT_BATCH);
    loop {
        let r = tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = ping.tick() => wswrite::ping(&mut sink, &mut s.pings).await,
            n = rx.recv_many(&mut buf, RESULT_BATCH) => {
                if n == 0 {
                    break;
                }
                wswrite::feed_flush(&mut sink, buf.drain(..), &mut s.sent).await
            }
        };
        if let Err(e) = r {
            s.error = Some(e.to_string());
            break;
        }
    }
    s
}

/// A connection's reader and writer tasks.
#[derive(Debug)]
struct Conn<R> {
    reader: JoinHandle<R>,
    writer: JoinHandle<WriteStats>,
}

/// A worker connection's reader and writer tasks.
type WorkerConn = Conn<WorkerStats>;

fn spawn_worker(
    ws: Ws,
    win: Window,
    shared: WorkerShared,
    stop: &watch::Receiver<bool>,
) -> WorkerConn {
    let (sink, stream) = ws.split();
    let (tx, rx) = mpsc::unbounded_channel();
    WorkerConn {
        reader: tokio::spawn(worker_reader(stream, win, tx, shared, stop.clone())),
        writer: tokio::spawn(worker_writer(sink, rx, stop.clone())),
    }
}

// ---------------------------------------------------------------------------
// Dispatchers.

/// Which dispatch responses give a slot back.
#[derive(Debug, Clone)]
enum Release {
    /// Every response (prefill: unacknowledged dispatches).
    OnAck(Arc<Semaphore>),
    /// Error responses only: no task was created, so no worker will give the
    /// slot back (closed loop).
    OnError(Arc<Semaphore>),
    None,
}

/// What one dispatcher connection saw.
#[derive(Debug, Default)]
struct DispatcherStats {
    /// `task.dispatch` responses.
    acks: u64,
    acks_ok: u64,
    acks_in_window: u64,
    ack_errors: u64,
    first_error: Option<String>,
    /// Dispatch → response, for dispatches in the window.
    ack_lat: Hist,
    /// `task.updated` with state `succeeded`.
    completed_events: u64,
    completed_events_in_window: u64,
    /// Dispatch → that event, for dispatches in the window.
    completed_event_lat: Hist,
    other_updates: u64,
    other_frames: u64,
    unreadable: u64,
    disconnect: Option<String>,
}

async fn dispatcher_reader(
    mut stream: SplitStream<Ws>,
    win: Window,
    release: Release,
    responses: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> DispatcherStats {
    let mut s = DispatcherStats::default();
    loop {
        let Some(text) = next_text(&mut stream, &mut stop, &mut s.disconnect).await else {
            break;
        };
        let raw = text.as_str();
        let rt = win.now_ns();
        let f: In<'_> = match serde_json::from_str(raw) {
            Ok(f) => f,
            Err(_) => {
                s.unreadable += 1;
                continue;
            }
        };
        match (f.kind, f.event) {
            ("event", Some("task.updated")) => {
                let task = f.data.and_then(|d| d.task);
                match task {
                    Some(t) if t.state == Some("succeeded") => {
                        s.completed_events += 1;
                        if win.contains(rt) {
                            s.completed_events_in_window += 1;
                        }
                        if let Some(t0) = t.payload.and_then(|p| p.t) {
                            if win.contains(t0) {
                                s.completed_event_lat.record_ns(rt.saturating_sub(t0));
                            }
                        }
                    }
                    Some(_) => s.other_updates += 1,
                    None => s.unreadable += 1,
                }
            }
            ("res", _) if f.id.is_some_and(|id| id >= 2) => {
                s.acks += 1;
                responses.fetch_add(1, Ordering::SeqCst);
                if win.contains(rt) {
                    s.acks_in_window += 1;
                }
                let ok = f.ok == Some(true);
                if ok {
                    s.acks_ok += 1;
                    if let Some(t) = f
                        .result
                        .and_then(|r| r.task)
                        .and_then(|t| t.payload)
                        .and_then(|p| p.t)
                    {
                        if win.contains(t) {
                            s.ack_lat.record_ns(rt.saturating_sub(t));
                        }
                    }
                } else {
                    s.ack_errors += 1;
                    if s.first_error.is_none() {
                        s.first_error = Some(raw.chars().take(500).collect());
                    }
                }
                match &release {
                    Release::OnAck(sem) => sem.add_permits(1),
                    Release::OnError(sem) if !ok => sem.add_permits(1),
                    _ => {}
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

/// How dispatchers build their `task.dispatch` frames.
#[derive(Debug, Clone)]
struct DispatchShape {
    /// `payload.text`, JSON-safe.
    text: Arc<str>,
    /// Worker agent ids (JSON-safe), dispatched to round-robin.
    targets: Arc<[String]>,
    /// Round-robin position shared by all dispatchers.
    rr: Arc<AtomicUsize>,
    /// Prefill: dispatches left in total.
    budget: Option<Arc<AtomicU64>>,
}

/// Write `task.dispatch` requests from `source` until `stop`, and a `ping`
/// every 15 s.
async fn dispatcher_writer(
    sink: SplitSink<Ws, Message>,
    win: Window,
    source: Source,
    shape: DispatchShape,
    stop: watch::Receiver<bool>,
) -> WriteStats {
    let mut next_id: u64 = 2;
    wswrite::source_writer(sink, win, source, 0, stop, |stamp| {
        if let Some(b) = &shape.budget {
            if b.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1)).is_err() {
                return Next::Done;
            }
        }
        let t = stamp.unwrap_or_else(|| win.now_ns());
        let id = next_id;
        next_id += 1;
        let i = shape.rr.fetch_add(1, Ordering::Relaxed);
        let target = &shape.targets[i % shape.targets.len()];
        let frame = format!(
            r#"{{"type":"req","id":{id},"method":"task.dispatch","params":{{"target":"{target}","payload":{{"text":"{}","t":{t}}}}}}}"#,
            shape.text
        );
        Next::Frame { t, frame }
    })
    .await
}

/// A dispatcher connection's reader and writer tasks.
type DispatcherConn = Conn<DispatcherStats>;

/// How a dispatcher connection is driven.
#[derive(Debug)]
struct DispatcherPlan {
    source: Source,
    shape: DispatchShape,
    release: Release,
    /// Dispatch responses of all dispatchers.
    responses: Arc<AtomicU64>,
}

fn spawn_dispatcher(
    ws: Ws,
    win: Window,
    plan: DispatcherPlan,
    rstop: &watch::Receiver<bool>,
    wstop: &watch::Receiver<bool>,
) -> DispatcherConn {
    let (sink, stream) = ws.split();
    DispatcherConn {
        reader: tokio::spawn(dispatcher_reader(
            stream,
            win,
            plan.release,
            plan.responses,
            rstop.clone(),
        )),
        writer: tokio::spawn(dispatcher_writer(
            sink,
            win,
            plan.source,
            plan.shape,
            wstop.clone(),
        )),
    }
}

// ---------------------------------------------------------------------------
// One run.

/// A fresh store and hub with the benchmark's agents.
#[derive(Debug)]
struct Setup {
    hub: HubProcess,
    db: Db,
    workers: Vec<BenchAgent>,
    dispatchers: Vec<BenchAgent>,
    shape: DispatchShape,
}

async fn setup(ctx: &Ctx, b: TaskBackend, tag: &str) -> anyhow::Result<Setup> {
    let o = &ctx.opts;
    let db = Db::create(ctx, b, tag);
    let mut set: Vec<String> = vec![format!("store={}", db.url(b))];
    set.extend(NO_LIMITS.iter().map(|s| (*s).to_owned()));
    set.extend(o.hub_set.iter().cloned());
    let hub = HubProcess::start(
        &ctx.hub_bin,
        ctx.log_dir.join(format!("hub-tasks-{tag}.log")),
        &set,
    )
    .await?;
    let workers = hub.create_agents("w", o.workers, 10).await?;
    let dispatchers = hub.create_agents("d", o.dispatchers, 10).await?;
    let shape = DispatchShape {
        text: ctx.text.clone(),
        targets: workers.iter().map(|a| a.agent_id.clone()).collect(),
        rr: Arc::new(AtomicUsize::new(0)),
        budget: None,
    };
    Ok(Setup {
        hub,
        db,
        workers,
        dispatchers,
        shape,
    })
}

/// Connect every agent with these `connect` params, in parallel.
async fn connect_all(url: &str, agents: &[BenchAgent], params: &str) -> anyhow::Result<Vec<Ws>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, a) in agents.iter().enumerate() {
        let (url, token, params) = (url.to_owned(), a.token.clone(), params.to_owned());
        set.spawn(async move {
            (
                i,
                client::connect_with(&url, &token, &params, Duration::from_secs(20)).await,
            )
        });
    }
    let mut conns = Vec::with_capacity(agents.len());
    while let Some(r) = set.join_next().await {
        let (i, c) = r?;
        let (ws, _) = c.with_context(|| format!("{} could not connect", agents[i].agent_id))?;
        conns.push((i, ws));
    }
    conns.sort_by_key(|(i, _)| *i);
    Ok(conns.into_iter().map(|(_, ws)| ws).collect())
}

fn worker_params(concurrency: usize) -> String {
    format!(r#"{{"protocol":2,"worker":true,"concurrency":{concurrency}}}"#)
}

const PLAIN: &str = r#"{"protocol":2}"#;

/// Wait for every connection's reader and writer, the writer first when
/// `writer_first` (else the reader, which the writer ends with).
async fn join<R>(
    conns: Vec<Conn<R>>,
    writer_first: bool,
) -> anyhow::Result<(Vec<R>, Vec<WriteStats>)> {
    let mut rs = Vec::with_capacity(conns.len());
    let mut ws = Vec::with_capacity(conns.len());
    for c in conns {
        if writer_first {
            ws.push(c.writer.await?);
            rs.push(c.reader.await?);
        } else {
            rs.push(c.reader.await?);
            ws.push(c.writer.await?);
        }
    }
    Ok((rs, ws))
}

/// A worker's writer ends once its reader (the sender) is gone.
async fn join_workers(
    conns: Vec<WorkerConn>,
) -> anyhow::Result<(Vec<WorkerStats>, Vec<WriteStats>)> {
    join(conns, false).await
}

async fn join_dispatchers(
    conns: Vec<DispatcherConn>,
) -> anyhow::Result<(Vec<DispatcherStats>, Vec<WriteStats>)> {
    join(conns, true).await
}

/// One repetition of one scenario on a fresh store and hub.
async fn one(
    ctx: &Ctx,
    b: TaskBackend,
    rep: usize,
    load: Load,
    key: &str,
) -> anyhow::Result<Value> {
    let tag = format!("{}-r{rep}-{key}", b.name());
    let s = setup(ctx, b, &tag).await?;
    let mut r = match load {
        Load::Closed(_) | Load::Open(_) => looped(ctx, s, load).await?,
        Load::Drain(c) => drain(ctx, s, c).await?,
    };
    if let Some(m) = r.as_object_mut() {
        m.insert("backend".into(), json!(b.name()));
        m.insert("workers".into(), json!(ctx.opts.workers));
        m.insert("dispatchers".into(), json!(ctx.opts.dispatchers));
    }
    Ok(r)
}

/// Counters summed over the connections of a run.
fn sum<T>(v: &[T], f: impl Fn(&T) -> u64) -> u64 {
    v.iter().map(f).sum()
}

fn disconnects(
    workers: &[WorkerStats],
    dispatchers: &[DispatcherStats],
    w: &[BenchAgent],
    d: &[BenchAgent],
) -> Vec<Value> {
    workers
        .iter()
        .zip(w)
        .filter_map(|(s, a)| {
            s.disconnect
                .as_ref()
                .map(|why| json!({"agent": a.agent_id, "why": why}))
        })
        .chain(dispatchers.iter().zip(d).filter_map(|(s, a)| {
            s.disconnect
                .as_ref()
                .map(|why| json!({"agent": a.agent_id, "why": why}))
        }))
        .collect()
}

fn write_errors(ws: &[WriteStats], agents: &[BenchAgent]) -> Vec<Value> {
    ws.iter()
        .zip(agents)
        .filter_map(|(s, a)| {
            s.error
                .as_ref()
                .map(|e| json!({"agent": a.agent_id, "error": e}))
        })
        .collect()
}

/// Stop the hub (SIGTERM) and read the store: tasks by state, and whether
/// every task a worker saw `succeeded` is stored so.
async fn finish(
    hub: HubProcess,
    mut db: Db,
    results_ok: u64,
) -> anyhow::Result<(Option<String>, Value)> {
    let stopped = hub.shutdown().await;
    let check = match db
        .counts()
        .await
        .context("reading the store after the run")?
    {
        Some(by_state) => {
            let succeeded = by_state.get("succeeded").copied().unwrap_or(0);
            json!({
                "by_state": by_state,
                "results_ok_seen_by_workers": results_ok,
                "succeeded_stored": succeeded,
                "missing_succeeded": results_ok.saturating_sub(succeeded),
                "ok": succeeded >= results_ok,
            })
        }
        None => json!({ "ok": null, "note": "memory store: nothing to read after the hub stops" }),
    };
    db.cleanup();
    Ok((stopped, check))
}

/// The closed loop (end to end) and the open loop (fixed rate).
async fn looped(ctx: &Ctx, s: Setup, load: Load) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let Setup {
        hub,
        db,
        workers,
        dispatchers,
        shape,
    } = s;
    let conc = match load {
        Load::Closed(c) | Load::Drain(c) => c,
        Load::Open(_) => o.open_concurrency,
    };
    let url = hub.ws_url();
    let t0 = Instant::now();
    let wconns = connect_all(&url, &workers, &worker_params(conc)).await?;
    let dconns = connect_all(&url, &dispatchers, PLAIN).await?;
    let connect_ms = t0.elapsed().as_secs_f64() * 1000.0;

    let (start_ns, win) = harness::window(ctx.probe.epoch(), o.warmup_ms, o.duration_ms);
    let (m_start, m_end) = (win.start_ns, win.end_ns);
    let tail_end = m_end + o.tail_ms * 1_000_000;
    let (wstop_tx, wstop) = watch::channel(false);
    let (rstop_tx, rstop) = watch::channel(false);
    let responses = Arc::new(AtomicU64::new(0));

    let inflight = o.inflight_for(conc);
    let sem = Arc::new(Semaphore::new(0));
    let closed = matches!(load, Load::Closed(_));
    let wshared = WorkerShared {
        release: closed.then(|| sem.clone()),
        drain: None,
    };
    let wrk: Vec<WorkerConn> = wconns
        .into_iter()
        .map(|ws| spawn_worker(ws, win, wshared.clone(), &rstop))
        .collect();
    let mut sched = Vec::new();
    let mut dsp = Vec::with_capacity(dconns.len());
    for ws in dconns {
        let (source, release) = if closed {
            (Source::Window(sem.clone()), Release::OnError(sem.clone()))
        } else {
            let (tx, rx) = mpsc::unbounded_channel();
            sched.push(tx);
            (Source::Schedule(rx), Release::None)
        };
        let plan = DispatcherPlan {
            source,
            shape: shape.clone(),
            release,
            responses: responses.clone(),
        };
        dsp.push(spawn_dispatcher(ws, win, plan, &rstop, &wstop));
    }

    let pid = hub.pid;
    let usage = harness::usage_over(win, pid);

    sleep_until_ns(&win, start_ns).await;
    let mut backlog_max = 0u64;
    match load {
        Load::Closed(_) => {
            sem.add_permits(inflight);
            sleep_until_ns(&win, m_end).await;
            // No new dispatches; the tail lets the window's tasks finish.
            sem.close();
        }
        Load::Open(rate) => {
            let total = rate * (o.warmup_ms + o.duration_ms) / 1000;
            backlog_max = harness::open_loop(&win, &sched, start_ns, rate, total, m_end).await;
            sched.clear();
        }
        Load::Drain(_) => unreachable!("drain runs in drain()"),
    }
    sleep_until_ns(&win, tail_end).await;
    let early = wrk.iter().filter(|w| w.reader.is_finished()).count()
        + dsp.iter().filter(|d| d.reader.is_finished()).count();
    let _ = wstop_tx.send(true);
    let _ = rstop_tx.send(true);
    let (ds, dws) = join_dispatchers(dsp).await?;
    let (wk, wws) = join_workers(wrk).await?;
    let usage = usage.await?;
    let stalls = ctx.probe.window(m_start, m_end, 50.0);
    let stalls_25ms = ctx.probe.window(m_start, m_end, 25.0);
    let log = hub.log.clone();
    let results_ok = sum(&wk, |w| w.results_ok);
    let (stopped, store_check) = finish(hub, db, results_ok).await?;

    let secs = o.duration_ms as f64 / 1000.0;
    let mut start_lat = Hist::default();
    let mut succ_lat = Hist::default();
    let mut ack_lat = Hist::default();
    let mut ev_lat = Hist::default();
    for w in &wk {
        start_lat.merge(&w.start_lat);
        succ_lat.merge(&w.succeeded_lat);
    }
    for d in &ds {
        ack_lat.merge(&d.ack_lat);
        ev_lat.merge(&d.completed_event_lat);
    }
    let sent_in_window = sum(&dws, |w| w.sent_in_window);
    let disc = disconnects(&wk, &ds, &workers, &dispatchers);
    let mut werr = write_errors(&dws, &dispatchers);
    werr.extend(write_errors(&wws, &workers));
    Ok(json!({
        "scenario": if closed { "closed" } else { "open" },
        "concurrency": conc,
        "slots": conc * o.workers,
        "inflight": closed.then_some(inflight),
        "offered_rate": match load { Load::Open(r) => Some(r), _ => None },
        "connect_ms": connect_ms,
        // Tasks that reached `succeeded` (the worker's task.result response)
        // inside the window, per second.
        "completed_per_sec": sum(&wk, |w| w.results_ok_in_window) as f64 / secs,
        "started_per_sec": sum(&wk, |w| w.pickups_in_window) as f64 / secs,
        "dispatched_per_sec": sum(&ds, |d| d.acks_in_window) as f64 / secs,
        "completed_events_per_sec": sum(&ds, |d| d.completed_events_in_window) as f64 / secs,
        "sent_in_window": sent_in_window,
        // Window dispatches that no worker received before the end of the tail.
        "window_tasks_not_started": sent_in_window.saturating_sub(start_lat.len()),
        "window_tasks_not_succeeded": sent_in_window.saturating_sub(succ_lat.len()),
        "dispatch_to_start_ms": start_lat.stats(),
        "dispatch_ack_ms": ack_lat.stats(),
        "dispatch_to_succeeded_ms": succ_lat.stats(),
        "dispatch_to_completed_event_ms": ev_lat.stats(),
        "max_schedule_backlog": match load { Load::Open(_) => Some(backlog_max), _ => None },
        "totals": {
            "dispatched": sum(&dws, |w| w.sent),
            "dispatch_ok": sum(&ds, |d| d.acks_ok),
            "started": sum(&wk, |w| w.pickups),
            "succeeded": results_ok,
            "completed_events": sum(&ds, |d| d.completed_events),
            "task_updated_at_workers": sum(&wk, |w| w.updated_events),
            "other_updates_at_dispatchers": sum(&ds, |d| d.other_updates),
        },
        "worker_max_outstanding": wk.iter().map(|w| w.max_outstanding).max().unwrap_or(0),
        "dispatch_errors": sum(&ds, |d| d.ack_errors),
        "first_dispatch_error": ds.iter().find_map(|d| d.first_error.clone()),
        "result_errors": sum(&wk, |w| w.result_errors),
        "first_result_error": wk.iter().find_map(|w| w.first_error.clone()),
        "unreadable_frames": sum(&wk, |w| w.unreadable) + sum(&ds, |d| d.unreadable),
        "connections_ended_early": early,
        "disconnect_count": disc.len(),
        "disconnects": disc.into_iter().take(5).collect::<Vec<_>>(),
        "write_errors_count": werr.len(),
        "write_errors": werr.into_iter().take(5).collect::<Vec<_>>(),
        "usage": usage,
        "stalls": stalls,
        "stalls_25ms": stalls_25ms,
        "store_check": store_check,
        "hub_stop": stopped,
        "hub_log": log.display().to_string(),
    }))
}

/// The peer's processing scenario: prefill, then drain with the workers.
async fn drain(ctx: &Ctx, s: Setup, conc: usize) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let Setup {
        hub,
        db,
        workers,
        dispatchers,
        mut shape,
    } = s;
    let url = hub.ws_url();
    let epoch = ctx.probe.epoch();
    // No latency window: the queue is prefilled long before the workers come.
    let nowin = Window {
        epoch,
        start_ns: 0,
        end_ns: 0,
    };

    // Prefill: `prefill_inflight` unacknowledged dispatches.
    let dconns = connect_all(&url, &dispatchers, PLAIN).await?;
    let (wstop_tx, wstop) = watch::channel(false);
    let (rstop_tx, rstop) = watch::channel(false);
    let responses = Arc::new(AtomicU64::new(0));
    let budget = Arc::new(AtomicU64::new(o.drain_total));
    shape.budget = Some(budget.clone());
    let sem = Arc::new(Semaphore::new(0));
    let dsp: Vec<DispatcherConn> = dconns
        .into_iter()
        .map(|ws| {
            let plan = DispatcherPlan {
                source: Source::Window(sem.clone()),
                shape: shape.clone(),
                release: Release::OnAck(sem.clone()),
                responses: responses.clone(),
            };
            spawn_dispatcher(ws, nowin, plan, &rstop, &wstop)
        })
        .collect();
    let p0 = Instant::now();
    sem.add_permits(o.prefill_inflight);
    loop {
        if responses.load(Ordering::SeqCst) >= o.drain_total {
            break;
        }
        if dsp
            .iter()
            .any(|d| d.reader.is_finished() || d.writer.is_finished())
        {
            let _ = wstop_tx.send(true);
            let _ = rstop_tx.send(true);
            let (ds, dws) = join_dispatchers(dsp).await?;
            bail!(
                "a dispatcher stopped during the prefill: {:?} {:?}",
                ds.iter().find_map(|d| d.disconnect.clone()),
                dws.iter().find_map(|w| w.error.clone())
            );
        }
        if p0.elapsed() > PREFILL_TIMEOUT {
            bail!(
                "the prefill did not finish within {PREFILL_TIMEOUT:?} ({} of {} dispatches answered)",
                responses.load(Ordering::SeqCst),
                o.drain_total
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let prefill_secs = p0.elapsed().as_secs_f64();
    sem.close();
    let _ = wstop_tx.send(true);
    let _ = rstop_tx.send(true);
    // The dispatchers disconnect (as the peer's producer, nobody listens to
    // task events during the drain).
    let (ds, dws) = join_dispatchers(dsp).await?;
    let queued = sum(&ds, |d| d.acks_ok);
    if queued == 0 {
        bail!(
            "no dispatch succeeded during the prefill: {:?}",
            ds.iter().find_map(|d| d.first_error.clone())
        );
    }
    // Let the hub notice the closed connections before the drain.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Drain.
    let progress = Arc::new(DrainProgress {
        total: queued,
        max_ns: o.drain_max_ms * 1_000_000,
        done: AtomicU64::new(0),
        first: AtomicU64::new(0),
        last: AtomicU64::new(0),
    });
    let (rstop_tx, rstop) = watch::channel(false);
    let u = Usage::start(hub.pid);
    let c0 = nowin.now_ns();
    let t0 = Instant::now();
    let wconns = connect_all(&url, &workers, &worker_params(conc)).await?;
    let connect_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let shared = WorkerShared {
        release: None,
        drain: Some(progress.clone()),
    };
    let wrk: Vec<WorkerConn> = wconns
        .into_iter()
        .map(|ws| spawn_worker(ws, nowin, shared.clone(), &rstop))
        .collect();
    let mut hit_time = false;
    loop {
        let now = nowin.now_ns();
        if progress.done.load(Ordering::SeqCst) >= progress.total {
            break;
        }
        let first = progress.first.load(Ordering::SeqCst);
        if first > 0 && now > first + progress.max_ns {
            hit_time = true;
            break;
        }
        if first == 0 && t0.elapsed() > FIRST_COMPLETION_TIMEOUT {
            let _ = rstop_tx.send(true);
            let (wk, _) = join_workers(wrk).await?;
            bail!(
                "no task completed within {FIRST_COMPLETION_TIMEOUT:?} of the workers connecting: {:?}",
                wk.iter().find_map(|w| w.first_error.clone().or(w.disconnect.clone()))
            );
        }
        if wrk.iter().all(|w| w.reader.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let usage = u.stop().await;
    let end_ns = nowin.now_ns();
    let _ = rstop_tx.send(true);
    let (wk, wws) = join_workers(wrk).await?;
    let first = progress.first.load(Ordering::SeqCst);
    let last = progress.last.load(Ordering::SeqCst);
    let done = progress.done.load(Ordering::SeqCst);
    let secs = if hit_time {
        o.drain_max_ms as f64 / 1000.0
    } else {
        last.saturating_sub(first) as f64 / 1e9
    };
    let (from, to) = if first > 0 {
        (first, first + (secs * 1e9) as u64)
    } else {
        (c0, end_ns)
    };
    let stalls = ctx.probe.window(from, to, 50.0);
    let stalls_25ms = ctx.probe.window(from, to, 25.0);
    let log = hub.log.clone();
    let results_ok = sum(&wk, |w| w.results_ok);
    let (stopped, store_check) = finish(hub, db, results_ok).await?;
    let disc = disconnects(&wk, &ds, &workers, &dispatchers);
    let mut werr = write_errors(&dws, &dispatchers);
    werr.extend(write_errors(&wws, &workers));
    Ok(json!({
        "scenario": "drain",
        "concurrency": conc,
        "slots": conc * o.workers,
        "prefilled": queued,
        "prefill_secs": prefill_secs,
        // Dispatch acknowledgements per second while prefilling, with
        // `prefill_inflight` unacknowledged (cf. the peer's queue.add, 50 in flight).
        "prefill_dispatch_per_sec": queued as f64 / prefill_secs,
        "prefill_inflight": o.prefill_inflight,
        "prefill_errors": sum(&ds, |d| d.ack_errors),
        "first_prefill_error": ds.iter().find_map(|d| d.first_error.clone()),
        "connect_ms": connect_ms,
        "first_completion_after_connect_ms": (first > 0).then(|| first.saturating_sub(c0) as f64 / 1e6),
        "completed": done,
        "secs": secs,
        "hit_time_bound": hit_time,
        "completed_per_sec": if secs > 0.0 { done as f64 / secs } else { f64::NAN },
        "totals": {
            "started": sum(&wk, |w| w.pickups),
            "succeeded": results_ok,
            "task_updated_at_workers": sum(&wk, |w| w.updated_events),
        },
        "worker_max_outstanding": wk.iter().map(|w| w.max_outstanding).max().unwrap_or(0),
        "result_errors": sum(&wk, |w| w.result_errors),
        "first_result_error": wk.iter().find_map(|w| w.first_error.clone()),
        "unreadable_frames": sum(&wk, |w| w.unreadable) + sum(&ds, |d| d.unreadable),
        "disconnect_count": disc.len(),
        "disconnects": disc.into_iter().take(5).collect::<Vec<_>>(),
        "write_errors_count": werr.len(),
        "write_errors": werr.into_iter().take(5).collect::<Vec<_>>(),
        "usage": usage,
        "stalls": stalls,
        "stalls_25ms": stalls_25ms,
        "store_check": store_check,
        "hub_stop": stopped,
        "hub_log": log.display().to_string(),
    }))
}

// ---------------------------------------------------------------------------
// The store of a run.

/// A fresh SQLite file (removed by [`Db::cleanup`] or on drop), or memory.
#[derive(Debug)]
enum Db {
    Memory,
    Sqlite { path: PathBuf },
}

impl Db {
    fn create(ctx: &Ctx, b: TaskBackend, tag: &str) -> Self {
        let n = ctx.seq.fetch_add(1, Ordering::SeqCst);
        match b {
            TaskBackend::Memory => Self::Memory,
            TaskBackend::Sqlite | TaskBackend::SqliteFull => {
                let path = ctx
                    .data_dir
                    .join(format!("tasks-{}-{n}-{tag}.db", std::process::id()));
                remove_sqlite_files(&path);
                Self::Sqlite { path }
            }
        }
    }

    fn url(&self, b: TaskBackend) -> String {
        match self {
            Self::Memory => "memory".into(),
            Self::Sqlite { path } => {
                let full = if b == TaskBackend::SqliteFull {
                    "?synchronous=full"
                } else {
                    ""
                };
                format!("sqlite://{}{full}", path.display())
            }
        }
    }

    /// Tasks by state; `None` for the memory store.
    async fn counts(&self) -> anyhow::Result<Option<BTreeMap<String, u64>>> {
        let Self::Sqlite { path } = self else {
            return Ok(None);
        };
        let path = path.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<BTreeMap<String, u64>> {
            let c = rusqlite::Connection::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            let mut st = c.prepare("SELECT state, count(*) FROM tasks GROUP BY state")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let mut m = BTreeMap::new();
            for row in rows {
                let (state, n) = row?;
                m.insert(state, n.max(0) as u64);
            }
            Ok(m)
        })
        .await?
        .map(Some)
    }

    fn cleanup(&mut self) {
        if let Self::Sqlite { path } = self {
            remove_sqlite_files(path);
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn store_url_shape(ctx: &Ctx, b: TaskBackend) -> String {
    match b {
        TaskBackend::Memory => "memory".into(),
        TaskBackend::Sqlite => format!("sqlite://{}/tasks-*.db", ctx.data_dir.display()),
        TaskBackend::SqliteFull => format!(
            "sqlite://{}/tasks-*.db?synchronous=full",
            ctx.data_dir.display()
        ),
    }
}

/// One line per backend, scenario and repetition, for stderr.
fn brief(key: &str, r: &Value) -> String {
    let common = format!(
        "hubCPU={:.0}% lgCPU={:.0}% outsideCPU={:.0}% hubRSS={:.1}MiB errors={}/{} disconnects={} \
         store_ok={} vmStalls>=50ms={} (max {:.0}ms)",
        f(r, &["usage", "hub_cpu_pct"]),
        f(r, &["usage", "loadgen_cpu_pct"]),
        f(r, &["usage", "other_cpu_pct"]),
        f(r, &["usage", "hub_peak_rss_kib"]) / 1024.0,
        f(r, &["dispatch_errors"]).max(f(r, &["prefill_errors"])),
        f(r, &["result_errors"]),
        f(r, &["disconnect_count"]),
        r.pointer("/store_check/ok")
            .map_or_else(|| "?".into(), Value::to_string),
        f(r, &["stalls", "count"]),
        f(r, &["stalls", "max_ms"]),
    );
    let lat = |name: &str| {
        format!(
            "p50={:.2} p99={:.2} max={:.1}",
            f(r, &[name, "p50"]),
            f(r, &[name, "p99"]),
            f(r, &[name, "max"]),
        )
    };
    match r.get("scenario").and_then(Value::as_str) {
        Some("drain") => format!(
            "{key}: completed/s={:.0} ({} in {:.1}s{}) prefill {:.0} dispatches/s; {common}",
            f(r, &["completed_per_sec"]),
            f(r, &["completed"]),
            f(r, &["secs"]),
            if r.get("hit_time_bound").and_then(Value::as_bool) == Some(true) {
                ", time bound"
            } else {
                ""
            },
            f(r, &["prefill_dispatch_per_sec"]),
        ),
        Some("open") => format!(
            "{key}: dispatch->start {} ms; ack p99={:.2}; ->succeeded p99={:.2}; completed/s={:.0} \
             notStarted={} backlog={}; {common}",
            lat("dispatch_to_start_ms"),
            f(r, &["dispatch_ack_ms", "p99"]),
            f(r, &["dispatch_to_succeeded_ms", "p99"]),
            f(r, &["completed_per_sec"]),
            f(r, &["window_tasks_not_started"]),
            f(r, &["max_schedule_backlog"]),
        ),
        _ => format!(
            "{key} ({} slots, {} in flight): completed/s={:.0} dispatched/s={:.0} dispatch->start {} ms; \
             maxLeased={}; {common}",
            f(r, &["slots"]),
            f(r, &["inflight"]),
            f(r, &["completed_per_sec"]),
            f(r, &["dispatched_per_sec"]),
            lat("dispatch_to_start_ms"),
            f(r, &["worker_max_outstanding"]),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        o: TasksBenchOptions,
    }

    #[test]
    fn defaults() {
        let o = <Wrap as clap::Parser>::parse_from(["tasks"]).o;
        assert_eq!(o.backends, vec![TaskBackend::Sqlite]);
        assert_eq!((o.workers, o.dispatchers), (20, 4));
        assert_eq!(o.concurrency, vec![1, 10, 50]);
        assert_eq!(o.rates, vec![500]);
        assert_eq!(
            o.scenarios,
            vec![
                TaskScenario::Closed,
                TaskScenario::Drain,
                TaskScenario::Open
            ]
        );
        assert_eq!((o.warmup_ms, o.duration_ms, o.reps), (2000, 15000, 3));
        assert_eq!(
            (o.drain_total, o.drain_max_ms, o.prefill_inflight),
            (100_000, 15_000, 50)
        );
        assert_eq!(o.inflight_for(1), 200);
        assert_eq!(o.inflight_for(50), 2000);
        assert!(check(&o).is_ok());
    }

    #[test]
    fn flags_parse() {
        let o = <Wrap as clap::Parser>::parse_from([
            "tasks",
            "--backends",
            "sqlite,memory",
            "--concurrency",
            "2",
            "--inflight",
            "64",
            "--rate",
            "500,1000",
            "--scenarios",
            "closed,open",
        ])
        .o;
        assert_eq!(o.backends, vec![TaskBackend::Sqlite, TaskBackend::Memory]);
        assert_eq!(o.concurrency, vec![2]);
        assert_eq!(o.inflight_for(2), 64);
        assert_eq!(o.rates, vec![500, 1000]);
        assert_eq!(o.scenarios, vec![TaskScenario::Closed, TaskScenario::Open]);
        let bad = <Wrap as clap::Parser>::parse_from(["tasks", "--concurrency", "2000"]).o;
        assert!(check(&bad).is_err());
    }

    #[test]
    fn frames_parse() {
        let ev = r#"{"type":"event","event":"task.dispatch","data":{"lease_id":"k3f9","lease_until":1,"task":{"task_id":"t_01","target":"w1","payload":{"text":"x","t":42},"state":"running","result":null}}}"#;
        let f: In<'_> = serde_json::from_str(ev).expect("dispatch event");
        let d = f.data.expect("data");
        assert_eq!(d.lease_id.as_deref(), Some("k3f9"));
        let t = d.task.expect("task");
        assert_eq!(t.task_id.as_deref(), Some("t_01"));
        assert_eq!(t.payload.and_then(|p| p.t), Some(42));
        let res = r#"{"type":"res","id":7,"ok":true,"result":{"task_id":"t_01","state":"succeeded","payload":{"t":43},"result":null}}"#;
        let f: In<'_> = serde_json::from_str(res).expect("result response");
        let r = f.result.expect("result");
        assert_eq!(r.state, Some("succeeded"));
        assert_eq!(r.payload.and_then(|p| p.t), Some(43));
        let ack = r#"{"type":"res","id":3,"ok":true,"result":{"duplicate":false,"task":{"task_id":"t_02","state":"queued","payload":{"t":44}}}}"#;
        let f: In<'_> = serde_json::from_str(ack).expect("dispatch response");
        let t = f.result.and_then(|r| r.task).expect("task");
        assert_eq!(t.payload.and_then(|p| p.t), Some(44));
        assert!(r#"{"type":"event","event":"task.updated","data":{}}"#.starts_with(UPDATED_PREFIX));
        let p = DrainProgress {
            total: 3,
            max_ns: 10,
            done: AtomicU64::new(0),
            first: AtomicU64::new(0),
            last: AtomicU64::new(0),
        };
        p.complete(100);
        p.complete(105);
        p.complete(111);
        assert_eq!(p.done.load(Ordering::SeqCst), 2);
        assert_eq!(p.last.load(Ordering::SeqCst), 105);
    }
}
