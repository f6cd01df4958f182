//! `clawnet worker`: the generic worker (SPEC §5). It connects as an agent
//! with `connect {"worker": true, "concurrency": N}` and runs a shell command
//! for every task the hub pushes (`task.dispatch`):
//!
//! - the command is `sh -c CMD`, in its own process group, with the task's
//!   `payload` as JSON on stdin and `CLAWNET_TASK_ID`, `CLAWNET_TASK_KIND`
//!   and `CLAWNET_TASK_ATTEMPT` in its environment;
//! - while it runs, `task.progress` every third of the lease keeps the lease;
//! - exit 0 reports `ok: true` with stdout as the `output` (parsed as JSON
//!   if it is JSON, else `{"text": stdout}`); any other exit, a signal or
//!   `--timeout` (the process group is killed) reports `ok: false` with
//!   `exit N: <stderr tail>` or `timed out after Ns: <stderr tail>`, and the
//!   hub retries it with backoff.
//!
//! The session reconnects by itself; a result that could not be sent is
//! re-sent on the next connection for as long as the lease may still hold.
//!
//! SIGINT or SIGTERM stops it: no new task is started (the worker switches
//! to a connection that takes no tasks), running commands get `--grace`
//! seconds to finish and report, then they are killed and abandoned. A second
//! signal abandons them at once. An abandoned task is handed back with
//! `task.release` (queued again, the attempt not counted); if the hub cannot
//! be reached, its lease runs out and the hub retries it like any failed
//! attempt. The exit status is then 0.

use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{bail, Context};
use clawnet_client::{ClientError, Session, SessionEvent, SessionOptions};
use clawnet_proto::methods::events;
use clawnet_proto::tasks::{Task, TaskDispatchEvent, TaskState};
use clawnet_proto::ErrorCode;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, Instant};

use crate::cli::Conn;

/// Bytes of stderr quoted in the error of a failed attempt.
const STDERR_TAIL: usize = 2000;
/// How long the pipes may stay open after the command exited (a background
/// process of its own still writing) before its process group is killed.
const LINGER: Duration = Duration::from_secs(1);
/// Pause between tries to send a result the hub did not answer.
const RESEND_PAUSE: Duration = Duration::from_millis(250);

/// `clawnet worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Command run for each task through `sh -c`: payload JSON on stdin,
    /// output on stdout, exit status 0 for success.
    #[arg(long, value_name = "CMD")]
    pub exec: String,
    /// Tasks run at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,
    /// Kill a command still running after this many seconds (the attempt
    /// fails and the hub retries it).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// On SIGINT/SIGTERM, how long running tasks may take to finish before
    /// they are abandoned to the hub's lease expiry.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub grace: u64,
    /// Largest stdout (and result) sent to the hub, in bytes; more fails the
    /// attempt. Keep it under the hub's `ws.max_frame_bytes`.
    #[arg(long, value_name = "BYTES", default_value_t = 65_536)]
    pub max_output: usize,
}

/// What every task handler shares.
#[derive(Debug)]
struct Ctx {
    exec: String,
    timeout: Option<Duration>,
    max_output: usize,
    json: bool,
    /// One permit per task allowed to run at once. The hub counts slots
    /// per connection, so after a reconnect it may push more than
    /// `--concurrency` tasks while old ones still run: the extra ones wait
    /// here (keeping their leases) instead of overloading the machine.
    slots: Arc<Semaphore>,
    /// Where progress and results go: the worker session, or during a
    /// stop, a connection that takes no new tasks.
    session: RwLock<Session>,
    /// Becomes true when running tasks are to be abandoned.
    abandon: watch::Receiver<bool>,
}

impl Ctx {
    fn session(&self) -> Session {
        self.session
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_session(&self, s: Session) {
        *self.session.write().unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// One line on stderr: text for people, or a JSON object with `--json`.
    fn say(&self, event: &str, task_id: Option<&str>, human: &str, fields: Value) {
        if self.json {
            let mut line = json!({ "event": event });
            if let Some(id) = task_id {
                line["task_id"] = json!(id);
            }
            if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), fields) {
                line.extend(fields);
            }
            eprintln!("{line}");
        } else {
            match task_id {
                Some(id) => eprintln!("task {id} {}", one_line(human)),
                None => eprintln!("worker: {}", one_line(human)),
            }
        }
    }
}

/// A log line never spans lines, and stays short.
fn one_line(s: &str) -> String {
    let flat = s.trim_end().replace('\n', " | ");
    match flat.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// The lease of one attempt, as this side knows it.
#[derive(Debug)]
struct Lease {
    id: String,
    /// Its length (`tasks.lease_secs`).
    length: Duration,
    /// When it was granted or last extended, on our clock.
    since: Mutex<Instant>,
}

impl Lease {
    fn new(ev: &TaskDispatchEvent) -> Self {
        // `started_at` and `lease_until` are both hub time, so their
        // difference is the lease length whatever our clocks say.
        let ms = ev
            .task
            .started_at
            .and_then(|s| ev.lease_until.checked_sub(s))
            .filter(|ms| *ms > 0)
            .unwrap_or(30_000);
        Self {
            id: ev.lease_id.clone(),
            length: Duration::from_millis(ms),
            since: Mutex::new(Instant::now()),
        }
    }

    fn extended(&self, at: Instant) {
        *self.since.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// When the hub will consider it over unless extended.
    fn ends(&self) -> Instant {
        *self.since.lock().unwrap_or_else(|e| e.into_inner()) + self.length
    }
}

/// The end of one attempt, as reported to the hub.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Ok(Value),
    Failed(String),
}

/// SIGINT and SIGTERM.
struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("cannot catch SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot catch SIGTERM")?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

/// Run the worker until a signal (exit 0) or until the hub refuses it for
/// good (an error).
pub async fn run(a: WorkerArgs) -> anyhow::Result<()> {
    let (url, token) = a.conn.resolve()?;
    let concurrency = usize::try_from(a.concurrency).unwrap_or(1);
    let mut opts = SessionOptions::new(url, token);
    opts.client_name = concat!("clawnet-worker/", env!("CARGO_PKG_VERSION")).into();
    // Chat is not our business: never move the agent's chat cursors.
    opts.auto_ack = false;
    opts.worker = Some(concurrency);
    let (session, mut events) = Session::connect(opts.clone())
        .await
        .context("cannot connect to the hub")?;
    let mut signals = Signals::new()?;
    let (abandon_tx, abandon_rx) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        exec: a.exec.clone(),
        timeout: a.timeout.map(Duration::from_secs),
        max_output: a.max_output,
        json: a.conn.json,
        slots: Arc::new(Semaphore::new(concurrency)),
        session: RwLock::new(session.clone()),
        abandon: abandon_rx,
    });
    let mut handlers: JoinSet<String> = JoinSet::new();
    // Lease ids being worked on: a repeated push is not run twice.
    let mut leases: HashSet<String> = HashSet::new();
    let mut stop_at: Option<Instant> = None;
    let mut events_open = true;
    let mut fatal: Option<String> = None;
    let far = Instant::now() + Duration::from_secs(365 * 86_400);

    loop {
        if (stop_at.is_some() || fatal.is_some()) && handlers.is_empty() {
            break;
        }
        tokio::select! {
            ev = events.recv(), if events_open => match ev {
                None => {
                    events_open = false;
                    if stop_at.is_none() && fatal.is_none() {
                        fatal = Some("the session ended".into());
                        let _ = abandon_tx.send(true);
                    }
                }
                Some(SessionEvent::Event(e)) if e.event == events::TASK_DISPATCH => {
                    let ev = match TaskDispatchEvent::deserialize(&e.data) {
                        Ok(ev) => ev,
                        Err(err) => {
                            ctx.say("error", None, &format!("unreadable task.dispatch: {err}"), json!({}));
                            continue;
                        }
                    };
                    if stop_at.is_some() || fatal.is_some() {
                        ctx.say(
                            "not_started",
                            Some(&ev.task.task_id),
                            "arrived while stopping: not started (its lease runs out and the hub retries it)",
                            json!({}),
                        );
                    } else if leases.insert(ev.lease_id.clone()) {
                        handlers.spawn(handle(ctx.clone(), ev));
                    }
                }
                Some(SessionEvent::Connected(info)) => ctx.say(
                    "connected",
                    None,
                    &format!(
                        "connected as {} (@{}), up to {concurrency} at once, running: {}",
                        info.agent_id, info.handle, ctx.exec
                    ),
                    json!({"agent_id": info.agent_id, "session_id": info.session_id}),
                ),
                Some(SessionEvent::Reconnecting { attempt, delay, reason }) => ctx.say(
                    "reconnecting",
                    None,
                    &format!("reconnecting (attempt {attempt}, in {} ms): {reason}", delay.as_millis()),
                    json!({"attempt": attempt, "delay_ms": delay.as_millis() as u64, "reason": reason}),
                ),
                Some(SessionEvent::Disconnected { reason }) => {
                    ctx.say("disconnected", None, &format!("disconnected for good: {reason}"), json!({"reason": reason}));
                    fatal = Some(reason);
                    let _ = abandon_tx.send(true);
                }
                Some(_) => {}
            },
            Some(done) = handlers.join_next(), if !handlers.is_empty() => {
                if let Ok(lease) = done {
                    leases.remove(&lease);
                }
            }
            sig = signals.next() => {
                if stop_at.is_some() {
                    ctx.say("abandoning", None, &format!("{sig} again: abandoning {} running task(s)", handlers.len()), json!({}));
                    let _ = abandon_tx.send(true);
                    continue;
                }
                stop_at = Some(Instant::now() + Duration::from_secs(a.grace));
                if handlers.is_empty() {
                    ctx.say("stopping", None, &format!("{sig}: stopping"), json!({}));
                    continue;
                }
                ctx.say(
                    "stopping",
                    None,
                    &format!(
                        "{sig}: no new tasks; {} running task(s) get {} s to finish ({sig} again abandons them)",
                        handlers.len(), a.grace
                    ),
                    json!({"running": handlers.len(), "grace_secs": a.grace}),
                );
                // Results go through a connection that takes no tasks, and
                // closing the worker connection tells the hub to send none.
                let mut plain = opts.clone();
                plain.worker = None;
                plain.resume = session.cursors();
                match Session::connect(plain).await {
                    Ok((reporter, rx)) => {
                        tokio::spawn(discard(rx));
                        ctx.set_session(reporter);
                        session.close().await;
                    }
                    Err(e) => ctx.say(
                        "error",
                        None,
                        &format!("cannot open a second connection ({e}); finishing on this one"),
                        json!({}),
                    ),
                }
            }
            _ = sleep_until(stop_at.unwrap_or(far)), if stop_at.is_some() && !*abandon_tx.borrow() => {
                ctx.say("abandoning", None, &format!("grace of {} s is over: abandoning {} running task(s)", a.grace, handlers.len()), json!({}));
                let _ = abandon_tx.send(true);
            }
        }
    }
    ctx.session().close().await;
    session.close().await;
    match fatal {
        Some(reason) if stop_at.is_none() => bail!("the hub connection is lost for good: {reason}"),
        _ => Ok(()),
    }
}

/// Drain a session's events nobody needs (the channel is bounded).
async fn discard(mut rx: mpsc::Receiver<SessionEvent>) {
    while rx.recv().await.is_some() {}
}

/// Resolve when running tasks are to be abandoned.
async fn abandoned(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|a| *a).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One pushed task: wait for a slot, run the command while keeping the
/// lease, report the outcome. Returns the lease id.
async fn handle(ctx: Arc<Ctx>, ev: TaskDispatchEvent) -> String {
    let lease = Arc::new(Lease::new(&ev));
    let task = ev.task;
    let id = task.task_id.clone();
    let mut abandon = ctx.abandon.clone();
    let mut keeper = tokio::spawn(keep_lease(ctx.clone(), id.clone(), lease.clone()));
    let work = async {
        let _slot = ctx.slots.clone().acquire_owned().await;
        ctx.say(
            "started",
            Some(&id),
            &format!(
                "started: kind {}, attempt {}/{}",
                task.kind, task.attempts, task.max_attempts
            ),
            json!({"kind": task.kind, "attempt": task.attempts, "max_attempts": task.max_attempts}),
        );
        let t0 = Instant::now();
        let outcome = run_command(&ctx, &task).await;
        (outcome, t0.elapsed())
    };
    let done = tokio::select! {
        r = work => Some(r),
        lost = &mut keeper => {
            let why = lost.unwrap_or_else(|e| format!("lease keeper failed: {e}"));
            ctx.say("lost", Some(&id), &format!("stopped: {why}"), json!({"reason": why}));
            None
        }
        _ = abandoned(&mut abandon) => {
            // Hand it back untried, so the stop does not cost it an attempt;
            // if the hub cannot be told, the lease runs out instead.
            let back = tokio::time::timeout(
                Duration::from_secs(2),
                ctx.session().request("task.release", json!({"task_id": id, "lease_id": lease.id})),
            )
            .await;
            if matches!(back, Ok(Ok(_))) {
                ctx.say("abandoned", Some(&id), "abandoned and handed back (queued again, attempt not counted)", json!({"released": true}));
            } else {
                ctx.say("abandoned", Some(&id), "abandoned (its lease runs out and the hub retries it)", json!({"released": false}));
            }
            None
        }
    };
    keeper.abort();
    let Some((outcome, took)) = done else {
        return lease.id.clone();
    };
    let secs = took.as_secs_f64();
    match &outcome {
        Outcome::Ok(_) => ctx.say(
            "succeeded",
            Some(&id),
            &format!("succeeded in {secs:.2} s"),
            json!({"secs": secs}),
        ),
        Outcome::Failed(e) => ctx.say(
            "failed",
            Some(&id),
            &format!("failed in {secs:.2} s: {e}"),
            json!({"secs": secs, "error": e}),
        ),
    }
    let reported = tokio::select! {
        r = report(&ctx, &task, &lease, &outcome) => r,
        _ = abandoned(&mut abandon) => Err("abandoned before the hub took the result".into()),
    };
    if let Err(why) = reported {
        ctx.say(
            "unreported",
            Some(&id),
            &format!("result not recorded: {why}"),
            json!({"reason": why}),
        );
    }
    lease.id.clone()
}

/// Whether an error means the lease is over for good.
fn lease_is_over(e: &ClientError) -> bool {
    matches!(
        e.code(),
        Some(ErrorCode::Conflict | ErrorCode::NotFound | ErrorCode::Forbidden)
    )
}

/// Extend the lease every third of its length. Returns only when the hub
/// says the lease is over (the reason).
async fn keep_lease(ctx: Arc<Ctx>, task_id: String, lease: Arc<Lease>) -> String {
    let period = (lease.length / 3).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let params = json!({ "task_id": task_id, "lease_id": lease.id });
    loop {
        tick.tick().await;
        let sent = Instant::now();
        match ctx.session().request("task.progress", params.clone()).await {
            Ok(_) => lease.extended(sent),
            Err(e) if lease_is_over(&e) => return format!("the lease is over: {e}"),
            // The hub is away: the session reconnects, and the next tick
            // tries again.
            Err(_) => {}
        }
    }
}

/// Send the outcome with `task.result`, again while the hub is unreachable
/// and the lease may still hold.
async fn report(ctx: &Ctx, task: &Task, lease: &Lease, outcome: &Outcome) -> Result<(), String> {
    let mut params = json!({ "task_id": task.task_id, "lease_id": lease.id });
    match outcome {
        Outcome::Ok(output) => {
            params["ok"] = json!(true);
            params["output"] = output.clone();
        }
        Outcome::Failed(error) => {
            params["ok"] = json!(false);
            params["error"] = json!(error);
        }
    }
    let mut tries = 0;
    loop {
        tries += 1;
        let e = match ctx.session().request("task.result", params.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let transient = matches!(
            e,
            ClientError::Timeout | ClientError::Transport(_) | ClientError::Closed
        ) || e.code() == Some(ErrorCode::Unavailable);
        if transient {
            if Instant::now() > lease.ends() + Duration::from_secs(1) {
                return Err(format!("{e}; gave up, the lease has run out"));
            }
            sleep(RESEND_PAUSE).await;
            continue;
        }
        // A try whose answer was lost may have been recorded: look.
        if tries > 1 && e.code() == Some(ErrorCode::Conflict) && recorded(ctx, task, outcome).await
        {
            return Ok(());
        }
        return Err(e.to_string());
    }
}

/// Whether the hub shows `outcome` as the result of this attempt.
async fn recorded(ctx: &Ctx, task: &Task, outcome: &Outcome) -> bool {
    let params = json!({ "task_id": task.task_id });
    let Ok(now) = ctx.session().request("task.get", params).await else {
        return false;
    };
    let Ok(now) = Task::deserialize(&now) else {
        return false;
    };
    if now.attempts != task.attempts {
        return false;
    }
    match outcome {
        Outcome::Ok(_) => now.state == TaskState::Succeeded,
        Outcome::Failed(e) => {
            matches!(now.state, TaskState::Delayed | TaskState::Failed)
                && now.error.as_deref() == Some(e.as_str())
        }
    }
}

/// The command's process group; killed when this is dropped unless
/// disarmed (the command ended and left nothing behind).
#[derive(Debug)]
struct Group {
    pgid: Option<u32>,
}

impl Group {
    /// SIGKILL to the whole group, so that grandchildren (pipelines,
    /// subshells) die with the command. Through `sh`'s `kill`, as this
    /// crate does no `unsafe`.
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            let _ = std::process::Command::new("sh")
                .args(["-c", "kill -s KILL -- \"-$1\" 2>/dev/null", "sh"])
                .arg(pgid.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Stdout, kept up to a limit and counted beyond it.
#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    total: usize,
}

async fn pump_capped(pipe: Option<impl AsyncRead + Unpin>, into: &mut Captured, cap: usize) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                into.total += n;
                let room = cap.saturating_sub(into.bytes.len());
                into.bytes.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

async fn pump_tail(pipe: Option<impl AsyncRead + Unpin>, into: &mut Vec<u8>) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                into.extend_from_slice(&buf[..n]);
                if into.len() > 2 * STDERR_TAIL {
                    into.drain(..into.len() - STDERR_TAIL);
                }
            }
        }
    }
}

/// The last `STDERR_TAIL` bytes of stderr as text (a character cut in two
/// at the start is dropped).
fn tail_text(err: &[u8]) -> String {
    let mut start = err.len().saturating_sub(STDERR_TAIL);
    while start < err.len() && (err[start] & 0b1100_0000) == 0b1000_0000 {
        start += 1;
    }
    String::from_utf8_lossy(&err[start..]).trim().to_owned()
}

fn with_tail(head: String, err: &[u8]) -> String {
    let tail = tail_text(err);
    if tail.is_empty() {
        head
    } else {
        format!("{head}: {tail}")
    }
}

/// Run the command for one task and say how it ended.
async fn run_command(ctx: &Ctx, task: &Task) -> Outcome {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(&ctx.exec)
        .env("CLAWNET_TASK_ID", &task.task_id)
        .env("CLAWNET_TASK_KIND", &task.kind)
        .env("CLAWNET_TASK_ATTEMPT", task.attempts.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("cannot start sh: {e}")),
    };
    let mut group = Group { pgid: child.id() };
    let input = serde_json::to_vec(&task.payload).unwrap_or_else(|_| b"{}".to_vec());
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut out = Captured::default();
    let mut err = Vec::new();
    let mut status: Option<std::io::Result<ExitStatus>> = None;
    let mut timed_out = false;
    let far = Instant::now() + Duration::from_secs(365 * 86_400);
    let deadline = ctx.timeout.map(|t| Instant::now() + t);
    {
        let feed = async {
            if let Some(mut stdin) = stdin {
                // A command that does not read its input is fine.
                let _ = stdin.write_all(&input).await;
                let _ = stdin.shutdown().await;
            }
        };
        let pipes = async {
            tokio::join!(
                feed,
                pump_capped(stdout, &mut out, ctx.max_output),
                pump_tail(stderr, &mut err)
            )
        };
        tokio::pin!(pipes);
        let mut pipes_open = true;
        let mut exited_at: Option<Instant> = None;
        loop {
            tokio::select! {
                s = child.wait(), if status.is_none() => {
                    status = Some(s);
                    exited_at = Some(Instant::now());
                }
                _ = &mut pipes, if pipes_open => pipes_open = false,
                _ = sleep_until(deadline.unwrap_or(far)), if deadline.is_some() && status.is_none() && !timed_out => {
                    timed_out = true;
                    group.kill();
                    let _ = child.start_kill();
                }
                _ = sleep_until(exited_at.map_or(far, |t| t + LINGER)), if exited_at.is_some() && pipes_open => {
                    // Something the command started still holds the pipes.
                    group.kill();
                    break;
                }
            }
            if status.is_some() && !pipes_open {
                break;
            }
        }
    }
    if !timed_out {
        // Everything exited by itself: nothing of the group to clean up.
        group.pgid = None;
    }
    if timed_out {
        let secs = ctx.timeout.map_or(0, |t| t.as_secs());
        return Outcome::Failed(with_tail(format!("timed out after {secs}s"), &err));
    }
    let status = match status {
        Some(Ok(s)) => s,
        Some(Err(e)) => return Outcome::Failed(format!("cannot wait for the command: {e}")),
        None => return Outcome::Failed("the command vanished".into()),
    };
    if !status.success() {
        let head = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => format!("ended with {status}"),
        };
        return Outcome::Failed(with_tail(head, &err));
    }
    if out.total > ctx.max_output {
        return Outcome::Failed(format!(
            "output too large: {} bytes (limit {}, see --max-output)",
            out.total, ctx.max_output
        ));
    }
    let output = parse_output(&out.bytes);
    let size = serde_json::to_string(&output).map_or(usize::MAX, |s| s.len());
    if size > ctx.max_output {
        return Outcome::Failed(format!(
            "output too large: {size} bytes as JSON (limit {}, see --max-output)",
            ctx.max_output
        ));
    }
    Outcome::Ok(output)
}

/// Stdout as the task's output: JSON if it is JSON, else `{"text": …}`.
fn parse_output(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    match serde_json::from_str::<Value>(text.trim()) {
        Ok(v) if !text.trim().is_empty() => v,
        _ => json!({ "text": text }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_is_json_when_it_parses_and_text_otherwise() {
        assert_eq!(parse_output(b"{\"a\":1}\n"), json!({"a": 1}));
        assert_eq!(parse_output(b"42"), json!(42));
        assert_eq!(parse_output(b"hello\n"), json!({"text": "hello\n"}));
        assert_eq!(parse_output(b""), json!({"text": ""}));
    }

    #[test]
    fn the_error_quotes_the_end_of_stderr() {
        assert_eq!(with_tail("exit 3".into(), b"boom\n"), "exit 3: boom");
        assert_eq!(with_tail("exit 1".into(), b"  \n"), "exit 1");
        let long = format!("{}END", "é".repeat(3000));
        let tail = tail_text(long.as_bytes());
        assert!(tail.ends_with("END"));
        assert!(tail.len() <= STDERR_TAIL);
        assert!(!tail.starts_with('\u{fffd}'));
    }

    #[test]
    fn log_lines_are_single_and_bounded() {
        assert_eq!(one_line("a\nb\n"), "a | b");
        assert_eq!(one_line(&"x".repeat(400)).chars().count(), 301);
    }
}
