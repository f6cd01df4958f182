//! The task half of the PostgreSQL store (migration 0002). Several nodes may
//! write at once: dedupe rests on the partial unique index of active keys
//! (`INSERT … ON CONFLICT DO NOTHING` waits for a competing insert to commit),
//! and updates are compare-and-set on `version`, which PostgreSQL re-checks
//! after waiting for a concurrent update of the row.

use clawnet_core::error::{Error, Result};
use clawnet_core::store::{TaskCount, TaskFilter, TaskInsert, TaskRecord};
use clawnet_proto::TaskState;
use tokio_postgres::Row;

use super::{exec, int, opt, uint, BoxFuture, Conn, PgError, R};

/// Columns read back: the record and its version.
pub(super) const COLS: &str = "doc, version";

pub(super) fn raw(r: &Row) -> std::result::Result<(String, i64), PgError> {
    Ok((r.try_get(0)?, r.try_get(1)?))
}

pub(super) fn decode((doc, version): (String, i64)) -> Result<TaskRecord> {
    let mut t: TaskRecord = serde_json::from_str(&doc)
        .map_err(|e| Error::unavailable(format!("corrupt stored task: {e}")))?;
    t.version = uint(version);
    Ok(t)
}

pub(super) fn decode_all(rows: Vec<(String, i64)>) -> Result<Vec<TaskRecord>> {
    rows.into_iter().map(decode).collect()
}

fn encode(t: &TaskRecord) -> Result<String> {
    serde_json::to_string(t).map_err(Error::unavailable)
}

/// See `Store::insert_task`.
pub(super) fn insert<'a>(c: &'a Conn, t: &'a TaskRecord) -> BoxFuture<'a, R<TaskInsert>> {
    Box::pin(async move {
        let doc = encode(t)?;
        let lease = t.lease_until.map(int);
        let n = exec(
            c,
            "INSERT INTO tasks (task_id, target, dispatched_by, state, priority, run_at, \
             lease_until, dedupe_key, version, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT DO NOTHING",
            &[
                &t.task.task_id,
                &t.task.target,
                &t.task.dispatched_by,
                &t.task.state.as_str(),
                &t.task.priority,
                &int(t.task.run_at),
                &lease,
                &t.task.dedupe_key,
                &int(t.version),
                &doc,
            ],
        )
        .await?;
        if n == 1 {
            return Ok(TaskInsert::New(t.clone()));
        }
        if let Some(key) = &t.task.dedupe_key {
            let existing = opt(
                c,
                &format!(
                    "SELECT {COLS} FROM tasks WHERE target = $1 AND dedupe_key = $2 \
                     AND state IN ('queued', 'delayed', 'running')"
                ),
                &[&t.task.target, key],
            )
            .await?;
            if let Some(row) = existing {
                return Ok(TaskInsert::Existing(decode(raw(&row)?)?));
            }
        }
        Err(Error::conflict(format!("a task with id '{}' exists", t.task.task_id)).into())
    })
}

/// See `Store::update_task`.
pub(super) fn update<'a>(c: &'a Conn, t: &'a TaskRecord) -> BoxFuture<'a, R<Option<TaskRecord>>> {
    Box::pin(async move {
        let mut next = t.clone();
        next.version = t.version + 1;
        let doc = encode(&next)?;
        let lease = next.lease_until.map(int);
        let n = exec(
            c,
            "UPDATE tasks SET state = $1, priority = $2, run_at = $3, lease_until = $4, \
             dedupe_key = $5, version = $6, doc = $7 WHERE task_id = $8 AND version = $9",
            &[
                &next.task.state.as_str(),
                &next.task.priority,
                &int(next.task.run_at),
                &lease,
                &next.task.dedupe_key,
                &int(next.version),
                &doc,
                &next.task.task_id,
                &int(t.version),
            ],
        )
        .await?;
        Ok((n == 1).then_some(next))
    })
}

/// `list_tasks` as SQL and its parameters' order: state, target, involving,
/// after, limit.
pub(super) const LIST: &str =
    "SELECT doc, version FROM tasks WHERE ($1::text IS NULL OR state = $1) \
     AND ($2::text IS NULL OR target = $2) \
     AND ($3::text IS NULL OR target = $3 OR dispatched_by = $3) \
     AND ($4::text IS NULL OR task_id > $4) ORDER BY task_id LIMIT $5";

/// `due_tasks`: target, now, limit.
pub(super) const DUE: &str =
    "SELECT doc, version FROM tasks WHERE ($1::text IS NULL OR target = $1) \
     AND (state = 'queued' OR (state = 'delayed' AND run_at <= $2)) \
     ORDER BY priority DESC, run_at, task_id LIMIT $3";

/// `expired_leases`: now, limit.
pub(super) const EXPIRED: &str = "SELECT doc, version FROM tasks \
     WHERE state = 'running' AND lease_until < $1 ORDER BY lease_until LIMIT $2";

/// `task_counts`.
pub(super) const COUNTS: &str = "SELECT target, state, COUNT(*) FROM tasks GROUP BY target, state";

pub(super) fn count_row(r: &Row) -> std::result::Result<(String, String, i64), PgError> {
    Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
}

pub(super) fn counts(rows: Vec<(String, String, i64)>) -> Result<Vec<TaskCount>> {
    rows.into_iter()
        .map(|(target, state, count)| TaskCount::from_stored(target, &state, uint(count)))
        .collect()
}

/// The filter's parameters for [`LIST`], owned.
pub(super) fn list_params(f: &TaskFilter) -> (Option<&'static str>, i64) {
    (
        f.state.map(TaskState::as_str),
        i64::try_from(f.limit).unwrap_or(i64::MAX),
    )
}
