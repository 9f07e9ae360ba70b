//! Socket.IO v5 packets and their encoding: `<type>[<attachments>-][<nsp>,][<ack id>][<json>]`.

use bytes::Bytes;
use serde_json::Value;

/// The seven Socket.IO packet types, with their wire digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `0`: connect to a namespace (client: optional auth object; server: `{"sid":…}`).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event `["name", ...args]`.
    Event,
    /// `3`: an acknowledgement `[...args]`.
    Ack,
    /// `4`: the namespace connection was refused.
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an acknowledgement with binary attachments.
    BinaryAck,
}

impl PacketType {
    /// The wire digit.
    pub const fn as_u8(self) -> u8 {
        match self {
            PacketType::Connect => 0,
            PacketType::Disconnect => 1,
            PacketType::Event => 2,
            PacketType::Ack => 3,
            PacketType::ConnectError => 4,
            PacketType::BinaryEvent => 5,
            PacketType::BinaryAck => 6,
        }
    }

    /// The packet type for a wire number (`0`–`6`, as the adapters' msgpack `type` carries it).
    pub const fn from_u8(n: u8) -> Option<Self> {
        Some(match n {
            0 => PacketType::Connect,
            1 => PacketType::Disconnect,
            2 => PacketType::Event,
            3 => PacketType::Ack,
            4 => PacketType::ConnectError,
            5 => PacketType::BinaryEvent,
            6 => PacketType::BinaryAck,
            _ => return None,
        })
    }

    /// The packet type for a wire digit (`b'0'`–`b'6'`).
    pub const fn from_digit(b: u8) -> Option<Self> {
        Self::from_u8(b.wrapping_sub(b'0'))
    }

    /// The type without attachments (`BinaryEvent` → `Event`, `BinaryAck` → `Ack`): for packets
    /// whose binary parts travel inline, where the wire type follows from the attachments.
    pub const fn plain(self) -> Self {
        match self {
            PacketType::BinaryEvent => PacketType::Event,
            PacketType::BinaryAck => PacketType::Ack,
            other => other,
        }
    }

    /// Whether binary attachments follow this packet.
    pub const fn is_binary(self) -> bool {
        matches!(self, PacketType::BinaryEvent | PacketType::BinaryAck)
    }
}

/// Event names a client may not use, and the server may not emit (Node's `RESERVED_EVENTS`).
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// A Socket.IO packet.
///
/// Binary attachments stay separate from the JSON `data`, which refers to them with
/// `{"_placeholder":true,"num":N}` objects exactly as on the wire. After decoding, `ty` is never
/// `BinaryEvent`/`BinaryAck`: like Node, the decoder reports them as `Event`/`Ack` with attachments,
/// and the encoder picks the binary type when `attachments` is not empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Packet {
    /// Packet type.
    pub ty: PacketType,
    /// Namespace, `/` for the main one.
    pub nsp: String,
    /// Ack id, if the sender wants an acknowledgement (or this is one).
    pub id: Option<u64>,
    /// JSON payload, in the sender's key order.
    pub data: Option<Value>,
    /// Binary attachments referenced from `data` by placeholders.
    pub attachments: Vec<Bytes>,
}

/// A packet as it goes on the wire: one text message, then each attachment as a binary message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// The text part.
    pub text: String,
    /// Binary attachments, in order.
    pub attachments: Vec<Bytes>,
}

impl Packet {
    fn new(ty: PacketType, nsp: &str, data: Option<Value>) -> Packet {
        Packet {
            ty,
            nsp: nsp.to_owned(),
            id: None,
            data,
            attachments: Vec::new(),
        }
    }

    /// A CONNECT (server to client: `{"sid":…}`; client to server: optional auth).
    pub fn connect(nsp: &str, data: Option<Value>) -> Packet {
        Packet::new(PacketType::Connect, nsp, data)
    }

    /// The server's CONNECT reply carrying the socket id.
    pub fn connect_reply(nsp: &str, sid: &str) -> Packet {
        let mut obj = serde_json::Map::new();
        obj.insert("sid".into(), Value::String(sid.to_owned()));
        Packet::connect(nsp, Some(Value::Object(obj)))
    }

    /// The CONNECT reply with connection state recovery on: `{"sid":…,"pid":…}`.
    pub fn connect_reply_pid(nsp: &str, sid: &str, pid: &str) -> Packet {
        let mut obj = serde_json::Map::new();
        obj.insert("sid".into(), Value::String(sid.to_owned()));
        obj.insert("pid".into(), Value::String(pid.to_owned()));
        Packet::connect(nsp, Some(Value::Object(obj)))
    }

    /// A DISCONNECT.
    pub fn disconnect(nsp: &str) -> Packet {
        Packet::new(PacketType::Disconnect, nsp, None)
    }

    /// A CONNECT_ERROR with `{"message":…}` and optional `data`, as Node sends for refused namespaces.
    pub fn connect_error(nsp: &str, message: &str, data: Option<Value>) -> Packet {
        let mut obj = serde_json::Map::new();
        obj.insert("message".into(), Value::String(message.to_owned()));
        if let Some(data) = data {
            obj.insert("data".into(), data);
        }
        Packet::new(PacketType::ConnectError, nsp, Some(Value::Object(obj)))
    }

    /// An EVENT `["event", ...args]`.
    pub fn event(nsp: &str, event: &str, args: impl IntoIterator<Item = Value>) -> Packet {
        let mut arr = vec![Value::String(event.to_owned())];
        arr.extend(args);
        Packet::new(PacketType::Event, nsp, Some(Value::Array(arr)))
    }

    /// An ACK `[...args]` for ack id `id`.
    pub fn ack(nsp: &str, id: u64, args: Vec<Value>) -> Packet {
        let mut p = Packet::new(PacketType::Ack, nsp, Some(Value::Array(args)));
        p.id = Some(id);
        p
    }

    /// Sets the ack id.
    pub fn with_id(mut self, id: u64) -> Packet {
        self.id = Some(id);
        self
    }

    /// Sets the binary attachments.
    pub fn with_attachments(mut self, attachments: Vec<Bytes>) -> Packet {
        self.attachments = attachments;
        self
    }

    /// The event name of an EVENT packet.
    pub fn event_name(&self) -> Option<&str> {
        match (&self.ty, &self.data) {
            (PacketType::Event | PacketType::BinaryEvent, Some(Value::Array(a))) => a.first()?.as_str(),
            _ => None,
        }
    }

    /// The arguments of an EVENT (after the name) or an ACK.
    pub fn args(&self) -> &[Value] {
        match (&self.ty, &self.data) {
            (PacketType::Event | PacketType::BinaryEvent, Some(Value::Array(a))) => a.get(1..).unwrap_or(&[]),
            (PacketType::Ack | PacketType::BinaryAck, Some(Value::Array(a))) => a,
            _ => &[],
        }
    }

    /// The wire type: binary variants when there are attachments.
    pub fn wire_type(&self) -> PacketType {
        match (self.ty, self.attachments.is_empty()) {
            (PacketType::Event, false) => PacketType::BinaryEvent,
            (PacketType::Ack, false) => PacketType::BinaryAck,
            (ty, _) => ty,
        }
    }

    /// Encodes the text part into `out` (Node's `encodeAsString`).
    pub fn encode_text_into(&self, out: &mut String) {
        use std::fmt::Write as _;
        let ty = self.wire_type();
        out.push(char::from(b'0' + ty.as_u8()));
        if ty.is_binary() {
            let _ = write!(out, "{}-", self.attachments.len());
        }
        if !self.nsp.is_empty() && self.nsp != "/" {
            out.push_str(&self.nsp);
            out.push(',');
        }
        if let Some(id) = self.id {
            let _ = write!(out, "{id}");
        }
        if let Some(data) = &self.data {
            // Writing JSON into a String cannot fail.
            let _ = serde_json::to_writer(StringWriter(out), data);
        }
    }

    /// Encodes the text part.
    pub fn encode_text(&self) -> String {
        let mut out = String::new();
        self.encode_text_into(&mut out);
        out
    }

    /// Encodes the packet: its text part and its attachments.
    pub fn encode(&self) -> Encoded {
        Encoded {
            text: self.encode_text(),
            attachments: self.attachments.clone(),
        }
    }
}

/// Lets `serde_json` write into a `String` (it only ever writes valid UTF-8).
struct StringWriter<'a>(&'a mut String);

impl std::io::Write for StringWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let s = std::str::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.0.push_str(s);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Builds a placeholder object `{"_placeholder":true,"num":n}` for attachment `n`.
pub fn placeholder(n: usize) -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert("_placeholder".into(), Value::Bool(true));
    obj.insert("num".into(), Value::from(n));
    Value::Object(obj)
}

/// Whether a JSON value holds a placeholder of a binary attachment anywhere (Node's `hasBinary`
/// on the decoded form).
pub fn has_binary(v: &Value) -> bool {
    matches!(placeholder_num(v), Some(Some(_)))
        || match v {
            Value::Array(a) => a.iter().any(has_binary),
            Value::Object(o) => o.values().any(has_binary),
            _ => false,
        }
}

/// If `v` is a placeholder object, its attachment number.
pub fn placeholder_num(v: &Value) -> Option<Option<u64>> {
    let obj = v.as_object()?;
    if obj.get("_placeholder") != Some(&Value::Bool(true)) {
        return None;
    }
    Some(obj.get("num").and_then(Value::as_u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_like_node() {
        assert_eq!(Packet::connect("/", None).encode_text(), "0");
        assert_eq!(
            Packet::connect_reply("/admin", "abc").encode_text(),
            r#"0/admin,{"sid":"abc"}"#
        );
        assert_eq!(
            Packet::connect_error("/", "Not authorized", None).encode_text(),
            r#"4{"message":"Not authorized"}"#
        );
        assert_eq!(Packet::event("/", "foo", []).encode_text(), r#"2["foo"]"#);
        assert_eq!(Packet::event("/admin", "bar", []).encode_text(), r#"2/admin,["bar"]"#);
        assert_eq!(Packet::event("/", "foo", []).with_id(12).encode_text(), r#"212["foo"]"#);
        assert_eq!(
            Packet::ack("/admin", 13, vec![json!("bar")]).encode_text(),
            r#"3/admin,13["bar"]"#
        );
        assert_eq!(
            Packet::connect_reply_pid("/", "abc", "p1").encode_text(),
            r#"0{"sid":"abc","pid":"p1"}"#
        );
        assert_eq!(Packet::disconnect("/").encode_text(), "1");
        assert_eq!(Packet::disconnect("/admin").encode_text(), "1/admin,");
        let bin = Packet::event("/", "baz", [placeholder(0)]).with_attachments(vec![Bytes::from_static(b"x")]);
        assert_eq!(bin.encode_text(), r#"51-["baz",{"_placeholder":true,"num":0}]"#);
        let ack = Packet::ack("/", 15, vec![json!("bar"), placeholder(0)]).with_attachments(vec![Bytes::new()]);
        assert_eq!(ack.encode_text(), r#"61-15["bar",{"_placeholder":true,"num":0}]"#);
    }

    #[test]
    fn keeps_key_order() {
        let v: Value = serde_json::from_str(r#"{"z":1,"a":{"y":2,"b":3}}"#).unwrap();
        assert_eq!(
            Packet::event("/", "e", [v]).encode_text(),
            r#"2["e",{"z":1,"a":{"y":2,"b":3}}]"#
        );
    }
}
