//! The task half of the SQLite store: statements over the `tasks` table
//! (migration 0004), run by `sqlite.rs` on its writer or reader connections.

use clawnet_core::error::{Error, Result};
use clawnet_core::store::{TaskCount, TaskFilter, TaskInsert, TaskRecord};
use clawnet_proto::TaskState;
use rusqlite::{params, Connection, OptionalExtension, Row};

fn db<T>(r: rusqlite::Result<T>) -> Result<T> {
    r.map_err(Error::unavailable)
}

const COLUMNS: &str = "doc, version";

// The lookups the hub makes on every dispatch, claim and sweep, each served
// by one partial index of migration 0006 (the test below checks the plans).
/// The active task of a target with a dedupe key (`tasks_key`).
const ACTIVE_KEY: &str = "SELECT doc, version FROM tasks WHERE target = ?1 AND dedupe_key = ?2 \
     AND state IN ('queued', 'delayed', 'running')";
/// A target's queued tasks in claim order (`tasks_queued`).
const DUE_QUEUED: &str = "SELECT priority, run_at, task_id, doc, version FROM tasks \
     WHERE target = ?1 AND state = 'queued' \
     ORDER BY priority DESC, run_at, task_id LIMIT ?2";
/// A target's delayed tasks that came due, in claim order (`tasks_delayed`).
const DUE_DELAYED: &str = "SELECT priority, run_at, task_id, doc, version FROM tasks \
     WHERE target = ?1 AND state = 'delayed' AND run_at <= ?3 \
     ORDER BY priority DESC, run_at, task_id LIMIT ?2";
/// Running tasks whose lease ran out (`tasks_leases`).
const EXPIRED: &str =
    "SELECT doc, version FROM tasks WHERE state = 'running' AND lease_until < ?1 \
     ORDER BY lease_until LIMIT ?2";
/// Tasks of a target in one state (`tasks_counts`).
const COUNT: &str = "SELECT COUNT(*) FROM tasks WHERE target = ?1 AND state = ?2";

fn record(r: &Row<'_>) -> rusqlite::Result<(String, i64)> {
    Ok((r.get(0)?, r.get(1)?))
}

fn decode((doc, version): (String, i64)) -> Result<TaskRecord> {
    let mut t: TaskRecord = serde_json::from_str(&doc)
        .map_err(|e| Error::unavailable(format!("corrupt stored task: {e}")))?;
    t.version = version as u64;
    Ok(t)
}

/// Stored rows as records. Callers run this off the writer thread: the
/// writer is the one thread every transition waits for, so it does only
/// SQLite's part of the work.
pub(crate) fn decode_all(rows: Vec<(String, i64)>) -> Result<Vec<TaskRecord>> {
    rows.into_iter().map(decode).collect()
}

/// The stored document of `t`; made by the caller before the job goes to
/// the writer, for the same reason as [`decode_all`].
pub(crate) fn encode(t: &TaskRecord) -> Result<String> {
    serde_json::to_string(t).map_err(Error::unavailable)
}

/// `t` as [`update`] will store it: the next version, and its document.
pub(crate) fn next_version(mut t: TaskRecord) -> Result<(TaskRecord, String)> {
    t.version += 1;
    let doc = encode(&t)?;
    Ok((t, doc))
}

/// See `Store::insert_task`; runs on the writer, so the check and the
/// insert cannot interleave with another insert. `doc` is `encode(&t)`.
///
/// Runs without a savepoint (one statement changes anything, and a
/// statement that fails is undone by SQLite alone), so a refusal is the
/// inner `Err`: an outer one would roll back the writer's whole batch.
pub(crate) fn insert(c: &Connection, t: TaskRecord, doc: String) -> Result<Result<TaskInsert>> {
    if let Some(key) = &t.task.dedupe_key {
        let existing = db(c
            .prepare_cached(ACTIVE_KEY)
            .and_then(|mut s| s.query_row(params![t.task.target, key], record).optional()))?;
        if let Some(row) = existing {
            return Ok(decode(row).map(TaskInsert::Existing));
        }
    }
    let inserted = c
        .prepare_cached(
            "INSERT INTO tasks (task_id, target, dispatched_by, state, priority, run_at, \
             lease_until, dedupe_key, version, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .and_then(|mut s| {
            s.execute(params![
                t.task.task_id,
                t.task.target,
                t.task.dispatched_by,
                t.task.state.as_str(),
                t.task.priority,
                t.task.run_at as i64,
                t.lease_until.map(|u| u as i64),
                t.task.dedupe_key,
                t.version as i64,
                doc,
            ])
        });
    match inserted {
        Ok(_) => Ok(Ok(TaskInsert::New(t))),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            Ok(Err(Error::conflict(format!(
                "a task with id '{}' exists",
                t.task.task_id
            ))))
        }
        Err(e) => Err(Error::unavailable(e)),
    }
}

/// See `Store::update_task`; `t` and `doc` come from [`next_version`].
pub(crate) fn update(c: &Connection, t: TaskRecord, doc: String) -> Result<Option<TaskRecord>> {
    let from = t.version - 1;
    let n = db(c
        .prepare_cached(
            "UPDATE tasks SET state = ?1, priority = ?2, run_at = ?3, lease_until = ?4, \
             dedupe_key = ?5, version = ?6, doc = ?7 WHERE task_id = ?8 AND version = ?9",
        )
        .and_then(|mut s| {
            s.execute(params![
                t.task.state.as_str(),
                t.task.priority,
                t.task.run_at as i64,
                t.lease_until.map(|u| u as i64),
                t.task.dedupe_key,
                t.version as i64,
                doc,
                t.task.task_id,
                from as i64,
            ])
        }))?;
    Ok((n == 1).then_some(t))
}

/// See `Store::get_task`.
pub(crate) fn get(c: &Connection, task_id: &str) -> Result<Option<TaskRecord>> {
    db(
        c.prepare_cached(&format!("SELECT {COLUMNS} FROM tasks WHERE task_id = ?1"))
            .and_then(|mut s| s.query_row(params![task_id], record).optional()),
    )?
    .map(decode)
    .transpose()
}

/// See `Store::list_tasks`.
pub(crate) fn list(c: &Connection, f: &TaskFilter) -> Result<Vec<TaskRecord>> {
    let rows = db(c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM tasks WHERE (?1 IS NULL OR state = ?1) \
             AND (?2 IS NULL OR target = ?2) \
             AND (?3 IS NULL OR target = ?3 OR dispatched_by = ?3) \
             AND (?4 IS NULL OR task_id > ?4) ORDER BY task_id LIMIT ?5"
        ))
        .and_then(|mut s| {
            s.query_map(
                params![
                    f.state.map(TaskState::as_str),
                    f.target,
                    f.involving,
                    f.after,
                    f.limit as i64
                ],
                record,
            )?
            .collect()
        }))?;
    decode_all(rows)
}

/// See `Store::due_tasks`: the stored rows, for [`decode_all`].
pub(crate) fn due(
    c: &Connection,
    target: Option<&str>,
    now: u64,
    limit: usize,
) -> Result<Vec<(String, i64)>> {
    let Some(target) = target else {
        let rows = db(c
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM tasks \
                 WHERE state = 'queued' OR (state = 'delayed' AND run_at <= ?1) \
                 ORDER BY priority DESC, run_at, task_id LIMIT ?2"
            ))
            .and_then(|mut s| {
                s.query_map(params![now as i64, limit as i64], record)?
                    .collect()
            }))?;
        return Ok(rows);
    };
    // Per target, each state is one range of its own index already in the
    // wanted order, read with a LIMIT each and merged here. One statement
    // with OR scanned and sorted the whole queue on every claim; a compound
    // SELECT was prepared again on every call.
    let mut rows: Vec<(i64, i64, String, String, i64)> = Vec::with_capacity(limit * 2);
    for (sql, bound_now) in [(DUE_QUEUED, false), (DUE_DELAYED, true)] {
        let map =
            |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?));
        let part: Vec<(i64, i64, String, String, i64)> =
            db(c.prepare_cached(sql).and_then(|mut s| {
                if bound_now {
                    s.query_map(params![target, limit as i64, now as i64], map)?
                        .collect()
                } else {
                    s.query_map(params![target, limit as i64], map)?.collect()
                }
            }))?;
        rows.extend(part);
    }
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    rows.truncate(limit);
    Ok(rows.into_iter().map(|(_, _, _, doc, v)| (doc, v)).collect())
}

/// See `Store::expired_leases`.
pub(crate) fn expired(c: &Connection, now: u64, limit: usize) -> Result<Vec<TaskRecord>> {
    let rows = db(c.prepare_cached(EXPIRED).and_then(|mut s| {
        s.query_map(params![now as i64, limit as i64], record)?
            .collect()
    }))?;
    decode_all(rows)
}

/// See `Store::task_counts`.
pub(crate) fn counts(c: &Connection) -> Result<Vec<TaskCount>> {
    let rows: Vec<(String, String, i64)> = db(c
        .prepare_cached("SELECT target, state, COUNT(*) FROM tasks GROUP BY target, state")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        }))?;
    rows.into_iter()
        .map(|(target, state, count)| TaskCount::from_stored(target, &state, count as u64))
        .collect()
}

/// See `Store::count_tasks`.
pub(crate) fn count(c: &Connection, target: &str, states: &[&str]) -> Result<u64> {
    let mut n = 0i64;
    for state in states {
        n += db(c
            .prepare_cached(COUNT)
            .and_then(|mut s| s.query_row(params![target, state], |r| r.get::<_, i64>(0))))?;
    }
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts run without a savepoint: a refused one (its id is taken)
    /// must not take the writer's batch, and the tasks committed with it,
    /// down with it.
    #[tokio::test]
    async fn a_refused_insert_leaves_the_rest_of_its_commit_stored() {
        use clawnet_core::store::conformance::task;
        use clawnet_core::store::Store;
        let dir = tempfile::tempdir().expect("dir");
        let store =
            crate::sqlite::SqliteStore::open(dir.path().join("t.db"), crate::sqlite::Sync::Normal)
                .expect("open");
        store
            .insert_task(task("dup", "w", TaskState::Queued, 1000, None))
            .await
            .expect("first");
        // Queued together, so the writer takes them into one batch.
        let inserts = (0..40).map(|i| {
            let id = if i == 20 {
                "dup".to_owned()
            } else {
                format!("t{i}")
            };
            store.insert_task(task(&id, "w", TaskState::Queued, 1001 + i, None))
        });
        let results = futures_util::future::join_all(inserts).await;
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(TaskInsert::New(_)) => assert_ne!(i, 20),
                Err(e) => {
                    assert_eq!(i, 20, "{e}");
                    assert_eq!(e.code.as_str(), "conflict");
                }
                Ok(other) => panic!("insert {i}: {other:?}"),
            }
        }
        let stored = store
            .count_tasks("w", &[TaskState::Queued])
            .await
            .expect("count");
        assert_eq!(stored, 40, "39 new tasks and the first `dup`");
    }

    /// Regression: the task lookups must stay index searches on the partial
    /// indexes of migration 0006 with the connection's settings (QPSG on),
    /// and must not be parsed again for new bound values.
    #[test]
    fn task_lookups_use_the_active_indexes_and_stay_prepared() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("plans.db");
        let store =
            crate::sqlite::SqliteStore::open(&path, crate::sqlite::Sync::Normal).expect("open");
        drop(store);
        let c = crate::sqlite::open_conn(&path, crate::sqlite::Sync::Normal).expect("conn");
        for (sql, index) in [
            (ACTIVE_KEY, "tasks_key"),
            (DUE_QUEUED, "tasks_queued"),
            (DUE_DELAYED, "tasks_delayed"),
            (EXPIRED, "tasks_leases"),
            (COUNT, "tasks_counts"),
        ] {
            let mut explain = c
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("explain");
            let values: [&dyn rusqlite::ToSql; 3] = [&"w", &10, &5];
            let n = explain.parameter_count();
            let plan: Vec<String> = explain
                .query_map(&values[..n], |r| r.get::<_, String>(3))
                .expect("plan")
                .collect::<rusqlite::Result<_>>()
                .expect("rows");
            let plan = plan.join("; ");
            assert!(
                plan.starts_with("SEARCH tasks USING") && plan.contains(index),
                "{sql}\n  planned as: {plan}"
            );
        }
        for key in ["a", "b", "c"] {
            let mut s = c.prepare_cached(ACTIVE_KEY).expect("prepare");
            let found = s
                .query_row(params!["w", key], |_| Ok(()))
                .optional()
                .expect("query");
            assert!(found.is_none());
        }
        crate::sqlite::tests::assert_not_prepared_again(&c, ACTIVE_KEY);
    }
}
