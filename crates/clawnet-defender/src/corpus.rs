//! The labelled corpus (`corpus/*.jsonl`) and its evaluation: per scorer and
//! split, the confusion counts under the default thresholds.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{score_command, score_injection, DefenderConfig};

/// Ground truth for one example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// Should be flagged (review or block).
    Malicious,
    /// Should be allowed.
    Benign,
}

/// Which part of the corpus an example belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Examples the rules were developed against.
    Dev,
    /// Held-out examples written after the rules.
    Test,
}

impl Split {
    /// `"dev"` or `"test"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }
}

/// One corpus line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// The payload text.
    pub text: String,
    /// Ground truth.
    pub label: Label,
    /// Dev or test.
    pub split: Split,
    /// Free-form note (what the example exercises).
    #[serde(default)]
    pub note: String,
}

/// Errors reading a corpus file.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not a valid example.
    #[error("{path}:{line}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The cause.
        source: serde_json::Error,
    },
}

/// The corpus directory shipped with the crate.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// Reads a JSONL corpus file (blank lines and lines starting with `//` are
/// skipped).
pub fn load(path: &Path) -> Result<Vec<Example>, CorpusError> {
    let text = std::fs::read_to_string(path).map_err(|source| CorpusError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let ex: Example = serde_json::from_str(line).map_err(|source| CorpusError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            source,
        })?;
        out.push(ex);
    }
    Ok(out)
}

/// Which scorer an evaluation row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scorer {
    /// [`score_injection`].
    Injection,
    /// [`score_command`].
    Command,
}

impl Scorer {
    /// `"injection"` or `"command"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scorer::Injection => "injection",
            Scorer::Command => "command",
        }
    }

    /// Whether the scorer flags `text` (review or block under the default
    /// thresholds), and the score.
    pub fn flags(self, text: &str) -> (bool, f32) {
        let cfg = DefenderConfig::default();
        match self {
            Scorer::Injection => {
                let s = score_injection(text).score;
                (s >= cfg.injection_review, s)
            }
            Scorer::Command => {
                let s = score_command(text).score;
                (s >= cfg.command_review, s)
            }
        }
    }
}

/// Confusion counts for one scorer and split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The scorer.
    pub scorer: Scorer,
    /// `"dev"`, `"test"` or `"all"`.
    pub split: String,
    /// Number of examples.
    pub examples: usize,
    /// Malicious and flagged.
    pub tp: usize,
    /// Benign but flagged.
    pub fp: usize,
    /// Benign and allowed.
    pub tn: usize,
    /// Malicious but allowed.
    pub fn_: usize,
    /// `tp / (tp + fp)` (1.0 when nothing was flagged).
    pub precision: f64,
    /// `tp / (tp + fn)` (1.0 when there are no malicious examples).
    pub recall: f64,
    /// `fp / (fp + tn)` (0.0 when there are no benign examples).
    pub false_positive_rate: f64,
}

/// A misclassified example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Miss {
    /// The scorer.
    pub scorer: Scorer,
    /// The example.
    pub example: Example,
    /// Its score.
    pub score: f32,
}

/// The evaluation of a corpus.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Per scorer: dev, test and all.
    pub rows: Vec<Row>,
    /// False positives and false negatives.
    pub misses: Vec<Miss>,
}

impl Evaluation {
    /// The row for a scorer and split name.
    pub fn row(&self, scorer: Scorer, split: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.scorer == scorer && r.split == split)
    }
}

fn row(scorer: Scorer, split: &str, outcomes: &[(Label, bool)]) -> Row {
    let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
    for &(label, flagged) in outcomes {
        match (label, flagged) {
            (Label::Malicious, true) => tp += 1,
            (Label::Malicious, false) => fn_ += 1,
            (Label::Benign, true) => fp += 1,
            (Label::Benign, false) => tn += 1,
        }
    }
    let ratio = |a: usize, b: usize, empty: f64| {
        if b == 0 {
            empty
        } else {
            a as f64 / b as f64
        }
    };
    Row {
        scorer,
        split: split.to_string(),
        examples: outcomes.len(),
        tp,
        fp,
        tn,
        fn_,
        precision: ratio(tp, tp + fp, 1.0),
        recall: ratio(tp, tp + fn_, 1.0),
        false_positive_rate: ratio(fp, fp + tn, 0.0),
    }
}

/// Evaluates one scorer on its examples: rows for dev, test and all.
pub fn evaluate_scorer(scorer: Scorer, examples: &[Example], eval: &mut Evaluation) {
    let mut dev = Vec::new();
    let mut test = Vec::new();
    for ex in examples {
        let (flagged, score) = scorer.flags(&ex.text);
        let malicious = ex.label == Label::Malicious;
        if flagged != malicious {
            eval.misses.push(Miss {
                scorer,
                example: ex.clone(),
                score,
            });
        }
        match ex.split {
            Split::Dev => dev.push((ex.label, flagged)),
            Split::Test => test.push((ex.label, flagged)),
        }
    }
    let all: Vec<_> = dev.iter().chain(test.iter()).copied().collect();
    eval.rows.push(row(scorer, "dev", &dev));
    eval.rows.push(row(scorer, "test", &test));
    eval.rows.push(row(scorer, "all", &all));
}

/// Evaluates both scorers on their corpora.
pub fn evaluate(injection: &[Example], command: &[Example]) -> Evaluation {
    let mut eval = Evaluation::default();
    evaluate_scorer(Scorer::Injection, injection, &mut eval);
    evaluate_scorer(Scorer::Command, command, &mut eval);
    eval
}

/// Formats the rows as a fixed-width table.
pub fn table(eval: &Evaluation) -> String {
    let mut out = format!(
        "{:<10} {:<5} {:>8} {:>5} {:>5} {:>5} {:>5} {:>9} {:>7} {:>7}\n",
        "scorer", "split", "examples", "TP", "FP", "TN", "FN", "precision", "recall", "FPR"
    );
    for r in &eval.rows {
        out.push_str(&format!(
            "{:<10} {:<5} {:>8} {:>5} {:>5} {:>5} {:>5} {:>9.3} {:>7.3} {:>7.3}\n",
            r.scorer.as_str(),
            r.split,
            r.examples,
            r.tp,
            r.fp,
            r.tn,
            r.fn_,
            r.precision,
            r.recall,
            r.false_positive_rate
        ));
    }
    out
}

/// One line per misclassified example (scorer, split, label, score, text),
/// for reading what a scorer got wrong.
pub fn misses(eval: &Evaluation) -> String {
    eval.misses
        .iter()
        .map(|m| {
            format!(
                "MISS {:<9} {:<4} {:?} score={:.2} {:?}\n",
                m.scorer.as_str(),
                m.example.split.as_str(),
                m.example.label,
                m.score,
                m.example.text
            )
        })
        .collect()
}
