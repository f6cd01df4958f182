//! Rate limits per agent and per client address (SPEC §6).
//!
//! A keyed GCRA limiter (one "theoretical arrival time" per key) written
//! here rather than taken from `governor`: governor's keyed store grows with
//! every distinct key until someone calls `retain_recent`, and the issue asks
//! for bounded memory whatever the number of addresses. Here each shard
//! holds at most a fixed number of keys; a full shard first drops keys whose
//! budget has fully refilled (forgetting them changes nothing), then the
//! key that refills soonest (which can only make that key's next request
//! more lenient, never stricter).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::time::Instant;

use parking_lot::Mutex;

const SHARDS: usize = 16;

/// A sustained rate and a burst. `per_sec == 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per second, sustained.
    pub per_sec: u32,
    /// Requests allowed at once after an idle period.
    pub burst: u32,
}

impl Rate {
    /// `per_sec` with a burst of `burst`.
    pub const fn new(per_sec: u32, burst: u32) -> Self {
        Self { per_sec, burst }
    }

    /// No limit.
    pub const OFF: Self = Self::new(0, 0);
}

/// The limits of the REST API and of WebSocket requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// REST requests per authenticated agent.
    pub rest_per_agent: Rate,
    /// REST requests (and `/ws` upgrades) per client IP address.
    pub rest_per_address: Rate,
    /// WebSocket requests (chat sends, typing, dispatches, …) per agent;
    /// `ping` and `ack` are not counted.
    pub ws_per_agent: Rate,
    /// WebSocket requests per client IP address.
    pub ws_per_address: Rate,
    /// Keys remembered per limiter at most (memory bound).
    pub max_keys: usize,
}

impl Default for RateLimits {
    /// One agent polling 150 REST requests a second is refused once its
    /// burst is spent (the predecessor's acceptance scenario), while other
    /// agents behind the same address keep working.
    fn default() -> Self {
        Self {
            rest_per_agent: Rate::new(50, 100),
            rest_per_address: Rate::new(500, 1000),
            ws_per_agent: Rate::new(200, 400),
            ws_per_address: Rate::new(2000, 4000),
            max_keys: 65_536,
        }
    }
}

/// One keyed limiter.
#[derive(Debug)]
pub struct Limiter {
    /// Nanoseconds between requests at the sustained rate.
    interval: u64,
    /// How far ahead of now the arrival time may run (burst × interval).
    tolerance: u64,
    cap_per_shard: usize,
    shards: Vec<Mutex<HashMap<String, u64>>>,
    hasher: std::collections::hash_map::RandomState,
}

/// Nanoseconds on a monotonic clock shared by all limiters.
pub fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl Limiter {
    /// A limiter for `rate`, or `None` when the rate is off.
    pub fn new(rate: Rate, max_keys: usize) -> Option<Self> {
        if rate.per_sec == 0 {
            return None;
        }
        let interval = 1_000_000_000 / u64::from(rate.per_sec);
        Some(Self {
            interval,
            tolerance: interval * u64::from(rate.burst.max(1)),
            cap_per_shard: (max_keys / SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        })
    }

    /// Take one request for `key` at `now` (ns); `Err` carries how long to
    /// wait, in milliseconds, before the next request would pass.
    pub fn check_at(&self, key: &str, now: u64) -> Result<(), u64> {
        let shard = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        let mut map = self.shards[shard].lock();
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        let next = tat + self.interval;
        if next - now > self.tolerance {
            let wait_ns = next - now - self.tolerance;
            return Err(wait_ns.div_ceil(1_000_000).max(1));
        }
        if let Some(t) = map.get_mut(key) {
            *t = next;
        } else {
            if map.len() >= self.cap_per_shard {
                map.retain(|_, t| *t > now);
                if map.len() >= self.cap_per_shard {
                    let soonest = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone());
                    if let Some(k) = soonest {
                        map.remove(&k);
                    }
                }
            }
            map.insert(key.to_owned(), next);
        }
        Ok(())
    }

    /// [`Limiter::check_at`] now.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        self.check_at(key, now_ns())
    }

    /// Keys remembered (for tests of the memory bound).
    pub fn keys(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// The four limiters of a server.
#[derive(Debug)]
pub struct Limiters {
    /// REST per agent.
    pub rest_agent: Option<Limiter>,
    /// REST per address.
    pub rest_address: Option<Limiter>,
    /// WebSocket per agent.
    pub ws_agent: Option<Limiter>,
    /// WebSocket per address.
    pub ws_address: Option<Limiter>,
}

impl Limiters {
    /// Limiters for these limits.
    pub fn new(l: &RateLimits) -> Self {
        Self {
            rest_agent: Limiter::new(l.rest_per_agent, l.max_keys),
            rest_address: Limiter::new(l.rest_per_address, l.max_keys),
            ws_agent: Limiter::new(l.ws_per_agent, l.max_keys),
            ws_address: Limiter::new(l.ws_per_address, l.max_keys),
        }
    }
}

/// Check an optional limiter.
pub fn check(l: Option<&Limiter>, key: &str) -> Result<(), u64> {
    l.map_or(Ok(()), |l| l.check(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn burst_then_sustained_rate() {
        let l = Limiter::new(Rate::new(10, 5), 100).expect("on");
        for _ in 0..5 {
            assert!(l.check_at("a", 0).is_ok());
        }
        let wait = l.check_at("a", 0).expect_err("burst spent");
        assert_eq!(wait, 100, "one interval of a 10/s rate");
        assert!(l.check_at("a", 100 * MS).is_ok(), "refilled one");
        assert!(l.check_at("a", 100 * MS).is_err());
        assert!(l.check_at("b", 0).is_ok(), "keys are independent");
    }

    #[test]
    fn refused_requests_do_not_spend_budget() {
        let l = Limiter::new(Rate::new(1, 1), 100).expect("on");
        assert!(l.check_at("a", 0).is_ok());
        for _ in 0..100 {
            assert!(l.check_at("a", 10 * MS).is_err());
        }
        assert!(l.check_at("a", 1000 * MS).is_ok());
    }

    #[test]
    fn memory_stays_bounded_under_many_addresses() {
        let l = Limiter::new(Rate::new(1, 1), 1024).expect("on");
        for i in 0..100_000u64 {
            let _ = l.check_at(&format!("10.0.{}.{}", i / 256, i % 256), i);
        }
        assert!(l.keys() <= 1024, "kept {} keys", l.keys());
    }

    #[test]
    fn off_is_none() {
        assert!(Limiter::new(Rate::OFF, 10).is_none());
    }
}
