//! REST coverage of the administrative operations: role changes, agent
//! removal, room deletion, the DM list and DM history, runtime settings,
//! and paging of the lists.

mod common;

use clawnet_client::ClientError;
use common::*;
use serde_json::{json, Value};

/// One raw call: status and JSON body (`Null` when the body is not JSON).
async fn call(
    hub: &TestHub,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(
        method.parse().expect("method"),
        format!("{}{path}", hub.base),
    );
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The audit entries with this action, after the writer caught up.
async fn audited(hub: &TestHub, action: &str) -> Vec<Value> {
    hub.hub.flush_audit().await;
    let v: Value = hub.master().get("/logs?limit=1000").await.expect("logs");
    v["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["action"] == action)
        .collect()
}

#[tokio::test]
async fn a_role_change_takes_effect_on_the_next_request() {
    let hub = start().await;
    let w1 = hub.agent("w1").await;
    let (s, _) = call(&hub, Some(&w1), "GET", "/api/v1/settings", None).await;
    assert_eq!(s, 403, "a worker cannot read settings");
    // A worker cannot change roles, its own included.
    let (s, b) = call(
        &hub,
        Some(&w1),
        "PATCH",
        "/api/v1/agents/w1",
        Some(json!({"role": "master"})),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("forbidden")));
    // Bad bodies and unknown agents.
    for body in [
        json!({}),
        json!({"role": "king"}),
        json!({"role": "warden", "x": 1}),
    ] {
        let (s, b) = call(&hub, Some(MASTER), "PATCH", "/api/v1/agents/w1", Some(body)).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some("invalid")),
            "{b}"
        );
    }
    let (s, _) = call(
        &hub,
        Some(MASTER),
        "PATCH",
        "/api/v1/agents/nobody",
        Some(json!({"role": "warden"})),
    )
    .await;
    assert_eq!(s, 404);
    // The only master cannot be demoted.
    let (s, b) = call(
        &hub,
        Some(MASTER),
        "PATCH",
        "/api/v1/agents/master",
        Some(json!({"role": "worker"})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{b}"
    );

    let agent = hub
        .master()
        .set_role("w1", "master")
        .await
        .expect("promote");
    assert_eq!(agent["role"], "master");
    // The cached record was dropped: the promotion counts at once.
    let (s, b) = call(&hub, Some(&w1), "GET", "/api/v1/settings", None).await;
    assert_eq!(s, 200, "{b}");
    // With two masters, one may be demoted, by the other.
    let agent = hub
        .rest(&w1)
        .set_role("@w1", "worker")
        .await
        .expect("demote self");
    assert_eq!(agent["role"], "worker");
    let (s, _) = call(&hub, Some(&w1), "GET", "/api/v1/settings", None).await;
    assert_eq!(s, 403, "the demotion counts at once too");
    let changes = audited(&hub, "role.change").await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(
        changes[0]["meta"],
        json!({"from": "worker", "to": "master"})
    );
    assert_eq!(changes[0]["target"], "w1");
}

#[tokio::test]
async fn a_removed_agent_loses_its_tokens_connections_and_memberships() {
    let hub = start().await;
    let w1 = hub.agent("w1").await;
    let w2 = hub.agent("w2").await;
    hub.rest(&w1).create_room("dev", false).await.expect("room");
    hub.rest(&w2).join_room("dev").await.expect("join");
    let sent = hub
        .rest(&w1)
        .send(&send_params("global", None, "before removal", None))
        .await
        .expect("send");
    assert_eq!(sent.0, 201);
    let mut live = hub.raw_connected(&w1, json!({})).await;
    let mut watcher = hub.raw_connected(&w2, json!({})).await;

    // Refusals first: workers, the hub's own agents, unknown ids.
    let (s, _) = call(&hub, Some(&w2), "DELETE", "/api/v1/agents/w1", None).await;
    assert_eq!(s, 403);
    for id in ["master", "clawnet"] {
        let (s, b) = call(
            &hub,
            Some(MASTER),
            "DELETE",
            &format!("/api/v1/agents/{id}"),
            None,
        )
        .await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some("invalid")),
            "{id}: {b}"
        );
    }
    let (s, _) = call(&hub, Some(MASTER), "DELETE", "/api/v1/agents/nobody", None).await;
    assert_eq!(s, 404);

    let removed = hub.master().remove_agent("w1").await.expect("remove");
    assert_eq!(removed["agent_id"], "w1");
    // Its live connection is closed, as when its token is revoked.
    let bye = live.wait_event("disconnecting").await;
    assert_eq!(bye["data"]["reason"], "token_revoked");
    // The room's other members see it leave.
    let left = watcher.wait_event("room.left").await;
    assert_eq!(left["data"]["agent_id"], "w1");
    assert_eq!(left["data"]["room"], "dev");
    // Its token is dead on every surface.
    match hub.rest(&w1).rooms().await {
        Err(ClientError::Http(401, b)) => assert_eq!(b.code.as_str(), "unauthorized"),
        other => panic!("expected 401, got {other:?}"),
    }
    assert!(upgrade(hub.addr, Some(&w1)).await.is_err());
    // Gone from the lists and the room; its messages stay.
    let (s, _) = call(&hub, Some(MASTER), "GET", "/api/v1/agents/w1", None).await;
    assert_eq!(s, 404);
    let members: Value = hub
        .master()
        .get("/rooms/dev/members")
        .await
        .expect("members");
    assert_eq!(members["members"], json!(["w2"]));
    let h = hub
        .master()
        .history("global", None, None)
        .await
        .expect("history");
    assert!(
        h.messages.iter().any(|m| m.from_id == "w1"),
        "its messages stay in history"
    );
    // Removing again is 404; the id stays reserved.
    let (s, _) = call(&hub, Some(MASTER), "DELETE", "/api/v1/agents/w1", None).await;
    assert_eq!(s, 404);
    match hub.master().create_agent("w1", "w1again", "worker").await {
        Err(ClientError::Http(409, b)) => assert_eq!(b.code.as_str(), "conflict"),
        other => panic!("a removed id must stay reserved, got {other:?}"),
    }
    let entries = audited(&hub, "agent.remove").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["target"], "w1");
    assert_eq!(entries[0]["meta"]["rooms"], json!(["dev"]));
}

#[tokio::test]
async fn a_deleted_room_is_gone_for_everyone() {
    let hub = start().await;
    let w1 = hub.agent("w1").await;
    let w2 = hub.agent("w2").await;
    hub.rest(&w1).create_room("dev", false).await.expect("room");
    hub.rest(&w2).join_room("dev").await.expect("join");
    hub.rest(&w1)
        .send(&send_params("room", Some("dev"), "hello dev", None))
        .await
        .expect("send");
    let mut member = hub.raw_connected(&w2, json!({})).await;

    // Only master and the creator may delete it.
    let (s, b) = call(&hub, Some(&w2), "DELETE", "/api/v1/rooms/dev", None).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{b}"
    );
    // Never global, DMs or the alert room; unknown rooms are 404.
    hub.rest(&w1)
        .send(&send_params("dm", Some("w2"), "psst", None))
        .await
        .expect("dm");
    for room in ["global", "dm:w1:w2", "alerts"] {
        let (s, b) = call(
            &hub,
            Some(MASTER),
            "DELETE",
            &format!("/api/v1/rooms/{room}"),
            None,
        )
        .await;
        assert!(
            s == 400 || (room == "alerts" && s == 404),
            "{room}: {s} {b}"
        );
    }
    let (s, _) = call(&hub, Some(MASTER), "DELETE", "/api/v1/rooms/nope", None).await;
    assert_eq!(s, 404);

    let out = hub.rest(&w1).delete_room("dev").await.expect("delete");
    assert_eq!(out["deleted"], true);
    assert_eq!(out["members"], json!(["w1", "w2"]));
    let left = member.wait_event("room.left").await;
    assert_eq!(left["data"]["room"], "dev");
    assert_eq!(left["data"]["agent_id"], "w2");
    let rooms = hub.master().rooms().await.expect("rooms");
    assert!(rooms.rooms.iter().all(|r| r.name != "dev"));
    let (s, _) = call(&hub, Some(MASTER), "GET", "/api/v1/rooms/dev/history", None).await;
    assert_eq!(s, 404);
    let (s, _) = call(&hub, Some(&w1), "DELETE", "/api/v1/rooms/dev", None).await;
    assert_eq!(s, 404, "deleting twice");
    // The name is free again, and starts from seq 1.
    hub.rest(&w2)
        .create_room("dev", false)
        .await
        .expect("again");
    let (_, r) = hub
        .rest(&w2)
        .send(&send_params("room", Some("dev"), "fresh", None))
        .await
        .expect("send");
    assert_eq!(r.message.seq, 1);
    let h = hub
        .rest(&w2)
        .history("dev", None, None)
        .await
        .expect("history");
    assert_eq!(h.messages.len(), 1, "old messages are gone");
    let entries = audited(&hub, "room.delete").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["actor"], "w1");
}

#[tokio::test]
async fn dms_are_listed_and_read_by_agent() {
    let hub = start().await;
    let w1 = hub.agent("w1").await;
    let w2 = hub.agent("w2").await;
    let w3 = hub.agent("w3").await;
    let (_, warden) = hub
        .master()
        .create_agent("ward", "ward", "warden")
        .await
        .expect("warden");
    for i in 0..3 {
        hub.rest(&w1)
            .send(&send_params("dm", Some("@w2"), &format!("dm {i}"), None))
            .await
            .expect("dm");
    }
    let mine = hub.rest(&w1).dms(false).await.expect("dms");
    assert_eq!(mine["dms"].as_array().map(Vec::len), Some(1), "{mine}");
    assert_eq!(mine["dms"][0]["room"], "dm:w1:w2");
    assert_eq!(
        mine["dms"][0]["with"],
        json!({"agent_id": "w2", "handle": "w2"})
    );
    assert_eq!(mine["dms"][0]["last_seq"], 3);
    let theirs = hub.rest(&w2).dms(false).await.expect("dms");
    assert_eq!(theirs["dms"][0]["with"]["agent_id"], "w1");
    let none = hub.rest(&w3).dms(false).await.expect("dms");
    assert_eq!(none["dms"], json!([]));
    // Every DM: master and warden only.
    let (s, _) = call(&hub, Some(&w3), "GET", "/api/v1/dms?all=true", None).await;
    assert_eq!(s, 403);
    let all = hub.rest(&warden).dms(true).await.expect("all dms");
    assert_eq!(all["dms"][0]["agents"], json!(["w1", "w2"]));
    // History by the other agent's id or handle.
    let h = hub
        .rest(&w2)
        .dm_history("w1", None, None)
        .await
        .expect("history");
    assert_eq!(h.messages.len(), 3);
    let h = hub
        .rest(&w1)
        .dm_history("@w2", Some(1), Some(1))
        .await
        .expect("history");
    assert_eq!(h.messages.len(), 1);
    assert_eq!(h.messages[0].seq, 2);
    assert!(h.has_more);
    let (s, _) = call(&hub, Some(&w3), "GET", "/api/v1/dms/w1/history", None).await;
    assert_eq!(s, 404, "no DM yet");
    let (s, _) = call(&hub, Some(&w1), "GET", "/api/v1/dms/nobody/history", None).await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &hub,
        Some(&w1),
        "GET",
        "/api/v1/dms/w2/history?limit=0",
        None,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = call(&hub, Some(&w1), "GET", "/api/v1/dms?limit=5000", None).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn runtime_settings_change_live_all_or_nothing() {
    let hub = start().await;
    let w1 = hub.agent("w1").await;
    hub.agent("w2").await;
    let (_, warden) = hub
        .master()
        .create_agent("ward", "ward", "warden")
        .await
        .expect("warden");
    let before = hub.rest(&warden).settings().await.expect("warden reads");
    assert_eq!(before["tasks.dispatches_per_minute"], 10);
    assert_eq!(before["defender.mode"], "enforce");
    // The predecessor's path answers the same.
    let (s, legacy) = call(&hub, Some(&warden), "GET", "/api/settings", None).await;
    assert_eq!(s, 200);
    assert_eq!(legacy["settings"], Value::Object(before.clone()));
    for (token, method, path) in [
        (w1.as_str(), "GET", "/api/v1/settings"),
        (warden.as_str(), "PATCH", "/api/v1/settings"),
        (warden.as_str(), "POST", "/api/settings"),
    ] {
        let (s, _) = call(&hub, Some(token), method, path, Some(json!({}))).await;
        assert_eq!(s, 403, "{method} {path}");
    }
    // A bad key or value changes nothing, even next to a good one.
    for (bad, key) in [
        (json!({"tasks.max_pending": 3, "nope": 1}), "nope"),
        (
            json!({"tasks.max_pending": 3, "tasks.dispatches_per_minute": -1}),
            "tasks.dispatches_per_minute",
        ),
        (json!({"defender.mode": "loud"}), "defender.mode"),
    ] {
        let (s, b) = call(&hub, Some(MASTER), "PATCH", "/api/v1/settings", Some(bad)).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some("invalid")),
            "{b}"
        );
        assert!(
            b["error"]["message"].as_str().unwrap_or("").contains(key),
            "the error names the key: {b}"
        );
    }
    let (s, _) = call(
        &hub,
        Some(MASTER),
        "PATCH",
        "/api/v1/settings",
        Some(json!([1])),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(hub.master().settings().await.expect("read"), before);

    let after = hub
        .master()
        .change_settings(
            &json!({"tasks.dispatches_per_minute": 1, "chat.typing_min_interval_ms": 250}),
        )
        .await
        .expect("change");
    assert_eq!(after["tasks.dispatches_per_minute"], 1);
    assert_eq!(after["chat.typing_min_interval_ms"], 250);
    assert_eq!(hub.rest(&warden).settings().await.expect("read"), after);
    // The POST alias of the predecessor changes too.
    let (s, b) = call(
        &hub,
        Some(MASTER),
        "POST",
        "/api/settings",
        Some(json!({"tasks.max_pending": 7})),
    )
    .await;
    assert_eq!((s, &b["settings"]["tasks.max_pending"]), (200, &json!(7)));
    // It takes effect: the second dispatch in a minute is refused.
    let t = |text: &str| {
        serde_json::from_value::<clawnet_proto::tasks::DispatchParams>(
            json!({"target": "w2", "payload": {"text": text}}),
        )
        .expect("params")
    };
    let (s, _) = hub.rest(&w1).dispatch_task(&t("one")).await.expect("first");
    assert_eq!(s, 201);
    match hub.rest(&w1).dispatch_task(&t("two")).await {
        Err(ClientError::Http(429, b)) => assert_eq!(b.code.as_str(), "rate_limited"),
        other => panic!("the new limit must refuse the second dispatch, got {other:?}"),
    }
    let changes = audited(&hub, "settings.change").await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0]["meta"]["old"]["tasks.dispatches_per_minute"], 10);
    assert_eq!(changes[0]["meta"]["new"]["tasks.dispatches_per_minute"], 1);
    // Kept in the store, so a restart keeps them.
    let stored = hub
        .hub
        .store()
        .get_setting("runtime.tasks.dispatches_per_minute")
        .await
        .expect("store");
    assert_eq!(stored, Some(json!(1)));
}

#[tokio::test]
async fn lists_page_with_after_and_limit() {
    let hub = start().await;
    for id in ["a1", "a2", "a3"] {
        hub.agent(id).await;
    }
    // master, clawnet, a1, a2, a3 sorted by id: a1 a2 a3 clawnet master.
    let p1: Value = hub.master().get("/agents?limit=2").await.expect("page 1");
    let ids = |v: &Value| -> Vec<String> {
        v["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .map(|a| a["agent_id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(ids(&p1), vec!["a1", "a2"]);
    assert_eq!(p1["next"], "a2");
    let p2: Value = hub
        .master()
        .get("/agents?limit=2&after=a2")
        .await
        .expect("page 2");
    assert_eq!(ids(&p2), vec!["a3", "clawnet"]);
    let p3: Value = hub
        .master()
        .get("/agents?limit=2&after=clawnet")
        .await
        .expect("page 3");
    assert_eq!(ids(&p3), vec!["master"]);
    assert!(p3.get("next").is_none(), "no next on the last page");
    for path in [
        "/api/v1/agents?limit=0",
        "/api/v1/agents?limit=1001",
        "/api/v1/rooms?limit=0",
        "/api/v1/rooms/global/members?limit=5000",
        "/api/v1/tasks?limit=0",
        "/api/v1/logs?limit=1001",
        "/api/v1/rooms/global/history?limit=1001",
        "/api/v1/agents?limit=x",
    ] {
        let (s, b) = call(&hub, Some(MASTER), "GET", path, None).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some("invalid")),
            "{path}: {b}"
        );
    }
    hub.master().create_room("r1", false).await.expect("r1");
    hub.master().create_room("r2", false).await.expect("r2");
    // Master sees the private alert room too: alerts, global, r1, r2.
    let names = |v: &Value| -> Vec<Value> {
        v["rooms"]
            .as_array()
            .expect("rooms")
            .iter()
            .map(|r| r["name"].clone())
            .collect()
    };
    let rooms: Value = hub.master().get("/rooms?limit=2").await.expect("rooms");
    assert_eq!(names(&rooms), vec![json!("alerts"), json!("global")]);
    assert_eq!(rooms["next"], "global");
    let rooms: Value = hub
        .master()
        .get("/rooms?limit=2&after=global")
        .await
        .expect("rooms");
    assert_eq!(names(&rooms), vec![json!("r1"), json!("r2")]);
    assert!(rooms.get("next").is_none());
    let members: Value = hub
        .master()
        .get("/rooms/global/members?limit=2&after=a1")
        .await
        .expect("members");
    assert_eq!(members["members"], json!(["a2", "a3"]));
    assert_eq!(members["next"], "a3");
}

#[tokio::test]
async fn me_answers_the_callers_own_record_and_401_without_a_token() {
    let hub = start().await;
    let tok = hub.agent("wanda").await;
    let (status, body) = call(&hub, Some(&tok), "GET", "/api/v1/me", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["agent"]["agent_id"], "wanda");
    assert_eq!(body["agent"]["role"], "worker");
    let (status, body) = call(&hub, Some(MASTER), "GET", "/api/v1/me", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["agent"]["role"], "master");
    let (status, body) = call(&hub, None, "GET", "/api/v1/me", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = call(&hub, Some("cn_not-a-token"), "GET", "/api/v1/me", None).await;
    assert_eq!(status, 401);
}
