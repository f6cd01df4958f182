//! Graceful shutdown: SIGTERM while agents are sending. Every agent is told
//! to reconnect elsewhere, the process exits 0 within its deadline, and
//! every message it acknowledged is in the store afterwards, once.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use common::*;

const SENDERS: usize = 8;
/// Requests each sender keeps unanswered, so some are in flight at SIGTERM.
const WINDOW: u64 = 4;

struct Outcome {
    acked: Vec<String>,
    told_to_reconnect: bool,
}

/// Send pipelined `chat.send`s until the hub says goodbye or the socket
/// ends; every ACK's dedupe key.
async fn sender(url: String, token: String, agent: String) -> Outcome {
    let mut ws = open_ws(&url, &token).await.expect("websocket");
    ws.send(text(
        &json!({"type":"req","id":0,"method":"connect","params":{}}),
    ))
    .await
    .expect("connect");
    let (mut next, mut acked, mut pending) = (1u64, Vec::new(), HashMap::new());
    let mut told = false;
    loop {
        while !told && (pending.len() as u64) < WINDOW {
            let key = format!("{agent}-{next}");
            let req = json!({"type":"req","id":next,"method":"chat.send","params":{
                "to_type":"global","payload":{"text": format!("message {next}")},"dedupe_key": key}});
            if ws.send(text(&req)).await.is_err() {
                // Closed for writing: read what the hub sent before it.
                told = told || drain_for_goodbye(&mut ws).await;
                return Outcome {
                    acked,
                    told_to_reconnect: told,
                };
            }
            pending.insert(next, key);
            next += 1;
        }
        let frame = match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) => continue,
            other => {
                if !told {
                    eprintln!("{agent}: socket ended without goodbye: {other:?}");
                }
                return Outcome {
                    acked,
                    told_to_reconnect: told,
                };
            }
        };
        let v: Value = serde_json::from_str(&frame).expect("json frame");
        if v["type"] == "event" && v["event"] == "disconnecting" {
            assert_eq!(v["data"]["reason"], "shutdown", "{v}");
            told = true;
        }
        if v["type"] == "res" {
            if let Some(key) = v["id"].as_u64().and_then(|id| pending.remove(&id)) {
                if v["ok"] == true {
                    acked.push(key);
                }
            }
        }
    }
}

/// Whether a `disconnecting` event is among the frames still to be read.
async fn drain_for_goodbye(ws: &mut Ws) -> bool {
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
        if let Message::Text(t) = m {
            if t.contains(r#""event":"disconnecting""#) {
                return true;
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_acks_tells_agents_and_exits_zero() {
    let deadline = Instant::now() + Duration::from_secs(60);
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("clawnet.db");
    let server = Server::start(&db, &["shutdown.deadline_secs=5"], deadline).await;
    let client = http_client();
    let mut tasks = Vec::new();
    for i in 0..SENDERS {
        let agent = format!("s{i}");
        let token = register(&client, &server.url, &agent).await;
        tasks.push(tokio::spawn(sender(server.url.clone(), token, agent)));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let started = Instant::now();
    let status = server.terminate(Duration::from_secs(8)).await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "exited within the 5 s deadline (+1 s): {:?}",
        started.elapsed()
    );

    let mut acked = Vec::new();
    for t in tasks {
        let o = t.await.expect("sender");
        assert!(o.told_to_reconnect, "every agent got `disconnecting`");
        assert!(!o.acked.is_empty(), "traffic before the signal");
        acked.extend(o.acked);
    }

    // Everything acknowledged is in the file, exactly once.
    let server = Server::start(&db, &[], deadline).await;
    let (mut keys, mut after) = (HashMap::<String, u32>::new(), 0u64);
    loop {
        let page: Value = client
            .get(format!(
                "{}/api/v1/rooms/global/history?after_seq={after}&limit=1000",
                server.url
            ))
            .bearer_auth(MASTER)
            .send()
            .await
            .expect("history")
            .json()
            .await
            .expect("json");
        let msgs = page["messages"].as_array().expect("messages");
        for m in msgs {
            *keys
                .entry(m["dedupe_key"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
            after = m["seq"].as_u64().expect("seq");
        }
        if page["has_more"] != true {
            break;
        }
    }
    for k in &acked {
        assert_eq!(keys.get(k), Some(&1), "ACKed {k} stored once");
    }
    println!("{} ACKed messages survived the shutdown", acked.len());
}
