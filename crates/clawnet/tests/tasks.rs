//! `clawnet worker` and `clawnet tasks` end to end: a real hub
//! (`clawnet serve` as a child process), real worker processes running real
//! shell commands, and the CLI as a person or a script would use it.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The command every test worker runs: what it does depends on the kind.
const SCRIPT: &str = r#"case "$CLAWNET_TASK_KIND" in
  echo) sed 's/ping/pong/' ;;
  text) cat >/dev/null; echo "hello $CLAWNET_TASK_ID" ;;
  slow) sleep 3; cat ;;
  nap) sleep 1; cat ;;
  fail) cat >/dev/null; echo "boom on attempt $CLAWNET_TASK_ATTEMPT" >&2; exit 3 ;;
  hang) sleep 30 ;;
  *) echo "unknown kind $CLAWNET_TASK_KIND" >&2; exit 1 ;;
esac"#;

/// `tasks dispatch … --wait --json` started in the background.
fn dispatch_waiting(hub: &Hub, args: &[&str]) -> Child {
    let mut all = vec!["tasks", "dispatch", "--wait", "--json"];
    all.extend_from_slice(args);
    cli_cmd(hub, MASTER, &all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dispatch")
}

fn finish(child: Child) -> Run {
    Run::from(child.wait_with_output().expect("wait dispatch"))
}

#[test]
fn the_worker_runs_commands_and_reports_what_they_did() {
    let hub = serve(&[
        "--set",
        "tasks.backoff_base_ms=100",
        "--set",
        "tasks.lease_secs=2",
    ]);
    // Successes and failures go to different agents: a target's circuit
    // breaker opens after consecutive failures.
    let ok_token = agent(&hub, "w1");
    let bad_token = agent(&hub, "w2");
    let w1 = Worker::start(&hub, &ok_token, SCRIPT, &["--concurrency", "4"]);
    let w2 = Worker::start(
        &hub,
        &bad_token,
        SCRIPT,
        &["--concurrency", "2", "--timeout", "1"],
    );

    let echo = dispatch_waiting(
        &hub,
        &[
            "--to",
            "@w1",
            "--kind",
            "echo",
            "--payload",
            r#"{"text":"ping"}"#,
        ],
    );
    let text = dispatch_waiting(&hub, &["--to", "w1", "--kind", "text", "--text", "x"]);
    // Longer than the 2 s lease: only progress reports keep it.
    let slow = dispatch_waiting(
        &hub,
        &["--to", "@w1", "--kind", "slow", "--payload", r#"{"n":1}"#],
    );
    let fail = dispatch_waiting(
        &hub,
        &["--to", "@w2", "--kind", "fail", "--max-attempts", "2"],
    );
    let hang = dispatch_waiting(
        &hub,
        &["--to", "@w2", "--kind", "hang", "--max-attempts", "1"],
    );

    // stdout that is JSON is the result as it is.
    let r = finish(echo);
    assert!(r.ok, "{}", r.err);
    let t = r.json();
    assert_eq!(t["state"], "succeeded");
    assert_eq!(t["result"], serde_json::json!({"text": "pong"}));

    // Any other stdout is the result's text; the task id is in the env.
    let r = finish(text);
    assert!(r.ok, "{}", r.err);
    let t = r.json();
    let expected = format!("hello {}\n", t["task_id"].as_str().expect("id"));
    assert_eq!(t["result"], serde_json::json!({ "text": expected }));

    let r = finish(slow);
    assert!(r.ok, "{}", r.err);
    let t = r.json();
    assert_eq!(t["result"], serde_json::json!({"n": 1}));
    assert_eq!(t["attempts"], 1, "the lease ran out despite progress: {t}");

    // A non-zero exit is a failed attempt quoting stderr, retried, then
    // dead-lettered; --wait exits non-zero.
    let r = finish(fail);
    assert!(!r.ok);
    assert_eq!(r.code, Some(1));
    let t = r.json();
    assert_eq!(t["state"], "failed");
    assert_eq!(t["attempts"], 2);
    assert_eq!(t["error"], "exit 3: boom on attempt 2");
    assert!(r.err.contains("failed"), "{}", r.err);
    let failed_id = t["task_id"].as_str().expect("id").to_owned();

    // A command past --timeout is killed.
    let r = finish(hang);
    assert!(!r.ok);
    let t = r.json();
    assert_eq!(t["state"], "failed");
    let error = t["error"].as_str().expect("error");
    assert!(error.starts_with("timed out after 1s"), "{error}");

    // One line per task and outcome on the worker's stderr.
    assert_eq!(w1.count("started"), 3, "{}", w1.log());
    assert_eq!(w1.count("succeeded"), 3, "{}", w1.log());
    assert_eq!(w2.count("started"), 3, "{}", w2.log());
    assert_eq!(w2.count("failed"), 3, "{}", w2.log());
    assert!(
        w2.log().contains("exit 3: boom on attempt 1"),
        "{}",
        w2.log()
    );

    // Master puts the dead letter back; it runs again.
    let r = cli(&hub, MASTER, &["tasks", "retry", &failed_id]);
    assert!(r.ok, "{}", r.err);
    assert!(r.out.contains("queued again"), "{}", r.out);
    let deadline = Instant::now() + Duration::from_secs(10);
    while w2.count("started") < 4 {
        assert!(Instant::now() < deadline, "{}", w2.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(w2);

    // SIGTERM with nothing running: exit 0 at once.
    let mut w1 = w1;
    w1.signal("-TERM");
    assert_eq!(
        w1.exit_code(Duration::from_secs(5)),
        Some(0),
        "{}",
        w1.log()
    );
}

#[test]
fn a_stopping_worker_finishes_or_abandons_its_tasks_and_exits_zero() {
    let hub = serve(&[]);
    let token = agent(&hub, "w3");

    // First signal: the running task finishes and is reported; no new task
    // starts.
    let mut w = Worker::start(&hub, &token, SCRIPT, &[]);
    let first = dispatch(&hub, &["--to", "@w3", "--kind", "nap", "--text", "a"]);
    w.wait_for("started", Duration::from_secs(10));
    w.signal("-TERM");
    let second = dispatch(&hub, &["--to", "@w3", "--kind", "echo", "--text", "b"]);
    assert_eq!(w.exit_code(Duration::from_secs(10)), Some(0), "{}", w.log());
    let t = status(&hub, &first);
    assert_eq!(t["state"], "succeeded", "{t}\n{}", w.log());
    assert_eq!(t["result"], serde_json::json!({"text": "a"}));
    assert_eq!(status(&hub, &second)["state"], "queued", "{}", w.log());

    // The next worker takes the queued task; two signals abandon a command
    // that would run for long: the worker exits 0 at once and hands the task
    // back (`task.release`): queued again, its attempt not counted.
    let mut w = Worker::start(&hub, &token, SCRIPT, &[]);
    wait_state(&hub, &second, "succeeded", Duration::from_secs(10));
    let hang = dispatch(&hub, &["--to", "@w3", "--kind", "hang"]);
    wait_state(&hub, &hang, "running", Duration::from_secs(10));
    w.wait_for("started: kind hang", Duration::from_secs(10));
    w.signal("-INT");
    w.wait_for("get 30 s to finish", Duration::from_secs(5));
    w.signal("-INT");
    assert_eq!(w.exit_code(Duration::from_secs(5)), Some(0), "{}", w.log());
    assert!(w.log().contains("abandoned and handed back"), "{}", w.log());
    let t = status(&hub, &hang);
    assert_eq!(t["state"], "queued", "{t}");
    assert_eq!(t["attempts"], 0, "{t}");
}

#[test]
fn the_worker_carries_on_after_the_hub_restarts() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("hub.db");
    let port = free_port();
    let mut hub = serve_sqlite(&db, port);
    let token = agent(&hub, "w4");
    let w = Worker::start(&hub, &token, SCRIPT, &[]);

    // A task is running when the hub dies (SIGKILL) and comes back on the
    // same file and port: the result reaches the new process.
    let before = dispatch(&hub, &["--to", "@w4", "--kind", "nap", "--text", "a"]);
    w.wait_for("started", Duration::from_secs(10));
    let _ = hub.child.kill();
    let _ = hub.child.wait();
    drop(hub);
    let hub = serve_sqlite(&db, port);
    let t = wait_state(&hub, &before, "succeeded", Duration::from_secs(15));
    assert_eq!(t["result"], serde_json::json!({"text": "a"}));
    assert_eq!(t["attempts"], 1);
    assert!(w.count("reconnecting") > 0, "{}", w.log());

    // And new work reaches the reconnected worker.
    let r = cli(
        &hub,
        MASTER,
        &[
            "tasks", "dispatch", "--to", "@w4", "--kind", "echo", "--text", "ping", "--wait",
        ],
    );
    assert!(r.ok, "{}\n{}", r.err, w.log());
    assert!(r.out.contains(r#"succeeded: {"text":"pong"}"#), "{}", r.out);
}

#[test]
fn tasks_commands_print_for_people_and_for_scripts() {
    let hub = serve(&[]);
    let w5 = agent(&hub, "w5");

    // Human dispatch; nobody works for w5, so tasks stay queued.
    let r = cli(
        &hub,
        MASTER,
        &["tasks", "dispatch", "--to", "@w5", "--text", "hi"],
    );
    assert!(r.ok, "{}", r.err);
    let id = r
        .out
        .strip_prefix("dispatched ")
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("{}", r.out))
        .to_owned();
    assert!(r.out.contains("to w5 (queued)"), "{}", r.out);

    // The same dedupe key twice is one task.
    let args = [
        "tasks",
        "dispatch",
        "--to",
        "w5",
        "--kind",
        "report",
        "--dedupe-key",
        "k1",
        "--priority",
        "-2",
        "--payload",
        r#"{"a":[1,2]}"#,
    ];
    let r = cli(&hub, MASTER, &args);
    assert!(r.ok, "{}", r.err);
    let mut again = args.to_vec();
    again.push("--json");
    let r = cli(&hub, MASTER, &again);
    assert!(r.ok, "{}", r.err);
    let v = r.json();
    assert_eq!(v["duplicate"], true);
    assert_eq!(v["task"]["priority"], -2);
    let deduped = v["task"]["task_id"].as_str().expect("id").to_owned();
    let r = cli(&hub, MASTER, &args);
    assert!(r.out.contains("already active"), "{}", r.out);

    let delayed = dispatch(&hub, &["--to", "@w5", "--delay-ms", "60000"]);
    assert_eq!(status(&hub, &delayed)["state"], "delayed");

    // status, for people and as JSON.
    let r = cli(&hub, MASTER, &["tasks", "status", &id]);
    assert!(r.ok, "{}", r.err);
    for want in [
        format!("task_id       {id}"),
        "state         queued".into(),
        "target        w5".into(),
        "attempts      0/5".into(),
        r#"payload       {"text":"hi"}"#.into(),
    ] {
        assert!(r.out.contains(&want), "{want:?} missing:\n{}", r.out);
    }
    let t = status(&hub, &id);
    assert_eq!(t["payload"]["text"], "hi");
    assert_eq!(t["kind"], "task");

    // list: a table, JSON, filters, pages.
    let r = cli(&hub, MASTER, &["tasks", "list"]);
    assert!(r.ok, "{}", r.err);
    let mut lines = r.out.lines();
    assert!(lines.next().unwrap_or_default().starts_with("TASK_ID"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{}", r.out);
    assert!(
        rows[0].starts_with(&id) && rows[0].contains("queued"),
        "{}",
        r.out
    );
    let r = cli(
        &hub,
        MASTER,
        &[
            "tasks", "list", "--state", "queued", "--target", "@w5", "--json",
        ],
    );
    assert!(r.ok, "{}", r.err);
    let ids: Vec<String> = r.json()["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["task_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids, [id.clone(), deduped.clone()]);
    let r = cli(&hub, MASTER, &["tasks", "list", "--limit", "1"]);
    assert!(r.ok, "{}", r.err);
    assert!(r.err.contains(&format!("--after {id}")), "{}", r.err);
    let r = cli(&hub, MASTER, &["tasks", "list", "--state", "done"]);
    assert_eq!(r.code, Some(2), "{}", r.err);
    assert!(r.err.contains("succeeded"), "{}", r.err);

    // cancel, then the hub's refusals: code and message, exit 1.
    let r = cli(&hub, MASTER, &["tasks", "cancel", &delayed]);
    assert!(r.ok, "{}", r.err);
    assert_eq!(r.out.trim(), format!("{delayed} cancelled"));
    let r = cli(&hub, MASTER, &["tasks", "cancel", &delayed]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.err.contains("conflict") && r.err.contains("cancelled"),
        "{}",
        r.err
    );
    let r = cli(&hub, MASTER, &["tasks", "cancel", &id, "--json"]);
    assert!(r.ok, "{}", r.err);
    assert_eq!(r.json()["state"], "cancelled");
    let r = cli(&hub, MASTER, &["tasks", "retry", &id]);
    assert_eq!(r.code, Some(1));
    assert!(r.err.contains("conflict"), "{}", r.err);
    let r = cli(&hub, &w5, &["tasks", "retry", &id]);
    assert_eq!(r.code, Some(1));
    assert!(r.err.contains("forbidden"), "{}", r.err);
    let r = cli(&hub, MASTER, &["tasks", "status", "t_nope"]);
    assert_eq!(r.code, Some(4), "not found has its own exit status");
    assert!(r.err.contains("not_found"), "{}", r.err);
    let r = cli(&hub, "cn_not_a_token", &["tasks", "status", "t_nope"]);
    assert_eq!(r.code, Some(3), "a bad credential has its own: {}", r.err);
    let r = cli(&hub, MASTER, &["tasks", "dispatch", "--to", "@nobody"]);
    assert_eq!(r.code, Some(4));
    assert!(r.err.contains("not_found"), "{}", r.err);
    let r = cli(
        &hub,
        MASTER,
        &["tasks", "dispatch", "--to", "w5", "--payload", "[1]"],
    );
    assert_eq!(r.code, Some(1));
    assert!(r.err.contains("JSON object"), "{}", r.err);

    // The worker agent sees its own tasks only, and can read them.
    let r = cli(&hub, &w5, &["tasks", "list", "--json"]);
    assert!(r.ok, "{}", r.err);
    assert_eq!(r.json()["tasks"].as_array().map(Vec::len), Some(3));
}
