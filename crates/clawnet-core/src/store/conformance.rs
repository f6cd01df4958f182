//! The conformance suite every [`Store`] must pass.
//!
//! A backend is done when `run_all` passes against it, not when it compiles.
//! Each check gets a fresh, empty store from the factory. Checks panic with a
//! message naming the rule that broke.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use clawnet_proto::tasks::TaskOrigin;
use clawnet_proto::{Role, RoomKind, Task, TaskState, ToType};
use serde_json::{json, Map, Value};

use super::{
    AgentRecord, AppendLimits, Appended, AuditEntry, AuditFilter, MessageDraft, RoomRecord, Store,
    TaskFilter, TaskInsert, TaskRecord, TokenRecord,
};

const LIMITS: AppendLimits = AppendLimits {
    dedupe_window_ms: 600_000,
    dedupe_max_entries: 100_000,
    retention: 1_000_000,
};

fn agent(id: &str, handle: &str) -> AgentRecord {
    AgentRecord {
        agent_id: id.into(),
        handle: handle.into(),
        role: Role::Worker,
        created_at: 1,
        created_by: Some("master".into()),
    }
}

fn room(name: &str, private: bool) -> RoomRecord {
    RoomRecord {
        name: name.into(),
        kind: RoomKind::Room,
        private,
        created_by: Some("a".into()),
        created_at: 5,
        retention: None,
    }
}

/// A draft in `room` from `from` at `ts`, with an optional dedupe key.
pub fn draft(room: &str, from: &str, ts: u64, key: Option<&str>) -> MessageDraft {
    let mut payload = Map::new();
    payload.insert("text".into(), Value::String(format!("{from}@{ts}")));
    MessageDraft {
        id: format!("id-{room}-{from}-{ts}-{}", key.unwrap_or("")),
        ts,
        from_id: from.into(),
        from_handle: from.into(),
        to_type: if room == "global" {
            ToType::Global
        } else {
            ToType::Room
        },
        room: room.into(),
        payload,
        dedupe_key: key.map(str::to_owned),
        thread_id: None,
        reply_to: Some("earlier".into()),
        mentions: vec!["b".into()],
    }
}

fn new(a: Appended) -> Arc<clawnet_proto::Envelope> {
    match a {
        Appended::New(e) => e,
        Appended::Duplicate(e) => {
            panic!("expected a new message, got a duplicate of seq {}", e.seq)
        }
    }
}

/// Run every check, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    agents_and_handles(make().await).await;
    tokens(make().await).await;
    rooms_and_members(make().await).await;
    append_and_history(make().await).await;
    dedupe(make().await).await;
    concurrent_appends_are_gap_free(make().await).await;
    cursors(make().await).await;
    audit(make().await).await;
    trim(make().await).await;
    settings(make().await).await;
    roles_and_agent_removal(make().await).await;
    room_deletion(make().await).await;
    tasks_insert_and_dedupe(make().await).await;
    tasks_compare_and_set(make().await).await;
    tasks_due_leases_and_counts(make().await).await;
    concurrent_task_dedupe_stores_one(make().await).await;
}

/// A task record in `state` for `target`, created at `ts`.
pub fn task(id: &str, target: &str, state: TaskState, ts: u64, key: Option<&str>) -> TaskRecord {
    let mut payload = Map::new();
    payload.insert("text".into(), Value::String(format!("do {id}")));
    TaskRecord {
        task: Task {
            task_id: id.into(),
            target: target.into(),
            dispatched_by: "boss".into(),
            kind: "prompt".into(),
            payload,
            dedupe_key: key.map(str::to_owned),
            state,
            attempts: 0,
            max_attempts: 5,
            run_at: ts,
            priority: 0,
            result: None,
            error: None,
            created_at: ts,
            updated_at: ts,
            started_at: None,
            finished_at: None,
            origin: Some(TaskOrigin {
                room: "ops".into(),
                message_id: Some("m1".into()),
                account: Some("acct-7".into()),
                session: None,
                notes: false,
            }),
            backoff_base_ms: 5000,
            backoff_cap_ms: 60000,
        },
        lease_id: None,
        lease_until: None,
        version: 0,
    }
}

fn stored(i: TaskInsert) -> TaskRecord {
    match i {
        TaskInsert::New(t) => t,
        TaskInsert::Existing(t) => panic!("expected a new task, got existing {}", t.task.task_id),
    }
}

/// Tasks: insert, read back every field, dedupe only while active and per target.
pub async fn tasks_insert_and_dedupe(s: Arc<dyn Store>) {
    let t1 = task("t1", "w1", TaskState::Queued, 1000, Some("k"));
    stored(s.insert_task(t1.clone()).await.expect("insert"));
    assert_eq!(
        s.get_task("t1").await.expect("get"),
        Some(t1.clone()),
        "round trip"
    );
    assert_eq!(s.get_task("nope").await.expect("get"), None);
    // Same key, same target, t1 active: t1 comes back, nothing stored.
    match s
        .insert_task(task("t2", "w1", TaskState::Queued, 1001, Some("k")))
        .await
        .expect("insert dup")
    {
        TaskInsert::Existing(t) => assert_eq!(t.task.task_id, "t1"),
        TaskInsert::New(_) => panic!("an active task's dedupe key must dedupe"),
    }
    assert_eq!(s.get_task("t2").await.expect("get"), None);
    // Same key for another target is another task.
    stored(
        s.insert_task(task("t3", "w2", TaskState::Queued, 1002, Some("k")))
            .await
            .expect("other target"),
    );
    // Once t1 is terminal, the key is free again.
    let mut done = t1.clone();
    done.task.state = TaskState::Succeeded;
    s.update_task(done).await.expect("update").expect("applied");
    stored(
        s.insert_task(task("t4", "w1", TaskState::Queued, 1003, Some("k")))
            .await
            .expect("after terminal"),
    );
    let dup_id = s
        .insert_task(task("t4", "w1", TaskState::Queued, 1004, None))
        .await
        .expect_err("same id");
    assert_eq!(dup_id.code.as_str(), "conflict");
    let all = s
        .list_tasks(TaskFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    let ids: Vec<_> = all.iter().map(|t| t.task.task_id.as_str()).collect();
    assert_eq!(ids, ["t1", "t3", "t4"], "by id, oldest first");
    let page = s
        .list_tasks(TaskFilter {
            after: Some("t1".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("page");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].task.task_id, "t3");
    let w1_queued = s
        .list_tasks(TaskFilter {
            state: Some(TaskState::Queued),
            target: Some("w1".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("filter");
    assert_eq!(w1_queued.len(), 1);
    assert_eq!(w1_queued[0].task.task_id, "t4");
    let involving = s
        .list_tasks(TaskFilter {
            involving: Some("w2".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("involving");
    assert_eq!(involving.len(), 1, "w2 runs only t3");
    let by_boss = s
        .list_tasks(TaskFilter {
            involving: Some("boss".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("involving dispatcher");
    assert_eq!(by_boss.len(), 3, "boss dispatched all three");
}

/// Tasks: an update applies only from the stored version, and bumps it.
pub async fn tasks_compare_and_set(s: Arc<dyn Store>) {
    let t = stored(
        s.insert_task(task("c1", "w", TaskState::Queued, 1000, None))
            .await
            .expect("insert"),
    );
    let mut running = t.clone();
    running.task.state = TaskState::Running;
    running.task.attempts = 1;
    running.lease_id = Some("L1".into());
    running.lease_until = Some(2000);
    let after = s
        .update_task(running.clone())
        .await
        .expect("update")
        .expect("applied from version 0");
    assert_eq!(after.version, 1);
    // A second claim made from the same old version loses.
    let mut other = t.clone();
    other.task.state = TaskState::Running;
    other.lease_id = Some("L2".into());
    assert_eq!(
        s.update_task(other).await.expect("update"),
        None,
        "stale version"
    );
    let now = s.get_task("c1").await.expect("get").expect("there");
    assert_eq!(now.lease_id.as_deref(), Some("L1"));
    assert_eq!(now.lease_until, Some(2000));
    assert_eq!(now.version, 1);
    let mut done = now.clone();
    done.task.state = TaskState::Succeeded;
    done.task.result = Some(serde_json::json!({"answer": 42}));
    done.lease_id = None;
    done.lease_until = None;
    let done = s.update_task(done).await.expect("update").expect("applied");
    assert_eq!(done.version, 2);
    let read = s.get_task("c1").await.expect("get").expect("there");
    assert_eq!(read, done, "the stored copy is what update returned");
    let mut unknown = task("zz", "w", TaskState::Queued, 1, None);
    unknown.version = 0;
    assert_eq!(s.update_task(unknown).await.expect("update"), None);
}

/// Tasks: due order (priority, run_at, id), delayed only once due, expired
/// leases, counts per target and state.
pub async fn tasks_due_leases_and_counts(s: Arc<dyn Store>) {
    let mut low = task("d1", "w", TaskState::Queued, 1000, None);
    low.task.priority = 0;
    let mut high = task("d2", "w", TaskState::Queued, 1001, None);
    high.task.priority = 5;
    let early = task("d3", "w", TaskState::Delayed, 500, None);
    let later = task("d4", "w", TaskState::Delayed, 5000, None);
    let other = task("d5", "x", TaskState::Queued, 900, None);
    let mut run = task("d6", "w", TaskState::Running, 100, None);
    run.lease_id = Some("L".into());
    run.lease_until = Some(1500);
    let mut run2 = task("d7", "x", TaskState::Running, 100, None);
    run2.lease_until = Some(9000);
    for t in [&low, &high, &early, &later, &other, &run, &run2] {
        stored(s.insert_task(t.clone()).await.expect("insert"));
    }
    let due = s.due_tasks(Some("w"), 2000, 10).await.expect("due");
    let ids: Vec<_> = due.iter().map(|t| t.task.task_id.as_str()).collect();
    assert_eq!(ids, ["d2", "d3", "d1"], "priority, then run_at; d4 not yet");
    let all = s.due_tasks(None, 6000, 10).await.expect("due all");
    let ids: Vec<_> = all.iter().map(|t| t.task.task_id.as_str()).collect();
    assert_eq!(ids, ["d2", "d3", "d5", "d1", "d4"]);
    assert_eq!(s.due_tasks(None, 6000, 2).await.expect("limit").len(), 2);
    let expired = s.expired_leases(2000, 10).await.expect("expired");
    let ids: Vec<_> = expired.iter().map(|t| t.task.task_id.as_str()).collect();
    assert_eq!(ids, ["d6"], "d7's lease runs until 9000");
    let mut counts = s.task_counts().await.expect("counts");
    counts.sort_by(|a, b| (&a.target, a.state.as_str()).cmp(&(&b.target, b.state.as_str())));
    let flat: Vec<_> = counts
        .iter()
        .map(|c| (c.target.as_str(), c.state.as_str(), c.count))
        .collect();
    assert_eq!(
        s.count_tasks("w", &[TaskState::Queued, TaskState::Delayed])
            .await
            .expect("count"),
        4
    );
    assert_eq!(
        s.count_tasks("x", &[TaskState::Running])
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        s.count_tasks("nobody", &TaskState::ALL)
            .await
            .expect("count"),
        0
    );
    assert_eq!(
        flat,
        [
            ("w", "delayed", 2),
            ("w", "queued", 2),
            ("w", "running", 1),
            ("x", "queued", 1),
            ("x", "running", 1),
        ]
    );
}

/// Tasks: concurrent dispatches with one key store exactly one task.
pub async fn concurrent_task_dedupe_stores_one(s: Arc<dyn Store>) {
    let mut joins = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        joins.push(tokio::spawn(async move {
            s.insert_task(task(
                &format!("k{i:02}"),
                "w",
                TaskState::Queued,
                1000 + i,
                Some("same"),
            ))
            .await
            .expect("insert")
        }));
    }
    let mut new = 0;
    let mut winners = std::collections::HashSet::new();
    for j in joins {
        match j.await.expect("join") {
            TaskInsert::New(t) => {
                new += 1;
                winners.insert(t.task.task_id);
            }
            TaskInsert::Existing(t) => {
                winners.insert(t.task.task_id);
            }
        }
    }
    assert_eq!(new, 1, "exactly one stored");
    assert_eq!(winners.len(), 1, "everyone got the same task back");
}

/// Agents: insert, lookups, case-insensitive handle uniqueness, renames.
pub async fn agents_and_handles(s: Arc<dyn Store>) {
    s.insert_agent(agent("a", "alpha")).await.expect("insert a");
    s.insert_agent(agent("b", "bravo")).await.expect("insert b");
    let dup_id = s
        .insert_agent(agent("a", "other"))
        .await
        .expect_err("duplicate id");
    assert_eq!(
        dup_id.code.as_str(),
        "conflict",
        "a taken agent id is a conflict"
    );
    let dup_handle = s
        .insert_agent(agent("c", "ALPHA"))
        .await
        .expect_err("duplicate handle");
    assert_eq!(
        dup_handle.code.as_str(),
        "conflict",
        "handles are unique case-insensitively"
    );
    assert_eq!(
        s.get_agent("a")
            .await
            .expect("get")
            .expect("a exists")
            .handle,
        "alpha"
    );
    assert!(s.get_agent("zz").await.expect("get").is_none());
    assert_eq!(
        s.find_agent_by_handle("Bravo")
            .await
            .expect("find")
            .expect("by handle")
            .agent_id,
        "b",
        "handle lookup ignores case"
    );
    let ids: Vec<_> = s
        .list_agents()
        .await
        .expect("list")
        .into_iter()
        .map(|a| a.agent_id)
        .collect();
    assert_eq!(ids, vec!["a", "b"], "agents listed sorted by id");

    assert_eq!(
        s.set_handle("a", "apex").await.expect("rename"),
        "alpha",
        "returns the old handle"
    );
    assert!(
        s.find_agent_by_handle("alpha")
            .await
            .expect("find")
            .is_none(),
        "old handle freed"
    );
    s.insert_agent(agent("c", "alpha"))
        .await
        .expect("freed handle reusable");
    let taken = s.set_handle("a", "BRAVO").await.expect_err("taken");
    assert_eq!(taken.code.as_str(), "conflict");
    s.set_handle("a", "apex")
        .await
        .expect("renaming to its own handle is fine");
    let missing = s.set_handle("nobody", "x1").await.expect_err("missing");
    assert_eq!(missing.code.as_str(), "not_found");
}

/// Tokens: stored by hash, listed per agent, revoked one or all.
pub async fn tokens(s: Arc<dyn Store>) {
    s.insert_agent(agent("a", "alpha")).await.expect("agent");
    for (i, h) in ["h1", "h2", "h3"].iter().enumerate() {
        s.insert_token(TokenRecord {
            token_id: format!("t{i}"),
            agent_id: "a".into(),
            hash: (*h).into(),
            created_at: i as u64,
        })
        .await
        .expect("token");
    }
    assert_eq!(
        s.find_token("h2")
            .await
            .expect("find")
            .expect("found")
            .token_id,
        "t1"
    );
    assert!(s.find_token("nope").await.expect("find").is_none());
    assert_eq!(s.list_tokens("a").await.expect("list").len(), 3);
    assert_eq!(
        s.revoke_tokens("a", Some("t0")).await.expect("revoke"),
        vec!["t0".to_owned()]
    );
    assert!(
        s.find_token("h1").await.expect("find").is_none(),
        "revoked token no longer found"
    );
    assert!(s
        .revoke_tokens("a", Some("t0"))
        .await
        .expect("again")
        .is_empty());
    let mut all = s.revoke_tokens("a", None).await.expect("revoke all");
    all.sort();
    assert_eq!(all, vec!["t1".to_owned(), "t2".to_owned()]);
    assert!(s.list_tokens("a").await.expect("list").is_empty());
}

/// Rooms and memberships.
pub async fn rooms_and_members(s: Arc<dyn Store>) {
    s.create_room(room("dev", false)).await.expect("create");
    s.create_room(room("ops", true)).await.expect("create");
    let dup = s
        .create_room(room("dev", true))
        .await
        .expect_err("duplicate");
    assert_eq!(dup.code.as_str(), "conflict");
    let got = s.get_room("ops").await.expect("get").expect("exists");
    assert!(got.private);
    assert_eq!(got.created_at, 5);
    assert!(s.get_room("nope").await.expect("get").is_none());
    let mut names: Vec<_> = s
        .list_rooms()
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.name)
        .collect();
    names.sort();
    assert_eq!(names, vec!["dev", "ops"]);

    assert!(s.add_member("dev", "b").await.expect("add"));
    assert!(s.add_member("dev", "a").await.expect("add"));
    assert!(
        !s.add_member("dev", "a").await.expect("again"),
        "adding twice reports false"
    );
    assert!(s.add_member("ops", "a").await.expect("add"));
    assert_eq!(
        s.members("dev").await.expect("members"),
        vec!["a", "b"],
        "members sorted"
    );
    assert!(s.is_member("dev", "b").await.expect("is"));
    assert!(!s.is_member("ops", "b").await.expect("is"));
    let mut of_a = s.rooms_of("a").await.expect("rooms_of");
    of_a.sort();
    assert_eq!(of_a, vec!["dev", "ops"]);
    assert!(s.remove_member("dev", "a").await.expect("remove"));
    assert!(!s.remove_member("dev", "a").await.expect("again"));
    assert_eq!(s.rooms_of("a").await.expect("rooms_of"), vec!["ops"]);
    assert!(s.members("nope").await.expect("members").is_empty());
}

/// Appends get consecutive `seq` per room; history pages are ordered and
/// complete; the envelope round-trips unchanged.
pub async fn append_and_history(s: Arc<dyn Store>) {
    let e1 = new(s
        .append_message(draft("global", "a", 10, None), LIMITS)
        .await
        .expect("append"));
    let e2 = new(s
        .append_message(draft("global", "b", 11, None), LIMITS)
        .await
        .expect("append"));
    let other = new(s
        .append_message(draft("dev", "a", 12, None), LIMITS)
        .await
        .expect("append"));
    assert_eq!(
        (e1.seq, e2.seq, other.seq),
        (1, 2, 1),
        "seq is per room, from 1"
    );
    for ts in 13..23 {
        s.append_message(draft("global", "a", ts, None), LIMITS)
            .await
            .expect("append");
    }
    assert_eq!(s.last_seq("global").await.expect("last"), 12);
    assert_eq!(s.last_seq("nowhere").await.expect("last"), 0);

    let p = s.history("global", 0, 5).await.expect("history");
    let seqs: Vec<_> = p.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert!(p.has_more);
    assert_eq!((p.first_available_seq, p.last_seq), (1, 12));
    assert_eq!(
        *p.messages[0], *e1,
        "the stored envelope comes back unchanged"
    );
    let p = s.history("global", 10, 5).await.expect("history");
    assert_eq!(
        p.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![11, 12]
    );
    assert!(!p.has_more);
    let p = s.history("global", 12, 5).await.expect("history");
    assert!(p.messages.is_empty() && !p.has_more);
    let p = s.history("empty", 0, 5).await.expect("history");
    assert!(p.messages.is_empty());
    assert_eq!((p.first_available_seq, p.last_seq), (0, 0));
}

/// The same sender and key inside the window is the original; outside the
/// window, or from another sender, it is new.
pub async fn dedupe(s: Arc<dyn Store>) {
    let first = new(s
        .append_message(draft("global", "a", 1000, Some("k")), LIMITS)
        .await
        .expect("append"));
    match s
        .append_message(draft("global", "a", 2000, Some("k")), LIMITS)
        .await
        .expect("retry")
    {
        Appended::Duplicate(e) => {
            assert_eq!(*e, *first, "a duplicate returns the original envelope")
        }
        Appended::New(e) => panic!("retry stored again as seq {}", e.seq),
    }
    let other = new(s
        .append_message(draft("global", "b", 2000, Some("k")), LIMITS)
        .await
        .expect("other"));
    assert_eq!(other.seq, 2, "another sender's key is its own");
    let later = 1000 + LIMITS.dedupe_window_ms + 1;
    let again = new(s
        .append_message(draft("global", "a", later, Some("k")), LIMITS)
        .await
        .expect("later"));
    assert_eq!(again.seq, 3, "after the window the key is free again");
    assert_eq!(
        s.history("global", 0, 10)
            .await
            .expect("history")
            .messages
            .len(),
        3
    );
    // Expired keys can be swept; a key recorded after the cut stays.
    let swept = s.expire_dedupe(later).await.expect("expire");
    assert_eq!(swept, 1, "only b's key is older than the cut");
    match s
        .append_message(draft("global", "a", later + 1, Some("k")), LIMITS)
        .await
        .expect("again")
    {
        Appended::Duplicate(e) => assert_eq!(e.seq, 3),
        Appended::New(e) => panic!("a key inside its window was swept (stored as {})", e.seq),
    }
}

/// Many tasks appending to one room, some retrying the same key: every
/// `seq` from 1 to N exactly once, one message per key.
pub async fn concurrent_appends_are_gap_free(s: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for sender in 0..10 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let from = format!("s{sender}");
            let mut stored = Vec::new();
            for i in 0..20 {
                let key = format!("k{i}");
                // Each send goes twice, as a client whose ACK was lost would.
                for _ in 0..2 {
                    let a = s
                        .append_message(draft("busy", &from, 1000 + i, Some(&key)), LIMITS)
                        .await
                        .expect("append");
                    if let Appended::New(e) = a {
                        stored.push(e.seq);
                    }
                }
            }
            stored
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=200).collect::<Vec<u64>>(),
        "each key stored once, seq without gaps"
    );
    let h = s.history("busy", 0, 1000).await.expect("history");
    assert_eq!(h.messages.len(), 200);
    let ids: HashSet<_> = h
        .messages
        .iter()
        .map(|m| (m.from_id.clone(), m.dedupe_key.clone()))
        .collect();
    assert_eq!(ids.len(), 200);
}

/// Cursors only move forward.
pub async fn cursors(s: Arc<dyn Store>) {
    assert_eq!(s.advance_cursor("a", "global", 5).await.expect("adv"), 5);
    assert_eq!(
        s.advance_cursor("a", "global", 3).await.expect("adv"),
        5,
        "never backwards"
    );
    assert_eq!(s.advance_cursor("a", "dev", 2).await.expect("adv"), 2);
    let c = s.cursors("a").await.expect("cursors");
    assert_eq!(c.get("global"), Some(&5));
    assert_eq!(c.get("dev"), Some(&2));
    assert!(s.cursors("b").await.expect("cursors").is_empty());
}

/// The ids of the audit entries `f` selects, in the order listed.
async fn audit_ids(s: &Arc<dyn Store>, f: AuditFilter) -> Vec<u64> {
    let entries = s.list_audit(f).await.expect("list");
    entries.into_iter().map(|e| e.id).collect()
}

/// The audit trail is append-only with increasing ids, filtered as asked;
/// the chain hashes come back as written.
pub async fn audit(s: Arc<dyn Store>) {
    let entry = |i: u64| AuditEntry {
        id: 0,
        ts: 100 + i,
        kind: ["identity", "chat"][(i % 2) as usize].into(),
        actor: if i < 3 { "a" } else { "b" }.into(),
        action: format!("act{i}"),
        target: "t".into(),
        reason: (i == 5).then(|| "why".to_owned()),
        meta: json!({"i": i}),
        prev_hash: format!("{:064x}", i),
        hash: format!("{:064x}", i + 1),
    };
    for i in 0..3u64 {
        let e = s.append_audit(entry(i)).await.expect("audit");
        assert_eq!(e.id, i + 1, "ids are 1, 2, 3, …");
    }
    let batch = s
        .append_audit_batch((3..6u64).map(entry).collect())
        .await
        .expect("audit batch");
    let ids: Vec<_> = batch.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![4, 5, 6], "a batch takes the next ids, in order");
    let all = s
        .list_audit(AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(all.len(), 6);
    assert_eq!(all[5].reason.as_deref(), Some("why"));
    assert_eq!(all[5].meta, json!({"i": 5}));
    for (i, e) in all.iter().enumerate() {
        let mut want = entry(i as u64);
        want.id = i as u64 + 1;
        assert_eq!(e, &want, "entry {i} (with its hashes) round-trips");
    }
    let f = AuditFilter {
        after_id: Some(2),
        limit: 3,
        ..Default::default()
    };
    let got = audit_ids(&s, f).await;
    assert_eq!(got, vec![3, 4, 5], "after_id pages forward from the oldest");
    let f = AuditFilter {
        kind: Some("identity".into()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(s.list_audit(f).await.expect("list").len(), 3);
    let f = AuditFilter {
        actor: Some("b".into()),
        since_ms: Some(104),
        limit: 100,
        ..Default::default()
    };
    let got = audit_ids(&s, f).await;
    assert_eq!(got, vec![5, 6]);
    let f = AuditFilter {
        limit: 2,
        ..Default::default()
    };
    let got = audit_ids(&s, f).await;
    assert_eq!(got, vec![5, 6], "a limit keeps the newest, oldest first");
}

/// Trimming removes old messages without reusing `seq`.
pub async fn trim(s: Arc<dyn Store>) {
    for ts in 1..=10 {
        s.append_message(draft("global", "a", ts * 100, None), LIMITS)
            .await
            .expect("append");
    }
    assert_eq!(
        s.trim_messages("global", 450, None).await.expect("trim"),
        4,
        "ts 100..400 go"
    );
    let h = s.history("global", 0, 100).await.expect("history");
    assert_eq!(h.first_available_seq, 5);
    assert_eq!(h.messages.len(), 6);
    assert_eq!(
        s.trim_messages("global", 0, Some(2)).await.expect("trim"),
        4,
        "keep the newest 2"
    );
    let h = s.history("global", 0, 100).await.expect("history");
    assert_eq!(
        h.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![9, 10]
    );
    assert_eq!(h.last_seq, 10);
    let e = new(s
        .append_message(draft("global", "a", 2000, None), LIMITS)
        .await
        .expect("append"));
    assert_eq!(e.seq, 11, "seq continues after a trim");
    assert_eq!(
        s.trim_messages("nowhere", 10, Some(1)).await.expect("trim"),
        0
    );
}

/// Settings round-trip.
pub async fn settings(s: Arc<dyn Store>) {
    assert!(s.get_setting("chat.x").await.expect("get").is_none());
    s.set_setting("chat.x", json!({"a": [1, 2]}))
        .await
        .expect("set");
    s.set_setting("chat.x", json!(7)).await.expect("replace");
    assert_eq!(s.get_setting("chat.x").await.expect("get"), Some(json!(7)));
    s.ping().await.expect("ping");
}

/// Role changes; removing an agent takes its tokens, memberships and
/// cursors but leaves its messages.
pub async fn roles_and_agent_removal(s: Arc<dyn Store>) {
    s.insert_agent(agent("a", "alpha")).await.expect("insert a");
    s.insert_agent(agent("b", "bravo")).await.expect("insert b");
    assert_eq!(
        s.set_role("a", Role::Warden).await.expect("set role"),
        Some(Role::Worker),
        "set_role returns the previous role"
    );
    assert_eq!(
        s.get_agent("a").await.expect("get").expect("a").role,
        Role::Warden
    );
    assert_eq!(
        s.set_role("nobody", Role::Master).await.expect("set role"),
        None,
        "no such agent: None"
    );
    s.insert_token(TokenRecord {
        token_id: "t1".into(),
        agent_id: "a".into(),
        hash: "ha".into(),
        created_at: 1,
    })
    .await
    .expect("token a");
    s.insert_token(TokenRecord {
        token_id: "t2".into(),
        agent_id: "b".into(),
        hash: "hb".into(),
        created_at: 1,
    })
    .await
    .expect("token b");
    s.create_room(room("dev", false)).await.expect("room");
    s.add_member("dev", "a").await.expect("member a");
    s.add_member("dev", "b").await.expect("member b");
    s.advance_cursor("a", "dev", 1).await.expect("cursor");
    let m = new(s
        .append_message(draft("dev", "a", 10, None), LIMITS)
        .await
        .expect("append"));

    assert!(s.remove_agent("a").await.expect("remove"), "removed");
    assert!(
        !s.remove_agent("a").await.expect("again"),
        "removing twice reports false"
    );
    assert!(
        s.get_agent("a").await.expect("get").is_none(),
        "record gone"
    );
    assert!(
        s.find_agent_by_handle("alpha")
            .await
            .expect("find")
            .is_none(),
        "handle freed"
    );
    assert!(
        s.find_token("ha").await.expect("find").is_none(),
        "tokens gone"
    );
    assert!(s.list_tokens("a").await.expect("list").is_empty());
    assert!(
        s.find_token("hb").await.expect("find").is_some(),
        "other agents' tokens stay"
    );
    assert_eq!(s.members("dev").await.expect("members"), vec!["b"]);
    assert!(s.rooms_of("a").await.expect("rooms_of").is_empty());
    assert!(s.cursors("a").await.expect("cursors").is_empty());
    let h = s.history("dev", 0, 10).await.expect("history");
    assert_eq!(h.messages.len(), 1, "its messages stay");
    assert_eq!(h.messages[0].id, m.id);
    let ids: Vec<_> = s
        .list_agents()
        .await
        .expect("list")
        .into_iter()
        .map(|a| a.agent_id)
        .collect();
    assert_eq!(ids, vec!["b"]);
}

/// Deleting a room takes its record, members, messages, `seq` and cursors,
/// and nothing of other rooms.
pub async fn room_deletion(s: Arc<dyn Store>) {
    s.create_room(room("dev", false)).await.expect("dev");
    s.create_room(room("ops", false)).await.expect("ops");
    for r in ["dev", "ops"] {
        s.add_member(r, "a").await.expect("member");
        for ts in 0..3 {
            s.append_message(draft(r, "a", 10 + ts, Some(&format!("k{r}{ts}"))), LIMITS)
                .await
                .expect("append");
        }
        s.advance_cursor("a", r, 2).await.expect("cursor");
    }
    assert!(s.delete_room("dev").await.expect("delete"), "deleted");
    assert!(
        !s.delete_room("dev").await.expect("again"),
        "deleting twice reports false"
    );
    assert!(
        s.get_room("dev").await.expect("get").is_none(),
        "record gone"
    );
    assert!(s.members("dev").await.expect("members").is_empty());
    assert_eq!(s.rooms_of("a").await.expect("rooms_of"), vec!["ops"]);
    let h = s.history("dev", 0, 10).await.expect("history");
    assert!(h.messages.is_empty(), "messages gone");
    assert_eq!(s.last_seq("dev").await.expect("last"), 0, "seq reset");
    let c = s.cursors("a").await.expect("cursors");
    assert!(!c.contains_key("dev"), "cursors in it gone");
    assert_eq!(c.get("ops"), Some(&2));
    assert_eq!(
        s.history("ops", 0, 10).await.expect("ops").messages.len(),
        3
    );
    assert_eq!(s.last_seq("ops").await.expect("last"), 3);
    // The name can be used again, from seq 1.
    s.create_room(room("dev", true)).await.expect("again");
    let e = new(s
        .append_message(draft("dev", "b", 20, None), LIMITS)
        .await
        .expect("append"));
    assert_eq!(e.seq, 1, "a room created again starts at seq 1");
}
