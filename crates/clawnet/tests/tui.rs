//! `clawnet chat` without `--msg`: the full-screen chat, driven in a
//! detached tmux session of fixed size against a real hub (send-keys to
//! type, capture-pane to read the screen).
//!
//! Needs `tmux`. Without it the test fails under `CI=true` and is skipped
//! (saying why) otherwise.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clawnet_client::Rest;
use clawnet_proto::methods::SendParams;
use clawnet_proto::ToType;
use common::*;
use serde_json::{Map, Value};

/// How long the screen may take to show something.
const WITHIN: Duration = Duration::from_secs(10);

/// One detached tmux session on a server of its own; the server is killed
/// when dropped, so no chat outlives the test.
struct Tmux {
    socket: String,
    name: String,
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").stderr(Stdio::null()).status();
    }
}

/// Quote for `sh`.
fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]);
        c
    }

    /// Run `shell_cmd` in a new 160×40 session.
    fn start(name: &str, shell_cmd: &str) -> Self {
        let t = Self {
            socket: format!("clawnet-tui-test-{}", std::process::id()),
            name: name.to_owned(),
        };
        let mut c = t.cmd();
        clean(&mut c);
        let ok = c
            .args(["new-session", "-d", "-s", name, "-x", "160", "-y", "40"])
            .arg(shell_cmd)
            .status()
            .expect("run tmux")
            .success();
        assert!(ok, "tmux new-session failed");
        t
    }

    fn alive(&self) -> bool {
        self.cmd()
            .args(["has-session", "-t", &self.name])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// tmux key names (`Enter`, `C-c`, `Tab`).
    fn keys(&self, keys: &[&str]) {
        let ok = self
            .cmd()
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .expect("send-keys")
            .success();
        assert!(ok, "send-keys {keys:?}");
    }

    /// Type `text` literally, then Enter.
    fn line(&self, text: &str) {
        let ok = self
            .cmd()
            .args(["send-keys", "-t", &self.name, "-l", text])
            .status()
            .expect("send-keys")
            .success();
        assert!(ok, "send-keys -l {text:?}");
        self.keys(&["Enter"]);
    }

    /// Poll the screen until `pred` holds; the screen.
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WITHIN;
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for(&self, needle: &str) -> String {
        self.wait(&format!("{needle:?}"), |s| s.contains(needle))
    }
}

/// Whether tmux can be run; panics under `CI=true` when it cannot.
fn have_tmux() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tmux is required for the TUI test under CI (apt-get install -y tmux)"
        );
        eprintln!("skipping the TUI test: tmux is not installed");
    }
    found
}

/// The line of the room list (the left column) naming `room`.
fn room_row<'a>(screen: &'a str, room: &str) -> Option<&'a str> {
    screen
        .lines()
        .map(|l| l.chars().take(24).collect::<String>())
        .position(|l| l.contains(room))
        .and_then(|i| screen.lines().nth(i))
}

fn selected(screen: &str, room: &str) -> bool {
    room_row(screen, room).is_some_and(|l| l.contains(&format!("> {room}")))
}

fn say(room: &str, text: &str) -> SendParams {
    let mut payload = Map::new();
    payload.insert("text".into(), Value::String(text.into()));
    let (to_type, to_id) = match room {
        "global" => (ToType::Global, None),
        r => (ToType::Room, Some(r.to_owned())),
    };
    SendParams {
        to_type,
        to_id,
        payload,
        dedupe_key: None,
        thread_id: None,
        reply_to: None,
    }
}

fn exit_code(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

#[test]
fn chat_tui_in_tmux() {
    if !have_tmux() {
        return;
    }
    let hub = serve(&[]);
    let w1 = agent(&hub, "w1");
    let w2 = agent(&hub, "w2");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let master = Rest::new(&hub.url, MASTER).expect("rest");
    let rest2 = Rest::new(&hub.url, w2.clone()).expect("rest");
    rt.block_on(master.create_room("alpha", false))
        .expect("create alpha");
    rt.block_on(rest2.send(&say("global", "earlier from w2")))
        .expect("w2 says something first");

    let dir = tempfile::tempdir().expect("tempdir");
    let code = dir.path().join("exit");
    let shell_cmd = format!(
        "{} chat --url {} --token {}; echo $? > {}",
        sh(BIN),
        sh(&hub.url),
        sh(&w1),
        sh(&code.display().to_string())
    );
    let t = Tmux::start("chat", &shell_cmd);

    // The room list, history, presence and the status line.
    let screen = t.wait_for(&format!("connected as @w1 to {}", hub.url));
    assert!(selected(&screen, "#global"), "global selected:\n{screen}");
    let screen = t.wait_for("<w2> earlier from w2");
    assert!(screen.contains("@w1 online"), "presence:\n{screen}");
    assert!(screen.contains("@w2 offline"), "presence:\n{screen}");

    // Typing a line sends it to the selected room.
    t.line("hello from the tui");
    t.wait_for("<w1> hello from the tui");

    // Another agent's message arrives live.
    rt.block_on(rest2.send(&say("global", "live from w2")))
        .expect("w2 sends");
    t.wait_for("<w2> live from w2");

    // `/task` goes to the hub as chat text; its notes come back into the
    // room, and the task's `task.updated` shows inline.
    t.line("/task @w2 summarise the logs");
    t.wait("the hub's task note and the inline task.updated", |s| {
        s.contains("<clawnet> task t_") && s.contains("queued (@w2)")
    });

    // `/join alpha` joins and selects it.
    t.line("/join alpha");
    let screen = t.wait("#alpha selected", |s| selected(s, "#alpha"));
    assert!(room_row(&screen, "#global").is_some(), "{screen}");
    rt.block_on(master.send(&say("alpha", "welcome to alpha")))
        .expect("master posts to alpha");
    t.wait_for("<master> welcome to alpha");
    // A message to a room not shown counts as unread.
    rt.block_on(rest2.send(&say("global", "while away")))
        .expect("w2 sends");
    t.wait("an unread count on global", |s| {
        room_row(s, "#global").is_some_and(|l| l.contains("#global (1)"))
    });

    // `/dm @w2` switches to the DM room; a line there is a DM.
    t.line("/dm @w2");
    t.wait("@w2 selected", |s| selected(s, "@w2"));
    t.line("psst, w2");
    t.wait_for("<w1> psst, w2");
    let dm = rt
        .block_on(rest2.history("dm:w1:w2", None, None))
        .expect("w2 reads the DM");
    let texts: Vec<_> = dm.messages.iter().filter_map(|m| m.text()).collect();
    assert_eq!(texts, ["psst, w2"], "{dm:?}");

    // Tab goes round the rooms: back to global.
    t.keys(&["Tab"]);
    let screen = t.wait("#global selected", |s| selected(s, "#global"));
    eprintln!("the chat, back in global:\n{screen}");

    // The status line follows the connection.
    drop(hub);
    t.wait_for("reconnecting…");

    // Ctrl-C ends the program cleanly and with it the tmux session.
    t.keys(&["C-c"]);
    let deadline = Instant::now() + WITHIN;
    while t.alive() {
        assert!(
            Instant::now() < deadline,
            "Ctrl-C did not end the chat:\n{}",
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(exit_code(&code).as_deref(), Some("0"), "exit status");
}
