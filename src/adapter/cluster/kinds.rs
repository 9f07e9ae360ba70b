//! The message and request types of Node's adapters, each mapped to its wire number in exactly
//! one place: socket.io-adapter's `ClusterAdapter` [`MessageType`] (sharded Redis adapter, Redis
//! Streams adapter) and `@socket.io/redis-adapter`'s classic [`RequestType`].

/// Declares a wire enum: its variants with their numbers, `ALL`, `code()` and `from_code()`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $code,)+
        }

        impl $name {
            /// Every type, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire number.
            pub const fn code(self) -> u64 {
                self as u64
            }

            /// The type of wire number `code`, if any.
            pub fn from_code(code: u64) -> Option<$name> {
                $name::ALL.iter().copied().find(|t| t.code() == code)
            }
        }
    };
}

wire_enum! {
    /// socket.io-adapter's `MessageType` (`ClusterAdapter` / `ClusterAdapterWithHeartbeat`).
    MessageType {
        /// A server announces itself (heartbeat adapters only).
        InitialHeartbeat = 1,
        /// A server is still alive (heartbeat adapters only).
        Heartbeat = 2,
        /// Broadcast (with `requestId`: expecting acks).
        Broadcast = 3,
        /// Make sockets join rooms.
        SocketsJoin = 4,
        /// Make sockets leave rooms.
        SocketsLeave = 5,
        /// Disconnect sockets.
        DisconnectSockets = 6,
        /// Fetch sockets.
        FetchSockets = 7,
        /// Response to a fetch.
        FetchSocketsResponse = 8,
        /// `serverSideEmit`.
        ServerSideEmit = 9,
        /// Response to a `serverSideEmit` with ack.
        ServerSideEmitResponse = 10,
        /// How many clients a server targeted for a broadcast with acks.
        BroadcastClientCount = 11,
        /// One client's ack.
        BroadcastAck = 12,
        /// A server leaves (heartbeat adapters only).
        AdapterClose = 13,
    }
}

impl MessageType {
    /// Whether this message answers a request of the server it is addressed to.
    pub fn is_response(self) -> bool {
        matches!(
            self,
            MessageType::FetchSocketsResponse
                | MessageType::ServerSideEmitResponse
                | MessageType::BroadcastClientCount
                | MessageType::BroadcastAck
        )
    }
}

wire_enum! {
    /// `@socket.io/redis-adapter`'s classic `RequestType`.
    RequestType {
        /// Legacy: socket ids in rooms.
        Sockets = 0,
        /// All rooms of the cluster.
        AllRooms = 1,
        /// Make sockets join rooms.
        RemoteJoin = 2,
        /// Make sockets leave rooms.
        RemoteLeave = 3,
        /// Disconnect sockets.
        RemoteDisconnect = 4,
        /// Fetch sockets.
        RemoteFetch = 5,
        /// `serverSideEmit`.
        ServerSideEmit = 6,
        /// Broadcast expecting acks.
        Broadcast = 7,
        /// Response: how many clients a server targeted.
        BroadcastClientCount = 8,
        /// Response: one client's ack.
        BroadcastAck = 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_numbers_match_node() {
        let codes: Vec<u64> = MessageType::ALL.iter().map(|t| t.code()).collect();
        assert_eq!(codes, (1..=13).collect::<Vec<_>>());
        assert_eq!(MessageType::Broadcast.code(), 3);
        assert_eq!(MessageType::BroadcastAck.code(), 12);
        assert_eq!(MessageType::from_code(0), None);
        assert_eq!(MessageType::from_code(14), None);
        assert_eq!(MessageType::from_code(7), Some(MessageType::FetchSockets));
        let codes: Vec<u64> = RequestType::ALL.iter().map(|t| t.code()).collect();
        assert_eq!(codes, (0..=9).collect::<Vec<_>>());
        assert_eq!(RequestType::RemoteFetch.code(), 5);
        assert_eq!(RequestType::from_code(10), None);
        assert_eq!(RequestType::from_code(9), Some(RequestType::BroadcastAck));
    }
}
