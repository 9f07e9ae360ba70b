//! Sans-IO Socket.IO v5: packets, the decoder with binary reassembly, per-connection state, and the msgpack parser.

pub mod connection;
pub mod decoder;
pub mod msgpack;
pub mod packet;
pub mod parser;
pub mod reason;

pub use connection::{Connection, Incoming, Violation};
pub use decoder::{DecodeError, Decoder, DecoderLimits};
pub use packet::{Encoded, Packet, PacketType, placeholder};
pub use parser::Parser;
pub use reason::DisconnectReason;
