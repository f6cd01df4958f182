CREATE TABLE agents (
    agent_id   TEXT PRIMARY KEY,
    handle     TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT
);
CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    token_id   TEXT NOT NULL,
    agent_id   TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX tokens_agent ON tokens (agent_id);
CREATE TABLE rooms (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    private    INTEGER NOT NULL,
    created_by TEXT,
    created_at INTEGER NOT NULL,
    retention  INTEGER
);
CREATE TABLE members (
    room     TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    PRIMARY KEY (room, agent_id)
) WITHOUT ROWID;
CREATE INDEX members_agent ON members (agent_id, room);
-- The last seq handed out per room. Kept apart from messages so trimming
-- history never lets a seq be reused.
CREATE TABLE room_seq (
    room     TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE messages (
    room     TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    ts       INTEGER NOT NULL,
    envelope TEXT NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE INDEX messages_ts ON messages (ts);
CREATE TABLE dedupe (
    from_id  TEXT NOT NULL,
    key      TEXT NOT NULL,
    ts       INTEGER NOT NULL,
    envelope TEXT NOT NULL,
    PRIMARY KEY (from_id, key)
) WITHOUT ROWID;
CREATE INDEX dedupe_ts ON dedupe (ts);
CREATE TABLE cursors (
    agent_id TEXT NOT NULL,
    room     TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (agent_id, room)
) WITHOUT ROWID;
CREATE TABLE audit (
    id     INTEGER PRIMARY KEY,
    ts     INTEGER NOT NULL,
    type   TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT,
    meta   TEXT NOT NULL
);
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
