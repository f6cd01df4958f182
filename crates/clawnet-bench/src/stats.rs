//! Latency histogram and medians over repetitions.

use serde_json::{json, Map, Value};

const BUCKETS: usize = 2200;
const BASE_MS: f64 = 0.001;

/// Log-bucketed latency histogram, the same scheme as the peer benchmark's
/// `Hist` (1% relative bucket width from 1 µs): min and max are exact,
/// percentiles are bucket upper bounds (at most 1% high).
#[derive(Debug, Clone)]
pub struct Hist {
    counts: Vec<u64>,
    n: u64,
    sum_ms: f64,
    min_ms: f64,
    max_ms: f64,
}

impl Default for Hist {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            n: 0,
            sum_ms: 0.0,
            min_ms: f64::INFINITY,
            max_ms: f64::NEG_INFINITY,
        }
    }
}

impl Hist {
    fn idx(v: f64) -> usize {
        if v <= BASE_MS {
            0
        } else {
            (((v / BASE_MS).ln() / 1.01f64.ln()).ceil() as usize).min(BUCKETS - 1)
        }
    }

    fn upper(i: usize) -> f64 {
        BASE_MS * 1.01f64.powi(i as i32)
    }

    /// Record one value in nanoseconds.
    pub fn record_ns(&mut self, ns: u64) {
        let v = ns as f64 / 1e6;
        self.counts[Self::idx(v)] += 1;
        self.n += 1;
        self.sum_ms += v;
        self.min_ms = self.min_ms.min(v);
        self.max_ms = self.max_ms.max(v);
    }

    /// Add another histogram's counts.
    pub fn merge(&mut self, o: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.n += o.n;
        self.sum_ms += o.sum_ms;
        self.min_ms = self.min_ms.min(o.min_ms);
        self.max_ms = self.max_ms.max(o.max_ms);
    }

    /// Number of values.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The `p`th percentile in ms.
    pub fn pct(&self, p: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let target = ((p / 100.0) * self.n as f64).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (i, c) in self.counts.iter().enumerate() {
            acc += c;
            if acc >= target {
                return Some(Self::upper(i).min(self.max_ms));
            }
        }
        Some(self.max_ms)
    }

    /// `{n, p50, p90, p99, p999, max, mean}` in ms (null when empty).
    pub fn stats(&self) -> Value {
        let max = (self.n > 0).then_some(self.max_ms);
        let mean = (self.n > 0).then(|| self.sum_ms / self.n as f64);
        json!({
            "n": self.n,
            "p50": self.pct(50.0),
            "p90": self.pct(90.0),
            "p99": self.pct(99.0),
            "p999": self.pct(99.9),
            "max": max,
            "mean": mean,
        })
    }
}

/// Which statistic [`over_reps`] takes.
#[derive(Debug, Clone, Copy)]
pub enum Pick {
    /// Smallest.
    Min,
    /// Median (mean of the middle two for an even count).
    Median,
    /// Largest.
    Max,
}

fn pick(mut v: Vec<f64>, p: Pick) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(match p {
        Pick::Min => v[0],
        Pick::Max => v[v.len() - 1],
        Pick::Median => {
            let m = v.len() / 2;
            if v.len() % 2 == 1 {
                v[m]
            } else {
                (v[m - 1] + v[m]) / 2.0
            }
        }
    })
}

/// Per-leaf statistic over same-shaped JSON values (one per repetition):
/// numbers become their min/median/max, objects recurse, anything else is
/// left out.
pub fn over_reps(values: &[&Value], p: Pick) -> Option<Value> {
    let first = values.first()?;
    match first {
        Value::Number(_) => {
            let nums: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
            pick(nums, p).map(|x| json!(x))
        }
        Value::Object(m) => {
            let mut out = Map::new();
            for k in m.keys() {
                let sub: Vec<&Value> = values.iter().filter_map(|v| v.get(k)).collect();
                if let Some(v) = over_reps(&sub, p) {
                    out.insert(k.clone(), v);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Null => {
            // A leaf that was null in the first repetition (e.g. no samples).
            let rest: Vec<&Value> = values.iter().copied().filter(|v| !v.is_null()).collect();
            if rest.is_empty() {
                None
            } else {
                over_reps(&rest, p)
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_one_percent() {
        let mut h = Hist::default();
        for i in 1..=1000u64 {
            h.record_ns(i * 1_000_000);
        }
        let p50 = h.pct(50.0).expect("p50");
        assert!((500.0..=505.0).contains(&p50), "{p50}");
        assert_eq!(h.pct(100.0), Some(1000.0));
    }

    #[test]
    fn medians_over_reps() {
        let a = json!({"x": 1.0, "y": {"z": 10}, "s": "a"});
        let b = json!({"x": 3.0, "y": {"z": 30}, "s": "b"});
        let c = json!({"x": 2.0, "y": {"z": 20}, "s": "c"});
        let m = over_reps(&[&a, &b, &c], Pick::Median).expect("median");
        assert_eq!(m, json!({"x": 2.0, "y": {"z": 20.0}}));
    }
}
