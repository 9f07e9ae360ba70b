//! The permessage-deflate WebSocket frame decoder fed arbitrary client bytes, split at arbitrary
//! points: no panics, nothing larger than the message limit, text always UTF-8, and after an
//! error nothing more is read.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sio_server::transport::wsframe::frame::{Decoder, Incoming};

const MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let mut decoder = Decoder::new(MAX, split & 1 == 1);
    let mut buf = BytesMut::new();
    // Deliver the input in pieces of 1..=32 bytes (the first byte chooses the piece size).
    for piece in rest.chunks(usize::from(split >> 3) + 1) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(Incoming::Text(t))) => {
                    assert!(t.len() <= MAX);
                    assert!(std::str::from_utf8(&t).is_ok());
                }
                Ok(Some(Incoming::Binary(b))) => assert!(b.len() <= MAX),
                Ok(Some(Incoming::Ping(p) | Incoming::Pong(p))) => assert!(p.len() <= 125),
                Ok(Some(Incoming::Close(_))) => {}
                Ok(None) => break,
                Err(v) => {
                    assert!(matches!(v.code, 1002 | 1007 | 1009));
                    return;
                }
            }
        }
    }
});
