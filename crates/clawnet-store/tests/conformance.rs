//! The shared conformance suite against each durable backend.

use std::sync::Arc;

use clawnet_core::store::{conformance, Store};
use clawnet_store::sqlite::{SqliteStore, Sync};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().expect("tmp");
    let n = std::sync::atomic::AtomicUsize::new(0);
    conformance::run_all(|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = dir.path().join(format!("c{i}.db"));
        async move { Arc::new(SqliteStore::open(path, Sync::Normal).expect("open")) as Arc<dyn Store> }
    })
    .await;
}
