//! The write side of the benchmark clients: a `ping` every 15 s, batches
//! fed and flushed at once, and the write loop of the senders that draw
//! their time stamps from a [`Source`].

use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio::sync::watch;
use tokio::time::Interval;
use tokio_tungstenite::tungstenite::{Error, Message};

use crate::client::{Source, Window, WriterStats, Ws};

/// Heartbeat period (the hub's default `heartbeat_interval_ms`).
pub const PING_EVERY: Duration = Duration::from_secs(15);

/// Ticks every [`PING_EVERY`], the first one [`PING_EVERY`] from now.
pub fn ping_interval() -> Interval {
    tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY)
}

/// Send a `ping` request; `pings` counts it and numbers its (negative) id.
pub async fn ping(sink: &mut SplitSink<Ws, Message>, pings: &mut u64) -> Result<(), Error> {
    *pings += 1;
    let f = format!(r#"{{"type":"req","id":-{pings},"method":"ping"}}"#);
    sink.send(Message::Text(f.into())).await
}

/// Feed `frames` (made one at a time, as they are fed) and flush them;
/// `sent` counts every frame tried. Stops at the first error.
pub async fn feed_flush(
    sink: &mut SplitSink<Ws, Message>,
    frames: impl Iterator<Item = String>,
    sent: &mut u64,
) -> Result<(), Error> {
    for f in frames {
        *sent += 1;
        sink.feed(Message::Text(f.into())).await?;
    }
    sink.flush().await
}

/// What a [`source_writer`] sends for a time stamp.
#[derive(Debug)]
pub enum Next {
    /// This frame, time-stamped `t` (nanoseconds on the window's clock).
    Frame { t: u64, frame: String },
    /// Nothing, now or later: the writer only pings from here on.
    Done,
}

/// Write a frame per time stamp from `source` until `stop`, and a `ping`
/// every 15 s. `make` builds the frame of a stamp (`None`: "now").
pub async fn source_writer(
    mut sink: SplitSink<Ws, Message>,
    win: Window,
    mut source: Source,
    batch: usize,
    mut stop: watch::Receiver<bool>,
    mut make: impl FnMut(Option<u64>) -> Next,
) -> WriterStats {
    let mut s = WriterStats::default();
    let mut ping = ping_interval();
    let mut buf = Vec::with_capacity(batch);
    let mut open = true;
    loop {
        let r = tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = ping.tick() => self::ping(&mut sink, &mut s.pings).await,
            more = source.next(&mut buf), if open => {
                if !more {
                    open = false;
                    continue;
                }
                let in_window = &mut s.sent_in_window;
                let frames = buf.drain(..).filter_map(|stamp| {
                    if !open {
                        return None;
                    }
                    match make(stamp) {
                        Next::Frame { t, frame } => {
                            if win.contains(t) {
                                *in_window += 1;
                            }
                            Some(frame)
                        }
                        Next::Done => {
                            open = false;
                            None
                        }
                    }
                });
                feed_flush(&mut sink, frames, &mut s.sent).await
            }
        };
        if let Err(e) = r {
            s.error = Some(e.to_string());
            break;
        }
    }
    s
}
