//! Running a benchmark until it ends or the user stops it, shared by every
//! scenario family.

use std::future::Future;

use anyhow::bail;
use serde_json::Value;

/// Run `bench` to its end, or stop it on SIGINT/SIGTERM (dropping it stops
/// the hub it started) with an error naming the signal.
pub async fn until_interrupted(
    bench: impl Future<Output = anyhow::Result<Value>>,
) -> anyhow::Result<Value> {
    tokio::select! {
        r = bench => r,
        sig = interrupted() => bail!("interrupted by {sig}; hub stopped"),
    }
}

/// Run `bench` on a runtime of its own, for callers that are not async.
pub fn block_on(bench: impl Future<Output = anyhow::Result<Value>>) -> anyhow::Result<Value> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench)
}

async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut i), Ok(mut t)) => tokio::select! {
                _ = i.recv() => "SIGINT",
                _ = t.recv() => "SIGTERM",
            },
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
