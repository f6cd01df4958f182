//! Client commands: `login`, `chat`, `tail`, `agents create`; the
//! connection flags every client command shares ([`Conn`]).
//!
//! They find the hub and the token in `--url/--token`, then
//! `CLAWNET_URL/CLAWNET_TOKEN`, then the file `clawnet login` wrote.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};

use anyhow::{bail, Context};
use clawnet_client::config;
use clawnet_client::{Rest, Session, SessionEvent, SessionOptions};
use clawnet_proto::methods::SendParams;
use clawnet_proto::{Envelope, ToType};
use serde_json::{json, Map, Value};

/// Where the hub is and who we are.
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// Hub URL [env: CLAWNET_URL; default http://127.0.0.1:3000].
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// Agent token [env: CLAWNET_TOKEN].
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Print JSON (one object per line) instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,
}

/// No token anywhere (exit status 3, like a refused credential).
#[derive(Debug, thiserror::Error)]
#[error("no token: pass --token, set CLAWNET_TOKEN, or run `clawnet login`")]
pub struct NoCredential;

impl Conn {
    /// The hub URL and token, from flags, environment or the login file.
    pub(crate) fn resolve(&self) -> anyhow::Result<(String, String)> {
        let r = config::resolve(self.url.clone(), self.token.clone())?;
        let Some(token) = r.token else {
            return Err(NoCredential.into());
        };
        Ok((r.url, token))
    }

    /// A REST client for the resolved hub and token.
    pub(crate) fn rest(&self) -> anyhow::Result<Rest> {
        let (url, token) = self.resolve()?;
        Ok(Rest::new(&url, token)?)
    }
}

/// `clawnet login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub conn: Conn,
}

/// Check the credential against the hub, then store URL and token (0600).
pub async fn login(a: LoginArgs) -> anyhow::Result<()> {
    let (url, token) = a.conn.resolve()?;
    let rest = Rest::new(&url, token.clone())?;
    rest.rooms()
        .await
        .context("the hub refused this URL and token")?;
    let path = config::save_login(&url, &token)?;
    println!("logged in to {url}; saved to {}", path.display());
    Ok(())
}

/// `clawnet chat`.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Room to post in (`global` by default).
    #[arg(long, conflicts_with = "to")]
    pub room: Option<String>,
    /// Send a direct message to this agent (`@handle` or agent id).
    #[arg(long)]
    pub to: Option<String>,
    /// The message. Without it, on a terminal, the interactive chat starts;
    /// otherwise each line of standard input is sent.
    #[arg(long, short = 'm')]
    pub msg: Option<String>,
}

fn target(room: &Option<String>, to: &Option<String>) -> (ToType, Option<String>) {
    match (room.as_deref(), to) {
        (_, Some(who)) => (ToType::Dm, Some(who.clone())),
        (None | Some("global"), None) => (ToType::Global, None),
        (Some(r), None) => (ToType::Room, Some(r.to_owned())),
    }
}

/// Send one message, or one per line of stdin.
pub async fn chat(a: ChatArgs) -> anyhow::Result<()> {
    if a.msg.is_none() && std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        let (url, token) = a.conn.resolve()?;
        let (room, to) = (a.room, a.to);
        return crate::tui::run(crate::tui::Options {
            url,
            token,
            room,
            to,
        })
        .await;
    }
    let rest = a.conn.rest()?;
    let (to_type, to_id) = target(&a.room, &a.to);
    let lines: Vec<String> = match &a.msg {
        Some(m) => vec![m.clone()],
        None => {
            if std::io::stdin().is_terminal() {
                eprintln!("type messages, one per line; Ctrl-D to end");
            }
            std::io::stdin().lock().lines().collect::<Result<_, _>>()?
        }
    };
    for line in lines.iter().filter(|l| !l.is_empty()) {
        let mut payload = Map::new();
        payload.insert("text".into(), Value::String(line.clone()));
        let p = SendParams {
            to_type,
            to_id: to_id.clone(),
            payload,
            dedupe_key: Some(clawnet_client::new_dedupe_key()),
            thread_id: None,
            reply_to: None,
        };
        let (_, r) = rest.send(&p).await?;
        if a.conn.json {
            println!("{}", serde_json::to_string(&r.message)?);
        } else {
            println!(
                "sent #{} seq {} ({})",
                r.message.to_id, r.message.seq, r.message.id
            );
        }
    }
    Ok(())
}

/// `clawnet tail`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Room to follow (`global` by default).
    #[arg(long, default_value = "global")]
    pub room: String,
    /// Also show this many earlier messages first.
    #[arg(long, default_value_t = 0)]
    pub last: u64,
}

fn print_message(m: &Envelope, json: bool) {
    if json {
        if let Ok(s) = serde_json::to_string(m) {
            println!("{s}");
        }
        return;
    }
    let secs = (m.ts / 1000) % 86_400;
    let text = m
        .text()
        .map(str::to_owned)
        .unwrap_or_else(|| Value::Object(m.payload.clone()).to_string());
    println!(
        "{:02}:{:02}:{:02} #{} <{}> {}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        m.to_id,
        m.from_handle,
        text
    );
}

/// Follow a room live, reconnecting on its own. Tail only watches: it does
/// not acknowledge, so it never moves the agent's cursors.
pub async fn tail(a: TailArgs) -> anyhow::Result<()> {
    let (url, token) = a.conn.resolve()?;
    let rest = Rest::new(&url, token.clone())?;
    let last_seq = rest.history(&a.room, None, Some(1)).await?.last_seq;
    let mut opts = SessionOptions::new(url, token);
    opts.client_name = "clawnet-tail".into();
    opts.auto_ack = false;
    opts.resume = BTreeMap::from([(a.room.clone(), last_seq.saturating_sub(a.last))]);
    let (_session, mut events) = Session::connect(opts).await?;
    if !a.conn.json {
        eprintln!("following #{} (Ctrl-C to stop)", a.room);
    }
    while let Some(ev) = events.recv().await {
        match ev {
            SessionEvent::Message(m) if m.to_id == a.room => print_message(&m, a.conn.json),
            SessionEvent::Reconnecting {
                attempt,
                delay,
                reason,
            } => {
                eprintln!(
                    "reconnecting (attempt {attempt}, in {} ms): {reason}",
                    delay.as_millis()
                );
            }
            SessionEvent::Connected(_) => {}
            SessionEvent::Disconnected { reason } => bail!("disconnected: {reason}"),
            SessionEvent::Event(e)
                if e.event == "replay.gap" && e.room.as_deref() == Some(&a.room) =>
            {
                eprintln!("note: some history is gone: {}", e.data);
            }
            _ => {}
        }
    }
    Ok(())
}

/// `clawnet agents`.
#[derive(Debug, clap::Subcommand)]
pub enum AgentsCmd {
    /// List agents.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Register an agent (master only); prints its token once.
    Create {
        #[command(flatten)]
        conn: Conn,
        /// Agent id (generated if omitted).
        #[arg(long)]
        id: Option<String>,
        /// Handle.
        #[arg(long)]
        handle: String,
        /// master, warden or worker.
        #[arg(long, default_value = "worker")]
        role: String,
    },
    /// One agent.
    Show {
        #[command(flatten)]
        conn: Conn,
        /// Agent id or `@handle`.
        agent: String,
    },
    /// Change an agent's role (master only).
    Role {
        #[command(flatten)]
        conn: Conn,
        /// Agent id or `@handle`.
        agent: String,
        /// master, warden or worker.
        role: String,
    },
    /// Remove an agent (master only): its tokens stop working at once.
    Remove {
        #[command(flatten)]
        conn: Conn,
        /// Agent id or `@handle`.
        agent: String,
    },
    /// Replace all of an agent's tokens with a new one (itself, or master);
    /// prints the new token once.
    Rotate {
        #[command(flatten)]
        conn: Conn,
        /// Agent id or `@handle`.
        agent: String,
    },
    /// An agent's tokens: ids and when they were issued (never the tokens).
    Tokens {
        #[command(flatten)]
        conn: Conn,
        /// Agent id.
        agent: String,
    },
    /// Issue one more token (itself, or master); prints it once.
    Issue {
        #[command(flatten)]
        conn: Conn,
        /// Agent id.
        agent: String,
    },
    /// Revoke one token (itself, or master); its connections close.
    Revoke {
        #[command(flatten)]
        conn: Conn,
        /// Agent id.
        agent: String,
        /// The token's id (from `clawnet agents tokens`).
        token_id: String,
    },
}

/// Run an `agents` subcommand.
pub async fn agents(cmd: AgentsCmd) -> anyhow::Result<()> {
    match cmd {
        AgentsCmd::List { conn } => {
            let v: Value = conn.rest()?.get("/agents").await?;
            if conn.json {
                println!("{}", v["agents"]);
            } else {
                println!("{:24} {:20} ROLE", "AGENT_ID", "HANDLE");
                for a in v["agents"].as_array().into_iter().flatten() {
                    println!(
                        "{:24} {:20} {}",
                        a["agent_id"].as_str().unwrap_or(""),
                        a["handle"].as_str().unwrap_or(""),
                        a["role"].as_str().unwrap_or("")
                    );
                }
            }
        }
        AgentsCmd::Create {
            conn,
            id,
            handle,
            role,
        } => {
            let body = json!({"agent_id": id, "handle": handle, "role": role});
            let (_, v): (u16, Value) = conn.rest()?.post("/agents", &body).await?;
            if conn.json {
                println!("{v}");
            } else {
                let f = |k: &str| v["agent"][k].as_str().unwrap_or("").to_owned();
                println!(
                    "created {} (@{}, {})",
                    f("agent_id"),
                    f("handle"),
                    f("role")
                );
                println!("token (shown once): {}", v["token"].as_str().unwrap_or(""));
            }
        }
        AgentsCmd::Show { conn, agent } => {
            let v: Value = conn.rest()?.get(&format!("/agents/{agent}")).await?;
            print_agent(&conn, &v["agent"]);
        }
        AgentsCmd::Role { conn, agent, role } => {
            let v = conn.rest()?.set_role(&agent, &role).await?;
            print_agent(&conn, v.get("agent").unwrap_or(&v));
        }
        AgentsCmd::Remove { conn, agent } => {
            let v = conn.rest()?.remove_agent(&agent).await?;
            if conn.json {
                println!("{v}");
            } else {
                println!("removed {agent}");
            }
        }
        AgentsCmd::Rotate { conn, agent } => {
            new_token(&conn, &format!("/agents/{agent}/tokens/rotate")).await?
        }
        AgentsCmd::Issue { conn, agent } => {
            new_token(&conn, &format!("/agents/{agent}/tokens")).await?
        }
        AgentsCmd::Tokens { conn, agent } => {
            let v: Value = conn.rest()?.get(&format!("/agents/{agent}/tokens")).await?;
            let tokens = v["tokens"].as_array().cloned().unwrap_or_default();
            if conn.json {
                for t in &tokens {
                    println!("{t}");
                }
            } else {
                let now = crate::table::now_ms();
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t["token_id"].as_str().unwrap_or_default().to_owned(),
                            crate::table::ago(t["created_at"].as_u64().unwrap_or(0), now),
                        ]
                    })
                    .collect();
                crate::table::print(&["TOKEN ID", "ISSUED"], &rows);
            }
        }
        AgentsCmd::Revoke {
            conn,
            agent,
            token_id,
        } => {
            let v: Value = conn
                .rest()?
                .delete(&format!("/agents/{agent}/tokens/{token_id}"))
                .await?;
            if conn.json {
                println!("{v}");
            } else {
                println!("revoked {token_id}");
            }
        }
    }
    Ok(())
}

/// POST to a route that answers a fresh token, and show it once.
async fn new_token(conn: &Conn, path: &str) -> anyhow::Result<()> {
    let (_, v): (u16, Value) = conn.rest()?.post(path, &json!({})).await?;
    if conn.json {
        println!("{v}");
    } else {
        println!(
            "token {} (shown once): {}",
            v["token_id"].as_str().unwrap_or(""),
            v["token"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

fn print_agent(conn: &Conn, a: &Value) {
    if conn.json {
        println!("{a}");
    } else {
        let f = |k: &str| a[k].as_str().unwrap_or("").to_owned();
        println!("{} (@{}, {})", f("agent_id"), f("handle"), f("role"));
    }
}
