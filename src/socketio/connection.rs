//! One Engine.IO connection seen from Socket.IO (Node's `Client`): decodes incoming messages,
//! tracks which namespaces are connected, runs the connect timeout, and says when the connection
//! must be closed for a protocol violation. Sans-IO: time is passed in.

use super::decoder::{DecodeError, Decoder, DecoderLimits};
use super::packet::{Packet, PacketType};
use super::parser::Parser;
use super::reason::DisconnectReason;
use crate::engineio::Data;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What a connection's incoming messages mean for the server.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// The client asks to join namespace `nsp` with this auth payload (`{}` when none was sent).
    Connect {
        /// Namespace.
        nsp: String,
        /// The CONNECT payload.
        auth: Value,
    },
    /// An EVENT or ACK (or DISCONNECT) for a connected namespace.
    Packet(Packet),
}

/// Why the server must close the whole connection (Node's `Client.close()` / `onerror`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A message did not decode: the engine connection is closed ("forced close").
    Decode(DecodeError),
    /// A packet for a namespace not connected, a second CONNECT, or a CONNECT_ERROR from the client
    /// ("forced server close").
    InvalidState,
    /// No namespace was joined within `connectTimeout` ("forced server close").
    ConnectTimeout,
}

impl Violation {
    /// The disconnect reason Node reports to the connection's sockets.
    pub const fn reason(&self) -> DisconnectReason {
        match self {
            Violation::Decode(_) => DisconnectReason::ForcedClose,
            Violation::InvalidState | Violation::ConnectTimeout => DisconnectReason::ForcedServerClose,
        }
    }
}

/// Per-connection Socket.IO state.
#[derive(Debug)]
pub struct Connection {
    decoder: Decoder,
    /// Connected namespaces and their socket ids.
    namespaces: HashMap<String, String>,
    connect_deadline: Option<Instant>,
}

impl Connection {
    /// Starts tracking a new engine connection; no namespace may stay unjoined past `connect_timeout`.
    pub fn new(limits: DecoderLimits, connect_timeout: Duration, now: Instant) -> Connection {
        Connection::with_parser(limits, Parser::Default, connect_timeout, now)
    }

    /// The same, for clients speaking `parser`'s wire format.
    pub fn with_parser(limits: DecoderLimits, parser: Parser, connect_timeout: Duration, now: Instant) -> Connection {
        Connection {
            decoder: Decoder::with_parser(limits, parser),
            namespaces: HashMap::new(),
            connect_deadline: Some(now + connect_timeout),
        }
    }

    /// Feeds one Engine.IO message.
    pub fn handle_message(&mut self, data: Data) -> Result<Option<Incoming>, Violation> {
        let decoded = match data {
            Data::Text(s) => self.decoder.add_text(&s),
            Data::Binary(b) => self.decoder.add_binary(b),
        };
        let Some(packet) = decoded.map_err(Violation::Decode)? else {
            return Ok(None);
        };
        let connected = self.namespaces.contains_key(&packet.nsp);
        match packet.ty {
            PacketType::Connect if !connected => {
                let auth = packet.data.unwrap_or_else(|| Value::Object(Default::default()));
                Ok(Some(Incoming::Connect { nsp: packet.nsp, auth }))
            }
            PacketType::Connect | PacketType::ConnectError => Err(Violation::InvalidState),
            _ if !connected => Err(Violation::InvalidState),
            PacketType::Disconnect => {
                self.namespaces.remove(&packet.nsp);
                Ok(Some(Incoming::Packet(packet)))
            }
            _ => Ok(Some(Incoming::Packet(packet))),
        }
    }

    /// Records that the server accepted namespace `nsp` for socket `sid`; stops the connect timeout.
    pub fn connected(&mut self, nsp: &str, sid: &str) {
        self.namespaces.insert(nsp.to_owned(), sid.to_owned());
        self.connect_deadline = None;
    }

    /// Records that the server disconnected the socket of namespace `nsp`.
    pub fn disconnected(&mut self, nsp: &str) {
        self.namespaces.remove(nsp);
    }

    /// The socket id connected on `nsp`.
    pub fn socket_id(&self, nsp: &str) -> Option<&str> {
        self.namespaces.get(nsp).map(String::as_str)
    }

    /// Connected namespaces and their socket ids.
    pub fn namespaces(&self) -> impl Iterator<Item = (&str, &str)> {
        self.namespaces.iter().map(|(n, s)| (n.as_str(), s.as_str()))
    }

    /// When [`Connection::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.connect_deadline
    }

    /// `Err` when no namespace was joined in time: close the connection.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Violation> {
        match self.connect_deadline {
            Some(at) if at <= now => {
                self.connect_deadline = None;
                if self.namespaces.is_empty() {
                    Err(Violation::ConnectTimeout)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engineio::Str;
    use serde_json::json;

    fn text(s: &str) -> Data {
        Data::Text(Str::from(s))
    }

    #[test]
    fn connect_then_events() {
        let t0 = Instant::now();
        let mut c = Connection::new(DecoderLimits::default(), Duration::from_secs(1), t0);
        assert_eq!(
            c.handle_message(text(r#"0{"token":"1"}"#)),
            Ok(Some(Incoming::Connect {
                nsp: "/".into(),
                auth: json!({"token":"1"})
            }))
        );
        assert_eq!(
            c.handle_message(text(r#"2["x"]"#)),
            Err(Violation::InvalidState),
            "not yet connected"
        );
        c.connected("/", "abc");
        assert_eq!(c.poll_timeout(), None);
        let Ok(Some(Incoming::Packet(p))) = c.handle_message(text(r#"2["x"]"#)) else {
            panic!()
        };
        assert_eq!(p.event_name(), Some("x"));
        assert_eq!(
            c.handle_message(text("0")),
            Err(Violation::InvalidState),
            "second CONNECT"
        );
        assert!(matches!(c.handle_message(text("1")), Ok(Some(Incoming::Packet(_)))));
        assert_eq!(c.socket_id("/"), None);
    }

    #[test]
    fn connect_timeout_and_decode_errors() {
        let t0 = Instant::now();
        let mut c = Connection::new(DecoderLimits::default(), Duration::from_secs(1), t0);
        assert_eq!(c.handle_timeout(t0 + Duration::from_millis(999)), Ok(()));
        assert_eq!(
            c.handle_timeout(t0 + Duration::from_secs(1)),
            Err(Violation::ConnectTimeout)
        );
        assert_eq!(
            c.handle_message(text("abc")),
            Err(Violation::Decode(DecodeError::UnknownType))
        );
        assert_eq!(
            Violation::Decode(DecodeError::UnknownType).reason().as_str(),
            "forced close"
        );
    }
}
