//! Chat over a real hub: isolation, delivery guarantees, replay and errors.

mod common;

use std::time::Duration;

use clawnet_client::ClientError;
use common::*;
use serde_json::json;

#[tokio::test]
async fn global_message_reaches_every_connected_agent() {
    let t = start().await;
    let mut conns = Vec::new();
    for id in ["ann", "bob", "cat"] {
        let tok = t.agent(id).await;
        conns.push(t.raw_connected(&tok, json!({})).await);
    }
    let res = conns[0]
        .req(
            "chat.send",
            json!({"to_type":"global","payload":{"text":"hello all"}}),
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    for c in &mut conns {
        let m = c.messages(1).await.remove(0);
        assert_eq!(m["room"], "global");
        assert_eq!(m["data"]["payload"]["text"], "hello all");
        assert_eq!(m["data"]["from_id"], "ann");
        assert_eq!(m["data"]["from_handle"], "ann");
        assert_eq!(m["seq"], res["result"]["message"]["seq"]);
    }
}

#[tokio::test]
async fn dm_reaches_only_the_two_parties() {
    let t = start().await;
    let (ta, tb, tc) = (
        t.agent("amy").await,
        t.agent("ben").await,
        t.agent("cal").await,
    );
    let mut a = t.raw_connected(&ta, json!({})).await;
    let mut b = t.raw_connected(&tb, json!({})).await;
    let mut c = t.raw_connected(&tc, json!({})).await;

    // By handle, as the REST shape allows.
    let res = a
        .req(
            "chat.send",
            json!({"to_type":"dm","to_id":"@Ben","payload":{"text":"psst"}}),
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["result"]["message"]["to_id"], "dm:amy:ben");
    let got = b.messages(1).await.remove(0);
    assert_eq!(got["room"], "dm:amy:ben");
    assert_eq!(got["data"]["payload"]["text"], "psst");
    assert!(
        c.quiet_for(Duration::from_millis(300)).await,
        "cal received a DM not meant for it"
    );

    // Both parties read it; the third cannot, by REST or WebSocket.
    let h = t
        .rest(&tb)
        .history("dm:amy:ben", None, None)
        .await
        .expect("ben reads");
    assert_eq!(h.messages.len(), 1);
    let err = t
        .rest(&tc)
        .history("dm:amy:ben", None, None)
        .await
        .expect_err("cal must not read");
    assert!(matches!(err, ClientError::Http(404, _)), "{err:?}");
    let res = c.req("room.history", json!({"room":"dm:amy:ben"})).await;
    assert_eq!(res["error"]["code"], "not_found");
    // The master reads everything.
    assert_eq!(
        t.master()
            .history("dm:amy:ben", None, None)
            .await
            .expect("master")
            .messages
            .len(),
        1
    );
}

#[tokio::test]
async fn private_room_is_invisible_to_non_members() {
    let t = start().await;
    let (ta, tb) = (t.agent("own").await, t.agent("out").await);
    let owner = t.rest(&ta);
    owner.create_room("secret", true).await.expect("create");
    owner
        .send(&send_params("room", Some("secret"), "plans", None))
        .await
        .expect("owner posts");

    let out = t.rest(&tb);
    let rooms = out.rooms().await.expect("list");
    assert!(
        rooms.rooms.iter().all(|r| r.name != "secret"),
        "private room listed to outsider"
    );
    for res in [
        out.join_room("secret").await.map(|_| ()),
        out.history("secret", None, None).await.map(|_| ()),
        out.get::<serde_json::Value>("/rooms/secret/members")
            .await
            .map(|_| ()),
        out.send(&send_params("room", Some("secret"), "let me in", None))
            .await
            .map(|_| ()),
    ] {
        match res {
            Err(ClientError::Http(404, body)) => assert_eq!(body.code.as_str(), "not_found"),
            other => panic!("expected 404, got {other:?}"),
        }
    }
    // An invite opens it.
    owner
        .post::<serde_json::Value>("/rooms/secret/invite", &json!({"agent":"out"}))
        .await
        .expect("invite");
    assert_eq!(
        out.history("secret", None, None)
            .await
            .expect("member reads")
            .messages
            .len(),
        1
    );
}

#[tokio::test]
async fn lost_ack_retry_stores_once_and_both_acks_carry_the_same_envelope() {
    let t = start().await;
    let ta = t.agent("ret").await;
    let mut a = t.raw_connected(&ta, json!({})).await;
    let send = json!({"to_type":"global","payload":{"text":"once"},"dedupe_key":"k-1"});
    let first = a.req("chat.send", send.clone()).await;
    let second = a.req("chat.send", send).await;
    assert_eq!(first["result"]["duplicate"], false);
    assert_eq!(second["result"]["duplicate"], true);
    assert_eq!(first["result"]["message"], second["result"]["message"]);
    let h = t
        .master()
        .history("global", None, None)
        .await
        .expect("history");
    assert_eq!(h.messages.len(), 1);
    // Only one broadcast went out.
    assert_eq!(a.messages(1).await.len(), 1);
    assert!(a.quiet_for(Duration::from_millis(200)).await);

    // The Rust client: its first ACK is dropped on purpose, it retries with
    // the same key, and the hub answers with the original.
    let tb = t.agent("cli").await;
    let mut o = clawnet_client::SessionOptions::new(t.base.clone(), tb);
    o.request_timeout = Duration::from_millis(300);
    o.drop_first_response_of_method = Some("chat.send".into());
    let (s, _rx) = clawnet_client::Session::connect(o).await.expect("connect");
    let r = s
        .send(send_params("global", None, "retry me", None))
        .await
        .expect("send succeeds");
    assert!(r.duplicate, "the retry must be recognised");
    let h = t
        .master()
        .history("global", None, None)
        .await
        .expect("history");
    assert_eq!(
        h.messages
            .iter()
            .filter(|m| m.text() == Some("retry me"))
            .count(),
        1
    );
}

#[tokio::test]
async fn rest_send_is_201_then_200_for_a_retry() {
    let t = start().await;
    let ta = t.agent("rst").await;
    let r = t.rest(&ta);
    let p = send_params("global", None, "x", Some("same"));
    let (s1, a1) = r.send(&p).await.expect("first");
    let (s2, a2) = r.send(&p).await.expect("retry");
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(a1.message, a2.message);
    assert!(a2.duplicate);
    // Another sender's identical key is its own message.
    let tb = t.agent("rs2").await;
    let (s3, a3) = t.rest(&tb).send(&p).await.expect("other sender");
    assert_eq!(s3, 201);
    assert_ne!(a3.message.id, a1.message.id);
}

#[tokio::test]
async fn reconnect_replays_everything_missed_in_order_then_live() {
    let t = start().await;
    let (ta, tb) = (t.agent("snd").await, t.agent("rcv").await);
    let mut b = t.raw_connected(&tb, json!({})).await;
    let sender = t.rest(&ta);
    sender
        .send(&send_params("global", None, "before", None))
        .await
        .expect("send");
    let m = b.messages(1).await.remove(0);
    let seen = m["seq"].as_u64().expect("seq");
    let ack = b.req("ack", json!({"room":"global","seq":seen})).await;
    assert_eq!(ack["result"]["cursors"]["global"], seen);
    b.ws.close(None).await.expect("close");
    drop(b);

    for i in 0..100 {
        sender
            .send(&send_params("global", None, &format!("m{i}"), None))
            .await
            .expect("send");
    }
    let mut b = t.raw(&tb).await;
    assert_eq!(b.req("connect", json!({"protocol":2})).await["ok"], true);
    let got = b.messages(100).await;
    let seqs: Vec<u64> = got
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    let want: Vec<u64> = (seen + 1..=seen + 100).collect();
    assert_eq!(
        seqs, want,
        "replay must be complete, ordered, without duplicates"
    );
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m["data"]["payload"]["text"], format!("m{i}"));
    }
    let done = b.wait_event("replay.done").await;
    assert_eq!(done["data"]["replayed"], 100);
    sender
        .send(&send_params("global", None, "live", None))
        .await
        .expect("send");
    let live = b.messages(1).await.remove(0);
    assert_eq!(live["seq"], seen + 101);
    assert_eq!(live["data"]["payload"]["text"], "live");
}

#[tokio::test]
async fn resume_cursors_from_the_client_override_the_server_ones() {
    let t = start().await;
    let (ta, tb) = (t.agent("s1").await, t.agent("r1").await);
    for i in 0..5 {
        t.rest(&ta)
            .send(&send_params("global", None, &format!("n{i}"), None))
            .await
            .expect("send");
    }
    // The client says it processed up to seq 3 of global.
    let mut b = t.raw(&tb).await;
    let mut msgs = Vec::new();
    assert_eq!(
        b.req("connect", json!({"resume":{"global":3}})).await["ok"],
        true
    );
    msgs.extend(b.messages(2).await);
    assert_eq!(msgs[0]["seq"], 4);
    assert_eq!(msgs[1]["seq"], 5);
}

#[tokio::test]
async fn gap_older_than_retention_is_signalled() {
    let cfg = clawnet_core::HubConfig {
        retention_messages: 10,
        ..Default::default()
    };
    let t = start_with(cfg, None).await;
    let (ta, tb) = (t.agent("gs").await, t.agent("gr").await);
    for i in 0..30 {
        t.rest(&ta)
            .send(&send_params("global", None, &format!("g{i}"), None))
            .await
            .expect("send");
    }
    let mut b = t.raw(&tb).await;
    assert_eq!(
        b.req("connect", json!({"resume":{"global":2}})).await["ok"],
        true
    );
    let gap = b.wait_event("replay.gap").await;
    assert_eq!(gap["room"], "global");
    assert_eq!(gap["data"]["after_seq"], 2);
    assert_eq!(gap["data"]["first_available_seq"], 21);
    let msgs = b.messages(10).await;
    assert_eq!(msgs[0]["seq"], 21);
    assert_eq!(msgs[9]["seq"], 30);
    // History says so too.
    let h = t
        .rest(&tb)
        .history("global", Some(2), None)
        .await
        .expect("history");
    assert_eq!(h.first_available_seq, 21);
}

#[tokio::test]
async fn bad_frames_get_error_codes_and_the_connection_survives() {
    let cfg = clawnet_core::HubConfig {
        max_payload_bytes: 1024,
        ..Default::default()
    };
    let t = start_with(cfg, None).await;
    let ta = t.agent("bad").await;
    let mut a = t.raw_connected(&ta, json!({})).await;

    let big = "x".repeat(2000);
    let res = a
        .req(
            "chat.send",
            json!({"to_type":"global","payload":{"text":big}}),
        )
        .await;
    assert_eq!(res["ok"], false);
    assert_eq!(res["error"]["code"], "too_large");

    a.send_text("{not json").await;
    let res = a.next().await.expect("answer");
    assert_eq!(res["type"], "res");
    assert_eq!(res["error"]["code"], "invalid");

    let res = a.req("chat.teleport", json!({})).await;
    assert_eq!(res["error"]["code"], "unknown_method");

    let res = a
        .req(
            "chat.send",
            json!({"to_type":"global","payload":{"text":"x"},"colour":1}),
        )
        .await;
    assert_eq!(res["error"]["code"], "invalid");

    let res = a
        .req(
            "chat.send",
            json!({"to_type":"room","to_id":"nowhere","payload":{"text":"x"}}),
        )
        .await;
    assert_eq!(res["error"]["code"], "not_found");

    // Still alive, and nothing was stored by the refused sends.
    assert_eq!(a.req("ping", json!({})).await["ok"], true);
    let h = t
        .master()
        .history("global", None, None)
        .await
        .expect("history");
    assert!(h.messages.is_empty());
}

#[tokio::test]
async fn the_first_request_must_be_connect() {
    let t = start().await;
    let ta = t.agent("early").await;
    let mut a = t.raw(&ta).await;
    let res = a
        .req(
            "chat.send",
            json!({"to_type":"global","payload":{"text":"x"}}),
        )
        .await;
    assert_eq!(res["error"]["code"], "invalid");
    let res = a.req("connect", json!({"protocol":1})).await;
    assert_eq!(res["error"]["code"], "invalid");
    let res = a.req("connect", json!({"protocol":2,"client":"t"})).await;
    assert_eq!(res["ok"], true);
    assert_eq!(res["result"]["agent_id"], "early");
    assert_eq!(res["result"]["rooms"], json!(["global"]));
}

#[tokio::test]
async fn predecessor_event_names_still_work() {
    let t = start().await;
    let (ta, tb) = (t.agent("old").await, t.agent("new").await);
    t.rest(&tb).create_room("lobby", false).await.expect("room");
    let mut a = t.raw_connected(&ta, json!({})).await;
    assert_eq!(
        a.req("room_join", json!({"room":"lobby"})).await["ok"],
        true
    );
    let res = a
        .req(
            "chat_send",
            json!({"to_type":"room","to_id":"lobby","payload":{"text":"hi"}}),
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    let seq = res["result"]["message"]["seq"].clone();
    assert_eq!(
        a.req("chat_ack", json!({"room":"lobby","seq":seq})).await["ok"],
        true
    );
    assert_eq!(
        a.req("presence_update", json!({"status":"idle"})).await["result"]["status"],
        "idle"
    );
    assert_eq!(
        a.req("report", json!({"activity":"reviewing"})).await["result"]["activity"],
        "reviewing"
    );
    assert_eq!(
        a.req("room_leave", json!({"room":"lobby"})).await["result"]["left"],
        true
    );
}

#[tokio::test]
async fn typing_reaches_others_only_and_is_rate_limited() {
    let t = start().await;
    let (ta, tb) = (t.agent("typ").await, t.agent("see").await);
    let mut a = t.raw_connected(&ta, json!({})).await;
    let mut b = t.raw_connected(&tb, json!({})).await;
    assert_eq!(a.req("typing", json!({"room":"global"})).await["ok"], true);
    let ev = b.wait_event("typing").await;
    assert_eq!(ev["data"]["from_id"], "typ");
    assert_eq!(ev["data"]["typing"], true);
    let again = a.req("typing", json!({"room":"global"})).await;
    assert_eq!(again["error"]["code"], "rate_limited");
    assert!(again["error"]["retry_after_ms"].as_u64().is_some());
    assert!(
        a.events.iter().all(|e| e["event"] != "typing"),
        "sender saw its own typing"
    );
    // Typing is never stored.
    assert!(t
        .master()
        .history("global", None, None)
        .await
        .expect("h")
        .messages
        .is_empty());
}

#[tokio::test]
async fn mentions_are_resolved_and_notified() {
    let t = start().await;
    let (ta, tb) = (t.agent("men").await, t.agent("tio").await);
    let mut b = t.raw_connected(&tb, json!({})).await;
    let (_, r) = t
        .rest(&ta)
        .send(&send_params("global", None, "ping @TIO and @nobody", None))
        .await
        .expect("send");
    assert_eq!(r.message.mentions, vec!["tio".to_owned()]);
    let ev = b.wait_event("mention").await;
    assert_eq!(ev["data"]["from_id"], "men");
    assert_eq!(ev["data"]["seq"], r.message.seq);
}
