-- Task indexes that hold only the tasks each lookup can want. The 0004
-- indexes kept every task, finished or not, so each transition moved an
-- entry in three of them; most tasks now pass through queued -> running ->
-- succeeded and then leave every index but `tasks_counts`.
-- (`tasks_dispatcher` was never used: the list query scans in id order.)
DROP INDEX tasks_due;
DROP INDEX tasks_state;
DROP INDEX tasks_dispatcher;
DROP INDEX tasks_key;
-- Claims: per target, in claim order. The queries name the state with the
-- same literal, which is what lets SQLite use a partial index.
CREATE INDEX tasks_queued ON tasks (target, priority DESC, run_at, task_id)
    WHERE state = 'queued';
CREATE INDEX tasks_delayed ON tasks (target, priority DESC, run_at, task_id)
    WHERE state = 'delayed';
-- The lease sweep.
CREATE INDEX tasks_leases ON tasks (lease_until) WHERE state = 'running';
-- Queue counts and the pending limit checked on every dispatch.
CREATE INDEX tasks_counts ON tasks (target, state);
-- The active task with a dedupe key. `dedupe_key = ?` implies
-- `dedupe_key IS NOT NULL` whatever the bound value, so the plan is fixed.
CREATE INDEX tasks_key ON tasks (target, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'delayed', 'running');
