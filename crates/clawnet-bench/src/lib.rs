//! Benchmarks of the clawnet hub, run by `clawnet bench …`.
//!
//! [`chat::run`] starts a fresh `clawnet serve` child process per scenario,
//! drives it over loopback WebSockets from this process and returns one JSON
//! document; `bench/compare.sh` at the repository root puts it next to the
//! Socket.IO peer benchmark. [`store::run`] and [`tasks::run`] do the same
//! for durable sends (beside NATS JetStream, `bench/store-compare.sh`) and
//! for tasks (beside BullMQ, `bench/tasks-compare.sh`).

pub mod chat;
pub mod client;
pub mod harness;
pub mod hub;
pub mod interrupt;
pub mod procfs;
pub mod stall;
pub mod stats;
pub mod store;
pub mod tasks;
pub mod wswrite;

pub use chat::{ChatBenchOptions, Scenario};
pub use store::StoreBenchOptions;
pub use tasks::TasksBenchOptions;
