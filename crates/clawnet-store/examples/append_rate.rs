//! Store-level append rate: N concurrent appenders against one SQLite file.
//! `cargo run --release -p clawnet-store --example append_rate -- [tasks] [seconds]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clawnet_core::store::{AppendLimits, MessageDraft, Store};
use clawnet_proto::ToType;
use clawnet_store::sqlite::{SqliteStore, Sync};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tasks: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let dir = std::env::temp_dir().join(format!("cn-append-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.join("a.db"), Sync::Normal).expect("open"));
    let limits = AppendLimits {
        dedupe_window_ms: 600_000,
        dedupe_max_entries: 100_000,
        retention: 1000,
    };
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(secs);
    let mut hs = Vec::new();
    for t in 0..tasks {
        let (store, done) = (store.clone(), done.clone());
        hs.push(tokio::spawn(async move {
            let mut i = 0u64;
            let mut lat = Vec::new();
            while Instant::now() < end {
                let mut payload = serde_json::Map::new();
                payload.insert("text".into(), serde_json::Value::String("x".repeat(100)));
                let d = MessageDraft {
                    id: format!("{t}-{i}"),
                    ts: i,
                    from_id: format!("a{t}"),
                    from_handle: format!("a{t}"),
                    to_type: ToType::Global,
                    room: "global".into(),
                    payload,
                    dedupe_key: Some(format!("k{i}")),
                    thread_id: None,
                    reply_to: None,
                    mentions: vec![],
                };
                let s = Instant::now();
                store.append_message(d, limits).await.expect("append");
                lat.push(s.elapsed().as_micros() as u64);
                i += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for h in hs {
        lat.extend(h.await.expect("task"));
    }
    lat.sort_unstable();
    let n = done.load(Ordering::Relaxed);
    println!(
        "{{\"tasks\":{tasks},\"appends_per_sec\":{:.0},\"p50_us\":{},\"p99_us\":{}}}",
        n as f64 / secs as f64,
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
    let _ = std::fs::remove_dir_all(dir);
}
