//! Credentials, handles, presence and slow consumers over a real hub.

mod common;

use std::sync::Arc;
use std::time::Duration;

use clawnet_client::ClientError;
use clawnet_core::clock::ManualClock;
use clawnet_core::HubConfig;
use common::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite;

fn status_of(e: tungstenite::Error) -> u16 {
    match e {
        tungstenite::Error::Http(r) => r.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn no_wrong_or_revoked_token_is_refused_before_upgrade() {
    let t = start().await;
    assert_eq!(
        status_of(upgrade(t.addr, None).await.expect_err("no token")),
        401
    );
    assert_eq!(
        status_of(upgrade(t.addr, Some("cn_nope")).await.expect_err("wrong")),
        401
    );

    let (agent, token) = t
        .master()
        .create_agent("rev", "rev", "worker")
        .await
        .expect("create");
    assert_eq!(agent["agent_id"], "rev");
    let mut live = t.raw_connected(&token, json!({})).await;
    let tokens: Value = t
        .rest(&token)
        .get("/agents/rev/tokens")
        .await
        .expect("own tokens");
    let tid = tokens["tokens"][0]["token_id"]
        .as_str()
        .expect("token id")
        .to_owned();
    let res = reqwest::Client::new()
        .delete(format!("{}/api/v1/agents/rev/tokens/{tid}", t.base))
        .bearer_auth(MASTER)
        .send()
        .await
        .expect("revoke");
    assert_eq!(res.status(), 200);
    assert_eq!(
        status_of(upgrade(t.addr, Some(&token)).await.expect_err("revoked")),
        401
    );
    // The live connection made with it is closed with the reason.
    let bye = live.wait_event("disconnecting").await;
    assert_eq!(bye["data"]["reason"], "token_revoked");
    // REST refuses it too, with the JSON error shape.
    match t.rest(&token).rooms().await {
        Err(ClientError::Http(401, b)) => assert_eq!(b.code.as_str(), "unauthorized"),
        other => panic!("expected 401, got {other:?}"),
    }
    // A failed authentication is audited.
    match t.master().get::<Value>("/logs?action=x").await {
        Err(ClientError::Http(400, b)) => assert_eq!(b.code.as_str(), "invalid"),
        r => panic!("unknown query fields must be refused, got {r:?}"),
    }
    let logs: Value = t.master().get("/logs?type=auth").await.expect("logs");
    assert!(logs["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .any(|e| e["action"] == "auth.failed"));
}

#[tokio::test]
async fn rotation_replaces_every_token() {
    let t = start().await;
    let old = t.agent("rot").await;
    let (status, new): (u16, Value) = t
        .rest(&old)
        .post("/agents/rot/tokens/rotate", &json!({}))
        .await
        .expect("rotate");
    assert_eq!(status, 201);
    let new = new["token"].as_str().expect("token").to_owned();
    assert!(t.rest(&old).rooms().await.is_err());
    assert!(t.rest(&new).rooms().await.is_ok());
    // A worker cannot rotate someone else's tokens.
    let other = t.agent("oth").await;
    match t
        .rest(&other)
        .post::<Value>("/agents/rot/tokens/rotate", &json!({}))
        .await
    {
        Err(ClientError::Http(403, b)) => assert_eq!(b.code.as_str(), "forbidden"),
        r => panic!("expected 403, got {r:?}"),
    }
}

#[tokio::test]
async fn registration_and_handles_enforce_uniqueness_and_roles() {
    let t = start().await;
    let m = t.master();
    m.create_agent("a1", "Alpha", "worker")
        .await
        .expect("create");
    for (id, handle) in [("a1", "other"), ("a2", "ALPHA")] {
        match m.create_agent(id, handle, "worker").await {
            Err(ClientError::Http(409, b)) => assert_eq!(b.code.as_str(), "conflict"),
            r => panic!("expected 409 for {id}/{handle}, got {r:?}"),
        }
    }
    match m.create_agent("Bad Id", "fine", "worker").await {
        Err(ClientError::Http(400, b)) => assert_eq!(b.field.as_deref(), Some("agent_id")),
        r => panic!("expected 400, got {r:?}"),
    }
    match m.create_agent("a3", "fine", "emperor").await {
        Err(ClientError::Http(400, b)) => assert_eq!(b.code.as_str(), "invalid"),
        r => panic!("expected 400, got {r:?}"),
    }
    // Only the master registers agents.
    let w = t.agent("w1").await;
    match t.rest(&w).create_agent("a4", "four", "worker").await {
        Err(ClientError::Http(403, _)) => {}
        r => panic!("expected 403, got {r:?}"),
    }

    // Handles: self may change its own, not another's; taken → 409.
    let tok2 = t.agent("b2").await;
    let me = t.rest(&tok2);
    me.set_handle("b2", "Bravo").await.expect("own handle");
    match me.set_handle("a1", "mine").await {
        Err(ClientError::Http(403, _)) => {}
        r => panic!("expected 403, got {r:?}"),
    }
    match me.set_handle("b2", "alpha").await {
        Err(ClientError::Http(409, _)) => {}
        r => panic!("expected 409, got {r:?}"),
    }
    m.set_handle("a1", "alpha2")
        .await
        .expect("master renames anyone");
    // New handle shows on the next message; every change is audited.
    let (_, sent) = me
        .send(&send_params("global", None, "hi", None))
        .await
        .expect("send");
    assert_eq!(sent.message.from_handle, "bravo");
    let logs: Value = m.get("/logs?type=identity&limit=100").await.expect("logs");
    let changes: Vec<&Value> = logs["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "handle.change")
        .collect();
    assert_eq!(changes.len(), 2, "{logs}");
    assert_eq!(changes[0]["meta"], json!({"from":"b2","to":"bravo"}));
    // Workers cannot read the audit log; the predecessor alias answers too.
    assert!(matches!(
        t.rest(&tok2).get::<Value>("/logs").await,
        Err(ClientError::Http(403, _))
    ));
    let alias: Value = m.get("/api/logs").await.expect("alias");
    assert!(alias["entries"].is_array());
}

#[tokio::test]
async fn rest_errors_use_the_json_shape() {
    let t = start().await;
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{}/api/v1/messages", t.base))
        .bearer_auth(MASTER)
        .header("content-type", "application/json")
        .body("{\"to_type\":")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.expect("json");
    assert_eq!(b["error"]["code"], "invalid");

    let r = c
        .get(format!("{}/api/v1/nope", t.base))
        .bearer_auth(MASTER)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    let b: Value = r.json().await.expect("json");
    assert_eq!(b["error"]["code"], "not_found");

    let r = c
        .get(format!(
            "{}/api/v1/rooms/global/history?after_seq=minus",
            t.base
        ))
        .bearer_auth(MASTER)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 400);

    let r = c
        .post(format!("{}/api/v1/messages", t.base))
        .bearer_auth(MASTER)
        .json(&json!({"to_type":"global","payload":{"text":"x".repeat(70_000)}}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 413);
    let b: Value = r.json().await.expect("json");
    assert_eq!(b["error"]["code"], "too_large");

    let r = c
        .get(format!("{}/healthz", t.base))
        .send()
        .await
        .expect("health");
    assert_eq!(r.status(), 200);
    let r = c
        .get(format!("{}/readyz", t.base))
        .send()
        .await
        .expect("ready");
    assert_eq!(r.status(), 200);
}

async fn subj_presence(w: &mut Raw) -> Value {
    loop {
        let ev = w.wait_event("presence").await;
        if ev["data"]["agent_id"] == "subj" {
            return ev;
        }
    }
}

#[tokio::test]
async fn presence_goes_online_idle_offline_on_schedule() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let cfg = HubConfig {
        idle_after_ms: 300_000,
        heartbeat_timeout_ms: 45_000,
        heartbeat_interval_ms: 15_000,
        ..Default::default()
    };
    let t = start_with(cfg, Some(clock.clone())).await;
    let (tw, ta) = (t.agent("watch").await, t.agent("subj").await);
    let mut w = t.raw_connected(&tw, json!({"presence": true})).await;
    let status = |t: &TestHub, who: &'static str| {
        let hub = t.hub.clone();
        async move {
            hub.presence("master")
                .await
                .expect("presence")
                .into_iter()
                .find(|p| p.agent_id == who)
                .map(|p| serde_json::to_value(p.status).expect("status"))
                .expect("listed")
        }
    };
    assert_eq!(status(&t, "subj").await, "offline");

    // Two connections, one presence.
    let mut a1 = t.raw_connected(&ta, json!({})).await;
    let mut a2 = t.raw_connected(&ta, json!({})).await;
    let ev = subj_presence(&mut w).await;
    assert_eq!(ev["data"]["agent_id"], "subj");
    assert_eq!(ev["data"]["status"], "online");
    let p: Value = t.master().get("/presence").await.expect("presence");
    let subj = p["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["agent_id"] == "subj")
        .cloned()
        .expect("subj");
    assert_eq!(subj["connections"], 2);

    // Quiet past idle_after, heartbeats still coming: idle.
    for _ in 0..10 {
        clock.advance(31_000);
        w.req("ping", json!({})).await;
        a1.req("ping", json!({})).await;
        a2.req("ping", json!({})).await;
        t.hub.sweep();
    }
    let ev = subj_presence(&mut w).await;
    assert_eq!(ev["data"]["status"], "idle");
    assert_eq!(status(&t, "subj").await, "idle");

    // Activity brings it back.
    a1.req("report", json!({"activity":"back"})).await;
    t.hub.sweep();
    let ev = subj_presence(&mut w).await;
    assert_eq!(ev["data"]["activity"], "back");
    let ev = subj_presence(&mut w).await;
    assert_eq!(ev["data"]["status"], "online");

    // Closing one connection keeps it online; missing heartbeats on the other
    // closes that one and the agent goes offline.
    a1.ws.close(None).await.expect("close");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(status(&t, "subj").await, "online");
    clock.advance(46_000);
    w.req("ping", json!({})).await;
    t.hub.sweep();
    let bye = a2.wait_event("disconnecting").await;
    assert_eq!(bye["data"]["reason"], "heartbeat_timeout");
    let ev = subj_presence(&mut w).await;
    assert_eq!(ev["data"]["status"], "offline");
    assert_eq!(status(&t, "subj").await, "offline");
}

#[tokio::test]
async fn slow_consumer_is_cut_off_and_catches_up_by_replay() {
    let cfg = HubConfig {
        outbound_queue: 32,
        ..Default::default()
    };
    let t = start_full(cfg, None, None, unlimited()).await;
    let (ts, tl) = (t.agent("fast").await, t.agent("slow").await);
    // Connect, then never read again.
    let slow = t.raw_connected(&tl, json!({})).await;
    let sender = t.rest(&ts);
    let big = "y".repeat(16 * 1024);
    let mut sent = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while t.hub.last_disconnect("slow").is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slow consumer never cut off"
        );
        sender
            .send(&send_params("global", None, &big, None))
            .await
            .expect("send");
        sent += 1;
    }
    let reason = t.hub.last_disconnect("slow").expect("reason");
    assert_eq!(reason.reason, "slow_consumer");
    // Bounded: the hub stopped queueing for it long before the sends stopped
    // and the connection is gone from the fan-out.
    assert_eq!(t.hub.connection_count(), 0);
    drop(slow);

    // Reconnecting tells why and replays everything (nothing was acked).
    let mut again = t.raw(&tl).await;
    let res = again.req("connect", json!({})).await;
    assert_eq!(res["result"]["last_disconnect"]["reason"], "slow_consumer");
    let msgs = again.messages(sent as usize).await;
    let seqs: Vec<u64> = msgs
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=sent).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_slow_but_reading_consumer_is_paced_not_cut_off() {
    let cfg = HubConfig {
        outbound_queue: 64,
        ..Default::default()
    };
    let t = start_with(cfg, None).await;
    let tl = t.agent("plod").await;
    t.rest(&tl).create_room("slow", false).await.expect("room");
    let mut plod = t.raw_connected(&tl, json!({})).await;
    // The master posts without being a member, so only the reader receives.
    let mut quick = t.raw_connected(MASTER, json!({})).await;
    // The sender pipelines every send without waiting for ACKs; frames are
    // large enough that socket buffers cannot hide the backlog. Without
    // pacing the reader's queue of 64 overflows and it is cut off.
    let pad = "p".repeat(16 * 1024);
    let send_all = tokio::spawn(async move {
        for i in 0..400 {
            let f = json!({"type":"req","id":i,"method":"chat.send",
                "params":{"to_type":"room","to_id":"slow","payload":{"text":format!("n{i} {pad}")}}});
            quick.send_text(&f.to_string()).await;
        }
        let mut acks = 0;
        while acks < 400 {
            let f = quick.next().await.expect("sender connected");
            if f["type"] == "res" {
                assert_eq!(f["ok"], true, "{f}");
                acks += 1;
            }
        }
    });
    // Read one frame every 4 ms: slower than the sender, but reading.
    let mut seqs = Vec::new();
    while seqs.len() < 400 {
        let f = plod.next().await.expect("still connected");
        if f["event"] == "message" {
            seqs.push(f["seq"].as_u64().expect("seq"));
        }
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    assert_eq!(seqs, (1..=400).collect::<Vec<_>>());
    assert!(
        t.hub.last_disconnect("plod").is_none(),
        "a reading consumer was cut off"
    );
    send_all.await.expect("sender");
}
