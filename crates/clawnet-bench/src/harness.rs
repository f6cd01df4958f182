//! The scaffolding the hub benchmarks ([`crate::chat`], [`crate::store`],
//! [`crate::tasks`]) share: locating the hub binary and the scratch
//! directories, the open-files check, the noise-retry loop around every
//! repetition, the median/min/max summary over repetitions and a few small
//! helpers for reading results.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::Window;
use crate::procfs::{self, Usage};
use crate::stats::{over_reps, Pick};

/// The hub binary: `--hub-bin`, or this executable.
pub fn hub_bin(opt: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let hub_bin = match opt {
        Some(p) => p.clone(),
        None => {
            std::env::current_exe().context("cannot locate this executable (pass --hub-bin)")?
        }
    };
    if !hub_bin.is_file() {
        bail!("hub binary {} does not exist", hub_bin.display());
    }
    Ok(hub_bin)
}

/// `opt`, or `name` in the temporary directory.
pub fn dir_or_temp(opt: &Option<PathBuf>, name: &str) -> PathBuf {
    opt.clone()
        .unwrap_or_else(|| std::env::temp_dir().join(name))
}

/// Create `dir` and its parents.
pub fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// The log directory and the (canonical) data directory of a run with a
/// store, both created.
pub fn log_and_data_dirs(
    log_dir: &Option<PathBuf>,
    data_dir: &Option<PathBuf>,
    data_name: &str,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let log_dir = dir_or_temp(log_dir, "clawnet-bench");
    let data_dir = dir_or_temp(data_dir, data_name);
    for d in [&log_dir, &data_dir] {
        create_dir(d)?;
    }
    let data_dir = data_dir.canonicalize().unwrap_or(data_dir);
    Ok((log_dir, data_dir))
}

/// What `HUB --version` prints, if it runs.
pub fn hub_version(hub_bin: &Path) -> Option<String> {
    std::process::Command::new(hub_bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// [`procfs::environment`] with the hub binary, its version and the log
/// directory.
pub fn environment(hub_bin: &Path, version: &Option<String>, log_dir: &Path) -> Value {
    let mut env = procfs::environment();
    if let Some(m) = env.as_object_mut() {
        m.insert("hub_bin".into(), json!(hub_bin.display().to_string()));
        m.insert("hub_version".into(), json!(version));
        m.insert("hub_logs".into(), json!(log_dir.display().to_string()));
    }
    env
}

/// [`environment`] with the data directory and its file system type.
pub fn environment_with_data(
    hub_bin: &Path,
    version: &Option<String>,
    log_dir: &Path,
    data_dir: &Path,
) -> Value {
    let mut env = environment(hub_bin, version, log_dir);
    if let Some(m) = env.as_object_mut() {
        m.insert("data_dir".into(), json!(data_dir.display().to_string()));
        m.insert("data_dir_fs".into(), json!(fs_type(data_dir)));
    }
    env
}

/// Fail when the soft open-files limit is below `need`; `hint` follows the
/// message.
pub fn check_nofile(need: u64, hint: &str) -> anyhow::Result<()> {
    if let Some((soft, _hard)) = procfs::nofile_limits() {
        if soft.parse::<u64>().is_ok_and(|s| s < need) {
            bail!("the open-files limit is {soft} but this run needs about {need} sockets{hint}");
        }
    }
    Ok(())
}

/// How disturbed repetitions are told apart and repeated.
#[derive(Debug, Clone, Copy)]
pub struct NoiseRetry<'a> {
    /// Most disturbed attempts thrown away per repetition.
    pub retries: usize,
    /// Percent of a core used outside the benchmark that makes an attempt
    /// disturbed.
    pub threshold_pct: f64,
    /// Starts the "repeating" line on stderr, e.g. `rep1 sqlite closed`.
    pub label: &'a str,
    /// Write `rep` and `outside_cpu_pct` into the kept result too.
    pub stamp_rep: Option<usize>,
}

/// Run `attempt` until it is not disturbed (its `noise` is at most the
/// threshold) or the retries are used up; the kept result says whether it
/// was disturbed and carries the discarded attempts.
pub async fn retry_noisy<Fut>(
    nr: NoiseRetry<'_>,
    mut attempt: impl FnMut() -> Fut,
    noise: impl Fn(&Value) -> f64,
) -> anyhow::Result<Value>
where
    Fut: Future<Output = anyhow::Result<Value>>,
{
    let mut discarded = Vec::new();
    loop {
        let mut r = attempt().await?;
        let noise = noise(&r);
        let disturbed = noise > nr.threshold_pct;
        if disturbed && discarded.len() < nr.retries {
            eprintln!(
                "{}: {noise:.0}% of a core used outside the benchmark; repeating",
                nr.label
            );
            discarded.push(r);
            continue;
        }
        if let Some(m) = r.as_object_mut() {
            if let Some(rep) = nr.stamp_rep {
                m.insert("rep".into(), json!(rep));
                m.insert("outside_cpu_pct".into(), json!(noise));
            }
            m.insert("disturbed".into(), json!(disturbed));
            if !discarded.is_empty() {
                m.insert(
                    "discarded_disturbed_attempts".into(),
                    Value::Array(discarded),
                );
            }
        }
        return Ok(r);
    }
}

/// The repetitions of one scenario on one backend.
#[derive(Debug, Clone, Copy)]
pub struct RepPlan<'a> {
    /// How many repetitions.
    pub reps: usize,
    /// Most disturbed attempts thrown away per repetition.
    pub retries: usize,
    /// See [`NoiseRetry::threshold_pct`].
    pub threshold_pct: f64,
    /// The backend's name, for stderr.
    pub backend: &'a str,
    /// The scenario's key in the result.
    pub key: &'a str,
}

/// Every repetition of one scenario, with the noise retries: `one(rep)` runs
/// an attempt, `brief` describes it on stderr, `noise` is its CPU used
/// outside the benchmark (% of a core).
pub async fn every_rep<Fut>(
    plan: RepPlan<'_>,
    mut one: impl FnMut(usize) -> Fut,
    brief: impl Fn(&Value) -> String,
    noise: impl Fn(&Value) -> f64,
) -> anyhow::Result<Vec<Value>>
where
    Fut: Future<Output = anyhow::Result<Value>>,
{
    let RepPlan { backend, key, .. } = plan;
    let mut out = Vec::with_capacity(plan.reps);
    for rep in 1..=plan.reps {
        let label = format!("rep{rep} {backend} {key}");
        let nr = NoiseRetry {
            retries: plan.retries,
            threshold_pct: plan.threshold_pct,
            label: &label,
            stamp_rep: Some(rep),
        };
        let brief = &brief;
        let attempt = || {
            let run = one(rep);
            async move {
                let r = run
                    .await
                    .with_context(|| format!("rep {rep} scenario {key}"))?;
                eprintln!("rep{rep} {backend} {}", brief(&r));
                Ok(r)
            }
        };
        out.push(retry_noisy(nr, attempt, &noise).await?);
    }
    Ok(out)
}

/// Median, min and max over the repetitions of each run, and the
/// repetitions themselves, by run key.
#[derive(Debug)]
pub struct Summary {
    pub median: Map<String, Value>,
    pub min: Map<String, Value>,
    pub max: Map<String, Value>,
    pub reps: Map<String, Value>,
}

/// [`Summary`] of `runs` (run key, repetitions).
pub fn summarize(runs: Vec<(String, Vec<Value>)>) -> Summary {
    let mut median = Map::new();
    let mut min = Map::new();
    let mut max = Map::new();
    let mut reps = Map::new();
    for (key, vals) in runs {
        let refs: Vec<&Value> = vals.iter().collect();
        pick_into(&refs, &key, [&mut median, &mut min, &mut max]);
        reps.insert(key, Value::Array(vals));
    }
    Summary {
        median,
        min,
        max,
        reps,
    }
}

/// Insert the median, min and max of `vals` under `key` into `dst`.
pub fn pick_into(vals: &[&Value], key: &str, dst: [&mut Map<String, Value>; 3]) {
    let [median, min, max] = dst;
    for (dst, p) in [(median, Pick::Median), (min, Pick::Min), (max, Pick::Max)] {
        if let Some(v) = over_reps(vals, p) {
            dst.insert(key.to_owned(), v);
        }
    }
}

/// The start of a run's load (300 ms from now on `epoch`'s clock) and its
/// measured window: `warmup_ms` after the start, `duration_ms` long.
pub fn window(epoch: Instant, warmup_ms: u64, duration_ms: u64) -> (u64, Window) {
    let start_ns = epoch.elapsed().as_nanos() as u64 + 300_000_000;
    let m_start = start_ns + warmup_ms * 1_000_000;
    let m_end = m_start + duration_ms * 1_000_000;
    let win = Window {
        epoch,
        start_ns: m_start,
        end_ns: m_end,
    };
    (start_ns, win)
}

/// CPU and RSS of the hub `pid` (and of this process) over the window.
pub fn usage_over(win: Window, pid: u32) -> JoinHandle<Value> {
    tokio::spawn(async move {
        sleep_until_ns(&win, win.start_ns).await;
        let u = Usage::start(pid);
        sleep_until_ns(&win, win.end_ns).await;
        u.stop().await
    })
}

/// Open loop: hand out the time stamps of `total` sends at `rate` per
/// second from `start_ns`, round-robin over `sched`, on 1 ms ticks that catch
/// up (so the offered rate does not depend on the hub's answers), until all
/// are out or a tick at or after `until_ns`. Returns the largest backlog (sends
/// due at a tick and not yet handed out).
pub async fn open_loop(
    win: &Window,
    sched: &[mpsc::UnboundedSender<u64>],
    start_ns: u64,
    rate: u64,
    total: u64,
    until_ns: u64,
) -> u64 {
    let n = sched.len() as u64;
    let mut backlog_max = 0u64;
    let mut idx = 0u64;
    loop {
        let now = win.now_ns();
        let el = now.saturating_sub(start_ns) as u128;
        let target = ((el * rate as u128 / 1_000_000_000) as u64).min(total);
        backlog_max = backlog_max.max(target.saturating_sub(idx));
        while idx < target {
            let _ = sched[(idx % n) as usize].send(now);
            idx += 1;
        }
        if idx >= total || now >= until_ns {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    backlog_max
}

/// Sleep until `t` nanoseconds on the window's clock.
pub async fn sleep_until_ns(win: &Window, t: u64) {
    let now = win.now_ns();
    if t > now {
        tokio::time::sleep(Duration::from_nanos(t - now)).await;
    }
}

/// The number at `path` in `v`, NaN when it is missing.
pub fn f(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return f64::NAN,
        }
    }
    cur.as_f64().unwrap_or(f64::NAN)
}

/// A SQLite database file, its `-wal` and `-shm` files, and the audit trail
/// and quarantine ledger a hub on `sqlite://PATH` writes beside it.
fn sqlite_files(path: &Path) -> [PathBuf; 5] {
    let s = path.display().to_string();
    [
        path.to_path_buf(),
        PathBuf::from(format!("{s}-wal")),
        PathBuf::from(format!("{s}-shm")),
        PathBuf::from(format!("{s}.audit.jsonl")),
        PathBuf::from(format!("{s}.quarantine.jsonl")),
    ]
}

/// Delete [`sqlite_files`] of `path`; missing ones are fine.
pub fn remove_sqlite_files(path: &Path) {
    for p in sqlite_files(path) {
        let _ = std::fs::remove_file(p);
    }
}

/// The file system type holding `path` (longest mount point in /proc/mounts).
pub fn fs_type(path: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let p = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((*f.get(1)?, *f.get(2)?))
        })
        .filter(|(mp, _)| p.starts_with(mp))
        .max_by_key(|(mp, _)| mp.len())
        .map(|(_, t)| t.to_owned())
}

/// For the examples: print a benchmark's result document as pretty JSON on
/// stdout, or the error on stderr as `NAME: error` and exit with status 1.
pub fn print_or_exit(name: &str, r: anyhow::Result<Value>) {
    match r {
        Ok(v) => match serde_json::to_string_pretty(&v) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1);
            }
        },
        Err(e) => {
            eprintln!("{name}: {e:#}");
            std::process::exit(1);
        }
    }
}
