//! Linux `/proc` readings: RSS, CPU time, machine busy time, limits, and a
//! sampler that tracks a process's peak RSS every 500 ms.

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

/// (busy, total) jiffies of the whole machine from `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().next()?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
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
    machine0: (u64, u64),
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
            machine0: machine_ticks().unwrap_or((0, 0)),
            stop,
            peak,
        }
    }

    /// Stop and report: hub CPU and this process's CPU (100 = one core),
    /// machine busy (100 = all cores, tick-based), hub peak and final RSS.
    pub async fn stop(self) -> Value {
        let secs = self.t0.elapsed().as_secs_f64();
        let hub_cpu = cpu_secs(&self.pid.to_string()).unwrap_or(f64::NAN) - self.hub_cpu0;
        let self_cpu = cpu_secs("self").unwrap_or(f64::NAN) - self.self_cpu0;
        let (b1, t1) = machine_ticks().unwrap_or((0, 0));
        let _ = self.stop.send(true);
        let peak = self.peak.await.unwrap_or(0);
        let dt = t1.saturating_sub(self.machine0.1);
        let busy = if dt > 0 {
            100.0 * b1.saturating_sub(self.machine0.0) as f64 / dt as f64
        } else {
            f64::NAN
        };
        json!({
            "seconds": secs,
            "hub_cpu_pct": 100.0 * hub_cpu / secs,
            "loadgen_cpu_pct": 100.0 * self_cpu / secs,
            "machine_busy_pct": busy,
            "hub_peak_rss_kib": peak,
            "hub_rss_kib_end": rss_kib(self.pid),
        })
    }
}
