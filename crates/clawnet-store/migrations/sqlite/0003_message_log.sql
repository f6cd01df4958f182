-- Messages land in insertion order, so one commit of many rooms' messages
-- dirties a few tail pages instead of one B-tree page per room (which made
-- the WAL grow by three 4 KiB frames per message). Per-room order lives in
-- msg_index, which the writer fills in chunks; rows after index_mark.upto are
-- not in it yet and readers find them by scanning that short tail.
-- The writer hands out ids itself, above both MAX(id) and index_mark.upto,
-- so no id is reused after trimming and no new row falls at or below upto.
-- room_seq is now written only when trimming: the last seq of a room is the
-- largest of room_seq, msg_index and the tail.
CREATE TABLE message_log (
    id         INTEGER PRIMARY KEY,
    room       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    ts         INTEGER NOT NULL,
    envelope   TEXT NOT NULL,
    from_id    TEXT,
    dedupe_key TEXT
);
INSERT INTO message_log (room, seq, ts, envelope, from_id, dedupe_key)
    SELECT room, seq, ts, envelope, from_id, dedupe_key FROM messages ORDER BY ts, room, seq;
DROP TABLE messages;
CREATE TABLE msg_index (
    room TEXT NOT NULL,
    seq  INTEGER NOT NULL,
    id   INTEGER NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
INSERT INTO msg_index (room, seq, id) SELECT room, seq, id FROM message_log;
CREATE TABLE index_mark (
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    upto INTEGER NOT NULL
);
INSERT INTO index_mark (one, upto) VALUES (1, (SELECT COALESCE(MAX(id), 0) FROM message_log));
