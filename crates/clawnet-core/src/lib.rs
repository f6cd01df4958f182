//! The clawnet hub: identity, rooms, chat, cursors and replay, presence.
//!
//! Pure domain logic over two traits, [`store::Store`] (state) and
//! [`bus::Bus`] (fan-out); no HTTP in here. The server crate turns frames and
//! requests into calls of [`Hub`] and its errors into HTTP statuses and
//! protocol codes.

pub mod admin;
pub mod audit;
pub mod backoff;
pub mod bus;
pub mod chat;
pub mod clock;
pub mod config;
pub mod cursors;
pub mod defense;
pub mod deletion;
pub mod directory;
pub mod error;
pub mod fanout;
pub mod frames;
pub mod hub;
pub mod inbox;
pub mod integrity;
pub mod mentions;
pub mod metrics;
pub mod msgid;
pub mod presence;
pub mod quarantine;
pub mod queues;
pub mod redact;
pub mod retention;
pub mod rooms;
pub mod runtime;
pub mod schedules;
pub mod sessions;
pub mod slash;
pub mod store;
pub mod tasks;
pub mod tokens;

pub use config::{HubConfig, TaskConfig};
pub use error::{Error, Result};
pub use hub::{Hub, HubBuilder, IssuedToken};
