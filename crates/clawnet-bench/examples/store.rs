//! Run the durable-store benchmark without the `clawnet bench store` subcommand:
//! `cargo run --release -p clawnet-bench --example store -- --hub-bin target/release/clawnet --reps 1`
//! Prints the result JSON on stdout.

use clap::Parser;
use clawnet_bench::StoreBenchOptions;

#[derive(Debug, Parser)]
#[command(name = "store", about = "clawnet durable-store benchmark")]
struct Cli {
    #[command(flatten)]
    opts: StoreBenchOptions,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    clawnet_bench::harness::print_or_exit("store", clawnet_bench::store::run(cli.opts).await);
}
