//! `clawnet quarantine` (review what the defender holds) and
//! `clawnet messages delete` (take a message back), over REST.

use clawnet_proto::guard::{QuarantineItem, QuarantineList};
use serde_json::{json, Value};

use crate::cli::Conn;
use crate::tasks::fmt_ms;

/// `clawnet quarantine`.
#[derive(Debug, clap::Subcommand)]
pub enum QuarantineCmd {
    /// Items the defender holds for review, oldest first (master, warden).
    List {
        #[command(flatten)]
        conn: Conn,
        /// held (default), approved or rejected.
        #[arg(long, default_value = "held")]
        state: String,
    },
    /// Deliver (or dispatch) a held item now, as its sender.
    Approve {
        #[command(flatten)]
        conn: Conn,
        /// The item id (`q_…`).
        id: String,
        /// Kept in the ledger and the audit trail.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Never deliver a held item.
    Reject {
        #[command(flatten)]
        conn: Conn,
        /// The item id (`q_…`).
        id: String,
        /// Kept in the ledger and the audit trail.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// `clawnet messages`.
#[derive(Debug, clap::Subcommand)]
pub enum MessagesCmd {
    /// Delete a message (its sender or master); history keeps a tombstone.
    Delete {
        #[command(flatten)]
        conn: Conn,
        /// The room key (`global`, a room name, `dm:<a>:<b>`).
        #[arg(long)]
        room: String,
        /// The message's `seq`.
        #[arg(long)]
        seq: u64,
    },
}

fn summary(i: &QuarantineItem) -> String {
    let what = match &i.item {
        clawnet_proto::guard::HeldItem::Chat { params } => {
            let text = params
                .payload
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or("(no text)");
            let to = params.to_id.as_deref().unwrap_or("global");
            format!(
                "chat to {to}: {}",
                text.chars().take(60).collect::<String>()
            )
        }
        clawnet_proto::guard::HeldItem::Task { params, .. } => {
            format!("task for {}", params.target)
        }
    };
    let signals: Vec<&str> = i.signals.iter().map(|s| s.name.as_str()).collect();
    format!(
        "{:28} {:>10} {:12} {}  [{}]",
        i.id,
        fmt_ms(i.ts),
        i.actor,
        what,
        signals.join(", ")
    )
}

/// Run a `quarantine` subcommand.
pub async fn quarantine(cmd: QuarantineCmd) -> anyhow::Result<()> {
    match cmd {
        QuarantineCmd::List { conn, state } => {
            let list: QuarantineList = conn
                .rest()?
                .get(&format!("/quarantine?state={state}"))
                .await?;
            if conn.json {
                for i in &list.items {
                    println!("{}", serde_json::to_string(i)?);
                }
            } else if list.items.is_empty() {
                println!("nothing {state}");
            } else {
                for i in &list.items {
                    println!("{}", summary(i));
                }
            }
        }
        QuarantineCmd::Approve { conn, id, reason } => {
            decide(&conn, &id, "approve", reason).await?
        }
        QuarantineCmd::Reject { conn, id, reason } => decide(&conn, &id, "reject", reason).await?,
    }
    Ok(())
}

async fn decide(conn: &Conn, id: &str, verb: &str, reason: Option<String>) -> anyhow::Result<()> {
    let (_, v): (u16, Value) = conn
        .rest()?
        .post(
            &format!("/quarantine/{id}/{verb}"),
            &json!({"reason": reason}),
        )
        .await?;
    if conn.json {
        println!("{}", v["item"]);
    } else {
        println!("{id}: {}", v["item"]["state"].as_str().unwrap_or("?"));
    }
    Ok(())
}

/// Run a `messages` subcommand.
pub async fn messages(cmd: MessagesCmd) -> anyhow::Result<()> {
    match cmd {
        MessagesCmd::Delete { conn, room, seq } => {
            let v: Value = conn
                .rest()?
                .delete(&format!("/rooms/{room}/messages/{seq}"))
                .await?;
            if conn.json {
                println!("{}", v["message"]);
            } else {
                println!("deleted {room}#{seq}");
            }
        }
    }
    Ok(())
}
