//! `clawnet tasks`: dispatch tasks and look after them over REST
//! (`/api/v1/tasks`).
//!
//! Text for people by default; `--json` prints the hub's objects, one per
//! line. A refusal by the hub prints its code and message and exits 1, as
//! do `dispatch --wait` runs whose task does not succeed.

use std::time::Duration;

use anyhow::{bail, Context};
use clawnet_client::{ClientError, Rest};
use clawnet_proto::tasks::{DispatchParams, Task, TaskListParams, TaskState};
use serde_json::{Map, Value};

use crate::cli::Conn;

/// `clawnet tasks`.
#[derive(Debug, clap::Subcommand)]
pub enum TasksCmd {
    /// Hand a task to an agent: `clawnet tasks dispatch --to @w1 --text hi`.
    Dispatch(DispatchArgs),
    /// Show one task.
    Status {
        #[command(flatten)]
        conn: Conn,
        /// The task id (`t_…`).
        id: String,
    },
    /// List tasks, oldest first (workers see only their own).
    List {
        #[command(flatten)]
        conn: Conn,
        /// Only tasks in this state (queued, delayed, running, succeeded,
        /// failed, blocked, skipped, cancelled).
        #[arg(long, value_parser = parse_state)]
        state: Option<TaskState>,
        /// Only tasks for this agent (`@handle` or agent id).
        #[arg(long)]
        target: Option<String>,
        /// Only tasks after this id (the `next` of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// At most this many (1–1000; the hub's default is 100).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Put a failed task back in its queue with fresh attempts (master only).
    Retry {
        #[command(flatten)]
        conn: Conn,
        /// The task id.
        id: String,
    },
    /// Cancel a queued or delayed task (its dispatcher or master).
    Cancel {
        #[command(flatten)]
        conn: Conn,
        /// The task id.
        id: String,
    },
}

/// What a task is: its kind and payload. Shared by `tasks dispatch` and
/// `schedules create`.
#[derive(Debug, clap::Args)]
pub struct TaskSpec {
    /// Free-form kind (the hub's default is `task`).
    #[arg(long)]
    pub kind: Option<String>,
    /// The payload, a JSON object.
    #[arg(long, conflicts_with = "text")]
    pub payload: Option<String>,
    /// Shorthand for `--payload '{"text": TEXT}'`.
    #[arg(long)]
    pub text: Option<String>,
}

impl TaskSpec {
    /// `--payload` or `--text` as the payload object (empty without either).
    pub fn payload(&self) -> anyhow::Result<Map<String, Value>> {
        payload(self.payload.as_deref(), self.text.as_deref())
    }
}

/// `clawnet tasks dispatch`.
#[derive(Debug, clap::Args)]
pub struct DispatchArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The agent that runs it: `@handle` or agent id.
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub spec: TaskSpec,
    /// While a task with this key is active for the target, dispatching
    /// again returns that task instead of a new one.
    #[arg(long)]
    pub dedupe_key: Option<String>,
    /// Start no earlier than this many milliseconds from now.
    #[arg(long)]
    pub delay_ms: Option<u64>,
    /// Higher runs first among the target's due tasks (default 0).
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Attempts before the task fails for good (1–100; hub default 5).
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Wait until the task is over; exit 1 unless it succeeded. With
    /// `--json`, prints the finished task instead of the dispatch result.
    #[arg(long)]
    pub wait: bool,
}

fn parse_state(s: &str) -> Result<TaskState, String> {
    TaskState::parse(s).ok_or_else(|| {
        let all: Vec<&str> = TaskState::ALL.iter().map(|t| t.as_str()).collect();
        format!("unknown state '{s}'; one of {}", all.join(", "))
    })
}

/// Run a `tasks` subcommand.
pub async fn run(cmd: TasksCmd) -> anyhow::Result<()> {
    match cmd {
        TasksCmd::Dispatch(a) => dispatch(a).await,
        TasksCmd::Status { conn, id } => {
            let task = conn.rest()?.task(&id).await?;
            if conn.json {
                println!("{}", serde_json::to_string(&task)?);
            } else {
                print_task(&task);
            }
            Ok(())
        }
        TasksCmd::List {
            conn,
            state,
            target,
            after,
            limit,
        } => {
            let rest = conn.rest()?;
            let target = match target {
                Some(t) => Some(agent_id(&rest, &t).await?),
                None => None,
            };
            let params = TaskListParams {
                state,
                target,
                after,
                limit,
            };
            let list = rest.tasks(&params).await?;
            if conn.json {
                println!("{}", serde_json::to_string(&list)?);
                return Ok(());
            }
            println!(
                "{:28} {:9} {:16} {:12} {:>5}  UPDATED",
                "TASK_ID", "STATE", "TARGET", "KIND", "TRIES"
            );
            for t in &list.tasks {
                let tries = format!("{}/{}", t.attempts, t.max_attempts);
                println!(
                    "{:28} {:9} {:16} {:12} {tries:>5}  {}",
                    t.task_id,
                    t.state.as_str(),
                    t.target,
                    t.kind,
                    fmt_ms(t.updated_at)
                );
            }
            if let Some(next) = &list.next {
                eprintln!("more: clawnet tasks list --after {next}");
            }
            Ok(())
        }
        TasksCmd::Retry { conn, id } => {
            let task = conn.rest()?.retry_task(&id).await?;
            if conn.json {
                println!("{}", serde_json::to_string(&task)?);
            } else {
                println!(
                    "{} is {} again (attempts reset)",
                    task.task_id,
                    task.state.as_str()
                );
            }
            Ok(())
        }
        TasksCmd::Cancel { conn, id } => {
            let task = conn.rest()?.cancel_task(&id).await?;
            if conn.json {
                println!("{}", serde_json::to_string(&task)?);
            } else {
                println!("{} {}", task.task_id, task.state.as_str());
            }
            Ok(())
        }
    }
}

/// `--payload` or `--text` as the payload object (empty without either).
fn payload(payload: Option<&str>, text: Option<&str>) -> anyhow::Result<Map<String, Value>> {
    if let Some(text) = text {
        let mut m = Map::new();
        m.insert("text".into(), Value::String(text.to_owned()));
        return Ok(m);
    }
    let Some(raw) = payload else {
        return Ok(Map::new());
    };
    match serde_json::from_str::<Value>(raw).context("--payload is not valid JSON")? {
        Value::Object(m) => Ok(m),
        other => bail!("--payload must be a JSON object, not {other}"),
    }
}

async fn dispatch(a: DispatchArgs) -> anyhow::Result<()> {
    let rest = a.conn.rest()?;
    let params = DispatchParams {
        target: a.to.clone(),
        kind: a.spec.kind.clone(),
        payload: a.spec.payload()?,
        dedupe_key: a.dedupe_key.clone(),
        run_at: None,
        delay_ms: a.delay_ms,
        priority: a.priority,
        max_attempts: a.max_attempts,
        backoff_base_ms: None,
        backoff_cap_ms: None,
    };
    let (_, out) = rest.dispatch_task(&params).await?;
    let task = &out.task;
    if a.conn.json {
        if !a.wait {
            println!("{}", serde_json::to_string(&out)?);
        }
    } else if out.duplicate {
        println!(
            "{} is already active for this dedupe key ({}, target {})",
            task.task_id,
            task.state.as_str(),
            task.target
        );
    } else {
        println!(
            "dispatched {} to {} ({})",
            task.task_id,
            task.target,
            task.state.as_str()
        );
    }
    if let Some(note) = out.note.as_deref().filter(|_| !a.conn.json) {
        println!("note: {note}");
    }
    if !a.wait {
        return Ok(());
    }
    let task = wait_until_over(&rest, &task.task_id).await?;
    if a.conn.json {
        println!("{}", serde_json::to_string(&task)?);
    } else {
        print_outcome(&task);
    }
    if task.state != TaskState::Succeeded {
        bail!(
            "task {} did not succeed: it is {}",
            task.task_id,
            task.state.as_str()
        );
    }
    Ok(())
}

/// Poll the task until it leaves the active states (queued, delayed,
/// running). A failed task may still be retried later by master; `--wait`
/// reports it as it stands. A hub that does not answer (restarting, say) is
/// asked again.
async fn wait_until_over(rest: &Rest, task_id: &str) -> anyhow::Result<Task> {
    let mut pause = Duration::from_millis(100);
    loop {
        match rest.task(task_id).await {
            Ok(task) if !task.state.is_active() => return Ok(task),
            Ok(_) | Err(ClientError::Transport(_)) => {}
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// `@handle` to agent id (the list filter takes ids); ids pass through.
async fn agent_id(rest: &Rest, who: &str) -> anyhow::Result<String> {
    let Some(handle) = who.strip_prefix('@') else {
        return Ok(who.to_owned());
    };
    let v: Value = rest.get("/agents").await?;
    v["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| {
            a["handle"]
                .as_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(handle))
        })
        .and_then(|a| a["agent_id"].as_str().map(str::to_owned))
        .with_context(|| format!("no agent with handle @{handle}"))
}

fn print_outcome(t: &Task) {
    match t.state {
        TaskState::Succeeded => println!(
            "{} succeeded: {}",
            t.task_id,
            t.result.as_ref().unwrap_or(&Value::Null)
        ),
        state => println!(
            "{} {} after {}/{} attempts{}",
            t.task_id,
            state.as_str(),
            t.attempts,
            t.max_attempts,
            t.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
    }
}

/// One task, one field per line.
fn print_task(t: &Task) {
    let row = |k: &str, v: &str| println!("{k:13} {v}");
    row("task_id", &t.task_id);
    row("state", t.state.as_str());
    row("target", &t.target);
    row("dispatched_by", &t.dispatched_by);
    row("kind", &t.kind);
    row("attempts", &format!("{}/{}", t.attempts, t.max_attempts));
    row("priority", &t.priority.to_string());
    if let Some(k) = &t.dedupe_key {
        row("dedupe_key", k);
    }
    row("created", &fmt_ms(t.created_at));
    row("run_at", &fmt_ms(t.run_at));
    if let Some(ms) = t.started_at {
        row("started", &fmt_ms(ms));
    }
    if let Some(ms) = t.finished_at {
        row("finished", &fmt_ms(ms));
    }
    row("payload", &Value::Object(t.payload.clone()).to_string());
    if let Some(r) = &t.result {
        row("result", &r.to_string());
    }
    if let Some(e) = &t.error {
        row("error", e);
    }
    if let Some(o) = &t.origin {
        row("origin", &o.room);
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub(crate) fn fmt_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_utc_dates() {
        assert_eq!(fmt_ms(0), "1970-01-01 00:00:00");
        assert_eq!(fmt_ms(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(fmt_ms(1_795_223_100_123), "2026-11-21 01:05:00");
    }

    #[test]
    fn states_parse_by_their_wire_names() {
        assert_eq!(parse_state("failed"), Ok(TaskState::Failed));
        assert!(parse_state("done").is_err_and(|e| e.contains("succeeded")));
    }
}
