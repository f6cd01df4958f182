//! The event loop: keys from a reader thread, events from the session, and
//! the hub requests the input line asks for.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clawnet_client::{ClientError, Rest, Session, SessionEvent, SessionOptions};
use clawnet_proto::methods::{events, PresenceEntry, SendParams, SendResult, TypingEvent};
use clawnet_proto::tasks::TaskUpdatedEvent;
use clawnet_proto::{ErrorCode, EventFrame};
use crossterm::event::{self, Event};
use ratatui::backend::Backend;
use ratatui::Terminal;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::input::{self, Action, Command, HELP};
use super::state::{dm_key, State, HISTORY};
use super::view;
use super::Options;

/// How often the screen is redrawn with nothing happening.
const TICK: Duration = Duration::from_millis(500);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A connected chat: the hub clients and what the screen shows.
#[derive(Debug)]
pub struct App {
    rest: Rest,
    session: Session,
    events: mpsc::Receiver<SessionEvent>,
    session_open: bool,
    /// Lines to send, taken one at a time (in order) by a background task,
    /// so a slow hub never freezes the screen.
    outbox: mpsc::UnboundedSender<SendParams>,
    /// What became of each.
    sent: mpsc::UnboundedReceiver<Result<SendResult, ClientError>>,
    state: State,
}

impl App {
    /// Read rooms and presence, connect the session (resuming every room at
    /// its newest message: what came before is read as history), and load
    /// the first room's history.
    pub async fn start(o: &Options) -> anyhow::Result<Self> {
        let rest = Rest::new(&o.url, o.token.clone())?;
        let rooms = rest.rooms().await.context("listing rooms")?;
        let mut opts = SessionOptions::new(o.url.clone(), o.token.clone());
        opts.client_name = "clawnet-chat".into();
        // Like `tail`, the chat only watches: it leaves the agent's cursors
        // to whatever processes its messages.
        opts.auto_ack = false;
        opts.presence = true;
        opts.resume = rooms
            .rooms
            .iter()
            .filter(|r| r.member)
            .map(|r| (r.name.clone(), r.last_seq))
            .collect::<BTreeMap<_, _>>();
        let (session, events) = Session::connect(opts).await.context("connecting")?;
        let info = session.info();
        let mut state = State::new(&info.agent_id, &info.handle, &o.url);
        state.add_rooms(&rooms.rooms);
        let (outbox, mut queue) = mpsc::unbounded_channel::<SendParams>();
        let (sent_tx, sent) = mpsc::unbounded_channel();
        let sender = session.clone();
        tokio::spawn(async move {
            while let Some(p) = queue.recv().await {
                if sent_tx.send(sender.send(p).await).is_err() {
                    return;
                }
            }
        });
        let mut app = Self {
            rest,
            session,
            events,
            session_open: true,
            outbox,
            sent,
            state,
        };
        app.refresh_presence().await;
        match (&o.room, &o.to) {
            (_, Some(who)) => app.open_dm(who).await,
            (Some(room), None) if room != "global" => app.join(room).await,
            _ => app.load_current().await,
        }
        Ok(app)
    }

    /// Close the session.
    pub async fn close(&self) {
        self.session.close().await;
    }

    /// Draw and react until the user quits.
    pub async fn run<B: Backend>(&mut self, term: &mut Terminal<B>) -> anyhow::Result<()> {
        let (keys_tx, mut keys) = mpsc::channel::<Event>(256);
        std::thread::spawn(move || read_keys(keys_tx));
        let mut tick = tokio::time::interval(TICK);
        loop {
            term.draw(|f| view::draw(f, &self.state))?;
            tokio::select! {
                key = keys.recv() => match key {
                    Some(Event::Key(k)) => {
                        let action = input::on_key(&mut self.state, k);
                        if !self.on_action(action).await {
                            return Ok(());
                        }
                    }
                    Some(_) => {}
                    None => return Ok(()),
                },
                ev = self.events.recv(), if self.session_open => match ev {
                    Some(ev) => self.on_session(ev),
                    None => {
                        self.session_open = false;
                        self.state.conn = "disconnected".into();
                    }
                },
                Some(r) = self.sent.recv() => match r {
                    Ok(r) => {
                        self.state.on_message(&r.message);
                    }
                    Err(e) => self.state.notice = Some(format!("not sent: {e}")),
                },
                _ = tick.tick() => {}
            }
        }
    }

    /// Carry out what a key asked for; false to quit.
    async fn on_action(&mut self, a: Action) -> bool {
        match a {
            Action::None => {}
            Action::Quit => return false,
            Action::Switched => self.load_current().await,
            Action::Submit(line) => {
                self.state.notice = None;
                match input::parse(&line) {
                    Command::Quit => return false,
                    Command::Help => self.state.note(now_ms(), HELP.into()),
                    Command::Usage(u) => self.state.notice = Some(u.into()),
                    Command::Join(room) => self.join(&room).await,
                    Command::Dm(who) => self.open_dm(&who).await,
                    Command::Send(text) => self.send(text),
                }
            }
        }
        true
    }

    fn on_session(&mut self, ev: SessionEvent) {
        let s = &mut self.state;
        match ev {
            SessionEvent::Connected(info) => {
                s.handle = info.handle;
                s.set_connected();
            }
            SessionEvent::Message(m) => {
                s.on_message(&m);
            }
            SessionEvent::Event(e) => self.on_event(e),
            SessionEvent::Reconnecting {
                attempt, reason, ..
            } => {
                s.conn = format!("reconnecting… (attempt {attempt}: {reason})");
            }
            SessionEvent::Disconnected { reason } => {
                s.conn = format!("disconnected: {reason}");
            }
        }
    }

    fn on_event(&mut self, e: EventFrame) {
        let s = &mut self.state;
        match e.event.as_str() {
            events::PRESENCE => {
                if let Ok(p) = serde_json::from_value::<PresenceEntry>(e.data) {
                    s.on_presence(p);
                }
            }
            events::TYPING => {
                if let Ok(t) = serde_json::from_value::<TypingEvent>(e.data) {
                    if t.from_id != s.me {
                        s.on_typing(&t.room, &t.from_handle, t.typing);
                    }
                }
            }
            events::TASK_UPDATED => {
                if let Ok(t) = serde_json::from_value::<TaskUpdatedEvent>(e.data) {
                    s.on_task(&t.task, now_ms());
                }
            }
            events::ROOM_JOINED => {
                let me = e.data.get("agent_id").and_then(Value::as_str) == Some(&s.me);
                if let (true, Some(room)) = (me, e.room.as_deref()) {
                    s.ensure_room(room);
                }
            }
            events::REPLAY_GAP => {
                if let Some(room) = e.room {
                    s.ensure_room(&room);
                    s.notice = Some(format!("some history of {room} is gone"));
                }
            }
            _ => {}
        }
    }

    /// Load the selected room's last messages unless already loaded.
    async fn load_current(&mut self) {
        let room = self.state.current_key();
        if self.state.current().loaded {
            return;
        }
        match self.history(&room).await {
            Ok(messages) => self.state.on_history(&room, &messages),
            // A DM nobody has written to yet does not exist.
            Err(e) if e.code() == Some(ErrorCode::NotFound) => {
                self.state.on_history(&room, &[]);
            }
            Err(e) => self.state.notice = Some(format!("history of {room}: {e}")),
        }
    }

    async fn history(&self, room: &str) -> Result<Vec<clawnet_proto::Envelope>, ClientError> {
        let last = self.rest.history(room, None, Some(1)).await?.last_seq;
        let after = last.saturating_sub(u64::from(HISTORY));
        Ok(self
            .rest
            .history(room, Some(after), Some(HISTORY))
            .await?
            .messages)
    }

    async fn refresh_presence(&mut self) {
        match self.rest.presence().await {
            Ok(list) => list
                .agents
                .into_iter()
                .for_each(|p| self.state.on_presence(p)),
            Err(e) => self.state.notice = Some(format!("presence: {e}")),
        }
    }

    /// `/join ROOM`: join (over the session, so it subscribes) and switch.
    async fn join(&mut self, room: &str) {
        if room != "global" && self.state.index(room).is_none() {
            if let Err(e) = self.session.join_room(room).await {
                self.state.notice = Some(format!("join {room}: {e}"));
                return;
            }
        }
        self.state.select(room);
        self.load_current().await;
    }

    /// `/dm @handle`: switch to the DM room with that agent.
    async fn open_dm(&mut self, who: &str) {
        let mut id = self.state.agent_of(who);
        if id.is_none() {
            self.refresh_presence().await;
            id = self.state.agent_of(who);
        }
        let Some(id) = id else {
            self.state.notice = Some(format!("no agent @{}", who.trim_start_matches('@')));
            return;
        };
        if id == self.state.me {
            self.state.notice = Some("that is you".into());
            return;
        }
        let key = dm_key(&self.state.me, &id);
        self.state.select(&key);
        self.load_current().await;
    }

    /// Send a line to the selected room in the background; the stored
    /// message shows as soon as the hub has it.
    fn send(&mut self, text: String) {
        let (to_type, to_id) = self.state.address(&self.state.current_key());
        let mut payload = Map::new();
        payload.insert("text".into(), Value::String(text));
        let p = SendParams {
            to_type,
            to_id,
            payload,
            dedupe_key: None,
            thread_id: None,
            reply_to: None,
        };
        self.state.scroll = 0;
        if self.outbox.send(p).is_err() {
            self.state.notice = Some("not sent: the connection is closed".into());
        }
    }
}

/// Forward terminal events until the receiver is gone.
fn read_keys(tx: mpsc::Sender<Event>) {
    loop {
        if tx.is_closed() {
            return;
        }
        match event::poll(Duration::from_millis(100)) {
            Ok(true) => match event::read() {
                Ok(ev) => {
                    if tx.blocking_send(ev).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            Ok(false) => {}
            Err(_) => return,
        }
    }
}
