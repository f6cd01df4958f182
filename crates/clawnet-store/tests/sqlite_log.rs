//! The SQLite message log: rows land in insertion order and their per-room
//! index is written in chunks, so reads must see indexed and unindexed rows as
//! one history; and the WAL must stay bounded under sustained writes.

use std::sync::Arc;

use clawnet_core::store::conformance::draft;
use clawnet_core::store::{AppendLimits, Appended, Store};
use clawnet_store::sqlite::{SqliteStore, Sync};

const LIMITS: AppendLimits = AppendLimits {
    dedupe_window_ms: 600_000,
    dedupe_max_entries: 100_000,
    retention: 1000,
};

/// Every seq of `room` from 1 to `last`, read in pages of 97.
async fn read_all(s: &SqliteStore, room: &str) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut after = 0;
    loop {
        let page = s.history(room, after, 97).await.expect("history");
        seqs.extend(page.messages.iter().map(|m| m.seq));
        match page.messages.last() {
            Some(m) if page.has_more => after = m.seq,
            _ => return seqs,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_spans_indexed_and_unindexed_messages_across_restarts() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("log.db");
    let rooms = ["r0", "r1", "r2"];
    // 2 500 messages: more than one index chunk, plus an unindexed tail.
    {
        let s = SqliteStore::open(&path, Sync::Normal).expect("open");
        for i in 0..2500u64 {
            let room = rooms[(i % 3) as usize];
            let key = format!("k{i}");
            let a = s
                .append_message(draft(room, "a", 1000 + i, Some(&key)), LIMITS)
                .await
                .expect("append");
            assert!(matches!(a, Appended::New(_)));
        }
        for room in rooms {
            let n = s.last_seq(room).await.expect("last");
            assert_eq!(
                read_all(&s, room).await,
                (1..=n).collect::<Vec<_>>(),
                "{room}"
            );
        }
    }
    let s = SqliteStore::open(&path, Sync::Normal).expect("reopen");
    for room in rooms {
        let n = s.last_seq(room).await.expect("last");
        assert!(n >= 833, "{room}: {n}");
        assert_eq!(
            read_all(&s, room).await,
            (1..=n).collect::<Vec<_>>(),
            "{room}"
        );
    }
    // A key from the first chunk (indexed long ago) still dedupes.
    let again = s
        .append_message(draft("r0", "a", 9000, Some("k0")), LIMITS)
        .await
        .expect("append");
    match again {
        Appended::Duplicate(e) => assert_eq!((e.to_id.as_str(), e.seq), ("r0", 1)),
        other => panic!("expected the original, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimming_every_message_never_reuses_a_seq_after_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("trim.db");
    {
        let s = SqliteStore::open(&path, Sync::Normal).expect("open");
        for i in 0..10u64 {
            s.append_message(draft("r", "a", 1000 + i, None), LIMITS)
                .await
                .expect("append");
        }
        // Everything is older than the cutoff.
        assert_eq!(s.trim_messages("r", 5000, None).await.expect("trim"), 10);
        let page = s.history("r", 0, 10).await.expect("history");
        assert!(page.messages.is_empty());
        assert_eq!(page.last_seq, 10);
    }
    let s = SqliteStore::open(&path, Sync::Normal).expect("reopen");
    assert_eq!(s.last_seq("r").await.expect("last"), 10);
    let a = s
        .append_message(draft("r", "a", 6000, None), LIMITS)
        .await
        .expect("append");
    match a {
        Appended::New(e) => assert_eq!(e.seq, 11),
        other => panic!("expected a new message, got {other:?}"),
    }
    let page = s.history("r", 0, 10).await.expect("history");
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [11]
    );
    assert_eq!(page.first_available_seq, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_last_trims_across_the_unindexed_tail() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = SqliteStore::open(dir.path().join("keep.db"), Sync::Normal).expect("open");
    for i in 0..50u64 {
        s.append_message(draft("r", "a", 1000 + i, None), LIMITS)
            .await
            .expect("append");
    }
    assert_eq!(s.trim_messages("r", 0, Some(5)).await.expect("trim"), 45);
    let page = s.history("r", 0, 100).await.expect("history");
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [46, 47, 48, 49, 50]
    );
    assert_eq!(page.first_available_seq, 46);
}

/// Regression: a passive checkpoint never caught up with a writer that never
/// paused, so the WAL grew without bound (3 GB in 10 s of the store benchmark).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_stays_bounded_under_sustained_writes() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("wal.db");
    let s = Arc::new(SqliteStore::open(&path, Sync::Normal).expect("open"));
    let text = "x".repeat(400);
    let mut tasks = Vec::new();
    for t in 0..20u64 {
        let (s, text) = (s.clone(), text.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..5000u64 {
                let mut d = draft(&format!("room{t}"), "a", 1000 + i, None);
                d.payload.insert("text".into(), text.clone().into());
                s.append_message(d, LIMITS).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    let wal = std::fs::metadata(dir.path().join("wal.db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    let db = std::fs::metadata(&path).expect("db").len();
    // 100 000 messages of ~600 bytes: ~60 MB of rows, and without restarts
    // about 200 MB of WAL frames. With them the WAL stays near 16 MB; the
    // bound leaves room for checkpoints slowed by a busy machine.
    assert!(db > 40 << 20, "the database holds the rows: {db}");
    assert!(wal < 80 << 20, "WAL grew to {wal} bytes");
}
