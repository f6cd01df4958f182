//! The defend step of every mutation that carries content (validate →
//! authorize → **defend** → persist → publish → audit): chat payloads and
//! task payloads are scored by the defender before anything is stored.
//!
//! `allow` passes; `block` refuses with the signals (`blocked`); `review`
//! holds the request in the quarantine (`held`) until a warden or master
//! approves or rejects it. In audit-only mode decisions are recorded and
//! nothing is held. Evaluations run under a semaphore (bounded concurrency)
//! and a deadline; past it, the configured timeout policy applies and is
//! audited.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clawnet_defender::reputation::{ReputationClient, ReputationConfig};
use clawnet_defender::{Decision, Defender, DefenderConfig, Verdict};
use clawnet_proto::guard::{DefenderSignal, HeldItem};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::hub::{Hub, SYSTEM_AGENT};
use crate::quarantine::Quarantine;

/// Whether the defender screens content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefenderMode {
    /// No scoring at all.
    Off,
    /// Score and audit, never hold or refuse.
    AuditOnly,
    /// Score, hold `review` items, refuse `block` items.
    Enforce,
}

impl DefenderMode {
    /// Parse `off`, `audit` (or `audit-only`), `enforce`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(Self::Off),
            "audit" | "audit-only" | "audit_only" => Some(Self::AuditOnly),
            "enforce" | "on" => Some(Self::Enforce),
            _ => None,
        }
    }
}

/// The defender's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DefenderSettings {
    /// Off, audit-only or enforcing (default).
    pub mode: DefenderMode,
    /// Score thresholds for `review` and `block`.
    pub thresholds: DefenderConfig,
    /// Longest an evaluation (waiting for a slot included) may take.
    pub timeout_ms: u64,
    /// Evaluations at once at most.
    pub concurrency: usize,
    /// What a timed-out evaluation decides: allow, review or block.
    pub on_timeout: Decision,
    /// The quarantine ledger (append-only JSONL); `None` keeps the
    /// quarantine in memory only.
    pub ledger: Option<PathBuf>,
    /// The external reputation lookup (off when `None`).
    pub reputation: Option<ReputationConfig>,
}

impl Default for DefenderSettings {
    fn default() -> Self {
        Self {
            mode: DefenderMode::Enforce,
            thresholds: DefenderConfig::default(),
            timeout_ms: 50,
            concurrency: 64,
            on_timeout: Decision::Review,
            ledger: None,
            reputation: None,
        }
    }
}

/// The defender's state in a hub.
#[derive(Debug)]
pub(crate) struct Guard {
    /// Built when first needed: a hub started with the defender off may
    /// turn it on at runtime (`defender.mode`, see `runtime.rs`).
    defender: std::sync::OnceLock<Defender>,
    thresholds: DefenderConfig,
    permits: Semaphore,
    reputation: Option<ReputationClient>,
    pub(crate) quarantine: Quarantine,
}

impl Guard {
    pub(crate) fn start(s: &DefenderSettings) -> Result<Self> {
        Ok(Self {
            defender: {
                let d = std::sync::OnceLock::new();
                if s.mode != DefenderMode::Off {
                    let _ = d.set(Defender::new(s.thresholds));
                }
                d
            },
            thresholds: s.thresholds,
            permits: Semaphore::new(s.concurrency.max(1)),
            reputation: s.reputation.clone().map(ReputationClient::new),
            quarantine: Quarantine::open(s.ledger.clone())?,
        })
    }
}

/// The text a scorer reads from a payload: every string value and key, one
/// per line, so a phrase split across fields is still seen as a whole.
pub(crate) fn payload_text(payload: &Map<String, Value>) -> Cow<'_, str> {
    // The usual chat payload is `{"text": …}` alone: no copy.
    if payload.len() == 1 {
        if let Some(Value::String(t)) = payload.get("text") {
            return Cow::Borrowed(t);
        }
    }
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            Value::Object(m) => {
                for (k, v) in m {
                    out.push_str(k);
                    out.push('\n');
                    walk(v, out);
                }
            }
            _ => {}
        }
    }
    let mut out = String::new();
    for (k, v) in payload {
        if k != "text" {
            out.push_str(k);
            out.push('\n');
        }
        walk(v, &mut out);
    }
    Cow::Owned(out)
}

fn signals_of(v: &Verdict) -> Vec<DefenderSignal> {
    v.injection
        .signals
        .iter()
        .chain(&v.command.signals)
        .map(|s| DefenderSignal {
            name: s.name.clone(),
            weight: s.weight,
            evidence: s.evidence.clone(),
        })
        .collect()
}

/// What the defender concluded about one item.
#[derive(Debug)]
pub(crate) struct Screening {
    pub(crate) decision: Decision,
    pub(crate) reason: &'static str,
    pub(crate) injection: f32,
    pub(crate) command: f32,
    pub(crate) signals: Vec<DefenderSignal>,
}

impl Hub {
    /// Score one payload; `None` when the defender is off.
    pub(crate) async fn screen(&self, payload: &Map<String, Value>) -> Option<Screening> {
        let g = &self.inner.guard;
        if self.inner.runtime.defender_mode() == DefenderMode::Off {
            return None;
        }
        let d = g.defender.get_or_init(|| Defender::new(g.thresholds));
        let cfg = &self.inner.cfg.defender;
        let limit = Duration::from_millis(cfg.timeout_ms);
        let deadline = Instant::now() + limit;
        let text = payload_text(payload);
        // A free slot is taken without arming a timer (the common case);
        // only a full semaphore waits, for at most the time limit.
        let permit = match g.permits.try_acquire() {
            Ok(p) => Some(p),
            Err(_) => tokio::time::timeout(limit, g.permits.acquire())
                .await
                .ok()
                .and_then(Result::ok),
        };
        let verdict = permit.and_then(|_permit| d.evaluate(&text, deadline).ok());
        let Some(v) = verdict else {
            return Some(Screening {
                decision: cfg.on_timeout,
                reason: "timeout",
                injection: 0.0,
                command: 0.0,
                signals: Vec::new(),
            });
        };
        let mut s = Screening {
            decision: v.decision,
            reason: "score",
            injection: v.injection.score,
            command: v.command.score,
            signals: signals_of(&v),
        };
        if let (Some(rep), true) = (&g.reputation, s.decision != Decision::Block) {
            for sig in rep.signals(&text).await {
                let worst = if sig.name.contains("malicious") {
                    Decision::Block
                } else {
                    Decision::Review
                };
                s.decision = s.decision.max(worst);
                s.reason = "reputation";
                s.signals.push(DefenderSignal {
                    name: sig.name,
                    weight: sig.weight,
                    evidence: sig.evidence,
                });
            }
        }
        Some(s)
    }

    /// The defend step: `Ok` lets the request go on; `held` and `blocked`
    /// stop it. `item` builds what the quarantine keeps, only when needed;
    /// `None` is content that cannot wait in a quarantine (a schedule's
    /// payload, dispatched again at every firing), which in enforce mode is
    /// refused instead of held.
    pub(crate) async fn defend<F: FnOnce() -> HeldItem>(
        &self,
        actor: &str,
        kind: &'static str,
        payload: &Map<String, Value>,
        item: Option<F>,
    ) -> Result<()> {
        if actor == SYSTEM_AGENT {
            return Ok(());
        }
        let Some(s) = self.screen(payload).await else {
            return Ok(());
        };
        let timed_out = s.reason == "timeout";
        crate::metrics::defender_decision(
            kind,
            if timed_out {
                "timeout"
            } else {
                s.decision.as_str()
            },
        );
        if s.decision == Decision::Allow && !timed_out {
            return Ok(());
        }
        let mut details = json!({
            "decision": s.decision.as_str(),
            "reason": s.reason,
            "injection_score": s.injection,
            "command_score": s.command,
            "signals": s.signals,
        });
        let names: Vec<&str> = s.signals.iter().map(|x| x.name.as_str()).collect();
        let why = if timed_out {
            format!(
                "the defender timed out; the timeout policy decides {}",
                s.decision.as_str()
            )
        } else {
            format!("defender signals: {}", names.join(", "))
        };
        let enforce = self.inner.runtime.defender_mode() == DefenderMode::Enforce;
        // What enforcing does: pass, refuse, or hold (when it can wait).
        let outcome = match (enforce, s.decision, item) {
            (false, ..) | (true, Decision::Allow, _) => None,
            (true, Decision::Review, Some(item)) => Some(Some(item)),
            (true, _, _) => Some(None),
        };
        let action = match &outcome {
            _ if timed_out => "defender.timeout",
            None if enforce => "defender.allowed",
            None => "defender.flagged",
            Some(Some(_)) => "defender.review",
            Some(None) => "defender.blocked",
        };
        let target = match outcome {
            None => {
                self.audit("defender", actor, action, kind, Some(why), details)
                    .await;
                return Ok(());
            }
            Some(None) => {
                self.audit(
                    "defender",
                    actor,
                    action,
                    kind,
                    Some(why.clone()),
                    details.clone(),
                )
                .await;
                let message = if s.decision == Decision::Review {
                    format!("refused by the defender: a {kind}'s payload must pass without review ({why})")
                } else {
                    format!("refused by the defender ({why})")
                };
                return Err(Error::blocked(message, details));
            }
            Some(Some(item)) => self.hold(actor, item(), &s).await?.id,
        };
        details["quarantine_id"] = json!(target);
        self.audit(
            "defender",
            actor,
            action,
            &target,
            Some(why.clone()),
            details.clone(),
        )
        .await;
        Err(Error::held(
            format!("held for review as {target} ({why})"),
            details,
        ))
    }
}
