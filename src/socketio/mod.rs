//! Sans-IO Socket.IO v5: packets, the decoder with binary reassembly, and per-connection state.

pub mod connection;
pub mod decoder;
pub mod packet;
pub mod reason;

pub use connection::{Connection, Incoming, Violation};
pub use decoder::{DecodeError, Decoder, DecoderLimits};
pub use packet::{Encoded, Packet, PacketType, placeholder};
pub use reason::DisconnectReason;
