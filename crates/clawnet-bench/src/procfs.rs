//! Linux `/proc` readings: RSS, CPU time, machine busy time, limits, and a
//! sampler that tracks a process's peak RSS every 500 ms.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Clock ticks per second for `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const CLK_TCK: f64 = 100.0;

/// `VmRSS` of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// utime + stime of a process (all threads), in seconds. `pid` = `self` works.
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let u: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((u + st) / CLK_TCK)
}

/// Jiffies of the whole machine from `/proc/stat`.
#[derive(Debug, Clone, Copy, Default)]
struct Ticks {
    busy: u64,
    irq: u64,
    total: u64,
}

fn machine_ticks() -> Option<Ticks> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest is inside user)
    let total: u64 = v.iter().take(8).sum();
    Some(Ticks {
        busy: total.saturating_sub(at(3) + at(4)),
        irq: at(5) + at(6),
        total,
    })
}

/// CPU seconds of every process alive now, by PID (as the peer benchmark's
/// `allProcsCpu`: per-task accounting, so interrupt time is not in it).
fn all_procs_cpu() -> HashMap<u32, f64> {
    let mut m = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(c) = cpu_secs(&pid.to_string()) {
                m.insert(pid, c);
            }
        }
    }
    m
}

/// The soft and hard open-files limits of this process.
pub fn nofile_limits() -> Option<(String, String)> {
    let s = std::fs::read_to_string("/proc/self/limits").ok()?;
    let l = s.lines().find(|l| l.starts_with("Max open files"))?;
    let f: Vec<&str> = l["Max open files".len()..].split_whitespace().collect();
    Some(((*f.first()?).to_owned(), (*f.get(1)?).to_owned()))
}

/// Machine description for the result file.
pub fn environment() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json!({
        "unix_time": unix,
        "kernel": kernel.trim(),
        "cpu": format!("{cpu} x{}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)),
        "nofile_limit": nofile_limits().map(|(s, h)| format!("{s}/{h}")),
    })
}

/// CPU and RSS usage over a window, started by [`Usage::start`].
#[derive(Debug)]
pub struct Usage {
    pid: u32,
    t0: Instant,
    hub_cpu0: f64,
    self_cpu0: f64,
    machine0: Ticks,
    procs0: HashMap<u32, f64>,
    stop: watch::Sender<bool>,
    peak: JoinHandle<u64>,
}

impl Usage {
    /// Start sampling the hub `pid` (RSS every 500 ms) and note CPU counters.
    pub fn start(pid: u32) -> Self {
        let (stop, mut rx) = watch::channel(false);
        let peak = tokio::spawn(async move {
            let mut peak = rss_kib(pid).unwrap_or(0);
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = rx.changed() => break,
                    _ = tick.tick() => {
                        peak = peak.max(rss_kib(pid).unwrap_or(0));
                    }
                }
            }
            peak.max(rss_kib(pid).unwrap_or(0))
        });
        Self {
            pid,
            t0: Instant::now(),
            hub_cpu0: cpu_secs(&pid.to_string()).unwrap_or(f64::NAN),
            self_cpu0: cpu_secs("self").unwrap_or(f64::NAN),
            machine0: machine_ticks().unwrap_or_default(),
            procs0: all_procs_cpu(),
            stop,
            peak,
        }
    }

    /// Stop and report, over the window: hub CPU and this process's CPU
    /// (the load generator); the CPU used by anything else (noise from
    /// outside the benchmark: tick-based residual, and the sum over processes
    /// alive at both ends), all in % of one core; machine busy (100 = all
    /// cores) and its interrupt share, tick-based from `/proc/stat`; hub peak
    /// and final RSS.
    pub async fn stop(self) -> Value {
        let secs = self.t0.elapsed().as_secs_f64();
        let hub_cpu = cpu_secs(&self.pid.to_string()).unwrap_or(f64::NAN) - self.hub_cpu0;
        let self_cpu = cpu_secs("self").unwrap_or(f64::NAN) - self.self_cpu0;
        let m1 = machine_ticks().unwrap_or_default();
        let procs1 = all_procs_cpu();
        let _ = self.stop.send(true);
        let peak = self.peak.await.unwrap_or(0);
        let dt = m1.total.saturating_sub(self.machine0.total);
        let pct = |a: u64, b: u64| {
            if dt > 0 {
                100.0 * a.saturating_sub(b) as f64 / dt as f64
            } else {
                f64::NAN
            }
        };
        let ncpu = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64;
        let busy = pct(m1.busy, self.machine0.busy);
        let irq = pct(m1.irq, self.machine0.irq);
        let hub_pct = 100.0 * hub_cpu / secs;
        let self_pct = 100.0 * self_cpu / secs;
        let me = std::process::id();
        let others: f64 = procs1
            .iter()
            .filter(|(pid, _)| **pid != self.pid && **pid != me)
            .filter_map(|(pid, c1)| self.procs0.get(pid).map(|c0| c1 - c0))
            .sum();
        json!({
            "seconds": secs,
            "hub_cpu_pct": hub_pct,
            "loadgen_cpu_pct": self_pct,
            // Machine busy time not spent in the hub, this process or
            // interrupts: everything else, including processes that started
            // and ended inside the window (builds, tests).
            "other_cpu_pct": ((busy - irq) * ncpu - hub_pct - self_pct).max(0.0),
            "other_procs_cpu_pct": 100.0 * others / secs,
            "machine_busy_pct": busy,
            "machine_irq_pct": irq,
            "hub_peak_rss_kib": peak,
            "hub_rss_kib_end": rss_kib(self.pid),
        })
    }
}
