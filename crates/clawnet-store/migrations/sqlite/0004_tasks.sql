-- Tasks: the record as JSON in `doc`, with the columns the hub filters and
-- orders by beside it. `version` is the compare-and-set counter of
-- Store::update_task (the copy inside `doc` is ignored).
CREATE TABLE tasks (
    task_id       TEXT PRIMARY KEY,
    target        TEXT NOT NULL,
    dispatched_by TEXT NOT NULL,
    state         TEXT NOT NULL,
    priority      INTEGER NOT NULL,
    run_at        INTEGER NOT NULL,
    lease_until   INTEGER,
    dedupe_key    TEXT,
    version       INTEGER NOT NULL,
    doc           TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX tasks_due ON tasks (target, state, priority DESC, run_at, task_id);
CREATE INDEX tasks_state ON tasks (state, run_at);
CREATE INDEX tasks_dispatcher ON tasks (dispatched_by, task_id);
-- At most one active task per target and key (a second line of defence
-- behind the writer's check).
CREATE UNIQUE INDEX tasks_active_key ON tasks (target, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'delayed', 'running');
