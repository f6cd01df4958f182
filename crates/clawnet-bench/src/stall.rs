//! Timer-gap probe, like the peer benchmark's `lib/stallprobe.js`: an OS
//! thread (not a task, so a busy async runtime does not count) sleeps 5 ms
//! in a loop and records every gap longer than 25 ms. On the benchmark VM the
//! whole guest pauses now and then; those pauses land in latency maxima.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const INTERVAL: Duration = Duration::from_millis(5);
const RECORD_NS: u64 = 25_000_000;

/// A running probe; stopped when dropped.
#[derive(Debug)]
pub struct StallProbe {
    epoch: Instant,
    gaps: Arc<Mutex<Vec<(u64, u64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StallProbe {
    /// Start the probe; gap times are nanoseconds since `epoch`.
    pub fn start(epoch: Instant) -> Self {
        let gaps = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (gaps.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("stall-probe".into())
            .spawn(move || {
                let mut last = Instant::now();
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(INTERVAL);
                    let t = Instant::now();
                    let gap = t.duration_since(last).as_nanos() as u64;
                    if gap > RECORD_NS {
                        let start = last.saturating_duration_since(epoch).as_nanos() as u64;
                        if let Ok(mut v) = g.lock() {
                            v.push((start, gap));
                        }
                    }
                    last = t;
                }
            })
            .ok();
        Self {
            epoch,
            gaps,
            stop,
            thread,
        }
    }

    /// Gaps of at least `min_ms` overlapping `[from_ns, to_ns)` (since the
    /// epoch): count, longest and total, in ms.
    pub fn window(&self, from_ns: u64, to_ns: u64, min_ms: f64) -> Value {
        let min = (min_ms * 1e6) as u64;
        let v = self.gaps.lock().map(|g| g.clone()).unwrap_or_default();
        let hits: Vec<u64> = v
            .iter()
            .filter(|(s, d)| s + d > from_ns && *s < to_ns && *d >= min)
            .map(|(_, d)| *d)
            .collect();
        json!({
            "min_ms": min_ms,
            "count": hits.len(),
            "max_ms": hits.iter().copied().max().unwrap_or(0) as f64 / 1e6,
            "total_ms": hits.iter().sum::<u64>() as f64 / 1e6,
            "probe_running": self.thread.is_some(),
        })
    }

    /// The epoch gap times are measured from.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }
}

impl Drop for StallProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
