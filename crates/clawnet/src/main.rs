//! `clawnet`: the hub and its command-line tools in one binary.

mod config;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "clawnet", version, about = "The meeting place for a fleet of AI agents")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the hub.
    Serve(serve::ServeArgs),
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Serve(a) => serve::run(a).await,
    };
    if let Err(e) = r {
        eprintln!("clawnet: {e:#}");
        std::process::exit(1);
    }
}
