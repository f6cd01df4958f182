-- The PostgreSQL twin of migrations/sqlite/0004_tasks.sql.
CREATE TABLE tasks (
    task_id       TEXT PRIMARY KEY,
    target        TEXT NOT NULL,
    dispatched_by TEXT NOT NULL,
    state         TEXT NOT NULL,
    priority      INTEGER NOT NULL,
    run_at        BIGINT NOT NULL,
    lease_until   BIGINT,
    dedupe_key    TEXT,
    version       BIGINT NOT NULL,
    doc           TEXT NOT NULL
);
CREATE INDEX tasks_due ON tasks (target, state, priority DESC, run_at, task_id);
CREATE INDEX tasks_state ON tasks (state, run_at);
CREATE INDEX tasks_dispatcher ON tasks (dispatched_by, task_id);
-- At most one active task per target and key, across nodes: inserts use
-- ON CONFLICT against this index.
CREATE UNIQUE INDEX tasks_active_key ON tasks (target, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'delayed', 'running');
