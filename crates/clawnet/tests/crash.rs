//! Crash safety of the SQLite store, end to end: `clawnet serve` runs as a
//! separate process on one database file while 20 agents send to `global`
//! with retries; the process is killed with SIGKILL at random moments and
//! restarted on the same file. Afterwards every message whose ACK a client
//! received must be stored exactly once, with the seq and id of that ACK, and
//! the room's seqs must run 1..=last without a gap.
//!
//! The kill schedule is random; the seed is printed and `CRASH_TEST_SEED=N`
//! replays it (the moments a kill lands in a commit still vary).

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::process::Command;

use common::{http_client, register, seed, Rng, Server, BIN, MASTER};

const SENDERS: usize = 20;
const KILLS: usize = 5;
/// A safety bound only: senders normally stop when the kills are over.
const MAX_PER_SENDER: u64 = 400;
/// Every wait in the test gives up (and fails) at this point.
const BUDGET: Duration = Duration::from_secs(60);
/// ACKs a restarted hub must hand out before the next kill is scheduled, so
/// every kill lands while messages are flowing.
const ACKS_BETWEEN_KILLS: u64 = 20;

/// What a sender learned from one ACK.
#[derive(Debug, Clone)]
struct Ack {
    agent: String,
    key: String,
    text: String,
    id: String,
    seq: u64,
    duplicate: bool,
    attempts: u32,
}

/// State the senders share with the killer.
struct Shared {
    /// The current hub's base URL; `None` while it is down. Each restart
    /// gets a new port, so senders look it up on every attempt.
    url: RwLock<Option<String>>,
    /// Set when the kills are over: senders finish the message in hand.
    stop: AtomicBool,
    acks: AtomicU64,
    active: AtomicUsize,
    deadline: Instant,
    client: reqwest::Client,
}

impl Shared {
    fn url(&self) -> Option<String> {
        self.url.read().expect("url lock").clone()
    }

    fn set_url(&self, url: Option<String>) {
        *self.url.write().expect("url lock") = url;
    }
}

/// One attempt to send; `None` means "no ACK, retry the same message".
async fn try_send(sh: &Shared, url: &str, token: &str, key: &str, text: &str) -> Option<Value> {
    let res = sh
        .client
        .post(format!("{url}/api/v1/messages"))
        .bearer_auth(token)
        .json(&json!({"to_type": "global", "payload": {"text": text}, "dedupe_key": key}))
        .send()
        .await
        .ok()?;
    let status = res.status().as_u16();
    // A hub killed between the headers and the end of the body is no ACK.
    let body = res.text().await.ok()?;
    match status {
        200 | 201 => {
            let v: Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{key}: ACK body is not JSON ({e}): {body}"));
            assert_eq!(v["duplicate"], status == 200, "{key}: {status} {body}");
            Some(v)
        }
        // The hub is starting, stopping or its store is unavailable.
        408 | 429 | 500..=599 => None,
        // An answer from a hub that has since been killed does not count:
        // its port may even have been taken by another process meanwhile.
        _ if sh.url().as_deref() != Some(url) => None,
        _ => panic!("{key}: unexpected {status}: {body}"),
    }
}

/// Send `<agent>-0`, `<agent>-1`, … in order. Each message is retried with
/// its own dedupe key until an ACK (201 new, or 200 for a retry whose first
/// attempt was stored but whose ACK the crash swallowed) comes back; only
/// then does the next one start.
async fn sender(sh: Arc<Shared>, agent: String, token: String, seed: u64) -> Vec<Ack> {
    let mut rng = Rng::new(seed);
    let mut acks = Vec::new();
    for n in 0..MAX_PER_SENDER {
        if sh.stop.load(Ordering::SeqCst) {
            break;
        }
        let key = format!("{agent}-{n}");
        let text = format!("message {n} from {agent}");
        let mut attempts = 0u32;
        let v = loop {
            assert!(
                Instant::now() < sh.deadline,
                "{key}: no ACK within the test budget after {attempts} attempts"
            );
            if let Some(url) = sh.url() {
                attempts += 1;
                if let Some(v) = try_send(&sh, &url, &token, &key, &text).await {
                    break v;
                }
            }
            tokio::time::sleep(rng.millis(10, 40)).await;
        };
        let m = &v["message"];
        // A 200 returns the original envelope: the same message, never
        // someone else's, and never on a first attempt.
        assert_eq!(m["from_id"], agent.as_str(), "{key}: {v}");
        assert_eq!(m["dedupe_key"], key.as_str(), "{key}: {v}");
        assert_eq!(m["payload"]["text"], text.as_str(), "{key}: {v}");
        assert_eq!(m["to_id"], "global", "{key}: {v}");
        let duplicate = v["duplicate"] == true;
        assert!(
            !duplicate || attempts > 1,
            "{key}: first attempt answered as a duplicate: {v}"
        );
        acks.push(Ack {
            agent: agent.clone(),
            key,
            text,
            id: m["id"].as_str().expect("message id").to_owned(),
            seq: m["seq"].as_u64().expect("message seq"),
            duplicate,
            attempts,
        });
        sh.acks.fetch_add(1, Ordering::SeqCst);
        // Pace the senders: the machine is small and shared.
        tokio::time::sleep(rng.millis(5, 25)).await;
    }
    sh.active.fetch_sub(1, Ordering::SeqCst);
    acks
}

/// The whole `global` history, page by page.
async fn history(client: &reqwest::Client, url: &str) -> (Vec<Value>, u64) {
    let (mut all, mut after) = (Vec::new(), 0u64);
    loop {
        let v: Value = client
            .get(format!(
                "{url}/api/v1/rooms/global/history?after_seq={after}&limit=1000"
            ))
            .bearer_auth(MASTER)
            .send()
            .await
            .expect("history")
            .error_for_status()
            .expect("history status")
            .json()
            .await
            .expect("history json");
        let page = v["messages"].as_array().expect("messages").clone();
        if let Some(last) = page.last() {
            after = last["seq"].as_u64().expect("seq");
        }
        all.extend(page);
        if v["has_more"] != true {
            let last_seq = v["last_seq"].as_u64().expect("last_seq");
            let first = v["first_available_seq"].as_u64().expect("first seq");
            assert!(first <= 1, "history was trimmed: first seq {first}");
            return (all, last_seq);
        }
    }
}

async fn backup(db: &Path, copy: &Path) {
    let out = Command::new(BIN)
        .arg("backup")
        .arg(copy)
        .arg("--store")
        .arg(format!("sqlite://{}", db.display()))
        .env_remove("CLAWNET_STORE")
        .output()
        .await
        .expect("run clawnet backup");
    assert!(
        out.status.success(),
        "clawnet backup of {db:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `PRAGMA integrity_check` with the sqlite3 CLI, when the machine has one.
async fn integrity_check(db: &Path) {
    let Ok(out) = Command::new("sqlite3")
        .arg(db)
        .arg("PRAGMA integrity_check;")
        .output()
        .await
    else {
        println!("sqlite3 CLI not found; integrity_check skipped for {db:?}");
        return;
    };
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.trim() == "ok",
        "integrity_check of {db:?}: {said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_messages_survive_sigkill_exactly_once_with_gapless_seqs() {
    let start = Instant::now();
    let deadline = start + BUDGET;
    let seed = seed();
    println!("crash test seed: {seed} (CRASH_TEST_SEED={seed} replays the schedule)");
    let mut rng = Rng::new(seed);

    let dir = tempfile::tempdir().expect("tmp");
    let db: PathBuf = dir.path().join("clawnet.db");
    let client = http_client();

    let mut server = Server::start(&db, &[], deadline).await;
    // Agents and their tokens are in the file, so they outlive every crash.
    let mut agents = Vec::new();
    for i in 0..SENDERS {
        let agent = format!("crash{i:02}");
        let token = register(&client, &server.url, &agent).await;
        agents.push((agent, token));
    }

    let sh = Arc::new(Shared {
        url: RwLock::new(Some(server.url.clone())),
        stop: AtomicBool::new(false),
        acks: AtomicU64::new(0),
        active: AtomicUsize::new(SENDERS),
        deadline,
        client: client.clone(),
    });
    let senders: Vec<_> = agents
        .into_iter()
        .map(|(agent, token)| tokio::spawn(sender(sh.clone(), agent, token, rng.next())))
        .collect();

    // The killer: wait for traffic on the fresh hub, let it run a random
    // while, SIGKILL it mid-stream, restart it on the same file.
    let mut kills_under_traffic = 0;
    for k in 1..=KILLS {
        let base = sh.acks.load(Ordering::SeqCst);
        while sh.acks.load(Ordering::SeqCst) < base + ACKS_BETWEEN_KILLS
            && sh.active.load(Ordering::SeqCst) > 0
        {
            assert!(
                Instant::now() < deadline,
                "no ACKs after restart {k}: the hub accepts no writes"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(rng.millis(150, 600)).await;
        if sh.active.load(Ordering::SeqCst) > 0 {
            kills_under_traffic += 1;
        }
        sh.set_url(None);
        let acks_before = sh.acks.load(Ordering::SeqCst);
        server.crash().await;
        server = Server::start(&db, &[], deadline).await;
        println!(
            "kill {k}: {acks_before} ACKs before it; restarted at {} after {:?}",
            server.url,
            start.elapsed()
        );
        sh.set_url(Some(server.url.clone()));
    }

    // Let the last hub take some traffic, then stop; every sender finishes
    // the message in hand, so each message sent was ACKed.
    let base = sh.acks.load(Ordering::SeqCst);
    while sh.acks.load(Ordering::SeqCst) < base + ACKS_BETWEEN_KILLS
        && sh.active.load(Ordering::SeqCst) > 0
    {
        assert!(Instant::now() < deadline, "no ACKs after the last restart");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sh.stop.store(true, Ordering::SeqCst);
    let mut acks: Vec<Ack> = Vec::new();
    for s in senders {
        acks.extend(s.await.expect("sender"));
    }

    // One more crash with nothing in flight, so what is checked below is
    // what a fresh process reads back from the file.
    server.crash().await;
    let server = Server::start(&db, &[], deadline).await;
    let (messages, last_seq) = history(&client, &server.url).await;

    let retried = acks.iter().filter(|a| a.attempts > 1).count();
    let dup = acks.iter().filter(|a| a.duplicate).count();
    println!(
        "{} ACKs ({retried} after a retry, {dup} of them answered as duplicates: stored \
         before the crash, ACK lost); {kills_under_traffic}/{KILLS} kills during traffic; \
         {} messages stored, last seq {last_seq}; {:?}",
        acks.len(),
        messages.len(),
        start.elapsed()
    );

    // seq runs 1..=last without gaps or repeats, and last_seq agrees.
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m["seq"].as_u64(), Some(i as u64 + 1), "seq gap at {m}");
    }
    assert_eq!(last_seq, messages.len() as u64, "last_seq vs stored");

    // Every stored message is one of ours, its (sender, key) appears once,
    // and ids are unique.
    let mut stored: HashMap<(String, String), &Value> = HashMap::new();
    let mut ids = HashSet::new();
    for m in &messages {
        let from = m["from_id"].as_str().expect("from_id").to_owned();
        let key = m["dedupe_key"]
            .as_str()
            .unwrap_or_else(|| panic!("message without dedupe key: {m}"))
            .to_owned();
        assert!(
            ids.insert(m["id"].as_str().expect("id").to_owned()),
            "id stored twice: {m}"
        );
        if let Some(first) = stored.insert((from, key), m) {
            panic!("stored twice:\n{first}\n{m}");
        }
    }

    // Every ACK is stored, exactly as ACKed (a 200 returned the original).
    for a in &acks {
        let m = stored
            .get(&(a.agent.clone(), a.key.clone()))
            .unwrap_or_else(|| panic!("ACKed message lost: {a:?}"));
        assert_eq!(m["id"].as_str(), Some(a.id.as_str()), "id of {a:?}: {m}");
        assert_eq!(m["seq"].as_u64(), Some(a.seq), "seq of {a:?}: {m}");
        assert_eq!(m["payload"]["text"], a.text.as_str(), "{a:?}: {m}");
    }
    // Senders only move on after an ACK, so nothing stored lacks one.
    assert_eq!(stored.len(), acks.len(), "stored messages nobody was ACKed");

    // Each sender's messages keep their order: n+1 was sent after n's ACK.
    let mut last_by_agent: HashMap<&str, u64> = HashMap::new();
    for a in &acks {
        if let Some(prev) = last_by_agent.insert(a.agent.as_str(), a.seq) {
            assert!(prev < a.seq, "{a:?} stored before its predecessor");
        }
    }

    // The file also opens outside the hub: an online backup succeeds, the
    // copy serves the same history, and SQLite finds both intact.
    let copy = dir.path().join("backup.db");
    backup(&db, &copy).await;
    let replica = Server::start(&copy, &[], deadline).await;
    let (copied, copied_last) = history(&client, &replica.url).await;
    assert_eq!(copied_last, last_seq, "backup's last seq");
    assert_eq!(copied, messages, "backup's history");
    replica.crash().await;
    server.crash().await;
    integrity_check(&db).await;
    integrity_check(&copy).await;
    assert!(start.elapsed() < BUDGET, "took {:?}", start.elapsed());
}
