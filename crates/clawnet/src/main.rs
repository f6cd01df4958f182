//! `clawnet`: the hub and its command-line tools in one binary.

mod audit;
mod cli;
mod config;
mod directory;
mod guard;
mod queues;
mod serve;
mod table;
mod tasks;
mod tui;
mod worker;

use clap::{Parser, Subcommand};

// glibc's allocator spent ~15% of the hub's CPU in malloc/free/consolidate under
// task load (perf, `clawnet bench tasks --scenarios drain`); see decision 0015.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Review what the defender holds: list, approve, reject.
    #[command(subcommand)]
    Quarantine(guard::QuarantineCmd),
    /// Take a message back: `clawnet messages delete --room global --seq 7`.
    #[command(subcommand)]
    Messages(guard::MessagesCmd),
    /// Rooms: list, create, show, members, join, leave, invite, history, delete.
    #[command(subcommand)]
    Rooms(directory::RoomsCmd),
    /// Who is online, idle or offline, and what they are doing.
    Presence(directory::PresenceArgs),
    /// Change a handle: `clawnet handles set w1 builder`.
    #[command(subcommand)]
    Handles(directory::HandlesCmd),
    /// A direct message (`clawnet dm @bob --msg hello`), or your DMs (`clawnet dm`).
    Dm(directory::DmArgs),
    /// Settings that can change while the hub runs: get, set.
    #[command(subcommand)]
    Settings(directory::SettingsCmd),
    /// Print a shell completion script: `clawnet completions bash > /etc/bash_completion.d/clawnet`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Check the audit file's hash chain: `clawnet audit verify [FILE]`.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Read the audit trail (master, warden): `clawnet logs --type identity --follow`.
    Logs(audit::LogsArgs),
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
        Cmd::Quarantine(c) => guard::quarantine(c).await,
        Cmd::Messages(c) => guard::messages(c).await,
        Cmd::Rooms(c) => directory::rooms(c).await,
        Cmd::Presence(a) => directory::presence(a).await,
        Cmd::Handles(c) => directory::handles(c).await,
        Cmd::Dm(a) => directory::dm(a).await,
        Cmd::Settings(c) => directory::settings(c).await,
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "clawnet",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Cmd::Audit(c) => audit::audit(c).await,
        Cmd::Logs(a) => audit::logs(a).await,
        Cmd::Bench(c) => bench(c).await,
    };
    if let Err(e) = r {
        eprintln!("clawnet: {e:#}");
        std::process::exit(exit_code(&e));
    }
}

/// Exit statuses scripts can branch on: 1 the hub refused (forbidden,
/// invalid, conflict, rate_limited, blocked, held, …), 2 a usage error
/// (clap's), 3 no or a bad credential, 4 not found, 5 the hub unreachable or
/// failing (`unavailable`, `internal`, a transport error, a timeout).
fn exit_code(e: &anyhow::Error) -> i32 {
    use clawnet_client::ClientError;
    use clawnet_proto::ErrorCode;
    for cause in e.chain() {
        if let Some(ce) = cause.downcast_ref::<ClientError>() {
            return match ce {
                ClientError::Transport(_) | ClientError::Timeout | ClientError::Closed => 5,
                ClientError::Protocol(_) => 1,
                ClientError::Server(b) | ClientError::Http(_, b) => match b.code {
                    ErrorCode::Unauthorized => 3,
                    ErrorCode::NotFound | ErrorCode::UnknownMethod => 4,
                    ErrorCode::Unavailable | ErrorCode::Internal | ErrorCode::SlowConsumer => 5,
                    _ => 1,
                },
            };
        }
        if cause.downcast_ref::<cli::NoCredential>().is_some() {
            return 3;
        }
    }
    1
}
