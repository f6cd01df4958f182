//! Redaction of dead-letter alerts (SPEC §5): content cut to 200 characters,
//! `data:…;base64,…` URIs and standalone base64 runs of 40+ characters
//! replaced by `[redacted-base64]`. Origin details are left out by the
//! caller, which never passes them here.

/// Characters of content an alert keeps.
pub const ALERT_MAX_CHARS: usize = 200;
const MARK: &str = "[redacted-base64]";
const MIN_RUN: usize = 40;

fn is_b64(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_')
}

/// Redact `text` for an alert: base64 first (so a cut never leaves half a
/// secret), then the length cut (with `…` when something was cut).
pub fn redact_alert(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len().min(1024));
    let mut i = 0;
    while i < chars.len() {
        // `data:<mime>;base64,<payload>`
        if starts_with_ci(&chars[i..], "data:") {
            if let Some(comma) = data_uri_payload_start(&chars[i..]) {
                let mut j = i + comma;
                while j < chars.len() && is_b64(chars[j]) {
                    j += 1;
                }
                out.push_str(MARK);
                i = j;
                continue;
            }
        }
        // A standalone run: bounded by non-base64 characters on both sides.
        if is_b64(chars[i]) && (i == 0 || !is_b64(chars[i - 1])) {
            let mut j = i;
            while j < chars.len() && is_b64(chars[j]) {
                j += 1;
            }
            let run = &chars[i..j];
            if run.len() >= MIN_RUN && looks_encoded(run) {
                out.push_str(MARK);
            } else {
                out.extend(run);
            }
            i = j;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    if out.chars().count() > ALERT_MAX_CHARS {
        let mut cut: String = out.chars().take(ALERT_MAX_CHARS).collect();
        cut.push('…');
        cut
    } else {
        out
    }
}

fn starts_with_ci(chars: &[char], prefix: &str) -> bool {
    prefix
        .chars()
        .enumerate()
        .all(|(k, p)| chars.get(k).is_some_and(|c| c.eq_ignore_ascii_case(&p)))
}

/// Offset of the payload after `;base64,` in a data URI starting at 0.
fn data_uri_payload_start(chars: &[char]) -> Option<usize> {
    let limit = chars.len().min(100);
    let head: String = chars[..limit]
        .iter()
        .collect::<String>()
        .to_ascii_lowercase();
    let at = head.find(";base64,")?;
    // The media type must not contain spaces (it is one token).
    if head[..at].contains(char::is_whitespace) {
        return None;
    }
    Some(head[..at + ";base64,".len()].chars().count())
}

/// A long run of letters only (a word-like identifier, `aaaa…`) is not
/// treated as encoded: base64 of real data mixes cases and digits.
fn looks_encoded(run: &[char]) -> bool {
    let upper = run.iter().any(char::is_ascii_uppercase);
    let lower = run.iter().any(char::is_ascii_lowercase);
    let digit_or_sym = run
        .iter()
        .any(|c| c.is_ascii_digit() || matches!(c, '+' | '/' | '='));
    (upper && lower) || (digit_or_sym && (upper || lower))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_to_200_characters() {
        let text = "é".repeat(500);
        let r = redact_alert(&text);
        assert_eq!(r.chars().count(), ALERT_MAX_CHARS + 1);
        assert!(r.ends_with('…'));
        assert_eq!(redact_alert("short"), "short");
    }

    #[test]
    fn data_uri_base64_is_replaced() {
        let r = redact_alert("see data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB please");
        assert_eq!(r, "see [redacted-base64] please");
        let r = redact_alert("DATA:text/plain;BASE64,aGk=");
        assert_eq!(r, "[redacted-base64]");
    }

    #[test]
    fn bare_base64_runs_of_40_or_more_are_replaced() {
        let secret = "QUtJQUlPU0ZPRE5ON0VYQU1QTEUvd0phbHJYVXRuRkVNSQ==";
        assert!(secret.len() >= 40);
        let r = redact_alert(&format!("key {secret} leaked"));
        assert_eq!(r, "key [redacted-base64] leaked");
        // 39 characters stay.
        let short = "QUtJQUlPU0ZPRE5ON0VYQU1QTEUvd0phbHJYVXR";
        assert_eq!(short.len(), 39);
        assert_eq!(redact_alert(short), short);
        // Words are not base64 however long.
        let word = "a".repeat(60);
        assert_eq!(redact_alert(&word), word);
    }

    #[test]
    fn redaction_happens_before_the_cut() {
        let secret = "QUtJQUlPU0ZPRE5ON0VYQU1QTEUvd0phbHJYVXRuRkVNSQ==";
        let text = format!("{}{secret}", "x ".repeat(95));
        let r = redact_alert(&text);
        assert!(!r.contains("QUtJ"), "no half secret survives the cut: {r}");
    }
}
