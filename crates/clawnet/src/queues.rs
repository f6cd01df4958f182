//! `clawnet queues`, `clawnet schedules`, `clawnet activity` and
//! `clawnet inbox`: look after the hub's task queues over REST
//! (`/api/v1/queues`, `/api/v1/schedules`, `/api/v1/activity`,
//! `/api/v1/agents/{id}/inbox`).
//!
//! As `clawnet tasks`: tables for people, `--json` for scripts (the hub's
//! object, one per line), and a refusal by the hub prints its code and
//! message and exits 1.

use clawnet_client::InboxSettings;
use clawnet_proto::tasks::{BreakerInfo, BreakerState, QueueInfo, Schedule, ScheduleParams};

use crate::cli::Conn;
use crate::tasks::{fmt_ms, TaskSpec};

/// `clawnet queues`.
#[derive(Debug, clap::Subcommand)]
pub enum QueuesCmd {
    /// List the queues (one per target agent) with counts per state and the
    /// circuit breaker; workers see only their own.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Start nothing more from an agent's queue (master only); new tasks
    /// wait in it.
    Pause {
        #[command(flatten)]
        conn: Conn,
        /// The queue: the target's agent id or `@handle`.
        name: String,
    },
    /// Let a paused queue run again (master only); its due tasks start at
    /// once.
    Resume {
        #[command(flatten)]
        conn: Conn,
        /// The queue: the target's agent id or `@handle`.
        name: String,
    },
}

/// `clawnet schedules`.
#[derive(Debug, clap::Subcommand)]
pub enum SchedulesCmd {
    /// List schedules (master and warden: all; others: those they created or
    /// run).
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Dispatch a task on every occurrence of a cron expression (UTC):
    /// `clawnet schedules create --to @w1 --cron "0 3 * * *" --text backup`.
    Create(CreateArgs),
    /// Remove a schedule (its creator or master).
    Delete {
        #[command(flatten)]
        conn: Conn,
        /// The schedule id (`s_…`).
        id: String,
    },
}

/// `clawnet schedules create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The agent that runs the tasks: `@handle` or agent id.
    #[arg(long)]
    pub to: String,
    /// Five fields (minute hour day-of-month month day-of-week) or six with
    /// seconds first, in UTC.
    #[arg(long)]
    pub cron: String,
    /// Names the schedule for its target: the same name again replaces the
    /// definition. Without it, registering the same definition twice is a
    /// no-op.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub spec: TaskSpec,
    /// Attempts per task (1–100; hub default 5).
    #[arg(long)]
    pub max_attempts: Option<u32>,
}

/// `clawnet activity`.
#[derive(Debug, clap::Args)]
pub struct ActivityArgs {
    #[command(flatten)]
    pub conn: Conn,
}

/// `clawnet inbox`.
#[derive(Debug, clap::Subcommand)]
pub enum InboxCmd {
    /// Show how an agent is activated by chat and its inbox mode (the agent
    /// itself, master, warden).
    Get {
        #[command(flatten)]
        conn: Conn,
        /// Agent id or `@handle`.
        agent: String,
    },
    /// Change them (the agent itself or master); what is not given stays.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
    Set {
        #[command(flatten)]
        conn: Conn,
        /// Agent id or `@handle`.
        agent: String,
        /// `mention`: only @mentions (and DMs) activate it; `always`: every
        /// message in its rooms.
        #[arg(long, group = "change", value_parser = ["mention", "always"])]
        activation: Option<String>,
        /// For messages arriving while it is busy: `followup` queues each,
        /// `steer` keeps only the newest, `collect` merges them.
        #[arg(long, group = "change", value_parser = ["followup", "steer", "collect"])]
        mode: Option<String>,
    },
}

/// Run a `queues` subcommand.
pub async fn queues(cmd: QueuesCmd) -> anyhow::Result<()> {
    match cmd {
        QueuesCmd::List { conn } => {
            let list = conn.rest()?.queues().await?;
            if conn.json {
                println!("{}", serde_json::to_string(&list)?);
                return Ok(());
            }
            let count = |q: &QueueInfo, s: &str| q.counts.get(s).copied().unwrap_or(0).to_string();
            let rows = list
                .queues
                .iter()
                .map(|q| {
                    vec![
                        q.name.clone(),
                        q.handle.clone(),
                        yes_no(q.paused),
                        count(q, "queued"),
                        count(q, "delayed"),
                        count(q, "running"),
                        count(q, "succeeded"),
                        count(q, "failed"),
                        breaker(&q.breaker),
                    ]
                })
                .collect();
            print_table(
                &[
                    "QUEUE",
                    "HANDLE",
                    "PAUSED",
                    ">QUEUED",
                    ">DELAYED",
                    ">RUNNING",
                    ">SUCCEEDED",
                    ">FAILED",
                    "BREAKER",
                ],
                rows,
            );
            Ok(())
        }
        QueuesCmd::Pause { conn, name } => {
            let q = conn.rest()?.pause_queue(&name).await?;
            print_queue_change(&conn, &q, "paused")
        }
        QueuesCmd::Resume { conn, name } => {
            let q = conn.rest()?.resume_queue(&name).await?;
            print_queue_change(&conn, &q, "resumed")
        }
    }
}

fn print_queue_change(conn: &Conn, q: &QueueInfo, what: &str) -> anyhow::Result<()> {
    if conn.json {
        println!("{}", serde_json::to_string(q)?);
        return Ok(());
    }
    let n = |s: &str| q.counts.get(s).copied().unwrap_or(0);
    println!(
        "{what} queue {} (@{}): {} waiting, {} running",
        q.name,
        q.handle,
        n("queued") + n("delayed"),
        n("running")
    );
    Ok(())
}

/// Run a `schedules` subcommand.
pub async fn schedules(cmd: SchedulesCmd) -> anyhow::Result<()> {
    match cmd {
        SchedulesCmd::List { conn } => {
            let list = conn.rest()?.schedules().await?;
            if conn.json {
                println!("{}", serde_json::to_string(&list)?);
                return Ok(());
            }
            let rows = list
                .schedules
                .iter()
                .map(|s| {
                    vec![
                        s.schedule_id.clone(),
                        s.name.clone(),
                        s.target.clone(),
                        s.cron.clone(),
                        s.kind.clone(),
                        fmt_ms(s.next_run_at),
                        s.last_task_id.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            print_table(
                &[
                    "SCHEDULE_ID",
                    "NAME",
                    "TARGET",
                    "CRON",
                    "KIND",
                    "NEXT_RUN (UTC)",
                    "LAST_TASK",
                ],
                rows,
            );
            Ok(())
        }
        SchedulesCmd::Create(a) => {
            let params = ScheduleParams {
                target: a.to.clone(),
                cron: a.cron.clone(),
                name: a.name.clone(),
                kind: a.spec.kind.clone(),
                payload: a.spec.payload()?,
                max_attempts: a.max_attempts,
            };
            let (_, out) = a.conn.rest()?.create_schedule(&params).await?;
            if a.conn.json {
                println!("{}", serde_json::to_string(&out)?);
            } else if out.created {
                println!("created schedule {}", describe(&out.schedule));
            } else {
                // The same definition, or a new one under an existing name
                // (which replaced it): either way the id is the old one.
                println!("schedule already existed: {}", describe(&out.schedule));
            }
            Ok(())
        }
        SchedulesCmd::Delete { conn, id } => {
            let s = conn.rest()?.delete_schedule(&id).await?;
            if conn.json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!("deleted schedule {} ({})", s.schedule_id, s.name);
            }
            Ok(())
        }
    }
}

/// `s_… (name) for target: cron "…", next run …`.
fn describe(s: &Schedule) -> String {
    format!(
        "{} ({}) for {}: cron \"{}\", kind {}, next run {} UTC",
        s.schedule_id,
        s.name,
        s.target,
        s.cron,
        s.kind,
        fmt_ms(s.next_run_at)
    )
}

/// Run `activity`.
pub async fn activity(a: ActivityArgs) -> anyhow::Result<()> {
    let list = a.conn.rest()?.activity().await?;
    if a.conn.json {
        println!("{}", serde_json::to_string(&list)?);
        return Ok(());
    }
    let rows = list
        .agents
        .iter()
        .map(|e| {
            vec![
                e.agent_id.clone(),
                e.handle.clone(),
                e.status.as_str().to_owned(),
                e.running.to_string(),
                e.queued.to_string(),
                yes_no(e.paused),
                breaker(&e.breaker),
                if e.working_on.is_empty() {
                    "-".into()
                } else {
                    e.working_on.join(",")
                },
            ]
        })
        .collect();
    print_table(
        &[
            "AGENT",
            "HANDLE",
            "STATUS",
            ">RUNNING",
            ">QUEUED",
            "PAUSED",
            "BREAKER",
            "WORKING_ON",
        ],
        rows,
    );
    Ok(())
}

/// Run an `inbox` subcommand.
pub async fn inbox(cmd: InboxCmd) -> anyhow::Result<()> {
    match cmd {
        InboxCmd::Get { conn, agent } => {
            let s = conn.rest()?.inbox(&agent).await?;
            print_inbox(&conn, &agent, &s)
        }
        InboxCmd::Set {
            conn,
            agent,
            activation,
            mode,
        } => {
            let rest = conn.rest()?;
            // The hub replaces both fields; keep the one not given.
            let s = match (activation, mode) {
                (Some(activation), Some(mode)) => InboxSettings { activation, mode },
                (activation, mode) => {
                    let now = rest.inbox(&agent).await?;
                    InboxSettings {
                        activation: activation.unwrap_or(now.activation),
                        mode: mode.unwrap_or(now.mode),
                    }
                }
            };
            let s = rest.set_inbox(&agent, &s).await?;
            print_inbox(&conn, &agent, &s)
        }
    }
}

fn print_inbox(conn: &Conn, agent: &str, s: &InboxSettings) -> anyhow::Result<()> {
    if conn.json {
        println!("{}", serde_json::to_string(s)?);
    } else {
        println!("{:10} {agent}", "agent");
        println!("{:10} {}", "activation", s.activation);
        println!("{:10} {}", "mode", s.mode);
    }
    Ok(())
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// `closed`, `closed (2 failures)`, `open (5 failures) until …`, `half_open`.
fn breaker(b: &BreakerInfo) -> String {
    let mut s = b.state.as_str().to_owned();
    if b.failures > 0 {
        let plural = if b.failures == 1 { "" } else { "s" };
        s.push_str(&format!(" ({} failure{plural})", b.failures));
    }
    if let (BreakerState::Open, Some(at)) = (b.state, b.retry_at) {
        s.push_str(&format!(" until {}", fmt_ms(at)));
    }
    s
}

/// Print `rows` under `headers`, each column as wide as its widest cell,
/// two spaces apart. A header starting with `>` is right-aligned (numbers);
/// the last column is not padded.
fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    for line in table(headers, rows) {
        println!("{line}");
    }
}

fn table(headers: &[&str], rows: Vec<Vec<String>>) -> Vec<String> {
    let right: Vec<bool> = headers.iter().map(|h| h.starts_with('>')).collect();
    let head: Vec<String> = headers
        .iter()
        .map(|h| h.trim_start_matches('>').to_owned())
        .collect();
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    std::iter::once(head)
        .chain(rows)
        .map(|row| {
            let last = row.len().saturating_sub(1);
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    if right[i] {
                        format!("{}{cell}", " ".repeat(pad))
                    } else if i == last {
                        cell.clone()
                    } else {
                        format!("{cell}{}", " ".repeat(pad))
                    }
                })
                .collect();
            cells.join("  ")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_numbers() {
        let lines = table(
            &["NAME", ">N", "NOTE"],
            vec![
                vec!["a-long-name".into(), "7".into(), "x".into()],
                vec!["b".into(), "1234".into(), "y z".into()],
            ],
        );
        assert_eq!(
            lines,
            [
                "NAME            N  NOTE",
                "a-long-name     7  x",
                "b            1234  y z",
            ]
        );
    }

    #[test]
    fn breakers_read_as_state_failures_and_retry_time() {
        let mut b = BreakerInfo {
            state: BreakerState::Closed,
            failures: 0,
            opened_at: None,
            retry_at: None,
        };
        assert_eq!(breaker(&b), "closed");
        b.failures = 1;
        assert_eq!(breaker(&b), "closed (1 failure)");
        b.state = BreakerState::Open;
        b.failures = 5;
        b.opened_at = Some(0);
        b.retry_at = Some(30_000);
        assert_eq!(breaker(&b), "open (5 failures) until 1970-01-01 00:00:30");
    }
}
