//! `clawnet audit verify [FILE]`: check the hash chain of an audit JSONL
//! file; `clawnet logs`: read (and follow) the audit trail over
//! `GET /api/v1/logs` (master and warden).

use std::io::BufReader;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clawnet_client::ClientError;
use clawnet_core::audit::{verify_from, GENESIS};
use clawnet_core::store::AuditEntry;
use serde_json::{json, Value};

use crate::cli::Conn;
use crate::serve::ServeArgs;
use crate::tasks::fmt_ms;

/// `clawnet audit`.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCmd {
    /// Check that no entry of the audit file was edited, removed or
    /// reordered: prints `ok: N entries` (exit 0) or the first bad line and
    /// why (exit 1).
    Verify(VerifyArgs),
}

/// `clawnet audit verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The audit file [default: the hub's `audit.file`, found from
    /// --config, CLAWNET_* and --store as `clawnet serve` finds it].
    pub file: Option<PathBuf>,
    /// The hub's TOML configuration file, to find its audit file.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// The hub's store, to find its audit file (`sqlite://PATH` →
    /// `PATH.audit.jsonl`).
    #[arg(long)]
    pub store: Option<String>,
    /// The file's first entry continues an earlier chain whose last hash is
    /// this (a file started after the store already held entries, or a
    /// rotated file). Default: the chain starts at 64 zeros.
    #[arg(long, value_name = "HASH")]
    pub continues_from: Option<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Run `clawnet audit …`.
pub async fn audit(cmd: AuditCmd) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::Verify(a) => verify_cmd(a),
    }
}

/// The audit file `clawnet serve` would write with these inputs.
fn configured_file(a: &VerifyArgs) -> anyhow::Result<PathBuf> {
    let args = ServeArgs {
        config: a.config.clone(),
        store: a.store.clone(),
        ..Default::default()
    };
    let cfg = crate::config::load(crate::serve::inputs(&args)?).map_err(|problems| {
        anyhow::anyhow!("invalid configuration:\n  - {}", problems.join("\n  - "))
    })?;
    cfg.hub.audit_file.context(
        "no audit file configured: pass FILE, or --store sqlite://PATH, or set audit.file \
         (CLAWNET_AUDIT_FILE)",
    )
}

fn verify_cmd(a: VerifyArgs) -> anyhow::Result<()> {
    let path = match &a.file {
        Some(p) => p.clone(),
        None => configured_file(&a)?,
    };
    let f = std::fs::File::open(&path)
        .with_context(|| format!("cannot open the audit file {}", path.display()))?;
    let first = a.continues_from.as_deref().unwrap_or(GENESIS);
    let r = verify_from(BufReader::new(f), Some(first));
    if a.json {
        let bad = r.first_bad.as_ref().map(
            |b| json!({"line": b.line, "id": b.id, "what": b.what.as_str(), "detail": b.detail}),
        );
        println!(
            "{}",
            json!({
                "ok": r.ok(),
                "file": path.display().to_string(),
                "entries": r.entries,
                "last_hash": r.last_hash,
                "first_bad": bad,
            })
        );
    } else {
        match &r.first_bad {
            None => println!("ok: {} entries ({})", r.entries, path.display()),
            Some(b) => {
                let id = b.id.map_or_else(String::new, |id| format!(" (entry {id})"));
                println!(
                    "{}:{}: line {}{id}: {}: {}",
                    path.display(),
                    b.line,
                    b.line,
                    b.what,
                    b.detail
                );
                println!("{} entries before it check out", r.entries);
            }
        }
    }
    if !r.ok() {
        std::process::exit(1);
    }
    Ok(())
}

/// `clawnet logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Only this category (`identity`, `auth`, `chat`, `policy`, `task`, …).
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// Only this actor (agent id, or address for failed logins).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only entries at or after this time (ms since the epoch).
    #[arg(long, value_name = "MS")]
    pub since: Option<u64>,
    /// At most this many (the newest; 1..=1000).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Keep printing new entries as they are written (polls every second).
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// Percent-encode a query value.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query(a: &LogsArgs, after_id: Option<u64>) -> String {
    let mut q = vec![format!("limit={}", a.limit)];
    if let Some(t) = &a.kind {
        q.push(format!("type={}", enc(t)));
    }
    if let Some(x) = &a.actor {
        q.push(format!("actor={}", enc(x)));
    }
    if let Some(s) = a.since {
        q.push(format!("since={s}"));
    }
    if let Some(id) = after_id {
        q.push(format!("after_id={id}"));
    }
    format!("/logs?{}", q.join("&"))
}

fn print_entry(e: &AuditEntry, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        println!("{}", serde_json::to_string(e)?);
        return Ok(());
    }
    let reason = e
        .reason
        .as_deref()
        .map_or_else(String::new, |r| format!(" ({r})"));
    let meta = match &e.meta {
        Value::Null => String::new(),
        Value::Object(m) if m.is_empty() => String::new(),
        m => format!(" {m}"),
    };
    println!(
        "{:>6} {} {:<9} {:<16} {:<24} {}{reason}{meta}",
        e.id,
        fmt_ms(e.ts),
        e.kind,
        e.actor,
        e.action,
        e.target
    );
    Ok(())
}

fn entries(v: &Value) -> anyhow::Result<Vec<AuditEntry>> {
    serde_json::from_value(v["entries"].clone()).context("the hub's answer has no entries")
}

/// Print the newest entries; with `--follow`, then every new one, asking for
/// entries after the last id seen once a second. An unreachable hub is said
/// once on stderr and asked again.
pub async fn logs(a: LogsArgs) -> anyhow::Result<()> {
    if a.limit == 0 || a.limit > 1000 {
        anyhow::bail!("--limit must be 1..=1000");
    }
    let rest = a.conn.rest()?;
    let first: Value = rest.get(&query(&a, None)).await?;
    let mut last_id = 0;
    for e in entries(&first)? {
        last_id = last_id.max(e.id);
        print_entry(&e, a.conn.json)?;
    }
    if !a.follow {
        return Ok(());
    }
    let mut down = false;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Page forward until caught up.
        loop {
            match rest.get::<Value>(&query(&a, Some(last_id))).await {
                Ok(v) => {
                    if down {
                        eprintln!("clawnet: the hub answers again");
                        down = false;
                    }
                    let got = entries(&v)?;
                    let full = got.len() >= a.limit;
                    for e in got {
                        last_id = last_id.max(e.id);
                        print_entry(&e, a.conn.json)?;
                    }
                    if !full {
                        break;
                    }
                }
                Err(ClientError::Transport(why) | ClientError::Protocol(why)) => {
                    if !down {
                        eprintln!("clawnet: the hub is unreachable ({why}); retrying every second");
                        down = true;
                    }
                    break;
                }
                Err(ClientError::Http(status, body)) if status >= 500 => {
                    if !down {
                        eprintln!(
                            "clawnet: the hub answers {status} ({}); retrying every second",
                            body.message
                        );
                        down = true;
                    }
                    break;
                }
                Err(ClientError::Timeout) => {
                    if !down {
                        eprintln!("clawnet: the hub does not answer; retrying every second");
                        down = true;
                    }
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(enc("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(enc("w-1_x.y~"), "w-1_x.y~");
    }
}
