//! The SQLite store: one file in WAL mode, one writer thread that commits
//! many operations per transaction (group commit), a few reader connections.
//!
//! Every write is a job run by the writer thread inside a savepoint of the
//! current batch's transaction; its caller is answered only after the batch
//! committed. A job that fails (a conflict) rolls back its savepoint alone and
//! is answered at once. If the commit fails (disk full, file locked), every
//! job of the batch is answered `unavailable` and nothing of it was stored.
//! Reads run on separate connections; WAL lets them proceed during writes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clawnet_core::error::{Error, Result};
use clawnet_core::store::dedupe::DedupeWindow;
use clawnet_core::store::{
    AgentRecord, AppendLimits, Appended, AuditEntry, AuditFilter, HistoryPage, MessageDraft,
    RoomRecord, Store, TaskCount, TaskFilter, TaskInsert, TaskRecord, TokenRecord,
};

use crate::sqlite_tasks as tasks;
use clawnet_proto::{Envelope, Role, RoomKind, TaskState};
use parking_lot::Mutex;
use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// Operations per transaction at most; more wait for the next commit.
const MAX_BATCH: usize = 1024;
/// Queued writes before callers wait (back-pressure, not memory growth).
const QUEUE: usize = 8192;
/// Reader connections kept open.
const READERS: usize = 4;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;
/// How often the WAL is checkpointed by the background thread.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// WAL frames after which the checkpoint thread briefly holds the writer to
/// let the WAL start over from its beginning (see `checkpoint_loop`).
const WAL_RESTART_FRAMES: i64 = 4096;
/// How long the gated checkpoint waits for readers before giving up.
const RESTART_BUSY: Duration = Duration::from_millis(20);

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../migrations/sqlite/0002_dedupe_in_messages.sql"),
    ),
    (3, include_str!("../migrations/sqlite/0003_message_log.sql")),
    (4, include_str!("../migrations/sqlite/0004_tasks.sql")),
    (5, include_str!("../migrations/sqlite/0005_audit_chain.sql")),
    (
        6,
        include_str!("../migrations/sqlite/0006_active_task_indexes.sql"),
    ),
];
/// Messages appended before the writer copies their `(room, seq)` into
/// `msg_index` in one transaction: each room's index page is then written once
/// per chunk instead of once per commit, and readers scan at most about this
/// many rows of unindexed tail.
const INDEX_CHUNK: usize = 1024;
/// Keyed messages read back into the dedupe window at open (newest first).
const DEDUPE_REBUILD: i64 = 200_000;

/// How much a commit survives (SQLite's `synchronous` in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// `NORMAL`: a commit survives the process being killed; the last
    /// commits before a power loss or OS crash may be lost.
    Normal,
    /// `FULL`: every commit is fsynced to the WAL before it is acknowledged;
    /// survives power loss, at the cost of one fsync per batch.
    Full,
}

type Done = Box<dyn FnOnce() + Send>;
type Run = Box<dyn FnOnce(&Connection, &mut WriterState) -> Option<Done> + Send>;

/// One write for the writer thread.
struct Job {
    run: Run,
    /// Run inside its own savepoint, so that its failure (a conflict) undoes
    /// only its own statements. Appends skip this: they fail only on database
    /// errors, which abort the whole batch anyway, and two statements per
    /// message were a fifth of the writer's time.
    isolated: bool,
}

/// State only the writer thread touches.
#[derive(Debug, Default)]
pub struct WriterState {
    /// Last `seq` per room, as of the current transaction.
    seqs: HashMap<String, u64>,
    /// The next `message_log` id, as of the current transaction.
    next_id: Option<i64>,
    /// Recent `(from_id, dedupe_key)` to the `message_log` row they were
    /// stored as, rebuilt from the log at open.
    dedupe: DedupeWindow<i64>,
    /// Messages appended (and committed or not) since `msg_index` last caught up.
    unindexed: usize,
}

impl WriterState {
    /// Forget cached `seq`s (after a rollback they may be ahead of the file).
    fn reset(&mut self) {
        self.seqs.clear();
        self.next_id = None;
    }
}

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// One permit per reader connection: reads beyond that wait their turn
    /// rather than open a connection (which costs a schema load and fresh
    /// statement preparation: a fifth of the hub's CPU under task load).
    read_permits: Arc<tokio::sync::Semaphore>,
    stop: Arc<AtomicBool>,
}

/// Held by the writer for each transaction, and by the checkpoint thread for
/// the short checkpoint that lets the WAL restart.
type Gate = Arc<Mutex<()>>;

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::unavailable(e)
}

pub(crate) fn open_conn(path: &Path, sync: Sync) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(5))?;
    // Every statement the store runs stays prepared (the default 16 made
    // the task statements evict each other and be parsed again).
    c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // SQLite 3.54 reads the value bound to `LIMIT ?` (and, with STAT4, to
    // range parameters) while planning, and marks the statement to be
    // parsed again on every new binding: the cached task and history
    // statements were re-prepared on every call (7% of hub CPU in the tasks
    // benchmark). The stability guarantee keeps one plan per statement; our
    // statements are all index lookups whose plan does not depend on values.
    c.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(
        None,
        "synchronous",
        if sync == Sync::Full { "FULL" } else { "NORMAL" },
    )?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    Ok(c)
}

fn migrate(c: &mut Connection) -> rusqlite::Result<()> {
    let have: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (version, sql) in MIGRATIONS {
        if *version > have {
            let tx = c.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()?;
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`, run migrations, and
    /// start the writer thread.
    pub fn open(path: impl AsRef<Path>, sync: Sync) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut w = open_conn(&path, sync).map_err(|e| {
            Error::new(
                clawnet_proto::ErrorCode::Unavailable,
                format!("cannot open SQLite database {}: {e}", path.display()),
            )
        })?;
        migrate(&mut w).map_err(unavailable)?;
        // The checkpoint thread does this work instead (see checkpoint_loop).
        w.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(unavailable)?;
        // A burst that outran the checkpoints leaves a long WAL file behind;
        // cut it back when the WAL starts over.
        w.pragma_update(None, "journal_size_limit", 64 << 20)
            .map_err(unavailable)?;
        let stop = Arc::new(AtomicBool::new(false));
        let gate = Gate::default();
        {
            let (path, stop, gate) = (path.clone(), stop.clone(), gate.clone());
            std::thread::Builder::new()
                .name("clawnet-sqlite-checkpoint".into())
                .spawn(move || checkpoint_loop(path, stop, gate))
                .map_err(unavailable)?;
        }
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(open_conn(&path, sync).map_err(unavailable)?);
        }
        let state = WriterState {
            dedupe: rebuild_dedupe(&w).map_err(unavailable)?,
            ..Default::default()
        };
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("clawnet-sqlite-writer".into())
            .spawn(move || writer_loop(w, rx, state, gate))
            .map_err(unavailable)?;
        Ok(Self {
            path,
            writer: tx,
            readers: Arc::new(Mutex::new(readers)),
            read_permits: Arc::new(tokio::sync::Semaphore::new(READERS)),
            stop,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` in the writer's current transaction; the result is returned
    /// after the transaction committed.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut WriterState) -> Result<T> + Send + 'static,
    {
        self.submit(true, f).await
    }

    /// Like [`Self::write`]; `isolated: false` runs without a savepoint and
    /// a failure rolls back the whole batch (see [`Job::isolated`]).
    async fn submit<T, F>(&self, isolated: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut WriterState) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let run: Run = Box::new(move |c, st| match f(c, st) {
            Ok(v) => Some(Box::new(move || {
                let _ = tx.send(Ok(v));
            })),
            Err(e) => {
                let _ = tx.send(Err(e));
                None
            }
        });
        self.writer
            .send(Job { run, isolated })
            .await
            .map_err(|_| unavailable("the SQLite writer stopped"))?;
        rx.await
            .map_err(|_| unavailable("the write was not committed"))?
    }

    /// Run the read `f` on the writer, inside its current batch: it sees
    /// every write before it, its answer leaves after the batch commits,
    /// and its failure fails only itself (never the batch).
    async fn read_on_writer<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        // The read's own error is the inner one: an outer error would roll
        // back the batch it ran in.
        self.submit(false, move |c, _| Ok(f(c))).await?
    }

    /// Run `f` on a reader connection.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let permit = self
            .read_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(unavailable)?;
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.lock().pop();
            let conn = match conn {
                Some(c) => c,
                None => open_conn(&path, Sync::Normal).map_err(unavailable)?,
            };
            let out = f(&conn);
            let mut pool = readers.lock();
            if pool.len() < READERS {
                pool.push(conn);
            }
            drop(permit);
            out
        })
        .await
        .map_err(unavailable)?
    }
}

/// Write a consistent copy of the database at `db` to `dest` with
/// `VACUUM INTO`, which reads one snapshot and is safe while a hub writes.
/// `dest` must not exist yet.
pub fn backup_file(db: &Path, dest: &Path) -> Result<()> {
    if !db.exists() {
        return Err(Error::not_found(format!("no database at {}", db.display())));
    }
    if dest.exists() {
        return Err(Error::conflict(format!(
            "{} exists; choose a new file",
            dest.display()
        )));
    }
    let c = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(unavailable)?;
    c.busy_timeout(Duration::from_secs(5))
        .map_err(unavailable)?;
    c.execute("VACUUM INTO ?1", params![dest.to_string_lossy()])
        .map_err(unavailable)?;
    Ok(())
}

/// Run a parameterless statement from the statement cache (savepoints run
/// twice per job; parsing them each time showed up in profiles).
fn run_cached(c: &Connection, sql: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Checkpoint the WAL into the database from outside the writer, so the
/// writer never pauses for the bulk of a checkpoint's copying and fsync.
///
/// A passive checkpoint alone never lets the WAL shrink under steady load:
/// SQLite starts the WAL over only when a write begins with every frame
/// already copied back, and the writer keeps appending while the copy runs.
/// The WAL then grows without bound (3 GB in 10 s of the store benchmark),
/// and every frame lands on a fresh file page the kernel must zero. So once
/// the WAL holds `WAL_RESTART_FRAMES`, the thread takes the writer's gate
/// (the writer waits between transactions) for a second checkpoint that has
/// only the frames written since the first to copy, and the next transaction
/// writes from the start of the WAL again.
fn checkpoint_loop(path: PathBuf, stop: Arc<AtomicBool>, gate: Gate) {
    let Ok(c) = open_conn(&path, Sync::Normal) else {
        tracing::warn!("SQLite: no checkpoint connection; the WAL grows until restart");
        return;
    };
    if let Err(e) = c.busy_timeout(RESTART_BUSY) {
        tracing::warn!(error = %e, "SQLite: cannot set the checkpoint's busy timeout");
    }
    let checkpoint = |mode: &str| {
        c.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            r.get::<_, i64>(1)
        })
    };
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(CHECKPOINT_EVERY);
        match checkpoint("PASSIVE") {
            Ok(frames) if frames >= WAL_RESTART_FRAMES => {
                let started = std::time::Instant::now();
                let _writer_waits = gate.lock();
                match checkpoint("RESTART") {
                    Ok(_) => tracing::debug!(
                        frames,
                        held_us = started.elapsed().as_micros() as u64,
                        "SQLite: WAL restarted"
                    ),
                    Err(e) => tracing::debug!(error = %e, "SQLite: WAL restart postponed"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "SQLite: checkpoint failed"),
        }
    }
}

/// The dedupe window as it was: the newest keyed messages, oldest first.
fn rebuild_dedupe(c: &Connection) -> rusqlite::Result<DedupeWindow<i64>> {
    let mut rows: Vec<(String, String, i64, i64)> = c
        .prepare(
            "SELECT from_id, dedupe_key, ts, id FROM message_log \
             WHERE dedupe_key IS NOT NULL ORDER BY id DESC LIMIT ?1",
        )?
        .query_map(params![DEDUPE_REBUILD], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    rows.reverse();
    let mut w = DedupeWindow::default();
    for (from, key, ts, id) in rows {
        w.insert((from, key), ts as u64, id);
    }
    Ok(w)
}

/// Copy the `(room, seq)` of every message after `index_mark` into
/// `msg_index`, sorted so each room's index page is written once.
fn index_tail(c: &Connection) -> rusqlite::Result<()> {
    run_cached(
        c,
        "INSERT INTO msg_index (room, seq, id) SELECT room, seq, id FROM message_log \
         WHERE id > (SELECT upto FROM index_mark) ORDER BY room, seq",
    )?;
    run_cached(
        c,
        "UPDATE index_mark SET upto = max(upto, (SELECT COALESCE(MAX(id), 0) FROM message_log))",
    )
}

/// Index the tail in a transaction of its own, between batches, so that no
/// batch's ACK waits for it.
fn index_between_batches(c: &Connection, st: &mut WriterState) {
    let r = c
        .execute_batch("BEGIN IMMEDIATE")
        .and_then(|()| index_tail(c))
        .and_then(|()| c.execute_batch("COMMIT"));
    match r {
        Ok(()) => st.unindexed = 0,
        Err(e) => {
            // Readers still find the rows in the tail; try again next chunk.
            tracing::warn!(error = %e, "SQLite: indexing messages failed");
            let _ = c.execute_batch("ROLLBACK");
            st.unindexed = 0;
        }
    }
}

fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<Job>, mut state: WriterState, gate: Gate) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.blocking_recv().map(|j| batch.push(j)).is_some() {
        let _checkpoint_waits = gate.lock();
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "SQLite: cannot begin a transaction");
            batch.clear(); // callers see `unavailable`
            state.reset();
            continue;
        }
        let mut done: Vec<Done> = Vec::with_capacity(batch.len());
        let mut poisoned = false;
        for job in batch.drain(..) {
            if !job.isolated {
                match (job.run)(&conn, &mut state) {
                    Some(d) => done.push(d),
                    None => poisoned = true,
                }
                continue;
            }
            if run_cached(&conn, "SAVEPOINT op").is_err() {
                continue;
            }
            match (job.run)(&conn, &mut state) {
                Some(d) => {
                    let _ = run_cached(&conn, "RELEASE op");
                    done.push(d);
                }
                None => {
                    let _ = run_cached(&conn, "ROLLBACK TO op");
                    let _ = run_cached(&conn, "RELEASE op");
                }
            }
        }
        let committed = if poisoned {
            Err(rusqlite::Error::InvalidQuery)
        } else {
            conn.execute_batch("COMMIT")
        };
        match committed {
            Ok(()) => {
                done.into_iter().for_each(|d| d());
                if state.unindexed >= INDEX_CHUNK {
                    index_between_batches(&conn, &mut state);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "SQLite: commit failed; the batch is not acknowledged");
                let _ = conn.execute_batch("ROLLBACK");
                state.reset();
                // Dropping `done` answers every caller `unavailable`.
            }
        }
    }
}

fn role_str(r: Role) -> &'static str {
    r.as_str()
}

fn kind_str(k: RoomKind) -> &'static str {
    match k {
        RoomKind::Global => "global",
        RoomKind::Room => "room",
        RoomKind::Dm => "dm",
    }
}

fn parse_kind(s: &str) -> RoomKind {
    match s {
        "dm" => RoomKind::Dm,
        "global" => RoomKind::Global,
        _ => RoomKind::Room,
    }
}

fn agent_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentRecord> {
    let role: String = r.get(2)?;
    Ok(AgentRecord {
        agent_id: r.get(0)?,
        handle: r.get(1)?,
        role: Role::parse(&role).unwrap_or(Role::Worker),
        created_at: r.get::<_, i64>(3)? as u64,
        created_by: r.get(4)?,
    })
}

fn room_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RoomRecord> {
    let kind: String = r.get(1)?;
    Ok(RoomRecord {
        name: r.get(0)?,
        kind: parse_kind(&kind),
        private: r.get::<_, i64>(2)? != 0,
        created_by: r.get(3)?,
        created_at: r.get::<_, i64>(4)? as u64,
        retention: r.get::<_, Option<i64>>(5)?.map(|v| v as u32),
    })
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        hash: r.get(0)?,
        token_id: r.get(1)?,
        agent_id: r.get(2)?,
        created_at: r.get::<_, i64>(3)? as u64,
    })
}

fn envelope(text: &str) -> Result<Envelope> {
    serde_json::from_str(text).map_err(|e| unavailable(format!("corrupt stored envelope: {e}")))
}

/// A room's last `seq`: in the log, or (once trimmed away) in `room_seq`.
fn last_seq_of(c: &Connection, room: &str) -> rusqlite::Result<u64> {
    c.prepare_cached(
        "SELECT max( \
           COALESCE((SELECT last_seq FROM room_seq WHERE room = ?1), 0), \
           COALESCE((SELECT MAX(seq) FROM msg_index WHERE room = ?1), 0), \
           COALESCE((SELECT MAX(seq) FROM message_log \
                     WHERE id > (SELECT upto FROM index_mark) AND room = ?1), 0))",
    )?
    .query_row(params![room], |r| r.get::<_, i64>(0))
    .map(|s| s as u64)
}

/// The id after every id ever handed out (trimmed ones included).
fn next_log_id(c: &Connection) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "SELECT max((SELECT upto FROM index_mark), COALESCE((SELECT MAX(id) FROM message_log), 0)) + 1",
    )?
    .query_row([], |r| r.get(0))
}

fn db<T>(r: rusqlite::Result<T>) -> Result<T> {
    r.map_err(unavailable)
}

fn append(
    c: &Connection,
    st: &mut WriterState,
    draft: MessageDraft,
    limits: AppendLimits,
) -> Result<Appended> {
    if let Some(key) = &draft.dedupe_key {
        let k = (draft.from_id.clone(), key.clone());
        st.dedupe
            .expire(draft.ts, limits.dedupe_window_ms, limits.dedupe_max_entries);
        if let Some(id) = st.dedupe.get(&k) {
            // Trust the entry only if the row is there and is this key's: it
            // may have been rolled back, or trimmed by retention.
            let original: Option<String> = db(c
                .prepare_cached(
                    "SELECT envelope FROM message_log WHERE id = ?1 \
                     AND from_id = ?2 AND dedupe_key = ?3",
                )
                .and_then(|mut s| s.query_row(params![*id, k.0, k.1], |r| r.get(0)).optional()))?;
            if let Some(original) = original {
                return Ok(Appended::Duplicate(Arc::new(envelope(&original)?)));
            }
            st.dedupe.remove(&k);
        }
    }
    let last = match st.seqs.get(&draft.room) {
        Some(s) => *s,
        None => db(last_seq_of(c, &draft.room))?,
    };
    let seq = last + 1;
    let room = draft.room.clone();
    let key = draft.dedupe_key.clone();
    let env = draft.into_envelope(seq);
    let text = serde_json::to_string(&env).map_err(unavailable)?;
    let id = match st.next_id {
        Some(id) => id,
        None => db(next_log_id(c))?,
    };
    db(c.prepare_cached(
        "INSERT INTO message_log (id, room, seq, ts, envelope, from_id, dedupe_key) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            room,
            seq as i64,
            env.ts as i64,
            text,
            env.from_id,
            key
        ])
    }))?;
    if let Some(key) = key {
        st.dedupe.insert((env.from_id.clone(), key), env.ts, id);
    }
    st.next_id = Some(id + 1);
    st.unindexed += 1;
    st.seqs.insert(room, seq);
    Ok(Appended::New(Arc::new(env)))
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_agent(&self, a: AgentRecord) -> Result<()> {
        self.write(move |c, _| {
            let taken: Option<String> = db(c
                .query_row(
                    "SELECT agent_id FROM agents WHERE agent_id = ?1 OR handle = lower(?2)",
                    params![a.agent_id, a.handle],
                    |r| r.get(0),
                )
                .optional())?;
            if let Some(who) = taken {
                return Err(Error::conflict(if who == a.agent_id {
                    format!("agent id '{}' is taken", a.agent_id)
                } else {
                    format!("handle '{}' is taken", a.handle.to_ascii_lowercase())
                }));
            }
            db(c.execute(
                "INSERT INTO agents (agent_id, handle, role, created_at, created_by) VALUES (?1, lower(?2), ?3, ?4, ?5)",
                params![a.agent_id, a.handle, role_str(a.role), a.created_at as i64, a.created_by],
            ))?;
            Ok(())
        })
        .await
    }

    async fn get_agent(&self, agent_id: &str) -> Result<Option<AgentRecord>> {
        let id = agent_id.to_owned();
        self.read(move |c| {
            db(c.prepare_cached("SELECT agent_id, handle, role, created_at, created_by FROM agents WHERE agent_id = ?1")
                .and_then(|mut s| s.query_row(params![id], agent_row).optional()))
        })
        .await
    }

    async fn find_agent_by_handle(&self, handle: &str) -> Result<Option<AgentRecord>> {
        let h = handle.to_ascii_lowercase();
        self.read(move |c| {
            db(c.prepare_cached("SELECT agent_id, handle, role, created_at, created_by FROM agents WHERE handle = ?1")
                .and_then(|mut s| s.query_row(params![h], agent_row).optional()))
        })
        .await
    }

    async fn list_agents(&self) -> Result<Vec<AgentRecord>> {
        self.read(|c| {
            db(c.prepare_cached("SELECT agent_id, handle, role, created_at, created_by FROM agents ORDER BY agent_id")
                .and_then(|mut s| s.query_map([], agent_row)?.collect()))
        })
        .await
    }

    async fn set_handle(&self, agent_id: &str, handle: &str) -> Result<String> {
        let (id, h) = (agent_id.to_owned(), handle.to_ascii_lowercase());
        self.write(move |c, _| {
            let old: Option<String> = db(c
                .query_row(
                    "SELECT handle FROM agents WHERE agent_id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional())?;
            let Some(old) = old else {
                return Err(Error::not_found(format!("no agent '{id}'")));
            };
            let holder: Option<String> = db(c
                .query_row(
                    "SELECT agent_id FROM agents WHERE handle = ?1",
                    params![h],
                    |r| r.get(0),
                )
                .optional())?;
            if holder.is_some_and(|x| x != id) {
                return Err(Error::conflict(format!("handle '{h}' is taken")));
            }
            db(c.execute(
                "UPDATE agents SET handle = ?1 WHERE agent_id = ?2",
                params![h, id],
            ))?;
            Ok(old)
        })
        .await
    }

    async fn set_role(&self, agent_id: &str, role: Role) -> Result<Option<Role>> {
        let id = agent_id.to_owned();
        self.write(move |c, _| {
            let old: Option<String> = db(c
                .query_row(
                    "SELECT role FROM agents WHERE agent_id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional())?;
            let Some(old) = old else { return Ok(None) };
            db(c.execute(
                "UPDATE agents SET role = ?1 WHERE agent_id = ?2",
                params![role_str(role), id],
            ))?;
            Ok(Some(Role::parse(&old).unwrap_or(Role::Worker)))
        })
        .await
    }

    async fn remove_agent(&self, agent_id: &str) -> Result<bool> {
        let id = agent_id.to_owned();
        self.write(move |c, _| {
            let n = db(c.execute("DELETE FROM agents WHERE agent_id = ?1", params![id]))?;
            if n == 0 {
                return Ok(false);
            }
            for sql in [
                "DELETE FROM tokens WHERE agent_id = ?1",
                "DELETE FROM members WHERE agent_id = ?1",
                "DELETE FROM cursors WHERE agent_id = ?1",
            ] {
                db(c.execute(sql, params![id]))?;
            }
            Ok(true)
        })
        .await
    }

    async fn insert_token(&self, t: TokenRecord) -> Result<()> {
        self.write(move |c, _| {
            db(c.execute(
                "INSERT INTO tokens (hash, token_id, agent_id, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![t.hash, t.token_id, t.agent_id, t.created_at as i64],
            ))?;
            Ok(())
        })
        .await
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let h = hash.to_owned();
        self.read(move |c| {
            db(c.prepare_cached(
                "SELECT hash, token_id, agent_id, created_at FROM tokens WHERE hash = ?1",
            )
            .and_then(|mut s| s.query_row(params![h], token_row).optional()))
        })
        .await
    }

    async fn list_tokens(&self, agent_id: &str) -> Result<Vec<TokenRecord>> {
        let id = agent_id.to_owned();
        self.read(move |c| {
            db(c.prepare_cached(
                "SELECT hash, token_id, agent_id, created_at FROM tokens WHERE agent_id = ?1 ORDER BY created_at",
            )
            .and_then(|mut s| s.query_map(params![id], token_row)?.collect()))
        })
        .await
    }

    async fn revoke_tokens(&self, agent_id: &str, token_id: Option<&str>) -> Result<Vec<String>> {
        let (id, tid) = (agent_id.to_owned(), token_id.map(str::to_owned));
        self.write(move |c, _| {
            let ids: Vec<String> = db(c
                .prepare("SELECT token_id FROM tokens WHERE agent_id = ?1 AND (?2 IS NULL OR token_id = ?2)")
                .and_then(|mut s| s.query_map(params![id, tid], |r| r.get(0))?.collect()))?;
            db(c.execute(
                "DELETE FROM tokens WHERE agent_id = ?1 AND (?2 IS NULL OR token_id = ?2)",
                params![id, tid],
            ))?;
            Ok(ids)
        })
        .await
    }

    async fn create_room(&self, r: RoomRecord) -> Result<()> {
        self.write(move |c, _| {
            let n = db(c.execute(
                "INSERT INTO rooms (name, kind, private, created_by, created_at, retention) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (name) DO NOTHING",
                params![
                    r.name,
                    kind_str(r.kind),
                    r.private as i64,
                    r.created_by,
                    r.created_at as i64,
                    r.retention.map(i64::from)
                ],
            ))?;
            if n == 0 {
                return Err(Error::conflict(format!("room '{}' exists", r.name)));
            }
            Ok(())
        })
        .await
    }

    async fn get_room(&self, name: &str) -> Result<Option<RoomRecord>> {
        let n = name.to_owned();
        self.read(move |c| {
            db(c.prepare_cached(
                "SELECT name, kind, private, created_by, created_at, retention FROM rooms WHERE name = ?1",
            )
            .and_then(|mut s| s.query_row(params![n], room_row).optional()))
        })
        .await
    }

    async fn list_rooms(&self) -> Result<Vec<RoomRecord>> {
        self.read(|c| {
            db(c.prepare_cached("SELECT name, kind, private, created_by, created_at, retention FROM rooms ORDER BY name")
                .and_then(|mut s| s.query_map([], room_row)?.collect()))
        })
        .await
    }

    async fn add_member(&self, room: &str, agent_id: &str) -> Result<bool> {
        let (r, a) = (room.to_owned(), agent_id.to_owned());
        self.write(move |c, _| {
            let n = db(c.execute(
                "INSERT INTO members (room, agent_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![r, a],
            ))?;
            Ok(n == 1)
        })
        .await
    }

    async fn remove_member(&self, room: &str, agent_id: &str) -> Result<bool> {
        let (r, a) = (room.to_owned(), agent_id.to_owned());
        self.write(move |c, _| {
            let n = db(c.execute(
                "DELETE FROM members WHERE room = ?1 AND agent_id = ?2",
                params![r, a],
            ))?;
            Ok(n == 1)
        })
        .await
    }

    async fn members(&self, room: &str) -> Result<Vec<String>> {
        let r = room.to_owned();
        self.read(move |c| {
            db(
                c.prepare_cached("SELECT agent_id FROM members WHERE room = ?1 ORDER BY agent_id")
                    .and_then(|mut s| s.query_map(params![r], |row| row.get(0))?.collect()),
            )
        })
        .await
    }

    async fn is_member(&self, room: &str, agent_id: &str) -> Result<bool> {
        let (r, a) = (room.to_owned(), agent_id.to_owned());
        self.read(move |c| {
            db(
                c.prepare_cached("SELECT 1 FROM members WHERE room = ?1 AND agent_id = ?2")
                    .and_then(|mut s| s.exists(params![r, a])),
            )
        })
        .await
    }

    async fn rooms_of(&self, agent_id: &str) -> Result<Vec<String>> {
        let a = agent_id.to_owned();
        self.read(move |c| {
            db(
                c.prepare_cached("SELECT room FROM members WHERE agent_id = ?1 ORDER BY room")
                    .and_then(|mut s| s.query_map(params![a], |row| row.get(0))?.collect()),
            )
        })
        .await
    }

    async fn delete_room(&self, name: &str) -> Result<bool> {
        let r = name.to_owned();
        self.write(move |c, st| {
            let n = db(c.execute("DELETE FROM rooms WHERE name = ?1", params![r]))?;
            if n == 0 {
                return Ok(false);
            }
            // Everything is indexed first, so the room's rows are found
            // through msg_index (message_log has no index by room).
            db(index_tail(c))?;
            st.unindexed = 0;
            db(c.execute(
                "DELETE FROM message_log WHERE id IN (SELECT id FROM msg_index WHERE room = ?1)",
                params![r],
            ))?;
            for sql in [
                "DELETE FROM msg_index WHERE room = ?1",
                "DELETE FROM room_seq WHERE room = ?1",
                "DELETE FROM members WHERE room = ?1",
                "DELETE FROM cursors WHERE room = ?1",
            ] {
                db(c.execute(sql, params![r]))?;
            }
            st.seqs.remove(&r);
            Ok(true)
        })
        .await
    }

    async fn append_message(&self, draft: MessageDraft, limits: AppendLimits) -> Result<Appended> {
        self.submit(false, move |c, st| append(c, st, draft, limits))
            .await
    }

    async fn history(&self, room: &str, after_seq: u64, limit: usize) -> Result<HistoryPage> {
        let r = room.to_owned();
        self.read(move |c| {
            // One statement, so one snapshot: a row is either indexed or in
            // the tail, never both or neither, even while the writer indexes.
            let rows: Vec<String> = db(c
                .prepare_cached(
                    "SELECT envelope, seq FROM ( \
                       SELECT m.envelope, i.seq FROM msg_index i JOIN message_log m ON m.id = i.id \
                       WHERE i.room = ?1 AND i.seq > ?2 ORDER BY i.seq LIMIT ?3) \
                     UNION ALL \
                     SELECT envelope, seq FROM ( \
                       SELECT envelope, seq FROM message_log \
                       WHERE id > (SELECT upto FROM index_mark) AND room = ?1 AND seq > ?2 \
                       ORDER BY seq LIMIT ?3) \
                     ORDER BY seq LIMIT ?3",
                )
                .and_then(|mut s| {
                    s.query_map(params![r, after_seq as i64, limit as i64 + 1], |row| {
                        row.get(0)
                    })?
                    .collect()
                }))?;
            let first: Option<i64> = db(c
                .prepare_cached(
                    "SELECT MIN(s) FROM ( \
                       SELECT MIN(seq) AS s FROM msg_index WHERE room = ?1 \
                       UNION ALL \
                       SELECT MIN(seq) FROM message_log \
                       WHERE id > (SELECT upto FROM index_mark) AND room = ?1)",
                )
                .and_then(|mut s| s.query_row(params![r], |row| row.get(0))))?;
            let last = db(last_seq_of(c, &r))?;
            let has_more = rows.len() > limit;
            let messages = rows
                .iter()
                .take(limit)
                .map(|t| envelope(t).map(Arc::new))
                .collect::<Result<Vec<_>>>()?;
            Ok(HistoryPage {
                messages,
                first_available_seq: first.unwrap_or(0) as u64,
                last_seq: last,
                has_more,
            })
        })
        .await
    }

    async fn last_seq(&self, room: &str) -> Result<u64> {
        let r = room.to_owned();
        self.read(move |c| db(last_seq_of(c, &r))).await
    }

    async fn advance_cursor(&self, agent_id: &str, room: &str, seq: u64) -> Result<u64> {
        let (a, r) = (agent_id.to_owned(), room.to_owned());
        self.write(move |c, _| {
            db(c.prepare_cached(
                "INSERT INTO cursors (agent_id, room, seq) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (agent_id, room) DO UPDATE SET seq = max(seq, excluded.seq)",
            )
            .and_then(|mut s| s.execute(params![a, r, seq as i64])))?;
            let now: i64 = db(c
                .prepare_cached("SELECT seq FROM cursors WHERE agent_id = ?1 AND room = ?2")
                .and_then(|mut s| s.query_row(params![a, r], |row| row.get(0))))?;
            Ok(now as u64)
        })
        .await
    }

    async fn cursors(&self, agent_id: &str) -> Result<HashMap<String, u64>> {
        let a = agent_id.to_owned();
        self.read(move |c| {
            db(
                c.prepare_cached("SELECT room, seq FROM cursors WHERE agent_id = ?1")
                    .and_then(|mut s| {
                        s.query_map(params![a], |row| {
                            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
                        })?
                        .collect()
                    }),
            )
        })
        .await
    }

    async fn trim_messages(
        &self,
        room: &str,
        before_ts: u64,
        keep_last: Option<u32>,
    ) -> Result<u64> {
        let r = room.to_owned();
        self.write(move |c, st| {
            // Everything is indexed first, so trimming needs only msg_index.
            db(index_tail(c))?;
            st.unindexed = 0;
            // Oldest first, up to the first message young enough to keep:
            // the walk costs what it deletes (ts follows seq within a room).
            let mut upto: i64 = 0;
            {
                let mut stmt = db(c.prepare_cached(
                    "SELECT i.seq, m.ts FROM msg_index i JOIN message_log m ON m.id = i.id \
                     WHERE i.room = ?1 ORDER BY i.seq",
                ))?;
                let mut rows = db(stmt.query(params![r]))?;
                while let Some(row) = db(rows.next())? {
                    let (seq, ts): (i64, i64) = (db(row.get(0))?, db(row.get(1))?);
                    if ts as u64 >= before_ts {
                        break;
                    }
                    upto = seq;
                }
            }
            let last = db(last_seq_of(c, &r))? as i64;
            if let Some(keep) = keep_last {
                upto = upto.max(last - i64::from(keep));
            }
            // The last seq must outlive its message, or the next one would reuse it.
            db(c.prepare_cached(
                "INSERT INTO room_seq (room, last_seq) VALUES (?1, ?2) \
                 ON CONFLICT (room) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
            )
            .and_then(|mut s| s.execute(params![r, last])))?;
            let n = db(c
                .prepare_cached(
                    "DELETE FROM message_log WHERE id IN \
                     (SELECT id FROM msg_index WHERE room = ?1 AND seq <= ?2)",
                )
                .and_then(|mut s| s.execute(params![r, upto])))?;
            db(
                c.prepare_cached("DELETE FROM msg_index WHERE room = ?1 AND seq <= ?2")
                    .and_then(|mut s| s.execute(params![r, upto])),
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn expire_dedupe(&self, before_ts: u64) -> Result<u64> {
        self.write(move |_, st| Ok(st.dedupe.expire_before(before_ts)))
            .await
    }

    async fn get_setting(&self, key: &str) -> Result<Option<Value>> {
        let k = key.to_owned();
        self.read(move |c| {
            let v: Option<String> = db(c
                .query_row(
                    "SELECT value FROM settings WHERE key = ?1",
                    params![k],
                    |r| r.get(0),
                )
                .optional())?;
            v.map(|t| serde_json::from_str(&t).map_err(unavailable))
                .transpose()
        })
        .await
    }

    async fn set_setting(&self, key: &str, value: Value) -> Result<()> {
        let (k, v) = (key.to_owned(), value.to_string());
        self.write(move |c, _| {
            db(c.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![k, v],
            ))?;
            Ok(())
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.read(|c| db(c.query_row("SELECT 1", [], |_| Ok(()))))
            .await
    }

    async fn delete_message(
        &self,
        room: &str,
        seq: u64,
        by: &str,
        at: u64,
    ) -> Result<Option<Envelope>> {
        let (room, by) = (room.to_owned(), by.to_owned());
        self.write(move |c, _| {
            let found: Option<(i64, String)> = db(c
                .query_row(
                    "SELECT id, envelope FROM message_log WHERE room = ?1 AND seq = ?2",
                    params![room, seq as i64],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional())?;
            let Some((id, text)) = found else {
                return Ok(None);
            };
            let mut env: Envelope = serde_json::from_str(&text).map_err(Error::unavailable)?;
            if !env.deleted {
                env.tombstone(&by, at);
                let text = serde_json::to_string(&env).map_err(Error::unavailable)?;
                db(c.execute(
                    "UPDATE message_log SET envelope = ?1 WHERE id = ?2",
                    params![text, id],
                ))?;
            }
            Ok(Some(env))
        })
        .await
    }

    async fn append_audit(&self, e: AuditEntry) -> Result<AuditEntry> {
        let mut out = self.append_audit_batch(vec![e]).await?;
        out.pop()
            .ok_or_else(|| unavailable("the audit insert returned nothing"))
    }

    async fn append_audit_batch(&self, mut entries: Vec<AuditEntry>) -> Result<Vec<AuditEntry>> {
        // One job, so one transaction. Without a savepoint: an insert into an
        // append-only table fails only on database errors, which abort the
        // batch anyway. `meta` is serialized here, off the writer thread.
        let metas: Vec<String> = entries.iter().map(|e| e.meta.to_string()).collect();
        self.submit(false, move |c, _| {
            let mut s = db(c.prepare_cached(
                "INSERT INTO audit (ts, type, actor, action, target, reason, meta, prev_hash, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            ))?;
            for (e, meta) in entries.iter_mut().zip(metas) {
                db(s.execute(params![
                    e.ts as i64,
                    e.kind,
                    e.actor,
                    e.action,
                    e.target,
                    e.reason,
                    meta,
                    e.prev_hash,
                    e.hash
                ]))?;
                e.id = c.last_insert_rowid() as u64;
            }
            Ok(entries)
        })
        .await
    }

    async fn list_audit(&self, f: AuditFilter) -> Result<Vec<AuditEntry>> {
        self.read(move |c| {
            // Newest `limit`, or with `after_id` the oldest `limit` after it.
            let sql = if f.after_id.is_some() {
                "SELECT id, ts, type, actor, action, target, reason, meta, prev_hash, hash FROM audit \
                 WHERE (?1 IS NULL OR type = ?1) AND (?2 IS NULL OR actor = ?2) AND ts >= ?3 \
                   AND id > ?5 ORDER BY id ASC LIMIT ?4"
            } else {
                "SELECT id, ts, type, actor, action, target, reason, meta, prev_hash, hash FROM audit \
                 WHERE (?1 IS NULL OR type = ?1) AND (?2 IS NULL OR actor = ?2) AND ts >= ?3 \
                   AND id > ?5 ORDER BY id DESC LIMIT ?4"
            };
            let mut rows: Vec<AuditEntry> = db(c.prepare_cached(sql).and_then(|mut s| {
                s.query_map(
                    params![
                        f.kind,
                        f.actor,
                        f.since_ms.unwrap_or(0) as i64,
                        f.limit as i64,
                        f.after_id.unwrap_or(0) as i64
                    ],
                    |r| {
                        let meta: String = r.get(7)?;
                        Ok(AuditEntry {
                            id: r.get::<_, i64>(0)? as u64,
                            ts: r.get::<_, i64>(1)? as u64,
                            kind: r.get(2)?,
                            actor: r.get(3)?,
                            action: r.get(4)?,
                            target: r.get(5)?,
                            reason: r.get(6)?,
                            meta: serde_json::from_str(&meta).unwrap_or(Value::Null),
                            prev_hash: r.get(8)?,
                            hash: r.get(9)?,
                        })
                    },
                )?
                .collect()
            }))?;
            if f.after_id.is_none() {
                rows.reverse();
            }
            Ok(rows)
        })
        .await
    }

    async fn insert_task(&self, t: TaskRecord) -> Result<TaskInsert> {
        let doc = tasks::encode(&t)?;
        self.submit(false, move |c, _| tasks::insert(c, t, doc))
            .await?
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<TaskRecord>> {
        let id = task_id.to_owned();
        self.read(move |c| tasks::get(c, &id)).await
    }

    async fn update_task(&self, t: TaskRecord) -> Result<Option<TaskRecord>> {
        // Without a savepoint: a lost compare-and-set changes no row and is
        // not an error (see `Job::isolated`).
        let (t, doc) = tasks::next_version(t)?;
        self.submit(false, move |c, _| tasks::update(c, t, doc))
            .await
    }

    async fn list_tasks(&self, f: TaskFilter) -> Result<Vec<TaskRecord>> {
        self.read(move |c| tasks::list(c, &f)).await
    }

    async fn due_tasks(
        &self,
        target: Option<&str>,
        now: u64,
        limit: usize,
    ) -> Result<Vec<TaskRecord>> {
        // On the writer, not a reader: the writer's page cache stays warm
        // across its transactions, while a reader drops its cache whenever
        // the database changed, which under load is before nearly every
        // claim; a read also costs a hand-off to the blocking pool. Hub CPU
        // per task end to end fell from about 130 to about 105 µs.
        let target = target.map(str::to_owned);
        let rows = self
            .read_on_writer(move |c| tasks::due(c, target.as_deref(), now, limit))
            .await?;
        tasks::decode_all(rows)
    }

    async fn expired_leases(&self, now: u64, limit: usize) -> Result<Vec<TaskRecord>> {
        self.read(move |c| tasks::expired(c, now, limit)).await
    }

    async fn count_tasks(&self, target: &str, states: &[TaskState]) -> Result<u64> {
        let target = target.to_owned();
        let states: Vec<&'static str> = states.iter().map(|s| s.as_str()).collect();
        self.read(move |c| tasks::count(c, &target, &states)).await
    }

    async fn task_counts(&self) -> Result<Vec<TaskCount>> {
        self.read(tasks::counts).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The cached statement `sql` of `c` was never parsed again (for new
    /// bound values, say).
    pub(crate) fn assert_not_prepared_again(c: &Connection, sql: &str) {
        let s = c.prepare_cached(sql).expect("prepare");
        assert_eq!(
            s.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "parsed again: {sql}"
        );
    }

    /// Regression: every claim re-parsed its cached `… LIMIT ?` statement,
    /// because SQLite plans with the bound LIMIT and re-prepares on rebind.
    #[test]
    fn cached_statements_are_not_prepared_again_when_the_limit_changes() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("q.db");
        let c = open_conn(&path, Sync::Normal).expect("open");
        c.execute_batch(
            "CREATE TABLE t (k TEXT, v INTEGER); CREATE INDEX t_k ON t (k, v);
             INSERT INTO t VALUES ('a', 1), ('a', 2), ('a', 3), ('b', 1);",
        )
        .expect("schema");
        let sql = "SELECT v FROM t WHERE k = ?1 ORDER BY v LIMIT ?2";
        for limit in 1..=10_i64 {
            let mut s = c.prepare_cached(sql).expect("prepare");
            let n = s
                .query_map(params!["a", limit], |r| r.get::<_, i64>(0))
                .expect("query")
                .count();
            assert_eq!(n, limit.min(3) as usize);
        }
        assert_not_prepared_again(&c, sql);
    }
}
