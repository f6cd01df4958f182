//! One test per bug found in review, named after the bug.

mod common;

use std::sync::Arc;

use clawnet_core::clock::ManualClock;
use clawnet_core::HubConfig;
use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn oversized_message_was_dropped_without_a_reason() {
    let t = start().await; // ws.max_frame_bytes = 80 KiB
    let tok = t.agent("big").await;
    let mut a = t.raw_connected(&tok, json!({})).await;
    // Over the limit but under twice it: refused, connection lives.
    let pad = "z".repeat(100 * 1024);
    let res = a.req("ping", json!({"pad": pad})).await;
    assert_eq!(res["error"]["code"], "too_large", "{res}");
    assert_eq!(a.req("ping", json!({})).await["ok"], true);
    // Far over: the hub says why and closes with 1009.
    let pad = "z".repeat(300 * 1024);
    a.send_text(&json!({"type":"req","id":9,"method":"ping","params":{"pad":pad}}).to_string())
        .await;
    let bye = a.wait_event("disconnecting").await;
    assert_eq!(bye["data"]["reason"], "frame_too_large");
    // Then a 1009 close frame, unless the unread rest of the huge message
    // made the kernel reset the connection first.
    loop {
        match a.ws.next().await {
            Some(Ok(Message::Close(Some(f)))) => {
                assert_eq!(u16::from(f.code), 1009);
                break;
            }
            Some(Ok(Message::Close(None))) => panic!("close without the 1009 code"),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break,
        }
    }
    assert_eq!(t.hub.connection_count(), 0);
}

#[tokio::test]
async fn unknown_methods_did_not_count_as_heartbeats() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let t = start_with(HubConfig::default(), Some(clock.clone())).await;
    let tok = t.agent("hb").await;
    let mut a = t.raw_connected(&tok, json!({})).await;
    for _ in 0..4 {
        clock.advance(30_000);
        let res = a.req("no.such.method", json!({})).await;
        assert_eq!(res["error"]["code"], "unknown_method");
        t.hub.sweep();
    }
    assert_eq!(
        a.req("ping", json!({})).await["ok"],
        true,
        "cut off despite sending frames"
    );
    assert_eq!(t.hub.connection_count(), 1);
}

#[tokio::test]
async fn resume_beyond_history_silently_dropped_live_messages() {
    let t = start().await;
    let (ts, tr) = (t.agent("snd").await, t.agent("rcv").await);
    for i in 0..3 {
        t.rest(&ts)
            .send(&send_params("global", None, &format!("x{i}"), None))
            .await
            .expect("send");
    }
    // A cursor from an earlier life of the hub (seq 500 never existed here).
    let mut r = t.raw(&tr).await;
    assert_eq!(
        r.req("connect", json!({"resume":{"global":500}})).await["ok"],
        true
    );
    let reset = r.wait_event("replay.reset").await;
    assert_eq!(
        reset["data"],
        json!({"room":"global","resume_seq":500,"last_seq":3})
    );
    let msgs = r.messages(3).await;
    assert_eq!(msgs[0]["seq"], 1);
    r.wait_event("replay.done").await;
    t.rest(&ts)
        .send(&send_params("global", None, "live", None))
        .await
        .expect("send");
    assert_eq!(r.messages(1).await[0]["seq"], 4);
}

#[tokio::test]
async fn handshake_timeout_closed_without_a_disconnecting_event() {
    let cfg = HubConfig {
        handshake_timeout_ms: 200,
        ..Default::default()
    };
    let t = start_with(cfg, None).await;
    let tok = t.agent("slowpoke").await;
    let mut a = t.raw(&tok).await;
    let bye = a.wait_event("disconnecting").await;
    assert_eq!(bye["data"]["reason"], "handshake_timeout");
}

#[tokio::test]
async fn frames_of_the_wrong_type_were_answered_without_their_id() {
    let t = start().await;
    let tok = t.agent("typ").await;
    let mut a = t.raw_connected(&tok, json!({})).await;
    a.send_text(r#"{"type":"res","id":"abc","ok":true}"#).await;
    let res = loop {
        let f = a.next().await.expect("answer");
        if f["type"] == "res" {
            break f;
        }
    };
    assert_eq!(res["id"], "abc");
    assert_eq!(res["error"]["code"], "invalid");
}

#[tokio::test]
async fn plain_get_on_ws_answered_in_plain_text() {
    let t = start().await;
    let r = reqwest::Client::new()
        .get(format!("{}/ws", t.base))
        .bearer_auth(MASTER)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.expect("json body");
    assert_eq!(b["error"]["code"], "invalid");
    let r = reqwest::Client::new()
        .post(format!("{}/ws", t.base))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 405);
    let b: Value = r.json().await.expect("json body");
    assert!(b["error"]["code"].is_string());
}

#[tokio::test]
async fn rest_body_limit_was_axum_default_not_the_configured_one() {
    let t = start().await;
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/rooms", t.base))
        .bearer_auth(MASTER)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"name\":\"r\",\"pad\":\"{}\"}}",
            "p".repeat(200 * 1024)
        ))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 413);
    let b: Value = r.json().await.expect("json body");
    assert_eq!(b["error"]["code"], "too_large");
}

#[tokio::test]
async fn report_cleared_activity_when_only_status_was_given() {
    let t = start().await;
    let tok = t.agent("rep").await;
    let mut a = t.raw_connected(&tok, json!({})).await;
    a.req("report", json!({"activity":"compiling"})).await;
    let res = a.req("report", json!({"status":"idle"})).await;
    assert_eq!(res["result"]["activity"], "compiling");
    assert_eq!(res["result"]["status"], "idle");
}

#[tokio::test]
async fn multi_room_ack_applied_part_before_refusing() {
    let t = start().await;
    let tok = t.agent("ack").await;
    t.rest(&tok)
        .send(&send_params("global", None, "one", None))
        .await
        .expect("send");
    let mut a = t.raw_connected(&tok, json!({"resume":{"global":0}})).await;
    let res = a
        .req("ack", json!({"cursors":{"global":1,"nowhere":1}}))
        .await;
    assert_eq!(res["error"]["code"], "not_found");
    let cursors = t.hub.store().cursors("ack").await.expect("cursors");
    assert_eq!(
        cursors.get("global").copied().unwrap_or(0),
        0,
        "a refused ack moved a cursor"
    );
    for params in [json!({"x":1}), json!([1])] {
        assert_eq!(a.req("ping", params).await["error"]["code"], "invalid");
    }
}

#[tokio::test]
async fn presence_was_broadcast_to_every_connection() {
    let t = start().await;
    let (tw, tq, ta) = (
        t.agent("wants").await,
        t.agent("quiet").await,
        t.agent("comer").await,
    );
    let mut w = t.raw_connected(&tw, json!({"presence": true})).await;
    let mut q = t.raw_connected(&tq, json!({})).await;
    let _a = t.raw_connected(&ta, json!({})).await;
    loop {
        let ev = w.wait_event("presence").await;
        if ev["data"]["agent_id"] == "comer" {
            assert_eq!(ev["data"]["status"], "online");
            break;
        }
    }
    // The connection that did not subscribe got none, and can still ask.
    let res = q.req("presence.list", json!({})).await;
    assert!(
        q.events.iter().all(|e| e["event"] != "presence"),
        "{:?}",
        q.events
    );
    let comer = res["result"]["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["agent_id"] == "comer")
        .cloned()
        .expect("listed");
    assert_eq!(comer["status"], "online");
}

/// `GET /api/v1/agents/{id}/tokens` for an agent that does not exist
/// answered 200 with an empty list (found by the documented-errors walk).
#[tokio::test]
async fn tokens_of_an_unknown_agent_were_an_empty_list_not_404() {
    let t = start().await;
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/agents/nobody/tokens", t.base))
        .bearer_auth(MASTER)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
}
