//! Why a socket disconnected: [`DisconnectReason`] lives with the protocol core
//! ([`crate::socketio::reason`]); this path is kept for the server's users.

pub use crate::socketio::reason::DisconnectReason;
