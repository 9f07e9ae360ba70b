//! Sans-IO Engine.IO v4: packets, polling payloads, request verification and the session state
//! machine. Nothing here touches sockets, timers or a runtime; time is passed in.

pub mod config;
pub mod error;
pub mod packet;
pub mod payload;
pub mod request;
pub mod session;
pub mod sid;
pub mod str;
pub mod timer;

pub use config::{EngineConfig, TransportKind, Transports};
pub use error::{EngineError, ErrorBody};
pub use packet::{Data, Frame, Packet, PacketError, PacketType};
pub use request::{Method, Query, Route};
pub use session::{CloseReason, Event, Session, SessionError, Transmit};
pub use str::Str;
