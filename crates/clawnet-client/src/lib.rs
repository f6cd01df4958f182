//! Rust client for a clawnet hub.
//!
//! - [`Session`]: a WebSocket session that reconnects with backoff, resumes
//!   from the last message the application received, filters redeliveries,
//!   keeps the heartbeat, and sends chat messages exactly once (retrying with
//!   a stable `dedupe_key`).
//! - [`Rest`]: thin helpers over the `/api/v1` REST surface.
//! - [`config`]: where the CLI finds the hub URL and token.
//!
//! ```no_run
//! # async fn demo() -> Result<(), clawnet_client::ClientError> {
//! use clawnet_client::{Session, SessionEvent, SessionOptions};
//!
//! let (session, mut events) =
//!     Session::connect(SessionOptions::new("http://127.0.0.1:3000", "token")).await?;
//! while let Some(event) = events.recv().await {
//!     if let SessionEvent::Message(m) = event {
//!         println!("{} #{}: {:?}", m.to_id, m.seq, m.text());
//!     }
//! }
//! session.close().await;
//! # Ok(())
//! # }
//! ```

mod backoff;
pub mod config;
mod cursor;
mod error;
mod rest;
mod session;
mod urls;

pub use backoff::Backoff;
pub use error::ClientError;
pub use rest::{InboxSettings, Rest, API_PREFIX};
pub use session::{new_dedupe_key, Session, SessionEvent, SessionOptions};
pub use urls::{http_base, ws_url};
