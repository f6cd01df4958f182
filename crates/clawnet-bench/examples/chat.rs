//! Run the chat benchmark without the `clawnet bench` subcommand:
//! `cargo run --release -p clawnet-bench --example chat -- --hub-bin target/release/clawnet --reps 1`
//! Prints the result JSON on stdout.

use clap::Parser;
use clawnet_bench::ChatBenchOptions;

#[derive(Debug, Parser)]
#[command(name = "chat", about = "clawnet chat benchmark")]
struct Cli {
    #[command(flatten)]
    opts: ChatBenchOptions,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    clawnet_bench::harness::print_or_exit("chat", clawnet_bench::chat::run(cli.opts).await);
}
