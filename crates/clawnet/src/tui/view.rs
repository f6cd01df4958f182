//! Drawing the screen: rooms on the left, the selected room's timeline in the
//! middle, presence on the right, the input line and the status line below.

use clawnet_proto::methods::PresenceStatus;
use ratatui::layout::{Constraint, Direction, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, Paragraph};
use ratatui::Frame;

use super::input::HELP;
use super::state::{Entry, State};

const ROOMS_WIDTH: u16 = 24;
const PRESENCE_WIDTH: u16 = 26;

/// Draw the whole screen.
pub fn draw(f: &mut Frame, s: &State) {
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Min(3),
            Constraint::Length(3),
            Constraint::Length(1),
        ])
        .split(f.area());
    let cols = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([
            Constraint::Length(ROOMS_WIDTH),
            Constraint::Min(10),
            Constraint::Length(PRESENCE_WIDTH),
        ])
        .split(rows[0]);
    rooms(f, s, cols[0]);
    timeline(f, s, cols[1]);
    presence(f, s, cols[2]);
    input(f, s, rows[1]);
    status(f, s, rows[2]);
}

fn rooms(f: &mut Frame, s: &State, area: Rect) {
    let items: Vec<ListItem> = s
        .rooms
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut text = s.label(&r.key);
            if r.unread > 0 {
                text.push_str(&format!(" ({})", r.unread));
            }
            let style = if i == s.selected {
                Style::default()
                    .fg(Color::Black)
                    .bg(Color::Cyan)
                    .add_modifier(Modifier::BOLD)
            } else if r.unread > 0 {
                Style::default().add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            };
            let marker = if i == s.selected { "> " } else { "  " };
            ListItem::new(Line::from(format!("{marker}{text}"))).style(style)
        })
        .collect();
    let block = Block::default().borders(Borders::ALL).title(" Rooms ");
    f.render_widget(List::new(items).block(block), area);
}

/// `HH:MM:SS` (UTC) of a time in ms since the epoch.
pub fn clock(ts: u64) -> String {
    let secs = (ts / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// One timeline entry as text.
pub fn entry_text(e: &Entry) -> String {
    match &e.from {
        Some(from) => format!("{} <{from}> {}", clock(e.ts), e.text),
        None => format!("{} * {}", clock(e.ts), e.text),
    }
}

/// Break `text` into lines of at most `width` chars (continuations
/// indented by two spaces).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(4);
    let mut out = Vec::new();
    for para in text.split('\n') {
        let chars: Vec<char> = para.chars().collect();
        if chars.is_empty() {
            out.push(String::new());
            continue;
        }
        let mut start = 0;
        let mut first = true;
        while start < chars.len() {
            let room = if first { width } else { width - 2 };
            let end = (start + room).min(chars.len());
            let piece: String = chars[start..end].iter().collect();
            out.push(if first { piece } else { format!("  {piece}") });
            first = false;
            start = end;
        }
    }
    out
}

fn timeline(f: &mut Frame, s: &State, area: Rect) {
    let room = s.current();
    let mut title = format!(" {} ", s.label(&room.key));
    if let Some(t) = s.typing.get(&room.key).filter(|t| !t.is_empty()) {
        let who: Vec<_> = t.iter().map(|h| format!("@{h}")).collect();
        title.push_str(&format!("— {} typing… ", who.join(", ")));
    }
    if s.scroll > 0 {
        title.push_str(&format!("[scrolled up {}] ", s.scroll));
    }
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let width = inner.width as usize;
    let height = inner.height as usize;
    let mut lines: Vec<Line> = Vec::new();
    if room.entries.is_empty() {
        let empty = if room.loaded || room.key.starts_with("dm:") {
            "(no messages yet)"
        } else {
            "(loading…)"
        };
        for l in wrap(empty, width).into_iter().chain(wrap(HELP, width)) {
            lines.push(Line::styled(l, Style::default().fg(Color::DarkGray)));
        }
    }
    for e in &room.entries {
        let style = if e.stored {
            Style::default()
        } else {
            Style::default().fg(Color::Yellow)
        };
        for l in wrap(&entry_text(e), width) {
            lines.push(Line::styled(l, style));
        }
    }
    // The newest line sits at the bottom; `scroll` lines up from there.
    let max_scroll = lines.len().saturating_sub(height);
    let scroll = s.scroll.min(max_scroll);
    let end = lines.len() - scroll;
    let start = end.saturating_sub(height);
    let shown: Vec<Line> = lines.drain(start..end).collect();
    f.render_widget(Paragraph::new(shown), inner);
}

fn presence(f: &mut Frame, s: &State, area: Rect) {
    let items: Vec<ListItem> = s
        .presence_rows()
        .into_iter()
        .map(|p| {
            let (dot, color, word) = match p.status {
                PresenceStatus::Online => ("●", Color::Green, "online"),
                PresenceStatus::Idle => ("◐", Color::Yellow, "idle"),
                PresenceStatus::Offline => ("○", Color::DarkGray, "offline"),
            };
            ListItem::new(Line::from(vec![
                Span::styled(format!("{dot} "), Style::default().fg(color)),
                Span::raw(format!("@{} ", p.handle)),
                Span::styled(word, Style::default().fg(color)),
            ]))
        })
        .collect();
    let block = Block::default().borders(Borders::ALL).title(" Agents ");
    f.render_widget(List::new(items).block(block), area);
}

fn input(f: &mut Frame, s: &State, area: Rect) {
    let title = format!(" {} ", s.label(&s.current().key));
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    // Keep the cursor in view on a line wider than the box.
    let width = inner.width.saturating_sub(3) as usize;
    let skip = s.cursor.saturating_sub(width);
    let text: String = s.input.chars().skip(skip).collect();
    f.render_widget(Paragraph::new(format!("> {text}")), inner);
    let x = inner.x + 2 + (s.cursor - skip) as u16;
    f.set_cursor_position(Position::new(
        x.min(inner.right().saturating_sub(1)),
        inner.y,
    ));
}

fn status(f: &mut Frame, s: &State, area: Rect) {
    let mut spans = vec![Span::styled(
        s.conn.clone(),
        Style::default().fg(Color::Black).bg(Color::Gray),
    )];
    if let Some(n) = &s.notice {
        spans.push(Span::raw(" "));
        spans.push(Span::styled(n.clone(), Style::default().fg(Color::Red)));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    #[test]
    fn long_lines_wrap_with_an_indent() {
        assert_eq!(wrap("abcdefgh", 5), ["abcde", "  fgh"]);
        assert_eq!(wrap("ab", 5), ["ab"]);
        assert_eq!(clock(3_723_000), "01:02:03");
    }

    #[test]
    fn the_screen_shows_rooms_timeline_and_status() {
        let mut s = State::new("w1", "w1", "http://hub");
        s.ensure_room("alpha");
        s.note(0, "hello there".into());
        let mut t = Terminal::new(TestBackend::new(100, 20)).expect("terminal");
        t.draw(|f| draw(f, &s)).expect("draw");
        let buf = t.backend().buffer();
        let screen: String = (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol().to_owned())
                    .collect::<String>()
                    + "\n"
            })
            .collect();
        assert!(screen.contains("> #global"), "{screen}");
        assert!(screen.contains("#alpha"), "{screen}");
        assert!(screen.contains("* hello there"), "{screen}");
        assert!(
            screen.contains("connected as @w1 to http://hub"),
            "{screen}"
        );
    }
}
