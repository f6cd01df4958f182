//! Tasks over real sockets: dispatch, the worker protocol, retries with
//! backoff on an injected clock, dead letters with a redacted alert, lease
//! expiry, dedupe, limits and visibility.

mod common;

use std::sync::Arc;

use futures_util::StreamExt;
use std::time::Duration;

use clawnet_client::ClientError;
use clawnet_core::clock::ManualClock;
use clawnet_core::HubConfig;
use common::*;
use serde_json::{json, Value};

/// A config whose sweeps run often, so tests need not wait.
fn fast() -> HubConfig {
    let mut cfg = HubConfig::default();
    cfg.tasks.sweep_ms = 20;
    cfg.tasks.dispatches_per_minute = 0;
    cfg
}

async fn dispatch(rest: &clawnet_client::Rest, body: Value) -> Result<(u16, Value), ClientError> {
    rest.post("/tasks", &body).await
}

/// A hub with a dispatcher `boss` and a worker agent `w1`; their tokens.
async fn boss_and_worker(
    cfg: HubConfig,
    clock: Option<Arc<ManualClock>>,
) -> (TestHub, String, String) {
    let t = start_with(cfg, clock.map(|c| c as Arc<dyn clawnet_core::clock::Clock>)).await;
    let (boss, w) = (t.agent("boss").await, t.agent("w1").await);
    (t, boss, w)
}

/// Poll `probe` until it gives `Ok`; after [`WAIT`], fail with its last
/// `Err` (what it saw instead).
async fn eventually<T, F, Fut>(probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(seen) if tokio::time::Instant::now() >= deadline => panic!("{seen}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Wait until the task is in `state` (the REST view), or fail.
async fn wait_state(t: &TestHub, id: &str, state: &str) -> Value {
    eventually(|| async {
        let task: Value = t.master().get(&format!("/tasks/{id}")).await.expect("get");
        if task["state"] == state {
            Ok(task)
        } else {
            Err(format!("task {id} never reached {state}: {task}"))
        }
    })
    .await
}

#[tokio::test]
async fn dispatch_runs_on_the_worker_and_the_result_reaches_the_dispatcher() {
    let (t, boss, w) = boss_and_worker(fast(), None).await;
    let mut worker = t.raw_connected(&w, json!({"worker": true})).await;
    let mut watcher = t.raw_connected(&boss, json!({})).await;
    let (status, out) = dispatch(
        &t.rest(&boss),
        json!({"target": "@w1", "kind": "prompt", "payload": {"text": "summarise"}}),
    )
    .await
    .expect("dispatch");
    assert_eq!(status, 201);
    assert_eq!(out["duplicate"], false);
    let id = out["task"]["task_id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("t_"));

    let ev = worker.wait_event("task.dispatch").await;
    assert_eq!(ev["data"]["task"]["task_id"], id.as_str());
    assert_eq!(ev["data"]["task"]["payload"]["text"], "summarise");
    assert_eq!(ev["data"]["task"]["state"], "running");
    assert_eq!(ev["data"]["task"]["attempts"], 1);
    let lease = ev["data"]["lease_id"].as_str().expect("lease").to_owned();

    let p = worker
        .req(
            "task.progress",
            json!({"task_id": id, "lease_id": lease, "note": "half"}),
        )
        .await;
    assert_eq!(p["ok"], true, "{p}");
    assert!(p["result"]["lease_until"].as_u64().is_some());

    let r = worker
        .req(
            "task_result", // the predecessor's name
            json!({"task_id": id, "lease_id": lease, "ok": true, "output": {"summary": "done"}}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["state"], "succeeded");

    loop {
        let u = watcher.wait_event("task.updated").await;
        if u["data"]["task"]["state"] == "succeeded" {
            assert_eq!(u["data"]["task"]["result"]["summary"], "done");
            break;
        }
    }
    let task: Value = t
        .rest(&boss)
        .get(&format!("/tasks/{id}"))
        .await
        .expect("get");
    assert_eq!(task["state"], "succeeded");
    assert!(task["finished_at"].as_u64().is_some());

    // A second result for the same lease is refused: completed once.
    let again = worker
        .req(
            "task.result",
            json!({"task_id": id, "lease_id": lease, "ok": true}),
        )
        .await;
    assert_eq!(again["error"]["code"], "conflict", "{again}");

    // Job events in the log stream (the audit writer's, in order; a read
    // of the log waits for what is queued).
    let logs: Value = t.master().get("/logs?type=task").await.expect("logs");
    let actions: Vec<&str> = logs["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["target"] == id.as_str())
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(actions, ["task.queued", "task.started", "task.completed"]);
}

#[tokio::test]
async fn failures_retry_with_backoff_then_dead_letter_with_a_redacted_alert() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let (t, boss, w) = boss_and_worker(fast(), Some(clock.clone())).await;
    let mut worker = t.raw_connected(&w, json!({"worker": true})).await;
    let secret = "QUtJQUlPU0ZPRE5ON0VYQU1QTEUvd0phbHJYVXRuRkVNSQ==";
    // Dispatched with origin details (as a bridge would), which an alert
    // must leave out.
    let mut payload = serde_json::Map::new();
    payload.insert(
        "text".into(),
        format!(
            "use {secret} and data:image/png;base64,iVBORw0KGgoAAAANSUhEUg {}",
            "x".repeat(300)
        )
        .into(),
    );
    let out = t
        .hub
        .dispatch(
            "boss",
            clawnet_proto::tasks::DispatchParams {
                target: "w1".into(),
                payload,
                max_attempts: Some(3),
                ..Default::default()
            },
            Some(clawnet_proto::tasks::TaskOrigin {
                room: "ops".into(),
                message_id: Some("m-origin".into()),
                account: Some("acct-secret-77".into()),
                session: Some("sess-secret-88".into()),
                notes: false,
            }),
        )
        .await
        .expect("dispatch");
    let id = out.task.task_id.clone();

    // Attempt 1 fails: delayed by the base (5 s) of the default backoff.
    let ev = worker.wait_event("task.dispatch").await;
    let lease = ev["data"]["lease_id"].as_str().expect("lease").to_owned();
    let r = worker
        .req(
            "task.result",
            json!({"task_id": id, "lease_id": lease, "ok": false, "error": "boom 1"}),
        )
        .await;
    assert_eq!(r["result"]["state"], "delayed", "{r}");
    assert_eq!(r["result"]["run_at"], 1_000_000 + 5_000);
    assert_eq!(r["result"]["error"], "boom 1");

    // Not before the delay...
    clock.advance(4_999);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !worker.events.iter().any(|e| e["event"] == "task.dispatch"),
        "redelivered before its backoff"
    );
    // ...then attempt 2; it fails after 10 s of backoff (factor 2).
    clock.advance(1);
    let ev = worker.wait_event("task.dispatch").await;
    assert_eq!(ev["data"]["task"]["attempts"], 2);
    let lease = ev["data"]["lease_id"].as_str().expect("lease").to_owned();
    let r = worker
        .req(
            "task.result",
            json!({"task_id": id, "lease_id": lease, "ok": false, "error": "boom 2"}),
        )
        .await;
    assert_eq!(r["result"]["run_at"], 1_005_000 + 10_000);
    clock.advance(10_000);
    let ev = worker.wait_event("task.dispatch").await;
    assert_eq!(ev["data"]["task"]["attempts"], 3);
    let lease = ev["data"]["lease_id"].as_str().expect("lease").to_owned();
    let r = worker
        .req("task.result", json!({"task_id": id, "lease_id": lease, "ok": false, "error": format!("boom 3 {secret}")}))
        .await;
    assert_eq!(r["result"]["state"], "failed", "out of attempts: {r}");

    // The dead-letter list and the alert.
    let failed: Value = t.master().get("/tasks?state=failed").await.expect("list");
    assert_eq!(failed["tasks"][0]["task_id"], id.as_str());
    let h = t
        .master()
        .history("alerts", None, Some(10))
        .await
        .expect("alerts history");
    let alert = h.messages.last().expect("an alert was posted");
    assert_eq!(alert.from_id, "clawnet");
    assert_eq!(alert.payload["task_id"], id.as_str());
    let text = alert.payload["text"].as_str().expect("text");
    let content = alert.payload["content"].as_str().expect("content");
    for part in [text, content] {
        assert!(!part.contains("QUtJQUlP"), "bare base64 redacted: {part}");
        assert!(!part.contains("iVBORw0K"), "data URI redacted: {part}");
    }
    assert!(content.contains("[redacted-base64]"));
    assert!(content.chars().count() <= 201, "cut to 200 characters");
    for part in [text, content] {
        for origin in ["acct-secret-77", "sess-secret-88", "m-origin"] {
            assert!(!part.contains(origin), "origin details left out: {part}");
        }
    }

    // Retrying a dead letter needs master, and puts it back in the queue.
    let refused = t
        .rest(&boss)
        .post::<Value>(&format!("/tasks/{id}/retry"), &json!({}))
        .await
        .expect_err("worker cannot retry");
    assert!(matches!(refused, ClientError::Http(403, _)), "{refused:?}");
    let (_, back): (u16, Value) = t
        .master()
        .post(&format!("/tasks/{id}/retry"), &json!({}))
        .await
        .expect("master retries");
    assert_eq!(back["attempts"], 0);
    let ev = worker.wait_event("task.dispatch").await;
    assert_eq!(ev["data"]["task"]["task_id"], id.as_str());
}

#[tokio::test]
async fn an_expired_lease_is_a_failed_attempt_and_the_task_runs_again_elsewhere() {
    let clock = Arc::new(ManualClock::new(5_000_000));
    let mut cfg = fast();
    cfg.tasks.lease_ms = 1_000;
    cfg.tasks.backoff_base_ms = 100;
    let (t, boss, w) = boss_and_worker(cfg, Some(clock.clone())).await;
    let mut first = t.raw_connected(&w, json!({"worker": true})).await;
    let (_, out) = dispatch(&t.rest(&boss), json!({"target": "w1"}))
        .await
        .expect("dispatch");
    let id = out["task"]["task_id"].as_str().expect("id").to_owned();
    let ev = first.wait_event("task.dispatch").await;
    let old_lease = ev["data"]["lease_id"].as_str().expect("lease").to_owned();
    // The worker crashes mid-task.
    drop(first);
    let mut second = t.raw_connected(&w, json!({"worker": true})).await;
    clock.advance(1_001);
    let task = wait_state(&t, &id, "delayed").await;
    assert_eq!(task["error"], "the lease expired before a result came");
    clock.advance(100);
    let ev = second.wait_event("task.dispatch").await;
    assert_eq!(ev["data"]["task"]["attempts"], 2);
    let lease = ev["data"]["lease_id"].as_str().expect("lease").to_owned();
    assert_ne!(lease, old_lease);
    // The old lease cannot complete it any more.
    let stale = second
        .req(
            "task.result",
            json!({"task_id": id, "lease_id": old_lease, "ok": true}),
        )
        .await;
    assert_eq!(stale["error"]["code"], "conflict");
    let ok = second
        .req(
            "task.result",
            json!({"task_id": id, "lease_id": lease, "ok": true}),
        )
        .await;
    assert_eq!(ok["result"]["state"], "succeeded");
}

#[tokio::test]
async fn a_dedupe_key_returns_the_active_task() {
    let t = start_with(fast(), None).await;
    let (boss, _w) = (t.agent("boss").await, t.agent("w1").await);
    let body = json!({"target": "w1", "dedupe_key": "nightly-report"});
    let (s1, a) = dispatch(&t.rest(&boss), body.clone()).await.expect("first");
    let (s2, b) = dispatch(&t.rest(&boss), body).await.expect("second");
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(b["duplicate"], true);
    assert_eq!(a["task"]["task_id"], b["task"]["task_id"]);
    let all: Value = t.master().get("/tasks?target=w1").await.expect("list");
    assert_eq!(all["tasks"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn dispatch_rate_and_queue_depth_limits_name_the_limit_and_the_count() {
    let mut cfg = fast();
    cfg.tasks.dispatches_per_minute = 3;
    cfg.tasks.max_pending = 50;
    let t = start_with(cfg, None).await;
    let (boss, _w) = (t.agent("boss").await, t.agent("w1").await);
    for _ in 0..3 {
        dispatch(&t.rest(&boss), json!({"target": "w1"}))
            .await
            .expect("under the limit");
    }
    let e = dispatch(&t.rest(&boss), json!({"target": "w1"}))
        .await
        .expect_err("over the limit");
    match e {
        ClientError::Http(429, b) => {
            assert_eq!(b.code.as_str(), "rate_limited");
            assert!(b.message.contains("limit 3 per minute"), "{}", b.message);
            assert!(b.message.contains("3 dispatches"), "{}", b.message);
            assert!(b.retry_after_ms.is_some_and(|ms| ms > 0 && ms <= 60_000));
        }
        other => panic!("expected 429, got {other:?}"),
    }

    let mut cfg = fast();
    cfg.tasks.max_pending = 2;
    let t = start_with(cfg, None).await;
    let (boss, _w) = (t.agent("boss").await, t.agent("w1").await);
    for _ in 0..2 {
        dispatch(&t.rest(&boss), json!({"target": "w1"}))
            .await
            .expect("under the depth");
    }
    match dispatch(&t.rest(&boss), json!({"target": "w1"})).await {
        Err(ClientError::Http(429, b)) => {
            assert!(b.message.contains("2 pending tasks"), "{}", b.message);
            assert!(b.message.contains("limit 2"), "{}", b.message);
        }
        other => panic!("expected the depth limit, got {other:?}"),
    }
}

#[tokio::test]
async fn workers_see_only_their_tasks_without_internal_fields() {
    let t = start_with(fast(), None).await;
    let (boss, w, other) = (
        t.agent("boss").await,
        t.agent("w1").await,
        t.agent("other").await,
    );
    let origin = clawnet_proto::tasks::TaskOrigin {
        room: "ops".into(),
        message_id: Some("m1".into()),
        account: Some("acct-secret".into()),
        session: Some("sess-secret".into()),
        notes: false,
    };
    let out = t
        .hub
        .dispatch(
            "boss",
            clawnet_proto::tasks::DispatchParams {
                target: "w1".into(),
                ..Default::default()
            },
            Some(origin),
        )
        .await
        .expect("dispatch");
    let id = out.task.task_id.clone();
    let path = format!("/tasks/{id}");
    for token in [&boss, &w] {
        let seen: Value = t
            .rest(token)
            .get(&path)
            .await
            .expect("involved agents see it");
        assert_eq!(seen["origin"]["room"], "ops");
        assert!(seen["origin"].get("account").is_none(), "stripped: {seen}");
        assert!(seen["origin"].get("session").is_none(), "stripped: {seen}");
    }
    let full: Value = t.master().get(&path).await.expect("master");
    assert_eq!(full["origin"]["account"], "acct-secret");
    let e = t
        .rest(&other)
        .get::<Value>(&path)
        .await
        .expect_err("outsider");
    assert!(matches!(e, ClientError::Http(403, _)), "{e:?}");
    let listed: Value = t.rest(&other).get("/tasks").await.expect("list");
    assert_eq!(listed["tasks"].as_array().map(Vec::len), Some(0));
    let listed: Value = t.rest(&w).get("/tasks").await.expect("list");
    assert_eq!(listed["tasks"].as_array().map(Vec::len), Some(1));

    // Cancel: not by an outsider, yes by the dispatcher.
    let e = t
        .rest(&other)
        .post::<Value>(&format!("/tasks/{id}/cancel"), &json!({}))
        .await
        .expect_err("outsider cannot cancel");
    assert!(matches!(e, ClientError::Http(403, _)), "{e:?}");
    let (_, c): (u16, Value) = t
        .rest(&boss)
        .post(&format!("/tasks/{id}/cancel"), &json!({}))
        .await
        .expect("dispatcher cancels");
    assert_eq!(c["state"], "cancelled");
    let e = t
        .rest(&boss)
        .post::<Value>(&format!("/tasks/{id}/cancel"), &json!({}))
        .await
        .expect_err("twice");
    assert!(matches!(e, ClientError::Http(409, _)), "{e:?}");
}

#[tokio::test]
async fn bad_dispatches_get_clear_errors() {
    let t = start_with(fast(), None).await;
    let boss = t.agent("boss").await;
    for (body, code) in [
        (json!({"target": "nobody"}), 404),
        (json!({"target": "boss", "payload": "text"}), 400),
        (json!({"target": "boss", "max_attempts": 0}), 400),
        (json!({"target": "boss", "kind": ""}), 400),
        (json!({"target": "boss", "bogus": 1}), 400),
        (json!({}), 400),
    ] {
        match dispatch(&t.rest(&boss), body.clone()).await {
            Err(ClientError::Http(s, _)) => assert_eq!(s, code, "{body}"),
            other => panic!("{body}: expected {code}, got {other:?}"),
        }
    }
    let e = t
        .rest(&boss)
        .get::<Value>("/tasks/t_nope")
        .await
        .expect_err("unknown");
    assert!(matches!(e, ClientError::Http(404, _)), "{e:?}");
}

/// Messages of `room` posted by the hub about `task_id`, as (state, text).
async fn notes(t: &TestHub, room: &str, task_id: &str) -> Vec<(String, String)> {
    let h = t
        .master()
        .history(room, None, Some(100))
        .await
        .expect("history");
    h.messages
        .iter()
        .filter(|m| m.from_id == "clawnet" && m.payload["task_id"] == task_id)
        .map(|m| {
            (
                m.payload["task_state"].as_str().unwrap_or("").to_owned(),
                m.payload["text"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn slash_task_in_a_room_dispatches_and_the_lifecycle_lands_in_the_timeline() {
    let (t, boss, w) = boss_and_worker(fast(), None).await;
    t.rest(&boss).create_room("ops", false).await.expect("room");
    t.rest(&w).join_room("ops").await.expect("join");
    let mut worker = t.raw_connected(&w, json!({"worker": true})).await;
    let (_, cmd) = t
        .rest(&boss)
        .send(&send_params(
            "room",
            Some("ops"),
            "/task @w1 summarise the incident",
            None,
        ))
        .await
        .expect("send");
    let ev = worker.wait_event("task.dispatch").await;
    let task = &ev["data"]["task"];
    assert_eq!(task["payload"]["text"], "summarise the incident");
    assert_eq!(task["kind"], "prompt");
    assert_eq!(task["dispatched_by"], "boss");
    assert_eq!(task["origin"]["room"], "ops");
    assert_eq!(task["origin"]["message_id"], cmd.message.id.as_str());
    let id = task["task_id"].as_str().expect("id").to_owned();
    let lease = ev["data"]["lease_id"].as_str().expect("lease").to_owned();
    worker
        .req(
            "task.result",
            json!({"task_id": id, "lease_id": lease, "ok": true, "output": {"text": "disk full on db-2"}}),
        )
        .await;
    let n = eventually(|| async {
        let n = notes(&t, "ops", &id).await;
        if n.len() >= 3 {
            Ok(n)
        } else {
            Err(format!("notes so far: {n:?}"))
        }
    })
    .await;
    let states: Vec<&str> = n.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(states, ["queued", "running", "succeeded"], "{n:?}");
    assert!(n[0].1.contains("queued for @w1"), "{n:?}");
    assert!(n[2].1.ends_with("succeeded: disk full on db-2"), "{n:?}");
    // The command itself stays in the timeline, before the notes.
    let h = t
        .master()
        .history("ops", None, Some(100))
        .await
        .expect("history");
    assert_eq!(
        h.messages[0].payload["text"],
        "/task @w1 summarise the incident"
    );

    // A bad command answers in the room.
    t.rest(&boss)
        .send(&send_params("room", Some("ops"), "/task @nobody x", None))
        .await
        .expect("send");
    t.rest(&boss)
        .send(&send_params("room", Some("ops"), "/status", None))
        .await
        .expect("send");
    eventually(|| async {
        let h = t
            .master()
            .history("ops", None, Some(100))
            .await
            .expect("history");
        let texts: Vec<String> = h
            .messages
            .iter()
            .filter(|m| m.from_id == "clawnet")
            .filter_map(|m| m.payload["text"].as_str().map(str::to_owned))
            .collect();
        let bad = texts
            .iter()
            .any(|x| x.starts_with("/task: ") && x.contains("nobody"));
        let status = texts
            .iter()
            .any(|x| x.starts_with("status:") && x.contains("@w1 idle"));
        if bad && status {
            Ok(())
        } else {
            Err(format!("replies so far: {texts:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn a_paused_queue_holds_its_tasks_until_resumed() {
    let (t, boss, w) = boss_and_worker(fast(), None).await;
    let mut worker = t.raw_connected(&w, json!({"worker": true})).await;
    let e = t
        .rest(&boss)
        .post::<Value>("/queues/w1/pause", &json!({}))
        .await
        .expect_err("workers cannot pause");
    assert!(matches!(e, ClientError::Http(403, _)), "{e:?}");
    let (_, q): (u16, Value) = t
        .master()
        .post("/queues/@w1/pause", &json!({}))
        .await
        .expect("master pauses");
    assert_eq!(q["paused"], true);
    let (_, out) = dispatch(&t.rest(&boss), json!({"target": "w1"}))
        .await
        .expect("dispatch");
    assert!(
        out["note"].as_str().is_some_and(|n| n.contains("paused")),
        "{out}"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let qs: Value = t.master().get("/queues").await.expect("queues");
    let w1 = qs["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["name"] == "w1")
        .expect("w1 listed")
        .clone();
    assert_eq!(w1["counts"]["queued"], 1, "{w1}");
    assert_eq!(w1["counts"]["running"], 0, "{w1}");
    assert!(!worker.events.iter().any(|e| e["event"] == "task.dispatch"));
    let (_, q): (u16, Value) = t
        .master()
        .post("/queues/w1/resume", &json!({}))
        .await
        .expect("resume");
    assert_eq!(q["paused"], false);
    let ev = worker.wait_event("task.dispatch").await;
    assert_eq!(ev["data"]["task"]["task_id"], out["task"]["task_id"]);
    // Workers see their own queue only.
    let mine: Value = t.rest(&w).get("/queues").await.expect("queues");
    let names: Vec<&str> = mine["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .filter_map(|q| q["name"].as_str())
        .collect();
    assert_eq!(names, ["w1"]);
}

#[tokio::test]
async fn the_breaker_opens_after_consecutive_failures_and_a_trial_closes_it() {
    let clock = Arc::new(ManualClock::new(9_000_000));
    let mut cfg = fast();
    cfg.tasks.breaker_failures = 2;
    cfg.tasks.breaker_reset_ms = 10_000;
    cfg.tasks.backoff_base_ms = 1;
    cfg.tasks.backoff_cap_ms = 1;
    let (t, boss, w) = boss_and_worker(cfg, Some(clock.clone())).await;
    let mut worker = t.raw_connected(&w, json!({"worker": true})).await;
    for i in 0..2 {
        dispatch(&t.rest(&boss), json!({"target": "w1", "max_attempts": 1}))
            .await
            .expect("dispatch");
        let ev = worker.wait_event("task.dispatch").await;
        let (id, lease) = (
            ev["data"]["task"]["task_id"].clone(),
            ev["data"]["lease_id"].clone(),
        );
        let r = worker
            .req(
                "task.result",
                json!({"task_id": id, "lease_id": lease, "ok": false, "error": format!("e{i}")}),
            )
            .await;
        assert_eq!(r["result"]["state"], "failed");
    }
    let act: Value = t.master().get("/activity").await.expect("activity");
    let w1 = act["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["agent_id"] == "w1")
        .expect("w1")
        .clone();
    assert_eq!(w1["breaker"]["state"], "open", "{w1}");
    assert_eq!(w1["breaker"]["failures"], 2);
    assert_eq!(w1["status"], "idle");
    let (_, held) = dispatch(&t.rest(&boss), json!({"target": "w1"}))
        .await
        .expect("dispatch while open");
    assert!(
        held["note"].as_str().is_some_and(|n| n.contains("breaker")),
        "{held}"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!worker.events.iter().any(|e| e["event"] == "task.dispatch"));
    // After the reset timeout one trial runs; its success closes the breaker.
    clock.advance(10_000);
    let ev = worker.wait_event("task.dispatch").await;
    assert_eq!(ev["data"]["task"]["task_id"], held["task"]["task_id"]);
    let act: Value = t.master().get("/activity").await.expect("activity");
    let w1 = act["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["agent_id"] == "w1")
        .expect("w1")
        .clone();
    assert_eq!(w1["status"], "working");
    assert_eq!(w1["breaker"]["state"], "half_open");
    assert_eq!(w1["working_on"][0], held["task"]["task_id"]);
    worker
        .req(
            "task.result",
            json!({"task_id": ev["data"]["task"]["task_id"], "lease_id": ev["data"]["lease_id"], "ok": true}),
        )
        .await;
    let act: Value = t.rest(&w).get("/activity").await.expect("activity");
    assert_eq!(
        act["agents"].as_array().map(Vec::len),
        Some(1),
        "workers see themselves"
    );
    assert_eq!(act["agents"][0]["breaker"]["state"], "closed");
}

/// The tasks of `w1` once there are `n` of them.
async fn tasks_of_w1(t: &TestHub, n: usize) -> Value {
    eventually(|| async {
        let l: Value = t.master().get("/tasks?target=w1").await.expect("list");
        if l["tasks"].as_array().map(Vec::len) == Some(n) {
            Ok(l)
        } else {
            Err(format!("wanted {n} tasks of w1: {l}"))
        }
    })
    .await
}

#[tokio::test]
async fn cron_schedules_are_idempotent_fire_on_time_and_survive_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("sched.db");
    let open = || -> Option<Arc<dyn clawnet_core::store::Store>> {
        Some(Arc::new(
            clawnet_store::sqlite::SqliteStore::open(&path, clawnet_store::sqlite::Sync::Normal)
                .expect("sqlite"),
        ))
    };
    // 2026-01-01T00:00:30Z
    let clock = Arc::new(ManualClock::new(1_767_225_630_000));
    let t = start_on(fast(), Some(clock.clone()), open()).await;
    let boss = t.agent("boss").await;
    t.agent("w1").await;
    let body = json!({"target": "w1", "cron": "* * * * *", "kind": "report", "payload": {"text": "hourly"}});
    let (s1, a) = t
        .rest(&boss)
        .post::<Value>("/schedules", &body)
        .await
        .expect("create");
    let (s2, b) = t
        .rest(&boss)
        .post::<Value>("/schedules", &body)
        .await
        .expect("again");
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(b["created"], false);
    let id = a["schedule"]["schedule_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(b["schedule"]["schedule_id"], id.as_str());
    assert_eq!(a["schedule"]["next_run_at"], 1_767_225_660_000u64);
    let bad = t
        .rest(&boss)
        .post::<Value>("/schedules", &json!({"target": "w1", "cron": "every day"}))
        .await
        .expect_err("bad cron");
    assert!(matches!(bad, ClientError::Http(400, _)), "{bad:?}");

    clock.advance(30_000);
    let l = tasks_of_w1(&t, 1).await;
    assert_eq!(l["tasks"][0]["kind"], "report");
    assert_eq!(l["tasks"][0]["dispatched_by"], "boss");
    drop(t);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Same file, new hub: the schedule is still there and keeps firing.
    let t = start_on(fast(), Some(clock.clone()), open()).await;
    let l: Value = t.master().get("/schedules").await.expect("schedules");
    assert_eq!(l["schedules"][0]["schedule_id"], id.as_str());
    clock.advance(60_000);
    tasks_of_w1(&t, 2).await;
    let gone: Value = reqwest::Client::new()
        .delete(format!("{}/api/v1/schedules/{id}", t.base))
        .bearer_auth(&boss)
        .send()
        .await
        .expect("delete")
        .json()
        .await
        .expect("json");
    assert_eq!(gone["schedule_id"], id.as_str());
    let l: Value = t.master().get("/schedules").await.expect("schedules");
    assert_eq!(l["schedules"].as_array().map(Vec::len), Some(0));
}

/// Tasks of `target` in `state`, polled until there are `n` (or fail).
async fn wait_count(t: &TestHub, target: &str, state: &str, n: usize) -> Value {
    eventually(|| async {
        let l: Value = t
            .master()
            .get(&format!("/tasks?target={target}&state={state}"))
            .await
            .expect("list");
        if l["tasks"].as_array().map(Vec::len) == Some(n) {
            Ok(l)
        } else {
            Err(format!("wanted {n} {state} tasks of {target}: {l}"))
        }
    })
    .await
}

#[tokio::test]
async fn mentions_activate_a_worker_and_inbox_modes_shape_its_follow_ups() {
    let (t, boss, w) = boss_and_worker(fast(), None).await;
    t.rest(&boss).create_room("ops", false).await.expect("room");
    t.rest(&w).join_room("ops").await.expect("join");
    let mut worker = t.raw_connected(&w, json!({"worker": true})).await;
    let say = |text: &str| send_params("room", Some("ops"), text, None);

    // Not mentioned: nothing. Mentioned: a `message` task.
    t.rest(&boss)
        .send(&say("just chatting"))
        .await
        .expect("send");
    t.rest(&boss)
        .send(&say("@w1 what broke?"))
        .await
        .expect("send");
    let ev = worker.wait_event("task.dispatch").await;
    assert_eq!(ev["data"]["task"]["kind"], "message");
    assert_eq!(ev["data"]["task"]["payload"]["text"], "@w1 what broke?");
    assert_eq!(ev["data"]["task"]["origin"]["room"], "ops");
    wait_count(&t, "w1", "running", 1).await;

    // Busy with it; steer keeps only the newest waiting follow-up.
    let inbox = json!({"activation": "mention", "mode": "steer"});
    let r = reqwest::Client::new()
        .put(format!("{}/api/v1/agents/w1/inbox", t.base))
        .bearer_auth(&w)
        .json(&inbox)
        .send()
        .await
        .expect("put inbox");
    assert_eq!(r.status(), 200);
    for i in 1..=3 {
        t.rest(&boss)
            .send(&say(&format!("@w1 follow-up {i}")))
            .await
            .expect("send");
    }
    wait_count(&t, "w1", "skipped", 2).await;
    let q = wait_count(&t, "w1", "queued", 1).await;
    assert_eq!(q["tasks"][0]["payload"]["text"], "@w1 follow-up 3");

    // Collect merges what waits into one task.
    let r = reqwest::Client::new()
        .put(format!("{}/api/v1/agents/w1/inbox", t.base))
        .bearer_auth(&w)
        .json(&json!({"mode": "collect", "activation": "always"}))
        .send()
        .await
        .expect("put inbox");
    assert_eq!(r.status(), 200);
    t.rest(&boss)
        .send(&say("no mention, but always"))
        .await
        .expect("send");
    t.rest(&boss)
        .send(&say("and one more"))
        .await
        .expect("send");
    let q = eventually(|| async {
        let q = wait_count(&t, "w1", "queued", 1).await;
        let msgs = q["tasks"][0]["payload"]["messages"]
            .as_array()
            .map(Vec::len);
        if msgs == Some(3) {
            Ok(q)
        } else {
            Err(format!("not merged: {q}"))
        }
    })
    .await;
    assert_eq!(
        q["tasks"][0]["payload"]["text"],
        "@w1 follow-up 3\nno mention, but always\nand one more"
    );
    // Another agent cannot change w1's inbox.
    let r = reqwest::Client::new()
        .put(format!("{}/api/v1/agents/w1/inbox", t.base))
        .bearer_auth(&boss)
        .json(&json!({"mode": "followup"}))
        .send()
        .await
        .expect("put inbox");
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_released_task_goes_back_to_the_queue_without_using_an_attempt() {
    let (t, boss, w) = boss_and_worker(fast(), None).await;
    let mut first = t.raw_connected(&w, json!({"worker": true})).await;
    let (_, out) = dispatch(&t.rest(&boss), json!({"target": "w1", "max_attempts": 1}))
        .await
        .expect("dispatch");
    let id = out["task"]["task_id"].as_str().expect("id").to_owned();
    let ev = first.wait_event("task.dispatch").await;
    let lease = ev["data"]["lease_id"].clone();
    // Another agent cannot release it.
    let other = t.agent("other").await;
    let mut o = t.raw_connected(&other, json!({})).await;
    let r = o
        .req("task.release", json!({"task_id": id, "lease_id": lease}))
        .await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    drop(first);
    // The stopping worker hands it back; a new connection gets it, and its
    // single attempt is still there.
    let mut o = t.raw_connected(&w, json!({})).await;
    let r = o
        .req("task.release", json!({"task_id": id, "lease_id": lease}))
        .await;
    assert_eq!(r["result"]["state"], "queued", "{r}");
    assert_eq!(r["result"]["attempts"], 0);
    let mut second = t.raw_connected(&w, json!({"worker": true})).await;
    let ev = second.wait_event("task.dispatch").await;
    assert_eq!(ev["data"]["task"]["task_id"], id.as_str());
    assert_eq!(ev["data"]["task"]["attempts"], 1);
    let r = second
        .req(
            "task.result",
            json!({"task_id": id, "lease_id": ev["data"]["lease_id"], "ok": true}),
        )
        .await;
    assert_eq!(r["result"]["state"], "succeeded");
}

/// Send `frames` back to back, then read until every one is answered: the
/// `res` frames in the order they arrived (events are kept on `raw`).
async fn pipeline(raw: &mut Raw, frames: &[Value]) -> Vec<Value> {
    for f in frames {
        raw.send_text(&f.to_string()).await;
    }
    let mut answers = Vec::new();
    while answers.len() < frames.len() {
        let f = raw.next().await.expect("open while answering");
        if f["type"] == "res" {
            answers.push(f);
        } else {
            raw.events.push_back(f);
        }
    }
    answers
}

#[tokio::test]
async fn pipelined_dispatches_are_answered_in_order_and_queue_in_arrival_order() {
    let (t, boss, w) = boss_and_worker(fast(), None).await;
    let mut d = t.raw_connected(&boss, json!({})).await;
    let mut frames: Vec<Value> = (1..=40)
        .map(|i| {
            json!({"type": "req", "id": 1000 + i, "method": "task.dispatch",
                   "params": {"target": "w1", "payload": {"n": i}}})
        })
        .collect();
    // Not a task request: it waits for the dispatches before it.
    frames.push(json!({"type": "req", "id": 2000, "method": "room.list", "params": {}}));
    let answers = pipeline(&mut d, &frames).await;
    let ids: Vec<u64> = answers
        .iter()
        .map(|a| a["id"].as_u64().expect("id"))
        .collect();
    let sent: Vec<u64> = frames
        .iter()
        .map(|f| f["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, sent, "answers in request order");
    let tasks: Vec<String> = answers[..40]
        .iter()
        .map(|a| {
            assert_eq!(a["ok"], true, "{a}");
            a["result"]["task"]["task_id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    assert!(
        tasks.windows(2).all(|p| p[0] < p[1]),
        "task ids follow arrival order: {tasks:?}"
    );
    assert_eq!(answers[40]["ok"], true, "{}", answers[40]);

    // One slot: the worker gets them one by one, first dispatched first.
    let mut worker = t.raw_connected(&w, json!({"worker": true})).await;
    for (i, want) in tasks.iter().enumerate() {
        let ev = worker.wait_event("task.dispatch").await;
        assert_eq!(&ev["data"]["task"]["task_id"], want.as_str(), "task {i}");
        assert_eq!(ev["data"]["task"]["payload"]["n"], i + 1);
        let lease = ev["data"]["lease_id"].clone();
        let r = worker
            .req(
                "task.result",
                json!({"task_id": want, "lease_id": lease, "ok": true}),
            )
            .await;
        assert_eq!(r["ok"], true, "{r}");
    }
}

#[tokio::test]
async fn pipelined_results_are_answered_in_order_before_a_later_request() {
    let (t, boss, w) = boss_and_worker(fast(), None).await;
    let mut worker = t
        .raw_connected(&w, json!({"worker": true, "concurrency": 30}))
        .await;
    for i in 0..30 {
        dispatch(&t.rest(&boss), json!({"target": "w1", "payload": {"n": i}}))
            .await
            .expect("dispatch");
    }
    let mut leases = Vec::new();
    for _ in 0..30 {
        let ev = worker.wait_event("task.dispatch").await;
        leases.push((
            ev["data"]["task"]["task_id"].clone(),
            ev["data"]["lease_id"].clone(),
        ));
    }
    let mut frames: Vec<Value> = leases
        .iter()
        .enumerate()
        .map(|(i, (task, lease))| {
            json!({"type": "req", "id": i, "method": "task.result",
                   "params": {"task_id": task, "lease_id": lease, "ok": true, "output": i}})
        })
        .collect();
    // A stale lease among them is refused on its own.
    frames.insert(
        10,
        json!({"type": "req", "id": "stale", "method": "task.result",
               "params": {"task_id": leases[0].0, "lease_id": "nope", "ok": true}}),
    );
    // `task.get` is not pipelined: it runs after every result is stored.
    frames.push(json!({"type": "req", "id": "last", "method": "task.get",
                       "params": {"task_id": leases[29].0}}));
    let answers = pipeline(&mut worker, &frames).await;
    let ids: Vec<&Value> = answers.iter().map(|a| &a["id"]).collect();
    let sent: Vec<&Value> = frames.iter().map(|f| &f["id"]).collect();
    assert_eq!(ids, sent, "answers in request order");
    for a in &answers {
        if a["id"] == "stale" {
            assert_eq!(a["error"]["code"], "conflict", "{a}");
        } else {
            assert_eq!(a["ok"], true, "{a}");
            assert_eq!(a["result"]["state"], "succeeded", "{a}");
        }
    }
    assert_eq!(answers.last().expect("last")["result"]["result"], 29);
}

#[tokio::test]
async fn a_worker_connection_hears_only_updates_its_own_frames_did_not_tell_it() {
    let clock = Arc::new(ManualClock::new(5_000_000));
    let mut cfg = fast();
    cfg.tasks.lease_ms = 1_000;
    let (t, boss, w) = boss_and_worker(cfg, Some(clock.clone())).await;
    let mut worker = t.raw_connected(&w, json!({"worker": true})).await;
    // The same agent's dashboard: it hears every transition.
    let mut screen = t.raw_connected(&w, json!({})).await;
    let (_, out) = dispatch(&t.rest(&boss), json!({"target": "w1"}))
        .await
        .expect("dispatch");
    let done = out["task"]["task_id"].clone();
    let ev = worker.wait_event("task.dispatch").await;
    let r = worker
        .req(
            "task.result",
            json!({"task_id": done, "lease_id": ev["data"]["lease_id"], "ok": true}),
        )
        .await;
    assert_eq!(r["result"]["state"], "succeeded");
    let mut states = Vec::new();
    while states.last() != Some(&json!("succeeded")) {
        let u = screen.wait_event("task.updated").await;
        states.push(u["data"]["task"]["state"].clone());
    }
    assert_eq!(
        states,
        [json!("queued"), json!("running"), json!("succeeded")]
    );

    // A lease that runs out under the worker is news to it.
    let (_, out) = dispatch(&t.rest(&boss), json!({"target": "w1"}))
        .await
        .expect("dispatch");
    let lapsed = out["task"]["task_id"].clone();
    worker.wait_event("task.dispatch").await;
    clock.advance(1_001);
    let u = worker.wait_event("task.updated").await;
    assert_eq!(u["data"]["task"]["task_id"], lapsed);
    assert_eq!(u["data"]["task"]["state"], "delayed");
    // Frames of a connection keep their order: nothing about the first task
    // came before it.
    let echoes: Vec<&Value> = worker
        .events
        .iter()
        .filter(|e| e["event"] == "task.updated")
        .collect();
    assert!(echoes.is_empty(), "{echoes:?}");
}

#[tokio::test]
async fn results_pipelined_just_before_the_worker_hangs_up_are_all_recorded() {
    let (t, boss, w) = boss_and_worker(fast(), None).await;
    let mut worker = t
        .raw_connected(&w, json!({"worker": true, "concurrency": 40}))
        .await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let (_, out) = dispatch(&t.rest(&boss), json!({"target": "w1", "payload": {"n": i}}))
            .await
            .expect("dispatch");
        ids.push(out["task"]["task_id"].as_str().expect("id").to_owned());
    }
    let mut frames = Vec::new();
    for i in 0..40 {
        let ev = worker.wait_event("task.dispatch").await;
        frames.push(json!({"type": "req", "id": i, "method": "task.result",
                           "params": {"task_id": ev["data"]["task"]["task_id"],
                                      "lease_id": ev["data"]["lease_id"], "ok": true}}));
    }
    for f in &frames {
        worker.send_text(&f.to_string()).await;
    }
    // Hang up right behind them: the hub stops answering at the close frame,
    // with most of the results still being carried out.
    worker.ws.close(None).await.expect("close");
    while worker.ws.next().await.is_some_and(|m| m.is_ok()) {}
    eventually(|| async {
        let list: Value = t
            .master()
            .get("/tasks?state=succeeded&target=w1")
            .await
            .map_err(|e| e.to_string())?;
        let done: Vec<&str> = list["tasks"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t["task_id"].as_str()).collect())
            .unwrap_or_default();
        if ids.iter().all(|id| done.contains(&id.as_str())) {
            Ok(())
        } else {
            Err(format!("{} of 40 succeeded: {list}", done.len()))
        }
    })
    .await;
    // Their job events followed too.
    eventually(|| async {
        let logs: Value = t
            .master()
            .get("/logs?type=task&limit=1000")
            .await
            .map_err(|e| e.to_string())?;
        let completed = logs["entries"].as_array().map_or(0, |a| {
            a.iter().filter(|e| e["action"] == "task.completed").count()
        });
        if completed == 40 {
            Ok(())
        } else {
            Err(format!("{completed} task.completed entries of 40"))
        }
    })
    .await;
}

#[tokio::test]
async fn the_dispatching_connection_is_not_sent_the_queued_echo_of_its_own_dispatch() {
    let (t, boss, w) = boss_and_worker(fast(), None).await;
    let mut sender = t.raw_connected(&boss, json!({})).await;
    // The same dispatcher's other connection hears every transition.
    let mut other = t.raw_connected(&boss, json!({})).await;
    let r = sender
        .req(
            "task.dispatch",
            json!({"target": "w1", "payload": {"n": 1}}),
        )
        .await;
    assert_eq!(r["result"]["task"]["state"], "queued", "{r}");
    let id = r["result"]["task"]["task_id"].clone();
    let u = other.wait_event("task.updated").await;
    assert_eq!(u["data"]["task"]["task_id"], id);
    assert_eq!(u["data"]["task"]["state"], "queued");
    // The worker takes it: the sender's first event about it is `running`.
    let mut worker = t.raw_connected(&w, json!({"worker": true})).await;
    let ev = worker.wait_event("task.dispatch").await;
    assert_eq!(ev["data"]["task"]["task_id"], id);
    let u = sender.wait_event("task.updated").await;
    assert_eq!(u["data"]["task"]["task_id"], id);
    assert_eq!(u["data"]["task"]["state"], "running", "{u}");
}

/// Request params are decoded by each method straight from the frame's
/// text; a frame spelled with escapes takes the general reader. Both must
/// answer alike, and a params error names the field without a position
/// inside the frame.
#[tokio::test]
async fn request_params_decode_alike_whatever_the_frame_spelling() {
    let (t, boss, _w) = boss_and_worker(fast(), None).await;
    let mut b = t.raw_connected(&boss, json!({})).await;

    // The fast reader: plain frames.
    let res = b
        .req(
            "task.dispatch",
            json!({"target": "w1", "payload": {"n": 1}}),
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["result"]["task"]["payload"]["n"], 1, "{res}");

    // The general reader: `type` written with an escape, `params` absent.
    b.send_text(r#"{"type":"r\u0065q","id":901,"method":"task.list"}"#)
        .await;
    let res = b.response(901).await;
    assert_eq!(res["ok"], true, "{res}");
    b.send_text(r#"{"type":"r\u0065q","id":902,"method":"task.dispatch","params":{"target":"w1","payload":{"n":2}}}"#)
        .await;
    let res = b.response(902).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["result"]["task"]["payload"]["n"], 2, "{res}");

    // `null` params are `{}`; a method without params refuses some.
    b.send_text(r#"{"type":"req","id":903,"method":"queue.list","params":null}"#)
        .await;
    let res = b.response(903).await;
    assert_eq!(res["ok"], true, "{res}");
    let res = b.req("queue.list", json!({"x": 1})).await;
    assert_eq!(res["error"]["code"], "invalid", "{res}");
    assert_eq!(res["error"]["field"], "params", "{res}");

    // A bad field is named; the message has no position.
    for spelling in ["req", r"r\u0065q"] {
        let frame = format!(
            r#"{{"type":"{spelling}","id":904,"method":"task.dispatch","params":{{"target":"w1","bogus":true}}}}"#
        );
        b.send_text(&frame).await;
        let res = b.response(904).await;
        assert_eq!(res["error"]["code"], "invalid", "{res}");
        let msg = res["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains("bogus"), "{res}");
        assert!(!msg.contains("line"), "{res}");
    }
}
