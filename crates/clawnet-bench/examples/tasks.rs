//! Run the task benchmark without the `clawnet bench tasks` subcommand:
//! `cargo run --release -p clawnet-bench --example tasks -- --hub-bin target/release/clawnet --reps 1`
//! Prints the result JSON on stdout.

use clap::Parser;
use clawnet_bench::TasksBenchOptions;

#[derive(Debug, Parser)]
#[command(name = "tasks", about = "clawnet task benchmark")]
struct Cli {
    #[command(flatten)]
    opts: TasksBenchOptions,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    clawnet_bench::harness::print_or_exit("tasks", clawnet_bench::tasks::run(cli.opts).await);
}
