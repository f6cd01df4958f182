//! The PostgreSQL store against a real server: the conformance suite, and
//! two stores ("hub nodes") writing one room at once.
//!
//! Set `CLAWNET_TEST_POSTGRES_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`); the role needs to create
//! schemas. Without it the tests are skipped, except under `CI=true`, where
//! they fail. Each check runs in a fresh schema, dropped afterwards.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clawnet_core::store::conformance::{self, draft};
use clawnet_core::store::{AppendLimits, Appended, Store};
use clawnet_store::postgres::PostgresStore;
use clawnet_store::testing::{server_url, Schema};
use clawnet_store::StoreUrl;
use parking_lot::Mutex;

const LIMITS: AppendLimits = AppendLimits {
    dedupe_window_ms: 600_000,
    dedupe_max_entries: 100_000,
    retention: 1_000_000,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_conformance_suite() {
    let Some(server) = server_url() else { return };
    let schemas = Arc::new(Mutex::new(Vec::new()));
    conformance::run_all(|| {
        let (server, schemas) = (server.clone(), schemas.clone());
        async move {
            let schema = Schema::create(&server).await;
            let store = PostgresStore::connect(&schema.url())
                .await
                .expect("connect");
            schemas.lock().push(schema);
            Arc::new(store) as Arc<dyn Store>
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_url_opens_a_postgres_store() {
    let Some(server) = server_url() else { return };
    let schema = Schema::create(&server).await;
    let url = StoreUrl::parse(&schema.url()).expect("a postgres URL");
    assert!(matches!(url, StoreUrl::Postgres { .. }));
    let store = clawnet_store::open(&url).await.expect("open");
    store.ping().await.expect("ping");
    // A second node on the same database finds the schema migrated.
    let again = clawnet_store::open(&url).await.expect("open again");
    again.ping().await.expect("ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_server_is_unavailable_not_a_hang() {
    if server_url().is_none() {
        return;
    }
    let err = PostgresStore::connect("postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(err.code.as_str(), "unavailable");
}

/// Two nodes, 10 tasks each appending 50 messages to one room, some sent
/// again with the same key on the other node (at the same time, or after
/// the first was acknowledged), while a reader tails the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_append_to_one_room_gap_free_and_once_per_key() {
    const ROOM: &str = "busy";
    const TASKS: usize = 10;
    const PER_TASK: u64 = 50;
    const TOTAL: u64 = TASKS as u64 * PER_TASK;
    let Some(server) = server_url() else { return };
    let schema = Schema::create(&server).await;
    let mut nodes: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..2 {
        nodes.push(Arc::new(
            PostgresStore::connect(&schema.url())
                .await
                .expect("connect a node"),
        ));
    }

    let writing = Arc::new(AtomicBool::new(true));
    let reader = {
        let (node, writing) = (nodes[1].clone(), writing.clone());
        tokio::spawn(async move {
            let (mut seen, mut polls) = (0u64, 0u32);
            loop {
                let last_round = !writing.load(Ordering::SeqCst);
                let page = node.history(ROOM, seen, 64).await.expect("history");
                for m in &page.messages {
                    assert_eq!(
                        m.seq,
                        seen + 1,
                        "the reader saw seq {} while {} was not visible",
                        m.seq,
                        seen + 1
                    );
                    seen = m.seq;
                }
                assert!(
                    page.has_more || page.last_seq == seen,
                    "last_seq {} is assigned but the page ended at {seen}",
                    page.last_seq
                );
                polls += 1;
                if last_round && !page.has_more {
                    return (seen, polls);
                }
                if !page.has_more {
                    tokio::task::yield_now().await;
                }
            }
        })
    };

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let mine = nodes[t % 2].clone();
        let other = nodes[(t + 1) % 2].clone();
        tasks.push(tokio::spawn(async move {
            let from = format!("s{t}");
            let mut stored = Vec::new();
            for i in 0..PER_TASK {
                let key = format!("k{i}");
                let send = |node: &Arc<dyn Store>, ts: u64| {
                    let node = node.clone();
                    let d = draft(ROOM, &from, ts, Some(&key));
                    async move { node.append_message(d, LIMITS).await.expect("append") }
                };
                let outcomes = match i % 5 {
                    // The same send on both nodes at once.
                    0 => {
                        let (a, b) = tokio::join!(send(&mine, 1000 + i), send(&other, 1001 + i));
                        vec![a, b]
                    }
                    // A retry on the other node after the first was acknowledged.
                    1 => {
                        let a = send(&mine, 1000 + i).await;
                        let b = send(&other, 1001 + i).await;
                        match (&a, &b) {
                            (Appended::New(x), Appended::Duplicate(y)) => {
                                assert_eq!(x, y, "the retry returns the original")
                            }
                            _ => panic!("a retry after the ACK must be a duplicate"),
                        }
                        vec![a, b]
                    }
                    _ => vec![send(&mine, 1000 + i).await],
                };
                let new: Vec<_> = outcomes
                    .into_iter()
                    .filter_map(|o| match o {
                        Appended::New(e) => Some(e.seq),
                        Appended::Duplicate(_) => None,
                    })
                    .collect();
                assert_eq!(new.len(), 1, "{from}/{key} stored {} times", new.len());
                stored.extend(new);
            }
            stored
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("writer task"));
    }
    writing.store(false, Ordering::SeqCst);
    let (seen, polls) = reader.await.expect("reader task");

    all.sort_unstable();
    assert_eq!(
        all,
        (1..=TOTAL).collect::<Vec<_>>(),
        "every seq from 1 to {TOTAL} exactly once"
    );
    assert_eq!(seen, TOTAL, "the reader caught up");
    assert!(polls > 1, "the reader polled during the run");
    for node in &nodes {
        assert_eq!(node.last_seq(ROOM).await.expect("last_seq"), TOTAL);
    }
    let h = nodes[0].history(ROOM, 0, 10_000).await.expect("history");
    assert_eq!(h.messages.len() as u64, TOTAL);
    let keys: HashSet<_> = h
        .messages
        .iter()
        .map(|m| (m.from_id.clone(), m.dedupe_key.clone()))
        .collect();
    assert_eq!(keys.len() as u64, TOTAL, "one message per (sender, key)");
}

/// Two nodes, each task writing three rooms in its own order: every room
/// stays gap-free (the writer orders room locks, so batches of the two nodes
/// do not deadlock; if they did, the aborted jobs would be run again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_interleaving_rooms_keep_each_room_gap_free() {
    const ROOMS: [&str; 3] = ["r0", "r1", "r2"];
    const TASKS: usize = 6;
    const ROUNDS: u64 = 20;
    let Some(server) = server_url() else { return };
    let schema = Schema::create(&server).await;
    let mut nodes: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..2 {
        nodes.push(Arc::new(
            PostgresStore::connect(&schema.url())
                .await
                .expect("connect a node"),
        ));
    }
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let node = nodes[t % 2].clone();
        tasks.push(tokio::spawn(async move {
            let from = format!("s{t}");
            let mut stored = Vec::new();
            for i in 0..ROUNDS {
                for r in 0..ROOMS.len() {
                    let room = ROOMS[(r + t) % ROOMS.len()];
                    let key = format!("{room}-{i}");
                    let d = draft(room, &from, 1000 + i, Some(&key));
                    match node.append_message(d, LIMITS).await.expect("append") {
                        Appended::New(e) => stored.push((room, e.seq)),
                        Appended::Duplicate(e) => panic!("{key} was new, got seq {}", e.seq),
                    }
                }
            }
            stored
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("writer task"));
    }
    let per_room = TASKS as u64 * ROUNDS;
    for room in ROOMS {
        let mut seqs: Vec<u64> = all
            .iter()
            .filter(|(r, _)| *r == room)
            .map(|(_, s)| *s)
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=per_room).collect::<Vec<_>>(), "room {room}");
        let h = nodes[1].history(room, 0, 1000).await.expect("history");
        assert_eq!(h.messages.len() as u64, per_room);
    }
}
