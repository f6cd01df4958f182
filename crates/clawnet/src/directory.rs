//! `clawnet rooms`, `clawnet presence`, `clawnet handles`, `clawnet dm` and
//! `clawnet settings`: the hub's directory over REST. Tables for people,
//! `--json` for scripts (the hub's objects, one per line).

use clawnet_proto::methods::{HistoryResult, RoomInfo};
use serde_json::{json, Value};

use crate::cli::Conn;
use crate::table;

/// `clawnet rooms`.
#[derive(Debug, clap::Subcommand)]
pub enum RoomsCmd {
    /// Rooms you can see (private ones only as a member, master or warden).
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Create a room (you become its first member).
    Create {
        #[command(flatten)]
        conn: Conn,
        /// `[a-z0-9][a-z0-9._-]{0,63}`.
        name: String,
        /// Only members, master and warden see it.
        #[arg(long)]
        private: bool,
    },
    /// One room.
    Show {
        #[command(flatten)]
        conn: Conn,
        name: String,
    },
    /// A room's members.
    Members {
        #[command(flatten)]
        conn: Conn,
        name: String,
    },
    /// Join a public room.
    Join {
        #[command(flatten)]
        conn: Conn,
        name: String,
    },
    /// Leave a room.
    Leave {
        #[command(flatten)]
        conn: Conn,
        name: String,
    },
    /// Add an agent to a room you may manage (private rooms too).
    Invite {
        #[command(flatten)]
        conn: Conn,
        name: String,
        /// Agent id or `@handle`.
        agent: String,
    },
    /// A page of a room's history.
    History {
        #[command(flatten)]
        conn: Conn,
        name: String,
        /// Messages after this `seq`.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many (the hub's maximum is 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Delete a room, its members and its history (master or its creator).
    Delete {
        #[command(flatten)]
        conn: Conn,
        name: String,
    },
}

/// `clawnet presence`.
#[derive(Debug, clap::Args)]
pub struct PresenceArgs {
    #[command(flatten)]
    pub conn: Conn,
}

/// `clawnet handles`.
#[derive(Debug, clap::Subcommand)]
pub enum HandlesCmd {
    /// Change a handle: your own, or anyone's as master.
    Set {
        #[command(flatten)]
        conn: Conn,
        /// The agent: its id or current `@handle`.
        agent: String,
        /// The new handle, `[a-z0-9_-]{2,32}`.
        handle: String,
    },
}

/// `clawnet dm`: a direct message (`clawnet dm @bob --msg hi`), or the list of your DMs.
#[derive(Debug, clap::Args)]
pub struct DmArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// `@handle` or agent id to write to; without it, list your DMs.
    pub to: Option<String>,
    /// The message.
    #[arg(long)]
    pub msg: Option<String>,
}

/// `clawnet settings`.
#[derive(Debug, clap::Subcommand)]
pub enum SettingsCmd {
    /// The settings that can be changed while the hub runs (master, warden).
    Get {
        #[command(flatten)]
        conn: Conn,
    },
    /// Change some (master): `clawnet settings set tasks.max_pending=100`.
    Set {
        #[command(flatten)]
        conn: Conn,
        /// `KEY=VALUE` pairs; numbers and booleans are sent as such.
        #[arg(required = true)]
        pairs: Vec<String>,
    },
}

/// Rooms as a table, or one JSON object per line.
fn print_rooms(conn: &Conn, rooms: &[RoomInfo]) -> anyhow::Result<()> {
    if conn.json {
        return print_json_lines(rooms);
    }
    let header = [
        "ROOM",
        "VISIBILITY",
        "MEMBERS",
        "JOINED",
        "LAST SEQ",
        "CREATED",
    ];
    table::print(&header, &room_rows(rooms));
    Ok(())
}

fn room_rows(rooms: &[RoomInfo]) -> Vec<Vec<String>> {
    let now = table::now_ms();
    rooms
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                if r.private { "private" } else { "public" }.to_owned(),
                r.member_count.to_string(),
                if r.member { "yes" } else { "" }.to_owned(),
                r.last_seq.to_string(),
                table::ago(r.created_at, now),
            ]
        })
        .collect()
}

fn print_json_lines<T: serde::Serialize>(items: &[T]) -> anyhow::Result<()> {
    for i in items {
        println!("{}", serde_json::to_string(i)?);
    }
    Ok(())
}

fn print_history(h: &HistoryResult, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json_lines(&h.messages);
    }
    let now = table::now_ms();
    let rows: Vec<Vec<String>> = h
        .messages
        .iter()
        .map(|m| {
            let text = if m.deleted {
                "(deleted)".to_owned()
            } else {
                m.text().map_or_else(
                    || Value::Object(m.payload.clone()).to_string(),
                    str::to_owned,
                )
            };
            vec![
                m.seq.to_string(),
                table::ago(m.ts, now),
                format!("@{}", m.from_handle),
                text,
            ]
        })
        .collect();
    table::print(&["SEQ", "WHEN", "FROM", "TEXT"], &rows);
    Ok(())
}

/// Run a `rooms` subcommand.
pub async fn rooms(cmd: RoomsCmd) -> anyhow::Result<()> {
    match cmd {
        RoomsCmd::List { conn } => {
            let list = conn.rest()?.rooms().await?;
            print_rooms(&conn, &list.rooms)?;
        }
        RoomsCmd::Create {
            conn,
            name,
            private,
        } => {
            let v = conn.rest()?.create_room(&name, private).await?;
            one(&conn, &v, || format!("created {name}"))?;
        }
        RoomsCmd::Show { conn, name } => {
            let r: RoomInfo = conn.rest()?.get(&format!("/rooms/{name}")).await?;
            print_rooms(&conn, std::slice::from_ref(&r))?;
        }
        RoomsCmd::Members { conn, name } => {
            let v: Value = conn.rest()?.get(&format!("/rooms/{name}/members")).await?;
            if conn.json {
                println!("{v}");
            } else {
                for m in v["members"].as_array().into_iter().flatten() {
                    println!("{}", m.as_str().unwrap_or_default());
                }
            }
        }
        RoomsCmd::Join { conn, name } => {
            let v = conn.rest()?.join_room(&name).await?;
            one(&conn, &v, || format!("joined {name}"))?;
        }
        RoomsCmd::Leave { conn, name } => {
            let v = conn.rest()?.leave_room(&name).await?;
            one(&conn, &v, || format!("left {name}"))?;
        }
        RoomsCmd::Invite { conn, name, agent } => {
            let (_, v): (u16, Value) = conn
                .rest()?
                .post(&format!("/rooms/{name}/invite"), &json!({ "agent": agent }))
                .await?;
            one(&conn, &v, || format!("{agent} is a member of {name}"))?;
        }
        RoomsCmd::History {
            conn,
            name,
            after,
            limit,
        } => {
            let h = conn
                .rest()?
                .history(&name, Some(after), Some(limit))
                .await?;
            print_history(&h, conn.json)?;
        }
        RoomsCmd::Delete { conn, name } => {
            let v: Value = conn.rest()?.delete(&format!("/rooms/{name}")).await?;
            one(&conn, &v, || format!("deleted {name}"))?;
        }
    }
    Ok(())
}

/// The hub's answer as JSON, or a line for people.
fn one(conn: &Conn, v: &Value, human: impl FnOnce() -> String) -> anyhow::Result<()> {
    if conn.json {
        println!("{}", serde_json::to_string(v)?);
    } else {
        println!("{}", human());
    }
    Ok(())
}

/// Run `presence`.
pub async fn presence(a: PresenceArgs) -> anyhow::Result<()> {
    let list = a.conn.rest()?.presence().await?;
    if a.conn.json {
        return print_json_lines(&list.agents);
    }
    let now = table::now_ms();
    let rows: Vec<Vec<String>> = list
        .agents
        .iter()
        .map(|p| {
            let status = serde_json::to_value(p.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            vec![
                format!("@{}", p.handle),
                p.agent_id.clone(),
                table::presence(&status),
                table::ago(p.since, now),
                p.activity.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table::print(&["HANDLE", "AGENT", "STATUS", "SINCE", "ACTIVITY"], &rows);
    Ok(())
}

/// Run a `handles` subcommand.
pub async fn handles(cmd: HandlesCmd) -> anyhow::Result<()> {
    let HandlesCmd::Set {
        conn,
        agent,
        handle,
    } = cmd;
    let rest = conn.rest()?;
    let v = rest.set_handle(&agent, &handle).await?;
    one(&conn, &v, || format!("{agent} is now @{handle}"))
}

/// Run `dm`: send one, or list them.
pub async fn dm(a: DmArgs) -> anyhow::Result<()> {
    let rest = a.conn.rest()?;
    let Some(to) = a.to else {
        let v: Value = rest.get("/dms").await?;
        let dms = v["dms"].as_array().cloned().unwrap_or_default();
        if a.conn.json {
            return print_json_lines(&dms);
        }
        let rows: Vec<Vec<String>> = dms
            .iter()
            .map(|d| {
                vec![
                    format!("@{}", d["with"]["handle"].as_str().unwrap_or_default()),
                    d["room"].as_str().unwrap_or_default().to_owned(),
                    d["last_seq"].to_string(),
                ]
            })
            .collect();
        table::print(&["WITH", "ROOM", "LAST SEQ"], &rows);
        return Ok(());
    };
    let Some(text) = a.msg else {
        anyhow::bail!("nothing to say: clawnet dm @handle --msg TEXT");
    };
    let params: clawnet_proto::methods::SendParams = serde_json::from_value(json!({
        "to_type": "dm", "to_id": to, "payload": {"text": text},
        "dedupe_key": clawnet_client::new_dedupe_key(),
    }))?;
    let (_, sent) = rest.send(&params).await?;
    if a.conn.json {
        println!("{}", serde_json::to_string(&sent.message)?);
    } else {
        println!(
            "sent to {to} ({} #{})",
            sent.message.to_id, sent.message.seq
        );
    }
    Ok(())
}

/// Run a `settings` subcommand.
pub async fn settings(cmd: SettingsCmd) -> anyhow::Result<()> {
    match cmd {
        SettingsCmd::Get { conn } => {
            let v: Value = conn.rest()?.get("/settings").await?;
            if conn.json {
                println!("{v}");
            } else {
                let obj = v.get("settings").unwrap_or(&v);
                let rows: Vec<Vec<String>> = obj
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| vec![k.clone(), v.to_string()])
                    .collect();
                table::print(&["KEY", "VALUE"], &rows);
            }
        }
        SettingsCmd::Set { conn, pairs } => {
            let mut body = serde_json::Map::new();
            for p in pairs {
                let Some((k, v)) = p.split_once('=') else {
                    anyhow::bail!("{p}: expected KEY=VALUE");
                };
                let value = serde_json::from_str::<Value>(v).unwrap_or_else(|_| json!(v));
                body.insert(k.trim().to_owned(), value);
            }
            let v: Value = conn
                .rest()?
                .patch("/settings", &Value::Object(body))
                .await?;
            one(&conn, &v, || "settings changed".to_owned())?;
        }
    }
    Ok(())
}
