//! Output for people: aligned columns, relative times and coloured presence
//! when standard output is a terminal; plain text when it is piped.

use std::io::IsTerminal;

/// Whether to colour output: a terminal, and `NO_COLOR` unset.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A presence state, green/yellow/grey on a terminal.
pub fn presence(status: &str) -> String {
    if !colour() {
        return status.to_owned();
    }
    let code = match status {
        "online" => "32",
        "idle" | "busy" => "33",
        _ => "90",
    };
    format!("\x1b[{code}m{status}\x1b[0m")
}

/// `then` (ms since the epoch) relative to `now`: `just now`, `42s ago`,
/// `5m ago`, `3h ago`, `2d ago`; `never` for 0.
pub fn ago(then: u64, now: u64) -> String {
    if then == 0 {
        return "never".to_owned();
    }
    let s = now.saturating_sub(then) / 1000;
    match s {
        0..=1 => "just now".to_owned(),
        2..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// Now, ms since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Print rows under a header with each column as wide as its widest cell
/// (ANSI colour codes are not counted).
pub fn print(header: &[&str], rows: &[Vec<String>]) {
    let visible = |s: &str| {
        let mut n = 0;
        let mut esc = false;
        for c in s.chars() {
            match (esc, c) {
                (false, '\x1b') => esc = true,
                (true, 'm') => esc = false,
                (false, _) => n += 1,
                _ => {}
            }
        }
        n
    };
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(visible(c));
            }
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(&c);
            if i < last {
                out.push_str(&" ".repeat(width[i] - visible(&c) + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        line(r.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = 1_000_000_000;
        assert_eq!(ago(0, now), "never");
        assert_eq!(ago(now, now), "just now");
        assert_eq!(ago(now - 42_000, now), "42s ago");
        assert_eq!(ago(now - 5 * 60_000, now), "5m ago");
        assert_eq!(ago(now - 3 * 3_600_000, now), "3h ago");
        assert_eq!(ago(now - 2 * 86_400_000, now), "2d ago");
    }
}
