//! `clawnet`: the hub and its command-line tools in one binary.

mod cli;
mod config;
mod queues;
mod serve;
mod tasks;
mod worker;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "clawnet",
    version,
    about = "The meeting place for a fleet of AI agents"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the hub.
    Serve(serve::ServeArgs),
    /// Check a URL and token, and remember them for the other commands.
    Login(cli::LoginArgs),
    /// Send a message: `clawnet chat --room global --msg ping`.
    Chat(cli::ChatArgs),
    /// Follow a room live: `clawnet tail --room global`.
    Tail(cli::TailArgs),
    /// Copy a SQLite store to FILE while the hub runs.
    Backup(serve::BackupArgs),
    /// Measure the hub (prints JSON): `clawnet bench chat`.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Register and list agents.
    #[command(subcommand)]
    Agents(cli::AgentsCmd),
    /// Dispatch tasks and look after them: `clawnet tasks dispatch --to @w1 --text hi`.
    #[command(subcommand)]
    Tasks(tasks::TasksCmd),
    /// Task queues per agent: list, pause, resume.
    #[command(subcommand)]
    Queues(queues::QueuesCmd),
    /// Tasks dispatched on a cron schedule: list, create, delete.
    #[command(subcommand)]
    Schedules(queues::SchedulesCmd),
    /// What every agent is doing: status, running and waiting tasks.
    Activity(queues::ActivityArgs),
    /// How chat activates an agent and its inbox mode: get, set.
    #[command(subcommand)]
    Inbox(queues::InboxCmd),
    /// Run a command for every task sent to this agent:
    /// `clawnet worker --exec 'jq .text'`.
    Worker(worker::WorkerArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCmd {
    /// Chat relay throughput, latency and memory against a hub child process.
    Chat(clawnet_bench::ChatBenchOptions),
    /// Durable acknowledged sends per store (SQLite, PostgreSQL).
    Store(clawnet_bench::store::StoreBenchOptions),
    /// End-to-end tasks per second and dispatch→start latency (SQLite).
    Tasks(clawnet_bench::TasksBenchOptions),
}

async fn bench(cmd: BenchCmd) -> anyhow::Result<()> {
    let me = std::env::current_exe()?;
    let report = match cmd {
        BenchCmd::Chat(mut opts) => {
            opts.hub_bin.get_or_insert(me);
            clawnet_bench::chat::run(opts).await?
        }
        BenchCmd::Store(mut opts) => {
            opts.hub_bin.get_or_insert(me);
            clawnet_bench::store::run(opts).await?
        }
        BenchCmd::Tasks(mut opts) => {
            opts.hub_bin.get_or_insert(me);
            clawnet_bench::tasks::run(opts).await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Serve(a) => serve::run(a).await,
        Cmd::Login(a) => cli::login(a).await,
        Cmd::Backup(a) => serve::backup(a),
        Cmd::Chat(a) => cli::chat(a).await,
        Cmd::Tail(a) => cli::tail(a).await,
        Cmd::Agents(c) => cli::agents(c).await,
        Cmd::Tasks(c) => tasks::run(c).await,
        Cmd::Queues(c) => queues::queues(c).await,
        Cmd::Schedules(c) => queues::schedules(c).await,
        Cmd::Activity(a) => queues::activity(a).await,
        Cmd::Inbox(c) => queues::inbox(c).await,
        Cmd::Worker(a) => worker::run(a).await,
        Cmd::Bench(c) => bench(c).await,
    };
    if let Err(e) = r {
        eprintln!("clawnet: {e:#}");
        std::process::exit(1);
    }
}
