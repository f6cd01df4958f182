//! `clawnet bench chat`: the chat relay benchmark, the same scenarios as the
//! Socket.IO peer benchmark (`../shared/bench/peers/socketio`), against a
//! fresh `clawnet serve` child process per scenario and repetition.
//!
//! * `closed_loop`: N agents in `global`, each keeping W `chat.send`
//!   unacknowledged; deliveries/s (message events received by all agents)
//!   and acks/s inside the measured window.
//! * `latency`: open loop at a fixed aggregate send rate, round-robin over
//!   the agents; send → receive latency of every delivery of every message
//!   sent inside the window.
//! * `idle`: hub RSS with 0 clients and with K idle connections.
//!
//! Every load scenario also reports hub CPU, load-generator CPU, hub peak
//! RSS (sampled every 500 ms) and the VM timer stalls seen in the window.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::client::{self, ReaderStats, SendShape, Source, WriterStats};
use crate::harness::{self, f, sleep_until_ns, NoiseRetry};
use crate::hub::HubProcess;
use crate::procfs::{self, Usage};
use crate::stall::StallProbe;
use crate::stats::Hist;

/// A benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Each agent keeps `--window` sends unacknowledged: throughput.
    #[value(name = "closed_loop", alias = "closed-loop", alias = "closed")]
    ClosedLoop,
    /// Fixed aggregate send rate: send → receive latency.
    #[value(name = "latency", alias = "open", alias = "open_loop")]
    Latency,
    /// Hub memory per idle connection.
    #[value(name = "idle")]
    Idle,
}

impl Scenario {
    /// The name used in the result JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClosedLoop => "closed_loop",
            Self::Latency => "latency",
            Self::Idle => "idle",
        }
    }
}

/// Options of `clawnet bench chat`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChatBenchOptions {
    /// The `clawnet` binary to run as the hub [default: this executable].
    #[arg(long, value_name = "PATH")]
    pub hub_bin: Option<PathBuf>,
    /// Agents connected to `global` in the load scenarios.
    #[arg(long, default_value_t = 20)]
    pub agents: usize,
    /// Closed loop: unacknowledged `chat.send` kept in flight per agent.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Latency scenario: aggregate send rate, messages per second.
    #[arg(long, default_value_t = 2000)]
    pub rate: u64,
    /// Warm-up before the measured window, ms.
    #[arg(long, default_value_t = 2000)]
    pub warmup_ms: u64,
    /// Measured window, ms.
    #[arg(long, default_value_t = 15000)]
    pub duration_ms: u64,
    /// Time after the last send to collect outstanding deliveries, ms.
    #[arg(long, default_value_t = 3000)]
    pub drain_ms: u64,
    /// Idle scenario: connections opened.
    #[arg(long, default_value_t = 1000)]
    pub idle_connections: usize,
    /// Repetitions of every scenario (fresh hub each time).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Scenarios to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [Scenario::ClosedLoop, Scenario::Latency, Scenario::Idle]
    )]
    pub scenarios: Vec<Scenario>,
    /// Size of `payload.text` in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,
    /// Send without a `dedupe_key` (by default every send carries a unique
    /// one, like the peer relay that dedupes every message by id).
    #[arg(long)]
    pub no_dedupe_keys: bool,
    /// Extra hub configuration, passed as `clawnet serve --set KEY=VALUE`.
    #[arg(long = "hub-set", value_name = "KEY=VALUE")]
    pub hub_set: Vec<String>,
    /// Directory for the hub logs [default: <tmp>/clawnet-bench].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Repeat a load scenario's repetition (up to this many extra times) when
    /// something outside the benchmark used more than `--noise-threshold-pct`
    /// of a core during its window; discarded attempts are kept in the output.
    #[arg(long, default_value_t = 0)]
    pub noise_retries: usize,
    /// CPU (% of one core) used outside the hub, the clients and interrupts
    /// above which a window counts as disturbed.
    #[arg(long, default_value_t = 25.0)]
    pub noise_threshold_pct: f64,
}

impl Default for ChatBenchOptions {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            o: ChatBenchOptions,
        }
        <Wrap as clap::Parser>::parse_from(["chat"]).o
    }
}

/// Run the benchmark; returns the result document (the caller prints it).
/// One human-readable line per scenario and repetition goes to stderr.
/// SIGINT/SIGTERM stop the hub and end the run with an error.
pub async fn run(opts: ChatBenchOptions) -> anyhow::Result<Value> {
    crate::interrupt::until_interrupted(run_inner(opts)).await
}

/// [`run`] on a runtime of its own, for callers that are not async.
pub fn run_blocking(opts: ChatBenchOptions) -> anyhow::Result<Value> {
    crate::interrupt::block_on(run(opts))
}

#[derive(Debug)]
struct Ctx {
    opts: ChatBenchOptions,
    hub_bin: PathBuf,
    log_dir: PathBuf,
    probe: StallProbe,
    text: Arc<str>,
}

impl Ctx {
    fn log(&self, rep: usize, what: &str) -> PathBuf {
        self.log_dir.join(format!("hub-r{rep}-{what}.log"))
    }

    fn secs(&self) -> f64 {
        self.opts.duration_ms as f64 / 1000.0
    }
}

fn check(opts: &ChatBenchOptions) -> anyhow::Result<()> {
    if opts.agents == 0
        || opts.window == 0
        || opts.rate == 0
        || opts.reps == 0
        || opts.duration_ms == 0
    {
        bail!("--agents, --window, --rate, --reps and --duration-ms must be at least 1");
    }
    if opts.scenarios.is_empty() {
        bail!("no scenario selected");
    }
    // Sockets of this process: the agents or the idle connections, plus slack.
    let need = opts
        .agents
        .max(if opts.scenarios.contains(&Scenario::Idle) {
            opts.idle_connections
        } else {
            0
        }) as u64
        + 64;
    harness::check_nofile(
        need,
        "; raise it first (e.g. `ulimit -n 65536`) or lower --idle-connections/--agents",
    )
}

async fn run_inner(opts: ChatBenchOptions) -> anyhow::Result<Value> {
    check(&opts)?;
    let hub_bin = harness::hub_bin(&opts.hub_bin)?;
    let log_dir = harness::dir_or_temp(&opts.log_dir, "clawnet-bench");
    harness::create_dir(&log_dir)?;
    let ctx = Ctx {
        text: Arc::from("x".repeat(opts.payload_bytes)),
        probe: StallProbe::start(Instant::now()),
        hub_bin,
        log_dir,
        opts,
    };
    let version = harness::hub_version(&ctx.hub_bin);

    let mut reps = Vec::new();
    for rep in 1..=ctx.opts.reps {
        let mut out = Map::new();
        out.insert("rep".into(), json!(rep));
        for sc in &ctx.opts.scenarios {
            let sc = *sc;
            let label = format!("rep{rep} {}", sc.name());
            let nr = NoiseRetry {
                retries: ctx.opts.noise_retries,
                // The idle scenario is never disturbed.
                threshold_pct: if sc == Scenario::Idle {
                    f64::INFINITY
                } else {
                    ctx.opts.noise_threshold_pct
                },
                label: &label,
                stamp_rep: None,
            };
            let ctx = &ctx;
            let attempt = || async move {
                let r = match sc {
                    Scenario::ClosedLoop => load(ctx, rep, sc).await,
                    Scenario::Latency => load(ctx, rep, sc).await,
                    Scenario::Idle => idle(ctx, rep).await,
                }
                .with_context(|| format!("rep {rep} scenario {}", sc.name()))?;
                eprintln!("rep{rep} {}", brief(sc, &r, &ctx.opts));
                Ok(r)
            };
            let noise = |r: &Value| f(r, &["usage", "other_cpu_pct"]);
            let r = harness::retry_noisy(nr, attempt, noise).await?;
            out.insert(sc.name().into(), r);
        }
        reps.push(Value::Object(out));
    }

    let mut median = Map::new();
    let mut min = Map::new();
    let mut max = Map::new();
    for sc in &ctx.opts.scenarios {
        let vals: Vec<&Value> = reps.iter().filter_map(|r| r.get(sc.name())).collect();
        harness::pick_into(&vals, sc.name(), [&mut median, &mut min, &mut max]);
    }
    let o = &ctx.opts;
    let env = harness::environment(&ctx.hub_bin, &version, &ctx.log_dir);
    Ok(json!({
        "system": "clawnet",
        "env": env,
        "config": {
            "agents": o.agents,
            "window": o.window,
            "rate": o.rate,
            "warmup_ms": o.warmup_ms,
            "duration_ms": o.duration_ms,
            "drain_ms": o.drain_ms,
            "idle_connections": o.idle_connections,
            "reps": o.reps,
            "scenarios": o.scenarios.iter().map(|s| s.name()).collect::<Vec<_>>(),
            "payload_bytes": o.payload_bytes,
            "dedupe_keys": !o.no_dedupe_keys,
            "hub_set": o.hub_set,
            "noise_retries": o.noise_retries,
            "noise_threshold_pct": o.noise_threshold_pct,
        },
        "median": median,
        "min": min,
        "max": max,
        "reps": reps,
    }))
}

/// `closed_loop` or `latency` on a fresh hub.
async fn load(ctx: &Ctx, rep: usize, sc: Scenario) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let n = o.agents;
    let hub = HubProcess::start(&ctx.hub_bin, ctx.log(rep, sc.name()), &o.hub_set).await?;
    let agents = hub.create_agents("b", n, 16).await?;

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
            let (ws, _) = c.with_context(|| format!("agent {i} could not connect"))?;
            conns.push((i, ws));
        }
        conns.sort_by_key(|(i, _)| *i);
    }
    let connect_ms = t0.elapsed().as_secs_f64() * 1000.0;

    let (start_ns, win) = harness::window(ctx.probe.epoch(), o.warmup_ms, o.duration_ms);
    let (m_start, m_end) = (win.start_ns, win.end_ns);
    let (wstop_tx, wstop) = watch::channel(false);
    let (rstop_tx, rstop) = watch::channel(false);
    let mut readers = Vec::with_capacity(n);
    let mut writers = Vec::with_capacity(n);
    let mut sems = Vec::new();
    let mut sched = Vec::new();
    for (i, ws) in conns {
        let (sink, stream) = ws.split();
        let (source, back) = match sc {
            Scenario::ClosedLoop => {
                let sem = Arc::new(Semaphore::new(0));
                sems.push(sem.clone());
                (Source::Window(sem.clone()), Some(sem))
            }
            _ => {
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
            room: None,
        };
        writers.push(tokio::spawn(client::writer(
            sink,
            win,
            source,
            shape,
            wstop.clone(),
        )));
    }

    // CPU/RSS over the measured window.
    let pid = hub.pid;
    let usage = harness::usage_over(win, pid);

    sleep_until_ns(&win, start_ns).await;
    let mut backlog_max = 0u64;
    match sc {
        Scenario::ClosedLoop => {
            for s in &sems {
                s.add_permits(o.window);
            }
            sleep_until_ns(&win, m_end).await;
        }
        _ => {
            // Open loop: the schedule catches up after late ticks, so the
            // offered rate does not depend on the hub's responses.
            let total = o.rate * (o.warmup_ms + o.duration_ms) / 1000;
            backlog_max = harness::open_loop(&win, &sched, start_ns, o.rate, total, u64::MAX).await;
            sleep_until_ns(&win, m_end).await;
        }
    }
    let _ = wstop_tx.send(true);
    tokio::time::sleep(Duration::from_millis(o.drain_ms)).await;
    let _ = rstop_tx.send(true);

    let mut ws_stats: Vec<WriterStats> = Vec::new();
    for w in writers {
        ws_stats.push(w.await?);
    }
    let mut rs_stats: Vec<ReaderStats> = Vec::new();
    for r in readers {
        rs_stats.push(r.await?);
    }
    let usage = usage.await?;
    let stalls = ctx.probe.window(m_start, m_end, 50.0);
    let mut hub = hub;
    let hub_alive = hub.alive();
    let log = hub.log.clone();
    let stopped = hub.shutdown().await;

    let secs = ctx.secs();
    let sum_w = |f: fn(&WriterStats) -> u64| ws_stats.iter().map(f).sum::<u64>();
    let sum_r = |f: fn(&ReaderStats) -> u64| rs_stats.iter().map(f).sum::<u64>();
    let sent_in_window = sum_w(|w| w.sent_in_window);
    let expected = sent_in_window * n as u64;
    let received = sum_r(|r| r.recv_for_window_sends);
    let mut lat = Hist::default();
    let mut ack_lat = Hist::default();
    for r in &rs_stats {
        lat.merge(&r.lat);
        ack_lat.merge(&r.ack_lat);
    }
    let disconnects: Vec<Value> = rs_stats
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            r.disconnect
                .as_ref()
                .map(|d| json!({"agent": agents[i].agent_id, "why": d}))
        })
        .collect();
    let write_errors: Vec<Value> = ws_stats
        .iter()
        .enumerate()
        .filter_map(|(i, w)| {
            w.error
                .as_ref()
                .map(|e| json!({"agent": agents[i].agent_id, "error": e}))
        })
        .collect();
    let first_error = rs_stats.iter().find_map(|r| r.first_error.clone());
    Ok(json!({
        "agents": n,
        "window": (sc == Scenario::ClosedLoop).then_some(o.window),
        "offered_rate": (sc == Scenario::Latency).then_some(o.rate),
        "connect_ms": connect_ms,
        "sends_per_sec": sent_in_window as f64 / secs,
        "acks_per_sec": sum_r(|r| r.acks_in_window) as f64 / secs,
        "deliveries_per_sec": sum_r(|r| r.recv_in_window) as f64 / secs,
        "sent_total": sum_w(|w| w.sent),
        "sent_in_window": sent_in_window,
        "expected_deliveries_for_window_sends": expected,
        "received_for_window_sends": received,
        "missing_for_window_sends": expected.saturating_sub(received),
        "received_total": sum_r(|r| r.recv_total),
        "ack_errors": sum_r(|r| r.ack_errors),
        "first_ack_error": first_error,
        "unacked_at_end": sum_w(|w| w.sent).saturating_sub(sum_r(|r| r.acks)),
        "other_frames": sum_r(|r| r.other_frames),
        "unreadable_frames": sum_r(|r| r.unreadable),
        "max_schedule_backlog_msgs": backlog_max,
        "latency_ms": lat.stats(),
        "ack_latency_ms": ack_lat.stats(),
        "disconnect_count": disconnects.len(),
        "disconnects": disconnects,
        "write_errors": write_errors,
        "usage": usage,
        "stalls": stalls,
        "hub_alive_at_end": hub_alive,
        "hub_stop": stopped,
        "hub_log": log.display().to_string(),
    }))
}

/// Hub RSS with 0 clients, then with `idle_connections` idle connections.
async fn idle(ctx: &Ctx, rep: usize) -> anyhow::Result<Value> {
    let o = &ctx.opts;
    let k = o.idle_connections;
    let hub = HubProcess::start(&ctx.hub_bin, ctx.log(rep, "idle"), &o.hub_set).await?;
    let agents = hub.create_agents("i", k, 32).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss0 = procfs::rss_kib(hub.pid).context("cannot read the hub's RSS")?;

    let (stop_tx, stop) = watch::channel(false);
    let t0 = Instant::now();
    let url = hub.ws_url();
    let mut tasks = Vec::with_capacity(k);
    let mut failed = 0usize;
    let mut first_failure = None;
    for chunk in agents.chunks(50) {
        let mut set = tokio::task::JoinSet::new();
        for a in chunk {
            let (url, token) = (url.clone(), a.token.clone());
            set.spawn(async move { client::connect(&url, &token, Duration::from_secs(30)).await });
        }
        while let Some(r) = set.join_next().await {
            match r? {
                Ok((ws, _)) => tasks.push(tokio::spawn(client::idle(ws, stop.clone()))),
                Err(e) => {
                    failed += 1;
                    if first_failure.is_none() {
                        first_failure = Some(format!("{e:#}"));
                    }
                }
            }
        }
    }
    let connect_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let connected = tasks.len();
    let usage = Usage::start(hub.pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = procfs::rss_kib(hub.pid).context("cannot read the hub's RSS")?;
    let usage = usage.stop().await;
    let _ = stop_tx.send(true);
    let mut frames = 0u64;
    let mut dropped = Vec::new();
    for t in tasks {
        let (f, why) = t.await?;
        frames += f;
        if let Some(w) = why {
            dropped.push(w);
        }
    }
    let mut hub = hub;
    let hub_alive = hub.alive();
    let stopped = hub.shutdown().await;
    let per_conn = if connected > 0 {
        (rss1 as f64 - rss0 as f64) / connected as f64
    } else {
        f64::NAN
    };
    Ok(json!({
        "connections": k,
        "connected": connected,
        "failed": failed,
        "first_failure": first_failure,
        "connect_ms": connect_ms,
        "rss0_kib": rss0,
        "rss1_kib": rss1,
        "rss_per_conn_kib": per_conn,
        "frames_received_while_idle": frames,
        "dropped_connections": dropped.len(),
        "dropped_examples": dropped.iter().take(5).collect::<Vec<_>>(),
        "usage": usage,
        "hub_alive_at_end": hub_alive,
        "hub_stop": stopped,
    }))
}

/// One line per scenario and repetition, for stderr.
fn brief(sc: Scenario, r: &Value, o: &ChatBenchOptions) -> String {
    match sc {
        Scenario::Idle => format!(
            "idle {}: rss0={:.0}KiB rss1={:.0}KiB per-conn={:.1}KiB connected={}/{} in {:.0}ms dropped={} hubCPU={:.1}%",
            o.idle_connections,
            f(r, &["rss0_kib"]),
            f(r, &["rss1_kib"]),
            f(r, &["rss_per_conn_kib"]),
            f(r, &["connected"]),
            o.idle_connections,
            f(r, &["connect_ms"]),
            f(r, &["dropped_connections"]),
            f(r, &["usage", "hub_cpu_pct"]),
        ),
        _ => format!(
            "{} N={}{}: sent/s={:.0} acked/s={:.0} delivered/s={:.0} lat p50={:.2} p90={:.2} p99={:.2} max={:.1}ms \
             missing={} disconnects={} ackErr={} hubCPU={:.0}% lgCPU={:.0}% otherCPU={:.0}% hubRSS={:.1}MiB \
             vmStalls>=50ms={} (max {:.0}ms)",
            sc.name(),
            o.agents,
            if sc == Scenario::ClosedLoop {
                format!(" w={}", o.window)
            } else {
                format!(" {}/s", o.rate)
            },
            f(r, &["sends_per_sec"]),
            f(r, &["acks_per_sec"]),
            f(r, &["deliveries_per_sec"]),
            f(r, &["latency_ms", "p50"]),
            f(r, &["latency_ms", "p90"]),
            f(r, &["latency_ms", "p99"]),
            f(r, &["latency_ms", "max"]),
            f(r, &["missing_for_window_sends"]),
            f(r, &["disconnect_count"]),
            f(r, &["ack_errors"]),
            f(r, &["usage", "hub_cpu_pct"]),
            f(r, &["usage", "loadgen_cpu_pct"]),
            f(r, &["usage", "other_cpu_pct"]),
            f(r, &["usage", "hub_peak_rss_kib"]) / 1024.0,
            f(r, &["stalls", "count"]),
            f(r, &["stalls", "max_ms"]),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_peer_benchmark() {
        let o = ChatBenchOptions::default();
        assert_eq!(o.agents, 20);
        assert_eq!(o.window, 32);
        assert_eq!(o.rate, 2000);
        assert_eq!(o.warmup_ms, 2000);
        assert_eq!(o.duration_ms, 15000);
        assert_eq!(o.idle_connections, 1000);
        assert_eq!(o.reps, 3);
        assert_eq!(
            o.scenarios,
            vec![Scenario::ClosedLoop, Scenario::Latency, Scenario::Idle]
        );
    }

    #[test]
    fn scenarios_parse_by_name() {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            o: ChatBenchOptions,
        }
        let w = <Wrap as clap::Parser>::parse_from([
            "chat",
            "--scenarios",
            "latency,idle",
            "--reps",
            "1",
        ]);
        assert_eq!(w.o.scenarios, vec![Scenario::Latency, Scenario::Idle]);
        assert_eq!(w.o.reps, 1);
    }
}
