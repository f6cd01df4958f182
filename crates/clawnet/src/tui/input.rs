//! The keyboard: what a key does to the input line or the screen, and what a
//! finished input line asks for.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::state::State;

/// What the event loop must do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing beyond redrawing.
    None,
    /// Leave the chat.
    Quit,
    /// Enter was pressed on this line.
    Submit(String),
    /// The selected room changed: load its history if not yet loaded.
    Switched,
}

/// What an input line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/join ROOM`: join a room and switch to it.
    Join(String),
    /// `/dm @handle`: switch to the DM room with that agent.
    Dm(String),
    /// `/quit`: leave.
    Quit,
    /// `/help`: show the commands.
    Help,
    /// A command of this client used wrongly: the usage to show.
    Usage(&'static str),
    /// Anything else (chat text, `/task …`, `/status`): send it to the
    /// selected room; the hub answers slash commands itself.
    Send(String),
}

/// The commands, for `/help` and the empty timeline.
pub const HELP: &str = "/join ROOM · /dm @handle · /task @handle TEXT · /status · /quit — \
Tab/Shift-Tab or Ctrl-N/Ctrl-P switch rooms, PageUp/PageDown scroll, Ctrl-C quits";

/// Parse a submitted line (already trimmed of the newline).
pub fn parse(line: &str) -> Command {
    let trimmed = line.trim();
    let mut words = trimmed.split_whitespace();
    let first = words.next().unwrap_or("");
    let arg = words.next();
    let extra = words.next().is_some();
    match first {
        "/quit" | "/exit" => Command::Quit,
        "/help" => Command::Help,
        "/join" => match arg {
            Some(room) if !extra => Command::Join(room.trim_start_matches('#').to_owned()),
            _ => Command::Usage("usage: /join ROOM"),
        },
        "/dm" => match arg {
            Some(who) if !extra => Command::Dm(who.trim_start_matches('@').to_owned()),
            _ => Command::Usage("usage: /dm @handle"),
        },
        _ => Command::Send(trimmed.to_owned()),
    }
}

/// Apply a key to the state; what the loop must do next.
pub fn on_key(s: &mut State, key: KeyEvent) -> Action {
    if key.kind == KeyEventKind::Release {
        return Action::None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char('c') | KeyCode::Char('d') if ctrl => Action::Quit,
        KeyCode::Char('n') if ctrl => {
            s.cycle(1);
            Action::Switched
        }
        KeyCode::Char('p') if ctrl => {
            s.cycle(-1);
            Action::Switched
        }
        KeyCode::Char('u') if ctrl => {
            s.input.clear();
            s.cursor = 0;
            Action::None
        }
        KeyCode::Tab => {
            s.cycle(1);
            Action::Switched
        }
        KeyCode::BackTab => {
            s.cycle(-1);
            Action::Switched
        }
        KeyCode::PageUp => {
            s.scroll_by(10);
            Action::None
        }
        KeyCode::PageDown => {
            s.scroll_by(-10);
            Action::None
        }
        KeyCode::Enter => {
            let line = std::mem::take(&mut s.input);
            s.cursor = 0;
            if line.trim().is_empty() {
                Action::None
            } else {
                Action::Submit(line)
            }
        }
        KeyCode::Esc => {
            s.input.clear();
            s.cursor = 0;
            Action::None
        }
        KeyCode::Backspace => {
            if s.cursor > 0 {
                s.cursor -= 1;
                remove_char(&mut s.input, s.cursor);
            }
            Action::None
        }
        KeyCode::Delete => {
            if s.cursor < s.input.chars().count() {
                remove_char(&mut s.input, s.cursor);
            }
            Action::None
        }
        KeyCode::Left => {
            s.cursor = s.cursor.saturating_sub(1);
            Action::None
        }
        KeyCode::Right => {
            s.cursor = (s.cursor + 1).min(s.input.chars().count());
            Action::None
        }
        KeyCode::Home => {
            s.cursor = 0;
            Action::None
        }
        KeyCode::End => {
            s.cursor = s.input.chars().count();
            Action::None
        }
        KeyCode::Char(c) if !ctrl => {
            let at = byte_index(&s.input, s.cursor);
            s.input.insert(at, c);
            s.cursor += 1;
            Action::None
        }
        _ => Action::None,
    }
}

fn byte_index(s: &str, chars: usize) -> usize {
    s.char_indices().nth(chars).map_or(s.len(), |(i, _)| i)
}

fn remove_char(s: &mut String, chars: usize) {
    let at = byte_index(s, chars);
    if at < s.len() {
        s.remove(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn lines_parse_into_commands() {
        assert_eq!(parse("/join alpha"), Command::Join("alpha".into()));
        assert_eq!(parse("/join #alpha"), Command::Join("alpha".into()));
        assert_eq!(parse("/dm @w2"), Command::Dm("w2".into()));
        assert_eq!(parse("/dm w2"), Command::Dm("w2".into()));
        assert_eq!(parse("/quit"), Command::Quit);
        assert!(matches!(parse("/join"), Command::Usage(_)));
        assert!(matches!(parse("/dm a b"), Command::Usage(_)));
        assert_eq!(parse("/status"), Command::Send("/status".into()));
        assert_eq!(
            parse("/task @w2 do it "),
            Command::Send("/task @w2 do it".into())
        );
        assert_eq!(parse("hello"), Command::Send("hello".into()));
    }

    #[test]
    fn keys_edit_the_line_and_submit_it() {
        let mut s = State::new("w1", "w1", "http://h");
        for c in "hxi".chars() {
            on_key(&mut s, key(KeyCode::Char(c)));
        }
        on_key(&mut s, key(KeyCode::Left));
        on_key(&mut s, key(KeyCode::Backspace));
        assert_eq!(s.input, "hi");
        on_key(&mut s, key(KeyCode::Home));
        on_key(&mut s, key(KeyCode::Char('>')));
        assert_eq!(s.input, ">hi");
        assert_eq!(
            on_key(&mut s, key(KeyCode::Enter)),
            Action::Submit(">hi".into())
        );
        assert_eq!(s.input, "");
        assert_eq!(on_key(&mut s, key(KeyCode::Enter)), Action::None);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(on_key(&mut s, ctrl_c), Action::Quit);
    }

    #[test]
    fn tab_switches_rooms() {
        let mut s = State::new("w1", "w1", "http://h");
        s.ensure_room("alpha");
        assert_eq!(on_key(&mut s, key(KeyCode::Tab)), Action::Switched);
        assert_eq!(s.current_key(), "alpha");
        on_key(&mut s, key(KeyCode::BackTab));
        assert_eq!(s.current_key(), "global");
    }
}
