//! The Rust client against a real hub: reconnect, resume and exactly-once
//! delivery to the application.

mod common;

use std::time::Duration;

use clawnet_client::{Session, SessionEvent, SessionOptions};
use common::*;

async fn next_message(
    rx: &mut tokio::sync::mpsc::Receiver<SessionEvent>,
) -> clawnet_proto::Envelope {
    loop {
        let ev = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("an event within the wait")
            .expect("session open");
        if let SessionEvent::Message(m) = ev {
            return m;
        }
    }
}

#[tokio::test]
async fn session_reconnects_resumes_and_delivers_each_message_once() {
    let t = start().await;
    let (ta, tb) = (t.agent("pub").await, t.agent("sub").await);
    let mut o = SessionOptions::new(t.base.clone(), tb);
    o.request_timeout = Duration::from_secs(2);
    let (session, mut rx) = Session::connect(o).await.expect("connect");
    let sender = t.rest(&ta);
    for i in 0..5 {
        sender
            .send(&send_params("global", None, &format!("a{i}"), None))
            .await
            .expect("send");
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(next_message(&mut rx).await.seq);
    }

    // The hub drops every connection; messages keep coming meanwhile.
    t.hub.close_all("shutdown", "test restart");
    for i in 5..10 {
        sender
            .send(&send_params("global", None, &format!("a{i}"), None))
            .await
            .expect("send");
    }
    for _ in 5..10 {
        got.push(next_message(&mut rx).await.seq);
    }
    assert_eq!(got, (1..=10).collect::<Vec<_>>());
    // Nothing is delivered twice afterwards.
    let extra = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            match rx.recv().await {
                Some(SessionEvent::Message(m)) => return m.seq,
                Some(_) => continue,
                None => return 0,
            }
        }
    })
    .await;
    assert!(extra.is_err(), "a message was delivered twice: {extra:?}");
    assert_eq!(session.cursors().get("global"), Some(&10));

    // The session still works for requests after the reconnect.
    let r = session
        .send(send_params("global", None, "after", None))
        .await
        .expect("send");
    assert_eq!(r.message.seq, 11);
    // Auto-ack moved the server-kept cursor, so a new session starts after it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cursors = t.hub.store().cursors("sub").await.expect("cursors");
    assert!(
        cursors.get("global").copied().unwrap_or(0) >= 10,
        "{cursors:?}"
    );
    session.close().await;
}
