//! `@handle` mentions in chat text.

/// Most distinct handles resolved per message; more are ignored, so one
/// message cannot fan out to the whole fleet as mentions.
pub const MAX_MENTIONS: usize = 20;

/// Handles mentioned in `text`, lower-cased, in order of first appearance.
/// A mention is `@` not preceded by a handle character (so `a@b.c` is not
/// one), followed by 2–32 handle characters.
pub fn parse(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let is_h = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < MAX_MENTIONS {
        if b[i] == b'@' && (i == 0 || !is_h(b[i - 1])) {
            let start = i + 1;
            let mut end = start;
            while end < b.len() && is_h(b[end]) {
                end += 1;
            }
            let len = end - start;
            if (2..=32).contains(&len) {
                let h = text[start..end].to_ascii_lowercase();
                if !out.contains(&h) {
                    out.push(h);
                }
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn finds_mentions_and_skips_emails() {
        assert_eq!(
            parse("hi @Bob and @amy_2, @bob again"),
            vec!["bob", "amy_2"]
        );
        assert!(parse("mail me at a@b.com").is_empty());
        assert!(parse("@x is too short").is_empty());
        assert_eq!(parse("(@zed)"), vec!["zed"]);
    }
}
