//! Configuration of `clawnet serve`: defaults < TOML file < `CLAWNET_*`
//! environment < flags, every key validated, every problem reported at once.
//!
//! One table lists every key with its environment variable and rule, so the
//! file, the environment and `--set key=value` flags are read the same way
//! and a key unknown to the table is an error wherever it comes from.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use clawnet_core::{HubConfig, TaskConfig};
use clawnet_server::ServerOptions;

/// Where a value came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    File,
    Env,
    Flag,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::File => "config file",
            Self::Env => "environment",
            Self::Flag => "flag",
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Int { min: u64, max: u64 },
    Str,
    Addr,
    List,
}

struct Key {
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

const KEYS: &[Key] = &[
    Key {
        name: "listen",
        kind: Kind::Addr,
        help: "address to listen on",
    },
    Key {
        name: "store",
        kind: Kind::Str,
        help: "state store: memory or sqlite://PATH[?synchronous=full]",
    },
    Key {
        name: "master_token",
        kind: Kind::Str,
        help: "the master credential (at least 32 characters)",
    },
    Key {
        name: "log_level",
        kind: Kind::Str,
        help: "tracing filter, e.g. info or clawnet=debug",
    },
    Key {
        name: "chat.max_payload_bytes",
        kind: Kind::Int {
            min: 64,
            max: 16 << 20,
        },
        help: "largest chat payload",
    },
    Key {
        name: "chat.max_json_depth",
        kind: Kind::Int { min: 2, max: 128 },
        help: "deepest payload nesting",
    },
    Key {
        name: "chat.retention_messages",
        kind: Kind::Int {
            min: 1,
            max: 1_000_000,
        },
        help: "messages kept per room in memory",
    },
    Key {
        name: "chat.retention_days",
        kind: Kind::Int {
            min: 1,
            max: 36_500,
        },
        help: "message age kept (the retention sweep removes older ones)",
    },
    Key {
        name: "chat.retention_sweep_secs",
        kind: Kind::Int {
            min: 1,
            max: 86_400,
        },
        help: "how often the retention sweep runs",
    },
    Key {
        name: "chat.dedupe_window_secs",
        kind: Kind::Int {
            min: 0,
            max: 86_400,
        },
        help: "sender dedupe window",
    },
    Key {
        name: "chat.dedupe_max_entries",
        kind: Kind::Int {
            min: 1,
            max: 10_000_000,
        },
        help: "dedupe keys kept",
    },
    Key {
        name: "chat.history_max_limit",
        kind: Kind::Int {
            min: 1,
            max: 10_000,
        },
        help: "largest history page",
    },
    Key {
        name: "chat.typing_min_interval_ms",
        kind: Kind::Int {
            min: 0,
            max: 60_000,
        },
        help: "typing rate limit",
    },
    Key {
        name: "presence.idle_after_secs",
        kind: Kind::Int {
            min: 1,
            max: 86_400,
        },
        help: "inactivity before idle",
    },
    Key {
        name: "presence.heartbeat_interval_secs",
        kind: Kind::Int { min: 1, max: 3_600 },
        help: "client heartbeat interval",
    },
    Key {
        name: "presence.heartbeat_timeout_secs",
        kind: Kind::Int { min: 2, max: 7_200 },
        help: "silence before offline",
    },
    Key {
        name: "ws.outbound_queue",
        kind: Kind::Int {
            min: 16,
            max: 1_000_000,
        },
        help: "frames queued per connection",
    },
    Key {
        name: "ws.handshake_timeout_secs",
        kind: Kind::Int { min: 1, max: 300 },
        help: "time to send connect",
    },
    Key {
        name: "ws.max_frame_bytes",
        kind: Kind::Int {
            min: 1024,
            max: 64 << 20,
        },
        help: "largest WebSocket message",
    },
    Key {
        name: "ws.allowed_origins",
        kind: Kind::List,
        help: "browser origins allowed on /ws (comma-separated in env)",
    },
    Key {
        name: "tasks.lease_secs",
        kind: Kind::Int {
            min: 1,
            max: 86_400,
        },
        help: "a running attempt without progress for this long has failed",
    },
    Key {
        name: "tasks.max_attempts",
        kind: Kind::Int { min: 1, max: 100 },
        help: "attempts before a task fails for good",
    },
    Key {
        name: "tasks.backoff_base_ms",
        kind: Kind::Int {
            min: 0,
            max: 86_400_000,
        },
        help: "first retry delay (doubles per failure)",
    },
    Key {
        name: "tasks.backoff_cap_ms",
        kind: Kind::Int {
            min: 0,
            max: 86_400_000,
        },
        help: "longest retry delay",
    },
    Key {
        name: "tasks.dispatches_per_minute",
        kind: Kind::Int {
            min: 0,
            max: 10_000_000,
        },
        help: "dispatches per minute per dispatcher (0 = unlimited)",
    },
    Key {
        name: "tasks.max_pending",
        kind: Kind::Int {
            min: 0,
            max: 10_000_000,
        },
        help: "queued + delayed tasks per target (0 = unlimited)",
    },
    Key {
        name: "tasks.worker_concurrency",
        kind: Kind::Int { min: 1, max: 1024 },
        help: "tasks a worker connection runs at once by default",
    },
    Key {
        name: "tasks.breaker_failures",
        kind: Kind::Int {
            min: 0,
            max: 1_000_000,
        },
        help: "consecutive failed attempts that open a target's breaker (0 = never)",
    },
    Key {
        name: "tasks.breaker_reset_ms",
        kind: Kind::Int {
            min: 1,
            max: 86_400_000,
        },
        help: "how long an open breaker waits before one trial task",
    },
    Key {
        name: "tasks.alert_room",
        kind: Kind::Str,
        help: "private room for dead-letter alerts",
    },
    Key {
        name: "audit.file",
        kind: Kind::Str,
        help: "audit JSONL file (default: PATH.audit.jsonl for sqlite://PATH, else none)",
    },
    Key {
        name: "limits.rest_per_agent",
        kind: Kind::Str,
        help: "REST requests per agent: RATE/BURST per second, or off (default 50/100)",
    },
    Key {
        name: "limits.rest_per_address",
        kind: Kind::Str,
        help: "REST requests per client IP: RATE/BURST, or off (default 500/1000)",
    },
    Key {
        name: "limits.ws_per_agent",
        kind: Kind::Str,
        help: "WebSocket requests per agent (not ping/ack): RATE/BURST, or off (default 200/400)",
    },
    Key {
        name: "limits.ws_per_address",
        kind: Kind::Str,
        help: "WebSocket requests per client IP: RATE/BURST, or off (default 2000/4000)",
    },
    Key {
        name: "defender.mode",
        kind: Kind::Str,
        help: "enforce (hold review, refuse block), audit (record only) or off",
    },
    Key {
        name: "defender.injection_review",
        kind: Kind::Str,
        help: "prompt-injection score (0..1) from which an item is held for review",
    },
    Key {
        name: "defender.injection_block",
        kind: Kind::Str,
        help: "prompt-injection score (0..1) from which an item is refused",
    },
    Key {
        name: "defender.command_review",
        kind: Kind::Str,
        help: "command-risk score (0..1) from which an item is held for review",
    },
    Key {
        name: "defender.command_block",
        kind: Kind::Str,
        help: "command-risk score (0..1) from which an item is refused",
    },
    Key {
        name: "defender.timeout_ms",
        kind: Kind::Int { min: 1, max: 60_000 },
        help: "longest an evaluation may take (default 50)",
    },
    Key {
        name: "defender.concurrency",
        kind: Kind::Int { min: 1, max: 4096 },
        help: "evaluations at once at most (default 64)",
    },
    Key {
        name: "defender.on_timeout",
        kind: Kind::Str,
        help: "decision when an evaluation times out: allow, review (default) or block",
    },
    Key {
        name: "defender.ledger",
        kind: Kind::Str,
        help: "quarantine ledger JSONL (default: PATH.quarantine.jsonl for sqlite://PATH, else memory only)",
    },
    Key {
        name: "defender.reputation_url",
        kind: Kind::Str,
        help: "VirusTotal-compatible API base URL for URL and file-hash lookups (off when unset)",
    },
    Key {
        name: "defender.reputation_key",
        kind: Kind::Str,
        help: "API key sent as x-apikey to the reputation API",
    },
    Key {
        name: "defender.reputation_timeout_ms",
        kind: Kind::Int { min: 1, max: 30_000 },
        help: "reputation lookup time limit (default 1500)",
    },
    Key {
        name: "shutdown.deadline_secs",
        kind: Kind::Int { min: 1, max: 3600 },
        help: "on SIGTERM, longest wait for connections and writes to finish (default 10)",
    },
    Key {
        name: "integrity.interval_secs",
        kind: Kind::Int { min: 1, max: 86_400 },
        help: "how often the binary and config file are hashed again (default 60)",
    },
];

/// The environment variable of a key: `CLAWNET_` and the key upper-cased,
/// dots as underscores (`chat.max_payload_bytes` → `CLAWNET_CHAT_MAX_PAYLOAD_BYTES`).
pub fn env_name(key: &str) -> String {
    format!("CLAWNET_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Help text listing every key, for `clawnet serve --help`.
pub fn keys_help() -> String {
    let mut s =
        String::from("Configuration keys (TOML key / environment variable / --set key=value):\n");
    for k in KEYS {
        s.push_str(&format!(
            "  {:34} {:40} {}\n",
            k.name,
            env_name(k.name),
            k.help
        ));
    }
    s
}

#[derive(Debug, Clone)]
enum Raw {
    Toml(toml::Value),
    Text(String),
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub store: clawnet_store::StoreUrl,
    pub master_token: Option<String>,
    pub log_level: String,
    pub hub: HubConfig,
    pub server: ServerOptions,
    /// On SIGTERM, how long connections and writes may take to finish.
    pub shutdown_deadline: std::time::Duration,
}

/// Inputs to [`load`], gathered by the caller so tests need not touch the
/// process environment.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Contents of the TOML file, if one was given.
    pub file: Option<String>,
    /// Environment variables (only `CLAWNET_*` are read).
    pub env: BTreeMap<String, String>,
    /// `key=value` pairs from flags, later ones winning.
    pub flags: Vec<(String, String)>,
}

fn flatten(prefix: &str, t: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) => flatten(&key, inner, out),
            other => out.push((key, other.clone())),
        }
    }
}

/// Merge and validate. On failure, every problem, one per line.
pub fn load(inputs: Inputs) -> Result<Config, Vec<String>> {
    let mut errors = Vec::new();
    let mut raw: BTreeMap<&'static str, (Source, Raw)> = BTreeMap::new();
    let known = |k: &str| KEYS.iter().find(|x| x.name == k).map(|x| x.name);

    if let Some(text) = &inputs.file {
        match text.parse::<toml::Table>() {
            Ok(t) => {
                let mut flat = Vec::new();
                flatten("", &t, &mut flat);
                for (k, v) in flat {
                    match known(&k) {
                        Some(name) => {
                            raw.insert(name, (Source::File, Raw::Toml(v)));
                        }
                        None => errors.push(format!("{k} (config file): unknown key")),
                    }
                }
            }
            Err(e) => errors.push(format!("config file: not valid TOML: {e}")),
        }
    }
    for k in KEYS {
        if let Some(v) = inputs.env.get(&env_name(k.name)) {
            raw.insert(k.name, (Source::Env, Raw::Text(v.clone())));
        }
    }
    for (k, v) in &inputs.flags {
        match known(k) {
            Some(name) => {
                raw.insert(name, (Source::Flag, Raw::Text(v.clone())));
            }
            None => errors.push(format!("{k} (flag): unknown key")),
        }
    }

    let mut ints: BTreeMap<&str, u64> = BTreeMap::new();
    let mut strs: BTreeMap<&str, String> = BTreeMap::new();
    let mut lists: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut listen = None;
    for k in KEYS {
        let Some((src, v)) = raw.get(k.name) else {
            continue;
        };
        let fail = |why: String| format!("{} ({src}): {why}", k.name);
        match (k.kind, v) {
            (Kind::Int { min, max }, v) => {
                let n = match v {
                    Raw::Toml(toml::Value::Integer(i)) => u64::try_from(*i).ok(),
                    Raw::Text(s) => s.trim().parse::<u64>().ok(),
                    _ => None,
                };
                match n {
                    Some(n) if (min..=max).contains(&n) => {
                        ints.insert(k.name, n);
                    }
                    Some(n) => errors.push(fail(format!("{n} is outside {min}..={max}"))),
                    None => errors.push(fail("expected a whole number".into())),
                }
            }
            (Kind::List, Raw::Toml(toml::Value::Array(a))) => {
                let items: Option<Vec<String>> =
                    a.iter().map(|x| x.as_str().map(str::to_owned)).collect();
                match items {
                    Some(items) => {
                        lists.insert(k.name, items);
                    }
                    None => errors.push(fail("expected a list of strings".into())),
                }
            }
            (Kind::List, Raw::Text(s)) => {
                lists.insert(
                    k.name,
                    s.split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .map(str::to_owned)
                        .collect(),
                );
            }
            (Kind::Str | Kind::Addr, v) => {
                let s = match v {
                    Raw::Toml(toml::Value::String(s)) => Some(s.clone()),
                    Raw::Text(s) => Some(s.clone()),
                    _ => None,
                };
                match (k.kind, s) {
                    (Kind::Addr, Some(s)) => match s.parse::<SocketAddr>() {
                        Ok(a) => listen = Some(a),
                        Err(_) => errors
                            .push(fail(format!("'{s}' is not an address like 127.0.0.1:3000"))),
                    },
                    (_, Some(s)) => {
                        strs.insert(k.name, s);
                    }
                    (_, None) => errors.push(fail("expected a string".into())),
                }
            }
            (Kind::List, _) => errors.push(fail("expected a list of strings".into())),
        }
    }

    let d = HubConfig::default();
    let audit_file = strs.remove("audit.file").map(std::path::PathBuf::from);
    let secs = |k: &str, dflt: u64| ints.get(k).map_or(dflt, |s| s * 1000);
    let hub = HubConfig {
        max_payload_bytes: ints
            .get("chat.max_payload_bytes")
            .map_or(d.max_payload_bytes, |v| *v as usize),
        max_json_depth: ints
            .get("chat.max_json_depth")
            .map_or(d.max_json_depth, |v| *v as usize),
        retention_messages: ints
            .get("chat.retention_messages")
            .map_or(d.retention_messages, |v| *v as u32),
        dedupe_window_ms: secs("chat.dedupe_window_secs", d.dedupe_window_ms),
        retention_ms: ints
            .get("chat.retention_days")
            .map_or(d.retention_ms, |v| v * 24 * 3600 * 1000),
        retention_sweep_ms: secs("chat.retention_sweep_secs", d.retention_sweep_ms),
        cursor_flush_ms: d.cursor_flush_ms,
        dedupe_max_entries: ints
            .get("chat.dedupe_max_entries")
            .map_or(d.dedupe_max_entries, |v| *v as usize),
        history_max_limit: ints
            .get("chat.history_max_limit")
            .map_or(d.history_max_limit, |v| *v as u32),
        typing_min_interval_ms: ints
            .get("chat.typing_min_interval_ms")
            .copied()
            .unwrap_or(d.typing_min_interval_ms),
        idle_after_ms: secs("presence.idle_after_secs", d.idle_after_ms),
        heartbeat_interval_ms: secs("presence.heartbeat_interval_secs", d.heartbeat_interval_ms),
        heartbeat_timeout_ms: secs("presence.heartbeat_timeout_secs", d.heartbeat_timeout_ms),
        outbound_queue: ints
            .get("ws.outbound_queue")
            .map_or(d.outbound_queue, |v| *v as usize),
        handshake_timeout_ms: secs("ws.handshake_timeout_secs", d.handshake_timeout_ms),
        sweep_interval_ms: d.sweep_interval_ms,
        defender: d.defender.clone(),
        integrity: d.integrity.clone(),
        tasks: {
            let t = d.tasks.clone();
            TaskConfig {
                lease_ms: secs("tasks.lease_secs", t.lease_ms),
                max_attempts: ints
                    .get("tasks.max_attempts")
                    .map_or(t.max_attempts, |v| *v as u32),
                backoff_base_ms: ints
                    .get("tasks.backoff_base_ms")
                    .copied()
                    .unwrap_or(t.backoff_base_ms),
                backoff_cap_ms: ints
                    .get("tasks.backoff_cap_ms")
                    .copied()
                    .unwrap_or(t.backoff_cap_ms),
                dispatches_per_minute: ints
                    .get("tasks.dispatches_per_minute")
                    .map_or(t.dispatches_per_minute, |v| *v as u32),
                max_pending: ints
                    .get("tasks.max_pending")
                    .map_or(t.max_pending, |v| *v as u32),
                worker_concurrency: ints
                    .get("tasks.worker_concurrency")
                    .map_or(t.worker_concurrency, |v| *v as usize),
                sweep_ms: t.sweep_ms,
                alert_room: strs.remove("tasks.alert_room").unwrap_or(t.alert_room),
                breaker_failures: ints
                    .get("tasks.breaker_failures")
                    .map_or(t.breaker_failures, |v| *v as u32),
                breaker_reset_ms: ints
                    .get("tasks.breaker_reset_ms")
                    .copied()
                    .unwrap_or(t.breaker_reset_ms),
            }
        },
        // Set below, once the store is known.
        audit_file: None,
    };
    if !clawnet_proto::ids::valid_room_name(&hub.tasks.alert_room) {
        errors.push(format!(
            "tasks.alert_room: '{}' is not a room name ([a-z0-9][a-z0-9._-]{{0,63}}, not global)",
            hub.tasks.alert_room
        ));
    }
    if hub.heartbeat_timeout_ms <= hub.heartbeat_interval_ms {
        errors.push(format!(
            "presence.heartbeat_timeout_secs: must be greater than presence.heartbeat_interval_secs ({} s)",
            hub.heartbeat_interval_ms / 1000
        ));
    }
    // Room for the frame around a maximal payload.
    let min_frame = hub.max_payload_bytes + 1024;
    let max_frame_bytes = ints
        .get("ws.max_frame_bytes")
        .map_or(hub.max_payload_bytes + 16 * 1024, |v| *v as usize);
    if max_frame_bytes < min_frame {
        errors.push(format!(
            "ws.max_frame_bytes: {max_frame_bytes} leaves no room for a {}-byte payload; use at least {min_frame}",
            hub.max_payload_bytes
        ));
    }
    let store = strs.remove("store").unwrap_or_else(|| "memory".to_owned());
    let store = match clawnet_store::StoreUrl::parse(&store) {
        Ok(u) => Some(u),
        Err(why) => {
            errors.push(format!("store: {why}"));
            None
        }
    };
    // The audit file: as configured, else beside a SQLite database; a memory
    // or PostgreSQL hub writes none unless told where (docs/OPERATIONS.md).
    let mut hub = hub;
    hub.audit_file = audit_file.or_else(|| match &store {
        Some(clawnet_store::StoreUrl::Sqlite { path, .. }) => {
            Some(std::path::PathBuf::from(format!("{path}.audit.jsonl")))
        }
        _ => None,
    });
    let limits = guard_settings(&mut hub, &ints, &mut strs, store.as_ref(), &mut errors);
    let master_token = strs.remove("master_token");
    if let Some(t) = &master_token {
        if t.len() < 32 {
            errors.push("master_token: must be at least 32 characters".to_owned());
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Config {
        listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000))),
        store: store.unwrap_or(clawnet_store::StoreUrl::Memory),
        master_token,
        log_level: strs
            .remove("log_level")
            .unwrap_or_else(|| "info".to_owned()),
        hub,
        server: ServerOptions {
            allowed_origins: lists.remove("ws.allowed_origins").unwrap_or_default(),
            max_frame_bytes,
            limits,
        },
        shutdown_deadline: std::time::Duration::from_secs(
            ints.get("shutdown.deadline_secs").copied().unwrap_or(10),
        ),
    })
}

/// `RATE/BURST` or `off`.
fn parse_rate(s: &str) -> Result<clawnet_server::limits::Rate, String> {
    use clawnet_server::limits::Rate;
    let s = s.trim();
    if s == "off" || s == "0" {
        return Ok(Rate::OFF);
    }
    let (rate, burst) = s.split_once('/').unwrap_or((s, s));
    match (rate.trim().parse::<u32>(), burst.trim().parse::<u32>()) {
        (Ok(r), Ok(b)) if b >= 1 => Ok(Rate::new(r, b)),
        _ => Err(format!("'{s}' is not RATE/BURST (like 50/100) or off")),
    }
}

/// The rate limits, the defender and host integrity, from their keys.
fn guard_settings(
    hub: &mut HubConfig,
    ints: &BTreeMap<&str, u64>,
    strs: &mut BTreeMap<&str, String>,
    store: Option<&clawnet_store::StoreUrl>,
    errors: &mut Vec<String>,
) -> clawnet_server::limits::RateLimits {
    use clawnet_core::defense::DefenderMode;
    use clawnet_defender::Decision;
    let mut limits = clawnet_server::limits::RateLimits::default();
    for (key, slot) in [
        ("limits.rest_per_agent", &mut limits.rest_per_agent),
        ("limits.rest_per_address", &mut limits.rest_per_address),
        ("limits.ws_per_agent", &mut limits.ws_per_agent),
        ("limits.ws_per_address", &mut limits.ws_per_address),
    ] {
        if let Some(v) = strs.remove(key) {
            match parse_rate(&v) {
                Ok(r) => *slot = r,
                Err(why) => errors.push(format!("{key}: {why}")),
            }
        }
    }
    let d = &mut hub.defender;
    if let Some(m) = strs.remove("defender.mode") {
        match DefenderMode::parse(&m) {
            Some(m) => d.mode = m,
            None => errors.push(format!("defender.mode: '{m}' is not enforce, audit or off")),
        }
    }
    for (key, slot) in [
        (
            "defender.injection_review",
            &mut d.thresholds.injection_review,
        ),
        (
            "defender.injection_block",
            &mut d.thresholds.injection_block,
        ),
        ("defender.command_review", &mut d.thresholds.command_review),
        ("defender.command_block", &mut d.thresholds.command_block),
    ] {
        if let Some(v) = strs.remove(key) {
            match v.trim().parse::<f32>() {
                Ok(x) if (0.0..=1.0).contains(&x) => *slot = x,
                _ => errors.push(format!("{key}: '{v}' is not a score between 0 and 1")),
            }
        }
    }
    if d.thresholds.injection_review > d.thresholds.injection_block
        || d.thresholds.command_review > d.thresholds.command_block
    {
        errors.push("defender: a review threshold is above its block threshold".to_owned());
    }
    if let Some(v) = ints.get("defender.timeout_ms") {
        d.timeout_ms = *v;
    }
    if let Some(v) = ints.get("defender.concurrency") {
        d.concurrency = *v as usize;
    }
    if let Some(v) = strs.remove("defender.on_timeout") {
        d.on_timeout = match v.as_str() {
            "allow" => Decision::Allow,
            "review" => Decision::Review,
            "block" => Decision::Block,
            _ => {
                errors.push(format!(
                    "defender.on_timeout: '{v}' is not allow, review or block"
                ));
                d.on_timeout
            }
        };
    }
    d.ledger = strs
        .remove("defender.ledger")
        .map(std::path::PathBuf::from)
        .or_else(|| match store {
            Some(clawnet_store::StoreUrl::Sqlite { path, .. }) => {
                Some(std::path::PathBuf::from(format!("{path}.quarantine.jsonl")))
            }
            _ => None,
        });
    let key = strs.remove("defender.reputation_key");
    if let Some(url) = strs.remove("defender.reputation_url") {
        let ms = ints
            .get("defender.reputation_timeout_ms")
            .copied()
            .unwrap_or(1500);
        d.reputation = Some(clawnet_defender::reputation::ReputationConfig {
            base_url: url.trim_end_matches('/').to_owned(),
            api_key: key.unwrap_or_default(),
            timeout: std::time::Duration::from_millis(ms),
            cache_ttl: std::time::Duration::from_secs(3600),
            cache_max: 10_000,
        });
    }
    if let Some(s) = ints.get("integrity.interval_secs") {
        hub.integrity.interval_ms = s * 1000;
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_spec_defaults() {
        let c = load(Inputs::default()).expect("defaults load");
        assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(c.hub.max_payload_bytes, 65536);
        assert_eq!(c.hub.retention_messages, 1000);
        assert_eq!(c.hub.dedupe_window_ms, 600_000);
        assert_eq!(c.hub.idle_after_ms, 300_000);
        assert_eq!(c.hub.audit_file, None, "no audit file for a memory store");
    }

    #[test]
    fn the_audit_file_defaults_beside_a_sqlite_store() {
        let c = load(Inputs {
            flags: vec![("store".into(), "sqlite:///var/lib/clawnet/hub.db".into())],
            ..Default::default()
        })
        .expect("loads");
        assert_eq!(
            c.hub.audit_file,
            Some(std::path::PathBuf::from(
                "/var/lib/clawnet/hub.db.audit.jsonl"
            ))
        );
        let c = load(Inputs {
            env: env(&[("CLAWNET_AUDIT_FILE", "/srv/audit.jsonl")]),
            flags: vec![("store".into(), "sqlite://hub.db".into())],
            ..Default::default()
        })
        .expect("loads");
        assert_eq!(
            c.hub.audit_file,
            Some(std::path::PathBuf::from("/srv/audit.jsonl"))
        );
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let c = load(Inputs {
            file: Some("listen = \"127.0.0.1:1\"\n[chat]\nretention_messages = 5\nmax_payload_bytes = 1000\n".into()),
            env: env(&[("CLAWNET_LISTEN", "127.0.0.1:2"), ("CLAWNET_CHAT_RETENTION_MESSAGES", "6")]),
            flags: vec![("listen".into(), "127.0.0.1:3".into())],
        })
        .expect("loads");
        assert_eq!(c.listen.port(), 3);
        assert_eq!(c.hub.retention_messages, 6);
        assert_eq!(c.hub.max_payload_bytes, 1000);
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let errs = load(Inputs {
            file: Some("colour = \"red\"\n[chat]\nretention_messages = 0\n".into()),
            env: env(&[
                ("CLAWNET_LISTEN", "nowhere"),
                ("CLAWNET_WS_OUTBOUND_QUEUE", "many"),
            ]),
            flags: vec![("nope".into(), "1".into())],
        })
        .expect_err("must fail");
        let all = errs.join("\n");
        for needle in [
            "colour",
            "chat.retention_messages",
            "listen",
            "ws.outbound_queue",
            "nope",
        ] {
            assert!(all.contains(needle), "missing {needle} in:\n{all}");
        }
        assert_eq!(errs.len(), 5, "{all}");
    }
}
