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
    match clawnet_bench::chat::run(cli.opts).await {
        Ok(v) => match serde_json::to_string_pretty(&v) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("chat: {e}");
                std::process::exit(1);
            }
        },
        Err(e) => {
            eprintln!("chat: {e:#}");
            std::process::exit(1);
        }
    }
}
