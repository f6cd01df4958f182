//! Tasks over real sockets: dispatch, the worker protocol, retries with
//! backoff on an injected clock, dead letters with a redacted alert, lease
//! expiry, dedupe, limits and visibility.

mod common;

use std::sync::Arc;
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

/// Wait until the task is in `state` (the REST view), or fail.
async fn wait_state(t: &TestHub, id: &str, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let task: Value = t.master().get(&format!("/tasks/{id}")).await.expect("get");
        if task["state"] == state {
            return task;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {id} never reached {state}: {task}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn dispatch_runs_on_the_worker_and_the_result_reaches_the_dispatcher() {
    let t = start_with(fast(), None).await;
    let (boss, w) = (t.agent("boss").await, t.agent("w1").await);
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

    // Job events in the log stream.
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
    let t = start_with(fast(), Some(clock.clone())).await;
    let (boss, w) = (t.agent("boss").await, t.agent("w1").await);
    let mut worker = t.raw_connected(&w, json!({"worker": true})).await;
    let secret = "QUtJQUlPU0ZPRE5ON0VYQU1QTEUvd0phbHJYVXRuRkVNSQ==";
    let (_, out) = dispatch(
        &t.rest(&boss),
        json!({
            "target": "w1",
            "payload": {"text": format!("use {secret} and data:image/png;base64,iVBORw0KGgoAAAANSUhEUg {}", "x".repeat(300))},
            "max_attempts": 3
        }),
    )
    .await
    .expect("dispatch");
    let id = out["task"]["task_id"].as_str().expect("id").to_owned();

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
    assert!(!content.contains("acct"), "no origin details");

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
    let t = start_with(cfg, Some(clock.clone())).await;
    let (boss, w) = (t.agent("boss").await, t.agent("w1").await);
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
