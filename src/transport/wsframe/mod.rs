//! Our own server-side WebSocket frame codec, sans-IO: RFC 6455 framing ([`frame`]) and RFC 7692
//! permessage-deflate without context takeover ([`deflate`]). Only connections that negotiate
//! permessage-deflate use it; every other WebSocket stays on tungstenite.

pub mod deflate;
pub mod frame;
