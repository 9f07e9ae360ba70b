//! The msgpack parser's decoder fed arbitrary bytes: no panics, and after one re-encoding a
//! decoded packet is stable (decode ∘ encode is the identity on what it produced).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sio_server::socketio::{DecoderLimits, msgpack};

fuzz_target!(|data: &[u8]| {
    let limits = DecoderLimits::default();
    if let Ok(packet) = msgpack::decode(&Bytes::copy_from_slice(data), &limits) {
        let once = msgpack::decode(&Bytes::from(msgpack::encode(&packet)), &limits).expect("re-encoded packet decodes");
        let twice = msgpack::decode(&Bytes::from(msgpack::encode(&once)), &limits).expect("decodes again");
        assert_eq!(once, twice);
    }
});
