//! `clawnet queues`, `schedules`, `activity` and `inbox` end to end: a real
//! hub (`clawnet serve` as a child process), real `clawnet worker`
//! processes, and the CLI as a person or a script would use it.

mod common;

use std::time::{Duration, Instant};

use serde_json::json;

use common::*;

/// What the test workers run, by task kind.
const SCRIPT: &str = r#"case "$CLAWNET_TASK_KIND" in
  hang) sleep 10 ;;
  fail) cat >/dev/null; echo "boom" >&2; exit 3 ;;
  *) cat ;;
esac"#;

#[test]
fn master_pauses_and_resumes_queues_and_everyone_lists_them() {
    let hub = serve(&[]);
    let w1 = agent(&hub, "w1");
    agent(&hub, "w2");
    let _worker = Worker::start(&hub, &w1, SCRIPT, &[]);
    dispatch(&hub, &["--to", "@w2", "--text", "nobody works for w2"]);

    // Pausing is for master: a worker is refused, code and message, exit 1.
    let r = cli(&hub, &w1, &["queues", "pause", "@w1"]);
    assert!(
        r.refused("forbidden") && r.err.contains("master"),
        "{}",
        r.err
    );
    let r = cli(&hub, &w1, &["queues", "resume", "w1"]);
    assert!(r.refused("forbidden"), "{}", r.err);
    let r = cli(&hub, MASTER, &["queues", "pause", "@nobody"]);
    assert!(r.refused("not_found"), "{}", r.err);

    let r = ok(&hub, &["queues", "pause", "@w1"]);
    assert_eq!(r.out.trim(), "paused queue w1 (@w1): 0 waiting, 0 running");

    // A paused queue keeps new tasks although its worker is idle, and the
    // dispatch says why.
    let r = ok(&hub, &["tasks", "dispatch", "--to", "@w1", "--text", "hi"]);
    assert!(
        r.out.contains("note: the queue of w1 is paused"),
        "{}",
        r.out
    );
    let id = r
        .out
        .strip_prefix("dispatched ")
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("{}", r.out))
        .to_owned();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(status(&hub, &id)["state"], "queued");

    // The table for people: aligned columns, one row per queue.
    let r = ok(&hub, &["queues", "list"]);
    let header = r.out.lines().next().unwrap_or_default();
    let cols = r.header();
    assert_eq!(
        cols,
        [
            "QUEUE",
            "HANDLE",
            "PAUSED",
            "QUEUED",
            "DELAYED",
            "RUNNING",
            "SUCCEEDED",
            "FAILED",
            "BREAKER"
        ]
    );
    let breaker_at = header.find("BREAKER").expect("BREAKER");
    for line in r.out.lines().skip(1) {
        assert_eq!(line.find("closed"), Some(breaker_at), "{}", r.out);
    }
    assert_eq!(
        r.row("w1"),
        ["w1", "w1", "yes", "1", "0", "0", "0", "0", "closed"]
    );
    assert_eq!(
        r.row("w2"),
        ["w2", "w2", "no", "1", "0", "0", "0", "0", "closed"]
    );

    // For scripts: the hub's objects. A worker sees its own queue only.
    let queues = ok(&hub, &["queues", "list", "--json"]).json();
    let names: Vec<&str> = queues["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| q["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["w1", "w2"]);
    assert_eq!(queues["queues"][0]["paused"], true);
    assert_eq!(queues["queues"][0]["counts"]["queued"], 1);
    assert_eq!(queues["queues"][0]["breaker"]["state"], "closed");
    let r = cli(&hub, &w1, &["queues", "list", "--json"]);
    assert!(r.ok, "{}", r.err);
    let mine = r.json();
    assert_eq!(mine["queues"].as_array().map(Vec::len), Some(1), "{mine}");
    assert_eq!(mine["queues"][0]["name"], "w1");

    // Resuming starts the waiting task at once.
    let q = ok(&hub, &["queues", "resume", "w1", "--json"]).json();
    assert_eq!(q["name"], "w1");
    assert_eq!(q["paused"], false);
    wait_state(&hub, &id, "succeeded", Duration::from_secs(10));
    let r = ok(&hub, &["queues", "list"]);
    assert_eq!(
        r.row("w1"),
        ["w1", "w1", "no", "0", "0", "0", "1", "0", "closed"]
    );
    let r = ok(&hub, &["queues", "resume", "@w1"]);
    assert_eq!(r.out.trim(), "resumed queue w1 (@w1): 0 waiting, 0 running");
}

/// `schedules create ARGS` as master.
fn create_schedule(hub: &Hub, args: &[&str]) -> Run {
    let mut all = vec!["schedules", "create"];
    all.extend_from_slice(args);
    cli(hub, MASTER, &all)
}

#[test]
fn schedules_are_created_once_listed_fired_and_deleted() {
    let hub = serve(&[]);
    let w2 = agent(&hub, "w2");
    let create = [
        "schedules",
        "create",
        "--to",
        "@w2",
        "--cron",
        "0 3 * * *",
        "--name",
        "nightly",
        "--text",
        "backup",
    ];

    // Twice the same: created, then it existed (same id).
    let r = ok(&hub, &create);
    assert!(r.out.starts_with("created schedule s_"), "{}", r.out);
    assert!(
        r.out.contains("(nightly) for w2: cron \"0 3 * * *\""),
        "{}",
        r.out
    );
    let r = ok(&hub, &create);
    assert!(
        r.out.starts_with("schedule already existed: s_"),
        "{}",
        r.out
    );
    let mut again = create.to_vec();
    again.push("--json");
    let v = ok(&hub, &again).json();
    assert_eq!(v["created"], false);
    assert_eq!(v["schedule"]["payload"], json!({"text": "backup"}));
    assert_eq!(v["schedule"]["max_attempts"], 5);
    let id = v["schedule"]["schedule_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(r.out.contains(&id), "{}", r.out);

    // The hub's refusals: code and message, exit 1; bad input before that.
    let r = create_schedule(&hub, &["--to", "@w2", "--cron", "61 * * * *"]);
    assert!(r.refused("invalid"), "{}", r.err);
    let r = create_schedule(&hub, &["--to", "@nobody", "--cron", "0 * * * *"]);
    assert!(r.refused("not_found"), "{}", r.err);
    let r = create_schedule(
        &hub,
        &["--to", "w2", "--cron", "0 * * * *", "--payload", "[1]"],
    );
    assert!(r.refused("JSON object"), "{}", r.err);

    // Every second, kind tick: a task comes within a sweep or two.
    let tick = create_schedule(
        &hub,
        &[
            "--to",
            "w2",
            "--cron",
            "* * * * * *",
            "--kind",
            "tick",
            "--max-attempts",
            "2",
            "--json",
        ],
    );
    assert!(tick.ok, "{}", tick.err);
    let tick = tick.json();
    assert_eq!(tick["created"], true);
    let tick_id = tick["schedule"]["schedule_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tasks = ok(&hub, &["tasks", "list", "--target", "@w2", "--json"]).json();
        let fired = tasks["tasks"].as_array().expect("tasks").iter().find(|t| {
            t["kind"] == "tick" && t["max_attempts"] == 2 && t["dispatched_by"] == "master"
        });
        if fired.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the schedule never fired");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The table, and JSON.
    let r = ok(&hub, &["schedules", "list"]);
    let header = r.out.lines().next().unwrap_or_default();
    assert!(header.starts_with("SCHEDULE_ID "), "{}", r.out);
    let row = r.row(&id);
    assert_eq!(row[1..6], ["nightly", "w2", "0", "3", "*"], "{}", r.out);
    let cron_at = header.find("CRON").expect("CRON");
    for line in r.out.lines().skip(1) {
        let at = line.find("0 3 * * *").or_else(|| line.find("* * * * * *"));
        assert_eq!(at, Some(cron_at), "{}", r.out);
    }
    let list = ok(&hub, &["schedules", "list", "--json"]).json();
    assert_eq!(list["schedules"].as_array().map(Vec::len), Some(2));

    // w2 sees the schedules it runs but may not delete master's.
    let r = cli(&hub, &w2, &["schedules", "list", "--json"]);
    assert!(r.ok, "{}", r.err);
    assert_eq!(r.json()["schedules"].as_array().map(Vec::len), Some(2));
    let r = cli(&hub, &w2, &["schedules", "delete", &id]);
    assert!(r.refused("forbidden"), "{}", r.err);

    let r = ok(&hub, &["schedules", "delete", &id]);
    assert_eq!(r.out.trim(), format!("deleted schedule {id} (nightly)"));
    let gone = ok(&hub, &["schedules", "delete", &tick_id, "--json"]).json();
    assert_eq!(gone["kind"], "tick");
    let list = ok(&hub, &["schedules", "list", "--json"]).json();
    assert_eq!(list, json!({"schedules": []}));
    let r = cli(&hub, MASTER, &["schedules", "delete", &id]);
    assert!(r.refused("not_found"), "{}", r.err);
}

#[test]
fn activity_shows_who_works_idles_is_offline_or_has_an_open_breaker() {
    let hub = serve(&[
        "--set",
        "tasks.breaker_failures=1",
        "--set",
        "tasks.breaker_reset_ms=600000",
    ]);
    let busy_token = agent(&hub, "busy");
    let idle_token = agent(&hub, "idle");
    let flaky_token = agent(&hub, "flaky");
    agent(&hub, "off");
    let _busy = Worker::start(&hub, &busy_token, SCRIPT, &[]);
    let _idle = Worker::start(&hub, &idle_token, SCRIPT, &[]);
    let _flaky = Worker::start(&hub, &flaky_token, SCRIPT, &[]);

    let running = dispatch(&hub, &["--to", "@busy", "--kind", "hang"]);
    let failed = dispatch(
        &hub,
        &["--to", "@flaky", "--kind", "fail", "--max-attempts", "1"],
    );
    dispatch(&hub, &["--to", "@off", "--text", "later"]);
    dispatch(
        &hub,
        &["--to", "@off", "--text", "later", "--delay-ms", "60000"],
    );
    wait_state(&hub, &running, "running", Duration::from_secs(10));
    wait_state(&hub, &failed, "failed", Duration::from_secs(10));
    ok(&hub, &["queues", "pause", "off"]);

    let r = ok(&hub, &["activity"]);
    let header = r.out.lines().next().unwrap_or_default();
    let cols = r.header();
    assert_eq!(
        cols,
        [
            "AGENT",
            "HANDLE",
            "STATUS",
            "RUNNING",
            "QUEUED",
            "PAUSED",
            "BREAKER",
            "WORKING_ON"
        ]
    );
    assert_eq!(
        r.row("busy"),
        ["busy", "busy", "working", "1", "0", "no", "closed", &running]
    );
    assert_eq!(
        r.row("idle"),
        ["idle", "idle", "idle", "0", "0", "no", "closed", "-"]
    );
    assert_eq!(
        r.row("off"),
        ["off", "off", "offline", "0", "2", "yes", "closed", "-"]
    );
    let flaky = r.row("flaky");
    assert_eq!(
        flaky[..7],
        ["flaky", "flaky", "idle", "0", "0", "no", "open"]
    );
    let flaky_line = r.out.lines().find(|l| l.starts_with("flaky")).expect("row");
    assert!(
        flaky_line.contains("open (1 failure) until 20"),
        "{}",
        r.out
    );
    let status_at = header.find("STATUS").expect("STATUS");
    for line in r.out.lines().skip(1) {
        let status = line[status_at..].split_whitespace().next();
        assert!(
            matches!(status, Some("working" | "idle" | "offline")),
            "{}",
            r.out
        );
    }

    let v = ok(&hub, &["activity", "--json"]).json();
    let entry = |id: &str| {
        v["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .find(|a| a["agent_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {id} in {v}"))
    };
    assert_eq!(entry("busy")["working_on"], json!([running]));
    assert_eq!(entry("busy")["status"], "working");
    assert_eq!(entry("off")["queued"], 2);
    assert_eq!(entry("flaky")["breaker"]["state"], "open");
    assert_eq!(entry("flaky")["breaker"]["failures"], 1);

    // The breaker shows in the queue list too.
    let r = ok(&hub, &["queues", "list"]);
    let row = r.row("flaky");
    assert_eq!(
        row[..9],
        ["flaky", "flaky", "no", "0", "0", "0", "0", "1", "open"]
    );

    // A worker sees itself.
    let r = cli(&hub, &idle_token, &["activity", "--json"]);
    assert!(r.ok, "{}", r.err);
    let agents = r.json()["agents"].clone();
    assert_eq!(agents.as_array().map(Vec::len), Some(1), "{agents}");
    assert_eq!(agents[0]["agent_id"], "idle");
}

#[test]
fn inbox_settings_are_read_and_changed_one_field_at_a_time() {
    let hub = serve(&[]);
    let w3 = agent(&hub, "w3");
    agent(&hub, "w4");

    let r = ok(&hub, &["inbox", "get", "@w3"]);
    assert_eq!(
        r.out,
        "agent      @w3\nactivation mention\nmode       followup\n"
    );
    let v = ok(&hub, &["inbox", "get", "w3", "--json"]).json();
    assert_eq!(v, json!({"activation": "mention", "mode": "followup"}));

    // Master changes the mode; the activation stays.
    let r = ok(&hub, &["inbox", "set", "@w3", "--mode", "steer"]);
    assert!(
        r.out.contains("activation mention\nmode       steer"),
        "{}",
        r.out
    );

    // The agent changes its own activation; the mode stays.
    let r = cli(
        &hub,
        &w3,
        &["inbox", "set", "w3", "--activation", "always", "--json"],
    );
    assert!(r.ok, "{}", r.err);
    assert_eq!(r.json(), json!({"activation": "always", "mode": "steer"}));
    let r = cli(&hub, &w3, &["inbox", "get", "@w3", "--json"]);
    assert!(r.ok, "{}", r.err);
    assert_eq!(r.json(), json!({"activation": "always", "mode": "steer"}));

    // Both at once.
    let v = ok(
        &hub,
        &[
            "inbox",
            "set",
            "w4",
            "--activation",
            "always",
            "--mode",
            "collect",
            "--json",
        ],
    )
    .json();
    assert_eq!(v, json!({"activation": "always", "mode": "collect"}));

    // Another agent's settings are not a worker's business.
    let r = cli(&hub, &w3, &["inbox", "get", "w4"]);
    assert!(r.refused("forbidden"), "{}", r.err);
    let r = cli(
        &hub,
        &w3,
        &[
            "inbox",
            "set",
            "w4",
            "--activation",
            "always",
            "--mode",
            "steer",
        ],
    );
    assert!(r.refused("forbidden"), "{}", r.err);
    let r = cli(&hub, MASTER, &["inbox", "get", "@nobody"]);
    assert!(r.refused("not_found"), "{}", r.err);

    // Bad usage is clap's exit 2, before any request.
    let r = cli(&hub, MASTER, &["inbox", "set", "w3"]);
    assert_eq!(r.code, Some(2), "{}", r.err);
    let r = cli(&hub, MASTER, &["inbox", "set", "w3", "--mode", "later"]);
    assert_eq!(r.code, Some(2), "{}", r.err);
    assert!(r.err.contains("followup, steer, collect"), "{}", r.err);
}
