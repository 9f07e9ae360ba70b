//! Why a socket disconnected: the one place Node's reason strings are written.
//!
//! Engine.IO's [`CloseReason`] and Socket.IO's [`super::Violation`] map into
//! [`DisconnectReason`]; neither carries strings of its own.

use crate::engineio::CloseReason;
use std::fmt;

/// A socket's disconnect reason (Node's `DisconnectReason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The client closed the transport.
    TransportClose,
    /// The transport failed.
    TransportError,
    /// The client stopped answering pings.
    PingTimeout,
    /// The client sent something that is not Engine.IO.
    ParseError,
    /// The engine connection was closed by the server (incl. Socket.IO decode errors).
    ForcedClose,
    /// The server closed the whole connection (`disconnect(true)`, connect timeout, protocol violation).
    ForcedServerClose,
    /// The server disconnected this socket (`socket.disconnect()`).
    ServerNamespaceDisconnect,
    /// The client disconnected this socket (DISCONNECT packet).
    ClientNamespaceDisconnect,
    /// The server is shutting down.
    ServerShuttingDown,
}

impl DisconnectReason {
    /// Node's string (the only place these strings are written).
    pub const fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::ParseError => "parse error",
            DisconnectReason::ForcedClose => "forced close",
            DisconnectReason::ForcedServerClose => "forced server close",
            DisconnectReason::ServerNamespaceDisconnect => "server namespace disconnect",
            DisconnectReason::ClientNamespaceDisconnect => "client namespace disconnect",
            DisconnectReason::ServerShuttingDown => "server shutting down",
        }
    }
}

impl DisconnectReason {
    /// Whether the session is kept for connection state recovery (Node's
    /// `RECOVERABLE_DISCONNECT_REASONS`): not when the client or the server chose to leave.
    pub const fn is_recoverable(self) -> bool {
        matches!(
            self,
            DisconnectReason::TransportError
                | DisconnectReason::TransportClose
                | DisconnectReason::ForcedClose
                | DisconnectReason::PingTimeout
                | DisconnectReason::ServerShuttingDown
                | DisconnectReason::ForcedServerClose
        )
    }
}

impl From<CloseReason> for DisconnectReason {
    fn from(r: CloseReason) -> Self {
        match r {
            CloseReason::TransportClose => DisconnectReason::TransportClose,
            CloseReason::TransportError => DisconnectReason::TransportError,
            CloseReason::PingTimeout => DisconnectReason::PingTimeout,
            CloseReason::ParseError => DisconnectReason::ParseError,
            CloseReason::ForcedClose => DisconnectReason::ForcedClose,
            CloseReason::ServerShuttingDown => DisconnectReason::ServerShuttingDown,
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recoverable_reasons_are_nodes() {
        // socket.io's RECOVERABLE_DISCONNECT_REASONS.
        let node = [
            "transport error",
            "transport close",
            "forced close",
            "ping timeout",
            "server shutting down",
            "forced server close",
        ];
        let all = [
            DisconnectReason::TransportClose,
            DisconnectReason::TransportError,
            DisconnectReason::PingTimeout,
            DisconnectReason::ParseError,
            DisconnectReason::ForcedClose,
            DisconnectReason::ForcedServerClose,
            DisconnectReason::ServerNamespaceDisconnect,
            DisconnectReason::ClientNamespaceDisconnect,
            DisconnectReason::ServerShuttingDown,
        ];
        for r in all {
            assert_eq!(r.is_recoverable(), node.contains(&r.as_str()), "{r}");
        }
    }

    #[test]
    fn engine_reasons_map_to_nodes_strings() {
        let all = [
            (CloseReason::TransportClose, "transport close"),
            (CloseReason::TransportError, "transport error"),
            (CloseReason::PingTimeout, "ping timeout"),
            (CloseReason::ParseError, "parse error"),
            (CloseReason::ForcedClose, "forced close"),
            (CloseReason::ServerShuttingDown, "server shutting down"),
        ];
        for (reason, node) in all {
            assert_eq!(DisconnectReason::from(reason).to_string(), node);
        }
        assert_eq!(DisconnectReason::ForcedServerClose.as_str(), "forced server close");
        assert_eq!(
            DisconnectReason::ClientNamespaceDisconnect.as_str(),
            "client namespace disconnect"
        );
    }
}
