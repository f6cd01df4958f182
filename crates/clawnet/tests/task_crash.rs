//! Crash safety of tasks on the SQLite store, end to end: `clawnet serve`
//! runs as a separate process on one database file; a dispatcher hands 300
//! tasks to four workers over REST (each dispatch retried with its dedupe key
//! until it is acknowledged) while the workers, raw WebSocket clients, run
//! them and report results. The hub is killed with SIGKILL at random moments
//! and restarted on the same file. Afterwards:
//!
//! - every acknowledged dispatch is stored, under the task id of its ACK, and
//!   a dedupe key has one task (the only other allowed case is the one
//!   PROTOCOL §4.15 documents: a retry whose earlier, unanswered attempt was
//!   stored and had already finished, so no active task held the key);
//! - every acknowledged task ends `succeeded`, and no task was answered
//!   `ok: true` twice (a task completes at most once, never twice by the
//!   same lease), with the output of the attempt whose result was ACKed;
//! - every stored task is one of ours.
//!
//! Workers keep a result whose answer the crash swallowed and send it again
//! after reconnecting (the lease may still be live on the new process), so
//! the "stored, ACK lost" path of `task.result` runs too.
//!
//! The kill schedule is random; the seed is printed and `CRASH_TEST_SEED=N`
//! replays it (the moments a kill lands in a commit still vary).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use common::{http_client, open_ws, register, seed, text, Rng, Server, Ws, MASTER};

/// Hub settings: no dispatch limits, short leases, fast retries.
const SETTINGS: [&str; 5] = [
    "tasks.dispatches_per_minute=0",
    "tasks.max_pending=0",
    "tasks.lease_secs=2",
    "tasks.backoff_base_ms=50",
    "tasks.backoff_cap_ms=200",
];
const WORKERS: u64 = 4;
/// Tasks a worker connection runs at once.
const CONCURRENCY: usize = 4;
/// Concurrent dispatch loops (all as the one dispatcher agent).
const DISPATCHERS: u64 = 4;
const TASKS: u64 = 300;
/// Per task. A crash can cost a task one attempt (a lease nobody reports);
/// the headroom keeps a slow machine, where a lease may also run out, from
/// dead-lettering a task (a failed task makes the test fail).
const MAX_ATTEMPTS: u32 = 20;
/// Every wait in the test gives up (and fails) at this point.
const BUDGET: Duration = Duration::from_secs(60);
/// How long the tasks may take to finish once the kills are over.
const SETTLE: Duration = Duration::from_secs(30);
/// ACKs (dispatches and results) a restarted hub must hand out before the
/// next kill, while dispatching goes on, so every kill lands under load.
const PROGRESS_BETWEEN_KILLS: u64 = 10;
/// Each hub lives at least this long (a random 2.2–3.5 s): longer than a
/// lease, so leases lost in one crash run out (and are retried) before the
/// next one, and no target collects the 5 consecutive failures that would
/// open its circuit breaker.
const UPTIME_MS: (u64, u64) = (2200, 3500);

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// State the dispatchers and workers share with the killer.
struct Shared {
    /// The current hub's base URL; `None` while it is down. Each restart
    /// gets a new port, so clients look it up on every attempt.
    url: RwLock<Option<String>>,
    /// Set when every task has finished: workers stop.
    done: AtomicBool,
    /// Dispatch ACKs plus `ok: true` result answers.
    progress: AtomicU64,
    /// Dispatch loops still running.
    dispatching: AtomicUsize,
    /// Requests sent and not yet answered: `[dispatches, results]`. The
    /// killer strikes while there are some of one kind.
    inflight: [AtomicUsize; 2],
    deadline: Instant,
    client: reqwest::Client,
}

/// Counts a request in flight while it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Self(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    fn url(&self) -> Option<String> {
        self.url.read().expect("url lock").clone()
    }

    fn set_url(&self, url: Option<String>) {
        *self.url.write().expect("url lock") = url;
    }
}

/// What a dispatcher learned from one acknowledged dispatch.
#[derive(Debug, Clone)]
struct Dispatch {
    n: u64,
    key: String,
    target: String,
    task_id: String,
    created_at: u64,
    duplicate: bool,
    attempts: u32,
    /// Attempts that may have reached the hub but whose answer was lost.
    unanswered: u32,
}

enum Attempt {
    Acked(Value),
    /// No connection, or an error answer: nothing was stored.
    Refused,
    /// Sent, but no answer came back: it may have been stored.
    Unanswered,
}

async fn try_dispatch(
    sh: &Shared,
    url: &str,
    token: &str,
    key: &str,
    target: &str,
    n: u64,
) -> Attempt {
    let body = json!({
        "target": target,
        "dedupe_key": key,
        "payload": {"n": n},
        "max_attempts": MAX_ATTEMPTS,
    });
    let _inflight = InFlight::new(&sh.inflight[0]);
    let res = match sh
        .client
        .post(format!("{url}/api/v1/tasks"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
    {
        Ok(res) => res,
        Err(e) if e.is_connect() => return Attempt::Refused,
        Err(_) => return Attempt::Unanswered,
    };
    let status = res.status().as_u16();
    // A hub killed between the headers and the end of the body is no ACK.
    let Ok(body) = res.text().await else {
        return Attempt::Unanswered;
    };
    match status {
        200 | 201 => {
            let v: Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{key}: ACK body is not JSON ({e}): {body}"));
            assert_eq!(v["duplicate"], status == 200, "{key}: {status} {body}");
            Attempt::Acked(v)
        }
        // The hub is starting, stopping or its store is unavailable.
        408 | 429 | 500..=599 => Attempt::Refused,
        // An answer from a hub that has since been killed does not count:
        // its port may even have been taken by another process meanwhile.
        _ if sh.url().as_deref() != Some(url) => Attempt::Refused,
        _ => panic!("{key}: unexpected {status}: {body}"),
    }
}

/// Dispatch tasks `first`, `first + DISPATCHERS`, … below `TASKS`, each to
/// worker `w<n % WORKERS + 1>` with dedupe key `d-<n>`, retried with the
/// same key until a 2xx comes back; only then does the next one start.
async fn dispatcher(sh: Arc<Shared>, token: String, first: u64, seed: u64) -> Vec<Dispatch> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for n in (first..TASKS).step_by(DISPATCHERS as usize) {
        let key = format!("d-{n}");
        let target = format!("w{}", n % WORKERS + 1);
        let (mut attempts, mut unanswered) = (0u32, 0u32);
        let v = loop {
            assert!(
                Instant::now() < sh.deadline,
                "{key}: no ACK within the test budget after {attempts} attempts"
            );
            if let Some(url) = sh.url() {
                attempts += 1;
                match try_dispatch(&sh, &url, &token, &key, &target, n).await {
                    Attempt::Acked(v) => break v,
                    Attempt::Refused => {}
                    Attempt::Unanswered => unanswered += 1,
                }
            }
            tokio::time::sleep(rng.millis(5, 20)).await;
        };
        let t = &v["task"];
        // A 200 returns the original task: the same one, never another's.
        assert_eq!(t["dedupe_key"], key.as_str(), "{key}: {v}");
        assert_eq!(t["target"], target.as_str(), "{key}: {v}");
        assert_eq!(t["dispatched_by"], "boss", "{key}: {v}");
        assert_eq!(t["payload"], json!({"n": n}), "{key}: {v}");
        let duplicate = v["duplicate"] == true;
        assert!(
            !duplicate || unanswered > 0,
            "{key}: answered as a duplicate, but no earlier attempt can have stored it \
             ({attempts} attempts, none unanswered): {v}"
        );
        out.push(Dispatch {
            n,
            key,
            target,
            task_id: t["task_id"].as_str().expect("task_id").to_owned(),
            created_at: t["created_at"].as_u64().expect("created_at"),
            duplicate,
            attempts,
            unanswered,
        });
        sh.progress.fetch_add(1, Ordering::SeqCst);
        // Spread the dispatches over the whole kill schedule.
        tokio::time::sleep(rng.millis(100, 220)).await;
    }
    sh.dispatching.fetch_sub(1, Ordering::SeqCst);
    out
}

/// A result to report: the lease of a `task.dispatch` this worker received.
#[derive(Debug, Clone)]
struct Outcome {
    task_id: String,
    lease_id: String,
    lease_until: u64,
    ready_at: tokio::time::Instant,
    /// Sent before, on a connection that died before the answer came.
    resend: bool,
}

/// What one worker saw.
#[derive(Debug, Default)]
struct WorkerLog {
    name: String,
    /// (task_id, lease_id) whose `task.result` was answered `ok: true`.
    oks: Vec<(String, String)>,
    dispatches: u64,
    sessions: u64,
    resent: u64,
    /// `conflict` for a result sent again: stored before, its answer lost.
    conflicts_resent: u64,
    /// `conflict` for a result sent once, after its lease ran out.
    conflicts_late: u64,
    /// `conflict` for a result sent once while its lease was still live:
    /// the hub lost or gave away a lease it had handed out.
    conflicts_live: Vec<String>,
    unavailable: u64,
    refused_connects: u64,
}

/// Connect, reconnecting with backoff whenever the hub dies, until the test
/// is over.
async fn worker(sh: Arc<Shared>, name: String, token: String, seed: u64) -> WorkerLog {
    let mut rng = Rng::new(seed);
    let mut log = WorkerLog {
        name,
        ..WorkerLog::default()
    };
    let mut todo = VecDeque::new();
    let mut backoff = Duration::from_millis(50);
    while !sh.done.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < sh.deadline,
            "{}: still running at the end of the test budget",
            log.name
        );
        let Some(url) = sh.url() else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        match open_ws(&url, &token).await {
            Some(ws) => {
                backoff = Duration::from_millis(50);
                session(&sh, ws, &mut log, &mut todo, &mut rng).await;
                tokio::time::sleep(rng.millis(5, 20)).await;
            }
            None => {
                tokio::time::sleep(backoff + rng.millis(0, 30)).await;
                backoff = (backoff * 2).min(Duration::from_millis(400));
            }
        }
    }
    log
}

/// One connection: `connect` as a worker, answer every `task.dispatch` with
/// `task.result` `ok: true` after a short random while, and return when the
/// connection ends or the test is over. Results sent without an answer go
/// back to `todo`, to be sent again on the next connection.
async fn session(
    sh: &Shared,
    ws: Ws,
    log: &mut WorkerLog,
    todo: &mut VecDeque<Outcome>,
    rng: &mut Rng,
) {
    let (mut tx, mut rx) = ws.split();
    let mut inflight: HashMap<u64, Outcome> = HashMap::new();
    let connect = json!({"type": "req", "id": "connect", "method": "connect",
        "params": {"worker": true, "concurrency": CONCURRENCY}});
    let mut connected = false;
    let mut next_id = 0u64;
    let mut last_ping = Instant::now();
    if tx.send(text(&connect)).await.is_ok() {
        'conn: while !sh.done.load(Ordering::SeqCst) {
            let now = tokio::time::Instant::now();
            let tick = now + Duration::from_millis(50);
            let wake = if connected {
                todo.iter()
                    .map(|o| o.ready_at)
                    .min()
                    .unwrap_or(tick)
                    .min(tick)
            } else {
                tick
            };
            tokio::select! {
                frame = rx.next() => {
                    let t = match frame {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break 'conn,
                        Some(Ok(_)) => continue 'conn,
                    };
                    let f: Value = serde_json::from_str(&t)
                        .unwrap_or_else(|e| panic!("{}: frame is not JSON ({e}): {t}", log.name));
                    if f["type"] == "res" {
                        if f["id"] == "connect" {
                            if f["ok"] != true {
                                log.refused_connects += 1;
                                break 'conn;
                            }
                            connected = true;
                            log.sessions += 1;
                        } else if let Some(o) = f["id"].as_u64().and_then(|id| inflight.remove(&id)) {
                            sh.inflight[1].fetch_sub(1, Ordering::SeqCst);
                            on_result(&f, o, log, todo);
                        } else {
                            assert!(!f["id"].is_null(), "{}: the hub refused a frame: {f}", log.name);
                        }
                    } else if f["type"] == "event" && f["event"] == "task.dispatch" {
                        let d = &f["data"];
                        assert_eq!(d["task"]["target"], log.name.as_str(), "{}: {f}", log.name);
                        assert_eq!(d["task"]["state"], "running", "{}: {f}", log.name);
                        log.dispatches += 1;
                        todo.push_back(Outcome {
                            task_id: d["task"]["task_id"].as_str().expect("task_id").to_owned(),
                            lease_id: d["lease_id"].as_str().expect("lease_id").to_owned(),
                            lease_until: d["lease_until"].as_u64().expect("lease_until"),
                            ready_at: now + rng.millis(0, 40),
                            resend: false,
                        });
                    }
                }
                _ = tokio::time::sleep_until(wake) => {
                    if !connected {
                        continue 'conn;
                    }
                    let now = tokio::time::Instant::now();
                    while let Some(i) = todo.iter().position(|o| o.ready_at <= now) {
                        let o = todo.remove(i).expect("present");
                        next_id += 1;
                        let req = json!({"type": "req", "id": next_id, "method": "task.result",
                            "params": {"task_id": o.task_id, "lease_id": o.lease_id, "ok": true,
                                "output": {"by": log.name, "lease": o.lease_id}}});
                        if o.resend {
                            log.resent += 1;
                        }
                        inflight.insert(next_id, o);
                        sh.inflight[1].fetch_add(1, Ordering::SeqCst);
                        if tx.send(text(&req)).await.is_err() {
                            break 'conn;
                        }
                    }
                    // The hub closes a connection silent for 45 s.
                    if last_ping.elapsed() > Duration::from_secs(5) {
                        last_ping = Instant::now();
                        let ping = json!({"type": "req", "id": "ping", "method": "ping"});
                        if tx.send(text(&ping)).await.is_err() {
                            break 'conn;
                        }
                    }
                }
            }
        }
    }
    let now = tokio::time::Instant::now();
    sh.inflight[1].fetch_sub(inflight.len(), Ordering::SeqCst);
    for (_, mut o) in inflight {
        o.resend = true;
        o.ready_at = now;
        todo.push_back(o);
    }
}

/// The answer to a `task.result`.
fn on_result(f: &Value, o: Outcome, log: &mut WorkerLog, todo: &mut VecDeque<Outcome>) {
    if f["ok"] == true {
        let t = &f["result"];
        assert_eq!(t["task_id"], o.task_id.as_str(), "{}: {f}", log.name);
        assert_eq!(t["state"], "succeeded", "{}: {f}", log.name);
        log.oks.push((o.task_id, o.lease_id));
        return;
    }
    match f["error"]["code"].as_str() {
        Some("conflict") if o.resend => log.conflicts_resent += 1,
        Some("conflict") if wall_ms() + 5 < o.lease_until => log.conflicts_live.push(format!(
            "{} lease {} (until {}) refused at {}: {f}",
            o.task_id,
            o.lease_id,
            o.lease_until,
            wall_ms()
        )),
        Some("conflict") => log.conflicts_late += 1,
        Some("unavailable") => {
            log.unavailable += 1;
            todo.push_back(Outcome {
                ready_at: tokio::time::Instant::now() + Duration::from_millis(50),
                ..o
            });
        }
        _ => panic!(
            "{}: task.result for {} under lease {} refused: {f}",
            log.name, o.task_id, o.lease_id
        ),
    }
}

/// Spawned loops; a panic in one is raised in the test as soon as it is
/// noticed, not at the end of the run.
struct Crew<T> {
    handles: Vec<Option<JoinHandle<T>>>,
    finished: Vec<T>,
}

impl<T> Crew<T> {
    fn new(handles: Vec<JoinHandle<T>>) -> Self {
        Self {
            handles: handles.into_iter().map(Some).collect(),
            finished: Vec::new(),
        }
    }

    async fn reap(&mut self) {
        for h in &mut self.handles {
            if h.as_ref().is_some_and(JoinHandle::is_finished) {
                let r = h.take().expect("present").await;
                match r {
                    Ok(v) => self.finished.push(v),
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            }
        }
    }

    fn running(&self) -> usize {
        self.handles.iter().filter(|h| h.is_some()).count()
    }

    async fn join(mut self) -> Vec<T> {
        for h in self.handles.iter_mut().filter_map(Option::take) {
            match h.await {
                Ok(v) => self.finished.push(v),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        self.finished
    }
}

/// Every stored task, page by page (`GET /api/v1/tasks` as master).
async fn all_tasks(client: &reqwest::Client, url: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut req = client
            .get(format!("{url}/api/v1/tasks"))
            .query(&[("limit", "1000")]);
        if let Some(a) = &after {
            req = req.query(&[("after", a.as_str())]);
        }
        let v: Value = req
            .bearer_auth(MASTER)
            .send()
            .await
            .expect("list tasks")
            .error_for_status()
            .expect("list tasks status")
            .json()
            .await
            .expect("tasks json");
        all.extend(v["tasks"].as_array().expect("tasks").iter().cloned());
        match v["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return all,
        }
    }
}

async fn get_task(client: &reqwest::Client, url: &str, id: &str) -> Value {
    client
        .get(format!("{url}/api/v1/tasks/{id}"))
        .bearer_auth(MASTER)
        .send()
        .await
        .expect("get task")
        .error_for_status()
        .unwrap_or_else(|e| panic!("acknowledged task {id}: {e}"))
        .json()
        .await
        .expect("task json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_tasks_survive_sigkill_and_complete_once() {
    let start = Instant::now();
    let deadline = start + BUDGET;
    let seed = seed();
    eprintln!("task crash test seed: {seed} (CRASH_TEST_SEED={seed} replays the schedule)");
    let mut rng = Rng::new(seed);

    let dir = tempfile::tempdir().expect("tmp");
    let db: PathBuf = dir.path().join("tasks.db");
    let client = http_client();

    let mut server = Server::start(&db, &SETTINGS, deadline).await;
    // Agents and their tokens are in the file, so they outlive every crash.
    let boss = register(&client, &server.url, "boss").await;
    let mut workers = Vec::new();
    for i in 1..=WORKERS {
        let name = format!("w{i}");
        let token = register(&client, &server.url, &name).await;
        workers.push((name, token));
    }

    let sh = Arc::new(Shared {
        url: RwLock::new(Some(server.url.clone())),
        done: AtomicBool::new(false),
        progress: AtomicU64::new(0),
        dispatching: AtomicUsize::new(DISPATCHERS as usize),
        inflight: [AtomicUsize::new(0), AtomicUsize::new(0)],
        deadline,
        client: client.clone(),
    });
    let mut worker_crew = Crew::new(
        workers
            .into_iter()
            .map(|(name, token)| tokio::spawn(worker(sh.clone(), name, token, rng.next())))
            .collect(),
    );
    let mut dispatch_crew = Crew::new(
        (0..DISPATCHERS)
            .map(|i| tokio::spawn(dispatcher(sh.clone(), boss.clone(), i, rng.next())))
            .collect(),
    );

    // The killer: let each hub live a random while (with traffic while
    // dispatching goes on), then SIGKILL it the moment a request of a
    // random kind (a dispatch or a result) is in flight, or after 1 s
    // without one, and restart it on the same file.
    let kills = 3 + (rng.next() % 2) as usize;
    let mut kills_while_dispatching = 0;
    let mut kills_in_flight = [0; 2];
    let mut downtime = Duration::ZERO;
    for k in 1..=kills {
        let up = Instant::now();
        let uptime = rng.millis(UPTIME_MS.0, UPTIME_MS.1);
        let base = sh.progress.load(Ordering::SeqCst);
        loop {
            let busy = sh.dispatching.load(Ordering::SeqCst) > 0
                && sh.progress.load(Ordering::SeqCst) < base + PROGRESS_BETWEEN_KILLS;
            if !busy && up.elapsed() >= uptime {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no progress before kill {k}: the restarted hub takes no work"
            );
            worker_crew.reap().await;
            dispatch_crew.reap().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let kind = (rng.next() % 2) as usize;
        let strike = Instant::now() + Duration::from_secs(1);
        while sh.inflight[kind].load(Ordering::SeqCst) == 0 && Instant::now() < strike {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if sh.inflight[kind].load(Ordering::SeqCst) > 0 {
            kills_in_flight[kind] += 1;
        }
        if sh.dispatching.load(Ordering::SeqCst) > 0 {
            kills_while_dispatching += 1;
        }
        sh.set_url(None);
        let progress = sh.progress.load(Ordering::SeqCst);
        let down = Instant::now();
        server.crash().await;
        server = Server::start(&db, &SETTINGS, deadline).await;
        downtime += down.elapsed();
        eprintln!(
            "kill {k}: {progress} ACKs before it; restarted at {} after {:?}",
            server.url,
            start.elapsed()
        );
        sh.set_url(Some(server.url.clone()));
    }

    // Dispatching ends: every key has its ACK.
    while dispatch_crew.running() > 0 {
        assert!(Instant::now() < deadline, "dispatchers still running");
        worker_crew.reap().await;
        dispatch_crew.reap().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acked: Vec<Dispatch> = dispatch_crew.join().await.into_iter().flatten().collect();
    assert_eq!(acked.len() as u64, TASKS, "one ACK per dispatched key");

    // Every acknowledged task finishes (bounded).
    let settle = (Instant::now() + SETTLE).min(deadline);
    loop {
        let tasks = all_tasks(&client, &server.url).await;
        let state: HashMap<&str, &Value> = tasks
            .iter()
            .map(|t| (t["task_id"].as_str().expect("task_id"), t))
            .collect();
        let open: Vec<String> = acked
            .iter()
            .filter(|d| {
                state.get(d.task_id.as_str()).map(|t| &t["state"]) != Some(&json!("succeeded"))
            })
            .map(|d| match state.get(d.task_id.as_str()) {
                Some(t) => format!("{} ({}): {}", d.task_id, d.key, t),
                None => format!("{} ({}): not stored", d.task_id, d.key),
            })
            .collect();
        if open.is_empty() {
            break;
        }
        assert!(
            Instant::now() < settle,
            "{} acknowledged tasks did not succeed within {SETTLE:?} after the kills; first: {:#?}",
            open.len(),
            &open[..open.len().min(10)]
        );
        worker_crew.reap().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sh.done.store(true, Ordering::SeqCst);
    let logs = worker_crew.join().await;

    // One more crash with nothing in flight, so what is checked below is
    // what a fresh process reads back from the file.
    server.crash().await;
    let server = Server::start(&db, &SETTINGS, deadline).await;
    let stored = all_tasks(&client, &server.url).await;

    // Stored tasks: ids unique, every one ours (a known key, its target and
    // payload), every one succeeded, by its target.
    let dispatch_of: HashMap<String, &Dispatch> =
        acked.iter().map(|d| (d.key.clone(), d)).collect();
    let mut by_id: HashMap<&str, &Value> = HashMap::new();
    let mut by_key: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for t in &stored {
        let id = t["task_id"].as_str().expect("task_id");
        assert!(by_id.insert(id, t).is_none(), "task id listed twice: {t}");
        let key = t["dedupe_key"]
            .as_str()
            .unwrap_or_else(|| panic!("stored task without a dedupe key: {t}"));
        let d = dispatch_of
            .get(key)
            .unwrap_or_else(|| panic!("stored task with an unknown dedupe key: {t}"));
        assert_eq!(t["target"], d.target.as_str(), "{t}");
        assert_eq!(t["dispatched_by"], "boss", "{t}");
        assert_eq!(t["payload"], json!({"n": d.n}), "{t}");
        assert_eq!(
            t["state"], "succeeded",
            "every stored task should have run: {t}"
        );
        assert_eq!(t["result"]["by"], d.target.as_str(), "{t}");
        by_key.entry(key).or_default().push(t);
    }

    // Every ACK is stored under its id; a key has that one task, unless an
    // earlier unanswered attempt stored a task that had finished before the
    // ACKed one was created (no active task held the key then: §4.15).
    let mut recreated = Vec::new();
    for d in &acked {
        let t = by_id
            .get(d.task_id.as_str())
            .unwrap_or_else(|| panic!("acknowledged dispatch lost: {d:?}"));
        assert_eq!(t["dedupe_key"], d.key.as_str(), "{d:?}: {t}");
        assert_eq!(t["created_at"].as_u64(), Some(d.created_at), "{d:?}: {t}");
        let got = get_task(&client, &server.url, &d.task_id).await;
        assert_eq!(&got, *t, "GET /api/v1/tasks/{} vs the list", d.task_id);
        let others: Vec<&&Value> = by_key[d.key.as_str()]
            .iter()
            .filter(|o| o["task_id"] != d.task_id.as_str())
            .collect();
        for o in &others {
            let finished = o["finished_at"].as_u64().unwrap_or(u64::MAX);
            assert!(
                finished <= d.created_at,
                "dedupe key {} has two tasks: the ACKed {d:?}\nstored {t}\nand {o}",
                d.key
            );
            recreated.push(format!("{}: {} then {}", d.key, o["task_id"], d.task_id));
        }
        assert!(
            others.len() <= d.unanswered as usize,
            "dedupe key {} has {} more tasks than unanswered attempts: {d:?}",
            d.key,
            others.len()
        );
    }

    // No task answered `ok: true` twice; an answered result is the one stored.
    let mut oks: HashMap<&str, Vec<(&str, &str)>> = HashMap::new();
    for l in &logs {
        for (task, lease) in &l.oks {
            oks.entry(task.as_str())
                .or_default()
                .push((l.name.as_str(), lease.as_str()));
        }
    }
    for (task, answers) in &oks {
        assert_eq!(
            answers.len(),
            1,
            "task {task} was completed {} times: {answers:?}",
            answers.len()
        );
        let (by, lease) = answers[0];
        let t = by_id
            .get(task)
            .unwrap_or_else(|| panic!("completed task {task} is not stored"));
        assert_eq!(
            t["result"],
            json!({"by": by, "lease": lease}),
            "task {task}: the stored result is not the one whose ACK {by} received"
        );
    }
    let live: Vec<&String> = logs.iter().flat_map(|l| &l.conflicts_live).collect();
    assert!(
        live.is_empty(),
        "results refused while their lease was live: {live:#?}"
    );

    let sum = |f: fn(&WorkerLog) -> u64| logs.iter().map(f).sum::<u64>();
    let retried = acked.iter().filter(|d| d.attempts > 1).count();
    let dup = acked.iter().filter(|d| d.duplicate).count();
    let max_attempts = stored
        .iter()
        .filter_map(|t| t["attempts"].as_u64())
        .max()
        .unwrap_or(0);
    let unacked_done = stored.len().saturating_sub(oks.len());
    eprintln!(
        "task crash: {} tasks ACKed, {} stored ({} re-created after completion: {recreated:?}); \
         {kills} kills ({kills_while_dispatching} while dispatching, {} with dispatches and {} \
         with results in flight, {downtime:?} down); \
         dispatch: {retried} retried, {dup} answered as duplicates; workers: {} dispatches, \
         {} sessions, {} ok results, {unacked_done} completions whose answer was lost, \
         {} results resent ({} refused as over), {} late conflicts, {} unavailable, \
         {} refused connects; max attempts {max_attempts}; {:?}",
        acked.len(),
        stored.len(),
        recreated.len(),
        kills_in_flight[0],
        kills_in_flight[1],
        sum(|l| l.dispatches),
        sum(|l| l.sessions),
        oks.len(),
        sum(|l| l.resent),
        sum(|l| l.conflicts_resent),
        sum(|l| l.conflicts_late),
        sum(|l| l.unavailable),
        sum(|l| l.refused_connects),
        start.elapsed()
    );
    let ids: HashSet<&str> = acked.iter().map(|d| d.task_id.as_str()).collect();
    assert_eq!(ids.len(), acked.len(), "two keys ACKed with one task id");
    server.crash().await;
    assert!(start.elapsed() < BUDGET, "took {:?}", start.elapsed());
}
