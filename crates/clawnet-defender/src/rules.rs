//! Compiled rule tables shared by the scorers: a byte-level `RegexSet` for a
//! fast "which rules match" pass, and one regex per rule for evidence.

use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// One rule: signal name, weight, pattern (ASCII-only semantics).
pub(crate) type RuleDef<'a> = (&'static str, f32, &'a str);

/// A match of one rule.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub name: &'static str,
    pub weight: f32,
    pub start: usize,
    pub end: usize,
}

/// A compiled rule table.
#[derive(Debug)]
pub(crate) struct RuleSet {
    set: RegexSet,
    res: Vec<Regex>,
    defs: Vec<(&'static str, f32)>,
}

const SIZE_LIMIT: usize = 64 << 20;

/// Expands the placeholders used in rule tables:
/// `<S>` a separator (non-alphanumeric run), `<G>` a separator with up to four
/// words in it, `<g>` the same with up to two words, `<C>` the start of a shell
/// command (optionally behind `sudo`), `<E>` the end of a shell argument.
fn builder_pattern(p: &str) -> String {
    p.replace("<S>?", "[^a-z0-9]*")
        .replace("<S>", "[^a-z0-9]+")
        .replace("<G>", "[^a-z0-9]+(?:[a-z0-9']+[^a-z0-9]+){0,4}?")
        .replace("<g>", "[^a-z0-9]+(?:[a-z0-9']+[^a-z0-9]+){0,2}?")
        .replace("<C>", r"(?:^|[^a-z0-9_./-])(?:sudo\s+(?:-[a-z]+\s+)*)?")
        .replace("<E>", r#"(?:$|[\s;&|)`'"])"#)
}

impl RuleSet {
    /// Compiles `defs`. Panics only on a malformed built-in pattern, which
    /// the unit tests catch.
    pub(crate) fn new(defs: &[RuleDef<'_>]) -> Self {
        let pats: Vec<String> = defs.iter().map(|d| builder_pattern(d.2)).collect();
        #[allow(clippy::expect_used)]
        let set = RegexSetBuilder::new(&pats)
            .unicode(false)
            .size_limit(SIZE_LIMIT)
            .dfa_size_limit(SIZE_LIMIT)
            .build()
            .expect("built-in defender rule set compiles");
        #[allow(clippy::expect_used)]
        let res = pats
            .iter()
            .map(|p| {
                RegexBuilder::new(p)
                    .unicode(false)
                    .size_limit(SIZE_LIMIT)
                    .build()
                    .expect("built-in defender rule compiles")
            })
            .collect();
        Self {
            set,
            res,
            defs: defs.iter().map(|d| (d.0, d.1)).collect(),
        }
    }

    /// All rules that match `text` (first match of each).
    pub(crate) fn hits(&self, text: &str) -> Vec<Hit> {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        for i in self.set.matches(bytes).iter() {
            if let Some(m) = self.res[i].find(bytes) {
                let (name, weight) = self.defs[i];
                out.push(Hit {
                    name,
                    weight,
                    start: m.start(),
                    end: m.end(),
                });
            }
        }
        out
    }

    /// Whether any rule matches.
    pub(crate) fn is_match(&self, text: &str) -> bool {
        self.set.is_match(text.as_bytes())
    }
}

/// Compiles a single built-in regex (byte-level, ASCII, case-insensitive).
pub(crate) fn regex(p: &str) -> Regex {
    #[allow(clippy::expect_used)]
    RegexBuilder::new(&builder_pattern(p))
        .unicode(false)
        .size_limit(SIZE_LIMIT)
        .build()
        .expect("built-in defender regex compiles")
}

/// A short excerpt (at most 80 characters, newlines as spaces).
pub fn excerpt(s: &str) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n >= 80 {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// Excerpt of `text[start..end]` (byte offsets, clamped to char boundaries).
pub(crate) fn excerpt_at(text: &str, start: usize, end: usize) -> String {
    let mut s = start.min(text.len());
    while s > 0 && !text.is_char_boundary(s) {
        s -= 1;
    }
    let mut e = end.min(text.len()).max(s);
    while e < text.len() && !text.is_char_boundary(e) {
        e += 1;
    }
    excerpt(&text[s..e])
}

/// Byte spans of quoted regions: `"…"`, `` `…` ``, ```` ```…``` ```` and
/// `'…'` opened after whitespace or punctuation.
pub(crate) fn quoted_spans(re: &Regex, text: &str) -> Vec<(usize, usize)> {
    if !text.contains(['"', '`', '\'']) {
        return Vec::new();
    }
    re.find_iter(text.as_bytes())
        .map(|m| (m.start(), m.end()))
        .collect()
}

/// The regex behind [`quoted_spans`].
pub(crate) fn quote_regex() -> Regex {
    regex(r#"(?s:```.{0,4000}?```)|`[^`\n]{1,400}`|"[^"\n]{2,600}"|(?:^|[\s(:=\[])'[^'\n]{3,600}'"#)
}

/// Whether `[start, end)` lies mostly inside one of `spans`.
pub(crate) fn inside(spans: &[(usize, usize)], start: usize, end: usize) -> bool {
    spans
        .iter()
        .any(|&(s, e)| start >= s && start < e && end <= e + 2)
}
