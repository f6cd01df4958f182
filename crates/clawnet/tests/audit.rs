//! The hash-chained audit trail end to end: a real hub on SQLite writes its
//! audit JSONL file beside the database; `clawnet audit verify` accepts it
//! as written and catches an edited, a deleted and a swapped line; a
//! restarted hub continues the chain; `clawnet logs` reads the entries.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// SIGTERM, then wait for the hub to exit (it writes what is queued first).
fn stop(mut hub: Hub) {
    let ok = Command::new("kill")
        .args(["-TERM", &hub.child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -TERM failed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.child.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < deadline, "the hub did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `clawnet audit ARGS` with a clean environment.
fn audit(args: &[&str]) -> Run {
    let mut cmd = Command::new(BIN);
    clean(&mut cmd).arg("audit").args(args);
    Run::from(cmd.output().expect("run clawnet audit"))
}

fn verify(file: &Path) -> Run {
    audit(&["verify", file.to_str().expect("utf-8 path")])
}

/// `POST path` with a JSON body as `token`; the status.
fn post(hub: &Hub, token: &str, path: &str, body: Value) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{}{path}", hub.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("send")
            .status()
            .as_u16()
    })
}

fn entries_of(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn audit_verify_catches_an_edited_a_deleted_and_a_swapped_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("hub.db");
    let file = dir.path().join("hub.db.audit.jsonl");

    let hub = serve_sqlite(&db, free_port());
    let w1 = agent(&hub, "w1");
    agent(&hub, "w2");
    // A handle change, and a refused action (a worker creating an agent).
    assert_eq!(
        post(
            &hub,
            MASTER,
            "/api/v1/handles",
            json!({"agent_id": "w1", "handle": "w1-renamed"})
        ),
        200
    );
    let refused = cli(
        &hub,
        &w1,
        &["agents", "create", "--id", "x1", "--handle", "x1"],
    );
    assert!(!refused.ok, "a worker must not create agents");

    // `clawnet logs --json --type identity` shows the entries, with hashes.
    let r = ok(&hub, &["logs", "--json", "--type", "identity"]);
    let logged: Vec<Value> = r
        .out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON entry per line"))
        .collect();
    assert!(logged.iter().all(|e| e["type"] == "identity"), "{}", r.out);
    let change = logged
        .iter()
        .find(|e| e["action"] == "handle.change")
        .unwrap_or_else(|| panic!("no handle.change in:\n{}", r.out));
    assert_eq!(change["hash"].as_str().map(str::len), Some(64), "{change}");
    assert_eq!(change["prev_hash"].as_str().map(str::len), Some(64));
    let first_id = logged[0]["id"].as_u64().expect("id");
    let newest = ok(
        &hub,
        &["logs", "--json", "--type", "identity", "--limit", "1"],
    );
    assert_eq!(newest.out.lines().count(), 1);
    // The refusal is audited too.
    let r = ok(&hub, &["logs", "--json", "--type", "policy"]);
    assert!(r.out.contains("policy.blocked"), "{}", r.out);
    stop(hub);

    let clean_run = verify(&file);
    assert!(clean_run.ok, "{}{}", clean_run.out, clean_run.err);
    assert!(clean_run.out.starts_with("ok: "), "{}", clean_run.out);
    // The file is found from the store as `clawnet serve` finds it.
    let store = format!("sqlite://{}", db.display());
    let by_store = audit(&["verify", "--store", &store]);
    assert!(by_store.ok, "{}{}", by_store.out, by_store.err);
    assert_eq!(
        by_store.out.split_whitespace().nth(1),
        clean_run.out.split_whitespace().nth(1)
    );

    let original = std::fs::read_to_string(&file).expect("read the audit file");
    let lines = entries_of(&original);
    assert!(lines.len() >= 5, "{original}");
    let tamper = |lines: &[String]| {
        std::fs::write(&file, lines.join("\n") + "\n").expect("write");
        verify(&file)
    };

    // Edited: the handle change's target.
    let at = lines
        .iter()
        .position(|l| l.contains("\"handle.change\""))
        .expect("handle.change line");
    let mut edited = lines.clone();
    let mut v: Value = serde_json::from_str(&edited[at]).expect("json");
    v["target"] = json!("w2");
    edited[at] = v.to_string();
    let r = tamper(&edited);
    assert_eq!(r.code, Some(1), "{}{}", r.out, r.err);
    assert!(r.out.contains(&format!("line {}", at + 1)), "{}", r.out);
    assert!(r.out.contains("edited"), "{}", r.out);

    // Deleted: the second line.
    let mut deleted = lines.clone();
    deleted.remove(1);
    let r = tamper(&deleted);
    assert_eq!(r.code, Some(1), "{}{}", r.out, r.err);
    assert!(r.out.contains("line 2"), "{}", r.out);
    assert!(r.out.contains("removed or reordered"), "{}", r.out);

    // Swapped: the third and fourth lines.
    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    let r = tamper(&swapped);
    assert_eq!(r.code, Some(1), "{}{}", r.out, r.err);
    assert!(r.out.contains("line 3"), "{}", r.out);
    assert!(r.out.contains("removed or reordered"), "{}", r.out);

    // Restored, then a restarted hub continues the chain.
    std::fs::write(&file, &original).expect("restore");
    let hub = serve_sqlite(&db, free_port());
    agent(&hub, "w3");
    let r = ok(&hub, &["logs", "--json", "--type", "identity"]);
    assert!(r.out.contains("\"w3\""), "{}", r.out);
    let newer = ok(&hub, &["logs", "--json", "--limit", "1000"]);
    let ids: Vec<u64> = newer
        .out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["id"]
                .as_u64()
                .expect("id")
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    assert!(ids.contains(&first_id));

    // `clawnet logs --follow` prints new entries once each.
    let mut follow = cli_cmd(
        &hub,
        MASTER,
        &[
            "logs", "--follow", "--json", "--type", "identity", "--limit", "1",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("spawn logs --follow");
    let out = follow.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the newest entry");
    assert!(first.contains("\"w3\""), "{first}");
    agent(&hub, "w4");
    agent(&hub, "w5");
    let mut seen = vec![first];
    let deadline = Instant::now() + Duration::from_secs(15);
    while !seen.iter().any(|l| l.contains("\"w5\"")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("--follow never printed w5: {seen:?}"),
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    let ids: Vec<u64> = seen
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["id"]
                .as_u64()
                .expect("id")
        })
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "no repeats, in order: {ids:?}"
    );
    assert!(seen.iter().any(|l| l.contains("\"w4\"")), "{seen:?}");
    stop(hub);
    let r = verify(&file);
    assert!(r.ok, "{}{}", r.out, r.err);
    let n: usize = r
        .out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("count");
    assert!(
        n > lines.len(),
        "the restart appended to the chain: {}",
        r.out
    );
    let lines_now = entries_of(&std::fs::read_to_string(&file).expect("read"));
    assert_eq!(lines_now.len(), n);
}
