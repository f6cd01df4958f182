//! The audit trail's hash chain and its one writer (SPEC §6).
//!
//! Every entry carries the hash of the entry before it: `hash` is SHA-256
//! over `prev_hash` and a canonical serialization of the entry's fields
//! ([`entry_hash`]), and the first entry's `prev_hash` is 64 zeros
//! ([`GENESIS`]). Editing an entry changes its hash; removing or reordering
//! entries breaks the link from the next one. [`verify`] walks a JSONL file
//! and names the first entry that does not check out.
//!
//! One task, the writer ([`AuditWriter`]), hands out `prev_hash`/`hash` in
//! the order entries were queued, writes each batch to the store (one
//! transaction) and appends it to the JSONL file, one JSON object per line,
//! flushed at the end of every batch. Callers await a place in a bounded
//! queue, never the commit: a full queue slows them down, nothing is dropped.
//! Entries still queued when the process dies are lost.

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use clawnet_proto::ErrorCode;

use crate::error::{Error, Result};
use crate::store::{AuditEntry, AuditFilter, Store};

/// The `prev_hash` of the first entry of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Entries waiting for the writer; beyond this, [`AuditWriter::append`]
/// waits (backpressure, never a drop).
const QUEUE: usize = 65_536;
/// Most entries the writer takes into one batch (one commit, one flush).
const BATCH: usize = 1024;

/// The bytes an entry's hash covers, in a fixed order. `meta` goes in as its
/// JSON text, so a verifier hashes the very text the file holds (a float
/// parsed and printed again need not come out the same).
#[derive(Serialize)]
struct Canonical<'a> {
    ts: u64,
    #[serde(rename = "type")]
    kind: &'a str,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    reason: Option<&'a str>,
    meta: &'a RawValue,
}

fn digest(prev_hash: &str, c: &Canonical<'_>) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    // Serializing strings, integers and raw JSON into a Vec cannot fail.
    h.update(serde_json::to_vec(c).unwrap_or_default());
    hex::encode(h.finalize())
}

/// The hash of `e` when it follows an entry whose hash is `prev_hash`:
/// lower-case hex SHA-256 over `prev_hash`, a newline and the compact JSON
/// of `{ts, type, actor, action, target, reason, meta}` in that order.
/// `id`, `prev_hash` and `hash` themselves are not covered (`id` is the
/// store's row number; the link is `prev_hash`, which is hashed first).
pub fn entry_hash(prev_hash: &str, e: &AuditEntry) -> String {
    // A `Value` always serializes; `null` covers the impossible failure.
    let meta =
        serde_json::value::to_raw_value(&e.meta).or_else(|_| RawValue::from_string("null".into()));
    let Ok(meta) = meta else {
        return String::new();
    };
    digest(
        prev_hash,
        &Canonical {
            ts: e.ts,
            kind: &e.kind,
            actor: &e.actor,
            action: &e.action,
            target: &e.target,
            reason: e.reason.as_deref(),
            meta: &meta,
        },
    )
}

/// What [`verify`] found wrong with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The entry's fields do not give its `hash`: it was changed.
    Edited,
    /// The entry's `prev_hash` is not the previous line's `hash`: an entry
    /// before it was removed, or entries were moved.
    RemovedOrReordered,
    /// The line is not an audit entry (cut short, or not JSON).
    Unreadable,
}

impl Problem {
    /// How the CLI says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Edited => "edited",
            Self::RemovedOrReordered => "removed or reordered",
            Self::Unreadable => "unreadable",
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first entry that does not check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEntry {
    /// Line number in the file, from 1.
    pub line: usize,
    /// The entry's id, if the line could be read.
    pub id: Option<u64>,
    /// What is wrong.
    pub what: Problem,
    /// Details for people (expected and found hashes, parse error).
    pub detail: String,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries that checked out before the first problem (all, if none).
    pub entries: usize,
    /// The `hash` of the last entry that checked out (the chain head).
    pub last_hash: String,
    /// The first problem, if any.
    pub first_bad: Option<BadEntry>,
}

impl VerifyReport {
    /// No problem found.
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// A line of the file as written, `meta` kept as its text.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(default)]
    id: u64,
    ts: u64,
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    actor: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    action: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    target: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    reason: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    meta: &'a RawValue,
    prev_hash: String,
    hash: String,
}

/// Walk a JSONL audit file: recompute every entry's hash and check that each
/// `prev_hash` is the previous line's `hash` (the first line's must be
/// [`GENESIS`]). Stops at the first problem. Blank lines are skipped.
pub fn verify(reader: impl BufRead) -> VerifyReport {
    verify_from(reader, Some(GENESIS))
}

/// Like [`verify`], for a file whose first entry continues an earlier chain:
/// its `prev_hash` must be `first_prev` (`None` accepts any).
pub fn verify_from(mut reader: impl BufRead, first_prev: Option<&str>) -> VerifyReport {
    let mut report = VerifyReport {
        entries: 0,
        last_hash: first_prev.unwrap_or(GENESIS).to_owned(),
        first_bad: None,
    };
    let mut expect_prev: Option<String> = first_prev.map(str::to_owned);
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        line_no += 1;
        let bad = |what, id, detail: String| BadEntry {
            line: line_no,
            id,
            what,
            detail,
        };
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                report.first_bad = Some(bad(Problem::Unreadable, None, e.to_string()));
                break;
            }
        }
        let complete = buf.last() == Some(&b'\n');
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim_end_matches(['\n', '\r']),
            Err(e) => {
                report.first_bad = Some(bad(Problem::Unreadable, None, e.to_string()));
                break;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        let l: Line<'_> = match serde_json::from_str(text) {
            Ok(l) => l,
            Err(e) => {
                let why = if complete {
                    format!("not an audit entry: {e}")
                } else {
                    format!("cut short (no newline at the end): {e}")
                };
                report.first_bad = Some(bad(Problem::Unreadable, None, why));
                break;
            }
        };
        let computed = digest(
            &l.prev_hash,
            &Canonical {
                ts: l.ts,
                kind: &l.kind,
                actor: &l.actor,
                action: &l.action,
                target: &l.target,
                reason: l.reason.as_deref(),
                meta: l.meta,
            },
        );
        if let Some(want) = &expect_prev {
            if &l.prev_hash != want {
                report.first_bad = Some(bad(
                    Problem::RemovedOrReordered,
                    Some(l.id),
                    format!(
                        "prev_hash {} does not match the previous entry's hash {}",
                        l.prev_hash, want
                    ),
                ));
                break;
            }
        }
        if computed != l.hash {
            report.first_bad = Some(bad(
                Problem::Edited,
                Some(l.id),
                format!("hash {} does not match its fields ({computed})", l.hash),
            ));
            break;
        }
        report.entries += 1;
        report.last_hash = l.hash.clone();
        expect_prev = Some(l.hash);
    }
    report
}

/// What the writer is sent.
#[derive(Debug)]
enum Item {
    Entry(Box<AuditEntry>),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// The queue into the audit writer task (cheap to clone).
#[derive(Debug, Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Item>,
}

impl AuditWriter {
    /// Find where the chain stands (the last line of `file` if it has one,
    /// else the store's newest entry), open the file for appending, and
    /// start the writer task.
    pub async fn start(store: Arc<dyn Store>, file: Option<PathBuf>) -> Result<Self> {
        let mut head = None;
        let out = match &file {
            Some(path) => {
                let p = path.clone();
                let (f, h) = tokio::task::spawn_blocking(move || open_file(&p))
                    .await
                    .map_err(|e| Error::unavailable(format!("audit file: {e}")))??;
                head = h;
                Some(std::io::BufWriter::with_capacity(64 * 1024, f))
            }
            None => None,
        };
        let head = match head {
            Some(h) => h,
            None => store
                .list_audit(AuditFilter {
                    limit: 1,
                    ..Default::default()
                })
                .await?
                .pop()
                .map(|e| e.hash)
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| GENESIS.to_owned()),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(rx, store, out, file, head));
        Ok(Self { tx })
    }

    /// Queue an entry; waits only while the queue is full.
    pub async fn append(&self, entry: AuditEntry) {
        if self.tx.send(Item::Entry(Box::new(entry))).await.is_err() {
            tracing::error!("the audit writer stopped; entry lost");
        }
    }

    /// Wait until everything queued so far is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Item::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Open (creating it and its directories) the audit file for appending, and
/// read the hash of its last entry. A last line cut short by a crash is
/// ended with a newline, kept as it is (it is evidence) and skipped: the
/// chain continues from the last complete entry, and `verify` reports the
/// cut line.
fn open_file(path: &Path) -> Result<(std::fs::File, Option<String>)> {
    // Only at start, never shown to a client: say what and where.
    let fail = |e: std::io::Error| {
        Error::new(
            ErrorCode::Unavailable,
            format!("cannot open the audit file {}: {e}", path.display()),
        )
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(fail)?;
    let head = last_hash(&mut f).map_err(fail)?;
    let len = f.seek(SeekFrom::End(0)).map_err(fail)?;
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::End(-1)).map_err(fail)?;
        f.read_exact(&mut last).map_err(fail)?;
        if last[0] != b'\n' {
            tracing::warn!(path = %path.display(), "the audit file's last line is incomplete; ending it");
            f.write_all(b"\n").map_err(fail)?;
        }
    }
    Ok((f, head))
}

/// The `hash` of the last complete entry of the file, reading backwards from
/// its end in chunks.
fn last_hash(f: &mut std::fs::File) -> std::io::Result<Option<String>> {
    let len = f.seek(SeekFrom::End(0))?;
    let mut end = len;
    let mut tail: Vec<u8> = Vec::new();
    let mut first = true;
    const CHUNK: u64 = 64 * 1024;
    loop {
        // Complete lines in `tail`, newest first.
        let start = end.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        end = start;
        // Lines wholly inside `tail` (the first may be partial unless start == 0).
        let mut lines: Vec<&[u8]> = tail.split(|b| *b == b'\n').collect();
        // The last piece has no newline after it: empty, or a line cut short
        // (skipped), or a whole entry whose newline never made it (used).
        let unended = lines.pop().unwrap_or_default();
        if first {
            first = false;
            if let Some(h) = hash_of(unended) {
                return Ok(Some(h));
            }
        }
        let skip_first = start > 0;
        for (i, l) in lines.iter().enumerate().rev() {
            if i == 0 && skip_first {
                break;
            }
            if let Some(h) = hash_of(l) {
                return Ok(Some(h));
            }
        }
        if start == 0 {
            return Ok(None);
        }
    }
}

/// The `hash` of a line that is an audit entry.
fn hash_of(line: &[u8]) -> Option<String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let v = serde_json::from_slice::<Value>(line).ok()?;
    v.get("hash").and_then(Value::as_str).map(str::to_owned)
}

async fn run(
    mut rx: mpsc::Receiver<Item>,
    store: Arc<dyn Store>,
    mut out: Option<std::io::BufWriter<std::fs::File>>,
    path: Option<PathBuf>,
    mut head: String,
) {
    let mut items = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut items, BATCH).await > 0 {
        let mut entries = Vec::with_capacity(items.len());
        let mut flushes = Vec::new();
        for item in items.drain(..) {
            match item {
                Item::Entry(e) => {
                    let mut e = *e;
                    e.prev_hash = std::mem::take(&mut head);
                    e.hash = entry_hash(&e.prev_hash, &e);
                    head.clone_from(&e.hash);
                    entries.push(e);
                }
                Item::Flush(done) => flushes.push(done),
            }
        }
        if !entries.is_empty() {
            // The store first, so the file's lines carry the store's ids.
            let stored = match store.append_audit_batch(entries.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, n = entries.len(), "audit write to the store failed");
                    entries
                }
            };
            if let Some(w) = out.take() {
                let written = tokio::task::spawn_blocking(move || {
                    let mut w = w;
                    let r = write_lines(&mut w, &stored);
                    (w, r)
                })
                .await;
                match written {
                    Ok((w, r)) => {
                        if let Err(e) = r {
                            tracing::error!(error = %e, file = ?path, "audit write to the file failed");
                        }
                        out = Some(w);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, file = ?path, "the audit file writer panicked; no more file entries");
                    }
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

fn write_lines(w: &mut impl Write, entries: &[AuditEntry]) -> std::io::Result<()> {
    for e in entries {
        serde_json::to_writer(&mut *w, e)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: usize) -> Vec<String> {
        let mut prev = GENESIS.to_owned();
        (0..n)
            .map(|i| {
                let mut e = AuditEntry {
                    id: i as u64 + 1,
                    ts: 1000 + i as u64,
                    kind: "identity".into(),
                    actor: "master".into(),
                    action: format!("act{i}"),
                    target: format!("t{i}"),
                    reason: (i % 2 == 1).then(|| "why".to_owned()),
                    meta: json!({"i": i, "f": 0.1 + i as f64, "nested": {"b": [1, 2], "a": null}}),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = entry_hash(&prev, &e);
                prev = e.hash.clone();
                serde_json::to_string(&e).expect("json")
            })
            .collect()
    }

    fn check(lines: &[String]) -> VerifyReport {
        let text = lines.join("\n") + "\n";
        verify(text.as_bytes())
    }

    #[test]
    fn a_clean_file_verifies() {
        let lines = chain(5);
        let r = check(&lines);
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.entries, 5);
        let r = verify(&b""[..]);
        assert!(r.ok());
        assert_eq!(r.entries, 0);
    }

    #[test]
    fn an_edited_line_is_named() {
        let mut lines = chain(5);
        lines[2] = lines[2].replace("\"t2\"", "\"t9\"");
        let r = check(&lines);
        let bad = r.first_bad.expect("caught");
        assert_eq!((bad.line, bad.id, bad.what), (3, Some(3), Problem::Edited));
        assert_eq!(r.entries, 2);
    }

    #[test]
    fn an_edited_meta_is_caught() {
        let mut lines = chain(3);
        lines[1] = lines[1].replace("\"i\":1", "\"i\":7");
        let bad = check(&lines).first_bad.expect("caught");
        assert_eq!((bad.line, bad.what), (2, Problem::Edited));
    }

    #[test]
    fn a_deleted_line_is_caught() {
        let mut lines = chain(5);
        lines.remove(1);
        let bad = check(&lines).first_bad.expect("caught");
        assert_eq!(
            (bad.line, bad.id, bad.what),
            (2, Some(3), Problem::RemovedOrReordered)
        );
        // The first line removed: the new first line does not start the chain.
        let mut lines = chain(3);
        lines.remove(0);
        let bad = check(&lines).first_bad.expect("caught");
        assert_eq!((bad.line, bad.what), (1, Problem::RemovedOrReordered));
        // Unless told where the file's chain starts.
        let text = lines.join("\n") + "\n";
        let first: Value = serde_json::from_str(&lines[0]).expect("json");
        let prev = first["prev_hash"].as_str().expect("prev");
        assert!(verify_from(text.as_bytes(), Some(prev)).ok());
    }

    #[test]
    fn two_swapped_lines_are_caught() {
        let mut lines = chain(5);
        lines.swap(1, 2);
        let bad = check(&lines).first_bad.expect("caught");
        assert_eq!(
            (bad.line, bad.id, bad.what),
            (2, Some(3), Problem::RemovedOrReordered)
        );
    }

    #[test]
    fn a_truncated_last_line_is_unreadable() {
        let lines = chain(4);
        let mut text = lines.join("\n") + "\n";
        text.truncate(text.len() - 20);
        let r = verify(text.as_bytes());
        let bad = r.first_bad.expect("caught");
        assert_eq!((bad.line, bad.id, bad.what), (4, None, Problem::Unreadable));
        assert!(bad.detail.contains("cut short"), "{}", bad.detail);
        assert_eq!(r.entries, 3);
    }

    #[test]
    fn the_last_hash_is_found_from_the_end() {
        let dir = std::env::temp_dir().join(format!("clawnet-audit-{}", std::process::id()));
        let path = dir.join("sub").join("audit.jsonl");
        let _ = std::fs::remove_dir_all(&dir);
        let (_, head) = open_file(&path).expect("open");
        assert_eq!(head, None);
        let lines = chain(3);
        let want: Value = serde_json::from_str(&lines[2]).expect("json");
        // A torn write after the last complete line.
        std::fs::write(&path, lines.join("\n") + "\n{\"id\":4,\"ts\"").expect("write");
        let (_, head) = open_file(&path).expect("open");
        assert_eq!(head.as_deref(), want["hash"].as_str());
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.ends_with('\n'), "the torn line was ended");
        // A whole entry whose newline was not written is the head.
        let lines = chain(2);
        let want: Value = serde_json::from_str(&lines[1]).expect("json");
        std::fs::write(&path, lines.join("\n")).expect("write");
        let (_, head) = open_file(&path).expect("open");
        assert_eq!(head.as_deref(), want["hash"].as_str());
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(verify(text.as_bytes()).ok(), "ended, it verifies");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_writer_chains_into_store_and_file_and_resumes() {
        let dir = std::env::temp_dir().join(format!("clawnet-audit-w-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("audit.jsonl");
        let store: Arc<dyn Store> = Arc::new(crate::store::MemoryStore::new());
        let e = |i: u64| AuditEntry {
            id: 0,
            ts: i,
            kind: "chat".into(),
            actor: "a".into(),
            action: "chat.send".into(),
            target: "global".into(),
            reason: None,
            meta: json!({"seq": i}),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let w = AuditWriter::start(store.clone(), Some(path.clone()))
            .await
            .expect("start");
        for i in 0..10 {
            w.append(e(i)).await;
        }
        w.flush().await;
        drop(w);
        // A second writer (a restart) continues the chain from the file.
        let w = AuditWriter::start(store.clone(), Some(path.clone()))
            .await
            .expect("restart");
        for i in 10..15 {
            w.append(e(i)).await;
        }
        w.flush().await;
        let f = std::fs::File::open(&path).expect("open");
        let r = verify(std::io::BufReader::new(f));
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.entries, 15);
        let stored = store
            .list_audit(AuditFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .expect("list");
        assert_eq!(stored.len(), 15);
        assert_eq!(stored[0].prev_hash, GENESIS);
        assert_eq!(stored[14].hash, r.last_hash);
        // Without a file, the chain continues from the store's newest entry.
        let w = AuditWriter::start(store.clone(), None)
            .await
            .expect("start");
        w.append(e(15)).await;
        w.flush().await;
        let last = store
            .list_audit(AuditFilter {
                limit: 1,
                ..Default::default()
            })
            .await
            .expect("list");
        assert_eq!(last[0].prev_hash, r.last_hash);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
