//! Wire types of C2CP v2, the clawnet chat and coordination protocol.
//!
//! Everything a client and the hub must agree on lives here: the three frame
//! kinds, the message envelope, method and event names (with the predecessor's
//! aliases), parameter and result shapes, identifier rules and the stable error
//! codes. The crate does no IO so the server, the Rust client and the CLI share
//! it and agree by construction. `docs/PROTOCOL.md` is the prose contract; this
//! crate is the same contract in types.

pub mod error;
pub mod frame;
pub mod guard;
pub mod ids;
pub mod message;
pub mod methods;
pub mod tasks;

pub use error::{ErrorBody, ErrorCode};
pub use frame::{EventFrame, Frame, RequestFrame, ResponseFrame};
pub use ids::{dm_room_key, Role, RoomKind};
pub use message::{Envelope, ToType};
pub use tasks::{Task, TaskState};

/// The protocol version this crate describes, sent by clients in `connect`.
pub const PROTOCOL_VERSION: u32 = 2;

/// Name of the room every agent belongs to.
pub const GLOBAL_ROOM: &str = "global";
