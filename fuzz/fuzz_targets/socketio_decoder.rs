//! The Socket.IO decoder fed an arbitrary sequence of text and binary messages: no panics, and
//! every decoded packet re-encodes to text that decodes to the same packet.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sio_server::socketio::{Decoder, DecoderLimits};

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new(DecoderLimits::default());
    // Split the input into messages at 0xff bytes; a leading 0x00 marks a binary message.
    for chunk in data.split(|b| *b == 0xff) {
        let out = match chunk.split_first() {
            Some((0, rest)) => decoder.add_binary(Bytes::copy_from_slice(rest)),
            _ => match std::str::from_utf8(chunk) {
                Ok(s) => decoder.add_text(s),
                Err(_) => continue,
            },
        };
        if let Ok(Some(packet)) = out {
            let text = packet.encode_text();
            let mut again = Decoder::new(DecoderLimits { max_attachments: usize::MAX });
            let mut decoded = again.add_text(&text).expect("re-encoded text decodes");
            for b in &packet.attachments {
                assert!(decoded.is_none());
                decoded = again.add_binary(b.clone()).expect("attachments decode");
            }
            assert_eq!(decoded.expect("complete"), packet);
        }
    }
});
