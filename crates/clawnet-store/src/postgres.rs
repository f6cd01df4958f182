//! The PostgreSQL store: a connection pool for reads and one writer task per
//! store that commits many operations per transaction (group commit), like
//! the SQLite store. Several hub nodes may share one database.
//!
//! Every write is a job run by the writer task inside a savepoint of the
//! current batch's transaction; its caller is answered only after the batch
//! committed. A job that fails (a conflict) rolls back its savepoint alone and
//! is answered at once. If the commit fails, every job of the batch is
//! answered `unavailable` and nothing of it was stored. Reads take a pooled
//! connection and run one statement each, so each sees one snapshot.
//!
//! Several nodes writing at once: a room's `seq` comes from an upsert of its
//! `room_seq` row in the transaction that inserts the message. The row lock
//! that upsert takes is held until that transaction commits, so another
//! writer of the room (on any node) waits, then reads the committed value:
//! `seq` N+1 is assigned only after N committed, and a reader never sees N+1
//! without N. The writer sorts each batch by room so every node takes room
//! locks in the same order; a deadlock that still happens (say, two nodes
//! writing the same agent's cursors in opposite order) makes PostgreSQL abort
//! one statement, whose job then moves to the next batch instead of failing.
//!
//! Migrations are embedded SQL files run at start, each once, recorded in
//! `_clawnet_migrations`; an advisory lock serializes nodes starting at once.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clawnet_core::error::{Error, Result};
use clawnet_core::store::{
    AgentRecord, AppendLimits, Appended, AuditEntry, AuditFilter, HistoryPage, MessageDraft,
    RoomRecord, Store, TaskCount, TaskFilter, TaskInsert, TaskRecord, TokenRecord,
};
use clawnet_proto::{Envelope, ErrorCode, Role, RoomKind, TaskState};
use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

/// Operations per transaction at most; more wait for the next commit. Each
/// costs two round trips inside the batch, so a larger batch mostly delays
/// its first callers.
const MAX_BATCH: usize = 256;
/// Queued writes before callers wait (back-pressure, not memory growth).
const QUEUE: usize = 8192;
/// Pooled connections: the writer keeps one, readers share the rest.
const POOL_SIZE: usize = 8;
/// How long a caller waits for a pooled connection before `unavailable`.
const POOL_WAIT: Duration = Duration::from_secs(30);
/// How long opening one connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Times a job aborted by a deadlock or serialization failure is run again,
/// each in a later batch, before its caller is answered `unavailable`.
const MAX_ATTEMPTS: u32 = 3;
/// Started with every batch. The lock timeout keeps a node stuck behind
/// another node's stalled transaction from hanging its writer for good; the
/// idle timeout frees the locks of a batch whose node stalled mid-way.
const BEGIN: &str = "BEGIN; SET LOCAL lock_timeout = '10s'; \
                     SET LOCAL idle_in_transaction_session_timeout = '30s'; SAVEPOINT op";
/// Undoes the current job (its savepoint stays, to be released).
const UNDO: &str = "ROLLBACK TO SAVEPOINT op";

/// Advisory lock key held while migrating ("clawnet" in ASCII).
const MIGRATION_LOCK: i64 = 0x0063_6c61_776e_6574;
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "tasks",
        include_str!("../migrations/postgres/0002_tasks.sql"),
    ),
    (
        3,
        "audit_chain",
        include_str!("../migrations/postgres/0003_audit_chain.sql"),
    ),
];

#[path = "postgres_tasks.rs"]
mod tasks;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type PgError = tokio_postgres::Error;
type Conn = ClientWrapper;
type Done = Box<dyn FnOnce() + Send>;

/// Why a job failed: a database error (answered `unavailable`, or retried
/// when PostgreSQL aborted it to break a deadlock) or a logical refusal.
#[derive(Debug)]
enum Fail {
    Db(PgError),
    Store(Error),
}

impl From<PgError> for Fail {
    fn from(e: PgError) -> Self {
        Self::Db(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Self::Store(e)
    }
}

impl Fail {
    fn into_error(self) -> Error {
        match self {
            Self::Db(e) => unavailable(e),
            Self::Store(e) => e,
        }
    }

    /// Aborted by the server to resolve a deadlock or a serialization
    /// conflict: running it again later will most likely succeed.
    fn retryable(&self) -> bool {
        matches!(self, Self::Db(e) if e.code().is_some_and(|c| {
            *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
        }))
    }
}

type R<T> = std::result::Result<T, Fail>;

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::unavailable(e)
}

/// `.db()`: a database error becomes `unavailable` (which logs the cause).
trait Db<T> {
    fn db(self) -> Result<T>;
}

impl<T> Db<T> for std::result::Result<T, PgError> {
    fn db(self) -> Result<T> {
        self.map_err(unavailable)
    }
}

fn is_unique_violation(e: &PgError) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// A `u64` as PostgreSQL's BIGINT (values past `i64::MAX` saturate).
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

async fn rows(c: &Conn, sql: &str, p: Params<'_>) -> std::result::Result<Vec<Row>, PgError> {
    let st = c.prepare_cached(sql).await?;
    c.query(&st, p).await
}

async fn one(c: &Conn, sql: &str, p: Params<'_>) -> std::result::Result<Row, PgError> {
    let st = c.prepare_cached(sql).await?;
    c.query_one(&st, p).await
}

async fn opt(c: &Conn, sql: &str, p: Params<'_>) -> std::result::Result<Option<Row>, PgError> {
    let st = c.prepare_cached(sql).await?;
    c.query_opt(&st, p).await
}

async fn exec(c: &Conn, sql: &str, p: Params<'_>) -> std::result::Result<u64, PgError> {
    let st = c.prepare_cached(sql).await?;
    c.execute(&st, p).await
}

/// What running a job came to.
enum Ran {
    /// It succeeded; call this once the batch committed.
    Done(Done),
    /// It failed and its caller was answered.
    Failed,
    /// The server aborted it (deadlock); run it in a later batch.
    Retry,
}

/// A write waiting for the writer task.
trait Job: Send {
    /// The room whose `seq` lock the job takes, if any (batches are sorted
    /// by it).
    fn room(&self) -> Option<&str>;
    /// Run inside the batch's transaction, in a fresh savepoint.
    fn run<'a>(&'a mut self, c: &'a Conn) -> BoxFuture<'a, Ran>;
}

struct Op<D, T, F> {
    data: D,
    f: F,
    reply: Option<oneshot::Sender<Result<T>>>,
    room: Option<String>,
    attempts: u32,
}

impl<D, T, F> Job for Op<D, T, F>
where
    D: Send + Sync + 'static,
    T: Send + 'static,
    F: for<'a> Fn(&'a Conn, &'a D) -> BoxFuture<'a, R<T>> + Send + Sync + 'static,
{
    fn room(&self) -> Option<&str> {
        self.room.as_deref()
    }

    fn run<'a>(&'a mut self, c: &'a Conn) -> BoxFuture<'a, Ran> {
        Box::pin(async move {
            match (self.f)(c, &self.data).await {
                Ok(v) => {
                    let reply = self.reply.take();
                    Ran::Done(Box::new(move || {
                        if let Some(tx) = reply {
                            let _ = tx.send(Ok(v));
                        }
                    }))
                }
                Err(f) if f.retryable() && self.attempts + 1 < MAX_ATTEMPTS => {
                    self.attempts += 1;
                    tracing::debug!(error = ?f, "PostgreSQL: write aborted by the server; retrying it in the next batch");
                    Ran::Retry
                }
                Err(f) => {
                    if let Some(tx) = self.reply.take() {
                        let _ = tx.send(Err(f.into_error()));
                    }
                    Ran::Failed
                }
            }
        })
    }
}

/// PostgreSQL-backed [`Store`]; several may share one database.
pub struct PostgresStore {
    target: String,
    pool: Pool,
    writer: mpsc::Sender<Box<dyn Job>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// `host:port/dbname` of a config, for messages (never the password).
fn describe(cfg: &tokio_postgres::Config) -> String {
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", cfg.get_dbname().unwrap_or(""))
}

async fn migrate(c: &Conn) -> std::result::Result<(), PgError> {
    c.batch_execute(&format!(
        "BEGIN; SELECT pg_advisory_xact_lock({MIGRATION_LOCK}); \
         CREATE TABLE IF NOT EXISTS _clawnet_migrations (\
             version BIGINT PRIMARY KEY, \
             name TEXT NOT NULL, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    ))
    .await?;
    let run = async {
        let have: i64 = c
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM _clawnet_migrations",
                &[],
            )
            .await?
            .try_get(0)?;
        for (version, name, sql) in MIGRATIONS {
            if *version > have {
                tracing::info!(version, name, "PostgreSQL: applying migration");
                c.batch_execute(sql).await?;
                c.execute(
                    "INSERT INTO _clawnet_migrations (version, name) VALUES ($1, $2)",
                    &[version, name],
                )
                .await?;
            }
        }
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        if have > known {
            tracing::warn!(
                have,
                known,
                "PostgreSQL: the database schema is newer than this hub knows"
            );
        }
        Ok(())
    }
    .await;
    match run {
        Ok(()) => c.batch_execute("COMMIT").await,
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

impl PostgresStore {
    /// Connect to the database a `postgres://` (or `postgresql://`) URL
    /// names, run pending migrations, and start the writer task. Needs a
    /// Tokio runtime. Connections are unencrypted (no TLS).
    pub async fn connect(url: &str) -> Result<Self> {
        let cfg = tokio_postgres::Config::from_str(url).map_err(|e| {
            Error::new(
                ErrorCode::Invalid,
                format!("not a PostgreSQL URL ({e}); e.g. postgres://user@host:5432/db"),
            )
        })?;
        let target = describe(&cfg);
        let manager = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(unavailable)?;
        let c = pool.get().await.map_err(|e| {
            Error::new(
                ErrorCode::Unavailable,
                format!("cannot connect to PostgreSQL at {target}: {e}"),
            )
        })?;
        migrate(&c).await.map_err(|e| {
            Error::new(
                ErrorCode::Unavailable,
                format!("cannot migrate the PostgreSQL database at {target}: {e}"),
            )
        })?;
        drop(c);
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>(QUEUE);
        tokio::spawn(writer_loop(pool.clone(), rx));
        Ok(Self {
            target,
            pool,
            writer: tx,
        })
    }

    /// Run `f` in the writer's current transaction; the result is returned
    /// after the transaction committed. `room` names the room whose `seq`
    /// lock `f` takes, if any.
    async fn write<D, T, F>(&self, room: Option<String>, data: D, f: F) -> Result<T>
    where
        D: Send + Sync + 'static,
        T: Send + 'static,
        F: for<'a> Fn(&'a Conn, &'a D) -> BoxFuture<'a, R<T>> + Send + Sync + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: Box<dyn Job> = Box::new(Op {
            data,
            f,
            reply: Some(tx),
            room,
            attempts: 0,
        });
        self.writer
            .send(job)
            .await
            .map_err(|_| unavailable("the PostgreSQL writer stopped"))?;
        rx.await
            .map_err(|_| unavailable("the write was not committed"))?
    }

    /// A pooled connection for reading.
    async fn conn(&self) -> Result<Object> {
        self.pool.get().await.map_err(unavailable)
    }

    /// At most one row, mapped by `f`, read on a pooled connection.
    async fn read_opt<T>(&self, sql: &str, p: Params<'_>, f: RowFn<T>) -> Result<Option<T>> {
        let c = self.conn().await?;
        opt(&c, sql, p).await.db()?.map(|r| f(&r)).transpose().db()
    }

    /// Every row, mapped by `f`, read on a pooled connection.
    async fn read_all<T>(&self, sql: &str, p: Params<'_>, f: RowFn<T>) -> Result<Vec<T>> {
        let c = self.conn().await?;
        rows(&c, sql, p)
            .await
            .db()?
            .iter()
            .map(f)
            .collect::<std::result::Result<_, _>>()
            .db()
    }
}

async fn writer_loop(pool: Pool, mut rx: mpsc::Receiver<Box<dyn Job>>) {
    let mut conn: Option<Object> = None;
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut deferred: Vec<Box<dyn Job>> = Vec::new();
    loop {
        batch.append(&mut deferred);
        if batch.is_empty() {
            match rx.recv().await {
                Some(j) => batch.push(j),
                None => break,
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        // Every node takes the room locks of a batch in the same order, so
        // two nodes' batches cannot each hold a room the other waits for.
        // The jobs of a batch are concurrent calls, none answered yet, so
        // any order among them is a valid one.
        batch.sort_by(|a, b| a.room().cmp(&b.room()));
        run_batch(&pool, &mut conn, &mut batch, &mut deferred).await;
        batch.clear(); // jobs not run: their callers see `unavailable`
    }
}

/// Run one batch in one transaction. Callers of jobs that succeeded are
/// answered only if the commit succeeded; dropping a job or its `Done`
/// answers its caller `unavailable`. `slot` keeps the writer's connection
/// from one batch to the next.
async fn run_batch(
    pool: &Pool,
    slot: &mut Option<Object>,
    batch: &mut Vec<Box<dyn Job>>,
    deferred: &mut Vec<Box<dyn Job>>,
) {
    if slot.as_ref().is_some_and(|c| c.is_closed()) {
        *slot = None; // the pool discards it
    }
    let conn = match slot {
        Some(c) => c,
        None => match pool.get().await {
            Ok(c) => slot.insert(c),
            Err(e) => {
                tracing::error!(error = %e, "PostgreSQL: no connection for the writer; the batch is not acknowledged");
                return;
            }
        },
    };
    let mut done: Vec<Done> = Vec::with_capacity(batch.len());
    // What closes the previous job's savepoint: released when it succeeded,
    // rolled back first when it failed. Sent with the next statement, so a
    // job costs one round trip besides its own.
    let mut close = "";
    let mut first = true;
    let mut broken = None;
    for mut job in batch.drain(..) {
        let open = if first {
            BEGIN.to_owned()
        } else {
            format!("{close}SAVEPOINT op")
        };
        first = false;
        if let Err(e) = conn.batch_execute(&open).await {
            // Also catches a job that reported success in an aborted
            // transaction: RELEASE fails there.
            broken = Some(e);
            break;
        }
        close = match job.run(conn).await {
            Ran::Done(d) => {
                done.push(d);
                "RELEASE SAVEPOINT op; "
            }
            Ran::Failed => "ROLLBACK TO SAVEPOINT op; RELEASE SAVEPOINT op; ",
            Ran::Retry => {
                deferred.push(job);
                "ROLLBACK TO SAVEPOINT op; RELEASE SAVEPOINT op; "
            }
        };
    }
    if broken.is_none() {
        match conn.batch_execute(&format!("{close}COMMIT")).await {
            Ok(()) => {
                done.into_iter().for_each(|d| d());
                return;
            }
            Err(e) => broken = Some(e),
        }
    }
    if let Some(e) = broken {
        tracing::error!(error = %e, "PostgreSQL: the batch did not commit; it is not acknowledged");
    }
    drop(done); // answers `unavailable`
    if conn.batch_execute("ROLLBACK").await.is_err() {
        // Never hand a connection in an unknown state back to the pool.
        if let Some(c) = slot.take() {
            drop(Object::take(c));
        }
    }
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

const AGENT_COLS: &str = "agent_id, handle, role, created_at, created_by";
const ROOM_COLS: &str = "name, kind, private, created_by, created_at, retention";
const TOKEN_COLS: &str = "hash, token_id, agent_id, created_at";

/// Turns a row into a record.
type RowFn<T> = fn(&Row) -> std::result::Result<T, PgError>;

fn agent_row(r: &Row) -> std::result::Result<AgentRecord, PgError> {
    let role: String = r.try_get(2)?;
    Ok(AgentRecord {
        agent_id: r.try_get(0)?,
        handle: r.try_get(1)?,
        role: Role::parse(&role).unwrap_or(Role::Worker),
        created_at: uint(r.try_get(3)?),
        created_by: r.try_get(4)?,
    })
}

fn room_row(r: &Row) -> std::result::Result<RoomRecord, PgError> {
    let kind: String = r.try_get(1)?;
    Ok(RoomRecord {
        name: r.try_get(0)?,
        kind: parse_kind(&kind),
        private: r.try_get(2)?,
        created_by: r.try_get(3)?,
        created_at: uint(r.try_get(4)?),
        retention: r
            .try_get::<_, Option<i64>>(5)?
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
    })
}

fn token_row(r: &Row) -> std::result::Result<TokenRecord, PgError> {
    Ok(TokenRecord {
        hash: r.try_get(0)?,
        token_id: r.try_get(1)?,
        agent_id: r.try_get(2)?,
        created_at: uint(r.try_get(3)?),
    })
}

fn envelope(text: &str) -> Result<Envelope> {
    serde_json::from_str(text).map_err(|e| unavailable(format!("corrupt stored envelope: {e}")))
}

/// The stored JSON of the envelope a draft becomes, split around the value
/// of `seq` so the database can put in the `seq` it assigns:
/// `before + seq + after`. Done by the caller, off the writer task.
fn split_envelope(draft: &MessageDraft) -> Result<(String, String)> {
    const MARK: &str = "\"seq\":0";
    let text = serde_json::to_string(&draft.clone().into_envelope(0)).map_err(unavailable)?;
    // `seq` follows `id`, a JSON string, in which every `"` is escaped; so
    // the first `"seq":0` is the envelope's own field.
    let at = text
        .find(MARK)
        .map(|i| i + MARK.len() - 1)
        .filter(|&i| text[i + 1..].starts_with(','))
        .ok_or_else(|| unavailable("cannot place seq in the stored envelope"))?;
    Ok((text[..at].to_owned(), text[at + 1..].to_owned()))
}

struct AppendData {
    draft: MessageDraft,
    limits: AppendLimits,
    before: String,
    after: String,
}

/// One statement appends: take the room's next `seq` (locking its
/// `room_seq` row), claim the dedupe key, and insert the message only if the
/// claim held. The dedupe claim is an `INSERT … ON CONFLICT DO UPDATE` that
/// replaces the row only when the window has passed; otherwise it returns
/// the stored original. That upsert, rather than an advisory lock, is what
/// makes concurrent appends with the same key store one message: a second
/// one waits on the first's uncommitted row, then sees it (in READ
/// COMMITTED, `ON CONFLICT` acts on the newest committed row, not the
/// statement's snapshot), so no hash collisions and no extra round trip.
/// The room lock comes first, the key after, on every path, which keeps the
/// lock order the same on every node.
const APPEND: &str = "\
WITH s AS (
    INSERT INTO room_seq (room, last_seq) VALUES ($1, 1)
    ON CONFLICT (room) DO UPDATE SET last_seq = room_seq.last_seq + 1
    RETURNING last_seq
), d AS (
    INSERT INTO dedupe AS x (from_id, key, ts, envelope)
    SELECT $5, $6, $2, $3::text || s.last_seq::text || $4::text FROM s
    WHERE $6::text IS NOT NULL
    ON CONFLICT (from_id, key) DO UPDATE SET
        ts = CASE WHEN $7::bigint = 0 OR excluded.ts - x.ts >= $7::bigint
                  THEN excluded.ts ELSE x.ts END,
        envelope = CASE WHEN $7::bigint = 0 OR excluded.ts - x.ts >= $7::bigint
                        THEN excluded.envelope ELSE x.envelope END
    RETURNING x.envelope
), m AS (
    INSERT INTO messages (room, seq, ts, envelope)
    SELECT $1, s.last_seq, $2, $3::text || s.last_seq::text || $4::text FROM s
    WHERE $6::text IS NULL
       OR EXISTS (SELECT 1 FROM d WHERE d.envelope = $3::text || s.last_seq::text || $4::text)
    RETURNING seq
)
SELECT s.last_seq, EXISTS (SELECT 1 FROM m), (SELECT d.envelope FROM d) FROM s";

fn append<'a>(c: &'a Conn, j: &'a AppendData) -> BoxFuture<'a, R<Appended>> {
    Box::pin(async move {
        let d = &j.draft;
        let row = one(
            c,
            APPEND,
            &[
                &d.room,
                &int(d.ts),
                &j.before,
                &j.after,
                &d.from_id,
                &d.dedupe_key,
                &int(j.limits.dedupe_window_ms),
            ],
        )
        .await?;
        let seq: i64 = row.try_get(0)?;
        if row.try_get::<_, bool>(1)? {
            return Ok(Appended::New(Arc::new(d.clone().into_envelope(uint(seq)))));
        }
        // A retry inside the window: give back the seq just taken (nothing
        // else changed) and answer with the original, after the commit like
        // any write, since the original may be in this very batch.
        let original: Option<String> = row.try_get(2)?;
        c.batch_execute(UNDO).await?;
        let original =
            original.ok_or_else(|| unavailable("append: neither stored nor a duplicate"))?;
        Ok(Appended::Duplicate(Arc::new(envelope(&original)?)))
    })
}

fn insert_agent<'a>(c: &'a Conn, a: &'a AgentRecord) -> BoxFuture<'a, R<()>> {
    Box::pin(async move {
        let handle = a.handle.to_ascii_lowercase();
        let n = exec(
            c,
            "INSERT INTO agents (agent_id, handle, role, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[
                &a.agent_id,
                &handle,
                &a.role.as_str(),
                &int(a.created_at),
                &a.created_by,
            ],
        )
        .await?;
        if n == 1 {
            return Ok(());
        }
        let id_taken = opt(
            c,
            "SELECT 1 FROM agents WHERE agent_id = $1",
            &[&a.agent_id],
        )
        .await?
        .is_some();
        Err(Error::conflict(if id_taken {
            format!("agent id '{}' is taken", a.agent_id)
        } else {
            format!("handle '{handle}' is taken")
        })
        .into())
    })
}

fn set_handle<'a>(c: &'a Conn, (id, h): &'a (String, String)) -> BoxFuture<'a, R<String>> {
    Box::pin(async move {
        let old = opt(
            c,
            "SELECT handle FROM agents WHERE agent_id = $1 FOR UPDATE",
            &[id],
        )
        .await?;
        let Some(old) = old else {
            return Err(Error::not_found(format!("no agent '{id}'")).into());
        };
        let old: String = old.try_get(0)?;
        let holder = opt(c, "SELECT agent_id FROM agents WHERE handle = $1", &[h]).await?;
        let taken = || Fail::Store(Error::conflict(format!("handle '{h}' is taken")));
        if let Some(holder) = holder {
            if holder.try_get::<_, String>(0)? != *id {
                return Err(taken());
            }
        }
        match exec(
            c,
            "UPDATE agents SET handle = $1 WHERE agent_id = $2",
            &[h, id],
        )
        .await
        {
            Ok(_) => Ok(old),
            // Taken by another node since the check above.
            Err(e) if is_unique_violation(&e) => Err(taken()),
            Err(e) => Err(e.into()),
        }
    })
}

#[async_trait]
impl Store for PostgresStore {
    async fn insert_agent(&self, a: AgentRecord) -> Result<()> {
        self.write(None, a, insert_agent).await
    }

    async fn get_agent(&self, agent_id: &str) -> Result<Option<AgentRecord>> {
        self.read_opt(
            &format!("SELECT {AGENT_COLS} FROM agents WHERE agent_id = $1"),
            &[&agent_id],
            agent_row,
        )
        .await
    }

    async fn find_agent_by_handle(&self, handle: &str) -> Result<Option<AgentRecord>> {
        self.read_opt(
            &format!("SELECT {AGENT_COLS} FROM agents WHERE handle = $1"),
            &[&handle.to_ascii_lowercase()],
            agent_row,
        )
        .await
    }

    async fn list_agents(&self) -> Result<Vec<AgentRecord>> {
        self.read_all(
            &format!("SELECT {AGENT_COLS} FROM agents ORDER BY agent_id"),
            &[],
            agent_row,
        )
        .await
    }

    async fn set_handle(&self, agent_id: &str, handle: &str) -> Result<String> {
        let data = (agent_id.to_owned(), handle.to_ascii_lowercase());
        self.write(None, data, set_handle).await
    }

    async fn set_role(&self, agent_id: &str, role: Role) -> Result<Option<Role>> {
        let data = (agent_id.to_owned(), role.as_str().to_owned());
        self.write(None, data, |c, (id, role)| {
            Box::pin(async move {
                let old = opt(
                    c,
                    "SELECT role FROM agents WHERE agent_id = $1 FOR UPDATE",
                    &[id],
                )
                .await?;
                let Some(old) = old else { return Ok(None) };
                let old: String = old.try_get(0)?;
                exec(
                    c,
                    "UPDATE agents SET role = $1 WHERE agent_id = $2",
                    &[role, id],
                )
                .await?;
                Ok(Some(Role::parse(&old).unwrap_or(Role::Worker)))
            })
        })
        .await
    }

    async fn remove_agent(&self, agent_id: &str) -> Result<bool> {
        self.write(None, agent_id.to_owned(), |c, id| {
            Box::pin(async move {
                let n = exec(c, "DELETE FROM agents WHERE agent_id = $1", &[id]).await?;
                if n == 0 {
                    return Ok(false);
                }
                for sql in [
                    "DELETE FROM tokens WHERE agent_id = $1",
                    "DELETE FROM members WHERE agent_id = $1",
                    "DELETE FROM cursors WHERE agent_id = $1",
                ] {
                    exec(c, sql, &[id]).await?;
                }
                Ok(true)
            })
        })
        .await
    }

    async fn insert_token(&self, t: TokenRecord) -> Result<()> {
        self.write(None, t, |c, t| {
            Box::pin(async move {
                match exec(
                    c,
                    "INSERT INTO tokens (hash, token_id, agent_id, created_at) VALUES ($1, $2, $3, $4)",
                    &[&t.hash, &t.token_id, &t.agent_id, &int(t.created_at)],
                )
                .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if is_unique_violation(&e) => {
                        Err(Error::conflict("a token with this hash exists").into())
                    }
                    Err(e) => Err(e.into()),
                }
            })
        })
        .await
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        self.read_opt(
            &format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = $1"),
            &[&hash],
            token_row,
        )
        .await
    }

    async fn list_tokens(&self, agent_id: &str) -> Result<Vec<TokenRecord>> {
        let c = self.conn().await?;
        let sql =
            format!("SELECT {TOKEN_COLS} FROM tokens WHERE agent_id = $1 ORDER BY created_at");
        rows(&c, &sql, &[&agent_id])
            .await
            .db()?
            .iter()
            .map(token_row)
            .collect::<std::result::Result<_, _>>()
            .db()
    }

    async fn revoke_tokens(&self, agent_id: &str, token_id: Option<&str>) -> Result<Vec<String>> {
        let data = (agent_id.to_owned(), token_id.map(str::to_owned));
        self.write(None, data, |c, (id, tid)| {
            Box::pin(async move {
                let revoked = rows(
                    c,
                    "DELETE FROM tokens WHERE agent_id = $1 AND ($2::text IS NULL OR token_id = $2) \
                     RETURNING token_id",
                    &[id, tid],
                )
                .await?;
                Ok(revoked
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<std::result::Result<_, _>>()?)
            })
        })
        .await
    }

    async fn create_room(&self, r: RoomRecord) -> Result<()> {
        self.write(None, r, |c, r| {
            Box::pin(async move {
                let n = exec(
                    c,
                    "INSERT INTO rooms (name, kind, private, created_by, created_at, retention) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
                    &[
                        &r.name,
                        &kind_str(r.kind),
                        &r.private,
                        &r.created_by,
                        &int(r.created_at),
                        &r.retention.map(i64::from),
                    ],
                )
                .await?;
                if n == 0 {
                    return Err(Error::conflict(format!("room '{}' exists", r.name)).into());
                }
                Ok(())
            })
        })
        .await
    }

    async fn get_room(&self, name: &str) -> Result<Option<RoomRecord>> {
        self.read_opt(
            &format!("SELECT {ROOM_COLS} FROM rooms WHERE name = $1"),
            &[&name],
            room_row,
        )
        .await
    }

    async fn list_rooms(&self) -> Result<Vec<RoomRecord>> {
        self.read_all(
            &format!("SELECT {ROOM_COLS} FROM rooms ORDER BY name"),
            &[],
            room_row,
        )
        .await
    }

    async fn add_member(&self, room: &str, agent_id: &str) -> Result<bool> {
        let data = (room.to_owned(), agent_id.to_owned());
        self.write(None, data, |c, (r, a)| {
            Box::pin(async move {
                let n = exec(
                    c,
                    "INSERT INTO members (room, agent_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[r, a],
                )
                .await?;
                Ok(n == 1)
            })
        })
        .await
    }

    async fn remove_member(&self, room: &str, agent_id: &str) -> Result<bool> {
        let data = (room.to_owned(), agent_id.to_owned());
        self.write(None, data, |c, (r, a)| {
            Box::pin(async move {
                let n = exec(
                    c,
                    "DELETE FROM members WHERE room = $1 AND agent_id = $2",
                    &[r, a],
                )
                .await?;
                Ok(n == 1)
            })
        })
        .await
    }

    async fn delete_room(&self, name: &str) -> Result<bool> {
        let room = Some(name.to_owned());
        self.write(room, name.to_owned(), |c, r| {
            Box::pin(async move {
                // The room's seq row first: the lock appends take, in the
                // same order as theirs.
                exec(c, "DELETE FROM room_seq WHERE room = $1", &[r]).await?;
                let n = exec(c, "DELETE FROM rooms WHERE name = $1", &[r]).await?;
                for sql in [
                    "DELETE FROM messages WHERE room = $1",
                    "DELETE FROM members WHERE room = $1",
                    "DELETE FROM cursors WHERE room = $1",
                    // A retry of a send into the deleted room must not find
                    // the deleted message as its original.
                    "DELETE FROM dedupe WHERE (envelope::jsonb)->>'to_id' = $1",
                ] {
                    exec(c, sql, &[r]).await?;
                }
                Ok(n == 1)
            })
        })
        .await
    }

    async fn members(&self, room: &str) -> Result<Vec<String>> {
        let c = self.conn().await?;
        rows(
            &c,
            "SELECT agent_id FROM members WHERE room = $1 ORDER BY agent_id",
            &[&room],
        )
        .await
        .db()?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()
        .db()
    }

    async fn is_member(&self, room: &str, agent_id: &str) -> Result<bool> {
        let c = self.conn().await?;
        Ok(opt(
            &c,
            "SELECT 1 FROM members WHERE room = $1 AND agent_id = $2",
            &[&room, &agent_id],
        )
        .await
        .db()?
        .is_some())
    }

    async fn rooms_of(&self, agent_id: &str) -> Result<Vec<String>> {
        let c = self.conn().await?;
        rows(
            &c,
            "SELECT room FROM members WHERE agent_id = $1 ORDER BY room",
            &[&agent_id],
        )
        .await
        .db()?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()
        .db()
    }

    async fn append_message(&self, draft: MessageDraft, limits: AppendLimits) -> Result<Appended> {
        let (before, after) = split_envelope(&draft)?;
        let room = Some(draft.room.clone());
        let data = AppendData {
            draft,
            limits,
            before,
            after,
        };
        self.write(room, data, append).await
    }

    async fn history(&self, room: &str, after_seq: u64, limit: usize) -> Result<HistoryPage> {
        let c = self.conn().await?;
        // One statement, so one snapshot: the page, the oldest kept and the
        // newest assigned seq agree with each other.
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let row = one(
            &c,
            "SELECT (SELECT MIN(seq) FROM messages WHERE room = $1), \
                    (SELECT last_seq FROM room_seq WHERE room = $1), \
                    ARRAY(SELECT envelope FROM messages WHERE room = $1 AND seq > $2 \
                          ORDER BY seq LIMIT $3)",
            &[&room, &int(after_seq), &fetch],
        )
        .await
        .db()?;
        let first: Option<i64> = row.try_get(0).db()?;
        let last: Option<i64> = row.try_get(1).db()?;
        let texts: Vec<String> = row.try_get(2).db()?;
        let has_more = texts.len() > limit;
        let messages = texts
            .iter()
            .take(limit)
            .map(|t| envelope(t).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(HistoryPage {
            messages,
            first_available_seq: first.map_or(0, uint),
            last_seq: last.map_or(0, uint),
            has_more,
        })
    }

    async fn last_seq(&self, room: &str) -> Result<u64> {
        let c = self.conn().await?;
        let row = opt(
            &c,
            "SELECT last_seq FROM room_seq WHERE room = $1",
            &[&room],
        )
        .await
        .db()?;
        Ok(match row {
            Some(r) => uint(r.try_get(0).db()?),
            None => 0,
        })
    }

    async fn advance_cursor(&self, agent_id: &str, room: &str, seq: u64) -> Result<u64> {
        let data = (agent_id.to_owned(), room.to_owned(), int(seq));
        self.write(None, data, |c, (a, r, seq)| {
            Box::pin(async move {
                let row = one(
                    c,
                    "INSERT INTO cursors (agent_id, room, seq) VALUES ($1, $2, $3) \
                     ON CONFLICT (agent_id, room) DO UPDATE SET seq = GREATEST(cursors.seq, excluded.seq) \
                     RETURNING seq",
                    &[a, r, seq],
                )
                .await?;
                Ok(uint(row.try_get(0)?))
            })
        })
        .await
    }

    async fn cursors(&self, agent_id: &str) -> Result<HashMap<String, u64>> {
        let c = self.conn().await?;
        rows(
            &c,
            "SELECT room, seq FROM cursors WHERE agent_id = $1",
            &[&agent_id],
        )
        .await
        .db()?
        .iter()
        .map(|r| Ok((r.try_get(0)?, uint(r.try_get(1)?))))
        .collect::<std::result::Result<_, _>>()
        .db()
    }

    async fn trim_messages(
        &self,
        room: &str,
        before_ts: u64,
        keep_last: Option<u32>,
    ) -> Result<u64> {
        let data = (room.to_owned(), int(before_ts), keep_last.map(i64::from));
        self.write(None, data, |c, (r, before, keep)| {
            Box::pin(async move {
                let mut n = exec(
                    c,
                    "DELETE FROM messages WHERE room = $1 AND ts < $2",
                    &[r, before],
                )
                .await?;
                if let Some(keep) = keep {
                    n += exec(
                        c,
                        "DELETE FROM messages WHERE room = $1 AND seq <= \
                         (SELECT last_seq FROM room_seq WHERE room = $1) - $2",
                        &[r, keep],
                    )
                    .await?;
                }
                Ok(n)
            })
        })
        .await
    }

    async fn expire_dedupe(&self, before_ts: u64) -> Result<u64> {
        self.write(None, int(before_ts), |c, before| {
            Box::pin(
                async move { Ok(exec(c, "DELETE FROM dedupe WHERE ts < $1", &[before]).await?) },
            )
        })
        .await
    }

    async fn get_setting(&self, key: &str) -> Result<Option<Value>> {
        let c = self.conn().await?;
        let row = opt(&c, "SELECT value FROM settings WHERE key = $1", &[&key])
            .await
            .db()?;
        match row {
            Some(r) => {
                let text: String = r.try_get(0).db()?;
                serde_json::from_str(&text).map(Some).map_err(unavailable)
            }
            None => Ok(None),
        }
    }

    async fn set_setting(&self, key: &str, value: Value) -> Result<()> {
        let data = (key.to_owned(), value.to_string());
        self.write(None, data, |c, (k, v)| {
            Box::pin(async move {
                exec(
                    c,
                    "INSERT INTO settings (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[k, v],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        let c = self.conn().await?;
        c.simple_query("SELECT 1").await.db()?;
        Ok(())
    }

    async fn delete_message(
        &self,
        room: &str,
        seq: u64,
        by: &str,
        at: u64,
    ) -> Result<Option<Envelope>> {
        let data = (room.to_owned(), int(seq), by.to_owned(), at);
        self.write(Some(room.to_owned()), data, |c, (room, seq, by, at)| {
            Box::pin(async move {
                let row = opt(
                    c,
                    "SELECT envelope FROM messages WHERE room = $1 AND seq = $2 FOR UPDATE",
                    &[room, seq],
                )
                .await
                .db()?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let text: String = row.try_get(0).db()?;
                let mut env = envelope(&text)?;
                if !env.deleted {
                    env.tombstone(by, *at);
                    let text = serde_json::to_string(&env).map_err(unavailable)?;
                    exec(
                        c,
                        "UPDATE messages SET envelope = $3 WHERE room = $1 AND seq = $2",
                        &[room, seq, &text],
                    )
                    .await
                    .db()?;
                }
                Ok(Some(env))
            })
        })
        .await
    }

    async fn append_audit(&self, e: AuditEntry) -> Result<AuditEntry> {
        let mut out = self.append_audit_batch(vec![e]).await?;
        out.pop()
            .ok_or_else(|| unavailable("the audit insert returned nothing"))
    }

    async fn append_audit_batch(&self, entries: Vec<AuditEntry>) -> Result<Vec<AuditEntry>> {
        // One job: the entries go in together, in order, in one transaction.
        self.write(None, entries, |c, entries| {
            Box::pin(async move {
                let mut stored = Vec::with_capacity(entries.len());
                for e in entries {
                    let row = one(
                        c,
                        "INSERT INTO audit (ts, type, actor, action, target, reason, meta, prev_hash, hash) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                        &[
                            &int(e.ts),
                            &e.kind,
                            &e.actor,
                            &e.action,
                            &e.target,
                            &e.reason,
                            &e.meta.to_string(),
                            &e.prev_hash,
                            &e.hash,
                        ],
                    )
                    .await?;
                    let mut s = e.clone();
                    s.id = uint(row.try_get(0)?);
                    stored.push(s);
                }
                Ok(stored)
            })
        })
        .await
    }

    async fn list_audit(&self, f: AuditFilter) -> Result<Vec<AuditEntry>> {
        let c = self.conn().await?;
        // Newest `limit`, or with `after_id` the oldest `limit` after it.
        let order = if f.after_id.is_some() { "ASC" } else { "DESC" };
        let found = rows(
            &c,
            &format!(
                "SELECT id, ts, type, actor, action, target, reason, meta, prev_hash, hash FROM audit \
                 WHERE ($1::text IS NULL OR type = $1) AND ($2::text IS NULL OR actor = $2) \
                   AND ts >= $3 AND id > $5 \
                 ORDER BY id {order} LIMIT $4"
            ),
            &[
                &f.kind,
                &f.actor,
                &int(f.since_ms.unwrap_or(0)),
                &i64::try_from(f.limit).unwrap_or(i64::MAX),
                &int(f.after_id.unwrap_or(0)),
            ],
        )
        .await
        .db()?;
        let mut out = found
            .iter()
            .map(|r| {
                let meta: String = r.try_get(7)?;
                Ok(AuditEntry {
                    id: uint(r.try_get(0)?),
                    ts: uint(r.try_get(1)?),
                    kind: r.try_get(2)?,
                    actor: r.try_get(3)?,
                    action: r.try_get(4)?,
                    target: r.try_get(5)?,
                    reason: r.try_get(6)?,
                    meta: serde_json::from_str(&meta).unwrap_or(Value::Null),
                    prev_hash: r.try_get(8)?,
                    hash: r.try_get(9)?,
                })
            })
            .collect::<std::result::Result<Vec<_>, PgError>>()
            .db()?;
        if f.after_id.is_none() {
            out.reverse();
        }
        Ok(out)
    }

    async fn insert_task(&self, t: TaskRecord) -> Result<TaskInsert> {
        self.write(None, t, tasks::insert).await
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<TaskRecord>> {
        self.read_opt(
            &format!("SELECT {} FROM tasks WHERE task_id = $1", tasks::COLS),
            &[&task_id],
            tasks::raw,
        )
        .await?
        .map(tasks::decode)
        .transpose()
    }

    async fn update_task(&self, t: TaskRecord) -> Result<Option<TaskRecord>> {
        self.write(None, t, tasks::update).await
    }

    async fn list_tasks(&self, f: TaskFilter) -> Result<Vec<TaskRecord>> {
        let (state, limit) = tasks::list_params(&f);
        let rows = self
            .read_all(
                tasks::LIST,
                &[&state, &f.target, &f.involving, &f.after, &limit],
                tasks::raw,
            )
            .await?;
        tasks::decode_all(rows)
    }

    async fn due_tasks(
        &self,
        target: Option<&str>,
        now: u64,
        limit: usize,
    ) -> Result<Vec<TaskRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .read_all(tasks::DUE, &[&target, &int(now), &limit], tasks::raw)
            .await?;
        tasks::decode_all(rows)
    }

    async fn expired_leases(&self, now: u64, limit: usize) -> Result<Vec<TaskRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .read_all(tasks::EXPIRED, &[&int(now), &limit], tasks::raw)
            .await?;
        tasks::decode_all(rows)
    }

    async fn count_tasks(&self, target: &str, states: &[TaskState]) -> Result<u64> {
        let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let n = self
            .read_all(
                "SELECT COUNT(*) FROM tasks WHERE target = $1 AND state = ANY($2)",
                &[&target, &states],
                |r| r.try_get::<_, i64>(0),
            )
            .await?;
        Ok(uint(n.first().copied().unwrap_or(0)))
    }

    async fn task_counts(&self) -> Result<Vec<TaskCount>> {
        let rows = self.read_all(tasks::COUNTS, &[], tasks::count_row).await?;
        tasks::counts(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawnet_core::store::conformance::draft;

    #[test]
    fn the_envelope_splits_around_its_seq() {
        let mut d = draft("dev", "a\"seq\":0,", 7, Some("k"));
        d.id = "x\"seq\":0,y".into();
        d.payload
            .insert("seq".into(), serde_json::json!({"seq": 0}));
        let (before, after) = split_envelope(&d).expect("split");
        let text = format!("{before}42{after}");
        let env: Envelope = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(env, d.into_envelope(42));
    }
}
