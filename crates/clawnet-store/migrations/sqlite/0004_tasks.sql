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
-- Finds the active task with a key. Not a partial unique index as on
-- PostgreSQL: one writer thread checks and inserts atomically already, and a
-- statement that may use a partial index is prepared again for every new
-- bound key (a fifth of the hub's CPU in the task benchmark).
CREATE INDEX tasks_key ON tasks (target, dedupe_key, state);
