//! `clawnet serve`: load configuration, build the hub, bind, run until a
//! signal.

use std::collections::BTreeMap;

use anyhow::Context;
use clawnet_core::Hub;
use clawnet_server::AppState;

use crate::config::{self, Inputs};

/// Flags of `clawnet serve`.
#[derive(Debug, Default, clap::Args)]
#[command(after_help = config::keys_help())]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:3000].
    #[arg(long)]
    pub listen: Option<String>,
    /// TOML configuration file.
    #[arg(long, short = 'c')]
    pub config: Option<std::path::PathBuf>,
    /// State store: `memory` (default) or `sqlite://PATH[?synchronous=full]`.
    #[arg(long)]
    pub store: Option<String>,
    /// Log filter (overrides CLAWNET_LOG_LEVEL), e.g. `debug`.
    #[arg(long)]
    pub log_level: Option<String>,
    /// The audit trail's JSONL file [default: beside a SQLite store as
    /// `PATH.audit.jsonl`; none for other stores].
    #[arg(long)]
    pub audit_file: Option<String>,
    /// Set any configuration key, e.g. `--set chat.retention_messages=500`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub(crate) fn inputs(args: &ServeArgs) -> anyhow::Result<Inputs> {
    let file = match &args.config {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read config file {}", p.display()))?,
        ),
        None => None,
    };
    let env: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("CLAWNET_"))
        .collect();
    let mut flags = Vec::new();
    for s in &args.set {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("--set {s}: expected KEY=VALUE"))?;
        flags.push((k.trim().to_owned(), v.to_owned()));
    }
    for (k, v) in [
        ("listen", &args.listen),
        ("store", &args.store),
        ("log_level", &args.log_level),
        ("audit.file", &args.audit_file),
    ] {
        if let Some(v) = v {
            flags.push((k.to_owned(), v.clone()));
        }
    }
    Ok(Inputs { file, env, flags })
}

/// Run the hub until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = match config::load(inputs(&args)?) {
        Ok(c) => c,
        Err(problems) => {
            eprintln!("clawnet: invalid configuration:");
            for p in &problems {
                eprintln!("  - {p}");
            }
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cfg.log_level)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    // Host integrity: the binary and the config file, hashed now and again
    // on the interval.
    let mut cfg = cfg;
    cfg.hub.integrity.files = std::env::current_exe()
        .ok()
        .into_iter()
        .chain(args.config.clone())
        .collect();
    let store = clawnet_store::open(&cfg.store)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the store: {}", e.message))?;
    let hub = Hub::builder()
        .config(cfg.hub.clone())
        .store(store)
        .build()
        .await?;
    if let Some(token) = hub.bootstrap(cfg.master_token.as_deref()).await? {
        // Printed once: the memory store forgets it on exit anyway, and a
        // durable store never prints it again.
        println!("clawnet: generated master token (shown once): {token}");
        println!("clawnet: export CLAWNET_TOKEN={token}");
    }
    hub.spawn_sweeper();
    hub.spawn_retention_sweeper();
    hub.spawn_cursor_flusher();
    hub.spawn_task_sweeper();
    hub.spawn_integrity_watch();
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, store = ?cfg.store, "clawnet hub listening");
    println!("clawnet: listening on http://{addr} (WebSocket ws://{addr}/ws)");
    let state = AppState::new(hub.clone(), cfg.server);
    // SIGTERM: stop accepting, tell agents to reconnect elsewhere, let
    // in-flight requests finish (their ACKs leave after their commits), then
    // write what is buffered, all within the deadline.
    let deadline = cfg.shutdown_deadline;
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown_signal().await;
        let _ = stopping_tx.send(());
    };
    let served = clawnet_server::serve(listener, state, signal);
    tokio::pin!(served);
    let over_time = async move {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(deadline).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = &mut served => r?,
        () = over_time => tracing::warn!(?deadline, "connections still open at the shutdown deadline; closing"),
    }
    let flush = async {
        // Acks still buffered reach the store before the process exits.
        if let Err(e) = hub.flush_cursors().await {
            tracing::warn!(error = %e, "cursors not written at shutdown");
        }
        // So are audit entries still queued.
        hub.flush_audit().await;
    };
    if tokio::time::timeout(deadline, flush).await.is_err() {
        tracing::warn!("buffered cursors or audit entries not written within the deadline");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// `clawnet backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the copy (must not exist).
    pub file: std::path::PathBuf,
    /// The store to copy [env: CLAWNET_STORE], e.g. `sqlite://clawnet.db`.
    #[arg(long, env = "CLAWNET_STORE")]
    pub store: String,
}

/// Copy a SQLite store with `VACUUM INTO` (consistent, online).
pub fn backup(a: BackupArgs) -> anyhow::Result<()> {
    let url = clawnet_store::StoreUrl::parse(&a.store).map_err(anyhow::Error::msg)?;
    let clawnet_store::StoreUrl::Sqlite { path, .. } = url else {
        anyhow::bail!("only SQLite stores are backed up this way; use pg_dump for PostgreSQL");
    };
    clawnet_store::sqlite::backup_file(std::path::Path::new(&path), &a.file)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    println!("backed up {path} to {}", a.file.display());
    Ok(())
}
