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
    match clawnet_bench::tasks::run(cli.opts).await {
        Ok(v) => match serde_json::to_string_pretty(&v) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("tasks: {e}");
                std::process::exit(1);
            }
        },
        Err(e) => {
            eprintln!("tasks: {e:#}");
            std::process::exit(1);
        }
    }
}
