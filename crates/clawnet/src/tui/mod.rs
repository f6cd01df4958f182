//! `clawnet chat` without `--msg` on a terminal: a full-screen chat.
//!
//! Rooms on the left (with unread counts), the selected room's timeline in
//! the middle (with the `task.updated` events of tasks this agent
//! dispatched), presence on the right, an input line and a status line
//! below. History comes over REST, everything live over one reconnecting
//! [`clawnet_client::Session`].
//!
//! - `state` holds what the screen shows, without terminal or network;
//! - `input` turns keys and input lines into actions and commands;
//! - `view` draws;
//! - `app` is the event loop that ties them to the hub.

mod app;
mod input;
mod state;
mod view;

use std::io::{stdout, Stdout};

use crossterm::cursor::Show;
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

/// Where the chat starts and whom it talks to.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hub URL.
    pub url: String,
    /// Agent token.
    pub token: String,
    /// Room to select first (`global` when neither this nor `to`).
    pub room: Option<String>,
    /// Agent (`@handle` or id) whose DM room to select first.
    pub to: Option<String>,
}

/// Run the interactive chat until Ctrl-C or `/quit`. Connecting happens
/// before the screen is taken over, so a wrong URL or token is reported as
/// any other command's error.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let mut app = app::App::start(&opts).await?;
    let mut term = Screen::enter()?;
    let r = app.run(&mut term.terminal).await;
    drop(term);
    app.close().await;
    r
}

/// The terminal in raw mode on the alternate screen; restored when dropped
/// and, through a panic hook, when anything panics meanwhile.
struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Screen")
    }
}

impl Screen {
    fn enter() -> anyhow::Result<Self> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        enable_raw_mode()?;
        if let Err(e) = execute!(stdout(), EnterAlternateScreen) {
            restore();
            return Err(e.into());
        }
        match Terminal::new(CrosstermBackend::new(stdout())) {
            Ok(terminal) => Ok(Self { terminal }),
            Err(e) => {
                restore();
                Err(e.into())
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
        // The hook stays installed; restoring twice is harmless.
    }
}

/// Leave raw mode and the alternate screen, show the cursor. Idempotent.
fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(stdout(), LeaveAlternateScreen, Show);
}
