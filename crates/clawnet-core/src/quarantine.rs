//! Items the defender holds for review, and their append-only ledger.
//!
//! The ledger is a JSONL file: one `hold` line per held item, one `approve`
//! or `reject` line per decision; nothing is ever rewritten. On start the
//! ledger is replayed, so held items survive a restart of a node that has
//! one. Approval replays the original request as its sender, skipping only
//! the defend step (authorization is checked again: a sender who left the
//! room meanwhile cannot post there through an approval).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use clawnet_proto::guard::{
    HeldItem, QuarantineItem, QuarantineList, QuarantineListParams, QuarantineState,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::defense::Screening;
use crate::error::{Error, Result};
use crate::hub::Hub;

/// Decided items kept in memory for listing (held ones are all kept).
const DECIDED_KEPT: usize = 1000;
/// Held items at most; past this the defender refuses instead of holding,
/// so a flood of suspicious content cannot grow memory without bound.
pub const MAX_HELD: usize = 10_000;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Line {
    Hold {
        item: Box<QuarantineItem>,
    },
    Approve {
        id: String,
        by: String,
        ts: u64,
        reason: Option<String>,
        outcome: Value,
    },
    Reject {
        id: String,
        by: String,
        ts: u64,
        reason: Option<String>,
    },
}

#[derive(Debug, Default)]
struct Items {
    all: BTreeMap<String, QuarantineItem>,
    held: usize,
}

impl Items {
    fn apply(&mut self, line: Line) {
        match line {
            Line::Hold { item } => {
                if item.state == QuarantineState::Held {
                    self.held += 1;
                }
                self.all.insert(item.id.clone(), *item);
            }
            Line::Approve {
                id,
                by,
                ts,
                outcome,
                ..
            } => self.decide(&id, QuarantineState::Approved, by, ts, Some(outcome)),
            Line::Reject { id, by, ts, .. } => {
                self.decide(&id, QuarantineState::Rejected, by, ts, None);
            }
        }
        self.trim();
    }

    fn decide(
        &mut self,
        id: &str,
        state: QuarantineState,
        by: String,
        ts: u64,
        out: Option<Value>,
    ) {
        if let Some(it) = self.all.get_mut(id) {
            if it.state == QuarantineState::Held {
                self.held -= 1;
            }
            it.state = state;
            it.decided_by = Some(by);
            it.decided_at = Some(ts);
            it.outcome = out;
        }
    }

    /// Forget the oldest decided items beyond [`DECIDED_KEPT`].
    fn trim(&mut self) {
        let decided = self.all.len() - self.held;
        if decided <= DECIDED_KEPT {
            return;
        }
        let drop: Vec<String> = self
            .all
            .values()
            .filter(|i| i.state != QuarantineState::Held)
            .take(decided - DECIDED_KEPT)
            .map(|i| i.id.clone())
            .collect();
        for id in drop {
            self.all.remove(&id);
        }
    }
}

/// The quarantine of one hub.
#[derive(Debug)]
pub(crate) struct Quarantine {
    items: Mutex<Items>,
    ledger: Option<Mutex<File>>,
}

impl Quarantine {
    /// Open (and replay) the ledger at `path`, creating it if needed.
    pub(crate) fn open(path: Option<PathBuf>) -> Result<Self> {
        let mut items = Items::default();
        let ledger = match path {
            None => None,
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| ledger_error(&p, &e))?;
                }
                if let Ok(f) = File::open(&p) {
                    for (n, line) in BufReader::new(f).lines().enumerate() {
                        let line = line.map_err(|e| ledger_error(&p, &e))?;
                        if line.trim().is_empty() {
                            continue;
                        }
                        match serde_json::from_str::<Line>(&line) {
                            Ok(l) => items.apply(l),
                            // A torn last line after a crash: skip it, keep going.
                            Err(e) => {
                                tracing::warn!(line = n + 1, error = %e, "unreadable quarantine ledger line skipped")
                            }
                        }
                    }
                }
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&p)
                    .map_err(|e| ledger_error(&p, &e))?;
                Some(Mutex::new(f))
            }
        };
        crate::metrics::quarantine_size(items.held);
        Ok(Self {
            items: Mutex::new(items),
            ledger,
        })
    }

    fn record(&self, line: &Line) -> Result<()> {
        let Some(f) = &self.ledger else {
            return Ok(());
        };
        let mut text = serde_json::to_string(line).map_err(Error::unavailable)?;
        text.push('\n');
        let mut f = f.lock();
        f.write_all(text.as_bytes())
            .and_then(|()| f.flush())
            .map_err(|e| {
                tracing::error!(error = %e, "quarantine ledger write failed");
                Error::unavailable(e)
            })
    }

    fn held(&self) -> usize {
        self.items.lock().held
    }
}

fn ledger_error(p: &std::path::Path, e: &std::io::Error) -> Error {
    Error::invalid(
        "defender.ledger",
        format!("cannot use the quarantine ledger {}: {e}", p.display()),
    )
}

impl Hub {
    /// Put an item in the quarantine.
    pub(crate) async fn hold(
        &self,
        actor: &str,
        item: HeldItem,
        s: &Screening,
    ) -> Result<QuarantineItem> {
        let q = &self.inner.guard.quarantine;
        if q.held() >= MAX_HELD {
            return Err(Error::blocked(
                format!("the quarantine is full ({MAX_HELD} items); refused instead of held"),
                json!({"signals": s.signals}),
            ));
        }
        let now = self.now();
        let held = QuarantineItem {
            id: format!("q_{}", self.inner.ids.next(now)),
            ts: now,
            actor: actor.to_owned(),
            item,
            injection_score: s.injection,
            command_score: s.command,
            signals: s.signals.clone(),
            reason: s.reason.to_owned(),
            state: QuarantineState::Held,
            decided_by: None,
            decided_at: None,
            outcome: None,
        };
        let line = Line::Hold {
            item: Box::new(held.clone()),
        };
        q.record(&line)?;
        let mut items = q.items.lock();
        items.apply(line);
        crate::metrics::quarantine_size(items.held);
        Ok(held)
    }

    async fn require_staff(&self, actor: &str, action: &str, target: &str) -> Result<()> {
        let me = self.agent(actor).await?;
        if me.role.reads_everything() {
            return Ok(());
        }
        self.refuse(
            actor,
            action,
            target,
            format!("{action} needs master or warden"),
        )
        .await
    }

    /// Items in the quarantine, oldest first (master and warden).
    pub async fn quarantine_list(
        &self,
        actor: &str,
        p: QuarantineListParams,
    ) -> Result<QuarantineList> {
        self.require_staff(actor, "quarantine.list", "quarantine")
            .await?;
        let want = p.state.unwrap_or(QuarantineState::Held);
        let items = self.inner.guard.quarantine.items.lock();
        Ok(QuarantineList {
            items: items
                .all
                .values()
                .filter(|i| i.state == want)
                .cloned()
                .collect(),
        })
    }

    /// Take a held item out of the quarantine for a decision; it is marked
    /// decided at once so two reviewers cannot both approve it.
    fn take_held(&self, id: &str, state: QuarantineState, by: &str) -> Result<QuarantineItem> {
        let mut items = self.inner.guard.quarantine.items.lock();
        let it = items
            .all
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("no quarantined item '{id}'")))?;
        if it.state != QuarantineState::Held {
            return Err(Error::conflict(format!(
                "item '{id}' was already {}",
                match it.state {
                    QuarantineState::Approved => "approved",
                    _ => "rejected",
                }
            )));
        }
        items.decide(id, state, by.to_owned(), self.now(), None);
        crate::metrics::quarantine_size(items.held);
        Ok(it)
    }

    /// Approve a held item: it is delivered (or dispatched) as its sender,
    /// now, and the ledger and audit trail record who approved it.
    pub async fn quarantine_approve(
        &self,
        actor: &str,
        id: &str,
        reason: Option<String>,
    ) -> Result<QuarantineItem> {
        self.require_staff(actor, "quarantine.approve", id).await?;
        let mut it = self.take_held(id, QuarantineState::Approved, actor)?;
        let delivered = match it.item.clone() {
            HeldItem::Chat { params } => self
                .send_screened(&it.actor, params)
                .await
                .map(|o| json!({"message": *o.message})),
            HeldItem::Task { params, origin } => self
                .dispatch_screened(&it.actor, params, origin)
                .await
                .map(|r| json!({"task": r.task})),
        };
        let q = &self.inner.guard.quarantine;
        let outcome = match delivered {
            Ok(v) => v,
            Err(e) => {
                // Not delivered: back to held, so it can be rejected or
                // approved again once the cause is gone.
                let mut items = q.items.lock();
                if let Some(x) = items.all.get_mut(id) {
                    x.state = QuarantineState::Held;
                    x.decided_by = None;
                    x.decided_at = None;
                    items.held += 1;
                }
                crate::metrics::quarantine_size(items.held);
                return Err(e);
            }
        };
        let now = self.now();
        q.record(&Line::Approve {
            id: id.to_owned(),
            by: actor.to_owned(),
            ts: now,
            reason: reason.clone(),
            outcome: outcome.clone(),
        })?;
        if let Some(x) = q.items.lock().all.get_mut(id) {
            x.outcome = Some(outcome.clone());
        }
        it.state = QuarantineState::Approved;
        it.decided_by = Some(actor.to_owned());
        it.decided_at = Some(now);
        it.outcome = Some(outcome);
        self.audit(
            "quarantine",
            actor,
            "quarantine.approve",
            id,
            reason,
            json!({"from": it.actor}),
        )
        .await;
        Ok(it)
    }

    /// Reject a held item: it is never delivered.
    pub async fn quarantine_reject(
        &self,
        actor: &str,
        id: &str,
        reason: Option<String>,
    ) -> Result<QuarantineItem> {
        self.require_staff(actor, "quarantine.reject", id).await?;
        let mut it = self.take_held(id, QuarantineState::Rejected, actor)?;
        let now = self.now();
        self.inner.guard.quarantine.record(&Line::Reject {
            id: id.to_owned(),
            by: actor.to_owned(),
            ts: now,
            reason: reason.clone(),
        })?;
        it.state = QuarantineState::Rejected;
        it.decided_by = Some(actor.to_owned());
        it.decided_at = Some(now);
        self.audit(
            "quarantine",
            actor,
            "quarantine.reject",
            id,
            reason,
            json!({"from": it.actor}),
        )
        .await;
        Ok(it)
    }
}
