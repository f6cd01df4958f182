//! Claims the SQLite store has accepted but not yet written (decision 0016).
//!
//! A fast task is claimed and finished within a few milliseconds; writing
//! its claim (`queued → running`) and then its result rewrote the row, its
//! index entries and their WAL pages twice. The writer instead keeps the
//! claim here and writes it together with the task's next transition, or on
//! its own once it is [`WRITE_AFTER`] old. Every read of the store overlays
//! these claims, so nobody sees the difference but a crash: a claim not yet
//! written is lost with the process, and the task is back in its queue as it
//! was stored (delivered again, without counting the lost attempt).
//!
//! Two copies exist: the writer's, which decides claims and compare-and-sets
//! inside the current batch, and a published one that readers overlay,
//! changed only after the batch that changed the writer's copy committed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clawnet_core::store::TaskRecord;
use clawnet_proto::TaskState;

/// A claim older than this is written on its own, so a long task shows
/// `running` in the file and a crash costs at most this much of its run.
pub(crate) const WRITE_AFTER: Duration = Duration::from_secs(1);

/// One claim held in memory.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    /// The task as claimed: `running`, at the stored version + 1.
    pub(crate) rec: TaskRecord,
    /// The state the file still holds (`queued` or `delayed`).
    pub(crate) stored_state: TaskState,
    /// When the writer accepted it.
    pub(crate) since: Instant,
}

impl Claim {
    /// The version the file holds.
    pub(crate) fn stored_version(&self) -> u64 {
        self.rec.version - 1
    }
}

/// Unwritten claims by task id, with counts per target for the overlays.
#[derive(Debug, Default, Clone)]
pub(crate) struct Unwritten {
    by_id: HashMap<String, Claim>,
    /// Target → (claims stored as `queued`, claims stored as `delayed`).
    per_target: HashMap<String, (u64, u64)>,
}

impl Unwritten {
    pub(crate) fn insert(&mut self, c: Claim) {
        let counts = self
            .per_target
            .entry(c.rec.task.target.clone())
            .or_default();
        if c.stored_state == TaskState::Delayed {
            counts.1 += 1;
        } else {
            counts.0 += 1;
        }
        if let Some(old) = self.by_id.insert(c.rec.task.task_id.clone(), c) {
            // Never happens (a claim needs a task not claimed), but keep
            // the counts true if it did.
            self.uncount(&old);
        }
    }

    pub(crate) fn remove(&mut self, task_id: &str) -> Option<Claim> {
        let c = self.by_id.remove(task_id)?;
        self.uncount(&c);
        Some(c)
    }

    fn uncount(&mut self, c: &Claim) {
        let target = &c.rec.task.target;
        if let Some(counts) = self.per_target.get_mut(target) {
            if c.stored_state == TaskState::Delayed {
                counts.1 = counts.1.saturating_sub(1);
            } else {
                counts.0 = counts.0.saturating_sub(1);
            }
            if *counts == (0, 0) {
                self.per_target.remove(target);
            }
        }
    }

    pub(crate) fn get(&self, task_id: &str) -> Option<&Claim> {
        self.by_id.get(task_id)
    }

    pub(crate) fn contains(&self, task_id: &str) -> bool {
        self.by_id.contains_key(task_id)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Claims of `target`, or of every target.
    pub(crate) fn count(&self, target: Option<&str>) -> usize {
        match target {
            Some(t) => self.per_target.get(t).map_or(0, |(q, d)| (q + d) as usize),
            None => self.by_id.len(),
        }
    }

    /// Ids of the claims accepted before `cutoff` (all with `None`).
    pub(crate) fn older_than(&self, cutoff: Option<Instant>) -> Vec<String> {
        self.by_id
            .values()
            .filter(|c| cutoff.is_none_or(|t| c.since <= t))
            .map(|c| c.rec.task.task_id.clone())
            .collect()
    }

    /// How far a stored count of `target` in `states` is off: the file
    /// holds each claim in its old state, while it is `running`.
    pub(crate) fn count_delta(&self, target: &str, states: &[TaskState]) -> i64 {
        let Some(&(queued, delayed)) = self.per_target.get(target) else {
            return 0;
        };
        let mut delta = 0i64;
        for s in states {
            match s {
                TaskState::Queued => delta -= queued as i64,
                TaskState::Delayed => delta -= delayed as i64,
                TaskState::Running => delta += (queued + delayed) as i64,
                _ => {}
            }
        }
        delta
    }

    /// Every target with claims: (target, stored as queued, stored as delayed).
    pub(crate) fn per_target(&self) -> impl Iterator<Item = (&str, u64, u64)> {
        self.per_target
            .iter()
            .map(|(t, (q, d))| (t.as_str(), *q, *d))
    }

    /// Claims whose lease ran out before `now`.
    pub(crate) fn expired(&self, now: u64) -> Vec<TaskRecord> {
        self.by_id
            .values()
            .filter(|c| c.rec.lease_until.is_some_and(|u| u < now))
            .map(|c| c.rec.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawnet_core::store::conformance::task;

    fn claim(id: &str, target: &str, stored: TaskState) -> Claim {
        let mut rec = task(id, target, TaskState::Running, 1000, None);
        rec.version = 1;
        rec.lease_until = Some(2000);
        Claim {
            rec,
            stored_state: stored,
            since: Instant::now(),
        }
    }

    #[test]
    fn counts_follow_inserts_and_removals() {
        let mut u = Unwritten::default();
        u.insert(claim("a", "w", TaskState::Queued));
        u.insert(claim("b", "w", TaskState::Delayed));
        u.insert(claim("c", "x", TaskState::Queued));
        assert_eq!(u.count(Some("w")), 2);
        assert_eq!(u.count(None), 3);
        assert_eq!(u.count_delta("w", &[TaskState::Queued]), -1);
        assert_eq!(
            u.count_delta("w", &[TaskState::Queued, TaskState::Delayed]),
            -2
        );
        assert_eq!(u.count_delta("w", &[TaskState::Running]), 2);
        assert_eq!(u.count_delta("w", &TaskState::ALL), 0);
        assert!(u.remove("b").is_some());
        assert!(u.remove("b").is_none(), "removed once");
        assert_eq!(u.count(Some("w")), 1);
        assert_eq!(u.count_delta("w", &[TaskState::Delayed]), 0);
        u.remove("a");
        assert_eq!(u.per_target().count(), 1, "w has no claims left");
        assert_eq!(u.expired(1500).len(), 0);
        assert_eq!(u.expired(2001).len(), 1);
    }
}

/// What the file holds (what a crash leaves) while the store holds claims.
#[cfg(test)]
mod file_tests {
    use clawnet_core::store::conformance::task;
    use clawnet_core::store::{Store, TaskInsert, TaskRecord};
    use clawnet_proto::TaskState;

    use crate::sqlite::{open_conn, SqliteStore, Sync};

    /// The task's (state, version) in the file, read past the store.
    fn in_file(path: &std::path::Path, id: &str) -> (String, i64) {
        let c = open_conn(path, Sync::Normal).expect("conn");
        c.query_row(
            "SELECT state, version FROM tasks WHERE task_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("row")
    }

    async fn claimed(store: &SqliteStore, id: &str) -> TaskRecord {
        let TaskInsert::New(rec) = store
            .insert_task(task(id, "w", TaskState::Queued, 1000, None))
            .await
            .expect("insert")
        else {
            panic!("new task expected");
        };
        let mut next = rec;
        next.task.state = TaskState::Running;
        next.task.attempts = 1;
        next.lease_id = Some("L".into());
        next.lease_until = Some(u64::MAX / 2);
        store
            .claim_task(next)
            .await
            .expect("claim")
            .expect("applied")
    }

    /// A fast task costs one row write for its claim and result: the file
    /// never holds the claim, and after the result holds the result.
    #[tokio::test]
    async fn a_claim_is_written_with_the_result_not_before() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.db");
        let store = SqliteStore::open(&path, Sync::Normal).expect("open");
        let rec = claimed(&store, "a").await;
        // A crash now would leave the task queued at its stored version:
        // delivered again, the lost attempt not counted.
        assert_eq!(in_file(&path, "a"), ("queued".into(), 0));
        let mut done = rec;
        done.task.state = TaskState::Succeeded;
        done.lease_id = None;
        let done = store
            .update_task(done)
            .await
            .expect("update")
            .expect("applied");
        assert_eq!(done.version, 2);
        assert_eq!(in_file(&path, "a"), ("succeeded".into(), 2));
        assert_eq!(store.get_task("a").await.expect("get"), Some(done));
    }

    /// A claim still running after `WRITE_AFTER` is written on its own, so
    /// a long task is `running` in the file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_claim_is_written_after_a_while() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.db");
        let store = SqliteStore::open(&path, Sync::Normal).expect("open");
        claimed(&store, "long").await;
        let deadline = std::time::Instant::now() + super::WRITE_AFTER * 4;
        while in_file(&path, "long") != ("running".into(), 1) {
            assert!(
                std::time::Instant::now() < deadline,
                "the claim was not written within {:?}",
                super::WRITE_AFTER * 4
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let rec = store.get_task("long").await.expect("get").expect("there");
        assert_eq!(rec.lease_id.as_deref(), Some("L"));
        assert_eq!(rec.version, 1);
    }

    /// Closing the store writes its claims: the next store on the file
    /// (a restart) sees the task running under its lease.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closing_the_store_writes_its_claims() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.db");
        let store = SqliteStore::open(&path, Sync::Normal).expect("open");
        claimed(&store, "b").await;
        drop(store);
        assert_eq!(in_file(&path, "b"), ("running".into(), 1));
        let again = SqliteStore::open(&path, Sync::Normal).expect("reopen");
        let rec = again.get_task("b").await.expect("get").expect("there");
        assert_eq!(rec.task.state, TaskState::Running);
        assert_eq!(rec.lease_id.as_deref(), Some("L"));
    }
}
