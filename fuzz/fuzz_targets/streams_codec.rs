//! The Redis Streams codec fed arbitrary entries and session values: no panics, and whatever
//! decodes re-encodes to fields that decode to the same message (session).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sio_server::adapter::streams::codec::{decode_entry, decode_session, encode_entry, encode_session};

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else { return };
    if mode & 1 == 1 {
        if let Ok(s) = decode_session(rest) {
            let again = decode_session(encode_session(&s).as_bytes()).expect("re-encoded session decodes");
            assert_eq!(again, s);
        }
        return;
    }
    // Up to four values split at 0xff, for uid, nsp, type and data.
    let names: [&[u8]; 4] = [b"uid", b"nsp", b"type", b"data"];
    let fields: Vec<(&[u8], &[u8])> = names.iter().copied().zip(rest.split(|b| *b == 0xff)).collect();
    if let Ok(msg) = decode_entry(&fields) {
        let encoded = encode_entry(&msg);
        let again = decode_entry(&encoded).expect("re-encoded entry decodes");
        assert_eq!(again, msg);
    }
});
