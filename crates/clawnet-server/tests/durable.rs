//! The hub on a SQLite file: restarts, store failures, ordering under load.

mod common;

use std::sync::Arc;
use std::time::Duration;

use clawnet_client::ClientError;
use clawnet_core::store::Store;
use clawnet_core::HubConfig;
use clawnet_store::sqlite::{SqliteStore, Sync};
use common::*;
use serde_json::json;

fn sqlite(path: &std::path::Path) -> Option<Arc<dyn Store>> {
    Some(Arc::new(
        SqliteStore::open(path, Sync::Normal).expect("open sqlite"),
    ))
}

/// Send, ack part, stop the hub, start a new one on the same store: history,
/// cursors, `seq` and dedupe must all carry over. `open` opens the store
/// anew each time, as a restarted process would.
async fn restart_scenario<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Store>>,
{
    let t = start_on(HubConfig::default(), None, Some(open().await)).await;
    let (ts, tr) = (t.agent("snd").await, t.agent("rcv").await);
    let mut r = t.raw_connected(&tr, json!({})).await;
    let mut sent = Vec::new();
    for i in 1..=3 {
        let (_, m) = t
            .rest(&ts)
            .send(&send_params(
                "global",
                None,
                &format!("m{i}"),
                Some(&format!("k{i}")),
            ))
            .await
            .expect("send");
        sent.push(m.message);
    }
    assert_eq!(r.messages(3).await.len(), 3);
    assert_eq!(
        r.req("ack", json!({"room":"global","seq":2})).await["ok"],
        true
    );
    drop(r);
    // What `clawnet serve` does on SIGTERM before exiting.
    t.hub.flush_cursors().await.expect("flush cursors");
    drop(t);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Same store, new hub: the same tokens still work.
    let t = start_on(HubConfig::default(), None, Some(open().await)).await;
    let h = t
        .rest(&tr)
        .history("global", None, None)
        .await
        .expect("history");
    assert_eq!(h.messages, sent, "history survives the restart unchanged");
    // The agent replays exactly what it had not acknowledged.
    let mut r = t.raw(&tr).await;
    assert_eq!(r.req("connect", json!({})).await["ok"], true);
    let replayed = r.messages(1).await;
    assert_eq!(replayed[0]["seq"], 3);
    let done = r.wait_event("replay.done").await;
    assert_eq!(done["data"]["replayed"], 1);
    // seq continues; a retry inside the window still dedupes.
    let (status, m) = t
        .rest(&ts)
        .send(&send_params("global", None, "m4", Some("k4")))
        .await
        .expect("send");
    assert_eq!((status, m.message.seq), (201, 4));
    let (status, again) = t
        .rest(&ts)
        .send(&send_params("global", None, "m2", Some("k2")))
        .await
        .expect("retry");
    assert_eq!(status, 200);
    assert_eq!(again.message, sent[1]);
    assert_eq!(
        t.rest(&tr)
            .history("global", None, None)
            .await
            .expect("h")
            .messages
            .len(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_sqlite_keeps_history_cursors_seq_and_dedupe() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("hub.db");
    restart_scenario(|| {
        let db = db.clone();
        async move { sqlite(&db).expect("store") }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_postgres_keeps_history_cursors_seq_and_dedupe() {
    let Some(server) = clawnet_store::testing::server_url() else {
        return;
    };
    let schema = clawnet_store::testing::Schema::create(&server).await;
    let url = clawnet_store::StoreUrl::parse(&schema.url()).expect("postgres url");
    restart_scenario(|| {
        let url = url.clone();
        async move { clawnet_store::open(&url).await.expect("open postgres") }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_file_refuses_writes_as_unavailable_and_serves_reads() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("hub.db");
    let t = start_on(HubConfig::default(), None, sqlite(&db)).await;
    let ts = t.agent("lock").await;
    t.rest(&ts)
        .send(&send_params("global", None, "before", None))
        .await
        .expect("send");

    // Audit entries still queued would reach the writer first and spend the
    // busy timeout themselves, so the send under test would outlast the lock.
    t.hub.flush_audit().await;
    // Another process takes the write lock and keeps it past the busy timeout.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let db2 = db.clone();
    let holder = std::thread::spawn(move || {
        let c = rusqlite::Connection::open(&db2).expect("open");
        c.execute_batch("BEGIN IMMEDIATE").expect("lock");
        locked_tx.send(()).expect("signal");
        std::thread::sleep(Duration::from_secs(7));
        c.execute_batch("ROLLBACK").expect("unlock");
    });
    locked_rx.recv().expect("locked");
    match t
        .rest(&ts)
        .send(&send_params("global", None, "during", None))
        .await
    {
        Err(ClientError::Http(503, b)) => assert_eq!(b.code.as_str(), "unavailable"),
        other => panic!("expected 503 unavailable, got {other:?}"),
    }
    // Reads keep working meanwhile.
    let h = t
        .rest(&ts)
        .history("global", None, None)
        .await
        .expect("reads work");
    assert_eq!(h.messages.len(), 1);
    holder.join().expect("holder");
    let (status, m) = t
        .rest(&ts)
        .send(&send_params("global", None, "after", None))
        .await
        .expect("send");
    assert_eq!(
        (status, m.message.seq),
        (201, 2),
        "the refused send left no trace, not even a seq"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_never_make_readers_skip_a_seq() {
    let dir = tempfile::tempdir().expect("tmp");
    let t = start_on(
        HubConfig::default(),
        None,
        sqlite(&dir.path().join("hub.db")),
    )
    .await;
    let reader_tok = t.agent("reader").await;
    let mut live = t.raw_connected(&reader_tok, json!({})).await;
    let mut senders = Vec::new();
    for s in 0..10 {
        let tok = t.agent(&format!("sender{s}")).await;
        let rest = t.rest(&tok);
        senders.push(tokio::spawn(async move {
            for i in 0..30 {
                rest.send(&send_params(
                    "global",
                    None,
                    &format!("{s}-{i}"),
                    Some(&format!("{s}-{i}")),
                ))
                .await
                .expect("send");
            }
        }));
    }
    // A second reader keeps reconnecting and resuming while the senders run.
    let addr = t.addr;
    let tok2 = t.agent("replayer").await;
    let replayer = tokio::spawn(async move {
        let mut last = 0u64;
        while last < 300 {
            let mut r = Raw::open(addr, &tok2).await.expect("open");
            let res = r.req("connect", json!({"resume":{"global": last}})).await;
            assert_eq!(res["ok"], true);
            for m in r.messages(10.min(300 - last as usize)).await {
                let seq = m["seq"].as_u64().expect("seq");
                assert_eq!(
                    seq,
                    last + 1,
                    "replaying reader skipped from {last} to {seq}"
                );
                last = seq;
            }
        }
        last
    });
    let mut last = 0u64;
    for m in live.messages(300).await {
        let seq = m["seq"].as_u64().expect("seq");
        assert_eq!(seq, last + 1, "live reader skipped from {last} to {seq}");
        last = seq;
    }
    for s in senders {
        s.await.expect("sender");
    }
    assert_eq!(replayer.await.expect("replayer"), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_sweep_trims_old_messages_and_replay_signals_the_gap() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Arc::new(clawnet_core::clock::ManualClock::new(1_000_000_000));
    let cfg = HubConfig {
        retention_ms: 24 * 3600 * 1000,
        ..Default::default()
    };
    let t = start_on(cfg, Some(clock.clone()), sqlite(&dir.path().join("hub.db"))).await;
    let (ts, tr) = (t.agent("old").await, t.agent("late").await);
    // A room that keeps only its newest 2 messages, whatever their age.
    t.rest(&ts)
        .post::<serde_json::Value>("/rooms", &json!({"name":"short","retention":2}))
        .await
        .expect("room");
    for i in 0..5 {
        t.rest(&ts)
            .send(&send_params("global", None, &format!("g{i}"), None))
            .await
            .expect("send");
    }
    clock.advance(2 * 24 * 3600 * 1000);
    t.rest(&ts)
        .send(&send_params("global", None, "fresh", None))
        .await
        .expect("send");
    for i in 0..5 {
        t.rest(&ts)
            .send(&send_params("room", Some("short"), &format!("s{i}"), None))
            .await
            .expect("send");
    }
    let swept = t.hub.sweep_retention().await.expect("sweep");
    assert_eq!(
        swept.messages,
        5 + 3,
        "five aged out of global, three over the room's count"
    );

    let h = t
        .rest(&ts)
        .history("global", None, None)
        .await
        .expect("history");
    assert_eq!(h.messages.len(), 1);
    assert_eq!((h.first_available_seq, h.last_seq), (6, 6));
    let short = t
        .rest(&ts)
        .history("short", None, None)
        .await
        .expect("history");
    assert_eq!(
        short.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![4, 5]
    );

    let mut r = t.raw(&tr).await;
    assert_eq!(
        r.req("connect", json!({"resume":{"global":2}})).await["ok"],
        true
    );
    let gap = r.wait_event("replay.gap").await;
    assert_eq!(gap["data"]["first_available_seq"], 6);
    assert_eq!(r.messages(1).await[0]["seq"], 6);
}
