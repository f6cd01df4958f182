//! Benchmarks of the clawnet hub, run by `clawnet bench …`.
//!
//! [`chat::run`] starts a fresh `clawnet serve` child process per scenario,
//! drives it over loopback WebSockets from this process and returns one JSON
//! document; `bench/compare.sh` at the repository root puts it next to the
//! Socket.IO peer benchmark.

pub mod chat;
pub mod client;
pub mod hub;
pub mod interrupt;
pub mod procfs;
pub mod stall;
pub mod stats;
pub mod store;

pub use chat::{ChatBenchOptions, Scenario};
pub use store::StoreBenchOptions;
